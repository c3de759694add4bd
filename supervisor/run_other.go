//go:build !linux

package supervisor

// Run is only implemented on Linux.
func Run(cfg Config) (int, error) { return 2, ErrUnsupported }
