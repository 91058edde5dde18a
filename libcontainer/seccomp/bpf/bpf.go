// Package bpf holds a compiled seccomp filter and loads it. It is apart
// from package seccomp, which compiles with libseccomp (cgo), so that the
// container's init, which only loads, is a pure Go binary: the filter is
// compiled by the runtime and sent to the init in its config.
package bpf

import (
	"errors"
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Filter is a compiled filter, ready to load.
type Filter struct {
	Prog  []unix.SockFilter `json:"prog"`
	Flags uintptr           `json:"flags"`
}

// Load installs the filter on the calling thread (the one that will exec
// the container process) with seccomp(2) directly: no allocation, no cgo.
func (f *Filter) Load() error {
	if len(f.Prog) == 0 {
		return errors.New("seccomp: empty filter")
	}
	fprog := unix.SockFprog{Len: uint16(len(f.Prog)), Filter: &f.Prog[0]}
	_, _, e := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, f.Flags, uintptr(unsafe.Pointer(&fprog)))
	runtime.KeepAlive(f.Prog)
	if e != 0 {
		return fmt.Errorf("seccomp: load filter: %w", e)
	}
	return nil
}
