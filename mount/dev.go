package mount

import (
	"errors"
	"fmt"
	"path"
	"strconv"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// defaultDevices are the nodes every container gets (runtime spec,
// "Default Devices"); a spec device with the same path replaces one.
var defaultDevices = []specs.LinuxDevice{
	{Path: "/dev/null", Type: "c", Major: 1, Minor: 3},
	{Path: "/dev/zero", Type: "c", Major: 1, Minor: 5},
	{Path: "/dev/full", Type: "c", Major: 1, Minor: 7},
	{Path: "/dev/random", Type: "c", Major: 1, Minor: 8},
	{Path: "/dev/urandom", Type: "c", Major: 1, Minor: 9},
	{Path: "/dev/tty", Type: "c", Major: 5, Minor: 0},
}

// devSetup says what /dev needs: nothing when /dev is bound from elsewhere
// (creating nodes there would change someone else's /dev), everything when
// it is a tmpfs of ours or the spec lists devices.
func devSetup(c *Config, mounts []*specMount) bool {
	devTmpfs := false
	for _, m := range mounts {
		if m.dest != "/dev" {
			continue
		}
		if m.opts.isBind() {
			return false
		}
		devTmpfs = m.Type == "tmpfs"
	}
	return devTmpfs || len(c.Devices) > 0
}

func hasProcMount(mounts []*specMount) bool {
	for _, m := range mounts {
		if m.dest == "/proc" && m.Type == "proc" && !m.opts.isBind() {
			return true
		}
	}
	return false
}

func (r *root) setupDev(c *Config, mounts []*specMount) error {
	devs := append([]specs.LinuxDevice(nil), c.Devices...)
	have := map[string]bool{}
	for _, d := range devs {
		have[path.Clean("/"+d.Path)] = true
	}
	for _, d := range defaultDevices {
		if !have[d.Path] {
			devs = append(devs, d)
		}
	}
	// One lookup of /dev serves every node directly in it.
	dev, err := r.mkdirAll("/dev")
	if err != nil {
		return err
	}
	defer dev.Close()
	for _, d := range devs {
		if err := r.createDevice(d, c.NewUserNS, dev); err != nil {
			return err
		}
	}
	links := [][2]string{
		{"/proc/self/fd", "fd"},
		{"/proc/self/fd/0", "stdin"},
		{"/proc/self/fd/1", "stdout"},
		{"/proc/self/fd/2", "stderr"},
	}
	if hasProcMount(mounts) {
		links = append(links, [2]string{"/proc/kcore", "core"})
	}
	for _, l := range links {
		err := unix.Symlinkat(l[0], int(dev.Fd()), l[1])
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("symlink /dev/%s -> %s: %w", l[1], l[0], err)
		}
	}
	// ptmx must be the devpts instance's, whatever the rootfs had there.
	if err := unix.Unlinkat(int(dev.Fd()), "ptmx", 0); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("remove /dev/ptmx: %w", err)
	}
	if err := unix.Symlinkat("pts/ptmx", int(dev.Fd()), "ptmx"); err != nil {
		return fmt.Errorf("symlink /dev/ptmx -> pts/ptmx: %w", err)
	}
	return nil
}

func deviceType(t string) (uint32, error) {
	switch t {
	case "c", "u":
		return unix.S_IFCHR, nil
	case "b":
		return unix.S_IFBLK, nil
	case "p":
		return unix.S_IFIFO, nil
	}
	return 0, fmt.Errorf("unknown device type %q", t)
}

func checkDevice(d specs.LinuxDevice) error {
	p := path.Clean("/" + d.Path)
	if p == "/" {
		return fmt.Errorf("device %q: invalid path", d.Path)
	}
	if _, err := deviceType(d.Type); err != nil {
		return fmt.Errorf("device %s: %w", p, err)
	}
	if d.Major < 0 || d.Minor < 0 || d.Major > 0xfffff || d.Minor > 0xfffff {
		return fmt.Errorf("device %s: invalid number %d:%d", p, d.Major, d.Minor)
	}
	return nil
}

