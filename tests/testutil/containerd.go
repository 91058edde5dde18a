package testutil

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/moby/sys/mountinfo"
)

const (
	// ContainerdDebian is the version that means Debian's containerd
	// package in /usr/bin instead of a build of our own.
	ContainerdDebian = "1.6"
	// ContainerdVersionsEnv restricts the versions ContainerdVersions
	// returns (space or comma separated), such as "1.6" for a quick run
	// that builds nothing.
	ContainerdVersionsEnv = "RUNMINI_CONTAINERD_VERSIONS"
	// BinDirEnv names the directory holding containerd-shim-mini-v2 (and
	// runmini) instead of the repository's bin/.
	BinDirEnv = "RUNMINI_BIN_DIR"
	// MiniRuntime is the runtime type of runmini's shim: containerd runs
	// the binary containerd-shim-mini-v2 found in its PATH for it.
	MiniRuntime = "io.containerd.mini.v2"

	// containerdStartTimeout bounds how long a starting containerd may
	// take to answer `ctr version`.
	containerdStartTimeout = 30 * time.Second
	// containerdStopGrace is how long containerd gets between SIGTERM and
	// SIGKILL.
	containerdStopGrace = 10 * time.Second
	// shimExitGrace is how long shims get to exit on their own after their
	// last task is deleted.
	shimExitGrace = 5 * time.Second
	// logTail caps the containerd log dumped into a failed test's output.
	logTail = 256 << 10
)

// ContainerdVersions returns the containerd versions the end-to-end tests
// run against: Debian's 1.6 and builds of 1.7, 2.2 and 2.4 (see
// scripts/build-containerd.sh), or those named in
// $RUNMINI_CONTAINERD_VERSIONS.
func ContainerdVersions() []string {
	if v := os.Getenv(ContainerdVersionsEnv); strings.TrimSpace(v) != "" {
		return strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' })
	}
	return []string{ContainerdDebian, "1.7.35", "2.2.9", "2.4.2"}
}

// containerdBinaries are what each versions's directory holds.
var containerdBinaries = []string{"containerd", "ctr", "containerd-shim-runc-v2"}

// buildMu serialises builds within this test binary: parallel go builds of
// containerd on a small machine are no faster than one after the other,
// and a build run beside other tests slows them down less.
var buildMu sync.Mutex

// ContainerdBinaries returns the directory that holds containerd, ctr and
// containerd-shim-runc-v2 of version: /usr/bin for "1.6" (Debian's), else
// ${RUNMINI_CACHE:-/var/tmp/runmini-cache}/containerd/<version>, which it
// fills by running scripts/build-containerd.sh when the version is not
// there yet (several minutes the first time).
func ContainerdBinaries(t testing.TB, version string) string {
	t.Helper()
	if version == ContainerdDebian {
		for _, b := range containerdBinaries {
			if _, err := os.Stat(filepath.Join("/usr/bin", b)); err != nil {
				t.Fatalf("containerd %s is Debian's, but: %v (make prereqs installs it)", version, err)
			}
		}
		return "/usr/bin"
	}
	if !regexp.MustCompile(`^[0-9]+\.[0-9]+\.[0-9]+$`).MatchString(version) {
		t.Fatalf("containerd version %q: want 1.6 (Debian's) or a release such as 2.4.2", version)
	}
	dir := filepath.Join(cacheDir(), "containerd", version)
	if haveBinaries(dir) {
		return dir
	}
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	buildMu.Lock()
	defer buildMu.Unlock()
	if haveBinaries(dir) {
		return dir
	}
	start := time.Now()
	t.Logf("building containerd %s into %s (once; cached for later runs)", version, dir)
	cmd := exec.Command(filepath.Join(root, "scripts", "build-containerd.sh"), version)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "RUNMINI_CACHE="+cacheDir())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("scripts/build-containerd.sh %s: %v\n%s", version, err, out)
	}
	if !haveBinaries(dir) {
		t.Fatalf("scripts/build-containerd.sh %s left no binaries in %s:\n%s", version, dir, out)
	}
	t.Logf("built containerd %s in %v", version, time.Since(start).Round(time.Second))
	return dir
}

func haveBinaries(dir string) bool {
	for _, b := range containerdBinaries {
		if fi, err := os.Stat(filepath.Join(dir, b)); err != nil || fi.Mode().Perm()&0o111 == 0 {
			return false
		}
	}
	return true
}

