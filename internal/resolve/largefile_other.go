//go:build !amd64 && !arm64

package resolve

// oLargefile: Vigil targets the Lambda architectures (amd64, arm64); on
// others an O_LARGEFILE from the caller makes Open fail with EINVAL.
const oLargefile = 0
