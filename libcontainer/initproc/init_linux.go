// Package initproc is the init of a container: the process `runmini
// init` (or the small runmini-init binary) runs in the container's new
// namespaces. It builds the container from the config the parent sends over
// the sync socket, waits for start and executes the container process.
package initproc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"

	"github.com/containerd/console"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/runmini/runmini/internal/sysfile"
	"github.com/runmini/runmini/libcontainer/capabilities"
	"github.com/runmini/runmini/libcontainer/hooks"
	"github.com/runmini/runmini/libcontainer/internal/syncp"
	"github.com/runmini/runmini/libcontainer/nsenter"
	"github.com/runmini/runmini/libcontainer/seccomp/bpf"
	"github.com/runmini/runmini/mount"
)

// IsInit tells main that this process is a container's init.
func IsInit() bool {
	return len(os.Args) > 1 && os.Args[1] == "init" && os.Getenv("_RUNMINI_SYNCFD") != ""
}

// Init is `runmini init`: it builds the container from the config the parent
// sends, waits for start and executes the container's process. It only
// returns by exiting.
func Init() {
	// Namespace and credential changes below are per thread; exec happens
	// from this same thread, so the container process inherits them all.
	runtime.LockOSThread()
	debug.SetGCPercent(-1) // short-lived: no GC work on the start path
	if pfd, skipped := nsenter.Skipped(); skipped {
		// The binary that runs namespace joins must link the constructor
		// (runmini-init-nsenter, or runmini itself); this one does not.
		if pfd >= 0 {
			os.NewFile(uintptr(pfd), "nsenter-report").WriteString("error this init binary was built without the nsenter constructor\n")
		}
		os.Exit(1)
	}
	fd, err := strconv.Atoi(os.Getenv("_RUNMINI_SYNCFD"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "runmini init: bad _RUNMINI_SYNCFD")
		os.Exit(1)
	}
	os.Unsetenv("_RUNMINI_SYNCFD")
	conn := &syncp.Conn{F: os.NewFile(uintptr(fd), "sync")}
	slog.SetDefault(slog.New(slog.NewJSONHandler(syncp.LogWriter{C: conn}, nil)))
	err = func() (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("panic in container init: %v\n%s", r, debug.Stack())
			}
		}()
		return initContainer(conn)
	}()
	if err != nil {
		conn.Send(&syncp.Msg{Type: syncp.MsgError, Error: err.Error()})
	}
	os.Exit(1)
}

type initState struct {
	conn *syncp.Conn
	ic   *syncp.InitConfig
	spec *specs.Spec
	mc   *mount.Config
}

func initContainer(conn *syncp.Conn) error {
	m, err := conn.Expect(syncp.MsgConfig, nil)
	if err != nil {
		return err
	}
	ic, err := syncp.ReadConfig(m)
	if err != nil {
		return err
	}
	if ic.Version != syncp.Version {
		return fmt.Errorf("container init speaks %s, runmini %s: install runmini and runmini-init from the same build", syncp.Version, ic.Version)
	}
	if ic.Debug {
		slog.SetDefault(slog.New(slog.NewJSONHandler(syncp.LogWriter{C: conn}, &slog.HandlerOptions{Level: slog.LevelDebug})))
	}
	syncp.Phase("init: config received")
	s := (*specs.Spec)(ic.Spec)
	if s.Process == nil {
		return errors.New("config has no process")
	}
	in := &initState{conn: conn, ic: ic, spec: s}
	// Compiled by the runtime, before this process was even started.
	filter := ic.Seccomp
	if err := in.namespaces(); err != nil {
		return err
	}
	if ic.Exec {
		return in.execProcess(filter)
	}
	if !ic.NoNewKeyring {
		if err := joinSessionKeyring(ic.ID); err != nil {
			return err
		}
	}
	var lx specs.Linux
	if s.Linux != nil {
		lx = *s.Linux
	}
	in.mc = &mount.Config{
		Rootfs:            ic.Rootfs,
		Bundle:            ic.Bundle,
		Mounts:            s.Mounts,
		Devices:           lx.Devices,
		RootfsPropagation: lx.RootfsPropagation,
		NoPivot:           ic.NoPivot,
		MaskedPaths:       lx.MaskedPaths,
		ReadonlyPaths:     lx.ReadonlyPaths,
		NewUserNS:         ic.NewUserNS,
		NewCgroupNS:       ic.NewCgroupNS,
		CgroupPaths:       ic.CgroupPaths,
	}
	if s.Root != nil {
		in.mc.ReadonlyRoot = s.Root.Readonly
	}
	if ic.HasMountNS {
		if err := mount.Prepare(in.mc); err != nil {
			return fmt.Errorf("prepare rootfs: %w", err)
		}
		syncp.Phase("init: rootfs prepared")
	}
	if err := in.hostAndSysctls(); err != nil {
		return err
	}
	if err := setOOMScoreAdj(s.Process.OOMScoreAdj); err != nil {
		return err
	}
	if s.Hooks != nil && len(s.Hooks.CreateRuntime) > 0 {
		if err := conn.Send(&syncp.Msg{Type: syncp.MsgCreateRuntime}); err != nil {
			return err
		}
		if _, err := conn.Expect(syncp.MsgOK, nil); err != nil {
			return err
		}
	}
	if s.Hooks != nil && len(s.Hooks.CreateContainer) > 0 {
		st := in.hookState(specs.StateCreating)
		if err := hooks.RunAll(context.Background(), "createContainer", s.Hooks.CreateContainer, st); err != nil {
			return err
		}
	}
	if err := in.enterRoot(); err != nil {
		return err
	}
	syncp.Phase("init: pivoted and finalized")
	path, err := in.finishProcess(filter)
	if err != nil {
		return err
	}
	start, err := in.handshake()
	if err != nil {
		return err
	}
	if start {
		// Released at once (`run`): the sync socket is close-on-exec,
		// and its EOF tells the parent the exec happened.
		return in.startAndExec(path, func(err error) {
			conn.Send(&syncp.Msg{Type: syncp.MsgError, Error: err.Error()})
		})
	}
	conn.F.Close()
	return in.waitStartAndExec(path)
}

