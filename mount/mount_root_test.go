package mount

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/moby/sys/mountinfo"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// The root tests run in three processes: the test itself; a "host"
// helper in a private mount namespace of its own, standing in for the
// host (it builds the rootfs and fixtures and, after the container is
// gone, checks nothing reached it); and a "container" helper, cloned into
// a new mount and pid namespace from the host helper, that runs Prepare,
// MountConsole, PivotRoot and Finalize and then checks what it sees.

const (
	helperEnv   = "RUNMINI_MOUNT_TEST_HELPER"
	scenarioEnv = "RUNMINI_MOUNT_TEST_SCENARIO"
)

type scenario struct {
	Name   string
	Base   string // t.TempDir() of the test
	Config Config
	// SharedParent: the host helper mounts a shared tmpfs at Base first,
	// so the rootfs lies on a shared mount, as on systemd hosts.
	SharedParent bool
	Console      bool
	// PrepareFails: Prepare must fail and leave nothing behind.
	PrepareFails bool
	// Unique names the escape scenario aims at on the host.
	Escape []string
}

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "host":
		os.Exit(helperMain(hostMain))
	case "container":
		os.Exit(helperMain(containerMain))
	}
	os.Exit(m.Run())
}

func helperMain(run func(*scenario) []string) int {
	var sc scenario
	if err := json.Unmarshal([]byte(os.Getenv(scenarioEnv)), &sc); err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: decode scenario: %v\n", err)
		return 1
	}
	failures := run(&sc)
	for _, f := range failures {
		fmt.Fprintf(os.Stderr, "FAIL [%s %s]: %s\n", os.Getenv(helperEnv), sc.Name, f)
	}
	if len(failures) > 0 {
		return 1
	}
	return 0
}

func runHelper(kind string, sc *scenario, cloneflags uintptr) ([]byte, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	enc, err := json.Marshal(sc)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+kind, scenarioEnv+"="+string(enc))
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: cloneflags, Pdeathsig: syscall.SIGKILL}
	return cmd.CombinedOutput()
}

// runScenario runs sc through both helpers and checks that the test's own
// mount namespace is untouched.
func runScenario(t *testing.T, sc *scenario) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates mount namespaces and mounts")
	}
	if sc.Base == "" {
		sc.Base = t.TempDir()
	}
	if sc.Config.Rootfs == "" {
		sc.Config.Rootfs = filepath.Join(sc.Base, "rootfs")
	}
	// Only mounts at or below the scenario's own directory count: other
	// tests (other packages run in parallel) may mount elsewhere meanwhile.
	before, err := mountsUnder(sc.Base)
	if err != nil {
		t.Fatal(err)
	}
	out, err := runHelper("host", sc, unix.CLONE_NEWNS)
	if errors.Is(err, unix.EPERM) {
		t.Skipf("cannot create a mount namespace here: %v", err)
	}
	if err != nil {
		t.Fatalf("scenario %s: %v\n%s", sc.Name, err, out)
	}
	if len(out) > 0 {
		t.Logf("%s", out)
	}
	after, err := mountsUnder(sc.Base)
	if err != nil {
		t.Fatal(err)
	}
	if before != after {
		t.Errorf("the test's mount namespace changed under %s:\nbefore:\n%s\nafter:\n%s", sc.Base, before, after)
	}
}

// mountsUnder returns the mountinfo lines of this process whose mount point
// is dir or below it.
func mountsUnder(dir string) (string, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	var out strings.Builder
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			out.WriteString(line + "\n")
		}
	}
	return out.String(), nil
}

// hostMain is the stand-in host: it builds the scenario, runs the
// container helper and checks that nothing leaked back.
func hostMain(sc *scenario) []string {
	var fails []string
	failf := func(format string, a ...any) { fails = append(fails, fmt.Sprintf(format, a...)) }
	if err := unix.Mount("", "/", "", unix.MS_PRIVATE|unix.MS_REC, ""); err != nil {
		return []string{fmt.Sprintf("make / rprivate: %v", err)}
	}
	if sc.SharedParent {
		if err := unix.Mount("tmpfs", sc.Base, "tmpfs", 0, "mode=755"); err != nil {
			return []string{fmt.Sprintf("mount shared parent: %v", err)}
		}
		if err := unix.Mount("", sc.Base, "", unix.MS_SHARED, ""); err != nil {
			return []string{fmt.Sprintf("make parent shared: %v", err)}
		}
	}
	if err := buildFixtures(sc); err != nil {
		return []string{fmt.Sprintf("build fixtures: %v", err)}
	}
	before, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return []string{err.Error()}
	}
	flags := uintptr(unix.CLONE_NEWNS | unix.CLONE_NEWPID)
	if sc.Config.NewCgroupNS {
		flags |= unix.CLONE_NEWCGROUP
	}
	out, err := runHelper("container", sc, flags)
	os.Stderr.Write(out)
	if err != nil {
		failf("container helper: %v", err)
	}
	after, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return append(fails, err.Error())
	}
	if !bytes.Equal(before, after) {
		failf("mounts leaked to the host:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	for _, p := range sc.Escape {
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			failf("%s exists on the host (err %v)", p, err)
			_ = os.RemoveAll(p)
		}
	}
	return fails
}

