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
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/runmini/runmini/cgroups"
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
	absMountSources(s, o.Bundle)
	var res *specs.LinuxResources
	var cgPath string
	if s.Linux != nil {
		res, cgPath = deviceRules(s), s.Linux.CgroupsPath
	}
	cg, err := cgroups.New(cgroups.Config{ID: o.ID, Path: cgPath, Resources: res})
	if err != nil {
		return nil, nil, err
	}
	// On v2 the init is cloned straight into its cgroup.
	plan, err := planNamespaces(s, !cg.NeedsApply())
	if err != nil {
		return nil, nil, err
	}
	defer plan.close()
	filter, err := startSeccomp(s, o.SeccompCache)
	if err != nil {
		return nil, nil, err
	}
	if o.BeforeCreate != nil {
		o.BeforeCreate()
	}

	if err := os.MkdirAll(o.Root, 0o700); err != nil {
		return nil, nil, fmt.Errorf("create root %s: %w", o.Root, err)
	}
	dir := filepath.Join(o.Root, o.ID)
	if err := os.Mkdir(dir, 0o700); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil, nil, ErrExist
		}
		return nil, nil, fmt.Errorf("create state dir: %w", err)
	}
	defer func() {
		if retErr != nil {
			os.RemoveAll(dir)
		}
	}()

	// Where the init is cloned straight into its cgroup (v2), the cgroup
	// comes first. Elsewhere the init is moved in with Apply anyway, so
	// the cgroup is made while the init's runtime boots (a few ms of
	// mkdirs and writes in every v1 hierarchy off the critical path); the
	// init is moved in before it gets its config, so before it does
	// anything for the container.
	cgCreated := false
	createCgroup := func() error {
		if err := cg.Create(); err != nil {
			return err
		}
		cgCreated = true
		syncp.Phase("cgroup created")
		return nil
	}
	defer func() {
		// Only a cgroup we made: Create refuses a populated one that
		// exists already, and that one is not ours to remove.
		if retErr != nil && cgCreated {
			if err := cg.Destroy(); err != nil {
				slog.Warn("remove cgroup after failed create", "err", err)
			}
		}
	}()
	if !cg.NeedsApply() {
		if err := createCgroup(); err != nil {
			return nil, nil, err
		}
		createCgroup = nil
	}

	st := &persisted{
		ID:           o.ID,
		Bundle:       o.Bundle,
		Rootfs:       o.Rootfs,
		Created:      time.Now().UTC(),
		CgroupPaths:  cg.Paths(),
		PrivatePidNS: plan.private[specs.PIDNamespace],
		Config:       s,
	}
	c = &Container{root: o.Root, dir: dir, st: st}
	c.cgOnce.Do(func() { c.cg = cg })

	proc, err = c.startInit(ctx, o, cg, plan, filter, createCgroup)
	if err != nil {
		return nil, nil, err
	}
	return c, proc, nil
}

// initSpec is the spec as the init gets it: without what only the runtime
// acts on. The seccomp profile goes compiled (InitConfig.Seccomp); as JSON
// (hundreds of syscall names in containerd's and Docker's default
// profiles, ~13 KiB) the init would spend a millisecond or two decoding
// it on every start and exec. Resources are the runtime's to apply, and
// of the hooks the init runs createContainer and startContainer, and asks
// the runtime for createRuntime.
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

