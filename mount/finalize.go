package mount

import (
	"errors"
	"fmt"

	securejoin "github.com/cyphar/filepath-securejoin"
	"golang.org/x/sys/unix"
)

// Finalize runs after PivotRoot, in the container's view of the
// filesystem: readonly paths, masked paths, a read-only root, then the
// requested propagation of "/". Propagation comes last because an
// unbindable root could no longer be the source of the readonly paths'
// binds.
func Finalize(c *Config) error {
	prop, err := rootPropagation(c.RootfsPropagation)
	if err != nil {
		return err
	}
	r, err := openRoot("/")
	if err != nil {
		return err
	}
	defer r.close()
	f := &finalizer{root: r, viaProc: checkProcfs() == nil}
	defer f.close()

	for _, p := range c.ReadonlyPaths {
		if err := f.readonlyPath(p); err != nil {
			return err
		}
	}
	for _, p := range c.MaskedPaths {
		if err := f.maskPath(p); err != nil {
			return err
		}
	}
	if c.ReadonlyRoot {
		var st unix.Statfs_t
		if err := unix.Statfs("/", &st); err != nil {
			return fmt.Errorf("statfs /: %w", err)
		}
		if err := unix.Mount("", "/", "", readonlyRemountFlags(st.Flags), ""); err != nil {
			return fmt.Errorf("remount / read-only: %w", err)
		}
	}
	if prop != 0 {
		if err := unix.Mount("", "/", "", prop, ""); err != nil {
			return fmt.Errorf("set rootfs propagation %q: %w", c.RootfsPropagation, err)
		}
	}
	return nil
}

// readonlyRemountFlags keeps a mount's nosuid, nodev, noexec, nosymfollow
// and atime flags while making it read-only: a bind remount resets every
// flag it is not given, and in a user namespace dropping a locked one fails.
func readonlyRemountFlags(statfsFlags int64) uintptr {
	keep := statfsMountFlags(statfsFlags) & (unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC |
		unix.MS_NOSYMFOLLOW | unix.MS_NODIRATIME | atimeFlags)
	return unix.MS_BIND | unix.MS_REMOUNT | unix.MS_RDONLY | keep
}

type finalizer struct {
	root *root
	// viaProc: the container has a procfs at /proc, so mounts go through
	// /proc/self/fd. Without one the root is "/" and nothing lies outside
	// it, so the in-root resolved path is used instead.
	viaProc bool
	null    *handle
}

func (f *finalizer) close() {
	if f.null != nil {
		_ = f.null.Close()
	}
}

// resolve returns a handle to p, or nil when p does not exist, and the
// path mount(2) should be given for it.
func (f *finalizer) resolve(p string) (*handle, string, error) {
	h, err := f.root.open(p)
	if errors.Is(err, unix.ENOENT) {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", err
	}
	target, err := f.target(h, p)
	if err != nil {
		_ = h.Close()
		return nil, "", err
	}
	return h, target, nil
}

func (f *finalizer) target(h *handle, p string) (string, error) {
	if f.viaProc {
		return fdPath(h), nil
	}
	t, err := securejoin.SecureJoin("/", p)
	if err != nil {
		return "", fmt.Errorf("resolve %s: %w", p, err)
	}
	return t, nil
}

func (f *finalizer) readonlyPath(p string) error {
	h, target, err := f.resolve(p)
	if err != nil || h == nil {
		return err
	}
	defer h.Close()
	if err := unix.Mount(target, target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("readonly path %s: bind: %w", p, err)
	}
	top, err := f.root.reopenMount(p, h)
	if err != nil {
		return fmt.Errorf("readonly path %s: %w", p, err)
	}
	defer top.Close()
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(top.Fd()), &st); err != nil {
		return fmt.Errorf("readonly path %s: statfs: %w", p, err)
	}
	topTarget, err := f.target(top, p)
	if err != nil {
		return err
	}
	if err := unix.Mount("", topTarget, "", readonlyRemountFlags(st.Flags), ""); err != nil {
		return fmt.Errorf("readonly path %s: remount: %w", p, err)
	}
	return nil
}

// maskPath covers a file with /dev/null and a directory with an empty
// read-only tmpfs.
func (f *finalizer) maskPath(p string) error {
	h, target, err := f.resolve(p)
	if err != nil || h == nil {
		return err
	}
	defer h.Close()
	st, err := fstat(h)
	if err != nil {
		return fmt.Errorf("masked path %s: %w", p, err)
	}
	if isDir(st) {
		if err := unix.Mount("tmpfs", target, "tmpfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
			return fmt.Errorf("masked path %s: %w", p, err)
		}
		return nil
	}
	null, err := f.devNull()
	if err != nil {
		return fmt.Errorf("masked path %s: %w", p, err)
	}
	if err := unix.Mount(null, target, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("masked path %s: bind /dev/null: %w", p, err)
	}
	return nil
}

// devNull returns the mount source for the container's /dev/null after
// checking that it really is the null device: binding anything else over
// a masked file would expose that instead.
func (f *finalizer) devNull() (string, error) {
	if f.null == nil {
		h, err := f.root.open("/dev/null")
		if err != nil {
			return "", err
		}
		st, err := fstat(h)
		if err != nil {
			_ = h.Close()
			return "", err
		}
		if st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != unix.Mkdev(1, 3) {
			_ = h.Close()
			return "", errors.New("/dev/null is not the null device")
		}
		f.null = h
	}
	return f.target(f.null, "/dev/null")
}
