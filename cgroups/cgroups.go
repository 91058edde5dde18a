// Package cgroups places a container in its control groups and applies the OCI
// resources to them on cgroup v1, v2 and hybrid hosts. It asks
// github.com/containerd/cgroups/v3 how the host is laid out and writes the
// control files itself; the statistics, which need that library's
// protobuf messages, are in package cgroups/stats, off runmini's start
// path (see there).
//
// Only the cgroupfs driver exists: runmini never talks to systemd. A
// cgroupsPath in systemd's "slice:prefix:name" form is refused with
// ErrSystemd, since the hosts runmini targets here have no systemd to own
// the unit.
package cgroups

import (
	"errors"
	"fmt"
	"os"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Config names a container's cgroup and the resources to apply to it.
type Config struct {
	// ID is the container id; it names the default cgroup when Path is empty.
	ID string
	// Path is the spec's linux.cgroupsPath. Absolute paths are taken from
	// the root of each hierarchy; relative ones are relative to the cgroup
	// of the calling process (runc's rule). Empty means "/runmini/<ID>".
	Path string
	// Resources from the spec; nil means none.
	Resources *specs.LinuxResources
	// Root is where cgroupfs is mounted, "" for /sys/fs/cgroup. Tests
	// point it at a temporary directory standing in for cgroupfs.
	Root string
	// Mode overrides how the hierarchies under Root are laid out. The
	// zero value, ModeAuto, asks the host (containerd's cgroups.Mode for
	// the default Root, the same statfs test for any other Root).
	Mode Mode

	// selfCgroup replaces /proc/self/cgroup when resolving a relative
	// Path; tests set it so they do not depend on where they run.
	selfCgroup string
}

// Mode is how cgroup hierarchies are mounted.
type Mode int

const (
	// ModeAuto detects the mode of the host.
	ModeAuto Mode = iota
	// ModeV1 is cgroup v1 only: one hierarchy per controller under Root.
	ModeV1
	// ModeHybrid is v1 hierarchies for the controllers plus a cgroup2
	// hierarchy at Root/unified holding whatever controllers v1 left over.
	ModeHybrid
	// ModeV2 is a single cgroup2 hierarchy at Root.
	ModeV2
)

func (m Mode) String() string {
	switch m {
	case ModeAuto:
		return "auto"
	case ModeV1:
		return "v1"
	case ModeHybrid:
		return "hybrid"
	case ModeV2:
		return "v2"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

var (
	// ErrSystemd is returned for a systemd-style cgroupsPath
	// ("slice:prefix:name"): that form needs the systemd cgroup driver,
	// which needs a running systemd.
	ErrSystemd = errors.New("systemd cgroup driver requires systemd")
	// ErrControllerUnavailable is wrapped by errors about a resource whose
	// cgroup controller is not present on the host; the message names the
	// controller and the resource.
	ErrControllerUnavailable = errors.New("cgroup controller not available")
	// ErrInvalidPath is wrapped by errors about a cgroupsPath (or a saved
	// path given to Load) that cannot be used.
	ErrInvalidPath = errors.New("invalid cgroup path")
)

// Manager is one container's cgroup.
type Manager interface {
	// Create is CreateDirs then ApplyResources.
	Create() error
	// CreateDirs makes the cgroup directories, with what a process needs
	// to join them (a v1 cpuset's cpus and mems), but no limits: the
	// container's init can be forked into the cgroup (ForkInto) and boot
	// while ApplyResources writes them.
	CreateDirs() error
	// ApplyResources applies the Config's Resources to the cgroup
	// CreateDirs made.
	ApplyResources() error
	// ForkInto readies the calling OS thread, which the caller keeps
	// locked until it has called leave, to fork a process straight into
	// the cgroup. fd is the cgroup2 directory for clone3's
	// CLONE_INTO_CGROUP (-1 on a v1 host). On v1 and hybrid hosts the
	// thread moves itself into the v1 hierarchies (0 in tasks moves the
	// writer alone, which takes no cgroup-wide lock, where Apply's
	// cgroup.procs write waits for an RCU grace period, milliseconds on a
	// VM, and holds up every fork on the host meanwhile); leave moves it
	// back. The thread counts in the cgroup until then: pids.max and the
	// memory limits come after (ApplyResources).
	ForkInto() (fd int, leave func() error, err error)
	// JoinFiles is what a process made for the existing cgroup (an exec)
	// needs to join it by itself while it has a single thread: fd is the
	// cgroup2 directory for clone3's CLONE_INTO_CGROUP (-1 on a v1 host),
	// tasks an fd open for writing on each v1 hierarchy's tasks file (a
	// thread writing 0 there moves itself, without the cgroup-wide lock
	// that Apply's cgroup.procs write takes). The caller closes tasks; the
	// Manager owns fd.
	JoinFiles() (fd int, tasks []*os.File, err error)
	// FD is an O_RDONLY|O_DIRECTORY fd of the container's cgroup v2
	// directory for clone3's CLONE_INTO_CGROUP, or -1 where a process
	// must be moved in with Apply instead (v1 and hybrid hosts). The
	// Manager owns the fd: Destroy closes it.
	FD() int
	// NeedsApply reports whether a new process must be moved in with
	// Apply (v1 and hybrid hosts), rather than cloned into FD (v2).
	NeedsApply() bool
	// Apply moves pid into the cgroup in every hierarchy.
	Apply(pid int) error
	// Set applies resources to the existing cgroup (runc update).
	Set(r *specs.LinuxResources) error
	// Freeze stops every process in the cgroup and returns once the
	// kernel reports the cgroup frozen.
	Freeze() error
	// Thaw resumes the processes stopped by Freeze.
	Thaw() error
	// Frozen reports whether the cgroup is frozen (runc's "paused").
	Frozen() (bool, error)
	// Pids lists every process in the cgroup and its descendants.
	Pids() ([]int, error)
	// Mode is how the container's cgroup is laid out: v1, hybrid or v2.
	Mode() Mode
	// Root is where cgroupfs is mounted (Config.Root, /sys/fs/cgroup by
	// default). Mode, Root and Paths tell package cgroups/stats where to
	// read the container's metrics.
	Root() string
	// Paths maps each controller (v1) or "" (v2 unified) to the absolute
	// host directory of the container's cgroup; it is saved in state.json
	// and given to Load. The rootfs code uses it for cgroup mounts.
	Paths() map[string]string
	// Destroy removes the cgroup directories, child cgroups first
	// (retrying while the kernel still counts exited tasks); a missing
	// directory is not an error.
	Destroy() error
}
