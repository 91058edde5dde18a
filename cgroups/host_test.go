package cgroups

import (
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

	cgroupsv3 "github.com/containerd/cgroups/v3"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/runmini/runmini/cgroups/internal/cgtest"
)

// Tests on the real cgroupfs of the host. They need root; each uses its
// own cgroup name and checks it left no directory behind.

func hostMode(t *testing.T) Mode {
	t.Helper()
	mode, err := detectMode(defaultRoot)
	if err != nil {
		t.Skipf("no cgroup filesystem on this host: %v", err)
	}
	return mode
}

// destroyAndCheck destroys through a Manager reopened by Load, as the
// CLI's delete does, and checks no directory is left anywhere.
func destroyAndCheck(t *testing.T, paths map[string]string, root string) {
	t.Helper()
	l, err := Load(paths, root)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Destroy(); err != nil {
		t.Fatal(err)
	}
	for ctrl, dir := range paths {
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%q: %s left behind (%v)", ctrl, dir, err)
		}
	}
}

// procCgroups maps each hierarchy of /proc/pid/cgroup ("" for cgroup2)
// to the process's cgroup in it.
func procCgroups(t *testing.T, pid int) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(cgtest.ReadFile(t, fmt.Sprintf("/proc/%d/cgroup", pid))), "\n") {
		parts := strings.SplitN(line, ":", 3)
		for _, c := range strings.Split(parts[1], ",") {
			out[c] = parts[2]
		}
	}
	return out
}

