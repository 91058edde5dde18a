// Package containerd runs containerd-shim-mini-v2 under real containerd:
// Debian's 1.6 and builds of 1.7, 2.2 and 2.4 (testutil.ContainerdVersions),
// each its own daemon with its own address, root, state and config, driven
// with ctr exactly as a user would.
package containerd

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/console"

	"github.com/runmini/runmini/tests/testutil"
)

const mini = testutil.MiniRuntime

// TestContainerd runs every scenario against every containerd version;
// versions run in parallel, the scenarios of one version in turn.
func TestContainerd(t *testing.T) {
	for _, v := range testutil.ContainerdVersions() {
		t.Run(v, func(t *testing.T) {
			t.Parallel()
			c := testutil.StartContainerd(t, v)
			ref := c.ImportBusybox(t)
			for _, sc := range scenarios {
				t.Run(sc.name, func(t *testing.T) {
					sc.run(t, c, ref)
					c.CheckNoLeaks(t)
				})
			}
		})
	}
}

var scenarios = []struct {
	name string
	run  func(t *testing.T, c *testutil.Containerd, ref string)
}{
	{"run-rm-exit-status", runExitStatus},
	{"run-rootfs", runRootfs},
	{"detached-exec-kill-ps-pause-metrics", detachedLifecycle},
	{"concurrent-execs", concurrentExecs},
	{"tty", ttyRunAndExec},
	{"oom", oomEvent},
	{"containerd-restart", containerdRestart},
	{"shim-killed", shimKilled},
}

func runExitStatus(t *testing.T, c *testutil.Containerd, ref string) {
	for _, tc := range []struct {
		script string
		out    string
		exit   int
	}{
		{"echo hello; echo to-stderr >&2", "hello\n", 0},
		{"echo bye; exit 3", "bye\n", 3},
		// The init is pid 1 of its namespace, immune to its own signals:
		// a child is killed instead, and sh reports it.
		{"sleep 100 & kill -9 $!; wait $!", "", 137},
	} {
		id := testutil.ID(t)
		stdout, stderr, exit := c.CtrExit(t, "run", "--rm", "--runtime", mini, ref, id, "sh", "-c", tc.script)
		if stdout != tc.out || exit != tc.exit {
			t.Errorf("%q: stdout %q, exit %d; want %q, %d (stderr %q)", tc.script, stdout, exit, tc.out, tc.exit, stderr)
		}
		if tc.exit == 0 && !strings.Contains(stderr, "to-stderr") {
			t.Errorf("stderr %q lost the container's stderr", stderr)
		}
	}
}

func runRootfs(t *testing.T, c *testutil.Containerd, ref string) {
	rootfs := testutil.Rootfs(t)
	if err := os.WriteFile(filepath.Join(rootfs, "marker"), []byte("mine\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	id := testutil.ID(t)
	out := c.CtrMust(t, "run", "--rm", "--runtime", mini, "--rootfs", rootfs, id, "/bin/cat", "/marker")
	if out != "mine\n" {
		t.Errorf("stdout %q", out)
	}
}

func detachedLifecycle(t *testing.T, c *testutil.Containerd, ref string) {
	id := testutil.ID(t)
	runIdle(t, c, ref, id)
	if st := taskStatus(t, c, id); st != "RUNNING" {
		t.Fatalf("status %q after run -d", st)
	}
	_, _, exit := c.CtrExit(t, "task", "exec", "--exec-id", "e1", id, "sh", "-c", "exit 5")
	if exit != 5 {
		t.Errorf("exec exit %d, want 5", exit)
	}
	if _, _, exit := c.CtrExit(t, "task", "exec", "--exec-id", "e3", id, "sh", "-c", "kill -9 $$"); exit != 137 {
		t.Errorf("exec killed by SIGKILL: exit %d, want 137", exit)
	}
	cmd := c.Ctr("task", "exec", "--exec-id", "e2", id, "sh", "-c", "cat; echo end")
	cmd.Stdin = strings.NewReader("from-stdin\n")
	if out, err := cmd.Output(); err != nil || string(out) != "from-stdin\nend\n" {
		t.Errorf("exec with stdin: %q, %v", out, err)
	}
	ps := c.CtrMust(t, "task", "ps", id)
	if n := len(strings.Split(strings.TrimSpace(ps), "\n")); n != 2 {
		t.Errorf("task ps: %q", ps)
	}
	c.CtrMust(t, "task", "pause", id)
	if st := taskStatus(t, c, id); st != "PAUSED" {
		t.Errorf("status %q after pause", st)
	}
	c.CtrMust(t, "task", "resume", id)
	if st := taskStatus(t, c, id); st != "RUNNING" {
		t.Errorf("status %q after resume", st)
	}
	m := c.CtrMust(t, "task", "metrics", id)
	if !strings.Contains(m, "pids.current") && !strings.Contains(m, "pids") {
		t.Errorf("metrics: %q", m)
	}
	killAndRemove(t, c, id)
}

func concurrentExecs(t *testing.T, c *testutil.Containerd, ref string) {
	id := testutil.ID(t)
	runIdle(t, c, ref, id)
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, stderr, exit := c.CtrExit(t, "task", "exec", "--exec-id", "x"+strconv.Itoa(i), id, "sh", "-c", "exit "+strconv.Itoa(i))
			if exit != i {
				t.Errorf("exec %d: exit %d (%s)", i, exit, stderr)
			}
		}(i)
	}
	wg.Wait()
	killAndRemove(t, c, id)
}