func mkfile(p, content string, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		return err
	}
	return os.Chmod(p, mode)
}

// buildFixtures makes the rootfs (plain directories and files) and the
// host-side bind sources.
func buildFixtures(sc *scenario) error {
	rootfs, host := sc.Config.Rootfs, filepath.Join(sc.Base, "host")
	steps := []func() error{
		func() error { return os.MkdirAll(rootfs, 0o755) },
		func() error { return mkfile(filepath.Join(rootfs, "etc/marker"), "rootfs", 0o644) },
		func() error { return mkfile(filepath.Join(rootfs, "masked-dir/secret"), "secret", 0o644) },
		func() error { return mkfile(filepath.Join(rootfs, "masked-file"), "secret", 0o644) },
		func() error { return os.MkdirAll(filepath.Join(rootfs, "rodir"), 0o755) },
		func() error { return mkfile(filepath.Join(rootfs, "rofile"), "ro", 0o666) },
		func() error { return os.MkdirAll(filepath.Join(rootfs, "copyup/d"), 0o700) },
		func() error { return mkfile(filepath.Join(rootfs, "copyup/a"), "copied", 0o640) },
		func() error { return mkfile(filepath.Join(rootfs, "copyup/d/b"), "deep", 0o600) },
		func() error { return os.Chown(filepath.Join(rootfs, "copyup/d/b"), 1000, 1001) },
		func() error { return os.Symlink("a", filepath.Join(rootfs, "copyup/l")) },
		func() error { return unix.Mkfifo(filepath.Join(rootfs, "copyup/fifo"), 0o620) },
		func() error { return os.Chmod(filepath.Join(rootfs, "copyup/fifo"), 0o620) },
		func() error { return os.Chmod(filepath.Join(rootfs, "copyup"), 0o751) },
		// Symlinks that try to lead mounts out of the rootfs.
		func() error { return os.Symlink("../../../../../../../etc", filepath.Join(rootfs, "evil")) },
		func() error { return os.Symlink("/etc", filepath.Join(rootfs, "evil-abs")) },
		func() error {
			return os.Symlink("../outside", filepath.Join(rootfs, "evil-up"))
		},
		func() error { return os.Symlink("/proc", filepath.Join(rootfs, "plink")) },
		func() error { return mkfile(filepath.Join(host, "dir/hello"), "hello", 0o644) },
		func() error { return mkfile(filepath.Join(host, "file"), "host file", 0o644) },
		func() error { return os.MkdirAll(filepath.Join(host, "rdir/sub"), 0o755) },
		func() error { return os.MkdirAll(filepath.Join(host, "shared"), 0o755) },
		// A submount under the rbind source, to see rro reach it.
		func() error { return unix.Mount("tmpfs", filepath.Join(host, "rdir/sub"), "tmpfs", 0, "") },
	}
	for _, s := range steps {
		if err := s(); err != nil {
			return err
		}
	}
	for _, p := range sc.Escape {
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%s already exists on the host", p)
		}
	}
	return nil
}

// containerMain is the container's init: the code under test, then checks.
func containerMain(sc *scenario) []string {
	runtime.LockOSThread()
	c := &sc.Config
	if sc.PrepareFails {
		return checkPrepareFails(sc)
	}
	var consoleRdev uint64
	var ptmx *os.File
	if err := Prepare(c); err != nil {
		return []string{fmt.Sprintf("Prepare: %v", err)}
	}
	if sc.Console {
		var slave string
		var err error
		ptmx, slave, err = openPty()
		if err != nil {
			return []string{err.Error()}
		}
		defer ptmx.Close()
		var st unix.Stat_t
		if err := unix.Stat(slave, &st); err != nil {
			return []string{err.Error()}
		}
		consoleRdev = st.Rdev
		if err := MountConsole(c, slave); err != nil {
			return []string{fmt.Sprintf("MountConsole: %v", err)}
		}
	}
	if err := PivotRoot(c); err != nil {
		return []string{fmt.Sprintf("PivotRoot: %v", err)}
	}
	if err := Finalize(c); err != nil {
		return []string{fmt.Sprintf("Finalize: %v", err)}
	}
	ck := &checker{sc: sc}
	ck.commonChecks()
	if sc.Console {
		ck.checkDevice("/dev/console", unix.S_IFCHR, consoleRdev, 0, -1, -1)
	}
	check, ok := containerChecks[sc.Name]
	if !ok {
		return []string{"no checks for scenario " + sc.Name}
	}
	check(ck)
	return ck.fails
}