func TestHostV1AndHybrid(t *testing.T) {
	cgtest.RequireRoot(t)
	mode := hostMode(t)
	if mode != ModeV1 && mode != ModeHybrid {
		t.Skipf("host cgroups are %v; TestHostV2 covers them", mode)
	}
	name := cgtest.UniqueName(t)
	res := &specs.LinuxResources{
		Memory: &specs.LinuxMemory{Limit: cgtest.Ptr(int64(64 << 20))},
		CPU:    &specs.LinuxCPU{Shares: cgtest.Ptr(uint64(512)), Quota: cgtest.Ptr(int64(50000)), Period: cgtest.Ptr(uint64(100000)), Cpus: "0", Mems: "0"},
		Pids:   &specs.LinuxPids{Limit: cgtest.Ptr(int64(64))},
		Devices: []specs.LinuxDeviceCgroup{
			{Allow: false, Access: "rwm"},
			{Allow: true, Type: "c", Major: cgtest.Ptr(int64(1)), Minor: cgtest.Ptr(int64(3)), Access: "rwm"},
			{Allow: true, Type: "c", Major: cgtest.Ptr(int64(1)), Minor: cgtest.Ptr(int64(5)), Access: "rwm"},
		},
	}
	m, err := New(Config{ID: name, Path: "/" + name, Resources: res})
	if err != nil {
		t.Fatal(err)
	}
	paths := m.Paths()
	if mode == ModeHybrid && paths[""] != filepath.Join(defaultRoot, "unified", name) {
		t.Fatalf("hybrid host without a unified path: %v", paths)
	}
	if err := m.Create(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Destroy() })
	if m.FD() != -1 {
		t.Errorf("FD() = %d, want -1 on %v", m.FD(), mode)
	}

	cmd := cgtest.StartSleep(t)
	pid := cmd.Process.Pid
	if err := m.Apply(pid); err != nil {
		t.Fatal(err)
	}
	in := procCgroups(t, pid)
	for ctrl := range paths {
		if got := in[ctrl]; got != "/"+name {
			t.Errorf("pid %d is in %q cgroup %q, want /%s", pid, ctrl, got, name)
		}
	}

	for file, want := range map[string]string{
		"memory/memory.limit_in_bytes": "67108864",
		"cpu/cpu.shares":               "512",
		"cpu/cpu.cfs_quota_us":         "50000",
		"cpuset/cpuset.cpus":           "0",
		"pids/pids.max":                "64",
		"devices/devices.list":         "c 1:3 rwm\nc 1:5 rwm\n",
	} {
		ctrl, f, _ := strings.Cut(file, "/")
		if got := cgtest.ReadFile(t, filepath.Join(paths[ctrl], f)); strings.TrimSpace(got) != strings.TrimSpace(want) {
			t.Errorf("%s = %q, want %q", file, got, want)
		}
	}

	if pids, err := m.Pids(); err != nil || !equalInts(pids, []int{pid}) {
		t.Errorf("Pids() = %v, %v; want [%d]", pids, err, pid)
	}

	if err := m.Freeze(); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(cgtest.ReadFile(t, filepath.Join(paths["freezer"], "freezer.state"))); got != "FROZEN" {
		t.Errorf("freezer.state = %q after Freeze", got)
	}
	if f, err := m.Frozen(); err != nil || !f {
		t.Errorf("Frozen() = %v, %v after Freeze", f, err)
	}
	if err := m.Thaw(); err != nil {
		t.Fatal(err)
	}
	if f, err := m.Frozen(); err != nil || f {
		t.Errorf("Frozen() = %v, %v after Thaw", f, err)
	}

	// runc update passes the whole resources again: the device rules,
	// unchanged, must not be rewritten (that would start with deny-all).
	rec := &recorder{}
	m.(*manager).files.trace = rec.trace
	if err := m.Set(res); err != nil {
		t.Fatal(err)
	}
	for _, w := range rec.writes {
		if strings.HasPrefix(w, "devices.") {
			t.Errorf("Set with unchanged device rules wrote %s", w)
		}
	}
	m.(*manager).files.trace = nil

	// runc update: raise the limit, with swap where the kernel accounts it.
	upd := &specs.LinuxMemory{Limit: cgtest.Ptr(int64(128 << 20))}
	memsw := exists(filepath.Join(paths["memory"], "memory.memsw.limit_in_bytes"))
	if memsw {
		upd.Swap = cgtest.Ptr(int64(256 << 20))
	}
	if err := m.Set(&specs.LinuxResources{Memory: upd}); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(cgtest.ReadFile(t, filepath.Join(paths["memory"], "memory.limit_in_bytes"))); got != "134217728" {
		t.Errorf("memory.limit_in_bytes = %s after Set", got)
	}
	if memsw {
		if got := strings.TrimSpace(cgtest.ReadFile(t, filepath.Join(paths["memory"], "memory.memsw.limit_in_bytes"))); got != "268435456" {
			t.Errorf("memory.memsw.limit_in_bytes = %s after Set", got)
		}
	}

	// Child cgroups the container made must go too.
	for _, ctrl := range []string{"memory", ""} {
		if dir, ok := paths[ctrl]; ok {
			if err := os.MkdirAll(filepath.Join(dir, "nested/deeper"), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	cgtest.StopProcess(t, cmd)
	destroyAndCheck(t, paths, "")
}

func TestHostRelativePath(t *testing.T) {
	cgtest.RequireRoot(t)
	if mode := hostMode(t); mode == ModeV2 {
		// Under a v2 hierarchy a relative cgroup below our own would
		// break the no-internal-processes rule for our cgroup's
		// controllers; the v1 case is the interesting one here.
		t.Skip("host is cgroup v2")
	}
	name := cgtest.UniqueName(t)
	m, err := New(Config{Path: name})
	if err != nil {
		t.Fatal(err)
	}
	own := procCgroups(t, os.Getpid())
	paths := m.Paths()
	for ctrl, dir := range paths {
		mnt := hierarchyDir(defaultRoot, ctrl)
		if ctrl == "" {
			mnt = unifiedRoot(defaultRoot, ModeHybrid)
		}
		if want := filepath.Join(mnt, own[strings.TrimPrefix(ctrl, "name=")], name); ctrl != systemdKey && dir != want {
			t.Errorf("%q: %s, want %s", ctrl, dir, want)
		}
	}
	if err := m.Create(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Destroy() })
	for ctrl, dir := range paths {
		if !isDir(dir) {
			t.Errorf("%q: %s not created", ctrl, dir)
		}
	}
	destroyAndCheck(t, paths, "")
}

// TestHostV2 runs against a real cgroup2 hierarchy: the host's own on a
// v2 host, the unified mount on a hybrid one (which here offers only
// hugetlb, so limits are chosen from what it offers).
func TestHostV2(t *testing.T) {
	cgtest.RequireRoot(t)
	root := defaultRoot
	switch hostMode(t) {
	case ModeHybrid:
		root = unifiedRoot(defaultRoot, ModeHybrid)
	case ModeV2:
	default:
		t.Skip("host has no cgroup2 hierarchy")
	}
	avail, err := cgroupFiles{}.availableV2(root)
	if err != nil {
		t.Fatal(err)
	}
	name := cgtest.UniqueName(t)
	nullOnly := []specs.LinuxDeviceCgroup{
		{Allow: false, Access: "rwm"},
		{Allow: true, Type: "c", Major: cgtest.Ptr(int64(1)), Minor: cgtest.Ptr(int64(3)), Access: "rwm"},
	}
	res := &specs.LinuxResources{Devices: nullOnly}
	want := map[string]string{}
	if avail["hugetlb"] && isDir("/sys/kernel/mm/hugepages/hugepages-2048kB") {
		res.HugepageLimits = []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 4 << 20}}
		want["hugetlb.2MB.max"] = "4194304"
	}
	if avail["pids"] {
		res.Pids = &specs.LinuxPids{Limit: cgtest.Ptr(int64(32))}
		want["pids.max"] = "32"
	}
	if avail["memory"] {
		res.Memory = &specs.LinuxMemory{Limit: cgtest.Ptr(int64(64 << 20))}
		want["memory.max"] = "67108864"
	}
	m, err := New(Config{Path: "/" + name, Root: root, Mode: ModeV2, Resources: res})
	if err != nil {
		t.Fatal(err)
	}
	dir := m.Paths()[""]
	if err := m.Create(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Destroy() })
	for f, v := range want {
		if got := strings.TrimSpace(cgtest.ReadFile(t, filepath.Join(dir, f))); got != v {
			t.Errorf("%s = %q, want %q", f, got, v)
		}
	}
	fd := m.FD()
	if fd < 0 {
		t.Fatal("FD() = -1 on cgroup v2")
	}

	// Processes cloned straight into the cgroup meet the device filter.
	runIn := func(args ...string) error {
		cmd := exec.Command(args[0], args[1:]...)
		cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v: %w: %s", args, err, out)
		}
		return nil
	}
	if err := runIn("head", "-c1", "/dev/null"); err != nil {
		t.Errorf("allowed device: %v", err)
	}
	if err := runIn("head", "-c1", "/dev/zero"); err == nil || !strings.Contains(err.Error(), "not permitted") {
		t.Errorf("denied device: %v, want EPERM", err)
	}

	cmd := cgtest.StartSleep(t)
	pid := cmd.Process.Pid
	if err := m.Apply(pid); err != nil {
		t.Fatal(err)
	}
	if got := procCgroups(t, pid)[""]; got != "/"+name {
		t.Errorf("pid %d is in cgroup2 %q, want /%s", pid, got, name)
	}
	if pids, err := m.Pids(); err != nil || !equalInts(pids, []int{pid}) {
		t.Errorf("Pids() = %v, %v; want [%d]", pids, err, pid)
	}
	if err := m.Freeze(); err != nil {
		t.Fatal(err)
	}
	if f, err := m.Frozen(); err != nil || !f {
		t.Errorf("Frozen() = %v, %v after Freeze", f, err)
	}
	if st := procState(t, pid); st != "S" && st != "D" {
		// A cgroup2-frozen task sleeps in the kernel's freezer.
		t.Errorf("frozen sleep has state %q", st)
	}
	if err := m.Thaw(); err != nil {
		t.Fatal(err)
	}
	if ev, err := (cgroupFiles{}).readKeyed(dir, "cgroup.events"); err != nil || ev["frozen"] != "0" {
		t.Errorf("cgroup.events after Thaw: %v, %v", ev, err)
	}

	// Set replaces the device filter rather than stacking another one.
	withZero := append(append([]specs.LinuxDeviceCgroup{}, nullOnly...),
		specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: cgtest.Ptr(int64(1)), Minor: cgtest.Ptr(int64(5)), Access: "rwm"})
	if err := m.Set(&specs.LinuxResources{Devices: withZero}); err != nil {
		t.Fatal(err)
	}
	if err := runIn("head", "-c1", "/dev/zero"); err != nil {
		t.Errorf("device allowed by Set: %v", err)
	}
	progs, err := attachedDevicePrograms(fd)
	if err != nil {
		t.Fatal(err)
	}
	if len(progs) != 1 {
		t.Errorf("%d device programs attached after Set, want 1", len(progs))
	}

	nested := filepath.Join(dir, "nested")
	if err := os.Mkdir(nested, 0o755); err != nil {
		t.Fatal(err)
	}
	cgtest.StopProcess(t, cmd)
	if err := m.Destroy(); err != nil {
		t.Fatal(err)
	}
	if m.FD() != -1 {
		// Destroy closed the fd, and with the directory gone FD
		// cannot reopen it.
		t.Errorf("FD() after Destroy = %d", m.FD())
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s left behind (%v)", dir, err)
	}
}

