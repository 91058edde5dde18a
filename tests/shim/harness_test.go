// Package shim tests containerd-shim-mini-v2 by playing containerd's part
// exactly: each test runs the shim's `start` with a bundle as cwd and
// TTRPC_ADDRESS pointing at an events service of its own, talks the task
// API to the socket `start` printed, and records every event the shim
// publishes, so that codes, event order and cleanup can be checked to the
// letter. The end-to-end tests with real containerd are in tests/containerd.
package shim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	eventstypes "github.com/containerd/containerd/api/events"
	taskapi "github.com/containerd/containerd/api/runtime/task/v2"
	eventsapi "github.com/containerd/containerd/api/services/ttrpc/events/v1"
	"github.com/containerd/ttrpc"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/runmini/runmini/tests/testutil"
)

// shimBinary is bin/containerd-shim-mini-v2 of this checkout (or
// RUNMINI_SHIM).
func shimBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("RUNMINI_SHIM"); p != "" {
		return p
	}
	rt, err := testutil.RuntimePath()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(filepath.Dir(rt), "containerd-shim-mini-v2")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("shim not built (make builds bin/containerd-shim-mini-v2): %v", err)
	}
	return p
}

// event is one envelope as the shim forwarded it.
type event struct {
	Topic     string
	Namespace string
	Event     any
}

// eventSink is containerd's ttrpc Events service, recording.
type eventSink struct {
	mu     sync.Mutex
	events []event
	added  chan struct{}
	path   string
	srv    *ttrpc.Server
}

func (s *eventSink) Forward(ctx context.Context, r *eventsapi.ForwardRequest) (*emptypb.Empty, error) {
	v, err := typeurl.UnmarshalAny(r.Envelope.Event)
	if err != nil {
		return nil, err
	}
	if r.Envelope.Timestamp == nil || r.Envelope.Timestamp.AsTime().IsZero() {
		return nil, errors.New("event without timestamp")
	}
	s.mu.Lock()
	s.events = append(s.events, event{Topic: r.Envelope.Topic, Namespace: r.Envelope.Namespace, Event: v})
	s.mu.Unlock()
	select {
	case s.added <- struct{}{}:
	default:
	}
	return &emptypb.Empty{}, nil
}

func newEventSink(t testing.TB, dir string) *eventSink {
	t.Helper()
	s := &eventSink{added: make(chan struct{}, 1), path: filepath.Join(dir, "events.sock")}
	s.listen(t)
	return s
}

func (s *eventSink) listen(t testing.TB) {
	t.Helper()
	srv, err := ttrpc.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	eventsapi.RegisterTTRPCEventsService(srv, s)
	ln, err := net.Listen("unix", s.path)
	if err != nil {
		t.Fatal(err)
	}
	s.srv = srv
	go srv.Serve(context.Background(), ln)
	t.Cleanup(func() { srv.Close() })
}

// stop makes containerd unreachable (as when it restarts).
func (s *eventSink) stop() {
	s.srv.Close()
	os.Remove(s.path)
}

func (s *eventSink) snapshot() []event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]event(nil), s.events...)
}

// waitFor waits until match is true of the events seen so far.
func (s *eventSink) waitFor(t testing.TB, what string, match func([]event) bool) []event {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		evs := s.snapshot()
		if match(evs) {
			return evs
		}
		select {
		case <-s.added:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatalf("timed out waiting for %s; events: %s", what, topics(evs))
		}
	}
}

func topics(evs []event) string {
	var out []string
	for _, e := range evs {
		out = append(out, e.Topic+idOf(e.Event))
	}
	return strings.Join(out, " ")
}

func idOf(v any) string {
	switch e := v.(type) {
	case *eventstypes.TaskExit:
		return "(" + e.ID + ")"
	case *eventstypes.TaskExecAdded:
		return "(" + e.ExecID + ")"
	case *eventstypes.TaskExecStarted:
		return "(" + e.ExecID + ")"
	}
	return ""
}