func openPty() (*os.File, string, error) {
	f, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, "", fmt.Errorf("open ptmx: %w", err)
	}
	if err := unix.IoctlSetPointerInt(int(f.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		f.Close()
		return nil, "", fmt.Errorf("unlockpt: %w", err)
	}
	n, err := unix.IoctlGetUint32(int(f.Fd()), unix.TIOCGPTN)
	if err != nil {
		f.Close()
		return nil, "", fmt.Errorf("ptsname: %w", err)
	}
	return f, "/dev/pts/" + strconv.Itoa(int(n)), nil
}

type checker struct {
	sc     *scenario
	fails  []string
	mounts map[string]*mountinfo.Info
}

func (ck *checker) errorf(format string, a ...any) {
	ck.fails = append(ck.fails, fmt.Sprintf(format, a...))
}

// mount is the topmost mount at p in the container.
func (ck *checker) mount(p string) *mountinfo.Info {
	if ck.mounts == nil {
		infos, err := mountinfo.GetMounts(nil)
		if err != nil {
			ck.errorf("read mountinfo: %v", err)
			return nil
		}
		ck.mounts = map[string]*mountinfo.Info{}
		for _, i := range infos {
			ck.mounts[i.Mountpoint] = i
		}
	}
	m := ck.mounts[p]
	if m == nil {
		ck.errorf("no mount at %s", p)
	}
	return m
}

func hasMountOpt(m *mountinfo.Info, opt string) bool {
	for _, o := range strings.Split(m.Options, ",") {
		if o == opt {
			return true
		}
	}
	return false
}

func (ck *checker) expectMount(p, fstype string, opts ...string) *mountinfo.Info {
	m := ck.mount(p)
	if m == nil {
		return nil
	}
	if fstype != "" && m.FSType != fstype {
		ck.errorf("%s: fstype %s, want %s", p, m.FSType, fstype)
	}
	for _, o := range opts {
		if !hasMountOpt(m, o) {
			ck.errorf("%s: options %q lack %s", p, m.Options, o)
		}
	}
	return m
}

func (ck *checker) checkDevice(p string, typ uint32, rdev uint64, perm uint32, uid, gid int) {
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		ck.errorf("stat %s: %v", p, err)
		return
	}
	if st.Mode&unix.S_IFMT != typ {
		ck.errorf("%s: type %#o, want %#o", p, st.Mode&unix.S_IFMT, typ)
	}
	if typ != unix.S_IFIFO && st.Rdev != rdev {
		ck.errorf("%s: device %d:%d, want %d:%d", p, unix.Major(st.Rdev), unix.Minor(st.Rdev), unix.Major(rdev), unix.Minor(rdev))
	}
	if perm != 0 && st.Mode&0o7777 != perm {
		ck.errorf("%s: mode %#o, want %#o", p, st.Mode&0o7777, perm)
	}
	if uid >= 0 && int(st.Uid) != uid || gid >= 0 && int(st.Gid) != gid {
		ck.errorf("%s: owner %d:%d, want %d:%d", p, st.Uid, st.Gid, uid, gid)
	}
}

func (ck *checker) checkSymlink(p, want string) {
	got, err := os.Readlink(p)
	if err != nil || got != want {
		ck.errorf("readlink %s = %q, %v; want %q", p, got, err, want)
	}
}

func (ck *checker) checkFile(p, want string) {
	got, err := os.ReadFile(p)
	if err != nil || string(got) != want {
		ck.errorf("read %s = %q, %v; want %q", p, got, err, want)
	}
}

func (ck *checker) expectWriteFails(dir string, want error) {
	f, err := os.CreateTemp(dir, "w")
	if err == nil {
		f.Close()
		os.Remove(f.Name())
		ck.errorf("%s is writable", dir)
		return
	}
	if !errors.Is(err, want) {
		ck.errorf("write in %s: %v, want %v", dir, err, want)
	}
}

