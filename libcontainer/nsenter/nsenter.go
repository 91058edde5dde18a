//go:build linux && cgo

package nsenter

// The constructor lives in nsenter.c; importing "C" is what links it in.

// #cgo CFLAGS: -Wall -Wextra
import "C"

// Linked tells whether this binary has the constructor (a build with cgo).
const Linked = true
