// Package reaper waits for the processes a shim is responsible for: the
// containers' init and exec processes, and the orphans that the kernel
// hands to the shim as their subreaper.
//
// Each watched process is waited for through its own pidfd, parked in Go's
// netpoller (no thread per process), and reaped with wait4 on its exact
// pid. Nothing here ever calls wait4(-1): other children of the shim (hooks,
// logging binaries started with os/exec) are waited for by their own
// starters, and no exit can be taken from, or given to, the wrong owner.
// Orphans are reaped only outside a Hold (while a caller is starting a
// process it has not yet had the chance to Watch) and only once they have
// stayed zombies across two scans, which no owned child does: its owner is
// already blocked in wait for it.
package reaper

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Exit is how a process ended.
type Exit struct {
	Pid    int
	Status int // exit code, or 128+signal as containerd reports it
	At     time.Time
}

// ExitStatus converts a wait status the way containerd and runc report
// it: the exit code, or 128 plus the signal that killed the process.
func ExitStatus(ws unix.WaitStatus) int {
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// Reaper watches processes; see the package comment.
type Reaper struct {
	mu      sync.Mutex
	watched map[int]bool
	// zombies seen at the previous orphan scan that nobody owns.
	suspects map[int]bool
	// holds counts the starts in flight: their process may already be a
	// zombie child that is not watched yet.
	holds int
	sigs  chan os.Signal
	done  chan struct{}
}

// Start makes this process the subreaper of its descendants, so that a
// container process whose parent dies (the nsenter intermediate, a
// double-forked daemon in a container without a pid namespace) becomes our
// child, and starts the orphan scan on SIGCHLD.
func Start() (*Reaper, error) {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return nil, fmt.Errorf("become child subreaper: %w", err)
	}
	r := &Reaper{
		watched:  map[int]bool{},
		suspects: map[int]bool{},
		sigs:     make(chan os.Signal, 1),
		done:     make(chan struct{}),
	}
	signal.Notify(r.sigs, unix.SIGCHLD)
	go r.orphans()
	return r, nil
}

// Stop ends the orphan scan.
func (r *Reaper) Stop() {
	signal.Stop(r.sigs)
	close(r.done)
}

// Hold stops orphan reaping until the returned release is called. Callers
// hold across starting a process and calling Watch for it: a process that
// exits at once (or is reparented to us by an intermediate) must not be
// taken for an orphan in between.
func (r *Reaper) Hold() (release func()) {
	r.mu.Lock()
	r.holds++
	r.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			r.mu.Lock()
			r.holds--
			r.mu.Unlock()
			// Orphans that exited during the hold get their scan.
			select {
			case r.sigs <- unix.SIGCHLD:
			default:
			}
		})
	}
}

// Watch waits for pid, which must be a child of this process that nobody
// else waits for, and calls exited once with its exit. It returns an error
// when pid cannot be watched (it is not our child, or is already gone and
// reaped); exited is then never called.
func (r *Reaper) Watch(pid int, exited func(Exit)) error {
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		return fmt.Errorf("pidfd_open %d: %w", pid, err)
	}
	f := os.NewFile(uintptr(fd), "pidfd:"+strconv.Itoa(pid))
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return err
	}
	r.mu.Lock()
	r.watched[pid] = true
	r.mu.Unlock()
	go func() {
		defer f.Close()
		var ws unix.WaitStatus
		var werr error
		// The callback runs once at once, then each time the pidfd turns
		// readable (the process exited); false parks us in the poller.
		rerr := rc.Read(func(uintptr) bool {
			for {
				var got int
				got, werr = unix.Wait4(pid, &ws, unix.WNOHANG, nil)
				if werr == unix.EINTR {
					continue
				}
				return werr != nil || got == pid
			}
		})
		at := time.Now()
		r.mu.Lock()
		delete(r.watched, pid)
		r.mu.Unlock()
		if err := errors.Join(rerr, werr); err != nil {
			// Only a bug elsewhere (someone else reaped it) gets here;
			// report it as killed rather than never.
			slog.Error("wait for process", "pid", pid, "err", err)
			exited(Exit{Pid: pid, Status: 128 + int(unix.SIGKILL), At: at})
			return
		}
		exited(Exit{Pid: pid, Status: ExitStatus(ws), At: at})
	}()
	return nil
}

// orphans reaps zombie children that nobody watches and that were already
// zombies at the previous scan. Scans run on SIGCHLD and, while suspects
// remain, once a second.
func (r *Reaper) orphans() {
	tick := time.NewTicker(time.Second)
	tick.Stop()
	for {
		select {
		case <-r.done:
			tick.Stop()
			return
		case <-r.sigs:
		case <-tick.C:
		}
		if r.scan() {
			tick.Reset(time.Second)
		} else {
			tick.Stop()
		}
	}
}

func (r *Reaper) scan() (suspects bool) {
	zombies := zombieChildren()
	r.mu.Lock()
	defer r.mu.Unlock()
	next := map[int]bool{}
	for _, pid := range zombies {
		if r.watched[pid] {
			continue
		}
		if !r.suspects[pid] || r.holds > 0 {
			next[pid] = true
			continue
		}
		var ws unix.WaitStatus
		if got, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil); err == nil && got == pid {
			slog.Debug("reaped orphan", "pid", pid, "status", ExitStatus(ws))
		}
	}
	r.suspects = next
	return len(next) > 0
}

// zombieChildren lists this process's children (of every thread: a child
// belongs to the thread that forked it) that are zombies.
func zombieChildren() []int {
	tasks, _ := filepath.Glob("/proc/self/task/*/children")
	var out []int
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			pid, err := strconv.Atoi(f)
			if err != nil {
				continue
			}
			if isZombie(pid) {
				out = append(out, pid)
			}
		}
	}
	return out
}

func isZombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the command name, which is in parentheses and
	// may itself contain ") ".
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] == 'Z'
}
