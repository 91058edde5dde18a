package integration

import (
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/runmini/runmini/tests/testutil"
)

// A seccomp profile reaches the container's process (compiled by runmini,
// sent compiled, loaded by the init just before the exec) and every exec
// into it; what the profile leaves alone works.
func TestSeccompProfile(t *testing.T) {
	t.Parallel()
	eperm := uint(1)
	profile := func(s *specs.Spec) {
		s.Linux.Seccomp = &specs.LinuxSeccomp{
			DefaultAction: specs.ActAllow,
			Architectures: []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32},
			Syscalls:      []specs.LinuxSyscall{{Names: []string{"chdir"}, Action: specs.ActErrno, ErrnoRet: &eperm}},
		}
	}
	const script = "cd / 2>&1; echo cd=$?; echo allowed"
	check := func(what, out string) {
		t.Helper()
		if !strings.Contains(out, "Operation not permitted") || !strings.Contains(out, "cd=") || strings.Contains(out, "cd=0") || !strings.HasSuffix(out, "allowed\n") {
			t.Errorf("%s: chdir not refused with EPERM, or the rest not allowed: %q", what, out)
		}
	}
	check("run", featScript(t, script, profile))

	bundle := testutil.Bundle(t, func(s *specs.Spec) {
		s.Process.Args = []string{"sleep", "1000"}
		profile(s)
	})
	id := testutil.ID(t)
	cliMust(t, "run", "-d", "--bundle", bundle, id)
	out, errOut, code := testutil.Run(t, "exec", id, "sh", "-c", script)
	if code != 0 {
		t.Fatalf("exec: exit %d: %s", code, errOut)
	}
	check("exec", out)
}
