package catch

import (
	"os"
	"syscall"
	"testing"
	"time"
)

func TestStart(t *testing.T) {
	if Early() != nil {
		t.Fatalf("the test binary's command line %q started a catch", os.Args)
	}
	var none *Catch
	none.WaitFatal()
	none.WaitAll()

	c := Start()
	c.WaitFatal()
	c.WaitAll()
	// Once caught, a signal that would end the process, and one the
	// runtime would ignore, both arrive on Sigs.
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGUSR1} {
		if err := syscall.Kill(os.Getpid(), sig); err != nil {
			t.Fatal(err)
		}
		deadline := time.After(10 * time.Second)
	wait:
		for {
			select {
			case got := <-c.Sigs:
				// The runtime preempts goroutines with SIGURG, which
				// a catch of everything sees too.
				if got == sig {
					break wait
				}
				if got != syscall.SIGURG {
					t.Fatalf("sent %v, caught %v", sig, got)
				}
			case <-deadline:
				t.Fatalf("%v not caught", sig)
			}
		}
	}
}
