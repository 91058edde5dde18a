package integration

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/runmini/runmini/tests/testutil"
)

// The container's cgroup, seen on the host while it runs (the files the
// runtime wrote, found through /proc/PID/cgroup) and from inside, and gone
// after delete. This host is hybrid: cgroup v1 controllers, plus a cgroup2
// hierarchy at /sys/fs/cgroup/unified that only offers hugetlb.

func requireV1(t *testing.T, ctrl string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join("/sys/fs/cgroup", ctrl, "cgroup.procs")); err != nil {
		t.Skipf("no cgroup v1 %s hierarchy at /sys/fs/cgroup/%s: these tests cover the v1 layout", ctrl, ctrl)
	}
}

func i64(v int64) *int64   { return &v }
func u64(v uint64) *uint64 { return &v }
func u16(v uint16) *uint16 { return &v }
func resources(s *specs.Spec) *specs.LinuxResources {
	if s.Linux.Resources == nil {
		s.Linux.Resources = &specs.LinuxResources{}
	}
	return s.Linux.Resources
}

// cgroupContainer creates and starts a sleeping container with mutate
// applied and returns its id and its cgroup directories on the host.
func cgroupContainer(t *testing.T, mutate func(*specs.Spec)) (string, map[string]string) {
	t.Helper()
	bundle := testutil.Bundle(t, func(s *specs.Spec) {
		s.Process.Args = []string{"sleep", "600"}
		mutate(s)
	})
	id, st := featCreate(t, bundle)
	featMust(t, "start", id)
	return id, featHostCgroupDirs(t, st.Pid)
}

// deleteAndCheckGone deletes the container and checks that every one of
// its cgroup directories is gone.
func deleteAndCheckGone(t *testing.T, id string, dirs map[string]string) {
	t.Helper()
	featMust(t, "delete", "--force", id)
	for ctrl, d := range dirs {
		if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("cgroup %s (%q) still there after delete: %v", d, ctrl, err)
		}
	}
}

func checkFiles(t *testing.T, dirs map[string]string, want map[string]string) {
	t.Helper()
	for file, w := range want {
		ctrl, f, _ := strings.Cut(file, "/")
		dir, ok := dirs[ctrl]
		if !ok {
			t.Errorf("container is in no %s cgroup: %v", ctrl, dirs)
			continue
		}
		if got := featReadCgroup(t, dir, f); got != w {
			t.Errorf("%s/%s = %q, want %q", dir, f, got, w)
		}
	}
}

