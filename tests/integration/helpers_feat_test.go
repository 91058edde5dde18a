package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/runmini/runmini/tests/testutil"
)

// This file holds the helpers of the feature tests (features_test.go,
// hooks_test.go, cgroups_test.go). Their names start with "feat" so they
// cannot collide with helpers other test files of this package declare.

// featShell returns a mutate function that makes the container run script
// with busybox sh and then applies more, when not nil.
func featShell(script string, more func(*specs.Spec)) func(*specs.Spec) {
	return func(s *specs.Spec) {
		s.Process.Args = []string{"sh", "-c", script}
		if more != nil {
			more(s)
		}
	}
}

// featRun runs a container made from a bundle with mutate applied, with
// `run` in the foreground, and returns what it printed on stdout. A
// non-zero exit fails the test with everything the runtime printed.
func featRun(t *testing.T, mutate func(*specs.Spec)) string {
	t.Helper()
	return featRunBundle(t, testutil.Bundle(t, mutate))
}

// featRunBundle is featRun for a bundle the test made itself.
func featRunBundle(t *testing.T, bundle string, extra ...string) string {
	t.Helper()
	args := append([]string{"run", "--bundle", bundle}, extra...)
	args = append(args, testutil.ID(t))
	out, errOut, code := testutil.Run(t, args...)
	if code != 0 {
		t.Fatalf("run: exit status %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	return out
}

// featScript runs script in a container (see featRun) and returns its
// stdout.
func featScript(t *testing.T, script string, more func(*specs.Spec)) string {
	t.Helper()
	return featRun(t, featShell(script, more))
}

// featState is the part of `state` output the tests use.
type featState struct {
	ID          string            `json:"id"`
	Pid         int               `json:"pid"`
	Status      string            `json:"status"`
	Bundle      string            `json:"bundle"`
	Annotations map[string]string `json:"annotations"`
}

// featCreate creates a container from bundle under a fresh id and returns
// the id and the state `state` reports for it.
func featCreate(t *testing.T, bundle string) (string, featState) {
	t.Helper()
	id := testutil.ID(t)
	if out, errOut, code := testutil.Run(t, "create", "--bundle", bundle, id); code != 0 {
		t.Fatalf("create: exit status %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	return id, featGetState(t, id)
}

func featGetState(t *testing.T, id string) featState {
	t.Helper()
	out, errOut, code := testutil.Run(t, "state", id)
	if code != 0 {
		t.Fatalf("state %s: exit status %d: %s", id, code, errOut)
	}
	var st featState
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("state %s printed %q: %v", id, out, err)
	}
	return st
}

// featMust runs a runtime command that must succeed.
func featMust(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, code := testutil.Run(t, args...)
	if code != 0 {
		t.Fatalf("%s: exit status %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// featLines splits output into trimmed lines, dropping empty ones.
func featLines(out string) []string {
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

// featSection returns the lines of out between a line "== name" and the
// next "== " line: scripts print several files, each after such a header.
func featSection(out, name string) string {
	var b strings.Builder
	in := false
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "== ") {
			in = strings.TrimSpace(strings.TrimPrefix(l, "== ")) == name
			continue
		}
		if in {
			b.WriteString(l)
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// featMount is one line of /proc/PID/mountinfo.
type featMount struct {
	Root, Point string
	Opts        map[string]bool // per-mount options
	Optional    []string        // shared:N, master:N, unbindable
	FSType      string
	Source      string
	Super       map[string]string // superblock options
}

func featParseMountinfo(t *testing.T, text string) []featMount {
	t.Helper()
	var ms []featMount
	for _, l := range featLines(text) {
		f := strings.Fields(l)
		sep := -1
		for i, x := range f {
			if x == "-" {
				sep = i
				break
			}
		}
		if len(f) < 6 || sep < 6 || len(f) < sep+3 {
			t.Fatalf("not a mountinfo line: %q", l)
		}
		m := featMount{
			Root: f[3], Point: unescapeMount(f[4]), Opts: map[string]bool{},
			Optional: f[6:sep], FSType: f[sep+1], Source: f[sep+2], Super: map[string]string{},
		}
		for _, o := range strings.Split(f[5], ",") {
			m.Opts[o] = true
		}
		if len(f) > sep+3 {
			for _, o := range strings.Split(f[sep+3], ",") {
				k, v, _ := strings.Cut(o, "=")
				m.Super[k] = v
			}
		}
		ms = append(ms, m)
	}
	return ms
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// featFindMount returns the topmost mount at point (the last one listed).
func featFindMount(t *testing.T, ms []featMount, point string) featMount {
	t.Helper()
	var found *featMount
	for i := range ms {
		if ms[i].Point == point {
			found = &ms[i]
		}
	}
	if found == nil {
		var points []string
		for _, m := range ms {
			points = append(points, m.Point)
		}
		t.Fatalf("no mount at %s; mounts: %q", point, points)
	}
	return *found
}

// hasOptional reports whether one of the optional fields starts with
// prefix ("shared:", "master:", "unbindable").
func (m featMount) hasOptional(prefix string) bool {
	for _, o := range m.Optional {
		if strings.HasPrefix(o, prefix) {
			return true
		}
	}
	return false
}

// featStatusField returns the value of field name in /proc/PID/status text.
func featStatusField(t *testing.T, status, name string) string {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(status))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && k == name {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no %s in status:\n%s", name, status)
	return ""
}

// featHostCgroupDirs maps every controller (v1 names, "" for the cgroup2
// hierarchy) to pid's cgroup directory on the host, from /proc/PID/cgroup
// as the host sees it. Co-mounted controllers (cpu,cpuacct) appear under
// each name.
func featHostCgroupDirs(t *testing.T, pid int) map[string]string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatalf("read cgroup of container init %d: %v", pid, err)
	}
	dirs := map[string]string{}
	for _, l := range featLines(string(b)) {
		parts := strings.SplitN(l, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[1] == "" {
			dirs[""] = filepath.Join("/sys/fs/cgroup/unified", parts[2])
			if _, err := os.Stat("/sys/fs/cgroup/unified"); err != nil {
				dirs[""] = filepath.Join("/sys/fs/cgroup", parts[2])
			}
			continue
		}
		mnt := strings.TrimPrefix(parts[1], "name=")
		for _, c := range strings.Split(parts[1], ",") {
			dirs[c] = filepath.Join("/sys/fs/cgroup", mnt, parts[2])
		}
	}
	return dirs
}

// featReadCgroup reads one cgroup file, trimmed.
func featReadCgroup(t *testing.T, dir, file string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		t.Fatalf("read cgroup file: %v", err)
	}
	return strings.TrimSpace(string(b))
}

// featStartHolder starts `unshare <flags> sleep` on the host to hold new
// namespaces, and returns its pid; it is killed by pid when t ends.
func featStartHolder(t *testing.T, flags ...string) int {
	t.Helper()
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Fatalf("unshare (util-linux) is needed: %v", err)
	}
	// --fork would leave sleep as a grandchild; without it unshare execs
	// sleep itself, so the pid we kill holds the namespaces.
	cmd := exec.Command("unshare", append(flags, "sleep", "600")...)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start namespace holder: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	pid := cmd.Process.Pid
	// unshare execs sleep once the namespaces exist; wait for that.
	self, _ := os.Readlink("/proc/self/ns/net")
	for i := 0; ; i++ {
		exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		ns, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid))
		if strings.HasSuffix(exe, "/sleep") && (ns != self || !containsFlag(flags, "--net")) {
			return pid
		}
		if i > 5000 {
			t.Fatalf("namespace holder %d never became sleep (exe %q)", pid, exe)
		}
		time.Sleep(time.Millisecond)
	}
}

func containsFlag(flags []string, f string) bool {
	for _, x := range flags {
		if x == f {
			return true
		}
	}
	return false
}

// featPause is one step of a polling loop.
func featPause() { time.Sleep(5 * time.Millisecond) }
