package cgroups

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"path/filepath"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// setV2 writes r (devices aside, see setV2Devices) to the cgroup2
// directory dir.
func (f cgroupFiles) setV2(dir string, r *specs.LinuxResources) error {
	if r.Memory != nil {
		if err := f.setV2Memory(dir, r.Memory); err != nil {
			return err
		}
	}
	if r.CPU != nil {
		if err := f.setV2CPU(dir, r.CPU); err != nil {
			return err
		}
		if err := f.setCpuset(dir, r.CPU); err != nil {
			return err
		}
	}
	if r.Pids != nil {
		if err := f.setPids(dir, r.Pids); err != nil {
			return err
		}
	}
	if r.BlockIO != nil {
		if err := f.setIO(dir, r.BlockIO); err != nil {
			return err
		}
	}
	if err := f.setV2Hugetlb(dir, r.HugepageLimits); err != nil {
		return err
	}
	if err := f.setRdma(dir, r.Rdma); err != nil {
		return err
	}
	// Unified keys come last: they are the spec's escape hatch and win
	// over the typed fields.
	return f.setUnified(dir, r.Unified)
}

func (f cgroupFiles) setV2Hugetlb(dir string, limits []specs.LinuxHugepageLimit) error {
	for _, h := range limits {
		if err := f.setHugetlb(dir, h, "max"); err != nil {
			return err
		}
	}
	return nil
}

func (f cgroupFiles) setUnified(dir string, u map[string]string) error {
	for _, k := range sortedKeys(u) {
		if err := f.write(dir, k, u[k]); err != nil {
			if errors.Is(err, unix.ENOENT) {
				return fmt.Errorf("unified resource %q: no such cgroup file: %w", k, err)
			}
			return err
		}
	}
	return nil
}

// limitV2 renders a v1-style limit for a cgroup2 .max/.low file, where
// "max" replaces v1's -1.
func limitV2(v int64) string {
	if v == -1 {
		return "max"
	}
	return strconv.FormatInt(v, 10)
}

// swapV2 converts the spec's swap, a v1 memory+swap total, into cgroup2's
// swap-only memory.swap.max (runc's rules). ok is false when nothing is
// to be written.
func swapV2(swap, limit int64) (value int64, ok bool, err error) {
	switch {
	case limit == -1 && swap == 0:
		// Unlimited memory with swap unset: swap follows, as on v1.
		return -1, true, nil
	case swap == 0:
		return 0, false, nil
	case swap == -1, limit == -1:
		return swap, true, nil
	case limit == 0:
		return 0, false, errors.New("cannot set a swap limit without a memory limit")
	case limit < 0:
		return 0, false, fmt.Errorf("invalid memory limit %d", limit)
	case swap < limit:
		return 0, false, fmt.Errorf("memory+swap limit %d is below the memory limit %d", swap, limit)
	}
	return swap - limit, true, nil
}

