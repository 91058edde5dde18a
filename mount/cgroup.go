package mount

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
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
// directory name.
func hostHierarchies(rootfs string) ([]hierarchy, error) {
	infos, err := mountinfo.GetMounts(mountinfo.FSTypeFilter("cgroup", "cgroup2"))
	if err != nil {
		return nil, fmt.Errorf("read mountinfo: %w", err)
	}
	known, err := v1Subsystems()
	if err != nil {
		return nil, err
	}
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

// v1Subsystems reads the subsystem names the kernel knows (/proc/cgroups).
func v1Subsystems() (map[string]bool, error) {
	f, err := os.Open("/proc/cgroups")
	if errors.Is(err, os.ErrNotExist) {
		return map[string]bool{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open /proc/cgroups: %w", err)
	}
	defer f.Close()
	return parseSubsystems(f)
}

func parseSubsystems(r io.Reader) (map[string]bool, error) {
	known := map[string]bool{}
	s := bufio.NewScanner(r)
	for s.Scan() {
		line := s.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		if fields := strings.Fields(line); len(fields) > 0 {
			known[fields[0]] = true
		}
	}
	if err := s.Err(); err != nil {
		return nil, fmt.Errorf("read /proc/cgroups: %w", err)
	}
	return known, nil
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
	f, err := os.Open("/proc/self/cgroup")
	if err != nil {
		return nil, fmt.Errorf("open /proc/self/cgroup: %w", err)
	}
	defer f.Close()
	return parseProcCgroup(f)
}

// mountCgroup mounts the "cgroup" spec mount. On a v2 host it is the
// unified hierarchy; on v1 and hybrid hosts a tmpfs holding one directory
// per hierarchy, as on the host. Without a cgroup namespace each holds a
// bind of the container's own cgroup directory, so the container sees
// neither its ancestors nor its siblings; with one, the namespace's root
// is mounted from cgroupfs.
func (r *root) mountCgroup(c *Config, m *specMount) error {
	hs, err := hostHierarchies(c.Rootfs)
	if err != nil {
		return fmt.Errorf("mount %s: %w", m, err)
	}
	self, err := readSelfCgroup()
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
		return r.mountCgroupHierarchy(c, m, m.dest, *unified, self)
	}
	return fmt.Errorf("mount %s: no cgroup filesystem is mounted on the host", m)
}

func (r *root) mountCgroupV1(c *Config, m *specMount, hs []hierarchy, self map[string]string) error {
	target, err := r.mkdirAll(m.dest)
	if err != nil {
		return fmt.Errorf("mount %s: %w", m, err)
	}
	defer target.Close()
	// Read-only comes last: the directories must be made in it first.
	if err := mountAt("tmpfs", target, "tmpfs", m.opts.flags&^unix.MS_RDONLY&^unix.MS_REC, "mode=755"); err != nil {
		return fmt.Errorf("mount tmpfs for %s: %w", m, err)
	}
	top, err := r.reopenMount(m.dest, target)
	if err != nil {
		return fmt.Errorf("mount %s: %w", m, err)
	}
	defer top.Close()
	for _, h := range hs {
		dest := path.Join(m.dest, h.name)
		if err := r.mountCgroupHierarchy(c, m, dest, h, self); err != nil {
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
	if m.opts.flags&unix.MS_RDONLY != 0 {
		if err := remountBind(top, m.opts.flags); err != nil {
			return fmt.Errorf("mount %s: tmpfs: %w", m, err)
		}
	}
	return applyAfterMount(top, m.dest, m.opts)
}

// mountCgroupHierarchy puts one hierarchy at dest.
func (r *root) mountCgroupHierarchy(c *Config, m *specMount, dest string, h hierarchy, self map[string]string) error {
	bind := func() error {
		src, err := ownCgroupDir(h, c.CgroupPaths, self)
		if err != nil {
			return fmt.Errorf("mount %s: %w", m, err)
		}
		o := withFlags(m.opts, unix.MS_BIND|unix.MS_REC)
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