// cacheDir is the Makefile's RUNMINI_CACHE.
func cacheDir() string {
	if d := os.Getenv("RUNMINI_CACHE"); d != "" {
		return d
	}
	return "/var/tmp/runmini-cache"
}

// Containerd is a private containerd daemon of one test: its own config,
// root, state and sockets in a short temporary directory, and a namespace of
// its own. StartContainerd makes one.
type Containerd struct {
	// Version is the version asked for, such as "1.6" or "2.4.2".
	Version string
	// Address is the gRPC socket, for ctr --address.
	Address string
	// TTRPCAddress is the ttrpc socket shims publish events to.
	TTRPCAddress string
	// Root and State are containerd's root and state directories.
	Root, State string
	// Dir holds the sockets, config.toml, containerd.log, Root and State.
	Dir string
	// Namespace is the containerd namespace of the test, unique to it.
	Namespace string
	// BinDir holds this version's containerd, ctr and
	// containerd-shim-runc-v2.
	BinDir string
	// ShimDir is the directory put first in containerd's PATH, where it
	// finds containerd-shim-mini-v2.
	ShimDir string
	// ConfigVersion is the config.toml format written: 2 for containerd
	// 1.x, 3 for 2.0 to 2.3, 4 from 2.4 on.
	ConfigVersion int

	t       testing.TB
	config  string // path of config.toml
	logPath string

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{} // closed when cmd has exited
	started bool          // it answered once: its tasks may need deleting
}

// StartContainerd starts a containerd of version (see ContainerdBinaries)
// for t, with a config of its own and the runtime io.containerd.mini.v2
// registered, and waits until it answers. The CRI plugins and NRI are
// disabled: nothing binds a TCP port or a socket outside the test's
// directory. containerd's PATH is the shim directory ($RUNMINI_BIN_DIR or
// the repository's bin/), then the version's binaries
// (so `ctr run` without --runtime uses the version's own runc shim), then
// the system's (runc).
//
// When t ends, every task and container in the namespace is deleted and
// containerd is stopped; shims and container processes still running
// after that, mounts under its directories, container cgroups and shim
// state fail t as leaks and are undone, and the directory is removed. A
// failed test gets containerd's log.
func StartContainerd(t testing.TB, version string) *Containerd {
	t.Helper()
	requireRoot(t)
	binDir := ContainerdBinaries(t, version)
	shimDir := os.Getenv(BinDirEnv)
	if shimDir == "" {
		root, err := repoRoot()
		if err != nil {
			t.Fatal(err)
		}
		shimDir = filepath.Join(root, "bin")
	}
	shimDir, err := filepath.Abs(shimDir)
	if err != nil {
		t.Fatal(err)
	}
	cfgVersion, err := maxConfigVersion(binDir)
	if err != nil {
		t.Fatal(err)
	}

	// Not t.TempDir: socket paths must fit in sun_path's 108 bytes, and
	// test names make t.TempDir's paths long.
	dir, err := os.MkdirTemp("", "ctrd-")
	if err != nil {
		t.Fatal(err)
	}
	// As /var/lib/containerd: a container running as another user must
	// still reach its rootfs below.
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	c := &Containerd{
		Version:       version,
		Address:       filepath.Join(dir, "c.sock"),
		TTRPCAddress:  filepath.Join(dir, "c.sock.ttrpc"),
		Root:          filepath.Join(dir, "root"),
		State:         filepath.Join(dir, "state"),
		Dir:           dir,
		Namespace:     namespaceName(t),
		BinDir:        binDir,
		ShimDir:       shimDir,
		ConfigVersion: cfgVersion,
		t:             t,
		config:        filepath.Join(dir, "config.toml"),
		logPath:       filepath.Join(dir, "containerd.log"),
	}
	// Registered before anything can fail, so that a half-started daemon
	// is cleaned up too.
	t.Cleanup(c.cleanup)
	if err := os.WriteFile(c.config, []byte(c.configTOML()), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := c.start(); err != nil {
		t.Fatalf("start containerd %s: %v", version, err)
	}
	return c
}

// namespaceName is ID without the registration: the namespace names the
// cgroup ctr puts containers under, which the leak check of Runtime would
// otherwise take for a leaked container's cgroup while containerd still
// runs.
func namespaceName(t testing.TB) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return idPrefix(t.Name()) + "-" + hex.EncodeToString(b[:])
}

