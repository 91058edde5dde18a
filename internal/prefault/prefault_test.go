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
	if _, _, errno := unix.Syscall(unix.SYS_MINCORE, start, end-start, uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
		t.Fatalf("mincore: %v", errno)
	}
	for _, v := range vec {
		n += int(v & 1)
	}
	return n, len(vec)
}

// The test binary maps its heap as runmini does, as early as it can.
const testAfter, testBefore = 1 << 20, 512 << 10

func init() { Heap(testAfter, testBefore) }

// Heap mapped the heap ahead of the test binary's own allocations, within
// one chunk, having skipped the rest of the first chunk if it was short.
func TestInitPopulatedHeap(t *testing.T) {
	if populated.start == 0 {
		probe, err := unix.Mmap(-1, 0, pageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Munmap(probe)
		if err := unix.Madvise(probe, 23); err == unix.EINVAL { // MADV_POPULATE_WRITE
			t.Skip("kernel without MADV_POPULATE_WRITE (before 5.14)")
		}
		t.Fatal("Heap did not populate the heap")
	}
	if n, of := resident(t, populated.start, populated.end); n != of {
		t.Errorf("%d of %d heap pages resident", n, of)
	}
	chunkEnd := populated.start&^(chunkSize-1) + chunkSize
	if populated.end-populated.start > testAfter || populated.end > chunkEnd {
		t.Errorf("populated %#x-%#x: more than %d bytes or past its 4 MiB chunk", populated.start, populated.end, testAfter)
	}
	if room := chunkEnd - populated.start; room < testAfter {
		t.Errorf("populated from %#x, %d bytes before its chunk's end: Heap should have skipped to the next chunk", populated.start, room)
	}
}
