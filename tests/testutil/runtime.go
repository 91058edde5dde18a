package testutil

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	// RuntimeEnv selects another runtime to run the same tests against,
	// such as "runc" as an oracle: a path, or a name looked up in PATH.
	RuntimeEnv = "RUNTIME_UNDER_TEST"
	// BinaryEnv names the runmini binary to test instead of the
	// repository's bin/runmini.
	BinaryEnv = "RUNMINI_BINARY"

	modulePath = "github.com/runmini/runmini"
	// runTimeout bounds one runtime command so that a hung runtime fails
	// its test instead of the whole test binary's deadline.
	runTimeout = 2 * time.Minute
	// exitGrace is how long a container's processes may take to disappear
	// after `delete --force` before they count as leaked.
	exitGrace = 5 * time.Second
)

// RuntimePath returns the absolute path of the runtime under test:
// $RUNTIME_UNDER_TEST if set, else $RUNMINI_BINARY, else bin/runmini in the
// repository that contains the working directory (built by make).
func RuntimePath() (string, error) {
	if v := os.Getenv(RuntimeEnv); v != "" {
		p, err := exec.LookPath(v)
		if err != nil {
			return "", fmt.Errorf("%s=%s: %w", RuntimeEnv, v, err)
		}
		return filepath.Abs(p)
	}
	p := os.Getenv(BinaryEnv)
	if p == "" {
		root, err := repoRoot()
		if err != nil {
			return "", err
		}
		p = filepath.Join(root, "bin", "runmini")
	}
	p, err := filepath.Abs(p)
	if err != nil {
		return "", fmt.Errorf("runtime path: %w", err)
	}
	fi, err := os.Stat(p)
	if err != nil {
		return "", fmt.Errorf("runtime under test: %w (build it with make, or set %s or %s)", err, BinaryEnv, RuntimeEnv)
	}
	if fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
		return "", fmt.Errorf("runtime under test %s is not an executable file", p)
	}
	return p, nil
}

// repoRoot finds the module root by walking up from the working directory,
// which `go test` sets to the package's directory.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find repository root: %w", err)
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && declaresModule(b, modulePath) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod of %s above the working directory", modulePath)
		}
		dir = parent
	}
}

func declaresModule(gomod []byte, path string) bool {
	for _, line := range strings.Split(string(gomod), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == "module" && strings.Trim(f[1], `"`) == path {
			return true
		}
	}
	return false
}

// ID returns a container id unique to this call, made from t's name and a
// random suffix; it keeps to [a-z0-9-] so that it is valid for runc's id
// rules and also as a cgroup, systemd unit or file name. The id is
// remembered: when t ends, cgroups named after it count as leaks.
func ID(t testing.TB) string {
	t.Helper()
	var b [4]byte
	_, _ = rand.Read(b[:]) // never fails since Go 1.24
	id := idPrefix(t.Name()) + "-" + hex.EncodeToString(b[:])
	registry(t).addID(id)
	return id
}

// idPrefix turns a test name into at most 40 characters of [a-z0-9-],
// keeping the end, which names the subtest.
func idPrefix(name string) string {
	var sb strings.Builder
	dash := false
	for _, r := range strings.ToLower(name) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			sb.WriteRune(r)
			dash = false
		} else if !dash {
			sb.WriteByte('-')
			dash = true
		}
	}
	s := sb.String()
	if len(s) > 40 {
		s = s[len(s)-40:]
	}
	s = strings.Trim(s, "-")
	if s == "" {
		s = "test"
	}
	return s
}

// CLI runs the runtime under test for one test, always with that test's
// own state directory as --root.
type CLI struct {
	// Path is the runtime binary.
	Path string
	// Root is the --root passed to every command.
	Root string

	t     testing.TB
	state *testState
}

// Runtime returns t's handle on the runtime under test (see RuntimePath),
// the same one on every call for the same t. When t ends, it force-deletes
// every container still listed under its root and fails t if anything is
// left: a state directory, a cgroup named after one of t's container ids (in
// every v1 hierarchy and the v2 one), a mount under the root or one of t's
// bundles, or a container process it saw in `state` or `list` output. What
// it finds is also undone, so that one test's leak does not break the next.
func Runtime(t testing.TB) *CLI {
	t.Helper()
	s := registry(t)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cli != nil {
		return s.cli
	}
	path, err := RuntimePath()
	if err != nil {
		t.Fatalf("%v", err)
	}
	// The root must exist before the check is registered: cleanups run
	// last-in first-out, so the check then runs before the removal of the
	// test's temporary directories (and so of its bundles).
	root := t.TempDir()
	c := &CLI{Path: path, Root: root, t: t, state: s}
	t.Cleanup(c.cleanup)
	s.cli = c
	return c
}

