package cgroups

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	cgroupsv3 "github.com/containerd/cgroups/v3"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/runmini/runmini/internal/sysfile"
)

type manager struct {
	mu sync.Mutex
	layout
	// hugetlbV2 sends hugetlb limits to the cgroup2 hierarchy: always on
	// v2, and on hybrid hosts whose v1 has no hugetlb hierarchy.
	hugetlbV2 bool
	res       *specs.LinuxResources
	fd        int
	files     cgroupFiles
	// made is what CreateDirs made (Create undoes it when the resources
	// fail).
	made []string
}

// New validates c and decides, once, which hierarchies the container's
// cgroup lives in. It reads the host (mode, mounted controllers, the
// caller's own cgroup for relative paths) but changes nothing on disk
// until Create. Resources that need a controller the host lacks are
// refused here with ErrControllerUnavailable.
func New(c Config) (Manager, error) {
	root := c.Root
	if root == "" {
		root = defaultRoot
	}
	root = filepath.Clean(root)
	mode := c.Mode
	if mode == ModeAuto {
		var err error
		if mode, err = detectMode(root); err != nil {
			return nil, err
		}
	}
	if mode != ModeV1 && mode != ModeHybrid && mode != ModeV2 {
		return nil, fmt.Errorf("unknown cgroup mode %v", mode)
	}
	l, err := resolve(c, mode, root)
	if err != nil {
		return nil, err
	}
	m := newManager(l, c.Resources)
	if _, err := m.check(c.Resources); err != nil {
		return nil, err
	}
	return m, nil
}

func newManager(l layout, r *specs.LinuxResources) *manager {
	return &manager{
		layout:    l,
		hugetlbV2: HugetlbInV2(l.mode, l.v1),
		res:       r,
		fd:        -1,
	}
}

// check validates r against the host and returns the cgroup2 controllers
// it needs.
func (m *manager) check(r *specs.LinuxResources) ([]need, error) {
	if r == nil {
		return nil, nil
	}
	if err := validate(r); err != nil {
		return nil, err
	}
	var v2 []need
	switch m.mode {
	case ModeV1, ModeHybrid:
		for _, n := range v1Needs(r) {
			if n.ctrl == "hugetlb" && m.hugetlbV2 {
				v2 = append(v2, n)
				continue
			}
			if _, ok := m.v1[n.ctrl]; !ok {
				return nil, fmt.Errorf("%w: %s (needed by %s) is not mounted under %s", ErrControllerUnavailable, n.ctrl, n.what, m.root)
			}
		}
		if len(r.Unified) > 0 {
			if m.mode == ModeV1 {
				return nil, fmt.Errorf("%w: unified resources need a cgroup v2 hierarchy, %s has only cgroup v1", ErrControllerUnavailable, m.root)
			}
			v2 = append(v2, unifiedNeeds(r.Unified)...)
		}
	case ModeV2:
		if n := r.Network; n != nil && (nz(n.ClassID) || len(n.Priorities) > 0) {
			return nil, fmt.Errorf("%w: network classID and priorities need cgroup v1 net_cls and net_prio", ErrControllerUnavailable)
		}
		if c := r.CPU; c != nil && (nz(c.RealtimeRuntime) || nz(c.RealtimePeriod)) {
			return nil, fmt.Errorf("%w: realtime cpu limits need the cgroup v1 cpu controller", ErrControllerUnavailable)
		}
		v2 = v2Needs(r)
	}
	if len(v2) == 0 {
		return nil, nil
	}
	mnt := unifiedRoot(m.root, m.mode)
	avail, err := m.files.availableV2(mnt)
	if err != nil {
		return nil, err
	}
	for _, n := range v2 {
		if !avail[n.ctrl] {
			return nil, fmt.Errorf("%w: %s (needed by %s) is not offered by the cgroup v2 hierarchy at %s", ErrControllerUnavailable, n.ctrl, n.what, mnt)
		}
	}
	return v2, nil
}

func (m *manager) Create() error {
	if err := m.CreateDirs(); err != nil {
		return err
	}
	if err := m.ApplyResources(); err != nil {
		m.mu.Lock()
		m.closeFD()
		removeDirs(m.made)
		m.mu.Unlock()
		return err
	}
	return nil
}

