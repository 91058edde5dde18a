package libcontainer

// The parent (runmini create, or the shim) and the container's init talk over
// one SOCK_SEQPACKET socketpair. Every message is one JSON packet, so no
// length prefix is needed and a reader never blocks on a partial message.
//
//	parent                                 init (runmini init)
//	  | -- msgConfig{initConfig} --------------> |  (after the parent put it in its cgroup)
//	  |                                          |  namespaces, mounts, console
//	  | <------------- msgCreateRuntime -------- |  (only when there are createRuntime hooks)
//	  | -- msgOK / msgError ---------------------> |
//	  |                                          |  createContainer hooks, pivot_root,
//	  |                                          |  masked/readonly paths, user, caps
//	  | <------------------------- msgReady ---- |
//	  |  writes state.json                       |
//	  | -- msgOK --------------------------------> |  clears pdeathsig, closes the socket,
//	  |                                          |  waits on exec.fifo for start
//
// Any step may instead be answered by msgError{Error}; the side that receives
// it aborts. The init turns panics into msgError too. Log lines travel as
// msgLog so that the init never writes to the container's stdio.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

type msgType string

const (
	msgConfig        msgType = "config"
	msgCreateRuntime msgType = "createRuntime"
	msgReady         msgType = "ready"
	msgOK            msgType = "ok"
	msgError         msgType = "error"
	msgLog           msgType = "log"
)

type syncMsg struct {
	Type   msgType         `json:"type"`
	Error  string          `json:"error,omitempty"`
	Config *initConfig     `json:"config,omitempty"`
	Log    json.RawMessage `json:"log,omitempty"`
}

// syncConn is one end of the socketpair.
type syncConn struct {
	f *os.File
}

func newSyncPair() (parent, child *os.File, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("create sync socketpair: %w", err)
	}
	return os.NewFile(uintptr(fds[0]), "sync-parent"), os.NewFile(uintptr(fds[1]), "sync-child"), nil
}

func (c *syncConn) send(m *syncMsg) error {
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode %s message: %w", m.Type, err)
	}
	if _, err := c.f.Write(b); err != nil {
		return fmt.Errorf("send %s message: %w", m.Type, err)
	}
	return nil
}

// recv reads one packet. MSG_PEEK|MSG_TRUNC tells the packet's size first, so
// a large config never gets truncated.
func (c *syncConn) recv() (*syncMsg, error) {
	rc, err := c.f.SyscallConn()
	if err != nil {
		return nil, err
	}
	var buf []byte
	var n int
	var opErr error
	err = rc.Read(func(fd uintptr) bool {
		size, _, e := unix.Recvfrom(int(fd), nil, unix.MSG_PEEK|unix.MSG_TRUNC)
		if e == unix.EAGAIN {
			return false
		}
		if e != nil {
			opErr = e
			return true
		}
		if size == 0 {
			opErr = io.EOF
			return true
		}
		buf = make([]byte, size)
		n, _, e = unix.Recvfrom(int(fd), buf, 0)
		if e == unix.EAGAIN {
			return false
		}
		opErr = e
		return true
	})
	if err == nil {
		err = opErr
	}
	if err != nil {
		return nil, err
	}
	m := new(syncMsg)
	if err := json.Unmarshal(buf[:n], m); err != nil {
		return nil, fmt.Errorf("decode sync message: %w", err)
	}
	return m, nil
}

var errUnexpectedEOF = io.ErrUnexpectedEOF

// expectAny reads the next message that is not a log line, forwarding log
// lines to logf, and turns msgError into an error.
func (c *syncConn) expectAny(logf func(json.RawMessage)) (*syncMsg, error) {
	for {
		m, err := c.recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil, errUnexpectedEOF
			}
			return nil, err
		}
		switch m.Type {
		case msgLog:
			if logf != nil {
				logf(m.Log)
			}
		case msgError:
			return nil, errors.New(m.Error)
		default:
			return m, nil
		}
	}
}

// expect is expectAny for one wanted message type.
func (c *syncConn) expect(want msgType, logf func(json.RawMessage)) (*syncMsg, error) {
	m, err := c.expectAny(logf)
	if err != nil {
		return nil, fmt.Errorf("waiting for %s: %w", want, err)
	}
	if m.Type != want {
		return nil, fmt.Errorf("sync protocol: got %q while waiting for %q", m.Type, want)
	}
	return m, nil
}

// logWriter turns each write (one slog JSON record) into a msgLog packet,
// so the init never writes logs to the container's stdio.
type logWriter struct{ c *syncConn }

func (w logWriter) Write(p []byte) (int, error) {
	b := bytes.TrimSpace(p)
	if err := w.c.send(&syncMsg{Type: msgLog, Log: json.RawMessage(append([]byte(nil), b...))}); err != nil {
		return 0, err
	}
	return len(p), nil
}