// commonChecks hold for every scenario: we are in the rootfs, at "/",
// and nothing of the host's mount tree is visible.
func (ck *checker) commonChecks() {
	if wd, err := os.Getwd(); err != nil || wd != "/" {
		ck.errorf("cwd = %q, %v; want /", wd, err)
	}
	ck.checkFile("/etc/marker", "rootfs")
	infos, err := mountinfo.GetMounts(nil)
	if err != nil {
		ck.errorf("mountinfo: %v", err)
		return
	}
	for _, i := range infos {
		if strings.HasPrefix(i.Mountpoint, ck.sc.Base) {
			ck.errorf("host path visible in the container: %s", i.Mountpoint)
		}
	}
}

var containerChecks = map[string]func(ck *checker){
	"full":        checkFull,
	"escape":      checkEscape,
	"nopivot":     checkNoPivot,
	"cgroupns":    checkCgroupNS,
	"userns-devs": checkUserNSDevices,
	"propagation": checkPropagation,
}

func fileMode(m os.FileMode) *os.FileMode { return &m }
func id(v uint32) *uint32                 { return &v }

func defaultMounts() []specs.Mount {
	return []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"}},
	}
}

func TestFull(t *testing.T) {
	base := t.TempDir()
	host := filepath.Join(base, "host")
	sc := &scenario{Name: "full", Base: base, Console: true}
	sc.Config = Config{
		Mounts: append(defaultMounts(),
			specs.Mount{Destination: "/data", Type: "bind", Source: filepath.Join(host, "dir"), Options: []string{"rbind", "ro", "nosuid"}},
			specs.Mount{Destination: "/etc/hostfile", Type: "bind", Source: filepath.Join(host, "file"), Options: []string{"bind", "ro"}},
			specs.Mount{Destination: "/rdata", Type: "none", Source: filepath.Join(host, "rdir"), Options: []string{"rbind", "rro", "rnosuid", "rprivate"}},
			specs.Mount{Destination: "/copyup", Type: "tmpfs", Source: "tmpfs", Options: []string{"tmpcopyup", "ro", "nodev"}},
			specs.Mount{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"nodev", "noexec", "uid=1234", "size=1m"}},
			specs.Mount{Destination: "/tmp2", Type: "tmpfs", Source: "tmpfs", Options: []string{"size=1m"}},
			specs.Mount{Destination: "/tmp2", Type: "tmpfs", Source: "tmpfs", Options: []string{"remount", "ro", "nosuid", "size=2m", "shared"}},
			specs.Mount{Destination: "/shared-bind", Type: "bind", Source: filepath.Join(host, "shared"), Options: []string{"bind", "shared"}},
		),
		Devices: []specs.LinuxDevice{
			{Path: "/dev/fuse-x", Type: "c", Major: 10, Minor: 229, FileMode: fileMode(0o620), UID: id(1000), GID: id(1001)},
			{Path: "/dev/loop-x", Type: "b", Major: 7, Minor: 200, FileMode: fileMode(0o600)},
			{Path: "/dev/fifo-x", Type: "p", FileMode: fileMode(0o640)},
			{Path: "/dev/sub/unbuf-x", Type: "u", Major: 4, Minor: 64},
			{Path: "/dev/null", Type: "c", Major: 1, Minor: 3, FileMode: fileMode(0o666)},
		},
		MaskedPaths: []string{"/proc/kcore", "/proc/keys", "/proc/acpi", "/proc/timer_list", "/proc/scsi",
			"/masked-dir", "/masked-file", "/does-not-exist"},
		ReadonlyPaths: []string{"/proc/sys", "/proc/irq", "/rodir", "/rofile", "/missing-ro"},
		ReadonlyRoot:  true,
	}
	runScenario(t, sc)
}