// maxConfigVersion reads the highest config format the containerd in
// binDir accepts from the first line of `containerd config default`.
func maxConfigVersion(binDir string) (int, error) {
	configVersionsMu.Lock()
	defer configVersionsMu.Unlock()
	if v, ok := configVersions[binDir]; ok {
		return v, nil
	}
	out, err := exec.Command(filepath.Join(binDir, "containerd"), "config", "default").Output()
	if err != nil {
		return 0, fmt.Errorf("containerd config default: %w", err)
	}
	m := regexp.MustCompile(`(?m)^version\s*=\s*(\d+)`).FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("containerd config default printed no version line")
	}
	v, _ := strconv.Atoi(string(m[1]))
	configVersions[binDir] = v
	return v, nil
}

var (
	configVersionsMu sync.Mutex
	configVersions   = map[string]int{}
)

// disabledPlugins keep containerd to the test's own directory and off the
// network: CRI would serve streaming on a TCP port and load CNI from /etc,
// NRI would listen on /var/run/nri/nri.sock (shared by every containerd
// on the host). Ids of plugins a version does not have are ignored, so one
// list serves every version: 1.x has the single io.containerd.grpc.v1.cri,
// 2.x split CRI into the images, runtime and podsandbox plugins beside it.
var disabledPlugins = []string{
	"io.containerd.grpc.v1.cri",
	"io.containerd.cri.v1.images",
	"io.containerd.cri.v1.runtime",
	"io.containerd.podsandbox.controller.v1.podsandbox",
	"io.containerd.nri.v1.nri",
}

// configTOML writes the config in the newest format the version accepts,
// so that no version logs a migration: config version 2 (containerd 1.x)
// and 3 (2.0 to 2.3) have [grpc] and [ttrpc] tables, version 4 (2.4 on)
// configures the servers as plugins. The runtime io.containerd.mini.v2 is
// registered under the CRI plugin's name for the version, which is what
// CRI clients would use; ctr names the runtime type on its command line
// and needs no registration.
func (c *Containerd) configTOML() string {
	var b strings.Builder
	fmt.Fprintf(&b, "version = %d\nroot = %q\nstate = %q\n", c.ConfigVersion, c.Root, c.State)
	quoted := make([]string, len(disabledPlugins))
	for i, p := range disabledPlugins {
		quoted[i] = strconv.Quote(p)
	}
	fmt.Fprintf(&b, "disabled_plugins = [%s]\n", strings.Join(quoted, ", "))
	// The host's config is not read (--config replaces it), and neither
	// are the drop-ins the default config of 2.x imports.
	b.WriteString("imports = []\n")
	if c.ConfigVersion < 4 {
		fmt.Fprintf(&b, "\n[grpc]\n  address = %q\n\n[ttrpc]\n  address = %q\n", c.Address, c.TTRPCAddress)
	}
	b.WriteString("\n[plugins]\n")
	if c.ConfigVersion >= 4 {
		fmt.Fprintf(&b, "  [plugins.\"io.containerd.server.v1.grpc\"]\n    address = %q\n", c.Address)
		fmt.Fprintf(&b, "  [plugins.\"io.containerd.server.v1.ttrpc\"]\n    address = %q\n", c.TTRPCAddress)
	}
	// The opt plugin would otherwise create /opt/containerd and put its
	// bin/ first in containerd's PATH, before the shim directory.
	fmt.Fprintf(&b, "  [plugins.\"io.containerd.internal.v1.opt\"]\n    path = %q\n", filepath.Join(c.Dir, "opt"))
	cri := `io.containerd.grpc.v1.cri`
	if c.ConfigVersion >= 3 {
		cri = `io.containerd.cri.v1.runtime`
	}
	fmt.Fprintf(&b, "  [plugins.%q.containerd.runtimes.mini]\n    runtime_type = %q\n", cri, MiniRuntime)
	return b.String()
}

