package prefault

// MADV_POPULATE_READ and _WRITE: Linux 5.14. Older kernels answer EINVAL
// and the pages fault in one at a time, as without the package.
// MADV_HUGEPAGE asks for transparent huge pages in a range (HugeHeap).
const (
	madvPopulateRead  = 22
	madvPopulateWrite = 23
	madvHugepage      = 14
)

// Populate maps [start, end), rounded out to whole pages, with one system
// call: readable only or, with write, as if written (so no later
// copy-on-write fault either). It reports whether the kernel did.
//
// The call is made in assembly, not through package syscall: the packages
// that populate at start-up must import nothing but this one (see Heap).
func Populate(start, end uintptr, write bool) bool {
	start &^= pageSize - 1
	end = (end + pageSize - 1) &^ (pageSize - 1)
	if end <= start || !Supported {
		return false
	}
	advice := uintptr(madvPopulateRead)
	if write {
		advice = madvPopulateWrite
	}
	return madvise(start, end-start, advice) == 0
}
