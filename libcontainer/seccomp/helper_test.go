//go:build cgo

package seccomp

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// buildHelper compiles cmd/runmini-seccomp as make does.
func buildHelper(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), HelperName)
	cc := os.Getenv("CC")
	if cc == "" {
		cc = "gcc"
	}
	cmd := exec.Command(cc, "-O2", "-Wall", "-Wextra", "-Werror", "-o", out, "../../cmd/runmini-seccomp/main.c", "-lseccomp")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", HelperName, err, b)
	}
	return out
}

// containerdDefault is containerd's default profile (testdata).
func containerdDefault(t *testing.T) specs.LinuxSeccomp {
	t.Helper()
	var p specs.LinuxSeccomp
	b, err := os.ReadFile("testdata/containerd-default.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestHelperMatchesInProcess: runmini and the shim (no cgo) compile
// through the helper, a build with cgo in process; both must give the same
// program for any profile.
func TestHelperMatchesInProcess(t *testing.T) {
	helper := buildHelper(t)
	containerd := containerdDefault(t)
	u := func(v uint) *uint { return &v }
	arg := func(i uint, op specs.LinuxSeccompOperator, v, v2 uint64) specs.LinuxSeccompArg {
		return specs.LinuxSeccompArg{Index: i, Op: op, Value: v, ValueTwo: v2}
	}
	profiles := map[string]*specs.LinuxSeccomp{
		"containerd's default": &containerd,
		"every action": {DefaultAction: specs.ActErrno, DefaultErrnoRet: u(38), Architectures: []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32},
			Syscalls: []specs.LinuxSyscall{
				{Names: []string{"read", "write"}, Action: specs.ActAllow},
				{Names: []string{"chdir"}, Action: specs.ActErrno, ErrnoRet: u(1)},
				{Names: []string{"fchdir"}, Action: specs.ActTrace, ErrnoRet: u(7)},
				{Names: []string{"getpid"}, Action: specs.ActKill},
				{Names: []string{"getppid"}, Action: specs.ActKillProcess},
				{Names: []string{"uname"}, Action: specs.ActTrap},
				{Names: []string{"getuid"}, Action: specs.ActLog},
				{Names: []string{"no_such_syscall", "getgid", "", "two words", strings.Repeat("x", 100)}, Action: specs.ActAllow},
				{Names: []string{"close"}, Action: specs.ActErrno, ErrnoRet: u(38)}, // the default: skipped
			}},
		"conditions": {DefaultAction: specs.ActAllow, Architectures: []specs.Arch{specs.ArchX86_64, specs.ArchAARCH64},
			Flags: []specs.LinuxSeccompFlag{specs.LinuxSeccompFlagLog, specs.LinuxSeccompFlagSpecAllow},
			Syscalls: []specs.LinuxSyscall{
				{Names: []string{"personality"}, Action: specs.ActErrno, Args: []specs.LinuxSeccompArg{arg(0, specs.OpEqualTo, 8, 0), arg(0, specs.OpEqualTo, 0xffffffff, 0)}},
				{Names: []string{"clone"}, Action: specs.ActErrno, Args: []specs.LinuxSeccompArg{arg(0, specs.OpMaskedEqual, 0x7e020000, 0)}},
				{Names: []string{"socket"}, Action: specs.ActErrno, Args: []specs.LinuxSeccompArg{arg(0, specs.OpNotEqual, 1, 0), arg(1, specs.OpLessThan, 3, 0), arg(2, specs.OpGreaterEqual, 1<<40, 0)}},
				{Names: []string{"kill"}, Action: specs.ActErrno, Args: []specs.LinuxSeccompArg{arg(1, specs.OpLessEqual, 9, 0), arg(0, specs.OpGreaterThan, 1, 0)}},
				{Names: []string{"prctl"}, Action: specs.ActErrno, Args: []specs.LinuxSeccompArg{arg(5, specs.OpMaskedEqual, 0xff, 0x0f)}},
			}},
	}
	for name, c := range profiles {
		p, err := parse(c)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		in, err := compile(p)
		if err != nil {
			t.Fatalf("%s: in process: %v", name, err)
		}
		out, err := compileWithHelper(p, helper)
		if err != nil {
			t.Fatalf("%s: helper: %v", name, err)
		}
		if !slices.Equal(in, out) {
			t.Errorf("%s: the helper's program (%d instructions) differs from libseccomp's in process (%d)", name, len(out), len(in))
		}
	}
}

// TestHelperErrors: what the helper refuses comes back as one line.
func TestHelperErrors(t *testing.T) {
	helper := buildHelper(t)
	p := &profile{def: retAllow, archs: []string{"vax"}}
	if _, err := compileWithHelper(p, helper); err == nil || err.Error() != `seccomp: unknown architecture "vax"` {
		t.Errorf("unknown arch: %v", err)
	}
	if _, err := compileWithHelper(&profile{def: retAllow}, filepath.Join(t.TempDir(), "missing")); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing helper: %v", err)
	}
}
