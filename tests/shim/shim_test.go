package shim

import (
	"bytes"
	"encoding/json"
	"fmt"
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

	_ "github.com/containerd/cgroups/v3/cgroup1/stats" // so typeurl decodes the metrics
	eventstypes "github.com/containerd/containerd/api/events"
	bootstrap "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	taskapi "github.com/containerd/containerd/api/runtime/task/v2"
	apitypes "github.com/containerd/containerd/api/types"
	"github.com/containerd/containerd/api/types/runc/options"
	tasktypes "github.com/containerd/containerd/api/types/task"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/runmini/runmini/tests/testutil"
)

func args(a ...string) func(*specs.Spec) {
	return func(s *specs.Spec) { s.Process.Args = a }
}

// code is the errdefs class of a ttrpc error, as containerd decodes it.
func code(err error) string {
	err = errgrpc.ToNative(err)
	switch {
	case err == nil:
		return "ok"
	case errdefs.IsNotFound(err):
		return "NotFound"
	case errdefs.IsAlreadyExists(err):
		return "AlreadyExists"
	case errdefs.IsFailedPrecondition(err):
		return "FailedPrecondition"
	case errdefs.IsInvalidArgument(err):
		return "InvalidArgument"
	case errdefs.IsNotImplemented(err):
		return "Unimplemented"
	}
	return "other: " + err.Error()
}

func TestLifecycleAndEvents(t *testing.T) {
	t.Parallel()
	id := testutil.ID(t)
	b := testutil.Bundle(t, args("sh", "-c", "echo out; echo err >&2; exit 3"))
	e := startShim(t, b, id)
	stdout, stderr := e.create(id, b, nil)
	st, err := e.client.State(ctx(t), &taskapi.StateRequest{ID: id})
	if err != nil || st.Status != tasktypes.Status_CREATED || st.Pid == 0 || st.Bundle != b {
		t.Fatalf("state after create: %v %v", st, err)
	}
	sr, err := e.client.Start(ctx(t), &taskapi.StartRequest{ID: id})
	if err != nil || sr.Pid != st.Pid {
		t.Fatalf("start: %v %v", sr, err)
	}
	w, err := e.client.Wait(ctx(t), &taskapi.WaitRequest{ID: id})
	if err != nil || w.ExitStatus != 3 || w.ExitedAt.AsTime().IsZero() {
		t.Fatalf("wait: %v %v", w, err)
	}
	st, _ = e.client.State(ctx(t), &taskapi.StateRequest{ID: id})
	if st.Status != tasktypes.Status_STOPPED || st.ExitStatus != 3 {
		t.Fatalf("state after exit: %v", st)
	}
	d := e.deleteTask(id)
	if d.ExitStatus != 3 || d.Pid != st.Pid {
		t.Fatalf("delete response: %v", d)
	}
	if got := readFile(t, stdout); got != "out\n" {
		t.Errorf("stdout %q", got)
	}
	if got := readFile(t, stderr); got != "err\n" {
		t.Errorf("stderr %q", got)
	}
	evs := e.sink.waitFor(t, "delete event", hasTopic("/tasks/delete", ""))
	if got := topics(evs); got != "/tasks/create /tasks/start /tasks/exit("+id+") /tasks/delete" {
		t.Fatalf("events: %s", got)
	}
	for _, ev := range evs {
		if ev.Namespace != e.ns {
			t.Errorf("event %s in namespace %q", ev.Topic, ev.Namespace)
		}
	}
	if x := evs[2].Event.(*eventstypes.TaskExit); x.ExitStatus != 3 || x.Pid != st.Pid || x.ContainerID != id {
		t.Errorf("exit event %v", x)
	}
}