func (m *manager) CreateDirs() (retErr error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v2needs, err := m.check(m.resources())
	if err != nil {
		return err
	}
	var made []string
	defer func() {
		if retErr != nil {
			m.closeFD()
			removeDirs(made)
			retErr = fmt.Errorf("create cgroup: %w", retErr)
		}
	}()
	dirs := make([]string, 0, len(m.v1)+1)
	for _, ctrl := range sortedKeys(m.v1) {
		dirs = append(dirs, m.v1[ctrl])
	}
	if m.v2 != "" {
		dirs = append(dirs, m.v2)
	}
	for _, dir := range dirs {
		d, err := mkdirAll(dir)
		made = append(made, d...)
		if err != nil {
			return err
		}
	}
	// The default path is /runmini/<id> whatever the runtime's --root: a
	// cgroup that was already there must not belong to a live container,
	// whose limits the resources below would overwrite.
	if err := m.checkUnused(made); err != nil {
		return err
	}
	// A v1 cpuset cgroup takes no task before it has cpus and mems.
	if dir, ok := m.v1["cpuset"]; ok {
		if err := m.files.inheritCpuset(hierarchyDir(m.root, "cpuset"), dir); err != nil {
			return err
		}
	}
	if m.v2 != "" {
		if err := m.enableV2(v2needs); err != nil {
			return err
		}
	}
	if m.mode == ModeV2 {
		if err := m.openFD(); err != nil {
			return err
		}
	}
	m.made = made
	return nil
}

func (m *manager) ApplyResources() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.apply(m.resources(), false); err != nil {
		return fmt.Errorf("create cgroup: %w", err)
	}
	return nil
}

// resources is the Config's Resources, or none.
func (m *manager) resources() *specs.LinuxResources {
	if m.res == nil {
		return &specs.LinuxResources{}
	}
	return m.res
}

func (m *manager) openFD() error {
	fd, err := unix.Open(m.v2, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", m.v2, err)
	}
	m.closeFD()
	m.fd = fd
	return nil
}

// v2FD is the cgroup2 directory's fd, opened on first use (a Manager from
// Load), or -1 on a v1 host. Called with mu held.
func (m *manager) v2FD() (int, error) {
	if m.v2 != "" && m.fd < 0 {
		if err := m.openFD(); err != nil {
			return -1, err
		}
	}
	return m.fd, nil
}

func (m *manager) ForkInto() (fd int, leave func() error, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if fd, err = m.v2FD(); err != nil {
		return -1, nil, err
	}
	if m.mode == ModeV2 {
		return fd, func() error { return nil }, nil
	}
	// Where the thread is now, to go back to: the caller's cgroup, not
	// the hierarchy's root.
	b, err := sysfile.Read("/proc/thread-self/cgroup")
	if err != nil {
		return -1, nil, fmt.Errorf("enter cgroup: %w", err)
	}
	own, _, err := cgroupsv3.ParseCgroupFromReaderUnified(bytes.NewReader(b))
	if err != nil {
		return -1, nil, fmt.Errorf("enter cgroup: /proc/thread-self/cgroup: %w", err)
	}
	type place struct{ mount, rel string }
	var from []place
	back := func() error {
		var errs []error
		for _, p := range from {
			if err := m.files.write(filepath.Join(p.mount, p.rel), "tasks", "0"); err != nil {
				// The cgroup vanished meanwhile? The thread must not stay
				// in the container's (which could never be removed), and
				// the hierarchy's root is always there.
				if m.files.write(p.mount, "tasks", "0") != nil {
					errs = append(errs, err)
				}
			}
		}
		return errors.Join(errs...)
	}
	for _, ctrl := range sortedKeys(m.v1) {
		rel, ok := own[ctrl]
		if !ok {
			back()
			return -1, nil, fmt.Errorf("enter cgroup: no %s hierarchy in /proc/thread-self/cgroup", ctrl)
		}
		// 0 in tasks moves the writing thread alone, which takes no
		// cgroup-wide lock.
		if err := m.files.write(m.v1[ctrl], "tasks", "0"); err != nil {
			back()
			return -1, nil, fmt.Errorf("enter cgroup: %w", err)
		}
		from = append(from, place{hierarchyDir(m.root, ctrl), rel})
	}
	leave = func() error {
		if err := back(); err != nil {
			return fmt.Errorf("leave cgroup: %w", err)
		}
		return nil
	}
	return fd, leave, nil
}

