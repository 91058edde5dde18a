package shim

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// consoleSocket receives the pty master that a terminal process's init
// sends over --console-socket, as runc does. It lives in a private
// directory that is removed once the master arrived or the start failed.
type consoleSocket struct {
	dir string
	ln  *net.UnixListener
}

func newConsoleSocket() (*consoleSocket, error) {
	dir, err := os.MkdirTemp("", "mini-pty")
	if err != nil {
		return nil, fmt.Errorf("console socket dir: %w", err)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(dir, "s"), Net: "unix"})
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("console socket: %w", err)
	}
	return &consoleSocket{dir: dir, ln: ln}, nil
}

func (c *consoleSocket) path() string { return filepath.Join(c.dir, "s") }

// receive waits for the master; the runtime sends it before the process
// is created, so a short deadline only guards against a broken sender.
func (c *consoleSocket) receive() (*os.File, error) {
	c.ln.SetDeadline(time.Now().Add(30 * time.Second))
	conn, err := c.ln.AcceptUnix()
	if err != nil {
		return nil, fmt.Errorf("accept on console socket: %w", err)
	}
	defer conn.Close()
	buf := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(4))
	_, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
	if err != nil {
		return nil, fmt.Errorf("read console socket: %w", err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return nil, fmt.Errorf("console socket message: %w", err)
	}
	for _, m := range msgs {
		fds, err := unix.ParseUnixRights(&m)
		if err != nil {
			continue
		}
		for _, fd := range fds[1:] {
			unix.Close(fd)
		}
		unix.CloseOnExec(fds[0])
		return os.NewFile(uintptr(fds[0]), "pty-master"), nil
	}
	return nil, errors.New("console socket: no pty master received")
}

func (c *consoleSocket) close() {
	c.ln.Close()
	os.RemoveAll(c.dir)
}
