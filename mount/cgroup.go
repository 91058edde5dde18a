package mount

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"path"
	"path/filepath"
	"strings"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// hierarchy is one cgroup filesystem mounted on the host.
type hierarchy struct {
	name        string // directory name in the container: base of the mountpoint
	mountpoint  string
	root        string // cgroup path the mount shows (mountinfo's root)
	v2          bool
	controllers []string // v1: subsystems and "name=..." entries
}

// hostHierarchies lists the cgroup mounts outside the rootfs, one per
// directory name. self is /proc/self/cgroup (readSelfCgroup).
func hostHierarchies(rootfs string, self map[string]string) ([]hierarchy, error) {
	infos, err := cgroupMounts()
	if err != nil {
		return nil, err
	}
	known := subsystems(self)
	seen := map[string]bool{}
	var hs []hierarchy
	for _, info := range infos {
		if info.Mountpoint == rootfs || strings.HasPrefix(info.Mountpoint, rootfs+"/") {
			continue
		}
		h := hierarchy{
			name:       filepath.Base(info.Mountpoint),
			mountpoint: info.Mountpoint,
			root:       info.Root,
			v2:         info.FSType == "cgroup2",
		}
		if !h.v2 {
			h.controllers = v1Controllers(info.VFSOptions, known)
		}
		if seen[h.name] {
			continue
		}
		seen[h.name] = true
		hs = append(hs, h)
	}
	return hs, nil
}

// cgroupMounts reads the cgroup and cgroup2 entries of
// /proc/self/mountinfo. It is a plain read and a split of the few lines
// needed: mountinfo.GetMounts costs several times the kernel's own
// rendering of the file, on the start path.
func cgroupMounts() ([]*mountinfo.Info, error) {
	data, err := readProcFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	var infos []*mountinfo.Info
	for len(data) > 0 {
		line := data
		if i := strings.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = ""
		}
		// id parent major:minor root mountpoint options [optional...] - fstype source superoptions
		sep := strings.Index(line, " - ")
		if sep < 0 {
			continue
		}
		post := strings.Fields(line[sep+3:])
		if len(post) < 3 || (post[0] != "cgroup" && post[0] != "cgroup2") {
			continue
		}
		pre := strings.Fields(line[:sep])
		if len(pre) < 6 {
			return nil, fmt.Errorf("parse /proc/self/mountinfo: bad line %q", line)
		}
		infos = append(infos, &mountinfo.Info{
			Root:       unescapeMountinfo(pre[3]),
			Mountpoint: unescapeMountinfo(pre[4]),
			FSType:     post[0],
			VFSOptions: post[2],
		})
	}
	return infos, nil
}

// unescapeMountinfo undoes the kernel's octal escapes (\040 for a space,
// \011, \012, \134) in a mountinfo path.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, "\\") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

// readProcFile reads a whole procfs file with plain syscalls (no poller
// registration, a buffer sized for the usual case).
func readProcFile(name string) (string, error) {
	fd, err := unix.Open(name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", fmt.Errorf("open %s: %w", name, err)
	}
	defer unix.Close(fd)
	buf := make([]byte, 0, 8192)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := unix.Read(fd, buf[len(buf):cap(buf)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("read %s: %w", name, err)
		}
		if n == 0 {
			return string(buf), nil
		}
		buf = buf[:len(buf)+n]
	}
}

// v1Controllers picks the subsystems out of a cgroup mount's super options.
func v1Controllers(vfsOptions string, known map[string]bool) []string {
	var cs []string
	for _, o := range strings.Split(vfsOptions, ",") {
		if known[o] || strings.HasPrefix(o, "name=") {
			cs = append(cs, o)
		}
	}
	return cs
}

// subsystems are the v1 subsystem names attached to a hierarchy, as
// /proc/self/cgroup lists them: it has a line for every hierarchy, so
// every subsystem a v1 mount's options can name is there, and nothing
// else in those options (xattr, noprefix, ...) ever is. This spares a
// read of /proc/cgroups.
func subsystems(self map[string]string) map[string]bool {
	known := map[string]bool{}
	for k := range self {
		for _, c := range strings.Split(k, ",") {
			if c != "" && !strings.HasPrefix(c, "name=") {
				known[c] = true
			}
		}
	}
	return known
}

