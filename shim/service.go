package shim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	eventstypes "github.com/containerd/containerd/api/events"
	taskapi "github.com/containerd/containerd/api/runtime/task/v2"
	"github.com/containerd/containerd/api/types/runc/options"
	tasktypes "github.com/containerd/containerd/api/types/task"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/runmini/runmini/internal/fdpass"
	"github.com/runmini/runmini/libcontainer"
	"github.com/runmini/runmini/libcontainer/seccomp"
	"github.com/runmini/runmini/mount"
	"github.com/runmini/runmini/reaper"
	"github.com/runmini/runmini/spec"
)

// service is the task service: every task of this shim (one, or a pod's
// containers) and their processes.
type service struct {
	ns     string
	pub    *publisher
	reaper *reaper.Reaper
	// shutdown stops the server; called once no task is left.
	shutdown func()
	trim     *memTrimmer
	// seccomp keeps the compiled filters of the profiles seen: a pod's
	// containers and every exec share one.
	seccomp *seccomp.Cache

	mu    sync.Mutex
	tasks map[string]*task
}

// task is one container: its init and its execs.
type task struct {
	id, bundle string
	c          *libcontainer.Container
	init       *process
	rootfs     string // where we mounted the request's rootfs; "" if none
	stopOOM    func()

	mu    sync.Mutex
	execs map[string]*process
}

// seccompCacheSize bounds the compiled filters a shim keeps (~8 KiB each for
// containerd's default profile): a pod rarely has more than a few.
const seccompCacheSize = 16

func newService(ns string, pub *publisher, r *reaper.Reaper, shutdown func()) *service {
	return &service{ns: ns, pub: pub, reaper: r, shutdown: shutdown, trim: newMemTrimmer(), seccomp: seccomp.NewCache(seccompCacheSize), tasks: map[string]*task{}}
}

// defaultRoot is where libcontainer keeps this namespace's containers, so
// that `runmini --root /run/containerd/runmini/<ns> list` shows them.
func defaultRoot(ns string) string { return filepath.Join("/run/containerd/runmini", ns) }

func (s *service) taskCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.tasks)
}

func (s *service) task(id string) (*task, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tasks[id]
	if !ok || t == nil {
		return nil, fmt.Errorf("task %s: %w", id, errdefs.ErrNotFound)
	}
	return t, nil
}