// createDevice makes one device node with mknod, or, where mknod is not
// allowed (user namespace), bind-mounts the host's node onto an empty file.
// dev is the handle of the container's /dev, used for nodes directly in
// it; others look their directory up.
func (r *root) createDevice(d specs.LinuxDevice, bind bool, dev *handle) error {
	if err := checkDevice(d); err != nil {
		return err
	}
	p := path.Clean("/" + d.Path)
	typ, _ := deviceType(d.Type)
	rdev := unix.Mkdev(uint32(d.Major), uint32(d.Minor))
	if typ == unix.S_IFIFO {
		rdev = 0
	}
	perm := uint32(0o666)
	if d.FileMode != nil {
		perm = uint32(d.FileMode.Perm())
	}
	uid, gid := -1, -1
	if d.UID != nil {
		uid = int(*d.UID)
	}
	if d.GID != nil {
		gid = int(*d.GID)
	}
	if bind && typ != unix.S_IFIFO {
		return r.bindDevice(p, typ, rdev)
	}
	dir := dev
	if path.Dir(p) != "/dev" {
		var err error
		if dir, err = r.mkdirAll(path.Dir(p)); err != nil {
			return fmt.Errorf("device %s: %w", p, err)
		}
		defer dir.Close()
	}
	name := path.Base(p)
	err := unix.Mknodat(int(dir.Fd()), name, typ|perm, int(rdev))
	replaced := false
	if errors.Is(err, unix.EEXIST) {
		// Whatever the rootfs had there is replaced by what the spec says.
		if err := unix.Unlinkat(int(dir.Fd()), name, 0); err != nil {
			return fmt.Errorf("device %s: remove existing: %w", p, err)
		}
		replaced = true
		err = unix.Mknodat(int(dir.Fd()), name, typ|perm, int(rdev))
	}
	if errors.Is(err, unix.EPERM) && typ != unix.S_IFIFO && !replaced {
		return r.bindDevice(p, typ, rdev)
	}
	if err != nil {
		return fmt.Errorf("device %s: mknod: %w", p, err)
	}
	if !replaced {
		r.created = append(r.created, createdEntry{path: p})
	}
	// A bare fd: this runs for every device.
	fd, err := unix.Openat(int(dir.Fd()), name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("device %s: open: %w", p, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("device %s: stat: %w", p, err)
	}
	if st.Mode&unix.S_IFMT != typ || (typ != unix.S_IFIFO && st.Rdev != rdev) {
		return fmt.Errorf("device %s: replaced while being created", p)
	}
	nodePath := "/proc/self/fd/" + strconv.Itoa(fd)
	// mknod is subject to the umask; chmod is not. It is skipped when the
	// umask took nothing away.
	if st.Mode&0o7777 != perm {
		if err := unix.Chmod(nodePath, perm); err != nil {
			return fmt.Errorf("device %s: chmod: %w", p, err)
		}
	}
	if uid != -1 || gid != -1 {
		if err := unix.Chown(nodePath, uid, gid); err != nil {
			return fmt.Errorf("device %s: chown: %w", p, err)
		}
	}
	return nil
}

// bindDevice bind-mounts the host's node at the same path, after checking
// it is the device the spec names.
func (r *root) bindDevice(p string, typ uint32, rdev uint64) error {
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		return fmt.Errorf("device %s: host node: %w", p, err)
	}
	if st.Mode&unix.S_IFMT != typ || st.Rdev != rdev {
		return fmt.Errorf("device %s: host node is not device %d:%d of that type", p, unix.Major(rdev), unix.Minor(rdev))
	}
	target, err := r.createFile(p)
	if err != nil {
		return fmt.Errorf("device %s: %w", p, err)
	}
	defer target.Close()
	if err := mountAt(p, target, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("device %s: bind host node: %w", p, err)
	}
	return nil
}
