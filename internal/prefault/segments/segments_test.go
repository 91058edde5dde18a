package segments

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/runmini/runmini/internal/prefault"
)

// The package's init asked the kernel to map the test binary's code and
// read-only data, and it did. (Whether pages were mapped cannot be told
// from smaps for a binary here: a freshly written file sits in large page
// cache folios, which a single fault maps whole; prefault's TestPopulate
// checks the call itself on a fresh mapping.)
func TestInitPopulatedSegments(t *testing.T) {
	if !prefault.Supported {
		t.Skip("not on linux/amd64 or linux/arm64")
	}
	probe, err := unix.Mmap(-1, 0, os.Getpagesize(), unix.PROT_READ, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(probe)
	if err := unix.Madvise(probe, unix.MADV_POPULATE_READ); err == unix.EINVAL {
		t.Skip("kernel without MADV_POPULATE_READ (before 5.14)")
	}
	if Populated < 2 {
		t.Errorf("populated %d segments, want code and read-only data", Populated)
	}
}