func procState(t *testing.T, pid int) string {
	t.Helper()
	stat := cgtest.ReadFile(t, "/proc/"+strconv.Itoa(pid)+"/stat")
	after := stat[strings.LastIndexByte(stat, ')')+2:]
	return after[:1]
}

func TestHostDestroyBusy(t *testing.T) {
	cgtest.RequireRoot(t)
	mode := hostMode(t)
	name := cgtest.UniqueName(t)
	m, err := New(Config{Path: "/" + name})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Create(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Destroy() })
	cmd := cgtest.StartSleep(t)
	if err := m.Apply(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	// A live process keeps the cgroup busy: Destroy must fail, naming it.
	if err := m.Destroy(); err == nil || !errors.Is(err, unix.EBUSY) {
		t.Errorf("Destroy with a live process on %v: %v, want EBUSY", mode, err)
	}
	cgtest.StopProcess(t, cmd)
	destroyAndCheck(t, m.Paths(), "")
}

// hostCgroup makes, with mk (Create or CreateDirs), a cgroup named
// after t on the host, removed (and checked) when t ends.
func hostCgroup(t *testing.T, res *specs.LinuxResources, mk func(Manager) error) (Manager, string, map[string]string) {
	t.Helper()
	name := cgtest.UniqueName(t)
	m, err := New(Config{ID: name, Path: "/" + name, Resources: res})
	if err != nil {
		t.Fatal(err)
	}
	if err := mk(m); err != nil {
		t.Fatal(err)
	}
	paths := m.Paths()
	t.Cleanup(func() { destroyAndCheck(t, paths, defaultRoot) })
	return m, name, paths
}

