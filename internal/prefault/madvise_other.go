//go:build !linux || !(amd64 || arm64)

package prefault

// Elsewhere the pages fault in one at a time, as without the package.
const Supported = false

func madvise(addr, n, advice uintptr) uintptr { return 1 }

func Auxv() []uintptr { return nil }
