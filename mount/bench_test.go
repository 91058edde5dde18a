package mount

import (
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkParseOptions: the options of a typical bind mount.
func BenchmarkParseOptions(b *testing.B) {
	opts := []string{"rbind", "ro", "nosuid", "nodev", "noexec", "rprivate", "size=65536k"}
	for b.Loop() {
		if _, err := parseOptions(opts); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkInRootLookup: resolving a mount destination inside the rootfs,
// through a symlink that points outside it (it must stay inside).
func BenchmarkInRootLookup(b *testing.B) {
	dir := b.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "etc/ssl/certs"), 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.Symlink("/etc", filepath.Join(dir, "link")); err != nil {
		b.Fatal(err)
	}
	r, err := openRoot(dir)
	if err != nil {
		b.Fatal(err)
	}
	defer r.close()
	for b.Loop() {
		h, err := r.open("/link/ssl/certs")
		if err != nil {
			b.Fatal(err)
		}
		h.Close()
	}
}
