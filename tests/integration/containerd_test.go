package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/runmini/runmini/tests/testutil"
)

// TestContainerdRuncShim drives runmini the way containerd's own runc shim
// does when it is configured with BinaryName = runmini: a private
// containerd (Debian's 1.6), `ctr run --runc-binary`, exec, ps, pause,
// resume, metrics, kill and delete, with containerd parsing runmini's state
// JSON, log.json and exit codes.
func TestContainerdRuncShim(t *testing.T) {
	if cliIsRunc() {
		t.Skip("runmini as runc's drop-in")
	}
	for _, bin := range []string{"containerd", "ctr", "containerd-shim-runc-v2"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s not installed (make test installs Debian's containerd): %v", bin, err)
		}
	}
	t.Parallel()
	runtime, err := testutil.RuntimePath()
	if err != nil {
		t.Fatal(err)
	}
	// A short dir: containerd's sockets must fit in sun_path.
	dir, err := os.MkdirTemp("", "ctrd-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "c.sock")
	cfg := fmt.Sprintf(`version = 2
root = %q
state = %q
[grpc]
  address = %q
[ttrpc]
  address = %q
[plugins."io.containerd.grpc.v1.cri"]
  disable_tcp_service = true
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), sock, sock+".ttrpc")
	if err := os.WriteFile(filepath.Join(dir, "config.toml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "containerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	d := exec.Command("containerd", "--config", filepath.Join(dir, "config.toml"))
	d.Stdout, d.Stderr = logf, logf
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	ns := testutil.ID(t)
	t.Cleanup(func() {
		d.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { d.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			d.Process.Kill()
			<-done
		}
		logf.Close()
		// The runc shim keeps runmini's state under its own root.
		os.RemoveAll(filepath.Join("/run/containerd/runc", ns))
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("containerd log:\n%s", b)
		}
	})
	ctr := func(args ...string) (string, int) {
		out, err := exec.Command("ctr", append([]string{"--address", sock, "--namespace", ns}, args...)...).CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("ctr %v: %v", args, err)
		}
		return string(out), code
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, code := ctr("version"); code == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("containerd did not come up")
		}
		time.Sleep(50 * time.Millisecond)
	}
	rootfs := testutil.Rootfs(t)
	// ctr 1.6: --rootfs is a switch; the rootfs dir is the first argument.
	run := func(flag string, args ...string) (string, int) {
		return ctr(append([]string{"run", "--runc-binary", runtime, flag, "--rootfs", rootfs}, args...)...)
	}

	out, code := run("--rm", ns+"-a", "sh", "-c", "echo hello from runmini; exit 3")
	if code != 3 || !strings.Contains(out, "hello from runmini") {
		t.Errorf("ctr run --rm: exit %d, output %q", code, out)
	}

	id := ns + "-b"
	if out, code := run("-d", id, "sleep", "1000"); code != 0 {
		t.Fatalf("ctr run -d: %d %s", code, out)
	}
	t.Cleanup(func() {
		ctr("task", "kill", "-s", "KILL", id)
		time.Sleep(200 * time.Millisecond)
		ctr("task", "rm", "-f", id)
		ctr("container", "rm", id)
	})
	if out, code := ctr("task", "exec", "--exec-id", "e1", id, "sh", "-c", "echo in exec; exit 5"); code != 5 || !strings.Contains(out, "in exec") {
		t.Errorf("task exec: exit %d, output %q", code, out)
	}
	if out, _ := ctr("task", "ps", id); !strings.Contains(out, "PID") || len(strings.Fields(out)) < 4 {
		t.Errorf("task ps: %q", out)
	}
	ctr("task", "pause", id)
	if out, _ := ctr("task", "ls"); !strings.Contains(out, "PAUSED") {
		t.Errorf("after pause: %q", out)
	}
	ctr("task", "resume", id)
	if out, _ := ctr("task", "ls"); !strings.Contains(out, "RUNNING") {
		t.Errorf("after resume: %q", out)
	}
	if out, code := ctr("task", "metrics", id); code != 0 || !strings.Contains(out, "memory") {
		t.Errorf("task metrics: %d %q", code, out)
	}
	ctr("task", "kill", "-s", "KILL", id)
	deadline = time.Now().Add(10 * time.Second)
	for {
		out, _ := ctr("task", "ls")
		if strings.Contains(out, "STOPPED") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("task not stopped after kill: %q", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if out, code := ctr("task", "rm", id); code != 0 {
		t.Errorf("task rm: %d %q", code, out)
	}
	if out, code := ctr("container", "rm", id); code != 0 {
		t.Errorf("container rm: %d %q", code, out)
	}
	if ents, _ := os.ReadDir(filepath.Join("/run/containerd/runc", ns)); len(ents) != 0 {
		t.Errorf("runmini state left under the shim's root: %v", ents)
	}
}
