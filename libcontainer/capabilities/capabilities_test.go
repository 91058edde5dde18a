//go:build linux

package capabilities

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/moby/sys/capability"
	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// helperEnv carries the steps a re-executed test binary applies to itself.
const helperEnv = "RUNMINI_CAPS_TEST_STEPS"

// step is one New + ApplyBounding + (optional user switch) + ApplyCaps.
type step struct {
	Caps *specs.LinuxCapabilities `json:"caps"`
	UID  int                      `json:"uid"`
	// Exec runs /bin/cat /proc/self/status after the step, so the result
	// is what the container process would see after execve.
	Exec bool `json:"exec"`
}

func TestMain(m *testing.M) {
	if v := os.Getenv(helperEnv); v != "" {
		if err := helperMain(v); err != nil {
			fmt.Printf("ERR: %v\n", err)
			os.Exit(3)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func helperMain(v string) error {
	var steps []step
	if err := json.Unmarshal([]byte(v), &steps); err != nil {
		return err
	}
	// Capabilities are per thread: everything, including the final read or
	// execve, happens on this one.
	runtime.LockOSThread()
	for _, s := range steps {
		c, err := New(s.Caps)
		if err != nil {
			return err
		}
		if err := c.ApplyBounding(); err != nil {
			return err
		}
		if s.UID != 0 {
			if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 1, 0, 0, 0); err != nil {
				return fmt.Errorf("keepcaps: %w", err)
			}
			if err := unix.Setgroups(nil); err != nil {
				return fmt.Errorf("setgroups: %w", err)
			}
			if err := unix.Setresgid(s.UID, s.UID, s.UID); err != nil {
				return fmt.Errorf("setresgid: %w", err)
			}
			if err := unix.Setresuid(s.UID, s.UID, s.UID); err != nil {
				return fmt.Errorf("setresuid: %w", err)
			}
		}
		if err := c.ApplyCaps(); err != nil {
			return err
		}
		if s.Exec {
			return unix.Exec("/bin/cat", []string{"cat", "/proc/self/status"}, nil)
		}
	}
	b, err := os.ReadFile("/proc/thread-self/status")
	if err != nil {
		return err
	}
	_, err = os.Stdout.Write(b)
	return err
}

type status struct {
	inh, prm, eff, bnd, amb uint64
	uid                     string
}

// runSteps re-executes the test binary with steps and returns its
// /proc/.../status, or the error text the helper printed.
func runSteps(t *testing.T, steps ...step) (status, string) {
	t.Helper()
	b, err := json.Marshal(steps)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+string(b))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	out := stdout.String()
	if msg, ok := strings.CutPrefix(out, "ERR: "); ok {
		return status{}, strings.TrimSpace(msg)
	}
	if err != nil {
		t.Fatalf("helper: %v\nstdout: %s\nstderr: %s", err, out, stderr.String())
	}
	var st status
	fields := map[string]*uint64{"CapInh": &st.inh, "CapPrm": &st.prm, "CapEff": &st.eff, "CapBnd": &st.bnd, "CapAmb": &st.amb}
	seen := 0
	for _, line := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		if k == "Uid" {
			st.uid = v
		}
		if p, ok := fields[k]; ok {
			if *p, err = strconv.ParseUint(v, 16, 64); err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			seen++
		}
	}
	if seen != len(fields) {
		t.Fatalf("helper status lacks capability lines:\n%s", out)
	}
	return st, ""
}

func mask(caps ...capability.Cap) uint64 {
	var m uint64
	for _, c := range caps {
		m |= 1 << uint(c)
	}
	return m
}

func names(caps ...capability.Cap) []string {
	var n []string
	for _, c := range caps {
		n = append(n, capName(c))
	}
	return n
}

// held returns the capabilities in this process's permitted set.
func held(t *testing.T) []capability.Cap {
	t.Helper()
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		t.Fatal(err)
	}
	perm := uint64(data[1].Permitted)<<32 | uint64(data[0].Permitted)
	list, err := capability.ListSupported()
	if err != nil {
		t.Fatal(err)
	}
	return slices.DeleteFunc(list, func(c capability.Cap) bool { return perm&mask(c) == 0 })
}

func requireCaps(t *testing.T, caps ...capability.Cap) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("changing capabilities needs root")
	}
	h := held(t)
	for _, c := range append(caps, capability.CAP_SETPCAP, capability.CAP_SETUID, capability.CAP_SETGID) {
		if !slices.Contains(h, c) {
			t.Skipf("runtime does not hold %s", capName(c))
		}
	}
}