func (f cgroupFiles) setV2Memory(dir string, m *specs.LinuxMemory) error {
	var limit, swap int64
	if m.Limit != nil {
		limit = *m.Limit
	}
	if m.Swap != nil {
		swap = *m.Swap
	}
	if m.CheckBeforeUpdate != nil && *m.CheckBeforeUpdate && limit > 0 {
		// Lowering memory.max below usage makes the kernel reclaim or
		// OOM-kill instead of failing; the spec asks to refuse instead.
		cur, err := f.readUint(dir, "memory.current")
		if err != nil {
			return err
		}
		if cur >= uint64(limit) {
			return fmt.Errorf("rejecting memory limit %d: current usage %d is not below it", limit, cur)
		}
	}
	sw, ok, err := swapV2(swap, limit)
	if err != nil {
		return err
	}
	if ok {
		if err := f.write(dir, "memory.swap.max", limitV2(sw)); err != nil {
			// Without swap accounting there is no memory.swap.max;
			// "unlimited" and "no swap" then need no write anyway.
			if !errors.Is(err, unix.ENOENT) || (sw != -1 && sw != 0) {
				return err
			}
		}
	}
	if limit != 0 {
		if err := f.write(dir, "memory.max", limitV2(limit)); err != nil {
			return err
		}
	}
	if nz(m.Reservation) {
		if err := f.write(dir, "memory.low", limitV2(*m.Reservation)); err != nil {
			return err
		}
	}
	// The rest has no cgroup2 equivalent; say so rather than fail, as
	// runc and crun accept such specs.
	for _, ignored := range []struct {
		set  bool
		name string
	}{
		{nz(m.Kernel), "memory.kernel"}, //nolint:staticcheck // deprecated field, read only to warn
		{nz(m.KernelTCP), "memory.kernelTCP"},
		{m.Swappiness != nil && *m.Swappiness != swappinessUnset, "memory.swappiness"},
		{m.DisableOOMKiller != nil && *m.DisableOOMKiller, "memory.disableOOMKiller"},
		{m.UseHierarchy != nil && !*m.UseHierarchy, "memory.useHierarchy=false"},
	} {
		if ignored.set {
			slog.Warn("ignoring "+ignored.name+": not supported on cgroup v2", "dir", dir)
		}
	}
	return nil
}

func (f cgroupFiles) setV2CPU(dir string, c *specs.LinuxCPU) error {
	if c.Idle != nil {
		if err := f.write(dir, "cpu.idle", strconv.FormatInt(*c.Idle, 10)); err != nil {
			if !errors.Is(err, unix.ENOENT) || *c.Idle != 0 {
				return err
			}
		}
	}
	if nz(c.Shares) {
		w := cpuWeight(*c.Shares)
		if err := f.write(dir, "cpu.weight", strconv.FormatUint(w, 10)); err != nil {
			return err
		}
	}
	maxSet := nz(c.Quota) || nz(c.Period)
	// A larger burst can be refused against the old quota; retry it
	// after cpu.max when that is being set too.
	burst := ""
	if c.Burst != nil {
		burst = strconv.FormatUint(*c.Burst, 10)
		if err := f.write(dir, "cpu.max.burst", burst); err != nil {
			switch {
			case errors.Is(err, unix.ENOENT) && *c.Burst == 0:
				burst = ""
			case errors.Is(err, unix.EINVAL) && maxSet:
			default:
				return err
			}
		} else {
			burst = ""
		}
	}
	if maxSet {
		quota := "max"
		if c.Quota != nil && *c.Quota > 0 {
			quota = strconv.FormatInt(*c.Quota, 10)
		}
		period := uint64(100000) // the kernel's default
		if nz(c.Period) {
			period = *c.Period
		}
		if err := f.write(dir, "cpu.max", quota+" "+strconv.FormatUint(period, 10)); err != nil {
			return err
		}
		if burst != "" {
			if err := f.write(dir, "cpu.max.burst", burst); err != nil {
				return err
			}
		}
	}
	return nil
}

// ioWeight converts a blkio weight (10-1000) to io.weight (1-10000),
// runc's linear mapping.
func ioWeight(w uint16) uint64 {
	if w == 0 {
		return 0
	}
	return 1 + (uint64(w)-10)*9999/990
}

