package cgroups

import (
	"fmt"
	"time"
)

// freezeTimeout bounds how long Freeze and Thaw wait for the kernel.
// Freezing is normally a matter of microseconds; a task stuck in an
// uninterruptible sleep (e.g. on NFS) can hold it up indefinitely.
const freezeTimeout = 5 * time.Second

func (m *manager) Freeze() error { return m.setFrozen(true) }

func (m *manager) Thaw() error { return m.setFrozen(false) }

func (m *manager) setFrozen(freeze bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	verb := "thaw"
	if freeze {
		verb = "freeze"
	}
	// Hybrid hosts freeze through v1 like runc; the cgroup2 freezer is
	// the fallback when v1 has no freezer hierarchy.
	if dir, ok := m.v1["freezer"]; ok {
		if err := m.freezeV1(dir, freeze); err != nil {
			return fmt.Errorf("%s cgroup: %w", verb, err)
		}
		return nil
	}
	if m.v2 != "" {
		if err := m.freezeV2(m.v2, freeze); err != nil {
			return fmt.Errorf("%s cgroup: %w", verb, err)
		}
		return nil
	}
	return fmt.Errorf("%s cgroup: %w: freezer is not mounted under %s", verb, ErrControllerUnavailable, m.root)
}

func (m *manager) Frozen() (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if dir, ok := m.v1["freezer"]; ok {
		s, err := m.files.read(dir, "freezer.state")
		if err != nil {
			return false, fmt.Errorf("freezer state: %w", err)
		}
		return s == "FROZEN", nil
	}
	if m.v2 != "" {
		ev, err := m.files.readKeyed(m.v2, "cgroup.events")
		if err != nil {
			return false, fmt.Errorf("freezer state: %w", err)
		}
		return ev["frozen"] == "1", nil
	}
	return false, fmt.Errorf("freezer state: %w: freezer is not mounted under %s", ErrControllerUnavailable, m.root)
}

// freezeV1 drives freezer.state to FROZEN or THAWED. Reading the file
// back reports FREEZING until every task has stopped; when that takes
// long (a task racing a fork or in an uninterruptible sleep), runc's
// remedy is to thaw briefly and try again, which is done here as well.
func (m *manager) freezeV1(dir string, freeze bool) error {
	want := "THAWED"
	if freeze {
		want = "FROZEN"
	}
	deadline := time.Now().Add(freezeTimeout)
	for {
		if err := m.files.write(dir, "freezer.state", want); err != nil {
			return err
		}
		var state string
		for i := 0; i < 20; i++ {
			var err error
			if state, err = m.files.read(dir, "freezer.state"); err != nil {
				return err
			}
			if state == want {
				return nil
			}
			time.Sleep(time.Millisecond)
		}
		if time.Now().After(deadline) {
			if freeze {
				// Do not leave the container half frozen.
				_ = m.files.write(dir, "freezer.state", "THAWED")
			}
			return fmt.Errorf("%s stayed %s instead of %s", dir, state, want)
		}
		if freeze {
			if err := m.files.write(dir, "freezer.state", "THAWED"); err != nil {
				return err
			}
		}
	}
}

// freezeV2 writes cgroup.freeze and waits for cgroup.events to report
// the result: the kernel freezes asynchronously and cgroup.freeze shows
// only what was asked.
func (m *manager) freezeV2(dir string, freeze bool) error {
	want := "0"
	if freeze {
		want = "1"
	}
	if err := m.files.write(dir, "cgroup.freeze", want); err != nil {
		return err
	}
	deadline := time.Now().Add(freezeTimeout)
	delay := 100 * time.Microsecond
	for {
		ev, err := m.files.readKeyed(dir, "cgroup.events")
		if err != nil {
			return err
		}
		if ev["frozen"] == want {
			return nil
		}
		if time.Now().After(deadline) {
			if freeze {
				_ = m.files.write(dir, "cgroup.freeze", "0")
			}
			return fmt.Errorf("%s: cgroup.events still reports frozen %s after %v", dir, ev["frozen"], freezeTimeout)
		}
		time.Sleep(delay)
		if delay < 10*time.Millisecond {
			delay *= 2
		}
	}
}
