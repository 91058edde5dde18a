package main

import (
	"io"
	"os"
	"time"

	"github.com/containerd/console"

	"github.com/runmini/runmini/internal/fdpass"
)

// ttyProxy is what `run` does for a container with process.terminal and no
// --console-socket, as runc does: it receives the pty master itself and
// copies between it and its own stdio, with the caller's terminal in raw
// mode so keys reach the container as typed.
type ttyProxy struct {
	sock    *fdpass.Socket
	master  *os.File
	current console.Console // our own terminal, when stdin is one
	outDone chan struct{}
}

func newTTYProxy() (*ttyProxy, error) {
	sock, err := fdpass.Listen("runmini-tty-")
	if err != nil {
		return nil, err
	}
	return &ttyProxy{sock: sock, outDone: make(chan struct{})}, nil
}

func (t *ttyProxy) path() string { return t.sock.Path() }

// attach takes the master the container's init sent (it is already queued
// on the connection: create has returned) and starts the copies.
func (t *ttyProxy) attach() error {
	master, err := t.sock.Accept(10 * time.Second)
	if err != nil {
		return err
	}
	t.master = master
	if c, err := console.ConsoleFromFile(os.Stdin); err == nil {
		if err := c.SetRaw(); err == nil {
			t.current = c
			t.resize()
		}
	}
	go io.Copy(t.master, os.Stdin)
	go func() {
		io.Copy(os.Stdout, t.master) // ends with EIO once every slave fd is closed
		close(t.outDone)
	}()
	return nil
}

// resize gives the container's terminal our terminal's size (SIGWINCH).
func (t *ttyProxy) resize() {
	if t.current == nil || t.master == nil {
		return
	}
	if ws, err := t.current.Size(); err == nil {
		if m, err := console.ConsoleFromFile(t.master); err == nil {
			m.Resize(ws)
		}
	}
}

// close waits (briefly: a daemonised child may hold the slave forever) for
// the container's last output, then restores our terminal and removes the
// socket.
func (t *ttyProxy) close() {
	if t.master != nil {
		select {
		case <-t.outDone:
		case <-time.After(time.Second):
		}
		t.master.Close()
	}
	if t.current != nil {
		t.current.Reset()
	}
	t.sock.Close()
}
