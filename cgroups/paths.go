package cgroups

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	cgroupsv3 "github.com/containerd/cgroups/v3"
	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

const (
	defaultRoot = "/sys/fs/cgroup"
	// systemdKey is the Paths key of systemd's named v1 hierarchy. runc
	// places containers there too, so tools that read /proc/<pid>/cgroup
	// see them in their own cgroup rather than the caller's.
	systemdKey = "name=systemd"
)

// v1Controllers are the v1 hierarchies a container joins when they are
// mounted (runc's list). Each is mounted at Root/<name> (name=systemd at
// Root/systemd); co-mounted ones such as cpu,cpuacct are reached through
// the symlinks distributions create.
var v1Controllers = []string{
	"cpuset", "cpu", "cpuacct", "memory", "devices", "freezer", "net_cls",
	"net_prio", "blkio", "perf_event", "pids", "hugetlb", "rdma", "misc",
	systemdKey,
}

// hierarchyDir is the mount point of a v1 controller's hierarchy.
func hierarchyDir(root, controller string) string {
	return filepath.Join(root, strings.TrimPrefix(controller, "name="))
}

// HierarchyDir is where the v1 hierarchy of controller (a Paths key) is
// mounted under root.
func HierarchyDir(root, controller string) string { return hierarchyDir(root, controller) }

// unifiedRoot is the mount point of the cgroup2 hierarchy in mode.
func unifiedRoot(root string, mode Mode) string {
	if mode == ModeHybrid {
		return filepath.Join(root, "unified")
	}
	return root
}

// UnifiedRoot is where the cgroup2 hierarchy is mounted under root in mode.
func UnifiedRoot(root string, mode Mode) string { return unifiedRoot(root, mode) }

// HugetlbInV2 tells whether a cgroup with these Paths keeps its hugepage
// limits (and usage) in cgroup2: always on v2, and on a hybrid host whose
// v1 has no hugetlb hierarchy.
func HugetlbInV2(mode Mode, paths map[string]string) bool {
	_, v1Hugetlb := paths["hugetlb"]
	return mode == ModeV2 || (mode == ModeHybrid && !v1Hugetlb)
}

// Controllers is the set of controllers the cgroup2 directory dir offers.
func Controllers(dir string) (map[string]bool, error) { return cgroupFiles{}.availableV2(dir) }

// detectMode asks the host how cgroups are mounted at root.
func detectMode(root string) (Mode, error) {
	if root == defaultRoot {
		switch cgroupsv3.Mode() {
		case cgroupsv3.Legacy:
			return ModeV1, nil
		case cgroupsv3.Hybrid:
			return ModeHybrid, nil
		case cgroupsv3.Unified:
			return ModeV2, nil
		}
		return ModeAuto, fmt.Errorf("no cgroup filesystem mounted at %s", root)
	}
	// containerd's Mode only looks at /sys/fs/cgroup; apply its rule to
	// any other root.
	var st unix.Statfs_t
	if err := unix.Statfs(root, &st); err != nil {
		return ModeAuto, fmt.Errorf("detect cgroup mode of %s: %w", root, &os.PathError{Op: "statfs", Path: root, Err: err})
	}
	if st.Type == unix.CGROUP2_SUPER_MAGIC {
		return ModeV2, nil
	}
	if err := unix.Statfs(filepath.Join(root, "unified"), &st); err == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		return ModeHybrid, nil
	}
	return ModeV1, nil
}

// isSystemdPath reports whether p has systemd's "slice:prefix:name" form.
// A cgroupfs path never needs two colons and no slash, so the forms do
// not overlap in practice.
func isSystemdPath(p string) bool {
	return !strings.Contains(p, "/") && strings.Count(p, ":") == 2
}

