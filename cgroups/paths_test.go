package cgroups

import (
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeSelfCgroup writes a /proc/self/cgroup stand-in.
func fakeSelfCgroup(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "cgroup")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPathResolution(t *testing.T) {
	const self = "9:name=systemd:/init.scope\n4:memory:/user/7\n3:cpuset:/\n1:cpu,cpuacct:/sys\n0::/session-3.scope\n"
	tests := []struct {
		name string
		mode Mode
		path string
		id   string
		// want maps Paths keys to directories relative to the fake root.
		want map[string]string
	}{
		{
			name: "absolute v1", mode: ModeV1, path: "/a/b",
			want: map[string]string{"memory": "memory/a/b", "cpu": "cpu/a/b", "cpuacct": "cpuacct/a/b", "cpuset": "cpuset/a/b", "name=systemd": "systemd/a/b"},
		},
		{
			name: "relative v1", mode: ModeV1, path: "a/b",
			want: map[string]string{"memory": "memory/user/7/a/b", "cpu": "cpu/sys/a/b", "cpuacct": "cpuacct/sys/a/b", "cpuset": "cpuset/a/b", "name=systemd": "systemd/init.scope/a/b"},
		},
		{
			name: "empty v1", mode: ModeV1, id: "c1",
			want: map[string]string{"memory": "memory/runmini/c1", "cpu": "cpu/runmini/c1", "cpuacct": "cpuacct/runmini/c1", "cpuset": "cpuset/runmini/c1", "name=systemd": "systemd/runmini/c1"},
		},
		{name: "absolute v2", mode: ModeV2, path: "/a/b", want: map[string]string{"": "a/b"}},
		{name: "relative v2", mode: ModeV2, path: "a", want: map[string]string{"": "session-3.scope/a"}},
		{name: "empty v2", mode: ModeV2, id: "c2", want: map[string]string{"": "runmini/c2"}},
		{
			name: "relative hybrid", mode: ModeHybrid, path: "x",
			want: map[string]string{"memory": "memory/user/7/x", "cpu": "cpu/sys/x", "cpuacct": "cpuacct/sys/x", "cpuset": "cpuset/x", "name=systemd": "systemd/init.scope/x", "": "unified/session-3.scope/x"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			for _, ctrl := range []string{"memory", "cpu", "cpuacct", "cpuset", "systemd", "unified"} {
				if err := os.Mkdir(filepath.Join(root, ctrl), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			m, err := New(Config{ID: tc.id, Path: tc.path, Root: root, Mode: tc.mode, selfCgroup: fakeSelfCgroup(t, self)})
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]string{}
			for k, v := range tc.want {
				want[k] = filepath.Join(root, v)
			}
			if got := m.Paths(); !maps.Equal(got, want) {
				t.Errorf("Paths() = %v\nwant %v", got, want)
			}
			// New changes nothing on disk.
			for _, dir := range want {
				if _, err := os.Stat(dir); !os.IsNotExist(err) {
					t.Errorf("New created %s", dir)
				}
			}
		})
	}
}

func TestInvalidPaths(t *testing.T) {
	tests := []struct {
		name, id, path string
		err            error
	}{
		{name: "dotdot", path: "../escape", err: ErrInvalidPath},
		{name: "inner dotdot", path: "/a/../b", err: ErrInvalidPath},
		{name: "double slash", path: "/a//b", err: ErrInvalidPath},
		{name: "trailing slash", path: "/a/", err: ErrInvalidPath},
		{name: "dot element", path: "a/./b", err: ErrInvalidPath},
		{name: "root", path: "/", err: ErrInvalidPath},
		{name: "dot", path: ".", err: ErrInvalidPath},
		{name: "nul", path: "/a\x00b", err: ErrInvalidPath},
		{name: "no path no id", err: ErrInvalidPath},
		{name: "id with slash", id: "a/b", err: ErrInvalidPath},
		{name: "id dotdot", id: "..", err: ErrInvalidPath},
		{name: "systemd", path: "system.slice:runmini:abc", err: ErrSystemd},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			if err := os.Mkdir(filepath.Join(root, "memory"), 0o755); err != nil {
				t.Fatal(err)
			}
			_, err := New(Config{ID: tc.id, Path: tc.path, Root: root, Mode: ModeV1, selfCgroup: fakeSelfCgroup(t, "1:memory:/\n")})
			if !errors.Is(err, tc.err) {
				t.Fatalf("New(%q) = %v, want %v", tc.path, err, tc.err)
			}
		})
	}
	t.Run("systemd message", func(t *testing.T) {
		_, err := New(Config{Path: "system.slice:runmini:abc", Root: t.TempDir(), Mode: ModeV2})
		if err == nil || !strings.Contains(err.Error(), "systemd cgroup driver requires systemd") {
			t.Errorf("New = %v", err)
		}
	})
	t.Run("relative without own entry", func(t *testing.T) {
		root := t.TempDir()
		if err := os.Mkdir(filepath.Join(root, "pids"), 0o755); err != nil {
			t.Fatal(err)
		}
		_, err := New(Config{Path: "rel", Root: root, Mode: ModeV1, selfCgroup: fakeSelfCgroup(t, "4:memory:/\n")})
		if !errors.Is(err, ErrInvalidPath) || !strings.Contains(err.Error(), "pids") {
			t.Errorf("New = %v, want a missing pids entry", err)
		}
	})
	t.Run("no hierarchy at all", func(t *testing.T) {
		_, err := New(Config{Path: "/x", Root: t.TempDir(), Mode: ModeV1})
		if !errors.Is(err, ErrControllerUnavailable) {
			t.Errorf("New = %v", err)
		}
	})
	t.Run("bad mode", func(t *testing.T) {
		if _, err := New(Config{Path: "/x", Root: t.TempDir(), Mode: Mode(42)}); err == nil {
			t.Error("New accepted Mode(42)")
		}
	})
}

