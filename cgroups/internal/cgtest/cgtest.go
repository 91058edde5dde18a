// Package cgtest is what the tests of cgroups and cgroups/stats share: a
// stand-in for cgroupfs in a temporary directory, and processes to put in
// real cgroups. It imports neither package, so both can use it.
package cgtest

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A fake cgroupfs: hierarchies are directories, control files are regular
// files the test creates where the kernel would have them. The code under
// test never creates a control file, so a file left out plays a missing
// controller or knob.

// UnlimitedV1 is what v1 shows for "no limit".
const UnlimitedV1 = "9223372036854771712"

// V1Files are the control files of a fresh v1 cgroup, per hierarchy.
func V1Files() map[string]map[string]string {
	return map[string]map[string]string{
		"memory": {
			"memory.limit_in_bytes": UnlimitedV1, "memory.memsw.limit_in_bytes": UnlimitedV1,
			"memory.soft_limit_in_bytes": UnlimitedV1, "memory.kmem.tcp.limit_in_bytes": UnlimitedV1,
			"memory.oom_control": "oom_kill_disable 0", "memory.swappiness": "60",
			"memory.use_hierarchy": "1", "memory.usage_in_bytes": "4096", "cgroup.procs": "",
		},
		"cpu": {
			"cpu.shares": "1024", "cpu.cfs_period_us": "100000", "cpu.cfs_quota_us": "-1",
			"cpu.cfs_burst_us": "0", "cpu.idle": "0", "cpu.rt_period_us": "1000000",
			"cpu.rt_runtime_us": "0", "cgroup.procs": "",
		},
		"cpuacct":      {"cgroup.procs": ""},
		"cpuset":       {"cpuset.cpus": "", "cpuset.mems": "", "cgroup.procs": ""},
		"pids":         {"pids.max": "max", "cgroup.procs": ""},
		"freezer":      {"freezer.state": "THAWED", "cgroup.procs": ""},
		"devices":      {"devices.allow": "", "devices.deny": "", "cgroup.procs": ""},
		"net_cls":      {"net_cls.classid": "0", "cgroup.procs": ""},
		"net_prio":     {"net_prio.ifpriomap": "", "cgroup.procs": ""},
		"rdma":         {"rdma.max": "", "cgroup.procs": ""},
		"hugetlb":      {"hugetlb.2MB.limit_in_bytes": UnlimitedV1, "cgroup.procs": ""},
		"name=systemd": {"cgroup.procs": ""},
		"blkio": {
			"blkio.weight": "500", "blkio.weight_device": "", "blkio.leaf_weight": "500",
			"blkio.leaf_weight_device": "", "blkio.throttle.read_bps_device": "",
			"blkio.throttle.write_bps_device": "", "blkio.throttle.read_iops_device": "",
			"blkio.throttle.write_iops_device": "", "cgroup.procs": "",
		},
	}
}

// V2Controllers is what the fake cgroup2 root offers.
const V2Controllers = "cpuset cpu io memory hugetlb pids rdma"

// V2Files are the control files of a fresh cgroup2 cgroup.
func V2Files() map[string]string {
	return map[string]string{
		"cgroup.controllers": V2Controllers, "cgroup.subtree_control": "", "cgroup.procs": "",
		"cgroup.freeze": "0", "cgroup.events": "populated 0\nfrozen 0",
		"memory.max": "max", "memory.swap.max": "max", "memory.low": "0", "memory.current": "4096",
		"cpu.weight": "100", "cpu.max": "max 100000", "cpu.max.burst": "0", "cpu.idle": "0",
		"cpuset.cpus": "", "cpuset.mems": "", "pids.max": "max", "io.weight": "default 100",
		"io.max": "", "hugetlb.2MB.max": "max", "rdma.max": "",
	}
}