// cgroupPath validates c.Path (or derives the default from c.ID) and
// returns it clean. It is absolute or relative, never "/" or ".".
func cgroupPath(c Config) (string, error) {
	p := c.Path
	if p == "" {
		if c.ID == "" || c.ID == "." || c.ID == ".." || strings.ContainsAny(c.ID, "/\x00") {
			return "", fmt.Errorf("%w: no cgroupsPath and container id %q cannot name a cgroup", ErrInvalidPath, c.ID)
		}
		p = "/runmini/" + c.ID
	}
	if isSystemdPath(p) {
		return "", fmt.Errorf("cgroupsPath %q: %w", p, ErrSystemd)
	}
	if strings.ContainsRune(p, 0) {
		return "", fmt.Errorf("%w %q: contains a NUL byte", ErrInvalidPath, p)
	}
	for _, elem := range strings.Split(p, "/") {
		if elem == ".." {
			return "", fmt.Errorf("%w %q: \"..\" is not allowed", ErrInvalidPath, p)
		}
	}
	if filepath.Clean(p) != p {
		return "", fmt.Errorf("%w %q: not clean (want %q)", ErrInvalidPath, p, filepath.Clean(p))
	}
	if p == "/" || p == "." {
		return "", fmt.Errorf("%w %q: the root cgroup cannot be a container's cgroup", ErrInvalidPath, p)
	}
	return p, nil
}

// layout is where a container's cgroup lives in every hierarchy.
type layout struct {
	mode Mode
	root string
	// v1 maps a v1 controller (Paths key) to its absolute directory;
	// controllers not mounted on the host are absent.
	v1 map[string]string
	// v2 is the absolute directory in the cgroup2 hierarchy, "" in ModeV1.
	v2 string
}

// resolve turns c into per-hierarchy directories without touching them.
func resolve(c Config, mode Mode, root string) (layout, error) {
	p, err := cgroupPath(c)
	if err != nil {
		return layout{}, err
	}
	l := layout{mode: mode, root: root, v1: map[string]string{}}
	var (
		ownV1     map[string]string
		ownV2     string
		ownLoaded bool
		mounts    []*mountinfo.Info
	)
	own := func() error {
		if ownLoaded {
			return nil
		}
		file := c.selfCgroup
		if file == "" {
			file = "/proc/self/cgroup"
		}
		v1, v2, err := cgroupsv3.ParseCgroupFileUnified(file)
		if err != nil {
			return fmt.Errorf("read own cgroup for relative cgroupsPath %q: %w", p, err)
		}
		ownV1, ownV2, ownLoaded = v1, v2, true
		// Only the real host's mounts can be looked up; a test root is
		// not in mountinfo and is taken as mounted from its root.
		if root == defaultRoot {
			mounts, err = mountinfo.GetMounts(mountinfo.FSTypeFilter("cgroup", "cgroup2"))
			if err != nil {
				return fmt.Errorf("read mountinfo: %w", err)
			}
		}
		return nil
	}
	// join places p in the hierarchy mounted at mnt; relative paths go
	// under ownPath, the caller's cgroup there.
	join := func(mnt, ownPath string, found bool) (string, error) {
		if filepath.IsAbs(p) {
			return filepath.Join(mnt, p), nil
		}
		if !found {
			return "", fmt.Errorf("%w: relative cgroupsPath %q: no entry for hierarchy %s in /proc/self/cgroup", ErrInvalidPath, p, mnt)
		}
		rel, err := relToMountRoot(mounts, mnt, ownPath)
		if err != nil {
			return "", err
		}
		return filepath.Join(mnt, rel, p), nil
	}

	if mode == ModeV1 || mode == ModeHybrid {
		mounted := hierarchies(root)
		for _, ctrl := range v1Controllers {
			mnt := hierarchyDir(root, ctrl)
			if !mounted(mnt) {
				continue
			}
			var ownPath string
			found := true
			if !filepath.IsAbs(p) {
				if err := own(); err != nil {
					return layout{}, err
				}
				ownPath, found = ownV1[ctrl]
			}
			dir, err := join(mnt, ownPath, found)
			if err != nil {
				return layout{}, err
			}
			l.v1[ctrl] = dir
		}
		if len(l.v1) == 0 {
			return layout{}, fmt.Errorf("%w: no cgroup v1 hierarchy mounted under %s", ErrControllerUnavailable, root)
		}
	}
	if mode == ModeV2 || mode == ModeHybrid {
		mnt := unifiedRoot(root, mode)
		found := true
		if !filepath.IsAbs(p) {
			if err := own(); err != nil {
				return layout{}, err
			}
			// "0::/" always exists on a kernel with cgroup2; an empty
			// path means the line was missing.
			found = ownV2 != ""
		}
		dir, err := join(mnt, ownV2, found)
		if err != nil {
			return layout{}, err
		}
		l.v2 = dir
	}
	return l, nil
}

