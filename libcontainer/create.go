package libcontainer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/runmini/runmini/cgroups"
	"github.com/runmini/runmini/internal/sysfile"
	"github.com/runmini/runmini/libcontainer/hooks"
	"github.com/runmini/runmini/libcontainer/internal/syncp"
	"github.com/runmini/runmini/libcontainer/nsenter"
	"github.com/runmini/runmini/libcontainer/seccomp"
	"github.com/runmini/runmini/libcontainer/seccomp/bpf"
	"github.com/runmini/runmini/spec/specjson"
)

// CreateOpts is what `create` (and `run`, and the shim) pass in.
type CreateOpts struct {
	Root   string
	ID     string
	Bundle string // absolute
	Spec   *specs.Spec
	// SpecJSON, when not nil, is the JSON Spec was decoded from, by
	// specjson (spec.LoadJSON), and Spec is as decoded: the init gets it
	// and state.json records it, instead of an encoding of Spec.
	SpecJSON []byte
	// Rootfs is the absolute, symlink-free host path of the root filesystem.
	Rootfs        string
	ConsoleSocket string
	NoPivot       bool
	NoNewKeyring  bool
	// PreserveFDs passes fds 3 .. 3+PreserveFDs-1 of the caller to the
	// container process under the same numbers.
	PreserveFDs int
	// Stdio of the init; nil means the caller's own.
	Stdin, Stdout, Stderr *os.File
	// SeccompCache, when not nil, remembers compiled seccomp filters
	// across containers (the shim's).
	SeccompCache *seccomp.Cache
	// BeforeCreate, when not nil, is called once the spec is checked and
	// what needs no undoing is ready, right before the first change on
	// the host (the state dir): `run` waits there for its signal catch.
	BeforeCreate func()
	// StartNow asks that the init execute the process as soon as it is
	// created (`run`), which saves the round trips of Start through
	// exec.sock. It is done unless the spec has prestart hooks, which must
	// run in between; Start then only runs the poststart hooks.
	// BeforeStart, when not nil, is called right before the init is
	// released (`run` waits there for its catch of every signal).
	StartNow    bool
	BeforeStart func()

	// exec: the process joins a running container (Container.Exec)
	// instead of building one.
	exec bool
}

// Process is the init as its creator sees it.
type Process struct {
	Pid int
}

// Wait waits for the init to exit and returns its wait status. The init is
// our child, or (forked by the nsenter constructor) our grandchild, which
// needs a subreaper to wait for.
func (p *Process) Wait() (unix.WaitStatus, error) {
	return wait4(p.Pid)
}

func wait4(pid int) (unix.WaitStatus, error) {
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(pid, &ws, 0, nil)
		if err == unix.EINTR {
			continue
		}
		return ws, err
	}
}

// Create makes the container: state dir, cgroup, and an init process that
// has built the container's environment and now waits for Start. On any
// error everything made so far is undone.
func Create(ctx context.Context, o *CreateOpts) (c *Container, proc *Process, retErr error) {
	if err := validID(o.ID); err != nil {
		return nil, nil, err
	}
	s := o.Spec
	var res *specs.LinuxResources
	var cgPath string
	if s.Linux != nil {
		res, cgPath = deviceRules(s), s.Linux.CgroupsPath
	}
	// The init is forked straight into its cgroup (ForkInto).
	plan, err := planNamespaces(s, true)
	if err != nil {
		return nil, nil, err
	}
	defer plan.close()

	dir := filepath.Join(o.Root, o.ID)
	st := &persisted{
		ID:           o.ID,
		Bundle:       o.Bundle,
		Rootfs:       o.Rootfs,
		Created:      time.Now().UTC(),
		PrivatePidNS: plan.private[specs.PIDNamespace],
		Config:       s,
		configJSON:   o.SpecJSON,
	}
	c = &Container{root: o.Root, dir: dir, st: st}
	c.startNow = o.StartNow && (s.Hooks == nil || len(s.Hooks.Prestart) == 0)
	h := &host{cgConfig: cgroups.Config{ID: o.ID, Path: cgPath, Resources: res}, o: o, c: c}
	// The profile is checked before anything is made, and compiled while
	// the init boots.
	if h.filter, err = startSeccomp(s, o.SeccompCache); err != nil {
		return nil, nil, err
	}
	defer func() {
		if retErr != nil {
			h.undo()
		}
	}()
	proc, err = c.startInit(ctx, o, plan, h)
	if err != nil {
		return nil, nil, err
	}
	return c, proc, nil
}

