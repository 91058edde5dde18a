package stats

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	v1stats "github.com/containerd/cgroups/v3/cgroup1/stats"
	v2stats "github.com/containerd/cgroups/v3/cgroup2/stats"
	"github.com/containerd/typeurl/v2"
	"google.golang.org/protobuf/proto"

	"github.com/runmini/runmini/cgroups"
	"github.com/runmini/runmini/cgroups/internal/cgtest"
)

// TestHelperAllocator is not a test: it is the process
// cgtest.StartAllocator runs.
func TestHelperAllocator(t *testing.T) { cgtest.AllocatorMain(t) }

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
	cgtest.FakeV1(t, root, "/ctr")
	dir := func(ctrl string) string { return filepath.Join(cgtest.HierarchyDir(root, ctrl), "ctr") }
	cgtest.WriteFiles(t, dir("memory"), map[string]string{
		"memory.stat":               "cache 8192\nrss 4096\ntotal_rss 4096\n",
		"memory.oom_control":        "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
		"memory.usage_in_bytes":     "12288",
		"memory.max_usage_in_bytes": "16384",
		"memory.failcnt":            "5",
		"memory.limit_in_bytes":     "67108864",
	})
	cgtest.WriteFiles(t, dir("pids"), map[string]string{"pids.current": "3", "pids.max": "64"})
	m, err := cgroups.New(cgroups.Config{Path: "/ctr", Root: root, Mode: cgroups.ModeV1})
	if err != nil {
		t.Fatal(err)
	}
	s := metricsOf[v1stats.Metrics](t, m)
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
	metricsType(t, s, "io.containerd.cgroups.v1.Metrics")

	// Gone from every hierarchy: fs.ErrNotExist rather than the
	// library's own "deleted" error.
	for ctrl := range m.Paths() {
		if err := os.RemoveAll(m.Paths()[ctrl]); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Metrics(m); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stats of a removed cgroup: %v, want fs.ErrNotExist", err)
	}
}

// On a hybrid host without v1 hugetlb, hugepage usage comes from the
// unified side.
func TestStatsFakeHybridHugetlb(t *testing.T) {
	if !cgtest.IsDir("/sys/kernel/mm/hugepages/hugepages-2048kB") {
		// The library lists page sizes from the host, not from Root.
		t.Skip("host has no 2MB hugepages")
	}
	root := t.TempDir()
	cgtest.FakeV1(t, root, "/ctr", "hugetlb")
	cgtest.FakeV2(t, filepath.Join(root, "unified"), "/ctr", "hugetlb")
	cgtest.WriteFiles(t, filepath.Join(root, "unified", "ctr"), map[string]string{
		"hugetlb.2MB.current": "4194304", "hugetlb.2MB.events": "max 7\n",
	})
	m, err := cgroups.New(cgroups.Config{Path: "/ctr", Root: root, Mode: cgroups.ModeHybrid})
	if err != nil {
		t.Fatal(err)
	}
	s := metricsOf[v1stats.Metrics](t, m)
	var found bool
	for _, h := range s.GetHugetlb() {
		if h.GetPagesize() == "2MB" {
			found = true
			if h.GetUsage() != 4<<20 || h.GetFailcnt() != 7 {
				t.Errorf("hugetlb 2MB: %v", h)
			}
		}
	}
	if !found {
		t.Errorf("no 2MB hugetlb entry in %v", s.GetHugetlb())
	}
}

func TestStatsFakeV2(t *testing.T) {
	root := t.TempDir()
	cgtest.FakeV2(t, root, "/ctr", cgtest.V2Controllers)
	dir := filepath.Join(root, "ctr")
	cgtest.WriteFiles(t, dir, map[string]string{
		"pids.current":   "2",
		"memory.current": "8192",
		"memory.stat":    "anon 4096\nfile 4096\npgfault 9\n",
		"memory.events":  "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n",
		"cpu.stat":       "usage_usec 100\nuser_usec 60\nsystem_usec 40\n",
	})
	m, err := cgroups.New(cgroups.Config{Path: "/ctr", Root: root, Mode: cgroups.ModeV2})
	if err != nil {
		t.Fatal(err)
	}
	s := metricsOf[v2stats.Metrics](t, m)
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
	metricsType(t, s, "io.containerd.cgroups.v2.Metrics")

	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := Metrics(m); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stats of a removed cgroup: %v, want fs.ErrNotExist", err)
	}
}