func checkFull(ck *checker) {
	ck.expectMount("/", "", "ro")
	ck.expectMount("/proc", "proc", "nosuid", "nodev", "noexec")
	ck.expectMount("/dev", "tmpfs", "nosuid")
	ck.expectMount("/dev/pts", "devpts", "nosuid", "noexec")
	ck.expectMount("/dev/shm", "tmpfs", "nosuid", "nodev", "noexec")
	ck.expectMount("/dev/mqueue", "mqueue", "nosuid", "nodev", "noexec")
	ck.expectMount("/sys", "sysfs", "ro", "nosuid")
	ck.expectMount("/sys/fs/cgroup", "tmpfs", "ro", "nosuid", "nodev", "noexec")

	// Without a cgroup namespace each hierarchy is a bind of our own
	// cgroup: the mount's root is the cgroup we are in.
	self, err := readSelfCgroup()
	if err != nil {
		ck.errorf("%v", err)
	}
	hs, err := hostHierarchies("/nonexistent", self)
	if err != nil {
		ck.errorf("%v", err)
	}
	if len(hs) == 0 {
		ck.errorf("no cgroup hierarchies visible in the container")
	}
	for _, h := range hs {
		if !strings.HasPrefix(h.mountpoint, "/sys/fs/cgroup/") {
			continue
		}
		key := ""
		if !h.v2 {
			key = strings.Join(h.controllers, ",")
		}
		m := ck.expectMount(h.mountpoint, "", "ro", "nosuid", "nodev", "noexec")
		if m != nil && self[key] != "" && m.Root != self[key] {
			ck.errorf("%s shows cgroup %s, want our own %s", h.mountpoint, m.Root, self[key])
		}
	}
	if m := ck.mount("/sys/fs/cgroup/memory"); m != nil && m.FSType != "cgroup" {
		ck.errorf("/sys/fs/cgroup/memory is %s", m.FSType)
	}

	ck.expectMount("/data", "", "ro", "nosuid")
	ck.checkFile("/data/hello", "hello")
	ck.expectWriteFails("/data", unix.EROFS)
	ck.expectMount("/etc/hostfile", "", "ro")
	ck.checkFile("/etc/hostfile", "host file")
	ck.expectMount("/rdata", "", "ro", "nosuid")
	ck.expectMount("/rdata/sub", "tmpfs", "ro", "nosuid")
	if m := ck.mount("/rdata"); m != nil && m.Optional != "" {
		ck.errorf("/rdata: propagation %q, want private", m.Optional)
	}
	if m := ck.expectMount("/tmp2", "tmpfs", "ro", "nosuid"); m != nil {
		if !strings.Contains(m.VFSOptions, "size=2048k") {
			ck.errorf("/tmp2: %q, want size=2048k after the remount", m.VFSOptions)
		}
		if !hasOptional(m.Optional, "shared:") {
			ck.errorf("/tmp2: propagation %q, want shared", m.Optional)
		}
	}
	if m := ck.mount("/shared-bind"); m != nil && !hasOptional(m.Optional, "shared:") {
		ck.errorf("/shared-bind: propagation %q, want shared", m.Optional)
	}

	ck.expectMount("/copyup", "tmpfs", "ro", "nodev")
	ck.checkFile("/copyup/a", "copied")
	ck.checkFile("/copyup/d/b", "deep")
	ck.checkSymlink("/copyup/l", "a")
	for p, want := range map[string]uint32{"/copyup": 0o751, "/copyup/a": 0o640, "/copyup/d": 0o700, "/copyup/d/b": 0o600, "/copyup/fifo": 0o620} {
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			ck.errorf("%v", err)
		} else if st.Mode&0o7777 != want {
			ck.errorf("%s: mode %#o, want %#o", p, st.Mode&0o7777, want)
		}
	}
	ck.checkDevice("/copyup/fifo", unix.S_IFIFO, 0, 0o620, -1, -1)
	ck.checkDevice("/copyup/d/b", unix.S_IFREG, 0, 0o600, 1000, 1001)

	ck.expectMount("/tmp", "tmpfs", "nodev", "noexec")
	var st unix.Stat_t
	if err := unix.Stat("/tmp", &st); err != nil || st.Uid != 1234 {
		ck.errorf("/tmp owner %d, %v; want 1234 (data option uid=1234)", st.Uid, err)
	}

	// Devices.
	for _, d := range defaultDevices {
		ck.checkDevice(d.Path, unix.S_IFCHR, unix.Mkdev(uint32(d.Major), uint32(d.Minor)), 0o666, 0, 0)
	}
	ck.checkDevice("/dev/fuse-x", unix.S_IFCHR, unix.Mkdev(10, 229), 0o620, 1000, 1001)
	ck.checkDevice("/dev/loop-x", unix.S_IFBLK, unix.Mkdev(7, 200), 0o600, 0, 0)
	ck.checkDevice("/dev/fifo-x", unix.S_IFIFO, 0, 0o640, 0, 0)
	ck.checkDevice("/dev/sub/unbuf-x", unix.S_IFCHR, unix.Mkdev(4, 64), 0o666, 0, 0)
	for p, want := range map[string]string{
		"/dev/fd": "/proc/self/fd", "/dev/stdin": "/proc/self/fd/0", "/dev/stdout": "/proc/self/fd/1",
		"/dev/stderr": "/proc/self/fd/2", "/dev/core": "/proc/kcore", "/dev/ptmx": "pts/ptmx",
	} {
		ck.checkSymlink(p, want)
	}
	if f, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0); err != nil {
		ck.errorf("open /dev/ptmx: %v", err)
	} else {
		f.Close()
	}
	if err := os.WriteFile("/dev/null", []byte("x"), 0); err != nil {
		ck.errorf("write /dev/null: %v", err)
	}

	// Masked paths.
	for _, p := range []string{"/proc/kcore", "/proc/keys", "/proc/timer_list", "/masked-file"} {
		if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) && strings.HasPrefix(p, "/proc/") {
			continue // not built into this kernel
		}
		ck.checkFile(p, "")
		ck.checkDevice(p, unix.S_IFCHR, unix.Mkdev(1, 3), 0, -1, -1)
	}
	for _, p := range []string{"/proc/acpi", "/proc/scsi", "/masked-dir"} {
		if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) && strings.HasPrefix(p, "/proc/") {
			continue
		}
		ck.expectMount(p, "tmpfs", "ro")
		if names, err := os.ReadDir(p); err != nil || len(names) != 0 {
			ck.errorf("%s: %v entries, %v; want empty", p, len(names), err)
		}
	}
	if _, err := os.Stat("/does-not-exist"); !errors.Is(err, os.ErrNotExist) {
		ck.errorf("/does-not-exist: %v", err)
	}

	// Readonly paths keep the flags of what they cover.
	ck.expectMount("/proc/sys", "proc", "ro", "nosuid", "nodev", "noexec")
	if err := os.WriteFile("/proc/sys/kernel/hostname", []byte("x"), 0); !errors.Is(err, unix.EROFS) {
		ck.errorf("write /proc/sys/kernel/hostname: %v, want EROFS", err)
	}
	ck.expectMount("/proc/irq", "proc", "ro", "nosuid", "nodev", "noexec")
	ck.expectMount("/rodir", "", "ro")
	ck.expectMount("/rofile", "", "ro")
	if err := os.WriteFile("/rofile", []byte("x"), 0); !errors.Is(err, unix.EROFS) {
		ck.errorf("write /rofile: %v, want EROFS", err)
	}
	ck.expectWriteFails("/", unix.EROFS)
	ck.expectWriteFails("/rodir", unix.EROFS)
}

