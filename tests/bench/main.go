// Command bench measures runmini against the runtimes users would pick
// instead, in one run, and prints markdown tables: median, min-max, n and the
// ratio to runc. Runs are interleaved (A B A B ...) so that machine drift
// falls on every runtime alike. It is a measurement, never a test.
//
//	go run ./tests/bench -n 20
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
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
	flag.Parse()
	log.SetFlags(0)
	if os.Getuid() != 0 {
		log.Fatal("bench: must run as root")
	}
	work, err := os.MkdirTemp("", "runmini-bench.")
	if err != nil {
		log.Fatal(err)
	}
	os.Chmod(work, 0o755)
	var rts []*runtimeUnderTest
	cleanup := func() {
		for _, rt := range rts {
			deleteAll(rt)
		}
		os.RemoveAll(work)
	}
	// Clean up on ^C too: no container, cgroup or temp dir left behind.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sigs
		cleanup()
		os.Exit(130)
	}()
	defer cleanup()
	fatal = func(err error) {
		cleanup()
		log.Fatalf("bench: %v", err)
	}

	bundle := filepath.Join(work, "bundle")
	os.Mkdir(bundle, 0o755)
	// ociVersion 1.0.2: crun 1.8 refuses versions it does not know.
	if err := testutil.MakeBundle(bundle, func(s *specs.Spec) { s.Version = "1.0.2"; s.Process.Args = []string{"true"} }); err != nil {
		log.Fatalf("bench: bundle: %v", err)
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
		log.Fatal("bench: no runtime to measure")
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
			run[rt.name] = append(run[rt.name], timed(func() error {
				out, err := output(rt.cmd(bundle, "run", "r"+id))
				if err != nil {
					return fmt.Errorf("%s run: %s", rt.name, firstLine(out, err))
				}
				return nil
			}))
		}
	}
	table("create + start + delete", rts, life)
	table("run (create, start, wait, delete)", rts, run)

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
	fmt.Printf("### The floor: what the kernel itself costs\n\n| what | median | min - max | n |\n|---|---|---|---|\n")
	for _, k := range []string{"fork+exec true", "unshare -pmuin --fork true"} {
		med, lo, hi := stats(floor[k])
		fmt.Printf("| %s | %s | %s - %s | %d |\n", k, ms(med), ms(lo), ms(hi), len(floor[k]))
	}
	fmt.Println()
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
	f, err := os.CreateTemp("", "bench-out")
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	c.Stdout, c.Stderr = f, f
	runErr := c.Run()
	out, _ := os.ReadFile(f.Name())
	return out, runErr
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

// fatal cleans up before exiting: log.Fatal alone would skip the defers
// and leave containers behind.
var fatal = func(err error) { log.Fatalf("bench: %v", err) }

func timed(f func() error) time.Duration {
	start := time.Now()
	if err := f(); err != nil {
		fatal(err)
	}
	return time.Since(start)
}

func table(title string, rts []*runtimeUnderTest, d map[string][]time.Duration) {
	fmt.Printf("### %s\n\n| runtime | median | min - max | n | ratio to runc |\n|---|---|---|---|---|\n", title)
	base, _, _ := stats(d["runc"])
	for _, rt := range rts {
		med, lo, hi := stats(d[rt.name])
		ratio := "-"
		if base > 0 {
			ratio = fmt.Sprintf("%.2f", float64(med)/float64(base))
		}
		fmt.Printf("| %s | %s | %s - %s | %d | %s |\n", rt.name, ms(med), ms(lo), ms(hi), len(d[rt.name]), ratio)
	}
	fmt.Println()
}

func stats(d []time.Duration) (med, lo, hi time.Duration) {
	if len(d) == 0 {
		return 0, 0, 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	med = s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return med, s[0], s[len(s)-1]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

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
