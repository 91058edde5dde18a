//go:build linux

package nsenter

import (
	"bytes"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// helperEnv makes the test binary act as the process under test: the
// constructor has already run by the time TestMain sees it.
const helperEnv = "RUNMINI_NSENTER_TEST_HELPER"

// helperOut is what the re-executed test binary reports about itself.
type helperOut struct {
	Pid      int               `json:"pid"`
	NSpid    []int             `json:"nspid"`
	NS       map[string]uint64 `json:"ns"`
	NetOwner uint64            `json:"net_owner"`
	Env      []string          `json:"env"`
	FDs      []string          `json:"fds"`
	// Populated: the read-only segments the constructor mapped ahead.
	Populated int `json:"populated"`
}

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		if err := helperMain(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func helperMain() error {
	out := helperOut{Pid: os.Getpid(), NS: map[string]uint64{}}
	for _, ns := range []string{"user", "ipc", "uts", "net", "pid", "mnt", "cgroup", "time"} {
		ino, err := nsInode("/proc/self/ns/" + ns)
		if err != nil {
			return err
		}
		out.NS[ns] = ino
	}
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return err
	}
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "NSpid:"); ok {
			for _, f := range strings.Fields(rest) {
				n, err := strconv.Atoi(f)
				if err != nil {
					return err
				}
				out.NSpid = append(out.NSpid, n)
			}
		}
	}
	netFd, err := unix.Open("/proc/self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	ownerFd, err := unix.IoctlRetInt(netFd, unix.NS_GET_USERNS)
	unix.Close(netFd)
	if err != nil {
		return fmt.Errorf("NS_GET_USERNS: %w", err)
	}
	var st unix.Stat_t
	err = unix.Fstat(ownerFd, &st)
	unix.Close(ownerFd)
	if err != nil {
		return err
	}
	out.NetOwner = st.Ino
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "_RUNMINI_") {
			out.Env = append(out.Env, kv)
		}
	}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return err
	}
	for _, e := range ents {
		if link, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil {
			out.FDs = append(out.FDs, link)
		}
	}
	out.Populated = populated()
	return json.NewEncoder(os.Stdout).Encode(out)
}

// checkPopulated: the constructor mapped the binary's code and read-only
// data in the process that goes on into the Go runtime (where the kernel
// can populate).
func checkPopulated(t *testing.T, r run) {
	t.Helper()
	probe, err := unix.Mmap(-1, 0, os.Getpagesize(), unix.PROT_READ, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(probe)
	if unix.Madvise(probe, 22) == unix.EINVAL { // MADV_POPULATE_READ
		t.Log("kernel without MADV_POPULATE_READ (before 5.14): not checked")
		return
	}
	if r.out.Populated < 2 {
		t.Errorf("the constructor mapped %d read-only segments ahead, want the code and read-only data at least", r.out.Populated)
	}
}

func nsInode(path string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, fmt.Errorf("stat %s: %w", path, err)
	}
	return st.Ino, nil
}

func mustInode(t *testing.T, path string) uint64 {
	t.Helper()
	ino, err := nsInode(path)
	if err != nil {
		t.Fatal(err)
	}
	return ino
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("joining namespaces needs root (CAP_SYS_ADMIN)")
	}
}

type run struct {
	pid      int   // from the report
	err      error // from the report
	report   string
	exitCode int
	stderr   string
	out      *helperOut // nil when the helper did not get to run
	pipeIno  uint64     // inode of the report pipe
}

// runHelper re-executes the test binary with files as fds 3, 4, ... and,
// when withPipe is set, a report pipe as the next fd named by EnvPipe.
func runHelper(t *testing.T, env []string, files []*os.File, withPipe bool) run {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "_RUNMINI_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, helperEnv+"=1")
	cmd.Env = append(cmd.Env, env...)
	cmd.ExtraFiles = slices.Clone(files)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr

	var r, w *os.File
	var pipeIno uint64
	if withPipe {
		var err error
		r, w, err = os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close(); w.Close() })
		var st unix.Stat_t
		if err := unix.Fstat(int(w.Fd()), &st); err != nil {
			t.Fatal(err)
		}
		pipeIno = st.Ino
		cmd.ExtraFiles = append(cmd.ExtraFiles, w)
		cmd.Env = append(cmd.Env, fmt.Sprintf("%s=%d", EnvPipe, 2+len(cmd.ExtraFiles)))
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	res := run{pipeIno: pipeIno}
	if withPipe {
		w.Close()
		line, err := readAll(r)
		if err != nil {
			t.Fatal(err)
		}
		res.report = line
		res.pid, res.err = ReadReport(strings.NewReader(line))
	}
	// Wait also waits for stdout to reach EOF, which covers a forked child
	// that outlives the process we started.
	err := cmd.Wait()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		res.exitCode = ee.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	res.stderr = stderr.String()
	if stdout.Len() > 0 {
		res.out = new(helperOut)
		if err := json.Unmarshal(stdout.Bytes(), res.out); err != nil {
			t.Fatalf("helper output %q: %v", stdout.String(), err)
		}
	}
	return res
}

