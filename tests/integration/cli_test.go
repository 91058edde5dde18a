package integration

// Every command and flag of runc's command line that runmini has, observed
// from outside (exit codes, stdout, files the runtime writes) and from
// inside the container (what it prints or writes to a bind-mounted dir).

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/runmini/runmini/tests/testutil"
)

func TestSpec(t *testing.T) {
	t.Parallel()
	// A bundle whose config.json is the one `spec` writes: it must run.
	bundle := testutil.Bundle(t, nil)
	cfg := filepath.Join(bundle, "config.json")
	if err := os.Remove(cfg); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := cliRunIn(t, bundle, "spec"); code != 0 {
		t.Fatalf("spec: exit %d: %s", code, errOut)
	}
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatalf("spec wrote no config.json in its working directory: %v", err)
	}
	var s specs.Spec
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("spec wrote invalid JSON: %v", err)
	}
	if s.Process == nil || !s.Process.Terminal || !slices.Equal(s.Process.Args, []string{"sh"}) {
		t.Errorf("default process %+v, want runc's: sh on a terminal", s.Process)
	}
	if s.Root == nil || s.Root.Path != "rootfs" || !s.Root.Readonly {
		t.Errorf("default root %+v, want a read-only rootfs", s.Root)
	}
	if got := cliNamespaceTypes(&s); !slices.Equal(got, []string{"ipc", "mount", "network", "pid", "uts"}) {
		t.Errorf("default namespaces %q, want runc's: ipc mount network pid uts", got)
	}
	if len(s.Linux.UIDMappings) != 0 {
		t.Errorf("default spec has uid mappings: %+v", s.Linux.UIDMappings)
	}

	// A second spec refuses to overwrite it.
	_, errOut, code := cliRunIn(t, bundle, "spec")
	if code == 0 {
		t.Errorf("spec with config.json present: exit 0, want an error")
	}
	if msg := cliErrorLine(t, "spec with config.json present", errOut); !strings.Contains(msg, "File config.json exists. Remove it first") {
		t.Errorf("spec with config.json present: %q, want runc's %q", msg, "File config.json exists. Remove it first")
	}
	if b2, _ := os.ReadFile(cfg); string(b2) != string(b) {
		t.Errorf("refused spec changed config.json")
	}

	// The default spec runs as it is, but for the terminal (no one is
	// there to hand a pty to) and the command.
	s.Process.Terminal = false
	s.Process.Args = []string{"sh", "-c", "echo default-spec-ok"}
	b, _ = json.Marshal(&s)
	if err := os.WriteFile(cfg, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := testutil.Run(t, "run", "--bundle", bundle, testutil.ID(t))
	if code != 0 || out != "default-spec-ok\n" {
		t.Errorf("run of the default spec: exit %d, stdout %q, stderr %s", code, out, errOut)
	}

	// --bundle names the directory to write to.
	dir := t.TempDir()
	cliMust(t, "spec", "--bundle", dir)
	if _, err := os.Stat(filepath.Join(dir, "config.json")); err != nil {
		t.Errorf("spec --bundle: %v", err)
	}
}

func TestSpecRootless(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cliMust(t, "spec", "--rootless", "--bundle", dir)
	b, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s specs.Spec
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("spec --rootless wrote invalid JSON: %v", err)
	}
	ns := cliNamespaceTypes(&s)
	if !slices.Contains(ns, "user") {
		t.Errorf("rootless namespaces %q: no user namespace", ns)
	}
	if slices.Contains(ns, "network") {
		t.Errorf("rootless namespaces %q: a rootless user cannot configure a network namespace", ns)
	}
	uid, gid := uint32(os.Geteuid()), uint32(os.Getegid())
	if m := s.Linux.UIDMappings; len(m) != 1 || m[0].ContainerID != 0 || m[0].HostID != uid || m[0].Size != 1 {
		t.Errorf("rootless uid mappings %+v, want 0 -> %d, size 1", m, uid)
	}
	if m := s.Linux.GIDMappings; len(m) != 1 || m[0].ContainerID != 0 || m[0].HostID != gid || m[0].Size != 1 {
		t.Errorf("rootless gid mappings %+v, want 0 -> %d, size 1", m, gid)
	}
}

