// Package prefault maps the pages the Go heap is about to use in one
// madvise call (Heap), for short-lived processes on a container's start
// path: the runmini CLI (package cliheap) and a container's init
// (initheap); and offers that call (Populate) to package segments.
// Such a process touches hundreds of KiB to a couple of MiB of fresh heap
// (one or two pages per size class, the decoded spec, the runtime's own
// structures); taken one page fault at a time that is a few hundred
// traps, and a trap costs ~12-20 µs on a VM, while MADV_POPULATE_WRITE
// maps them at ~1 µs a page. A page mapped and never used costs its ~1 µs
// and its unmapping at exit or exec, hence a window per program.
//
// HugeHeap instead maps the next 2 MiB of heap as one transparent huge page
// (where the kernel has them, even in "madvise" mode): one fault's worth
// of work for all the heap the runmini CLI uses, one page table entry to
// clear at exit, and no shadow page table entries by the hundred on a VM.
//
// Heap must run as early as possible: from the init of a package that
// imports nothing else, which Go (initialising packages in dependency
// order, then by import path) runs before the standard library's package
// inits. This package imports only unsafe. Long-running programs (the
// shim) must not use it: the populated pages stay resident.
package prefault

import "unsafe"

const (
	chunkSize  = 4 << 20 // pallocChunkBytes: the runtime maps the heap in these
	hugeSize   = 2 << 20 // a transparent huge page (PMD) on amd64 and 4 KiB-page arm64
	pageSize   = 4096
	heapPage   = 8192          // the runtime's page
	cacheBlock = 64 * heapPage // a P's page cache
)

var anchor, filler []byte

// populated is the range Heap or HugeHeap asked the kernel to map, and the
// page the heap was to hand out next, for the tests.
var populated struct{ start, end, next uintptr }

// Heap maps the after bytes of heap the runtime is to hand out next and
// the before bytes below them (spans already handed out, whose later
// objects are still untouched).
func Heap(after, before uintptr) {
	// A page-sized object comes straight from the page allocator, which
	// hands out the lowest free address: what the heap uses next starts
	// here and grows upwards.
	start := nextPage()
	// The pages just below are spans already handed out whose later
	// objects are still untouched; a call of its own, as the chunk below
	// may be unmapped.
	chunk := start &^ (chunkSize - 1)
	lo := max(start-min(start, before), chunk)
	Populate(lo, start, true)

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
	if Populate(start, end, true) {
		populated.start, populated.end = start, end
	}
}

// HugeHeap maps the 2 MiB of heap from the next 2 MiB boundary, where the
// heap then goes on, as one transparent huge page. The pages skipped up
// to the boundary cost address space, not memory (see Heap). The skip
// often lands a page cache block or two past the boundary (another P's
// cache holds the block at it); the heap still has after bytes of the
// huge page ahead then. Where it has not, or the kernel has no
// transparent huge pages, it is Heap(after, before). With transparent
// huge pages "never" the 2 MiB are mapped page by page, a little more
// than Heap's window.
func HugeHeap(after, before uintptr) {
	start := nextPage()
	huge := (start + hugeSize - 1) &^ (hugeSize - 1)
	if start != huge {
		start = skipTo(start, huge)
	}
	if start >= huge && start+after <= huge+hugeSize &&
		madvise(huge, hugeSize, madvHugepage) == 0 && Populate(huge, huge+hugeSize, true) {
		populated.start, populated.end, populated.next = huge, huge+hugeSize, start
		return
	}
	Heap(after, before)
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
