// Package fdpass receives a file descriptor sent over a Unix socket with
// SCM_RIGHTS: the pty master a container's init sends to --console-socket.
package fdpass

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// Accept takes one connection on ln (waiting at most timeout) and returns
// the first file descriptor it carries, named after the message's text (a
// pty's path). Extra descriptors are closed.
func Accept(ln *net.UnixListener, timeout time.Duration) (*os.File, error) {
	ln.SetDeadline(time.Now().Add(timeout))
	conn, err := ln.AcceptUnix()
	if err != nil {
		return nil, fmt.Errorf("accept on console socket: %w", err)
	}
	defer conn.Close()
	name := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(4*4))
	n, oobn, _, _, err := conn.ReadMsgUnix(name, oob)
	if err != nil {
		return nil, fmt.Errorf("receive pty master: %w", err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return nil, fmt.Errorf("receive pty master: %w", err)
	}
	for _, m := range msgs {
		fds, err := unix.ParseUnixRights(&m)
		if err != nil || len(fds) == 0 {
			continue
		}
		for _, fd := range fds[1:] {
			unix.Close(fd)
		}
		unix.CloseOnExec(fds[0])
		return os.NewFile(uintptr(fds[0]), string(name[:n])), nil
	}
	return nil, errors.New("receive pty master: no file descriptor in the message")
}

// Socket is a console socket: a Unix listener in a private directory of its
// own, removed with it by Close.
type Socket struct {
	dir string
	ln  *net.UnixListener
}

// Listen makes a Socket in a new directory under the system's temporary
// directory, named after prefix.
func Listen(prefix string) (*Socket, error) {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return nil, fmt.Errorf("console socket dir: %w", err)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(dir, "console.sock"), Net: "unix"})
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("console socket: %w", err)
	}
	return &Socket{dir: dir, ln: ln}, nil
}

// Path is what --console-socket names.
func (s *Socket) Path() string { return filepath.Join(s.dir, "console.sock") }

// Accept is Accept on the socket.
func (s *Socket) Accept(timeout time.Duration) (*os.File, error) { return Accept(s.ln, timeout) }

// Close stops listening and removes the directory.
func (s *Socket) Close() {
	s.ln.Close()
	os.RemoveAll(s.dir)
}
