package libcontainer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/runmini/runmini/libcontainer/seccomp"
)

// ExecOpts describe a process to run in a container that exists.
type ExecOpts struct {
	Process       *specs.Process
	ConsoleSocket string
	PreserveFDs   int
	// Stdio of the process; nil means the caller's own.
	Stdin, Stdout, Stderr *os.File
	// SeccompCache, when not nil, remembers compiled seccomp filters
	// across execs (the shim's).
	SeccompCache *seccomp.Cache
}

// Exec starts a process in the container's namespaces and cgroup, with the
// container's seccomp profile, as `runc exec` does. It returns once the
// process has been executed.
func (c *Container) Exec(ctx context.Context, o *ExecOpts) (*Process, error) {
	switch c.Status() {
	case Stopped, Creating:
		return nil, errors.New("cannot exec in a stopped container")
	case Paused:
		return nil, errors.New("cannot exec in a paused container")
	}
	if o.Process == nil || len(o.Process.Args) == 0 {
		return nil, errors.New("exec: process args must not be empty")
	}
	cfg := c.st.spec()
	if cfg == nil {
		if err := c.ConfigError(); err != nil {
			return nil, err
		}
		return nil, errors.New("cannot exec in a stopped container")
	}
	s := *cfg
	s.Process = o.Process
	s.Hooks = nil
	lx := specs.Linux{}
	if s.Linux != nil {
		lx = *s.Linux
	}
	// Every namespace is the init's own, joined through /proc: also those
	// the container created itself.
	pid := strconv.Itoa(c.st.InitPid)
	lx.Namespaces = nil
	if cfg.Linux != nil {
		for _, ns := range cfg.Linux.Namespaces {
			lx.Namespaces = append(lx.Namespaces, specs.LinuxNamespace{Type: ns.Type, Path: "/proc/" + pid + "/ns/" + nsName(ns.Type)})
		}
	}
	s.Linux = &lx
	plan, err := planNamespaces(&s, false)
	if err != nil {
		return nil, fmt.Errorf("exec: %w", err)
	}
	defer plan.close()
	// The fds are open: if the init is still the same process now, they
	// are its namespaces and not those of a recycled pid.
	if !c.st.initAlive() {
		return nil, errors.New("cannot exec in a stopped container")
	}
	cg, err := c.requireCgroup("exec")
	if err != nil {
		return nil, err
	}
	filter, err := startSeccomp(&s, o.SeccompCache)
	if err != nil {
		return nil, err
	}
	return c.startInit(ctx, &CreateOpts{
		Root:          c.root,
		ID:            c.st.ID,
		Bundle:        c.st.Bundle,
		Spec:          &s,
		Rootfs:        c.st.Rootfs,
		ConsoleSocket: o.ConsoleSocket,
		NoNewKeyring:  true,
		PreserveFDs:   o.PreserveFDs,
		Stdin:         o.Stdin,
		Stdout:        o.Stdout,
		Stderr:        o.Stderr,
		exec:          true,
	}, plan, &host{cg: cg, filter: filter, c: c})
}

// Pause freezes every process of the container.
func (c *Container) Pause() error {
	if c.Status() != Running {
		return ErrNotRunning
	}
	m, err := c.requireCgroup("pause")
	if err != nil {
		return err
	}
	return m.Freeze()
}

// Resume thaws a paused container.
func (c *Container) Resume() error {
	if c.Status() != Paused {
		return ErrNotPaused
	}
	m, err := c.requireCgroup("resume")
	if err != nil {
		return err
	}
	return m.Thaw()
}

// Processes lists the pids of every process in the container's cgroup.
func (c *Container) Processes() ([]int, error) {
	if c.Status() == Stopped {
		return nil, ErrNotRunning
	}
	m, err := c.requireCgroup("list processes")
	if err != nil {
		return nil, err
	}
	return m.Pids()
}

// Update applies new resources to a live container and records them in
// its state, so that a later `state` or restart of the shim sees them.
func (c *Container) Update(r *specs.LinuxResources) error {
	if st := c.Status(); st == Stopped || st == Creating {
		return ErrNotRunning
	}
	m, err := c.requireCgroup("update")
	if err != nil {
		return err
	}
	old := c.st.spec()
	if old == nil {
		if err := c.ConfigError(); err != nil {
			return err
		}
		return ErrNotRunning
	}
	// Device rules are not updated (runc neither): the container's rules
	// were completed with the defaults at create, and re-applying the
	// spec's own list would take /dev/null away.
	set := *r
	set.Devices = nil
	if err := m.Set(&set); err != nil {
		return err
	}
	if old.Linux != nil && old.Linux.Resources != nil {
		r.Devices = old.Linux.Resources.Devices
	}
	cfg := *old
	lx := specs.Linux{}
	if cfg.Linux != nil {
		lx = *cfg.Linux
	}
	lx.Resources = r
	cfg.Linux = &lx
	st := *c.st
	st.Config = &cfg
	if err := writeState(c.dir, &st); err != nil {
		return fmt.Errorf("record updated resources: %w", err)
	}
	c.st = &st
	return nil
}