func hasTopic(topic, id string) func([]event) bool {
	return func(evs []event) bool {
		for _, e := range evs {
			if e.Topic == topic && (id == "" || strings.Contains(idOf(e.Event), "("+id+")")) {
				return true
			}
		}
		return false
	}
}

// shimEnv is one shim as containerd would have it.
type shimEnv struct {
	t       testing.TB
	ns      string
	addr    string // the (fake) containerd address the socket is derived from
	dir     string
	sink    *eventSink
	address string // unix://... as start printed it
	client  taskapi.TTRPCTaskService
	conn    *ttrpc.Client
	pid     int
	log     *bytes.Buffer
	logMu   sync.Mutex
	flags   []string // more flags for start, such as -debug
}

// logText is what the shim wrote to its log fifo so far.
func (e *shimEnv) logText() string {
	e.logMu.Lock()
	defer e.logMu.Unlock()
	return e.log.String()
}

// startShim runs `start` for id with bundle as cwd, as containerd does.
func startShim(t testing.TB, bundle, id string, flags ...string) *shimEnv {
	t.Helper()
	dir, err := os.MkdirTemp("", "shimt-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	e := &shimEnv{t: t, ns: testutil.ID(t), addr: filepath.Join(dir, "containerd.sock"), dir: dir, log: &bytes.Buffer{}, flags: flags}
	e.sink = newEventSink(t, dir)
	e.openLog(bundle)
	out := e.runStart(bundle, id, nil)
	e.address = out
	e.connect()
	resp, err := e.client.Connect(context.Background(), &taskapi.ConnectRequest{ID: id})
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	e.pid = int(resp.ShimPid)
	t.Cleanup(e.cleanup)
	return e
}

// runStart runs `start` and returns what it printed (trimmed).
func (e *shimEnv) runStart(bundle, id string, stdin []byte) string {
	e.t.Helper()
	args := append([]string{"-namespace", e.ns, "-address", e.addr, "-publish-binary", "/bin/false", "-id", id}, e.flags...)
	cmd := exec.Command(shimBinary(e.t), append(args, "start")...)
	cmd.Dir = bundle
	cmd.Env = append(os.Environ(), "TTRPC_ADDRESS="+e.sink.path)
	cmd.Stdin = bytes.NewReader(stdin)
	done := make(chan struct{})
	var out []byte
	var err error
	go func() { out, err = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		e.t.Fatal("start did not return (does the shim keep start's pipes open?)")
	}
	if err != nil {
		e.t.Fatalf("start: %v: %s", err, out)
	}
	return strings.TrimSpace(string(out))
}

// openLog plays containerd's part of the log fifo: created in the bundle
// and read before start runs.
func (e *shimEnv) openLog(bundle string) {
	p := filepath.Join(bundle, "log")
	if err := unix.Mkfifo(p, 0o600); err != nil && !errors.Is(err, unix.EEXIST) {
		e.t.Fatal(err)
	}
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		e.t.Fatal(err)
	}
	go func() {
		b := make([]byte, 4096)
		for {
			n, err := f.Read(b)
			e.logMu.Lock()
			e.log.Write(b[:n])
			e.logMu.Unlock()
			if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
				if err == io.EOF {
					time.Sleep(20 * time.Millisecond)
					continue
				}
				return
			}
		}
	}()
	e.t.Cleanup(func() { f.Close() })
}

func (e *shimEnv) connect() {
	e.t.Helper()
	conn, err := net.Dial("unix", strings.TrimPrefix(e.address, "unix://"))
	if err != nil {
		e.t.Fatalf("dial shim at %q: %v", e.address, err)
	}
	e.conn = ttrpc.NewClient(conn)
	e.client = taskapi.NewTTRPCTaskClient(e.conn)
}

