//go:build linux && cgo

package nsenter

// The constructor lives in nsenter.c; importing "C" is what links it in.

// #cgo CFLAGS: -Wall -Wextra
// extern int runmini_populated;
import "C"

// Linked tells whether this binary has the constructor (a build with cgo).
const Linked = true

// populated is how many of the binary's read-only segments the constructor
// mapped ahead (populate_image), for the tests.
func populated() int { return int(C.runmini_populated) }
