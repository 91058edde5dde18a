package integration

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/console"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/runmini/runmini/tests/testutil"
)

// TestRunTerminalWithoutConsoleSocket: `run` of a terminal container with
// no --console-socket proxies the pty itself, as runc does, so the default
// spec (terminal: true) works by hand from a terminal.
func TestRunTerminalWithoutConsoleSocket(t *testing.T) {
	t.Parallel()
	bundle := testutil.Bundle(t, func(s *specs.Spec) {
		s.Process.Terminal = true
		s.Process.Args = []string{"sh", "-c", "tty; read line; echo got:$line; exit 3"}
	})
	rt := testutil.Runtime(t)
	master, slave, err := console.NewPty()
	if err != nil {
		t.Skipf("no pty here: %v", err)
	}
	defer master.Close()
	f, err := os.OpenFile(slave, os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	cmd := rt.Command("run", "--bundle", bundle, testutil.ID(t))
	cmd.Stdin, cmd.Stdout, cmd.Stderr = f, f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()

	var out lockedBuffer
	readDone := make(chan struct{})
	go func() {
		io.Copy(&out, master) // until EIO when the last slave fd closes
		close(readDone)
	}()
	// Typed input reaches the container's terminal.
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), "/dev/pts/") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	master.Write([]byte("hello\r"))
	var err2 error
	select {
	case err2 = <-done:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("run did not return; output so far: %q", out.String())
	}
	var ee *exec.ExitError
	if !errors.As(err2, &ee) || ee.ExitCode() != 3 {
		t.Errorf("run: %v, want exit status 3", err2)
	}
	select {
	case <-readDone:
	case <-time.After(2 * time.Second):
	}
	got := out.String()
	if !strings.Contains(got, "/dev/pts/0") {
		t.Errorf("the process has no terminal of its own: %q", got)
	}
	if !strings.Contains(got, "got:hello") {
		t.Errorf("input did not reach the container: %q", got)
	}
}

// lockedBuffer is written by the copy from the pty and read by the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
