// Package segments maps the running binary's code and read-only data
// with one madvise call each (prefault.Populate) as soon as the program
// starts; importing it is all it takes.
//
// A short-lived Go program on a container's start path (runmini, a
// container's init) touches a few hundred pages of its binary, and each
// first touch is a page fault: on a VM with shadow page tables ~20 µs for
// a file page, even with the kernel's fault-around mapping 16 pages a
// fault. MADV_POPULATE_READ maps all 5 MiB of runmini's code and read-only
// data from the page cache in 0.1-0.3 ms.
//
// The writable segment (data and bss) is left alone: by the time the
// first package init runs, the runtime has read most of its pages, so
// populating them for writing is a copy-on-write with a TLB flush on every
// thread of the process per page, which measured slower (`runmini run`
// ~1 ms) than the ~20 faults it saves.
//
// The package imports only unsafe and prefault, which imports only unsafe
// and makes its system call in assembly: Go initialises packages in
// dependency order, then by import path, so such a package runs first,
// right after the runtime (importing syscall made it run after much of the
// standard library, and ~40 of those faults had already happened).
// Long-running programs (the shim) must not import it: the populated pages
// stay resident. runmini-init-nsenter does not either: its C constructor
// populates the same segments before the Go runtime starts.
package segments

import (
	"unsafe"

	"github.com/runmini/runmini/internal/prefault"
)

const (
	atPhdr  = 3 // auxv keys
	atPhent = 4
	atPhnum = 5

	ptLoad = 1 // program header types and flags
	ptPhdr = 6
	pfW    = 2
)

// elfPhdr is Elf64_Phdr.
type elfPhdr struct {
	Type, Flags                             uint32
	Off, Vaddr, Paddr, Filesz, Memsz, Align uint64
}

// Populated counts the segments init mapped, for the tests.
var Populated int

func init() {
	if !prefault.Supported {
		return
	}
	var phdr, phent, phnum uintptr
	av := prefault.Auxv()
	for i := 0; i+1 < len(av); i += 2 {
		switch av[i] {
		case atPhdr:
			phdr = av[i+1]
		case atPhent:
			phent = av[i+1]
		case atPhnum:
			phnum = av[i+1]
		}
	}
	if phdr == 0 || phent != unsafe.Sizeof(elfPhdr{}) || phnum == 0 || phnum > 64 {
		return
	}
	// The headers are in the mapped image, not in Go's heap: the address
	// is converted without a uintptr-to-pointer conversion vet would flag.
	phs := unsafe.Slice(*(**elfPhdr)(unsafe.Pointer(&phdr)), phnum)
	// The load bias: zero for the static executables runmini builds, the
	// load address of a position-independent one.
	var bias uintptr
	for i := range phs {
		if phs[i].Type == ptPhdr {
			bias = phdr - uintptr(phs[i].Vaddr)
		}
	}
	for i := range phs {
		p := &phs[i]
		if p.Type != ptLoad || p.Memsz == 0 || p.Flags&pfW != 0 {
			continue
		}
		start := bias + uintptr(p.Vaddr)
		if prefault.Populate(start, start+uintptr(p.Memsz), false) {
			Populated++
		}
	}
}