func cliNamespaceTypes(s *specs.Spec) []string {
	var out []string
	if s.Linux != nil {
		for _, n := range s.Linux.Namespaces {
			out = append(out, string(n.Type))
		}
	}
	slices.Sort(out)
	return out
}

func TestFeatures(t *testing.T) {
	t.Parallel()
	out := cliMust(t, "features")
	var f struct {
		OCIVersionMin string   `json:"ociVersionMin"`
		OCIVersionMax string   `json:"ociVersionMax"`
		Hooks         []string `json:"hooks"`
		MountOptions  []string `json:"mountOptions"`
		Linux         *struct {
			Namespaces   []string `json:"namespaces"`
			Capabilities []string `json:"capabilities"`
		} `json:"linux"`
	}
	if err := json.Unmarshal([]byte(out), &f); err != nil {
		t.Fatalf("features: invalid JSON: %v\n%s", err, out)
	}
	if !strings.HasPrefix(f.OCIVersionMin, "1.") || !strings.HasPrefix(f.OCIVersionMax, "1.") {
		t.Errorf("features: ociVersionMin %q, ociVersionMax %q", f.OCIVersionMin, f.OCIVersionMax)
	}
	if f.Linux == nil {
		t.Fatalf("features: no linux section:\n%s", out)
	}
	for _, ns := range []string{"cgroup", "ipc", "mount", "network", "pid", "user", "uts"} {
		if !slices.Contains(f.Linux.Namespaces, ns) {
			t.Errorf("features: namespaces %q lack %q", f.Linux.Namespaces, ns)
		}
	}
	for _, h := range []string{"prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"} {
		if !slices.Contains(f.Hooks, h) {
			t.Errorf("features: hooks %q lack %q", f.Hooks, h)
		}
	}
	for _, o := range []string{"ro", "nosuid", "nodev", "noexec", "bind", "rbind", "rprivate"} {
		if !slices.Contains(f.MountOptions, o) {
			t.Errorf("features: mountOptions lack %q", o)
		}
	}
	if !slices.Contains(f.Linux.Capabilities, "CAP_SYS_ADMIN") {
		t.Errorf("features: capabilities %q lack CAP_SYS_ADMIN", f.Linux.Capabilities)
	}
}

func TestVersion(t *testing.T) {
	t.Parallel()
	out := cliMust(t, "--version")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	name := filepath.Base(testutil.Runtime(t).Path)
	if !strings.HasPrefix(lines[0], name+" version ") || len(lines[0]) == len(name+" version ") {
		t.Errorf("--version: first line %q, want %q", lines[0], name+" version X")
	}
	if !slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, "spec: 1.") }) {
		t.Errorf("--version: no \"spec: 1.x\" line in %q", out)
	}
}

// TestLogJSON checks that --log with --log-format json writes an error as
// a JSON line with level, msg and time, as containerd and podman parse it.
func TestLogJSON(t *testing.T) {
	t.Parallel()
	log := filepath.Join(t.TempDir(), "log.json")
	id := testutil.ID(t)
	_, _, code := testutil.Run(t, "--log", log, "--log-format", "json", "state", id)
	if code == 0 {
		t.Fatalf("state of a missing container: exit 0")
	}
	f, err := os.Open(log)
	if err != nil {
		t.Fatalf("no log file: %v", err)
	}
	defer f.Close()
	found := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l map[string]any
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Errorf("log line is not JSON: %q", sc.Text())
			continue
		}
		level, _ := l["level"].(string)
		msg, _ := l["msg"].(string)
		ts, _ := l["time"].(string)
		if level == "" || msg == "" || ts == "" {
			t.Errorf("log line %q lacks level, msg or time", sc.Text())
		}
		if _, err := time.Parse(time.RFC3339Nano, ts); err != nil {
			t.Errorf("log line time %q: %v", ts, err)
		}
		if strings.Contains(msg, "container does not exist") {
			found = true
			// runc (logrus) writes lower-case levels; parsers match them.
			if level != "error" {
				t.Errorf("error logged with level %q, want \"error\"", level)
			}
		}
	}
	if !found {
		b, _ := os.ReadFile(log)
		t.Errorf("log has no line with the error:\n%s", b)
	}
}