func TestCgroups(t *testing.T) {
	t.Parallel()
	requireV1(t, "memory")

	t.Run("memory", func(t *testing.T) {
		t.Parallel()
		want := map[string]string{
			"memory/memory.limit_in_bytes":      "67108864",
			"memory/memory.soft_limit_in_bytes": "33554432",
		}
		// Swap accounting (memsw) is a kernel option; without it the spec's
		// swap limit cannot be shown.
		swap := false
		if _, err := os.Stat("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes"); err == nil {
			swap = true
			want["memory/memory.memsw.limit_in_bytes"] = "134217728"
		} else {
			t.Log("no memory.memsw.limit_in_bytes (kernel without swap accounting): swap limit not checked")
		}
		id, dirs := cgroupContainer(t, func(s *specs.Spec) {
			m := &specs.LinuxMemory{Limit: i64(64 << 20), Reservation: i64(32 << 20)}
			if swap {
				m.Swap = i64(128 << 20)
			}
			resources(s).Memory = m
		})
		checkFiles(t, dirs, want)
		deleteAndCheckGone(t, id, dirs)
	})

	t.Run("cpu", func(t *testing.T) {
		t.Parallel()
		requireV1(t, "cpu")
		id, dirs := cgroupContainer(t, func(s *specs.Spec) {
			resources(s).CPU = &specs.LinuxCPU{Shares: u64(512), Quota: i64(25000), Period: u64(50000)}
		})
		checkFiles(t, dirs, map[string]string{
			"cpu/cpu.shares": "512", "cpu/cpu.cfs_quota_us": "25000", "cpu/cpu.cfs_period_us": "50000",
		})
		deleteAndCheckGone(t, id, dirs)
	})

	t.Run("cpuset", func(t *testing.T) {
		t.Parallel()
		requireV1(t, "cpuset")
		id, dirs := cgroupContainer(t, func(s *specs.Spec) {
			resources(s).CPU = &specs.LinuxCPU{Cpus: "0", Mems: "0"}
		})
		checkFiles(t, dirs, map[string]string{"cpuset/cpuset.cpus": "0", "cpuset/cpuset.mems": "0"})
		deleteAndCheckGone(t, id, dirs)
	})

	t.Run("pids", func(t *testing.T) {
		t.Parallel()
		requireV1(t, "pids")
		id, dirs := cgroupContainer(t, func(s *specs.Spec) {
			resources(s).Pids = &specs.LinuxPids{Limit: i64(42)}
		})
		checkFiles(t, dirs, map[string]string{"pids/pids.max": "42"})
		deleteAndCheckGone(t, id, dirs)
	})

	t.Run("seen from inside", func(t *testing.T) {
		t.Parallel()
		// With a cgroup namespace the container's own cgroup is the root
		// of each hierarchy mounted at /sys/fs/cgroup.
		out := featScript(t, "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max "+
			"/sys/fs/cgroup/cpu/cpu.shares; grep Cpus_allowed_list /proc/self/status; "+
			"(for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do sleep 1 & done) 2>&1 | grep -c 'fork\\|Resource'; true",
			func(s *specs.Spec) {
				r := resources(s)
				r.Memory = &specs.LinuxMemory{Limit: i64(48 << 20)}
				// Room for the Go init's threads while it sets up: a
				// smaller limit makes its pthread_create fail.
				r.Pids = &specs.LinuxPids{Limit: i64(16)}
				r.CPU = &specs.LinuxCPU{Shares: u64(256), Cpus: "0"}
			})
		l := featLines(out)
		want := []string{"50331648", "16", "256", "Cpus_allowed_list:\t0"}
		if len(l) != 5 {
			t.Fatalf("inside: %q, want %q and a count of failed forks", l, want)
		}
		for i, w := range want {
			if strings.Join(strings.Fields(l[i]), " ") != strings.Join(strings.Fields(w), " ") {
				t.Errorf("inside: line %q, want %q", l[i], w)
			}
		}
		// Twenty sleeps cannot all fit under pids.max=16.
		if l[4] == "0" {
			t.Errorf("pids.max=16 let twenty more processes fork")
		}
	})

	t.Run("blkio", func(t *testing.T) {
		t.Parallel()
		requireV1(t, "blkio")
		major, minor, ok := blockDevice()
		if !ok {
			t.Skip("no block device in /sys/block to throttle")
		}
		weightFile := blkioWeightFile(t)
		if weightFile == "" {
			t.Log("neither blkio.weight nor blkio.bfq.weight in a blkio cgroup (no CFQ/BFQ): weight not checked")
		}
		id, dirs := cgroupContainer(t, func(s *specs.Spec) {
			b := &specs.LinuxBlockIO{
				ThrottleReadBpsDevice:   []specs.LinuxThrottleDevice{{LinuxBlockIODevice: specs.LinuxBlockIODevice{Major: major, Minor: minor}, Rate: 1 << 20}},
				ThrottleWriteIOPSDevice: []specs.LinuxThrottleDevice{{LinuxBlockIODevice: specs.LinuxBlockIODevice{Major: major, Minor: minor}, Rate: 300}},
			}
			if weightFile != "" {
				b.Weight = u16(300)
			}
			resources(s).BlockIO = b
		})
		dev := fmt.Sprintf("%d:%d", major, minor)
		checkFiles(t, dirs, map[string]string{
			"blkio/blkio.throttle.read_bps_device":   dev + " 1048576",
			"blkio/blkio.throttle.write_iops_device": dev + " 300",
		})
		if weightFile != "" {
			// blkio.bfq.weight reads "default 300".
			if got := featReadCgroup(t, dirs["blkio"], weightFile); strings.TrimPrefix(got, "default ") != "300" {
				t.Errorf("%s = %q, want 300", weightFile, got)
			}
		}
		deleteAndCheckGone(t, id, dirs)
	})

	t.Run("hugetlb", func(t *testing.T) {
		t.Parallel()
		if _, err := os.Stat("/sys/kernel/mm/hugepages/hugepages-2048kB"); err != nil {
			t.Skip("kernel without 2 MiB huge pages")
		}
		file := "hugetlb.2MB.limit_in_bytes"
		ctrl := "hugetlb"
		if _, err := os.Stat("/sys/fs/cgroup/hugetlb"); err != nil {
			// Hybrid host: hugetlb lives on the unified hierarchy only.
			b, err := os.ReadFile("/sys/fs/cgroup/unified/cgroup.controllers")
			if err != nil || !strings.Contains(string(b), "hugetlb") {
				t.Skip("hugetlb controller neither in cgroup v1 nor on the unified hierarchy")
			}
			file, ctrl = "hugetlb.2MB.max", ""
		}
		id, dirs := cgroupContainer(t, func(s *specs.Spec) {
			resources(s).HugepageLimits = []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 4 << 20}}
		})
		if got := featReadCgroup(t, dirs[ctrl], file); got != "4194304" {
			t.Errorf("%s/%s = %q, want 4194304", dirs[ctrl], file, got)
		}
		deleteAndCheckGone(t, id, dirs)
	})

	t.Run("devices", func(t *testing.T) {
		t.Parallel()
		requireV1(t, "devices")
		// /dev/loop-control (c 10:237): opening it needs no capability and
		// it is not among the runtime's default devices, so the device
		// cgroup alone decides whether the open succeeds. (Block devices
		// cannot serve: this VM refuses to open its disks even to root.)
		var st unix.Stat_t
		if err := unix.Stat("/dev/loop-control", &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR {
			t.Skip("no /dev/loop-control (loop driver not loaded): no harmless non-default device to allow and deny")
		}
		major, minor := int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
		// The container makes the node itself (the runtime allows mknod
		// of any device, as runc does); the cgroup decides about opening.
		rule := func(allow bool) func(*specs.Spec) {
			return func(s *specs.Spec) {
				caps := append(s.Process.Capabilities.Bounding, "CAP_MKNOD")
				s.Process.Capabilities.Bounding, s.Process.Capabilities.Effective, s.Process.Capabilities.Permitted = caps, caps, caps
				// Deny everything, then allow the device or not: the
				// runtime adds the default devices (/dev/null etc.) itself.
				r := resources(s)
				r.Devices = []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}
				if allow {
					r.Devices = append(r.Devices, specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: &major, Minor: &minor, Access: "rw"})
				}
			}
		}
		script := fmt.Sprintf("mknod /dev/feat-ctl c %d %d && (: < /dev/feat-ctl) 2>&1; echo open=$?; echo x > /dev/null && echo null-ok; true", major, minor)
		if got := strings.Join(featLines(featScript(t, script, rule(true))), " "); got != "open=0 null-ok" {
			t.Errorf("allowed device: %q, want it opened and /dev/null usable", got)
		}
		if got := strings.Join(featLines(featScript(t, script, rule(false))), " "); !strings.Contains(got, "not permitted") || !strings.HasSuffix(got, "open=1 null-ok") {
			t.Errorf("denied device: %q, want EPERM on open and /dev/null usable", got)
		}

		// A device the spec lists must be available in the container, so
		// the runtime allows it even under "deny all".
		mode := os.FileMode(0o600)
		specDev := func(s *specs.Spec) {
			s.Linux.Devices = []specs.LinuxDevice{{Path: "/dev/feat-ctl", Type: "c", Major: major, Minor: minor, FileMode: &mode}}
			resources(s).Devices = []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}
		}
		if got := strings.Join(featLines(featScript(t, "(: < /dev/feat-ctl) 2>&1; echo open=$?", specDev)), " "); got != "open=0" {
			t.Errorf("spec device under deny-all: %q, want it opened", got)
		}

		// On the host: the allow rule is listed, the device cgroup is not
		// "allow all".
		id, dirs := cgroupContainer(t, rule(true))
		list := featReadCgroup(t, dirs["devices"], "devices.list")
		if !strings.Contains(list, fmt.Sprintf("c %d:%d rw", major, minor)) || strings.Contains(list, "a *:* rwm") {
			t.Errorf("devices.list:\n%s\nwant the c %d:%d rw rule and no allow-all", list, major, minor)
		}
		deleteAndCheckGone(t, id, dirs)
	})

	t.Run("relative cgroupsPath", func(t *testing.T) {
		t.Parallel()
		// Relative paths are relative to the runtime's own cgroup, which
		// is this test's.
		own := featHostCgroupDirs(t, os.Getpid())
		name := "feat-rel-" + testutil.ID(t)
		id, dirs := cgroupContainer(t, func(s *specs.Spec) { s.Linux.CgroupsPath = name })
		for _, ctrl := range []string{"memory", "pids", "cpu", "devices", "freezer"} {
			if _, ok := own[ctrl]; !ok {
				continue
			}
			if want := filepath.Join(own[ctrl], name); dirs[ctrl] != want {
				t.Errorf("%s cgroup %s, want %s", ctrl, dirs[ctrl], want)
			}
		}
		deleteAndCheckGone(t, id, dirs)
	})

	t.Run("absolute cgroupsPath", func(t *testing.T) {
		t.Parallel()
		path := "/runmini/feat-abs-" + testutil.ID(t)
		id, dirs := cgroupContainer(t, func(s *specs.Spec) {
			s.Linux.CgroupsPath = path
			resources(s).Pids = &specs.LinuxPids{Limit: i64(17)}
		})
		for _, ctrl := range []string{"memory", "pids", "cpu", "devices", "freezer"} {
			if _, err := os.Stat("/sys/fs/cgroup/" + ctrl); err != nil {
				continue
			}
			if want := filepath.Join("/sys/fs/cgroup", ctrl, path); dirs[ctrl] != want {
				t.Errorf("%s cgroup %s, want %s", ctrl, dirs[ctrl], want)
			}
		}
		checkFiles(t, dirs, map[string]string{"pids/pids.max": "17"})
		deleteAndCheckGone(t, id, dirs)
	})
}