func TestApplyRoot(t *testing.T) {
	requireCaps(t, capability.CAP_CHOWN, capability.CAP_KILL)
	st, errMsg := runSteps(t, step{Caps: &specs.LinuxCapabilities{
		Bounding:    names(capability.CAP_CHOWN, capability.CAP_KILL, capability.CAP_SETUID),
		Effective:   names(capability.CAP_CHOWN, capability.CAP_KILL),
		Permitted:   names(capability.CAP_CHOWN, capability.CAP_KILL),
		Inheritable: names(capability.CAP_CHOWN, capability.CAP_KILL),
		Ambient:     names(capability.CAP_KILL),
	}})
	if errMsg != "" {
		t.Fatal(errMsg)
	}
	want := status{
		inh: mask(capability.CAP_CHOWN, capability.CAP_KILL),
		prm: mask(capability.CAP_CHOWN, capability.CAP_KILL),
		eff: mask(capability.CAP_CHOWN, capability.CAP_KILL),
		bnd: mask(capability.CAP_CHOWN, capability.CAP_KILL, capability.CAP_SETUID),
		amb: mask(capability.CAP_KILL),
		uid: st.uid,
	}
	if st != want {
		t.Errorf("got %+v, want %+v", st, want)
	}
}

func TestApplyNonRootAmbient(t *testing.T) {
	requireCaps(t, capability.CAP_NET_BIND_SERVICE, capability.CAP_KILL)
	if _, err := os.Stat("/bin/cat"); err != nil {
		t.Skip("no /bin/cat to exec")
	}
	nbs := names(capability.CAP_NET_BIND_SERVICE)
	st, errMsg := runSteps(t, step{
		Caps: &specs.LinuxCapabilities{
			Bounding:    names(capability.CAP_NET_BIND_SERVICE, capability.CAP_KILL),
			Effective:   nbs,
			Permitted:   nbs,
			Inheritable: nbs,
			Ambient:     nbs,
		},
		UID:  1000,
		Exec: true,
	})
	if errMsg != "" {
		t.Fatal(errMsg)
	}
	one := mask(capability.CAP_NET_BIND_SERVICE)
	want := status{
		inh: one, prm: one, eff: one, amb: one,
		bnd: mask(capability.CAP_NET_BIND_SERVICE, capability.CAP_KILL),
		uid: "1000\t1000\t1000\t1000",
	}
	if st != want {
		t.Errorf("after execve as uid 1000: got %+v, want %+v", st, want)
	}
}

func TestNoCapabilities(t *testing.T) {
	requireCaps(t)
	st, errMsg := runSteps(t, step{Caps: nil})
	if errMsg != "" {
		t.Fatal(errMsg)
	}
	if st.inh|st.prm|st.eff|st.bnd|st.amb != 0 {
		t.Errorf("nil capabilities left %+v", st)
	}
}

// A capability missing from the runtime's own sets (this host has no
// CAP_SYS_RESOURCE at all) is left out of the bounding set silently but is
// an error for the other sets, as in runc 1.1.
func TestNotHeldByRuntime(t *testing.T) {
	requireCaps(t, capability.CAP_KILL, capability.CAP_MKNOD)
	h := held(t)
	withoutRes := names(slices.DeleteFunc(slices.Clone(h), func(c capability.Cap) bool {
		return c == capability.CAP_SYS_RESOURCE
	})...)
	// The first step makes CAP_SYS_RESOURCE unheld on any host.
	drop := step{Caps: &specs.LinuxCapabilities{Bounding: withoutRes, Effective: withoutRes, Permitted: withoutRes}}

	t.Run("bounding", func(t *testing.T) {
		st, errMsg := runSteps(t, drop, step{Caps: &specs.LinuxCapabilities{
			Bounding:  names(capability.CAP_KILL, capability.CAP_SYS_RESOURCE),
			Permitted: names(capability.CAP_KILL),
		}})
		if errMsg != "" {
			t.Fatal(errMsg)
		}
		if want := mask(capability.CAP_KILL); st.bnd != want {
			t.Errorf("bounding %x, want %x", st.bnd, want)
		}
	})
	t.Run("permitted", func(t *testing.T) {
		_, errMsg := runSteps(t, drop, step{Caps: &specs.LinuxCapabilities{
			Bounding:  names(capability.CAP_KILL, capability.CAP_SYS_RESOURCE),
			Permitted: names(capability.CAP_KILL, capability.CAP_SYS_RESOURCE),
			Ambient:   names(capability.CAP_SYS_RESOURCE),
		}})
		want := "apply capabilities: CAP_SYS_RESOURCE not in the runtime's permitted set: operation not permitted"
		if errMsg != want {
			t.Errorf("error %q, want %q", errMsg, want)
		}
	})
	t.Run("inheritable", func(t *testing.T) {
		_, errMsg := runSteps(t, step{Caps: &specs.LinuxCapabilities{
			Bounding:    names(capability.CAP_KILL),
			Permitted:   names(capability.CAP_KILL, capability.CAP_MKNOD),
			Inheritable: names(capability.CAP_KILL, capability.CAP_MKNOD),
		}})
		want := "apply capabilities: inheritable CAP_MKNOD not in the bounding set: operation not permitted"
		if errMsg != want {
			t.Errorf("error %q, want %q", errMsg, want)
		}
	})
}

