package shim

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// stdioConfig is what a Create or Exec request says about a process's IO.
type stdioConfig struct {
	Stdin, Stdout, Stderr string
	Terminal              bool
}

// stdio is a process's IO as the shim set it up.
//
// containerd's fifos are handed to the process itself: its stdout and
// stderr are the fifos (opened read-write, so that a reader going away
// makes the writer block rather than die of SIGPIPE, and the reader still
// sees EOF when the process and its children have exited), and its stdin
// is the fifo's read end. No byte passes through the shim. The shim keeps
// a write end of the stdin fifo open so that the process does not see EOF
// before containerd has even opened the fifo; CloseIO closes it.
//
// A terminal process talks to a pty instead; the shim copies between the
// pty master and the fifos (with splice: every fifo is a pipe).
type stdio struct {
	cfg stdioConfig
	// What the process gets; for a terminal, only what is not the pty.
	in, out, errw *os.File
	// stdinHold keeps the stdin fifo from reporting EOF until CloseIO.
	stdinHold *os.File
	// Terminal mode: the fifo ends the copies use.
	ttyIn, ttyOut *os.File
	console       *os.File
	copies        sync.WaitGroup
	logger        *exec.Cmd
	loggerDone    chan error
	closeOnce     sync.Once
	mu            sync.Mutex
}

// openStdio opens the process side of cfg. ns and id name the container
// for a binary:// logger.
func openStdio(cfg stdioConfig, ns, id string) (_ *stdio, retErr error) {
	s := &stdio{cfg: cfg}
	defer func() {
		if retErr != nil {
			s.close()
		}
	}()
	if cfg.Stdin != "" {
		if err := s.openStdin(cfg.Stdin); err != nil {
			return nil, err
		}
	}
	if u, ok := loggerURI(cfg.Stdout); ok {
		if err := s.startLogger(u, ns, id); err != nil {
			return nil, err
		}
	} else {
		var err error
		if s.out, err = openOutput(cfg.Stdout); err != nil {
			return nil, fmt.Errorf("open stdout %s: %w", cfg.Stdout, err)
		}
		if !cfg.Terminal {
			if s.errw, err = openOutput(cfg.Stderr); err != nil {
				return nil, fmt.Errorf("open stderr %s: %w", cfg.Stderr, err)
			}
		}
	}
	if cfg.Terminal {
		// The process gets the pty; the fifos are ours to copy to.
		s.ttyIn, s.in = s.in, nil
		s.ttyOut, s.out = s.out, nil
	}
	return s, nil
}

func (s *stdio) openStdin(uri string) error {
	path, scheme := splitIOURI(uri)
	if scheme != "" {
		return fmt.Errorf("stdin %q: only a fifo can be stdin", uri)
	}
	// O_RDWR never blocks on a fifo: hold a writer first, then the reader
	// cannot see EOF until both we and containerd have closed ours.
	hold, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("open stdin %s: %w", path, err)
	}
	s.stdinHold = hold
	in, err := os.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return fmt.Errorf("open stdin %s: %w", path, err)
	}
	s.in = in
	return nil
}

// loggerURI tells a binary:// (or binary-v2://) logging URI.
func loggerURI(p string) (*url.URL, bool) {
	u, err := url.Parse(p)
	if err != nil || (u.Scheme != "binary" && u.Scheme != "binary-v2") {
		return nil, false
	}
	return u, true
}

// openOutput opens a stdout or stderr target: nothing (/dev/null), a
// fifo path, or a file:// URI (appended to, created with its directory).
func openOutput(p string) (*os.File, error) {
	if p == "" {
		return os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	}
	path, scheme := splitIOURI(p)
	switch scheme {
	case "":
		return openOutputFifo(path, fifoReaderTimeout)
	case "file":
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return nil, err
		}
		return os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	}
	return nil, fmt.Errorf("unsupported IO URI scheme %q (fifo paths, file:// and binary:// are)", scheme)
}

// fifoReaderTimeout bounds how long Create and Exec wait for the client's
// end of an output fifo.
const fifoReaderTimeout = 30 * time.Second

