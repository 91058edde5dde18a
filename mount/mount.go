// Package mount builds a container's root filesystem inside its new mount
// namespace: spec mounts, propagation, /dev, pivot_root, masked and readonly
// paths. Every path inside the rootfs is resolved relative to the rootfs
// (securejoin / openat2 RESOLVE_IN_ROOT), never by joining strings.
package mount

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/moby/sys/mountinfo"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Config is what the init needs to build the root filesystem.
type Config struct {
	Rootfs string // absolute host path of the rootfs, symlinks resolved
	// Bundle is the absolute host path of the bundle, which relative bind
	// sources are relative to.
	Bundle            string
	Mounts            []specs.Mount
	Devices           []specs.LinuxDevice
	RootfsPropagation string
	ReadonlyRoot      bool
	NoPivot           bool
	MaskedPaths       []string
	ReadonlyPaths     []string
	// NewUserNS: devices are bind-mounted from the host instead of mknod.
	NewUserNS bool
	// NewCgroupNS: "cgroup" mounts are real cgroupfs mounts of the
	// namespace's root; without it the container's own cgroup directories
	// (CgroupPaths) are bind-mounted, as runc does.
	NewCgroupNS bool
	// CgroupPaths is cgroups.Manager.Paths() of the container.
	CgroupPaths map[string]string
}

// Prepare builds the container's root filesystem under c.Rootfs, before
// pivot_root: "/" propagation, the rootfs bound onto itself, every spec
// mount in order, then /dev. It must run in the init's own mount
// namespace. On failure everything it mounted and every directory, file or
// device node it created is removed again; the propagation changes stay,
// since they only concern this namespace.
func Prepare(c *Config) (retErr error) {
	if !filepath.IsAbs(c.Rootfs) {
		return fmt.Errorf("rootfs %q is not an absolute path", c.Rootfs)
	}
	rootfs := filepath.Clean(c.Rootfs)
	if rootfs == "/" {
		return errors.New("rootfs must not be /")
	}
	prop, err := preparePropagation(c.RootfsPropagation)
	if err != nil {
		return err
	}
	// Check all input before changing anything.
	mounts := make([]*specMount, 0, len(c.Mounts))
	for _, m := range c.Mounts {
		sm, err := parseMount(m, c.Bundle)
		if err != nil {
			return err
		}
		mounts = append(mounts, sm)
	}
	for _, d := range c.Devices {
		if err := checkDevice(d); err != nil {
			return err
		}
	}
	if err := checkProcfs(); err != nil {
		return err
	}

	if err := unix.Mount("", "/", "", prop, ""); err != nil {
		return fmt.Errorf("set propagation of /: %w", err)
	}
	// A recursive slave or private "/" left no shared mount anywhere in
	// the namespace (rslave turns every shared mount into a slave or a
	// private one), so mountinfo need not be read to find out.
	if prop&unix.MS_REC == 0 || prop&unix.MS_SHARED != 0 {
		if err := rootfsParentNotShared(rootfs); err != nil {
			return err
		}
	}
	if err := unix.Mount(rootfs, rootfs, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind rootfs %s onto itself: %w", rootfs, err)
	}
	r, err := openRoot(rootfs)
	if err != nil {
		_ = unix.Unmount(rootfs, unix.MNT_DETACH)
		return err
	}
	defer func() {
		r.close()
		if retErr != nil {
			retErr = errors.Join(retErr, undoPrepare(rootfs, r.created))
		}
	}()

	cfg := *c
	cfg.Rootfs = rootfs
	for _, m := range mounts {
		if err := r.mount(&cfg, m); err != nil {
			return err
		}
	}
	if devSetup(&cfg, mounts) {
		if err := r.setupDev(&cfg, mounts); err != nil {
			return err
		}
	}
	return nil
}

// undoPrepare takes the rootfs bind (and every mount below it) away, made
// private first so that no unmount propagates anywhere, then removes what
// was created in the rootfs itself.
func undoPrepare(rootfs string, created []createdEntry) error {
	var errs []error
	if err := unix.Mount("", rootfs, "", unix.MS_PRIVATE|unix.MS_REC, ""); err != nil {
		errs = append(errs, fmt.Errorf("undo: make %s private: %w", rootfs, err))
	}
	if err := unix.Unmount(rootfs, unix.MNT_DETACH); err != nil {
		errs = append(errs, fmt.Errorf("undo: unmount %s: %w", rootfs, err))
		return errors.Join(errs...)
	}
	if len(created) == 0 {
		return errors.Join(errs...)
	}
	r, err := openRoot(rootfs)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	defer r.close()
	r.created = created
	if err := r.removeCreated(); err != nil {
		errs = append(errs, fmt.Errorf("undo: %w", err))
	}
	return errors.Join(errs...)
}

// rootfsParentNotShared makes the mount holding the rootfs a slave if it is
// shared: pivot_root refuses a new root whose parent mount is shared, and
// mounts made in the container must not reach the host. A slave rather than
// a private mount keeps receiving the host's mount events, so that a
// "slave" root really has a master, as it would with the default rslave.
func rootfsParentNotShared(rootfs string) error {
	infos, err := mountinfo.GetMounts(mountinfo.ParentsFilter(rootfs))
	if err != nil {
		return fmt.Errorf("read mountinfo: %w", err)
	}
	var parent *mountinfo.Info
	for _, info := range infos {
		if parent == nil || len(info.Mountpoint) >= len(parent.Mountpoint) {
			parent = info
		}
	}
	if parent == nil || !hasOptional(parent.Optional, "shared:") {
		return nil
	}
	if err := unix.Mount("", parent.Mountpoint, "", unix.MS_SLAVE, ""); err != nil {
		return fmt.Errorf("make %s a slave mount: %w", parent.Mountpoint, err)
	}
	return nil
}

func hasOptional(optional, prefix string) bool {
	for _, f := range strings.Fields(optional) {
		if strings.HasPrefix(f, prefix) {
			return true
		}
	}
	return false
}

// MountConsole bind-mounts the pty slave (a host path) onto
// <rootfs>/dev/console, creating that as an empty file when missing. It
// runs after Prepare and before PivotRoot.
func MountConsole(c *Config, slave string) (retErr error) {
	var st unix.Stat_t
	if err := unix.Stat(slave, &st); err != nil {
		return fmt.Errorf("console %s: %w", slave, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFCHR {
		return fmt.Errorf("console %s is not a character device", slave)
	}
	r, err := openRoot(c.Rootfs)
	if err != nil {
		return err
	}
	defer r.close()
	defer func() {
		if retErr != nil {
			retErr = errors.Join(retErr, r.removeCreated())
		}
	}()
	target, err := r.createFile("/dev/console")
	if err != nil {
		return fmt.Errorf("console: %w", err)
	}
	defer target.Close()
	tst, err := fstat(target)
	if err != nil {
		return fmt.Errorf("console: %w", err)
	}
	if isDir(tst) {
		return errors.New("console: /dev/console is a directory")
	}
	if err := mountAt(slave, target, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind console %s on /dev/console: %w", slave, err)
	}
	return nil
}
