package integration

import (
	"os"
	"path/filepath"
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

// A profile that takes libseccomp longer to compile than the init takes to
// build the container (a thousand argument rules, ~60 ms): the init gets
// its filter when it asks, and it is in force for the process and an exec.
func TestSeccompProfileCompiledWhileCreating(t *testing.T) {
	t.Parallel()
	eperm := uint(1)
	bundle := testutil.Bundle(t, func(s *specs.Spec) {
		s.Process.Args = []string{"sh", "-c", "cd / 2>&1; echo cd=$?; exec sleep 1000"}
		p := &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Architectures: []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32},
			Syscalls: []specs.LinuxSyscall{{Names: []string{"chdir"}, Action: specs.ActErrno, ErrnoRet: &eperm}}}
		for i := 0; i < 1000; i++ {
			p.Syscalls = append(p.Syscalls, specs.LinuxSyscall{Names: []string{"getpriority"}, Action: specs.ActErrno,
				Args: []specs.LinuxSeccompArg{{Index: 1, Value: uint64(100000 + i), Op: specs.OpEqualTo}}})
		}
		s.Linux.Seccomp = p
	})
	id := testutil.ID(t)
	out, errOut, code := testutil.Run(t, "--debug", "run", "-d", "--bundle", bundle, id)
	if code != 0 {
		t.Fatalf("run -d: exit %d: %s %s", code, out, errOut)
	}
	if !strings.Contains(errOut, "seccomp filter still compiling") {
		t.Errorf("the filter did not follow the config (the test profile compiled too fast?); log:\n%s", errOut)
	}
	out, errOut, code = testutil.Run(t, "exec", id, "sh", "-c", "cd / 2>&1; echo cd=$?")
	if code != 0 || !strings.Contains(out, "Operation not permitted") || strings.Contains(out, "cd=0") {
		t.Errorf("exec: exit %d, %q (%s): want chdir refused", code, out, errOut)
	}
}

// A profile is compiled once per runtime root: the next container takes
// the program runmini kept in <root>/@seccomp (a file only root may
// write), and it is in force there as in the first.
func TestSeccompProfileCached(t *testing.T) {
	t.Parallel()
	eperm := uint(1)
	bundle := testutil.Bundle(t, func(s *specs.Spec) {
		s.Process.Args = []string{"sh", "-c", "cd / 2>&1; echo cd=$?"}
		s.Linux.Seccomp = &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Architectures: []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32},
			Syscalls: []specs.LinuxSyscall{{Names: []string{"chdir"}, Action: specs.ActErrno, ErrnoRet: &eperm}}}
	})
	dir := filepath.Join(testutil.Runtime(t).Root, testutil.SeccompCacheDir)
	for i, wantCached := range []bool{false, true} {
		out, errOut, code := testutil.Run(t, "--debug", "run", "--bundle", bundle, testutil.ID(t))
		if code != 0 || !strings.Contains(out, "Operation not permitted") || strings.Contains(out, "cd=0") {
			t.Fatalf("run %d: exit %d, %q: want chdir refused\n%s", i, code, out, errOut)
		}
		if cached := strings.Contains(errOut, "seccomp program from the cache"); cached != wantCached {
			t.Errorf("run %d: program from the cache: %v, want %v", i, cached, wantCached)
		}
		ents, err := os.ReadDir(dir)
		if err != nil || len(ents) != 1 {
			t.Fatalf("run %d: %s holds %v (%v), want one program", i, dir, ents, err)
		}
		if st, err := os.Stat(filepath.Join(dir, ents[0].Name())); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("run %d: cached program mode %v (%v), want 0600", i, st.Mode(), err)
		}
	}
}
