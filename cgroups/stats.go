package cgroups

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/containerd/cgroups/v3/cgroup1"
	v1stats "github.com/containerd/cgroups/v3/cgroup1/stats"
	"github.com/containerd/cgroups/v3/cgroup2"
	"google.golang.org/protobuf/proto"
)

// Stats returns the container's metrics in the form containerd's
// Task.Metrics carries and `ctr task metrics` decodes: a
// *github.com/containerd/cgroups/v3/cgroup1/stats.Metrics
// (io.containerd.cgroups.v1.Metrics) on v1 and hybrid hosts, where the
// container's resources live in v1, and a *.../cgroup2/stats.Metrics
// (io.containerd.cgroups.v2.Metrics) on v2 hosts. The caller wraps it
// with typeurl.MarshalAny. A cgroup that no longer exists gives an error
// wrapping fs.ErrNotExist.
func (m *manager) Stats() (proto.Message, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mode == ModeV2 {
		return m.statsV2()
	}
	return m.statsV1()
}

func (m *manager) statsV1() (*v1stats.Metrics, error) {
	// The library's Load treats a cgroup with no directory left as
	// deleted with an error of its own; report it the way Pids does.
	if dir := m.someV1Dir(); !exists(dir) {
		return nil, fmt.Errorf("stats of cgroup %s: %w", dir, fs.ErrNotExist)
	}
	cg, err := m.cgroup1(false)
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
func (m *manager) hugetlbFromV2() ([]*v1stats.HugetlbStat, error) {
	avail, err := m.files.availableV2(m.v2)
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

func (m *manager) statsV2() (proto.Message, error) {
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
		f := filepath.Join(hierarchyDir(root, "memory"), "memory."+mod+".usage_in_bytes")
		if _, err := os.Stat(f); os.IsNotExist(err) {
			missing = append(missing, mod)
		}
	}
	return cgroup1.NewMemory(root, cgroup1.IgnoreModules(missing...))
}
