// Package bpf holds a compiled seccomp filter and loads it. It is apart
// from package seccomp, which compiles with libseccomp (cgo), so that the
// container's init, which only loads, is a pure Go binary: the filter is
// compiled by the runtime and sent to the init in its config.
package bpf

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"unsafe"

	"github.com/mailru/easyjson/jlexer"
	"golang.org/x/sys/unix"
)

// Filter is a compiled filter, ready to load.
type Filter struct {
	Prog  []unix.SockFilter
	Flags uintptr
}

// insnSize is the size of a struct sock_filter.
const insnSize = 8

// A Filter travels in the init's JSON config as {"prog": base64 of the
// struct sock_filters, "flags": n} rather than an array of objects, which
// the init would decode field by field (containerd's default profile
// compiles to hundreds of instructions). The methods are written for
// package syncp's codec (AppendJSON, and easyjson's lexer); the
// encoding/json ones wrap them.

// AppendJSON appends f as JSON.
func (f *Filter) AppendJSON(b []byte) []byte {
	b = append(b, `{"prog":"`...)
	b = base64.StdEncoding.AppendEncode(b, Encode(f.Prog))
	b = append(b, `","flags":`...)
	b = strconv.AppendUint(b, uint64(f.Flags), 10)
	return append(b, '}')
}

func (f *Filter) UnmarshalEasyJSON(l *jlexer.Lexer) {
	var raw []byte
	var flags uintptr
	l.Delim('{')
	for !l.IsDelim('}') {
		key := l.UnsafeFieldName(false)
		l.WantColon()
		switch key {
		case "prog":
			raw = l.Bytes()
		case "flags":
			flags = uintptr(l.Uint64())
		default:
			l.SkipRecursive()
		}
		l.WantComma()
	}
	l.Delim('}')
	if !l.Ok() {
		return
	}
	prog, err := Decode(raw)
	if err != nil {
		l.AddError(err)
		return
	}
	f.Prog, f.Flags = prog, flags
}

func (f *Filter) MarshalJSON() ([]byte, error) { return f.AppendJSON(nil), nil }

func (f *Filter) UnmarshalJSON(b []byte) error {
	l := jlexer.Lexer{Data: b}
	f.UnmarshalEasyJSON(&l)
	return l.Error()
}

// Encode writes prog as Decode reads it.
func Encode(prog []unix.SockFilter) []byte {
	raw := make([]byte, insnSize*len(prog))
	for i, in := range prog {
		b := raw[i*insnSize:]
		binary.NativeEndian.PutUint16(b, in.Code)
		b[2], b[3] = in.Jt, in.Jf
		binary.NativeEndian.PutUint32(b[4:], in.K)
	}
	return raw
}

// Decode reads a program as the kernel takes it (and libseccomp exports
// it): struct sock_filter after struct sock_filter, in native byte order.
func Decode(raw []byte) ([]unix.SockFilter, error) {
	if len(raw) == 0 || len(raw)%insnSize != 0 {
		return nil, fmt.Errorf("seccomp: a filter of %d bytes is not a whole number of instructions", len(raw))
	}
	prog := make([]unix.SockFilter, len(raw)/insnSize)
	for i := range prog {
		in := raw[i*insnSize:]
		prog[i] = unix.SockFilter{Code: binary.NativeEndian.Uint16(in), Jt: in[2], Jf: in[3], K: binary.NativeEndian.Uint32(in[4:])}
	}
	return prog, nil
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
