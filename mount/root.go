package mount

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strconv"
	"strings"
	"sync/atomic"

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
	// procFd is a verified handle on /proc/self/fd in a private clone of
	// /proc (see openProcSelfFd), opened once per root on first use:
	// pathrs verified procfs anew for every lookup, which was most of
	// Prepare's time.
	procFd *os.File
	// procFdMnt is procFd's mount id; a link whose mount id differs has
	// something mounted over it.
	procFdMnt uint64
}

// handle is an open fd, mostly O_PATH, with the name it was opened by.
// The lookups of Prepare and Finalize make dozens of them, and an
// *os.File costs an fcntl, an allocation and a finalizer each: a
// measurable share of the start path. Every handle is closed explicitly.
type handle struct {
	fd   int
	name string
}

func newHandle(fd int, name string) *handle { return &handle{fd: fd, name: name} }

func (h *handle) Fd() uintptr  { return uintptr(h.fd) }
func (h *handle) Name() string { return h.name }

// Close closes the fd once; later calls do nothing.
func (h *handle) Close() error {
	if h.fd < 0 {
		return nil
	}
	err := unix.Close(h.fd)
	h.fd = -1
	return err
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
	if r.procFd != nil {
		_ = r.procFd.Close()
		r.procFd = nil
	}
}

// noOpenat2 is set once openat2(2) turned out to be missing (ENOSYS), so
// that lookups go through securejoin's emulation from then on.
var noOpenat2 atomic.Bool

// scopedLookupRetries bounds the retries of a lookup that the kernel
// aborted with EAGAIN or EXDEV because a rename or mount raced with ".."
// resolution somewhere on the system (as pathrs does).
const scopedLookupRetries = 128

// open resolves p (a container path) inside the root, following symlinks
// within it, and returns an O_PATH handle. It is one openat2(2) with
// RESOLVE_IN_ROOT: the kernel itself keeps the walk, ".." and every
// symlink inside the root, and magic links are refused. pathrs'
// OpenatInRoot makes the same call but then reads the handle's path back
// through a freshly verified procfs only to name the file, ~15
// syscalls per lookup that protect nothing here.
func (r *root) open(p string) (*handle, error) {
	f, err := r.openat2(p, 0)
	if err != unix.ENOSYS {
		return f, err
	}
	pf, err := pathrs.OpenatInRoot(r.fd, p)
	if err != nil {
		return nil, fmt.Errorf("resolve %s in %s: %w", p, r.path, err)
	}
	defer pf.Close()
	fd, err := unix.FcntlInt(pf.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("resolve %s in %s: dup: %w", p, r.path, err)
	}
	return newHandle(fd, pf.Name()), nil
}

// openDirect is open for a path that must not go through any symlink:
// the fast paths of mkdirAll and createFile use it for the parent, so that
// the path they record in r.created is the one they made. It fails (with
// ELOOP, or ENOSYS without openat2) where the slow path has to be taken.
func (r *root) openDirect(p string) (*handle, error) {
	return r.openat2(p, unix.RESOLVE_NO_SYMLINKS)
}

// openat2 is the lookup of open, with extra resolve flags. It returns the
// bare ENOSYS when the kernel has no openat2(2).
func (r *root) openat2(p string, resolve uint64) (*handle, error) {
	if !noOpenat2.Load() {
		how := unix.OpenHow{
			Flags:   unix.O_PATH | unix.O_CLOEXEC,
			Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS | resolve,
		}
		for tries := 0; ; tries++ {
			fd, err := unix.Openat2(int(r.fd.Fd()), p, &how)
			if err == nil {
				return newHandle(fd, path.Join(r.path, p)), nil
			}
			if (err == unix.EAGAIN || err == unix.EXDEV) && tries < scopedLookupRetries {
				continue
			}
			if err != unix.ENOSYS {
				return nil, &resolveError{path: p, root: r.path, err: err}
			}
			noOpenat2.Store(true)
			break
		}
	}
	return nil, unix.ENOSYS
}

// resolveError is a failed in-root lookup. Most are expected ENOENTs
// (a mount point still to be made, a masked path the image lacks), so the
// message is only built when asked for: fmt.Errorf per lookup showed up
// in start-path profiles.
type resolveError struct {
	path, root string
	err        error
}

func (e *resolveError) Error() string {
	return "resolve " + e.path + " in " + e.root + ": " + e.err.Error()
}

func (e *resolveError) Unwrap() error { return e.err }

