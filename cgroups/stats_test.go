package cgroups

import (
	"bufio"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	v1stats "github.com/containerd/cgroups/v3/cgroup1/stats"
	v2stats "github.com/containerd/cgroups/v3/cgroup2/stats"
	"github.com/containerd/typeurl/v2"
	"google.golang.org/protobuf/proto"
)

// helperEnv makes the test binary, re-executed by startAllocator, act as
// a process that allocates memory once it is in its cgroup.
const helperEnv = "RUNMINI_CGROUPS_ALLOC_HELPER"

// TestHelperAllocator is not a test: it is the process startAllocator
// runs. It waits for a byte on stdin (sent once the test has moved it
// into a cgroup, where only memory touched from then on is charged),
// allocates and touches the number of bytes in $RUNMINI_CGROUPS_ALLOC_HELPER,
// says "ready" and waits until stdin closes or it is killed.
func TestHelperAllocator(t *testing.T) {
	size := os.Getenv(helperEnv)
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

type allocator struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
}

// startAllocator starts TestHelperAllocator; the test kills and reaps it
// on cleanup.
func startAllocator(t *testing.T, size int) *allocator {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperAllocator$")
	cmd.Env = append(os.Environ(), helperEnv+"="+strconv.Itoa(size))
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
	return &allocator{cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout)}
}

func (a *allocator) pid() int { return a.cmd.Process.Pid }

