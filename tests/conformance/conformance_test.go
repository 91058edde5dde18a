package conformance

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/runmini/runmini/tests/testutil"
)

const (
	cacheEnv   = "RUNMINI_CACHE"
	runEnv     = "CONFORMANCE_RUN"
	jobsEnv    = "CONFORMANCE_JOBS"
	timeoutEnv = "CONFORMANCE_TIMEOUT"

	defaultCache   = "/var/tmp/runmini-cache"
	defaultJobs    = 2
	defaultTimeout = 120 * time.Second
)

// suiteCgroups are the cgroup names the suite's cgroup programs use
// (runtime-tools cgroups.AbsCgroupPath and RelCgroupPath).
var suiteCgroups = []string{"cgrouptest", "testdir"}

// usesSuiteCgroups tells the programs that make the fixed cgroups above:
// two of them at once would share a cgroup, so they run one at a time.
func usesSuiteCgroups(name string) bool {
	return strings.HasPrefix(name, "linux_cgroups_") || strings.HasSuffix(name, "_resources")
}

type config struct {
	runtime string
	suite   string // built suite: validation/, runtimetest, rootfs-amd64.tar.gz
	logs    string
	runDir  string
	timeout time.Duration
}

type result struct {
	name     string
	tap      tapReport
	exit     int
	timedOut bool
	stderr   string
	took     time.Duration
	cleanup  []string // what the program left and was removed
	errs     []error  // what could not be cleaned up
	notRun   string   // why the program was not run at all
}

func (r *result) passed() bool {
	return r.notRun == "" && !r.timedOut && r.exit == 0 && len(r.tap.failures) == 0
}

// line is the one-line verdict: "name: pass (ok/total TAP points)". Not
// "PASS name"/"FAIL name": CI output readers take a line starting with FAIL
// for a failed Go package.
func (r *result) line() string {
	verdict := "fail"
	if r.passed() {
		verdict = "pass"
	}
	return fmt.Sprintf("%s: %s (%d/%d TAP points)", r.name, verdict, r.tap.ok, r.tap.total)
}

// details explains a failure: the failing TAP lines, exit status and the
// end of stderr.
func (r *result) details() []string {
	if r.passed() {
		return nil
	}
	if r.notRun != "" {
		return []string{"    not run: " + r.notRun}
	}
	var d []string
	for _, f := range r.tap.failures {
		d = append(d, "    "+f)
	}
	switch {
	case r.timedOut:
		d = append(d, "    timed out (killed)")
	case r.exit != 0:
		d = append(d, fmt.Sprintf("    exit status %d", r.exit))
	}
	if r.timedOut || r.exit != 0 {
		lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
		if len(lines) > 3 {
			lines = lines[len(lines)-3:]
		}
		for _, l := range lines {
			if l != "" {
				d = append(d, "    stderr: "+l)
			}
		}
	}
	return d
}