// filter is the seccomp profile being compiled (nil: none); createCgroup,
// when not nil, makes the cgroup while the init is cloned.
func (c *Container) startInit(ctx context.Context, o *CreateOpts, cg cgroups.Manager, plan *nsPlan, filter *pendingFilter, createCgroup func() error) (proc *Process, retErr error) {
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

	var execLn *os.File
	if !o.exec {
		if execLn, err = listenExecSock(c.dir); err != nil {
			return nil, err
		}
		defer execLn.Close()
		defer func() {
			if retErr != nil {
				os.Remove(filepath.Join(c.dir, execSock))
			}
		}()
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
	ic := &syncp.InitConfig{
		Version:      syncp.Version,
		ID:           o.ID,
		Bundle:       o.Bundle,
		Rootfs:       o.Rootfs,
		Spec:         (*specjson.Spec)(initSpec(o.Spec)),
		NoPivot:      o.NoPivot,
		NoNewKeyring: o.NoNewKeyring,
		CgroupPaths:  cg.Paths(),
		InitUnshare:  uint64(plan.initUnshare),
		HasMountNS:   plan.has[specs.MountNamespace],
		NewUserNS:    plan.has[specs.UserNamespace],
		NewCgroupNS:  plan.has[specs.CgroupNamespace],
		ConsoleFD:    -1,
		ExecSockFD:   -1,
		Exec:         o.exec,
		PreserveFDs:  o.PreserveFDs,
		Debug:        slog.Default().Enabled(ctx, slog.LevelDebug),
	}
	if filter != nil {
		// Already compiled (a cache hit): it goes with the config;
		// otherwise the init asks for it when it needs it.
		if f, ok := filter.ready(); ok {
			ic.Seccomp = f
		} else {
			ic.SeccompFollows = true
			slog.Debug("seccomp filter still compiling: the init asks for it when it needs it")
		}
	}
	if console != nil {
		ic.ConsoleFD = add(console)
	}
	if execLn != nil {
		ic.ExecSockFD = add(execLn)
	}
	// Encoded on another goroutine while the init is cloned (a first
	// json.Marshal of a spec builds encoding/json's caches: a millisecond
	// or two). Its pid goes beside it in the message.
	encoded := make(chan encodedConfig, 1)
	go func() {
		b, err := syncp.EncodeConfig(ic)
		encoded <- encodedConfig{b, err}
	}()
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
	if fd := cg.FD(); fd >= 0 {
		sys.UseCgroupFD = true
		sys.CgroupFD = fd
	}
	if plan.cloneFlags&unix.CLONE_NEWUSER != 0 {
		if err := setIDMappings(sys, o.Spec); err != nil {
			return nil, err
		}
	}
	// The cgroup (v1: a directory and its limits in every hierarchy, a few
	// ms) is made while the init is cloned; the init is moved in before it
	// gets its config.
	var cgMade chan error
	if createCgroup != nil {
		cgMade = make(chan error, 1)
		go func() { cgMade <- createCgroup() }()
		defer func() {
			// Whoever undoes the cgroup needs it finished.
			if cgMade != nil {
				<-cgMade
			}
		}()
	}
	// Pdeathsig fires when the thread that forked exits: keep it.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	// syscall.ForkExec rather than os/exec: the first os.StartProcess of a
	// process forks a child of its own to probe pidfd support, which the
	// init's start would wait for.
	pid, err := syscall.ForkExec("/proc/self/fd/"+strconv.Itoa(exeFD), []string{"runmini", "init"}, &syscall.ProcAttr{Env: env, Files: files, Sys: sys})
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
	if cgMade != nil {
		err := <-cgMade
		cgMade = nil
		if err != nil {
			return nil, err
		}
	}
	if cg.FD() < 0 {
		if err := cg.Apply(proc.Pid); err != nil {
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
	var state []byte
	if !o.exec {
		if state, err = encodeState(c.st); err != nil {
			return nil, err
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
			f, err := filter.wait()
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
				if err := writeStateBytes(c.dir, state); err != nil {
					return nil, fmt.Errorf("write state: %w", err)
				}
			}
			unwrite := func() {
				if !o.exec {
					os.Remove(filepath.Join(c.dir, stateFile))
				}
			}
			if err := conn.Send(&syncp.Msg{Type: syncp.MsgOK}); err != nil {
				unwrite()
				return nil, err
			}
			// The init clears its parent-death signal and then closes its
			// end (exec: the exec closes it): until that EOF, our exit
			// would still kill it.
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

// absMountSources makes relative bind sources relative to the bundle, as
// the runtime spec says; the init no longer knows where the bundle is.
func absMountSources(s *specs.Spec, bundle string) {
	for i, m := range s.Mounts {
		if m.Source != "" && !filepath.IsAbs(m.Source) && isBind(m) {
			s.Mounts[i].Source = filepath.Join(bundle, m.Source)
		}
	}
}

func isBind(m specs.Mount) bool {
	if m.Type == "bind" {
		return true
	}
	for _, o := range m.Options {
		if o == "bind" || o == "rbind" {
			return true
		}
	}
	return false
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

// listenExecSock binds <dir>/exec.sock. The path goes through the
// directory's fd so its length never hits sun_path's 108-byte limit.
func listenExecSock(dir string) (*os.File, error) {
	d, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("exec socket: %w", err)
	}
	path := "/proc/self/fd/" + strconv.Itoa(int(d.Fd())) + "/" + execSock
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bind exec socket: %w", err)
	}
	if err := unix.Listen(fd, 1); err != nil {
		unix.Close(fd)
		os.Remove(filepath.Join(dir, execSock))
		return nil, fmt.Errorf("listen on exec socket: %w", err)
	}
	return os.NewFile(uintptr(fd), "exec.sock"), nil
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
