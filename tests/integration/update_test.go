package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runmini/runmini/tests/testutil"
)

// cgroupFile reads a control file of the container's cgroup in a v1
// hierarchy on the host.
func cgroupFile(t *testing.T, id, hierarchy, file string) string {
	t.Helper()
	dirs, err := testutil.FindCgroups(func(name string) bool { return name == id })
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		if strings.HasPrefix(d, "/sys/fs/cgroup/"+hierarchy+"/") {
			b, err := os.ReadFile(filepath.Join(d, file))
			if err != nil {
				t.Fatal(err)
			}
			return strings.TrimSpace(string(b))
		}
	}
	t.Skipf("no %s hierarchy for %s here", hierarchy, id)
	return ""
}

func TestUpdate(t *testing.T) {
	if cliIsRunc() {
		t.Skip("runc 1.1 update flags differ in details")
	}
	t.Parallel()
	id := execContainer(t)
	cliMust(t, "update", "--memory", "64m", "--pids-limit", "50", "--cpu-share", "512", id)
	if got := cgroupFile(t, id, "memory", "memory.limit_in_bytes"); got != "67108864" {
		t.Errorf("memory limit %s", got)
	}
	if got := cgroupFile(t, id, "pids", "pids.max"); got != "50" {
		t.Errorf("pids.max %s", got)
	}
	if got := cgroupFile(t, id, "cpu", "cpu.shares"); got != "512" {
		t.Errorf("cpu.shares %s", got)
	}
	// A resources file, merged over what the container has.
	res := filepath.Join(t.TempDir(), "res.json")
	os.WriteFile(res, []byte(`{"pids":{"limit":70}}`), 0o644)
	cliMust(t, "update", "-r", res, id)
	if got := cgroupFile(t, id, "pids", "pids.max"); got != "70" {
		t.Errorf("pids.max after -r: %s", got)
	}
	if got := cgroupFile(t, id, "memory", "memory.limit_in_bytes"); got != "67108864" {
		t.Errorf("memory limit lost by the second update: %s", got)
	}
	// Device rules are left alone: the container still has /dev/null.
	if out := cliMust(t, "exec", id, "sh", "-c", "echo x > /dev/null && echo ok"); out != "ok\n" {
		t.Errorf("after update: %q", out)
	}
	if msg := cliFail(t, "update", "--memory", "lots", id); !strings.Contains(msg, "memory") {
		t.Errorf("bad value: %q", msg)
	}
}

func TestPs(t *testing.T) {
	t.Parallel()
	id := execContainer(t)
	st := cliGetState(t, id)
	var pids []int
	if err := json.Unmarshal([]byte(cliMust(t, "ps", "--format", "json", id)), &pids); err != nil {
		t.Fatal(err)
	}
	if len(pids) != 1 || pids[0] != st.Pid {
		t.Errorf("ps json %v, want [%d]", pids, st.Pid)
	}
	table := cliMust(t, "ps", id)
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "PID") || !strings.Contains(lines[1], "sleep") {
		t.Errorf("ps table %q", table)
	}
}
