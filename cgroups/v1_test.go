package cgroups

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/runmini/runmini/cgroups/internal/cgtest"
)

func TestV1Resources(t *testing.T) {
	const cg = "/ctr"
	tests := []struct {
		name string
		res  specs.LinuxResources
		// setup adjusts the fake cgroupfs before New.
		setup func(t *testing.T, root string)
		drop  []string
		// want maps "controller/file" to its expected content.
		want map[string]string
		// order lists writes ("file=value") that must happen in order.
		order []string
		// absent lists writes that must not happen.
		absent []string
		err    error
		errMsg string
	}{
		{
			name: "memory shrinking",
			res: specs.LinuxResources{Memory: &specs.LinuxMemory{
				Limit: cgtest.Ptr(int64(256 << 20)), Swap: cgtest.Ptr(int64(512 << 20)), Reservation: cgtest.Ptr(int64(128 << 20)),
				KernelTCP: cgtest.Ptr(int64(64 << 20)), Swappiness: cgtest.Ptr(uint64(10)), DisableOOMKiller: cgtest.Ptr(true),
				UseHierarchy: cgtest.Ptr(true), Kernel: cgtest.Ptr(int64(1 << 20)),
			}},
			want: map[string]string{
				"memory/memory.limit_in_bytes": "268435456", "memory/memory.memsw.limit_in_bytes": "536870912",
				"memory/memory.soft_limit_in_bytes": "134217728", "memory/memory.kmem.tcp.limit_in_bytes": "67108864",
				"memory/memory.swappiness": "10", "memory/memory.oom_control": "1", "memory/memory.use_hierarchy": "1",
			},
			// From unlimited, the limit must drop before memsw can.
			order:  []string{"memory.limit_in_bytes=268435456", "memory.memsw.limit_in_bytes=536870912"},
			absent: []string{"memory.kmem.limit_in_bytes=1048576"},
		},
		{
			name: "memory growing",
			res:  specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: cgtest.Ptr(int64(256 << 20)), Swap: cgtest.Ptr(int64(512 << 20))}},
			setup: func(t *testing.T, root string) {
				cgtest.WriteFiles(t, filepath.Join(root, "memory", cg), map[string]string{"memory.limit_in_bytes": "1048576", "memory.memsw.limit_in_bytes": "1048576"})
			},
			order: []string{"memory.memsw.limit_in_bytes=536870912", "memory.limit_in_bytes=268435456"},
		},
		{
			name:  "memory unlimited takes swap along",
			res:   specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: cgtest.Ptr(int64(-1))}},
			order: []string{"memory.memsw.limit_in_bytes=-1", "memory.limit_in_bytes=-1"},
		},
		{
			name: "swappiness -1 is unset",
			res:  specs.LinuxResources{Memory: &specs.LinuxMemory{Swappiness: cgtest.Ptr(uint64(swappinessUnset))}},
			drop: []string{"memory"},
		},
		{
			name:   "swappiness out of range",
			res:    specs.LinuxResources{Memory: &specs.LinuxMemory{Swappiness: cgtest.Ptr(uint64(101))}},
			errMsg: "swappiness",
		},
		{
			name: "cpu",
			res: specs.LinuxResources{CPU: &specs.LinuxCPU{
				Shares: cgtest.Ptr(uint64(512)), Quota: cgtest.Ptr(int64(50000)), Period: cgtest.Ptr(uint64(200000)), Burst: cgtest.Ptr(uint64(1000)),
				Idle: cgtest.Ptr(int64(1)), RealtimeRuntime: cgtest.Ptr(int64(950000)), RealtimePeriod: cgtest.Ptr(uint64(1000000)),
				Cpus: "1", Mems: "0",
			}},
			want: map[string]string{
				"cpu/cpu.shares": "512", "cpu/cpu.cfs_quota_us": "50000", "cpu/cpu.cfs_period_us": "200000",
				"cpu/cpu.cfs_burst_us": "1000", "cpu/cpu.idle": "1", "cpu/cpu.rt_runtime_us": "950000",
				"cpu/cpu.rt_period_us": "1000000", "cpuset/cpuset.cpus": "1", "cpuset/cpuset.mems": "0",
			},
		},
		{
			name: "cpuset inherited from parent",
			res:  specs.LinuxResources{},
			want: map[string]string{"cpuset/cpuset.cpus": "0-1", "cpuset/cpuset.mems": "0"},
		},
		{
			name:   "burst without kernel support",
			res:    specs.LinuxResources{CPU: &specs.LinuxCPU{Burst: cgtest.Ptr(uint64(1000))}},
			setup:  func(t *testing.T, root string) { os.Remove(filepath.Join(root, "cpu", cg, "cpu.cfs_burst_us")) },
			errMsg: "cpu.cfs_burst_us",
		},
		{
			name:  "zero burst without kernel support",
			res:   specs.LinuxResources{CPU: &specs.LinuxCPU{Burst: cgtest.Ptr(uint64(0))}},
			setup: func(t *testing.T, root string) { os.Remove(filepath.Join(root, "cpu", cg, "cpu.cfs_burst_us")) },
		},
		{
			name: "pids",
			res:  specs.LinuxResources{Pids: &specs.LinuxPids{Limit: cgtest.Ptr(int64(100))}},
			want: map[string]string{"pids/pids.max": "100"},
		},
		{
			name: "pids unlimited",
			res:  specs.LinuxResources{Pids: &specs.LinuxPids{Limit: cgtest.Ptr(int64(-1))}},
			want: map[string]string{"pids/pids.max": "max"},
		},
		{
			name: "blkio",
			res: specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{
				Weight: cgtest.Ptr(uint16(300)), LeafWeight: cgtest.Ptr(uint16(200)),
				WeightDevice:            []specs.LinuxWeightDevice{{LinuxBlockIODevice: specs.LinuxBlockIODevice{Major: 8, Minor: 0}, Weight: cgtest.Ptr(uint16(400)), LeafWeight: cgtest.Ptr(uint16(100))}},
				ThrottleReadBpsDevice:   []specs.LinuxThrottleDevice{{LinuxBlockIODevice: specs.LinuxBlockIODevice{Major: 8, Minor: 0}, Rate: 1 << 20}},
				ThrottleWriteIOPSDevice: []specs.LinuxThrottleDevice{{LinuxBlockIODevice: specs.LinuxBlockIODevice{Major: 8, Minor: 16}, Rate: 500}},
			}},
			want: map[string]string{
				"blkio/blkio.weight": "300", "blkio/blkio.leaf_weight": "200", "blkio/blkio.weight_device": "8:0 400",
				"blkio/blkio.leaf_weight_device": "8:0 100", "blkio/blkio.throttle.read_bps_device": "8:0 1048576",
				"blkio/blkio.throttle.write_iops_device": "8:16 500",
			},
		},
		{
			name: "blkio weight through bfq",
			res:  specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{Weight: cgtest.Ptr(uint16(300))}},
			setup: func(t *testing.T, root string) {
				dir := filepath.Join(root, "blkio", cg)
				os.Remove(filepath.Join(dir, "blkio.weight"))
				cgtest.WriteFiles(t, dir, map[string]string{"blkio.bfq.weight": "100"})
			},
			want: map[string]string{"blkio/blkio.bfq.weight": "300"},
		},
		{
			name: "hugetlb",
			res:  specs.LinuxResources{HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 4 << 20}}},
			want: map[string]string{"hugetlb/hugetlb.2MB.limit_in_bytes": "4194304"},
		},
		{
			name:   "hugetlb page size with a slash",
			res:    specs.LinuxResources{HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "../2MB", Limit: 1}}},
			errMsg: "hugepage size",
		},
		{
			name: "network",
			res: specs.LinuxResources{Network: &specs.LinuxNetwork{
				ClassID: cgtest.Ptr(uint32(0x100001)), Priorities: []specs.LinuxInterfacePriority{{Name: "eth0", Priority: 5}},
			}},
			want: map[string]string{"net_cls/net_cls.classid": "1048577", "net_prio/net_prio.ifpriomap": "eth0 5"},
		},
		{
			name: "rdma",
			res: specs.LinuxResources{Rdma: map[string]specs.LinuxRdma{
				"mlx4_0": {HcaHandles: cgtest.Ptr(uint32(3)), HcaObjects: cgtest.Ptr(uint32(100))},
				"mlx5_1": {HcaHandles: cgtest.Ptr(uint32(7))},
			}},
			order: []string{"rdma.max=mlx4_0 hca_handle=3 hca_object=100", "rdma.max=mlx5_1 hca_handle=7"},
		},
		{
			name: "devices",
			res: specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{
				{Allow: false, Access: "rwm"},
				{Allow: true, Type: "c", Major: cgtest.Ptr(int64(1)), Minor: cgtest.Ptr(int64(3)), Access: "rwm"},
				{Allow: true, Type: "c", Major: cgtest.Ptr(int64(136)), Minor: cgtest.Ptr(int64(-1)), Access: "rw"},
			}},
			order: []string{"devices.deny=a *:* rwm", "devices.allow=c 1:3 rwm", "devices.allow=c 136:* rw"},
		},
		{
			name:   "device rule with bad access",
			res:    specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: true, Type: "c", Access: "rwx\n"}}},
			errMsg: "access",
		},
		{
			name:   "missing net_cls with a class id",
			res:    specs.LinuxResources{Network: &specs.LinuxNetwork{ClassID: cgtest.Ptr(uint32(7))}},
			drop:   []string{"net_cls"},
			err:    ErrControllerUnavailable,
			errMsg: "net_cls",
		},
		{
			name: "missing net_cls with a zero class id",
			res:  specs.LinuxResources{Network: &specs.LinuxNetwork{ClassID: cgtest.Ptr(uint32(0))}},
			drop: []string{"net_cls"},
		},
		{
			name:   "missing hugetlb",
			res:    specs.LinuxResources{HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 1 << 21}}},
			drop:   []string{"hugetlb"},
			err:    ErrControllerUnavailable,
			errMsg: "hugetlb",
		},
		{
			name:   "unified on a v1 host",
			res:    specs.LinuxResources{Unified: map[string]string{"memory.high": "1G"}},
			err:    ErrControllerUnavailable,
			errMsg: "unified",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			cgtest.FakeV1(t, root, cg, tc.drop...)
			if tc.setup != nil {
				tc.setup(t, root)
			}
			m, rec, err := newTraced(t, Config{Path: cg, Root: root, Mode: ModeV1, Resources: &tc.res})
			if err == nil {
				err = m.Create()
			}
			if tc.err != nil || tc.errMsg != "" {
				if err == nil {
					t.Fatalf("want error %v %q, got none", tc.err, tc.errMsg)
				}
				if tc.err != nil && !errors.Is(err, tc.err) {
					t.Errorf("error %v is not %v", err, tc.err)
				}
				if !strings.Contains(err.Error(), tc.errMsg) {
					t.Errorf("error %q does not mention %q", err, tc.errMsg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for key, want := range tc.want {
				ctrl, file, _ := strings.Cut(key, "/")
				if got := cgtest.ReadFile(t, filepath.Join(hierarchyDir(root, ctrl), cg, file)); got != want {
					t.Errorf("%s = %q, want %q", key, got, want)
				}
			}
			last := -1
			for _, w := range tc.order {
				i := rec.index(w)
				if i < 0 {
					t.Errorf("write %q missing; writes: %q", w, rec.writes)
				} else if i < last {
					t.Errorf("write %q out of order; writes: %q", w, rec.writes)
				}
				last = i
			}
			for _, w := range tc.absent {
				if rec.index(w) >= 0 {
					t.Errorf("unexpected write %q", w)
				}
			}
		})
	}
}