// execProcess is the init of `exec`: the nsenter constructor already put it
// in the container's namespaces and the parent in its cgroup; it sets up
// the process and executes it at once. The sync socket is close-on-exec:
// its EOF tells the parent the exec happened.
func (in *initState) execProcess(filter *bpf.Filter) error {
	if !in.ic.HasMountNS {
		// No mount namespace to join: confine to the root as create did.
		if err := unix.Chroot(in.ic.Rootfs); err != nil {
			return fmt.Errorf("chroot: %w", err)
		}
	}
	if err := setOOMScoreAdj(in.spec.Process.OOMScoreAdj); err != nil {
		return err
	}
	path, err := in.finishProcess(filter)
	if err != nil {
		return err
	}
	if _, err := in.handshake(); err != nil {
		return err
	}
	p := in.spec.Process
	err = unix.Exec(path, p.Args, p.Env)
	return fmt.Errorf("exec %s: %w", path, err)
}

// handshake reports ready, waits for the parent's OK (or, for a new
// container, MsgStart: start reports true) and then lets the process
// outlive its creator.
func (in *initState) handshake() (start bool, _ error) {
	syncp.Phase("init: ready")
	if err := in.conn.Send(&syncp.Msg{Type: syncp.MsgReady}); err != nil {
		return false, err
	}
	m, err := in.conn.ExpectAny(nil)
	if err != nil {
		return false, fmt.Errorf("waiting for %s: %w", syncp.MsgOK, err)
	}
	switch {
	case m.Type == syncp.MsgOK:
	case m.Type == syncp.MsgStart && !in.ic.Exec:
		start = true
	default:
		return false, fmt.Errorf("sync protocol: got %q while waiting for %q", m.Type, syncp.MsgOK)
	}
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, 0, 0, 0, 0); err != nil {
		return false, fmt.Errorf("clear pdeathsig: %w", err)
	}
	slog.SetDefault(slog.New(slog.DiscardHandler))
	return start, nil
}

func setOOMScoreAdj(a *int) error {
	if a == nil {
		return nil
	}
	if err := sysfile.Write("/proc/self/oom_score_adj", []byte(strconv.Itoa(*a)), unix.O_CREAT|unix.O_TRUNC, 0); err != nil {
		return fmt.Errorf("set oom_score_adj: %w", err)
	}
	return nil
}