// start starts the daemon with the config already written and waits until
// it answers.
func (c *Containerd) start() error {
	logf, err := os.OpenFile(c.logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(filepath.Join(c.BinDir, "containerd"), "--config", c.config)
	cmd.Env = c.env()
	cmd.Dir = c.Dir
	cmd.Stdout, cmd.Stderr = logf, logf
	// Should the test binary die before its cleanups run (a timeout's
	// panic, a closed stdout), the daemon goes with it rather than living
	// on with its sockets in a directory nobody will remove. Its shims and
	// containers do outlive it, as they would any containerd. A process
	// group of its own keeps a ^C at the terminal, meant for the program,
	// from shutting the daemon down under the cleanups that still need it
	// to delete the tasks (tests/bench cleans up on SIGINT).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := startOnLockedThread(cmd); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	c.mu.Lock()
	c.cmd, c.done = cmd, done
	c.mu.Unlock()

	deadline := time.Now().Add(containerdStartTimeout)
	var last []byte
	for {
		select {
		case <-done:
			return fmt.Errorf("containerd exited: %v; log:\n%s", cmd.ProcessState, c.logTail())
		default:
		}
		if _, err := os.Stat(c.Address); err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			out, err := c.ctrContext(ctx, "version").CombinedOutput()
			cancel()
			if err == nil {
				c.mu.Lock()
				c.started = true
				c.mu.Unlock()
				return nil
			}
			last = out
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no answer to ctr version after %v: %s; log:\n%s", containerdStartTimeout, last, c.logTail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var (
	spawnerOnce sync.Once
	spawnerReqs chan func()
)

// startOnLockedThread starts cmd from a thread that lives as long as the
// test binary: the kernel sends Pdeathsig when the thread that forked the
// child exits, not the process, and Go ends a thread when a goroutine
// that locked it returns, so a start from just any goroutine could have
// containerd killed in the middle of a test.
func startOnLockedThread(cmd *exec.Cmd) error {
	spawnerOnce.Do(func() {
		spawnerReqs = make(chan func())
		go func() {
			runtime.LockOSThread() // never unlocked: the thread must not be reused or end
			for f := range spawnerReqs {
				f()
			}
		}()
	})
	errc := make(chan error)
	spawnerReqs <- func() { errc <- cmd.Start() }
	return <-errc
}

// env is containerd's environment: the test's, with PATH searching the
// shim directory, then the version's binaries, then the system.
func (c *Containerd) env() []string {
	path := []string{c.ShimDir, c.BinDir, "/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"}
	env := []string{"PATH=" + strings.Join(path, ":")}
	for _, kv := range os.Environ() {
		// Whatever the test runs under must not redirect containerd or
		// its clients.
		if strings.HasPrefix(kv, "PATH=") || strings.HasPrefix(kv, "CONTAINERD_") || strings.HasPrefix(kv, "NOTIFY_SOCKET=") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// LookPath returns where containerd, and the shims it starts, find the
// binary name in their PATH (see env), or "" when they do not.
func (c *Containerd) LookPath(name string) string {
	for _, kv := range c.env() {
		path, ok := strings.CutPrefix(kv, "PATH=")
		if !ok {
			continue
		}
		for _, dir := range filepath.SplitList(path) {
			p := filepath.Join(dir, name)
			if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
				return p
			}
		}
	}
	return ""
}

// Pid returns the daemon's process id, 0 when it is not running.
func (c *Containerd) Pid() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd == nil {
		return 0
	}
	select {
	case <-c.done:
		return 0
	default:
		return c.cmd.Process.Pid
	}
}

// take hands over the running daemon (nil when none) to the caller that
// will end it.
func (c *Containerd) take() (*exec.Cmd, chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cmd, done := c.cmd, c.done
	c.cmd, c.done = nil, nil
	return cmd, done
}

// Kill SIGKILLs the daemon and waits for it to exit; shims and their
// containers keep running, as after a crash. Restart brings it back.
func (c *Containerd) Kill() {
	cmd, done := c.take()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

// Restart SIGKILLs the daemon (see Kill) and starts it again with the same
// config, directories and sockets, for live-restore tests: the new daemon
// reconnects to the running shims.
func (c *Containerd) Restart(t testing.TB) {
	t.Helper()
	c.Kill()
	if err := c.start(); err != nil {
		t.Fatalf("restart containerd %s: %v", c.Version, err)
	}
}

// stop asks the daemon to exit and SIGKILLs it if it has not after
// containerdStopGrace.
func (c *Containerd) stop() {
	cmd, done := c.take()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(containerdStopGrace):
		c.t.Errorf("containerd %s did not exit %v after SIGTERM: killed", c.Version, containerdStopGrace)
		_ = cmd.Process.Kill()
		<-done
	}
}

// Ctr returns an unstarted ctr of the daemon's version, talking to it in
// the test's namespace.
func (c *Containerd) Ctr(args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(c.BinDir, "ctr"), c.ctrArgs(args)...)
	cmd.Env = ctrEnv()
	return cmd
}

func (c *Containerd) ctrArgs(args []string) []string {
	return append([]string{"--address", c.Address, "--namespace", c.Namespace}, args...)
}

// ctrEnv is ctr's environment: from 2.2 on, ctr prints the daemon's
// deprecation warnings (cgroup v1 on this host) on stderr with every
// command, and containerd's variables would override nothing (the flags
// win) but confuse whoever reads a failure.
func ctrEnv() []string {
	env := []string{"CONTAINERD_SUPPRESS_DEPRECATION_WARNINGS=1"}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CONTAINERD_") {
			env = append(env, kv)
		}
	}
	return env
}