func TestV1SetOrdersMemoryAgainstCurrentLimit(t *testing.T) {
	root := t.TempDir()
	cgtest.FakeV1(t, root, "/ctr")
	m, rec, err := newTraced(t, Config{Path: "/ctr", Root: root, Mode: ModeV1, Resources: &specs.LinuxResources{
		Memory: &specs.LinuxMemory{Limit: cgtest.Ptr(int64(100 << 20)), Swap: cgtest.Ptr(int64(200 << 20))},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Create(); err != nil {
		t.Fatal(err)
	}
	// Growing past the current memsw needs memsw first.
	rec.writes = nil
	if err := m.Set(&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: cgtest.Ptr(int64(300 << 20)), Swap: cgtest.Ptr(int64(400 << 20))}}); err != nil {
		t.Fatal(err)
	}
	want := []string{"memory.memsw.limit_in_bytes=419430400", "memory.limit_in_bytes=314572800"}
	if strings.Join(rec.writes, ",") != strings.Join(want, ",") {
		t.Errorf("writes %q, want %q", rec.writes, want)
	}
	// Shrinking below the current limit needs the limit first.
	rec.writes = nil
	if err := m.Set(&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: cgtest.Ptr(int64(50 << 20)), Swap: cgtest.Ptr(int64(60 << 20))}}); err != nil {
		t.Fatal(err)
	}
	want = []string{"memory.limit_in_bytes=52428800", "memory.memsw.limit_in_bytes=62914560"}
	if strings.Join(rec.writes, ",") != strings.Join(want, ",") {
		t.Errorf("writes %q, want %q", rec.writes, want)
	}
}

