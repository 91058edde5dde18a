package shim

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/runmini/runmini/internal/fdpass"
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
// is created, so the deadline only guards against a broken sender.
func (c *consoleSocket) receive() (*os.File, error) { return fdpass.Accept(c.ln, 30*time.Second) }

func (c *consoleSocket) close() {
	c.ln.Close()
	os.RemoveAll(c.dir)
}
