package spec

import (
	"bytes"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// newBundle makes a bundle directory with an empty rootfs.
func newBundle(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "rootfs"), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func ptr[T any](v T) *T { return &v }

func setNS(s *specs.Spec, t specs.LinuxNamespaceType, path string) {
	for i := range s.Linux.Namespaces {
		if s.Linux.Namespaces[i].Type == t {
			s.Linux.Namespaces[i].Path = path
			return
		}
	}
	s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: t, Path: path})
}

func dropNS(s *specs.Spec, t specs.LinuxNamespaceType) {
	var out []specs.LinuxNamespace
	for _, ns := range s.Linux.Namespaces {
		if ns.Type != t {
			out = append(out, ns)
		}
	}
	s.Linux.Namespaces = out
}

func withUserNS(s *specs.Spec) {
	setNS(s, specs.UserNamespace, "")
	s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
	s.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
}

type validateCase struct {
	name    string
	mutate  func(s *specs.Spec, bundle string)
	wantErr string // "" means the spec must be accepted
}

func runValidateCases(t *testing.T, cases []validateCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			bundle := newBundle(t)
			s := Default(false)
			tc.mutate(s, bundle)
			err := Validate(s, bundle)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Validate: unexpected error: %v", err)
			case tc.wantErr != "" && err == nil:
				t.Fatalf("Validate: accepted, want error containing %q", tc.wantErr)
			case tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr):
				t.Fatalf("Validate: error %q does not contain %q", err, tc.wantErr)
			case err != nil && strings.Contains(err.Error(), "\n"):
				t.Fatalf("Validate: error is not one line: %q", err)
			}
		})
	}
}

func TestValidateDefaults(t *testing.T) {
	for _, rootless := range []bool{false, true} {
		bundle := newBundle(t)
		if err := Validate(Default(rootless), bundle); err != nil {
			t.Errorf("Default(%v) does not validate: %v", rootless, err)
		}
	}
	if err := Validate(nil, t.TempDir()); err == nil {
		t.Error("Validate(nil) accepted")
	}
}

