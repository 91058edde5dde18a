package mount

import (
	"reflect"
	"strings"
	"testing"

	"github.com/moby/sys/mountinfo"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func TestParseOptions(t *testing.T) {
	for _, tc := range []struct {
		name     string
		opts     []string
		flags    uintptr
		perMount bool
		prop     []uintptr
		attr     *unix.MountAttr
		data     []string
		copyUp   bool
	}{
		{name: "empty"},
		{name: "defaults", opts: []string{"defaults"}},
		{name: "ro nosuid nodev", opts: []string{"ro", "nosuid", "nodev"},
			flags: unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV, perMount: true},
		{name: "later wins", opts: []string{"ro", "noexec", "rw", "exec"}, perMount: true},
		{name: "rw alone still needs a remount", opts: []string{"rw"}, perMount: true},
		{name: "bind only", opts: []string{"bind"}, flags: unix.MS_BIND},
		{name: "rbind", opts: []string{"rbind", "nodev"}, flags: unix.MS_BIND | unix.MS_REC | unix.MS_NODEV, perMount: true},
		{name: "atime flags", opts: []string{"noatime", "nodiratime", "strictatime", "nostrictatime", "relatime"},
			flags: unix.MS_NOATIME | unix.MS_NODIRATIME | unix.MS_RELATIME, perMount: true},
		{name: "atime clears", opts: []string{"noatime", "atime", "nodiratime", "diratime", "relatime", "norelatime"}, perMount: true},
		{name: "superblock flags", opts: []string{"sync", "dirsync", "mand", "remount", "silent", "lazytime", "iversion"},
			flags: unix.MS_SYNCHRONOUS | unix.MS_DIRSYNC | unix.MS_MANDLOCK | unix.MS_REMOUNT | unix.MS_SILENT | unix.MS_LAZYTIME | unix.MS_I_VERSION},
		{name: "superblock clears", opts: []string{"sync", "async", "mand", "nomand", "silent", "loud", "lazytime", "nolazytime", "iversion", "noiversion"}},
		{name: "symfollow", opts: []string{"nosymfollow"}, flags: unix.MS_NOSYMFOLLOW, perMount: true},
		{name: "suid dev exec", opts: []string{"nosuid", "suid", "nodev", "dev", "noexec", "exec", "nosymfollow", "symfollow"}, perMount: true},
		{name: "propagation in order", opts: []string{"shared", "rslave", "private", "runbindable", "rprivate", "rshared", "slave", "unbindable"},
			prop: []uintptr{unix.MS_SHARED, unix.MS_SLAVE | unix.MS_REC, unix.MS_PRIVATE, unix.MS_UNBINDABLE | unix.MS_REC,
				unix.MS_PRIVATE | unix.MS_REC, unix.MS_SHARED | unix.MS_REC, unix.MS_SLAVE, unix.MS_UNBINDABLE}},
		{name: "recursive", opts: []string{"rbind", "rro", "rnosuid", "rnodev", "rnoexec", "rnodiratime", "rnosymfollow"},
			flags: unix.MS_BIND | unix.MS_REC,
			attr: &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV |
				unix.MOUNT_ATTR_NOEXEC | unix.MOUNT_ATTR_NODIRATIME | unix.MOUNT_ATTR_NOSYMFOLLOW}},
		{name: "recursive clears", opts: []string{"rro", "rrw", "rnosuid", "rsuid", "rdev", "rexec", "rdiratime", "rsymfollow"},
			attr: &unix.MountAttr{Attr_clr: unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV |
				unix.MOUNT_ATTR_NOEXEC | unix.MOUNT_ATTR_NODIRATIME | unix.MOUNT_ATTR_NOSYMFOLLOW}},
		{name: "recursive noatime", opts: []string{"rnoatime"},
			attr: &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_NOATIME, Attr_clr: unix.MOUNT_ATTR__ATIME}},
		{name: "recursive atime last wins", opts: []string{"rnoatime", "rstrictatime"},
			attr: &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_STRICTATIME, Attr_clr: unix.MOUNT_ATTR__ATIME}},
		{name: "recursive atime negated", opts: []string{"rstrictatime", "rnostrictatime"},
			attr: &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RELATIME, Attr_clr: unix.MOUNT_ATTR__ATIME}},
		{name: "ratime", opts: []string{"rnoatime", "ratime"},
			attr: &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RELATIME, Attr_clr: unix.MOUNT_ATTR__ATIME}},
		{name: "rrelatime with rnodiratime", opts: []string{"rrelatime", "rnodiratime"},
			attr: &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RELATIME | unix.MOUNT_ATTR_NODIRATIME, Attr_clr: unix.MOUNT_ATTR__ATIME}},
		{name: "unknown is data", opts: []string{"mode=755", "size=65536k", "newinstance", "ro", "gid=5"},
			flags: unix.MS_RDONLY, perMount: true, data: []string{"mode=755", "size=65536k", "newinstance", "gid=5"}},
		{name: "tmpcopyup", opts: []string{"tmpcopyup"}, copyUp: true},
		{name: "notmpcopyup", opts: []string{"tmpcopyup", "notmpcopyup"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := parseOptions(tc.opts)
			if err != nil {
				t.Fatalf("parseOptions(%q): %v", tc.opts, err)
			}
			if o.flags != tc.flags {
				t.Errorf("flags = %#x, want %#x", o.flags, tc.flags)
			}
			if o.perMount != tc.perMount {
				t.Errorf("perMount = %v, want %v", o.perMount, tc.perMount)
			}
			if !reflect.DeepEqual(o.propagation, tc.prop) {
				t.Errorf("propagation = %#x, want %#x", o.propagation, tc.prop)
			}
			if !reflect.DeepEqual(o.attr, tc.attr) {
				t.Errorf("attr = %+v, want %+v", o.attr, tc.attr)
			}
			if !reflect.DeepEqual(o.data, tc.data) {
				t.Errorf("data = %q, want %q", o.data, tc.data)
			}
			if o.copyUp != tc.copyUp {
				t.Errorf("copyUp = %v, want %v", o.copyUp, tc.copyUp)
			}
		})
	}
}

