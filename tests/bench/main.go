// Command bench measures runmini against the runtimes users would pick
// instead, in one run, and prints markdown tables: median, min-max, n and the
// ratio to runc. Runs are interleaved (A B A B ...) so that machine drift
// falls on every runtime alike. It is a measurement, never a test.
//
// Tables 2 to 6 run runmini's shim (io.containerd.mini.v2) against the runc
// shim (io.containerd.runc.v2) under each containerd named by -containerd
// (see containerd.go); table 1 and the floor (7) need no containerd.
//
//	go run ./tests/bench -n 20 -containerd "1.6 2.4.2"
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/runmini/runmini/tests/testutil"
)

type runtimeUnderTest struct {
	name, path, root string
}

func main() {
	n := flag.Int("n", 20, "iterations per measurement")
	runtimes := flag.String("runtimes", "runmini,runc,crun", "runtimes to compare (runmini is bin/runmini)")
	var co containerdOptions
	co.register(flag.CommandLine)
	flag.Parse()
	log.SetFlags(0)
	if os.Getuid() != 0 {
		log.Fatal("bench: must run as root")
	}
	// Every cleanup, the containerd harness's included, runs at the end,
	// on a failure and on ^C: no container, cgroup, daemon or temp dir is
	// left behind.
	tb := newBenchTB("bench")
	fatal = func(err error) { tb.Fatalf("%v", err) }
	work := tb.TempDir()
	os.Chmod(work, 0o755)
	var rts []*runtimeUnderTest
	tb.Cleanup(func() {
		for _, rt := range rts {
			deleteAll(rt)
		}
	})

	bundle := filepath.Join(work, "bundle")
	os.Mkdir(bundle, 0o755)
	// ociVersion 1.0.2: crun 1.8 refuses versions it does not know.
	if err := testutil.MakeBundle(bundle, func(s *specs.Spec) { s.Version = "1.0.2"; s.Process.Args = []string{"true"} }); err != nil {
		fatal(fmt.Errorf("bundle: %v", err))
	}
	for _, name := range strings.Split(*runtimes, ",") {
		rt, err := findRuntime(name, work)
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench: skipping %s: %v\n", name, err)
			continue
		}
		// One probe run: a runtime that cannot run containers on this
		// host (crun 1.8 on hybrid cgroups) is left out, saying why.
		if out, err := output(rt.cmd(bundle, "run", "probe")); err != nil {
			fmt.Fprintf(os.Stderr, "bench: skipping %s: it cannot run a container here: %s\n", name, firstLine(out, err))
			deleteAll(rt)
			continue
		}
		rts = append(rts, rt)
	}
	if len(rts) == 0 {
		fatal(fmt.Errorf("no runtime to measure"))
	}

	host, _ := os.Hostname()
	fmt.Printf("## Runtime start path (`/bin/true` in a busybox bundle, runc's default spec)\n\n")
	fmt.Printf("Machine: %s, %d CPUs, kernel %s; %d runs each, interleaved.\n\n", host, runtime.NumCPU(), kernel(), *n)

	life := map[string][]time.Duration{}
	run := map[string][]time.Duration{}
	for i := 0; i < *n; i++ {
		for _, rt := range rts {
			id := fmt.Sprintf("b%d", i)
			life[rt.name] = append(life[rt.name], timed(func() error {
				for _, args := range [][]string{{"create", id}, {"start", id}} {
					if out, err := output(rt.cmd(bundle, args...)); err != nil {
						return fmt.Errorf("%s %v: %s", rt.name, args, firstLine(out, err))
					}
				}
				waitStopped(rt, id)
				if out, err := output(rt.cmd(bundle, "delete", id)); err != nil {
					return fmt.Errorf("%s delete: %s", rt.name, firstLine(out, err))
				}
				return nil
			}))
		}
		timedRun(rts, bundle, fmt.Sprintf("r%d", i), run)
	}
	runtimeTable("create + start + delete", rts, life)
	runtimeTable("run (create, start, wait, delete)", rts, run)
	benchSeccomp(work, rts, *n)

	benchContainerd(tb, co, *n)

	floor := map[string][]time.Duration{}
	trueBin := filepath.Join(bundle, "rootfs/bin/busybox")
	for i := 0; i < *n; i++ {
		floor["fork+exec true"] = append(floor["fork+exec true"], timed(func() error {
			return exec.Command(trueBin, "true").Run()
		}))
		floor["unshare -pmuin --fork true"] = append(floor["unshare -pmuin --fork true"], timed(func() error {
			return exec.Command("unshare", "-pmuin", "--fork", trueBin, "true").Run()
		}))
	}
	t := table{title: "The floor: what the kernel itself costs", head: []string{"what"}, format: fmtMs}
	for _, k := range []string{"fork+exec true", "unshare -pmuin --fork true"} {
		t.add(row{head: []string{k}, samples: msec(floor[k])})
	}
	t.print()
	tb.exit(0)
}