func TestHostStatsV1(t *testing.T) {
	cgtest.RequireRoot(t)
	if mode := hostMode(t); mode != cgroups.ModeV1 && mode != cgroups.ModeHybrid {
		t.Skipf("host cgroups are %v", mode)
	}
	name := cgtest.UniqueName(t)
	m, err := cgroups.New(cgroups.Config{Path: "/" + name})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Create(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Destroy() })
	a := cgtest.StartAllocator(t, 4<<20)
	if err := m.Apply(a.Pid()); err != nil {
		t.Fatal(err)
	}
	a.Allocate(t, true)

	before := runtime.NumGoroutine()
	s := metricsOf[v1stats.Metrics](t, m)
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
	metricsType(t, s, "io.containerd.cgroups.v1.Metrics")
	// The library's Stat runs one goroutine per controller and joins
	// them all.
	cgtest.WaitGoroutines(t, before)

	cgtest.StopProcess(t, a.Cmd)
	if err := m.Destroy(); err != nil {
		t.Fatal(err)
	}
}

// TestHostStatsV2 runs on the host's cgroup2 hierarchy: the whole host on
// v2, the unified mount on a hybrid one, where only the controllers it
// offers (hugetlb here) have anything to report.
func TestHostStatsV2(t *testing.T) {
	cgtest.RequireRoot(t)
	root := "/sys/fs/cgroup"
	switch hostMode(t) {
	case cgroups.ModeHybrid:
		root = cgroups.UnifiedRoot("/sys/fs/cgroup", cgroups.ModeHybrid)
	case cgroups.ModeV2:
	default:
		t.Skip("host has no cgroup2 hierarchy")
	}
	name := cgtest.UniqueName(t)
	m, err := cgroups.New(cgroups.Config{Path: "/" + name, Root: root, Mode: cgroups.ModeV2})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Create(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Destroy() })
	avail, err := cgroups.Controllers(m.Paths()[""])
	if err != nil {
		t.Fatal(err)
	}
	a := cgtest.StartAllocator(t, 4<<20)
	if err := m.Apply(a.Pid()); err != nil {
		t.Fatal(err)
	}
	a.Allocate(t, true)
	s := metricsOf[v2stats.Metrics](t, m)
	t.Logf("controllers %v: pids %v, memory usage %d, hugetlb %v", avail, s.GetPids(), s.GetMemory().GetUsage(), s.GetHugetlb())
	if avail["pids"] && s.GetPids().GetCurrent() < 1 {
		t.Errorf("pids.current = %d, want >= 1", s.GetPids().GetCurrent())
	}
	if avail["memory"] && s.GetMemory().GetUsage() == 0 {
		t.Errorf("memory usage 0 after the helper allocated 4 MiB")
	}
	if avail["hugetlb"] && cgtest.IsDir("/sys/kernel/mm/hugepages/hugepages-2048kB") {
		var sizes []string
		for _, h := range s.GetHugetlb() {
			sizes = append(sizes, h.GetPagesize())
		}
		if !strings.Contains(strings.Join(sizes, " "), "2MB") {
			t.Errorf("no 2MB hugetlb entry: %v", s.GetHugetlb())
		}
	}
	metricsType(t, s, "io.containerd.cgroups.v2.Metrics")
	cgtest.StopProcess(t, a.Cmd)
	if err := m.Destroy(); err != nil {
		t.Fatal(err)
	}
	if _, err := Metrics(m); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stats after Destroy: %v, want fs.ErrNotExist", err)
	}
}

// metricsOf reads m's metrics, which must be a *T.
func metricsOf[T any](t *testing.T, m cgroups.Manager) *T {
	t.Helper()
	msg, err := Metrics(m)
	if err != nil {
		t.Fatal(err)
	}
	s, ok := any(msg).(*T)
	if !ok {
		t.Fatalf("Metrics is a %T, want a %T", msg, s)
	}
	return s
}

func hostMode(t *testing.T) cgroups.Mode {
	t.Helper()
	m, err := cgroups.New(cgroups.Config{Path: "/runmini-mode-probe"})
	if err != nil {
		t.Skipf("no cgroup filesystem on this host: %v", err)
	}
	return m.Mode()
}
