package cgroups

import (
	"fmt"
	"math"
	"sort"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// need is a controller that a set resource requires.
type need struct {
	ctrl string
	what string
}

func nz[T int64 | uint64 | uint32 | uint16](p *T) bool { return p != nil && *p != 0 }

// swappinessUnset is -1 as the spec's uint64 carries it.
const swappinessUnset = math.MaxUint64

// v1Needs lists the v1 controllers that r sets to non-zero values. A
// controller missing on the host is only an error for those (runc's
// rule): an explicit zero means "unset".
func v1Needs(r *specs.LinuxResources) []need {
	var out []need
	if m := r.Memory; m != nil {
		if nz(m.Limit) || nz(m.Reservation) || nz(m.Swap) || nz(m.KernelTCP) ||
			(m.Swappiness != nil && *m.Swappiness != swappinessUnset) ||
			(m.DisableOOMKiller != nil && *m.DisableOOMKiller) ||
			(m.UseHierarchy != nil && *m.UseHierarchy) {
			out = append(out, need{"memory", "memory limits"})
		}
	}
	if c := r.CPU; c != nil {
		if nz(c.Shares) || nz(c.Quota) || nz(c.Period) || nz(c.Burst) || nz(c.Idle) ||
			nz(c.RealtimeRuntime) || nz(c.RealtimePeriod) {
			out = append(out, need{"cpu", "cpu limits"})
		}
		if c.Cpus != "" || c.Mems != "" {
			out = append(out, need{"cpuset", "cpu.cpus/cpu.mems"})
		}
	}
	if r.Pids != nil && nz(r.Pids.Limit) {
		out = append(out, need{"pids", "pids.limit"})
	}
	if blkioSet(r.BlockIO) {
		out = append(out, need{"blkio", "blockIO"})
	}
	if len(r.HugepageLimits) > 0 {
		out = append(out, need{"hugetlb", "hugepageLimits"})
	}
	if n := r.Network; n != nil {
		if nz(n.ClassID) {
			out = append(out, need{"net_cls", "network.classID"})
		}
		if len(n.Priorities) > 0 {
			out = append(out, need{"net_prio", "network.priorities"})
		}
	}
	if len(r.Rdma) > 0 {
		out = append(out, need{"rdma", "rdma"})
	}
	if len(r.Devices) > 0 {
		out = append(out, need{"devices", "devices"})
	}
	return out
}

// v2Needs lists the cgroup2 controllers that r needs, hugetlb included;
// unified keys need the controller their name starts with.
func v2Needs(r *specs.LinuxResources) []need {
	var out []need
	if m := r.Memory; m != nil && (nz(m.Limit) || nz(m.Reservation) || nz(m.Swap)) {
		out = append(out, need{"memory", "memory limits"})
	}
	if c := r.CPU; c != nil {
		if nz(c.Shares) || nz(c.Quota) || nz(c.Period) || nz(c.Burst) || nz(c.Idle) {
			out = append(out, need{"cpu", "cpu limits"})
		}
		if c.Cpus != "" || c.Mems != "" {
			out = append(out, need{"cpuset", "cpu.cpus/cpu.mems"})
		}
	}
	if r.Pids != nil && nz(r.Pids.Limit) {
		out = append(out, need{"pids", "pids.limit"})
	}
	if blkioSet(r.BlockIO) {
		out = append(out, need{"io", "blockIO"})
	}
	if len(r.HugepageLimits) > 0 {
		out = append(out, need{"hugetlb", "hugepageLimits"})
	}
	if len(r.Rdma) > 0 {
		out = append(out, need{"rdma", "rdma"})
	}
	out = append(out, unifiedNeeds(r.Unified)...)
	return out
}

func unifiedNeeds(u map[string]string) []need {
	var out []need
	for _, k := range sortedKeys(u) {
		if ctrl, _, _ := strings.Cut(k, "."); ctrl != "cgroup" {
			out = append(out, need{ctrl, "unified " + k})
		}
	}
	return out
}

func blkioSet(b *specs.LinuxBlockIO) bool {
	if b == nil {
		return false
	}
	return nz(b.Weight) || nz(b.LeafWeight) || len(b.WeightDevice) > 0 ||
		len(b.ThrottleReadBpsDevice) > 0 || len(b.ThrottleWriteBpsDevice) > 0 ||
		len(b.ThrottleReadIOPSDevice) > 0 || len(b.ThrottleWriteIOPSDevice) > 0
}

// validate rejects values that would be malformed when written, above
// all anything that ends up in a file name or could smuggle a second
// line into a control file.
func validate(r *specs.LinuxResources) error {
	if m := r.Memory; m != nil && m.Swappiness != nil && *m.Swappiness != swappinessUnset && *m.Swappiness > 100 {
		return fmt.Errorf("invalid memory.swappiness %d: valid range is 0-100", *m.Swappiness)
	}
	for _, d := range r.Devices {
		if _, err := deviceRule(d); err != nil {
			return err
		}
	}
	for _, h := range r.HugepageLimits {
		if h.Pagesize == "" || !isAlnum(h.Pagesize) {
			return fmt.Errorf("invalid hugepage size %q", h.Pagesize)
		}
	}
	if n := r.Network; n != nil {
		for _, p := range n.Priorities {
			if p.Name == "" || strings.ContainsAny(p.Name, " \t\n/") {
				return fmt.Errorf("invalid network interface name %q", p.Name)
			}
		}
	}
	for dev := range r.Rdma {
		if dev == "" || strings.ContainsAny(dev, " \t\n") {
			return fmt.Errorf("invalid rdma device name %q", dev)
		}
	}
	for k := range r.Unified {
		if k == "" || strings.HasPrefix(k, ".") || !strings.Contains(k, ".") || strings.ContainsAny(k, "/\x00") {
			return fmt.Errorf("invalid unified cgroup key %q", k)
		}
	}
	return nil
}

func isAlnum(s string) bool {
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

// deviceRule checks a device cgroup rule and fills in the spec's
// defaults: type "a" (all) and access "rwm" when omitted, nil or -1
// major/minor meaning any.
func deviceRule(d specs.LinuxDeviceCgroup) (specs.LinuxDeviceCgroup, error) {
	switch d.Type {
	case "":
		d.Type = "a"
	case "a", "b", "c":
	default:
		return d, fmt.Errorf("invalid device rule type %q: want a, b or c", d.Type)
	}
	if d.Access == "" {
		d.Access = "rwm"
	}
	if strings.Trim(d.Access, "rwm") != "" || len(d.Access) > 3 {
		return d, fmt.Errorf("invalid device rule access %q: want a combination of r, w and m", d.Access)
	}
	wildcard := int64(-1)
	for _, n := range []**int64{&d.Major, &d.Minor} {
		switch {
		case *n == nil:
			// The eBPF filter builder dereferences both numbers.
			*n = &wildcard
		case **n < -1 || **n > math.MaxUint32:
			return d, fmt.Errorf("invalid device number %d in device rule", **n)
		}
	}
	return d, nil
}

func deviceNumber(n *int64) string {
	if n == nil || *n == -1 {
		return "*"
	}
	return fmt.Sprint(*n)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// rdmaLimit renders one rdma.max line; unset limits are left out so the
// kernel keeps them at "max".
func rdmaLimit(dev string, l specs.LinuxRdma) string {
	s := dev
	if l.HcaHandles != nil {
		s += fmt.Sprintf(" hca_handle=%d", *l.HcaHandles)
	}
	if l.HcaObjects != nil {
		s += fmt.Sprintf(" hca_object=%d", *l.HcaObjects)
	}
	return s
}