// finishProcess applies what belongs to the process rather than the
// container (terminal, rlimits, capabilities, user, cwd, no_new_privs,
// seccomp) and resolves the executable; it is shared by create and exec.
func (in *initState) finishProcess(filter *bpf.Filter) (string, error) {
	s := in.spec
	if filter == nil && in.ic.SeccompFollows {
		// Compiled by the runtime while we built the container.
		if err := in.conn.Send(&syncp.Msg{Type: syncp.MsgSeccompWanted}); err != nil {
			return "", err
		}
		m, err := in.conn.Expect(syncp.MsgSeccomp, nil)
		if err != nil {
			return "", fmt.Errorf("seccomp filter: %w", err)
		}
		if m.Seccomp == nil {
			return "", errors.New("sync protocol: seccomp message without a filter")
		}
		filter = m.Seccomp
	}
	if s.Process.Terminal {
		if err := in.setupConsole(); err != nil {
			return "", err
		}
	}
	if err := setRlimits(s.Process.Rlimits); err != nil {
		return "", err
	}
	caps, err := capabilities.New(s.Process.Capabilities)
	if err != nil {
		return "", err
	}
	if err := caps.ApplyBounding(); err != nil {
		return "", fmt.Errorf("apply bounding capabilities: %w", err)
	}
	cwdErr := unix.Chdir(s.Process.Cwd)
	// Nothing but stdio and the preserved fds may reach the container.
	// Done before the seccomp filter, which may well forbid close_range.
	if err := unix.CloseRange(uint(3+in.ic.PreserveFDs), ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		return "", fmt.Errorf("mark fds close-on-exec: %w", err)
	}
	if filter != nil && !s.Process.NoNewPrivileges {
		// Without no_new_privs, loading a filter needs CAP_SYS_ADMIN,
		// which the container user may not keep: load it now.
		if err := filter.Load(); err != nil {
			return "", err
		}
		filter = nil
	}
	if err := in.setUser(); err != nil {
		return "", err
	}
	if err := caps.ApplyCaps(); err != nil {
		return "", fmt.Errorf("apply capabilities: %w", err)
	}
	if cwdErr != nil {
		// The cwd may be reachable only by the container's user.
		if err := unix.Chdir(s.Process.Cwd); err != nil {
			return "", fmt.Errorf("chdir to cwd (%q) set in config.json failed: %w", s.Process.Cwd, err)
		}
	}
	if s.Process.NoNewPrivileges {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return "", fmt.Errorf("set no_new_privs: %w", err)
		}
	}
	if filter != nil {
		// As late as the sync with the parent allows, so the filter
		// constrains the container and as little of the runtime as possible.
		if err := filter.Load(); err != nil {
			return "", err
		}
	}
	return lookPath(s.Process.Args[0], s.Process.Env)
}

func (in *initState) hookState(status specs.ContainerState) *specs.State {
	s := &specs.State{Version: specs.Version, ID: in.ic.ID, Status: status, Pid: in.ic.InitPid, Bundle: in.ic.Bundle}
	s.Annotations = in.spec.Annotations
	return s
}

func (in *initState) namespaces() error {
	f := in.ic.InitUnshare
	if f&unix.CLONE_NEWTIME != 0 {
		if err := unix.Unshare(unix.CLONE_NEWTIME); err != nil {
			return fmt.Errorf("unshare time namespace: %w", err)
		}
		// execve moves us into the new time namespace; its offsets must be
		// written before any process lives in it.
		var b strings.Builder
		if in.spec.Linux != nil {
			for clock, off := range in.spec.Linux.TimeOffsets {
				fmt.Fprintf(&b, "%s %d %d\n", clock, off.Secs, off.Nanosecs)
			}
		}
		if b.Len() > 0 {
			if err := sysfile.Write("/proc/self/timens_offsets", []byte(b.String()), unix.O_CREAT|unix.O_TRUNC, 0); err != nil {
				return fmt.Errorf("write time namespace offsets: %w", err)
			}
		}
	}
	if f&unix.CLONE_NEWCGROUP != 0 {
		if err := unix.Unshare(unix.CLONE_NEWCGROUP); err != nil {
			return fmt.Errorf("unshare cgroup namespace: %w", err)
		}
	}
	return nil
}

func joinSessionKeyring(id string) error {
	if _, err := unix.KeyctlJoinSessionKeyring("_ses." + id); err != nil {
		// Kernels without keyrings, and user namespaces over quota, run
		// containers without a private keyring, as runc does.
		if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EDQUOT) {
			return nil
		}
		return fmt.Errorf("join session keyring: %w", err)
	}
	return nil
}

func (in *initState) hostAndSysctls() error {
	s := in.spec
	if s.Hostname != "" {
		if err := unix.Sethostname([]byte(s.Hostname)); err != nil {
			return fmt.Errorf("set hostname: %w", err)
		}
	}
	if s.Domainname != "" {
		if err := unix.Setdomainname([]byte(s.Domainname)); err != nil {
			return fmt.Errorf("set domainname: %w", err)
		}
	}
	if s.Linux == nil {
		return nil
	}
	// Written through the runtime's /proc before pivot_root: the
	// namespaced sysctls act on the writer's namespaces, so this needs no
	// /proc inside the container.
	for k, v := range s.Linux.Sysctl {
		if strings.Contains(k, "..") || strings.HasPrefix(k, "/") {
			return fmt.Errorf("invalid sysctl %q", k)
		}
		p := "/proc/sys/" + strings.ReplaceAll(k, ".", "/")
		if err := sysfile.Write(p, []byte(v), unix.O_CREAT|unix.O_TRUNC, 0); err != nil {
			return fmt.Errorf("set sysctl %s=%s: %w", k, v, err)
		}
	}
	return nil
}