func (c *Containerd) ctrContext(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(c.BinDir, "ctr"), c.ctrArgs(args)...)
	cmd.Env = ctrEnv()
	// Output goes through pipes; a process that inherited them must not
	// keep us waiting once ctr has exited.
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// CtrExit runs ctr with args and returns what it printed and its exit
// status; it fails t only when ctr cannot run or takes over two minutes.
func (c *Containerd) CtrExit(t testing.TB, args ...string) (stdout, stderr string, exit int) {
	t.Helper()
	stdout, stderr, exit, err := c.ctr(args...)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return stdout, stderr, exit
}

// CtrMust runs ctr with args and returns its stdout; anything but exit
// status 0 fails t with all of ctr's output.
func (c *Containerd) CtrMust(t testing.TB, args ...string) string {
	t.Helper()
	stdout, stderr, exit := c.CtrExit(t, args...)
	if exit != 0 {
		t.Fatalf("ctr %s: exit status %d:\n%s%s", strings.Join(args, " "), exit, stdout, stderr)
	}
	return stdout
}

func (c *Containerd) ctr(args ...string) (stdout, stderr string, exit int, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	var outb, errb bytes.Buffer
	cmd := c.ctrContext(ctx, args...)
	cmd.Stdout, cmd.Stderr = &outb, &errb
	err = cmd.Run()
	stdout, stderr = outb.String(), errb.String()
	name := "ctr " + strings.Join(args, " ")
	if ctx.Err() != nil {
		return stdout, stderr, -1, fmt.Errorf("%s: no exit after %v:\n%s%s", name, runTimeout, stdout, stderr)
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
		return stdout, stderr, 0, nil
	case errors.As(err, &ee):
		return stdout, stderr, ee.ExitCode(), nil
	default:
		return stdout, stderr, -1, fmt.Errorf("%s: %w", name, err)
	}
}

// ctrList runs a ctr listing command with -q and returns its lines.
func (c *Containerd) ctrList(args ...string) ([]string, error) {
	stdout, stderr, exit, err := c.ctr(append(args, "-q")...)
	if err != nil {
		return nil, err
	}
	if exit != 0 {
		return nil, fmt.Errorf("ctr %s -q: exit status %d: %s", strings.Join(args, " "), exit, strings.TrimSpace(stdout+stderr))
	}
	return strings.Fields(stdout), nil
}

// logTail returns the end of containerd's log.
func (c *Containerd) logTail() []byte {
	b, err := os.ReadFile(c.logPath)
	if err != nil {
		return []byte(err.Error())
	}
	if len(b) > logTail {
		b = append([]byte("[...]\n"), b[len(b)-logTail:]...)
	}
	return b
}

