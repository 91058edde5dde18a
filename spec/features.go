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
			Seccomp: &features.Seccomp{
				Enabled:   &yes,
				Actions:   slices.Clone(seccompActions),
				Operators: slices.Clone(seccompOperators),
				Archs:     slices.Clone(seccompArchs),
				KnownFlags: []string{"SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
					"SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"},
				SupportedFlags: []string{"SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
					"SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"},
			},
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

// What libcontainer/seccomp compiles; its tests check these lists against it.
var (
	seccompActions = []string{"SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
		"SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP"}
	seccompOperators = []string{"SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT",
		"SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"}
	seccompArchs = []string{"SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM", "SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64",
		"SCMP_ARCH_MIPS64N32", "SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64", "SCMP_ARCH_MIPSEL64N32", "SCMP_ARCH_PPC",
		"SCMP_ARCH_PPC64", "SCMP_ARCH_PPC64LE", "SCMP_ARCH_RISCV64", "SCMP_ARCH_S390", "SCMP_ARCH_S390X",
		"SCMP_ARCH_X32", "SCMP_ARCH_X86", "SCMP_ARCH_X86_64"}
)
