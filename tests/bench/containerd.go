package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/runmini/runmini/tests/testutil"
)

// containerdOptions are the flags of tables 2 to 6.
type containerdOptions struct {
	versions string
	mem      int
	pod      int
	conc     int
	rounds   int
	ioBytes  byteSize
}

func (o *containerdOptions) register(fs *flag.FlagSet) {
	fs.StringVar(&o.versions, "containerd", "1.6 2.4.2", "containerd versions to run the shims under, space or comma separated: 1.6 is Debian's, others are built by scripts/build-containerd.sh; empty skips tables 2-6")
	fs.IntVar(&o.mem, "mem", 20, "idle containers per shim for the memory table")
	fs.IntVar(&o.pod, "pod", 10, "containers in the pod (one shim) of the memory table")
	fs.IntVar(&o.conc, "conc", 50, "containers started at once for the concurrency table")
	fs.IntVar(&o.rounds, "rounds", 3, "rounds per shim of the concurrency and IO tables (-n is for the latencies)")
	o.ioBytes = 1 << 30
	fs.Var(&o.ioBytes, "io-bytes", "bytes a container writes to stdout for the IO table (K, M, G: binary multiples)")
}

// byteSize is a flag of bytes, such as 1073741824, 64M or 1G.
type byteSize int64

func (b *byteSize) String() string { return strconv.FormatInt(int64(*b), 10) }

