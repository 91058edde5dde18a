package reaper

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func startReleased(t *testing.T, script string) int {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", script)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	// Released: os/exec no longer waits for it; the reaper must.
	cmd.Process.Release()
	return pid
}

func TestWatchDeliversEachExitToItsOwner(t *testing.T) {
	r, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Stop()
	const n = 20
	var mu sync.Mutex
	got := map[int]Exit{}
	want := map[int]int{}
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		code := i
		script := "exit " + strconv.Itoa(code)
		if i%5 == 4 {
			script = "kill -9 $$"
			code = 137
		}
		pid := startReleased(t, script)
		want[pid] = code
		wg.Add(1)
		if err := r.Watch(pid, func(e Exit) {
			mu.Lock()
			got[pid] = e
			mu.Unlock()
			wg.Done()
		}); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	for pid, code := range want {
		e := got[pid]
		if e.Pid != pid || e.Status != code || e.At.IsZero() {
			t.Errorf("pid %d: got %+v, want status %d", pid, e, code)
		}
	}
}

// A process that exited before Watch was called is still a zombie (only its
// watcher reaps it), so its exit is not lost.
func TestWatchAfterExit(t *testing.T) {
	r, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Stop()
	pid := startReleased(t, "exit 7")
	for !isZombie(pid) {
		time.Sleep(time.Millisecond)
	}
	// Two orphan scans would take it if it were unowned; it is watched
	// before the first one could even count it twice.
	ch := make(chan Exit, 1)
	if err := r.Watch(pid, func(e Exit) { ch <- e }); err != nil {
		t.Fatal(err)
	}
	if e := <-ch; e.Status != 7 {
		t.Fatalf("status %d, want 7", e.Status)
	}
}

// A grandchild whose parent exits is handed to us (subreaper) and reaped.
func TestOrphansAreReaped(t *testing.T) {
	r, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Stop()
	cmd := exec.Command("/bin/sh", "-c", "sleep 0.2 & echo $!")
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	orphan, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat("/proc/" + strconv.Itoa(orphan)); err != nil {
			return // gone: reaped
		}
		if time.Now().After(deadline) {
			t.Fatalf("orphan %d was never reaped", orphan)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestExitStatus(t *testing.T) {
	r, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Stop()
	pid := startReleased(t, "kill -TERM $$")
	ch := make(chan Exit, 1)
	if err := r.Watch(pid, func(e Exit) { ch <- e }); err != nil {
		t.Fatal(err)
	}
	if e := <-ch; e.Status != 143 {
		t.Fatalf("status %d, want 143", e.Status)
	}
}

// While a Hold is in force, an unwatched zombie child (a process whose
// starter has not called Watch yet) is left for its Watch.
func TestHoldKeepsZombieForWatch(t *testing.T) {
	r, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Stop()
	release := r.Hold()
	pid := startReleased(t, "exit 4")
	for !isZombie(pid) {
		time.Sleep(time.Millisecond)
	}
	// Many SIGCHLD-driven scans: without the hold, the second one reaps.
	for i := 0; i < 5; i++ {
		r.scan()
	}
	ch := make(chan Exit, 1)
	if err := r.Watch(pid, func(e Exit) { ch <- e }); err != nil {
		t.Fatalf("watch after scans: %v", err)
	}
	release()
	if e := <-ch; e.Status != 4 {
		t.Fatalf("status %d, want 4", e.Status)
	}
}