// cleanup shuts the shim down the way containerd does once every task is
// deleted, and fails the test if the shim or its socket outlive that.
func (e *shimEnv) cleanup() {
	t := e.t
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e.client.Shutdown(ctx, &taskapi.ShutdownRequest{ID: "x"})
	e.conn.Close()
	if !waitGone(e.pid, 10*time.Second) {
		t.Errorf("shim %d still running after Shutdown with no task left", e.pid)
		syscall.Kill(e.pid, syscall.SIGKILL)
	}
	if _, err := os.Stat(strings.TrimPrefix(e.address, "unix://")); err == nil {
		t.Errorf("shim socket %s left behind", e.address)
		os.Remove(strings.TrimPrefix(e.address, "unix://"))
	}
	root := filepath.Join("/run/containerd/runmini", e.ns)
	// The shim keeps compiled seccomp programs beside the containers.
	os.RemoveAll(filepath.Join(root, testutil.SeccompCacheDir))
	if ents, _ := os.ReadDir(root); len(ents) > 0 {
		t.Errorf("container state left in %s: %v", root, ents)
		// Reported; now gone too (its init, cgroups and state), so that
		// one broken test leaves nothing for the next.
		if rt, err := testutil.RuntimePath(); err == nil {
			for _, ent := range ents {
				if out, err := exec.Command(rt, "--root", root, "delete", "--force", ent.Name()).CombinedOutput(); err != nil {
					t.Errorf("delete --force %s: %v: %s", ent.Name(), err, out)
				}
			}
		}
	}
	os.Remove(root)
	if t.Failed() {
		e.logMu.Lock()
		t.Logf("shim log:\n%s", e.log.String())
		e.logMu.Unlock()
		t.Logf("events: %s", topics(e.sink.snapshot()))
	}
}

func waitGone(pid int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if _, alive := testutil.ProcStart(pid); !alive {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

// create creates task id from bundle with stdout and stderr in files
// (file:// URIs) and returns their paths.
func (e *shimEnv) create(id, bundle string, mod func(*taskapi.CreateTaskRequest)) (stdout, stderr string) {
	e.t.Helper()
	stdout, stderr = filepath.Join(e.dir, id+".out"), filepath.Join(e.dir, id+".err")
	r := &taskapi.CreateTaskRequest{ID: id, Bundle: bundle, Stdout: "file://" + stdout, Stderr: "file://" + stderr}
	if mod != nil {
		mod(r)
	}
	if _, err := e.client.Create(ctx(e.t), r); err != nil {
		e.t.Fatalf("create %s: %v", id, err)
	}
	return stdout, stderr
}

// createStarted creates task id (as create does) and starts it; it returns
// the init's pid.
func (e *shimEnv) createStarted(id, bundle string) uint32 {
	e.t.Helper()
	e.create(id, bundle, nil)
	resp, err := e.client.Start(ctx(e.t), &taskapi.StartRequest{ID: id})
	if err != nil {
		e.t.Fatalf("start %s: %v", id, err)
	}
	return resp.Pid
}

// deleteTask waits for id to exit and deletes it.
func (e *shimEnv) deleteTask(id string) *taskapi.DeleteResponse {
	e.t.Helper()
	if _, err := e.client.Wait(ctx(e.t), &taskapi.WaitRequest{ID: id}); err != nil {
		e.t.Fatalf("wait %s: %v", id, err)
	}
	resp, err := e.client.Delete(ctx(e.t), &taskapi.DeleteRequest{ID: id})
	if err != nil {
		e.t.Fatalf("delete %s: %v", id, err)
	}
	return resp
}

func readFile(t testing.TB, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// processAny is an exec's process spec as containerd sends it: JSON under
// runtime-spec's type URL.
func processAny(t testing.TB, p *specs.Process) *anypb.Any {
	t.Helper()
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return &anypb.Any{TypeUrl: "types.containerd.io/opencontainers/runtime-spec/1/Process", Value: b}
}