func TestValidateVersionRootProcess(t *testing.T) {
	runValidateCases(t, []validateCase{
		{"version empty", func(s *specs.Spec, _ string) { s.Version = "" }, "ociVersion must not be empty"},
		{"version major 2", func(s *specs.Spec, _ string) { s.Version = "2.0.0" }, `ociVersion "2.0.0" is not supported`},
		{"version garbage", func(s *specs.Spec, _ string) { s.Version = "abc" }, `invalid ociVersion "abc"`},
		{"version major only", func(s *specs.Spec, _ string) { s.Version = "1" }, `invalid ociVersion "1"`},
		{"version dev", func(s *specs.Spec, _ string) { s.Version = "1.0.2-dev" }, ""},
		{"version old", func(s *specs.Spec, _ string) { s.Version = "1.0.0" }, ""},

		{"root nil", func(s *specs.Spec, _ string) { s.Root = nil }, "root must be specified"},
		{"root path empty", func(s *specs.Spec, _ string) { s.Root.Path = "" }, "root.path must not be empty"},
		{"root missing", func(s *specs.Spec, _ string) { s.Root.Path = "nope" }, "invalid rootfs: stat "},
		{"root is a file", func(s *specs.Spec, b string) {
			if err := os.WriteFile(filepath.Join(b, "file"), nil, 0o644); err != nil {
				panic(err)
			}
			s.Root.Path = "file"
		}, "is not a directory"},
		{"root absolute", func(s *specs.Spec, b string) { s.Root.Path = filepath.Join(b, "rootfs") }, ""},
		{"root symlink", func(s *specs.Spec, b string) {
			if err := os.Symlink("rootfs", filepath.Join(b, "link")); err != nil {
				panic(err)
			}
			s.Root.Path = "link"
		}, ""},

		{"process nil", func(s *specs.Spec, _ string) { s.Process = nil }, "process property must not be empty"},
		{"cwd empty", func(s *specs.Spec, _ string) { s.Process.Cwd = "" }, "Cwd property must not be empty"},
		{"cwd relative", func(s *specs.Spec, _ string) { s.Process.Cwd = "home" }, "Cwd must be an absolute path"},
		{"args empty", func(s *specs.Spec, _ string) { s.Process.Args = nil }, "args must not be empty"},
		{"args nul", func(s *specs.Spec, _ string) { s.Process.Args = []string{"sh", "a\x00b"} }, "process.args[1] contains a nul byte"},
		{"env no equals", func(s *specs.Spec, _ string) { s.Process.Env = []string{"FOO"} }, "invalid environment variable: missing '='"},
		{"env empty name", func(s *specs.Spec, _ string) { s.Process.Env = []string{"=x"} }, "name cannot be empty"},
		{"env nul name", func(s *specs.Spec, _ string) { s.Process.Env = []string{"A\x00B=x"} }, "name contains nul byte"},
		{"env nul value", func(s *specs.Spec, _ string) { s.Process.Env = []string{"A=x\x00"} }, `invalid environment variable "A": value contains nul byte`},
		{"env empty value", func(s *specs.Spec, _ string) { s.Process.Env = []string{"A="} }, ""},
		{"oom too high", func(s *specs.Spec, _ string) { s.Process.OOMScoreAdj = ptr(1001) }, "process.oomScoreAdj 1001 is out of range"},
		{"oom too low", func(s *specs.Spec, _ string) { s.Process.OOMScoreAdj = ptr(-1001) }, "process.oomScoreAdj -1001 is out of range"},
		{"oom bounds", func(s *specs.Spec, _ string) { s.Process.OOMScoreAdj = ptr(-1000) }, ""},

		{"uid -1", func(s *specs.Spec, _ string) { s.Process.User.UID = math.MaxUint32 }, "process.user.uid 4294967295 is not a valid user id"},
		{"gid -1", func(s *specs.Spec, _ string) { s.Process.User.GID = math.MaxUint32 }, "process.user.gid 4294967295 is not a valid group id"},
		{"additional gid -1", func(s *specs.Spec, _ string) {
			s.Process.User.AdditionalGids = []uint32{5, math.MaxUint32}
		}, "process.user.additionalGids[1]"},
		{"too many groups", func(s *specs.Spec, _ string) {
			s.Process.User.AdditionalGids = make([]uint32, ngroupsMax+1)
		}, "process.user.additionalGids has 65537 groups"},
		{"umask", func(s *specs.Spec, _ string) { s.Process.User.Umask = ptr[uint32](0o1000) }, "process.user.umask 01000 is not a valid umask"},
		{"user ok", func(s *specs.Spec, _ string) {
			s.Process.User = specs.User{UID: 1000, GID: 1000, Umask: ptr[uint32](0o22), AdditionalGids: []uint32{5, 6}}
		}, ""},
	})
}

func TestValidateRlimitsCapabilities(t *testing.T) {
	runValidateCases(t, []validateCase{
		{"rlimit unknown", func(s *specs.Spec, _ string) {
			s.Process.Rlimits = append(s.Process.Rlimits, specs.POSIXRlimit{Type: "RLIMIT_FOO"})
		}, "wrong rlimit value: RLIMIT_FOO"},
		{"rlimit lowercase", func(s *specs.Spec, _ string) {
			s.Process.Rlimits = []specs.POSIXRlimit{{Type: "rlimit_nofile", Soft: 1, Hard: 1}}
		}, "wrong rlimit value: rlimit_nofile"},
		{"rlimit duplicate", func(s *specs.Spec, _ string) {
			s.Process.Rlimits = append(s.Process.Rlimits, specs.POSIXRlimit{Type: "RLIMIT_NOFILE", Soft: 1, Hard: 1})
		}, "process.rlimits[1]: duplicated rlimit type RLIMIT_NOFILE"},
		{"rlimit soft above hard", func(s *specs.Spec, _ string) {
			s.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_CORE", Soft: 2, Hard: 1}}
		}, "process.rlimits[0] RLIMIT_CORE: soft limit 2 is greater than hard limit 1"},
		{"rlimit several", func(s *specs.Spec, _ string) {
			s.Process.Rlimits = []specs.POSIXRlimit{
				{Type: "RLIMIT_CORE", Soft: 0, Hard: math.MaxUint64},
				{Type: "RLIMIT_NPROC", Soft: 100, Hard: 100},
				{Type: "RLIMIT_RTTIME", Soft: 1, Hard: 2},
			}
		}, ""},

		{"cap unknown", func(s *specs.Spec, _ string) {
			s.Process.Capabilities.Effective = append(s.Process.Capabilities.Effective, "CAP_SYSADMIN")
		}, `process.capabilities.effective: unknown capability "CAP_SYSADMIN"`},
		{"cap without prefix", func(s *specs.Spec, _ string) {
			s.Process.Capabilities.Bounding = []string{"chown"}
		}, `process.capabilities.bounding: unknown capability "chown"`},
		{"cap inheritable", func(s *specs.Spec, _ string) {
			s.Process.Capabilities.Inheritable = []string{"CAP_KILL", "CAP_foo"}
		}, `process.capabilities.inheritable: unknown capability "CAP_foo"`},
		{"caps all known", func(s *specs.Spec, _ string) {
			s.Process.Capabilities.Bounding = knownCapabilities()
			s.Process.Capabilities.Permitted = knownCapabilities()
		}, ""},
		{"caps nil", func(s *specs.Spec, _ string) { s.Process.Capabilities = nil }, ""},
	})
}