func (b *byteSize) Set(s string) error {
	mult := int64(1)
	if i := strings.IndexAny(s, "KkMmGg"); i >= 0 && i == len(s)-1 {
		mult = map[byte]int64{'k': 1 << 10, 'm': 1 << 20, 'g': 1 << 30}[s[i]|0x20]
		s = s[:i]
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v <= 0 {
		return fmt.Errorf("want a positive number of bytes, such as 64M")
	}
	*b = byteSize(v * mult)
	return nil
}

// shim is a runtime type compared under one containerd.
type shim struct {
	name    string // in the tables
	runtime string // ctr --runtime
	// exe is the binary containerd runs for it, symlinks resolved as in
	// /proc/PID/exe: it tells the shims' processes apart.
	exe string
}

// The baseline of every ratio: the runc shim of the same containerd
// release (1.6: Debian's), which runs Debian's runc.
const baseline = "runc"

// shimMem is one shim process's memory: sizes in KiB, from
// /proc/PID/smaps_rollup, and its thread count.
type shimMem struct {
	rss, pss, anon, threads float64
}

// samples is a measurement of each shim, by shim name.
type samples map[string][]float64

// results are one containerd's measurements, for the tables.
type results struct {
	label             string // containerd version, as the daemon says
	run, exec         samples
	concStart, concRm samples
	ioRate, ioWhole   samples
	mem               map[string][]shimMem // one per shim process
	pod               map[string][]shimMem // the pod's shim processes (one, unless grouping failed)
}

// ctrdBench drives one containerd with ctr.
type ctrdBench struct {
	t     *benchTB
	c     *testutil.Containerd
	ref   string
	shims []*shim
	seq   int
}

// benchContainerd measures tables 2 to 6 under each containerd of
// o.versions in turn and prints them, each containerd's rows beside each
// other.
func benchContainerd(t *benchTB, o containerdOptions, n int) {
	versions := strings.FieldsFunc(o.versions, func(r rune) bool { return r == ',' || r == ' ' })
	if len(versions) == 0 {
		return
	}
	if o.mem < 1 || o.pod < 1 || o.conc < 1 || o.rounds < 1 {
		t.Fatalf("-mem, -pod, -conc and -rounds must be at least 1")
	}
	var all []*results
	var about []string
	for _, v := range versions {
		b := newCtrdBench(t, v)
		all = append(all, b.measure(o, n))
		about = append(about, b.describe())
	}
	printContainerd(all, about, o)
}

func newCtrdBench(t *benchTB, version string) *ctrdBench {
	t.Logf("containerd %s: starting", version)
	c := testutil.StartContainerd(t, version)
	b := &ctrdBench{t: t, c: c, ref: c.ImportBusybox(t)}
	for _, s := range []*shim{
		{name: "mini", runtime: testutil.MiniRuntime, exe: filepath.Join(c.ShimDir, "containerd-shim-mini-v2")},
		{name: baseline, runtime: "io.containerd.runc.v2", exe: filepath.Join(c.BinDir, "containerd-shim-runc-v2")},
	} {
		exe, err := filepath.EvalSymlinks(s.exe)
		if err != nil {
			t.Fatalf("shim %s: %v", s.name, err)
		}
		s.exe = exe
		b.shims = append(b.shims, s)
	}
	return b
}

// describe names what runs: the daemon's version, each shim's binary and
// the runc the runc shim finds in containerd's PATH.
func (b *ctrdBench) describe() string {
	runc, _ := filepath.EvalSymlinks(b.c.LookPath("runc"))
	return fmt.Sprintf("containerd %s (%s): mini is %s, runc is %s running %s (%s)",
		b.c.Version, b.daemonVersion(), b.shims[0].exe, b.shims[1].exe, runc, firstLine(exec.Command(runc, "--version").Output()))
}

// daemonVersion is what `containerd --version` says, such as 1.6.20~ds1.
func (b *ctrdBench) daemonVersion() string {
	out, err := exec.Command(filepath.Join(b.c.BinDir, "containerd"), "--version").Output()
	if f := strings.Fields(string(out)); err == nil && len(f) >= 3 {
		return f[2]
	}
	return "?"
}

// measure takes every measurement of one containerd; every container is
// gone when it returns.
func (b *ctrdBench) measure(o containerdOptions, n int) *results {
	r := &results{label: b.c.Version, run: samples{}, exec: samples{}, concStart: samples{}, concRm: samples{},
		ioRate: samples{}, ioWhole: samples{}}
	// Untimed: the first container of each shim pays for cold caches.
	b.each(1, func(s *shim) { b.runTrue(s) })

	b.t.Logf("containerd %s: run --rm (%d each)", b.c.Version, n)
	b.each(n, func(s *shim) { r.run[s.name] = append(r.run[s.name], ms(b.runTrue(s))) })

	b.t.Logf("containerd %s: exec (%d each)", b.c.Version, n)
	idle := map[string]string{}
	for _, s := range b.shims {
		idle[s.name] = b.id(s)
		b.startIdle(s, idle[s.name])
	}
	b.each(n, func(s *shim) {
		id := b.id(s) // as exec id
		d := timed(func() error {
			b.ctr("task", "exec", "--exec-id", id, idle[s.name], "/bin/true")
			return nil
		})
		r.exec[s.name] = append(r.exec[s.name], ms(d))
	})
	b.remove(values(idle))

	b.t.Logf("containerd %s: %d bytes to stdout (%d each)", b.c.Version, o.ioBytes, o.rounds)
	b.each(o.rounds, func(s *shim) {
		rate, whole := b.stream(s, int64(o.ioBytes))
		r.ioRate[s.name] = append(r.ioRate[s.name], rate)
		r.ioWhole[s.name] = append(r.ioWhole[s.name], whole)
	})

	b.t.Logf("containerd %s: %d containers at once (%d each)", b.c.Version, o.conc, o.rounds)
	b.each(o.rounds, func(s *shim) {
		start, rm := b.concurrent(s, o.conc)
		r.concStart[s.name] = append(r.concStart[s.name], start)
		r.concRm[s.name] = append(r.concRm[s.name], rm)
	})

	b.t.Logf("containerd %s: memory of %d idle containers each, and a pod of %d", b.c.Version, o.mem, o.pod)
	r.mem = b.memory(o.mem, nil)
	r.pod = b.memory(o.pod, func(s *shim) []string {
		return []string{"--annotation", "io.kubernetes.cri.sandbox-id=pod-" + s.name}
	})
	return r
}

// each runs f for every shim in turn, rounds times (A B A B ...), so that
// drift of the machine falls on both alike.
func (b *ctrdBench) each(rounds int, f func(s *shim)) {
	for i := 0; i < rounds; i++ {
		for _, s := range b.shims {
			f(s)
		}
	}
}

// id returns a new container (or exec) id; the namespace is the bench's
// own, so ids need only differ from each other.
func (b *ctrdBench) id(s *shim) string {
	b.seq++
	return fmt.Sprintf("%s-%d", s.name, b.seq)
}

func (b *ctrdBench) ctr(args ...string) string { return b.c.CtrMust(b.t, args...) }

func (b *ctrdBench) runTrue(s *shim) time.Duration {
	id := b.id(s)
	return timed(func() error {
		b.ctr("run", "--rm", "--runtime", s.runtime, b.ref, id, "/bin/true")
		return nil
	})
}

// startIdle starts a container that sleeps until removed; extra goes
// before the image (annotations).
func (b *ctrdBench) startIdle(s *shim, id string, extra ...string) {
	args := append([]string{"run", "-d", "--runtime", s.runtime}, extra...)
	b.ctr(append(args, b.ref, id, "sleep", "1000")...)
}

// parallel runs f for every id at once and waits for all.
func parallel(ids []string, f func(id string)) {
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(id)
		}()
	}
	wg.Wait()
}

