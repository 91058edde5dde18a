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

func TestV2Resources(t *testing.T) {
	const cg = "/pod/ctr"
	tests := []struct {
		name        string
		res         specs.LinuxResources
		controllers string // offered by the fake root; cgtest.V2Controllers when ""
		setup       func(t *testing.T, dir string)
		want        map[string]string // file in the cgroup -> content
		order       []string
		err         error
		errMsg      string
	}{
		{
			name: "memory",
			res: specs.LinuxResources{Memory: &specs.LinuxMemory{
				Limit: cgtest.Ptr(int64(256 << 20)), Swap: cgtest.Ptr(int64(768 << 20)), Reservation: cgtest.Ptr(int64(128 << 20)),
				Kernel: cgtest.Ptr(int64(1)), KernelTCP: cgtest.Ptr(int64(1)), Swappiness: cgtest.Ptr(uint64(10)),
			}},
			// swap.max holds swap alone: 768M - 256M.
			want:  map[string]string{"memory.max": "268435456", "memory.swap.max": "536870912", "memory.low": "134217728"},
			order: []string{"memory.swap.max=536870912", "memory.max=268435456"},
		},
		{
			name: "memory equal to swap disables swap",
			res:  specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: cgtest.Ptr(int64(1 << 30)), Swap: cgtest.Ptr(int64(1 << 30))}},
			want: map[string]string{"memory.max": "1073741824", "memory.swap.max": "0"},
		},
		{
			name: "memory unlimited",
			res:  specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: cgtest.Ptr(int64(-1))}},
			want: map[string]string{"memory.max": "max", "memory.swap.max": "max"},
		},
		{
			name:  "unlimited swap without swap accounting",
			res:   specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: cgtest.Ptr(int64(1 << 30)), Swap: cgtest.Ptr(int64(-1))}},
			setup: func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, "memory.swap.max")) },
			want:  map[string]string{"memory.max": "1073741824"},
		},
		{
			name:   "swap without a memory limit",
			res:    specs.LinuxResources{Memory: &specs.LinuxMemory{Swap: cgtest.Ptr(int64(1 << 30))}},
			errMsg: "without a memory limit",
		},
		{
			name:   "swap below the memory limit",
			res:    specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: cgtest.Ptr(int64(2 << 30)), Swap: cgtest.Ptr(int64(1 << 30))}},
			errMsg: "below the memory limit",
		},
		{
			name:   "limit below usage with checkBeforeUpdate",
			res:    specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: cgtest.Ptr(int64(4096)), CheckBeforeUpdate: cgtest.Ptr(true)}},
			setup:  func(t *testing.T, dir string) { cgtest.WriteFiles(t, dir, map[string]string{"memory.current": "8192"}) },
			errMsg: "current usage 8192",
		},
		{
			name: "cpu",
			res: specs.LinuxResources{CPU: &specs.LinuxCPU{
				Shares: cgtest.Ptr(uint64(1024)), Quota: cgtest.Ptr(int64(50000)), Period: cgtest.Ptr(uint64(200000)), Burst: cgtest.Ptr(uint64(1000)),
				Idle: cgtest.Ptr(int64(1)), Cpus: "0-1", Mems: "0",
			}},
			want: map[string]string{
				"cpu.weight": "100", "cpu.max": "50000 200000", "cpu.max.burst": "1000", "cpu.idle": "1",
				"cpuset.cpus": "0-1", "cpuset.mems": "0",
			},
		},
		{
			name: "cpu minimum shares and default period",
			res:  specs.LinuxResources{CPU: &specs.LinuxCPU{Shares: cgtest.Ptr(uint64(2)), Quota: cgtest.Ptr(int64(20000))}},
			want: map[string]string{"cpu.weight": "1", "cpu.max": "20000 100000"},
		},
		{
			name: "cpu unlimited quota",
			res:  specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: cgtest.Ptr(int64(-1)), Period: cgtest.Ptr(uint64(50000))}},
			want: map[string]string{"cpu.max": "max 50000"},
		},
		{
			name:   "realtime",
			res:    specs.LinuxResources{CPU: &specs.LinuxCPU{RealtimeRuntime: cgtest.Ptr(int64(1000))}},
			err:    ErrControllerUnavailable,
			errMsg: "realtime",
		},
		{
			name: "io weight converted",
			res: specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{
				Weight:                 cgtest.Ptr(uint16(500)),
				ThrottleWriteBpsDevice: []specs.LinuxThrottleDevice{{LinuxBlockIODevice: specs.LinuxBlockIODevice{Major: 8, Minor: 0}, Rate: 1 << 20}},
			}},
			want: map[string]string{"io.weight": "4950", "io.max": "8:0 wbps=1048576"},
		},
		{
			name: "io weight through bfq",
			res:  specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{Weight: cgtest.Ptr(uint16(500))}},
			setup: func(t *testing.T, dir string) {
				cgtest.WriteFiles(t, dir, map[string]string{"io.bfq.weight": "default 100"})
			},
			want: map[string]string{"io.bfq.weight": "500", "io.weight": "default 100"},
		},
		{
			name: "pids, hugetlb, rdma",
			res: specs.LinuxResources{
				Pids:           &specs.LinuxPids{Limit: cgtest.Ptr(int64(32))},
				HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 8 << 20}},
				Rdma:           map[string]specs.LinuxRdma{"mlx5_0": {HcaHandles: cgtest.Ptr(uint32(1)), HcaObjects: cgtest.Ptr(uint32(2))}},
			},
			want: map[string]string{"pids.max": "32", "hugetlb.2MB.max": "8388608", "rdma.max": "mlx5_0 hca_handle=1 hca_object=2"},
		},
		{
			name: "unified overrides typed fields",
			res: specs.LinuxResources{
				Memory:  &specs.LinuxMemory{Limit: cgtest.Ptr(int64(1 << 30))},
				Unified: map[string]string{"memory.max": "2147483648", "cgroup.freeze": "0"},
			},
			want:  map[string]string{"memory.max": "2147483648"},
			order: []string{"memory.max=1073741824", "memory.max=2147483648"},
		},
		{
			name:   "unified key of an absent controller",
			res:    specs.LinuxResources{Unified: map[string]string{"misc.max": "x 1"}},
			err:    ErrControllerUnavailable,
			errMsg: "misc",
		},
		{
			name:   "unified key that is no file",
			res:    specs.LinuxResources{Unified: map[string]string{"memory.bogus": "1"}},
			errMsg: "memory.bogus",
		},
		{
			name:   "unified key with a slash",
			res:    specs.LinuxResources{Unified: map[string]string{"../memory.max": "1"}},
			errMsg: "invalid unified",
		},
		{
			name:        "io controller missing",
			controllers: "cpu memory pids",
			res:         specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{Weight: cgtest.Ptr(uint16(100))}},
			err:         ErrControllerUnavailable,
			errMsg:      "io",
		},
		{
			name:        "io controller missing but weight zero",
			controllers: "cpu memory pids",
			res:         specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{Weight: cgtest.Ptr(uint16(0))}},
		},
		{
			name:   "network is v1 only",
			res:    specs.LinuxResources{Network: &specs.LinuxNetwork{ClassID: cgtest.Ptr(uint32(1))}},
			err:    ErrControllerUnavailable,
			errMsg: "net_cls",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			controllers := tc.controllers
			if controllers == "" {
				controllers = cgtest.V2Controllers
			}
			cgtest.FakeV2(t, root, cg, controllers)
			dir := filepath.Join(root, cg)
			if tc.setup != nil {
				tc.setup(t, dir)
			}
			m, rec, err := newTraced(t, Config{Path: cg, Root: root, Mode: ModeV2, Resources: &tc.res})
			if err == nil {
				err = m.Create()
				t.Cleanup(m.closeFD)
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
			for file, want := range tc.want {
				if got := cgtest.ReadFile(t, filepath.Join(dir, file)); got != want {
					t.Errorf("%s = %q, want %q", file, got, want)
				}
			}
			last := -1
			for _, w := range tc.order {
				i := rec.index(w)
				if i < 0 || i < last {
					t.Errorf("write %q missing or out of order; writes: %q", w, rec.writes)
				}
				last = i
			}
		})
	}
}

