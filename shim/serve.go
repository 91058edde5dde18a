package shim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"time"

	"github.com/containerd/ttrpc"
	"golang.org/x/sys/unix"

	"github.com/runmini/runmini/reaper"
)

// Serve is the long-running shim: it serves the task API on the socket
// `start` handed over until containerd shuts it down.
func Serve(ctx context.Context, o *Opts) error {
	// The log fifo containerd reads is our stderr. When containerd goes
	// away, a write must fail with EPIPE, not kill the shim.
	signal.Ignore(unix.SIGPIPE)
	if err := openLog(); err != nil {
		return err
	}
	level := slog.LevelInfo
	if o.Debug {
		level = slog.LevelDebug
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})).With("runtime", Name, "namespace", o.Namespace))

	fd, err := strconv.Atoi(os.Getenv(listenFDEnv))
	if err != nil {
		return fmt.Errorf("no listening socket: %s is not set (the shim is started by `start`)", listenFDEnv)
	}
	os.Unsetenv(listenFDEnv)
	lf := os.NewFile(uintptr(fd), "shim-socket")
	ln, err := net.FileListener(lf)
	lf.Close()
	if err != nil {
		return fmt.Errorf("shim socket: %w", err)
	}
	sock := ln.Addr().String()

	r, err := reaper.Start()
	if err != nil {
		return err
	}
	defer r.Stop()

	srv, err := ttrpc.NewServer(ttrpc.WithServerHandshaker(ttrpc.UnixSocketRequireSameUser()))
	if err != nil {
		return err
	}
	pub := newPublisher(o.TTRPCAddress, o.Namespace)
	var once sync.Once
	stopped := make(chan struct{})
	stop := func() {
		once.Do(func() {
			// Let the last replies and events get out first.
			pub.close(5 * time.Second)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			srv.Shutdown(ctx)
			close(stopped)
		})
	}
	registerTaskService(srv, newService(o.Namespace, pub, r, stop))

	// As containerd's shims do: a termination signal stops serving; the
	// containers keep running and containerd's `delete` cleans up.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, unix.SIGTERM, unix.SIGINT)
	go func() {
		s := <-sigs
		slog.Info("stopping on signal", "signal", s)
		stop()
	}()

	slog.Debug("serving", "socket", sock, "pid", os.Getpid())
	err = srv.Serve(ctx, ln)
	if err != nil && !errors.Is(err, ttrpc.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	<-stopped
	os.Remove(sock)
	return nil
}

// openLog makes containerd's log fifo in the bundle our stderr. containerd
// opened the read end before running start, so the open does not block;
// without a reader (started by hand) the shim logs nowhere.
func openLog() error {
	fd, err := unix.Open("log", unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	defer unix.Close(fd)
	// Blocking again: a slow reader must slow us down, not lose lines.
	if err := unix.SetNonblock(fd, false); err != nil {
		return err
	}
	return unix.Dup3(fd, 2, 0)
}