// readAll returns everything the constructor wrote, so tests can check
// that it wrote exactly one line.
func readAll(r *os.File) (string, error) {
	var buf bytes.Buffer
	_, err := buf.ReadFrom(r)
	return buf.String(), err
}

// holder starts a process in new namespaces and returns its pid once the
// namespaces exist; nsFile is the /proc/<pid>/ns entry that must differ from
// ours before the holder is usable.
func holder(t *testing.T, nsFile string, ready func(pid int) bool, args ...string) int {
	t.Helper()
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("unshare(1) not installed")
	}
	cmd := exec.Command("unshare", append(args, "sleep", "1000")...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
	})
	self := mustInode(t, "/proc/self/ns/"+strings.TrimSuffix(nsFile, "_for_children"))
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			t.Fatalf("unshare %v exited early: %s", args, stderr.String())
		default:
		}
		ino, err := nsInode(fmt.Sprintf("/proc/%d/ns/%s", pid, nsFile))
		if err == nil && ino != self && (ready == nil || ready(pid)) {
			return pid
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("unshare %v: namespaces not ready after 10s", args)
	return 0
}

func openNS(t *testing.T, path string) *os.File {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func checkClean(t *testing.T, r run) {
	t.Helper()
	if r.exitCode != 0 {
		t.Fatalf("helper exit %d, report %q, stderr %q", r.exitCode, r.report, r.stderr)
	}
	if r.out == nil {
		t.Fatalf("helper printed nothing, report %q, stderr %q", r.report, r.stderr)
	}
	if len(r.out.Env) != 0 {
		t.Errorf("_RUNMINI_ variables visible to Go: %v", r.out.Env)
	}
	if r.pipeIno != 0 && slices.Contains(r.out.FDs, fmt.Sprintf("pipe:[%d]", r.pipeIno)) {
		t.Errorf("report pipe still open in child")
	}
	for _, link := range r.out.FDs {
		if strings.Contains(link, ":[") && !strings.HasPrefix(link, "anon_inode:") &&
			!strings.HasPrefix(link, "pipe:") && !strings.HasPrefix(link, "socket:") {
			t.Errorf("namespace fd left open in child: %s", link)
		}
	}
}

func TestJoinNetUTS(t *testing.T) {
	requireRoot(t)
	pid := holder(t, "net", nil, "--net", "--uts")
	net := openNS(t, fmt.Sprintf("/proc/%d/ns/net", pid))
	uts := openNS(t, fmt.Sprintf("/proc/%d/ns/uts", pid))

	r := runHelper(t, []string{EnvSetns + "=3:net,4:uts"}, []*os.File{net, uts}, true)
	if r.report != "ok\n" || r.err != nil || r.pid != 0 {
		t.Fatalf("report %q (pid %d, err %v), want exactly \"ok\\n\"", r.report, r.pid, r.err)
	}
	checkClean(t, r)
	checkPopulated(t, r)
	for ns, want := range map[string]uint64{
		"net": mustInode(t, fmt.Sprintf("/proc/%d/ns/net", pid)),
		"uts": mustInode(t, fmt.Sprintf("/proc/%d/ns/uts", pid)),
		"ipc": mustInode(t, "/proc/self/ns/ipc"),
		"mnt": mustInode(t, "/proc/self/ns/mnt"),
	} {
		if got := r.out.NS[ns]; got != want {
			t.Errorf("%s namespace inode %d, want %d", ns, got, want)
		}
	}
}

func TestJoinPid(t *testing.T) {
	requireRoot(t)
	// Wait for unshare's forked child, pid 1 of the new namespace: joining
	// before it exists would make our helper that namespace's init.
	pid := holder(t, "pid_for_children", func(pid int) bool {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
		return err == nil && len(strings.TrimSpace(string(b))) > 0
	}, "--pid", "--fork", "--kill-child")
	target := fmt.Sprintf("/proc/%d/ns/pid_for_children", pid)
	ns := openNS(t, target)

	r := runHelper(t, []string{EnvSetns + "=3:pid"}, []*os.File{ns}, true)
	if r.err != nil || r.pid <= 0 || r.report != fmt.Sprintf("pid %d\n", r.pid) {
		t.Fatalf("report %q (pid %d, err %v), want one \"pid N\" line", r.report, r.pid, r.err)
	}
	checkClean(t, r)
	checkPopulated(t, r)
	if got, want := r.out.NS["pid"], mustInode(t, target); got != want {
		t.Errorf("pid namespace inode %d, want %d", got, want)
	}
	if len(r.out.NSpid) != 2 || r.out.NSpid[0] != r.pid || r.out.NSpid[1] <= 1 {
		t.Errorf("child NSpid %v, want [%d <n>1]", r.out.NSpid, r.pid)
	}
	if r.out.Pid != r.out.NSpid[len(r.out.NSpid)-1] {
		t.Errorf("child getpid %d, NSpid %v", r.out.Pid, r.out.NSpid)
	}
}

func TestJoinUserThenNet(t *testing.T) {
	requireRoot(t)
	pid := holder(t, "user", func(pid int) bool {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/uid_map", pid))
		return err == nil && len(strings.TrimSpace(string(b))) > 0
	}, "--user", "--map-root-user", "--net")
	user := openNS(t, fmt.Sprintf("/proc/%d/ns/user", pid))
	net := openNS(t, fmt.Sprintf("/proc/%d/ns/net", pid))

	r := runHelper(t, []string{EnvSetns + "=3:user,4:net"}, []*os.File{user, net}, true)
	if r.report != "ok\n" {
		t.Fatalf("report %q, stderr %q", r.report, r.stderr)
	}
	checkClean(t, r)
	for _, ns := range []string{"user", "net"} {
		if got, want := r.out.NS[ns], mustInode(t, fmt.Sprintf("/proc/%d/ns/%s", pid, ns)); got != want {
			t.Errorf("%s namespace inode %d, want %d", ns, got, want)
		}
	}
}

func TestJoinUserThenUnshare(t *testing.T) {
	requireRoot(t)
	pid := holder(t, "user", func(pid int) bool {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/uid_map", pid))
		return err == nil && len(strings.TrimSpace(string(b))) > 0
	}, "--user", "--map-root-user")
	userPath := fmt.Sprintf("/proc/%d/ns/user", pid)
	user := openNS(t, userPath)

	env := []string{
		EnvSetns + "=3:user",
		fmt.Sprintf("%s=%d", EnvUnshare, unix.CLONE_NEWNET|unix.CLONE_NEWUTS|unix.CLONE_NEWPID),
	}
	r := runHelper(t, env, []*os.File{user}, true)
	if r.err != nil || r.pid <= 0 {
		t.Fatalf("report %q: want \"pid N\" after unsharing a pid namespace", r.report)
	}
	checkClean(t, r)
	userIno := mustInode(t, userPath)
	if r.out.NS["user"] != userIno {
		t.Errorf("user namespace inode %d, want %d", r.out.NS["user"], userIno)
	}
	// The new net namespace must be owned by the joined user namespace,
	// which proves the unshare came after the join.
	if r.out.NetOwner != userIno {
		t.Errorf("net namespace owned by user namespace %d, want %d", r.out.NetOwner, userIno)
	}
	if r.out.NS["uts"] == mustInode(t, "/proc/self/ns/uts") {
		t.Error("uts namespace was not unshared")
	}
	if len(r.out.NSpid) != 2 || r.out.NSpid[0] != r.pid || r.out.NSpid[1] != 1 {
		t.Errorf("child NSpid %v, want [%d 1]", r.out.NSpid, r.pid)
	}
}

func TestUnshareTime(t *testing.T) {
	requireRoot(t)
	if _, err := os.Stat("/proc/self/ns/time"); err != nil {
		t.Skip("kernel without time namespaces")
	}
	r := runHelper(t, []string{fmt.Sprintf("%s=%d", EnvUnshare, unix.CLONE_NEWTIME)}, nil, true)
	if r.err != nil || r.pid <= 0 {
		t.Fatalf("report %q: want \"pid N\" after unsharing a time namespace", r.report)
	}
	checkClean(t, r)
	if r.out.NS["time"] == mustInode(t, "/proc/self/ns/time") {
		t.Error("child is still in our time namespace")
	}
	if len(r.out.NSpid) != 1 || r.out.NSpid[0] != r.pid {
		t.Errorf("child NSpid %v, want [%d]", r.out.NSpid, r.pid)
	}
}

// Each fd in EnvCgroup gets "0" (a tasks file moves the writer) and is
// closed, before the joins.
func TestJoinCgroup(t *testing.T) {
	var reads []*os.File
	var writes []*os.File
	for i := 0; i < 2; i++ {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close(); w.Close() })
		reads, writes = append(reads, r), append(writes, w)
	}
	res := runHelper(t, []string{EnvCgroup + "=3,4"}, writes, true)
	if res.err != nil || res.pid != 0 || res.exitCode != 0 {
		t.Fatalf("report %q, exit %d, stderr %s", res.report, res.exitCode, res.stderr)
	}
	for i, r := range reads {
		writes[i].Close()
		b, err := io.ReadAll(r)
		if err != nil || string(b) != "0" {
			t.Errorf("fd %d got %q (%v), want \"0\"", 3+i, b, err)
		}
	}
}