// ForkInto: a process forked by the readied thread is born in the cgroup
// in every hierarchy (v1 through the thread's own move, cgroup2 through
// CLONE_INTO_CGROUP), the limits come after it (a pids.max below what the
// forking thread and the child count is applied once the thread is back),
// and leave puts the thread back where it was.
func TestHostForkInto(t *testing.T) {
	cgtest.RequireRoot(t)
	mode := hostMode(t)
	m, name, paths := hostCgroup(t, &specs.LinuxResources{Pids: &specs.LinuxPids{Limit: cgtest.Ptr(int64(1))}}, Manager.CreateDirs)
	if dir, ok := paths["pids"]; ok {
		if got := strings.TrimSpace(cgtest.ReadFile(t, filepath.Join(dir, "pids.max"))); got != "max" {
			t.Fatalf("pids.max = %q after CreateDirs, want no limit yet", got)
		}
	}

	cmd := exec.Command("sleep", "60")
	done := make(chan error, 1)
	go func() {
		// A thread of its own, so that whatever happens the test's own
		// threads stay where they are; no t.Fatal off the test goroutine.
		runtime.LockOSThread()
		self := func() string {
			b, _ := os.ReadFile("/proc/thread-self/cgroup")
			return string(b)
		}
		before := self()
		fd, leave, err := m.ForkInto()
		if err != nil {
			done <- err
			return
		}
		if (fd >= 0) != (mode != ModeV1) {
			leave()
			done <- fmt.Errorf("ForkInto fd %d on %v", fd, mode)
			return
		}
		v1, _, _ := cgroupsv3.ParseCgroupFromReaderUnified(strings.NewReader(self()))
		for ctrl, cg := range v1 {
			if _, ours := paths[ctrl]; ours && cg != "/"+name {
				leave()
				done <- fmt.Errorf("thread in %q cgroup %q after ForkInto, want /%s", ctrl, cg, name)
				return
			}
		}
		cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: fd >= 0, CgroupFD: fd}
		startErr := cmd.Start()
		if err := leave(); err != nil {
			done <- err
			return
		}
		if after := self(); after != before {
			done <- fmt.Errorf("thread in\n%s\nafter leave, want\n%s", after, before)
			return
		}
		runtime.UnlockOSThread()
		done <- startErr
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	in := procCgroups(t, cmd.Process.Pid)
	for ctrl := range paths {
		if got := in[ctrl]; got != "/"+name {
			t.Errorf("child in %q cgroup %q, want /%s", ctrl, got, name)
		}
	}
	if err := m.ApplyResources(); err != nil {
		t.Fatal(err)
	}
	if dir, ok := paths["pids"]; ok {
		if got := strings.TrimSpace(cgtest.ReadFile(t, filepath.Join(dir, "pids.max"))); got != "1" {
			t.Errorf("pids.max = %q after ApplyResources, want 1", got)
		}
	}
}

// JoinFiles: a single-threaded process that writes 0 to the tasks files
// (and is cloned into the cgroup2 directory) is in the cgroup everywhere.
func TestHostJoinFiles(t *testing.T) {
	cgtest.RequireRoot(t)
	mode := hostMode(t)
	m, name, paths := hostCgroup(t, nil, Manager.Create)
	fd, tasks, err := m.JoinFiles()
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, f := range tasks {
			f.Close()
		}
	}()
	wantTasks := len(paths)
	if _, ok := paths[""]; ok {
		wantTasks--
	}
	if len(tasks) != wantTasks || (fd >= 0) != (mode != ModeV1) {
		t.Fatalf("JoinFiles on %v: fd %d, %d tasks files; want %d", mode, fd, len(tasks), wantTasks)
	}
	script := ""
	for i := range tasks {
		script += fmt.Sprintf("echo 0 > /proc/self/fd/%d; ", 3+i)
	}
	cmd := exec.Command("sh", "-c", script+"cat /proc/self/cgroup")
	cmd.ExtraFiles = tasks
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: fd >= 0, CgroupFD: fd}
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		for _, c := range strings.Split(parts[1], ",") {
			if _, ours := paths[c]; ours && parts[2] != "/"+name {
				t.Errorf("%q: in %s, want /%s", c, parts[2], name)
			}
		}
	}
}