func TestApplyBoundingNeedsSetpcap(t *testing.T) {
	requireCaps(t, capability.CAP_KILL)
	all := names(held(t)...)
	noSetpcap := names(slices.DeleteFunc(held(t), func(c capability.Cap) bool {
		return c == capability.CAP_SETPCAP
	})...)
	_, errMsg := runSteps(t,
		step{Caps: &specs.LinuxCapabilities{Bounding: all, Effective: noSetpcap, Permitted: noSetpcap}},
		step{Caps: &specs.LinuxCapabilities{Bounding: names(capability.CAP_KILL)}},
	)
	if !strings.HasPrefix(errMsg, "drop CAP_") || !strings.HasSuffix(errMsg, "from the bounding set: operation not permitted") {
		t.Errorf("error %q, want a bounding set drop refused", errMsg)
	}
}

// TestApplyBoundingAlreadyReduced: without CAP_SETPCAP, a bounding set
// that already is what the spec asks for is not an error (nothing is left
// to drop), and a smaller one still is.
func TestApplyBoundingAlreadyReduced(t *testing.T) {
	requireCaps(t, capability.CAP_KILL)
	kept := slices.DeleteFunc(held(t), func(c capability.Cap) bool {
		return c == capability.CAP_SETPCAP || c == capability.CAP_SYS_ADMIN
	})
	st, errMsg := runSteps(t,
		step{Caps: &specs.LinuxCapabilities{Bounding: names(kept...), Effective: names(kept...), Permitted: names(kept...)}},
		step{Caps: &specs.LinuxCapabilities{Bounding: names(kept...), Effective: names(kept...), Permitted: names(kept...)}},
	)
	if errMsg != "" {
		t.Fatalf("second apply of the same bounding set: %s", errMsg)
	}
	if st.bnd&(1<<uint(capability.CAP_SYS_ADMIN)) != 0 || st.bnd&(1<<uint(capability.CAP_KILL)) == 0 {
		t.Errorf("bounding set %#x", st.bnd)
	}
}

func TestNewUnknown(t *testing.T) {
	for _, spec := range []*specs.LinuxCapabilities{
		{Bounding: []string{"CAP_KILL", "CAP_FOO"}},
		{Effective: []string{"CAP_FOO"}},
		{Permitted: []string{"CAP_FOO"}},
		{Inheritable: []string{"CAP_FOO"}},
		{Ambient: []string{"CAP_FOO"}},
	} {
		if _, err := New(spec); err == nil || err.Error() != `unknown capability "CAP_FOO"` {
			t.Errorf("New(%+v) error %v, want unknown capability \"CAP_FOO\"", spec, err)
		}
	}
	if _, err := New(&specs.LinuxCapabilities{Bounding: []string{"cap_kill"}}); err == nil {
		t.Error("lower-case name accepted")
	}
}

func TestNewValid(t *testing.T) {
	c, err := New(&specs.LinuxCapabilities{
		Bounding:  []string{"CAP_KILL", "CAP_CHOWN", "CAP_KILL"},
		Effective: []string{"CAP_CHOWN"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []capability.Cap{capability.CAP_KILL, capability.CAP_CHOWN}; !slices.Equal(c.bounding, want) {
		t.Errorf("bounding %v, want %v", c.bounding, want)
	}
	if c.permitted != nil || c.ambient != nil {
		t.Errorf("unexpected sets %+v", c)
	}
	if c, err := New(nil); err != nil || len(c.bounding)+len(c.effective) != 0 {
		t.Errorf("New(nil) = %+v, %v; want empty sets", c, err)
	}
}

func TestUnsupportedDropped(t *testing.T) {
	var logs bytes.Buffer
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&logs, nil)))
	t.Cleanup(func() { slog.SetDefault(prev) })

	// Pretend the kernel stops at CAP_WAKE_ALARM (Linux 3.0).
	c, err := newCaps(&specs.LinuxCapabilities{
		Bounding:  []string{"CAP_KILL", "CAP_BPF", "CAP_CHECKPOINT_RESTORE"},
		Permitted: []string{"CAP_PERFMON"},
	}, capability.CAP_WAKE_ALARM)
	if err != nil {
		t.Fatal(err)
	}
	if want := []capability.Cap{capability.CAP_KILL}; !slices.Equal(c.bounding, want) || len(c.permitted) != 0 {
		t.Errorf("bounding %v permitted %v, want %v and none", c.bounding, c.permitted, want)
	}
	out := logs.String()
	if !strings.Contains(out, "level=WARN") ||
		!strings.Contains(out, "capabilities=\"[CAP_BPF CAP_CHECKPOINT_RESTORE CAP_PERFMON]\"") {
		t.Errorf("warning not logged as expected: %q", out)
	}
}