func TestRelToMountRoot(t *testing.T) {
	// A hierarchy mounted from a sub-tree (a container without a cgroup
	// namespace) shows its own cgroup below the mount's root.
	got, err := relToMountRoot(nil, "/sys/fs/cgroup/memory", "/docker/abc")
	if err != nil || got != "docker/abc" {
		t.Errorf("rel with no mount info = %q, %v", got, err)
	}
}

func TestLoad(t *testing.T) {
	root := t.TempDir()
	for _, ctrl := range []string{"memory", "freezer", "unified"} {
		if err := os.Mkdir(filepath.Join(root, ctrl), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, mode := range []Mode{ModeV1, ModeHybrid, ModeV2} {
		t.Run(mode.String(), func(t *testing.T) {
			m, err := New(Config{Path: "/r/c", Root: root, Mode: mode})
			if err != nil {
				t.Fatal(err)
			}
			l, err := Load(m.Paths(), root)
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(l.Paths(), m.Paths()) {
				t.Errorf("Load(Paths()).Paths() = %v, want %v", l.Paths(), m.Paths())
			}
			if got := l.(*manager).mode; got != mode {
				t.Errorf("Load derived mode %v, want %v", got, mode)
			}
		})
	}
	bad := []map[string]string{
		nil,
		{"memory": "/etc"},
		{"memory": filepath.Join(root, "memory")},
		{"memory": filepath.Join(root, "memory/../../x")},
		{"memory": filepath.Join(root, "freezer/x")},
		{"memory": "rel/x"},
		{"bogus": filepath.Join(root, "bogus/x")},
		{"": root},
	}
	for i, paths := range bad {
		if _, err := Load(paths, root); !errors.Is(err, ErrInvalidPath) {
			t.Errorf("Load(bad[%d] %v) = %v, want ErrInvalidPath", i, paths, err)
		}
	}
	// With v1 paths the unified one must be in root/unified.
	if _, err := Load(map[string]string{"memory": filepath.Join(root, "memory/x"), "": filepath.Join(root, "x")}, root); !errors.Is(err, ErrInvalidPath) {
		t.Errorf("Load accepted a hybrid unified path outside %s/unified: %v", root, err)
	}
}

func TestHierarchies(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"memory", "cpu,cpuacct"} {
		if err := os.Mkdir(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for link, to := range map[string]string{"cpu": "cpu,cpuacct", "rdma": "missing", "misc": "pids"} {
		if err := os.Symlink(to, filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "pids"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	mounted := hierarchies(root)
	for name, want := range map[string]bool{
		"memory": true, "cpu,cpuacct": true, "cpu": true, // a symlink to a directory
		"pids": false, "misc": false, "rdma": false, "blkio": false, // a file, links to it or nowhere, absent
	} {
		if got := mounted(filepath.Join(root, name)); got != want {
			t.Errorf("%s: mounted = %v, want %v", name, got, want)
		}
	}
	// An unreadable root falls back to a stat per directory.
	if missing := hierarchies(filepath.Join(root, "none")); missing(filepath.Join(root, "memory")) != true {
		t.Error("fallback: memory not found")
	}
}