// remove kills and deletes the tasks and containers ids, all at once, as
// an orchestrator tearing down would, then waits for their shims to exit
// (reporting anything left as a leak) so that the next measurement starts
// on a quiet machine.
func (b *ctrdBench) remove(ids []string) {
	b.removeOnly(ids)
	b.c.CheckNoLeaks(b.t)
}

func (b *ctrdBench) removeOnly(ids []string) {
	parallel(ids, func(id string) {
		b.ctr("task", "delete", "--force", id)
		b.ctr("container", "delete", id)
	})
}

// concurrent starts k containers at once and, once all run, removes them
// all at once; it returns both wall times in seconds.
func (b *ctrdBench) concurrent(s *shim, k int) (start, rm float64) {
	ids := make([]string, k)
	for i := range ids {
		ids[i] = b.id(s)
	}
	start = timed(func() error {
		// ctr run -d returns once the task has started.
		parallel(ids, func(id string) { b.startIdle(s, id) })
		return nil
	}).Seconds()
	if running := b.running(ids); running != k {
		b.t.Fatalf("%s: %d of %d containers running after ctr run -d", s.name, running, k)
	}
	rm = timed(func() error { b.removeOnly(ids); return nil }).Seconds()
	b.c.CheckNoLeaks(b.t)
	return start, rm
}

// running counts the tasks of ids that ctr task ls says are RUNNING.
func (b *ctrdBench) running(ids []string) int {
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	n := 0
	for _, line := range strings.Split(b.ctr("task", "ls"), "\n") {
		// TASK PID STATUS
		if f := strings.Fields(line); len(f) == 3 && want[f[0]] && f[2] == "RUNNING" {
			n++
		}
	}
	return n
}

// memory starts k idle containers per shim (A B A B), each with the
// arguments extra gives it, measures every shim process once they all run
// and removes them all.
func (b *ctrdBench) memory(k int, extra func(s *shim) []string) map[string][]shimMem {
	var ids []string
	b.each(k, func(s *shim) {
		id := b.id(s)
		var args []string
		if extra != nil {
			args = extra(s)
		}
		b.startIdle(s, id, args...)
		ids = append(ids, id)
	})
	// Idle means after start-up: give the shims' runtimes a moment to
	// settle (the Go shims' first GC cycles, runc's exit).
	time.Sleep(time.Second)
	mem := map[string][]shimMem{}
	byExe := map[string]string{}
	for _, s := range b.shims {
		byExe[s.exe] = s.name
	}
	for pid := range b.c.ShimPids() {
		exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		name, ok := byExe[exe]
		if !ok {
			continue // not a shim: a ctr or runc of the moment
		}
		m, err := readMem(pid)
		if err != nil {
			b.t.Fatalf("shim %d: %v", pid, err)
		}
		mem[name] = append(mem[name], m)
	}
	b.remove(ids)
	return mem
}

// readMem reads a process's memory from smaps_rollup, which sums its
// mappings (PSS: shared pages divided among the processes mapping them),
// and its thread count from status.
func readMem(pid int) (shimMem, error) {
	var m shimMem
	fields := map[string]*float64{"Rss:": &m.rss, "Pss:": &m.pss, "Anonymous:": &m.anon, "Threads:": &m.threads}
	for _, f := range []string{"smaps_rollup", "status"} {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, f))
		if err != nil {
			return m, err
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			if f := strings.Fields(sc.Text()); len(f) >= 2 && fields[f[0]] != nil {
				*fields[f[0]], _ = strconv.ParseFloat(f[1], 64)
			}
		}
	}
	if m.rss == 0 || m.threads == 0 {
		return m, fmt.Errorf("no Rss in smaps_rollup or Threads in status")
	}
	return m, nil
}

// ioLine is the line the IO container repeats: 251 bytes with its
// newline, a prime, so that a chunk lost, doubled or moved by any power
// of two cannot leave the stream matching the pattern.
var ioLine = func() string {
	const alnum = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	var sb strings.Builder
	for i := 0; i < 250; i++ {
		sb.WriteByte(alnum[i%len(alnum)])
	}
	return sb.String()
}()

// ioLines is how many ioLines make the file the IO container repeats:
// about a MiB.
const ioLines = 4177