// host is what an init needs on the host besides its process: its cgroup
// and seccomp filter and, for a new container, the state dir. Create
// makes them (prepare, makeCgroup, undone by undo); an exec finds them
// (cg set from the start: nothing to prepare or make).
type host struct {
	cgConfig cgroups.Config
	o        *CreateOpts
	c        *Container

	cg         cgroups.Manager // nil until prepared
	filter     *pendingFilter
	dirMade    bool
	cgroupMade bool
}

// prepare checks what is left to check (the cgroup configuration), runs
// BeforeCreate, and makes the state dir, which is what makes the id taken.
func (h *host) prepare() error {
	o := h.o
	cg, err := cgroups.New(h.cgConfig)
	if err != nil {
		return err
	}
	h.cg = cg
	if o.BeforeCreate != nil {
		o.BeforeCreate()
	}
	if err := os.MkdirAll(o.Root, 0o700); err != nil {
		return fmt.Errorf("create root %s: %w", o.Root, err)
	}
	if err := os.Mkdir(h.c.dir, 0o700); err != nil {
		if errors.Is(err, os.ErrExist) {
			return ErrExist
		}
		return fmt.Errorf("create state dir: %w", err)
	}
	h.dirMade = true
	h.c.st.CgroupPaths = cg.Paths()
	h.c.cgOnce.Do(func() { h.c.cg = cg })
	return nil
}

// makeCgroup makes the container's cgroup, without its limits.
func (h *host) makeCgroup() error {
	if err := h.cg.CreateDirs(); err != nil {
		return err
	}
	h.cgroupMade = true
	syncp.Phase("cgroup created")
	return nil
}

// undo removes what prepare and makeCgroup made; the init must be gone
// (its cgroup would be busy).
func (h *host) undo() {
	// Only a cgroup we made: Create refuses a populated one that exists
	// already, and that one is not ours to remove.
	if h.cgroupMade {
		if err := h.cg.Destroy(); err != nil {
			slog.Warn("remove cgroup after failed create", "err", err)
		}
	}
	if h.dirMade {
		os.RemoveAll(h.c.dir)
	}
}

// initSpec is the spec as the init gets it: without what only the runtime
// acts on. The seccomp profile goes compiled (InitConfig.Seccomp); as JSON
// (hundreds of syscall names in containerd's and Docker's default
// profiles, ~13 KiB) the init would spend ~0.2 ms decoding it on every
// start and exec. Resources are the runtime's to apply, and of the hooks
// the init runs createContainer and startContainer, and asks the runtime
// for createRuntime.
func initSpec(s *specs.Spec) *specs.Spec {
	c := *s
	if s.Linux != nil {
		l := *s.Linux
		l.Seccomp, l.Resources = nil, nil
		c.Linux = &l
	}
	if h := s.Hooks; h != nil {
		c.Hooks = &specs.Hooks{CreateRuntime: h.CreateRuntime, CreateContainer: h.CreateContainer, StartContainer: h.StartContainer}
	}
	return &c
}

// initSpecJSON is initSpec as JSON made without encoding the whole spec,
// or nil when that cannot be had. For a new container it is SpecJSON
// without what initSpec drops (the init ignores the hooks it does not
// run, which are short). An exec's init reads nothing but the process: an
// encoding of that alone spares encoding/json's reflection over every type
// of the spec.
func (o *CreateOpts) initSpecJSON() []byte {
	if o.exec {
		b, err := json.Marshal(o.Spec.Process)
		if err != nil {
			return nil
		}
		return append(append([]byte(`{"process":`), b...), '}')
	}
	if o.SpecJSON == nil {
		return nil
	}
	b, ok := specjson.WithoutLinux(o.SpecJSON, "seccomp", "resources")
	if !ok {
		return nil
	}
	return b
}

// encodedConfig is the init's config, encoded.
type encodedConfig struct {
	b   []byte
	err error
}

// pendingFilter is a seccomp profile being compiled on another goroutine.
type pendingFilter struct {
	done   chan struct{}
	filter *bpf.Filter
	err    error
}