func TestSystemdCgroup(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/run/systemd/system"); err == nil {
		t.Skip("systemd runs here: --systemd-cgroup is not an error on this host")
	}
	bundle := testutil.Bundle(t, nil)
	id := testutil.ID(t)
	cwd := t.TempDir()
	_, errOut, code := cliRunIn(t, cwd, "--systemd-cgroup", "run", "--bundle", bundle, id)
	if code == 0 {
		t.Errorf("--systemd-cgroup run without systemd: exit 0")
	}
	if msg := cliErrorLine(t, "--systemd-cgroup run", errOut); !strings.Contains(msg, "systemd") {
		t.Errorf("--systemd-cgroup run: error %q does not mention systemd", msg)
	}
	cliNothingLeft(t, id, bundle, cwd)
}

func TestList(t *testing.T) {
	t.Parallel()
	bundle := testutil.Bundle(t, func(s *specs.Spec) { s.Process.Args = []string{"sleep", "1000"} })
	created, running := testutil.ID(t), testutil.ID(t)
	cliMust(t, "create", "--bundle", bundle, created)
	cliMust(t, "run", "-d", "--bundle", bundle, running)
	want := map[string]cliState{
		created: cliGetState(t, created),
		running: cliWaitStatus(t, running, "running"),
	}

	// The table: a header and one row per container.
	out := cliMust(t, "list")
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("list: %d lines, want a header and 2 rows:\n%s", len(lines), out)
	}
	if h := strings.Fields(lines[0]); !slices.Equal(h, []string{"ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"}) {
		t.Errorf("list header %q, want runc's", lines[0])
	}
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) != 6 {
			t.Errorf("list row %q: %d columns, want 6", l, len(f))
			continue
		}
		st, ok := want[f[0]]
		if !ok {
			t.Errorf("list row %q: unknown id", l)
			continue
		}
		if f[1] != strconv.Itoa(st.Pid) || f[2] != st.Status || f[3] != bundle || f[5] != "root" {
			t.Errorf("list row %q, want pid %d status %s bundle %s owner root", l, st.Pid, st.Status, bundle)
		}
		if c, err := time.Parse(time.RFC3339Nano, f[4]); err != nil || !c.Equal(st.Created) {
			t.Errorf("list row %q: created %q, want %v (%v)", l, f[4], st.Created, err)
		}
	}

	// -q: the ids, one a line.
	q := strings.Fields(cliMust(t, "list", "-q"))
	slices.Sort(q)
	ids := []string{created, running}
	slices.Sort(ids)
	if !slices.Equal(q, ids) {
		t.Errorf("list -q: %q, want %q", q, ids)
	}

	// --format json: an array of states.
	var js []cliState
	if err := json.Unmarshal([]byte(cliMust(t, "list", "--format", "json")), &js); err != nil {
		t.Fatalf("list --format json: %v", err)
	}
	if len(js) != 2 {
		t.Fatalf("list --format json: %d containers, want 2", len(js))
	}
	for _, got := range js {
		st := want[got.ID]
		if got.Pid != st.Pid || got.Status != st.Status || got.Bundle != bundle || !got.Created.Equal(st.Created) || got.Owner != "root" {
			t.Errorf("list --format json: %+v, want %+v with owner root", got, st)
		}
	}
	cliFail(t, "list", "--format", "yaml")

	cliMust(t, "delete", "-f", created)
	cliMust(t, "delete", "-f", running)
	if out := cliMust(t, "list", "-q"); out != "" {
		t.Errorf("list -q with no containers: %q", out)
	}
}

