package mount

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// specMount is one entry of config.json's mounts, checked and parsed.
type specMount struct {
	specs.Mount
	dest string // cleaned, absolute
	opts *options
}

// parseMount checks m and parses its options. A relative bind source is
// relative to bundle, as the runtime spec says; without a bundle it is an
// error.
func parseMount(m specs.Mount, bundle string) (*specMount, error) {
	if m.Destination == "" {
		return nil, errors.New("mount has no destination")
	}
	dest := path.Clean("/" + m.Destination)
	if dest == "/" {
		return nil, fmt.Errorf("mount %s: mounting over the container's root is not supported", m.Destination)
	}
	if len(m.UIDMappings) > 0 || len(m.GIDMappings) > 0 {
		return nil, fmt.Errorf("mount %s: idmapped mounts are not supported", m.Destination)
	}
	o, err := parseOptions(m.Options)
	if err != nil {
		return nil, fmt.Errorf("mount %s: %w", m.Destination, err)
	}
	if m.Type == "bind" || m.Type == "rbind" {
		o.flags |= unix.MS_BIND
		if m.Type == "rbind" {
			o.flags |= unix.MS_REC
		}
	}
	if o.isBind() && !path.IsAbs(m.Source) {
		if bundle == "" || m.Source == "" {
			return nil, fmt.Errorf("mount %s: bind source %q is not an absolute path", m.Destination, m.Source)
		}
		m.Source = path.Join(bundle, m.Source)
	}
	sm := &specMount{Mount: m, dest: dest, opts: o}
	if o.copyUp && (o.isBind() || m.Type != "tmpfs") {
		return nil, fmt.Errorf("mount %s: tmpcopyup needs a tmpfs mount", m.Destination)
	}
	return sm, nil
}

func (m *specMount) String() string {
	return fmt.Sprintf("%s (%s from %q)", m.dest, m.Type, m.Source)
}

// mount dispatches one spec mount.
func (r *root) mount(c *Config, m *specMount) error {
	switch {
	case m.opts.isBind():
		return r.mountBind(m.Source, m.dest, m.opts)
	case m.opts.flags&unix.MS_REMOUNT != 0:
		return r.mountFS(m)
	case m.Type == "cgroup":
		return r.mountCgroup(c, m)
	case m.Type == "tmpfs":
		return r.mountTmpfs(m)
	case m.Type == "sysfs":
		err := r.mountFS(m)
		if errors.Is(err, unix.EPERM) {
			// The kernel refuses a sysfs without a network namespace of
			// our own (user namespace, host network): show the host's.
			return r.mountBind("/sys", m.dest, withFlags(m.opts, unix.MS_BIND|unix.MS_REC))
		}
		return err
	case m.Type == "mqueue":
		err := r.mountFS(m)
		if errors.Is(err, unix.EPERM) {
			if _, statErr := os.Stat("/dev/mqueue"); statErr == nil {
				return r.mountBind("/dev/mqueue", m.dest, withFlags(m.opts, unix.MS_BIND))
			}
		}
		return err
	}
	return r.mountFS(m)
}

func withFlags(o *options, flags uintptr) *options {
	c := *o
	c.flags |= flags
	c.perMount = true
	return &c
}

// mountFS mounts a filesystem (anything that is not a bind) at m.dest.
func (r *root) mountFS(m *specMount) error {
	target, err := r.mkdirAll(m.dest)
	if err != nil {
		return fmt.Errorf("mount %s: %w", m, err)
	}
	defer target.Close()
	if err := r.checkProcDest(target, m, false); err != nil {
		return err
	}
	if err := mountAt(m.Source, target, m.Type, m.opts.flags, m.opts.dataString()); err != nil {
		return fmt.Errorf("mount %s: %w", m, err)
	}
	if m.opts.flags&unix.MS_REMOUNT != 0 {
		// The mount at the destination was changed, not covered: the
		// handle already points at it.
		return applyAfterMount(target, m.dest, m.opts)
	}
	return r.afterMount(m.dest, target, m.opts)
}

func mountAt(source string, target *handle, fstype string, flags uintptr, data string) error {
	return unix.Mount(source, fdPath(target), fstype, flags, data)
}

