package main

import (
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"syscall"
	"testing"
)

// benchTB is the testing.TB that the harness of tests/testutil takes
// (StartContainerd, CtrMust...), for a program that is not a test: it logs
// to stderr, and its cleanups run, last registered first, when the bench
// ends, fails or is interrupted (SIGINT, SIGTERM), so that no task,
// container, daemon or temporary directory outlives it.
type benchTB struct {
	// testing.TB is embedded, nil, only for the interface's unexported
	// method: the methods below are all the harness calls, anything else
	// panics.
	testing.TB

	name string

	mu       sync.Mutex
	cleanups []func()
	failed   bool
	cleaning bool
	// interrupted: a signal ended the bench. The measurements it cut
	// short fail as expected, quietly, and are no failure (which would
	// also have the harness dump containerd's log).
	interrupted bool
	exitOnce    sync.Once
}

// newBenchTB returns a benchTB named name (the harness derives containerd
// namespaces from it) that cleans up and exits on SIGINT and SIGTERM.
func newBenchTB(name string) *benchTB {
	t := &benchTB{name: name}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sigs
		t.mu.Lock()
		t.interrupted = true
		t.mu.Unlock()
		fmt.Fprintf(os.Stderr, "bench: %v: cleaning up\n", s)
		// Signals that come while cleaning up are caught and dropped: a
		// second ^C must not cut the cleanups short.
		t.exit(130)
	}()
	return t
}

// exit runs the cleanups and exits with code, or 1 when something failed.
// Whoever comes first does it; everyone else waits for the exit.
func (t *benchTB) exit(code int) {
	t.exitOnce.Do(func() {
		t.runCleanups()
		if code == 0 && t.Failed() {
			code = 1
		}
		os.Exit(code)
	})
	select {}
}

// runCleanups runs each cleanup in a goroutine of its own, so that one
// calling Fatal (which ends its goroutine during cleanup, see FailNow) ends
// only itself, as in package testing. A cleanup registered meanwhile runs
// too.
func (t *benchTB) runCleanups() {
	t.mu.Lock()
	t.cleaning = true
	t.mu.Unlock()
	for {
		t.mu.Lock()
		if len(t.cleanups) == 0 {
			t.mu.Unlock()
			return
		}
		f := t.cleanups[len(t.cleanups)-1]
		t.cleanups = t.cleanups[:len(t.cleanups)-1]
		t.mu.Unlock()
		done := make(chan struct{})
		go func() {
			defer close(done)
			f()
		}()
		<-done
	}
}

func (t *benchTB) Cleanup(f func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cleanups = append(t.cleanups, f)
}

func (t *benchTB) Helper()      {}
func (t *benchTB) Name() string { return t.name }

func (t *benchTB) Failed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.failed && !t.interrupted
}

func (t *benchTB) Fail() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.failed = true
}

// FailNow ends the bench through its cleanups. During the cleanups (a
// cleanup, or a measurement that fails because the cleanups pulled its
// containers away) it ends only the calling goroutine: whoever is cleaning
// up exits when done.
func (t *benchTB) FailNow() {
	t.Fail()
	t.mu.Lock()
	cleaning := t.cleaning
	t.mu.Unlock()
	if cleaning {
		runtime.Goexit()
	}
	t.exit(1)
}

func (t *benchTB) Log(args ...any) { fmt.Fprintln(os.Stderr, append([]any{"bench:"}, args...)...) }
func (t *benchTB) Logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}
func (t *benchTB) Error(args ...any)                 { t.Log(args...); t.Fail() }
func (t *benchTB) Errorf(format string, args ...any) { t.Logf(format, args...); t.Fail() }
func (t *benchTB) Fatal(args ...any)                 { t.Fatalf("%s", fmt.Sprint(args...)) }

func (t *benchTB) Fatalf(format string, args ...any) {
	t.mu.Lock()
	quiet := t.interrupted
	t.mu.Unlock()
	if !quiet {
		t.Logf(format, args...)
	}
	t.FailNow()
}

// A skip, which the harness asks for when something it needs is missing,
// means the bench cannot measure: it fails.
func (t *benchTB) Skip(args ...any)                 { t.Fatal(args...) }
func (t *benchTB) Skipf(format string, args ...any) { t.Fatalf(format, args...) }
func (t *benchTB) SkipNow()                         { t.FailNow() }
func (t *benchTB) Skipped() bool                    { return false }

// TempDir returns a new directory, removed by the cleanups.
func (t *benchTB) TempDir() string {
	dir, err := os.MkdirTemp("", "runmini-bench.")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}
