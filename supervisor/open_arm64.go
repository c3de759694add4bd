//go:build linux

package supervisor

// decodeOpenLegacy knows no calls on arm64: it has neither open nor creat,
// only openat and openat2, which decodeOpen decodes itself.
func decodeOpenLegacy(r *request, c *openCall) (pathAddr uint64, ok bool) {
	return 0, false
}
