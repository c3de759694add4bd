package main

import "syscall"

func signalName(n int) string { return syscall.Signal(n).String() }