func TestV2EnablesControllersTopDown(t *testing.T) {
	root := t.TempDir()
	cgtest.FakeV2(t, root, "/pod/ctr", cgtest.V2Controllers)
	m, rec, err := newTraced(t, Config{Path: "/pod/ctr", Root: root, Mode: ModeV2, Resources: &specs.LinuxResources{
		Pids: &specs.LinuxPids{Limit: cgtest.Ptr(int64(10))},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Create(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.closeFD() })
	const all = "+cpu +cpuset +hugetlb +io +memory +pids +rdma"
	for _, dir := range []string{root, filepath.Join(root, "pod")} {
		if got := cgtest.ReadFile(t, filepath.Join(dir, "cgroup.subtree_control")); got != all {
			t.Errorf("%s/cgroup.subtree_control = %q, want %q", dir, got, all)
		}
	}
	if got := cgtest.ReadFile(t, filepath.Join(root, "pod/ctr/cgroup.subtree_control")); got != "" {
		t.Errorf("the container's own subtree_control was written: %q", got)
	}
	if i, j := rec.index("cgroup.subtree_control="+all), rec.index("pids.max=10"); i < 0 || j < i {
		t.Errorf("controllers not enabled before limits were written: %q", rec.writes)
	}
	if fd := m.FD(); fd < 0 {
		t.Errorf("FD() = %d on v2", fd)
	}
}

func TestV2ControllerNotDelegated(t *testing.T) {
	root := t.TempDir()
	cgtest.FakeV2(t, root, "/pod/ctr", cgtest.V2Controllers)
	// The root offers memory, but the level below never gets it.
	cgtest.WriteFiles(t, filepath.Join(root, "pod"), map[string]string{"cgroup.controllers": "cpu pids"})
	cgtest.WriteFiles(t, filepath.Join(root, "pod/ctr"), map[string]string{"cgroup.controllers": "cpu pids"})
	m, err := New(Config{Path: "/pod/ctr", Root: root, Mode: ModeV2, Resources: &specs.LinuxResources{
		Memory: &specs.LinuxMemory{Limit: cgtest.Ptr(int64(1 << 20))},
	}})
	if err != nil {
		t.Fatal(err)
	}
	err = m.Create()
	if !errors.Is(err, ErrControllerUnavailable) || !strings.Contains(err.Error(), "memory") {
		t.Fatalf("Create: %v, want memory unavailable", err)
	}
	if m.(*manager).fd != -1 {
		t.Errorf("fd left open after a failed Create")
	}
}

func TestHybridResources(t *testing.T) {
	root := t.TempDir()
	const cg = "/ctr"
	// Like this development host: v1 for everything but hugetlb, which
	// only the cgroup2 hierarchy has.
	cgtest.FakeV1(t, root, cg, "hugetlb")
	mnt := filepath.Join(root, "unified")
	cgtest.FakeV2(t, mnt, cg, "hugetlb")
	m, rec, err := newTraced(t, Config{Path: cg, Root: root, Mode: ModeHybrid, Resources: &specs.LinuxResources{
		Memory:         &specs.LinuxMemory{Limit: cgtest.Ptr(int64(64 << 20))},
		HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 4 << 20}},
		Unified:        map[string]string{"hugetlb.2MB.max": "6291456"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Create(); err != nil {
		t.Fatal(err)
	}
	if got := cgtest.ReadFile(t, filepath.Join(root, "memory", cg, "memory.limit_in_bytes")); got != "67108864" {
		t.Errorf("v1 memory.limit_in_bytes = %q", got)
	}
	if rec.index("hugetlb.2MB.max=4194304") < 0 {
		t.Errorf("hugetlb limit not written to the unified hierarchy: %q", rec.writes)
	}
	if got := cgtest.ReadFile(t, filepath.Join(mnt, cg, "hugetlb.2MB.max")); got != "6291456" {
		t.Errorf("unified hugetlb.2MB.max = %q, want the unified override", got)
	}
	if got := cgtest.ReadFile(t, filepath.Join(mnt, "cgroup.subtree_control")); got != "+hugetlb" {
		t.Errorf("unified root subtree_control = %q", got)
	}
	paths := m.Paths()
	if paths[""] != filepath.Join(mnt, cg) || paths["memory"] != filepath.Join(root, "memory", cg) {
		t.Errorf("Paths() = %v", paths)
	}
	if _, ok := paths["hugetlb"]; ok {
		t.Errorf("Paths() has a v1 hugetlb entry the host does not have: %v", paths)
	}
	if m.FD() != -1 {
		t.Errorf("FD() = %d on a hybrid host, want -1", m.FD())
	}
}

func TestHybridWithoutAnyHugetlb(t *testing.T) {
	root := t.TempDir()
	cgtest.FakeV1(t, root, "/ctr", "hugetlb")
	cgtest.FakeV2(t, filepath.Join(root, "unified"), "/ctr", "")
	_, err := New(Config{Path: "/ctr", Root: root, Mode: ModeHybrid, Resources: &specs.LinuxResources{
		HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 1 << 21}},
	}})
	if !errors.Is(err, ErrControllerUnavailable) || !strings.Contains(err.Error(), "hugetlb") {
		t.Fatalf("New: %v, want hugetlb unavailable", err)
	}
}

func TestCPUWeight(t *testing.T) {
	for shares, want := range map[uint64]uint64{0: 1, 2: 1, 1024: 100, 262144: 10000, 1 << 20: 10000} {
		if got := cpuWeight(shares); got != want {
			t.Errorf("cpuWeight(%d) = %d, want %d", shares, got, want)
		}
	}
	prev := uint64(0)
	for s := uint64(2); s <= 262144; s += 97 {
		w := cpuWeight(s)
		if w < prev || w < 1 || w > 10000 {
			t.Fatalf("cpuWeight(%d) = %d after %d: not monotonic within [1, 10000]", s, w, prev)
		}
		prev = w
	}
}
