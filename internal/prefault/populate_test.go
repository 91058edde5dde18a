package prefault

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mapping returns the Size and Rss (KiB) /proc/self/smaps gives for the
// mapping that holds addr.
func mapping(t *testing.T, addr uintptr) (size, rss int) {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		if lo, hi, ok := strings.Cut(fields[0], "-"); ok && len(fields) >= 5 {
			l, err1 := strconv.ParseUint(lo, 16, 64)
			h, err2 := strconv.ParseUint(hi, 16, 64)
			in = err1 == nil && err2 == nil && uint64(addr) >= l && uint64(addr) < h
			continue
		}
		if !in || len(fields) < 2 {
			continue
		}
		switch fields[0] {
		case "Size:":
			size, _ = strconv.Atoi(fields[1])
		case "Rss:":
			rss, _ = strconv.Atoi(fields[1])
			return size, rss
		}
	}
	t.Fatalf("no mapping holds %#x", addr)
	return 0, 0
}

func TestPopulate(t *testing.T) {
	const size = 64 * pageSize
	// A shared memfd mapping: the kernel would merge an anonymous one
	// with its neighbours, whose pages smaps would then count.
	fd, err := unix.MemfdCreate("segments-test", unix.MFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Ftruncate(fd, size); err != nil {
		t.Fatal(err)
	}
	b, err := unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(b)
	start := uintptr(unsafe.Pointer(&b[0]))
	if _, rss := mapping(t, start); rss != 0 {
		t.Fatalf("%d KiB of a fresh mapping already resident", rss)
	}
	if Populate(start+size, start, true) {
		t.Error("populated an empty range")
	}
	// Rounded out to whole pages.
	if !Populate(start+1, start+size-1, true) {
		if err := unix.Madvise(b, madvPopulateWrite); err == unix.EINVAL {
			t.Skip("kernel without MADV_POPULATE_WRITE (before 5.14)")
		}
		t.Fatal("populate failed")
	}
	if size, rss := mapping(t, start); rss != size {
		t.Errorf("%d of %d KiB resident after populate", rss, size)
	}
	// The kernel refuses what is not mapped.
	if _, _, errno := unix.Syscall(unix.SYS_MUNMAP, start+size-pageSize, pageSize, 0); errno != 0 {
		t.Fatal(errno)
	}
	if Populate(start, start+size, false) {
		t.Error("populated past the end of the mapping")
	}
}