// cliRunFG runs `run` in the foreground with the given extra arguments
// and files from fd 3 on, and returns stdout, stderr and the exit status.
func cliRunFG(t *testing.T, extra []*os.File, args ...string) (string, string, int) {
	t.Helper()
	cmd := testutil.Runtime(t).Command(append([]string{"run"}, args...)...)
	cmd.ExtraFiles = extra
	return cliRunCmd(t, cmd)
}

func TestRunExitCodes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		script string
		code   int
		out    string
	}{
		{"zero", "echo hello", 0, "hello\n"},
		{"three", "echo bye; exit 3", 3, "bye\n"},
		{"false", "false", 1, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			bundle := testutil.Bundle(t, func(s *specs.Spec) { s.Process.Args = []string{"sh", "-c", tc.script} })
			id := testutil.ID(t)
			cwd := t.TempDir()
			out, errOut, code := cliRunIn(t, cwd, "run", "--bundle", bundle, id)
			if code != tc.code || out != tc.out {
				t.Errorf("run: exit %d stdout %q, want %d %q; stderr: %s", code, out, tc.code, tc.out, errOut)
			}
			if errOut != "" {
				t.Errorf("run: stderr %q, want nothing", errOut)
			}
			// run deletes the container when it exits.
			cliNothingLeft(t, id, bundle, cwd)
		})
	}
	t.Run("killed", func(t *testing.T) {
		t.Parallel()
		bundle := testutil.Bundle(t, func(s *specs.Spec) { s.Process.Args = []string{"sleep", "1000"} })
		id := testutil.ID(t)
		cmd := testutil.Runtime(t).Command("run", "--bundle", bundle, id)
		done := make(chan int, 1)
		go func() {
			_, _, code := cliRunCmd(t, cmd)
			done <- code
		}()
		var pid int
		cliWaitFor(t, id+" to run sleep", func() bool {
			out, _, code := testutil.Run(t, "state", id)
			var st cliState
			if code != 0 || json.Unmarshal([]byte(out), &st) != nil || st.Status != "running" {
				return false
			}
			pid = st.Pid
			return cliCmdline(pid) == "sleep 1000"
		})
		cliKillOnCleanup(t, pid)
		cliMust(t, "kill", id, "KILL")
		select {
		case code := <-done:
			if code != 128+int(syscall.SIGKILL) {
				t.Errorf("run of a container killed by SIGKILL: exit %d, want %d", code, 128+int(syscall.SIGKILL))
			}
		case <-time.After(cliWait):
			t.Fatalf("run did not return after its container was killed")
		}
		cliNothingLeft(t, id, bundle, "")
	})
}

func TestRunDetachPidFile(t *testing.T) {
	t.Parallel()
	bundle := testutil.Bundle(t, func(s *specs.Spec) { s.Process.Args = []string{"sleep", "1000"} })
	id := testutil.ID(t)
	pidFile := filepath.Join(t.TempDir(), "run.pid")
	out := cliMust(t, "run", "-d", "--pid-file", pidFile, "--bundle", bundle, id)
	if out != "" {
		t.Errorf("run -d printed %q", out)
	}
	st := cliGetState(t, id)
	if st.Status != "running" {
		t.Errorf("after run -d: status %q, want running", st.Status)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatalf("run -d --pid-file: %v", err)
	}
	if strings.TrimSpace(string(b)) != strconv.Itoa(st.Pid) {
		t.Errorf("pid file holds %q, state says pid %d", b, st.Pid)
	}
	start := cliKillOnCleanup(t, st.Pid)
	cliWaitFor(t, "the container to run sleep", func() bool { return cliCmdline(st.Pid) == "sleep 1000" })
	cliMust(t, "delete", "--force", id)
	if cliProcAlive(st.Pid, start) {
		t.Errorf("container process %d survived delete --force", st.Pid)
	}
	cliNothingLeft(t, id, bundle, "")
}

