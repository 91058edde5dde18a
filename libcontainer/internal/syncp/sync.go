// Package syncp is the protocol between runmini and the init of a
// container: one JSON packet per message over a SOCK_SEQPACKET socketpair,
// and the configuration the init receives.
package syncp

// The parent (runmini create, or the shim) and the container's init talk over
// one SOCK_SEQPACKET socketpair. Every message is one JSON packet, so no
// length prefix is needed and a reader never blocks on a partial message.
//
//	parent                                 init (runmini init)
//	  | -- MsgConfig{InitConfig} --------------> |  (after the parent put it in its cgroup)
//	  |                                          |  namespaces, mounts, console
//	  | <------------- MsgCreateRuntime -------- |  (only when there are createRuntime hooks)
//	  | -- MsgOK / MsgError ---------------------> |
//	  |                                          |  createContainer hooks, pivot_root,
//	  |                                          |  masked/readonly paths
//	  | <------------- MsgSeccompWanted -------- |  (only when InitConfig.SeccompFollows)
//	  | -- MsgSeccomp{Seccomp} / MsgError -------> |
//	  |                                          |  rlimits, user, caps, seccomp
//	  | <------------------------- MsgReady ---- |
//	  |  writes state.json                       |
//	  | -- MsgOK --------------------------------> |  clears pdeathsig, closes the socket,
//	  |                                          |  waits on exec.sock for start
//	  | -- or MsgStart ---------------------------> |  clears pdeathsig, startContainer
//	  |                                          |  hooks, executes the process: the
//	  | <-------------- EOF (or MsgError) ------- |  socket is close-on-exec
//
// MsgStart (`run` with nothing to do between create and start) saves the
// round trips through exec.sock; the parent then made no exec.sock
// (InitConfig.ExecSockFD is -1).
//
// Any step may instead be answered by MsgError{Error}; the side that receives
// it aborts. The init turns panics into MsgError too. Log lines travel as
// MsgLog so that the init never writes to the container's stdio.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"unicode/utf8"

	"github.com/mailru/easyjson/jlexer"
	"golang.org/x/sys/unix"

	"github.com/runmini/runmini/libcontainer/seccomp/bpf"
	"github.com/runmini/runmini/spec/specjson"
)

type MsgType string

// Version names this protocol; bump it whenever InitConfig or the message
// flow changes meaning.
const Version = "runmini-sync-5"

const (
	MsgConfig        MsgType = "config"
	MsgCreateRuntime MsgType = "createRuntime"
	MsgReady         MsgType = "ready"
	MsgOK            MsgType = "ok"
	MsgStart         MsgType = "start"
	MsgError         MsgType = "error"
	MsgLog           MsgType = "log"
	// MsgSeccompWanted asks for the filter InitConfig.SeccompFollows
	// promised; MsgSeccomp carries it.
	MsgSeccompWanted MsgType = "seccompWanted"
	MsgSeccomp       MsgType = "seccomp"
)

//go:generate sh ../../../scripts/easyjson.sh sync.go

// Msg is one packet. Its decoder is generated (sync_easyjson.go) and its
// encoder written out (appendJSON): encoding/json would spend a
// millisecond or two of every container start building its reflection
// caches in the init.
//
//easyjson:json
type Msg struct {
	Type  MsgType `json:"type"`
	Error string  `json:"error,omitempty"`
	// Config is MsgConfig's InitConfig (SendConfig, ReadConfig), which
	// encoding/json encodes: decoding it is the init's part.
	Config json.RawMessage `json:"config,omitempty"`
	Log    json.RawMessage `json:"log,omitempty"`
	// Seccomp is MsgSeccomp's filter.
	Seccomp *bpf.Filter `json:"seccomp,omitempty"`
	// Pid is MsgConfig's InitConfig.InitPid.
	Pid int `json:"pid,omitempty"`
}

