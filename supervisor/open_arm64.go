//go:build linux

package supervisor

import "vigil/tracer"

// decodeOpenLegacy knows no calls on arm64: it has neither open nor creat,
// only openat and openat2, which decodeOpen decodes itself.
func decodeOpenLegacy(r *request, c *openCall) (pathAddr uint64, ok bool) {
	return 0, false
}

// legacyOpenMayBlock: arm64 has no open(2) or creat(2).
func legacyOpenMayBlock(c *tracer.Call, effects uint64) bool { return false }
