package integration

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/runmini/runmini/tests/testutil"
)

// Every feature of the runtime spec that runmini implements, observed from
// inside a container: each subtest runs busybox scripts with `run` and
// checks what they print.

func hostLink(t *testing.T, path string) string {
	t.Helper()
	l, err := os.Readlink(path)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func removeNamespace(s *specs.Spec, typ specs.LinuxNamespaceType) {
	var kept []specs.LinuxNamespace
	for _, ns := range s.Linux.Namespaces {
		if ns.Type != typ {
			kept = append(kept, ns)
		}
	}
	s.Linux.Namespaces = kept
}

func setNamespacePath(s *specs.Spec, typ specs.LinuxNamespaceType, path string) {
	for i, ns := range s.Linux.Namespaces {
		if ns.Type == typ {
			s.Linux.Namespaces[i].Path = path
			return
		}
	}
	s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: typ, Path: path})
}

func TestNamespaces(t *testing.T) {
	t.Parallel()
	nsLinks := "for n in pid mnt uts ipc net cgroup user time; do echo \"$n $(readlink /proc/self/ns/$n)\"; done"

	// New namespaces: every one the spec lists differs from the host's,
	// and those it leaves out are the host's.
	t.Run("new and shared", func(t *testing.T) {
		t.Parallel()
		out := featScript(t, nsLinks, func(s *specs.Spec) {
			removeNamespace(s, specs.IPCNamespace)
		})
		got := map[string]string{}
		for _, l := range featLines(out) {
			n, link, _ := strings.Cut(l, " ")
			got[n] = link
		}
		for _, n := range []string{"pid", "mnt", "uts", "net", "cgroup"} {
			if host := hostLink(t, "/proc/self/ns/"+n); got[n] == "" || got[n] == host {
				t.Errorf("%s namespace inside is %q, want a new one (host %q)", n, got[n], host)
			}
		}
		for _, n := range []string{"ipc", "user", "time"} {
			if host := hostLink(t, "/proc/self/ns/"+n); got[n] != host {
				t.Errorf("%s namespace inside is %q, want the host's %q (not in the spec)", n, got[n], host)
			}
		}
	})

	t.Run("pid", func(t *testing.T) {
		t.Parallel()
		out := featScript(t, "echo $$; grep NSpid /proc/self/status; ls /proc | grep -c '^[0-9]'", nil)
		l := featLines(out)
		if len(l) != 3 || l[0] != "1" {
			t.Fatalf("pid namespace: printed %q, want the shell as pid 1", out)
		}
		// sh is 1, grep or ls runs beside it: nothing of the host is seen.
		if n, _ := strconv.Atoi(l[2]); n > 3 {
			t.Errorf("container sees %d processes in /proc, want only its own", n)
		}
	})

	t.Run("uts", func(t *testing.T) {
		t.Parallel()
		out := featScript(t, "hostname; cat /proc/sys/kernel/hostname", func(s *specs.Spec) { s.Hostname = "feat-uts" })
		if l := featLines(out); len(l) != 2 || l[0] != "feat-uts" || l[1] != "feat-uts" {
			t.Errorf("hostname printed %q, want feat-uts twice", out)
		}
		host, _ := os.Hostname()
		if host == "feat-uts" {
			t.Errorf("the container's hostname reached the host")
		}
	})

	t.Run("ipc", func(t *testing.T) {
		t.Parallel()
		// A new ipc namespace starts with no System V objects and its own
		// message queue filesystem.
		out := featScript(t, "cat /proc/sysvipc/shm | wc -l; readlink /proc/self/ns/ipc", nil)
		l := featLines(out)
		if len(l) != 2 || l[0] != "1" {
			t.Errorf("ipc namespace: /proc/sysvipc/shm has %q lines, want only the header", out)
		}
		if len(l) == 2 && l[1] == hostLink(t, "/proc/self/ns/ipc") {
			t.Errorf("ipc namespace is the host's")
		}
	})

	t.Run("net", func(t *testing.T) {
		t.Parallel()
		out := featScript(t, "ls /sys/class/net; echo ==; tail -n +3 /proc/net/dev | cut -d: -f1", nil)
		sys, proc, _ := strings.Cut(out, "==")
		if got := strings.Join(featLines(sys), " "); got != "lo" {
			t.Errorf("/sys/class/net lists %q, want only lo", got)
		}
		if got := strings.Join(featLines(proc), " "); got != "lo" {
			t.Errorf("/proc/net/dev lists %q, want only lo", got)
		}
	})

	t.Run("cgroup", func(t *testing.T) {
		t.Parallel()
		out := featScript(t, "cat /proc/self/cgroup", nil)
		lines := featLines(out)
		if len(lines) == 0 {
			t.Fatal("empty /proc/self/cgroup")
		}
		for _, l := range lines {
			if !strings.HasSuffix(l, ":/") {
				t.Errorf("/proc/self/cgroup line %q: want the namespace root /", l)
			}
		}
	})

	t.Run("user", func(t *testing.T) {
		t.Parallel()
		const hostID = 100000
		bundle := testutil.Bundle(t, featShell(
			"cat /proc/self/uid_map /proc/self/gid_map; id -u; id -g; stat -c '%u:%g' /bin/busybox; "+
				"touch /tmp/x && stat -c '%u:%g' /tmp/x; cat /proc/self/setgroups",
			func(s *specs.Spec) {
				s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
				s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: hostID, Size: 65536}}
				s.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: hostID, Size: 65536}}
				s.Root.Readonly = false
			}))
		chownTree(t, filepath.Join(bundle, "rootfs"), hostID)
		out := featRunBundle(t, bundle)
		l := featLines(out)
		want := []string{"0 100000 65536", "0 100000 65536", "0", "0", "0:0", "0:0", "allow"}
		if len(l) != len(want) {
			t.Fatalf("user namespace: printed %q, want %q", out, want)
		}
		for i := range want {
			if strings.Join(strings.Fields(l[i]), " ") != want[i] {
				t.Errorf("line %d: %q, want %q (all output %q)", i, l[i], want[i], out)
			}
		}
		// The file root made inside belongs to the mapped id on the host.
		var st unix.Stat_t
		if err := unix.Stat(filepath.Join(bundle, "rootfs/tmp/x"), &st); err != nil {
			t.Fatal(err)
		}
		if st.Uid != hostID || st.Gid != hostID {
			t.Errorf("file made by the container's root is %d:%d on the host, want %d:%d", st.Uid, st.Gid, hostID, hostID)
		}
	})

	t.Run("user host view", func(t *testing.T) {
		t.Parallel()
		const hostID = 200000
		bundle := testutil.Bundle(t, func(s *specs.Spec) {
			s.Process.Args = []string{"sleep", "600"}
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
			s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: hostID, Size: 1000}}
			s.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: hostID, Size: 1000}}
		})
		chownTree(t, filepath.Join(bundle, "rootfs"), hostID)
		_, st := featCreate(t, bundle)
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", st.Pid))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{"Uid", "Gid"} {
			want := strings.Repeat(strconv.Itoa(hostID)+" ", 4)
			if got := strings.Join(strings.Fields(featStatusField(t, string(status), f)), " ") + " "; got != want {
				t.Errorf("container init %s on the host = %q, want %q", f, got, want)
			}
		}
		if got, host := hostLink(t, fmt.Sprintf("/proc/%d/ns/user", st.Pid)), hostLink(t, "/proc/self/ns/user"); got == host {
			t.Errorf("container init is in the host's user namespace")
		}
	})

	t.Run("time", func(t *testing.T) {
		t.Parallel()
		if _, err := os.Stat("/proc/self/ns/time"); err != nil {
			t.Skip("kernel without time namespaces (CONFIG_TIME_NS): no /proc/self/ns/time")
		}
		const off = 10 * 365 * 24 * 3600 // ten years: far above any real uptime
		before := hostUptime(t)
		out := featScript(t, "cat /proc/self/timens_offsets; echo ==; cut -d' ' -f1 /proc/uptime", func(s *specs.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.TimeNamespace})
			s.Linux.TimeOffsets = map[string]specs.LinuxTimeOffset{
				"boottime":  {Secs: off},
				"monotonic": {Secs: off / 2, Nanosecs: 5},
			}
		})
		after := hostUptime(t)
		offsets, up, _ := strings.Cut(out, "==")
		got := map[string]string{}
		for _, l := range featLines(offsets) {
			f := strings.Fields(l)
			if len(f) == 3 {
				got[f[0]] = f[1] + " " + f[2]
			}
		}
		if got["boottime"] != fmt.Sprintf("%d 0", off) || got["monotonic"] != fmt.Sprintf("%d 5", off/2) {
			t.Errorf("timens_offsets: %q", offsets)
		}
		u, err := strconv.ParseFloat(strings.TrimSpace(up), 64)
		if err != nil {
			t.Fatalf("uptime %q: %v", up, err)
		}
		// Uptime is boottime: the container's lies between the host's
		// before and after, shifted by the offset.
		if u < before+off || u > after+off+1 {
			t.Errorf("uptime inside %.2f, want between %.2f and %.2f", u, before+off, after+off+1)
		}
	})

	t.Run("join net and uts by path", func(t *testing.T) {
		t.Parallel()
		holder := featStartHolder(t, "--net", "--uts")
		netPath := fmt.Sprintf("/proc/%d/ns/net", holder)
		utsPath := fmt.Sprintf("/proc/%d/ns/uts", holder)
		wantNet, wantUTS := hostLink(t, netPath), hostLink(t, utsPath)
		if wantNet == hostLink(t, "/proc/self/ns/net") {
			t.Fatal("holder did not get a net namespace of its own")
		}
		out := featScript(t, "readlink /proc/self/ns/net; readlink /proc/self/ns/uts; hostname", func(s *specs.Spec) {
			setNamespacePath(s, specs.NetworkNamespace, netPath)
			setNamespacePath(s, specs.UTSNamespace, utsPath)
			s.Hostname = "joined-uts"
		})
		l := featLines(out)
		if len(l) != 3 || l[0] != wantNet || l[1] != wantUTS || l[2] != "joined-uts" {
			t.Errorf("joined namespaces: printed %q, want %s, %s and joined-uts", out, wantNet, wantUTS)
		}
		// The hostname was set in the holder's namespace itself.
		nsOut, err := exec.Command("nsenter", "--uts="+utsPath, "hostname").CombinedOutput()
		if err != nil || strings.TrimSpace(string(nsOut)) != "joined-uts" {
			t.Errorf("hostname in the holder's uts namespace: %q, %v; want joined-uts", nsOut, err)
		}
		if host, _ := os.Hostname(); host == "joined-uts" {
			t.Errorf("the hostname reached the host's uts namespace")
		}
	})

	t.Run("join pid by path", func(t *testing.T) {
		t.Parallel()
		first := testutil.Bundle(t, func(s *specs.Spec) { s.Process.Args = []string{"sleep", "600"} })
		id, st := featCreate(t, first)
		featMust(t, "start", id)
		pidNS := fmt.Sprintf("/proc/%d/ns/pid", st.Pid)
		want := hostLink(t, pidNS)
		out := featScript(t, "readlink /proc/self/ns/pid; echo $$; cat /proc/1/cmdline | tr '\\0' ' '", func(s *specs.Spec) {
			setNamespacePath(s, specs.PIDNamespace, pidNS)
		})
		l := featLines(out)
		if len(l) != 3 || l[0] != want || l[1] == "1" || l[2] != "sleep 600" {
			t.Errorf("joined pid namespace: printed %q, want %s, a pid other than 1 and the first container's sleep as pid 1", out, want)
		}
		featMust(t, "kill", id, "KILL")
	})
}

