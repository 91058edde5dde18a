package companion

import (
	"os"
	"path/filepath"
	"testing"
)

func TestPath(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// The test binary itself is a regular file beside itself.
	p, gotSelf, ok := Path(filepath.Base(self))
	if !ok || p != self || gotSelf != self {
		t.Errorf("Path(%q) = %q, %q, %v; want %q", filepath.Base(self), p, gotSelf, ok, self)
	}
	if _, _, ok := Path("no-such-companion"); ok {
		t.Error("a missing file was found")
	}
	// A directory is not a program.
	if err := os.Mkdir(filepath.Join(filepath.Dir(self), "companion-dir"), 0o755); err == nil {
		defer os.Remove(filepath.Join(filepath.Dir(self), "companion-dir"))
		if _, _, ok := Path("companion-dir"); ok {
			t.Error("a directory was found")
		}
	}
}
