//go:build linux

package supervisor

// handleBind, handleListen: STUBS, to be written (issue 4, network).
func handleBind(r *request) Result   { return Continue() }
func handleListen(r *request) Result { return Continue() }
