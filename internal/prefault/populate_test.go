package prefault

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// smaps returns the fields (KiB) /proc/self/smaps gives for the mapping
// that holds addr, nil when none does.
func smaps(addr uintptr) map[string]int {
	b, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		return nil
	}
	var out map[string]int
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if lo, hi, ok := strings.Cut(f[0], "-"); ok && len(f) >= 5 {
			if out != nil {
				return out
			}
			l, err1 := strconv.ParseUint(lo, 16, 64)
			h, err2 := strconv.ParseUint(hi, 16, 64)
			if err1 == nil && err2 == nil && uint64(addr) >= l && uint64(addr) < h {
				out = map[string]int{}
			}
			continue
		}
		if out != nil && len(f) >= 2 {
			if v, err := strconv.Atoi(f[1]); err == nil {
				out[strings.TrimSuffix(f[0], ":")] = v
			}
		}
	}
	return out
}

// mapping returns the Size and Rss (KiB) of the mapping that holds addr.
func mapping(t *testing.T, addr uintptr) (size, rss int) {
	t.Helper()
	m := smaps(addr)
	if m == nil {
		t.Fatalf("no mapping holds %#x", addr)
	}
	return m["Size"], m["Rss"]
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