// ttyRunAndExec: `ctr run -t` and `ctr task exec -t` on a pty of ours.
func ttyRunAndExec(t *testing.T, c *testutil.Containerd, ref string) {
	id := testutil.ID(t)
	out, exit := onPty(t, c, "run", "-t", "--rm", "--runtime", mini, ref, id, "sh", "-c", "tty; exit 4")
	if exit != 4 || !strings.Contains(out, "/dev/pts/0") {
		t.Errorf("run -t: exit %d, output %q", exit, out)
	}
	id = testutil.ID(t)
	runIdle(t, c, ref, id)
	out, exit = onPty(t, c, "task", "exec", "-t", "--exec-id", "t1", id, "sh", "-c", "tty; exit 6")
	if exit != 6 || !strings.Contains(out, "/dev/pts/") {
		t.Errorf("exec -t: exit %d, output %q", exit, out)
	}
	killAndRemove(t, c, id)
}

// onPty runs ctr with a pty as its stdio, as from a terminal.
func onPty(t *testing.T, c *testutil.Containerd, args ...string) (string, int) {
	t.Helper()
	master, slave, err := console.NewPty()
	if err != nil {
		t.Fatal(err)
	}
	defer master.Close()
	sf, err := os.OpenFile(slave, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	cmd := c.Ctr(args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = sf, sf, sf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sf.Close()
	var buf bytes.Buffer
	done := make(chan struct{})
	go func() { io.Copy(&buf, master); close(done) }()
	werr := make(chan error, 1)
	go func() { werr <- cmd.Wait() }()
	var exit int
	select {
	case err := <-werr:
		exit = cmd.ProcessState.ExitCode()
		_ = err
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("ctr %v did not exit; output %q", args, buf.String())
	}
	// Every slave fd is closed now (ctr exited, ours was closed after the
	// start): the copy drains what is left and ends with EIO. Closing
	// the master before that would drop the output.
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		master.Close()
		<-done
	}
	return buf.String(), exit
}

// oomEvent: a container over its memory limit is OOM-killed and
// containerd publishes /tasks/oom for it.
func oomEvent(t *testing.T, c *testutil.Containerd, ref string) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ev := exec.CommandContext(ctx, c.Ctr().Path, append(c.Ctr().Args[1:], "events")...)
	ev.Env = c.Ctr().Env
	pipe, err := ev.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := ev.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cancel()
		ev.Wait()
	}()
	lines := make(chan string, 100)
	go func() {
		s := bufio.NewScanner(pipe)
		for s.Scan() {
			lines <- s.Text()
		}
		close(lines)
	}()
	time.Sleep(200 * time.Millisecond) // subscribed before the container starts
	id := testutil.ID(t)
	_, _, exit := c.CtrExit(t, "run", "--rm", "--runtime", mini, "--memory-limit", strconv.Itoa(16<<20), ref, id,
		"sh", "-c", "x=0123456789abcdef; while :; do x=$x$x; done")
	if exit != 137 {
		t.Errorf("exit %d, want 137", exit)
	}
	deadline := time.After(20 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("ctr events ended")
			}
			if strings.Contains(l, "/tasks/oom") && strings.Contains(l, id) {
				return
			}
		case <-deadline:
			t.Fatal("no /tasks/oom event")
		}
	}
}