func TestBadInputKeepsServing(t *testing.T) {
	t.Parallel()
	id := testutil.ID(t)
	b := testutil.Bundle(t, args("sleep", "100"))
	e := startShim(t, b, id)
	c := ctx(t)

	noConfig := t.TempDir()
	_, err := e.client.Create(c, &taskapi.CreateTaskRequest{ID: id + "-x", Bundle: noConfig})
	check(t, "create without config.json", err, "InvalidArgument")
	bad := testutil.Bundle(t, nil)
	os.WriteFile(filepath.Join(bad, "config.json"), []byte("{"), 0o644)
	_, err = e.client.Create(c, &taskapi.CreateTaskRequest{ID: id + "-y", Bundle: bad})
	check(t, "create with invalid config.json", err, "InvalidArgument")
	_, err = e.client.Create(c, &taskapi.CreateTaskRequest{ID: "../x", Bundle: b})
	check(t, "create with invalid id", err, "InvalidArgument")
	_, err = e.client.Create(c, &taskapi.CreateTaskRequest{ID: id, Bundle: b, Options: &anypb.Any{TypeUrl: "example.com/unknown", Value: []byte{1}}})
	check(t, "create with unknown options", err, "InvalidArgument")

	e.create(id, b, nil)
	_, err = e.client.Create(c, &taskapi.CreateTaskRequest{ID: id, Bundle: b})
	check(t, "second create", err, "AlreadyExists")
	_, err = e.client.Start(c, &taskapi.StartRequest{ID: id})
	check(t, "start", err, "ok")
	_, err = e.client.Start(c, &taskapi.StartRequest{ID: id})
	check(t, "start twice", err, "FailedPrecondition")

	spec := &specs.Process{Args: []string{"sleep", "100"}, Cwd: "/"}
	_, err = e.client.Exec(c, &taskapi.ExecProcessRequest{ID: id, ExecID: "e1", Spec: processAny(t, spec)})
	check(t, "exec", err, "ok")
	_, err = e.client.Exec(c, &taskapi.ExecProcessRequest{ID: id, ExecID: "e1", Spec: processAny(t, spec)})
	check(t, "exec with a taken id", err, "AlreadyExists")
	_, err = e.client.Exec(c, &taskapi.ExecProcessRequest{ID: id, ExecID: "e2", Spec: processAny(t, &specs.Process{Cwd: "/"})})
	check(t, "exec without args", err, "InvalidArgument")
	_, err = e.client.Exec(c, &taskapi.ExecProcessRequest{ID: id, ExecID: "e3", Spec: &anypb.Any{TypeUrl: "x", Value: []byte("not json")}})
	check(t, "exec with a garbage spec", err, "InvalidArgument")
	_, err = e.client.Kill(c, &taskapi.KillRequest{ID: id, ExecID: "nope", Signal: 9})
	check(t, "kill unknown exec", err, "NotFound")
	_, err = e.client.State(c, &taskapi.StateRequest{ID: id, ExecID: "nope"})
	check(t, "state of unknown exec", err, "NotFound")
	_, err = e.client.Wait(c, &taskapi.WaitRequest{ID: id, ExecID: "nope"})
	check(t, "wait for unknown exec", err, "NotFound")
	_, err = e.client.Kill(c, &taskapi.KillRequest{ID: id, Signal: 0})
	check(t, "kill with signal 0", err, "InvalidArgument")
	_, err = e.client.Update(c, &taskapi.UpdateTaskRequest{ID: id, Resources: &anypb.Any{TypeUrl: "x", Value: []byte("][")}})
	check(t, "update with garbage resources", err, "InvalidArgument")
	neg := int64(-5)
	res, _ := json.Marshal(&specs.LinuxResources{CPU: &specs.LinuxCPU{Shares: new(uint64)}, Pids: &specs.LinuxPids{Limit: &neg}, Memory: &specs.LinuxMemory{Limit: &neg, Swap: new(int64)}})
	_, err = e.client.Update(c, &taskapi.UpdateTaskRequest{ID: id, Resources: &anypb.Any{TypeUrl: "x", Value: res}})
	check(t, "update with invalid resources", err, "InvalidArgument")
	_, err = e.client.Checkpoint(c, &taskapi.CheckpointTaskRequest{ID: id})
	check(t, "checkpoint", err, "Unimplemented")
	_, err = e.client.Delete(c, &taskapi.DeleteRequest{ID: id})
	check(t, "delete a running task", err, "FailedPrecondition")

	// A field the message cannot hold: invalid UTF-8 in the id string.
	var garbage taskapi.CreateTaskResponse
	err = e.conn.Call(c, "containerd.task.v2.Task", "Create", wrapperspb.Bytes([]byte{0xff, 0xfe, 0xfd}), &garbage)
	check(t, "create with garbage fields", err, "InvalidArgument")
	err = e.conn.Call(c, "containerd.task.v3.Task", "State", wrapperspb.Bytes([]byte{0xff}), &taskapi.StateResponse{})
	check(t, "v3 state with garbage fields", err, "InvalidArgument")

	_, err = e.client.Kill(c, &taskapi.KillRequest{ID: id, Signal: 9})
	check(t, "kill", err, "ok")
	e.deleteTask(id)
	_, err = e.client.State(c, &taskapi.StateRequest{ID: id})
	check(t, "state of a deleted task", err, "NotFound")
	_, err = e.client.Kill(c, &taskapi.KillRequest{ID: id, Signal: 9})
	check(t, "kill a deleted task", err, "NotFound")

	// And it still serves: a new task runs to completion.
	id2 := testutil.ID(t)
	b2 := testutil.Bundle(t, args("sh", "-c", "exit 7"))
	e.create(id2, b2, nil)
	if _, err := e.client.Start(c, &taskapi.StartRequest{ID: id2}); err != nil {
		t.Fatal(err)
	}
	if d := e.deleteTask(id2); d.ExitStatus != 7 {
		t.Fatalf("exit status %d", d.ExitStatus)
	}
}

func check(t *testing.T, what string, err error, want string) {
	t.Helper()
	if got := code(err); got != want {
		t.Errorf("%s: got %s (%v), want %s", what, got, err, want)
	}
}

