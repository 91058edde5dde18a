// Package catch catches every signal for a `run` or `exec` in the
// foreground, to be forwarded to the container's process.
//
// Catching a signal costs a handshake with the Go runtime's signal-mask
// thread, ~40 µs a signal on a VM (~2.5 ms of CPU for all of them), so the
// catch runs on a goroutine of its own, in two steps. First the signals
// that would end runmini uncaught (fatal): the caller waits for them
// (WaitFatal) before it creates anything, so such a signal either kills
// runmini before there is anything to clean up or is forwarded. Then all
// the others, which the Go runtime ignores until they are caught: the
// caller waits for them (WaitAll) before it starts the process, so from
// then on every signal is forwarded; one that comes while the container is
// being built may be dropped, as runc drops them before its own catch.
// The signals stay caught until runmini exits, which it does right after
// (undoing the catch would cost as much again).
//
// The catch starts from this package's init when the command line asks
// for a foreground run or exec (Early): the package depends on little
// more than os/signal, so Go initialises it ~3.5 ms before main, and the
// catch is done long before anything is created.
package catch

import (
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// Catch holds the signals caught for a foreground process.
type Catch struct {
	Sigs        chan os.Signal
	fatalCaught chan struct{}
	allCaught   chan struct{}
}

// fatalSignals are the signals that end a Go program that has not caught
// them: those the runtime lets kill it (SIGPIPE when a write to stdout or
// stderr finds the reader gone), and those that crash it when another
// process sends them.
var fatalSignals = []os.Signal{
	syscall.SIGHUP, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGABRT, syscall.SIGTERM, syscall.SIGPIPE,
	syscall.SIGILL, syscall.SIGTRAP, syscall.SIGBUS, syscall.SIGFPE, syscall.SIGSEGV, syscall.SIGSTKFLT, syscall.SIGSYS,
}

// Start starts catching every signal.
func Start() *Catch {
	c := &Catch{Sigs: make(chan os.Signal, 32), fatalCaught: make(chan struct{}), allCaught: make(chan struct{})}
	go func() {
		signal.Notify(c.Sigs, fatalSignals...)
		close(c.fatalCaught)
		signal.Notify(c.Sigs)
		close(c.allCaught)
	}()
	return c
}

// WaitFatal returns once every signal that could kill runmini is caught. A
// nil Catch (detached) has nothing to wait for.
func (c *Catch) WaitFatal() {
	if c != nil {
		<-c.fatalCaught
	}
}

// WaitAll returns once every signal is caught.
func (c *Catch) WaitAll() {
	if c != nil {
		<-c.allCaught
	}
}

// GlobalFlags are runmini's global flags, by name, true for those that
// take a value; cmd/runmini's tests hold them equal to the app's.
var GlobalFlags = map[string]bool{
	"root": true, "log": true, "log-format": true, "debug": false,
	"systemd-cgroup": false, "criu": true, "rootless": true,
}

var early *Catch

func init() {
	if args := CommandArgs(os.Args[1:]); len(args) > 0 && (args[0] == "run" || args[0] == "exec") && !MayDetach(args[1:]) {
		early = Start()
	}
}

// Early is the catch this package's init started, or nil: the command line
// did not ask for run or exec, or some argument might mean --detach.
func Early() *Catch { return early }

// CommandArgs returns the command and what follows it in args (os.Args
// without the program), past the global flags, as urfave/cli will find
// them; nil when that is not plain (an unknown flag, "--").
func CommandArgs(args []string) []string {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "-" || !strings.HasPrefix(a, "-") {
			return args[i:]
		}
		name, _, inline := strings.Cut(strings.TrimLeft(a, "-"), "=")
		takesValue, ok := GlobalFlags[name]
		if !ok {
			return nil
		}
		if takesValue && !inline {
			i++ // its value
		}
	}
	return nil
}

// MayDetach tells whether any of a command's arguments could set --detach.
func MayDetach(args []string) bool {
	for _, a := range args {
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if strings.HasPrefix(a, "-") && (name == "d" || name == "detach") {
			return true
		}
	}
	return false
}