func TestEscape(t *testing.T) {
	base := t.TempDir()
	u := fmt.Sprintf("runmini-mount-test-%d", os.Getpid())
	sc := &scenario{Name: "escape", Base: base}
	sc.Escape = []string{
		"/etc/" + u + "-sub1", "/etc/" + u + "-sub2", "/etc/" + u + "-file",
		filepath.Join(base, "outside"),
	}
	sc.Config = Config{
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc"},
			{Destination: "/evil/" + u + "-sub1", Type: "tmpfs", Source: "tmpfs"},
			{Destination: "/evil-abs/" + u + "-sub2", Type: "tmpfs", Source: "tmpfs"},
			{Destination: "/evil/" + u + "-file", Type: "bind", Source: filepath.Join(base, "host/file"), Options: []string{"bind"}},
			{Destination: "/evil-up/in", Type: "tmpfs", Source: "tmpfs", Options: []string{"size=1m"}},
		},
	}
	runScenario(t, sc)
}

func checkEscape(ck *checker) {
	u := filepath.Base(ck.sc.Escape[0])
	u = strings.TrimSuffix(u, "-sub1")
	ck.expectMount("/etc/"+u+"-sub1", "tmpfs")
	ck.expectMount("/etc/"+u+"-sub2", "tmpfs")
	ck.expectMount("/etc/"+u+"-file", "")
	ck.checkFile("/etc/"+u+"-file", "host file")
	// "../outside" from the rootfs's top stays in it: it names /outside.
	ck.expectMount("/outside/in", "tmpfs")
	ck.checkSymlink("/evil", "../../../../../../../etc")
}

