package spec

import (
	"bufio"
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// nsKind is what the kernel calls a namespace type: its clone flag (the
// answer of NS_GET_NSTYPE) and its name under /proc/<pid>/ns.
type nsKind struct {
	flag int
	proc string
}

var nsKinds = map[specs.LinuxNamespaceType]nsKind{
	specs.PIDNamespace:     {unix.CLONE_NEWPID, "pid"},
	specs.NetworkNamespace: {unix.CLONE_NEWNET, "net"},
	specs.MountNamespace:   {unix.CLONE_NEWNS, "mnt"},
	specs.IPCNamespace:     {unix.CLONE_NEWIPC, "ipc"},
	specs.UTSNamespace:     {unix.CLONE_NEWUTS, "uts"},
	specs.UserNamespace:    {unix.CLONE_NEWUSER, "user"},
	specs.CgroupNamespace:  {unix.CLONE_NEWCGROUP, "cgroup"},
	specs.TimeNamespace:    {unix.CLONE_NEWTIME, "time"},
}

func nsTypeName(flag int) string {
	for t, k := range nsKinds {
		if k.flag == flag {
			return string(t)
		}
	}
	return fmt.Sprintf("unknown (%#x)", flag)
}

func checkNamespaces(v *validation) error {
	seen := make(map[specs.LinuxNamespaceType]bool)
	for _, ns := range v.linux().Namespaces {
		kind, ok := nsKinds[ns.Type]
		if !ok {
			return fmt.Errorf("namespace %q does not exist", ns.Type)
		}
		if seen[ns.Type] {
			return fmt.Errorf("malformed spec file: duplicated ns %q", ns.Type)
		}
		seen[ns.Type] = true
		if _, err := os.Stat("/proc/self/ns/" + kind.proc); errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%s namespaces aren't enabled in the kernel", ns.Type)
		}
		if ns.Path == "" {
			continue
		}
		if !filepath.IsAbs(ns.Path) {
			return fmt.Errorf("namespace %q: path %q is not absolute", ns.Type, ns.Path)
		}
		f, err := openNamespace(ns.Path)
		if err != nil {
			return fmt.Errorf("namespace %q: %w", ns.Type, err)
		}
		got, err := unix.IoctlRetInt(int(f.Fd()), unix.NS_GET_NSTYPE)
		f.Close()
		if err != nil {
			return fmt.Errorf("namespace %q: get type of %s: %w", ns.Type, ns.Path, err)
		}
		if got != kind.flag {
			return fmt.Errorf("namespace %q: path %s is a %s namespace", ns.Type, ns.Path, nsTypeName(got))
		}
	}
	return checkJoinedUserNamespace(v)
}

