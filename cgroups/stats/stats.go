// Package stats reads a container's cgroup statistics into the protobuf
// messages containerd's Task.Metrics carries, through containerd's cgroups
// library. It is apart from package cgroups because those messages'
// descriptors (and the library's cgroup1/cgroup2 packages) cost every
// process that links them several milliseconds at start: the shim, which
// reports metrics, imports this package; runmini's start path does not.
package stats

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/containerd/cgroups/v3/cgroup1"
	v1stats "github.com/containerd/cgroups/v3/cgroup1/stats"
	"github.com/containerd/cgroups/v3/cgroup2"
	"google.golang.org/protobuf/proto"

	"github.com/runmini/runmini/cgroups"
)

// Metrics returns the container's metrics in the form containerd's
// Task.Metrics carries and `ctr task metrics` decodes: a
// *github.com/containerd/cgroups/v3/cgroup1/stats.Metrics
// (io.containerd.cgroups.v1.Metrics) on v1 and hybrid hosts, where the
// container's resources live in v1, and a *.../cgroup2/stats.Metrics
// (io.containerd.cgroups.v2.Metrics) on v2 hosts. The caller wraps it
// with typeurl.MarshalAny. A cgroup that no longer exists gives an error
// wrapping fs.ErrNotExist.
func Metrics(mgr cgroups.Manager) (proto.Message, error) {
	m := viewOf(mgr)
	if m.mode == cgroups.ModeV2 {
		return m.statsV2()
	}
	return m.statsV1()
}

// view is where a Manager's cgroup lives, as the statistics need it.
type view struct {
	mode cgroups.Mode
	root string
	v1   map[string]string // hierarchy -> directory
	v2   string
	// hugetlbV2: hugepage limits (and usage) are in cgroup2, as on a
	// hybrid host without a v1 hugetlb hierarchy (see cgroups.New).
	hugetlbV2 bool
}

func viewOf(mgr cgroups.Manager) *view {
	m := &view{mode: mgr.Mode(), root: mgr.Root(), v1: map[string]string{}}
	for k, dir := range mgr.Paths() {
		if k == "" {
			m.v2 = dir
		} else {
			m.v1[k] = dir
		}
	}
	m.hugetlbV2 = cgroups.HugetlbInV2(m.mode, m.v1)
	return m
}

func (m *view) statsV1() (*v1stats.Metrics, error) {
	// The library's Load treats a cgroup with no directory left as
	// deleted with an error of its own; report it the way Pids does.
	if dir := m.someV1Dir(); !exists(dir) {
		return nil, fmt.Errorf("stats of cgroup %s: %w", dir, fs.ErrNotExist)
	}
	cg, err := m.cgroup1()
	if err != nil {
		return nil, fmt.Errorf("stats of cgroup %s: %w", m.someV1Dir(), err)
	}
	// IgnoreNotExist, as containerd's runc shim does: a statistics file
	// missing on this kernel (or a hierarchy removed under us) leaves
	// its part of the metrics empty instead of failing the whole call.
	metrics, err := cg.Stat(cgroup1.IgnoreNotExist)
	if err != nil {
		return nil, fmt.Errorf("stats of cgroup %s: %w", m.someV1Dir(), err)
	}
	if m.hugetlbV2 && m.v2 != "" {
		// On a hybrid host without a v1 hugetlb hierarchy the hugepage
		// limits went to cgroup2 (see newManager); report their usage in
		// the v1 message too, or it would have none.
		h, err := m.hugetlbFromV2()
		if err != nil {
			return nil, err
		}
		metrics.Hugetlb = append(metrics.Hugetlb, h...)
	}
	return metrics, nil
}

// hugetlbFromV2 reads the hugetlb usage of the unified side of a hybrid
// cgroup, converted to v1 entries. Nothing is returned when hugetlb is not
// enabled there (only resources that need it enable it).
func (m *view) hugetlbFromV2() ([]*v1stats.HugetlbStat, error) {
	avail, err := cgroups.Controllers(m.v2)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("stats of cgroup %s: %w", m.v2, err)
	}
	if !avail["hugetlb"] {
		return nil, nil
	}
	cg, err := m.cgroup2()
	if err != nil {
		return nil, err
	}
	v2, err := cg.StatFiltered(cgroup2.StatHugetlb)
	if err != nil {
		return nil, fmt.Errorf("stats of cgroup %s: %w", m.v2, err)
	}
	out := make([]*v1stats.HugetlbStat, 0, len(v2.Hugetlb))
	for _, h := range v2.Hugetlb {
		// v1's Max is the peak usage (max_usage_in_bytes), which cgroup2
		// does not track; v2's Max is the limit and has no v1 field.
		out = append(out, &v1stats.HugetlbStat{Usage: h.Current, Failcnt: h.Failcnt, Pagesize: h.Pagesize})
	}
	return out, nil
}

