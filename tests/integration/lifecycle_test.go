package integration

// The container lifecycle through the CLI (create, state, start, kill,
// delete) with the OCI state observed at every step, from outside (the
// state JSON, /proc) and from inside the container (files it writes to a
// bind-mounted directory), and runc's error texts for each command in the
// wrong state.

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/runmini/runmini/tests/testutil"
)

func TestLifecycle(t *testing.T) {
	t.Parallel()
	out, _ := cliOutDir(t)
	bundle := testutil.Bundle(t, cliShell(out,
		`echo started > /out/started; exec sleep 1000`,
		func(s *specs.Spec) {
			s.Annotations = map[string]string{"org.example.test": "lifecycle", "second": "2"}
		}))
	id := testutil.ID(t)
	before := time.Now()

	if o := cliMust(t, "create", "--bundle", bundle, id); o != "" {
		t.Errorf("create printed %q on stdout, want nothing", o)
	}
	st := cliGetState(t, id)
	if st.Status != "created" {
		t.Fatalf("state after create: status %q, want created", st.Status)
	}
	if st.ID != id || st.Bundle != bundle || st.Rootfs != filepath.Join(bundle, "rootfs") {
		t.Errorf("state after create: id %q bundle %q rootfs %q; want %q, %q, %q",
			st.ID, st.Bundle, st.Rootfs, id, bundle, filepath.Join(bundle, "rootfs"))
	}
	if !strings.HasPrefix(st.OCIVersion, "1.") {
		t.Errorf("state: ociVersion %q, want a 1.x runtime-spec version", st.OCIVersion)
	}
	// created is the creation time: not before the test asked for it and
	// not in the future.
	if st.Created.Before(before.Add(-time.Second)) || st.Created.After(time.Now().Add(time.Second)) {
		t.Errorf("state: created %v, want a time between %v and now", st.Created, before)
	}
	if st.Annotations["org.example.test"] != "lifecycle" || st.Annotations["second"] != "2" {
		t.Errorf("state: annotations %v, want the spec's", st.Annotations)
	}
	if st.Pid <= 0 || !cliProcAlive(st.Pid, 0) {
		t.Fatalf("state after create: pid %d is not a live process", st.Pid)
	}
	// The state dir holds the state and the init's exec.sock, nothing
	// staged on the way.
	if ents, err := os.ReadDir(filepath.Join(testutil.Runtime(t).Root, id)); err != nil {
		t.Error(err)
	} else {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		if got := strings.Join(names, " "); got != "exec.sock state.json" {
			t.Errorf("state dir after create: %q, want exec.sock state.json", got)
		}
	}
	pid := st.Pid
	// The init waits for start: the user process has not run yet.
	if _, err := os.Stat(filepath.Join(out, "started")); err == nil {
		t.Errorf("the container process ran before start")
	}
	if cl := cliCmdline(pid); strings.Contains(cl, "sleep") {
		t.Errorf("created container's pid %d already runs %q", pid, cl)
	}
	// The init lives in the container's own pid namespace.
	if hostNS, _ := os.Readlink("/proc/self/ns/pid"); hostNS != "" {
		if ns, _ := os.Readlink("/proc/" + strconv.Itoa(pid) + "/ns/pid_for_children"); ns == hostNS {
			t.Errorf("init %d is in the host's pid namespace", pid)
		}
	}

	if o := cliMust(t, "start", id); o != "" {
		t.Errorf("start printed %q on stdout, want nothing", o)
	}
	if got := cliReadFile(t, out, "started"); got != "started\n" {
		t.Errorf("container wrote %q, want started", got)
	}
	cliWaitFor(t, "the container process to exec sleep", func() bool {
		return cliCmdline(pid) == "sleep 1000"
	})
	st = cliGetState(t, id)
	if st.Status != "running" || st.Pid != pid {
		t.Errorf("state after start: status %q pid %d, want running %d", st.Status, st.Pid, pid)
	}

	cliMust(t, "kill", id, "KILL")
	st = cliWaitStatus(t, id, "stopped")
	if st.ID != id || st.Bundle != bundle {
		t.Errorf("state when stopped: %+v", st)
	}
	if cliProcAlive(pid, 0) && cliCmdline(pid) == "sleep 1000" {
		t.Errorf("container process %d still runs after kill KILL", pid)
	}

	if o := cliMust(t, "delete", id); o != "" {
		t.Errorf("delete printed %q on stdout, want nothing", o)
	}
	cliFailWith(t, "container does not exist", "state", id)
	cliNothingLeft(t, id, bundle, "")
}

// TestCreatedContainerSurvivesCreator checks that a container stays
// created after the runtime that created it has exited, however fast it
// exits: the init must outlive its creator from the moment create returns.
func TestCreatedContainerSurvivesCreator(t *testing.T) {
	t.Parallel()
	bundle := testutil.Bundle(t, func(s *specs.Spec) { s.Process.Args = []string{"sleep", "1000"} })
	var ids []string
	for i := 0; i < 5; i++ {
		id := testutil.ID(t)
		ids = append(ids, id)
		cliMust(t, "create", "--bundle", bundle, id)
	}
	for _, id := range ids {
		if st := cliGetState(t, id); st.Status != "created" {
			t.Errorf("%s: status %q right after create, want created", id, st.Status)
		}
	}
	for _, id := range ids {
		cliMust(t, "delete", "--force", id)
	}
}