// CheckNoLeaks fails t for each thing left of tasks that were deleted: a
// mount under Root or State, a shim of the namespace still running, a
// bundle directory under the runtime's state, a container cgroup or a
// process in one. It may be called while containerd runs, after the test
// deleted its containers; shims exit asynchronously, so it waits a few
// seconds for things to settle before it reports. Nothing is undone here;
// the cleanup of StartContainerd does that.
func (c *Containerd) CheckNoLeaks(t testing.TB) {
	t.Helper()
	var leaks []string
	deadline := time.Now().Add(shimExitGrace)
	for {
		leaks = c.findLeaks()
		if len(leaks) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, l := range leaks {
		t.Errorf("leak: %s", l)
	}
}

// findLeaks lists what CheckNoLeaks reports.
func (c *Containerd) findLeaks() []string {
	var found []string
	mounts, err := mountsUnder(c.Root, c.State)
	if err != nil {
		found = append(found, err.Error())
	}
	for _, m := range mounts {
		found = append(found, "mount "+m)
	}
	for pid := range c.ShimPids() {
		found = append(found, fmt.Sprintf("shim process %d (%s) of namespace %s", pid, cmdline(pid), c.Namespace))
	}
	bundles, err := os.ReadDir(c.bundleRoot())
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		found = append(found, err.Error())
	}
	for _, b := range bundles {
		found = append(found, "bundle "+filepath.Join(c.bundleRoot(), b.Name()))
	}
	cgroups, procs, err := c.containerCgroups()
	if err != nil {
		found = append(found, err.Error())
	}
	found = append(found, cgroupLeaks(cgroups)...)
	for pid := range procs {
		found = append(found, fmt.Sprintf("container process %d (%s)", pid, cmdline(pid)))
	}
	return found
}

// bundleRoot is where the v2 runtime keeps the bundles of the namespace.
func (c *Containerd) bundleRoot() string {
	return filepath.Join(c.State, "io.containerd.runtime.v2.task", c.Namespace)
}

// mountsUnder lists the mount points at or below dirs.
func mountsUnder(dirs ...string) ([]string, error) {
	var points []string
	for _, d := range dirs {
		infos, err := mountinfo.GetMounts(mountinfo.PrefixFilter(d))
		if err != nil {
			return nil, fmt.Errorf("read mount table: %w", err)
		}
		for _, m := range infos {
			points = append(points, m.Mountpoint)
		}
	}
	return points, nil
}

// ShimPids returns the running processes (pid -> start time) of this
// daemon's shims. Shims are reparented to init once started, so they are
// found by what ties them to this daemon alone, never by name: an argument
// naming its socket or namespace (shims get -address and -namespace), or
// the TTRPC_ADDRESS containerd puts in their environment. ctr, which also
// gets both flags, and the daemon are left out.
func (c *Containerd) ShimPids() map[int]uint64 {
	pids := map[int]uint64{}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return pids
	}
	self := os.Getpid()
	daemon := c.Pid()
	ctrPath := filepath.Join(c.BinDir, "ctr")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self || pid == daemon {
			continue
		}
		if exe, err := os.Readlink("/proc/" + e.Name() + "/exe"); err == nil && exe == ctrPath {
			continue
		}
		if !c.ownsProcess(pid) {
			continue
		}
		if start, ok := ProcStart(pid); ok {
			pids[pid] = start
		}
	}
	return pids
}

func (c *Containerd) ownsProcess(pid int) bool {
	p := "/proc/" + strconv.Itoa(pid)
	if b, err := os.ReadFile(p + "/cmdline"); err == nil {
		args := strings.Split(string(b), "\x00")
		for i, a := range args {
			if a == c.Address || a == "unix://"+c.Address {
				return true
			}
			if (a == "-namespace" || a == "--namespace") && i+1 < len(args) && args[i+1] == c.Namespace {
				return true
			}
		}
	}
	if b, err := os.ReadFile(p + "/environ"); err == nil {
		for _, kv := range bytes.Split(b, []byte{0}) {
			if string(kv) == "TTRPC_ADDRESS="+c.TTRPCAddress {
				return true
			}
		}
	}
	return false
}

// cmdline returns pid's command line for messages.
func cmdline(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return "gone"
	}
	return strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
}

// containerCgroups returns the cgroups left below the namespace's cgroup
// (ctr puts a container in /<namespace>/<id>; runc removes the container's
// cgroup but not the parent, which is no leak) and the processes in them.
func (c *Containerd) containerCgroups() ([]string, map[int]uint64, error) {
	parents, err := FindCgroups(func(name string) bool { return name == c.Namespace })
	procs := map[int]uint64{}
	var children []string
	for _, p := range parents {
		ents, rerr := os.ReadDir(p)
		if rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			err = errors.Join(err, rerr)
		}
		for _, e := range ents {
			if e.IsDir() {
				children = append(children, filepath.Join(p, e.Name()))
			}
		}
		_ = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return nil
			}
			b, _ := os.ReadFile(filepath.Join(path, "cgroup.procs"))
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil {
					if start, ok := ProcStart(pid); ok {
						procs[pid] = start
					}
				}
			}
			return nil
		})
	}
	return children, procs, err
}

