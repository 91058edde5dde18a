package prefault

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
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

// hugeEnv makes the test binary a child that maps its heap with HugeHeap
// instead, and reports how that went.
const hugeEnv = "PREFAULT_TEST_HUGE"

func init() {
	if os.Getenv(hugeEnv) == "" {
		Heap(testAfter, testBefore)
		return
	}
	HugeHeap(testAfter, testBefore)
	next := nextPage()
	kb := -1
	if populated.start != 0 {
		kb = anonHugeKB(populated.start)
	}
	fmt.Printf("%d %d %d %d\n", populated.start, populated.end, next, kb)
	os.Exit(0)
}

// HugeHeap, first thing in a process, maps the next 2 MiB-aligned 2 MiB of
// heap, as a huge page where the kernel makes them, and the heap goes on
// there.
func TestHugeHeap(t *testing.T) {
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
	if start == 0 {
		t.Skip("kernel without MADV_POPULATE_WRITE (before 5.14)")
	}
	if start%hugeSize != 0 || end-start != hugeSize {
		t.Fatalf("populated %#x-%#x: not one aligned 2 MiB", start, end)
	}
	if next < start || next >= end {
		t.Errorf("the heap goes on at %#x, outside %#x-%#x", next, start, end)
	}
	mode, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
	if err != nil || strings.Contains(string(mode), "[never]") {
		t.Logf("no transparent huge pages here (%q, %v): mapped page by page", mode, err)
		return
	}
	if kb < hugeSize>>10 {
		t.Errorf("AnonHugePages %d kB in the mapping of %#x, want %d (THP %q)", kb, start, hugeSize>>10, strings.TrimSpace(string(mode)))
	}
}

// anonHugeKB is AnonHugePages of the mapping that holds addr.
func anonHugeKB(addr uintptr) int {
	b, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		return -1
	}
	in := false
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if lo, hi, ok := strings.Cut(f[0], "-"); ok && len(f) >= 5 {
			l, err1 := strconv.ParseUint(lo, 16, 64)
			h, err2 := strconv.ParseUint(hi, 16, 64)
			in = err1 == nil && err2 == nil && uint64(addr) >= l && uint64(addr) < h
			continue
		}
		if in && f[0] == "AnonHugePages:" {
			kb, _ := strconv.Atoi(f[1])
			return kb
		}
	}
	return -1
}
