//go:build cgo

package main

// With cgo this is runmini-init-nsenter: the constructor joins the
// namespaces the runtime names before the Go runtime starts.
import _ "github.com/runmini/runmini/libcontainer/nsenter"
