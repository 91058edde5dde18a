package libcontainer

import (
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"

	"github.com/runmini/runmini/internal/companion"
	"github.com/runmini/runmini/libcontainer/nsenter"
)

// sealedExe returns a handle on runmini's own binary that a container can
// never write through (CVE-2019-5736: a container process re-opening
// /proc/self/exe of the init and overwriting the host's runtime).
//
// The cheap way is a private read-only bind of the binary: open_tree clones
// a detached mount of just this file, mount_setattr makes it read-only, and
// the init is executed through it, so its /proc/self/exe points into a mount
// that refuses writes (EROFS) and that no path on the host reaches. That
// costs two syscalls instead of copying the whole binary (runc 1.1's memfd
// copy, ~10 ms per container and charged to the container's memory cgroup).
// Kernels without the new mount API get the sealed memfd copy.
func sealedExe(joins bool) (*os.File, error) {
	exe, err := initBinary(joins)
	if err != nil {
		return nil, err
	}
	fd, err := unix.OpenTree(unix.AT_FDCWD, exe, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err == nil {
		attr := &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV}
		if err = unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, attr); err == nil {
			return os.NewFile(uintptr(fd), "runmini-exe"), nil
		}
		unix.Close(fd)
	}
	return memfdExe(exe)
}

// initBinary is the binary the init runs from: runmini-init installed
// beside this program (a small pure Go binary: the Go runtime start that
// every container pays is cheaper), or runmini-init-nsenter when the init
// must join namespaces (the same init with the cgo constructor that does
// it), else this program itself, which has the init built in, and the
// constructor too where it was built with cgo (the shim; runmini is not).
func initBinary(joins bool) (string, error) {
	name := "runmini-init"
	if joins {
		name = "runmini-init-nsenter"
	}
	p, self, ok := companion.Path(name)
	if ok {
		return p, nil
	}
	if joins && !nsenter.Linked {
		return "", fmt.Errorf("%s is missing beside %s: it joins the namespaces the container shares; install it from the same build", name, self)
	}
	return "/proc/self/exe", nil
}

func memfdExe(exe string) (*os.File, error) {
	src, err := os.Open(exe)
	if err != nil {
		return nil, fmt.Errorf("open own binary: %w", err)
	}
	defer src.Close()
	fd, err := unix.MemfdCreate("runmini", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	dst := os.NewFile(uintptr(fd), "runmini-memfd")
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return nil, fmt.Errorf("copy own binary: %w", err)
	}
	const seals = unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	if _, err := unix.FcntlInt(dst.Fd(), unix.F_ADD_SEALS, seals); err != nil {
		dst.Close()
		return nil, fmt.Errorf("seal own binary: %w", err)
	}
	return dst, nil
}