// TestCreatePidFile: create writes the init's pid, also to a path relative
// to the working directory.
func TestCreatePidFile(t *testing.T) {
	t.Parallel()
	bundle := testutil.Bundle(t, func(s *specs.Spec) { s.Process.Args = []string{"sleep", "1000"} })
	id := testutil.ID(t)
	cwd := t.TempDir()
	if _, errOut, code := cliRunIn(t, cwd, "create", "--pid-file", "rel.pid", "--bundle", bundle, id); code != 0 {
		t.Fatalf("create --pid-file: exit %d: %s", code, errOut)
	}
	st := cliGetState(t, id)
	b, err := os.ReadFile(filepath.Join(cwd, "rel.pid"))
	if err != nil {
		t.Fatalf("create --pid-file rel.pid: %v", err)
	}
	if strings.TrimSpace(string(b)) != strconv.Itoa(st.Pid) || st.Pid <= 0 {
		t.Errorf("pid file holds %q, state says pid %d", b, st.Pid)
	}
	cliMust(t, "delete", "-f", id)
}

func TestRunKeep(t *testing.T) {
	t.Parallel()
	bundle := testutil.Bundle(t, func(s *specs.Spec) { s.Process.Args = []string{"sh", "-c", "exit 2"} })
	id := testutil.ID(t)
	_, errOut, code := testutil.Run(t, "run", "--keep", "--bundle", bundle, id)
	if code != 2 {
		t.Errorf("run --keep: exit %d, want 2; stderr %s", code, errOut)
	}
	st := cliGetState(t, id)
	if st.Status != "stopped" || st.ID != id || st.Bundle != bundle {
		t.Errorf("state after run --keep: %+v, want a stopped container", st)
	}
	if q := strings.TrimSpace(cliMust(t, "list", "-q")); q != id {
		t.Errorf("list -q after run --keep: %q", q)
	}
	cliMust(t, "delete", id)
	cliNothingLeft(t, id, bundle, "")
}