func TestParseOptionsKnownAreNotData(t *testing.T) {
	var all []string
	for k := range flagOptions {
		all = append(all, k)
	}
	for k := range propagationOptions {
		all = append(all, k)
	}
	for k := range attrOptions {
		all = append(all, k)
	}
	for _, opt := range all {
		o, err := parseOptions([]string{opt})
		if err != nil {
			t.Errorf("%s: %v", opt, err)
			continue
		}
		if len(o.data) != 0 {
			t.Errorf("%s was passed as data", opt)
		}
	}
}

func TestParseOptionsRejectsIDMap(t *testing.T) {
	for _, opt := range []string{"idmap", "ridmap", "idmap=uids=0-1000-10;gids=0-1000-10"} {
		if _, err := parseOptions([]string{"bind", opt}); err == nil {
			t.Errorf("%s: no error", opt)
		}
	}
}

func TestRootPropagation(t *testing.T) {
	for _, tc := range []struct {
		in            string
		final, before uintptr
	}{
		{"", 0, unix.MS_SLAVE | unix.MS_REC},
		{"shared", unix.MS_SHARED, unix.MS_SHARED},
		{"rshared", unix.MS_SHARED | unix.MS_REC, unix.MS_SHARED | unix.MS_REC},
		{"slave", unix.MS_SLAVE, unix.MS_SLAVE},
		{"rslave", unix.MS_SLAVE | unix.MS_REC, unix.MS_SLAVE | unix.MS_REC},
		{"private", unix.MS_PRIVATE, unix.MS_PRIVATE},
		{"rprivate", unix.MS_PRIVATE | unix.MS_REC, unix.MS_PRIVATE | unix.MS_REC},
		{"unbindable", unix.MS_UNBINDABLE, unix.MS_PRIVATE | unix.MS_REC},
		{"runbindable", unix.MS_UNBINDABLE | unix.MS_REC, unix.MS_PRIVATE | unix.MS_REC},
	} {
		f, err := rootPropagation(tc.in)
		if err != nil || f != tc.final {
			t.Errorf("rootPropagation(%q) = %#x, %v; want %#x", tc.in, f, err, tc.final)
		}
		b, err := preparePropagation(tc.in)
		if err != nil || b != tc.before {
			t.Errorf("preparePropagation(%q) = %#x, %v; want %#x", tc.in, b, err, tc.before)
		}
	}
	for _, bad := range []string{"slaves", "ro", "bind", "Shared"} {
		if _, err := rootPropagation(bad); err == nil {
			t.Errorf("rootPropagation(%q): no error", bad)
		}
		if _, err := preparePropagation(bad); err == nil {
			t.Errorf("preparePropagation(%q): no error", bad)
		}
	}
}