// ioScript writes size bytes of ioLine to stdout. `yes | head -c` would
// be simplest, but busybox's yes manages about 130 MiB/s, which would
// measure yes: the script writes the lines into a file once, then cat
// (sendfile) sends that file over and over, and a last piece of it.
func ioScript(size int64) string {
	file := int64(ioLines * (len(ioLine) + 1))
	script := fmt.Sprintf("yes %s | head -n %d >/p && head -c %d /p >/r && exec cat", ioLine, ioLines, size%file)
	for i := int64(0); i < size/file; i++ {
		script += " /p"
	}
	return script + " /r"
}

// stream runs a container writing size bytes of ioLine to its stdout
// through `ctr run` and checks every byte ctr prints against the pattern.
// It returns the rate in MiB/s from the first byte to the last, and the
// seconds of the whole ctr run (container start and removal included).
func (b *ctrdBench) stream(s *shim, size int64) (rate, whole float64) {
	id := b.id(s)
	cmd := b.c.Ctr("run", "--rm", "--runtime", s.runtime, b.ref, id, "sh", "-c", ioScript(size))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.t.Fatal(err)
	}
	check := newPatternChecker([]byte(ioLine + "\n"))
	begin := time.Now()
	if err := cmd.Start(); err != nil {
		b.t.Fatal(err)
	}
	copyErr := check.readFrom(out)
	end := time.Now()
	if copyErr != nil {
		// ctr would block on a full pipe: Wait would never return.
		cmd.Process.Kill()
	}
	waitErr := cmd.Wait()
	if err := errors.Join(copyErr, waitErr); err != nil || check.n != size {
		b.t.Fatalf("%s: ctr run writing %d bytes: got %d: %v; stderr: %s", s.name, size, check.n, err, stderr.String())
	}
	return float64(size) / (1 << 20) / end.Sub(check.first).Seconds(), end.Sub(begin).Seconds()
}

// patternChecker compares a stream with a repeated line, byte for byte:
// cheaper than hashing, so the reader does not limit the rate, and it
// names the first byte that differs.
type patternChecker struct {
	period int
	// pat is the line repeated over a MiB and a line more, so that a
	// read starting at any offset into the line fits in one comparison.
	pat   []byte
	n     int64
	first time.Time // when the first byte came
}

func newPatternChecker(line []byte) *patternChecker {
	return &patternChecker{period: len(line), pat: bytes.Repeat(line, (1<<20)/len(line)+2)}
}