// chownTree gives every file of dir to uid=gid=id, so that a container
// whose root is mapped to id owns its rootfs.
func chownTree(t *testing.T, dir string, id int) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		if err := os.Lchown(p, id+int(st.Uid), id+int(st.Gid)); err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatalf("chown rootfs: %v", err)
	}
}

func hostUptime(t *testing.T) float64 {
	t.Helper()
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		t.Fatal(err)
	}
	u, err := strconv.ParseFloat(strings.Fields(string(b))[0], 64)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestRootfsMounts(t *testing.T) {
	t.Parallel()

	t.Run("default mounts", func(t *testing.T) {
		t.Parallel()
		ms := featParseMountinfo(t, featScript(t, "cat /proc/self/mountinfo", nil))
		for _, c := range []struct {
			point, fstype string
			opts          []string
			super         map[string]string
		}{
			{"/", "", []string{"ro"}, nil},
			{"/proc", "proc", []string{"rw"}, nil},
			{"/dev", "tmpfs", []string{"nosuid"}, map[string]string{"mode": "755", "size": "65536k"}},
			{"/dev/pts", "devpts", []string{"nosuid", "noexec"}, map[string]string{"mode": "620", "ptmxmode": "666", "gid": "5"}},
			// tmpfs shows no mode when it is the default, 1777.
			{"/dev/shm", "tmpfs", []string{"nosuid", "noexec", "nodev"}, map[string]string{"mode": "", "size": "65536k"}},
			{"/dev/mqueue", "mqueue", []string{"nosuid", "noexec", "nodev"}, nil},
			{"/sys", "sysfs", []string{"ro", "nosuid", "noexec", "nodev"}, nil},
		} {
			m := featFindMount(t, ms, c.point)
			if c.fstype != "" && m.FSType != c.fstype {
				t.Errorf("%s: type %s, want %s", c.point, m.FSType, c.fstype)
			}
			for _, o := range c.opts {
				if !m.Opts[o] {
					t.Errorf("%s: options %v lack %s", c.point, m.Opts, o)
				}
			}
			for k, v := range c.super {
				if m.Super[k] != v {
					t.Errorf("%s: superblock option %s=%q, want %q (%v)", c.point, k, m.Super[k], v, m.Super)
				}
			}
		}
	})

	t.Run("cgroup v1 layout", func(t *testing.T) {
		t.Parallel()
		if _, err := os.Stat("/sys/fs/cgroup/memory/memory.limit_in_bytes"); err != nil {
			t.Skip("host has no cgroup v1 memory hierarchy: the v1 layout cannot be shown")
		}
		out := featScript(t, "cat /proc/self/mountinfo; echo '== ls'; ls /sys/fs/cgroup; echo '== mem'; cat /sys/fs/cgroup/memory/memory.limit_in_bytes", nil)
		ms := featParseMountinfo(t, strings.SplitN(out, "== ls", 2)[0])
		top := featFindMount(t, ms, "/sys/fs/cgroup")
		if top.FSType != "tmpfs" {
			t.Errorf("/sys/fs/cgroup is %s, want a tmpfs holding the v1 hierarchies", top.FSType)
		}
		for _, ctrl := range []string{"memory", "cpu", "pids", "devices", "freezer"} {
			if _, err := os.Stat("/sys/fs/cgroup/" + ctrl); err != nil {
				continue
			}
			m := featFindMount(t, ms, "/sys/fs/cgroup/"+ctrl)
			if m.FSType != "cgroup" {
				t.Errorf("/sys/fs/cgroup/%s is %s, want cgroup", ctrl, m.FSType)
			}
			if _, ok := m.Super[ctrl]; !ok {
				t.Errorf("/sys/fs/cgroup/%s has superblock options %v, want %s", ctrl, m.Super, ctrl)
			}
			if !m.Opts["ro"] || !m.Opts["nosuid"] || !m.Opts["nodev"] || !m.Opts["noexec"] {
				t.Errorf("/sys/fs/cgroup/%s options %v, want ro,nosuid,nodev,noexec", ctrl, m.Opts)
			}
			// With a cgroup namespace the container sees its own cgroup
			// as the root of each hierarchy.
			if m.Root != "/" {
				t.Errorf("/sys/fs/cgroup/%s shows %s, want the namespace root /", ctrl, m.Root)
			}
		}
		if ls := featSection(out, "ls"); !strings.Contains(ls, "memory") {
			t.Errorf("ls /sys/fs/cgroup: %q", ls)
		}
		if mem := strings.TrimSpace(featSection(out, "mem")); mem == "" {
			t.Errorf("memory.limit_in_bytes unreadable inside")
		}
	})

	t.Run("tmpfs options", func(t *testing.T) {
		t.Parallel()
		out := featScript(t, "cat /proc/self/mountinfo; echo '== stat'; stat -c '%a %u %g' /run/t; echo '== full'; "+
			"dd if=/dev/zero of=/run/t/f bs=1k count=2048 2>&1 | grep -c 'No space left'", func(s *specs.Spec) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/run/t", Type: "tmpfs", Source: "tmpfs",
				Options: []string{"size=1m", "mode=0710", "uid=1000", "gid=1000", "nodev"}})
			// dd needs /dev/zero, and the owner of the tmpfs: the
			// container's root has no CAP_DAC_OVERRIDE.
			s.Linux.Resources.Devices = allowDefaultDevices()
			s.Process.User = specs.User{UID: 1000, GID: 1000}
		})
		ms := featParseMountinfo(t, strings.SplitN(out, "== stat", 2)[0])
		m := featFindMount(t, ms, "/run/t")
		if m.FSType != "tmpfs" || m.Super["size"] != "1024k" || m.Super["mode"] != "710" || !m.Opts["nodev"] {
			t.Errorf("/run/t: %+v, want tmpfs size=1024k mode=710 nodev", m)
		}
		if got := strings.TrimSpace(featSection(out, "stat")); got != "710 1000 1000" {
			t.Errorf("stat /run/t = %q, want 710 1000 1000", got)
		}
		if got := strings.TrimSpace(featSection(out, "full")); got != "1" {
			t.Errorf("writing 2 MiB to a 1 MiB tmpfs: %q, want ENOSPC", got)
		}
	})

	t.Run("bind options", func(t *testing.T) {
		t.Parallel()
		src := hostDir(t)
		if err := os.WriteFile(filepath.Join(src, "file"), []byte("top\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		sub := filepath.Join(src, "sub")
		mountTmpfs(t, sub)
		if err := os.WriteFile(filepath.Join(sub, "inner"), []byte("inner\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		script := "cat /proc/self/mountinfo; echo '== read'; cat /b/file /r/sub/inner; ls /b/sub | wc -l; " +
			"echo '== write'; touch /b/new 2>&1; touch /r/sub/new 2>&1; touch /rw/new && echo rw-ok; " +
			"echo '== exec'; /b/file 2>&1; echo $?"
		out := featScript(t, script, func(s *specs.Spec) {
			s.Mounts = append(s.Mounts,
				specs.Mount{Destination: "/b", Type: "bind", Source: src, Options: []string{"bind", "ro", "nosuid", "nodev", "noexec"}},
				specs.Mount{Destination: "/r", Type: "bind", Source: src, Options: []string{"rbind", "rro", "nosuid"}},
				specs.Mount{Destination: "/rw", Type: "bind", Source: src, Options: []string{"bind"}},
			)
		})
		ms := featParseMountinfo(t, strings.SplitN(out, "== read", 2)[0])
		b := featFindMount(t, ms, "/b")
		for _, o := range []string{"ro", "nosuid", "nodev", "noexec"} {
			if !b.Opts[o] {
				t.Errorf("/b options %v lack %s", b.Opts, o)
			}
		}
		for _, p := range []string{"/b/sub", "/rw/sub"} {
			for _, m := range ms {
				if m.Point == p {
					t.Errorf("a bind without rbind brought the submount %s along", p)
				}
			}
		}
		if r := featFindMount(t, ms, "/r/sub"); !r.Opts["ro"] {
			t.Errorf("/r/sub options %v: rro must make the submount read-only too", r.Opts)
		}
		if r := featFindMount(t, ms, "/r"); !r.Opts["ro"] || !r.Opts["nosuid"] {
			t.Errorf("/r options %v, want ro,nosuid", r.Opts)
		}
		if rw := featFindMount(t, ms, "/rw"); rw.Opts["ro"] {
			t.Errorf("/rw options %v: want read-write", rw.Opts)
		}
		if got := featLines(featSection(out, "read")); strings.Join(got, ",") != "top,inner,0" {
			t.Errorf("reading the binds: %q, want top, inner and an empty /b/sub", got)
		}
		w := featSection(out, "write")
		if strings.Count(w, "Read-only file system") != 2 || !strings.Contains(w, "rw-ok") {
			t.Errorf("writes: %q, want two read-only errors and rw-ok", w)
		}
		if e := featSection(out, "exec"); !strings.Contains(e, "Permission denied") {
			t.Errorf("executing from a noexec bind: %q, want permission denied", e)
		}
	})

	// A relative bind source is the bundle's (runtime spec), however bind
	// is asked for; config.json goes to the init as written.
	t.Run("bind source relative to the bundle", func(t *testing.T) {
		t.Parallel()
		bundle := testutil.Bundle(t, featShell("cat /rel/file /rrel/file /opt/file", func(s *specs.Spec) {
			s.Mounts = append(s.Mounts,
				specs.Mount{Destination: "/rel", Type: "bind", Source: "data", Options: []string{"ro"}},
				specs.Mount{Destination: "/rrel", Type: "rbind", Source: "./data/../data"},
				specs.Mount{Destination: "/opt", Type: "none", Source: "data", Options: []string{"rbind", "ro"}},
			)
		}))
		if err := os.Mkdir(filepath.Join(bundle, "data"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(bundle, "data", "file"), []byte("in-bundle\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if got := featLines(featRunBundle(t, bundle)); strings.Join(got, ",") != "in-bundle,in-bundle,in-bundle" {
			t.Errorf("reading the binds: %q, want the bundle's file three times", got)
		}
	})

	t.Run("bind propagation", func(t *testing.T) {
		t.Parallel()
		src := hostDir(t)
		mountTmpfs(t, src)
		if err := unix.Mount("", src, "", unix.MS_SHARED, ""); err != nil {
			t.Fatalf("make %s shared: %v", src, err)
		}
		out := featScript(t, "cat /proc/self/mountinfo", func(s *specs.Spec) {
			for _, c := range []struct{ dest, prop string }{
				{"/p/shared", "rshared"}, {"/p/slave", "rslave"}, {"/p/private", "rprivate"}, {"/p/unbindable", "runbindable"},
			} {
				s.Mounts = append(s.Mounts, specs.Mount{Destination: c.dest, Type: "bind", Source: src,
					Options: []string{"rbind", c.prop}})
			}
		})
		ms := featParseMountinfo(t, out)
		if m := featFindMount(t, ms, "/p/shared"); !m.hasOptional("shared:") {
			t.Errorf("/p/shared optional fields %q, want shared:N", m.Optional)
		}
		if m := featFindMount(t, ms, "/p/slave"); !m.hasOptional("master:") || m.hasOptional("shared:") {
			t.Errorf("/p/slave optional fields %q, want master:N only", m.Optional)
		}
		if m := featFindMount(t, ms, "/p/private"); len(m.Optional) != 0 {
			t.Errorf("/p/private optional fields %q, want none", m.Optional)
		}
		if m := featFindMount(t, ms, "/p/unbindable"); !m.hasOptional("unbindable") {
			t.Errorf("/p/unbindable optional fields %q, want unbindable", m.Optional)
		}
	})

	t.Run("rootfsPropagation", func(t *testing.T) {
		t.Parallel()
		for _, c := range []struct {
			prop  string
			check func(featMount) bool
		}{
			{"shared", func(m featMount) bool { return m.hasOptional("shared:") }},
			{"rshared", func(m featMount) bool { return m.hasOptional("shared:") }},
			{"slave", func(m featMount) bool { return m.hasOptional("master:") && !m.hasOptional("shared:") }},
			{"rslave", func(m featMount) bool { return m.hasOptional("master:") && !m.hasOptional("shared:") }},
			{"private", func(m featMount) bool { return len(m.Optional) == 0 }},
			{"rprivate", func(m featMount) bool { return len(m.Optional) == 0 }},
			{"unbindable", func(m featMount) bool { return m.hasOptional("unbindable") }},
			{"runbindable", func(m featMount) bool { return m.hasOptional("unbindable") }},
		} {
			t.Run(c.prop, func(t *testing.T) {
				t.Parallel()
				bundle := testutil.Bundle(t, featShell("cat /proc/self/mountinfo", func(s *specs.Spec) {
					s.Linux.RootfsPropagation = c.prop
				}))
				sharedParent(t, bundle)
				ms := featParseMountinfo(t, featRunBundle(t, bundle))
				if m := featFindMount(t, ms, "/"); !c.check(m) {
					t.Errorf("rootfsPropagation %s: / has optional fields %q", c.prop, m.Optional)
				}
			})
		}
	})

	t.Run("readonly root", func(t *testing.T) {
		t.Parallel()
		for _, ro := range []bool{true, false} {
			t.Run(strconv.FormatBool(ro), func(t *testing.T) {
				t.Parallel()
				out := featScript(t, "awk '$5 == \"/\"' /proc/self/mountinfo; touch /newfile 2>&1; echo rc=$?", func(s *specs.Spec) {
					s.Root.Readonly = ro
				})
				l := featLines(out)
				if len(l) < 2 {
					t.Fatalf("printed %q", out)
				}
				m := featParseMountinfo(t, l[0])[0]
				if m.Opts["ro"] != ro {
					t.Errorf("readonly=%v: / options %v", ro, m.Opts)
				}
				wrote := l[len(l)-1] == "rc=0"
				if wrote == ro || (ro && !strings.Contains(out, "Read-only file system")) {
					t.Errorf("readonly=%v: touch /newfile printed %q", ro, l[1:])
				}
			})
		}
	})

	t.Run("no-pivot", func(t *testing.T) {
		t.Parallel()
		bundle := testutil.Bundle(t, featShell("cat /etc/hostname; ls /etc/marker; ls /", nil))
		if err := os.WriteFile(filepath.Join(bundle, "rootfs/etc/marker"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		out := featRunBundle(t, bundle, "--no-pivot")
		l := featLines(out)
		if len(l) < 3 || l[0] != "runmini" || l[1] != "/etc/marker" || !strings.Contains(out, "bin") {
			t.Errorf("--no-pivot: printed %q, want the bundle's rootfs as /", out)
		}
	})

	t.Run("default devices", func(t *testing.T) {
		t.Parallel()
		out := featScript(t, "for d in null zero full random urandom tty; do stat -c '%n %F %t:%T %a' /dev/$d; done; "+
			"for l in fd stdin stdout stderr ptmx; do echo \"/dev/$l $(readlink /dev/$l)\"; done", nil)
		want := []string{
			"/dev/null character special file 1:3 666",
			"/dev/zero character special file 1:5 666",
			"/dev/full character special file 1:7 666",
			"/dev/random character special file 1:8 666",
			"/dev/urandom character special file 1:9 666",
			"/dev/tty character special file 5:0 666",
			"/dev/fd /proc/self/fd",
			"/dev/stdin /proc/self/fd/0",
			"/dev/stdout /proc/self/fd/1",
			"/dev/stderr /proc/self/fd/2",
			"/dev/ptmx pts/ptmx",
		}
		if got := featLines(out); strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("/dev:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	})

	t.Run("default devices usable", func(t *testing.T) {
		t.Parallel()
		// The spec starts from "deny all" (as `runc spec` writes it); the
		// runtime must still let the container use the default devices.
		out := featScript(t, "echo x > /dev/null && echo null; head -c 3 /dev/zero | wc -c; head -c 3 /dev/urandom | wc -c; "+
			"echo x 2>&1 > /dev/full | grep -c 'No space'; true", nil)
		if got := strings.Join(featLines(out), ","); got != "null,3,3,1" {
			t.Errorf("default devices under a deny-all device cgroup: %q, want null,3,3,1 (/dev/null writable, zero and urandom readable, full reports ENOSPC)", got)
		}
	})

	t.Run("spec devices", func(t *testing.T) {
		t.Parallel()
		mode := os.FileMode(0o640)
		uid, gid := uint32(1000), uint32(100)
		bundle := testutil.Bundle(t, featShell("stat -c '%n %F %t:%T %a %u %g' /dev/feat-full /dev/sub/feat-null", func(s *specs.Spec) {
			s.Linux.Devices = []specs.LinuxDevice{
				{Path: "/dev/feat-full", Type: "c", Major: 1, Minor: 7, FileMode: &mode, UID: &uid, GID: &gid},
				{Path: "/dev/sub/feat-null", Type: "c", Major: 1, Minor: 3},
			}
		}))
		out := featRunBundle(t, bundle)
		l := featLines(out)
		want := []string{"/dev/feat-full character special file 1:7 640 1000 100", "/dev/sub/feat-null character special file 1:3"}
		if len(l) != 2 || l[0] != want[0] || !strings.HasPrefix(l[1], want[1]) {
			t.Errorf("spec devices: %q, want %q", l, want)
		}
	})

	t.Run("maskedPaths", func(t *testing.T) {
		t.Parallel()
		out := featScript(t, "cat /proc/self/mountinfo; echo '== kcore'; wc -c < /proc/keys; echo '== firmware'; ls -A /sys/firmware | wc -l; "+
			"echo '== hostname'; wc -c < /etc/hostname; echo '== write'; touch /sys/firmware/x 2>&1 | grep -c 'Read-only'",
			func(s *specs.Spec) { s.Linux.MaskedPaths = append(s.Linux.MaskedPaths, "/etc/hostname") })
		ms := featParseMountinfo(t, strings.SplitN(out, "== kcore", 2)[0])
		if m := featFindMount(t, ms, "/sys/firmware"); m.FSType != "tmpfs" || !m.Opts["ro"] {
			t.Errorf("/sys/firmware: %+v, want a read-only tmpfs over it", m)
		}
		if m := featFindMount(t, ms, "/proc/keys"); m.FSType == "proc" {
			t.Errorf("/proc/keys is not covered: %+v", m)
		}
		for name, want := range map[string]string{"kcore": "0", "firmware": "0", "hostname": "0", "write": "1"} {
			if got := strings.TrimSpace(featSection(out, name)); got != want {
				t.Errorf("masked %s: %q, want %q", name, got, want)
			}
		}
	})

	t.Run("readonlyPaths", func(t *testing.T) {
		t.Parallel()
		out := featScript(t, "cat /proc/self/mountinfo; echo '== write'; touch /var/x 2>&1; (echo 1 > /proc/sys/kernel/domainname) 2>&1; "+
			"touch /tmp/x && echo tmp-ok", func(s *specs.Spec) {
			s.Root.Readonly = false
			s.Linux.ReadonlyPaths = append(s.Linux.ReadonlyPaths, "/var")
		})
		ms := featParseMountinfo(t, strings.SplitN(out, "== write", 2)[0])
		for _, p := range []string{"/var", "/proc/sys", "/proc/bus", "/proc/sysrq-trigger"} {
			if _, err := os.Stat(p); err != nil {
				continue // not on this kernel (e.g. no CONFIG_MAGIC_SYSRQ): nothing to cover
			}
			if m := featFindMount(t, ms, p); !m.Opts["ro"] {
				t.Errorf("%s options %v, want ro", p, m.Opts)
			}
		}
		w := featSection(out, "write")
		if strings.Count(w, "Read-only file system") != 2 || !strings.Contains(w, "tmp-ok") {
			t.Errorf("writes: %q, want /var and /proc/sys read-only and /tmp writable", w)
		}
	})
}

// sharedParent makes the mount holding bundle a shared one (a bind of the
// bundle onto itself), as on hosts where / is shared (systemd's default):
// a slave root needs a master to show. It is undone before the runtime's
// leak check runs.
func sharedParent(t *testing.T, bundle string) {
	t.Helper()
	// Cleanups run last-in first-out: registering the runtime first makes
	// the unmount below run before its leak check.
	testutil.Runtime(t)
	if err := unix.Mount(bundle, bundle, "", unix.MS_BIND, ""); err != nil {
		t.Fatalf("bind %s: %v", bundle, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(bundle, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", bundle, err)
		}
	})
	if err := unix.Mount("", bundle, "", unix.MS_SHARED, ""); err != nil {
		t.Fatalf("make %s shared: %v", bundle, err)
	}
}

// allowDefaultDevices is "deny all" plus explicit allows for the default
// devices, as containerd writes them.
func allowDefaultDevices() []specs.LinuxDeviceCgroup {
	rules := []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}
	for _, mm := range [][2]int64{{1, 3}, {1, 5}, {1, 7}, {1, 8}, {1, 9}, {5, 0}} {
		major, minor := mm[0], mm[1]
		rules = append(rules, specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: &major, Minor: &minor, Access: "rwm"})
	}
	return rules
}

// hostDir returns a new directory on the host, readable by containers.
func hostDir(t *testing.T) string {
	t.Helper()
	d := t.TempDir()
	for _, p := range []string{filepath.Dir(d), d} {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

// mountTmpfs mounts a small tmpfs at dir on the host (created if missing)
// and unmounts it when t ends.
func mountTmpfs(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m,mode=0755"); err != nil {
		t.Fatalf("mount tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
}

func TestProcess(t *testing.T) {
	t.Parallel()

	t.Run("args", func(t *testing.T) {
		t.Parallel()
		out := featRun(t, func(s *specs.Spec) {
			s.Process.Args = []string{"sh", "-c", `printf '[%s]' "$0" "$@"`, "zero", "one two", "", "three"}
		})
		if want := "[zero][one two][][three]"; out != want {
			t.Errorf("args: %q, want %q", out, want)
		}
	})

	t.Run("env", func(t *testing.T) {
		t.Parallel()
		env := []string{"PATH=/bin", "FEAT=a b=c", "EMPTY="}
		out := featRun(t, func(s *specs.Spec) {
			s.Process.Args = []string{"env"}
			s.Process.Env = env
		})
		var got []string
		for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
			// runc adds HOME from /etc/passwd when the spec has none.
			if !strings.HasPrefix(l, "HOME=") {
				got = append(got, l)
			}
		}
		if strings.Join(got, "|") != strings.Join(env, "|") {
			t.Errorf("env: %q, want exactly %q (nothing of the runtime's)", got, env)
		}
	})

	t.Run("cwd", func(t *testing.T) {
		t.Parallel()
		out := featScript(t, "pwd", func(s *specs.Spec) { s.Process.Cwd = "/home/user" })
		if strings.TrimSpace(out) != "/home/user" {
			t.Errorf("cwd: %q, want /home/user", out)
		}
	})

	t.Run("user", func(t *testing.T) {
		t.Parallel()
		umask := uint32(0o027)
		out := featScript(t, "id -u; id -g; id -G; umask; grep -E '^(Uid|Gid|Groups):' /proc/self/status; touch /tmp/f; stat -c '%a %u %g' /tmp/f",
			func(s *specs.Spec) {
				s.Root.Readonly = false
				s.Process.User = specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{10, 20}, Umask: &umask}
			})
		l := featLines(out)
		want := []string{"1000", "1000", "1000 10 20", "0027", "Uid: 1000 1000 1000 1000", "Gid: 1000 1000 1000 1000", "Groups: 10 20", "640 1000 1000"}
		if len(l) != len(want) {
			t.Fatalf("user: printed %q, want %q", l, want)
		}
		for i := range want {
			if strings.Join(strings.Fields(l[i]), " ") != want[i] {
				t.Errorf("user: line %q, want %q", l[i], want[i])
			}
		}
	})

	t.Run("capabilities", func(t *testing.T) {
		t.Parallel()
		// The last execve recomputes the sets: for a non-root user the
		// permitted and effective sets become the ambient set, the others
		// stay as the spec says.
		out := featRun(t, func(s *specs.Spec) {
			s.Process.Args = []string{"cat", "/proc/self/status"}
			s.Process.User = specs.User{UID: 1000, GID: 1000}
			s.Process.Capabilities = &specs.LinuxCapabilities{
				Bounding:    []string{"CAP_CHOWN", "CAP_KILL", "CAP_SETUID", "CAP_NET_RAW"},
				Permitted:   []string{"CAP_CHOWN", "CAP_KILL"},
				Effective:   []string{"CAP_CHOWN", "CAP_KILL"},
				Inheritable: []string{"CAP_KILL", "CAP_NET_RAW"},
				Ambient:     []string{"CAP_KILL"},
			}
		})
		const chown, kill, setuid, netRaw = 1 << 0, 1 << 5, 1 << 7, 1 << 13
		for field, want := range map[string]uint64{
			"CapBnd": chown | kill | setuid | netRaw,
			"CapInh": kill | netRaw,
			"CapAmb": kill,
			"CapPrm": kill,
			"CapEff": kill,
		} {
			if got := featStatusField(t, out, field); got != fmt.Sprintf("%016x", want) {
				t.Errorf("%s = %s, want %016x", field, got, want)
			}
		}

		// For root the execve makes permitted and effective the bounding set.
		out = featRun(t, func(s *specs.Spec) {
			s.Process.Args = []string{"cat", "/proc/self/status"}
			s.Process.Capabilities = &specs.LinuxCapabilities{
				Bounding:  []string{"CAP_CHOWN", "CAP_SYS_CHROOT"},
				Permitted: []string{"CAP_CHOWN", "CAP_SYS_CHROOT"},
				Effective: []string{"CAP_CHOWN", "CAP_SYS_CHROOT"},
			}
		})
		const chroot = 1 << 18
		for field, want := range map[string]uint64{
			"CapBnd": chown | chroot, "CapPrm": chown | chroot, "CapEff": chown | chroot, "CapInh": 0, "CapAmb": 0,
		} {
			if got := featStatusField(t, out, field); got != fmt.Sprintf("%016x", want) {
				t.Errorf("root: %s = %s, want %016x", field, got, want)
			}
		}
	})

	t.Run("rlimits", func(t *testing.T) {
		t.Parallel()
		out := featScript(t, "cat /proc/self/limits; echo '== ulimit'; ulimit -n; ulimit -Hn", func(s *specs.Spec) {
			s.Process.Rlimits = []specs.POSIXRlimit{
				{Type: "RLIMIT_NOFILE", Soft: 512, Hard: 768},
				{Type: "RLIMIT_CORE", Soft: 4096, Hard: 8192},
				{Type: "RLIMIT_MSGQUEUE", Soft: 1000, Hard: 2000},
			}
		})
		limits := map[string]string{}
		for _, l := range featLines(strings.SplitN(out, "== ulimit", 2)[0]) {
			for _, name := range []string{"Max open files", "Max core file size", "Max msgqueue size"} {
				if strings.HasPrefix(l, name) {
					limits[name] = strings.Join(strings.Fields(strings.TrimPrefix(l, name))[:2], " ")
				}
			}
		}
		for name, want := range map[string]string{"Max open files": "512 768", "Max core file size": "4096 8192", "Max msgqueue size": "1000 2000"} {
			if limits[name] != want {
				t.Errorf("%s: %q, want %q", name, limits[name], want)
			}
		}
		if got := strings.Join(featLines(featSection(out, "ulimit")), " "); got != "512 768" {
			t.Errorf("ulimit -n, -Hn: %q, want 512 768", got)
		}
	})

	t.Run("noNewPrivileges", func(t *testing.T) {
		t.Parallel()
		for _, nnp := range []bool{true, false} {
			out := featScript(t, "grep NoNewPrivs /proc/self/status", func(s *specs.Spec) { s.Process.NoNewPrivileges = nnp })
			want := "0"
			if nnp {
				want = "1"
			}
			if got := featStatusField(t, out, "NoNewPrivs"); got != want {
				t.Errorf("noNewPrivileges=%v: NoNewPrivs %s", nnp, got)
			}
		}
	})

	t.Run("oomScoreAdj", func(t *testing.T) {
		t.Parallel()
		adj := 423
		out := featScript(t, "cat /proc/self/oom_score_adj", func(s *specs.Spec) { s.Process.OOMScoreAdj = &adj })
		if strings.TrimSpace(out) != "423" {
			t.Errorf("oom_score_adj: %q, want 423", out)
		}
	})

	t.Run("hostname and domainname", func(t *testing.T) {
		t.Parallel()
		out := featScript(t, "hostname; cat /proc/sys/kernel/domainname", func(s *specs.Spec) {
			s.Hostname = "feat-host"
			s.Domainname = "feat.example"
		})
		if got := strings.Join(featLines(out), " "); got != "feat-host feat.example" {
			t.Errorf("hostname, domainname: %q", got)
		}
	})

	t.Run("sysctl", func(t *testing.T) {
		t.Parallel()
		hostTTL := readHost(t, "/proc/sys/net/ipv4/ip_default_ttl")
		hostFwd := readHost(t, "/proc/sys/net/ipv4/ip_forward")
		hostShm := readHost(t, "/proc/sys/kernel/shmmax")
		fwd := "1"
		if hostFwd == "1" {
			fwd = "0"
		}
		out := featScript(t, "cat /proc/sys/net/ipv4/ip_forward /proc/sys/net/ipv4/ip_default_ttl /proc/sys/kernel/shmmax", func(s *specs.Spec) {
			s.Linux.Sysctl = map[string]string{
				"net.ipv4.ip_forward":     fwd,
				"net.ipv4.ip_default_ttl": "42",
				"kernel.shmmax":           "12345678",
			}
		})
		if got := strings.Join(featLines(out), " "); got != fwd+" 42 12345678" {
			t.Errorf("sysctls inside: %q, want %s 42 12345678", got, fwd)
		}
		for p, want := range map[string]string{
			"/proc/sys/net/ipv4/ip_default_ttl": hostTTL, "/proc/sys/net/ipv4/ip_forward": hostFwd, "/proc/sys/kernel/shmmax": hostShm,
		} {
			if got := readHost(t, p); got != want {
				t.Errorf("host %s changed from %s to %s", p, want, got)
			}
		}
	})
}

func readHost(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}