func TestStatfsMountFlags(t *testing.T) {
	for _, tc := range []struct {
		st   int64
		want uintptr
	}{
		{0, unix.MS_STRICTATIME},
		{unix.ST_RDONLY | unix.ST_NOSUID | unix.ST_RELATIME, unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_RELATIME},
		{unix.ST_NODEV | unix.ST_NOEXEC | unix.ST_NOATIME | unix.ST_NODIRATIME,
			unix.MS_NODEV | unix.MS_NOEXEC | unix.MS_NOATIME | unix.MS_NODIRATIME},
		// ST_VALID and ST_NOSYMFOLLOW share values with MS_REMOUNT and
		// MS_MOVE; they must not leak through.
		{0x20 /* ST_VALID */ | stNoSymFollow | unix.ST_RELATIME, unix.MS_NOSYMFOLLOW | unix.MS_RELATIME},
	} {
		if got := statfsMountFlags(tc.st); got != tc.want {
			t.Errorf("statfsMountFlags(%#x) = %#x, want %#x", tc.st, got, tc.want)
		}
	}
	got := readonlyRemountFlags(unix.ST_NOSUID | unix.ST_NODEV | unix.ST_NOEXEC | unix.ST_RELATIME)
	want := uintptr(unix.MS_BIND | unix.MS_REMOUNT | unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC | unix.MS_RELATIME)
	if got != want {
		t.Errorf("readonlyRemountFlags = %#x, want %#x", got, want)
	}
}