// openNamespace opens a namespace file for ioctl(2). The path is opened
// with O_PATH first so that a path naming something else (a fifo, a
// device) is refused without the side effects of really opening it.
func openNamespace(path string) (*os.File, error) {
	fd, err := unix.Open(path, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	var st unix.Statfs_t
	if err := unix.Fstatfs(fd, &st); err != nil {
		return nil, &os.PathError{Op: "statfs", Path: path, Err: err}
	}
	if st.Type != unix.NSFS_MAGIC {
		return nil, fmt.Errorf("%s is not a namespace file", path)
	}
	f, err := os.OpenFile("/proc/self/fd/"+strconv.Itoa(fd), os.O_RDONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return f, nil
}

// sameNamespace reports whether two namespace files name one namespace.
func sameNamespace(a, b string) (bool, error) {
	var sa, sb unix.Stat_t
	if err := unix.Stat(a, &sa); err != nil {
		return false, &os.PathError{Op: "stat", Path: a, Err: err}
	}
	if err := unix.Stat(b, &sb); err != nil {
		return false, &os.PathError{Op: "stat", Path: b, Err: err}
	}
	return sa.Dev == sb.Dev && sa.Ino == sb.Ino, nil
}

// maxUserNSDepth is the kernel's limit on user namespace nesting.
const maxUserNSDepth = 32

// checkJoinedUserNamespace enforces the kernel's rule for joining a user
// namespace by path: the user namespace is entered first, after which the
// process only holds capabilities in it and its descendants, so every other
// namespace joined by path must be owned by one of those, or setns(2)
// fails with EPERM halfway through creating the container.
func checkJoinedUserNamespace(v *validation) error {
	userPath, ok := HasNamespace(v.s, specs.UserNamespace)
	if !ok || userPath == "" {
		return nil
	}
	var user unix.Stat_t
	if err := unix.Stat(userPath, &user); err != nil {
		return fmt.Errorf("namespace %q: %w", specs.UserNamespace, &os.PathError{Op: "stat", Path: userPath, Err: err})
	}
	for _, ns := range v.linux().Namespaces {
		if ns.Type == specs.UserNamespace || ns.Path == "" {
			continue
		}
		owned, err := ownedBy(ns.Path, user)
		if err != nil {
			return fmt.Errorf("namespace %q: %w", ns.Type, err)
		}
		if !owned {
			return fmt.Errorf("namespace %q: %s cannot be joined from the user namespace %s: it is not owned by that user namespace or one of its descendants",
				ns.Type, ns.Path, userPath)
		}
	}
	return nil
}

// ownedBy reports whether the namespace at path is owned by the user
// namespace identified by user, or by a descendant of it.
func ownedBy(path string, user unix.Stat_t) (bool, error) {
	f, err := openNamespace(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	cur, err := unix.IoctlRetInt(int(f.Fd()), unix.NS_GET_USERNS)
	if err != nil {
		return false, fmt.Errorf("get owning user namespace of %s: %w", path, err)
	}
	defer func() { unix.Close(cur) }()
	for range maxUserNSDepth + 1 {
		var st unix.Stat_t
		if err := unix.Fstat(cur, &st); err != nil {
			return false, fmt.Errorf("stat user namespace owning %s: %w", path, err)
		}
		if st.Dev == user.Dev && st.Ino == user.Ino {
			return true, nil
		}
		parent, err := unix.IoctlRetInt(cur, unix.NS_GET_PARENT)
		if errors.Is(err, unix.EPERM) {
			// The top of the hierarchy visible to us: user is not an
			// ancestor.
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("walk user namespaces owning %s: %w", path, err)
		}
		unix.Close(cur)
		cur = parent
	}
	return false, nil
}

// maxIDMapLines is the kernel's limit on lines in uid_map and gid_map.
const maxIDMapLines = 340

func checkUserNamespace(v *validation) error {
	l := v.linux()
	path, user := HasNamespace(v.s, specs.UserNamespace)
	hasMappings := len(l.UIDMappings) > 0 || len(l.GIDMappings) > 0
	if !user {
		if hasMappings {
			return errors.New("user namespace mappings specified, but user namespace isn't enabled in the config")
		}
		return nil
	}
	if err := checkIDMappings("linux.uidMappings", l.UIDMappings); err != nil {
		return err
	}
	if err := checkIDMappings("linux.gidMappings", l.GIDMappings); err != nil {
		return err
	}
	uidMap, gidMap := l.UIDMappings, l.GIDMappings
	if path == "" {
		if !hasMappings {
			return errors.New("user namespaces enabled, but no namespace path to join nor mappings to apply specified")
		}
		if len(uidMap) == 0 {
			return errors.New("user namespaces enabled, but no uid mappings found")
		}
		if len(gidMap) == 0 {
			return errors.New("user namespaces enabled, but no gid mappings found")
		}
	} else {
		// containerd and CRI-O pass the mappings of the user namespace they
		// ask to join; runc tolerates that when the mappings match.
		curUID, curGID, found, err := joinedUserNSMappings(path)
		if err != nil {
			return fmt.Errorf("namespace %q: %w", specs.UserNamespace, err)
		}
		switch {
		case found && hasMappings:
			if !sameMappings(curUID, l.UIDMappings) || !sameMappings(curGID, l.GIDMappings) {
				return errors.New("user namespaces enabled, but both namespace path and non-matching mapping specified -- you may only provide one")
			}
			slog.Warn("config.json has both a userns path to join and a matching userns mapping specified -- you may only provide one")
		case hasMappings:
			slog.Warn("config.json has both a userns path to join and userns mappings; the mappings are ignored and could not be compared with the namespace's",
				"path", path)
		}
		if !found {
			return nil
		}
		uidMap, gidMap = curUID, curGID
	}
	u := v.s.Process.User
	if !mapped(uidMap, u.UID) {
		return fmt.Errorf("process.user.uid %d is not mapped in the container's user namespace", u.UID)
	}
	if !mapped(gidMap, u.GID) {
		return fmt.Errorf("process.user.gid %d is not mapped in the container's user namespace", u.GID)
	}
	for i, g := range u.AdditionalGids {
		if !mapped(gidMap, g) {
			return fmt.Errorf("process.user.additionalGids[%d] %d is not mapped in the container's user namespace", i, g)
		}
	}
	return nil
}

// checkIDMappings applies the kernel's rules for uid_map and gid_map.
func checkIDMappings(field string, ms []specs.LinuxIDMapping) error {
	if len(ms) > maxIDMapLines {
		return fmt.Errorf("%s has %d entries, the kernel allows %d", field, len(ms), maxIDMapLines)
	}
	for i, m := range ms {
		if m.Size == 0 {
			return fmt.Errorf("%s[%d]: size must be greater than zero", field, i)
		}
		if uint64(m.ContainerID)+uint64(m.Size) > 1<<32 || uint64(m.HostID)+uint64(m.Size) > 1<<32 {
			return fmt.Errorf("%s[%d]: range overflows 32-bit ids", field, i)
		}
		for j, o := range ms[:i] {
			if overlaps(m.ContainerID, o.ContainerID, m.Size, o.Size) {
				return fmt.Errorf("%s[%d]: container ids overlap %s[%d]", field, i, field, j)
			}
			if overlaps(m.HostID, o.HostID, m.Size, o.Size) {
				return fmt.Errorf("%s[%d]: host ids overlap %s[%d]", field, i, field, j)
			}
		}
	}
	return nil
}

func overlaps(a, b, sizeA, sizeB uint32) bool {
	return uint64(a) < uint64(b)+uint64(sizeB) && uint64(b) < uint64(a)+uint64(sizeA)
}

func mapped(ms []specs.LinuxIDMapping, id uint32) bool {
	for _, m := range ms {
		if id >= m.ContainerID && uint64(id) < uint64(m.ContainerID)+uint64(m.Size) {
			return true
		}
	}
	return false
}

func sameMappings(a, b []specs.LinuxIDMapping) bool {
	byIDs := func(x, y specs.LinuxIDMapping) int {
		return cmp.Or(cmp.Compare(x.ContainerID, y.ContainerID), cmp.Compare(x.HostID, y.HostID), cmp.Compare(x.Size, y.Size))
	}
	a, b = slices.Clone(a), slices.Clone(b)
	slices.SortFunc(a, byIDs)
	slices.SortFunc(b, byIDs)
	return slices.Equal(a, b)
}

// joinedUserNSMappings reads the id mappings of the user namespace at path
// from a process that is in it. Go cannot setns(2) into a user namespace to
// read them directly, so the process is found from the path
// (/proc/<pid>/ns/user) or, for a bind-mounted namespace file, by scanning
// /proc. found is false when no process is in that namespace.
func joinedUserNSMappings(path string) (uidMap, gidMap []specs.LinuxIDMapping, found bool, err error) {
	var want unix.Stat_t
	if err := unix.Stat(path, &want); err != nil {
		return nil, nil, false, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	inNS := func(dir string) bool {
		var st unix.Stat_t
		return unix.Stat(dir+"/ns/user", &st) == nil && st.Dev == want.Dev && st.Ino == want.Ino
	}
	dir := ""
	if d, ok := strings.CutSuffix(filepath.Clean(path), "/ns/user"); ok && strings.HasPrefix(d, "/proc/") && inNS(d) {
		dir = d
	} else {
		entries, err := os.ReadDir("/proc")
		if err != nil {
			return nil, nil, false, fmt.Errorf("find a process in user namespace %s: %w", path, err)
		}
		for _, e := range entries {
			if _, err := strconv.Atoi(e.Name()); err == nil && inNS("/proc/"+e.Name()) {
				dir = "/proc/" + e.Name()
				break
			}
		}
	}
	if dir == "" {
		return nil, nil, false, nil
	}
	if uidMap, err = readIDMap(dir + "/uid_map"); err != nil {
		return nil, nil, false, err
	}
	if gidMap, err = readIDMap(dir + "/gid_map"); err != nil {
		return nil, nil, false, err
	}
	return uidMap, gidMap, true, nil
}

func readIDMap(path string) ([]specs.LinuxIDMapping, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read id map: %w", err)
	}
	defer f.Close()
	var out []specs.LinuxIDMapping
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) != 3 {
			return nil, fmt.Errorf("parse %s: malformed line %q", path, sc.Text())
		}
		var n [3]uint32
		for i, s := range fields {
			v, err := strconv.ParseUint(s, 10, 32)
			if err != nil {
				return nil, fmt.Errorf("parse %s: %w", path, err)
			}
			n[i] = uint32(v)
		}
		out = append(out, specs.LinuxIDMapping{ContainerID: n[0], HostID: n[1], Size: n[2]})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return out, nil
}

// timeClocks are the clocks a time namespace can offset (timens_offsets).
var timeClocks = []string{"monotonic", "boottime"}

func checkTimeNamespace(v *validation) error {
	offsets := v.linux().TimeOffsets
	path, timeNS := HasNamespace(v.s, specs.TimeNamespace)
	if !timeNS {
		if len(offsets) > 0 {
			return errors.New("time namespace offsets specified, but time namespace isn't enabled in the config")
		}
		return nil
	}
	if path != "" && len(offsets) > 0 {
		return errors.New("time namespace enabled, but both namespace path and time offsets specified -- you may only provide one")
	}
	for _, clock := range slices.Sorted(maps.Keys(offsets)) {
		if !slices.Contains(timeClocks, clock) {
			return fmt.Errorf("linux.timeOffsets: unknown clock %q, want one of %v", clock, timeClocks)
		}
		if ns := offsets[clock].Nanosecs; ns >= 1e9 {
			return fmt.Errorf("linux.timeOffsets.%s: nanosecs %d must be less than 1000000000", clock, ns)
		}
	}
	return nil
}
