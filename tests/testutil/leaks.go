package testutil

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// SeccompCacheDir is the directory in runmini's --root where it keeps
// compiled seccomp programs on purpose (libcontainer/seccomp's
// CacheDirName): not a container's leftover.
const SeccompCacheDir = "@seccomp"

// stateDirs lists the directories left in a runtime's --root, but for
// runmini's seccomp cache.
func stateDirs(root string) ([]string, error) {
	entries, err := os.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read runtime root: %w", err)
	}
	var dirs []string
	for _, e := range entries {
		if e.IsDir() && e.Name() != SeccompCacheDir {
			dirs = append(dirs, filepath.Join(root, e.Name()))
		}
	}
	return dirs, nil
}

// ProcStart returns the start time of pid (field 22 of /proc/PID/stat, in
// clock ticks since boot), and false if pid is gone or a zombie: a zombie
// runs nothing and is its parent's to reap.
func ProcStart(pid int) (uint64, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	// The command name in field 2 may hold spaces and parentheses; the
	// fields after the last ')' are plain.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state), so field 22 is f[19].
	if len(f) < 20 || f[0] == "Z" || f[0] == "X" {
		return 0, false
	}
	start, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return 0, false
	}
	return start, true
}

// killLive waits up to grace for the processes in pids (pid -> start time)
// to exit, then SIGKILLs and returns those still running. The start time
// makes sure a pid reused by an unrelated process is left alone.
func killLive(pids map[int]uint64, grace time.Duration) []int {
	deadline := time.Now().Add(grace)
	for {
		var live []int
		for pid, start := range pids {
			if now, ok := ProcStart(pid); ok && now == start {
				live = append(live, pid)
			}
		}
		if len(live) == 0 || time.Now().After(deadline) {
			for _, pid := range live {
				_ = unix.Kill(pid, unix.SIGKILL)
			}
			sort.Ints(live)
			return live
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// UnmountUnder detaches every mount at or below one of dirs, deepest
// first, and returns their mount points. Relative paths and / are ignored:
// this undoes a test's leftovers and must never unmount the host.
func UnmountUnder(dirs ...string) ([]string, error) {
	var points []string
	seen := map[string]bool{}
	for _, d := range dirs {
		if !filepath.IsAbs(d) || filepath.Clean(d) == "/" {
			continue
		}
		infos, err := mountinfo.GetMounts(mountinfo.PrefixFilter(filepath.Clean(d)))
		if err != nil {
			return nil, fmt.Errorf("read mount table: %w", err)
		}
		for _, m := range infos {
			if !seen[m.Mountpoint] {
				seen[m.Mountpoint] = true
				points = append(points, m.Mountpoint)
			}
		}
	}
	// Longer paths first: children before their parents.
	sort.Slice(points, func(i, j int) bool { return len(points[i]) > len(points[j]) })
	var errs []error
	for _, p := range points {
		// Stacked mounts on one point need one unmount each.
		for {
			err := unix.Unmount(p, unix.MNT_DETACH)
			if err == nil {
				continue
			}
			if !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
				errs = append(errs, fmt.Errorf("unmount %s: %w", p, err))
			}
			break
		}
	}
	return points, errors.Join(errs...)
}

// cgroupMounts returns the mount points of every cgroup v1 hierarchy and
// of the cgroup v2 hierarchy visible here.
func cgroupMounts() ([]string, error) {
	infos, err := mountinfo.GetMounts(mountinfo.FSTypeFilter("cgroup", "cgroup2"))
	if err != nil {
		return nil, fmt.Errorf("read mount table: %w", err)
	}
	// One hierarchy may be mounted in several places; walking a mount
	// point below another one would list its cgroups twice.
	sort.Slice(infos, func(i, j int) bool { return infos[i].Mountpoint < infos[j].Mountpoint })
	var points []string
	for _, m := range infos {
		if n := len(points); n > 0 && strings.HasPrefix(m.Mountpoint, points[n-1]+"/") {
			continue
		}
		points = append(points, m.Mountpoint)
	}
	return points, nil
}

// FindCgroups returns the cgroup directories, in every hierarchy, whose
// name satisfies match; their descendants are not listed separately.
func FindCgroups(match func(name string) bool) ([]string, error) {
	points, err := cgroupMounts()
	if err != nil {
		return nil, err
	}
	var found []string
	for _, p := range points {
		err := filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				// A cgroup removed while we walk is not an error.
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				return err
			}
			if !d.IsDir() || path == p {
				return nil
			}
			if match(d.Name()) {
				found = append(found, path)
				return filepath.SkipDir
			}
			return nil
		})
		if err != nil {
			return found, fmt.Errorf("walk cgroups under %s: %w", p, err)
		}
	}
	return found, nil
}

// removeCgroupsNamed finds the cgroups whose name contains one of ids
// (runtimes name them <id>, or runc-<id>.scope under systemd), removes
// them and returns their paths.
func removeCgroupsNamed(ids []string) ([]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	found, err := FindCgroups(func(name string) bool {
		for _, id := range ids {
			if strings.Contains(name, id) {
				return true
			}
		}
		return false
	})
	var errs []error
	if err != nil {
		errs = append(errs, err)
	}
	for _, dir := range found {
		if err := RemoveCgroup(dir); err != nil {
			errs = append(errs, err)
		}
	}
	return found, errors.Join(errs...)
}

// RemoveCgroup removes the cgroup directory dir and every cgroup below it,
// children first. A cgroup that still holds processes cannot be removed;
// the error says which one.
func RemoveCgroup(dir string) error {
	var dirs []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() {
			dirs = append(dirs, path)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("remove cgroup %s: %w", dir, err)
	}
	// WalkDir lists parents before children.
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := rmdirRetry(dirs[i]); err != nil {
			return fmt.Errorf("remove cgroup: %w", err)
		}
	}
	return nil
}

// rmdirRetry removes one cgroup; the kernel answers EBUSY for a short while
// after its last process has exited, so that is retried for a second.
func rmdirRetry(dir string) error {
	deadline := time.Now().Add(time.Second)
	for {
		err := unix.Rmdir(dir)
		if err == nil || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if !errors.Is(err, unix.EBUSY) || time.Now().After(deadline) {
			return fmt.Errorf("rmdir %s: %w", dir, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