func TestParseMount(t *testing.T) {
	m, err := parseMount(specs.Mount{Destination: "data/../x//y", Type: "bind", Source: "/src"}, "/bundle")
	if err != nil {
		t.Fatal(err)
	}
	if m.dest != "/x/y" || !m.opts.isBind() || m.opts.flags&unix.MS_REC != 0 {
		t.Errorf("bind: dest %q flags %#x", m.dest, m.opts.flags)
	}
	m, err = parseMount(specs.Mount{Destination: "/r", Type: "rbind", Source: "/src"}, "")
	if err != nil || m.opts.flags != unix.MS_BIND|unix.MS_REC {
		t.Errorf("rbind: %v %#x", err, m.opts.flags)
	}
	m, err = parseMount(specs.Mount{Destination: "/o", Type: "none", Source: "/src", Options: []string{"rbind", "ro"}}, "")
	if err != nil || !m.opts.isBind() || m.opts.flags&unix.MS_RDONLY == 0 {
		t.Errorf("none+rbind: %v %#x", err, m.opts.flags)
	}
	// Relative bind sources are the bundle's, whichever way bind is
	// asked for; other sources are left alone.
	for _, rel := range []specs.Mount{
		{Destination: "/b", Type: "bind", Source: "data/../src"},
		{Destination: "/b", Type: "rbind", Source: "src"},
		{Destination: "/b", Type: "none", Source: "./src", Options: []string{"bind"}},
	} {
		if m, err := parseMount(rel, "/bundle"); err != nil {
			t.Errorf("parseMount(%+v, /bundle): %v", rel, err)
		} else if m.Source != "/bundle/src" {
			t.Errorf("parseMount(%+v, /bundle): source %q", rel, m.Source)
		}
	}
	if m, err := parseMount(specs.Mount{Destination: "/t", Type: "tmpfs", Source: "tmpfs"}, "/bundle"); err != nil {
		t.Errorf("tmpfs: %v", err)
	} else if m.Source != "tmpfs" {
		t.Errorf("tmpfs source: %q", m.Source)
	}
	if _, err := parseMount(specs.Mount{Destination: "/b", Type: "bind"}, "/bundle"); err == nil {
		t.Error("bind without a source: no error")
	}
	for _, bad := range []specs.Mount{
		{Destination: "", Type: "tmpfs"},
		{Destination: "/", Type: "tmpfs"},
		{Destination: "/..", Type: "tmpfs"},
		{Destination: "/b", Type: "bind", Source: "relative/src"},
		{Destination: "/c", Type: "bind", Source: "/src", Options: []string{"tmpcopyup"}},
		{Destination: "/c", Type: "proc", Options: []string{"tmpcopyup"}},
		{Destination: "/i", Type: "bind", Source: "/src", UIDMappings: []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1000, Size: 1}}},
		{Destination: "/i", Type: "bind", Source: "/src", Options: []string{"idmap"}},
	} {
		if _, err := parseMount(bad, ""); err == nil {
			t.Errorf("parseMount(%+v): no error", bad)
		}
	}
}

func TestDevSetup(t *testing.T) {
	mk := func(ms ...specs.Mount) []*specMount {
		var out []*specMount
		for _, m := range ms {
			sm, err := parseMount(m, "")
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, sm)
		}
		return out
	}
	devTmpfs := specs.Mount{Destination: "/dev", Type: "tmpfs", Source: "tmpfs"}
	devBind := specs.Mount{Destination: "/dev", Type: "bind", Source: "/dev", Options: []string{"rbind"}}
	proc := specs.Mount{Destination: "/proc", Type: "proc", Source: "proc"}
	withDevs := &Config{Devices: []specs.LinuxDevice{{Path: "/dev/fuse", Type: "c", Major: 10, Minor: 229}}}
	if !devSetup(&Config{}, mk(devTmpfs)) {
		t.Error("tmpfs /dev: no setup")
	}
	if devSetup(&Config{}, mk(proc)) {
		t.Error("no /dev mount, no devices: setup")
	}
	if !devSetup(withDevs, mk(proc)) {
		t.Error("spec devices: no setup")
	}
	if devSetup(withDevs, mk(devBind)) {
		t.Error("bound /dev: setup")
	}
	if !hasProcMount(mk(devTmpfs, proc)) || hasProcMount(mk(devTmpfs)) {
		t.Error("hasProcMount wrong")
	}
}

