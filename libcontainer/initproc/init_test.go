package initproc

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLookPath(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "prog")
	os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755)
	os.WriteFile(filepath.Join(dir, "noexec"), nil, 0o644)
	if p, err := lookPath("prog", []string{"PATH=/nonexistent:" + dir}); err != nil || p != exe {
		t.Errorf("lookPath: %q %v", p, err)
	}
	if _, err := lookPath("noexec", []string{"PATH=" + dir}); err == nil || !strings.Contains(err.Error(), "executable file not found in $PATH") {
		t.Errorf("non-executable: %v", err)
	}
	if _, err := lookPath(filepath.Join(dir, "missing"), nil); err == nil {
		t.Error("missing absolute path accepted")
	}
}
