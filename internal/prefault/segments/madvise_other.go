//go:build !linux || !(amd64 || arm64)

package segments

// Elsewhere the pages fault in one at a time, as without the package.
const supported = false

func madvise(addr, n, advice uintptr) uintptr { return 1 }

func getAuxv() []uintptr { return nil }