func TestDeviceType(t *testing.T) {
	for in, want := range map[string]uint32{"c": unix.S_IFCHR, "u": unix.S_IFCHR, "b": unix.S_IFBLK, "p": unix.S_IFIFO} {
		if got, err := deviceType(in); err != nil || got != want {
			t.Errorf("deviceType(%q) = %#o, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "a", "s", "cc"} {
		if _, err := deviceType(bad); err == nil {
			t.Errorf("deviceType(%q): no error", bad)
		}
	}
}

func TestCgroupParsing(t *testing.T) {
	self, err := parseProcCgroup(strings.NewReader("9:name=systemd:/\n4:memory:/a/b\n2:cpuacct,cpu:/c\n0::/u\n"))
	if err != nil {
		t.Fatal(err)
	}
	known := subsystems(self)
	if want := map[string]bool{"cpu": true, "cpuacct": true, "memory": true}; !reflect.DeepEqual(known, want) {
		t.Errorf("subsystems = %v, want %v", known, want)
	}
	if got := v1Controllers("rw,cpu,cpuacct,clone_children", known); !reflect.DeepEqual(got, []string{"cpu", "cpuacct"}) {
		t.Errorf("v1Controllers = %q", got)
	}
	if got := v1Controllers("rw,xattr,name=systemd", known); !reflect.DeepEqual(got, []string{"name=systemd"}) {
		t.Errorf("v1Controllers = %q", got)
	}
	if got := unescapeMountinfo(`/a\040b\134c\011`); got != "/a b\\c\t" {
		t.Errorf("unescapeMountinfo = %q", got)
	}
	for _, tc := range []struct {
		h     hierarchy
		paths map[string]string
		want  string
	}{
		{hierarchy{mountpoint: "/sys/fs/cgroup/memory", root: "/", controllers: []string{"memory"}}, nil, "/sys/fs/cgroup/memory/a/b"},
		{hierarchy{mountpoint: "/sys/fs/cgroup/memory", root: "/a", controllers: []string{"memory"}}, nil, "/sys/fs/cgroup/memory/b"},
		{hierarchy{mountpoint: "/sys/fs/cgroup/cpu,cpuacct", root: "/", controllers: []string{"cpu", "cpuacct"}}, nil, "/sys/fs/cgroup/cpu,cpuacct/c"},
		{hierarchy{mountpoint: "/sys/fs/cgroup/systemd", root: "/", controllers: []string{"name=systemd"}}, nil, "/sys/fs/cgroup/systemd"},
		{hierarchy{mountpoint: "/sys/fs/cgroup/unified", root: "/", v2: true}, nil, "/sys/fs/cgroup/unified/u"},
		{hierarchy{mountpoint: "/sys/fs/cgroup/memory", root: "/", controllers: []string{"memory"}},
			map[string]string{"memory": "/sys/fs/cgroup/memory/runmini/x"}, "/sys/fs/cgroup/memory/runmini/x"},
		{hierarchy{mountpoint: "/sys/fs/cgroup/systemd", root: "/", controllers: []string{"name=systemd"}},
			map[string]string{"systemd": "/sys/fs/cgroup/systemd/runmini/x"}, "/sys/fs/cgroup/systemd/runmini/x"},
		{hierarchy{mountpoint: "/sys/fs/cgroup", root: "/", v2: true},
			map[string]string{"": "/sys/fs/cgroup/runmini/x"}, "/sys/fs/cgroup/runmini/x"},
	} {
		got, err := ownCgroupDir(tc.h, tc.paths, self)
		if err != nil || got != tc.want {
			t.Errorf("ownCgroupDir(%+v) = %q, %v; want %q", tc.h, got, err, tc.want)
		}
	}
	if _, err := ownCgroupDir(hierarchy{mountpoint: "/m", root: "/other", controllers: []string{"memory"}}, nil, self); err == nil {
		t.Error("cgroup outside the mount's root: no error")
	}
	if _, err := ownCgroupDir(hierarchy{mountpoint: "/p", root: "/", controllers: []string{"pids"}}, nil, self); err == nil {
		t.Error("unknown hierarchy: no error")
	}
}

// cgroupMounts must see what mountinfo.GetMounts sees.
func TestCgroupMountsMatchesMountinfo(t *testing.T) {
	want, err := mountinfo.GetMounts(mountinfo.FSTypeFilter("cgroup", "cgroup2"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := cgroupMounts()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("cgroupMounts: %d entries, mountinfo: %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Root != w.Root || g.Mountpoint != w.Mountpoint || g.FSType != w.FSType || g.VFSOptions != w.VFSOptions {
			t.Errorf("entry %d: got %+v, want %+v", i, *g, *w)
		}
	}
}