func TestPreserveFDs(t *testing.T) {
	t.Parallel()
	file := func(content string) *os.File {
		f, err := os.CreateTemp(t.TempDir(), "fd")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		if _, err := f.WriteString(content); err != nil {
			t.Fatal(err)
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		return f
	}
	// The shell's own fds are looked at through /proc/$$: fd 3 and 4
	// are open only when passed.
	script := `for fd in 3 4; do if [ -e /proc/$$/fd/$fd ]; then echo "$fd: $(cat <&$fd)"; else echo "$fd: closed"; fi; done`
	t.Run("two", func(t *testing.T) {
		t.Parallel()
		bundle := testutil.Bundle(t, func(s *specs.Spec) { s.Process.Args = []string{"sh", "-c", script} })
		out, errOut, code := cliRunFG(t, []*os.File{file("first"), file("second")},
			"--preserve-fds", "2", "--bundle", bundle, testutil.ID(t))
		if code != 0 || out != "3: first\n4: second\n" {
			t.Errorf("run --preserve-fds 2: exit %d, container printed %q, want fd 3 and 4 readable; stderr %s", code, out, errOut)
		}
	})
	t.Run("one", func(t *testing.T) {
		t.Parallel()
		bundle := testutil.Bundle(t, func(s *specs.Spec) { s.Process.Args = []string{"sh", "-c", script} })
		out, errOut, code := cliRunFG(t, []*os.File{file("first"), file("second")},
			"--preserve-fds", "1", "--bundle", bundle, testutil.ID(t))
		if code != 0 || out != "3: first\n4: closed\n" {
			t.Errorf("run --preserve-fds 1: exit %d, container printed %q, want only fd 3; stderr %s", code, out, errOut)
		}
	})
	t.Run("none", func(t *testing.T) {
		t.Parallel()
		bundle := testutil.Bundle(t, func(s *specs.Spec) { s.Process.Args = []string{"sh", "-c", script} })
		out, errOut, code := cliRunFG(t, []*os.File{file("first")}, "--bundle", bundle, testutil.ID(t))
		if code != 0 || out != "3: closed\n4: closed\n" {
			t.Errorf("run without --preserve-fds: exit %d, container printed %q, want no fd leaked; stderr %s", code, out, errOut)
		}
	})
}

func TestConsoleSocket(t *testing.T) {
	t.Parallel()
	bundle := testutil.Bundle(t, func(s *specs.Spec) {
		s.Process.Terminal = true
		s.Process.Args = []string{"sh", "-c", `[ -t 0 ] && [ -t 1 ] && echo "on a tty: $(tty)"; echo console-done`}
	})
	id := testutil.ID(t)
	sock, ch := cliConsoleSocket(t)
	cliMust(t, "create", "--console-socket", sock, "--bundle", bundle, id)
	var master *os.File
	select {
	case c := <-ch:
		if c.err != nil {
			t.Fatalf("console socket: %v", c.err)
		}
		master = c.f
	case <-time.After(cliWait):
		t.Fatalf("create returned but no pty master arrived on the console socket")
	}
	defer master.Close()
	cliMust(t, "start", id)

	// Read until the container closes its side: EIO on the master.
	var got []byte
	readDone := make(chan error, 1)
	go func() {
		b, err := io.ReadAll(master)
		got = b
		readDone <- err
	}()
	select {
	case err := <-readDone:
		var pe *os.PathError
		if err != nil && !(errors.As(err, &pe) && errors.Is(pe.Err, syscall.EIO)) {
			t.Errorf("read pty master: %v", err)
		}
	case <-time.After(cliWait):
		master.Close()
		t.Fatalf("the container's output never ended on the pty")
	}
	out := strings.ReplaceAll(string(got), "\r\n", "\n")
	if !strings.Contains(out, "on a tty: /dev/") || !strings.Contains(out, "console-done\n") {
		t.Errorf("container printed %q on its console, want it on a tty", out)
	}
	cliWaitStatus(t, id, "stopped")
	cliMust(t, "delete", id)
}

func TestNoPivot(t *testing.T) {
	t.Parallel()
	bundle := testutil.Bundle(t, func(s *specs.Spec) {
		// The rootfs' own /etc/passwd, not the host's.
		s.Process.Args = []string{"sh", "-c", `grep ^user:x:1000: /etc/passwd && ls /bin/busybox`}
	})
	out, errOut, code := testutil.Run(t, "run", "--no-pivot", "--bundle", bundle, testutil.ID(t))
	if code != 0 || out != "user:x:1000:1000:user:/home/user:/bin/sh\n/bin/busybox\n" {
		t.Errorf("run --no-pivot: exit %d, stdout %q; stderr %s", code, out, errOut)
	}
}

// TestNoNewKeyring: the container gets a session keyring of its own, named
// _ses.<id> as runc names it, unless --no-new-keyring.
func TestNoNewKeyring(t *testing.T) {
	t.Parallel()
	keyring := func(t *testing.T, flags ...string) (string, string) {
		bundle := testutil.Bundle(t, func(s *specs.Spec) {
			// /proc/keys lists the keys the process may see.
			s.Linux.MaskedPaths = slices.DeleteFunc(s.Linux.MaskedPaths, func(p string) bool { return p == "/proc/keys" })
			s.Process.Args = []string{"cat", "/proc/keys"}
		})
		id := testutil.ID(t)
		out, errOut, code := testutil.Run(t, append(append([]string{"run"}, flags...), "--bundle", bundle, id)...)
		if code != 0 {
			t.Fatalf("run %q: exit %d: %s", flags, code, errOut)
		}
		return id, out
	}
	t.Run("new", func(t *testing.T) {
		t.Parallel()
		id, keys := keyring(t)
		if !cliHasKeyring(keys, id) {
			t.Errorf("no session keyring named %s in the container:\n%s", id, keys)
		}
	})
	t.Run("none", func(t *testing.T) {
		t.Parallel()
		id, keys := keyring(t, "--no-new-keyring")
		if cliHasKeyring(keys, id) {
			t.Errorf("--no-new-keyring: the container has a keyring named %s:\n%s", id, keys)
		}
	})
}

func cliHasKeyring(keys, name string) bool {
	for _, l := range strings.Split(keys, "\n") {
		f := strings.Fields(l)
		// id flags usage timeout perm uid gid type description: summary
		if len(f) >= 9 && f[7] == "keyring" && strings.TrimSuffix(f[8], ":") == "_ses."+name {
			return true
		}
	}
	return false
}

// trapScript reports each signal it gets: USR1 is noted, TERM ends it with 7.
const trapScript = "trap 'echo usr1' USR1; trap 'echo term; exit 7' TERM; echo ready; while :; do sleep 0.05; done"

// cliForwardsSignals starts cmd (a foreground run or exec of trapScript),
// signals the runmini process itself and checks the container process got
// each signal: runmini catches signals while it sets up, so this also
// checks it has caught them all by the time the process runs.
func cliForwardsSignals(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	out := cliTempFile(t)
	cmd.Stdout, cmd.Stderr = out, cliTempFile(t)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		select {
		case <-done:
		default:
			cmd.Process.Kill()
			<-done
		}
	})
	printed := func() string {
		b := make([]byte, 256)
		n, _ := out.ReadAt(b, 0)
		return string(b[:n])
	}
	cliWaitFor(t, "the process to set its traps", func() bool { return printed() == "ready\n" })
	if err := cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	cliWaitFor(t, "SIGUSR1 to reach the process", func() bool { return printed() == "ready\nusr1\n" })
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(cliWait):
		t.Fatalf("%v did not exit after SIGTERM; printed %q", cmd.Args, printed())
	}
	if code := cmd.ProcessState.ExitCode(); code != 7 || printed() != "ready\nusr1\nterm\n" {
		t.Errorf("%v: exit %d, printed %q; want 7 and ready, usr1, term", cmd.Args, code, printed())
	}
}