func TestEmptyRequest(t *testing.T) {
	r := runHelper(t, nil, nil, true)
	if r.report != "ok\n" {
		t.Fatalf("report %q, want \"ok\\n\"", r.report)
	}
	checkClean(t, r)
	if got, want := r.out.NS["net"], mustInode(t, "/proc/self/ns/net"); got != want {
		t.Errorf("net namespace inode %d, want ours %d", got, want)
	}
}

func TestNothingWithoutPipe(t *testing.T) {
	// Without EnvPipe the other variables are ignored and left alone.
	env := []string{EnvSetns + "=99:net", EnvUnshare + "=1073741824", EnvCgroup + "=99"}
	r := runHelper(t, env, nil, false)
	if r.exitCode != 0 || r.out == nil {
		t.Fatalf("helper exit %d, stderr %q", r.exitCode, r.stderr)
	}
	slices.Sort(r.out.Env)
	want := []string{EnvCgroup + "=99", EnvSetns + "=99:net", EnvUnshare + "=1073741824"}
	if !slices.Equal(r.out.Env, want) {
		t.Errorf("child environment %v, want %v untouched", r.out.Env, want)
	}
	for _, ns := range []string{"net", "pid", "user"} {
		if got, want := r.out.NS[ns], mustInode(t, "/proc/self/ns/"+ns); got != want {
			t.Errorf("%s namespace inode %d, want ours %d", ns, got, want)
		}
	}
}

