package integration

// Helpers of the command-line, lifecycle and bad-input tests. Every name
// here starts with "cli" so that it cannot clash with the helpers of the
// other test files of this package, which other people write.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/sys/mountinfo"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/runmini/runmini/tests/testutil"
)

// cliWait bounds how long a test waits for something that must happen (a
// container reaching a state, a file written by the container). It is a
// deadline against hangs, not a timing assertion: everything here happens
// in milliseconds.
const cliWait = 30 * time.Second

// cliState is the OCI state as `state` prints it.
type cliState struct {
	OCIVersion  string            `json:"ociVersion"`
	ID          string            `json:"id"`
	Pid         int               `json:"pid"`
	Status      string            `json:"status"`
	Bundle      string            `json:"bundle"`
	Rootfs      string            `json:"rootfs"`
	Created     time.Time         `json:"created"`
	Owner       string            `json:"owner"`
	Annotations map[string]string `json:"annotations"`
}

// cliIsRunc reports whether the tests run against runc as an oracle; a
// few texts that runc words differently are then not compared.
func cliIsRunc() bool {
	return strings.Contains(filepath.Base(os.Getenv(testutil.RuntimeEnv)), "runc")
}

// cliMust runs the runtime and fails t unless it exits 0.
func cliMust(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, code := testutil.Run(t, args...)
	if code != 0 {
		t.Fatalf("runtime %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

var cliLogfmtMsg = regexp.MustCompile(`level=error msg=("(?:[^"\\]|\\.)*")`)

// cliErrorLine checks that stderr is exactly one non-empty line and returns
// the error message in it: runmini prints the message itself, runc a
// logfmt line whose msg field is the message.
func cliErrorLine(t *testing.T, what, stderr string) string {
	t.Helper()
	line := strings.TrimRight(stderr, "\n")
	if line == "" {
		t.Errorf("%s: nothing on stderr; want one line naming the problem", what)
		return ""
	}
	if strings.Contains(line, "\n") {
		t.Errorf("%s: stderr has %d lines, want one:\n%s", what, strings.Count(line, "\n")+1, stderr)
	}
	if m := cliLogfmtMsg.FindStringSubmatch(line); m != nil {
		if msg, err := strconv.Unquote(m[1]); err == nil {
			return msg
		}
	}
	return line
}

// cliFail runs the runtime, expects a non-zero exit and one line on
// stderr, and returns the error message.
func cliFail(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, code := testutil.Run(t, args...)
	what := "runtime " + strings.Join(args, " ")
	if code == 0 {
		t.Errorf("%s: exit 0, want an error\nstdout: %s\nstderr: %s", what, out, errOut)
	}
	return cliErrorLine(t, what, errOut)
}

// cliFailWith is cliFail that also wants msg in the error message.
func cliFailWith(t *testing.T, msg string, args ...string) {
	t.Helper()
	if got := cliFail(t, args...); !strings.Contains(got, msg) {
		t.Errorf("runtime %s: error %q, want %q in it", strings.Join(args, " "), got, msg)
	}
}

// cliGetState runs `state id` and decodes it; it also checks that every
// field the runtime spec requires is present, not just zero-valued.
func cliGetState(t *testing.T, id string) cliState {
	t.Helper()
	out := cliMust(t, "state", id)
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(out), &raw); err != nil {
		t.Fatalf("state %s: not JSON: %v\n%s", id, err, out)
	}
	for _, k := range []string{"ociVersion", "id", "status", "bundle"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("state %s: no %q field in %s", id, k, out)
		}
	}
	var st cliState
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("state %s: %v\n%s", id, err, out)
	}
	return st
}