// enableV2 makes the needed cgroup2 controllers available in m.v2. On a
// hybrid host v1 does the real work, so only what is needed is enabled
// and an unneeded unified hierarchy is left as it is.
func (m *manager) enableV2(needs []need) error {
	if m.mode == ModeHybrid && len(needs) == 0 {
		return nil
	}
	var names []string
	for _, n := range needs {
		if !slices.Contains(names, n.ctrl) {
			names = append(names, n.ctrl)
		}
	}
	mnt := unifiedRoot(m.root, m.mode)
	if m.mode == ModeHybrid {
		if err := enableOnly(m.files, mnt, m.v2, names); err != nil {
			return err
		}
	} else if err := m.files.enableControllers(mnt, m.v2, names); err != nil {
		return err
	}
	return m.files.checkEnabled(m.v2, needs)
}

// enableOnly enables exactly names in every ancestor of dir below mnt.
func enableOnly(f cgroupFiles, mnt, dir string, names []string) error {
	rel, err := filepath.Rel(mnt, dir)
	if err != nil {
		return fmt.Errorf("cgroup %s is not under %s: %w", dir, mnt, err)
	}
	var plus []string
	for _, n := range names {
		plus = append(plus, "+"+n)
	}
	cur := mnt
	for _, elem := range strings.Split(rel, "/") {
		if err := f.write(cur, "cgroup.subtree_control", strings.Join(plus, " ")); err != nil {
			return fmt.Errorf("enable controllers: %w", err)
		}
		cur = filepath.Join(cur, elem)
	}
	return nil
}

// apply writes r to every hierarchy; update is set by Set.
func (m *manager) apply(r *specs.LinuxResources, update bool) error {
	switch m.mode {
	case ModeV1, ModeHybrid:
		if err := m.files.setV1(m.v1, r, m.hugetlbV2, update); err != nil {
			return err
		}
		if m.v2 != "" {
			if m.hugetlbV2 {
				if err := m.files.setV2Hugetlb(m.v2, r.HugepageLimits); err != nil {
					return err
				}
			}
			return m.files.setUnified(m.v2, r.Unified)
		}
	case ModeV2:
		if err := m.files.setV2(m.v2, r); err != nil {
			return err
		}
		return m.setV2Devices(r.Devices)
	}
	return nil
}

func (m *manager) Set(r *specs.LinuxResources) error {
	if r == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	v2needs, err := m.check(r)
	if err != nil {
		return err
	}
	if m.v2 != "" && len(v2needs) > 0 {
		if err := m.enableV2(v2needs); err != nil {
			return fmt.Errorf("update cgroup: %w", err)
		}
	}
	if err := m.apply(r, true); err != nil {
		return fmt.Errorf("update cgroup: %w", err)
	}
	m.res = r
	return nil
}

func (m *manager) JoinFiles() (fd int, tasks []*os.File, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if fd, err = m.v2FD(); err != nil {
		return -1, nil, err
	}
	for _, ctrl := range sortedKeys(m.v1) {
		p := filepath.Join(m.v1[ctrl], "tasks")
		// Not os.OpenFile: the fd would be made non-blocking for the
		// poller, and the process it is handed to shares that.
		tfd, err := unix.Open(p, unix.O_WRONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			for _, t := range tasks {
				t.Close()
			}
			return -1, nil, fmt.Errorf("join cgroup: %w", &os.PathError{Op: "open", Path: p, Err: err})
		}
		tasks = append(tasks, os.NewFile(uintptr(tfd), p))
	}
	return fd, tasks, nil
}