// startSeccomp checks the spec's profile (a bad one fails here, before
// anything is made) and compiles it, through cache (which may be nil), on
// another goroutine: libseccomp takes ~12 ms for containerd's default
// profile, time in which the init boots and builds the container, and the
// init needs the filter only at the end. No profile gives nil.
func startSeccomp(s *specs.Spec, cache *seccomp.Cache) (*pendingFilter, error) {
	l := s.Linux
	if l == nil || l.Seccomp == nil || (l.Seccomp.DefaultAction == "" && len(l.Seccomp.Syscalls) == 0) {
		return nil, nil
	}
	if err := seccomp.Check(l.Seccomp); err != nil {
		return nil, err
	}
	p := &pendingFilter{done: make(chan struct{})}
	go func() {
		defer close(p.done)
		p.filter, p.err = cache.Compile(l.Seccomp)
	}()
	return p, nil
}

// ready is the filter when it is already compiled.
func (p *pendingFilter) ready() (*bpf.Filter, bool) {
	select {
	case <-p.done:
		return p.filter, p.err == nil
	default:
		return nil, false
	}
}

// wait is the filter, once compiled.
func (p *pendingFilter) wait() (*bpf.Filter, error) {
	<-p.done
	return p.filter, p.err
}

// An exec's h is prepared (its state dir and cgroup exist); a new
// container's is prepared here, once everything that changes nothing on
// the host is ready (prepare waits for `run`'s signal catch, which runs
// meanwhile), right before the init is forked straight into its cgroup,
// whose limits are written while the init boots.
func (c *Container) startInit(ctx context.Context, o *CreateOpts, plan *nsPlan, h *host) (proc *Process, retErr error) {
	exe, err := sealedExe(plan.needsNsenter())
	if err != nil {
		return nil, err
	}
	defer exe.Close()

	parentSock, childSock, err := syncp.NewPair()
	if err != nil {
		return nil, err
	}
	defer parentSock.Close()
	defer childSock.Close()

	// The exec socket is handed to the init now and bound in the state
	// dir while the init boots (it listens before the init gets its
	// config).
	var execLn *os.File
	if !o.exec && !c.startNow {
		fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("exec socket: %w", err)
		}
		execLn = os.NewFile(uintptr(fd), execSock)
		defer execLn.Close()
	}

	var console *os.File
	if s := o.Spec; s.Process != nil && s.Process.Terminal {
		if o.ConsoleSocket == "" {
			return nil, errors.New("cannot allocate tty if runmini will detach without setting console socket")
		}
		console, err = dialConsoleSocket(o.ConsoleSocket)
		if err != nil {
			return nil, err
		}
		defer console.Close()
	} else if o.ConsoleSocket != "" {
		return nil, errors.New("cannot use console socket if runmini will not detach or allocate tty")
	}

	// Child fd layout: 0-2 stdio, then the preserved fds (so they keep
	// their numbers), then ours.
	var extra []*os.File
	for i := 0; i < o.PreserveFDs; i++ {
		extra = append(extra, os.NewFile(uintptr(3+i), "preserved-"+strconv.Itoa(3+i)))
	}
	add := func(f *os.File) int {
		extra = append(extra, f)
		return 2 + len(extra)
	}
	exeFD := add(exe)
	syncFD := add(childSock)
	consoleFD, execSockFD := -1, -1
	if console != nil {
		consoleFD = add(console)
	}
	if execLn != nil {
		execSockFD = add(execLn)
	}
	env := []string{"_RUNMINI_SYNCFD=" + strconv.Itoa(syncFD), "GOMAXPROCS=1"}
	var nsPipeR, nsPipeW *os.File
	if plan.needsNsenter() {
		nsPipeR, nsPipeW, err = os.Pipe()
		if err != nil {
			return nil, err
		}
		defer nsPipeR.Close()
		defer nsPipeW.Close()
		pipeFD := add(nsPipeW)
		first := 3 + len(extra)
		extra = append(extra, plan.joins...)
		env = append(env, plan.nsenterEnv(first, pipeFD)...)
	}
	// An exec that goes through the constructor joins its cgroup there,
	// itself (see cgroups.Manager.JoinFiles); the others are cloned into
	// the cgroup2 directory, or else moved in (moveIn).
	cgroupFD, moveIn := -1, false
	if o.exec && plan.needsNsenter() {
		fd, tasks, err := h.cg.JoinFiles()
		if err != nil {
			return nil, err
		}
		var fds []string
		for _, f := range tasks {
			defer f.Close()
			fds = append(fds, strconv.Itoa(add(f)))
		}
		if len(fds) > 0 {
			env = append(env, nsenter.EnvCgroup+"="+strings.Join(fds, ","))
		}
		cgroupFD = fd
	} else if o.exec {
		cgroupFD = h.cg.FD()
		moveIn = cgroupFD < 0
	}

	files := []uintptr{orStd(o.Stdin, os.Stdin).Fd(), orStd(o.Stdout, os.Stdout).Fd(), orStd(o.Stderr, os.Stderr).Fd()}
	for _, f := range extra {
		files = append(files, f.Fd())
	}
	sys := &syscall.SysProcAttr{
		Cloneflags: plan.cloneFlags,
		// The init dies with us until it is fully created.
		Pdeathsig: syscall.SIGKILL,
		Setsid:    o.Spec.Process != nil && o.Spec.Process.Terminal,
	}
	if plan.cloneFlags&unix.CLONE_NEWUSER != 0 {
		if err := setIDMappings(sys, o.Spec); err != nil {
			return nil, err
		}
	}
	if !o.exec {
		if err := h.prepare(); err != nil {
			return nil, err
		}
		if err := h.makeCgroup(); err != nil {
			return nil, err
		}
	}
	// Pdeathsig fires when the thread that forked exits, and ForkInto
	// moves this thread: keep it.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	// A new container's init is born in its cgroup. An exec is cloned
	// into its cgroup2 directory (v2, and a hybrid host's unified
	// hierarchy when it joins the v1 ones itself) and otherwise moved in
	// (Apply): its cgroup has limits already, which this thread must not
	// count against.
	leave := func() error { return nil }
	if !o.exec {
		fd, l, err := h.cg.ForkInto()
		if err != nil {
			return nil, err
		}
		sys.UseCgroupFD, sys.CgroupFD, leave = fd >= 0, fd, l
	} else if cgroupFD >= 0 {
		sys.UseCgroupFD, sys.CgroupFD = true, cgroupFD
	}
	// syscall.ForkExec rather than os/exec: the first os.StartProcess of a
	// process forks a child of its own to probe pidfd support, which the
	// init's start would wait for.
	pid, err := syscall.ForkExec("/proc/self/fd/"+strconv.Itoa(exeFD), []string{"runmini", "init"}, &syscall.ProcAttr{Env: env, Files: files, Sys: sys})
	if lerr := leave(); lerr != nil {
		if err == nil {
			(&Process{Pid: pid}).kill()
		}
		return nil, lerr
	}
	if err != nil {
		return nil, fmt.Errorf("start container init: %w", err)
	}
	started := &Process{Pid: pid}
	proc = started
	syncp.Phase("init started")
	childSock.Close()
	defer func() {
		if retErr != nil {
			started.kill()
		}
	}()
	if nsPipeW != nil {
		nsPipeW.Close()
		pid, err := nsenter.ReadReport(nsPipeR)
		if err != nil {
			return nil, err
		}
		if pid != 0 {
			// The intermediate exits right away; reap it.
			wait4(proc.Pid)
			proc.Pid = pid
		}
	}
	if execLn != nil {
		if err := listenExecSock(execLn, c.dir); err != nil {
			return nil, err
		}
	}
	ic := &syncp.InitConfig{
		Version:      syncp.Version,
		ID:           o.ID,
		Bundle:       o.Bundle,
		Rootfs:       o.Rootfs,
		Spec:         (*specjson.Spec)(initSpec(o.Spec)),
		NoPivot:      o.NoPivot,
		NoNewKeyring: o.NoNewKeyring,
		CgroupPaths:  h.cg.Paths(),
		InitUnshare:  uint64(plan.initUnshare),
		HasMountNS:   plan.has[specs.MountNamespace],
		NewUserNS:    plan.has[specs.UserNamespace],
		NewCgroupNS:  plan.has[specs.CgroupNamespace],
		ConsoleFD:    consoleFD,
		ExecSockFD:   execSockFD,
		Exec:         o.exec,
		PreserveFDs:  o.PreserveFDs,
		Debug:        slog.Default().Enabled(ctx, slog.LevelDebug),
	}
	if filter := h.filter; filter != nil {
		// Already compiled (a cache hit): it goes with the config;
		// otherwise the init asks for it when it needs it.
		if f, ok := filter.ready(); ok {
			ic.Seccomp = f
		} else {
			ic.SeccompFollows = true
			slog.Debug("seccomp filter still compiling: the init asks for it when it needs it")
		}
	}
	// Encoded on another goroutine while the cgroup's limits are
	// written. Its pid goes beside it in the message.
	encoded := make(chan encodedConfig, 1)
	go func() {
		b, err := syncp.EncodeConfig(ic, o.initSpecJSON())
		encoded <- encodedConfig{b, err}
	}()
	// The cgroup's limits (v1: a few files in every hierarchy, a
	// millisecond or two) are written while the config is encoded and the
	// init boots; it does nothing before it has its config.
	if !o.exec {
		if err := h.cg.ApplyResources(); err != nil {
			return nil, err
		}
	} else if moveIn {
		if err := h.cg.Apply(proc.Pid); err != nil {
			return nil, err
		}
	}
	start, _, err := procStartTime(proc.Pid)
	if err != nil {
		return nil, fmt.Errorf("container init exited: %w", err)
	}
	initPid := c.st.InitPid
	if !o.exec {
		c.st.InitPid, c.st.InitStart = proc.Pid, start
		initPid = proc.Pid
	}

	enc := <-encoded
	if enc.err != nil {
		return nil, enc.err
	}
	conn := &syncp.Conn{F: parentSock}
	if err := conn.SendConfig(enc.b, initPid); err != nil {
		return nil, err
	}
	syncp.Phase("config sent")
	// state.json is written once the init is ready, but everything in it
	// is known now: encode it while the init works.
	// It is even written now, beside its place: once the init is ready a
	// rename puts it there (~0.5 ms less between the init's ready and its
	// release). The failure paths remove the state dir with it.
	staged := filepath.Join(c.dir, stagedState)
	if !o.exec {
		state, err := encodeState(c.st)
		if err != nil {
			return nil, err
		}
		if err := sysfile.Write(staged, state, unix.O_CREAT|unix.O_EXCL, 0o600); err != nil {
			return nil, fmt.Errorf("write state: %w", err)
		}
	}
	logf := func(raw json.RawMessage) { forwardLog(raw) }
	for {
		m, err := conn.ExpectAny(logf)
		if err != nil {
			return nil, c.initFailed(err)
		}
		switch m.Type {
		case syncp.MsgSeccompWanted:
			if !ic.SeccompFollows {
				return nil, errors.New("sync protocol: the init asked for a seccomp filter it was not promised")
			}
			f, err := h.filter.wait()
			if err != nil {
				conn.Send(&syncp.Msg{Type: syncp.MsgError, Error: err.Error()})
				return nil, err
			}
			if err := conn.Send(&syncp.Msg{Type: syncp.MsgSeccomp, Seccomp: f}); err != nil {
				return nil, err
			}
		case syncp.MsgCreateRuntime:
			h := o.Spec.Hooks
			if err := hooks.RunAll(ctx, "createRuntime", h.CreateRuntime, c.specState(Creating)); err != nil {
				conn.Send(&syncp.Msg{Type: syncp.MsgError, Error: err.Error()})
				return nil, err
			}
			if err := conn.Send(&syncp.Msg{Type: syncp.MsgOK}); err != nil {
				return nil, err
			}
		case syncp.MsgReady:
			syncp.Phase("init ready")
			// An exec has no state of its own: the process only waits
			// for our OK to exec, and the EOF below tells it did.
			if !o.exec {
				if err := os.Rename(staged, filepath.Join(c.dir, stateFile)); err != nil {
					return nil, fmt.Errorf("write state: %w", err)
				}
			}
			unwrite := func() {
				if !o.exec {
					os.Remove(filepath.Join(c.dir, stateFile))
				}
			}
			reply := syncp.MsgOK
			if c.startNow {
				if o.BeforeStart != nil {
					o.BeforeStart()
				}
				reply = syncp.MsgStart
			}
			if err := conn.Send(&syncp.Msg{Type: reply}); err != nil {
				unwrite()
				return nil, err
			}
			// The init clears its parent-death signal and then closes its
			// end (exec, or started now: the exec closes it): until that
			// EOF, our exit would still kill it.
			if m, err := conn.Recv(); err != io.EOF {
				unwrite()
				if err == nil && m.Type == syncp.MsgError {
					return nil, errors.New(m.Error)
				}
				if err == nil {
					err = fmt.Errorf("sync protocol: unexpected %q from init", m.Type)
				}
				return nil, fmt.Errorf("container init did not confirm creation: %w", err)
			}
			syncp.Phase("created")
			return proc, nil
		default:
			return nil, fmt.Errorf("sync protocol: unexpected %q from init", m.Type)
		}
	}
}