func (p *patternChecker) readFrom(r io.Reader) error {
	buf := make([]byte, 1<<20)
	for {
		k, err := r.Read(buf)
		if k > 0 && p.n == 0 {
			p.first = time.Now()
		}
		got := buf[:k]
		off := int(p.n % int64(p.period))
		if !bytes.Equal(got, p.pat[off:off+k]) {
			for i := range got {
				if got[i] != p.pat[off+i] {
					return fmt.Errorf("byte %d is %q, want %q", p.n+int64(i), got[i], p.pat[off+i])
				}
			}
		}
		p.n += int64(k)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func values(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// shimNames orders each containerd's rows: mini, then its baseline.
var shimNames = []string{"mini", baseline}

// memMetrics are the columns of the memory tables, from shimMem.
var memMetrics = []struct {
	name   string
	get    func(shimMem) float64
	format func(float64) string
}{
	{"PSS", func(m shimMem) float64 { return m.pss / 1024 }, fmtMiB},
	{"RSS", func(m shimMem) float64 { return m.rss / 1024 }, fmtMiB},
	{"anon", func(m shimMem) float64 { return m.anon / 1024 }, fmtMiB},
	{"threads", func(m shimMem) float64 { return m.threads }, fmtInt},
}

func printContainerd(all []*results, about []string, o containerdOptions) {
	fmt.Printf("## Through containerd: io.containerd.mini.v2 (mini) vs io.containerd.runc.v2 (runc)\n\n")
	fmt.Printf("Both shims under the same daemon, their runs interleaved; mini/runc is mini's median over runc's under the same containerd. Busybox image, ctr of the same release.\n\n")
	for _, a := range about {
		fmt.Printf("- %s\n", a)
	}
	fmt.Println()
	head := []string{"containerd", "shim"}

	run := table{title: "ctr run --rm IMAGE ID /bin/true (lower is better)", head: head, ratioHead: "mini/runc", format: fmtMs}
	perShim(&run, all, func(r *results) samples { return r.run }, nil)
	run.print()

	mem := table{
		title:     fmt.Sprintf("Memory per shim: %d idle containers (sleep 1000, ctr run -d) per shim, one shim each", o.mem),
		note:      "Per shim process, from /proc/PID/smaps_rollup (PSS divides shared pages among the processes sharing them) and /proc/PID/status; n is the number of shim processes; total is their sum.",
		head:      []string{"containerd", "metric", "shim"},
		ratioHead: "mini/runc",
		tail:      []string{"total"},
		format:    fmtMiB,
	}
	for _, r := range all {
		for _, m := range memMetrics {
			per := samples{}
			for _, name := range shimNames {
				for _, sm := range r.mem[name] {
					per[name] = append(per[name], m.get(sm))
				}
			}
			for _, name := range shimNames {
				mem.add(row{head: []string{r.label, m.name, name}, samples: per[name], base: per[baseline],
					format: m.format, tail: []string{m.format(sum(per[name]))}})
			}
		}
	}
	mem.print()

	// One sample per shim process (a single one when grouping works):
	// medians would say nothing, so this table shows the sums.
	cols := append(slices.Clone(head), "shim processes")
	for _, m := range memMetrics {
		cols = append(cols, m.name)
	}
	cols = append(cols, "PSS per container", "PSS mini/runc")
	var rows [][]string
	for _, r := range all {
		total := func(name string, get func(shimMem) float64) float64 {
			var v float64
			for _, sm := range r.pod[name] {
				v += get(sm)
			}
			return v
		}
		pss := memMetrics[0].get
		for _, name := range shimNames {
			cells := []string{r.label, name, strconv.Itoa(len(r.pod[name]))}
			for _, m := range memMetrics {
				cells = append(cells, m.format(total(name, m.get)))
			}
			cells = append(cells, fmtMiB(total(name, pss)/float64(o.pod)),
				ratio([]float64{total(name, pss)}, []float64{total(baseline, pss)}))
			rows = append(rows, cells)
		}
	}
	printMarkdown(fmt.Sprintf("Memory of a pod: %d containers with one io.kubernetes.cri.sandbox-id annotation, served by one shim", o.pod),
		"Both shims group the containers of a pod by that annotation.", cols, rows)

	conc := table{title: fmt.Sprintf("%d containers at once: ctr run -d in parallel until all run (lower is better)", o.conc),
		head: head, ratioHead: "mini/runc", format: fmtSec}
	perShim(&conc, all, func(r *results) samples { return r.concStart }, nil)
	conc.print()
	rm := table{title: fmt.Sprintf("... and their teardown: ctr task delete --force + ctr container delete, all %d in parallel (lower is better)", o.conc),
		head: head, ratioHead: "mini/runc", format: fmtSec}
	perShim(&rm, all, func(r *results) samples { return r.concRm }, nil)
	rm.print()

	stream := table{
		title:     fmt.Sprintf("IO: a container writes %d bytes to stdout, read through ctr run (higher is better)", int64(o.ioBytes)),
		note:      "The container writes a line of 250 characters over and over (cat of a file of them: sendfile); every byte ctr prints is checked against the pattern. The rate runs from the first byte to the last; the last column is the whole ctr run, container start and removal included.",
		head:      head,
		ratioHead: "mini/runc",
		tail:      []string{"whole ctr run (median)"},
		format:    func(v float64) string { return fmt.Sprintf("%.0f MiB/s", v) },
	}
	perShim(&stream, all, func(r *results) samples { return r.ioRate }, func(r *results, name string) []string {
		med, _, _ := stats(r.ioWhole[name])
		return []string{fmtSec(med)}
	})
	stream.print()

	ex := table{title: "ctr task exec of /bin/true into a running container (lower is better)", head: head, ratioHead: "mini/runc", format: fmtMs}
	perShim(&ex, all, func(r *results) samples { return r.exec }, nil)
	ex.print()
}

// perShim adds to t a row per containerd and shim of get's samples, with
// tail's extra cells.
func perShim(t *table, all []*results, get func(*results) samples, tail func(r *results, shim string) []string) {
	for _, r := range all {
		s := get(r)
		for _, name := range shimNames {
			rw := row{head: []string{r.label, name}, samples: s[name], base: s[baseline]}
			if tail != nil {
				rw.tail = tail(r, name)
			}
			t.add(rw)
		}
	}
}

func sum(s []float64) float64 {
	var v float64
	for _, x := range s {
		v += x
	}
	return v
}
