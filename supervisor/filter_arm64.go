//go:build linux

package supervisor

// archSideDoors: arm64 has neither port I/O calls (iopl, ioperm) nor
// uselib.
func archSideDoors() []sideDoor { return nil }