func orStd(f, std *os.File) *os.File {
	if f != nil {
		return f
	}
	return std
}

// initFailed adds what we know about why the init went away.
func (c *Container) initFailed(err error) error {
	if errors.Is(err, syncp.ErrUnexpectedEOF) {
		return fmt.Errorf("container init exited before it was ready: %w", err)
	}
	return err
}

func (p *Process) kill() {
	unix.Kill(p.Pid, unix.SIGKILL)
	p.Wait()
}

func setIDMappings(a *syscall.SysProcAttr, s *specs.Spec) error {
	if s.Linux == nil || len(s.Linux.UIDMappings) == 0 || len(s.Linux.GIDMappings) == 0 {
		return errors.New("user namespaces enabled, but no user mapping found")
	}
	for _, m := range s.Linux.UIDMappings {
		a.UidMappings = append(a.UidMappings, syscall.SysProcIDMap{ContainerID: int(m.ContainerID), HostID: int(m.HostID), Size: int(m.Size)})
	}
	for _, m := range s.Linux.GIDMappings {
		a.GidMappings = append(a.GidMappings, syscall.SysProcIDMap{ContainerID: int(m.ContainerID), HostID: int(m.HostID), Size: int(m.Size)})
	}
	// Go writes "deny" to setgroups unless told otherwise; containers
	// need setgroups for additionalGids.
	a.GidMappingsEnableSetgroups = true
	// The init starts with the host's uid 0, which the new namespace may
	// not map: it would exec as the overflow uid and lose every
	// capability. Become the namespace's root first when it has one.
	if mapsZero(s.Linux.UIDMappings) && mapsZero(s.Linux.GIDMappings) {
		a.Credential = &syscall.Credential{Uid: 0, Gid: 0, NoSetGroups: true}
	}
	return nil
}