func TestV1CreateFailureRemovesWhatItMade(t *testing.T) {
	root := t.TempDir()
	// The hierarchies exist but the cgroup does not: Create makes
	// "/new/ctr" everywhere, then the memory write fails because the
	// fake kernel put no files in the new directory.
	cgtest.FakeV1(t, root, "/other")
	m, err := New(Config{Path: "/new/ctr", Root: root, Mode: ModeV1, Resources: &specs.LinuxResources{
		Memory: &specs.LinuxMemory{Limit: cgtest.Ptr(int64(1 << 20))},
	}})
	if err != nil {
		t.Fatal(err)
	}
	// As root the memory write fails; unprivileged, the library's cpuset
	// copy into its own mode-0 files fails first. Either way the
	// directories must go.
	err = m.Create()
	if err == nil || !strings.Contains(err.Error(), "create cgroup") {
		t.Fatalf("Create: %v, want a create cgroup error", err)
	}
	for ctrl := range cgtest.V1Files() {
		if _, err := os.Stat(filepath.Join(hierarchyDir(root, ctrl), "new")); !os.IsNotExist(err) {
			t.Errorf("%s: /new left behind (%v)", ctrl, err)
		}
		if _, err := os.Stat(filepath.Join(hierarchyDir(root, ctrl), "other")); err != nil {
			t.Errorf("%s: pre-existing cgroup removed: %v", ctrl, err)
		}
	}
}