func TestWrongState(t *testing.T) {
	t.Parallel()
	bundle := testutil.Bundle(t, func(s *specs.Spec) { s.Process.Args = []string{"sleep", "1000"} })
	id := testutil.ID(t)
	missing := testutil.ID(t)

	// A container that does not exist.
	for _, args := range [][]string{
		{"state", missing}, {"start", missing}, {"kill", missing}, {"kill", missing, "KILL"},
		{"kill", "--all", missing, "KILL"}, {"delete", missing},
	} {
		cliFailWith(t, "container does not exist", args...)
	}
	// delete --force of nothing is what force asked for.
	if _, errOut, code := testutil.Run(t, "delete", "--force", missing); code != 0 {
		t.Errorf("delete --force of a missing container: exit %d: %s", code, errOut)
	}

	cliMust(t, "create", "--bundle", bundle, id)
	pid := cliGetState(t, id).Pid
	// delete of a created container without --force is not checked: runc
	// kills and deletes it, the runtime spec wants an error; either is
	// defensible, and the validation suite judges it.

	cliMust(t, "start", id)
	cliWaitStatus(t, id, "running")
	cliFailWith(t, "cannot start an already running container", "start", id)
	cliFailWith(t, "cannot delete container "+id+" that is not stopped: running", "delete", id)
	if st := cliGetState(t, id); st.Status != "running" || st.Pid != pid || !cliProcAlive(pid, 0) {
		t.Errorf("refused start/delete changed the container: %+v", st)
	}

	cliMust(t, "kill", id, "KILL")
	cliWaitStatus(t, id, "stopped")
	cliFailWith(t, "cannot start a container that has stopped", "start", id)
	cliFailWith(t, "container not running", "kill", id)
	cliFailWith(t, "container not running", "kill", id, "KILL")
	cliMust(t, "delete", id)
	cliNothingLeft(t, id, bundle, "")
}

// TestDeleteForce deletes a created and a running container with -f:
// the processes are killed and everything is removed.
func TestDeleteForce(t *testing.T) {
	t.Parallel()
	for _, start := range []bool{false, true} {
		name := "created"
		if start {
			name = "running"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			bundle := testutil.Bundle(t, func(s *specs.Spec) { s.Process.Args = []string{"sleep", "1000"} })
			id := testutil.ID(t)
			cliMust(t, "create", "--bundle", bundle, id)
			if start {
				cliMust(t, "start", id)
				cliWaitStatus(t, id, "running")
			}
			pid := cliGetState(t, id).Pid
			pstart := cliKillOnCleanup(t, pid)
			cliMust(t, "delete", "-f", id)
			if cliProcAlive(pid, pstart) {
				t.Errorf("container process %d survived delete -f", pid)
			}
			cliFailWith(t, "container does not exist", "state", id)
			cliNothingLeft(t, id, bundle, "")
		})
	}
}

// TestKillSignals sends signals by name with and without SIG, by number
// and by default, and checks inside the container which ones arrived.
func TestKillSignals(t *testing.T) {
	t.Parallel()
	out, _ := cliOutDir(t)
	// The shell is the container's pid 1: it gets only the signals it has
	// a handler for, and these handlers record them.
	script := `trap 'echo USR1 >> /out/sigs' USR1
trap 'echo USR2 >> /out/sigs' USR2
trap 'echo TERM >> /out/sigs; exit 0' TERM
echo ready > /out/ready
while :; do sleep 1000 & wait $!; done`
	bundle := testutil.Bundle(t, cliShell(out, script, nil))
	id := testutil.ID(t)
	cliMust(t, "create", "--bundle", bundle, id)
	cliMust(t, "start", id)
	cliReadFile(t, out, "ready")

	var want []string
	for _, sig := range []struct{ arg, name string }{
		{"USR1", "USR1"},
		{"SIGUSR2", "USR2"},
		{strconv.Itoa(int(unix.SIGUSR1)), "USR1"},
		{"usr2", "USR2"}, // runc upper-cases names
		{"SIGUSR1", "USR1"},
	} {
		cliMust(t, "kill", id, sig.arg)
		want = append(want, sig.name)
		cliWaitFor(t, "the container to record "+sig.arg, func() bool {
			b, _ := os.ReadFile(filepath.Join(out, "sigs"))
			return len(strings.Fields(string(b))) >= len(want)
		})
	}
	// No signal argument: SIGTERM.
	cliMust(t, "kill", id)
	want = append(want, "TERM")
	st := cliWaitStatus(t, id, "stopped")
	b, _ := os.ReadFile(filepath.Join(out, "sigs"))
	if got := strings.Fields(string(b)); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("container received %q, want %q", got, want)
	}
	if st.Status != "stopped" {
		t.Errorf("after kill (TERM): status %q", st.Status)
	}
	cliMust(t, "delete", id)
}

