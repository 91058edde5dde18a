package testutil

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/sys/mountinfo"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/runmini/runmini/libcontainer/seccomp"
)

// runcID is runc's rule for container ids.
var runcID = regexp.MustCompile(`^[\w+\-.]+$`)

func TestID(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 100; i++ {
		id := ID(t)
		if !runcID.MatchString(id) || id == "." || id == ".." {
			t.Fatalf("ID %q breaks runc's id rules", id)
		}
		if !strings.HasPrefix(id, "testid-") {
			t.Errorf("ID %q does not start with the test's name", id)
		}
		if seen[id] {
			t.Fatalf("ID %q returned twice", id)
		}
		seen[id] = true
	}
	t.Run("Sub test/with odd:chars..and a very long name that needs cutting", func(t *testing.T) {
		id := ID(t)
		if !regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`).MatchString(id) || len(id) > 49 {
			t.Errorf("ID %q: want at most 49 of [a-z0-9-], no dash at either end", id)
		}
	})
}

func TestIDPrefix(t *testing.T) {
	for name, want := range map[string]string{
		"TestX":                           "testx",
		"TestX/a_b":                       "testx-a-b",
		"Test//__x__":                     "test-x",
		"////":                            "test",
		strings.Repeat("a", 50) + "/tail": strings.Repeat("a", 35) + "-tail",
	} {
		if got := idPrefix(name); got != want {
			t.Errorf("idPrefix(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestParseStates(t *testing.T) {
	one := `{"ociVersion":"1.0.2","id":"a","pid":42,"status":"created","bundle":"/b"}`
	for _, tc := range []struct {
		out  string
		want []containerState
	}{
		{one + "\n", []containerState{{Version: "1.0.2", ID: "a", Pid: 42, Bundle: "/b"}}},
		{"[" + one + `,{"ociVersion":"1.0.2","id":"b","status":"stopped","bundle":"/c"}]`,
			[]containerState{{"1.0.2", "a", 42, "/b"}, {"1.0.2", "b", 0, "/c"}}},
		{"null\n", nil},
		{"", nil},
		{"ID  PID  STATUS\n", nil},
		{`{"id":"x","pid":1}`, nil}, // no ociVersion: not a state
		{`{"ociVersion":"1.0.2","id":`, nil},
	} {
		got := parseStates([]byte(tc.out))
		if len(got) != len(tc.want) {
			t.Errorf("parseStates(%q) = %+v, want %+v", tc.out, got, tc.want)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("parseStates(%q)[%d] = %+v, want %+v", tc.out, i, got[i], tc.want[i])
			}
		}
	}
}

func TestDeclaresModule(t *testing.T) {
	if !declaresModule([]byte("// x\nmodule github.com/runmini/runmini\n\ngo 1.26\n"), modulePath) {
		t.Error("module line not recognised")
	}
	if declaresModule([]byte("module github.com/runmini/runmini/tests\n"), modulePath) {
		t.Error("another module taken for runmini")
	}
}

func TestRuntimePathEnv(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "fake-runtime")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	notExec := filepath.Join(dir, "data")
	if err := os.WriteFile(notExec, nil, 0o644); err != nil {
		t.Fatal(err)
	}

	t.Setenv(RuntimeEnv, "")
	t.Setenv(BinaryEnv, bin)
	if got, err := RuntimePath(); err != nil || got != bin {
		t.Errorf("with %s: RuntimePath() = %q, %v; want %q", BinaryEnv, got, err, bin)
	}
	t.Setenv(BinaryEnv, notExec)
	if _, err := RuntimePath(); err == nil {
		t.Errorf("RuntimePath() accepted a file that is not executable")
	}
	t.Setenv(BinaryEnv, filepath.Join(dir, "missing"))
	if _, err := RuntimePath(); err == nil {
		t.Errorf("RuntimePath() accepted a missing binary")
	}
	// The oracle wins over the binary, and is looked up in PATH.
	t.Setenv("PATH", dir)
	t.Setenv(RuntimeEnv, "fake-runtime")
	if got, err := RuntimePath(); err != nil || got != bin {
		t.Errorf("with %s: RuntimePath() = %q, %v; want %q", RuntimeEnv, got, err, bin)
	}
}

func TestRootfs(t *testing.T) {
	dir := Rootfs(t)
	static, err := isStatic(filepath.Join(dir, "bin/busybox"))
	if err != nil || !static {
		t.Fatalf("bin/busybox: static=%v, %v", static, err)
	}
	for _, applet := range []string{"sh", "true", "sleep", "id", "cat"} {
		if target, err := os.Readlink(filepath.Join(dir, "bin", applet)); err != nil || target != "busybox" {
			t.Errorf("bin/%s -> %q, %v; want a link to busybox", applet, target, err)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, "tmp")); err != nil || fi.Mode()&os.ModeSticky == 0 || fi.Mode().Perm() != 0o777 {
		t.Errorf("tmp: %v, %v; want a sticky world-writable dir", fi.Mode(), err)
	}
	for _, d := range []string{"proc", "sys", "dev", "etc", "root"} {
		if fi, err := os.Stat(filepath.Join(dir, d)); err != nil || !fi.IsDir() {
			t.Errorf("%s: not a directory: %v", d, err)
		}
	}

	// The rootfs works on its own: resolve users and run applets chrooted.
	cmd := exec.Command("/bin/sh", "-c", "id user; id nobody; echo ok > /tmp/x && cat /tmp/x")
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/bin"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: dir}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("chrooted busybox sh: %v: %s", err, out)
	}
	if want := "uid=1000(user) gid=1000(user) groups=1000(user)\nuid=65534(nobody) gid=65534(nogroup) groups=65534(nogroup)\nok\n"; string(out) != want {
		t.Errorf("chrooted busybox sh printed %q, want %q", out, want)
	}
}

func TestBundle(t *testing.T) {
	dir := Bundle(t, func(s *specs.Spec) {
		s.Process.Args = []string{"sh", "-c", "exit 3"}
		s.Hostname = "mutated"
	})
	b, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s specs.Spec
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("config.json: %v", err)
	}
	if s.Process == nil || s.Process.Terminal || strings.Join(s.Process.Args, " ") != "sh -c exit 3" || s.Hostname != "mutated" {
		t.Errorf("config.json does not hold the mutated spec: %s", b)
	}
	if s.Root == nil || s.Root.Path != "rootfs" {
		t.Fatalf("root = %+v, want rootfs", s.Root)
	}
	if _, err := os.Stat(filepath.Join(dir, "rootfs/bin/sh")); err != nil {
		t.Errorf("bundle has no rootfs: %v", err)
	}
	if s.Linux == nil || len(s.Linux.Namespaces) == 0 {
		t.Errorf("spec has no namespaces: %s", b)
	}

	plain := Bundle(t, nil)
	b, err = os.ReadFile(filepath.Join(plain, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(`"args": [`+"\n\t\t\t\"true\"\n\t\t]")) {
		t.Errorf("default args are not [\"true\"]: %s", b)
	}
	// A container whose root is mapped to another uid must reach rootfs.
	for d := plain; d != filepath.Dir(filepath.Dir(plain)); d = filepath.Dir(d) {
		if fi, err := os.Stat(d); err != nil || fi.Mode().Perm()&0o001 == 0 {
			t.Errorf("%s is not searchable by others: %v %v", d, fi.Mode(), err)
		}
	}
}

// firstCgroupMount returns a cgroup hierarchy (v1 or v2) to make test
// cgroups in.
func firstCgroupMount(t *testing.T) string {
	t.Helper()
	points, err := cgroupMounts()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range points {
		if _, err := os.Stat(filepath.Join(p, "cgroup.procs")); err == nil {
			return p
		}
	}
	t.Skip("no cgroup hierarchy is mounted")
	return ""
}

// TestLeaks plants one of each kind of leak and checks that every one is
// reported and undone.
func TestLeaks(t *testing.T) {
	requireRoot(t)
	s := registry(t)
	id := ID(t)

	root := t.TempDir()
	stateDir := filepath.Join(root, id)
	if err := os.Mkdir(stateDir, 0o700); err != nil {
		t.Fatal(err)
	}

	bundle := t.TempDir()
	mnt := filepath.Join(bundle, "rootfs")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { _, _ = UnmountUnder(mnt) })
	s.addBundle(bundle)

	cg := filepath.Join(firstCgroupMount(t), "runmini-"+id)
	if err := os.Mkdir(cg, 0o755); err != nil {
		t.Fatalf("make cgroup: %v", err)
	}
	if err := os.Mkdir(filepath.Join(cg, "child"), 0o755); err != nil {
		t.Fatalf("make child cgroup: %v", err)
	}
	t.Cleanup(func() { _ = RemoveCgroup(cg) })

	sleep := exec.Command("sleep", "60")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sleep.Process.Kill(); _ = sleep.Wait() })
	s.addPid(sleep.Process.Pid)

	found := s.leaks(root, 100*time.Millisecond)
	want := []string{
		"state directory " + stateDir,
		"container process " + strconv.Itoa(sleep.Process.Pid),
		"mount " + mnt,
		"cgroup " + cg,
	}
	if len(found) != len(want) {
		t.Errorf("leaks() = %q, want %d findings", found, len(want))
	}
	for i, w := range want {
		if i >= len(found) || !strings.HasPrefix(found[i], w) {
			t.Errorf("finding %d: want %q in %q", i, w, found)
		}
	}

	if err := sleep.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("leaked process not killed: %v", err)
	}
	if mounted, err := isMountPoint(mnt); err != nil || mounted {
		t.Errorf("leaked mount %s still mounted (%v)", mnt, err)
	}
	if _, err := os.Stat(cg); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("leaked cgroup %s not removed: %v", cg, err)
	}
	// Nothing is found twice.
	if again := s.leaks(t.TempDir(), 0); len(again) != 0 {
		t.Errorf("second check found %q", again)
	}
}

func isMountPoint(dir string) (bool, error) {
	infos, err := mountinfo.GetMounts(mountinfo.SingleEntryFilter(dir))
	return len(infos) > 0, err
}

// TestRuntime drives a real container through the runtime under test and
// checks that the cleanup deletes what a test leaves running.
func TestRuntime(t *testing.T) {
	requireRoot(t)
	if _, err := RuntimePath(); err != nil {
		t.Fatalf("%v", err)
	}

	var pid int
	var id, root string
	t.Run("leave running", func(t *testing.T) {
		rt := Runtime(t)
		if Runtime(t) != rt {
			t.Fatal("Runtime returned a second handle for the same test")
		}
		root = rt.Root
		id = ID(t)
		bundle := Bundle(t, func(s *specs.Spec) { s.Process.Args = []string{"sleep", "1000"} })
		if out, errOut, code := Run(t, "create", "--bundle", bundle, id); code != 0 {
			t.Fatalf("create: exit %d: %s%s", code, out, errOut)
		}
		if _, err := os.Stat(filepath.Join(root, id)); err != nil {
			t.Errorf("--root not used: %v", err)
		}
		out, errOut, code := Run(t, "state", id)
		if code != 0 {
			t.Fatalf("state: exit %d: %s", code, errOut)
		}
		var st containerState
		if err := json.Unmarshal([]byte(out), &st); err != nil || st.Pid <= 0 {
			t.Fatalf("state printed %q: %v", out, err)
		}
		pid = st.Pid
		if _, _, code := Run(t, "start", id); code != 0 {
			t.Fatalf("start: exit %d", code)
		}
		if _, _, code := Run(t, "state", "no-such-"+id); code == 0 {
			t.Errorf("state of a missing container succeeded")
		}
		// Left running on purpose: the cleanup must delete it.
	})
	if pid == 0 {
		return
	}
	if _, ok := ProcStart(pid); ok {
		t.Errorf("container process %d survived the cleanup", pid)
	}
	if _, err := os.Stat(root); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("runtime root %s not removed: %v", root, err)
	}
	cgs, err := FindCgroups(func(name string) bool { return strings.Contains(name, id) })
	if err != nil || len(cgs) > 0 {
		t.Errorf("cgroups of %s left: %q %v", id, cgs, err)
	}
}

func TestSeccompCacheDirName(t *testing.T) {
	if SeccompCacheDir != seccomp.CacheDirName {
		t.Fatalf("SeccompCacheDir %q, libcontainer/seccomp keeps its programs in %q", SeccompCacheDir, seccomp.CacheDirName)
	}
}
