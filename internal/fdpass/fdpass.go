// Package fdpass receives a file descriptor sent over a Unix socket with
// SCM_RIGHTS: the pty master a container's init sends to --console-socket.
//
// It uses the socket system calls directly rather than package net, whose
// package initialisation every runmini process would otherwise pay.
package fdpass

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// Socket is a console socket: a Unix listener in a private directory of its
// own, removed with it by Close.
type Socket struct {
	dir string
	fd  int
}

// Listen makes a Socket in a new directory under the system's temporary
// directory, named after prefix.
func Listen(prefix string) (*Socket, error) {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return nil, fmt.Errorf("console socket dir: %w", err)
	}
	s := &Socket{dir: dir, fd: -1}
	if err := s.listen(); err != nil {
		s.Close()
		return nil, fmt.Errorf("console socket: %w", err)
	}
	return s, nil
}

func (s *Socket) listen() error {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	s.fd = fd
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: s.Path()}); err != nil {
		return err
	}
	return unix.Listen(fd, 1)
}

// Path is what --console-socket names.
func (s *Socket) Path() string { return filepath.Join(s.dir, "console.sock") }

// Accept takes one connection (waiting at most timeout) and returns the
// first file descriptor it carries, named after the message's text (a
// pty's path). Extra descriptors are closed.
func (s *Socket) Accept(timeout time.Duration) (*os.File, error) {
	conn, err := s.accept(timeout)
	if err != nil {
		return nil, fmt.Errorf("accept on console socket: %w", err)
	}
	defer unix.Close(conn)
	name := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(4*4))
	var n, oobn int
	for {
		n, oobn, _, _, err = unix.Recvmsg(conn, name, oob, unix.MSG_CMSG_CLOEXEC)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("receive pty master: %w", err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return nil, fmt.Errorf("receive pty master: %w", err)
	}
	var file *os.File
	for _, m := range msgs {
		fds, err := unix.ParseUnixRights(&m)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			if file == nil {
				file = os.NewFile(uintptr(fd), string(name[:n]))
			} else {
				unix.Close(fd)
			}
		}
	}
	if file == nil {
		return nil, errors.New("receive pty master: no file descriptor in the message")
	}
	return file, nil
}

// accept waits for a connection for at most timeout.
func (s *Socket) accept(timeout time.Duration) (int, error) {
	deadline := time.Now().Add(timeout)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return -1, os.ErrDeadlineExceeded
		}
		pfd := []unix.PollFd{{Fd: int32(s.fd), Events: unix.POLLIN}}
		n, err := unix.Poll(pfd, int(left.Milliseconds())+1)
		if err == unix.EINTR || (err == nil && n == 0) {
			continue
		}
		if err != nil {
			return -1, err
		}
		conn, _, err := unix.Accept4(s.fd, unix.SOCK_CLOEXEC)
		if err == unix.EINTR || err == unix.EAGAIN || err == unix.ECONNABORTED {
			continue
		}
		return conn, err
	}
}

// Close stops listening and removes the directory.
func (s *Socket) Close() {
	if s.fd >= 0 {
		unix.Close(s.fd)
		s.fd = -1
	}
	os.RemoveAll(s.dir)
}
