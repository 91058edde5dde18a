// Package prefault maps the pages the Go heap is about to use in one
// madvise call, for the runmini CLI, a short-lived process on a
// container's start path. It touches a megabyte or two of fresh heap (one
// or two pages per size class, the decoded spec, the runtime's own
// structures); taken one page fault at a time that is a few hundred
// traps, and a trap costs ~12-20 µs on a VM, while MADV_POPULATE_WRITE
// maps them at ~1 µs a page. The container init uses too little heap for
// it to pay (see cmd/runmini-init).
//
// Importing the package is all it takes: it imports nothing but syscall
// and unsafe, so Go (which initialises packages in dependency order, then
// by import path) runs it before the heavier package inits. Long-running
// programs (the shim) must not import it: the populated pages stay
// resident.
package prefault

import (
	"syscall"
	"unsafe"
)

// after and before cover most of the heap a `runmini run` or a container
// init goes on to use; a page populated and never used costs ~1 µs, a page
// missed ~12. Measured on `runmini run` (median of 80, interleaved):
// nothing 40.7 ms, 768+384 KiB 38.9, 1024+512 38.5, 2048+1024 40.1.
const (
	after     = 1 << 20
	before    = 512 << 10
	chunkSize = 4 << 20 // pallocChunkBytes: the runtime maps the heap in these
	pageSize  = 4096
)

// madvPopulateWrite is MADV_POPULATE_WRITE (Linux 5.14); older kernels
// answer EINVAL and the pages fault in one by one as before.
const madvPopulateWrite = 23

var anchor *[8192]byte

// populated is the range init asked the kernel to map, for the test.
var populated struct{ start, end uintptr }

func init() {
	// A page-sized object comes straight from the page allocator, which
	// hands out the lowest free address: what the heap uses next starts
	// here and grows upwards.
	anchor = new([8192]byte)
	start := uintptr(unsafe.Pointer(anchor)) &^ (pageSize - 1)
	anchor = nil
	// The runtime maps the heap read-write in 4 MiB chunks as it grows;
	// the range stops at the end of the chunk (the kernel would stop at
	// the unmapped rest, and fail the call).
	chunk := start &^ (chunkSize - 1)
	end := min(start+after, chunk+chunkSize)
	if populate(start, end-start) == nil {
		populated.start, populated.end = start, end
	}
	// The pages just below are spans already handed out whose later
	// objects are still untouched; a call of its own, as the chunk below
	// may be unmapped.
	lo := max(start-min(start, before), chunk)
	populate(lo, start-lo)
}

// populate maps [start, start+n) with one madvise call.
func populate(start, n uintptr) error {
	if _, _, errno := syscall.Syscall(syscall.SYS_MADVISE, start, n, madvPopulateWrite); errno != 0 {
		return errno
	}
	return nil
}