func TestValidationSuite(t *testing.T) {
	if testing.Short() {
		t.Skip("the validation suite takes minutes; not run with -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: the validation suite creates containers")
	}
	start := time.Now()
	cfg := setup(t)

	var filter *regexp.Regexp
	if v := os.Getenv(runEnv); v != "" {
		re, err := regexp.Compile(v)
		if err != nil {
			t.Fatalf("%s: %v", runEnv, err)
		}
		filter = re
	}
	all, err := programs(cfg.suite)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, n := range all {
		if filter == nil || filter.MatchString(n) {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		t.Fatalf("no validation program matches %s=%s", runEnv, os.Getenv(runEnv))
	}
	expected, err := readExpected("expected-pass.txt")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range expected {
		if !slices.Contains(all, e) {
			t.Errorf("expected-pass.txt names %q, which is not a validation program", e)
		}
	}
	jobs, err := envInt(jobsEnv, defaultJobs)
	if err != nil {
		t.Fatal(err)
	}

	fmt.Printf("conformance: %d programs against %s, %d at a time, %v each at most; output in %s\n",
		len(names), cfg.runtime, jobs, cfg.timeout, cfg.logs)
	// Programs that could not finish before `go test -timeout` ends the
	// test binary are reported as not run rather than losing every result
	// to the timeout's panic.
	deadline, hasDeadline := t.Deadline()
	var printMu sync.Mutex
	results := schedule(names, jobs, func(name string) *result {
		var r *result
		if hasDeadline && time.Until(deadline) < cfg.timeout+30*time.Second {
			r = &result{name: name, notRun: "too close to the go test -timeout deadline"}
		} else {
			r = cfg.run(name)
		}
		printMu.Lock()
		defer printMu.Unlock()
		fmt.Printf("%s [%v]\n", r.line(), r.took.Round(100*time.Millisecond))
		for _, l := range r.details() {
			fmt.Println(l)
		}
		if len(r.cleanup) > 0 {
			fmt.Printf("    cleaned up after it: %s\n", strings.Join(r.cleanup, ", "))
		}
		for _, err := range r.errs {
			t.Errorf("cleanup after %s: %v", name, err)
		}
		return r
	})

	var passed, ok, total, skip int
	var unlisted []string
	fmt.Println("\nconformance summary:")
	for _, r := range results {
		fmt.Println("  " + r.line())
		ok += r.tap.ok
		total += r.tap.total
		skip += r.tap.skip
		listed := slices.Contains(expected, r.name)
		if r.passed() {
			passed++
			if !listed {
				unlisted = append(unlisted, r.name)
			}
		} else if listed {
			t.Errorf("%s is in expected-pass.txt but failed (output: %s)", r.name, filepath.Join(cfg.logs, r.name+".out"))
		}
	}
	// Worded so that no CI reader mistakes it for a test runner's
	// "N passed, N failed" summary: failing programs are expected here.
	fmt.Printf("conformance: %d of the validation programs pass, %d do not, of %d; %d of %d TAP points ok (%d of them SKIP); %v wall time\n",
		passed, len(results)-passed, len(results), ok, total, skip, time.Since(start).Round(time.Second))
	if len(unlisted) > 0 {
		fmt.Printf("conformance: passing but not in expected-pass.txt: %s\n", strings.Join(unlisted, " "))
	}
}

// setup finds the runtime and the built suite (building it when the cache
// has none) and makes the run and log directories.
func setup(t *testing.T) *config {
	t.Helper()
	runtime, err := testutil.RuntimePath()
	if err != nil {
		t.Fatal(err)
	}
	for _, tool := range []string{"unshare", "tar"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the validation suite needs %s: %v", tool, err)
		}
	}
	cache := os.Getenv(cacheEnv)
	if cache == "" {
		cache = defaultCache
	}
	suite := filepath.Join(cache, "runtime-tools")
	if _, err := os.Stat(filepath.Join(suite, ".complete")); err != nil {
		// `make test` builds it first; a bare `go test` builds it here.
		cmd := exec.Command("../../scripts/build-validation.sh")
		cmd.Env = append(os.Environ(), cacheEnv+"="+cache)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build the validation suite: %v\n%s", err, out)
		}
	}
	timeout := defaultTimeout
	if v := os.Getenv(timeoutEnv); v != "" {
		if timeout, err = time.ParseDuration(v); err != nil || timeout <= 0 {
			t.Fatalf("%s=%q: want a positive duration such as 120s", timeoutEnv, v)
		}
	}
	logs := filepath.Join(cache, "conformance-logs", filepath.Base(runtime))
	if err := os.RemoveAll(logs); err != nil {
		t.Fatalf("clear old logs: %v", err)
	}
	if err := os.MkdirAll(logs, 0o755); err != nil {
		t.Fatalf("make log dir: %v", err)
	}
	runDir, err := os.MkdirTemp("", "runmini-conformance-")
	if err != nil {
		t.Fatalf("make run dir: %v", err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(runDir); err != nil {
			t.Errorf("remove run dir: %v", err)
		}
	})
	// The user-namespace programs map the container's root to uid 1000,
	// which must still reach the bundles.
	if err := os.Chmod(runDir, 0o711); err != nil {
		t.Fatalf("make run dir searchable: %v", err)
	}
	return &config{runtime: runtime, suite: suite, logs: logs, runDir: runDir, timeout: timeout}
}

