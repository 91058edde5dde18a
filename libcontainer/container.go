// Package libcontainer runs OCI containers: it creates the init process in
// its namespaces and cgroup, drives the sync protocol with it, and keeps the
// container's state on disk so that a later process (another runmini
// command, or the shim after a restart) can find and manage it.
package libcontainer

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/runmini/runmini/cgroups"
	"github.com/runmini/runmini/libcontainer/seccomp"
)

// Container is a handle on one container's state directory.
type Container struct {
	root string // the runtime's --root
	dir  string // <root>/<id>
	st   *persisted

	// cg is the container's cgroup, loaded once from st.CgroupPaths (or
	// the one Create made): Status, exec, pause and the shim's stats and
	// OOM watch all use the same Manager.
	cgOnce sync.Once
	cg     cgroups.Manager
	cgErr  error

	// startNow: Create released the init at once (CreateOpts.StartNow);
	// Start only runs the poststart hooks.
	startNow bool
}

// Load opens an existing container. A missing one is ErrNotExist.
func Load(root, id string) (*Container, error) {
	if err := validID(id); err != nil {
		return nil, err
	}
	dir := filepath.Join(root, id)
	st, err := readState(dir)
	if err != nil {
		if isNotExist(err) {
			// A state dir without state.json is a create that was
			// interrupted before it finished: only delete may touch it.
			if _, serr := os.Stat(dir); serr == nil {
				return &Container{root: root, dir: dir, st: &persisted{ID: id}}, nil
			}
			return nil, ErrNotExist
		}
		return nil, err
	}
	return &Container{root: root, dir: dir, st: st}, nil
}

// List loads every container under root, skipping entries that are not
// containers.
func List(root string) ([]*Container, error) {
	ents, err := os.ReadDir(root)
	if err != nil {
		if isNotExist(err) {
			return nil, nil
		}
		return nil, err
	}
	var out []*Container
	for _, e := range ents {
		// The root also keeps compiled seccomp programs (runmini's CLI).
		if !e.IsDir() || e.Name() == seccomp.CacheDirName {
			continue
		}
		c, err := Load(root, e.Name())
		if err != nil {
			continue
		}
		out = append(out, c)
	}
	return out, nil
}

// validID is the part of id validation that protects the filesystem: the
// CLI validates ids fully (spec.ValidateID) before getting here.
func validID(id string) error {
	if id == "" || id == "." || id == ".." || strings.ContainsAny(id, "/\x00") {
		return fmt.Errorf("invalid container id format: %s", id)
	}
	return nil
}

func (c *Container) ID() string          { return c.st.ID }
func (c *Container) Pid() int            { return c.st.InitPid }
func (c *Container) Bundle() string      { return c.st.Bundle }
func (c *Container) Config() *specs.Spec { return c.st.spec() }

// ConfigError tells why Config is nil for a container that has a recorded
// config, naming the file and the way out; nil otherwise.
func (c *Container) ConfigError() error {
	if c.st.spec() != nil || c.st.configErr == nil {
		return nil
	}
	return fmt.Errorf("container %s: the config recorded in %s cannot be decoded (%v); `delete --force %s` removes the container",
		c.st.ID, filepath.Join(c.dir, stateFile), c.st.configErr, c.st.ID)
}

// PrivatePidNS tells whether the container's init is pid 1 of a pid
// namespace of its own, whose death takes every other process with it;
// otherwise they must be killed one by one.
func (c *Container) PrivatePidNS() bool { return c.st.PrivatePidNS }

// Status computes the state from the live init process.
func (c *Container) Status() Status {
	if !c.st.hasConfig() {
		return Creating
	}
	if !c.st.initAlive() {
		return Stopped
	}
	if _, err := os.Lstat(filepath.Join(c.dir, execSock)); err == nil {
		return Created
	}
	if m, err := c.cgroup(); err == nil && m != nil {
		if frozen, err := m.Frozen(); err == nil && frozen {
			return Paused
		}
	}
	return Running
}

// State is the OCI state of the container.
func (c *Container) State() *OCIState {
	st := c.Status()
	s := &OCIState{
		OCIVersion: specs.Version,
		ID:         c.st.ID,
		Status:     st,
		Bundle:     c.st.Bundle,
		Rootfs:     c.st.Rootfs,
		Created:    c.st.Created,
		Owner:      c.st.Owner,
	}
	s.Annotations = c.st.annotations()
	if st != Stopped {
		s.Pid = c.st.InitPid
	}
	return s
}

// specState is the state handed to hooks on stdin.
func (c *Container) specState(status Status) *specs.State {
	s := &specs.State{
		Version: specs.Version,
		ID:      c.st.ID,
		Status:  specs.ContainerState(status),
		Bundle:  c.st.Bundle,
	}
	if status != Stopped {
		s.Pid = c.st.InitPid
	}
	s.Annotations = c.st.annotations()
	return s
}

// requireCgroup is cgroup for the operations that cannot work without one.
func (c *Container) requireCgroup(op string) (cgroups.Manager, error) {
	m, err := c.cgroup()
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", op, c.st.ID, err)
	}
	if m == nil {
		return nil, fmt.Errorf("%s %s: its state records no cgroup (created by an interrupted create?); delete it with delete -f", op, c.st.ID)
	}
	return m, nil
}

func (c *Container) cgroup() (cgroups.Manager, error) {
	c.cgOnce.Do(func() {
		if len(c.st.CgroupPaths) > 0 {
			c.cg, c.cgErr = cgroups.Load(c.st.CgroupPaths, "")
		}
	})
	return c.cg, c.cgErr
}

// Cgroup is the container's cgroup, for callers that read its statistics
// or watch its events (the shim).
func (c *Container) Cgroup() (cgroups.Manager, error) { return c.requireCgroup("cgroup of") }
