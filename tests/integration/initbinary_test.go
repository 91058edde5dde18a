package integration

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/runmini/runmini/tests/testutil"
)

// TestInitBinary: the container's init runs from runmini-init when it sits
// beside runmini, and from runmini itself when it does not; an exec (which
// joins namespaces) runs from runmini-init-nsenter, and a binary without
// the nsenter constructor in its place fails with a clear error instead of
// joining nothing.
func TestInitBinary(t *testing.T) {
	if cliIsRunc() {
		t.Skip("runmini's own init binary")
	}
	t.Parallel()
	rt := testutil.Runtime(t)
	initPath := rt.Path + "-init"
	initSt, err := os.Stat(initPath)
	if err != nil {
		t.Fatalf("make builds %s beside %s: %v", initPath, rt.Path, err)
	}
	bundle := testutil.Bundle(t, func(s *specs.Spec) { s.Process.Args = []string{"sleep", "1000"} })
	id := testutil.ID(t)
	cliMust(t, "create", "--bundle", bundle, id)
	st := cliGetState(t, id)
	exe, err := os.Stat("/proc/" + strconv.Itoa(st.Pid) + "/exe")
	if err != nil {
		t.Fatal(err)
	}
	if exe.Size() != initSt.Size() {
		t.Errorf("the init runs from a %d-byte binary, not runmini-init (%d bytes)", exe.Size(), initSt.Size())
	}
	nsInit, err := os.Stat(rt.Path + "-init-nsenter")
	if err != nil {
		t.Fatalf("make builds runmini-init-nsenter beside %s: %v", rt.Path, err)
	}
	cliMust(t, "delete", "-f", id)
	if nsInit.Size() == initSt.Size() {
		t.Errorf("runmini-init-nsenter and runmini-init have the same size: is one of them not built?")
	}

	// A pure Go init where the constructor is needed: a clear error.
	dir := t.TempDir()
	fake := filepath.Join(dir, "runmini")
	copyExe(t, rt.Path, fake)
	copyExe(t, initPath, filepath.Join(dir, "runmini-init"))
	copyExe(t, initPath, filepath.Join(dir, "runmini-init-nsenter"))
	fakeRoot := t.TempDir()
	fakeID := testutil.ID(t)
	t.Cleanup(func() { exec.Command(fake, "--root", fakeRoot, "delete", "-f", fakeID).Run() })
	// Not CombinedOutput: the container inherits create's stdio.
	if err := exec.Command(fake, "--root", fakeRoot, "create", "--bundle", bundle, fakeID).Run(); err != nil {
		t.Fatalf("create with a pure init: %v", err)
	}
	exec.Command(fake, "--root", fakeRoot, "start", fakeID).Run()
	out, err := exec.Command(fake, "--root", fakeRoot, "exec", fakeID, "true").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "without the nsenter constructor") {
		t.Errorf("exec through an init without the constructor: %v: %q", err, out)
	}
	exec.Command(fake, "--root", fakeRoot, "delete", "-f", fakeID).Run()

	// runmini alone: the init is built in.
	alone := filepath.Join(t.TempDir(), "runmini")
	copyExe(t, rt.Path, alone)
	root := t.TempDir()
	aloneID := testutil.ID(t)
	t.Cleanup(func() { exec.Command(alone, "--root", root, "delete", "-f", aloneID).Run() })
	b := testutil.Bundle(t, func(s *specs.Spec) { s.Process.Args = []string{"echo", "init built in"} })
	out, err = exec.Command(alone, "--root", root, "run", "--bundle", b, aloneID).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "init built in" {
		t.Errorf("runmini without runmini-init: %v: %q", err, out)
	}
}

func copyExe(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}
