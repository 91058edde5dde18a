package cgroups

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// A fake cgroupfs in a temporary directory: hierarchies are directories,
// control files are regular files the test creates where the kernel
// would have them. Writes never create files, so a file left out plays
// a missing controller or knob.

const unlimitedV1 = "9223372036854771712"

// v1Files are the control files of a fresh v1 cgroup, per hierarchy.
func v1Files() map[string]map[string]string {
	return map[string]map[string]string{
		"memory": {
			"memory.limit_in_bytes": unlimitedV1, "memory.memsw.limit_in_bytes": unlimitedV1,
			"memory.soft_limit_in_bytes": unlimitedV1, "memory.kmem.tcp.limit_in_bytes": unlimitedV1,
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
		"hugetlb":      {"hugetlb.2MB.limit_in_bytes": unlimitedV1, "cgroup.procs": ""},
		"name=systemd": {"cgroup.procs": ""},
		"blkio": {
			"blkio.weight": "500", "blkio.weight_device": "", "blkio.leaf_weight": "500",
			"blkio.leaf_weight_device": "", "blkio.throttle.read_bps_device": "",
			"blkio.throttle.write_bps_device": "", "blkio.throttle.read_iops_device": "",
			"blkio.throttle.write_iops_device": "", "cgroup.procs": "",
		},
	}
}

// v2Controllers is what the fake cgroup2 root offers.
const v2Controllers = "cpuset cpu io memory hugetlb pids rdma"

// v2Files are the control files of a fresh cgroup2 cgroup.
func v2Files() map[string]string {
	return map[string]string{
		"cgroup.controllers": v2Controllers, "cgroup.subtree_control": "", "cgroup.procs": "",
		"cgroup.freeze": "0", "cgroup.events": "populated 0\nfrozen 0",
		"memory.max": "max", "memory.swap.max": "max", "memory.low": "0", "memory.current": "4096",
		"cpu.weight": "100", "cpu.max": "max 100000", "cpu.max.burst": "0", "cpu.idle": "0",
		"cpuset.cpus": "", "cpuset.mems": "", "pids.max": "max", "io.weight": "default 100",
		"io.max": "", "hugetlb.2MB.max": "max", "rdma.max": "",
	}
}

func writeFiles(t testing.TB, dir string, files map[string]string) {
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

// fakeV1 builds v1 hierarchies under root holding a cgroup at path
// (absolute), skipping the controllers in drop.
func fakeV1(t testing.TB, root, path string, drop ...string) {
	t.Helper()
	for ctrl, files := range v1Files() {
		if slices.Contains(drop, ctrl) {
			continue
		}
		mnt := hierarchyDir(root, ctrl)
		top := map[string]string{"cgroup.procs": ""}
		if ctrl == "cpuset" {
			top = map[string]string{"cpuset.cpus": "0-1", "cpuset.mems": "0", "cgroup.procs": ""}
		}
		writeFiles(t, mnt, top)
		writeFiles(t, filepath.Join(mnt, path), files)
	}
}

// fakeV2 builds a cgroup2 hierarchy at mnt holding a cgroup at path,
// with every intermediate level offering controllers.
func fakeV2(t testing.TB, mnt, path, controllers string) {
	t.Helper()
	writeFiles(t, mnt, map[string]string{"cgroup.controllers": controllers, "cgroup.subtree_control": "", "cgroup.procs": ""})
	cur := mnt
	elems := strings.Split(strings.Trim(path, "/"), "/")
	for _, e := range elems[:len(elems)-1] {
		cur = filepath.Join(cur, e)
		writeFiles(t, cur, map[string]string{"cgroup.controllers": controllers, "cgroup.subtree_control": ""})
	}
	files := v2Files()
	files["cgroup.controllers"] = controllers
	writeFiles(t, filepath.Join(mnt, path), files)
}

func readFile(t testing.TB, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// recorder collects every write a manager makes, in order.
type recorder struct {
	mu     sync.Mutex
	writes []string
}

func (r *recorder) trace(path, value string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.writes = append(r.writes, filepath.Base(path)+"="+value)
}

func (r *recorder) index(w string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Index(r.writes, w)
}

// newTraced is New with a recorder attached.
func newTraced(t testing.TB, c Config) (*manager, *recorder, error) {
	t.Helper()
	mgr, err := New(c)
	if err != nil {
		return nil, nil, err
	}
	m := mgr.(*manager)
	rec := &recorder{}
	m.files.trace = rec.trace
	return m, rec, nil
}

func ptr[T any](v T) *T { return &v }
