//go:build linux && !amd64

package supervisor

import "golang.org/x/sys/unix"

// No pregenerated filter for this architecture: buildFilter compiles it
// with libseccomp at every start (TestFilterGolden makes the amd64 one,
// which it can check here).
var goldenNotify, goldenTrace []unix.SockFilter