func TestValidateNamespaces(t *testing.T) {
	notNS := filepath.Join(t.TempDir(), "regular")
	if err := os.WriteFile(notNS, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	runValidateCases(t, []validateCase{
		{"unknown type", func(s *specs.Spec, _ string) { setNS(s, "foo", "") }, `namespace "foo" does not exist`},
		{"duplicate", func(s *specs.Spec, _ string) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.PIDNamespace})
		}, `malformed spec file: duplicated ns "pid"`},
		{"relative path", func(s *specs.Spec, _ string) { setNS(s, specs.NetworkNamespace, "proc/self/ns/net") }, `namespace "network": path "proc/self/ns/net" is not absolute`},
		{"missing path", func(s *specs.Spec, b string) {
			setNS(s, specs.NetworkNamespace, filepath.Join(b, "nope"))
		}, "no such file or directory"},
		{"wrong type", func(s *specs.Spec, _ string) {
			setNS(s, specs.NetworkNamespace, "/proc/self/ns/pid")
		}, `namespace "network": path /proc/self/ns/pid is a pid namespace`},
		{"wrong type mount", func(s *specs.Spec, _ string) {
			setNS(s, specs.MountNamespace, "/proc/self/ns/uts")
		}, `namespace "mount": path /proc/self/ns/uts is a uts namespace`},
		{"not a namespace file", func(s *specs.Spec, _ string) { setNS(s, specs.IPCNamespace, notNS) }, "is not a namespace file"},
		{"not a namespace dir", func(s *specs.Spec, _ string) { setNS(s, specs.IPCNamespace, "/proc/self") }, "is not a namespace file"},
		{"join by path", func(s *specs.Spec, _ string) {
			setNS(s, specs.NetworkNamespace, "/proc/self/ns/net")
			setNS(s, specs.IPCNamespace, "/proc/self/ns/ipc")
			setNS(s, specs.UTSNamespace, "/proc/thread-self/ns/uts")
			setNS(s, specs.CgroupNamespace, "/proc/self/ns/cgroup")
			setNS(s, specs.TimeNamespace, "/proc/self/ns/time")
			setNS(s, specs.PIDNamespace, "/proc/self/ns/pid_for_children")
		}, ""},
		{"all new", func(s *specs.Spec, _ string) {
			withUserNS(s)
			setNS(s, specs.CgroupNamespace, "")
			setNS(s, specs.TimeNamespace, "")
		}, ""},
		{"none", func(s *specs.Spec, _ string) {
			s.Linux.Namespaces = nil
			s.Linux.MaskedPaths, s.Linux.ReadonlyPaths = nil, nil
			s.Hostname = ""
		}, ""},
		{"no linux", func(s *specs.Spec, _ string) { s.Linux = nil; s.Hostname = "" }, ""},

		{"mappings without userns", func(s *specs.Spec, _ string) {
			s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1000, Size: 1}}
		}, "user namespace mappings specified, but user namespace isn't enabled in the config"},
		{"userns without mappings", func(s *specs.Spec, _ string) { setNS(s, specs.UserNamespace, "") },
			"user namespaces enabled, but no namespace path to join nor mappings to apply specified"},
		{"userns only uid map", func(s *specs.Spec, _ string) {
			withUserNS(s)
			s.Linux.GIDMappings = nil
		}, "user namespaces enabled, but no gid mappings found"},
		{"userns only gid map", func(s *specs.Spec, _ string) {
			withUserNS(s)
			s.Linux.UIDMappings = nil
		}, "user namespaces enabled, but no uid mappings found"},
		{"mapping size zero", func(s *specs.Spec, _ string) {
			withUserNS(s)
			s.Linux.UIDMappings[0].Size = 0
		}, "linux.uidMappings[0]: size must be greater than zero"},
		{"mapping overflow", func(s *specs.Spec, _ string) {
			withUserNS(s)
			s.Linux.GIDMappings[0].HostID = math.MaxUint32
		}, "linux.gidMappings[0]: range overflows"},
		{"mapping container overlap", func(s *specs.Spec, _ string) {
			withUserNS(s)
			s.Linux.UIDMappings = append(s.Linux.UIDMappings, specs.LinuxIDMapping{ContainerID: 65535, HostID: 300000, Size: 10})
		}, "linux.uidMappings[1]: container ids overlap linux.uidMappings[0]"},
		{"mapping host overlap", func(s *specs.Spec, _ string) {
			withUserNS(s)
			s.Linux.UIDMappings = append(s.Linux.UIDMappings, specs.LinuxIDMapping{ContainerID: 70000, HostID: 100001, Size: 1})
		}, "linux.uidMappings[1]: host ids overlap linux.uidMappings[0]"},
		{"mapping too many", func(s *specs.Spec, _ string) {
			withUserNS(s)
			s.Linux.UIDMappings = nil
			for i := range uint32(maxIDMapLines + 1) {
				s.Linux.UIDMappings = append(s.Linux.UIDMappings, specs.LinuxIDMapping{ContainerID: i, HostID: 100000 + i, Size: 1})
			}
		}, "linux.uidMappings has 341 entries"},
		{"mapping adjacent ranges", func(s *specs.Spec, _ string) {
			withUserNS(s)
			s.Linux.UIDMappings = append(s.Linux.UIDMappings, specs.LinuxIDMapping{ContainerID: 65536, HostID: 165536, Size: 1})
		}, ""},
		{"uid not mapped", func(s *specs.Spec, _ string) {
			withUserNS(s)
			s.Process.User.UID = 70000
		}, "process.user.uid 70000 is not mapped in the container's user namespace"},
		{"gid not mapped", func(s *specs.Spec, _ string) {
			withUserNS(s)
			s.Process.User.GID = 70000
		}, "process.user.gid 70000 is not mapped"},
		{"additional gid not mapped", func(s *specs.Spec, _ string) {
			withUserNS(s)
			s.Process.User.AdditionalGids = []uint32{1, 65536}
		}, "process.user.additionalGids[1] 65536 is not mapped"},
		{"join own userns", func(s *specs.Spec, _ string) { setNS(s, specs.UserNamespace, "/proc/self/ns/user") }, ""},
		{"join userns with matching mappings", func(s *specs.Spec, _ string) {
			setNS(s, specs.UserNamespace, "/proc/self/ns/user")
			all := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 0, Size: math.MaxUint32}}
			s.Linux.UIDMappings, s.Linux.GIDMappings = all, all
		}, ""},
		{"join userns with other mappings", func(s *specs.Spec, _ string) {
			setNS(s, specs.UserNamespace, "/proc/self/ns/user")
			s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1000, Size: 1}}
			s.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1000, Size: 1}}
		}, "user namespaces enabled, but both namespace path and non-matching mapping specified"},

		{"offsets without timens", func(s *specs.Spec, _ string) {
			s.Linux.TimeOffsets = map[string]specs.LinuxTimeOffset{"monotonic": {Secs: 10}}
		}, "time namespace offsets specified, but time namespace isn't enabled in the config"},
		{"offsets with joined timens", func(s *specs.Spec, _ string) {
			setNS(s, specs.TimeNamespace, "/proc/self/ns/time")
			s.Linux.TimeOffsets = map[string]specs.LinuxTimeOffset{"monotonic": {Secs: 10}}
		}, "both namespace path and time offsets specified"},
		{"offsets unknown clock", func(s *specs.Spec, _ string) {
			setNS(s, specs.TimeNamespace, "")
			s.Linux.TimeOffsets = map[string]specs.LinuxTimeOffset{"monotonic": {}, "realtime": {Secs: 10}}
		}, `linux.timeOffsets: unknown clock "realtime"`},
		{"offsets nanosecs", func(s *specs.Spec, _ string) {
			setNS(s, specs.TimeNamespace, "")
			s.Linux.TimeOffsets = map[string]specs.LinuxTimeOffset{"boottime": {Nanosecs: 1e9}}
		}, "linux.timeOffsets.boottime: nanosecs 1000000000 must be less than"},
		{"offsets ok", func(s *specs.Spec, _ string) {
			setNS(s, specs.TimeNamespace, "")
			s.Linux.TimeOffsets = map[string]specs.LinuxTimeOffset{"boottime": {Secs: -5, Nanosecs: 999999999}, "monotonic": {Secs: 100}}
		}, ""},

		{"hostname without uts", func(s *specs.Spec, _ string) { dropNS(s, specs.UTSNamespace) }, "unable to set hostname without a private UTS namespace"},
		{"domainname without uts", func(s *specs.Spec, _ string) {
			dropNS(s, specs.UTSNamespace)
			s.Hostname, s.Domainname = "", "example.org"
		}, "unable to set domainname without a private UTS namespace"},
		{"hostname joined uts", func(s *specs.Spec, _ string) { setNS(s, specs.UTSNamespace, "/proc/self/ns/uts") }, ""},
		{"no hostname no uts", func(s *specs.Spec, _ string) {
			dropNS(s, specs.UTSNamespace)
			s.Hostname = ""
		}, ""},
	})
}