// appendJSON appends m as JSON, as encoding/json would write it.
func (m *Msg) appendJSON(b []byte) []byte {
	b = append(b, `{"type":`...)
	b = appendString(b, string(m.Type))
	if m.Error != "" {
		b = append(b, `,"error":`...)
		b = appendString(b, m.Error)
	}
	// Config and Log are JSON already (json.Marshal and slog wrote them).
	if len(m.Config) > 0 {
		b = append(append(b, `,"config":`...), m.Config...)
	}
	if len(m.Log) > 0 {
		b = append(append(b, `,"log":`...), m.Log...)
	}
	if m.Seccomp != nil {
		b = m.Seccomp.AppendJSON(append(b, `,"seccomp":`...))
	}
	if m.Pid != 0 {
		b = strconv.AppendInt(append(b, `,"pid":`...), int64(m.Pid), 10)
	}
	return append(b, '}')
}

// appendString appends s as a JSON string: quotes, backslashes and
// control characters escaped, invalid UTF-8 as U+FFFD (as encoding/json
// does, less its optional HTML escaping).
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b = append(b, '\\', byte(r))
		case r == '\n':
			b = append(b, '\\', 'n')
		case r == '\r':
			b = append(b, '\\', 'r')
		case r == '\t':
			b = append(b, '\\', 't')
		case r < 0x20 || r == '\u2028' || r == '\u2029':
			b = append(b, '\\', 'u', hex[r>>12&0xf], hex[r>>8&0xf], hex[r>>4&0xf], hex[r&0xf])
		default:
			b = utf8.AppendRune(b, r) // utf8.RuneError for invalid bytes
		}
	}
	return append(b, '"')
}

// Conn is one end of the socketpair.
type Conn struct {
	F *os.File
}

func NewPair() (parent, child *os.File, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("create sync socketpair: %w", err)
	}
	return os.NewFile(uintptr(fds[0]), "sync-parent"), os.NewFile(uintptr(fds[1]), "sync-child"), nil
}

func (c *Conn) Send(m *Msg) error {
	if _, err := c.F.Write(m.appendJSON(nil)); err != nil {
		return fmt.Errorf("send %s message: %w", m.Type, err)
	}
	return nil
}

// recv reads one packet. MSG_PEEK|MSG_TRUNC tells the packet's size first, so
// a large config never gets truncated.
func (c *Conn) Recv() (*Msg, error) {
	rc, err := c.F.SyscallConn()
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
	m := new(Msg)
	if err := specjson.Unmarshal(buf[:n], m); err != nil {
		return nil, fmt.Errorf("decode sync message: %w", err)
	}
	return m, nil
}

// EncodeConfig encodes an InitConfig for SendConfig. Its InitPid is not
// sent: SendConfig's pid is, so the config can be encoded before the init
// exists. rawSpec, when not nil, goes as the spec instead of ic.Spec: the
// JSON ic.Spec was decoded from, which the init decodes the same way
// (specjson). That spares the runtime encoding a spec with encoding/json,
// whose first encoding of the type in a process builds its encoders by
// reflection over the whole spec: ~2.5 ms of CPU while the init boots.
func EncodeConfig(ic *InitConfig, rawSpec []byte) ([]byte, error) {
	var v any = ic
	if rawSpec != nil {
		// The shallower field wins over the embedded one of the same
		// name.
		v = struct {
			*InitConfig
			Spec json.RawMessage `json:"spec"`
		}{ic, rawSpec}
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode init config: %w", err)
	}
	return b, nil
}

// SendConfig sends MsgConfig: a config from EncodeConfig and the init's
// pid in the runtime's pid namespace.
func (c *Conn) SendConfig(config []byte, initPid int) error {
	return c.Send(&Msg{Type: MsgConfig, Config: config, Pid: initPid})
}