// allocate lets the helper allocate; wait makes it return once the
// helper reports it is done.
func (a *allocator) allocate(t *testing.T, wait bool) {
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

// metricsType checks that msg goes through typeurl as containerd's task
// metrics carry it, under the type URL `ctr task metrics` decodes.
func metricsType(t *testing.T, msg proto.Message, url string) {
	t.Helper()
	a, err := typeurl.MarshalAny(msg)
	if err != nil {
		t.Fatal(err)
	}
	if a.GetTypeUrl() != url {
		t.Errorf("type URL %q, want %q", a.GetTypeUrl(), url)
	}
	back, err := typeurl.UnmarshalAny(a)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(back.(proto.Message), msg) {
		t.Errorf("metrics changed through typeurl: %v != %v", back, msg)
	}
}

func TestStatsFakeV1(t *testing.T) {
	root := t.TempDir()
	fakeV1(t, root, "/ctr")
	dir := func(ctrl string) string { return filepath.Join(hierarchyDir(root, ctrl), "ctr") }
	writeFiles(t, dir("memory"), map[string]string{
		"memory.stat":               "cache 8192\nrss 4096\ntotal_rss 4096\n",
		"memory.oom_control":        "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
		"memory.usage_in_bytes":     "12288",
		"memory.max_usage_in_bytes": "16384",
		"memory.failcnt":            "5",
		"memory.limit_in_bytes":     "67108864",
	})
	writeFiles(t, dir("pids"), map[string]string{"pids.current": "3", "pids.max": "64"})
	m, err := New(Config{Path: "/ctr", Root: root, Mode: ModeV1})
	if err != nil {
		t.Fatal(err)
	}
	msg, err := m.Stats()
	if err != nil {
		t.Fatal(err)
	}
	s, ok := msg.(*v1stats.Metrics)
	if !ok {
		t.Fatalf("Stats() is a %T, want *v1stats.Metrics", msg)
	}
	if s.GetPids().GetCurrent() != 3 || s.GetPids().GetLimit() != 64 {
		t.Errorf("pids %v, want current 3 limit 64", s.GetPids())
	}
	u := s.GetMemory().GetUsage()
	if u.GetUsage() != 12288 || u.GetMax() != 16384 || u.GetFailcnt() != 5 || u.GetLimit() != 64<<20 {
		t.Errorf("memory usage %v", u)
	}
	if s.GetMemory().GetRSS() != 4096 || s.GetMemory().GetCache() != 8192 {
		t.Errorf("memory.stat not parsed: %v", s.GetMemory())
	}
	if s.GetMemoryOomControl().GetOomKill() != 2 {
		t.Errorf("oom control %v", s.GetMemoryOomControl())
	}
	metricsType(t, msg, "io.containerd.cgroups.v1.Metrics")

	// Gone from every hierarchy: fs.ErrNotExist rather than the
	// library's own "deleted" error.
	for ctrl := range m.Paths() {
		if err := os.RemoveAll(m.Paths()[ctrl]); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := m.Stats(); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stats of a removed cgroup: %v, want fs.ErrNotExist", err)
	}
}

// On a hybrid host without v1 hugetlb, hugepage usage comes from the
// unified side.
func TestStatsFakeHybridHugetlb(t *testing.T) {
	if !isDir("/sys/kernel/mm/hugepages/hugepages-2048kB") {
		// The library lists page sizes from the host, not from Root.
		t.Skip("host has no 2MB hugepages")
	}
	root := t.TempDir()
	fakeV1(t, root, "/ctr", "hugetlb")
	fakeV2(t, filepath.Join(root, "unified"), "/ctr", "hugetlb")
	writeFiles(t, filepath.Join(root, "unified", "ctr"), map[string]string{
		"hugetlb.2MB.current": "4194304", "hugetlb.2MB.events": "max 7\n",
	})
	m, err := New(Config{Path: "/ctr", Root: root, Mode: ModeHybrid})
	if err != nil {
		t.Fatal(err)
	}
	msg, err := m.Stats()
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, h := range msg.(*v1stats.Metrics).GetHugetlb() {
		if h.GetPagesize() == "2MB" {
			found = true
			if h.GetUsage() != 4<<20 || h.GetFailcnt() != 7 {
				t.Errorf("hugetlb 2MB: %v", h)
			}
		}
	}
	if !found {
		t.Errorf("no 2MB hugetlb entry in %v", msg.(*v1stats.Metrics).GetHugetlb())
	}
}

func TestStatsFakeV2(t *testing.T) {
	root := t.TempDir()
	fakeV2(t, root, "/ctr", v2Controllers)
	dir := filepath.Join(root, "ctr")
	writeFiles(t, dir, map[string]string{
		"pids.current":   "2",
		"memory.current": "8192",
		"memory.stat":    "anon 4096\nfile 4096\npgfault 9\n",
		"memory.events":  "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n",
		"cpu.stat":       "usage_usec 100\nuser_usec 60\nsystem_usec 40\n",
	})
	m, err := New(Config{Path: "/ctr", Root: root, Mode: ModeV2})
	if err != nil {
		t.Fatal(err)
	}
	msg, err := m.Stats()
	if err != nil {
		t.Fatal(err)
	}
	s, ok := msg.(*v2stats.Metrics)
	if !ok {
		t.Fatalf("Stats() is a %T, want *v2stats.Metrics", msg)
	}
	if s.GetPids().GetCurrent() != 2 || s.GetPids().GetLimit() != ^uint64(0) {
		t.Errorf("pids %v", s.GetPids())
	}
	if s.GetMemory().GetUsage() != 8192 || s.GetMemory().GetAnon() != 4096 || s.GetMemory().GetPgfault() != 9 {
		t.Errorf("memory %v", s.GetMemory())
	}
	if s.GetMemoryEvents().GetOomKill() != 1 || s.GetMemoryEvents().GetMax() != 4 {
		t.Errorf("memory events %v", s.GetMemoryEvents())
	}
	if s.GetCPU().GetUsageUsec() != 100 {
		t.Errorf("cpu %v", s.GetCPU())
	}
	metricsType(t, msg, "io.containerd.cgroups.v2.Metrics")

	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Stats(); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stats of a removed cgroup: %v, want fs.ErrNotExist", err)
	}
}