func (m *view) statsV2() (proto.Message, error) {
	// The library reads a missing file as zero, so a removed cgroup
	// would otherwise give all-zero metrics and no error.
	if !exists(m.v2) {
		return nil, fmt.Errorf("stats of cgroup %s: %w", m.v2, fs.ErrNotExist)
	}
	cg, err := m.cgroup2()
	if err != nil {
		return nil, err
	}
	metrics, err := cg.Stat()
	if err != nil {
		return nil, fmt.Errorf("stats of cgroup %s: %w", m.v2, err)
	}
	return metrics, nil
}

// v1MemoryModules are the groups of memory.<module>.* files the
// library's memory Stat reads besides the plain memory.* ones.
var v1MemoryModules = []string{"memsw", "kmem", "kmem.tcp"}

// newV1Memory is the library's memory controller told to skip the
// modules this kernel does not have: its Stat reads the modules in turn
// and gives up on the first missing file, so without swap accounting
// (no memory.memsw.*) the kmem figures after it would be lost too.
func newV1Memory(root string) cgroup1.Subsystem {
	var missing []string
	for _, mod := range v1MemoryModules {
		f := filepath.Join(cgroups.HierarchyDir(root, "memory"), "memory."+mod+".usage_in_bytes")
		if _, err := os.Stat(f); os.IsNotExist(err) {
			missing = append(missing, mod)
		}
	}
	return cgroup1.NewMemory(root, cgroup1.IgnoreModules(missing...))
}

// someV1Dir is the directory whose existence says whether the v1 cgroup
// is still there.
func (m *view) someV1Dir() string {
	if d, ok := m.v1["memory"]; ok {
		return d
	}
	keys := make([]string, 0, len(m.v1))
	for k := range m.v1 {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return m.v1[keys[0]]
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return !errors.Is(err, fs.ErrNotExist)
}

// v1Subsystem is the library's controller for one v1 hierarchy.
func v1Subsystem(root, ctrl string) cgroup1.Subsystem {
	switch ctrl {
	case "cpuset":
		return cgroup1.NewCpuset(root)
	case "cpu":
		return cgroup1.NewCpu(root)
	case "cpuacct":
		return cgroup1.NewCpuacct(root)
	case "memory":
		return newV1Memory(root)
	case "devices":
		return cgroup1.NewDevices(root)
	case "freezer":
		return cgroup1.NewFreezer(root)
	case "net_cls":
		return cgroup1.NewNetCls(root)
	case "net_prio":
		return cgroup1.NewNetPrio(root)
	case "blkio":
		return cgroup1.NewBlkio(root)
	case "perf_event":
		return cgroup1.NewPerfEvent(root)
	case "pids":
		return cgroup1.NewPids(root)
	case "rdma":
		return cgroup1.NewRdma(root)
	case "hugetlb":
		if h, err := cgroup1.NewHugetlb(root); err == nil {
			return h
		}
	}
	// misc, name=systemd, and hugetlb without /sys/kernel/mm/hugepages:
	// nothing to report.
	return cgroup1.NewNamed(root, cgroup1.Name(strings.TrimPrefix(ctrl, "name=")))
}

// cgroup1 opens the v1 side through containerd's library, restricted to
// the container's hierarchies.
func (m *view) cgroup1() (cgroup1.Cgroup, error) {
	subs := make([]cgroup1.Subsystem, 0, len(m.v1))
	byName := map[cgroup1.Name]string{}
	for ctrl := range m.v1 {
		subs = append(subs, v1Subsystem(m.root, ctrl))
		byName[cgroup1.Name(strings.TrimPrefix(ctrl, "name="))] = ctrl
	}
	hierarchy := func() ([]cgroup1.Subsystem, error) { return subs, nil }
	path := func(name cgroup1.Name) (string, error) {
		ctrl, ok := byName[name]
		if !ok {
			return "", cgroup1.ErrControllerNotActive
		}
		rel, err := filepath.Rel(cgroups.HierarchyDir(m.root, ctrl), m.v1[ctrl])
		if err != nil {
			return "", fmt.Errorf("cgroup %s outside its hierarchy: %w", m.v1[ctrl], err)
		}
		return "/" + rel, nil
	}
	return cgroup1.Load(path, cgroup1.WithHierarchy(hierarchy))
}

// cgroup2 opens the unified side through containerd's library.
func (m *view) cgroup2() (*cgroup2.Manager, error) {
	mnt := cgroups.UnifiedRoot(m.root, m.mode)
	rel, err := filepath.Rel(mnt, m.v2)
	if err != nil {
		return nil, fmt.Errorf("cgroup %s outside %s: %w", m.v2, mnt, err)
	}
	cg, err := cgroup2.Load("/"+rel, cgroup2.WithMountpoint(mnt))
	if err != nil {
		return nil, fmt.Errorf("open cgroup %s: %w", m.v2, err)
	}
	return cg, nil
}