// cliWaitFor polls cond until it holds, failing t after cliWait.
func cliWaitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(cliWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// cliWaitStatus waits until `state id` reports status and returns that state.
func cliWaitStatus(t *testing.T, id, status string) cliState {
	t.Helper()
	var st cliState
	cliWaitFor(t, id+" to be "+status, func() bool {
		st = cliGetState(t, id)
		return st.Status == status
	})
	return st
}

// cliOutDir returns a host directory and a spec change that bind-mounts
// it read-write at /out, so a container can report what it sees.
func cliOutDir(t *testing.T) (string, func(*specs.Spec)) {
	t.Helper()
	dir := t.TempDir()
	return dir, func(s *specs.Spec) {
		s.Mounts = append(s.Mounts, specs.Mount{
			Destination: "/out", Type: "bind", Source: dir,
			Options: []string{"rbind", "rw"},
		})
	}
}

// cliShell returns a mutate that runs script with sh and bind-mounts out
// at /out; more, when not nil, changes the spec further.
func cliShell(out, script string, more func(*specs.Spec)) func(*specs.Spec) {
	return func(s *specs.Spec) {
		s.Process.Args = []string{"sh", "-c", script}
		s.Mounts = append(s.Mounts, specs.Mount{
			Destination: "/out", Type: "bind", Source: out,
			Options: []string{"rbind", "rw"},
		})
		if more != nil {
			more(s)
		}
	}
}

// cliReadFile waits for the container to write name in dir (it writes to
// a temporary name and renames, or the test waits for a line end) and
// returns its content.
func cliReadFile(t *testing.T, dir, name string) string {
	t.Helper()
	var b []byte
	cliWaitFor(t, "the container to write "+name, func() bool {
		var err error
		b, err = os.ReadFile(filepath.Join(dir, name))
		return err == nil && strings.HasSuffix(string(b), "\n")
	})
	return string(b)
}

// cliProcAlive reports whether pid runs (not a zombie) with the given
// start time; start 0 means any.
func cliProcAlive(pid int, start uint64) bool {
	got, ok := testutil.ProcStart(pid)
	return ok && (start == 0 || got == start)
}

// cliKillOnCleanup makes sure pid (identified by its start time) does not
// outlive t even when the test fails half-way.
func cliKillOnCleanup(t *testing.T, pid int) uint64 {
	t.Helper()
	start, ok := testutil.ProcStart(pid)
	if !ok {
		t.Fatalf("process %d is not running", pid)
	}
	t.Cleanup(func() {
		if cliProcAlive(pid, start) {
			_ = unix.Kill(pid, unix.SIGKILL)
		}
	})
	return start
}

// cliCmdline returns the command line of pid with spaces between words.
func cliCmdline(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
}

// cliRunIn runs the runtime with --root and args in the working directory
// dir, output to unnamed files (a leaked container holding them must not
// make the test hang).
func cliRunIn(t *testing.T, dir string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := testutil.Runtime(t).Command(args...)
	cmd.Dir = dir
	return cliRunCmd(t, cmd)
}

// cliRunCmd runs cmd with stdout and stderr sent to unnamed files unless
// the caller set them, and returns what it printed and its exit status.
func cliRunCmd(t *testing.T, cmd *exec.Cmd) (stdout, stderr string, code int) {
	t.Helper()
	outF := cliTempFile(t)
	errF := cliTempFile(t)
	if cmd.Stdout == nil {
		cmd.Stdout = outF
	}
	cmd.Stderr = errF
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %v: %v", cmd.Args, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("%v: no exit after 2 minutes", cmd.Args)
	}
	return cliReadBack(t, outF), cliReadBack(t, errF), cmd.ProcessState.ExitCode()
}

func cliTempFile(t *testing.T) *os.File {
	t.Helper()
	f, err := os.CreateTemp("", "ita-out-")
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(f.Name())
	t.Cleanup(func() { f.Close() })
	return f
}

