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
// It maps its code, read-only data and the first 256 KiB of heap it is to
// use up front (internal/prefault/segments, or the nsenter constructor, and
// initheap: `run` ~0.7 ms faster for the heap alone).
package main

import (
	"fmt"
	"os"

	// Maps the heap it is about to use in one go (see the package).
	_ "github.com/runmini/runmini/internal/prefault/initheap"
	"github.com/runmini/runmini/libcontainer/initproc"
)

func main() {
	if !initproc.IsInit() {
		fmt.Fprintln(os.Stderr, "runmini-init: not for use by hand; runmini runs it")
		os.Exit(2)
	}
	initproc.Init()
}
