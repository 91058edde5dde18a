package mount

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// PivotRoot makes the prepared rootfs the root of the mount namespace and
// drops the old root, or with c.NoPivot moves the rootfs onto "/" and
// chroots into it. The working directory is "/" afterwards.
func PivotRoot(c *Config) error {
	if c.NoPivot {
		return moveRoot(c.Rootfs)
	}
	oldroot, err := unix.Open("/", unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open old root: %w", err)
	}
	defer unix.Close(oldroot)
	newroot, err := unix.Open(c.Rootfs, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open new root %s: %w", c.Rootfs, err)
	}
	defer unix.Close(newroot)

	// pivot_root refuses a shared current root; it is about to be dropped,
	// so only its own propagation is changed.
	if err := unix.Mount("", "/", "", unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make old root private: %w", err)
	}
	if err := unix.Fchdir(newroot); err != nil {
		return fmt.Errorf("chdir to new root: %w", err)
	}
	// With new_root and put_old the same directory the old root ends up
	// mounted on top of the new one, and no directory is needed for it.
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root %s: %w", c.Rootfs, err)
	}
	if err := unix.Fchdir(oldroot); err != nil {
		return fmt.Errorf("chdir to old root: %w", err)
	}
	// The unmount must not propagate to the host's copies of these mounts.
	if err := unix.Mount("", ".", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("make old root rslave: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("unmount old root: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("chdir /: %w", err)
	}
	return nil
}

// moveRoot is the --no-pivot path. The old root stays reachable in the
// namespace, and the kernel allows a new procfs or sysfs mount only while
// a full, uncovered one is visible there, so those are taken away (or
// covered) first; otherwise a chrooted container could mount a fresh,
// unmasked procfs.
func moveRoot(rootfs string) error {
	rootfs = filepath.Clean(rootfs)
	infos, err := mountinfo.GetMounts(func(info *mountinfo.Info) (bool, bool) {
		skip := info.Root != "/" || (info.FSType != "proc" && info.FSType != "sysfs") ||
			info.Mountpoint == rootfs || strings.HasPrefix(info.Mountpoint, rootfs+"/")
		return skip, false
	})
	if err != nil {
		return fmt.Errorf("read mountinfo: %w", err)
	}
	for _, info := range infos {
		p := info.Mountpoint
		if err := unix.Mount("", p, "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
			if errors.Is(err, unix.ENOENT) {
				// Already gone with a parent.
				continue
			}
			return fmt.Errorf("make %s rslave: %w", p, err)
		}
		err := unix.Unmount(p, unix.MNT_DETACH)
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EPERM) {
			err = unix.Mount("tmpfs", p, "tmpfs", unix.MS_RDONLY, "")
		}
		if err != nil {
			return fmt.Errorf("hide %s: %w", p, err)
		}
	}
	if err := unix.Chdir(rootfs); err != nil {
		return fmt.Errorf("chdir %s: %w", rootfs, err)
	}
	if err := unix.Mount(rootfs, "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("move %s to /: %w", rootfs, err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("chroot %s: %w", rootfs, err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("chdir /: %w", err)
	}
	return nil
}