// reopenMount resolves dest again after something was mounted on before
// (whose handle still points below the new mount) and makes sure the
// lookup really reached a different mount.
func (r *root) reopenMount(dest string, before *handle) (*handle, error) {
	f, err := r.open(dest)
	if err != nil {
		return nil, err
	}
	oldID, err1 := mountID(before)
	newID, err2 := mountID(f)
	if err := errors.Join(err1, err2); err != nil {
		_ = f.Close()
		return nil, err
	}
	if oldID != 0 && oldID == newID {
		_ = f.Close()
		return nil, fmt.Errorf("%s: new mount not found at the destination after mounting", dest)
	}
	return f, nil
}

// afterMount applies what mount(2) cannot do in the same call: the
// propagation changes, in order, then the recursive attributes.
func (r *root) afterMount(dest string, before *handle, o *options) error {
	if len(o.propagation) == 0 && o.attr == nil {
		return nil
	}
	f, err := r.reopenMount(dest, before)
	if err != nil {
		return fmt.Errorf("mount %s: %w", dest, err)
	}
	defer f.Close()
	return applyAfterMount(f, dest, o)
}

func applyAfterMount(f *handle, dest string, o *options) error {
	for _, p := range o.propagation {
		if err := unix.Mount("", fdPath(f), "", p, ""); err != nil {
			return fmt.Errorf("set propagation %#x on %s: %w", p, dest, err)
		}
	}
	if o.attr != nil {
		if err := unix.MountSetattr(int(f.Fd()), "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, o.attr); err != nil {
			return fmt.Errorf("set recursive mount attributes on %s: %w", dest, err)
		}
	}
	return nil
}

// mountBind binds source at dest and remounts it when per-mount flags were
// asked for, since a bind ignores them and inherits the source's.
func (r *root) mountBind(source, dest string, o *options) error {
	st, err := os.Stat(source)
	if err != nil {
		return fmt.Errorf("bind mount %s on %s: %w", source, dest, err)
	}
	var target *handle
	if st.IsDir() {
		target, err = r.mkdirAll(dest)
	} else {
		target, err = r.createFile(dest)
	}
	if err != nil {
		return fmt.Errorf("bind mount %s on %s: %w", source, dest, err)
	}
	defer target.Close()
	if err := r.checkProcDest(target, bindSpecMount(source, dest), true); err != nil {
		return err
	}
	return r.bindOnto(source, dest, target, o, func() (*handle, error) {
		return r.reopenMount(dest, target)
	})
}

func bindSpecMount(source, dest string) *specMount {
	return &specMount{Mount: specs.Mount{Source: source, Type: "bind"}, dest: dest}
}

// bindOnto binds source onto target, a checked handle of dest, then
// applies the per-mount flags, propagation and attributes through the
// handle reopen returns for the new mount.
func (r *root) bindOnto(source, dest string, target *handle, o *options, reopen func() (*handle, error)) error {
	if err := mountAt(source, target, "", unix.MS_BIND|o.flags&unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind mount %s on %s: %w", source, dest, err)
	}
	if !o.perMount && len(o.propagation) == 0 && o.attr == nil {
		return nil
	}
	f, err := reopen()
	if err != nil {
		return fmt.Errorf("bind mount %s on %s: %w", source, dest, err)
	}
	defer f.Close()
	if o.perMount {
		if err := remountBind(f, o.flags); err != nil {
			return fmt.Errorf("bind mount %s on %s: %w", source, dest, err)
		}
	}
	return applyAfterMount(f, dest, o)
}

// remountBind sets the per-mount flags of the bind mount f. Flags locked
// by the kernel (a mount inherited from a more privileged user namespace
// keeps ro, nosuid, nodev, noexec and its atime mode) make the remount fail
// with EPERM unless repeated, so on EPERM they are added and it is retried.
func remountBind(f *handle, flags uintptr) error {
	fl := unix.MS_BIND | unix.MS_REMOUNT | flags&perMountFlags
	err := unix.Mount("", fdPath(f), "", fl, "")
	if !errors.Is(err, unix.EPERM) {
		if err != nil {
			return fmt.Errorf("remount: %w", err)
		}
		return nil
	}
	var st unix.Statfs_t
	if serr := unix.Fstatfs(int(f.Fd()), &st); serr != nil {
		return fmt.Errorf("remount: %w (statfs: %v)", err, serr)
	}
	cur := statfsMountFlags(st.Flags)
	fl |= cur & (unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC | unix.MS_NOSYMFOLLOW)
	fl = fl&^(atimeFlags|unix.MS_NODIRATIME) | cur&(atimeFlags|unix.MS_NODIRATIME)
	if err := unix.Mount("", fdPath(f), "", fl, ""); err != nil {
		return fmt.Errorf("remount keeping locked flags: %w", err)
	}
	return nil
}

