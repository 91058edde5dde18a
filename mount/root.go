package mount

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strconv"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"github.com/cyphar/filepath-securejoin/pathrs-lite/procfs"
	"golang.org/x/sys/unix"
)

// root is a directory tree every container path is resolved in. Lookups
// go through the open handle with openat2(RESOLVE_IN_ROOT) (or
// securejoin's emulation of it), so a symlink in the container can never
// lead out of the tree, and mounts go through the resulting O_PATH fd so a
// path swapped after the lookup cannot redirect them.
type root struct {
	path string
	fd   *os.File
	// created records what mkdirAll and createFile made, so that a failed
	// Prepare can remove it again.
	created []createdEntry
}

type createdEntry struct {
	path string
	dir  bool
}

func openRoot(dir string) (*root, error) {
	f, err := os.OpenFile(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open root %s: %w", dir, err)
	}
	return &root{path: dir, fd: f}, nil
}

func (r *root) close() {
	if r.fd != nil {
		_ = r.fd.Close()
		r.fd = nil
	}
}

// open resolves p (a container path) inside the root, following symlinks
// within it, and returns an O_PATH handle.
func (r *root) open(p string) (*os.File, error) {
	f, err := pathrs.OpenatInRoot(r.fd, p)
	if err != nil {
		return nil, fmt.Errorf("resolve %s in %s: %w", p, r.path, err)
	}
	return f, nil
}

// containerPath is where an open handle lies, seen from inside the root.
func (r *root) containerPath(f *os.File) (string, error) {
	p, err := procfs.ProcSelfFdReadlink(f)
	if err != nil {
		return "", fmt.Errorf("read path of fd %d: %w", f.Fd(), err)
	}
	if r.path == "/" {
		return p, nil
	}
	if p == r.path {
		return "/", nil
	}
	rel, ok := strings.CutPrefix(p, r.path+"/")
	if !ok {
		return "", fmt.Errorf("%s resolved outside of %s", p, r.path)
	}
	return "/" + rel, nil
}

// mkdirAll makes the directory p and its missing parents inside the root
// and returns an O_PATH handle to it. Existing symlinks are followed within
// the root; every step is a fresh in-root lookup, so a concurrent swap can
// at worst move the result elsewhere inside the root.
func (r *root) mkdirAll(p string) (*os.File, error) {
	f, err := r.open(p)
	if err == nil {
		return f, nil
	}
	if !errors.Is(err, unix.ENOENT) {
		return nil, err
	}
	// Resolve the symlinks that do exist (a dangling one names the
	// directory to create), lexically clamped to the root.
	full, err := securejoin.SecureJoin(r.path, p)
	if err != nil {
		return nil, fmt.Errorf("resolve %s in %s: %w", p, r.path, err)
	}
	rel := strings.TrimPrefix(strings.TrimPrefix(full, r.path), "/")
	parent, err := r.open("/")
	if err != nil {
		return nil, err
	}
	cur := "/"
	for _, name := range strings.Split(rel, "/") {
		if name == "" {
			continue
		}
		next := path.Join(cur, name)
		f, err := r.open(next)
		if errors.Is(err, unix.ENOENT) {
			if err := unix.Mkdirat(int(parent.Fd()), name, 0o755); err == nil {
				r.created = append(r.created, createdEntry{path: next, dir: true})
			} else if !errors.Is(err, unix.EEXIST) {
				_ = parent.Close()
				return nil, fmt.Errorf("mkdir %s in %s: %w", next, r.path, err)
			}
			f, err = r.open(next)
		}
		_ = parent.Close()
		if err != nil {
			return nil, err
		}
		parent, cur = f, next
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(parent.Fd()), &st); err != nil {
		_ = parent.Close()
		return nil, fmt.Errorf("stat %s in %s: %w", p, r.path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		_ = parent.Close()
		return nil, fmt.Errorf("%s in %s: %w", p, r.path, unix.ENOTDIR)
	}
	return parent, nil
}

// createFile makes sure p exists as a non-directory (an empty regular file
// when missing) and returns an O_PATH handle to it.
func (r *root) createFile(p string) (*os.File, error) {
	f, err := r.open(p)
	if err == nil {
		return f, nil
	}
	if !errors.Is(err, unix.ENOENT) {
		return nil, err
	}
	full, err := securejoin.SecureJoin(r.path, p)
	if err != nil {
		return nil, fmt.Errorf("resolve %s in %s: %w", p, r.path, err)
	}
	rel := "/" + strings.TrimPrefix(strings.TrimPrefix(full, r.path), "/")
	if rel == "/" {
		return nil, fmt.Errorf("%s resolves to the root of %s", p, r.path)
	}
	dir, err := r.mkdirAll(path.Dir(rel))
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	name := path.Base(rel)
	fd, err := unix.Openat(int(dir.Fd()), name, unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
	switch {
	case err == nil:
		_ = unix.Close(fd)
		r.created = append(r.created, createdEntry{path: rel})
	case !errors.Is(err, unix.EEXIST):
		return nil, fmt.Errorf("create %s in %s: %w", rel, r.path, err)
	}
	return r.open(rel)
}

// removeCreated deletes what mkdirAll and createFile made, newest first.
// Entries that are no longer empty, or already gone, are left alone: they
// now hold something this package did not put there.
func (r *root) removeCreated() error {
	var errs []error
	for i := len(r.created) - 1; i >= 0; i-- {
		e := r.created[i]
		dir, err := r.open(path.Dir(e.path))
		if err != nil {
			if !errors.Is(err, unix.ENOENT) {
				errs = append(errs, err)
			}
			continue
		}
		flags := 0
		if e.dir {
			flags = unix.AT_REMOVEDIR
		}
		err = unix.Unlinkat(int(dir.Fd()), path.Base(e.path), flags)
		_ = dir.Close()
		if err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.ENOTEMPTY) &&
			!errors.Is(err, unix.EEXIST) && !errors.Is(err, unix.EBUSY) {
			errs = append(errs, fmt.Errorf("remove %s from %s: %w", e.path, r.path, err))
		}
	}
	r.created = nil
	return errors.Join(errs...)
}

// fdPath names an open fd for syscalls that take a path; the kernel follows
// the magic link to exactly the file the fd holds.
func fdPath(f *os.File) string {
	return "/proc/self/fd/" + strconv.Itoa(int(f.Fd()))
}

// checkProcfs makes sure /proc/self/fd is a real procfs, since every mount
// below trusts its magic links.
func checkProcfs() error {
	var st unix.Statfs_t
	if err := unix.Statfs("/proc/self/fd", &st); err != nil {
		return fmt.Errorf("statfs /proc/self/fd: %w", err)
	}
	if st.Type != unix.PROC_SUPER_MAGIC {
		return fmt.Errorf("/proc/self/fd is not on procfs (magic %#x)", st.Type)
	}
	return nil
}

// mountID is the kernel's id of the mount f lies on.
func mountID(f *os.File) (uint64, error) {
	var stx unix.Statx_t
	if err := unix.Statx(int(f.Fd()), "", unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW, unix.STATX_MNT_ID, &stx); err != nil {
		return 0, fmt.Errorf("statx fd %d: %w", f.Fd(), err)
	}
	if stx.Mask&unix.STATX_MNT_ID == 0 {
		return 0, nil
	}
	return stx.Mnt_id, nil
}

func fstat(f *os.File) (unix.Stat_t, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return st, fmt.Errorf("stat fd %d: %w", f.Fd(), err)
	}
	return st, nil
}

func isDir(st unix.Stat_t) bool { return st.Mode&unix.S_IFMT == unix.S_IFDIR }