func findRuntime(name, work string) (*runtimeUnderTest, error) {
	path := name
	if name == "runmini" {
		p, err := testutil.RuntimePath()
		if err != nil {
			return nil, err
		}
		path = p
	} else if p, err := exec.LookPath(name); err == nil {
		path = p
	} else {
		return nil, fmt.Errorf("not installed")
	}
	root := filepath.Join(work, "root-"+name)
	return &runtimeUnderTest{name: name, path: path, root: root}, nil
}

func (rt *runtimeUnderTest) cmd(bundle string, args ...string) *exec.Cmd {
	full := append([]string{"--root", rt.root}, args...)
	if args[0] == "create" || args[0] == "run" {
		full = append([]string{"--root", rt.root, args[0], "--bundle", bundle}, args[1:]...)
	}
	c := exec.CommandContext(context.Background(), rt.path, full...)
	c.Dir = bundle
	return c
}

// output runs c with its stdout and stderr in a file: a container created
// by c inherits them, and a pipe would stay open as long as it lives.
func output(c *exec.Cmd) ([]byte, error) {
	out, _, err := timedOutput(c)
	return out, err
}

// timedOutput is output that also tells how long c ran, from its start to
// its exit: the file's making, reading and removal are the bench's, not
// the runtime's, and stay out of the time.
func timedOutput(c *exec.Cmd) ([]byte, time.Duration, error) {
	f, err := os.CreateTemp("", "bench-out")
	if err != nil {
		return nil, 0, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	c.Stdout, c.Stderr = f, f
	start := time.Now()
	runErr := c.Run()
	d := time.Since(start)
	out, _ := os.ReadFile(f.Name())
	return out, d, runErr
}

// timedRun times `run` of a new container id with each runtime, in an order
// shuffled anew each time so that none always follows the other.
func timedRun(rts []*runtimeUnderTest, bundle, id string, d map[string][]time.Duration) {
	for _, k := range rand.Perm(len(rts)) {
		rt := rts[k]
		out, took, err := timedOutput(rt.cmd(bundle, "run", id))
		if err != nil {
			fatal(fmt.Errorf("%s run: %s", rt.name, firstLine(out, err)))
		}
		d[rt.name] = append(d[rt.name], took)
	}
}

func waitStopped(rt *runtimeUnderTest, id string) {
	for i := 0; i < 2000; i++ {
		out, _ := exec.Command(rt.path, "--root", rt.root, "state", id).Output()
		if strings.Contains(string(out), `"stopped"`) {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// deleteAll force-deletes every container the runtime has under its root.
func deleteAll(rt *runtimeUnderTest) {
	out, _ := exec.Command(rt.path, "--root", rt.root, "list", "-q").Output()
	for _, id := range strings.Fields(string(out)) {
		exec.Command(rt.path, "--root", rt.root, "delete", "-f", id).Run()
	}
}

// fatal ends the bench; main points it at benchTB.Fatalf, which runs the
// cleanups first: log.Fatal alone would leave containers behind.
var fatal = func(err error) { log.Fatalf("bench: %v", err) }

func timed(f func() error) time.Duration {
	start := time.Now()
	if err := f(); err != nil {
		fatal(err)
	}
	return time.Since(start)
}

// benchSeccomp times `run` of the same container with containerd's default
// seccomp profile: libseccomp compiles it on every run in runc's init, and
// in the first run of a --root in runmini, which keeps the program.
func benchSeccomp(work string, rts []*runtimeUnderTest, n int) {
	raw, err := os.ReadFile("libcontainer/seccomp/testdata/containerd-default.json")
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: no seccomp table: %v\n", err)
		return
	}
	var profile specs.LinuxSeccomp
	if err := json.Unmarshal(raw, &profile); err != nil {
		fatal(fmt.Errorf("seccomp profile: %v", err))
	}
	bundle := filepath.Join(work, "bundle-seccomp")
	os.Mkdir(bundle, 0o755)
	if err := testutil.MakeBundle(bundle, func(s *specs.Spec) {
		s.Version = "1.0.2"
		s.Process.Args = []string{"true"}
		s.Linux.Seccomp = &profile
	}); err != nil {
		fatal(fmt.Errorf("bundle: %v", err))
	}
	run := map[string][]time.Duration{}
	for i := 0; i < n; i++ {
		timedRun(rts, bundle, fmt.Sprintf("s%d", i), run)
	}
	runtimeTable("run with containerd's default seccomp profile (runmini compiles it once per --root)", rts, run)
}

func runtimeTable(title string, rts []*runtimeUnderTest, d map[string][]time.Duration) {
	t := table{title: title, head: []string{"runtime"}, ratioHead: "ratio to runc", format: fmtMs}
	for _, rt := range rts {
		t.add(row{head: []string{rt.name}, samples: msec(d[rt.name]), base: msec(d["runc"])})
	}
	t.print()
}

func firstLine(out []byte, err error) string {
	s := strings.TrimSpace(string(out))
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if s == "" {
		return err.Error()
	}
	return s
}

func kernel() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}
