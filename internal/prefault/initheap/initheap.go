// Package initheap maps, as soon as a container's init starts, the heap it
// is about to use (see package prefault); importing it is all it takes.
package initheap

import "github.com/runmini/runmini/internal/prefault"

// The init touches ~500 KiB of heap, part of it before any package init
// runs, and every page it maps must also be unmapped when it executes the
// container's process: a small window. Measured on `runmini run` (200
// interleaved, trimmed means): nothing 36.65 ms, 128+64 KiB 35.95,
// 256+128 35.91, 512+128 35.94; the CLI's 1024+512 was ~0.3 ms better
// than nothing.
const (
	after  = 256 << 10
	before = 128 << 10
)

func init() { prefault.Heap(after, before) }