// Twenty execs at once, each with its own exit code; the init's exit comes
// after every exec's, and each exec's start before its exit.
func TestConcurrentExecsAndExitOrder(t *testing.T) {
	t.Parallel()
	id := testutil.ID(t)
	b := testutil.Bundle(t, args("sleep", "100"))
	e := startShim(t, b, id)
	e.createStarted(id, b)
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			x := "x" + strconv.Itoa(i)
			p := &specs.Process{Args: []string{"sh", "-c", "exit " + strconv.Itoa(i)}, Cwd: "/"}
			if _, err := e.client.Exec(ctx(t), &taskapi.ExecProcessRequest{ID: id, ExecID: x, Spec: processAny(t, p)}); err != nil {
				errs <- err
				return
			}
			if _, err := e.client.Start(ctx(t), &taskapi.StartRequest{ID: id, ExecID: x}); err != nil {
				errs <- err
				return
			}
			w, err := e.client.Wait(ctx(t), &taskapi.WaitRequest{ID: id, ExecID: x})
			if err == nil && w.ExitStatus != uint32(i) {
				err = &exitErr{x, w.ExitStatus, i}
			}
			if err == nil {
				_, err = e.client.Delete(ctx(t), &taskapi.DeleteRequest{ID: id, ExecID: x})
			}
			if err != nil {
				errs <- err
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// Long-running execs, then the init dies: theirs exits come first.
	for _, x := range []string{"l1", "l2", "l3"} {
		p := &specs.Process{Args: []string{"sleep", "100"}, Cwd: "/"}
		if _, err := e.client.Exec(ctx(t), &taskapi.ExecProcessRequest{ID: id, ExecID: x, Spec: processAny(t, p)}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.client.Start(ctx(t), &taskapi.StartRequest{ID: id, ExecID: x}); err != nil {
			t.Fatal(err)
		}
	}
	pids, err := e.client.Pids(ctx(t), &taskapi.PidsRequest{ID: id})
	if err != nil {
		t.Fatal(err)
	}
	execIDs := map[string]bool{}
	for _, p := range pids.Processes {
		if p.Info != nil {
			v, err := typeurl.UnmarshalAny(p.Info)
			if err != nil {
				t.Fatal(err)
			}
			execIDs[v.(*options.ProcessDetails).ExecID] = true
		}
	}
	if len(pids.Processes) != 4 || !execIDs["l1"] || !execIDs["l2"] || !execIDs["l3"] {
		t.Errorf("pids: %v", pids.Processes)
	}
	if _, err := e.client.Kill(ctx(t), &taskapi.KillRequest{ID: id, Signal: 9}); err != nil {
		t.Fatal(err)
	}
	e.deleteTask(id)
	evs := e.sink.waitFor(t, "delete event", hasTopic("/tasks/delete", ""))
	pos := map[string]int{}
	for i, ev := range evs {
		pos[ev.Topic+idOf(ev.Event)] = i
	}
	for i := 0; i < n; i++ {
		x := "x" + strconv.Itoa(i)
		a, okA := pos["/tasks/exec-added("+x+")"]
		s, okS := pos["/tasks/exec-started("+x+")"]
		ex, okE := pos["/tasks/exit("+x+")"]
		if !okA || !okS || !okE || !(a < s && s < ex) {
			t.Errorf("events of %s out of order: %s", x, topics(evs))
		}
	}
	initExit := pos["/tasks/exit("+id+")"]
	for _, x := range []string{"l1", "l2", "l3"} {
		if ex, ok := pos["/tasks/exit("+x+")"]; !ok || ex > initExit {
			t.Errorf("exit of %s not before the init's: %s", x, topics(evs))
		}
	}
}

type exitErr struct {
	id   string
	got  uint32
	want int
}

func (e *exitErr) Error() string {
	return e.id + ": exit status " + strconv.Itoa(int(e.got)) + ", want " + strconv.Itoa(e.want)
}

// Stdin from a fifo reaches the process, and CloseIO is its EOF; stdout
// through a fifo arrives whole.
func TestStdinFifoAndCloseIO(t *testing.T) {
	t.Parallel()
	id := testutil.ID(t)
	b := testutil.Bundle(t, args("sh", "-c", "cat; echo done"))
	e := startShim(t, b, id)
	in := fifo(t, e.dir, "in")
	out, outR := fifoReader(t, e.dir, "out")
	e.create(id, b, func(r *taskapi.CreateTaskRequest) { r.Stdin, r.Stdout = in, out })
	inW, err := os.OpenFile(in, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.Start(ctx(t), &taskapi.StartRequest{ID: id}); err != nil {
		t.Fatal(err)
	}
	payload := strings.Repeat("0123456789abcdef", 64*1024) // 1 MiB: more than a pipe holds
	got := make(chan string, 1)
	go func() {
		syscall.SetNonblock(int(outR.Fd()), false)
		var buf bytes.Buffer
		buf.ReadFrom(outR)
		got <- buf.String()
	}()
	if _, err := inW.WriteString(payload); err != nil {
		t.Fatal(err)
	}
	inW.Close()
	if _, err := e.client.CloseIO(ctx(t), &taskapi.CloseIORequest{ID: id, Stdin: true}); err != nil {
		t.Fatal(err)
	}
	d := e.deleteTask(id)
	select {
	case s := <-got:
		if s != payload+"done\n" {
			t.Errorf("stdout: %d bytes, want %d", len(s), len(payload)+5)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("stdout fifo never reached EOF")
	}
	if d.ExitStatus != 0 {
		t.Errorf("exit %d", d.ExitStatus)
	}
}

// The request's Terminal is what counts, whatever config.json says.
func TestTerminal(t *testing.T) {
	t.Parallel()
	for _, inConfig := range []bool{true, false} {
		t.Run(fmt.Sprintf("config.json terminal %v", inConfig), func(t *testing.T) {
			t.Parallel()
			id := testutil.ID(t)
			b := testutil.Bundle(t, func(s *specs.Spec) {
				s.Process.Args = []string{"sh", "-c", "stty size; tty; exit 4"}
				s.Process.Terminal = inConfig
			})
			e := startShim(t, b, id)
			stdout, _ := e.create(id, b, func(r *taskapi.CreateTaskRequest) { r.Terminal = true; r.Stderr = "" })
			if _, err := e.client.ResizePty(ctx(t), &taskapi.ResizePtyRequest{ID: id, Width: 123, Height: 45}); err != nil {
				t.Fatal(err)
			}
			if _, err := e.client.Start(ctx(t), &taskapi.StartRequest{ID: id}); err != nil {
				t.Fatal(err)
			}
			if d := e.deleteTask(id); d.ExitStatus != 4 {
				t.Errorf("exit %d", d.ExitStatus)
			}
			out := readFile(t, stdout)
			if !strings.Contains(out, "45 123\r\n") || !strings.Contains(out, "/dev/pts/") {
				t.Errorf("terminal output %q", out)
			}
		})
	}
}

func TestOOMEvent(t *testing.T) {
	t.Parallel()
	id := testutil.ID(t)
	limit := int64(16 << 20)
	b := testutil.Bundle(t, func(s *specs.Spec) {
		s.Process.Args = []string{"sh", "-c", "x=0123456789abcdef; while :; do x=$x$x; done"}
		s.Linux.Resources = &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &limit}}
	})
	e := startShim(t, b, id)
	e.createStarted(id, b)
	if d := e.deleteTask(id); d.ExitStatus != 137 {
		t.Errorf("exit %d, want 137 (OOM-killed)", d.ExitStatus)
	}
	evs := e.sink.waitFor(t, "oom event", hasTopic("/tasks/oom", ""))
	for _, ev := range evs {
		if o, ok := ev.Event.(*eventstypes.TaskOOM); ok && o.ContainerID != id {
			t.Errorf("oom event for %q", o.ContainerID)
		}
	}
}

func TestPauseResumeStats(t *testing.T) {
	t.Parallel()
	id := testutil.ID(t)
	b := testutil.Bundle(t, args("sleep", "100"))
	e := startShim(t, b, id)
	e.createStarted(id, b)
	c := ctx(t)
	if _, err := e.client.Pause(c, &taskapi.PauseRequest{ID: id}); err != nil {
		t.Fatal(err)
	}
	if st, _ := e.client.State(c, &taskapi.StateRequest{ID: id}); st.Status != tasktypes.Status_PAUSED {
		t.Errorf("state %v after pause", st.Status)
	}
	_, err := e.client.Pause(c, &taskapi.PauseRequest{ID: id})
	check(t, "pause twice", err, "FailedPrecondition")
	if _, err := e.client.Resume(c, &taskapi.ResumeRequest{ID: id}); err != nil {
		t.Fatal(err)
	}
	s, err := e.client.Stats(c, &taskapi.StatsRequest{ID: id})
	if err != nil {
		t.Fatal(err)
	}
	if s.Stats.TypeUrl != "io.containerd.cgroups.v1.Metrics" && s.Stats.TypeUrl != "io.containerd.cgroups.v2.Metrics" {
		t.Errorf("stats type %q", s.Stats.TypeUrl)
	}
	if _, err := typeurl.UnmarshalAny(s.Stats); err != nil {
		t.Errorf("decode stats: %v", err)
	}
	lim := int64(64 << 20)
	res, _ := json.Marshal(&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &lim}})
	if _, err := e.client.Update(c, &taskapi.UpdateTaskRequest{ID: id, Resources: &anypb.Any{TypeUrl: "x", Value: res}}); err != nil {
		t.Errorf("update: %v", err)
	}
	if _, err := e.client.Kill(c, &taskapi.KillRequest{ID: id, Signal: 9, All: true}); err != nil {
		t.Fatal(err)
	}
	e.deleteTask(id)
	evs := e.sink.waitFor(t, "delete", hasTopic("/tasks/delete", ""))
	if got := topics(evs); got != "/tasks/create /tasks/start /tasks/paused /tasks/resumed /tasks/exit("+id+") /tasks/delete" {
		t.Errorf("events: %s", got)
	}
}

