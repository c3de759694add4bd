//go:build linux

package supervisor

// auditArchNative is seccomp_data.arch of the calls the supervisor answers.
const auditArchNative = auditArchX86_64