// process finds the init (execID "") or an exec of task id.
func (s *service) process(id, execID string) (*task, *process, error) {
	t, err := s.task(id)
	if err != nil {
		return nil, nil, err
	}
	if execID == "" {
		return t, t.init, nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	p, ok := t.execs[execID]
	if !ok {
		return nil, nil, fmt.Errorf("exec %s in task %s: %w", execID, id, errdefs.ErrNotFound)
	}
	return t, p, nil
}

// runtimeOptions decodes containerd's runc options, which CRI and `ctr
// --runc-*` send to every runc-like runtime; other types are refused.
func runtimeOptions(a *anypb.Any) (*options.Options, error) {
	o := &options.Options{}
	if a == nil || len(a.GetValue()) == 0 && a.GetTypeUrl() == "" {
		return o, nil
	}
	if !isRuncOptions(a) {
		return nil, fmt.Errorf("runtime options of type %q: %w", a.GetTypeUrl(), errdefs.ErrInvalidArgument)
	}
	if err := a.UnmarshalTo(o); err != nil {
		return nil, fmt.Errorf("runtime options: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	return o, nil
}

// optionsFile keeps a task's runtime options in its bundle, so that the
// `delete` of a dead shim finds the state root the task used.
const optionsFile = "options.json"

func (s *service) Create(ctx context.Context, r *taskapi.CreateTaskRequest) (_ *taskapi.CreateTaskResponse, retErr error) {
	if err := spec.ValidateID(r.ID); err != nil {
		return nil, fmt.Errorf("%v: %w", err, errdefs.ErrInvalidArgument)
	}
	if !filepath.IsAbs(r.Bundle) {
		return nil, fmt.Errorf("bundle %q is not an absolute path: %w", r.Bundle, errdefs.ErrInvalidArgument)
	}
	// Reserve the id so that a concurrent Create of it fails at once.
	s.mu.Lock()
	if _, ok := s.tasks[r.ID]; ok {
		s.mu.Unlock()
		return nil, fmt.Errorf("task %s: %w", r.ID, errdefs.ErrAlreadyExists)
	}
	s.tasks[r.ID] = nil
	s.mu.Unlock()
	defer func() {
		if retErr != nil {
			s.mu.Lock()
			delete(s.tasks, r.ID)
			s.mu.Unlock()
		}
	}()

	opts, err := runtimeOptions(r.Options)
	if err != nil {
		return nil, err
	}
	root := defaultRoot(s.ns)
	if opts.Root != "" {
		root = filepath.Join(opts.Root, s.ns)
		// Only a root other than the default needs recording for `delete`.
		if err := writeOptions(r.Bundle, root); err != nil {
			return nil, err
		}
		defer func() {
			if retErr != nil {
				os.Remove(filepath.Join(r.Bundle, optionsFile))
			}
		}()
	}
	sp, specJSON, err := spec.LoadJSON(r.Bundle)
	if err != nil {
		return nil, fmt.Errorf("task %s: bundle %s: %v: %w", r.ID, r.Bundle, err, errdefs.ErrInvalidArgument)
	}

	t := &task{id: r.ID, bundle: r.Bundle, execs: map[string]*process{}}
	if len(r.Rootfs) > 0 {
		t.rootfs = filepath.Join(r.Bundle, "rootfs")
		ms := make([]mount.HostMount, len(r.Rootfs))
		for i, m := range r.Rootfs {
			ms[i] = mount.HostMount{Type: m.Type, Source: m.Source, Options: m.Options}
		}
		if err := os.MkdirAll(t.rootfs, 0o711); err != nil {
			return nil, err
		}
		if err := mount.MountAll(ms, t.rootfs); err != nil {
			return nil, err
		}
		defer func() {
			if retErr != nil {
				mount.UnmountAll(t.rootfs)
			}
		}()
	}
	if err := spec.Validate(sp, r.Bundle); err != nil {
		return nil, fmt.Errorf("task %s: bundle %s: %v: %w", r.ID, r.Bundle, err, errdefs.ErrInvalidArgument)
	}
	if sp.Process != nil && sp.Process.Terminal != r.Terminal {
		sp.Process.Terminal = r.Terminal
		specJSON = nil // the bytes no longer say what the spec does
	}

	cfg := stdioConfig{Stdin: r.Stdin, Stdout: r.Stdout, Stderr: r.Stderr, Terminal: r.Terminal}
	t.init = newProcess(r.ID, "", cfg)
	p := t.init
	p.mu.Lock()
	defer p.mu.Unlock()
	defer s.reaper.Hold()()
	var pid int
	err = s.launch(p, r.ID, func(in, out, errw *os.File, console string) (int, func(), error) {
		c, proc, err := libcontainer.Create(ctx, &libcontainer.CreateOpts{
			Root:          root,
			ID:            r.ID,
			Bundle:        r.Bundle,
			Spec:          sp,
			SpecJSON:      specJSON,
			Rootfs:        spec.RootfsPath(sp, r.Bundle),
			ConsoleSocket: console,
			NoPivot:       opts.NoPivotRoot,
			NoNewKeyring:  opts.NoNewKeyring,
			Stdin:         in,
			Stdout:        out,
			Stderr:        errw,
			SeccompCache:  s.seccomp.WithDir(filepath.Join(root, seccomp.CacheDirName)),
		})
		if err != nil {
			return 0, nil, createError(err)
		}
		t.c, pid = c, proc.Pid
		return proc.Pid, func() { c.Delete(context.WithoutCancel(ctx), true) }, nil
	}, func(e reaper.Exit) { s.initExited(t, e) })
	if err != nil {
		return nil, err
	}
	t.stopOOM = s.watchOOM(t)
	s.mu.Lock()
	s.tasks[r.ID] = t
	s.mu.Unlock()
	if s.taskCount() > 1 {
		s.trim.soon()
	}
	s.pub.publish(topicCreate, &eventstypes.TaskCreate{
		ContainerID: r.ID,
		Bundle:      r.Bundle,
		Rootfs:      r.Rootfs,
		IO:          &eventstypes.TaskIO{Stdin: r.Stdin, Stdout: r.Stdout, Stderr: r.Stderr, Terminal: r.Terminal},
		Checkpoint:  r.Checkpoint,
		Pid:         uint32(pid),
	})
	return &taskapi.CreateTaskResponse{Pid: uint32(pid)}, nil
}

// unknownExitStatus is containerd's status for an exit that never
// happened.
const unknownExitStatus = 255

// abandonExecs ends the execs that were never started when their task is
// deleted, so that their waiters get an answer.
func (t *task) abandonExecs() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for id, x := range t.execs {
		x.mu.Lock()
		if x.state == stateCreated {
			x.setExited(reaper.Exit{Pid: 0, Status: unknownExitStatus, At: time.Now()})
			x.state = stateDeleted
		}
		x.mu.Unlock()
		delete(t.execs, id)
	}
}

// createError gives libcontainer's errors containerd's codes.
func createError(err error) error {
	if errors.Is(err, libcontainer.ErrExist) {
		return fmt.Errorf("%v: %w", err, errdefs.ErrAlreadyExists)
	}
	return err
}

// launch starts a process: it opens p's IO, calls start with the
// process's stdio and console socket path, then records the pid, wires the
// IO and watches for the exit. start returns how to undo the process; on
// any later failure it is undone and p is left as it was. Called with p.mu
// held and a reaper Hold in force.
func (s *service) launch(p *process, id string, start func(in, out, errw *os.File, console string) (pid int, undo func(), err error), exited func(reaper.Exit)) (retErr error) {
	st, cs, err := s.openIO(p.cfg, id)
	if err != nil {
		return err
	}
	defer func() {
		if cs != nil {
			cs.Close()
		}
		if retErr != nil {
			st.close()
		}
	}()
	in, out, errw := st.processFiles()
	pid, undo, err := start(in, out, errw, consolePath(cs))
	if err != nil {
		return err
	}
	defer func() {
		if retErr != nil {
			// Unwatched: once dead, the reaper takes it as an orphan.
			undo()
			if p.pidfd >= 0 {
				unix.Close(p.pidfd)
			}
			p.pid, p.pidfd = 0, -1
		}
	}()
	if err := p.setPid(pid); err != nil {
		return err
	}
	if err := s.attachIO(st, cs); err != nil {
		return err
	}
	if err := s.reaper.Watch(pid, exited); err != nil {
		return err
	}
	p.stdio = st
	return nil
}

func writeOptions(bundle, root string) error {
	b, err := json.Marshal(struct {
		Root string `json:"root"`
	}{root})
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(bundle, optionsFile), b, 0o600)
}

// readRoot is the state root a task recorded in its bundle.
func readRoot(bundle, ns string) string {
	var o struct {
		Root string `json:"root"`
	}
	if b, err := os.ReadFile(filepath.Join(bundle, optionsFile)); err == nil && json.Unmarshal(b, &o) == nil && o.Root != "" {
		return o.Root
	}
	return defaultRoot(ns)
}

// openIO opens a process's IO and, for a terminal, the socket its pty
// master will arrive on.
func (s *service) openIO(cfg stdioConfig, id string) (*stdio, *fdpass.Socket, error) {
	st, err := openStdio(cfg, s.ns, id)
	if err != nil {
		return nil, nil, err
	}
	if !cfg.Terminal {
		return st, nil, nil
	}
	cs, err := fdpass.Listen("mini-pty")
	if err != nil {
		st.close()
		return nil, nil, err
	}
	return st, cs, nil
}

func consolePath(cs *fdpass.Socket) string {
	if cs == nil {
		return ""
	}
	return cs.Path()
}

// attachIO finishes a started process's IO: the shim's copies of the
// process's ends are dropped and a terminal's master is wired up.
func (s *service) attachIO(st *stdio, cs *fdpass.Socket) error {
	st.started()
	if cs == nil {
		return nil
	}
	// The runtime sends the master before the process is created: the
	// deadline only guards against a broken sender.
	master, err := cs.Accept(30 * time.Second)
	if err != nil {
		return err
	}
	st.attachConsole(master)
	return nil
}

// initExited handles the init's exit: the rest of the container is killed
// (a pid namespace does that by itself), every running exec's exit is
// published first, then the init's.
func (s *service) initExited(t *task, e reaper.Exit) {
	p := t.init
	// Wait for a Create or Start in flight to publish its event.
	p.mu.Lock()
	p.mu.Unlock()
	if !t.c.PrivatePidNS() {
		t.c.Signal(unix.SIGKILL, true)
	}
	t.mu.Lock()
	execs := make([]*process, 0, len(t.execs))
	for _, x := range t.execs {
		execs = append(execs, x)
	}
	t.mu.Unlock()
	for _, x := range execs {
		x.mu.Lock()
		running := x.state == stateRunning
		x.mu.Unlock()
		if running {
			<-x.exited
		}
	}
	s.exited(t, p, e)
}

// exited records p's exit and publishes it (under p.mu, so after the
// create or start event of p), then releases its IO. The init's id in the
// event is the container's.
func (s *service) exited(t *task, p *process, e reaper.Exit) {
	// A terminal's last output reaches the client before its exit does:
	// containerd 2.x's client closes its end of the output fifo as soon as
	// it has the exit (its Delete cancels the IO first), and what the copy
	// from the pty had not written yet would be lost (`ctr run -t` of a
	// quick command printed nothing, now and then).
	p.drainIO(drainTimeout)
	id := p.execID
	if id == "" {
		id = t.id
	}
	p.mu.Lock()
	p.setExited(e)
	s.pub.publish(topicExit, &eventstypes.TaskExit{
		ContainerID: t.id, ID: id, Pid: uint32(e.Pid),
		ExitStatus: uint32(e.Status), ExitedAt: timestamppb.New(e.At),
	})
	p.mu.Unlock()
	p.closeStdio()
}

func (s *service) Start(ctx context.Context, r *taskapi.StartRequest) (*taskapi.StartResponse, error) {
	t, p, err := s.process(r.ID, r.ExecID)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state != stateCreated {
		return nil, fmt.Errorf("%s is %s: %w", p.describe(), p.state, errdefs.ErrFailedPrecondition)
	}
	// Hooks run in Start: their processes are os/exec's to reap.
	defer s.reaper.Hold()()
	if p.execID == "" {
		if err := t.c.Start(ctx); err != nil {
			return nil, fmt.Errorf("start %s: %v: %w", t.id, err, errdefs.ErrFailedPrecondition)
		}
		p.state = stateRunning
		s.pub.publish(topicStart, &eventstypes.TaskStart{ContainerID: t.id, Pid: uint32(p.pid)})
		return &taskapi.StartResponse{Pid: uint32(p.pid)}, nil
	}
	if err := s.startExec(ctx, t, p); err != nil {
		return nil, err
	}
	return &taskapi.StartResponse{Pid: uint32(p.pid)}, nil
}

// startExec runs a created exec. Called with p.mu held.
func (s *service) startExec(ctx context.Context, t *task, p *process) error {
	if !t.init.isRunning() {
		return fmt.Errorf("exec %s: container %s is not running: %w", p.execID, t.id, errdefs.ErrFailedPrecondition)
	}
	var pid int
	err := s.launch(p, t.id, func(in, out, errw *os.File, console string) (int, func(), error) {
		proc, err := t.c.Exec(ctx, &libcontainer.ExecOpts{
			Process:       p.spec,
			ConsoleSocket: console,
			Stdin:         in,
			Stdout:        out,
			Stderr:        errw,
			SeccompCache:  s.seccomp,
		})
		if err != nil {
			return 0, nil, fmt.Errorf("exec %s in %s: %w", p.execID, t.id, err)
		}
		pid = proc.Pid
		return pid, func() { unix.Kill(pid, unix.SIGKILL) }, nil
	}, func(e reaper.Exit) { s.exited(t, p, e) })
	if err != nil {
		return err
	}
	p.state = stateRunning
	s.pub.publish(topicExecStarted, &eventstypes.TaskExecStarted{ContainerID: t.id, ExecID: p.execID, Pid: uint32(pid)})
	return nil
}

func (p *process) describe() string {
	if p.execID == "" {
		return "task " + p.id
	}
	return "exec " + p.execID + " in task " + p.id
}

func (p *process) isRunning() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.state == stateRunning
}