// A dead shim: containerd runs `delete`, which must clean up everything.
func TestDeleteAfterShimDied(t *testing.T) {
	t.Parallel()
	id := testutil.ID(t)
	b := testutil.Bundle(t, args("sleep", "100"))
	e := startShim(t, b, id)
	pid := e.createStarted(id, b)
	syscall.Kill(e.pid, syscall.SIGKILL)
	waitGone(e.pid, 10*time.Second)
	cmd := exec.Command(shimBinary(t), "-namespace", e.ns, "-address", e.addr, "-id", id, "-bundle", b, "delete")
	cmd.Dir = b
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("delete: %v: %s", err, stderr.String())
	}
	var d taskapi.DeleteResponse
	if err := proto.Unmarshal(out, &d); err != nil {
		t.Fatalf("delete printed %q: %v", out, err)
	}
	if d.ExitStatus != 137 || d.Pid != pid || d.ExitedAt.AsTime().IsZero() {
		t.Errorf("delete response %v", &d)
	}
	if !waitGone(int(pid), 10*time.Second) {
		t.Errorf("container init %d still running", pid)
	}
	if _, err := os.Stat(strings.TrimPrefix(e.address, "unix://")); err == nil {
		t.Errorf("the dead shim's socket %s is left after delete", e.address)
	}
}

// Events published while containerd is away are delivered, in order,
// once it is back. Delivery is at least once (as with containerd's own
// shims): an event whose Forward was cut off by the outage may arrive
// twice, so repeats in a row are folded before the order is checked.
func TestEventsQueuedWhileContainerdAway(t *testing.T) {
	t.Parallel()
	id := testutil.ID(t)
	b := testutil.Bundle(t, args("sh", "-c", "exit 9"))
	e := startShim(t, b, id)
	e.create(id, b, nil)
	e.sink.waitFor(t, "create", hasTopic("/tasks/create", ""))
	e.sink.stop()
	if _, err := e.client.Start(ctx(t), &taskapi.StartRequest{ID: id}); err != nil {
		t.Fatal(err)
	}
	e.deleteTask(id)
	time.Sleep(300 * time.Millisecond)
	e.sink.listen(t)
	evs := e.sink.waitFor(t, "queued events", hasTopic("/tasks/delete", ""))
	var folded []string
	for _, f := range strings.Fields(topics(evs)) {
		if len(folded) == 0 || folded[len(folded)-1] != f {
			folded = append(folded, f)
		}
	}
	if got := strings.Join(folded, " "); got != "/tasks/create /tasks/start /tasks/exit("+id+") /tasks/delete" {
		t.Errorf("events: %s", topics(evs))
	}
}