func TestErrors(t *testing.T) {
	uts := openNS(t, "/proc/self/ns/uts")
	for _, tc := range []struct {
		name    string
		env     []string
		files   []*os.File
		message string
	}{
		{"bad fd", []string{EnvSetns + "=99:net"}, nil, "setns net (fd 99): Bad file descriptor"},
		{"wrong type", []string{EnvSetns + "=3:net"}, []*os.File{uts}, "setns net (fd 3): Invalid argument"},
		{"unknown type", []string{EnvSetns + "=3:bogus"}, []*os.File{uts}, `_RUNMINI_SETNS: unknown namespace type "bogus"`},
		{"malformed entry", []string{EnvSetns + "=x:net"}, nil, `_RUNMINI_SETNS: malformed entry at "x:net"`},
		{"trailing comma", []string{EnvSetns + "=3:uts,"}, []*os.File{uts}, "_RUNMINI_SETNS: trailing comma"},
		{"pipe as namespace", []string{EnvSetns + "=3:net"}, nil, "_RUNMINI_SETNS: fd 3 is the report pipe"},
		{"bad cgroup fd", []string{EnvCgroup + "=99"}, nil, "join cgroup (fd 99): Bad file descriptor"},
		{"read-only cgroup fd", []string{EnvCgroup + "=3"}, []*os.File{uts}, "join cgroup (fd 3): Bad file descriptor"},
		{"malformed cgroup", []string{EnvCgroup + "=3:x"}, []*os.File{uts}, `_RUNMINI_CGROUP: malformed entry at "3:x"`},
		{"cgroup trailing comma", []string{EnvCgroup + "=3,"}, []*os.File{uts}, "_RUNMINI_CGROUP: trailing comma"},
		{"pipe as cgroup", []string{EnvCgroup + "=3"}, nil, "_RUNMINI_CGROUP: fd 3 is the report pipe"},
		{"malformed flags", []string{EnvUnshare + "=0x20000"}, nil, `_RUNMINI_UNSHARE: malformed flags "0x20000"`},
		{"not namespace flags", []string{EnvUnshare + "=512"}, nil, "_RUNMINI_UNSHARE: flags 0x200 are not namespace flags"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runHelper(t, tc.env, tc.files, true)
			if r.exitCode != 1 {
				t.Errorf("exit code %d, want 1", r.exitCode)
			}
			if r.out != nil {
				t.Errorf("Go code ran after a failed constructor: %+v", r.out)
			}
			if want := "error " + tc.message + "\n"; r.report != want {
				t.Errorf("report %q, want %q", r.report, want)
			}
			if r.err == nil || r.err.Error() != "nsenter: "+tc.message {
				t.Errorf("ReadReport error %v, want %q", r.err, "nsenter: "+tc.message)
			}
		})
	}
}