func (s *service) Delete(ctx context.Context, r *taskapi.DeleteRequest) (*taskapi.DeleteResponse, error) {
	t, p, err := s.process(r.ID, r.ExecID)
	if err != nil {
		return nil, err
	}
	if r.ExecID != "" {
		if p.isExited() {
			p.drainIO(drainTimeout)
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.state == stateRunning {
			return nil, fmt.Errorf("cannot delete running %s: %w", p.describe(), errdefs.ErrFailedPrecondition)
		}
		p.state = stateDeleted
		t.mu.Lock()
		delete(t.execs, r.ExecID)
		t.mu.Unlock()
		return deleteResponse(p), nil
	}

	p.mu.Lock()
	state := p.state
	p.mu.Unlock()
	switch state {
	case stateRunning, statePaused:
		return nil, fmt.Errorf("cannot delete running task %s: %w", t.id, errdefs.ErrFailedPrecondition)
	case stateDeleted:
		return nil, fmt.Errorf("task %s: %w", t.id, errdefs.ErrNotFound)
	case stateCreated:
		// A created init is killed; its exit is reported as usual.
		p.mu.Lock()
		p.signal(unix.SIGKILL)
		p.mu.Unlock()
	}
	if _, err := p.wait(ctx); err != nil {
		return nil, err
	}
	p.drainIO(drainTimeout)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state == stateDeleted {
		return nil, fmt.Errorf("task %s: %w", t.id, errdefs.ErrNotFound)
	}
	var errs []error
	if t.stopOOM != nil {
		t.stopOOM()
	}
	release := s.reaper.Hold() // poststop hooks
	if err := t.c.Delete(ctx, true); err != nil {
		errs = append(errs, err)
	}
	release()
	if t.rootfs != "" {
		if err := mount.UnmountAll(t.rootfs); err != nil {
			errs = append(errs, err)
		}
	}
	os.Remove(filepath.Join(t.bundle, optionsFile))
	p.state = stateDeleted
	t.abandonExecs()
	s.mu.Lock()
	delete(s.tasks, t.id)
	s.mu.Unlock()
	resp := deleteResponse(p)
	if s.taskCount() > 0 {
		s.trim.soon()
	}
	s.pub.publish(topicDelete, &eventstypes.TaskDelete{
		ContainerID: t.id, ID: t.id, Pid: resp.Pid, ExitStatus: resp.ExitStatus, ExitedAt: resp.ExitedAt,
	})
	if err := errors.Join(errs...); err != nil {
		slog.Warn("delete task", "id", t.id, "err", err)
	}
	return resp, nil
}

// drainTimeout bounds how long a Delete waits for a terminal's output.
const drainTimeout = 2 * time.Second

func deleteResponse(p *process) *taskapi.DeleteResponse {
	resp := &taskapi.DeleteResponse{Pid: uint32(p.pid)}
	if p.isExited() {
		resp.ExitStatus = uint32(p.exit.Status)
		resp.ExitedAt = timestamppb.New(p.exit.At)
	}
	return resp
}

func (s *service) Exec(ctx context.Context, r *taskapi.ExecProcessRequest) (*emptypb.Empty, error) {
	t, err := s.task(r.ID)
	if err != nil {
		return nil, err
	}
	if r.ExecID == "" {
		return nil, fmt.Errorf("exec id must not be empty: %w", errdefs.ErrInvalidArgument)
	}
	var ps specs.Process
	if r.Spec == nil || json.Unmarshal(r.Spec.Value, &ps) != nil {
		return nil, fmt.Errorf("exec %s: the process spec is missing or not JSON: %w", r.ExecID, errdefs.ErrInvalidArgument)
	}
	if len(ps.Args) == 0 {
		return nil, fmt.Errorf("exec %s: process args must not be empty: %w", r.ExecID, errdefs.ErrInvalidArgument)
	}
	ps.Terminal = r.Terminal
	if !t.init.isRunning() {
		return nil, fmt.Errorf("exec %s: container %s is not running: %w", r.ExecID, t.id, errdefs.ErrFailedPrecondition)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.execs[r.ExecID]; ok {
		return nil, fmt.Errorf("exec %s in task %s: %w", r.ExecID, t.id, errdefs.ErrAlreadyExists)
	}
	p := newProcess(t.id, r.ExecID, stdioConfig{Stdin: r.Stdin, Stdout: r.Stdout, Stderr: r.Stderr, Terminal: r.Terminal})
	p.spec = &ps
	t.execs[r.ExecID] = p
	s.pub.publish(topicExecAdded, &eventstypes.TaskExecAdded{ContainerID: t.id, ExecID: r.ExecID})
	return &emptypb.Empty{}, nil
}

func (s *service) State(ctx context.Context, r *taskapi.StateRequest) (*taskapi.StateResponse, error) {
	t, p, err := s.process(r.ID, r.ExecID)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	resp := &taskapi.StateResponse{
		ID:       p.id,
		ExecID:   p.execID,
		Bundle:   t.bundle,
		Pid:      uint32(p.pid),
		Status:   p.state.api(),
		Stdin:    p.cfg.Stdin,
		Stdout:   p.cfg.Stdout,
		Stderr:   p.cfg.Stderr,
		Terminal: p.cfg.Terminal,
	}
	if r.ExecID != "" {
		resp.ID = r.ExecID
	}
	if p.isExited() {
		resp.ExitStatus = uint32(p.exit.Status)
		resp.ExitedAt = timestamppb.New(p.exit.At)
	}
	return resp, nil
}

func (s *service) Pids(ctx context.Context, r *taskapi.PidsRequest) (*taskapi.PidsResponse, error) {
	t, err := s.task(r.ID)
	if err != nil {
		return nil, err
	}
	pids, err := t.c.Processes()
	if err != nil {
		return nil, err
	}
	byPid := map[int]string{}
	t.mu.Lock()
	for id, x := range t.execs {
		x.mu.Lock()
		if x.pid > 0 {
			byPid[x.pid] = id
		}
		x.mu.Unlock()
	}
	t.mu.Unlock()
	sort.Ints(pids)
	resp := &taskapi.PidsResponse{}
	for _, pid := range pids {
		pi := &tasktypes.ProcessInfo{Pid: uint32(pid)}
		if id, ok := byPid[pid]; ok {
			a, err := typeurl.MarshalAnyToProto(&options.ProcessDetails{ExecID: id})
			if err != nil {
				return nil, err
			}
			pi.Info = a
		}
		resp.Processes = append(resp.Processes, pi)
	}
	return resp, nil
}

func (s *service) Pause(ctx context.Context, r *taskapi.PauseRequest) (*emptypb.Empty, error) {
	return s.freeze(r.ID, "pause", stateRunning, statePaused, (*libcontainer.Container).Pause,
		topicPaused, func(id string) any { return &eventstypes.TaskPaused{ContainerID: id} })
}

func (s *service) Resume(ctx context.Context, r *taskapi.ResumeRequest) (*emptypb.Empty, error) {
	return s.freeze(r.ID, "resume", statePaused, stateRunning, (*libcontainer.Container).Resume,
		topicResumed, func(id string) any { return &eventstypes.TaskResumed{ContainerID: id} })
}

// freeze moves task id's init from one state to the other with op (the
// cgroup freezer) and publishes the event.
func (s *service) freeze(id, verb string, from, to procState, op func(*libcontainer.Container) error, topic string, event func(string) any) (*emptypb.Empty, error) {
	t, p, err := s.process(id, "")
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state != from {
		return nil, fmt.Errorf("cannot %s task %s: it is %s: %w", verb, t.id, p.state, errdefs.ErrFailedPrecondition)
	}
	if err := op(t.c); err != nil {
		return nil, err
	}
	p.state = to
	s.pub.publish(topic, event(t.id))
	return &emptypb.Empty{}, nil
}

func (s *service) Checkpoint(ctx context.Context, r *taskapi.CheckpointTaskRequest) (*emptypb.Empty, error) {
	return nil, fmt.Errorf("checkpoint: %w", errdefs.ErrNotImplemented)
}

func (s *service) Kill(ctx context.Context, r *taskapi.KillRequest) (*emptypb.Empty, error) {
	t, p, err := s.process(r.ID, r.ExecID)
	if err != nil {
		return nil, err
	}
	if r.Signal == 0 || r.Signal > 64 {
		return nil, fmt.Errorf("invalid signal %d: %w", r.Signal, errdefs.ErrInvalidArgument)
	}
	sig := unix.Signal(r.Signal)
	p.mu.Lock()
	defer p.mu.Unlock()
	if r.All && r.ExecID == "" {
		if p.state == stateStopped || p.state == stateDeleted {
			return nil, fmt.Errorf("process already finished: %w", errdefs.ErrNotFound)
		}
		if err := t.c.Signal(sig, true); err != nil {
			return nil, fmt.Errorf("kill all in %s: %w", t.id, err)
		}
		return &emptypb.Empty{}, nil
	}
	if p.state == stateCreated && r.ExecID != "" {
		return nil, fmt.Errorf("%s is not started: %w", p.describe(), errdefs.ErrFailedPrecondition)
	}
	if err := p.signal(sig); err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, nil
}

func (s *service) ResizePty(ctx context.Context, r *taskapi.ResizePtyRequest) (*emptypb.Empty, error) {
	_, p, err := s.process(r.ID, r.ExecID)
	if err != nil {
		return nil, err
	}
	st := p.getStdio()
	if st == nil {
		return nil, fmt.Errorf("%s is not started: %w", p.describe(), errdefs.ErrFailedPrecondition)
	}
	if err := st.resize(r.Width, r.Height); err != nil {
		return nil, fmt.Errorf("resize pty of %s: %v: %w", p.describe(), err, errdefs.ErrFailedPrecondition)
	}
	return &emptypb.Empty{}, nil
}

func (s *service) CloseIO(ctx context.Context, r *taskapi.CloseIORequest) (*emptypb.Empty, error) {
	_, p, err := s.process(r.ID, r.ExecID)
	if err != nil {
		return nil, err
	}
	if st := p.getStdio(); r.Stdin && st != nil {
		st.closeStdin()
	}
	return &emptypb.Empty{}, nil
}

func (s *service) Update(ctx context.Context, r *taskapi.UpdateTaskRequest) (*emptypb.Empty, error) {
	t, p, err := s.process(r.ID, "")
	if err != nil {
		return nil, err
	}
	var res specs.LinuxResources
	if r.Resources == nil || json.Unmarshal(r.Resources.Value, &res) != nil {
		return nil, fmt.Errorf("update %s: resources missing or not LinuxResources JSON: %w", t.id, errdefs.ErrInvalidArgument)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state == stateStopped || p.state == stateDeleted {
		return nil, fmt.Errorf("update %s: task is %s: %w", t.id, p.state, errdefs.ErrFailedPrecondition)
	}
	if err := t.c.Update(&res); err != nil {
		return nil, fmt.Errorf("update %s: %v: %w", t.id, err, errdefs.ErrInvalidArgument)
	}
	return &emptypb.Empty{}, nil
}

func (s *service) Wait(ctx context.Context, r *taskapi.WaitRequest) (*taskapi.WaitResponse, error) {
	_, p, err := s.process(r.ID, r.ExecID)
	if err != nil {
		return nil, err
	}
	e, err := p.wait(ctx)
	if err != nil {
		return nil, err
	}
	return &taskapi.WaitResponse{ExitStatus: uint32(e.Status), ExitedAt: timestamppb.New(e.At)}, nil
}

func (s *service) Stats(ctx context.Context, r *taskapi.StatsRequest) (*taskapi.StatsResponse, error) {
	t, err := s.task(r.ID)
	if err != nil {
		return nil, err
	}
	a, err := t.stats()
	if err != nil {
		return nil, err
	}
	return &taskapi.StatsResponse{Stats: a}, nil
}

func (s *service) Connect(ctx context.Context, r *taskapi.ConnectRequest) (*taskapi.ConnectResponse, error) {
	resp := &taskapi.ConnectResponse{ShimPid: uint32(os.Getpid()), Version: Version}
	if t, err := s.task(r.ID); err == nil {
		resp.TaskPid = uint32(t.init.pid)
	}
	return resp, nil
}

func (s *service) Shutdown(ctx context.Context, r *taskapi.ShutdownRequest) (*emptypb.Empty, error) {
	if s.taskCount() == 0 {
		// After the reply: containerd waits for it.
		go s.shutdown()
	}
	return &emptypb.Empty{}, nil
}