func TestPrepareFailureUndoes(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mounts  func(base string) []specs.Mount
		devices []specs.LinuxDevice
	}{
		{
			name: "proc-symlink",
			mounts: func(base string) []specs.Mount {
				return []specs.Mount{
					{Destination: "/proc", Type: "proc", Source: "proc"},
					{Destination: "/new/dir", Type: "tmpfs", Source: "tmpfs"},
					{Destination: "/new-file", Type: "bind", Source: filepath.Join(base, "host/file"), Options: []string{"bind", "ro"}},
					// Through a symlink into procfs: refused.
					{Destination: "/plink/sys", Type: "tmpfs", Source: "tmpfs"},
				}
			},
		},
		{
			name: "missing-source",
			mounts: func(base string) []specs.Mount {
				return []specs.Mount{
					{Destination: "/new/dir", Type: "tmpfs", Source: "tmpfs"},
					{Destination: "/x/y", Type: "bind", Source: filepath.Join(base, "does-not-exist"), Options: []string{"bind"}},
				}
			},
		},
		{
			name: "device",
			mounts: func(string) []specs.Mount {
				return []specs.Mount{{Destination: "/dev", Type: "tmpfs", Source: "tmpfs"}}
			},
			devices: []specs.LinuxDevice{
				{Path: "/new/dev/x", Type: "c", Major: 1, Minor: 3},
				{Path: "/etc/marker/x", Type: "c", Major: 1, Minor: 3},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := t.TempDir()
			sc := &scenario{Name: "undo-" + tc.name, Base: base, PrepareFails: true}
			sc.Config = Config{Mounts: tc.mounts(base), Devices: tc.devices}
			runScenario(t, sc)
		})
	}
}

func TestPrepareRejectsBadInput(t *testing.T) {
	for _, c := range []*Config{
		{Rootfs: "relative/rootfs"},
		{Rootfs: "/"},
		{Rootfs: "/nonexistent", RootfsPropagation: "sideways"},
		{Rootfs: "/nonexistent", Mounts: []specs.Mount{{Destination: "/", Type: "tmpfs"}}},
		{Rootfs: "/nonexistent", Devices: []specs.LinuxDevice{{Path: "/dev/x", Type: "x"}}},
		{Rootfs: "/nonexistent", Devices: []specs.LinuxDevice{{Path: "/dev/x", Type: "c", Major: -1}}},
	} {
		// Rejected before anything is touched, so this runs unprivileged
		// and in the test's own namespace.
		if err := Prepare(c); err == nil {
			t.Errorf("Prepare(%+v): no error", c)
		}
	}
}

func openFDs() (int, error) {
	ents, err := os.ReadDir("/proc/self/fd")
	return len(ents), err
}

func checkPrepareFails(sc *scenario) []string {
	var fails []string
	failf := func(format string, a ...any) { fails = append(fails, fmt.Sprintf(format, a...)) }
	// Let the securejoin library open its cached procfs handle first
	// (used where open_tree is not available).
	if f, err := os.Open("/"); err == nil {
		r := &root{path: "/", fd: f}
		_, _ = r.containerPath(newHandle(int(f.Fd()), "/"))
		r.close()
	}
	fdsBefore, err := openFDs()
	if err != nil {
		return []string{err.Error()}
	}
	entriesBefore, _ := os.ReadDir(sc.Config.Rootfs)
	err = Prepare(&sc.Config)
	if err == nil {
		return []string{"Prepare succeeded"}
	}
	fmt.Fprintf(os.Stderr, "Prepare failed as expected: %v\n", err)
	if fdsAfter, _ := openFDs(); fdsAfter != fdsBefore {
		failf("open fds %d before Prepare, %d after", fdsBefore, fdsAfter)
	}
	infos, err := mountinfo.GetMounts(mountinfo.PrefixFilter(sc.Config.Rootfs))
	if err != nil {
		failf("%v", err)
	}
	for _, i := range infos {
		failf("mount left behind: %s", i.Mountpoint)
	}
	entriesAfter, _ := os.ReadDir(sc.Config.Rootfs)
	if len(entriesAfter) != len(entriesBefore) {
		var names []string
		for _, e := range entriesAfter {
			names = append(names, e.Name())
		}
		failf("rootfs had %d entries, now %d: %q", len(entriesBefore), len(entriesAfter), names)
	}
	return fails
}

func TestNoPivot(t *testing.T) {
	sc := &scenario{Name: "nopivot"}
	sc.Config = Config{
		NoPivot:      true,
		Mounts:       defaultMounts()[:2],
		MaskedPaths:  []string{"/proc/timer_list"},
		ReadonlyRoot: true,
	}
	runScenario(t, sc)
}

func checkNoPivot(ck *checker) {
	ck.expectMount("/proc", "proc")
	ck.checkDevice("/dev/null", unix.S_IFCHR, unix.Mkdev(1, 3), 0o666, 0, 0)
	ck.checkFile("/proc/timer_list", "")
	ck.expectWriteFails("/", unix.EROFS)
	if os.Getpid() != 1 {
		ck.errorf("pid %d, want 1 in the new pid namespace", os.Getpid())
	}
	if p, err := os.Readlink("/proc/self"); err != nil || p != "1" {
		ck.errorf("/proc/self = %q, %v: not the container's procfs", p, err)
	}
}

