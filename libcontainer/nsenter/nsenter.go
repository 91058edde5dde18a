//go:build linux

package nsenter

// The constructor lives in nsenter.c; importing "C" is what links it in.

// #cgo CFLAGS: -Wall -Wextra
import "C"
