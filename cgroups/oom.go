package cgroups

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

const (
	// oomBuffer is how many events C holds before the watcher starts
	// keeping count itself (see oomRetry).
	oomBuffer = 16
	// oomRetry is how often the watcher retries handing over events a
	// full C did not take. The watcher never blocks on C: it is also
	// reading the kernel's notifications and must notice Close.
	oomRetry = 100 * time.Millisecond
	// oomRemovalLinger is how long a v1 watcher keeps reading after the
	// cgroup's directory is gone; see v1OOM.
	oomRemovalLinger = time.Second
)

// OOMWatcher reports the OOM kills in a container's cgroup.
//
// On cgroup v1 (and hybrid hosts, whose memory controller is v1) it
// registers an eventfd for memory.oom_control through
// cgroup.event_control; the kernel signals it each time the cgroup runs
// out of memory, just before the OOM killer picks a victim. That is what
// containerd's runc shim and runc report; one OOM normally ends in one
// kill, and with oom_kill_disable set it ends in none. On cgroup v2 it
// watches memory.events with inotify and reports every increase of
// oom_kill, so exactly one value per process killed.
//
// Both are served by one goroutine reading a non-blocking fd through the
// Go runtime's poller, so Close interrupts it without an extra wake-up fd.
type OOMWatcher struct {
	// C receives one value per OOM event. It is closed when the watcher
	// stops: after Close, after an unexpected read error (see Err), and
	// on v1 once the cgroup has been removed. On v2 the kernel sends no
	// inotify event when a cgroup's files go away (the watch keeps the
	// kernfs inode alive), so there C stays open until Close.
	C <-chan struct{}

	f         *os.File
	src       oomSource
	c         chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	err       error // set by run before done is closed
}

// oomSource turns what was read from the watcher's fd into a number of
// events.
type oomSource interface {
	// handle is given one read's bytes. gone reports that the cgroup
	// no longer exists.
	handle(b []byte) (events uint64, gone bool, err error)
	// lingerAfterGone is how long to keep reading once gone: a v1
	// eventfd gets one last signal for the removal itself.
	lingerAfterGone() time.Duration
}

// NewOOMWatcher starts watching mgr's cgroup for OOM kills; the cgroup must
// exist (after Create, or an existing container's from Load). OOMs that
// happened before the call are not reported. Close must be called to stop
// the goroutine and release the fd. A cgroup without the memory
// controller gives an error wrapping ErrControllerUnavailable.
func NewOOMWatcher(mgr Manager) (*OOMWatcher, error) {
	m, ok := mgr.(*manager)
	if !ok {
		return nil, fmt.Errorf("watch OOM events: unsupported Manager %T", mgr)
	}
	m.mu.Lock()
	var (
		f   *os.File
		src oomSource
		err error
	)
	switch dir, v1 := m.v1["memory"]; {
	case v1:
		f, src, err = m.watchV1(dir)
	case m.v2 != "":
		f, src, err = watchV2(m.v2)
	default:
		err = fmt.Errorf("%w: memory is not mounted under %s", ErrControllerUnavailable, m.root)
	}
	m.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("watch OOM events: %w", err)
	}
	c := make(chan struct{}, oomBuffer)
	w := &OOMWatcher{C: c, f: f, src: src, c: c, done: make(chan struct{})}
	go w.run()
	return w, nil
}

// Close stops the watcher, closes its fd and C, and returns once its
// goroutine has exited. Events not yet received from C are dropped. It
// may be called more than once and from any goroutine.
func (w *OOMWatcher) Close() error {
	w.closeOnce.Do(func() {
		// Closing the file wakes the goroutine's Read with
		// os.ErrClosed; the goroutine owns everything else.
		_ = w.f.Close()
	})
	<-w.done
	return nil
}

// Err returns, once C is closed, why the watcher stopped on its own
// after a failure; nil when it stopped for Close or because the cgroup
// was removed, and while it runs.
func (w *OOMWatcher) Err() error {
	select {
	case <-w.done:
		return w.err
	default:
		return nil
	}
}

func (w *OOMWatcher) run() {
	defer close(w.done)
	defer close(w.c)
	defer w.f.Close()
	var (
		pending uint64
		// goneAt is set once the cgroup has disappeared.
		goneAt time.Time
		// An inotify read must fit at least one event with a name;
		// eventfd reads are exactly 8 bytes.
		buf = make([]byte, unix.SizeofInotifyEvent+unix.NAME_MAX+1)
	)
	for {
	send:
		for pending > 0 {
			select {
			case w.c <- struct{}{}:
				pending--
			default:
				break send
			}
		}
		// Wake up to retry what C did not take, and at the end of the
		// linger after removal; otherwise wait for the kernel (or
		// Close) alone.
		var deadline time.Time
		now := time.Now()
		if pending > 0 {
			deadline = now.Add(oomRetry)
		}
		if !goneAt.IsZero() {
			end := goneAt.Add(w.src.lingerAfterGone())
			switch {
			case now.Before(end):
				if deadline.IsZero() || end.Before(deadline) {
					deadline = end
				}
			case pending == 0:
				return
			}
		}
		err := w.f.SetReadDeadline(deadline)
		var n int
		if err == nil {
			n, err = w.f.Read(buf)
		}
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			continue
		case errors.Is(err, os.ErrClosed):
			return
		case err != nil:
			w.fail(err)
			return
		}
		events, gone, err := w.src.handle(buf[:n])
		if err != nil {
			w.fail(err)
			return
		}
		pending += events
		if gone && goneAt.IsZero() {
			goneAt = time.Now()
		}
	}
}

