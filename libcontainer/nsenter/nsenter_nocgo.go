//go:build !cgo

package nsenter

// Linked tells whether this binary has the constructor: a build without
// cgo (runmini itself) cannot join namespaces before its Go runtime
// starts, and runs runmini-init-nsenter for that instead.
const Linked = false
