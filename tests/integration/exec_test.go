package integration

import (
	"os"
	"strconv"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/runmini/runmini/tests/testutil"
)

// execContainer starts a detached container running sleep and returns its id.
func execContainer(t *testing.T) string {
	t.Helper()
	bundle := testutil.Bundle(t, func(s *specs.Spec) {
		s.Process.Args = []string{"sleep", "1000"}
		s.Hostname = "execbox"
	})
	id := testutil.ID(t)
	cliMust(t, "run", "-d", "--bundle", bundle, id)
	return id
}

func TestExec(t *testing.T) {
	t.Parallel()
	id := execContainer(t)

	// output, exit code and namespaces (one --root per test: no subtests)
	func() {
		out, errOut, code := testutil.Run(t, "exec", id, "sh", "-c", "hostname; echo pid=$$; cat /proc/1/cmdline; exit 7")
		if code != 7 {
			t.Fatalf("exit %d, want 7 (stderr %q)", code, errOut)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 3 || lines[0] != "execbox" || lines[1] == "pid=1" || !strings.HasPrefix(lines[2], "sleep") {
			t.Errorf("not in the container's uts/pid namespaces: %q", out)
		}
	}()
	// user, env and cwd (one --root per test: no subtests)
	func() {
		out := cliMust(t, "exec", "-u", "1000:1000", "-g", "10", "-e", "EXTRA=yes", "--cwd", "/tmp", id, "sh", "-c", "id -u; id -g; id -G; echo $EXTRA; pwd")
		want := "1000\n1000\n1000 10\nyes\n/tmp\n"
		if out != want {
			t.Errorf("got %q, want %q", out, want)
		}
	}()
	// same cgroup as the init, in every hierarchy (one --root per test: no
	// subtests)
	func() {
		out := cliMust(t, "exec", id, "sh", "-c", "cat /proc/self/cgroup; echo --; cat /proc/1/cgroup")
		exec, init, ok := strings.Cut(out, "--\n")
		if !ok || exec != init || !strings.Contains(exec, "memory:") {
			t.Errorf("exec process and init in different cgroups:\n%s", out)
		}
	}()
	// detach and pid file (one --root per test: no subtests)
	func() {
		pidFile := t.TempDir() + "/exec.pid"
		cliMust(t, "exec", "-d", "--pid-file", pidFile, id, "sleep", "1000")
		b, err := os.ReadFile(pidFile)
		if err != nil {
			t.Fatal(err)
		}
		pid, err := strconv.Atoi(string(b))
		if err != nil {
			t.Fatalf("pid file %q: %v", b, err)
		}
		if cmd := cliCmdline(pid); !strings.HasPrefix(cmd, "sleep") {
			t.Errorf("pid file names %d (%q), not the exec'd sleep", pid, cmd)
		}
	}()
	// missing executable (one --root per test: no subtests)
	func() {
		msg := cliFail(t, "exec", id, "no-such-binary")
		if !strings.Contains(msg, `exec: "no-such-binary": executable file not found in $PATH`) {
			t.Errorf("error %q", msg)
		}
	}()
}

func TestPauseResume(t *testing.T) {
	t.Parallel()
	id := execContainer(t)
	cliMust(t, "pause", id)
	if st := cliGetState(t, id); st.Status != "paused" {
		t.Fatalf("after pause: %s", st.Status)
	}
	if msg := cliFail(t, "exec", id, "true"); !strings.Contains(msg, "paused") {
		t.Errorf("exec into a paused container: %q", msg)
	}
	if msg := cliFail(t, "pause", id); !strings.Contains(msg, "container not running") {
		t.Errorf("pause twice: %q", msg)
	}
	cliMust(t, "resume", id)
	if st := cliGetState(t, id); st.Status != "running" {
		t.Fatalf("after resume: %s", st.Status)
	}
	if msg := cliFail(t, "resume", id); !strings.Contains(msg, "container not paused") {
		t.Errorf("resume of a running container: %q", msg)
	}
	cliMust(t, "exec", id, "true")
}

func TestExecStopped(t *testing.T) {
	t.Parallel()
	bundle := testutil.Bundle(t, nil)
	id := testutil.ID(t)
	cliMust(t, "run", "--keep", "--bundle", bundle, id)
	if msg := cliFail(t, "exec", id, "true"); !strings.Contains(msg, "stopped") {
		t.Errorf("exec into a stopped container: %q", msg)
	}
}