// relToMountRoot makes ownPath, as /proc/self/cgroup shows it, relative
// to the hierarchy root mounted at mnt: when only a sub-tree of the
// hierarchy is mounted there (a container without a cgroup namespace),
// the mount's root must be cut off (runc does the same).
func relToMountRoot(mounts []*mountinfo.Info, mnt, ownPath string) (string, error) {
	mroot := "/"
	if len(mounts) > 0 {
		target, err := filepath.EvalSymlinks(mnt)
		if err != nil {
			return "", fmt.Errorf("resolve cgroup mount %s: %w", mnt, err)
		}
		for _, m := range mounts {
			if m.Mountpoint == target {
				mroot = m.Root
			}
		}
	}
	rel, err := filepath.Rel(mroot, ownPath)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", fmt.Errorf("%w: own cgroup %s is outside the hierarchy mounted at %s (root %s)", ErrInvalidPath, ownPath, mnt, mroot)
	}
	return rel, nil
}

// Load reopens the cgroup of an existing container from the Paths a
// previous Manager returned; root is where cgroupfs is mounted ("" for
// /sys/fs/cgroup). Every path must lie strictly inside its hierarchy
// under root. Load does not require the directories to exist, so a
// half-deleted container can still be destroyed.
func Load(paths map[string]string, root string) (Manager, error) {
	if root == "" {
		root = defaultRoot
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("%w: no saved cgroup paths", ErrInvalidPath)
	}
	l := layout{root: root, v1: map[string]string{}}
	known := map[string]bool{}
	for _, c := range v1Controllers {
		known[c] = true
	}
	for key, dir := range paths {
		if key == "" {
			continue
		}
		if !known[key] {
			return nil, fmt.Errorf("%w: unknown controller %q in saved cgroup paths", ErrInvalidPath, key)
		}
		if err := checkInside(hierarchyDir(root, key), dir); err != nil {
			return nil, err
		}
		l.v1[key] = dir
	}
	switch _, hasV2 := paths[""]; {
	case hasV2 && len(l.v1) > 0:
		l.mode = ModeHybrid
	case hasV2:
		l.mode = ModeV2
	default:
		l.mode = ModeV1
	}
	if l.mode != ModeV1 {
		if err := checkInside(unifiedRoot(root, l.mode), paths[""]); err != nil {
			return nil, err
		}
		l.v2 = paths[""]
	}
	return newManager(l, nil), nil
}

// checkInside refuses a saved path that is not a clean directory strictly
// below the hierarchy mounted at mnt, so a corrupt state.json cannot make
// Destroy remove anything else.
func checkInside(mnt, dir string) error {
	if !filepath.IsAbs(dir) || filepath.Clean(dir) != dir {
		return fmt.Errorf("%w %q: not a clean absolute path", ErrInvalidPath, dir)
	}
	rel, err := filepath.Rel(mnt, dir)
	if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, "../") {
		return fmt.Errorf("%w %q: not inside the hierarchy at %s", ErrInvalidPath, dir, mnt)
	}
	return nil
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// hierarchies tells which directories under root are there: one listing
// of root instead of a stat per controller the kernel knows, and a stat
// only for what may be a symlink (cpu -> cpu,cpuacct).
func hierarchies(root string) func(dir string) bool {
	ents, err := os.ReadDir(root)
	if err != nil {
		return isDir
	}
	typ := make(map[string]fs.FileMode, len(ents))
	for _, e := range ents {
		typ[filepath.Join(root, e.Name())] = e.Type()
	}
	return func(dir string) bool {
		t, ok := typ[dir]
		switch {
		case !ok:
			return false
		case t.IsDir():
			return true
		default:
			return isDir(dir)
		}
	}
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return !errors.Is(err, fs.ErrNotExist)
}
