package integration

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/runmini/runmini/tests/testutil"
)

// TestContainerdHarness proves the containerd harness the shim's
// end-to-end tests stand on, with every containerd version they run
// against: a private daemon starts, the busybox image made in Go imports
// and unpacks, `ctr run` runs it under containerd's own runc shim (and
// Debian's runc), and the cleanup deletes a task the test leaves running,
// with nothing left behind. It does not involve runmini.
func TestContainerdHarness(t *testing.T) {
	for _, version := range testutil.ContainerdVersions() {
		t.Run(version, func(t *testing.T) {
			t.Parallel()
			var (
				pid int
				dir string
			)
			t.Run("run", func(t *testing.T) {
				c := testutil.StartContainerd(t, version)
				dir = c.Dir
				ref := c.ImportBusybox(t)

				if out := c.CtrMust(t, "run", "--rm", ref, testutil.ID(t), "echo", "hello"); out != "hello\n" {
					t.Errorf("ctr run echo hello printed %q", out)
				}
				out, errOut, code := c.CtrExit(t, "run", "--rm", ref, testutil.ID(t), "sh", "-c", "cat /etc/hostname; echo oops >&2; exit 3")
				if code != 3 || out != "runmini\n" || errOut != "oops\n" {
					t.Errorf("ctr run sh -c '...; exit 3': exit status %d, stdout %q, stderr %q", code, out, errOut)
				}
				c.CheckNoLeaks(t)

				// Left running on purpose, across a daemon restart: the
				// cleanup must kill and delete it.
				id := testutil.ID(t)
				c.CtrMust(t, "run", "-d", ref, id, "sleep", "1000")
				c.Restart(t)
				pid = taskPid(t, c, id)
			})
			if pid == 0 {
				return
			}
			if _, ok := testutil.ProcStart(pid); ok {
				t.Errorf("container process %d survived the cleanup", pid)
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Errorf("containerd directory %s not removed: %v", dir, err)
			}
		})
	}
}

// taskPid returns the pid of task id from `ctr task ls`.
func taskPid(t *testing.T, c *testutil.Containerd, id string) int {
	t.Helper()
	out := c.CtrMust(t, "task", "ls")
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 3 && f[0] == id {
			if f[2] != "RUNNING" {
				t.Fatalf("task %s is %s after the restart", id, f[2])
			}
			pid, err := strconv.Atoi(f[1])
			if err != nil {
				t.Fatalf("ctr task ls: %q", line)
			}
			return pid
		}
	}
	t.Fatalf("task %s not listed:\n%s", id, out)
	return 0
}
