//go:build linux

// Package capabilities applies a spec's process capabilities to the calling
// thread of the container's init or exec process.
//
// Capabilities are per thread: callers lock the OS thread
// (runtime.LockOSThread) that will execve the container process and call
// both methods on it.
package capabilities

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"syscall"

	"github.com/moby/sys/capability"
	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Caps holds the validated capability sets of one process.
type Caps struct {
	bounding    []capability.Cap
	effective   []capability.Cap
	permitted   []capability.Cap
	inheritable []capability.Cap
	ambient     []capability.Cap
}

func capName(c capability.Cap) string {
	return "CAP_" + strings.ToUpper(c.String())
}

// known maps every name the capability library knows to its value.
var known = func() map[string]capability.Cap {
	m := make(map[string]capability.Cap)
	for _, c := range capability.ListKnown() {
		m[capName(c)] = c
	}
	return m
}()

// New validates the spec's capability names. A nil c means no capabilities
// at all. A name that is not a capability is an error; a capability the
// running kernel does not support is dropped with a warning, as runc does,
// so one spec works across kernel versions.
func New(c *specs.LinuxCapabilities) (*Caps, error) {
	last, err := capability.LastCap()
	if err != nil {
		return nil, fmt.Errorf("capabilities: %w", err)
	}
	return newCaps(c, last)
}

func newCaps(c *specs.LinuxCapabilities, last capability.Cap) (*Caps, error) {
	if c == nil {
		return &Caps{}, nil
	}
	unsupported := map[string]struct{}{}
	conv := func(names []string) ([]capability.Cap, error) {
		var caps []capability.Cap
		for _, n := range names {
			v, ok := known[n]
			if !ok {
				return nil, fmt.Errorf("unknown capability %q", n)
			}
			if v > last {
				unsupported[n] = struct{}{}
				continue
			}
			if !slices.Contains(caps, v) {
				caps = append(caps, v)
			}
		}
		return caps, nil
	}
	var out Caps
	for _, set := range []struct {
		dst   *[]capability.Cap
		names []string
	}{
		{&out.bounding, c.Bounding},
		{&out.effective, c.Effective},
		{&out.permitted, c.Permitted},
		{&out.inheritable, c.Inheritable},
		{&out.ambient, c.Ambient},
	} {
		caps, err := conv(set.names)
		if err != nil {
			return nil, err
		}
		*set.dst = caps
	}
	if len(unsupported) > 0 {
		names := make([]string, 0, len(unsupported))
		for n := range unsupported {
			names = append(names, n)
		}
		slices.Sort(names)
		slog.Warn("ignoring capabilities the kernel does not support", "capabilities", names)
	}
	return &out, nil
}

// ApplyBounding drops every capability not in the bounding set from the
// calling thread's bounding set. It needs CAP_SETPCAP, so call it before
// switching to the container user. A requested capability that the runtime's
// own bounding set lacks cannot be raised and is left out, as runc does.
func (c *Caps) ApplyBounding() error {
	last, err := capability.LastCap()
	if err != nil {
		return fmt.Errorf("capabilities: %w", err)
	}
	for v := capability.Cap(0); v <= last; v++ {
		if slices.Contains(c.bounding, v) {
			continue
		}
		err := capability.DropBound(v)
		if err == nil || errors.Is(err, syscall.EINVAL) {
			continue
		}
		// Without CAP_SETPCAP only what is there needs dropping: an
		// already reduced bounding set is fine. (Asked only then: one
		// system call a capability less on the common path.)
		if errors.Is(err, syscall.EPERM) {
			if in, rerr := capability.GetBound(v); rerr == nil && !in {
				continue
			}
		}
		return fmt.Errorf("drop %s from the bounding set: %w", capName(v), err)
	}
	return nil
}

// ApplyCaps sets the calling thread's effective, permitted and inheritable
// sets and raises the ambient ones, after the switch to the container user
// (the caller kept its permitted set with PR_SET_KEEPCAPS). Ambient
// capabilities are what a non-root user keeps across execve.
//
// Like runc, a capability that the runtime itself does not hold in its
// permitted set cannot be granted and is an error, not silently dropped.
func (c *Caps) ApplyCaps() error {
	// capget, not capability.Load: Load reads the bounding set from
	// /proc/self/status, which describes the main thread, not this one.
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("read capabilities: %w", err)
	}
	has := func(mask func(unix.CapUserData) uint32, v capability.Cap) bool {
		return mask(data[v/32])&(1<<(v%32)) != 0
	}
	permitted := func(d unix.CapUserData) uint32 { return d.Permitted }
	inheritable := func(d unix.CapUserData) uint32 { return d.Inheritable }

	var notPermitted, notBounding []string
	for _, set := range [][]capability.Cap{c.permitted, c.effective, c.ambient} {
		for _, v := range set {
			if !has(permitted, v) && !slices.Contains(notPermitted, capName(v)) {
				notPermitted = append(notPermitted, capName(v))
			}
		}
	}
	if len(notPermitted) > 0 {
		return fmt.Errorf("apply capabilities: %s not in the runtime's permitted set: %w",
			strings.Join(notPermitted, ", "), syscall.EPERM)
	}
	// The kernel only lets inheritable grow within the bounding set.
	for _, v := range c.inheritable {
		if has(inheritable, v) {
			continue
		}
		in, err := capability.GetBound(v)
		if err != nil {
			return fmt.Errorf("read bounding set %s: %w", capName(v), err)
		}
		if !in {
			notBounding = append(notBounding, capName(v))
		}
	}
	if len(notBounding) > 0 {
		return fmt.Errorf("apply capabilities: inheritable %s not in the bounding set: %w",
			strings.Join(notBounding, ", "), syscall.EPERM)
	}

	caps, err := capability.NewPid2(0)
	if err != nil {
		return fmt.Errorf("capabilities: %w", err)
	}
	caps.Set(capability.EFFECTIVE, c.effective...)
	caps.Set(capability.PERMITTED, c.permitted...)
	caps.Set(capability.INHERITABLE, c.inheritable...)
	if err := caps.Apply(capability.CAPS); err != nil {
		return fmt.Errorf("apply capabilities: %w", err)
	}

	// Clear first: ambient capabilities survive setuid, and this thread may
	// have inherited some. EINVAL means a kernel without ambient
	// capabilities (before 4.3): nothing to clear then.
	if err := capability.ResetAmbient(); err != nil && !errors.Is(err, syscall.EINVAL) {
		return fmt.Errorf("clear ambient capabilities: %w", err)
	}
	inh := make(map[capability.Cap]bool, len(c.inheritable))
	for _, v := range c.inheritable {
		inh[v] = true
	}
	for _, v := range c.ambient {
		if !inh[v] {
			// The kernel only raises an ambient capability that is also
			// inheritable. runc's default spec asks for ambient ones
			// without inheritable and runc silently leaves them out;
			// do the same, so the same config gives the same process.
			slog.Debug("ambient capability not in the inheritable set: not raised", "cap", capName(v))
			continue
		}
		if err := capability.SetAmbient(true, v); err != nil {
			return fmt.Errorf("raise ambient %s: %w", capName(v), err)
		}
	}
	return nil
}
