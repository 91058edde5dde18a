//go:build !cgo

package main

// Without cgo this is runmini-init: it maps its code and read-only data in
// one go (see the package). runmini-init-nsenter's constructor does it
// before the Go runtime starts instead.
import _ "github.com/runmini/runmini/internal/prefault/segments"
