package libcontainer

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/runmini/runmini/libcontainer/seccomp"
	"github.com/runmini/runmini/spec/specjson"
)

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
	// The seccomp cache beside the containers is not one.
	if err := os.Mkdir(filepath.Join(root, seccomp.CacheDirName), 0o700); err != nil {
		t.Fatal(err)
	}
	list, err := List(root)
	if err != nil || len(list) != 1 {
		t.Errorf("list %v %v", list, err)
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

// state.json keeps the config as bytes until something needs it; the
// annotations are read without decoding the rest.
func TestStateConfigDecodedOnUse(t *testing.T) {
	dir := t.TempDir()
	cfg := &specs.Spec{Version: specs.Version, Hostname: "h", Annotations: map[string]string{"a": "b"},
		Hooks: &specs.Hooks{Poststop: []specs.Hook{{Path: "/bin/true"}}}}
	if err := writeState(dir, &persisted{ID: "c", Config: cfg}); err != nil {
		t.Fatal(err)
	}
	p, err := readState(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !p.hasConfig() || p.Config != nil {
		t.Fatalf("after readState: hasConfig %v, decoded %v", p.hasConfig(), p.Config != nil)
	}
	if a := p.annotations(); a["a"] != "b" || p.Config != nil {
		t.Errorf("annotations %v (config decoded: %v)", a, p.Config != nil)
	}
	if h := p.hooks(); h == nil || len(h.Poststop) != 1 || h.Poststop[0].Path != "/bin/true" || p.Config != nil {
		t.Errorf("hooks %+v (config decoded: %v)", h, p.Config != nil)
	}
	if s := p.spec(); s == nil || s.Hostname != "h" || p.spec() != s {
		t.Errorf("spec() = %+v", s)
	}

	// Valid JSON of the wrong shape: no config, no panic.
	bad := &persisted{ID: "c", RawConfig: []byte(`{"process": 5}`)}
	if bad.spec() != nil || bad.annotations() != nil || bad.hooks() != nil {
		t.Error("an undecodable config was used")
	}
	if (&persisted{RawConfig: []byte("null")}).hasConfig() || (&persisted{}).hasConfig() {
		t.Error("a null or missing config counts as one")
	}
}

// TestRemoveStateDir: the known files go without listing the directory;
// anything else (a temp file a crash left) the long way; a directory that
// is gone is not an error.
func TestRemoveStateDir(t *testing.T) {
	for _, files := range [][]string{
		{stateFile},
		{stateFile, execSock},
		{stateFile, "." + stateFile + ".123"},
		{},
	} {
		dir := filepath.Join(t.TempDir(), "c")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if err := removeStateDir(dir); err != nil {
			t.Fatalf("%v: %v", files, err)
		}
		if _, err := os.Lstat(dir); !os.IsNotExist(err) {
			t.Errorf("%v: state dir still there: %v", files, err)
		}
		if err := removeStateDir(dir); err != nil {
			t.Errorf("removing a removed dir: %v", err)
		}
	}
}

// state.json records CreateOpts.SpecJSON as it is, and spec() decodes it
// with the generated decoder, or encoding/json where that declines.
func TestStateConfigJSON(t *testing.T) {
	dir := t.TempDir()
	raw := []byte(`{"ociVersion": "1.2.0", "hostname": "h"}`)
	cfg := &specs.Spec{Version: "1.2.0", Hostname: "h"}
	if err := writeState(dir, &persisted{ID: "c", Config: cfg, configJSON: raw}); err != nil {
		t.Fatal(err)
	}
	p, err := readState(dir)
	if err != nil {
		t.Fatal(err)
	}
	if string(p.RawConfig) != `{"ociVersion":"1.2.0","hostname":"h"}` {
		t.Errorf("config recorded as %s", p.RawConfig)
	}
	if s := p.spec(); s == nil || !reflect.DeepEqual(s, cfg) {
		t.Errorf("spec() = %+v, want %+v", s, cfg)
	}
	// A key only encoding/json reads (folded case): the fallback.
	folded := &persisted{RawConfig: []byte(`{"Hostname": "h"}`)}
	if s := folded.spec(); s == nil || s.Hostname != "h" {
		t.Errorf("spec() of a case-folded key = %+v", s)
	}
}

// The init of an exec gets the process alone; a new container's init gets
// SpecJSON without seccomp and resources.
func TestInitSpecJSON(t *testing.T) {
	proc := &specs.Process{Args: []string{"sh", "-c", "x"}, Env: []string{"A=<&>"}, Cwd: "/w", User: specs.User{UID: 1, GID: 2, AdditionalGids: []uint32{3}},
		Capabilities: &specs.LinuxCapabilities{Bounding: []string{"CAP_KILL"}}, Rlimits: []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 9, Soft: 8}},
		NoNewPrivileges: true, Terminal: true, ConsoleSize: &specs.Box{Height: 1, Width: 2}}
	o := &CreateOpts{exec: true, Spec: &specs.Spec{Hostname: "x", Process: proc, Linux: &specs.Linux{Sysctl: map[string]string{"a": "b"}}}}
	s, ok := specjson.Decode(o.initSpecJSON())
	if !ok {
		t.Fatalf("exec: %s does not decode", o.initSpecJSON())
	}
	if !reflect.DeepEqual(s, &specs.Spec{Process: proc}) {
		t.Errorf("exec: the init gets %+v, want the process alone", s)
	}

	o = &CreateOpts{Spec: &specs.Spec{}, SpecJSON: []byte(`{"hostname":"h","linux":{"seccomp":{"defaultAction":"SCMP_ACT_ALLOW"},"resources":{"pids":{"limit":1}},"sysctl":{"a":"b"}}}`)}
	s, ok = specjson.Decode(o.initSpecJSON())
	if !ok || s.Hostname != "h" || s.Linux == nil || s.Linux.Seccomp != nil || s.Linux.Resources != nil || s.Linux.Sysctl["a"] != "b" {
		t.Errorf("create: the init gets %+v", s)
	}
	if (&CreateOpts{Spec: &specs.Spec{}}).initSpecJSON() != nil {
		t.Error("create without SpecJSON: JSON made up")
	}
}
