package spec

import (
	"slices"
	"strings"

	"github.com/moby/sys/capability"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/opencontainers/runtime-spec/specs-go/features"
)

// hookNames are the hooks this build runs, in the order the spec defines.
var hookNames = []string{"prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"}

// mountOptions are the options the mount package interprets itself; any
// other option is passed to mount(2) as filesystem data.
var mountOptions = []string{
	"ro", "rw", "suid", "nosuid", "dev", "nodev", "exec", "noexec",
	"sync", "async", "dirsync", "remount", "mand", "nomand",
	"atime", "noatime", "diratime", "nodiratime", "relatime", "norelatime",
	"strictatime", "nostrictatime", "bind", "rbind",
	"private", "rprivate", "shared", "rshared", "slave", "rslave", "unbindable", "runbindable",
	"rro", "rrw", "rnosuid", "rsuid", "rnodev", "rdev", "rnoexec", "rexec",
	"rnodiratime", "rdiratime", "rrelatime", "rnorelatime", "rnoatime", "ratime",
	"rstrictatime", "rnostrictatime",
}

// namespaceTypes are all the namespace types this build can create or join.
var namespaceTypes = []specs.LinuxNamespaceType{
	specs.PIDNamespace, specs.NetworkNamespace, specs.MountNamespace, specs.IPCNamespace,
	specs.UTSNamespace, specs.UserNamespace, specs.CgroupNamespace, specs.TimeNamespace,
}

// Features describes what this build supports, for `runmini features`.
// Booleans state what is compiled in, not what the host offers.
func Features() *features.Features {
	yes, no := true, false
	f := &features.Features{
		OCIVersionMin: "1.0.0",
		OCIVersionMax: specs.Version,
		Hooks:         slices.Clone(hookNames),
		MountOptions:  slices.Sorted(slices.Values(mountOptions)),
		Linux: &features.Linux{
			Namespaces:   knownNamespaces(),
			Capabilities: knownCapabilities(),
			Cgroup: &features.Cgroup{
				V1:          &yes,
				V2:          &yes,
				Systemd:     &no,
				SystemdUser: &no,
				Rdma:        &yes,
			},
			Seccomp:  &features.Seccomp{Enabled: &no},
			Apparmor: &features.Apparmor{Enabled: &no},
			Selinux:  &features.Selinux{Enabled: &no},
			IntelRdt: &features.IntelRdt{Enabled: &no, Schemata: &no, Monitoring: &no},
			MountExtensions: &features.MountExtensions{
				IDMap: &features.IDMap{Enabled: &no},
			},
			NetDevices: &features.NetDevices{Enabled: &no},
		},
		// containerd and podman read this runc annotation to decide whether
		// to offer checkpoint/restore; this build has no CRIU support.
		Annotations: map[string]string{
			"org.opencontainers.runc.checkpoint.enabled": "false",
		},
	}
	return f
}

func knownNamespaces() []string {
	out := make([]string, 0, len(namespaceTypes))
	for _, t := range namespaceTypes {
		out = append(out, string(t))
	}
	slices.Sort(out)
	return out
}

// knownCapabilities lists every capability moby/sys/capability knows, in
// the "CAP_*" form the spec uses.
func knownCapabilities() []string {
	known := capability.ListKnown()
	out := make([]string, 0, len(known))
	for _, c := range known {
		out = append(out, "CAP_"+strings.ToUpper(c.String()))
	}
	return out
}