// programs lists the suite's validation programs by name.
func programs(suite string) ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(suite, "validation"))
	if err != nil {
		return nil, fmt.Errorf("list validation programs: %w", err)
	}
	var names []string
	for _, e := range entries {
		if e.Type().IsRegular() {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	return names, nil
}

func readExpected(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read expected passes: %w", err)
	}
	names, err := parseExpected(string(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return names, nil
}

// parseExpected reads one program name a line; '#' starts a comment.
func parseExpected(s string) ([]string, error) {
	var names []string
	for i, line := range strings.Split(s, "\n") {
		line, _, _ = strings.Cut(line, "#")
		f := strings.Fields(line)
		switch len(f) {
		case 0:
			continue
		case 1:
			if !slices.Contains(names, f[0]) {
				names = append(names, f[0])
			}
		default:
			return nil, fmt.Errorf("line %d: want one program name, got %q", i+1, line)
		}
	}
	return names, nil
}

func envInt(name string, def int) (int, error) {
	v := os.Getenv(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("%s=%q: want a positive number", name, v)
	}
	return n, nil
}

// schedule runs fn for every name on up to jobs workers, never two
// suite-cgroup programs at once, and returns the results in name order.
func schedule(names []string, jobs int, fn func(string) *result) []*result {
	var (
		mu       sync.Mutex
		cond     = sync.NewCond(&mu)
		pending  = slices.Clone(names)
		cgBusy   bool
		results  = make(map[string]*result, len(names))
		finished sync.WaitGroup
	)
	// next takes the first pending program that may start now, waiting
	// while only suite-cgroup programs are left and one of them runs.
	next := func() (string, bool) {
		mu.Lock()
		defer mu.Unlock()
		for len(pending) > 0 {
			for i, n := range pending {
				if usesSuiteCgroups(n) && cgBusy {
					continue
				}
				pending = slices.Delete(pending, i, i+1)
				if usesSuiteCgroups(n) {
					cgBusy = true
				}
				return n, true
			}
			cond.Wait()
		}
		return "", false
	}
	for range min(jobs, len(names)) {
		finished.Go(func() {
			for {
				n, ok := next()
				if !ok {
					return
				}
				r := fn(n)
				mu.Lock()
				results[n] = r
				if usesSuiteCgroups(n) {
					cgBusy = false
				}
				cond.Broadcast()
				mu.Unlock()
			}
		})
	}
	finished.Wait()
	out := make([]*result, 0, len(names))
	for _, n := range names {
		out = append(out, results[n])
	}
	return out
}

// run runs one validation program in a private mount namespace with its
// own TMPDIR, judges its output and cleans up after it.
func (c *config) run(name string) *result {
	r := &result{name: name, exit: -1}
	start := time.Now()
	defer func() { r.took = time.Since(start) }()

	tmp, err := os.MkdirTemp(c.runDir, name+"-")
	if err != nil {
		r.errs = append(r.errs, fmt.Errorf("make TMPDIR: %w", err))
		return r
	}
	defer func() { r.cleanupAfter(c, tmp) }()
	if err := os.Chmod(tmp, 0o711); err != nil {
		r.errs = append(r.errs, fmt.Errorf("make TMPDIR searchable: %w", err))
		return r
	}

	stdout, stderr, err := c.logFiles(name)
	if err != nil {
		r.errs = append(r.errs, err)
		return r
	}
	defer stdout.Close()
	defer stderr.Close()

	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	// linux_ns_itype runs a container in the caller's mount namespace:
	// a private one per program keeps its mounts off the host.
	cmd := exec.CommandContext(ctx, "unshare", "-m", "--propagation", "private",
		filepath.Join(c.suite, "validation", name))
	cmd.Dir = c.suite // it reads ./runtimetest and ./rootfs-amd64.tar.gz
	cmd.Env = append(withoutEnv(os.Environ(), "RUNTIME", "TMPDIR"), "RUNTIME="+c.runtime, "TMPDIR="+tmp)
	// Files, not pipes: a container that inherits the program's stdio
	// must not keep us waiting for EOF.
	cmd.Stdout, cmd.Stderr = stdout, stderr
	// Its own process group, so that a timeout ends the program and every
	// runtime process it started.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	runErr := cmd.Run()
	r.timedOut = ctx.Err() != nil

	var ee *exec.ExitError
	switch {
	case runErr == nil:
		r.exit = 0
	case errors.As(runErr, &ee):
		r.exit = ee.ExitCode()
	default:
		r.errs = append(r.errs, fmt.Errorf("run %s: %w", name, runErr))
		return r
	}
	out, err := os.ReadFile(stdout.Name())
	if err != nil {
		r.errs = append(r.errs, fmt.Errorf("read output: %w", err))
		return r
	}
	errOut, err := os.ReadFile(stderr.Name())
	if err != nil {
		r.errs = append(r.errs, fmt.Errorf("read stderr: %w", err))
		return r
	}
	r.tap = parseTAP(string(out))
	r.stderr = string(errOut)
	return r
}

func (c *config) logFiles(name string) (stdout, stderr *os.File, err error) {
	stdout, err = os.Create(filepath.Join(c.logs, name+".out"))
	if err != nil {
		return nil, nil, fmt.Errorf("log file: %w", err)
	}
	stderr, err = os.Create(filepath.Join(c.logs, name+".err"))
	if err != nil {
		stdout.Close()
		return nil, nil, fmt.Errorf("log file: %w", err)
	}
	return stdout, stderr, nil
}

func withoutEnv(env []string, names ...string) []string {
	return slices.DeleteFunc(slices.Clone(env), func(kv string) bool {
		k, _, _ := strings.Cut(kv, "=")
		return slices.Contains(names, k)
	})
}

// cleanupAfter deletes the containers whose bundle lies in tmp, unmounts
// what is left under tmp, removes the suite's cgroups (only after the
// programs that make them: another program may be using them meanwhile)
// and then tmp itself. What it removes is noted in r.cleanup, what it
// cannot in r.errs.
func (r *result) cleanupAfter(c *config, tmp string) {
	ids, err := containersIn(c.runtime, tmp)
	if err != nil {
		r.errs = append(r.errs, err)
	}
	for _, id := range ids {
		out, err := exec.Command(c.runtime, "delete", "--force", id).CombinedOutput()
		if err != nil {
			r.errs = append(r.errs, fmt.Errorf("delete --force %s: %w: %s", id, err, bytes.TrimSpace(out)))
			continue
		}
		r.cleanup = append(r.cleanup, "container "+id)
	}
	mounts, err := testutil.UnmountUnder(tmp)
	if err != nil {
		r.errs = append(r.errs, err)
	}
	for _, m := range mounts {
		r.cleanup = append(r.cleanup, "mount "+m)
	}
	if usesSuiteCgroups(r.name) {
		cgs, err := testutil.FindCgroups(func(n string) bool { return slices.Contains(suiteCgroups, n) })
		if err != nil {
			r.errs = append(r.errs, err)
		}
		for _, cg := range cgs {
			if err := testutil.RemoveCgroup(cg); err != nil {
				r.errs = append(r.errs, err)
				continue
			}
			r.cleanup = append(r.cleanup, "cgroup "+cg)
		}
	}
	if err := os.RemoveAll(tmp); err != nil {
		r.errs = append(r.errs, fmt.Errorf("remove TMPDIR: %w", err))
	}
}

// containersIn lists, from the runtime's default root (the suite passes no
// --root), the containers whose bundle is under dir.
func containersIn(runtime, dir string) ([]string, error) {
	out, err := exec.Command(runtime, "list", "--format", "json").Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return nil, fmt.Errorf("%s list: %w: %s", runtime, err, bytes.TrimSpace(ee.Stderr))
		}
		return nil, fmt.Errorf("%s list: %w", runtime, err)
	}
	var list []struct {
		ID     string `json:"id"`
		Bundle string `json:"bundle"`
	}
	if err := json.Unmarshal(out, &list); err != nil {
		return nil, fmt.Errorf("%s list: decode %q: %w", runtime, out, err)
	}
	var ids []string
	for _, c := range list {
		if strings.HasPrefix(c.Bundle, dir+string(filepath.Separator)) {
			ids = append(ids, c.ID)
		}
	}
	return ids, nil
}
