package cgroups

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/runmini/runmini/cgroups/internal/cgtest"
)

func countFDs(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

// leakCheck records goroutines and fds now; the returned func checks
// both are back to that.
func leakCheck(t *testing.T) func() {
	t.Helper()
	g, fds := runtime.NumGoroutine(), countFDs(t)
	return func() {
		t.Helper()
		cgtest.WaitGoroutines(t, g)
		if n := countFDs(t); n != fds {
			t.Errorf("%d fds open, %d before the watcher", n, fds)
		}
	}
}

// expectEvents receives n events from w, failing after 30s.
func expectEvents(t *testing.T, w *OOMWatcher, n int) {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for i := 0; i < n; i++ {
		select {
		case _, ok := <-w.C:
			if !ok {
				t.Fatalf("C closed after %d of %d events (err %v)", i, n, w.Err())
			}
		case <-timeout:
			t.Fatalf("%d of %d OOM events after 30s", i, n)
		}
	}
}

// expectNoEvent checks nothing arrives on w.C for a while.
func expectNoEvent(t *testing.T, w *OOMWatcher, d time.Duration) {
	t.Helper()
	select {
	case _, ok := <-w.C:
		t.Errorf("unexpected event (open %v)", ok)
	case <-time.After(d):
	}
}

// expectClosed drains w.C until it is closed and returns the number of
// events that came first.
func expectClosed(t *testing.T, w *OOMWatcher, d time.Duration) int {
	t.Helper()
	timeout := time.After(d)
	n := 0
	for {
		select {
		case _, ok := <-w.C:
			if !ok {
				return n
			}
			n++
		case <-timeout:
			t.Fatalf("C still open after %v (%d events)", d, n)
		}
	}
}

// setOOMKill rewrites a stand-in memory.events in place. Numbers have a
// fixed width and are not truncated first, so a read racing the write
// sees either the old or the new count, as from the kernel.
func setOOMKill(t *testing.T, file string, n int) {
	t.Helper()
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := fmt.Fprintf(f, "low 0\nhigh 0\nmax 0\noom 0\noom_kill %06d\n", n); err != nil {
		t.Fatal(err)
	}
}

// TestOOMWatcherFakeV2 drives the v2 watcher with a stand-in
// memory.events: inotify works on a regular file as on cgroupfs.
func TestOOMWatcherFakeV2(t *testing.T) {
	root := t.TempDir()
	cgtest.FakeV2(t, root, "/ctr", cgtest.V2Controllers)
	events := filepath.Join(root, "ctr", "memory.events")
	setOOMKill(t, events, 3)
	m, err := New(Config{Path: "/ctr", Root: root, Mode: ModeV2})
	if err != nil {
		t.Fatal(err)
	}
	check := leakCheck(t)
	w, err := NewOOMWatcher(m)
	if err != nil {
		t.Fatal(err)
	}
	// Kills from before the watcher are not reported.
	expectNoEvent(t, w, 100*time.Millisecond)
	setOOMKill(t, events, 5)
	expectEvents(t, w, 2)
	// More kills than C holds, with nobody reading meanwhile: the
	// watcher keeps count and hands them all over.
	setOOMKill(t, events, 45)
	time.Sleep(200 * time.Millisecond)
	expectEvents(t, w, 40)
	expectNoEvent(t, w, 300*time.Millisecond)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if n := expectClosed(t, w, time.Second); n != 0 {
		t.Errorf("%d events after Close", n)
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if w.Err() != nil {
		t.Errorf("Err() = %v after Close", w.Err())
	}
	check()

	// The file going away (IN_IGNORED) stops the watcher by itself,
	// once it has handed over the events it still holds.
	check = leakCheck(t)
	w, err = NewOOMWatcher(m)
	if err != nil {
		t.Fatal(err)
	}
	setOOMKill(t, events, 85)
	expectEvents(t, w, 1) // the watcher has read the new count
	if err := os.Remove(events); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if n := expectClosed(t, w, 5*time.Second); n != 39 {
		t.Errorf("%d events before C closed, want the 39 held back", n)
	}
	if w.Err() != nil {
		t.Errorf("Err() = %v after removal", w.Err())
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	check()
}

func TestOOMWatcherUnavailable(t *testing.T) {
	root := t.TempDir()
	cgtest.FakeV2(t, root, "/ctr", "pids") // no memory.events
	m, err := New(Config{Path: "/ctr", Root: root, Mode: ModeV2})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewOOMWatcher(m); !errors.Is(err, ErrControllerUnavailable) {
		t.Errorf("v2 without memory: %v, want ErrControllerUnavailable", err)
	}
	m, err = New(Config{Path: "/gone", Root: root, Mode: ModeV2})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewOOMWatcher(m); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing cgroup: %v, want fs.ErrNotExist", err)
	}

	root = t.TempDir()
	cgtest.FakeV1(t, root, "/ctr", "memory")
	m, err = New(Config{Path: "/ctr", Root: root, Mode: ModeV1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewOOMWatcher(m); !errors.Is(err, ErrControllerUnavailable) {
		t.Errorf("v1 without memory: %v, want ErrControllerUnavailable", err)
	}
}

func requireV1Memory(t *testing.T) {
	t.Helper()
	cgtest.RequireRoot(t)
	if mode := hostMode(t); mode != ModeV1 && mode != ModeHybrid {
		t.Skipf("host cgroups are %v", mode)
	}
	if !isDir(hierarchyDir(defaultRoot, "memory")) {
		t.Skip("no v1 memory hierarchy")
	}
}

// TestHostOOMV1 makes a process exceed an 8 MiB limit and expects the
// watcher to report it.
func TestHostOOMV1(t *testing.T) {
	requireV1Memory(t)
	name := cgtest.UniqueName(t)
	mem := &specs.LinuxMemory{Limit: cgtest.Ptr(int64(8 << 20))}
	if exists(filepath.Join(hierarchyDir(defaultRoot, "memory"), "memory.memsw.limit_in_bytes")) {
		// With swap the helper would be swapped out rather than killed.
		mem.Swap = cgtest.Ptr(int64(8 << 20))
	}
	m, err := New(Config{Path: "/" + name, Resources: &specs.LinuxResources{Memory: mem}})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Create(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Destroy() })

	check := leakCheck(t)
	w := watchOOMKill(t, m)
	oc, err := (cgroupFiles{}).readKeyed(m.Paths()["memory"], "memory.oom_control")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("memory.oom_control after the kill: %v", oc)
	if n, _ := strconv.Atoi(oc["oom_kill"]); n < 1 {
		t.Errorf("oom_kill = %q after an OOM kill", oc["oom_kill"])
	}

	// Removing the cgroup signals the eventfd once more: the watcher
	// must not take it for an OOM, and stops by itself.
	if err := m.Destroy(); err != nil {
		t.Fatal(err)
	}
	extra := expectClosed(t, w, 10*time.Second)
	t.Logf("%d more OOM notification(s) after the first", extra)
	if w.Err() != nil {
		t.Errorf("Err() = %v", w.Err())
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	check()
}

// TestHostOOMV1Quiet: no OOM, no event, whether the watcher is closed
// while the cgroup lives or the cgroup is removed under it.
func TestHostOOMV1Quiet(t *testing.T) {
	requireV1Memory(t)
	m, err := New(Config{Path: "/" + cgtest.UniqueName(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Create(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Destroy() })

	check := leakCheck(t)
	w, err := NewOOMWatcher(m)
	if err != nil {
		t.Fatal(err)
	}
	expectNoEvent(t, w, 100*time.Millisecond)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if n := expectClosed(t, w, time.Second); n != 0 {
		t.Errorf("%d events", n)
	}
	check()

	check = leakCheck(t)
	w, err = NewOOMWatcher(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Destroy(); err != nil {
		t.Fatal(err)
	}
	if n := expectClosed(t, w, 10*time.Second); n != 0 {
		t.Errorf("cgroup removal reported as %d OOM event(s)", n)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	check()
	if _, err := NewOOMWatcher(m); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("watcher on a removed cgroup: %v, want fs.ErrNotExist", err)
	}
}

// TestHostOOMV2 runs on the host's cgroup2 hierarchy. Where it offers no
// memory controller (the unified mount of a hybrid host), the watcher
// must say so; otherwise a process exceeding memory.max must be reported.
func TestHostOOMV2(t *testing.T) {
	cgtest.RequireRoot(t)
	root := defaultRoot
	switch hostMode(t) {
	case ModeHybrid:
		root = unifiedRoot(defaultRoot, ModeHybrid)
	case ModeV2:
	default:
		t.Skip("host has no cgroup2 hierarchy")
	}
	avail, err := cgroupFiles{}.availableV2(root)
	if err != nil {
		t.Fatal(err)
	}
	res := &specs.LinuxResources{}
	if avail["memory"] {
		res.Memory = &specs.LinuxMemory{Limit: cgtest.Ptr(int64(8 << 20)), Swap: cgtest.Ptr(int64(8 << 20))}
	}
	m, err := New(Config{Path: "/" + cgtest.UniqueName(t), Root: root, Mode: ModeV2, Resources: res})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Create(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Destroy() })
	if !avail["memory"] {
		if _, err := NewOOMWatcher(m); !errors.Is(err, ErrControllerUnavailable) {
			t.Errorf("cgroup2 without memory: %v, want ErrControllerUnavailable", err)
		}
		return
	}

	check := leakCheck(t)
	w := watchOOMKill(t, m)
	// One kill, one event: v2 counts oom_kill.
	expectNoEvent(t, w, 200*time.Millisecond)
	if err := m.Destroy(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if n := expectClosed(t, w, time.Second); n != 0 {
		t.Errorf("%d events after Close", n)
	}
	check()
}

// watchOOMKill watches m, moves in a process that allocates past m's
// memory limit, and checks the watcher reported one OOM and the kernel
// killed the process.
func watchOOMKill(t *testing.T, m Manager) *OOMWatcher {
	t.Helper()
	w, err := NewOOMWatcher(m)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Close() })
	a := cgtest.StartAllocator(t, 64<<20)
	if err := m.Apply(a.Pid()); err != nil {
		t.Fatal(err)
	}
	a.Allocate(t, false)
	expectEvents(t, w, 1)
	_ = a.Cmd.Wait()
	if ws, ok := a.Cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Errorf("helper ended with %v, want killed by SIGKILL", a.Cmd.ProcessState)
	}
	return w
}

// TestHelperAllocator is not a test: it is the process
// cgtest.StartAllocator runs.
func TestHelperAllocator(t *testing.T) { cgtest.AllocatorMain(t) }