// cgroupLeaks describes each container cgroup once, however many v1
// hierarchies it is in.
func cgroupLeaks(dirs []string) []string {
	points, _ := cgroupMounts()
	count := map[string]int{}
	var rels []string
	for _, d := range dirs {
		rel := d
		for _, p := range points {
			if strings.HasPrefix(d, p+"/") {
				rel = strings.TrimPrefix(d, p)
				break
			}
		}
		if count[rel] == 0 {
			rels = append(rels, rel)
		}
		count[rel]++
	}
	var leaks []string
	for _, rel := range rels {
		leaks = append(leaks, fmt.Sprintf("cgroup %s (in %d hierarchies)", rel, count[rel]))
	}
	return leaks
}

// cleanup runs when the test ends: see StartContainerd.
func (c *Containerd) cleanup() {
	t := c.t
	defer func() {
		if t.Failed() {
			t.Logf("containerd %s log (%s):\n%s", c.Version, c.logPath, c.logTail())
		}
		// Never remove through a mount that would not go: it could
		// reach outside the test's directory.
		if left, err := mountsUnder(c.Dir); err != nil || len(left) > 0 {
			t.Errorf("cleanup: %s kept, mounts left below it: %q %v", c.Dir, left, err)
			return
		}
		if err := os.RemoveAll(c.Dir); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	}()
	// A test that killed the daemon and left it dead still has shims
	// running: a new daemon reconnects to them and deletes their tasks the
	// way a user would.
	c.mu.Lock()
	started := c.started
	c.mu.Unlock()
	if started && c.Pid() == 0 {
		if _, err := os.Stat(c.config); err == nil {
			if err := c.start(); err != nil {
				t.Errorf("cleanup: restart containerd to delete the tasks: %v", err)
			}
		}
	}
	// The ids of containers whose leftovers may need removing by hand:
	// those containerd lists, and those with a bundle (when containerd
	// could not be asked).
	ids := map[string]bool{}
	if c.Pid() != 0 {
		for _, id := range c.deleteAll() {
			ids[id] = true
		}
	}
	c.stop()
	bundles, _ := os.ReadDir(c.bundleRoot())
	for _, b := range bundles {
		ids[b.Name()] = true
	}

	// What is still there now was not cleaned up by the shims: report it
	// and undo it, so that the next test starts clean.
	var leaks []string
	if live := killLive(c.ShimPids(), shimExitGrace); len(live) > 0 {
		for _, pid := range live {
			leaks = append(leaks, fmt.Sprintf("shim process %d of namespace %s still running (killed)", pid, c.Namespace))
		}
		// Killed shims leave their sockets behind.
		for id := range ids {
			for _, s := range c.shimSockets(id) {
				removeSocket(s)
			}
		}
	}
	_, procs, _ := c.containerCgroups()
	for _, pid := range killLive(procs, 0) {
		leaks = append(leaks, fmt.Sprintf("container process %d still running (killed)", pid))
	}
	mounts, err := UnmountUnder(c.Dir)
	if err != nil {
		leaks = append(leaks, err.Error())
	}
	for _, m := range mounts {
		leaks = append(leaks, "mount "+m)
	}
	children, _, err := c.containerCgroups()
	if err != nil {
		leaks = append(leaks, err.Error())
	}
	leaks = append(leaks, cgroupLeaks(children)...)
	// The namespace's own cgroups are ctr's doing, not a leak.
	if _, err := removeCgroupsNamed([]string{c.Namespace}); err != nil {
		leaks = append(leaks, err.Error())
	}
	// The shims keep their runtime's state in /run/containerd/runc/<namespace>
	// and /run/containerd/runmini/<namespace>; only the empty directory may
	// be left of it (and runmini's compiled seccomp programs).
	for _, rt := range []string{"runc", "runmini"} {
		root := filepath.Join("/run/containerd", rt, c.Namespace)
		if ents, err := os.ReadDir(root); err == nil {
			for _, e := range ents {
				if rt != "runmini" || e.Name() != SeccompCacheDir {
					leaks = append(leaks, rt+" state "+filepath.Join(root, e.Name()))
				}
			}
			_ = os.RemoveAll(root)
		}
	}
	removeFIFOs(ids)
	for _, l := range leaks {
		t.Errorf("leak: %s", l)
	}
}

