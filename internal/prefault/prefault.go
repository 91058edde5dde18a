// Package prefault maps the pages the Go heap is about to use in one
// madvise call, for the runmini CLI, a short-lived process on a
// container's start path. It touches a megabyte or two of fresh heap (one
// or two pages per size class, the decoded spec, the runtime's own
// structures); taken one page fault at a time that is a few hundred
// traps, and a trap costs ~12-20 µs on a VM, while MADV_POPULATE_WRITE
// maps them at ~1 µs a page. It also maps the binary's own segments (see
// package segments). The container init uses too little heap for it to
// pay (see cmd/runmini-init).
//
// Importing the package is all it takes. It imports only unsafe and
// segments, which needs nothing, so Go (which initialises packages in
// dependency order, then by import path) runs it before the standard
// library's package inits. Long-running programs (the shim) must not
// import it: the populated pages stay resident.
package prefault

import (
	"unsafe"

	"github.com/runmini/runmini/internal/prefault/segments"
)

// after and before cover most of the heap a `runmini run` or a container
// init goes on to use; a page populated and never used costs ~1 µs, a page
// missed ~12. Measured on `runmini run` (median of 80, interleaved):
// nothing 40.7 ms, 768+384 KiB 38.9, 1024+512 38.5, 2048+1024 40.1.
const (
	after      = 1 << 20
	before     = 512 << 10
	chunkSize  = 4 << 20 // pallocChunkBytes: the runtime maps the heap in these
	pageSize   = 4096
	heapPage   = 8192          // the runtime's page
	cacheBlock = 64 * heapPage // a P's page cache
)

var anchor, filler []byte

// populated is the range init asked the kernel to map, for the tests.
var populated struct{ start, end uintptr }

func init() {
	// A page-sized object comes straight from the page allocator, which
	// hands out the lowest free address: what the heap uses next starts
	// here and grows upwards.
	start := nextPage()
	// The pages just below are spans already handed out whose later
	// objects are still untouched; a call of its own, as the chunk below
	// may be unmapped.
	chunk := start &^ (chunkSize - 1)
	lo := max(start-min(start, before), chunk)
	segments.Populate(lo, start, true)

	// The runtime maps the heap read-write in 4 MiB chunks as it grows,
	// and the kernel refuses to populate past the mapped part. Since Go
	// 1.26 the heap starts at a random page of its first chunk, so that
	// chunk often has less room left than the heap is about to use; then
	// the heap skips the rest of it and starts on the next one, which is
	// populated instead. The skipped pages are allocated and dropped,
	// never written (fresh pages need no zeroing): they cost address
	// space, not memory.
	if end := chunk + chunkSize; end-start < after {
		start = skipTo(start, end)
	}
	end := min(start+after, start&^(chunkSize-1)+chunkSize)
	if segments.Populate(start, end, true) {
		populated.start, populated.end = start, end
	}
}

// skipTo allocates the free pages of the heap up to end and returns the
// page the heap hands out next, at or past end if it went as planned.
//
// Small spans come from the running P's cache of a 64-page block, the
// rest from the page allocator, lowest address first. So one large object
// takes what is free between the block and end, then page-sized objects
// drain the block; the next page comes from a block the runtime maps
// anew past end.
func skipTo(start, end uintptr) uintptr {
	block := (start + cacheBlock) &^ (cacheBlock - 1)
	if block < end {
		filler = make([]byte, end-block)
		filler = nil
	}
	for range cacheBlock / heapPage {
		if start = nextPage(); start >= end || start < block-cacheBlock {
			break
		}
	}
	return start
}

// nextPage returns the page the heap hands out next.
func nextPage() uintptr {
	anchor = make([]byte, heapPage)
	p := uintptr(unsafe.Pointer(unsafe.SliceData(anchor))) &^ (pageSize - 1)
	anchor = nil
	return p
}