func (in *initState) enterRoot() error {
	if !in.ic.HasMountNS {
		// Without a mount namespace nothing may be mounted: the mounts
		// would land in the host's namespace. Only confine the root.
		if err := unix.Chroot(in.ic.Rootfs); err != nil {
			return fmt.Errorf("chroot: %w", err)
		}
		return unix.Chdir("/")
	}
	if err := mount.PivotRoot(in.mc); err != nil {
		return fmt.Errorf("pivot root: %w", err)
	}
	if err := mount.Finalize(in.mc); err != nil {
		return fmt.Errorf("finalize rootfs: %w", err)
	}
	return nil
}

// setupConsole makes a pty in the container's devpts, hands the master to
// the console socket (as runc does, so recvtty and containerd work) and
// makes the slave the process's controlling terminal and stdio.
func (in *initState) setupConsole() error {
	sock := os.NewFile(uintptr(in.ic.ConsoleFD), "console-socket")
	defer sock.Close()
	master, slave, err := console.NewPty()
	if err != nil {
		return fmt.Errorf("create pty: %w", err)
	}
	defer master.Close()
	// An exec shares the container's /dev/console; only create makes it.
	if in.ic.HasMountNS && !in.ic.Exec {
		c := *in.mc
		c.Rootfs = "/"
		if err := mount.MountConsole(&c, slave); err != nil {
			return err
		}
	}
	if p := in.spec.Process; p.ConsoleSize != nil {
		master.Resize(console.WinSize{Height: uint16(p.ConsoleSize.Height), Width: uint16(p.ConsoleSize.Width)})
	}
	oob := unix.UnixRights(int(master.Fd()))
	if err := unix.Sendmsg(int(sock.Fd()), []byte(master.Name()), oob, nil, 0); err != nil {
		return fmt.Errorf("send pty master to console socket: %w", err)
	}
	fd, err := unix.Open(slave, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open pty slave: %w", err)
	}
	for i := 0; i < 3; i++ {
		if err := unix.Dup3(fd, i, 0); err != nil {
			return fmt.Errorf("dup pty slave: %w", err)
		}
	}
	unix.Close(fd)
	// Only a session leader may take a controlling terminal. The runtime
	// makes its direct child one, but a process forked by the nsenter
	// constructor (every exec, any join) is that child's child.
	if _, err := unix.Setsid(); err != nil && err != unix.EPERM {
		return fmt.Errorf("setsid: %w", err)
	}
	if err := unix.IoctlSetInt(0, unix.TIOCSCTTY, 0); err != nil {
		return fmt.Errorf("set controlling terminal: %w", err)
	}
	return nil
}

var rlimitNames = map[string]int{
	"RLIMIT_CPU": unix.RLIMIT_CPU, "RLIMIT_FSIZE": unix.RLIMIT_FSIZE, "RLIMIT_DATA": unix.RLIMIT_DATA,
	"RLIMIT_STACK": unix.RLIMIT_STACK, "RLIMIT_CORE": unix.RLIMIT_CORE, "RLIMIT_RSS": unix.RLIMIT_RSS,
	"RLIMIT_NPROC": unix.RLIMIT_NPROC, "RLIMIT_NOFILE": unix.RLIMIT_NOFILE, "RLIMIT_MEMLOCK": unix.RLIMIT_MEMLOCK,
	"RLIMIT_AS": unix.RLIMIT_AS, "RLIMIT_LOCKS": unix.RLIMIT_LOCKS, "RLIMIT_SIGPENDING": unix.RLIMIT_SIGPENDING,
	"RLIMIT_MSGQUEUE": unix.RLIMIT_MSGQUEUE, "RLIMIT_NICE": unix.RLIMIT_NICE, "RLIMIT_RTPRIO": unix.RLIMIT_RTPRIO,
	"RLIMIT_RTTIME": unix.RLIMIT_RTTIME,
}

func setRlimits(rl []specs.POSIXRlimit) error {
	for _, r := range rl {
		res, ok := rlimitNames[r.Type]
		if !ok {
			return fmt.Errorf("unknown rlimit type %q", r.Type)
		}
		// syscall.Setrlimit, not unix's: it tells the Go runtime that
		// RLIMIT_NOFILE was set on purpose, so exec does not restore the
		// soft limit Go saw at start-up.
		if err := syscall.Setrlimit(res, &syscall.Rlimit{Cur: r.Soft, Max: r.Hard}); err != nil {
			return fmt.Errorf("set rlimit %s: %w", r.Type, err)
		}
	}
	return nil
}

