package libcontainer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func TestSyncRoundTrip(t *testing.T) {
	p, c, err := newSyncPair()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	defer c.Close()
	parent, child := &syncConn{f: p}, &syncConn{f: c}
	// A config far larger than a page must arrive whole.
	big := &specs.Spec{Process: &specs.Process{Env: []string{strings.Repeat("x", 200000)}}}
	if err := parent.send(&syncMsg{Type: msgConfig, Config: &initConfig{ID: "a", Spec: big}}); err != nil {
		t.Fatal(err)
	}
	var logged []string
	if err := child.send(&syncMsg{Type: msgLog, Log: []byte(`{"level":"INFO","msg":"hi"}`)}); err != nil {
		t.Fatal(err)
	}
	if err := child.send(&syncMsg{Type: msgReady}); err != nil {
		t.Fatal(err)
	}
	m, err := child.expect(msgConfig, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m.Config.ID != "a" || len(m.Config.Spec.Process.Env[0]) != 200000 {
		t.Fatalf("config mangled: id %q", m.Config.ID)
	}
	if _, err := parent.expect(msgReady, func(b json.RawMessage) { logged = append(logged, string(b)) }); err != nil {
		t.Fatal(err)
	}
	if len(logged) != 1 {
		t.Fatalf("log lines forwarded: %v", logged)
	}
	child.send(&syncMsg{Type: msgError, Error: "boom"})
	if _, err := parent.expect(msgOK, nil); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("error message not delivered: %v", err)
	}
	child.send(&syncMsg{Type: msgReady})
	if _, err := parent.expect(msgOK, nil); err == nil || !strings.Contains(err.Error(), "protocol") {
		t.Fatalf("unexpected message accepted: %v", err)
	}
	c.Close()
	if _, err := parent.expect(msgOK, nil); err == nil {
		t.Fatal("EOF not reported")
	}
}

func TestPlanNamespaces(t *testing.T) {
	ns := func(types ...specs.LinuxNamespaceType) *specs.Spec {
		s := &specs.Spec{Linux: &specs.Linux{}}
		for _, typ := range types {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: typ})
		}
		return s
	}
	p, err := planNamespaces(ns("pid", "mount", "network", "cgroup", "time"), false)
	if err != nil {
		t.Fatal(err)
	}
	if p.cloneFlags != unix.CLONE_NEWPID|unix.CLONE_NEWNS|unix.CLONE_NEWNET {
		t.Errorf("clone flags %#x", p.cloneFlags)
	}
	if p.initUnshare != unix.CLONE_NEWCGROUP|unix.CLONE_NEWTIME {
		t.Errorf("init unshare %#x", p.initUnshare)
	}
	p, _ = planNamespaces(ns("cgroup"), true)
	if p.cloneFlags != unix.CLONE_NEWCGROUP {
		t.Errorf("born in cgroup: cgroup ns should be cloned, flags %#x", p.cloneFlags)
	}
	if _, err := planNamespaces(ns("pid", "pid"), false); err == nil || !strings.Contains(err.Error(), "duplicate") {
		t.Errorf("duplicate namespace: %v", err)
	}
	if _, err := planNamespaces(ns("bogus"), false); err == nil || !strings.Contains(err.Error(), "unknown") {
		t.Errorf("unknown namespace: %v", err)
	}
	// Joining: the type of the file is checked.
	s := ns()
	s.Linux.Namespaces = []specs.LinuxNamespace{{Type: "network", Path: "/proc/self/ns/uts"}}
	if _, err := planNamespaces(s, false); err == nil || !strings.Contains(err.Error(), "not a network namespace") {
		t.Errorf("wrong namespace type accepted: %v", err)
	}
	s.Linux.Namespaces = []specs.LinuxNamespace{{Type: "network", Path: "/proc/self/ns/net"}, {Type: "user", Path: "/proc/self/ns/user"}, {Type: "mount"}}
	p, err = planNamespaces(s, false)
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	if got := strings.Join(p.joinNames, ","); got != "user,net" {
		t.Errorf("join order %s", got)
	}
	if p.cUnshare != unix.CLONE_NEWNS || p.cloneFlags != 0 {
		t.Errorf("joined user ns: new namespaces must be made inside it: clone %#x unshare %#x", p.cloneFlags, p.cUnshare)
	}
	env := strings.Join(p.nsenterEnv(7, 5), " ")
	if env != "_RUNMINI_NSPIPE=5 _RUNMINI_SETNS=7:user,8:net _RUNMINI_UNSHARE=131072" {
		t.Errorf("nsenter env %q", env)
	}
}

func TestProcStartTime(t *testing.T) {
	a, zombie, err := procStartTime(os.Getpid())
	if err != nil || zombie || a == 0 {
		t.Fatalf("own start time: %d %v %v", a, zombie, err)
	}
	p := &persisted{InitPid: os.Getpid(), InitStart: a}
	if !p.initAlive() {
		t.Error("self not alive")
	}
	p.InitStart++
	if p.initAlive() {
		t.Error("a different start time must mean a different process (recycled pid)")
	}
	p.InitPid = 0
	if p.initAlive() {
		t.Error("pid 0 alive")
	}
}

func TestStateRoundTripAndStatus(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "c1")
	os.Mkdir(dir, 0o700)
	start, _, _ := procStartTime(os.Getpid())
	st := &persisted{ID: "c1", Bundle: "/b", InitPid: os.Getpid(), InitStart: start, Config: &specs.Spec{Annotations: map[string]string{"a": "b"}}}
	if err := writeState(dir, st); err != nil {
		t.Fatal(err)
	}
	c, err := Load(root, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Status(); got != Running {
		t.Errorf("status %s, want running", got)
	}
	os.WriteFile(filepath.Join(dir, execSock), nil, 0o600)
	if got := c.Status(); got != Created {
		t.Errorf("status %s, want created", got)
	}
	c.st.InitStart++
	if got := c.State(); got.Status != Stopped || got.Pid != 0 || got.Annotations["a"] != "b" {
		t.Errorf("state %+v", got)
	}
	if _, err := Load(root, "nope"); err != ErrNotExist {
		t.Errorf("missing container: %v", err)
	}
	for _, bad := range []string{"", "..", "a/b"} {
		if _, err := Load(root, bad); err == nil {
			t.Errorf("id %q accepted", bad)
		}
	}
	list, err := List(root)
	if err != nil || len(list) != 1 {
		t.Errorf("list %v %v", list, err)
	}
}

func TestLookPath(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "prog")
	os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755)
	os.WriteFile(filepath.Join(dir, "noexec"), nil, 0o644)
	if p, err := lookPath("prog", []string{"PATH=/nonexistent:" + dir}); err != nil || p != exe {
		t.Errorf("lookPath: %q %v", p, err)
	}
	if _, err := lookPath("noexec", []string{"PATH=" + dir}); err == nil || !strings.Contains(err.Error(), "executable file not found in $PATH") {
		t.Errorf("non-executable: %v", err)
	}
	if _, err := lookPath(filepath.Join(dir, "missing"), nil); err == nil {
		t.Error("missing absolute path accepted")
	}
}

func BenchmarkWriteState(b *testing.B) {
	dir := b.TempDir()
	st := &persisted{ID: "bench", Bundle: "/bundle", Config: &specs.Spec{Process: &specs.Process{Args: []string{"true"}}}}
	for b.Loop() {
		if err := writeState(dir, st); err != nil {
			b.Fatal(err)
		}
	}
}