// Containers of one pod (same sandbox id) share one shim.
func TestPodGroupSharesShim(t *testing.T) {
	t.Parallel()
	sandbox := testutil.ID(t)
	ann := func(s *specs.Spec) {
		s.Process.Args = []string{"sh", "-c", "exit 0"}
		s.Annotations = map[string]string{"io.kubernetes.cri.sandbox-id": sandbox}
	}
	b1 := testutil.Bundle(t, ann)
	b2 := testutil.Bundle(t, ann)
	e := startShim(t, b1, sandbox)
	id2 := testutil.ID(t)
	if addr := e.runStart(b2, id2, nil); addr != e.address {
		t.Fatalf("second container of the pod got %q, the pod's shim is %q", addr, e.address)
	}
	if b, _ := os.ReadFile(filepath.Join(b2, "address")); string(b) != e.address {
		t.Errorf("address file %q", b)
	}
	for _, x := range []struct{ id, b string }{{sandbox, b1}, {id2, b2}} {
		e.create(x.id, x.b, nil)
		if _, err := e.client.Start(ctx(t), &taskapi.StartRequest{ID: x.id}); err != nil {
			t.Fatal(err)
		}
	}
	e.deleteTask(id2)
	// Not yet: a task is left.
	e.client.Shutdown(ctx(t), &taskapi.ShutdownRequest{ID: id2})
	time.Sleep(100 * time.Millisecond)
	if _, alive := testutil.ProcStart(e.pid); !alive {
		t.Fatal("shim exited on Shutdown while a task was left")
	}
	e.deleteTask(sandbox)
}

// The rootfs comes as mounts in the request (as from a snapshotter or
// `ctr run --rootfs`): mounted on bundle/rootfs, unmounted on delete.
func TestRootfsMounts(t *testing.T) {
	t.Parallel()
	id := testutil.ID(t)
	src := testutil.Rootfs(t)
	os.WriteFile(filepath.Join(src, "marker"), []byte("from-mount\n"), 0o644)
	b := testutil.Bundle(t, args("cat", "/marker"))
	empty := filepath.Join(b, "rootfs")
	os.RemoveAll(empty)
	os.Mkdir(empty, 0o755)
	e := startShim(t, b, id)
	stdout, _ := e.create(id, b, func(r *taskapi.CreateTaskRequest) {
		r.Rootfs = []*apitypes.Mount{{Type: "bind", Source: src, Options: []string{"rbind", "ro"}}}
	})
	if _, err := e.client.Start(ctx(t), &taskapi.StartRequest{ID: id}); err != nil {
		t.Fatal(err)
	}
	if d := e.deleteTask(id); d.ExitStatus != 0 {
		t.Errorf("exit %d", d.ExitStatus)
	}
	if got := readFile(t, stdout); got != "from-mount\n" {
		t.Errorf("stdout %q", got)
	}
	if ents, _ := os.ReadDir(empty); len(ents) != 0 {
		t.Errorf("rootfs still mounted after delete: %d entries", len(ents))
	}
}

// containerd 2.3+ sends BootstrapParams and gets a BootstrapResult;
// `-info` answers with RuntimeInfo.
func TestBootstrapAndInfo(t *testing.T) {
	t.Parallel()
	id := testutil.ID(t)
	b := testutil.Bundle(t, nil)
	e := startShim(t, b, id)
	params := &bootstrap.BootstrapParams{InstanceID: id, Namespace: e.ns}
	in, _ := proto.Marshal(params)
	cmd := exec.Command(shimBinary(t), "-namespace", e.ns, "-address", e.addr, "-id", id, "start")
	cmd.Dir = b
	cmd.Env = append(os.Environ(), "TTRPC_ADDRESS="+e.sink.path)
	cmd.Stdin = bytes.NewReader(in)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatal(err)
	}
	var res bootstrap.BootstrapResult
	if err := proto.Unmarshal(out, &res); err != nil || res.Version != 3 || res.Address != e.address || res.Protocol != "ttrpc" {
		t.Fatalf("bootstrap result %v (%v) from %q", &res, err, out)
	}
	info := exec.Command(shimBinary(t), "-info")
	info.Stdin = bytes.NewReader(nil)
	out, err = info.Output()
	if err != nil {
		t.Fatal(err)
	}
	var ri apitypes.RuntimeInfo
	if err := proto.Unmarshal(out, &ri); err != nil || ri.Name != "io.containerd.mini.v2" || ri.Features == nil {
		t.Fatalf("runtime info %v (%v)", &ri, err)
	}
	var f struct {
		OCIVersionMax string `json:"ociVersionMax"`
	}
	if err := json.Unmarshal(ri.Features.Value, &f); err != nil || f.OCIVersionMax == "" {
		t.Errorf("features %s (%v)", ri.Features.Value, err)
	}
}

