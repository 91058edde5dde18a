package libcontainer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/runmini/runmini/internal/sysfile"
	"github.com/runmini/runmini/spec/specjson"
)

// Status is a container's lifecycle state, as the OCI runtime spec names it.
type Status string

const (
	Creating Status = "creating"
	Created  Status = "created"
	Running  Status = "running"
	Stopped  Status = "stopped"
	Paused   Status = "paused"
)

const (
	stateFile = "state.json"
	// stagedState is state.json written while the init builds the
	// container, renamed into place when it is ready.
	stagedState = "." + stateFile + ".new"
	// execSock exists while the init waits for `start`; its presence is
	// what tells "created" from "running".
	execSock = "exec.sock"
)

// persisted is what state.json holds. It is written once, atomically, when
// the container is created; everything that changes (status, liveness) is
// computed afresh from the live process on every call.
type persisted struct {
	ID          string            `json:"id"`
	Bundle      string            `json:"bundle"`
	Rootfs      string            `json:"rootfs"`
	InitPid     int               `json:"init_process_pid"`
	InitStart   uint64            `json:"init_process_start"`
	Created     time.Time         `json:"created"`
	Owner       string            `json:"owner,omitempty"`
	CgroupPaths map[string]string `json:"cgroup_paths,omitempty"`
	// PrivatePidNS: killing the init kills every process of the container.
	PrivatePidNS bool `json:"private_pid_ns"`
	// Config is the spec as created, "config" in state.json. readState
	// keeps the bytes (RawConfig) and spec decodes them on first use:
	// state, list and kill do not need them, and decoding a spec costs a
	// CLI process 1-2 ms.
	Config    *specs.Spec     `json:"-"`
	RawConfig json.RawMessage `json:"config"`
	// configJSON, when not nil, is Config's JSON (CreateOpts.SpecJSON),
	// recorded as it is rather than encoded again.
	configJSON []byte
	// configErr is why RawConfig could not be decoded.
	configErr error
}

// hasConfig tells a created container from one still being created.
func (p *persisted) hasConfig() bool {
	return p.Config != nil || (len(p.RawConfig) > 0 && string(p.RawConfig) != "null")
}

// spec is Config, decoded from state.json on first use; nil when there is
// none or it cannot be decoded (configErr says why).
func (p *persisted) spec() *specs.Spec {
	if p.Config == nil && p.configErr == nil && p.hasConfig() {
		// Generated code first (~0.2 ms, against encoding/json's 1-2 ms
		// of reflection in a fresh process: this is on exec's way).
		if s, ok := specjson.Decode(p.RawConfig); ok {
			p.Config = s
			return s
		}
		s := new(specs.Spec)
		if err := json.Unmarshal(p.RawConfig, s); err != nil {
			p.configErr = err
			return nil
		}
		p.Config = s
	}
	return p.Config
}

// annotations are the config's, read without decoding the rest of it.
func (p *persisted) annotations() map[string]string {
	if p.Config != nil {
		return p.Config.Annotations
	}
	var part struct {
		Annotations map[string]string `json:"annotations"`
	}
	p.decodePart(&part)
	return part.Annotations
}

// hooks are the config's, read without decoding the rest of it (start
// and delete need nothing else).
func (p *persisted) hooks() *specs.Hooks {
	if p.Config != nil {
		return p.Config.Hooks
	}
	var part struct {
		Hooks *specs.Hooks `json:"hooks"`
	}
	p.decodePart(&part)
	return part.Hooks
}

// decodePart decodes the fields of the recorded config that v has; a
// config that cannot be decoded leaves v as it is.
func (p *persisted) decodePart(v any) {
	if p.hasConfig() {
		if err := json.Unmarshal(p.RawConfig, v); err != nil {
			slog.Warn("cannot decode the config recorded in state.json", "id", p.ID, "err", err)
		}
	}
}

// OCIState is the JSON `runmini state` prints: runc's format, which is the
// OCI state plus created and owner.
type OCIState struct {
	OCIVersion  string            `json:"ociVersion"`
	ID          string            `json:"id"`
	Pid         int               `json:"pid"`
	Status      Status            `json:"status"`
	Bundle      string            `json:"bundle"`
	Rootfs      string            `json:"rootfs"`
	Created     time.Time         `json:"created"`
	Owner       string            `json:"owner"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

func writeState(dir string, p *persisted) error {
	b, err := encodeState(p)
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, stateFile), b, 0o600)
}

// encodeState is state.json's content for p.
func encodeState(p *persisted) ([]byte, error) {
	if p.Config != nil {
		raw := p.configJSON
		if raw == nil {
			var err error
			if raw, err = json.Marshal(p.Config); err != nil {
				return nil, fmt.Errorf("encode state: %w", err)
			}
		}
		q := *p
		q.RawConfig = raw
		p = &q
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("encode state: %w", err)
	}
	return b, nil
}

func readState(dir string) (*persisted, error) {
	b, err := sysfile.Read(filepath.Join(dir, stateFile))
	if err != nil {
		return nil, err
	}
	p := new(persisted)
	if err := json.Unmarshal(b, p); err != nil {
		return nil, fmt.Errorf("decode %s: %w", filepath.Join(dir, stateFile), err)
	}
	return p, nil
}

// writeFileAtomic writes data to a temporary file in the same directory and
// renames it over path, so a reader sees the old file or the new one, never
// a torn one.
func writeFileAtomic(path string, data []byte, perm os.FileMode) (retErr error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer func() {
		if retErr != nil {
			os.Remove(f.Name())
		}
	}()
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// procStartTime returns field 22 (starttime) of /proc/pid/stat and whether
// the process is a zombie. Comparing start times is what keeps a recycled
// pid from being mistaken for the container's init.
func procStartTime(pid int) (start uint64, zombie bool, err error) {
	b, err := sysfile.Read("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false, err
	}
	// The command name may contain spaces and parentheses: fields start
	// after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return 0, false, fmt.Errorf("parse /proc/%d/stat: no command end", pid)
	}
	fields := bytes.Fields(b[i+2:])
	// fields[0] is state (field 3); starttime is field 22.
	if len(fields) < 20 {
		return 0, false, fmt.Errorf("parse /proc/%d/stat: %d fields", pid, len(fields))
	}
	start, err = strconv.ParseUint(string(fields[19]), 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("parse /proc/%d/stat starttime: %w", pid, err)
	}
	return start, string(fields[0]) == "Z" || string(fields[0]) == "X", nil
}

// initAlive tells whether the recorded init is still the same live process.
func (p *persisted) initAlive() bool {
	if p.InitPid <= 0 {
		return false
	}
	start, zombie, err := procStartTime(p.InitPid)
	if err != nil {
		return false
	}
	return start == p.InitStart && !zombie
}

func isNotExist(err error) bool { return errors.Is(err, os.ErrNotExist) }
