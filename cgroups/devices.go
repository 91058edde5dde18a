package cgroups

import (
	"fmt"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// setV2Devices installs the device rules as an eBPF cgroup-device program
// (cgroup v2 has no devices files), replacing the one attached before.
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
	dirFD, err := unix.Open(m.v2, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", m.v2, err)
	}
	defer unix.Close(dirFD)
	if err := setDeviceFilter(dirFD, norm); err != nil {
		return fmt.Errorf("device filter of %s: %w", m.v2, err)
	}
	return nil
}