// A binary:// logger gets the process's stdout and stderr on fds 3 and 4,
// with the container's id and namespace in its environment.
func TestBinaryLogger(t *testing.T) {
	t.Parallel()
	id := testutil.ID(t)
	b := testutil.Bundle(t, args("sh", "-c", "echo to-out; echo to-err >&2"))
	e := startShim(t, b, id)
	logger := filepath.Join(e.dir, "logger.sh")
	out := filepath.Join(e.dir, "logged")
	script := "#!/bin/sh\n" +
		"# args: err PATH out PATH (sorted query keys)\n" +
		"echo \"$CONTAINER_NAMESPACE/$CONTAINER_ID\" > \"$4.env\"\n" +
		"exec 5>&-\n" +
		"cat <&3 > \"$4\" & cat <&4 > \"$2\" &\n" +
		"wait\n"
	if err := os.WriteFile(logger, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	uri := "binary://" + logger + "?out=" + out + ".out&err=" + out + ".err"
	e.create(id, b, func(r *taskapi.CreateTaskRequest) { r.Stdout, r.Stderr = uri, uri })
	if _, err := e.client.Start(ctx(t), &taskapi.StartRequest{ID: id}); err != nil {
		t.Fatal(err)
	}
	e.deleteTask(id)
	deadline := time.Now().Add(20 * time.Second)
	for {
		o, _ := os.ReadFile(out + ".out")
		er, _ := os.ReadFile(out + ".err")
		env, _ := os.ReadFile(out + ".out.env")
		if string(o) == "to-out\n" && string(er) == "to-err\n" && string(env) == e.ns+"/"+id+"\n" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("logger got stdout %q, stderr %q, env %q", o, er, env)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// An exec with a terminal, stdin from a fifo (as `ctr task exec -t`).
func TestExecTerminal(t *testing.T) {
	t.Parallel()
	id := testutil.ID(t)
	b := testutil.Bundle(t, args("sleep", "100"))
	e := startShim(t, b, id)
	e.createStarted(id, b)
	in := fifo(t, e.dir, "xin")
	out := filepath.Join(e.dir, "xout")
	p := &specs.Process{Args: []string{"sh", "-c", "tty; exit 6"}, Cwd: "/", Terminal: true}
	if _, err := e.client.Exec(ctx(t), &taskapi.ExecProcessRequest{ID: id, ExecID: "t1", Terminal: true, Stdin: in, Stdout: "file://" + out, Spec: processAny(t, p)}); err != nil {
		t.Fatal(err)
	}
	inW, err := os.OpenFile(in, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer inW.Close()
	if _, err := e.client.Start(ctx(t), &taskapi.StartRequest{ID: id, ExecID: "t1"}); err != nil {
		t.Fatal(err)
	}
	w, err := e.client.Wait(ctx(t), &taskapi.WaitRequest{ID: id, ExecID: "t1"})
	if err != nil || w.ExitStatus != 6 {
		t.Fatalf("wait: %v %v", w, err)
	}
	// The pty's output is copied on its own: it may land just after the
	// exit (as with containerd's runc shim; ctr waits for the fifo's EOF).
	deadline := time.Now().Add(10 * time.Second)
	for got := readFile(t, out); !strings.Contains(got, "/dev/pts/"); got = readFile(t, out) {
		if time.Now().After(deadline) {
			t.Fatalf("output %q", got)
		}
		time.Sleep(10 * time.Millisecond)
	}
	e.client.Kill(ctx(t), &taskapi.KillRequest{ID: id, Signal: 9})
	e.deleteTask(id)
}

// -debug: the shim logs at debug level to containerd's log fifo; -v
// prints the version.
func TestDebugLogAndVersion(t *testing.T) {
	t.Parallel()
	id := testutil.ID(t)
	b := testutil.Bundle(t, args("true"))
	e := startShim(t, b, id, "-debug")
	e.createStarted(id, b)
	e.deleteTask(id)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(e.logText(), "level=DEBUG") {
		if time.Now().After(deadline) {
			t.Fatalf("no debug line in the shim's log: %q", e.logText())
		}
		time.Sleep(20 * time.Millisecond)
	}
	out, err := exec.Command(shimBinary(t), "-v").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Version:") || !strings.Contains(string(out), "io.containerd.mini.v2") {
		t.Errorf("-v: %q, %v", out, err)
	}
}

// Output through a fifo whose reader is slow arrives whole and in order.
func TestSlowReaderGetsEveryByte(t *testing.T) {
	t.Parallel()
	id := testutil.ID(t)
	// 8 MiB of numbered lines: order and completeness show in the hash.
	b := testutil.Bundle(t, args("sh", "-c", "i=0; while [ $i -lt 200000 ]; do echo line-$i-0123456789abcdef0123456789; i=$((i+1)); done"))
	e := startShim(t, b, id)
	out, r := fifoReader(t, e.dir, "out")
	e.create(id, b, func(cr *taskapi.CreateTaskRequest) { cr.Stdout = out })
	if _, err := e.client.Start(ctx(t), &taskapi.StartRequest{ID: id}); err != nil {
		t.Fatal(err)
	}
	syscall.SetNonblock(int(r.Fd()), false)
	var got bytes.Buffer
	buf := make([]byte, 16<<10)
	for reads := 0; ; reads++ {
		n, err := r.Read(buf)
		got.Write(buf[:n])
		if err != nil {
			break
		}
		if reads%64 == 0 {
			time.Sleep(5 * time.Millisecond) // a reader slower than the writer
		}
	}
	e.deleteTask(id)
	var want bytes.Buffer
	for i := 0; i < 200000; i++ {
		want.WriteString("line-" + strconv.Itoa(i) + "-0123456789abcdef0123456789\n")
	}
	if !bytes.Equal(got.Bytes(), want.Bytes()) {
		t.Fatalf("got %d bytes, want %d; equal prefix %d", got.Len(), want.Len(), commonPrefix(got.Bytes(), want.Bytes()))
	}
}

// A client whose fifo open comes late (containerd's client opens the read
// end in a goroutine, which may run only after the process is gone) still
// gets the output: Create waits for a reader, as the runc shim's blocking
// open does, so the pipe is never freed with the output in it.
func TestOutputFifoReaderOpenedLate(t *testing.T) {
	t.Parallel()
	id := testutil.ID(t)
	b := testutil.Bundle(t, args("echo", "hello"))
	e := startShim(t, b, id)
	out := fifo(t, e.dir, "late")
	exited := make(chan error, 1)
	go func() {
		if _, err := e.client.Create(ctx(t), &taskapi.CreateTaskRequest{ID: id, Bundle: b, Stdout: out}); err != nil {
			exited <- err
			return
		}
		if _, err := e.client.Start(ctx(t), &taskapi.StartRequest{ID: id}); err != nil {
			exited <- err
			return
		}
		_, err := e.client.Wait(ctx(t), &taskapi.WaitRequest{ID: id})
		exited <- err
	}()
	// Without the wait, the task has run and exited by now.
	time.Sleep(300 * time.Millisecond)
	r, err := os.OpenFile(out, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := <-exited; err != nil {
		t.Fatal(err)
	}
	syscall.SetNonblock(int(r.Fd()), false)
	got, err := io.ReadAll(r)
	if err != nil || string(got) != "hello\n" {
		t.Errorf("stdout %q (%v), want hello", got, err)
	}
	e.deleteTask(id)
}

// refused tells the output of `cd / 2>&1; echo cd=$?` under a profile that
// refuses chdir.
func refused(out string) bool {
	return strings.Contains(out, "Operation not permitted") && strings.Contains(out, "cd=") && !strings.Contains(out, "cd=0")
}

// Every process of a container with a seccomp profile is filtered: the
// init and each exec (the shim compiles the profile once and shares the
// filter, and keeps the program in its root for the next shims).
func TestSeccompForInitAndExecs(t *testing.T) {
	t.Parallel()
	id := testutil.ID(t)
	eperm := uint(1)
	b := testutil.Bundle(t, func(s *specs.Spec) {
		s.Process.Args = []string{"sh", "-c", "cd / 2>&1; echo cd=$?; sleep 100"}
		s.Linux.Seccomp = &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Architectures: []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32},
			Syscalls: []specs.LinuxSyscall{{Names: []string{"chdir"}, Action: specs.ActErrno, ErrnoRet: &eperm}}}
	})
	e := startShim(t, b, id)
	stdout, _ := e.create(id, b, nil)
	if _, err := e.client.Start(ctx(t), &taskapi.StartRequest{ID: id}); err != nil {
		t.Fatal(err)
	}
	// The program is kept for the next shims of the namespace too.
	cache := filepath.Join("/run/containerd/runmini", e.ns, testutil.SeccompCacheDir)
	if ents, err := os.ReadDir(cache); err != nil || len(ents) != 1 {
		t.Errorf("%s holds %v (%v), want the one program", cache, ents, err)
	}
	for i := 0; i < 3; i++ {
		x := "s" + strconv.Itoa(i)
		out := filepath.Join(e.dir, x+".out")
		p := &specs.Process{Args: []string{"sh", "-c", "cd / 2>&1; echo cd=$?"}, Cwd: "/"}
		if _, err := e.client.Exec(ctx(t), &taskapi.ExecProcessRequest{ID: id, ExecID: x, Stdout: "file://" + out, Spec: processAny(t, p)}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.client.Start(ctx(t), &taskapi.StartRequest{ID: id, ExecID: x}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.client.Wait(ctx(t), &taskapi.WaitRequest{ID: id, ExecID: x}); err != nil {
			t.Fatal(err)
		}
		if got := readFile(t, out); !refused(got) {
			t.Errorf("exec %s: %q, want chdir refused with EPERM", x, got)
		}
	}
	if got := readFile(t, stdout); !refused(got) {
		t.Errorf("init: %q, want chdir refused with EPERM", got)
	}
	e.client.Kill(ctx(t), &taskapi.KillRequest{ID: id, Signal: 9})
	e.deleteTask(id)
}

func commonPrefix(a, b []byte) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

func fifo(t *testing.T, dir, name string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := unix.Mkfifo(p, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// fifoReader makes a fifo and opens its read end as containerd's client
// does, before Create (non-blocking, so the open does not wait for a
// writer; the caller makes it blocking to read).
func fifoReader(t *testing.T, dir, name string) (string, *os.File) {
	t.Helper()
	p := fifo(t, dir, name)
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return p, f
}

// runc's ShimCgroup option (CRI's sandbox cgroup): `start` puts the shim
// in that cgroup, in every hierarchy.
func TestShimCgroupOption(t *testing.T) {
	t.Parallel()
	id := testutil.ID(t)
	b := testutil.Bundle(t, args("true"))
	// The cgroup exists before, as the kubelet makes a pod's.
	cg := "/" + id + "-shim"
	var dirs []string
	t.Cleanup(func() {
		// The shim has exited by now (cleanups run last-in first-out), but
		// until its zombie is reaped (by pid 1, which here is slow) v1
		// refuses the rmdir.
		deadline := time.Now().Add(20 * time.Second)
		for _, d := range dirs {
			for os.Remove(d) != nil && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			if _, err := os.Stat(d); err == nil {
				t.Errorf("cgroup %s left behind", d)
			}
		}
	})
	ents, err := os.ReadDir("/sys/fs/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	for _, ent := range ents {
		if !ent.IsDir() { // symlinks such as cpu -> cpu,cpuacct are not dirs here
			continue
		}
		d := filepath.Join("/sys/fs/cgroup", ent.Name()) + cg
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatalf("make the pod's cgroup: %v", err)
		}
		dirs = append(dirs, d)
		if ent.Name() == "cpuset" {
			// A new v1 cpuset has no cpus or mems: inherit them, as a
			// kubelet's pod cgroup has them.
			for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
				v, _ := os.ReadFile(filepath.Join("/sys/fs/cgroup/cpuset", f))
				if err := os.WriteFile(filepath.Join(d, f), v, 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	e := &shimEnv{t: t, ns: testutil.ID(t), dir: t.TempDir(), log: &bytes.Buffer{}}
	e.addr = filepath.Join(e.dir, "containerd.sock")
	e.sink = newEventSink(t, e.dir)
	e.openLog(b)
	opts, err := anypb.New(&options.Options{ShimCgroup: cg})
	if err != nil {
		t.Fatal(err)
	}
	in, _ := proto.Marshal(opts)
	e.address = e.runStart(b, id, in)
	e.connect()
	resp, err := e.client.Connect(ctx(t), &taskapi.ConnectRequest{ID: id})
	if err != nil {
		t.Fatal(err)
	}
	e.pid = int(resp.ShimPid)
	t.Cleanup(e.cleanup)
	for _, d := range dirs {
		procs, _ := os.ReadFile(filepath.Join(d, "cgroup.procs"))
		if !strings.Contains("\n"+string(procs), "\n"+strconv.Itoa(e.pid)+"\n") {
			t.Errorf("shim %d not in %s: %q", e.pid, d, procs)
		}
	}
}

// A pod's shim lives through many tasks: each one's fds (pidfds, IO,
// console, OOM eventfd, cgroup handles) and goroutine-held files go with
// its Delete.
func TestNoFdLeakAcrossTasks(t *testing.T) {
	t.Parallel()
	sandbox := testutil.ID(t)
	ann := func(s *specs.Spec) {
		s.Process.Args = []string{"sleep", "100"}
		s.Annotations = map[string]string{"io.kubernetes.cri.sandbox-id": sandbox}
	}
	keep := testutil.Bundle(t, ann)
	e := startShim(t, keep, sandbox)
	e.createStarted(sandbox, keep)
	countFDs := func() int {
		ents, err := os.ReadDir("/proc/" + strconv.Itoa(e.pid) + "/fd")
		if err != nil {
			t.Fatal(err)
		}
		return len(ents)
	}
	cycle := func() {
		id := testutil.ID(t)
		b := testutil.Bundle(t, ann)
		e.runStart(b, id, nil)
		e.createStarted(id, b)
		p := &specs.Process{Args: []string{"true"}, Cwd: "/"}
		if _, err := e.client.Exec(ctx(t), &taskapi.ExecProcessRequest{ID: id, ExecID: "x", Spec: processAny(t, p)}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.client.Start(ctx(t), &taskapi.StartRequest{ID: id, ExecID: "x"}); err != nil {
			t.Fatal(err)
		}
		e.client.Wait(ctx(t), &taskapi.WaitRequest{ID: id, ExecID: "x"})
		e.client.Delete(ctx(t), &taskapi.DeleteRequest{ID: id, ExecID: "x"})
		// One exec left unstarted: a Delete of the task must answer its
		// waiters too.
		if _, err := e.client.Exec(ctx(t), &taskapi.ExecProcessRequest{ID: id, ExecID: "never", Spec: processAny(t, p)}); err != nil {
			t.Fatal(err)
		}
		waited := make(chan error, 1)
		go func() {
			_, err := e.client.Wait(ctx(t), &taskapi.WaitRequest{ID: id, ExecID: "never"})
			waited <- err
		}()
		e.client.Kill(ctx(t), &taskapi.KillRequest{ID: id, Signal: 9})
		e.deleteTask(id)
		select {
		case <-waited:
		case <-time.After(10 * time.Second):
			t.Fatal("Wait for an exec never started did not return after the task was deleted")
		}
	}
	cycle() // the first one opens what the shim keeps for good
	before := countFDs()
	for i := 0; i < 10; i++ {
		cycle()
	}
	// Exits and closes are asynchronous to the replies: give them a moment.
	deadline := time.Now().Add(10 * time.Second)
	for countFDs() > before && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if after := countFDs(); after > before {
		ents, _ := os.ReadDir("/proc/" + strconv.Itoa(e.pid) + "/fd")
		var links []string
		for _, ent := range ents {
			l, _ := os.Readlink("/proc/" + strconv.Itoa(e.pid) + "/fd/" + ent.Name())
			links = append(links, ent.Name()+"->"+l)
		}
		t.Errorf("shim fds: %d before 10 tasks, %d after: %v", before, after, links)
	}
	e.client.Kill(ctx(t), &taskapi.KillRequest{ID: sandbox, Signal: 9})
	e.deleteTask(sandbox)
}

// A terminal's output is all written out when Wait reports the exit:
// containerd 2.x's client stops reading as soon as it has the exit.
func TestTerminalOutputBeforeExit(t *testing.T) {
	t.Parallel()
	id := testutil.ID(t)
	const n = 30000
	b := testutil.Bundle(t, func(s *specs.Spec) {
		s.Process.Args = []string{"sh", "-c", "head -c " + strconv.Itoa(n) + " /dev/zero | tr '\\0' x; exit 4"}
		s.Process.Terminal = true
	})
	e := startShim(t, b, id)
	stdout, _ := e.create(id, b, func(r *taskapi.CreateTaskRequest) { r.Terminal = true; r.Stderr = "" })
	if _, err := e.client.Start(ctx(t), &taskapi.StartRequest{ID: id}); err != nil {
		t.Fatal(err)
	}
	w, err := e.client.Wait(ctx(t), &taskapi.WaitRequest{ID: id})
	if err != nil {
		t.Fatal(err)
	}
	// Read before Delete, which drains the copy too.
	if got := readFile(t, stdout); len(got) != n || w.ExitStatus != 4 {
		t.Errorf("at the exit (status %d): %d bytes of output, want %d", w.ExitStatus, len(got), n)
	}
	e.deleteTask(id)
}
