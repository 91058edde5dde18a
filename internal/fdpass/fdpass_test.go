package fdpass

import (
	"errors"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// send connects to path and sends fds with text, as a container's init
// sends its pty master, on another goroutine; the error arrives on the
// channel.
func send(path, text string, fds ...int) <-chan error {
	done := make(chan error, 1)
	go func() {
		c, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			done <- err
			return
		}
		defer unix.Close(c)
		if err := unix.Connect(c, &unix.SockaddrUnix{Name: path}); err != nil {
			done <- err
			return
		}
		done <- unix.Sendmsg(c, []byte(text), unix.UnixRights(fds...), nil, 0)
	}()
	return done
}

func TestAcceptReceivesFirstFD(t *testing.T) {
	s, err := Listen("fdpass-test-")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	sent := send(s.Path(), "/dev/pts/9", int(w.Fd()), int(r.Fd()))
	f, err := s.Accept(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Name() != "/dev/pts/9" {
		t.Errorf("name %q", f.Name())
	}
	if fl, _ := unix.FcntlInt(f.Fd(), unix.F_GETFD, 0); fl&unix.FD_CLOEXEC == 0 {
		t.Error("received fd is not close-on-exec")
	}
	// It is the pipe's write end: what goes in comes out of r.
	if _, err := f.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	if _, err := r.Read(b); err != nil || b[0] != 'x' {
		t.Fatalf("read %q %v", b, err)
	}
}

func TestAcceptTimesOut(t *testing.T) {
	s, err := Listen("fdpass-test-")
	if err != nil {
		t.Fatal(err)
	}
	dir := s.dir
	if _, err := s.Accept(50 * time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("no connection: %v", err)
	}
	s.Close()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("directory left after Close: %v", err)
	}
}

func TestAcceptWithoutFD(t *testing.T) {
	s, err := Listen("fdpass-test-")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	sent := send(s.Path(), "text only")
	if _, err := s.Accept(5 * time.Second); err == nil {
		t.Fatal("a message without a descriptor was accepted")
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
}