// parseProcCgroup parses /proc/self/cgroup: controller list ("" for v2) to path.
func parseProcCgroup(r io.Reader) (map[string]string, error) {
	paths := map[string]string{}
	s := bufio.NewScanner(r)
	for s.Scan() {
		parts := strings.SplitN(s.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		paths[parts[1]] = parts[2]
	}
	if err := s.Err(); err != nil {
		return nil, fmt.Errorf("read /proc/self/cgroup: %w", err)
	}
	return paths, nil
}

// ownCgroupDir is the host directory of the container's cgroup in h: from
// CgroupPaths when the manager gave one, else the cgroup the init is in.
func ownCgroupDir(h hierarchy, cgroupPaths map[string]string, self map[string]string) (string, error) {
	if h.v2 {
		for _, k := range []string{"", "unified"} {
			if p, ok := cgroupPaths[k]; ok && p != "" {
				return p, nil
			}
		}
	} else {
		for _, c := range h.controllers {
			if p, ok := cgroupPaths[c]; ok && p != "" {
				return p, nil
			}
			if n, ok := strings.CutPrefix(c, "name="); ok {
				if p, ok := cgroupPaths[n]; ok && p != "" {
					return p, nil
				}
			}
		}
	}
	key := ""
	if !h.v2 {
		key = strings.Join(h.controllers, ",")
	}
	cg, ok := self[key]
	if !ok && !h.v2 {
		// The kernel lists a hierarchy's subsystems in its own order.
		for k, v := range self {
			if k != "" && sameSet(strings.Split(k, ","), h.controllers) {
				cg, ok = v, true
				break
			}
		}
	}
	if !ok {
		return "", fmt.Errorf("no cgroup of the container in hierarchy %s", h.mountpoint)
	}
	rel, err := filepath.Rel(h.root, cg)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", fmt.Errorf("cgroup %s is outside of %s (root %s)", cg, h.mountpoint, h.root)
	}
	return filepath.Join(h.mountpoint, rel), nil
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	m := map[string]bool{}
	for _, x := range a {
		m[x] = true
	}
	for _, x := range b {
		if !m[x] {
			return false
		}
	}
	return true
}

func readSelfCgroup() (map[string]string, error) {
	data, err := readProcFile("/proc/self/cgroup")
	if err != nil {
		return nil, err
	}
	return parseProcCgroup(strings.NewReader(data))
}

// mountCgroup mounts the "cgroup" spec mount. On a v2 host it is the
// unified hierarchy; on v1 and hybrid hosts a tmpfs holding one directory
// per hierarchy, as on the host. Without a cgroup namespace each holds a
// bind of the container's own cgroup directory, so the container sees
// neither its ancestors nor its siblings; with one, the namespace's root
// is mounted from cgroupfs.
func (r *root) mountCgroup(c *Config, m *specMount) error {
	self, err := readSelfCgroup()
	if err != nil {
		return fmt.Errorf("mount %s: %w", m, err)
	}
	hs, err := hostHierarchies(c.Rootfs, self)
	if err != nil {
		return fmt.Errorf("mount %s: %w", m, err)
	}
	var v1 bool
	var unified *hierarchy
	for i := range hs {
		if !hs[i].v2 {
			v1 = true
		} else if unified == nil || hs[i].mountpoint == "/sys/fs/cgroup" {
			unified = &hs[i]
		}
	}
	switch {
	case v1:
		return r.mountCgroupV1(c, m, hs, self)
	case unified != nil:
		return r.mountCgroupHierarchy(c, m, m.dest, *unified, self, nil)
	}
	return fmt.Errorf("mount %s: no cgroup filesystem is mounted on the host", m)
}