func TestValidateSysctls(t *testing.T) {
	sysctl := func(kv ...string) func(*specs.Spec, string) {
		return func(s *specs.Spec, _ string) {
			s.Linux.Sysctl = map[string]string{}
			for i := 0; i+1 < len(kv); i += 2 {
				s.Linux.Sysctl[kv[i]] = kv[i+1]
			}
		}
	}
	then := func(a, b func(*specs.Spec, string)) func(*specs.Spec, string) {
		return func(s *specs.Spec, bundle string) { a(s, bundle); b(s, bundle) }
	}
	runValidateCases(t, []validateCase{
		{"net with new netns", sysctl("net.ipv4.ip_forward", "1", "net.core.somaxconn", "1024"), ""},
		{"net slash form", sysctl("net/ipv4/conf/eth0.100/rp_filter", "1"), ""},
		{"net without netns", then(sysctl("net.ipv4.ip_forward", "1"), func(s *specs.Spec, _ string) {
			dropNS(s, specs.NetworkNamespace)
		}), `sysctl "net.ipv4.ip_forward" not allowed in host network namespace`},
		{"net joined host netns", then(sysctl("net.ipv4.ip_forward", "1"), func(s *specs.Spec, _ string) {
			setNS(s, specs.NetworkNamespace, "/proc/self/ns/net")
		}), `sysctl "net.ipv4.ip_forward" not allowed in host network namespace`},
		{"ipc with ipcns", sysctl("kernel.shmmax", "1", "fs.mqueue.msg_max", "10"), ""},
		{"ipc without ipcns", then(sysctl("kernel.msgmax", "1"), func(s *specs.Spec, _ string) {
			dropNS(s, specs.IPCNamespace)
		}), `sysctl "kernel.msgmax" is not allowed in the hosts ipc namespace`},
		{"mqueue without ipcns", then(sysctl("fs.mqueue.queues_max", "1"), func(s *specs.Spec, _ string) {
			dropNS(s, specs.IPCNamespace)
		}), `sysctl "fs.mqueue.queues_max" is not allowed in the hosts ipc namespace`},
		{"domainname with uts", sysctl("kernel.domainname", "example.org"), ""},
		{"hostname sysctl", sysctl("kernel.hostname", "x"), `sysctl "kernel.hostname" is not allowed as it conflicts with the OCI "hostname" field`},
		{"domainname without uts", then(sysctl("kernel.domainname", "x"), func(s *specs.Spec, _ string) {
			dropNS(s, specs.UTSNamespace)
			s.Hostname = ""
		}), `sysctl "kernel.domainname" is not in a separate kernel namespace`},
		{"not namespaced", sysctl("vm.swappiness", "10"), `sysctl "vm.swappiness" is not in a separate kernel namespace`},
		{"kernel not namespaced", sysctl("kernel.pid_max", "10"), `sysctl "kernel.pid_max" is not in a separate kernel namespace`},
		{"ucounts without userns", sysctl("user.max_user_namespaces", "0"), "setting ucounts without a user namespace not allowed: user.max_user_namespaces"},
		{"ucounts with userns", then(sysctl("user.max_user_namespaces", "0"), func(s *specs.Spec, _ string) { withUserNS(s) }), ""},
	})
}

