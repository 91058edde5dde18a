package cgroups

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/runmini/runmini/internal/sysfile"
)

// cgroupFiles reads and writes control files. trace, when set by a
// test, sees every write in order (a temp file only keeps the last one).
type cgroupFiles struct {
	trace func(path, value string)
}

// write sets dir/file to value. It never creates the file: a missing
// control file means the controller or knob is absent, and creating a
// regular file in its place would hide that.
func (f cgroupFiles) write(dir, file, value string) error {
	p := filepath.Join(dir, file)
	if f.trace != nil {
		f.trace(p, value)
	}
	if err := sysfile.Write(p, []byte(value), unix.O_TRUNC, 0); err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return fmt.Errorf("write %q to %s: %w", value, p, err)
	}
	return nil
}

func (f cgroupFiles) read(dir, file string) (string, error) {
	b, err := sysfile.Read(filepath.Join(dir, file))
	if err != nil {
		return "", fmt.Errorf("read cgroup file: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// readUint reads a single number; "max" and v1's huge "unlimited" values
// both come back as-is, "max" as MaxUint64.
func (f cgroupFiles) readUint(dir, file string) (uint64, error) {
	s, err := f.read(dir, file)
	if err != nil {
		return 0, err
	}
	if s == "max" {
		return ^uint64(0), nil
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parse %s: %w", filepath.Join(dir, file), err)
	}
	return v, nil
}

// readKeyed reads a flat-keyed file such as cgroup.events.
func (f cgroupFiles) readKeyed(dir, file string) (map[string]string, error) {
	s, err := f.read(dir, file)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, line := range strings.Split(s, "\n") {
		if k, v, ok := strings.Cut(line, " "); ok {
			out[k] = strings.TrimSpace(v)
		}
	}
	return out, nil
}

// mkdirAll creates dir and its missing parents like os.MkdirAll and
// returns the directories it made, top first, so that a failure later on
// can remove exactly those.
func mkdirAll(dir string) ([]string, error) {
	// Mostly only the last element is missing: one mkdir.
	switch err := unix.Mkdir(dir, 0o755); {
	case err == nil:
		return []string{dir}, nil
	case err != unix.ENOENT && err != unix.EEXIST:
		return nil, fmt.Errorf("create cgroup %s: %w", dir, &os.PathError{Op: "mkdir", Path: dir, Err: err})
	}
	var missing []string
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			break
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("create cgroup %s: %w", dir, err)
		}
		missing = append(missing, d)
		if d == filepath.Dir(d) {
			break
		}
	}
	var made []string
	for i := len(missing) - 1; i >= 0; i-- {
		if err := os.Mkdir(missing[i], 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			removeDirs(made)
			return nil, fmt.Errorf("create cgroup %s: %w", dir, err)
		}
		made = append(made, missing[i])
	}
	return made, nil
}

// removeDirs removes directories made by mkdirAll, deepest first. It is
// only used to undo a failed Create, so errors are not reported: the
// original error is the one that matters. RemoveAll is safe here: these
// directories are ours and hold no child cgroup we did not make, and on
// cgroupfs it is a plain rmdir.
func removeDirs(made []string) {
	for i := len(made) - 1; i >= 0; i-- {
		_ = os.RemoveAll(made[i])
	}
}

// removeBudget is how long one Destroy keeps retrying EBUSY in total.
const removeBudget = 300 * time.Millisecond

// removeTree removes a cgroup and every child cgroup below it, leaves
// first. Control files are not removed (cgroupfs drops them with their
// directory), so only directories are visited. EBUSY is retried until
// deadline.
func removeTree(dir string, deadline time.Time) error {
	// Most cgroups have no children and no tasks left: one rmdir, without
	// listing the dozens of control files. EBUSY (children, or tasks still
	// being released) takes the long way.
	if err := unix.Rmdir(dir); err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove cgroup %s: %w", dir, err)
	}
	var errs []error
	for _, e := range entries {
		if e.IsDir() {
			errs = append(errs, removeTree(filepath.Join(dir, e.Name()), deadline))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return rmdir(dir, deadline)
}

// rmdir removes one cgroup directory. The kernel answers EBUSY for a
// short while after the last task exited (it is still being released),
// so EBUSY is retried with a growing delay until deadline; a cgroup that
// still holds live tasks fails once the deadline has passed.
func rmdir(dir string, deadline time.Time) error {
	delay := 5 * time.Millisecond
	for {
		err := unix.Rmdir(dir)
		if err == nil || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if !errors.Is(err, unix.EBUSY) || time.Now().Add(delay).After(deadline) {
			return fmt.Errorf("remove cgroup %s: %w", dir, err)
		}
		time.Sleep(delay)
		delay *= 2
	}
}
