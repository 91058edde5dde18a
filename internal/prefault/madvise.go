//go:build linux && (amd64 || arm64)

package prefault

import _ "unsafe" // for go:linkname

// Supported tells whether this build can populate at all.
const Supported = true

// madvise is the raw system call, without package syscall (see Populate);
// it never blocks in the scheduler's sense.
//
//go:noescape
func madvise(addr, n, advice uintptr) (errno uintptr)

// Auxv is the runtime's copy of the auxiliary vector (the runtime exports
// it to golang.org/x/sys for this kind of use).
//
//go:linkname Auxv runtime.getAuxv
func Auxv() []uintptr
