//go:build linux

package supervisor

// handlePathChange: STUB, to be written (issue 4, filesystem).
func handlePathChange(r *request) Result { return Continue() }