func (w *OOMWatcher) fail(err error) {
	w.err = fmt.Errorf("watch OOM events: %w", err)
}

// v1OOM counts the signals of an eventfd registered for
// memory.oom_control.
//
// The kernel also signals the eventfd once when the cgroup is removed
// (the memcg going offline unregisters the event and signals it). The
// directory disappears before that signal is sent, so a read made while
// memory.oom_control still exists holds only OOMs. A read that finds it
// gone may or may not include the removal: one signal is subtracted
// then, and the watcher reads on for oomRemovalLinger: a signal arriving
// then is the removal, which shows the subtracted one was an OOM.
type v1OOM struct {
	oomControl string
	removed    bool // the one removal signal has been accounted for
}

func (m *manager) watchV1(dir string) (*os.File, oomSource, error) {
	if !exists(dir) {
		return nil, nil, fmt.Errorf("cgroup %s: %w", dir, fs.ErrNotExist)
	}
	efd, err := registerOOMEventFD(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("register OOM eventfd for %s: %w", dir, err)
	}
	return os.NewFile(uintptr(efd), "oom-eventfd:"+dir), &v1OOM{oomControl: filepath.Join(dir, "memory.oom_control")}, nil
}

// registerOOMEventFD asks v1's memory controller to signal an eventfd on
// every OOM in the cgroup dir (cgroup.event_control). The eventfd is
// non-blocking, for the runtime poller (and so for Close interrupting a
// Read).
func registerOOMEventFD(dir string) (int, error) {
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return -1, fmt.Errorf("eventfd: %w", err)
	}
	ctl, err := os.Open(filepath.Join(dir, "memory.oom_control"))
	if err != nil {
		unix.Close(efd)
		return -1, err
	}
	// The kernel keeps its own reference to memory.oom_control.
	defer ctl.Close()
	if err := (cgroupFiles{}).write(dir, "cgroup.event_control", fmt.Sprintf("%d %d", efd, ctl.Fd())); err != nil {
		unix.Close(efd)
		return -1, err
	}
	return efd, nil
}

func (s *v1OOM) handle(b []byte) (uint64, bool, error) {
	if len(b) != 8 {
		return 0, false, fmt.Errorf("short eventfd read: %d bytes", len(b))
	}
	n := binary.NativeEndian.Uint64(b)
	if _, err := os.Lstat(s.oomControl); err == nil || !os.IsNotExist(err) {
		return n, false, nil
	}
	if !s.removed {
		s.removed = true
		n--
	}
	return n, true, nil
}

func (s *v1OOM) lingerAfterGone() time.Duration { return oomRemovalLinger }

// v2OOM follows oom_kill in memory.events. The counter is hierarchical,
// so kills in child cgroups the container made are included. Reading the
// counter rather than counting notifications makes coalesced or
// rate-limited inotify events harmless.
type v2OOM struct {
	events string
	last   uint64
}

func watchV2(dir string) (_ *os.File, _ oomSource, retErr error) {
	events := filepath.Join(dir, "memory.events")
	if _, err := os.Stat(events); err != nil {
		if os.IsNotExist(err) && exists(dir) {
			return nil, nil, fmt.Errorf("%w: memory is not enabled in cgroup %s", ErrControllerUnavailable, dir)
		}
		return nil, nil, fmt.Errorf("cgroup %s: %w", dir, err)
	}
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, nil, fmt.Errorf("inotify_init1: %w", err)
	}
	f := os.NewFile(uintptr(fd), "oom-inotify:"+dir)
	defer func() {
		if retErr != nil {
			_ = f.Close()
		}
	}()
	if _, err := unix.InotifyAddWatch(fd, events, unix.IN_MODIFY); err != nil {
		return nil, nil, fmt.Errorf("inotify watch %s: %w", events, err)
	}
	// The baseline is read after the watch is in place: a kill between
	// the two shows up as a notification with a higher count.
	s := &v2OOM{events: events}
	n, ok, err := s.read()
	if err != nil {
		return nil, nil, err
	}
	if ok {
		s.last = n
	}
	return f, s, nil
}

// read returns memory.events' oom_kill; ok is false when the key is
// missing, which a stand-in file caught between truncate and write shows.
func (s *v2OOM) read() (n uint64, ok bool, err error) {
	kv, err := cgroupFiles{}.readKeyed(filepath.Dir(s.events), filepath.Base(s.events))
	if err != nil {
		return 0, false, err
	}
	v, ok := kv["oom_kill"]
	if !ok {
		return 0, false, nil
	}
	n, err = strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("parse oom_kill in %s: %w", s.events, err)
	}
	return n, true, nil
}

func (s *v2OOM) handle(b []byte) (uint64, bool, error) {
	// The events themselves only say that something changed; IN_IGNORED
	// (the watch dropped with the file) means the cgroup is gone.
	for len(b) >= unix.SizeofInotifyEvent {
		mask := binary.NativeEndian.Uint32(b[4:8])
		nameLen := binary.NativeEndian.Uint32(b[12:16])
		if mask&unix.IN_IGNORED != 0 {
			return 0, true, nil
		}
		b = b[min(len(b), unix.SizeofInotifyEvent+int(nameLen)):]
	}
	n, ok, err := s.read()
	if err != nil {
		// A removed cgroup's files fail with ENOENT, or ENODEV when
		// opened just before the removal.
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENODEV) {
			return 0, true, nil
		}
		return 0, false, err
	}
	if !ok {
		return 0, false, nil
	}
	var events uint64
	if n > s.last {
		events = n - s.last
	}
	s.last = n
	return events, false, nil
}

func (s *v2OOM) lingerAfterGone() time.Duration { return 0 }
