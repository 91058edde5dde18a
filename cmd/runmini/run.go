package main

import (
	"fmt"
	"os"
	"os/signal"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/runmini/runmini/libcontainer"
	"golang.org/x/sys/unix"
)

var runCommand = &cli.Command{
	Name:      "run",
	Usage:     "create and run a container",
	ArgsUsage: "<container-id>",
	Flags: append([]cli.Flag{
		&cli.BoolFlag{Name: "detach", Aliases: []string{"d"}, Usage: "detach from the container's process"},
		&cli.BoolFlag{Name: "keep", Usage: "do not delete the container after it exits"},
	}, createFlags...),
	Action: func(c *cli.Context) error {
		if err := checkArgs(c, 1, true); err != nil {
			return err
		}
		detach := c.Bool("detach")
		fwd, err := foregroundOrEarly(detach)
		if err != nil {
			return err
		}
		ctr, proc, tty, err := createContainer(c, !detach, &runStart{beforeCreate: fwd.wait, beforeStart: fwd.waitAll})
		if err != nil {
			return err
		}
		if tty != nil {
			defer tty.close()
			if err := tty.attach(); err != nil {
				ctr.Delete(c.Context, true)
				return err
			}
		}
		fwd.waitAll()
		if err := ctr.Start(c.Context); err != nil {
			ctr.Delete(c.Context, true)
			return err
		}
		if detach {
			return nil
		}
		ws := waitForeground(proc, fwd.sigs, tty)
		if !c.Bool("keep") {
			if err := ctr.Delete(c.Context, true); err != nil {
				return err
			}
		}
		return exitStatus(ws)
	},
}

// foreground prepares to wait for a process we are about to start, unless
// it is to be detached (nil, nothing to wait for): the process may
// become our grandchild (joining a pid namespace makes nsenter fork), so we
// become a subreaper, and every signal is caught, to be forwarded to it.
//
// Catching a signal costs a handshake with the Go runtime's signal-mask
// thread, ~40 µs a signal on a VM (~2.5 ms of CPU for all of them), so the
// catch runs on another goroutine while the caller reads and checks the
// spec, in two steps. First the signals that would end runmini uncaught
// (fatal): the caller waits for them (wait) before it creates anything,
// so such a signal either kills runmini before there is anything to clean
// up or is forwarded. Then all the others, which the Go runtime ignores
// until they are caught: the caller waits for them (waitAll) before it
// starts the process, so from then on every signal is forwarded; one that
// comes while the container is being built may be dropped, as runc drops
// them before its own catch. The signals stay caught until runmini exits,
// which it does right after (undoing the catch would cost as much again).
func foreground(detach bool) (*forwarder, error) {
	if detach {
		return nil, nil
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return nil, fmt.Errorf("become subreaper: %w", err)
	}
	f := &forwarder{sigs: make(chan os.Signal, 32), fatalCaught: make(chan struct{}), allCaught: make(chan struct{})}
	go func() {
		signal.Notify(f.sigs, fatalSignals...)
		close(f.fatalCaught)
		signal.Notify(f.sigs)
		close(f.allCaught)
	}()
	return f, nil
}

// early is the forwarder startEarly started, nil if it did not.
var early *forwarder

// startEarly starts the signal catch of a `run` or `exec` that cannot be
// detached as soon as main knows the command, before urfave/cli parses
// anything: the catch, thread handshakes with the Go runtime, then has
// ~0.8 ms more to finish before the container is made. Only when no
// argument can mean --detach (any -d, --detach or -d=... form, even one
// that belongs to the container's command); the action starts it
// otherwise, once the flags are parsed.
func startEarly(app *cli.App, args []string) {
	cmd := commandArgs(app, args)
	if len(cmd) > 0 && (cmd[0] == "run" || cmd[0] == "exec") && !mayDetach(cmd[1:]) {
		early, _ = foreground(false) // on error the action tries again
	}
}

// commandArgs returns the command and what follows it in args (os.Args
// without the program), past the app's global flags, as urfave/cli will
// find them; nil when that is not plain (an unknown flag, "--").
func commandArgs(app *cli.App, args []string) []string {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "-" || !strings.HasPrefix(a, "-") {
			return args[i:]
		}
		name, _, inline := strings.Cut(strings.TrimLeft(a, "-"), "=")
		f := globalFlag(app, name)
		if f == nil {
			return nil
		}
		if v, ok := f.(cli.DocGenerationFlag); ok && v.TakesValue() && !inline {
			i++ // its value
		}
	}
	return nil
}

func globalFlag(app *cli.App, name string) cli.Flag {
	for _, f := range app.Flags {
		for _, n := range f.Names() {
			if n == name {
				return f
			}
		}
	}
	return nil
}

// mayDetach tells whether any of a command's arguments could set --detach.
func mayDetach(args []string) bool {
	for _, a := range args {
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if strings.HasPrefix(a, "-") && (name == "d" || name == "detach") {
			return true
		}
	}
	return false
}

// foregroundOrEarly is foreground, or the forwarder startEarly started.
func foregroundOrEarly(detach bool) (*forwarder, error) {
	if early != nil && !detach {
		return early, nil
	}
	return foreground(detach)
}

// fatalSignals are the signals that end a Go program that has not caught them:
// those the runtime lets kill it (SIGPIPE when a write to stdout or stderr
// finds the reader gone), and those that crash it when another process
// sends them (catching these costs no handshake).
var fatalSignals = []os.Signal{
	unix.SIGHUP, unix.SIGINT, unix.SIGQUIT, unix.SIGABRT, unix.SIGTERM, unix.SIGPIPE,
	unix.SIGILL, unix.SIGTRAP, unix.SIGBUS, unix.SIGFPE, unix.SIGSEGV, unix.SIGSTKFLT, unix.SIGSYS,
}

// forwarder holds the signals caught for a foreground process.
type forwarder struct {
	sigs        chan os.Signal
	fatalCaught chan struct{}
	allCaught   chan struct{}
}

// wait returns once every signal that could kill runmini is caught. A nil
// forwarder (detached) has nothing to wait for.
func (f *forwarder) wait() {
	if f != nil {
		<-f.fatalCaught
	}
}

// waitAll returns once every signal is caught.
func (f *forwarder) waitAll() {
	if f != nil {
		<-f.allCaught
	}
}

// waitForeground waits for a process the caller started in the foreground,
// forwarding the signals it receives (SIGWINCH resizes the tty instead).
func waitForeground(proc *libcontainer.Process, sigs chan os.Signal, tty *ttyProxy) unix.WaitStatus {
	done := make(chan unix.WaitStatus, 1)
	go func() {
		ws, _ := proc.Wait()
		done <- ws
	}()
	for {
		select {
		case s := <-sigs:
			sig := s.(unix.Signal)
			if sig == unix.SIGCHLD || sig == unix.SIGURG || sig == unix.SIGPIPE {
				continue
			}
			if sig == unix.SIGWINCH && tty != nil {
				tty.resize()
				continue
			}
			unix.Kill(proc.Pid, sig)
		case ws := <-done:
			return ws
		}
	}
}

// exitStatus is the container's status as a shell reports it: the exit
// code, or 128+signal.
func exitStatus(ws unix.WaitStatus) error {
	code := ws.ExitStatus()
	if ws.Signaled() {
		code = 128 + int(ws.Signal())
	}
	if code == 0 {
		return nil
	}
	return exitError(code)
}