func (m *manager) FD() int {
	if m.mode != ModeV2 {
		return -1
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	// On failure the caller falls back to Apply, which reports the error.
	fd, _ := m.v2FD()
	return fd
}

func (m *manager) NeedsApply() bool { return m.mode != ModeV2 }

func (m *manager) closeFD() {
	if m.fd >= 0 {
		_ = unix.Close(m.fd)
		m.fd = -1
	}
}

func (m *manager) Apply(pid int) error {
	if pid <= 0 {
		return fmt.Errorf("add pid %d to cgroup: invalid pid", pid)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	dirs := make([]string, 0, len(m.v1)+1)
	for _, ctrl := range sortedKeys(m.v1) {
		dirs = append(dirs, m.v1[ctrl])
	}
	if m.v2 != "" {
		dirs = append(dirs, m.v2)
	}
	p := strconv.Itoa(pid)
	for _, dir := range dirs {
		if err := m.files.write(dir, "cgroup.procs", p); err != nil {
			return fmt.Errorf("add pid %d to cgroup: %w", pid, err)
		}
	}
	return nil
}

// checkUnused refuses a container cgroup that existed before Create (it is
// not among made) and holds processes. One hierarchy tells: every
// hierarchy holds the same processes.
func (m *manager) checkUnused(made []string) error {
	dir := m.v2
	if m.mode != ModeV2 {
		dir = m.someV1Dir()
	}
	if slices.Contains(made, dir) {
		return nil
	}
	b, err := sysfile.Read(filepath.Join(dir, "cgroup.procs"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil // not a cgroupfs (a test's stand-in): nothing runs in it
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", filepath.Join(dir, "cgroup.procs"), err)
	}
	if n := len(strings.Fields(string(b))); n > 0 {
		return fmt.Errorf("container's cgroup is not empty: %d process(es) found in %s", n, dir)
	}
	return nil
}

func (m *manager) Pids() ([]int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	// Every v1 hierarchy holds the same processes; freezer's is the one
	// Freeze acts on.
	dir := m.v2
	if m.mode != ModeV2 {
		dir = m.someV1Dir()
	}
	pids, err := procsUnder(dir)
	if err != nil {
		return nil, fmt.Errorf("list pids of cgroup %s: %w", dir, err)
	}
	return pids, nil
}

// procsUnder lists, sorted and once each, the processes in the cgroup dir
// and every cgroup below it. A child cgroup removed during the walk is
// skipped; dir itself missing is an error wrapping fs.ErrNotExist.
func procsUnder(dir string) ([]int, error) {
	seen := map[int]bool{}
	pids := []int{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			return nil
		}
		var b []byte
		if err == nil {
			b, err = sysfile.Read(filepath.Join(p, "cgroup.procs"))
		}
		if err != nil {
			if p != dir && errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		for _, f := range strings.Fields(string(b)) {
			pid, err := strconv.Atoi(f)
			if err != nil {
				return fmt.Errorf("parse %s: %w", filepath.Join(p, "cgroup.procs"), err)
			}
			if !seen[pid] {
				seen[pid] = true
				pids = append(pids, pid)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Ints(pids)
	return pids, nil
}

func (m *manager) Mode() Mode { return m.mode }

func (m *manager) Root() string { return m.root }

func (m *manager) Paths() map[string]string {
	out := make(map[string]string, len(m.v1)+1)
	for k, v := range m.v1 {
		out[k] = v
	}
	if m.v2 != "" {
		out[""] = m.v2
	}
	return out
}

func (m *manager) Destroy() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closeFD()
	var errs []error
	seen := map[string]bool{}
	dirs := make([]string, 0, len(m.v1)+1)
	for _, k := range sortedKeys(m.v1) {
		dirs = append(dirs, m.v1[k])
	}
	if m.v2 != "" {
		dirs = append(dirs, m.v2)
	}
	deadline := time.Now().Add(removeBudget)
	for _, d := range dirs {
		if !seen[d] {
			seen[d] = true
			errs = append(errs, removeTree(d, deadline))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("destroy cgroup: %w", err)
	}
	return nil
}

// someV1 picks the v1 hierarchy that stands for all of them when listing
// processes: freezer first, as Freeze acts there.
func (m *manager) someV1() string {
	for _, c := range []string{"freezer", "pids", "devices", "memory", "cpu"} {
		if _, ok := m.v1[c]; ok {
			return c
		}
	}
	return sortedKeys(m.v1)[0]
}

func (m *manager) someV1Dir() string { return m.v1[m.someV1()] }
