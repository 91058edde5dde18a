package libcontainer

import specs "github.com/opencontainers/runtime-spec/specs-go"

func devRule(typ string, major, minor int64, access string) specs.LinuxDeviceCgroup {
	r := specs.LinuxDeviceCgroup{Allow: true, Type: typ, Access: access}
	if major >= 0 {
		r.Major = &major
	}
	if minor >= 0 {
		r.Minor = &minor
	}
	return r
}

// defaultAllowedDevices are always allowed after the spec's own rules, as
// runc does: the devices every container gets (/dev/null, ptys...) and
// mknod of any node, so the init can create the spec's devices.
var defaultAllowedDevices = []specs.LinuxDeviceCgroup{
	devRule("c", -1, -1, "m"),
	devRule("b", -1, -1, "m"),
	devRule("c", 1, 3, "rwm"),    // null
	devRule("c", 1, 8, "rwm"),    // random
	devRule("c", 1, 7, "rwm"),    // full
	devRule("c", 5, 0, "rwm"),    // tty
	devRule("c", 1, 5, "rwm"),    // zero
	devRule("c", 1, 9, "rwm"),    // urandom
	devRule("c", 5, 1, "rwm"),    // console
	devRule("c", 136, -1, "rwm"), // pts
	devRule("c", 5, 2, "rwm"),    // ptmx
	devRule("c", 10, 200, "rwm"), // net/tun
}

// deviceRules returns the spec's resources with the device cgroup rules
// the container really gets: the spec's rules, then an allow rule for each
// device the spec creates, then the defaults. It does not modify the spec.
func deviceRules(s *specs.Spec) *specs.LinuxResources {
	r := s.Linux.Resources
	if r == nil {
		r = &specs.LinuxResources{}
	}
	out := *r
	out.Devices = append([]specs.LinuxDeviceCgroup(nil), r.Devices...)
	for _, d := range s.Linux.Devices {
		typ := d.Type
		if typ == "u" {
			typ = "c"
		}
		if typ == "p" {
			continue // fifos are not policed by the device cgroup
		}
		out.Devices = append(out.Devices, devRule(typ, d.Major, d.Minor, "rwm"))
	}
	out.Devices = append(out.Devices, defaultAllowedDevices...)
	return &out
}
