package cgroups

import (
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/containerd/cgroups/v3/cgroup2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// setV2Devices installs the device rules as an eBPF cgroup-device program
// (cgroup v2 has no devices files), built by containerd's cgroup2 package.
//
// Programs attached earlier (by Create, or a previous Set) are detached
// once the new one is in place: with BPF_F_ALLOW_MULTI an access must
// pass every attached program, so keeping them would let only the
// intersection of old and new rules through, and every update would add
// one more program. Attaching first means there is never a moment
// without a filter.
func (m *manager) setV2Devices(rules []specs.LinuxDeviceCgroup) error {
	if len(rules) == 0 {
		return nil
	}
	norm := make([]specs.LinuxDeviceCgroup, 0, len(rules))
	for _, d := range rules {
		d, err := deviceRule(d)
		if err != nil {
			return err
		}
		norm = append(norm, d)
	}
	insts, license, err := cgroup2.DeviceFilter(norm)
	if err != nil {
		return fmt.Errorf("build device filter: %w", err)
	}
	dirFD, err := unix.Open(m.v2, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", m.v2, err)
	}
	defer unix.Close(dirFD)
	old, err := link.QueryPrograms(link.QueryOptions{Target: dirFD, Attach: ebpf.AttachCGroupDevice})
	if err != nil {
		return fmt.Errorf("query device filters of %s: %w", m.v2, err)
	}
	if _, err := cgroup2.LoadAttachCgroupDeviceFilter(insts, license, dirFD); err != nil {
		return fmt.Errorf("attach device filter to %s: %w", m.v2, err)
	}
	for _, p := range old.Programs {
		prog, err := ebpf.NewProgramFromID(p.ID)
		if err != nil {
			return fmt.Errorf("open old device filter %d of %s: %w", p.ID, m.v2, err)
		}
		err = link.RawDetachProgram(link.RawDetachProgramOptions{Target: dirFD, Program: prog, Attach: ebpf.AttachCGroupDevice})
		prog.Close()
		if err != nil {
			return fmt.Errorf("detach old device filter %d of %s: %w", p.ID, m.v2, err)
		}
	}
	return nil
}