func cliReadBack(t *testing.T, f *os.File) string {
	t.Helper()
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// cliNothingLeft checks, right after a failed command, that nothing of
// container id is left: no state directory under the runtime's root, no
// cgroup named after id in any hierarchy, no mount under bundle, no
// container listed but those in keep, and no process that still has cwd
// (the runtime's working directory, unique to the call) or a directory in
// bundle as its working directory.
func cliNothingLeft(t *testing.T, id, bundle, cwd string, keep ...string) {
	t.Helper()
	root := testutil.Runtime(t).Root
	if id != "" && !strings.Contains(id, "/") && id != "." && id != ".." {
		// A name too long for a file cannot have been created either.
		_, err := os.Lstat(filepath.Join(root, id))
		if !errors.Is(err, os.ErrNotExist) && !errors.Is(err, unix.ENAMETOOLONG) {
			t.Errorf("state directory %s left behind (%v)", filepath.Join(root, id), err)
		}
	}
	kept := map[string]bool{testutil.SeccompCacheDir: true}
	for _, k := range keep {
		kept[k] = true
	}
	if ents, err := os.ReadDir(root); err == nil {
		for _, e := range ents {
			if !kept[e.Name()] {
				t.Errorf("%s left in the runtime root", filepath.Join(root, e.Name()))
			}
		}
	}
	if id != "" && len(id) >= 8 {
		cgs, err := testutil.FindCgroups(func(name string) bool { return strings.Contains(name, id) })
		if err != nil {
			t.Errorf("look for cgroups: %v", err)
		}
		for _, cg := range cgs {
			t.Errorf("cgroup %s left behind", cg)
		}
	}
	if bundle != "" {
		ms, err := mountinfo.GetMounts(mountinfo.PrefixFilter(bundle))
		if err != nil {
			t.Errorf("read mounts: %v", err)
		}
		for _, m := range ms {
			t.Errorf("mount %s left behind", m.Mountpoint)
		}
	}
	if cwd != "" {
		for _, pid := range cliProcsWithCwd(cwd, bundle) {
			t.Errorf("process %d (%s) left behind", pid, cliCmdline(pid))
		}
	}
	out, errOut, code := testutil.Run(t, "list", "-q")
	if code != 0 {
		t.Errorf("list: exit %d: %s", code, errOut)
	} else {
		for _, l := range strings.Fields(out) {
			if !kept[l] {
				t.Errorf("container %q left listed", l)
			}
		}
	}
}

// cliProcsWithCwd lists live processes whose working directory is dir, or
// is inside bundle.
func cliProcsWithCwd(dir, bundle string) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	self := os.Getpid()
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		cwd, err := os.Readlink("/proc/" + e.Name() + "/cwd")
		if err != nil {
			continue
		}
		if cwd == dir || (bundle != "" && (cwd == bundle || strings.HasPrefix(cwd, bundle+"/"))) {
			if _, ok := testutil.ProcStart(pid); ok {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

// cliConsoleSocket listens on a new unix socket and returns its path and a
// channel that delivers the first file descriptor received on it with
// SCM_RIGHTS (the pty master), or an error.
func cliConsoleSocket(t *testing.T) (string, <-chan cliConsole) {
	t.Helper()
	dir, err := os.MkdirTemp("", "ita-cs-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "console.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatalf("listen on console socket: %v", err)
	}
	t.Cleanup(func() { ln.Close() })
	ch := make(chan cliConsole, 1)
	go func() {
		f, err := cliRecvFd(ln)
		ch <- cliConsole{f, err}
	}()
	return path, ch
}

type cliConsole struct {
	f   *os.File
	err error
}

func cliRecvFd(ln *net.UnixListener) (*os.File, error) {
	conn, err := ln.AcceptUnix()
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	name := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(4*4))
	n, oobn, _, _, err := conn.ReadMsgUnix(name, oob)
	if err != nil {
		return nil, fmt.Errorf("receive from console socket: %w", err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return nil, fmt.Errorf("parse control message: %w", err)
	}
	for _, m := range msgs {
		fds, err := unix.ParseUnixRights(&m)
		if err != nil {
			continue
		}
		for _, fd := range fds[1:] {
			unix.Close(fd)
		}
		if len(fds) > 0 {
			return os.NewFile(uintptr(fds[0]), string(name[:n])), nil
		}
	}
	return nil, errors.New("console socket: message carried no file descriptor")
}
