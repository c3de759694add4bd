//go:build linux

package supervisor

import "golang.org/x/sys/unix"

// pcDecodeLegacy knows no calls on arm64: it has only the *at forms of the
// path-change calls (and no futimesat), which pcDecode decodes itself.
func pcDecodeLegacy(r *request, c *pcCall, path pcPathFn, e *unix.Errno) (known bool, early unix.Errno) {
	return false, 0
}