func (f cgroupFiles) setIO(dir string, b *specs.LinuxBlockIO) error {
	// BFQ takes blkio's weight scale unchanged; without it io.weight
	// needs the converted value.
	bfq := exists(filepath.Join(dir, "io.bfq.weight"))
	if nz(b.Weight) {
		var err error
		if bfq {
			err = f.write(dir, "io.bfq.weight", strconv.FormatUint(uint64(*b.Weight), 10))
		} else {
			err = f.write(dir, "io.weight", strconv.FormatUint(ioWeight(*b.Weight), 10))
		}
		if err != nil {
			return err
		}
	}
	if nz(b.LeafWeight) {
		slog.Warn("ignoring blockIO.leafWeight: not supported on cgroup v2", "dir", dir)
	}
	for _, wd := range b.WeightDevice {
		if !nz(wd.Weight) {
			continue
		}
		var err error
		if bfq {
			err = f.write(dir, "io.bfq.weight", fmt.Sprintf("%d:%d %d", wd.Major, wd.Minor, *wd.Weight))
		} else {
			err = f.write(dir, "io.weight", fmt.Sprintf("%d:%d %d", wd.Major, wd.Minor, ioWeight(*wd.Weight)))
		}
		if err != nil {
			return err
		}
	}
	for _, t := range []struct {
		key  string
		devs []specs.LinuxThrottleDevice
	}{
		{"rbps", b.ThrottleReadBpsDevice},
		{"wbps", b.ThrottleWriteBpsDevice},
		{"riops", b.ThrottleReadIOPSDevice},
		{"wiops", b.ThrottleWriteIOPSDevice},
	} {
		for _, d := range t.devs {
			if err := f.write(dir, "io.max", fmt.Sprintf("%d:%d %s=%d", d.Major, d.Minor, t.key, d.Rate)); err != nil {
				return err
			}
		}
	}
	return nil
}

// availableV2 lists the controllers a cgroup2 directory offers.
func (f cgroupFiles) availableV2(dir string) (map[string]bool, error) {
	s, err := f.read(dir, "cgroup.controllers")
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, c := range strings.Fields(s) {
		out[c] = true
	}
	return out, nil
}

// enableControllers turns controllers on in cgroup.subtree_control of
// every ancestor of dir below mnt, top down, so that dir gets them. Like
// runc it enables everything each level offers (later stats and updates
// then need nothing more); if a level refuses that (a parent holding
// processes cannot delegate domain controllers), it falls back to the
// controllers the resources need. Ancestors are shared with other
// cgroups, so this is not undone.
func (f cgroupFiles) enableControllers(mnt, dir string, needed []string) error {
	rel, err := filepath.Rel(mnt, dir)
	if err != nil {
		return fmt.Errorf("cgroup %s is not under %s: %w", dir, mnt, err)
	}
	cur := mnt
	for _, elem := range strings.Split(rel, "/") {
		avail, err := f.availableV2(cur)
		if err != nil {
			return err
		}
		if len(avail) == 0 {
			break
		}
		all := make([]string, 0, len(avail))
		for _, c := range sortedKeys(avail) {
			all = append(all, "+"+c)
		}
		if err := f.write(cur, "cgroup.subtree_control", strings.Join(all, " ")); err != nil {
			var want []string
			for _, c := range needed {
				if avail[c] {
					want = append(want, "+"+c)
				}
			}
			if len(want) == 0 {
				// Nothing required from this level: leave it alone.
				cur = filepath.Join(cur, elem)
				continue
			}
			if err := f.write(cur, "cgroup.subtree_control", strings.Join(want, " ")); err != nil {
				return fmt.Errorf("enable controllers: %w", err)
			}
		}
		cur = filepath.Join(cur, elem)
	}
	return nil
}

// checkEnabled verifies dir got every needed controller.
func (f cgroupFiles) checkEnabled(dir string, needs []need) error {
	avail, err := f.availableV2(dir)
	if err != nil {
		return err
	}
	for _, n := range needs {
		if !avail[n.ctrl] {
			return fmt.Errorf("%w: %s (needed by %s) is not enabled in %s", ErrControllerUnavailable, n.ctrl, n.what, dir)
		}
	}
	return nil
}

// cpuWeight converts v1 cpu.shares ([2, 262144], default 1024) to v2
// cpu.weight ([1, 10000], default 100) with the quadratic (in log2 of the
// shares) mapping runc, crun and containerd use, which keeps the three
// reference points: 2 -> 1, 1024 -> 100, 262144 -> 10000.
func cpuWeight(shares uint64) uint64 {
	switch {
	case shares <= 2:
		return 1
	case shares >= 262144:
		return 10000
	}
	l := math.Log2(float64(shares))
	return uint64(math.Ceil(math.Pow(10, (l*l+125*l)/612.0-7.0/34.0)))
}
