package cgroups

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// setV1 writes r to the v1 hierarchies in dirs. A controller without a
// directory is skipped: check has already refused non-zero values for it.
// update is set for Set on a running container.
func (f cgroupFiles) setV1(dirs map[string]string, r *specs.LinuxResources, hugetlbV2, update bool) error {
	if dir, ok := dirs["memory"]; ok && r.Memory != nil {
		if err := f.setV1Memory(dir, r.Memory); err != nil {
			return err
		}
	}
	if dir, ok := dirs["cpu"]; ok && r.CPU != nil {
		if err := f.setV1CPU(dir, r.CPU); err != nil {
			return err
		}
	}
	if dir, ok := dirs["cpuset"]; ok && r.CPU != nil {
		if err := f.setCpuset(dir, r.CPU); err != nil {
			return err
		}
	}
	if dir, ok := dirs["pids"]; ok && r.Pids != nil {
		if err := f.setPids(dir, r.Pids); err != nil {
			return err
		}
	}
	if dir, ok := dirs["blkio"]; ok && r.BlockIO != nil {
		if err := f.setV1Blkio(dir, r.BlockIO); err != nil {
			return err
		}
	}
	if dir, ok := dirs["hugetlb"]; ok && !hugetlbV2 {
		for _, h := range r.HugepageLimits {
			if err := f.setHugetlb(dir, h, "limit_in_bytes"); err != nil {
				return err
			}
		}
	}
	if n := r.Network; n != nil {
		if dir, ok := dirs["net_cls"]; ok && n.ClassID != nil {
			if err := f.write(dir, "net_cls.classid", strconv.FormatUint(uint64(*n.ClassID), 10)); err != nil {
				return err
			}
		}
		if dir, ok := dirs["net_prio"]; ok {
			for _, p := range n.Priorities {
				if err := f.write(dir, "net_prio.ifpriomap", fmt.Sprintf("%s %d", p.Name, p.Priority)); err != nil {
					return err
				}
			}
		}
	}
	if dir, ok := dirs["rdma"]; ok {
		if err := f.setRdma(dir, r.Rdma); err != nil {
			return err
		}
	}
	if dir, ok := dirs["devices"]; ok && !(update && f.v1DevicesUnchanged(dir, r.Devices)) {
		if err := f.setV1Devices(dir, r.Devices); err != nil {
			return err
		}
	}
	return nil
}

func (f cgroupFiles) setV1Memory(dir string, m *specs.LinuxMemory) error {
	var limit, swap int64
	if m.Limit != nil {
		limit = *m.Limit
	}
	if m.Swap != nil {
		swap = *m.Swap
	}
	// An unlimited memory limit with swap left unset means "no limits at
	// all": memsw must follow, or the old memsw would still cap memory.
	if limit == -1 && swap == 0 && exists(filepath.Join(dir, "memory.memsw.limit_in_bytes")) {
		swap = -1
	}
	// The kernel keeps memsw >= limit at every moment, so the order of
	// the two writes depends on whether the limits grow or shrink.
	swapFirst := false
	if limit != 0 && swap != 0 {
		cur, err := f.readUint(dir, "memory.limit_in_bytes")
		if err != nil {
			return err
		}
		swapFirst = swap == -1 || cur < uint64(swap)
	}
	setSwap := func() error {
		if swap == 0 {
			return nil
		}
		return f.write(dir, "memory.memsw.limit_in_bytes", strconv.FormatInt(swap, 10))
	}
	if swapFirst {
		if err := setSwap(); err != nil {
			return err
		}
	}
	if limit != 0 {
		if err := f.write(dir, "memory.limit_in_bytes", strconv.FormatInt(limit, 10)); err != nil {
			if errors.Is(err, unix.EBUSY) {
				usage, _ := f.readUint(dir, "memory.usage_in_bytes")
				return fmt.Errorf("memory limit %d is below current usage %d: %w", limit, usage, err)
			}
			return err
		}
	}
	if !swapFirst {
		if err := setSwap(); err != nil {
			return err
		}
	}
	if nz(m.Reservation) {
		if err := f.write(dir, "memory.soft_limit_in_bytes", strconv.FormatInt(*m.Reservation, 10)); err != nil {
			return err
		}
	}
	if nz(m.Kernel) { //nolint:staticcheck // deprecated field, read only to warn
		// Kernel memory limits were removed from the kernel (5.16 makes
		// them a no-op); runc ignores them too.
		slog.Warn("ignoring memory.kernel: kernel memory limits are not supported", "dir", dir)
	}
	if nz(m.KernelTCP) {
		if err := f.write(dir, "memory.kmem.tcp.limit_in_bytes", strconv.FormatInt(*m.KernelTCP, 10)); err != nil {
			return err
		}
	}
	if m.DisableOOMKiller != nil && *m.DisableOOMKiller {
		if err := f.write(dir, "memory.oom_control", "1"); err != nil {
			return err
		}
	}
	if m.Swappiness != nil && *m.Swappiness != swappinessUnset {
		if err := f.write(dir, "memory.swappiness", strconv.FormatUint(*m.Swappiness, 10)); err != nil {
			return err
		}
	}
	if m.UseHierarchy != nil {
		v := "0"
		if *m.UseHierarchy {
			v = "1"
		}
		if err := f.write(dir, "memory.use_hierarchy", v); err != nil {
			return err
		}
	}
	return nil
}