// ReadConfig decodes MsgConfig's InitConfig.
func ReadConfig(m *Msg) (*InitConfig, error) {
	ic := new(InitConfig)
	l := jlexer.Lexer{Data: m.Config}
	ic.UnmarshalEasyJSON(&l)
	if err := l.Error(); err != nil {
		// A runmini from another build may send what this one does not
		// know: the init must still get as far as comparing versions
		// and saying that.
		var v struct {
			Version string `json:"version"`
		}
		if json.Unmarshal(m.Config, &v) == nil && v.Version != Version {
			return &InitConfig{Version: v.Version}, nil
		}
		return nil, fmt.Errorf("decode init config: %w", err)
	}
	ic.InitPid = m.Pid
	return ic, nil
}

var ErrUnexpectedEOF = io.ErrUnexpectedEOF

// expectAny reads the next message that is not a log line, forwarding log
// lines to logf, and turns MsgError into an error.
func (c *Conn) ExpectAny(logf func(json.RawMessage)) (*Msg, error) {
	for {
		m, err := c.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil, ErrUnexpectedEOF
			}
			return nil, err
		}
		switch m.Type {
		case MsgLog:
			if logf != nil {
				logf(m.Log)
			}
		case MsgError:
			return nil, errors.New(m.Error)
		default:
			return m, nil
		}
	}
}

// expect is expectAny for one wanted message type.
func (c *Conn) Expect(want MsgType, logf func(json.RawMessage)) (*Msg, error) {
	m, err := c.ExpectAny(logf)
	if err != nil {
		return nil, fmt.Errorf("waiting for %s: %w", want, err)
	}
	if m.Type != want {
		return nil, fmt.Errorf("sync protocol: got %q while waiting for %q", m.Type, want)
	}
	return m, nil
}

// LogWriter turns each write (one slog JSON record) into a MsgLog packet,
// so the init never writes logs to the container's stdio.
type LogWriter struct{ C *Conn }

func (w LogWriter) Write(p []byte) (int, error) {
	b := bytes.TrimSpace(p)
	if err := w.C.Send(&Msg{Type: MsgLog, Log: json.RawMessage(append([]byte(nil), b...))}); err != nil {
		return 0, err
	}
	return len(p), nil
}

// InitConfig travels to the init in the MsgConfig packet. Fds are numbered
// as the init sees them.
//
//easyjson:json
type InitConfig struct {
	// Version must be the init's Version: runmini and runmini-init are
	// separate files, and a mismatch must fail clearly, not strangely.
	Version      string            `json:"version"`
	ID           string            `json:"id"`
	Bundle       string            `json:"bundle"`
	Rootfs       string            `json:"rootfs"`
	Spec         *specjson.Spec    `json:"spec"`
	NoPivot      bool              `json:"no_pivot,omitempty"`
	NoNewKeyring bool              `json:"no_new_keyring,omitempty"`
	CgroupPaths  map[string]string `json:"cgroup_paths,omitempty"`
	InitUnshare  uint64            `json:"init_unshare,omitempty"`
	HasMountNS   bool              `json:"has_mount_ns,omitempty"`
	NewUserNS    bool              `json:"new_user_ns,omitempty"`
	NewCgroupNS  bool              `json:"new_cgroup_ns,omitempty"`
	ConsoleFD    int               `json:"console_fd"`
	ExecSockFD   int               `json:"exec_sock_fd"`
	PreserveFDs  int               `json:"preserve_fds,omitempty"`
	// Seccomp is the spec's filter, compiled by the runtime (the init
	// has no libseccomp); nil for none.
	Seccomp *bpf.Filter `json:"seccomp,omitempty"`
	// SeccompFollows: the spec has a filter, still being compiled while
	// the init builds the container; the init asks for it (MsgSeccompWanted)
	// when it needs it.
	SeccompFollows bool `json:"seccomp_follows,omitempty"`
	// Exec: join the container's namespaces and run the process right
	// away; build nothing, wait for no start.
	Exec bool `json:"exec,omitempty"`
	// Debug: the init sends its debug records (phases) too.
	Debug bool `json:"debug,omitempty"`
	// InitPid is the init's pid in the runtime's pid namespace, for the
	// state handed to createContainer hooks; it travels as Msg.Pid.
	InitPid int `json:"-"`
}