// TestKillAll runs a container with several processes and no pid
// namespace of its own (so the init's death does not take the others
// along): kill without --all reaches only the init, kill --all every
// process, and delete of the stopped container removes the stragglers.
func TestKillAll(t *testing.T) {
	t.Parallel()
	script := `sleep 1000 & echo $! > /out/p1; sleep 1000 & echo $! > /out/p2
echo ready > /out/ready; wait`
	noPidNS := func(s *specs.Spec) {
		var ns []specs.LinuxNamespace
		for _, n := range s.Linux.Namespaces {
			if n.Type != specs.PIDNamespace {
				ns = append(ns, n)
			}
		}
		s.Linux.Namespaces = ns
	}
	start := func(t *testing.T) (id string, init int, kids []int, starts map[int]uint64) {
		out, _ := cliOutDir(t)
		bundle := testutil.Bundle(t, cliShell(out, script, noPidNS))
		id = testutil.ID(t)
		cliMust(t, "run", "-d", "--bundle", bundle, id)
		cliReadFile(t, out, "ready")
		starts = map[int]uint64{}
		init = cliGetState(t, id).Pid
		starts[init] = cliKillOnCleanup(t, init)
		for _, f := range []string{"p1", "p2"} {
			pid, err := strconv.Atoi(strings.TrimSpace(cliReadFile(t, out, f)))
			if err != nil {
				t.Fatalf("container wrote a bad pid to %s: %v", f, err)
			}
			kids = append(kids, pid)
			starts[pid] = cliKillOnCleanup(t, pid)
		}
		return id, init, kids, starts
	}

	t.Run("all", func(t *testing.T) {
		t.Parallel()
		id, init, kids, starts := start(t)
		cliMust(t, "kill", "--all", id, "KILL")
		for _, pid := range append([]int{init}, kids...) {
			cliWaitFor(t, "process "+strconv.Itoa(pid)+" to die of kill --all", func() bool {
				return !cliProcAlive(pid, starts[pid])
			})
		}
		cliWaitStatus(t, id, "stopped")
		cliMust(t, "delete", id)
	})
	t.Run("a", func(t *testing.T) {
		t.Parallel()
		id, _, kids, starts := start(t)
		cliMust(t, "kill", "-a", id, "KILL")
		for _, pid := range kids {
			cliWaitFor(t, "process "+strconv.Itoa(pid)+" to die of kill -a", func() bool {
				return !cliProcAlive(pid, starts[pid])
			})
		}
		cliWaitStatus(t, id, "stopped")
		cliMust(t, "delete", id)
	})
	t.Run("init only", func(t *testing.T) {
		t.Parallel()
		id, _, kids, starts := start(t)
		cliMust(t, "kill", id, "KILL")
		cliWaitStatus(t, id, "stopped")
		for _, pid := range kids {
			if !cliProcAlive(pid, starts[pid]) {
				t.Errorf("kill without --all killed %d, not only the init", pid)
			}
		}
		// Deleting the stopped container kills what is left of it.
		cliMust(t, "delete", id)
		for _, pid := range kids {
			cliWaitFor(t, "process "+strconv.Itoa(pid)+" to die of the container's delete", func() bool {
				return !cliProcAlive(pid, starts[pid])
			})
		}
	})
}

// A process that cannot be executed once the container is built (here an
// executable file that is no program) fails `run`, which the init released
// at create, with the exec's error, exit status 1 and nothing left behind;
// create and start report it from start.
func TestRunExecFailsAfterCreate(t *testing.T) {
	t.Parallel()
	dir := hostDir(t)
	bad := filepath.Join(dir, "badexec")
	if err := os.WriteFile(bad, []byte("no program\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	bundle := testutil.Bundle(t, func(s *specs.Spec) {
		s.Mounts = append(s.Mounts, specs.Mount{Destination: "/badexec", Type: "bind", Source: bad, Options: []string{"bind", "ro"}})
		s.Process.Args = []string{"/badexec"}
	})
	const want = "exec /badexec: exec format error"
	id := testutil.ID(t)
	out, errOut, code := testutil.Run(t, "run", "--bundle", bundle, id)
	if code != 1 || !strings.Contains(errOut, want) {
		t.Errorf("run: exit status %d, stderr %q; want 1 and %q (stdout %q)", code, errOut, want, out)
	}
	if _, _, code := testutil.Run(t, "state", id); code == 0 {
		t.Error("the failed run left the container behind")
	}

	id = testutil.ID(t)
	if out, errOut, code := testutil.Run(t, "create", "--bundle", bundle, id); code != 0 {
		t.Fatalf("create: exit status %d: %s%s", code, out, errOut)
	}
	t.Cleanup(func() { testutil.Run(t, "delete", "--force", id) })
	out, errOut, code = testutil.Run(t, "start", id)
	if code != 1 || !strings.Contains(errOut, want) {
		t.Errorf("start: exit status %d, stderr %q; want 1 and %q (stdout %q)", code, errOut, want, out)
	}
}