func TestV1FreezeAndPids(t *testing.T) {
	root := t.TempDir()
	cgtest.FakeV1(t, root, "/ctr")
	m, err := New(Config{Path: "/ctr", Root: root, Mode: ModeV1})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Create(); err != nil {
		t.Fatal(err)
	}
	if err := m.Freeze(); err != nil {
		t.Fatal(err)
	}
	if got := cgtest.ReadFile(t, filepath.Join(root, "freezer/ctr/freezer.state")); got != "FROZEN" {
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
	// Pids is recursive: a child cgroup's processes count too.
	cgtest.WriteFiles(t, filepath.Join(root, "freezer/ctr"), map[string]string{"cgroup.procs": "12\n10\n"})
	cgtest.WriteFiles(t, filepath.Join(root, "freezer/ctr/child"), map[string]string{"cgroup.procs": "11\n12\n"})
	pids, err := m.Pids()
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{10, 11, 12}; !equalInts(pids, want) {
		t.Errorf("Pids() = %v, want %v", pids, want)
	}
}

func TestV1FreezeWithoutFreezer(t *testing.T) {
	root := t.TempDir()
	cgtest.FakeV1(t, root, "/ctr", "freezer")
	m, err := New(Config{Path: "/ctr", Root: root, Mode: ModeV1})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Freeze(); !errors.Is(err, ErrControllerUnavailable) {
		t.Errorf("Freeze without freezer: %v", err)
	}
}

func TestDestroyRemovesNestedCgroups(t *testing.T) {
	root := t.TempDir()
	cgtest.FakeV1(t, root, "/other")
	m, err := New(Config{Path: "/ctr", Root: root, Mode: ModeV1})
	if err != nil {
		t.Fatal(err)
	}
	// The fake kernel leaves new directories empty, as rmdir needs.
	for _, dir := range m.Paths() {
		for _, sub := range []string{"a/b/c", "d"} {
			if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := m.Destroy(); err != nil {
		t.Fatal(err)
	}
	for ctrl, dir := range m.Paths() {
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("%s: %s still there (%v)", ctrl, dir, err)
		}
	}
	// Destroying again finds nothing, which is fine.
	if err := m.Destroy(); err != nil {
		t.Errorf("second Destroy: %v", err)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestV1SetKeepsUnchangedDeviceRules(t *testing.T) {
	root := t.TempDir()
	cgtest.FakeV1(t, root, "/ctr")
	rules := []specs.LinuxDeviceCgroup{
		{Allow: false, Access: "rwm"},
		{Allow: true, Type: "c", Major: cgtest.Ptr(int64(1)), Minor: cgtest.Ptr(int64(3)), Access: "mwr"},
		{Allow: true, Type: "c", Major: cgtest.Ptr(int64(5)), Access: "r"},
	}
	m, rec, err := newTraced(t, Config{Path: "/ctr", Root: root, Mode: ModeV1, Resources: &specs.LinuxResources{Devices: rules}})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Create(); err != nil {
		t.Fatal(err)
	}
	if rec.index("devices.deny=a *:* rwm") < 0 {
		t.Fatalf("Create did not write the rules: %q", rec.writes)
	}
	// What the kernel would list after those rules.
	cgtest.WriteFiles(t, filepath.Join(root, "devices/ctr"), map[string]string{"devices.list": "c 1:3 rwm\nc 5:* r\n"})
	rec.writes = nil
	if err := m.Set(&specs.LinuxResources{Devices: rules}); err != nil {
		t.Fatal(err)
	}
	if len(rec.writes) != 0 {
		t.Errorf("Set with unchanged rules wrote %q", rec.writes)
	}
	changed := append(rules[:2:2], specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: cgtest.Ptr(int64(5)), Access: "rw"})
	if err := m.Set(&specs.LinuxResources{Devices: changed}); err != nil {
		t.Fatal(err)
	}
	if rec.index("devices.allow=c 5:* rw") < 0 {
		t.Errorf("Set with changed rules wrote %q", rec.writes)
	}
}