func TestRunForwardsSignals(t *testing.T) {
	t.Parallel()
	bundle := testutil.Bundle(t, func(s *specs.Spec) { s.Process.Args = []string{"sh", "-c", trapScript} })
	id := testutil.ID(t)
	cliForwardsSignals(t, testutil.Runtime(t).Command("run", "--bundle", bundle, id))
	cliNothingLeft(t, id, bundle, "")
}

func TestExecForwardsSignals(t *testing.T) {
	t.Parallel()
	id := execContainer(t)
	cliForwardsSignals(t, testutil.Runtime(t).Command("exec", id, "sh", "-c", trapScript))
}

// TestRunTermWhileCreating: a TERM at any moment of `run` either ends
// runmini before anything exists or is forwarded to the process once it
// runs; either way runmini ends with TERM's status and leaves nothing
// behind (the init is cloned before the state dir and the cgroup, and dies
// with runmini until it is created). The container shares the host's pid
// namespace: as pid 1 of its own, sleep would ignore a forwarded TERM.
func TestRunTermWhileCreating(t *testing.T) {
	t.Parallel()
	bundle := testutil.Bundle(t, func(s *specs.Spec) {
		s.Process.Args = []string{"sleep", "1000"}
		s.Linux.Namespaces = slices.DeleteFunc(s.Linux.Namespaces, func(ns specs.LinuxNamespace) bool { return ns.Type == specs.PIDNamespace })
	})
	for _, delay := range []time.Duration{0, time.Millisecond, 2 * time.Millisecond, 4 * time.Millisecond,
		7 * time.Millisecond, 11 * time.Millisecond, 16 * time.Millisecond, 25 * time.Millisecond, 40 * time.Millisecond} {
		id := testutil.ID(t)
		cmd := testutil.Runtime(t).Command("run", "--bundle", bundle, id)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(delay)
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-done
			t.Fatalf("TERM after %v: runmini still running after 20 s", delay)
		}
		ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
		killed := ws.Signaled() && ws.Signal() == syscall.SIGTERM
		if !killed && ws.ExitStatus() != 128+int(syscall.SIGTERM) {
			t.Errorf("TERM after %v: %v, want killed by TERM or exit 143", delay, cmd.ProcessState)
		}
		cliNothingLeft(t, id, bundle, "")
	}
}