// Run runs t's runtime under test (see Runtime) with args.
func Run(t testing.TB, args ...string) (stdout, stderr string, exit int) {
	t.Helper()
	return Runtime(t).Run(args...)
}

// Run runs the runtime with --root and args, and returns what it printed
// and its exit status (-1 when a signal ended it). It fails the test when
// the runtime cannot be started or runs longer than two minutes. Output
// goes to files, not pipes, so that a container that inherits the
// runtime's stdio (create, run --detach) does not make Run wait for it;
// whatever the container writes before the runtime exits is included.
func (c *CLI) Run(args ...string) (stdout, stderr string, exit int) {
	c.t.Helper()
	stdout, stderr, exit, err := c.run(args...)
	if err != nil {
		c.t.Fatalf("%v", err)
	}
	return stdout, stderr, exit
}

// Command returns an unstarted command that runs the runtime with --root
// and args, for tests that wire stdio themselves (a console socket, a
// container's stdin). The caller starts and waits for it.
func (c *CLI) Command(args ...string) *exec.Cmd {
	return exec.Command(c.Path, append([]string{"--root", c.Root}, args...)...)
}

func (c *CLI) run(args ...string) (stdout, stderr string, exit int, err error) {
	outF, err := unlinkedTemp()
	if err != nil {
		return "", "", -1, err
	}
	defer outF.Close()
	errF, err := unlinkedTemp()
	if err != nil {
		return "", "", -1, err
	}
	defer errF.Close()

	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	name := "runtime " + strings.Join(args, " ")
	cmd := exec.CommandContext(ctx, c.Path, append([]string{"--root", c.Root}, args...)...)
	cmd.Stdout, cmd.Stderr = outF, errF
	runErr := cmd.Run()

	ob, err := readAll(outF)
	if err != nil {
		return "", "", -1, fmt.Errorf("%s: stdout: %w", name, err)
	}
	eb, err := readAll(errF)
	if err != nil {
		return "", "", -1, fmt.Errorf("%s: stderr: %w", name, err)
	}
	if ctx.Err() != nil {
		return string(ob), string(eb), -1, fmt.Errorf("%s: no exit after %v; stderr: %s", name, runTimeout, eb)
	}
	var ee *exec.ExitError
	switch {
	case runErr == nil:
	case errors.As(runErr, &ee):
	default:
		return string(ob), string(eb), -1, fmt.Errorf("%s: %w", name, runErr)
	}
	c.observe(ob)
	return string(ob), string(eb), cmd.ProcessState.ExitCode(), nil
}

// unlinkedTemp returns a file with no name, so nothing is left on disk
// even if a container keeps it open after the runtime has exited.
func unlinkedTemp() (*os.File, error) {
	f, err := os.CreateTemp("", "runmini-out-")
	if err != nil {
		return nil, fmt.Errorf("runtime output file: %w", err)
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, fmt.Errorf("runtime output file: %w", err)
	}
	return f, nil
}

func readAll(f *os.File) ([]byte, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	return io.ReadAll(f)
}

// containerState is the part of `state` and `list --format json` output
// that the leak checks need.
type containerState struct {
	Version string `json:"ociVersion"`
	ID      string `json:"id"`
	Pid     int    `json:"pid"`
	Bundle  string `json:"bundle"`
}

// observe remembers the containers, processes and bundles named in
// output that is state JSON (one object from `state`, an array from
// `list --format json`); other output is ignored.
func (c *CLI) observe(out []byte) {
	for _, st := range parseStates(out) {
		c.state.addID(st.ID)
		if st.Bundle != "" {
			c.state.addBundle(st.Bundle)
		}
		if st.Pid > 0 {
			c.state.addPid(st.Pid)
		}
	}
}