// blockDevice returns the numbers of a real disk (not loop, ram or zram).
func blockDevice() (int64, int64, bool) {
	entries, err := os.ReadDir("/sys/block")
	if err != nil {
		return 0, 0, false
	}
	for _, e := range entries {
		n := e.Name()
		if strings.HasPrefix(n, "loop") || strings.HasPrefix(n, "ram") || strings.HasPrefix(n, "zram") {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/sys/block", n, "dev"))
		if err != nil {
			continue
		}
		var major, minor int64
		if _, err := fmt.Sscanf(strings.TrimSpace(string(b)), "%d:%d", &major, &minor); err == nil {
			return major, minor, true
		}
	}
	return 0, 0, false
}

// blkioWeightFile tells which weight file blkio cgroups have here: the
// root cgroup lists neither, so a probe cgroup is made and removed.
func blkioWeightFile(t *testing.T) string {
	t.Helper()
	probe := filepath.Join("/sys/fs/cgroup/blkio", "feat-probe-"+testutil.ID(t))
	if err := os.Mkdir(probe, 0o755); err != nil {
		t.Fatalf("probe blkio cgroup: %v", err)
	}
	defer func() {
		if err := os.Remove(probe); err != nil {
			t.Errorf("remove probe cgroup: %v", err)
		}
	}()
	for _, f := range []string{"blkio.weight", "blkio.bfq.weight"} {
		if _, err := os.Stat(filepath.Join(probe, f)); err == nil {
			return f
		}
	}
	return ""
}
