package prefault

import (
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// resident counts the pages of [start, end) the kernel has mapped.
func resident(t *testing.T, start, end uintptr) (n, of int) {
	t.Helper()
	vec := make([]byte, (end-start)/pageSize)
	_, _, errno := unix.Syscall(unix.SYS_MINCORE, start, end-start, uintptr(unsafe.Pointer(&vec[0])))
	if errno != 0 {
		t.Fatalf("mincore: %v", errno)
	}
	for _, v := range vec {
		if v&1 != 0 {
			n++
		}
	}
	return n, len(vec)
}

func TestPopulate(t *testing.T) {
	const size = 64 * pageSize
	b, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(b)
	start := uintptr(unsafe.Pointer(&b[0]))
	if n, _ := resident(t, start, start+size); n != 0 {
		t.Fatalf("%d pages of a fresh mapping already resident", n)
	}
	if err := populate(start, size); err == unix.EINVAL {
		t.Skip("kernel without MADV_POPULATE_WRITE (before 5.14)")
	} else if err != nil {
		t.Fatal(err)
	}
	if n, of := resident(t, start, start+size); n != of {
		t.Errorf("%d of %d pages resident after populate", n, of)
	}
}

// The package's init mapped the heap ahead of the test binary's own
// allocations.
func TestInitPopulatedHeap(t *testing.T) {
	if populated.start == 0 {
		t.Skip("init could not populate (kernel before 5.14?)")
	}
	if n, of := resident(t, populated.start, populated.end); n != of {
		t.Errorf("%d of %d heap pages resident", n, of)
	}
	if populated.end-populated.start > after || populated.end > populated.start&^(chunkSize-1)+chunkSize {
		t.Errorf("populated %#x-%#x: more than %d bytes or past its 4 MiB chunk", populated.start, populated.end, after)
	}
}
