package integration

import (
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/runmini/runmini/tests/testutil"
)

// TestMissingCompanion: runmini (built without cgo) compiles seccomp
// profiles with runmini-seccomp and joins namespaces with
// runmini-init-nsenter, both installed beside it. Without them it names
// the missing file in one line and leaves nothing behind; what does not
// need them works.
func TestMissingCompanion(t *testing.T) {
	if cliIsRunc() {
		t.Skip("runmini's own installation layout")
	}
	t.Parallel()
	cli := testutil.Runtime(t)
	dir := t.TempDir()
	for _, name := range []string{"runmini", "runmini-init"} {
		copyExe(t, filepath.Join(filepath.Dir(cli.Path), name), filepath.Join(dir, name))
	}
	cli.Path = filepath.Join(dir, "runmini")

	eperm := uint(1)
	bundle := testutil.Bundle(t, func(s *specs.Spec) {
		s.Process.Args = []string{"true"}
		s.Linux.Seccomp = &specs.LinuxSeccomp{DefaultAction: specs.ActAllow,
			Syscalls: []specs.LinuxSyscall{{Names: []string{"chdir"}, Action: specs.ActErrno, ErrnoRet: &eperm}}}
	})
	id := testutil.ID(t)
	_, errOut, code := cli.Run("run", "--bundle", bundle, id)
	if code == 0 || !strings.Contains(errOut, "runmini-seccomp is missing beside") {
		t.Errorf("run with a seccomp profile, no runmini-seccomp: exit %d, %q", code, errOut)
	}
	cliErrorLine(t, "run without runmini-seccomp", errOut)
	cliNothingLeft(t, id, bundle, "")

	bundle = testutil.Bundle(t, func(s *specs.Spec) { s.Process.Args = []string{"sleep", "1000"} })
	id = testutil.ID(t)
	if _, errOut, code := cli.Run("run", "-d", "--bundle", bundle, id); code != 0 {
		t.Fatalf("run -d without the companions: exit %d: %s", code, errOut)
	}
	_, errOut, code = cli.Run("exec", id, "true")
	if code == 0 || !strings.Contains(errOut, "runmini-init-nsenter is missing beside") {
		t.Errorf("exec without runmini-init-nsenter: exit %d, %q", code, errOut)
	}
	cliMust(t, "delete", "--force", id)
}