func TestValidateMountsDevicesHooks(t *testing.T) {
	addMount := func(m specs.Mount) func(*specs.Spec, string) {
		return func(s *specs.Spec, _ string) { s.Mounts = append(s.Mounts, m) }
	}
	addDevice := func(d specs.LinuxDevice) func(*specs.Spec, string) {
		return func(s *specs.Spec, _ string) { s.Linux.Devices = append(s.Linux.Devices, d) }
	}
	runValidateCases(t, []validateCase{
		{"relative destination", addMount(specs.Mount{Destination: "data", Type: "tmpfs", Source: "tmpfs"}), ""},
		{"empty destination", addMount(specs.Mount{Type: "tmpfs", Source: "tmpfs"}), "mounts[7]: destination must not be empty"},
		{"nul in source", addMount(specs.Mount{Destination: "/x", Source: "a\x00b", Options: []string{"bind"}}), "mounts[7] (/x): mount field contains null byte"},
		{"nul in option", addMount(specs.Mount{Destination: "/x", Type: "tmpfs", Options: []string{"size=1\x00"}}), "mount field contains null byte"},
		{"idmap option", addMount(specs.Mount{Destination: "/x", Source: "/tmp", Options: []string{"rbind", "idmap"}}), "id-mapped mounts are not supported"},
		{"idmap mappings", addMount(specs.Mount{
			Destination: "/x", Source: "/tmp", Options: []string{"rbind"},
			UIDMappings: []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1000, Size: 1}},
		}), "mounts[7] (/x): id-mapped mounts are not supported"},
		{"conflicting propagation", addMount(specs.Mount{Destination: "/x", Source: "/tmp", Options: []string{"rbind", "rprivate", "shared"}}),
			`mounts[7] (/x): conflicting propagation options "rprivate" and "shared"`},
		{"unbindable and slave", addMount(specs.Mount{Destination: "/x", Source: "/tmp", Options: []string{"rslave", "bind", "unbindable"}}),
			`conflicting propagation options "rslave" and "unbindable"`},
		{"slave and shared", addMount(specs.Mount{Destination: "/x", Source: "/tmp", Options: []string{"rbind", "rslave", "rshared"}}), ""},
		{"repeated propagation", addMount(specs.Mount{Destination: "/x", Source: "/tmp", Options: []string{"rbind", "private", "rprivate"}}), ""},
		{"fs data options", addMount(specs.Mount{Destination: "/x", Type: "tmpfs", Options: []string{"size=1m", "mode=700", "whatever"}}), ""},

		{"rootfs propagation bad", func(s *specs.Spec, _ string) { s.Linux.RootfsPropagation = "recursive" }, "rootfsPropagation=recursive is not supported"},
		{"rootfs propagation ok", func(s *specs.Spec, _ string) { s.Linux.RootfsPropagation = "rslave" }, ""},

		{"device bad type", addDevice(specs.LinuxDevice{Path: "/dev/x", Type: "x", Major: 1, Minor: 3}), `invalid device type "x"`},
		{"device no numbers", addDevice(specs.LinuxDevice{Path: "/dev/x", Type: "c"}), `linux.devices[0] (/dev/x): major and minor numbers are required for type "c"`},
		{"device negative major", addDevice(specs.LinuxDevice{Path: "/dev/x", Type: "b", Major: -1, Minor: 1}), "major -1 is out of range"},
		{"device huge minor", addDevice(specs.LinuxDevice{Path: "/dev/x", Type: "u", Major: 1, Minor: 1 << 20}), "minor 1048576 is out of range"},
		{"device relative path", addDevice(specs.LinuxDevice{Path: "dev/x", Type: "c", Major: 1, Minor: 3}), `linux.devices[0]: path "dev/x" is not absolute`},
		{"device root path", addDevice(specs.LinuxDevice{Path: "/", Type: "c", Major: 1, Minor: 3}), `linux.devices[0]: invalid path "/"`},
		{"device fifo", addDevice(specs.LinuxDevice{Path: "/dev/fifo", Type: "p"}), ""},
		{"device char", addDevice(specs.LinuxDevice{Path: "/dev/null2", Type: "c", Major: 1, Minor: 3, FileMode: ptr[os.FileMode](0o666)}), ""},
		{"device outside dev", addDevice(specs.LinuxDevice{Path: "/opt/null", Type: "c", Major: 1, Minor: 3}), ""},
		{"cgroup device type", func(s *specs.Spec, _ string) {
			s.Linux.Resources.Devices = append(s.Linux.Resources.Devices, specs.LinuxDeviceCgroup{Type: "z", Access: "r"})
		}, `invalid cgroup device type "z"`},
		{"cgroup device access", func(s *specs.Spec, _ string) {
			s.Linux.Resources.Devices = append(s.Linux.Resources.Devices, specs.LinuxDeviceCgroup{Type: "c", Access: "rwx"})
		}, `linux.resources.devices[1]: invalid access "rwx"`},
		{"cgroup device ok", func(s *specs.Spec, _ string) {
			s.Linux.Resources.Devices = append(s.Linux.Resources.Devices,
				specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: ptr[int64](1), Minor: ptr[int64](3), Access: "rwm"})
		}, ""},

		{"hook relative", func(s *specs.Spec, _ string) {
			s.Hooks = &specs.Hooks{Poststop: []specs.Hook{{Path: "/bin/true"}, {Path: "true"}}}
		}, `hooks.poststop[1]: path "true" is not absolute`},
		{"hook empty path", func(s *specs.Spec, _ string) {
			s.Hooks = &specs.Hooks{CreateRuntime: []specs.Hook{{}}}
		}, `hooks.createRuntime[0]: path "" is not absolute`},
		{"hook timeout", func(s *specs.Spec, _ string) {
			s.Hooks = &specs.Hooks{StartContainer: []specs.Hook{{Path: "/bin/true", Timeout: ptr(0)}}}
		}, "hooks.startContainer[0] (/bin/true): timeout must be greater than zero"},
		{"hooks ok", func(s *specs.Spec, _ string) {
			s.Hooks = &specs.Hooks{
				Prestart:        []specs.Hook{{Path: "/bin/true"}},
				CreateContainer: []specs.Hook{{Path: "/bin/true", Args: []string{"true"}, Timeout: ptr(5)}},
				Poststart:       []specs.Hook{{Path: "/bin/true"}},
			}
		}, ""},

		{"cgroups path dotdot", func(s *specs.Spec, _ string) { s.Linux.CgroupsPath = "/a/../../b" }, `linux.cgroupsPath "/a/../../b" must not contain ".."`},
		{"cgroups path relative dotdot", func(s *specs.Spec, _ string) { s.Linux.CgroupsPath = "../b" }, `must not contain ".."`},
		{"cgroups path nul", func(s *specs.Spec, _ string) { s.Linux.CgroupsPath = "/a\x00" }, "linux.cgroupsPath contains a nul byte"},
		{"cgroups path ok", func(s *specs.Spec, _ string) { s.Linux.CgroupsPath = "/runmini/c..1" }, ""},
		{"cgroups path relative", func(s *specs.Spec, _ string) { s.Linux.CgroupsPath = "pod/c1" }, ""},
	})
}