// containerdRestart: containerd is SIGKILLed and started again while a
// container runs; the container keeps running and everything works.
func containerdRestart(t *testing.T, c *testutil.Containerd, ref string) {
	id := testutil.ID(t)
	runIdle(t, c, ref, id)
	pid := taskPid(t, c, id)
	c.Restart(t)
	if st := taskStatus(t, c, id); st != "RUNNING" {
		t.Fatalf("status %q after containerd restart", st)
	}
	if p := taskPid(t, c, id); p != pid {
		t.Errorf("pid %d after restart, was %d", p, pid)
	}
	if _, _, exit := c.CtrExit(t, "task", "exec", "--exec-id", "r1", id, "sh", "-c", "exit 8"); exit != 8 {
		t.Errorf("exec after restart: exit %d", exit)
	}
	c.CtrMust(t, "task", "pause", id)
	c.CtrMust(t, "task", "resume", id)
	c.CtrMust(t, "task", "metrics", id)
	killAndRemove(t, c, id)
}

// shimKilled: the shim dies; containerd's cleanup (the shim's `delete`)
// kills the container and removes everything.
func shimKilled(t *testing.T, c *testutil.Containerd, ref string) {
	id := testutil.ID(t)
	runIdle(t, c, ref, id)
	pid := taskPid(t, c, id)
	shim := findShim(t, c, id)
	if err := syscall.Kill(shim, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, _, _ := c.CtrExit(t, "task", "ls")
		_, alive := testutil.ProcStart(pid)
		if !strings.Contains(out, id) && !alive {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the shim was killed: task ls %q, init alive %v", out, alive)
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.CtrMust(t, "container", "rm", id)
}

// findShim is the pid of the shim serving id in c's namespace.
func findShim(t *testing.T, c *testutil.Containerd, id string) int {
	t.Helper()
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		args := strings.Split(string(b), "\x00")
		if len(args) > 0 && filepath.Base(args[0]) == "containerd-shim-mini-v2" &&
			strings.Contains(string(b), "\x00"+c.Namespace+"\x00") && strings.Contains(string(b), "\x00"+id+"\x00") {
			return pid
		}
	}
	t.Fatalf("no shim for %s", id)
	return 0
}

func taskStatus(t *testing.T, c *testutil.Containerd, id string) string {
	t.Helper()
	f := taskLine(t, c, id)
	if len(f) < 3 {
		return ""
	}
	return f[2]
}

func taskPid(t *testing.T, c *testutil.Containerd, id string) int {
	t.Helper()
	f := taskLine(t, c, id)
	if len(f) < 2 {
		t.Fatalf("task %s not listed", id)
	}
	pid, _ := strconv.Atoi(f[1])
	return pid
}

func taskLine(t *testing.T, c *testutil.Containerd, id string) []string {
	t.Helper()
	out := c.CtrMust(t, "task", "ls")
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == id {
			return f
		}
	}
	return nil
}

func waitStatus(t *testing.T, c *testutil.Containerd, id, want string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st := taskStatus(t, c, id)
		if st == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("task %s: status %q, want %s", id, st, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// runIdle starts container id running sleep, detached, through the shim.
func runIdle(t *testing.T, c *testutil.Containerd, ref, id string) {
	t.Helper()
	c.CtrMust(t, "run", "-d", "--runtime", mini, ref, id, "sleep", "1000")
	t.Cleanup(func() { forceRemove(c, id) })
}

// killAndRemove ends a container the way a user does: kill, wait for the
// stop, task rm, container rm.
func killAndRemove(t *testing.T, c *testutil.Containerd, id string) {
	t.Helper()
	c.CtrMust(t, "task", "kill", "-s", "SIGKILL", id)
	waitStatus(t, c, id, "STOPPED")
	c.CtrMust(t, "task", "rm", id)
	c.CtrMust(t, "container", "rm", id)
}

// forceRemove undoes a scenario that failed half-way.
func forceRemove(c *testutil.Containerd, id string) {
	for _, args := range [][]string{
		{"task", "kill", "-s", "SIGKILL", id},
		{"task", "rm", "-f", id},
		{"container", "rm", id},
	} {
		cmd := c.Ctr(args...)
		cmd.Run()
	}
}