// fifoRoot is where ctr makes the fifos of a task's stdio, one directory
// per task, removed when the task is deleted through containerd.
const fifoRoot = "/run/containerd/fifo"

// removeFIFOs removes the fifo directories of the containers ids: those
// whose every fifo is named <id>-stdin, -stdout or -stderr. They are
// ctr's, not the shim's, so they are no leak; they are left when a task
// was never deleted through containerd.
func removeFIFOs(ids map[string]bool) {
	dirs, _ := os.ReadDir(fifoRoot)
	for _, d := range dirs {
		dir := filepath.Join(fifoRoot, d.Name())
		ents, err := os.ReadDir(dir)
		if err != nil || len(ents) == 0 {
			continue
		}
		ours := true
		for _, e := range ents {
			i := strings.LastIndexByte(e.Name(), '-')
			if i < 0 || !ids[e.Name()[:i]] {
				ours = false
				break
			}
		}
		if ours {
			_ = os.RemoveAll(dir)
		}
	}
}

// deleteAll kills and deletes every task, then every container, of the
// namespace, and returns the container ids.
func (c *Containerd) deleteAll() []string {
	t := c.t
	tasks, err := c.ctrList("task", "ls")
	if err != nil {
		t.Errorf("cleanup: %v", err)
	}
	for _, id := range tasks {
		// A task already stopped has nothing to kill.
		_, _, _, _ = c.ctr("task", "kill", "-s", "SIGKILL", id)
	}
	for _, id := range tasks {
		// --force waits for the kill and deletes a task in any state.
		if out, errOut, exit, err := c.ctr("task", "delete", "--force", id); err != nil || exit != 0 {
			t.Errorf("cleanup: ctr task delete --force %s: exit status %d, %v: %s", id, exit, err, strings.TrimSpace(out+errOut))
		}
	}
	containers, err := c.ctrList("container", "ls")
	if err != nil {
		t.Errorf("cleanup: %v", err)
	}
	for _, id := range containers {
		if out, errOut, exit, err := c.ctr("container", "delete", id); err != nil || exit != 0 {
			t.Errorf("cleanup: ctr container delete %s: exit status %d, %v: %s", id, exit, err, strings.TrimSpace(out+errOut))
		}
	}
	return slices.Compact(slices.Sorted(slices.Values(append(tasks, containers...))))
}

// shimSockets returns where the shim of container id has its sockets:
// the address the shim wrote into its bundle (address, and bootstrap.json
// in 2.x), and where containerd's shim.SocketAddress puts them (as the
// runc shim does), named after a hash of the daemon's address, namespace
// and id, with a second one for the debug server of a 2.x shim.
func (c *Containerd) shimSockets(id string) []string {
	var socks []string
	bundle := filepath.Join(c.bundleRoot(), id)
	if b, err := os.ReadFile(filepath.Join(bundle, "address")); err == nil {
		socks = append(socks, strings.TrimPrefix(strings.TrimSpace(string(b)), "unix://"))
	}
	if b, err := os.ReadFile(filepath.Join(bundle, "bootstrap.json")); err == nil {
		var boot struct {
			Address string `json:"address"`
		}
		if json.Unmarshal(b, &boot) == nil && boot.Address != "" {
			socks = append(socks, strings.TrimPrefix(boot.Address, "unix://"))
		}
	}
	base := filepath.Join(c.Address, c.Namespace, id)
	for _, p := range []string{base, filepath.Join(base, "debug")} {
		sum := sha256.Sum256([]byte(p))
		socks = append(socks, filepath.Join("/run/containerd/s", hex.EncodeToString(sum[:])))
	}
	return socks
}

// removeSocket removes path if it is a unix socket: the address came from
// a file a shim wrote, and must not make us remove anything else.
func removeSocket(path string) {
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&fs.ModeSocket != 0 {
		_ = os.Remove(path)
	}
}