// setUser switches this thread to the container user. Raw syscalls: Go's
// syscall.Setresuid changes every thread through a mechanism cgo binaries
// lack, and only this thread ever executes the container process.
func (in *initState) setUser() error {
	u := in.spec.Process.User
	fixStdioOwner(int(u.UID), int(u.GID))
	if len(u.AdditionalGids) > 0 || !in.setgroupsDenied() {
		gids := make([]uint32, 0, len(u.AdditionalGids))
		gids = append(gids, u.AdditionalGids...)
		if err := setgroups(gids); err != nil && len(u.AdditionalGids) > 0 {
			return fmt.Errorf("setgroups: %w", err)
		}
	}
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("set keepcaps: %w", err)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESGID, uintptr(u.GID), uintptr(u.GID), uintptr(u.GID)); e != 0 {
		return fmt.Errorf("setresgid %d: %w", u.GID, e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, uintptr(u.UID), uintptr(u.UID), uintptr(u.UID)); e != 0 {
		return fmt.Errorf("setresuid %d: %w", u.UID, e)
	}
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("clear keepcaps: %w", err)
	}
	umask := 0o022
	if u.Umask != nil {
		umask = int(*u.Umask)
	}
	unix.Umask(umask)
	return nil
}

func (in *initState) setgroupsDenied() bool {
	b, err := sysfile.Read("/proc/self/setgroups")
	return err == nil && strings.TrimSpace(string(b)) == "deny"
}

func setgroups(gids []uint32) error {
	var p uintptr
	if len(gids) > 0 {
		p = uintptr(unsafePointer(&gids[0]))
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, uintptr(len(gids)), p, 0); e != 0 {
		return e
	}
	return nil
}

// fixStdioOwner gives the container user its stdio pipes, so that it can
// reopen /dev/stdout; /dev/null and ttys are left alone (runc does the same).
func fixStdioOwner(uid, gid int) {
	var null unix.Stat_t
	unix.Stat("/dev/null", &null)
	for fd := 0; fd < 3; fd++ {
		var st unix.Stat_t
		if unix.Fstat(fd, &st) != nil {
			continue
		}
		if st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == null.Rdev {
			continue
		}
		if int(st.Uid) == uid && int(st.Gid) == gid {
			continue
		}
		unix.Fchown(fd, uid, gid)
	}
}

func lookPath(file string, env []string) (string, error) {
	if strings.Contains(file, "/") {
		if err := executable(file); err != nil {
			return "", fmt.Errorf("exec: %q: %w", file, err)
		}
		return file, nil
	}
	path := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "PATH="); ok {
			path = v
		}
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, file)
		if executable(p) == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("exec: %q: executable file not found in $PATH", file)
}

func executable(p string) error {
	st, err := os.Stat(p)
	if err != nil {
		return err
	}
	if st.IsDir() {
		return errors.New("is a directory")
	}
	if st.Mode()&0o111 == 0 {
		return os.ErrPermission
	}
	return nil
}

// waitStartAndExec blocks until `start` connects to exec.sock, runs the
// startContainer hooks and executes the container process. The connection
// is close-on-exec: `start` reads EOF once the exec happened, or an error
// line if it did not.
func (in *initState) waitStartAndExec(path string) error {
	ln := in.ic.ExecSockFD
	var cfd int
	for {
		var err error
		cfd, _, err = unix.Accept4(ln, unix.SOCK_CLOEXEC)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			os.Exit(1)
		}
		break
	}
	unix.Close(ln)
	return in.startAndExec(path, func(err error) { unix.Write(cfd, []byte(err.Error())) })
}

// startAndExec runs the startContainer hooks and executes the container
// process. If either fails, it tells whoever released the init why
// (report) and exits.
func (in *initState) startAndExec(path string, report func(error)) error {
	fail := func(err error) error {
		report(err)
		os.Exit(1)
		return err
	}
	s := in.spec
	if s.Hooks != nil && len(s.Hooks.StartContainer) > 0 {
		if err := hooks.RunAll(context.Background(), "startContainer", s.Hooks.StartContainer, in.hookState(specs.StateCreated)); err != nil {
			return fail(err)
		}
	}
	err := unix.Exec(path, s.Process.Args, s.Process.Env)
	return fail(fmt.Errorf("exec %s: %w", path, err))
}