func parseStates(out []byte) []containerState {
	out = bytes.TrimSpace(out)
	if len(out) == 0 {
		return nil
	}
	var list []containerState
	switch out[0] {
	case '{':
		var st containerState
		if json.Unmarshal(out, &st) != nil {
			return nil
		}
		list = []containerState{st}
	case '[':
		if json.Unmarshal(out, &list) != nil {
			return nil
		}
	default:
		return nil
	}
	var valid []containerState
	for _, st := range list {
		if st.Version != "" && st.ID != "" {
			valid = append(valid, st)
		}
	}
	return valid
}

// list returns the containers under c.Root.
func (c *CLI) list() ([]containerState, error) {
	stdout, stderr, exit, err := c.run("list", "--format", "json")
	if err != nil {
		return nil, err
	}
	if exit != 0 {
		return nil, fmt.Errorf("runtime list: exit status %d: %s", exit, strings.TrimSpace(stderr))
	}
	// runc prints "null" when there are none.
	var list []containerState
	if err := json.Unmarshal([]byte(stdout), &list); err != nil {
		return nil, fmt.Errorf("runtime list: decode %q: %w", stdout, err)
	}
	return list, nil
}

func (c *CLI) cleanup() {
	t := c.t
	list, err := c.list()
	if err != nil {
		t.Errorf("cleanup: %v", err)
	}
	for _, st := range list {
		_, stderr, exit, err := c.run("delete", "--force", st.ID)
		switch {
		case err != nil:
			t.Errorf("cleanup: %v", err)
		case exit != 0:
			t.Errorf("cleanup: runtime delete --force %s: exit status %d: %s", st.ID, exit, strings.TrimSpace(stderr))
		}
	}
	if len(list) > 0 {
		if after, err := c.list(); err != nil {
			t.Errorf("cleanup: %v", err)
		} else if len(after) > 0 {
			t.Errorf("cleanup: %d containers still listed after delete --force", len(after))
		}
	}
	for _, leak := range c.state.leaks(c.Root, exitGrace) {
		t.Errorf("leak: %s", leak)
	}
}

// testState is what the helpers remember about one test.
type testState struct {
	mu      sync.Mutex
	ids     map[string]bool
	bundles map[string]bool
	pids    map[int]uint64 // pid -> start time, to tell a reused pid apart
	cli     *CLI
}

var (
	registryMu sync.Mutex
	registered = map[testing.TB]*testState{}
)

func registry(t testing.TB) *testState {
	registryMu.Lock()
	defer registryMu.Unlock()
	if s, ok := registered[t]; ok {
		return s
	}
	s := &testState{ids: map[string]bool{}, bundles: map[string]bool{}, pids: map[int]uint64{}}
	registered[t] = s
	t.Cleanup(func() {
		registryMu.Lock()
		delete(registered, t)
		registryMu.Unlock()
	})
	return s
}

func (s *testState) addID(id string) {
	s.mu.Lock()
	s.ids[id] = true
	s.mu.Unlock()
}

func (s *testState) addBundle(dir string) {
	s.mu.Lock()
	s.bundles[filepath.Clean(dir)] = true
	s.mu.Unlock()
}

func (s *testState) addPid(pid int) {
	start, ok := ProcStart(pid)
	if !ok {
		return
	}
	s.mu.Lock()
	s.pids[pid] = start
	s.mu.Unlock()
}

// leaks checks, after every container was deleted, that nothing of t's
// containers is left, undoes what it finds and describes it.
func (s *testState) leaks(root string, grace time.Duration) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var found []string
	dirs, err := stateDirs(root)
	if err != nil {
		found = append(found, err.Error())
	}
	for _, d := range dirs {
		found = append(found, fmt.Sprintf("state directory %s", d))
	}
	for _, pid := range killLive(s.pids, grace) {
		found = append(found, fmt.Sprintf("container process %d still running (killed)", pid))
	}
	mountDirs := []string{root}
	for b := range s.bundles {
		mountDirs = append(mountDirs, b)
	}
	mounts, err := UnmountUnder(mountDirs...)
	if err != nil {
		found = append(found, err.Error())
	}
	for _, m := range mounts {
		found = append(found, fmt.Sprintf("mount %s", m))
	}
	ids := make([]string, 0, len(s.ids))
	for id := range s.ids {
		ids = append(ids, id)
	}
	cgroups, err := removeCgroupsNamed(ids)
	if err != nil {
		found = append(found, err.Error())
	}
	for _, cg := range cgroups {
		found = append(found, fmt.Sprintf("cgroup %s", cg))
	}
	return found
}