// openOutputFifo opens an output fifo for the process, once the client has
// its end: containerd's client opens the read side before it asks for the
// task, but in a goroutine of its own, and that open can still be on its
// way when the process has run and exited; the process's end closing
// then frees the pipe with the output in it, and the client, on Delete,
// gives up on the open with nothing read. containerd's runc shim gets
// this rendezvous from a blocking write-only open. Here a non-blocking one
// is retried while it fails with ENXIO (no reader: one blocked in its
// open counts), and the process's end (read-write, so it gets no SIGPIPE
// if the client goes away) is opened before that probe is closed, so the
// client never sees a moment without a writer, which it would read as
// EOF. A path that is not a fifo is opened as it is.
func openOutputFifo(path string, timeout time.Duration) (*os.File, error) {
	probe, err := waitForFifoReader(path, timeout)
	if err != nil {
		return nil, err
	}
	if probe >= 0 {
		defer unix.Close(probe)
	}
	return os.OpenFile(path, os.O_RDWR, 0)
}

// waitForFifoReader returns a write-only fd of the fifo at path once it
// has a reader, or -1 when path is not a fifo.
func waitForFifoReader(path string, timeout time.Duration) (int, error) {
	deadline := time.Now().Add(timeout)
	delay := 50 * time.Microsecond
	for {
		fd, err := unix.Open(path, unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		switch {
		case err == nil:
			var st unix.Stat_t
			if unix.Fstat(fd, &st) == nil && st.Mode&unix.S_IFMT != unix.S_IFIFO {
				unix.Close(fd)
				return -1, nil
			}
			return fd, nil
		case err == unix.EISDIR:
			return -1, nil // let the read-write open report it
		case err != unix.ENXIO:
			return -1, &os.PathError{Op: "open", Path: path, Err: err}
		case time.Now().After(deadline):
			return -1, fmt.Errorf("no reader opened fifo %s within %v: the client must open its read end before it creates the task or exec", path, timeout)
		}
		time.Sleep(delay)
		delay = min(2*delay, 10*time.Millisecond)
	}
}

// splitIOURI splits an IO target as containerd names it: a fifo's path
// (plain or fifo://) gives scheme "", anything else its URI scheme.
func splitIOURI(p string) (path, scheme string) {
	u, err := url.Parse(p)
	if err != nil || u.Scheme == "" {
		return p, ""
	}
	if u.Scheme == "fifo" {
		return u.Path, ""
	}
	return u.Path, u.Scheme
}

// startLogger runs a containerd logging binary: it reads the process's
// stdout and stderr from fds 3 and 4 and signals readiness on fd 5.
func (s *stdio) startLogger(u *url.URL, ns, id string) (retErr error) {
	outR, outW, err := os.Pipe()
	if err != nil {
		return err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return err
	}
	readyR, readyW, err := os.Pipe()
	if err != nil {
		for _, f := range []*os.File{outR, outW, errR, errW} {
			f.Close()
		}
		return err
	}
	defer outR.Close()
	defer errR.Close()
	defer readyR.Close()
	s.out, s.errw = outW, errW
	q := u.Query()
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var args []string
	for _, k := range keys {
		args = append(args, k)
		if v := q.Get(k); v != "" {
			args = append(args, v)
		}
	}
	cmd := exec.Command(u.Path, args...)
	cmd.Env = []string{"CONTAINER_ID=" + id, "CONTAINER_NAMESPACE=" + ns}
	cmd.ExtraFiles = []*os.File{outR, errR, readyW}
	err = cmd.Start()
	readyW.Close()
	if err != nil {
		return fmt.Errorf("start logging binary %s: %w", u.Path, err)
	}
	s.logger = cmd
	s.loggerDone = make(chan error, 1)
	// Waited for from the start: the reaper leaves os/exec's children alone.
	go func() { s.loggerDone <- cmd.Wait() }()
	// A logger that never gets ready must not hang the Create.
	readyR.SetReadDeadline(time.Now().Add(loggerReadyTimeout))
	b := make([]byte, 1)
	n, err := readyR.Read(b)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		cmd.Process.Kill()
		return fmt.Errorf("logging binary %s did not close or write its ready fd (3rd extra fd) within %v", u.Path, loggerReadyTimeout)
	}
	if err != nil && err != io.EOF {
		cmd.Process.Kill()
		return fmt.Errorf("logging binary %s: %w", u.Path, err)
	}
	if u.Scheme == "binary-v2" && n == 0 {
		cmd.Process.Kill()
		return fmt.Errorf("logging binary %s exited before it was ready", u.Path)
	}
	return nil
}

