package mount

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// HostMount is a mount made on the host rather than in a container: the
// rootfs that containerd hands a shim (an overlay from the snapshotter, or
// a bind of `ctr run --rootfs`).
type HostMount struct {
	Type    string
	Source  string
	Options []string
}

// MountAll mounts ms, in order, on target (each on top of the previous).
// On error, what it mounted is unmounted again.
func MountAll(ms []HostMount, target string) (retErr error) {
	done := 0
	defer func() {
		if retErr != nil {
			for ; done > 0; done-- {
				unix.Unmount(target, unix.MNT_DETACH)
			}
		}
	}()
	for _, m := range ms {
		o, err := parseOptions(m.Options)
		if err != nil {
			return err
		}
		typ := m.Type
		if typ == "bind" {
			o.flags |= unix.MS_BIND
		}
		if o.isBind() {
			typ = ""
		}
		data := o.dataString()
		if len(data) >= unix.Getpagesize() {
			return fmt.Errorf("mount %s on %s: options are %d bytes, more than the kernel takes", m.Type, target, len(data))
		}
		// A bind takes only MS_BIND|MS_REC at first; the per-mount flags
		// need a remount, or they would be silently ignored.
		first := o.flags
		if o.isBind() {
			first &= unix.MS_BIND | unix.MS_REC
		}
		if err := unix.Mount(m.Source, target, typ, first, data); err != nil {
			return fmt.Errorf("mount %s %s on %s: %w", m.Type, m.Source, target, err)
		}
		done++
		if o.isBind() && o.flags&perMountFlags != 0 {
			if err := unix.Mount("", target, "", unix.MS_BIND|unix.MS_REMOUNT|o.flags&perMountFlags, ""); err != nil {
				return fmt.Errorf("remount %s on %s: %w", m.Source, target, err)
			}
		}
		for _, p := range o.propagation {
			if err := unix.Mount("", target, "", p, ""); err != nil {
				return fmt.Errorf("set propagation of %s: %w", target, err)
			}
		}
	}
	return nil
}

// UnmountAll removes every mount stacked on target, and what is mounted
// below it (a recursive bind), detaching those still busy. A target with
// nothing mounted is fine.
func UnmountAll(target string) error {
	for i := 0; i < 64; i++ {
		err := unix.Unmount(target, unix.MNT_DETACH)
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("unmount %s: %w", target, err)
		}
	}
	return fmt.Errorf("unmount %s: still mounted after 64 unmounts", target)
}
