package prefault

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
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

// Heap mapped the heap ahead of the test binary's own allocations, within
// one chunk, having skipped the rest of the first chunk if it was short.
func TestInitPopulatedHeap(t *testing.T) {
	if populated.start == 0 {
		probe, err := unix.Mmap(-1, 0, pageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Munmap(probe)
		if err := unix.Madvise(probe, madvPopulateWrite); err == unix.EINVAL {
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

// hugeEnv makes the test binary a child that maps its heap with HugeHeap
// instead, and reports how that went.
const hugeEnv = "PREFAULT_TEST_HUGE"

func init() {
	if os.Getenv(hugeEnv) == "" {
		Heap(testAfter, testBefore)
		return
	}
	HugeHeap(testAfter, testBefore)
	kb := -1
	if m := smaps(populated.start); m != nil {
		kb = m["AnonHugePages"]
	}
	fmt.Printf("%d %d %d %d\n", populated.start, populated.end, populated.next, kb)
	os.Exit(0)
}

// HugeHeap, first thing in a process, maps the 2 MiB-aligned 2 MiB of heap
// the heap goes on in, as a huge page where the kernel makes them; or,
// where the heap went elsewhere (another P's page cache can be in the
// way), Heap's window. Of five children, one at least has the huge page.
func TestHugeHeap(t *testing.T) {
	mode, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
	thp := err == nil && !strings.Contains(string(mode), "[never]")
	huge := 0
	for range 5 {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), hugeEnv+"=1")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("child: %v", err)
		}
		var start, end, next uintptr
		var kb int
		if _, err := fmt.Sscan(string(out), &start, &end, &next, &kb); err != nil {
			t.Fatalf("child said %q: %v", out, err)
		}
		switch {
		case start == 0:
			t.Skip("kernel without MADV_POPULATE_WRITE (before 5.14)")
		case next == 0:
			// Heap's window.
			if end-start > testAfter {
				t.Errorf("fell back to Heap, populated %#x-%#x: more than %d bytes", start, end, testAfter)
			}
		case start%hugeSize != 0 || end-start != hugeSize:
			t.Errorf("populated %#x-%#x: not one aligned 2 MiB", start, end)
		case next < start || next+testAfter > end:
			t.Errorf("the heap goes on at %#x, without %d bytes of %#x-%#x ahead", next, testAfter, start, end)
		case thp && kb < hugeSize>>10:
			t.Errorf("AnonHugePages %d kB in the mapping of %#x, want %d (THP %q)", kb, start, hugeSize>>10, strings.TrimSpace(string(mode)))
		default:
			huge++
		}
	}
	if huge == 0 {
		t.Error("no child had its heap on a huge page")
	}
	if !thp {
		t.Logf("no transparent huge pages here (%q, %v): the 2 MiB are mapped page by page", mode, err)
	}
}
