package spec

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func writeConfig(t testing.TB, bundle, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(bundle, ConfigFile), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLoad(t *testing.T) {
	tests := []struct {
		name    string
		content string
		wantErr []string
	}{
		{"good", `{"ociVersion":"1.0.2","process":{"args":["sh"],"cwd":"/"},"root":{"path":"rootfs"},"unknownField":1}`, nil},
		{"syntax", "{\n  \"ociVersion\": \"1.0.0\",\n  \"process\": {,\n}", []string{"parse config.json:", "invalid character ','", "line 3, column 15"}},
		{"truncated", `{"ociVersion": "1.0.0"`, []string{"parse config.json:", "unexpected end of JSON input"}},
		{"wrong type", "{\n\"process\": {\"args\": \"sh\"}}", []string{"parse config.json:", "field process.args", "cannot use JSON string", "line 2"}},
		{"trailing data", `{"ociVersion":"1.0.0"} {}`, []string{"parse config.json:", "after top-level value"}},
		{"null", `null`, []string{"parse config.json:", "not null"}},
		{"array", `[]`, []string{"parse config.json:", "cannot use JSON array"}},
		{"empty", ``, []string{"parse config.json:", "unexpected end of JSON input"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bundle := t.TempDir()
			writeConfig(t, bundle, tc.content)
			s, err := Load(bundle)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				if s.Version != "1.0.2" || s.Process.Args[0] != "sh" || s.Root.Path != "rootfs" {
					t.Fatalf("Load decoded %+v", s)
				}
				return
			}
			if err == nil {
				t.Fatalf("Load accepted %q", tc.content)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
			for _, want := range tc.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
		})
	}
}

// TestLoadJSON: the bytes come back only when specjson read them, and then
// they decode to the spec returned.
func TestLoadJSON(t *testing.T) {
	for _, tc := range []struct {
		name, content string
		raw           bool
	}{
		{"plain", `{"ociVersion":"1.0.2","process":{"args":["sh"],"cwd":"/"},"hostname":"h"}`, true},
		// Only encoding/json folds the case of keys, or knows what an
		// unknown key means to it (nothing).
		{"folded key", `{"ociVersion":"1.0.2","Hostname":"h"}`, false},
		{"unknown key", `{"ociVersion":"1.0.2","hostname":"h","unknownField":1}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bundle := t.TempDir()
			writeConfig(t, bundle, tc.content)
			s, raw, err := LoadJSON(bundle)
			if err != nil {
				t.Fatal(err)
			}
			if s.Hostname != "h" {
				t.Fatalf("decoded %+v", s)
			}
			if (raw != nil) != tc.raw {
				t.Fatalf("bytes returned: %v, want %v", raw != nil, tc.raw)
			}
			if raw != nil && string(raw) != tc.content {
				t.Fatalf("bytes %q, want the file's", raw)
			}
		})
	}
	if _, raw, err := LoadJSON(t.TempDir()); err == nil || raw != nil {
		t.Fatalf("missing config.json: %v, %q", err, raw)
	}
}

func TestLoadMissing(t *testing.T) {
	_, err := Load(t.TempDir())
	if err == nil || err.Error() != "JSON specification file config.json not found" {
		t.Fatalf("got %v, want runc's message", err)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("%v does not match fs.ErrNotExist", err)
	}
	bundle := t.TempDir()
	if err := os.Mkdir(filepath.Join(bundle, ConfigFile), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(bundle); err == nil || !strings.Contains(err.Error(), "config.json") {
		t.Fatalf("config.json directory: got %v", err)
	}
}

func TestPosition(t *testing.T) {
	data := []byte("ab\ncd\n\nef")
	for _, tc := range []struct {
		off       int64
		line, col int
	}{{0, 1, 1}, {2, 1, 2}, {3, 2, 1}, {5, 2, 2}, {7, 4, 1}, {9, 4, 2}, {100, 4, 2}, {-1, 1, 1}} {
		line, col := position(data, tc.off)
		if line != tc.line || col != tc.col {
			t.Errorf("position(%d) = %d:%d, want %d:%d", tc.off, line, col, tc.line, tc.col)
		}
	}
}

func TestValidateID(t *testing.T) {
	good := []string{"a", "abc", "A-b_c+d.e", "0", "...", "a..b", ".a", "a.", strings.Repeat("x", MaxIDLength)}
	for _, id := range good {
		if err := ValidateID(id); err != nil {
			t.Errorf("ValidateID(%q): %v", id, err)
		}
	}
	bad := []string{"", ".", "..", "/", "a/b", "../a", "a b", "a\x00", "é", "a:b", "a\n", "a*", strings.Repeat("x", MaxIDLength+1)}
	for _, id := range bad {
		err := ValidateID(id)
		if err == nil {
			t.Errorf("ValidateID(%q) accepted", id)
			continue
		}
		if !errors.Is(err, ErrInvalidID) || !strings.HasPrefix(err.Error(), "invalid container ID format") {
			t.Errorf("ValidateID(%q) = %v, want runc's ErrInvalidID", id, err)
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("ValidateID(%q): error is not one line: %q", id, err)
		}
	}
}

func TestSignalFromString(t *testing.T) {
	good := map[string]unix.Signal{
		"KILL": unix.SIGKILL, "SIGKILL": unix.SIGKILL, "sigkill": unix.SIGKILL, "kill": unix.SIGKILL, "Term": unix.SIGTERM,
		"9": unix.SIGKILL, "15": unix.SIGTERM, "0": 0, "64": 64, "SIGUSR1": unix.SIGUSR1, "hup": unix.SIGHUP,
		"WINCH": unix.SIGWINCH, "sigchld": unix.SIGCHLD, "STOP": unix.SIGSTOP,
	}
	for in, want := range good {
		got, err := SignalFromString(in)
		if err != nil || got != want {
			t.Errorf("SignalFromString(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"FOO", "", "SIG", "-1", "65", "9x", "SIGKILLX", " KILL"} {
		_, err := SignalFromString(in)
		if err == nil {
			t.Errorf("SignalFromString(%q) accepted", in)
			continue
		}
		if want := `unknown signal "` + in + `"`; err.Error() != want {
			t.Errorf("SignalFromString(%q) = %q, want %q", in, err, want)
		}
	}
}

func TestHasNamespaceAndRootfsPath(t *testing.T) {
	s := Default(false)
	setNS(s, specs.NetworkNamespace, "/run/netns/x")
	if p, ok := HasNamespace(s, specs.NetworkNamespace); !ok || p != "/run/netns/x" {
		t.Errorf("network: %q %v", p, ok)
	}
	if p, ok := HasNamespace(s, specs.PIDNamespace); !ok || p != "" {
		t.Errorf("pid: %q %v", p, ok)
	}
	if _, ok := HasNamespace(s, specs.TimeNamespace); ok {
		t.Error("time namespace reported")
	}
	if _, ok := HasNamespace(&specs.Spec{}, specs.PIDNamespace); ok {
		t.Error("namespace reported without linux section")
	}
	if _, ok := HasNamespace(nil, specs.PIDNamespace); ok {
		t.Error("namespace reported for nil spec")
	}

	bundle := newBundle(t)
	realBundle, err := filepath.EvalSymlinks(bundle)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("rootfs", filepath.Join(bundle, "link")); err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(realBundle, "rootfs")
	s.Root.Path = "link"
	if got := RootfsPath(s, bundle); got != want {
		t.Errorf("RootfsPath(link) = %q, want %q", got, want)
	}
	s.Root.Path = filepath.Join(bundle, "rootfs") + "/"
	if got := RootfsPath(s, "/elsewhere"); got != want {
		t.Errorf("RootfsPath(absolute) = %q, want %q", got, want)
	}
	t.Chdir(bundle)
	s.Root.Path = "rootfs"
	if got := RootfsPath(s, "."); got != want {
		t.Errorf("RootfsPath(relative bundle) = %q, want %q", got, want)
	}
	s.Root.Path = "missing/../x"
	if got := RootfsPath(s, bundle); got != filepath.Join(bundle, "x") {
		t.Errorf("RootfsPath(missing) = %q", got)
	}
	if got := RootfsPath(&specs.Spec{}, bundle); got != realBundle {
		t.Errorf("RootfsPath(no root) = %q, want %q", got, realBundle)
	}
}

// TestDefaultMatchesRunc compares Default with what `runc spec` (runc
// 1.1.5) writes on this kind of host, byte for byte after the version.
func TestDefaultMatchesRunc(t *testing.T) {
	for _, tc := range []struct {
		rootless bool
		golden   string
	}{{false, "testdata/runc-spec.json"}, {true, "testdata/runc-spec-rootless.json"}} {
		golden, err := os.ReadFile(tc.golden)
		if err != nil {
			t.Fatal(err)
		}
		var want specs.Spec
		if err := json.Unmarshal(golden, &want); err != nil {
			t.Fatal(err)
		}
		// The golden files were made as root on a host without cgroup v2
		// unified mode; adjust for the host running the test.
		if isCgroup2UnifiedMode() {
			want.Linux.Namespaces = append(want.Linux.Namespaces, specs.LinuxNamespace{Type: specs.CgroupNamespace})
			if tc.rootless {
				n := len(want.Linux.Namespaces)
				want.Linux.Namespaces[n-2], want.Linux.Namespaces[n-1] = want.Linux.Namespaces[n-1], want.Linux.Namespaces[n-2]
			}
		}
		if tc.rootless {
			want.Linux.UIDMappings[0].HostID = uint32(os.Geteuid())
			want.Linux.GIDMappings[0].HostID = uint32(os.Getegid())
		}
		wantJSON, err := json.MarshalIndent(&want, "", "\t")
		if err != nil {
			t.Fatal(err)
		}
		gotJSON, err := json.MarshalIndent(Default(tc.rootless), "", "\t")
		if err != nil {
			t.Fatal(err)
		}
		if string(gotJSON) != string(wantJSON) {
			t.Errorf("Default(%v) differs from runc spec:\ngot:  %s\nwant: %s", tc.rootless, gotJSON, wantJSON)
		}
		if !isCgroup2UnifiedMode() && !tc.rootless && string(gotJSON) != string(golden) {
			t.Errorf("Default(false) is not byte-identical to runc's output")
		}
	}
}

func TestDefaultRoundTrip(t *testing.T) {
	for _, rootless := range []bool{false, true} {
		bundle := newBundle(t)
		orig := Default(rootless)
		data, err := json.MarshalIndent(orig, "", "\t")
		if err != nil {
			t.Fatal(err)
		}
		writeConfig(t, bundle, string(data))
		loaded, err := Load(bundle)
		if err != nil {
			t.Fatalf("Load: %v", err)
		}
		if !reflect.DeepEqual(orig, loaded) {
			t.Errorf("Default(%v) changed in a JSON round trip:\n%+v\n%+v", rootless, orig, loaded)
		}
		if err := Validate(loaded, bundle); err != nil {
			t.Errorf("Default(%v) after round trip: %v", rootless, err)
		}
		if loaded.Version != specs.Version || loaded.Process.Args[0] != "sh" || !loaded.Process.Terminal {
			t.Errorf("Default(%v): unexpected basics %q %v %v", rootless, loaded.Version, loaded.Process.Args, loaded.Process.Terminal)
		}
		_, userNS := HasNamespace(loaded, specs.UserNamespace)
		_, netNS := HasNamespace(loaded, specs.NetworkNamespace)
		if userNS != rootless || netNS == rootless {
			t.Errorf("Default(%v): user namespace %v, network namespace %v", rootless, userNS, netNS)
		}
	}
	// Each call must return an independent spec.
	a, b := Default(false), Default(false)
	a.Process.Capabilities.Bounding[0] = "CAP_SYS_ADMIN"
	a.Mounts[0].Destination = "/changed"
	if b.Process.Capabilities.Bounding[0] != "CAP_AUDIT_WRITE" || b.Mounts[0].Destination != "/proc" {
		t.Error("Default results share memory")
	}
}

func TestFeatures(t *testing.T) {
	data, err := json.Marshal(Features())
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"ociVersionMin", "ociVersionMax", "hooks", "mountOptions", "linux", "annotations"} {
		if _, ok := got[key]; !ok {
			t.Errorf("features JSON lacks %q: %s", key, data)
		}
	}
	if got["ociVersionMin"] != "1.0.0" || got["ociVersionMax"] != specs.Version {
		t.Errorf("versions: %v %v", got["ociVersionMin"], got["ociVersionMax"])
	}
	linux, _ := got["linux"].(map[string]any)
	for _, key := range []string{"namespaces", "capabilities", "cgroup", "seccomp", "apparmor", "selinux", "intelRdt", "mountExtensions"} {
		if _, ok := linux[key]; !ok {
			t.Errorf("features JSON lacks linux.%s: %s", key, data)
		}
	}
	cg, _ := linux["cgroup"].(map[string]any)
	wantCgroup := map[string]any{"v1": true, "v2": true, "systemd": false, "systemdUser": false, "rdma": true}
	if !reflect.DeepEqual(cg, wantCgroup) {
		t.Errorf("linux.cgroup = %v, want %v", cg, wantCgroup)
	}
	if m, _ := linux["seccomp"].(map[string]any); m["enabled"] != true {
		t.Errorf("linux.seccomp.enabled = %v, want true", m["enabled"])
	}
	for _, key := range []string{"apparmor", "selinux", "intelRdt"} {
		if m, _ := linux[key].(map[string]any); m["enabled"] != false {
			t.Errorf("linux.%s.enabled = %v, want false", key, m["enabled"])
		}
	}
	me, _ := linux["mountExtensions"].(map[string]any)
	if idmap, _ := me["idmap"].(map[string]any); idmap["enabled"] != false {
		t.Errorf("linux.mountExtensions.idmap = %v", me["idmap"])
	}

	f := Features()
	if want := []string{"prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"}; !slices.Equal(f.Hooks, want) {
		t.Errorf("hooks = %v", f.Hooks)
	}
	if want := []string{"cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"}; !slices.Equal(f.Linux.Namespaces, want) {
		t.Errorf("namespaces = %v", f.Linux.Namespaces)
	}
	for _, c := range []string{"CAP_CHOWN", "CAP_SYS_ADMIN", "CAP_BPF", "CAP_CHECKPOINT_RESTORE"} {
		if !slices.Contains(f.Linux.Capabilities, c) {
			t.Errorf("capabilities lack %s", c)
		}
	}
	if len(f.MountOptions) != 48 || !slices.IsSorted(f.MountOptions) || len(slices.Compact(slices.Clone(f.MountOptions))) != 48 {
		t.Errorf("mountOptions = %v (%d)", f.MountOptions, len(f.MountOptions))
	}
	for _, o := range []string{"ro", "rbind", "rprivate", "rro", "rnostrictatime", "nostrictatime"} {
		if !slices.Contains(f.MountOptions, o) {
			t.Errorf("mountOptions lack %s", o)
		}
	}
	// Every namespace Features advertises must pass Validate.
	bundle := newBundle(t)
	s := Default(false)
	s.Linux.Namespaces = nil
	for _, ns := range f.Linux.Namespaces {
		setNS(s, specs.LinuxNamespaceType(ns), "")
	}
	withUserNS(s)
	if err := Validate(s, bundle); err != nil {
		t.Errorf("spec with every advertised namespace: %v", err)
	}
}

func BenchmarkLoadValidate(b *testing.B) {
	bundle := newBundle(b)
	data, err := json.MarshalIndent(Default(false), "", "\t")
	if err != nil {
		b.Fatal(err)
	}
	writeConfig(b, bundle, string(data))
	b.ReportAllocs()
	for b.Loop() {
		s, err := Load(bundle)
		if err != nil {
			b.Fatal(err)
		}
		if err := Validate(s, bundle); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkValidateID(b *testing.B) {
	ids := []string{"c1", "4b825dc642cb6eb9a060e54bf8d69288fbee4904-runmini.test_1+x", strings.Repeat("a", 256)}
	b.ReportAllocs()
	for b.Loop() {
		for _, id := range ids {
			if err := ValidateID(id); err != nil {
				b.Fatal(err)
			}
		}
	}
}