// WriteFiles makes dir and writes files into it.
func WriteFiles(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// HierarchyDir is where the fake (or real) v1 hierarchy of ctrl is
// mounted under root.
func HierarchyDir(root, ctrl string) string {
	return filepath.Join(root, strings.TrimPrefix(ctrl, "name="))
}

// FakeV1 builds v1 hierarchies under root holding a cgroup at path
// (absolute), skipping the controllers in drop.
func FakeV1(t testing.TB, root, path string, drop ...string) {
	t.Helper()
	for ctrl, files := range V1Files() {
		if slices.Contains(drop, ctrl) {
			continue
		}
		mnt := HierarchyDir(root, ctrl)
		top := map[string]string{"cgroup.procs": ""}
		if ctrl == "cpuset" {
			top = map[string]string{"cpuset.cpus": "0-1", "cpuset.mems": "0", "cgroup.procs": ""}
		}
		WriteFiles(t, mnt, top)
		WriteFiles(t, filepath.Join(mnt, path), files)
	}
}

// FakeV2 builds a cgroup2 hierarchy at mnt holding a cgroup at path,
// with every intermediate level offering controllers.
func FakeV2(t testing.TB, mnt, path, controllers string) {
	t.Helper()
	WriteFiles(t, mnt, map[string]string{"cgroup.controllers": controllers, "cgroup.subtree_control": "", "cgroup.procs": ""})
	cur := mnt
	elems := strings.Split(strings.Trim(path, "/"), "/")
	for _, e := range elems[:len(elems)-1] {
		cur = filepath.Join(cur, e)
		WriteFiles(t, cur, map[string]string{"cgroup.controllers": controllers, "cgroup.subtree_control": ""})
	}
	files := V2Files()
	files["cgroup.controllers"] = controllers
	WriteFiles(t, filepath.Join(mnt, path), files)
}

// ReadFile reads p or fails the test.
func ReadFile(t testing.TB, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// IsDir reports whether p is a directory.
func IsDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// Ptr returns a pointer to v.
func Ptr[T any](v T) *T { return &v }

// RequireRoot skips a test that makes real cgroups when not root.
func RequireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("creating cgroups needs root")
	}
}

// UniqueName is a cgroup name no other test (or test run) uses.
func UniqueName(t *testing.T) string {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("runmini-test-%d-%s", os.Getpid(), hex.EncodeToString(b))
}

// StartSleep starts a sleep that the test kills and reaps on cleanup.
func StartSleep(t *testing.T) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd
}

// StopProcess kills and reaps cmd.
func StopProcess(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
}

// allocatorEnv makes a test binary, re-executed by StartAllocator, act as
// a process that allocates memory once it is in its cgroup.
const allocatorEnv = "RUNMINI_CGROUPS_ALLOC_HELPER"

// AllocatorMain is the body of the TestHelperAllocator every package
// using StartAllocator defines. Run as the helper, it waits for a byte on
// stdin (sent once the test has moved it into a cgroup, where only
// memory touched from then on is charged), allocates and touches the
// number of bytes in its environment, says "ready" and waits until stdin
// closes or it is killed. Otherwise it skips the test.
func AllocatorMain(t *testing.T) {
	size := os.Getenv(allocatorEnv)
	if size == "" {
		t.Skip("helper process for the host tests")
	}
	n, err := strconv.Atoi(size)
	if err != nil {
		os.Exit(2)
	}
	var b [1]byte
	if _, err := os.Stdin.Read(b[:]); err != nil {
		os.Exit(3)
	}
	buf := make([]byte, n)
	for i := 0; i < len(buf); i += os.Getpagesize() {
		buf[i] = 1
	}
	_, _ = os.Stdout.WriteString("ready\n")
	_, _ = io.Copy(io.Discard, os.Stdin)
	runtime.KeepAlive(buf)
	os.Exit(0)
}

// Allocator is a running TestHelperAllocator.
type Allocator struct {
	Cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
}

// StartAllocator starts the test binary's TestHelperAllocator; the test
// kills and reaps it on cleanup.
func StartAllocator(t *testing.T, size int) *Allocator {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperAllocator$")
	cmd.Env = append(os.Environ(), allocatorEnv+"="+strconv.Itoa(size))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return &Allocator{Cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout)}
}

// Pid is the helper's pid.
func (a *Allocator) Pid() int { return a.Cmd.Process.Pid }

// Allocate lets the helper allocate; wait makes it return once the
// helper reports it is done.
func (a *Allocator) Allocate(t *testing.T, wait bool) {
	t.Helper()
	if _, err := a.stdin.Write([]byte{'g'}); err != nil {
		t.Fatal(err)
	}
	if !wait {
		return
	}
	line := make(chan string, 1)
	go func() {
		s, _ := a.out.ReadString('\n')
		line <- s
	}()
	select {
	case s := <-line:
		if s != "ready\n" {
			t.Fatalf("allocator helper said %q", s)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("allocator helper not ready after 30s")
	}
}

// WaitGoroutines waits for the goroutine count to drop back to n; exiting
// goroutines are counted until they are fully gone.
func WaitGoroutines(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > n {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Errorf("%d goroutines, want %d:\n%s", runtime.NumGoroutine(), n, buf[:runtime.Stack(buf, true)])
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}