func TestBadPipe(t *testing.T) {
	r := runHelper(t, []string{EnvPipe + "=99"}, nil, false)
	if r.exitCode != 1 || r.out != nil {
		t.Fatalf("exit code %d, output %+v: want the constructor to fail", r.exitCode, r.out)
	}
	if want := "runmini nsenter: error _RUNMINI_NSPIPE: fd 99: Bad file descriptor\n"; r.stderr != want {
		t.Errorf("stderr %q, want %q", r.stderr, want)
	}
}

func TestReadReport(t *testing.T) {
	for _, tc := range []struct {
		in      string
		pid     int
		wantErr string
	}{
		{"ok\n", 0, ""},
		{"pid 42\n", 42, ""},
		{"error setns net (fd 5): Operation not permitted\n", 0, "nsenter: setns net (fd 5): Operation not permitted"},
		{"", 0, "nsenter: no report (binary built without the nsenter constructor?)"},
		{"ok", 0, `nsenter: truncated report "ok"`},
		{"pid 0\n", 0, `nsenter: malformed report "pid 0"`},
		{"pid x\n", 0, `nsenter: malformed report "pid x"`},
		{"hello\n", 0, `nsenter: malformed report "hello"`},
		{strings.Repeat("a", 2000) + "\n", 0, "nsenter: truncated report"},
	} {
		pid, err := ReadReport(strings.NewReader(tc.in))
		if tc.wantErr == "" {
			if err != nil || pid != tc.pid {
				t.Errorf("ReadReport(%q) = %d, %v; want %d", tc.in, pid, err, tc.pid)
			}
			continue
		}
		if err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) || pid != 0 {
			t.Errorf("ReadReport(%.20q) = %d, %v; want error %q", tc.in, pid, err, tc.wantErr)
		}
	}
}

// TestStaticBuild links the test binary statically, as runmini is shipped,
// and checks the constructor still runs in it.
func TestStaticBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary; skipped in -short mode")
	}
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goBin); err != nil {
		if goBin, err = exec.LookPath("go"); err != nil {
			t.Skip("no go toolchain to build with")
		}
	}
	if _, err := os.Stat("/usr/lib/x86_64-linux-gnu/libc.a"); err != nil && runtime.GOARCH == "amd64" {
		t.Skip("static libc not installed")
	}
	bin := filepath.Join(t.TempDir(), "nsenter.test")
	build := exec.Command(goBin, "test", "-c", "-o", bin,
		"-ldflags", "-linkmode external -extldflags -static", ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=1")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("static build: %v\n%s", err, out)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatal("binary has an ELF interpreter: not statically linked")
		}
	}

	// Run the static binary as the helper: the constructor must report and
	// the Go runtime must still start after it.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cmd := exec.Command(bin, "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=1", EnvPipe+"=3")
	cmd.ExtraFiles = []*os.File{w}
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	err = cmd.Start()
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	pid, rerr := ReadReport(r)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("static helper: %v", err)
	}
	if rerr != nil || pid != 0 {
		t.Errorf("static binary report: pid %d, %v; want ok", pid, rerr)
	}
	var out helperOut
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		t.Fatalf("static helper output %q: %v", stdout.String(), err)
	}
	if len(out.Env) != 0 {
		t.Errorf("_RUNMINI_ variables visible to Go in the static binary: %v", out.Env)
	}
}