func TestHostStatsV1(t *testing.T) {
	requireRoot(t)
	if mode := hostMode(t); mode != ModeV1 && mode != ModeHybrid {
		t.Skipf("host cgroups are %v", mode)
	}
	name := uniqueName(t)
	m, err := New(Config{Path: "/" + name})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Create(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Destroy() })
	a := startAllocator(t, 4<<20)
	if err := m.Apply(a.pid()); err != nil {
		t.Fatal(err)
	}
	a.allocate(t, true)

	before := runtime.NumGoroutine()
	msg, err := m.Stats()
	if err != nil {
		t.Fatal(err)
	}
	s, ok := msg.(*v1stats.Metrics)
	if !ok {
		t.Fatalf("Stats() is a %T on a %v host, want *v1stats.Metrics", msg, hostMode(t))
	}
	t.Logf("pids %v; memory usage %v; cpu %v", s.GetPids(), s.GetMemory().GetUsage(), s.GetCPU().GetUsage().GetTotal())
	if _, ok := m.Paths()["pids"]; ok && s.GetPids().GetCurrent() < 1 {
		t.Errorf("pids.current = %d, want >= 1", s.GetPids().GetCurrent())
	}
	if s.GetMemory().GetUsage().GetUsage() == 0 {
		t.Errorf("memory usage 0 after the helper allocated 4 MiB: %v", s.GetMemory())
	}
	if _, ok := m.Paths()["cpuacct"]; ok && s.GetCPU().GetUsage().GetTotal() == 0 {
		t.Errorf("cpu usage 0: %v", s.GetCPU())
	}
	metricsType(t, msg, "io.containerd.cgroups.v1.Metrics")
	// The library's Stat runs one goroutine per controller and joins
	// them all.
	waitGoroutines(t, before)

	stopProcess(t, a.cmd)
	destroyAndCheck(t, m.Paths(), "")
}

// TestHostStatsV2 runs on the host's cgroup2 hierarchy: the whole host on
// v2, the unified mount on a hybrid one, where only the controllers it
// offers (hugetlb here) have anything to report.
func TestHostStatsV2(t *testing.T) {
	requireRoot(t)
	root := defaultRoot
	switch hostMode(t) {
	case ModeHybrid:
		root = unifiedRoot(defaultRoot, ModeHybrid)
	case ModeV2:
	default:
		t.Skip("host has no cgroup2 hierarchy")
	}
	name := uniqueName(t)
	m, err := New(Config{Path: "/" + name, Root: root, Mode: ModeV2})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Create(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Destroy() })
	avail, err := cgroupFiles{}.availableV2(m.Paths()[""])
	if err != nil {
		t.Fatal(err)
	}
	a := startAllocator(t, 4<<20)
	if err := m.Apply(a.pid()); err != nil {
		t.Fatal(err)
	}
	a.allocate(t, true)
	msg, err := m.Stats()
	if err != nil {
		t.Fatal(err)
	}
	s, ok := msg.(*v2stats.Metrics)
	if !ok {
		t.Fatalf("Stats() is a %T, want *v2stats.Metrics", msg)
	}
	t.Logf("controllers %v: pids %v, memory usage %d, hugetlb %v", avail, s.GetPids(), s.GetMemory().GetUsage(), s.GetHugetlb())
	if avail["pids"] && s.GetPids().GetCurrent() < 1 {
		t.Errorf("pids.current = %d, want >= 1", s.GetPids().GetCurrent())
	}
	if avail["memory"] && s.GetMemory().GetUsage() == 0 {
		t.Errorf("memory usage 0 after the helper allocated 4 MiB")
	}
	if avail["hugetlb"] && isDir("/sys/kernel/mm/hugepages/hugepages-2048kB") {
		var sizes []string
		for _, h := range s.GetHugetlb() {
			sizes = append(sizes, h.GetPagesize())
		}
		if !strings.Contains(strings.Join(sizes, " "), "2MB") {
			t.Errorf("no 2MB hugetlb entry: %v", s.GetHugetlb())
		}
	}
	metricsType(t, msg, "io.containerd.cgroups.v2.Metrics")
	stopProcess(t, a.cmd)
	if err := m.Destroy(); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Stats(); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stats after Destroy: %v, want fs.ErrNotExist", err)
	}
}

// waitGoroutines waits for the goroutine count to drop back to n; exiting
// goroutines are counted until they are fully gone.
func waitGoroutines(t *testing.T, n int) {
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