func mapsZero(ms []specs.LinuxIDMapping) bool {
	for _, m := range ms {
		if m.ContainerID == 0 && m.Size > 0 {
			return true
		}
	}
	return false
}

// listenExecSock binds ln to <dir>/exec.sock and listens. A path longer
// than sun_path's 108 bytes goes through the directory's fd.
func listenExecSock(ln *os.File, dir string) error {
	path := filepath.Join(dir, execSock)
	if len(path) >= len(unix.RawSockaddrUnix{}.Path) {
		d, err := os.Open(dir)
		if err != nil {
			return err
		}
		defer d.Close()
		path = "/proc/self/fd/" + strconv.Itoa(int(d.Fd())) + "/" + execSock
	}
	if err := unix.Bind(int(ln.Fd()), &unix.SockaddrUnix{Name: path}); err != nil {
		return fmt.Errorf("bind exec socket: %w", err)
	}
	if err := unix.Listen(int(ln.Fd()), 1); err != nil {
		return fmt.Errorf("listen on exec socket: %w", err)
	}
	return nil
}

func dialConsoleSocket(path string) (*os.File, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("connect to console socket: %w", err)
	}
	for {
		err = unix.Connect(fd, &unix.SockaddrUnix{Name: path})
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("connect to console socket: dial unix %s: connect: %w", path, err)
	}
	return os.NewFile(uintptr(fd), "console-socket"), nil
}

// forwardLog re-emits a log record the init sent, with its attributes.
func forwardLog(raw json.RawMessage) {
	var r map[string]any
	if json.Unmarshal(raw, &r) != nil {
		return
	}
	var lvl slog.Level
	if l, ok := r["level"].(string); ok {
		lvl.UnmarshalText([]byte(l))
	}
	msg, _ := r["msg"].(string)
	attrs := []any{"from", "init"}
	for k, v := range r {
		if k != "level" && k != "msg" && k != "time" {
			attrs = append(attrs, k, v)
		}
	}
	slog.Log(context.Background(), lvl, msg, attrs...)
}