func (f cgroupFiles) setV1CPU(dir string, c *specs.LinuxCPU) error {
	if nz(c.Shares) {
		if err := f.write(dir, "cpu.shares", strconv.FormatUint(*c.Shares, 10)); err != nil {
			return err
		}
		// The kernel clamps shares silently; read back to report it.
		got, err := f.readUint(dir, "cpu.shares")
		if err != nil {
			return err
		}
		if got != *c.Shares {
			return fmt.Errorf("cpu.shares %d is out of range (the kernel set %d)", *c.Shares, got)
		}
	}
	quotaSet := nz(c.Quota)
	// A new period or burst can be rejected (EINVAL) against the old
	// quota; when a quota is coming too, retry them after it.
	var retry [][2]string
	if nz(c.Period) {
		v := strconv.FormatUint(*c.Period, 10)
		if err := f.write(dir, "cpu.cfs_period_us", v); err != nil {
			if !errors.Is(err, unix.EINVAL) || !quotaSet {
				return err
			}
			retry = append(retry, [2]string{"cpu.cfs_period_us", v})
		}
	}
	if c.Burst != nil {
		v := strconv.FormatUint(*c.Burst, 10)
		if err := f.write(dir, "cpu.cfs_burst_us", v); err != nil {
			switch {
			case errors.Is(err, unix.ENOENT) && *c.Burst == 0:
				// No burst support: zero burst is what we have.
			case errors.Is(err, unix.EINVAL) && quotaSet:
				retry = append(retry, [2]string{"cpu.cfs_burst_us", v})
			default:
				return err
			}
		}
	}
	if quotaSet {
		if err := f.write(dir, "cpu.cfs_quota_us", strconv.FormatInt(*c.Quota, 10)); err != nil {
			return err
		}
		for _, w := range retry {
			if err := f.write(dir, w[0], w[1]); err != nil {
				return err
			}
		}
	}
	if c.Idle != nil {
		if err := f.write(dir, "cpu.idle", strconv.FormatInt(*c.Idle, 10)); err != nil {
			if !errors.Is(err, unix.ENOENT) || *c.Idle != 0 {
				return err
			}
		}
	}
	// rt_period and rt_runtime constrain each other the same way.
	period := ""
	if nz(c.RealtimePeriod) {
		period = strconv.FormatUint(*c.RealtimePeriod, 10)
		if err := f.write(dir, "cpu.rt_period_us", period); err != nil {
			if !errors.Is(err, unix.EINVAL) || !nz(c.RealtimeRuntime) {
				return err
			}
		} else {
			period = ""
		}
	}
	if nz(c.RealtimeRuntime) {
		if err := f.write(dir, "cpu.rt_runtime_us", strconv.FormatInt(*c.RealtimeRuntime, 10)); err != nil {
			return err
		}
		if period != "" {
			if err := f.write(dir, "cpu.rt_period_us", period); err != nil {
				return err
			}
		}
	}
	return nil
}

// setCpuset is shared by v1 and v2: the files have the same names.
func (f cgroupFiles) setCpuset(dir string, c *specs.LinuxCPU) error {
	if c.Cpus != "" {
		if err := f.write(dir, "cpuset.cpus", c.Cpus); err != nil {
			return err
		}
	}
	if c.Mems != "" {
		if err := f.write(dir, "cpuset.mems", c.Mems); err != nil {
			return err
		}
	}
	return nil
}

// setPids is shared by v1 and v2; a negative limit means unlimited.
func (f cgroupFiles) setPids(dir string, p *specs.LinuxPids) error {
	if !nz(p.Limit) {
		return nil
	}
	v := "max"
	if *p.Limit > 0 {
		v = strconv.FormatInt(*p.Limit, 10)
	}
	return f.write(dir, "pids.max", v)
}

func (f cgroupFiles) setV1Blkio(dir string, b *specs.LinuxBlockIO) error {
	// With the CFQ scheduler gone, kernels only offer BFQ's weights.
	weight, weightDevice := "blkio.weight", "blkio.weight_device"
	if !exists(filepath.Join(dir, weight)) {
		weight, weightDevice = "blkio.bfq.weight", "blkio.bfq.weight_device"
	}
	if nz(b.Weight) {
		if err := f.write(dir, weight, strconv.FormatUint(uint64(*b.Weight), 10)); err != nil {
			return err
		}
	}
	if nz(b.LeafWeight) {
		if err := f.write(dir, "blkio.leaf_weight", strconv.FormatUint(uint64(*b.LeafWeight), 10)); err != nil {
			return err
		}
	}
	for _, wd := range b.WeightDevice {
		if nz(wd.Weight) {
			if err := f.write(dir, weightDevice, fmt.Sprintf("%d:%d %d", wd.Major, wd.Minor, *wd.Weight)); err != nil {
				return err
			}
		}
		if nz(wd.LeafWeight) {
			if err := f.write(dir, "blkio.leaf_weight_device", fmt.Sprintf("%d:%d %d", wd.Major, wd.Minor, *wd.LeafWeight)); err != nil {
				return err
			}
		}
	}
	for _, t := range []struct {
		file string
		devs []specs.LinuxThrottleDevice
	}{
		{"blkio.throttle.read_bps_device", b.ThrottleReadBpsDevice},
		{"blkio.throttle.write_bps_device", b.ThrottleWriteBpsDevice},
		{"blkio.throttle.read_iops_device", b.ThrottleReadIOPSDevice},
		{"blkio.throttle.write_iops_device", b.ThrottleWriteIOPSDevice},
	} {
		for _, d := range t.devs {
			if err := f.write(dir, t.file, fmt.Sprintf("%d:%d %d", d.Major, d.Minor, d.Rate)); err != nil {
				return err
			}
		}
	}
	return nil
}

