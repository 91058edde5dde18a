package libcontainer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/runmini/runmini/libcontainer/hooks"
	"github.com/runmini/runmini/libcontainer/internal/syncp"
)

// Start releases a created container's init: prestart hooks (runtime
// namespace, after start was called and before the process runs), then the
// init runs startContainer hooks and executes the process, then poststart.
// A container that Create released already (CreateOpts.StartNow) only
// gets its poststart hooks.
func (c *Container) Start(ctx context.Context) error {
	if c.startNow {
		c.startNow = false
		syncp.Phase("start: process executed")
		c.poststart(ctx)
		return nil
	}
	switch c.Status() {
	case Created:
	case Stopped:
		return ErrStopped
	case Creating:
		return fmt.Errorf("container %s is still being created", c.st.ID)
	default:
		return ErrRunning
	}
	h := c.st.hooks()
	if h != nil && len(h.Prestart) > 0 {
		if err := hooks.RunAll(ctx, "prestart", h.Prestart, c.specState(Created)); err != nil {
			// The spec: stop the container and go on to delete.
			c.kill(unix.SIGKILL)
			c.Delete(ctx, true)
			return err
		}
	}
	syncp.Phase("start: prestart hooks done")
	if err := c.release(); err != nil {
		return err
	}
	syncp.Phase("start: process executed")
	c.poststart(ctx)
	return nil
}

// poststart runs the poststart hooks; their failure is only logged.
func (c *Container) poststart(ctx context.Context) {
	if h := c.st.hooks(); h != nil {
		runWarn(ctx, "poststart", h.Poststart, c.specState(Running))
	}
}

// release connects to the init's exec.sock and waits until the init has
// executed the container process (EOF) or reports why it could not.
func (c *Container) release() error {
	d, err := os.Open(c.dir)
	if err != nil {
		return err
	}
	defer d.Close()
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("exec socket: %w", err)
	}
	conn := os.NewFile(uintptr(fd), "exec.sock")
	defer conn.Close()
	path := "/proc/self/fd/" + strconv.Itoa(int(d.Fd())) + "/" + execSock
	if err := unix.Connect(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return ErrRunning
		}
		if errors.Is(err, unix.ECONNREFUSED) {
			return ErrStopped
		}
		return fmt.Errorf("connect to container init: %w", err)
	}
	// Whoever connected first starts the container; a second start sees
	// no socket.
	os.Remove(filepath.Join(c.dir, execSock))
	msg, err := io.ReadAll(conn)
	if err != nil {
		return fmt.Errorf("start container: %w", err)
	}
	if len(msg) > 0 {
		return errors.New(string(msg))
	}
	// EOF without a message: the exec happened (the connection is
	// close-on-exec). The process may well have exited already.
	return nil
}

// Signal sends sig to the init, or with all to every process of the
// container.
func (c *Container) Signal(sig unix.Signal, all bool) error {
	st := c.Status()
	if st == Stopped || st == Creating {
		return ErrNotRunning
	}
	if all {
		return c.signalAll(sig)
	}
	return c.kill(sig)
}

func (c *Container) kill(sig unix.Signal) error {
	if !c.st.initAlive() {
		return ErrNotRunning
	}
	// A pidfd pins the process, so the signal cannot reach a recycled pid
	// between the check above and the kill.
	pfd, err := unix.PidfdOpen(c.st.InitPid, 0)
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			return ErrNotRunning
		}
		return unix.Kill(c.st.InitPid, sig)
	}
	defer unix.Close(pfd)
	if !c.st.initAlive() {
		return ErrNotRunning
	}
	if err := unix.PidfdSendSignal(pfd, sig, nil, 0); err != nil {
		if errors.Is(err, unix.ESRCH) {
			return ErrNotRunning
		}
		return fmt.Errorf("signal init: %w", err)
	}
	return nil
}

func (c *Container) signalAll(sig unix.Signal) error {
	m, err := c.cgroup()
	if err != nil || m == nil {
		return c.kill(sig)
	}
	// Freeze first so no process forks away while we walk the list.
	frozen := m.Freeze() == nil
	defer func() {
		if frozen {
			m.Thaw()
		}
	}()
	pids, err := m.Pids()
	if err != nil {
		return fmt.Errorf("list container processes: %w", err)
	}
	for _, pid := range pids {
		if err := unix.Kill(pid, sig); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("signal pid %d: %w", pid, err)
		}
	}
	return nil
}

// Delete removes a stopped container (with force, any container: it is
// killed first), runs the poststop hooks and removes its cgroup and state.
func (c *Container) Delete(ctx context.Context, force bool) error {
	st := c.Status()
	if st != Stopped && st != Creating {
		if !force {
			return fmt.Errorf("cannot delete container %s that is not stopped: %s", c.st.ID, st)
		}
		if err := c.killAndWait(); err != nil {
			return err
		}
	}
	var errs []error
	if m, err := c.cgroup(); err != nil {
		errs = append(errs, err)
	} else if m != nil {
		if !c.st.PrivatePidNS {
			// Without a pid namespace of its own, the init's death does
			// not take the other processes with it.
			c.signalAll(unix.SIGKILL)
		}
		if err := m.Destroy(); err != nil {
			errs = append(errs, fmt.Errorf("remove cgroup: %w", err))
		}
	}
	if h := c.st.hooks(); h != nil {
		runWarn(ctx, "poststop", h.Poststop, c.specState(Stopped))
	}
	if err := removeStateDir(c.dir); err != nil {
		errs = append(errs, fmt.Errorf("remove state dir: %w", err))
	}
	syncp.Phase("deleted")
	return errors.Join(errs...)
}

// removeStateDir removes a container's state dir: what it holds is known
// (a system call a file instead of os.RemoveAll's listing), anything else
// the long way.
func removeStateDir(dir string) error {
	for _, f := range []string{stateFile, stagedState, execSock} {
		unix.Unlink(filepath.Join(dir, f))
	}
	if err := unix.Rmdir(dir); err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	return os.RemoveAll(dir)
}

func (c *Container) killAndWait() error {
	if c.st.PrivatePidNS {
		c.kill(unix.SIGKILL)
	} else {
		c.signalAll(unix.SIGKILL)
	}
	deadline := time.Now().Add(10 * time.Second)
	for c.st.initAlive() {
		if time.Now().After(deadline) {
			return fmt.Errorf("container init %d did not die after SIGKILL", c.st.InitPid)
		}
		time.Sleep(time.Millisecond)
	}
	return nil
}

// HookState is exported for callers that run hooks themselves.
func (c *Container) HookState() *specs.State { return c.specState(c.Status()) }

// runWarn runs every hook even when one fails: the spec makes a failing
// poststart or poststop hook a warning, and the remaining hooks and the
// lifecycle go on as if it had succeeded.
func runWarn(ctx context.Context, kind string, hs []specs.Hook, st *specs.State) {
	for i, h := range hs {
		if err := hooks.Run(ctx, h, st); err != nil {
			slog.Warn("hook failed", "kind", kind, "index", i, "err", err)
		}
	}
}
