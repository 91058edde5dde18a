// Command runmini-init is the first process of every container runmini
// creates, and of every exec. runmini runs it (through a read-only private
// bind, see libcontainer's sealedExe) instead of re-executing itself: it
// links only what the init needs, so the Go runtime start that every
// container pays touches a fraction of the pages runmini's own would. The
// protocol is libcontainer's; the two must come from the same build.
//
// Built twice: without cgo as runmini-init (no libc, no cgo start-up: the
// common case), and with cgo as runmini-init-nsenter, which links the
// nsenter constructor (nsenter_cgo.go) for the inits that join namespaces
// (every exec, and containers joining a pod's namespaces).
//
// It maps its code and read-only data up front (internal/prefault/segments:
// ~50 page faults fewer). It does not prefault its heap (internal/prefault):
// the init touches ~500 KiB of heap, less than the range prefault maps,
// and every page it maps must also be unmapped when the init executes the
// container's process (measured: `run` 0.4-1.1 ms faster without it;
// runmini keeps it, 1.1 ms slower without).
package main

import (
	"fmt"
	"os"

	// Maps the binary's code and read-only data in one go (see the package).
	_ "github.com/runmini/runmini/internal/prefault/segments"
	"github.com/runmini/runmini/libcontainer/initproc"
)

func main() {
	if !initproc.IsInit() {
		fmt.Fprintln(os.Stderr, "runmini-init: not for use by hand; runmini runs it")
		os.Exit(2)
	}
	initproc.Init()
}