// loggerReadyTimeout bounds the wait for a logging binary's readiness.
const loggerReadyTimeout = 30 * time.Second

// processFiles is what the process gets as fds 0, 1, 2 (nil: /dev/null
// from the runtime; a terminal process gets the pty instead).
func (s *stdio) processFiles() (in, out, errw *os.File) { return s.in, s.out, s.errw }

// started drops the shim's copies of the process's ends: the process has
// its own now, and the readers' EOF must not wait for the shim.
func (s *stdio) started() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range []**os.File{&s.in, &s.out, &s.errw} {
		if *f != nil {
			(*f).Close()
			*f = nil
		}
	}
}

// attachConsole starts the copies between the pty master and the fifos.
func (s *stdio) attachConsole(console *os.File) {
	s.mu.Lock()
	s.console = console
	s.mu.Unlock()
	if s.ttyIn != nil {
		go func() {
			spliceCopy(console, s.ttyIn)
			// EOF on stdin: a terminal learns it from the EOF character.
			console.Write([]byte{4})
		}()
	}
	if s.ttyOut != nil {
		s.copies.Add(1)
		go func() {
			defer s.copies.Done()
			// Ends with EIO once every slave fd is closed: the process
			// and everything that inherited the pty have exited.
			spliceCopy(s.ttyOut, console)
			s.ttyOut.Close()
		}()
	}
}

// resize sets the pty's window size.
func (s *stdio) resize(width, height uint32) error {
	s.mu.Lock()
	c := s.console
	s.mu.Unlock()
	if c == nil {
		return errors.New("process has no terminal")
	}
	return unix.IoctlSetWinsize(int(c.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Col: uint16(width), Row: uint16(height)})
}

// closeStdin is CloseIO: the process (or the pty copy) sees EOF once
// containerd's writer is closed too.
func (s *stdio) closeStdin() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stdinHold != nil {
		s.stdinHold.Close()
		s.stdinHold = nil
	}
}

// drain waits up to d for the output copies of a terminal to finish: a
// Delete should not cut off what the process wrote last, but a background
// process that keeps the pty open must not block it forever either.
func (s *stdio) drain(d time.Duration) {
	done := make(chan struct{})
	go func() {
		s.copies.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(d):
	}
}

// exited is called once the process has exited: the output copies drain
// and everything the shim holds is closed.
func (s *stdio) exited() {
	s.copies.Wait()
	s.close()
}

func (s *stdio) close() {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		for _, f := range []*os.File{s.in, s.out, s.errw, s.stdinHold, s.ttyIn, s.console} {
			if f != nil {
				f.Close()
			}
		}
		s.mu.Unlock()
		if s.logger != nil {
			// The logger exits on EOF of its pipes.
			go func() {
				if err := <-s.loggerDone; err != nil {
					slog.Warn("logging binary", "path", s.logger.Path, "err", err)
				}
			}()
		}
	})
}

// spliceCopy copies src to dst until EOF or an error, with splice when
// the kernel allows it for this pair (one side must be a pipe), else with
// read/write.
func spliceCopy(dst, src *os.File) {
	for {
		n, err := unix.Splice(int(src.Fd()), nil, int(dst.Fd()), nil, 1<<20, unix.SPLICE_F_MOVE)
		switch {
		case err == unix.EINTR || err == unix.EAGAIN:
			continue
		case err == unix.EINVAL:
			io.Copy(dst, src)
			return
		case err != nil || n == 0:
			return
		}
	}
}