func TestCgroupNS(t *testing.T) {
	sc := &scenario{Name: "cgroupns"}
	sc.Config = Config{NewCgroupNS: true, Mounts: defaultMounts()}
	runScenario(t, sc)
}

func checkCgroupNS(ck *checker) {
	ck.expectMount("/sys/fs/cgroup", "tmpfs", "ro")
	self, err := readSelfCgroup()
	if err != nil {
		ck.errorf("%v", err)
	}
	hs, err := hostHierarchies("/nonexistent", self)
	if err != nil {
		ck.errorf("%v", err)
	}
	n := 0
	for _, h := range hs {
		if !strings.HasPrefix(h.mountpoint, "/sys/fs/cgroup/") {
			continue
		}
		n++
		m := ck.expectMount(h.mountpoint, "", "ro")
		if m != nil && m.Root != "/" {
			ck.errorf("%s: root %s, want the namespace's root /", h.mountpoint, m.Root)
		}
	}
	if n == 0 {
		ck.errorf("no cgroup hierarchies under /sys/fs/cgroup")
	}
}

func TestUserNSDevices(t *testing.T) {
	sc := &scenario{Name: "userns-devs"}
	sc.Config = Config{
		NewUserNS: true,
		Mounts:    defaultMounts()[:3],
		Devices:   []specs.LinuxDevice{{Path: "/dev/full", Type: "c", Major: 1, Minor: 7}, {Path: "/dev/fifo-x", Type: "p"}},
	}
	runScenario(t, sc)
}

func checkUserNSDevices(ck *checker) {
	for _, d := range defaultDevices {
		ck.checkDevice(d.Path, unix.S_IFCHR, unix.Mkdev(uint32(d.Major), uint32(d.Minor)), 0, -1, -1)
		// Bound from the host, not made with mknod.
		ck.expectMount(d.Path, "")
	}
	ck.checkDevice("/dev/fifo-x", unix.S_IFIFO, 0, 0o666, 0, 0)
}

func TestRootfsPropagation(t *testing.T) {
	for _, p := range []string{"", "shared", "rshared", "slave", "rslave", "private", "rprivate", "unbindable", "runbindable"} {
		t.Run("prop="+p, func(t *testing.T) {
			sc := &scenario{Name: "propagation", SharedParent: true}
			sc.Config = Config{RootfsPropagation: p, Mounts: defaultMounts()[:1]}
			runScenario(t, sc)
		})
	}
}

func checkPropagation(ck *checker) {
	p := ck.sc.Config.RootfsPropagation
	root := ck.mount("/")
	if root == nil {
		return
	}
	shared := hasOptional(root.Optional, "shared:")
	master := hasOptional(root.Optional, "master:")
	unbindable := hasOptional(root.Optional, "unbindable")
	switch strings.TrimPrefix(p, "r") {
	case "shared":
		if !shared {
			ck.errorf("/ is %q, want shared", root.Optional)
		}
	case "", "slave":
		// The rootfs lies on a shared mount of the "host": its copy is
		// the master.
		if !master || shared {
			ck.errorf("/ is %q, want slave", root.Optional)
		}
	case "private":
		if root.Optional != "" {
			ck.errorf("/ is %q, want private", root.Optional)
		}
	case "unbindable":
		if !unbindable {
			ck.errorf("/ is %q, want unbindable", root.Optional)
		}
	}

	// What the OCI validation suite does: bind "/" and see whether a new
	// mount shows up in the bind.
	if err := os.Mkdir("/target", 0o755); err != nil {
		ck.errorf("%v", err)
		return
	}
	err := unix.Mount("/", "/target", "", unix.MS_BIND|unix.MS_REC, "")
	if strings.TrimPrefix(p, "r") == "unbindable" {
		if !errors.Is(err, unix.EINVAL) {
			ck.errorf("bind of unbindable /: %v, want EINVAL", err)
		}
		return
	}
	if err != nil {
		ck.errorf("bind /: %v", err)
		return
	}
	if err := os.Mkdir("/mnt-x", 0o755); err != nil {
		ck.errorf("%v", err)
		return
	}
	if err := unix.Mount("tmpfs", "/mnt-x", "tmpfs", 0, ""); err != nil {
		ck.errorf("mount /mnt-x: %v", err)
		return
	}
	var a, b unix.Stat_t
	if err := errors.Join(unix.Stat("/mnt-x", &a), unix.Stat("/target/mnt-x", &b)); err != nil {
		ck.errorf("%v", err)
		return
	}
	if propagated := a.Dev == b.Dev; propagated != shared {
		ck.errorf("mount propagated to the bind of /: %v, / shared: %v", propagated, shared)
	}
}