func TestValidateSecurity(t *testing.T) {
	for _, hostEnabled := range []bool{false, true} {
		t.Run(map[bool]string{false: "host-disabled", true: "host-enabled"}[hostEnabled], func(t *testing.T) {
			oldAA, oldSE := appArmorEnabled, selinuxEnabled
			appArmorEnabled = func() bool { return hostEnabled }
			selinuxEnabled = func() bool { return hostEnabled }
			t.Cleanup(func() { appArmorEnabled, selinuxEnabled = oldAA, oldSE })

			aaErr := "apparmor: config provided but apparmor not supported"
			labelErr := "selinux label is specified in config, but selinux is disabled or not supported"
			mountLabelErr := ""
			if hostEnabled {
				aaErr = `apparmor: profile "docker-default" is set but this build does not support AppArmor`
				labelErr = "selinux label is specified in config, but this build does not support SELinux"
				mountLabelErr = "linux.mountLabel is specified in config, but this build does not support SELinux"
			}
			runValidateCases(t, []validateCase{
				{"apparmor", func(s *specs.Spec, _ string) { s.Process.ApparmorProfile = "docker-default" }, aaErr},
				{"selinux process label", func(s *specs.Spec, _ string) {
					s.Process.SelinuxLabel = "system_u:system_r:container_t:s0"
				}, labelErr},
				{"selinux mount label", func(s *specs.Spec, _ string) {
					s.Linux.MountLabel = "system_u:object_r:container_file_t:s0"
				}, mountLabelErr},
			})
		})
	}
	runValidateCases(t, []validateCase{
		{"seccomp default action", func(s *specs.Spec, _ string) {
			s.Linux.Seccomp = &specs.LinuxSeccomp{DefaultAction: specs.ActAllow}
		}, ""},
		{"seccomp syscalls", func(s *specs.Spec, _ string) {
			s.Linux.Seccomp = &specs.LinuxSeccomp{Syscalls: []specs.LinuxSyscall{{Names: []string{"mount"}, Action: specs.ActErrno}}}
		}, ""},
		{"seccomp empty", func(s *specs.Spec, _ string) { s.Linux.Seccomp = &specs.LinuxSeccomp{} }, ""},
		{"masked without mountns", func(s *specs.Spec, _ string) {
			dropNS(s, specs.MountNamespace)
			s.Linux.ReadonlyPaths = nil
		}, "unable to restrict sys entries without a private MNT namespace"},
		{"readonly without mountns", func(s *specs.Spec, _ string) {
			dropNS(s, specs.MountNamespace)
			s.Linux.MaskedPaths = nil
		}, "unable to restrict sys entries without a private MNT namespace"},
		{"intel rdt", func(s *specs.Spec, _ string) { s.Linux.IntelRdt = &specs.LinuxIntelRdt{ClosID: "x"} }, "intelRdt is specified in config"},
		{"net devices", func(s *specs.Spec, _ string) {
			s.Linux.NetDevices = map[string]specs.LinuxNetDevice{"eth1": {}}
		}, "linux.netDevices is specified in config"},
	})
}

func TestValidateWarnings(t *testing.T) {
	var buf bytes.Buffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&buf, nil)))
	t.Cleanup(func() { slog.SetDefault(old) })

	bundle := newBundle(t)
	s := Default(false)
	if err := Validate(s, bundle); err != nil {
		t.Fatal(err)
	}
	if buf.Len() != 0 {
		t.Fatalf("default spec logged warnings: %s", buf.String())
	}
	s.Mounts = append(s.Mounts, specs.Mount{Destination: "data", Type: "tmpfs", Source: "tmpfs"})
	if err := Validate(s, bundle); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "mount destination data is not absolute") {
		t.Fatalf("relative destination not warned about; log: %q", buf.String())
	}
}
