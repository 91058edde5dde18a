package shim

import (
	"context"
	"fmt"
	"sync"
	"time"

	tasktypes "github.com/containerd/containerd/api/types/task"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/runmini/runmini/reaper"
)

// procState is where a process is in its life. Every request checks it
// under the process's lock; a request in the wrong state is a
// FailedPrecondition, never a panic.
type procState int

const (
	stateCreated procState = iota // exists, not started (init: container created; exec: only a request so far)
	stateRunning
	statePaused // init only: the container is frozen
	stateStopped
	stateDeleted
)

func (s procState) String() string {
	return [...]string{"created", "running", "paused", "stopped", "deleted"}[s]
}

func (s procState) api() tasktypes.Status {
	return [...]tasktypes.Status{tasktypes.Status_CREATED, tasktypes.Status_RUNNING, tasktypes.Status_PAUSED, tasktypes.Status_STOPPED, tasktypes.Status_STOPPED}[s]
}

// process is a task's init or one of its execs.
//
// mu is held for the whole of each state change, including the event it
// publishes: an exit observed while a Create or Start is still in flight
// waits for that request's event to be queued first, so containerd always
// sees create/start before the exit, and never loses the exit.
type process struct {
	id     string // exec id; the container id for the init
	execID string // "" for the init

	mu    sync.Mutex
	state procState
	pid   int
	// pidfd is held from start until the exit has been handled, so a
	// signal can never reach a recycled pid.
	pidfd  int
	stdio  *stdio
	cfg    stdioConfig
	spec   *specs.Process // exec only
	exit   reaper.Exit
	exited chan struct{} // closed once exit is set and published
}

func newProcess(id, execID string, cfg stdioConfig) *process {
	return &process{id: id, execID: execID, cfg: cfg, pidfd: -1, exited: make(chan struct{})}
}

// setPid records the started process and opens its pidfd. Called with mu
// held, before the process can have been reaped (only its watcher reaps).
func (p *process) setPid(pid int) error {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return fmt.Errorf("pidfd_open %d: %w", pid, err)
	}
	p.pid, p.pidfd = pid, fd
	return nil
}

// signal sends sig to the process itself. Called with mu held.
func (p *process) signal(sig unix.Signal) error {
	if p.state == stateStopped || p.state == stateDeleted || p.pidfd < 0 {
		return fmt.Errorf("process already finished: %w", errdefs.ErrNotFound)
	}
	if err := unix.PidfdSendSignal(p.pidfd, sig, nil, 0); err != nil {
		if err == unix.ESRCH {
			return fmt.Errorf("process already finished: %w", errdefs.ErrNotFound)
		}
		return fmt.Errorf("signal %d to pid %d: %w", sig, p.pid, err)
	}
	return nil
}

// setExited moves the process to stopped. Called with mu held.
func (p *process) setExited(e reaper.Exit) {
	p.exit = e
	p.state = stateStopped
	if p.pidfd >= 0 {
		unix.Close(p.pidfd)
		p.pidfd = -1
	}
	close(p.exited)
}

// wait blocks until the process has exited (or ctx ends).
func (p *process) wait(ctx context.Context) (reaper.Exit, error) {
	select {
	case <-p.exited:
	case <-ctx.Done():
		return reaper.Exit{}, ctx.Err()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exit, nil
}

func (p *process) isExited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// drainIO lets a terminal's last output reach its reader before a Delete
// goes on (at most d). Called without mu.
func (p *process) drainIO(d time.Duration) {
	if s := p.getStdio(); s != nil {
		s.drain(d)
	}
}

// getStdio is the process's IO, nil before it started. Called without mu.
func (p *process) getStdio() *stdio {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stdio
}

// closeStdio releases the IO once the process is gone (the output copies of
// a terminal finish first). Called without mu.
func (p *process) closeStdio() {
	if s := p.getStdio(); s != nil {
		s.exited()
	}
}
