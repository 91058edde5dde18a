//go:build linux && (amd64 || arm64)

package segments

import _ "unsafe" // for go:linkname

const supported = true

// madvise is the raw system call, without package syscall (see the
// package comment); it never blocks in the scheduler's sense.
//
//go:noescape
func madvise(addr, n, advice uintptr) (errno uintptr)

// getAuxv is the runtime's copy of the auxiliary vector (the runtime
// exports it to golang.org/x/sys for this kind of use).
//
//go:linkname getAuxv runtime.getAuxv
func getAuxv() []uintptr