// procSelfFd returns the root's verified /proc/self/fd handle, opening it
// on first use.
func (r *root) procSelfFd() (*os.File, error) {
	if r.procFd != nil {
		return r.procFd, nil
	}
	dir, err := openProcSelfFd()
	if err != nil {
		return nil, err
	}
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(dir.Fd()), &st); err != nil || st.Type != unix.PROC_SUPER_MAGIC {
		_ = dir.Close()
		return nil, fmt.Errorf("/proc/self/fd handle is not on procfs (%v)", err)
	}
	id, err := mountIDOf(int(dir.Fd()))
	if err != nil {
		_ = dir.Close()
		return nil, err
	}
	r.procFd, r.procFdMnt = dir, id
	return dir, nil
}

// openProcSelfFd opens /proc/self/fd in a private clone of the /proc
// mount (open_tree): a detached copy that nothing can be mounted over,
// made without a new procfs instance (pathrs' fsopen("proc") costs
// ~0.2 ms here). Its root must be a procfs root (magic and inode 1) and
// the walk to self/fd must stay on it. Where open_tree fails, pathrs'
// verified procfs handle is used instead.
func openProcSelfFd() (*os.File, error) {
	const flags = unix.OPEN_TREE_CLONE | unix.OPEN_TREE_CLOEXEC | unix.AT_SYMLINK_NOFOLLOW
	tree, err := unix.OpenTree(unix.AT_FDCWD, "/proc", flags)
	if errors.Is(err, unix.EINVAL) {
		// Submounts locked by a user namespace can only be cloned
		// together with the mount they are on.
		tree, err = unix.OpenTree(unix.AT_FDCWD, "/proc", flags|unix.AT_RECURSIVE)
	}
	if err != nil {
		return pathrsProcSelfFd()
	}
	defer unix.Close(tree)
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(tree, &sfs); err != nil || sfs.Type != unix.PROC_SUPER_MAGIC {
		return nil, fmt.Errorf("/proc is not a procfs (%v)", err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(tree, &st); err != nil || st.Ino != procRootIno {
		return nil, fmt.Errorf("/proc is not the root of a procfs (%v)", err)
	}
	how := unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_XDEV | unix.RESOLVE_NO_MAGICLINKS,
	}
	for tries := 0; ; tries++ {
		fd, err := unix.Openat2(tree, "self/fd", &how)
		if err == nil {
			return os.NewFile(uintptr(fd), "/proc/self/fd"), nil
		}
		if (err == unix.EAGAIN || err == unix.EXDEV) && tries < scopedLookupRetries {
			continue
		}
		if err == unix.ENOSYS {
			return pathrsProcSelfFd()
		}
		return nil, fmt.Errorf("open /proc/self/fd: %w", err)
	}
}

// procRootIno is PROC_ROOT_INO, the inode number of a procfs's root.
const procRootIno = 1

// pathrsProcSelfFd is /proc/self/fd through pathrs' procfs handle (a
// private procfs instance, or a checked /proc).
func pathrsProcSelfFd() (*os.File, error) {
	proc, err := procfs.OpenProcRoot()
	if err != nil {
		return nil, fmt.Errorf("open procfs: %w", err)
	}
	defer proc.Close()
	dir, err := proc.OpenSelf("fd")
	if err != nil {
		return nil, fmt.Errorf("open /proc/self/fd: %w", err)
	}
	return dir, nil
}

// fdLink reads /proc/self/fd/<fd of f> through the verified handle, after
// making sure nothing is mounted over that link (two syscalls instead of
// pathrs' ~10 per call).
func (r *root) fdLink(f *handle) (string, error) {
	dir, err := r.procSelfFd()
	if err != nil {
		return "", err
	}
	name := strconv.Itoa(int(f.Fd()))
	var stx unix.Statx_t
	if err := unix.Statx(int(dir.Fd()), name, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_MNT_ID, &stx); err != nil {
		return "", fmt.Errorf("statx /proc/self/fd/%s: %w", name, err)
	}
	if r.procFdMnt != 0 && (stx.Mask&unix.STATX_MNT_ID == 0 || stx.Mnt_id != r.procFdMnt) {
		return "", fmt.Errorf("/proc/self/fd/%s has something mounted over it", name)
	}
	buf := make([]byte, unix.PathMax)
	n, err := unix.Readlinkat(int(dir.Fd()), name, buf)
	if err != nil {
		return "", fmt.Errorf("readlink /proc/self/fd/%s: %w", name, err)
	}
	if n == len(buf) {
		return "", fmt.Errorf("readlink /proc/self/fd/%s: %w", name, unix.ENAMETOOLONG)
	}
	return string(buf[:n]), nil
}

// containerPath is where an open handle lies, seen from inside the root.
func (r *root) containerPath(f *handle) (string, error) {
	p, err := r.fdLink(f)
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
// the root. The common case, a missing last component under an existing
// directory (a mount point in a tmpfs just mounted), is a mkdirat relative
// to the parent's in-root handle and an O_NOFOLLOW open of what it made:
// neither can leave the root. Anything else (several missing components,
// a dangling symlink) takes the component-wise walk in mkdirAllSlow.
func (r *root) mkdirAll(p string) (*handle, error) {
	f, done, err := r.openOrMakeIn(p, r.mkdirIn)
	if done {
		return f, err
	}
	return r.mkdirAllSlow(p)
}

// openOrMakeIn opens p, or makes its last component with makeIn relative to
// the parent's in-root handle when only that component is missing. done
// false means neither applied and the caller must take its slow path.
func (r *root) openOrMakeIn(p string, makeIn func(parent *handle, p string) (*handle, bool, error)) (f *handle, done bool, err error) {
	f, err = r.open(p)
	if err == nil {
		return f, true, nil
	}
	if !errors.Is(err, unix.ENOENT) {
		return nil, true, err
	}
	// Only for a clean absolute path: a ".." after a symlink must be
	// resolved by the slow path, not lexically.
	if p != "/" && p == path.Clean(p) && path.IsAbs(p) {
		if parent, perr := r.openDirect(path.Dir(p)); perr == nil {
			f, ok, err := makeIn(parent, p)
			_ = parent.Close()
			if ok || err != nil {
				return f, true, err
			}
		}
	}
	return nil, false, nil
}

// mkdirIn makes the last component of p (a cleaned container path) in
// parent, the handle of its directory, and opens it. ok is false when
// the name exists after all (a dangling symlink, or a race): the caller
// then takes the slow path, which knows how to follow it.
func (r *root) mkdirIn(parent *handle, p string) (_ *handle, ok bool, _ error) {
	name := path.Base(p)
	err := unix.Mkdirat(int(parent.Fd()), name, 0o755)
	if errors.Is(err, unix.EEXIST) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("mkdir %s in %s: %w", p, r.path, err)
	}
	r.created = append(r.created, createdEntry{path: p, dir: true})
	fd, err := unix.Openat(int(parent.Fd()), name, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, false, fmt.Errorf("open %s in %s: %w", p, r.path, err)
	}
	return newHandle(fd, path.Join(r.path, p)), true, nil
}

// mkdirAllSlow walks p component by component, every step a fresh in-root
// lookup, so a concurrent swap can at worst move the result elsewhere
// inside the root.
func (r *root) mkdirAllSlow(p string) (*handle, error) {
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
func (r *root) createFile(p string) (*handle, error) {
	// Fast path as in mkdirAll: the parent exists and the name does not,
	// so the file is created with O_EXCL|O_NOFOLLOW relative to the
	// parent's in-root handle and opened the same way.
	if f, done, err := r.openOrMakeIn(p, r.createIn); done {
		return f, err
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

// createIn creates the last component of p (a cleaned container path) as
// an empty file in dir and returns an O_PATH handle to it; ok is false
// when the name exists (a dangling symlink, or a race).
func (r *root) createIn(dir *handle, p string) (_ *handle, ok bool, _ error) {
	name := path.Base(p)
	fd, err := unix.Openat(int(dir.Fd()), name, unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
	if errors.Is(err, unix.EEXIST) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("create %s in %s: %w", p, r.path, err)
	}
	_ = unix.Close(fd)
	r.created = append(r.created, createdEntry{path: p})
	fd, err = unix.Openat(int(dir.Fd()), name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, false, fmt.Errorf("open %s in %s: %w", p, r.path, err)
	}
	return newHandle(fd, path.Join(r.path, p)), true, nil
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
func fdPath(f *handle) string {
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
func mountID(f *handle) (uint64, error) { return mountIDOf(f.fd) }

func mountIDOf(fd int) (uint64, error) {
	var stx unix.Statx_t
	if err := unix.Statx(fd, "", unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW, unix.STATX_MNT_ID, &stx); err != nil {
		return 0, fmt.Errorf("statx fd %d: %w", fd, err)
	}
	if stx.Mask&unix.STATX_MNT_ID == 0 {
		return 0, nil
	}
	return stx.Mnt_id, nil
}

func fstat(f *handle) (unix.Stat_t, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return st, fmt.Errorf("stat fd %d: %w", f.Fd(), err)
	}
	return st, nil
}

func isDir(st unix.Stat_t) bool { return st.Mode&unix.S_IFMT == unix.S_IFDIR }