func (r *root) mountCgroupV1(c *Config, m *specMount, hs []hierarchy, self map[string]string) error {
	target, err := r.mkdirAll(m.dest)
	if err != nil {
		return fmt.Errorf("mount %s: %w", m, err)
	}
	defer target.Close()
	p, err := r.containerPath(target)
	if err != nil {
		return fmt.Errorf("mount %s: %w", m, err)
	}
	if err := checkProcPath(p, m, false); err != nil {
		return err
	}
	// Read-only comes last: the directories must be made in it first.
	if err := mountAt("tmpfs", target, "tmpfs", m.opts.flags&^unix.MS_RDONLY&^unix.MS_REC, "mode=755"); err != nil {
		return fmt.Errorf("mount tmpfs for %s: %w", m, err)
	}
	top, err := r.reopenMount(m.dest, target)
	if err != nil {
		return fmt.Errorf("mount %s: %w", m, err)
	}
	defer top.Close()
	topID, err := mountID(top)
	if err != nil {
		return fmt.Errorf("mount %s: %w", m, err)
	}
	// Without propagation or recursive attributes to apply per mount, the
	// per-mount flags of every hierarchy's bind and of the tmpfs are set
	// at the end in one recursive mount_setattr, instead of a lookup and
	// a remount per bind.
	batch := len(m.opts.propagation) == 0 && m.opts.attr == nil
	dir := &freshDir{f: top, path: p, mnt: topID, deferFlags: batch}
	for _, h := range hs {
		dest := path.Join(m.dest, h.name)
		if err := r.mountCgroupHierarchy(c, m, dest, h, self, dir); err != nil {
			return err
		}
		if !strings.Contains(h.name, ",") {
			continue
		}
		// "cpu,cpuacct" is also reachable as "cpu" and "cpuacct".
		for _, link := range strings.Split(h.name, ",") {
			if link == "" || strings.Contains(link, "=") {
				continue
			}
			err := unix.Symlinkat(h.name, int(top.Fd()), link)
			if err != nil && !errors.Is(err, unix.EEXIST) {
				return fmt.Errorf("mount %s: symlink %s: %w", m, link, err)
			}
		}
	}
	if batch {
		err := unix.MountSetattr(int(top.Fd()), "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, perMountAttr(m.opts.flags))
		if err == nil {
			return nil
		}
		// A flag locked by a user namespace cannot be cleared (EPERM),
		// or no mount_setattr: one remount per bind, which keeps locked
		// flags.
		for _, name := range dir.binds {
			if err := r.remountIn(dir, name, m.opts.flags); err != nil {
				return fmt.Errorf("mount %s: %w", m, err)
			}
		}
	}
	if m.opts.flags&unix.MS_RDONLY != 0 {
		if err := remountBind(top, m.opts.flags); err != nil {
			return fmt.Errorf("mount %s: tmpfs: %w", m, err)
		}
	}
	return applyAfterMount(top, m.dest, m.opts)
}

// perMountAttr is the mount_setattr equivalent of a bind remount with
// flags: the per-mount flags given are set, all others cleared, and the
// atime mode chosen as mount(2) does (strictatime over noatime, relatime
// by default).
func perMountAttr(flags uintptr) *unix.MountAttr {
	a := &unix.MountAttr{Attr_clr: unix.MOUNT_ATTR__ATIME}
	for _, f := range []struct {
		ms   uintptr
		attr uint64
	}{
		{unix.MS_RDONLY, unix.MOUNT_ATTR_RDONLY},
		{unix.MS_NOSUID, unix.MOUNT_ATTR_NOSUID},
		{unix.MS_NODEV, unix.MOUNT_ATTR_NODEV},
		{unix.MS_NOEXEC, unix.MOUNT_ATTR_NOEXEC},
		{unix.MS_NODIRATIME, unix.MOUNT_ATTR_NODIRATIME},
		{unix.MS_NOSYMFOLLOW, unix.MOUNT_ATTR_NOSYMFOLLOW},
	} {
		if flags&f.ms != 0 {
			a.Attr_set |= f.attr
		} else {
			a.Attr_clr |= f.attr
		}
	}
	switch {
	case flags&unix.MS_STRICTATIME != 0:
		a.Attr_set |= unix.MOUNT_ATTR_STRICTATIME
	case flags&unix.MS_NOATIME != 0:
		a.Attr_set |= unix.MOUNT_ATTR_NOATIME
	default:
		a.Attr_set |= unix.MOUNT_ATTR_RELATIME
	}
	return a
}

// remountIn remounts the bind bindIn made at name in d with flags.
func (r *root) remountIn(d *freshDir, name string, flags uintptr) error {
	f, err := d.openMount(name)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := remountBind(f, flags); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// freshDir is the root of a tmpfs this package has just mounted (and
// checked to lie outside /proc). Nothing else can have put anything in it
// yet, so directories are made in it relative to its handle, with no
// in-root lookup; and they need no undo record: they go with the tmpfs.
type freshDir struct {
	f    *handle
	path string // container path, as found by containerPath
	mnt  uint64 // its mount id
	// deferFlags: bindIn leaves the per-mount flags of its binds to the
	// caller, which records their names in binds.
	deferFlags bool
	binds      []string
}

// openMount opens what is mounted at name in d. The lookup crosses into
// the mount, whose id must differ from the tmpfs's.
func (d *freshDir) openMount(name string) (*handle, error) {
	fd, err := unix.Openat(int(d.f.Fd()), name, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", name, err)
	}
	f := newHandle(fd, path.Join(d.path, name))
	id, err := mountID(f)
	if err == nil && d.mnt != 0 && id == d.mnt {
		err = fmt.Errorf("%s: new mount not found at the destination after mounting", f.Name())
	}
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	return f, nil
}

// bindIn binds source onto a new directory for dest (the spec path of
// d's entry path.Base(dest)) in d. done is false when that name exists
// already (a link to a co-mounted hierarchy): mountBind then decides.
func (r *root) bindIn(d *freshDir, source, dest string, o *options) (done bool, _ error) {
	name := path.Base(dest)
	err := unix.Mkdirat(int(d.f.Fd()), name, 0o755)
	if errors.Is(err, unix.EEXIST) {
		return false, nil
	}
	if err != nil {
		return true, fmt.Errorf("bind mount %s on %s: mkdir: %w", source, dest, err)
	}
	sm := bindSpecMount(source, dest)
	if err := checkProcPath(path.Join(d.path, name), sm, true); err != nil {
		return true, err
	}
	fd, err := unix.Openat(int(d.f.Fd()), name, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return true, fmt.Errorf("bind mount %s on %s: open: %w", source, dest, err)
	}
	target := newHandle(fd, path.Join(r.path, d.path, name))
	defer target.Close()
	if d.deferFlags && o.perMount && len(o.propagation) == 0 && o.attr == nil {
		oo := *o
		oo.perMount = false
		o = &oo
		d.binds = append(d.binds, name)
	}
	return true, r.bindOnto(source, dest, target, o, func() (*handle, error) {
		f, err := d.openMount(name)
		if err != nil {
			return nil, fmt.Errorf("bind mount %s on %s: %w", source, dest, err)
		}
		return f, nil
	})
}

// mountCgroupHierarchy puts one hierarchy at dest; in is the fresh tmpfs
// dest lies in directly, or nil.
func (r *root) mountCgroupHierarchy(c *Config, m *specMount, dest string, h hierarchy, self map[string]string, in *freshDir) error {
	bind := func() error {
		src, err := ownCgroupDir(h, c.CgroupPaths, self)
		if err != nil {
			return fmt.Errorf("mount %s: %w", m, err)
		}
		o := withFlags(m.opts, unix.MS_BIND|unix.MS_REC)
		if in != nil {
			if done, err := r.bindIn(in, src, dest, o); done || err != nil {
				return err
			}
		}
		return r.mountBind(src, dest, o)
	}
	if !c.NewCgroupNS {
		return bind()
	}
	target, err := r.mkdirAll(dest)
	if err != nil {
		return fmt.Errorf("mount %s: %w", m, err)
	}
	defer target.Close()
	fstype, data := "cgroup2", ""
	if !h.v2 {
		fstype = "cgroup"
		cs := h.controllers
		if len(cs) == 0 || !hasSubsystem(cs) {
			cs = append([]string{"none"}, cs...)
		}
		data = strings.Join(cs, ",")
	}
	err = mountAt(fstype, target, fstype, m.opts.flags&^unix.MS_REC, data)
	if h.v2 && (errors.Is(err, unix.EPERM) || errors.Is(err, unix.EBUSY)) {
		// cgroup2 cannot be mounted from a user namespace that does not
		// own the cgroup namespace.
		return bind()
	}
	if err != nil {
		return fmt.Errorf("mount %s for %s: %w", fstype, dest, err)
	}
	return r.afterMount(dest, target, m.opts)
}

func hasSubsystem(cs []string) bool {
	for _, c := range cs {
		if !strings.HasPrefix(c, "name=") {
			return true
		}
	}
	return false
}