// setHugetlb writes one page size's limit, and the same limit for
// reservations where the kernel has them (runc does the same); suffix is
// "limit_in_bytes" on v1 and "max" on v2.
func (f cgroupFiles) setHugetlb(dir string, h specs.LinuxHugepageLimit, suffix string) error {
	v := strconv.FormatUint(h.Limit, 10)
	if err := f.write(dir, "hugetlb."+h.Pagesize+"."+suffix, v); err != nil {
		return err
	}
	if err := f.write(dir, "hugetlb."+h.Pagesize+".rsvd."+suffix, v); err != nil && !errors.Is(err, unix.ENOENT) {
		return err
	}
	return nil
}

// setRdma is shared by v1 and v2.
func (f cgroupFiles) setRdma(dir string, limits map[string]specs.LinuxRdma) error {
	for _, dev := range sortedKeys(limits) {
		l := limits[dev]
		if l.HcaHandles == nil && l.HcaObjects == nil {
			continue
		}
		if err := f.write(dir, "rdma.max", rdmaLimit(dev, l)); err != nil {
			return err
		}
	}
	return nil
}

// v1DevicesUnchanged reports whether devices.list already is what rules
// would make it, for the usual form of rules: "deny all" then allows.
// runc update passes the container's whole resources; rewriting them
// would start with "deny all" and briefly refuse the running container
// every device.
func (f cgroupFiles) v1DevicesUnchanged(dir string, rules []specs.LinuxDeviceCgroup) bool {
	if len(rules) == 0 {
		return true
	}
	first, err := deviceRule(rules[0])
	if err != nil || first.Allow || first.Type != "a" || deviceNumber(first.Major) != "*" ||
		deviceNumber(first.Minor) != "*" || len(first.Access) != 3 {
		return false
	}
	var want []string
	for _, d := range rules[1:] {
		d, err := deviceRule(d)
		if err != nil || !d.Allow {
			return false
		}
		// The kernel lists access in r, w, m order.
		access := ""
		for _, c := range "rwm" {
			if strings.ContainsRune(d.Access, c) {
				access += string(c)
			}
		}
		want = append(want, fmt.Sprintf("%s %s:%s %s", d.Type, deviceNumber(d.Major), deviceNumber(d.Minor), access))
	}
	cur, err := f.read(dir, "devices.list")
	return err == nil && cur == strings.Join(want, "\n")
}

// setV1Devices writes the rules in order. Specs start with "deny all",
// which resets the list, so applying them again in Set gives the same
// result.
func (f cgroupFiles) setV1Devices(dir string, rules []specs.LinuxDeviceCgroup) error {
	for _, d := range rules {
		d, err := deviceRule(d)
		if err != nil {
			return err
		}
		file := "devices.deny"
		if d.Allow {
			file = "devices.allow"
		}
		if err := f.write(dir, file, fmt.Sprintf("%s %s:%s %s", d.Type, deviceNumber(d.Major), deviceNumber(d.Minor), d.Access)); err != nil {
			return err
		}
	}
	return nil
}

// inheritCpuset gives every level from the cpuset hierarchy's root down to
// dir the cpus and mems of the level above where they are empty: v1 makes
// a cpuset cgroup with both empty and refuses tasks in it until they are
// set. A level without the files (only in a stand-in for cgroupfs) passes
// its parent's values on.
func (f cgroupFiles) inheritCpuset(root, dir string) error {
	rel, err := filepath.Rel(root, dir)
	if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, "../") {
		return fmt.Errorf("%w %q: not inside the cpuset hierarchy at %s", ErrInvalidPath, dir, root)
	}
	for _, file := range []string{"cpuset.cpus", "cpuset.mems"} {
		inherited, err := f.read(root, file)
		if err != nil {
			return err
		}
		cur := root
		for _, name := range strings.Split(rel, "/") {
			cur = filepath.Join(cur, name)
			v, err := f.read(cur, file)
			switch {
			case errors.Is(err, fs.ErrNotExist):
			case err != nil:
				return err
			case v != "":
				inherited = v
			default:
				if err := f.write(cur, file, inherited); err != nil {
					return err
				}
			}
		}
	}
	return nil
}
