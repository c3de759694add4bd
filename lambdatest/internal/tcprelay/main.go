// Command tcprelay is the floor of what any Runtime API proxy costs: it runs
// CMD with AWS_LAMBDA_RUNTIME_API pointing at a plain TCP relay to the real
// one (a goroutine pair per connection, no HTTP). BenchmarkProxyOverhead in
// package lambdatest compares the proxy against it.
//
//	tcprelay CMD [ARGS...]
package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: tcprelay CMD [ARGS...]")
		os.Exit(2)
	}
	upstream := os.Getenv("AWS_LAMBDA_RUNTIME_API")
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "tcprelay:", err)
		os.Exit(1)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go relay(c, upstream)
		}
	}()
	cmd := exec.Command(os.Args[1], os.Args[2:]...)
	cmd.Env = append(os.Environ(), "AWS_LAMBDA_RUNTIME_API="+ln.Addr().String())
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			os.Exit(ee.ExitCode())
		}
		os.Exit(1)
	}
}

func relay(c net.Conn, upstream string) {
	defer c.Close()
	u, err := net.Dial("tcp", upstream)
	if err != nil {
		return
	}
	defer u.Close()
	go func() {
		io.Copy(u, c)
		u.(*net.TCPConn).CloseWrite()
	}()
	io.Copy(c, u)
}
