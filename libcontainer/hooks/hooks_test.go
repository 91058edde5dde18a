package hooks

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/runtime-spec/specs-go"
)

func testState(t *testing.T) *specs.State {
	return &specs.State{
		Version:     specs.Version,
		ID:          "hooks-" + t.Name(),
		Status:      specs.StateCreating,
		Pid:         1234,
		Bundle:      "/run/bundle",
		Annotations: map[string]string{"a": "b"},
	}
}

func shell(t *testing.T, script string, args ...string) specs.Hook {
	t.Helper()
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("no /bin/sh")
	}
	return specs.Hook{Path: "/bin/sh", Args: append([]string{"sh", "-c", script, "sh"}, args...)}
}

func TestStateOnStdin(t *testing.T) {
	out := filepath.Join(t.TempDir(), "state.json")
	state := testState(t)
	if err := Run(context.Background(), shell(t, `cat > "$1"`, out), state); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var got specs.State
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("hook got %q: %v", b, err)
	}
	if got.ID != state.ID || got.Pid != state.Pid || got.Status != state.Status ||
		got.Bundle != state.Bundle || got.Annotations["a"] != "b" || got.Version != state.Version {
		t.Errorf("hook got state %+v, want %+v", got, *state)
	}
}

func TestArgv0(t *testing.T) {
	out := filepath.Join(t.TempDir(), "cmdline")
	h := shell(t, `tr '\0' '\n' < /proc/$$/cmdline > "$1"`, out)
	h.Args[0] = "my-hook-argv0"
	if err := Run(context.Background(), h, testState(t)); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n"); !slices.Equal(got, h.Args) {
		t.Errorf("hook argv %q, want %q", got, h.Args)
	}
}

func TestEnvExact(t *testing.T) {
	t.Setenv("RUNMINI_HOOK_TEST_LEAK", "1")
	for _, tc := range []struct {
		name string
		env  []string
		want []string
	}{
		{"given", []string{"A=1", "B=two words", "EMPTY="}, []string{"A=1", "B=two words", "EMPTY="}},
		{"none", nil, nil},
		{"repeated key", []string{"A=1", "A=2"}, []string{"A=2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "environ")
			// The shell's own environ as execve gave it, before the shell
			// adds anything.
			h := shell(t, `cat /proc/$$/environ > "$1"`, out)
			h.Env = tc.env
			if err := Run(context.Background(), h, testState(t)); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			if len(b) > 0 {
				got = strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("hook environment %q, want %q", got, tc.want)
			}
		})
	}
}

func TestRunAllStopsAtFailure(t *testing.T) {
	dir := t.TempDir()
	first, third := filepath.Join(dir, "first"), filepath.Join(dir, "third")
	hooks := []specs.Hook{
		shell(t, `touch "$1"`, first),
		shell(t, "echo to-stdout; echo to-stderr >&2; exit 3"),
		shell(t, `touch "$1"`, third),
	}
	err := RunAll(context.Background(), "prestart", hooks, testState(t))
	want := `error running prestart hook #1: /bin/sh: exit status 3, stderr: "to-stderr", stdout: "to-stdout"`
	if err == nil || err.Error() != want {
		t.Fatalf("error %v, want %q", err, want)
	}
	if _, err := os.Stat(first); err != nil {
		t.Errorf("first hook did not run: %v", err)
	}
	if _, err := os.Stat(third); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("hook after the failing one ran (stat: %v)", err)
	}
	var ee interface{ ExitCode() int }
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Errorf("exit status not reachable through errors.As: %v", err)
	}
}

func TestRunAllEmpty(t *testing.T) {
	if err := RunAll(context.Background(), "poststop", nil, testState(t)); err != nil {
		t.Fatal(err)
	}
}

func TestOutputCapped(t *testing.T) {
	h := shell(t, `i=0; while [ $i -lt 2000 ]; do echo 0123456789012345678901234567890123456789 >&2; i=$((i+1)); done; exit 1`)
	err := Run(context.Background(), h, testState(t))
	if err == nil {
		t.Fatal("failing hook reported success")
	}
	msg := err.Error()
	if len(msg) > 2*outputCap || !strings.Contains(msg, "[truncated]") {
		t.Errorf("error of %d bytes, truncated marker present: %v", len(msg), strings.Contains(msg, "[truncated]"))
	}
}

func TestTimeout(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	h := shell(t, `echo $$ > "$1"; exec sleep 60`, pidFile)
	timeout := 1
	h.Timeout = &timeout

	start := time.Now()
	err := Run(context.Background(), h, testState(t))
	if elapsed := time.Since(start); elapsed > 10*time.Second {
		t.Errorf("hook ran %v despite a 1s timeout", elapsed)
	}
	if err == nil || !strings.Contains(err.Error(), "timeout") || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v, want a timeout", err)
	}
	b, rerr := os.ReadFile(pidFile)
	if rerr != nil {
		t.Fatal(rerr)
	}
	pid, rerr := strconv.Atoi(strings.TrimSpace(string(b)))
	if rerr != nil {
		t.Fatal(rerr)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("hook pid %d still exists after timeout (kill 0: %v)", pid, err)
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

func TestContextCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	time.AfterFunc(100*time.Millisecond, cancel)
	timeout := 60
	h := shell(t, "exec sleep 60")
	h.Timeout = &timeout
	err := Run(ctx, h, testState(t))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
}

func TestBackgroundChildHoldingOutput(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	h := shell(t, `sleep 60 & echo $! > "$1"; exit 0`, pidFile)
	t.Cleanup(func() {
		if b, err := os.ReadFile(pidFile); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	start := time.Now()
	if err := Run(context.Background(), h, testState(t)); err != nil {
		t.Fatalf("hook that exited 0 reported %v", err)
	}
	if elapsed := time.Since(start); elapsed > waitDelay+5*time.Second {
		t.Errorf("Run blocked %v on a background child", elapsed)
	}
}

func TestBadInput(t *testing.T) {
	zero := 0
	for _, tc := range []struct {
		name  string
		hook  specs.Hook
		state *specs.State
		want  string
	}{
		{"missing binary", specs.Hook{Path: "/nonexistent/runmini-hook"}, testState(t),
			"fork/exec /nonexistent/runmini-hook: no such file or directory"},
		{"relative path", specs.Hook{Path: "bin/hook"}, testState(t), `hook path "bin/hook" is not absolute`},
		{"zero timeout", specs.Hook{Path: "/bin/true", Timeout: &zero}, testState(t), "hook /bin/true: timeout 0 must be positive"},
		{"nil state", specs.Hook{Path: "/bin/true"}, nil, "hook /bin/true: no container state"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Run(context.Background(), tc.hook, tc.state)
			if err == nil || err.Error() != tc.want {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
	err := RunAll(context.Background(), "createRuntime", []specs.Hook{{Path: "/nonexistent/runmini-hook"}}, testState(t))
	if want := "error running createRuntime hook #0: fork/exec /nonexistent/runmini-hook: no such file or directory"; err == nil || err.Error() != want {
		t.Errorf("RunAll error %v, want %q", err, want)
	}
}