// mountTmpfs mounts a tmpfs whose root keeps the mode of the directory it
// covers (runc's behaviour; a "mode=" option still wins) and, for
// tmpcopyup, the directory's contents.
func (r *root) mountTmpfs(m *specMount) error {
	target, err := r.mkdirAll(m.dest)
	if err != nil {
		return fmt.Errorf("mount %s: %w", m, err)
	}
	defer target.Close()
	if err := r.checkProcDest(target, m, false); err != nil {
		return err
	}
	st, err := fstat(target)
	if err != nil {
		return fmt.Errorf("mount %s: %w", m, err)
	}
	data := fmt.Sprintf("mode=%04o", st.Mode&0o7777)
	if d := m.opts.dataString(); d != "" {
		data += "," + d
	}
	if !m.opts.copyUp {
		if err := mountAt(m.Source, target, "tmpfs", m.opts.flags, data); err != nil {
			return fmt.Errorf("mount %s: %w", m, err)
		}
		return r.afterMount(m.dest, target, m.opts)
	}

	// The old directory stays readable through this fd once covered.
	src, err := reopenDir(target)
	if err != nil {
		return fmt.Errorf("mount %s: %w", m, err)
	}
	defer src.Close()
	if err := mountAt(m.Source, target, "tmpfs", m.opts.flags&^unix.MS_RDONLY, data); err != nil {
		return fmt.Errorf("mount %s: %w", m, err)
	}
	top, err := r.reopenMount(m.dest, target)
	if err != nil {
		return fmt.Errorf("mount %s: %w", m, err)
	}
	defer top.Close()
	dst, err := reopenDir(top)
	if err != nil {
		return fmt.Errorf("mount %s: %w", m, err)
	}
	defer dst.Close()
	if err := copyTree(src, dst); err != nil {
		return fmt.Errorf("mount %s: tmpcopyup: %w", m, err)
	}
	if m.opts.flags&unix.MS_RDONLY != 0 {
		if err := remountBind(top, m.opts.flags); err != nil {
			return fmt.Errorf("mount %s: %w", m, err)
		}
	}
	return applyAfterMount(top, m.dest, m.opts)
}

func reopenDir(f *handle) (*os.File, error) {
	fd, err := unix.Open(fdPath(f), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open directory fd %d: %w", f.Fd(), err)
	}
	return os.NewFile(uintptr(fd), f.Name()), nil
}

// validProcMounts are the files under /proc that may be covered, all of
// them emulated by lxcfs; covering anything else in procfs (self, sys,
// sysrq-trigger, ...) is how container escapes are made.
var validProcMounts = map[string]bool{
	"/proc/cpuinfo":                true,
	"/proc/diskstats":              true,
	"/proc/meminfo":                true,
	"/proc/stat":                   true,
	"/proc/swaps":                  true,
	"/proc/uptime":                 true,
	"/proc/loadavg":                true,
	"/proc/slabinfo":               true,
	"/proc/pressure/cpu":           true,
	"/proc/pressure/io":            true,
	"/proc/pressure/memory":        true,
	"/proc/net/dev":                true,
	"/proc/sys/kernel/ns_last_pid": true,
}

// checkProcDest refuses mounts inside /proc except those in
// validProcMounts, and on /proc itself anything but procfs.
func (r *root) checkProcDest(target *handle, m *specMount, bind bool) error {
	p, err := r.containerPath(target)
	if err != nil {
		return fmt.Errorf("mount %s: %w", m, err)
	}
	return checkProcPath(p, m, bind)
}

// checkProcPath is checkProcDest for p, the container path a handle was
// found to lie at.
func checkProcPath(p string, m *specMount, bind bool) error {
	switch {
	case p == "/proc":
		if !bind && m.Type == "proc" {
			return nil
		}
		if bind {
			var st unix.Statfs_t
			if err := unix.Statfs(m.Source, &st); err == nil && st.Type == unix.PROC_SUPER_MAGIC {
				return nil
			}
		}
		return fmt.Errorf("mount %s: %s cannot be mounted because it is not of type proc", m, p)
	case strings.HasPrefix(p, "/proc/"):
		if validProcMounts[p] {
			return nil
		}
		return fmt.Errorf("mount %s: %s cannot be mounted because it is inside /proc", m, p)
	}
	return nil
}
