package sysfile

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestReadWrite(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	// Larger than the first buffer, so Read grows it.
	big := bytes.Repeat([]byte("0123456789"), 1000)
	if err := Write(p, big, unix.O_CREAT|unix.O_EXCL, 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := Read(p)
	if err != nil || !bytes.Equal(got, big) {
		t.Fatalf("Read = %d bytes, %v; want %d bytes", len(got), err, len(big))
	}
	st, err := os.Stat(p)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v", st.Mode(), err)
	}
	// O_EXCL on an existing file, O_TRUNC shortening it, an empty file.
	if err := Write(p, nil, unix.O_CREAT|unix.O_EXCL, 0o600); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("O_EXCL on an existing file: %v", err)
	}
	if err := Write(p, []byte("x"), unix.O_TRUNC, 0); err != nil {
		t.Fatal(err)
	}
	if got, _ := Read(p); string(got) != "x" {
		t.Fatalf("after O_TRUNC: %q", got)
	}
	if err := Write(p, nil, unix.O_TRUNC, 0); err != nil {
		t.Fatal(err)
	}
	if got, err := Read(p); err != nil || len(got) != 0 {
		t.Fatalf("empty file: %q, %v", got, err)
	}
}

func TestErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing")
	_, err := Read(missing)
	var pe *fs.PathError
	if !errors.As(err, &pe) || pe.Op != "open" || pe.Path != missing || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Read of a missing file: %#v", err)
	}
	// Without O_CREAT a missing file is not made (a missing control file
	// means the knob is absent).
	if err := Write(missing, []byte("1"), unix.O_TRUNC, 0o644); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Write of a missing file: %v", err)
	}
	if _, err := os.Stat(missing); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Write made %s", missing)
	}
	// A write the file refuses comes back as a write error.
	err = Write("/proc/self/oom_score_adj", []byte("not a number"), 0, 0)
	if !errors.As(err, &pe) || pe.Op != "write" || !strings.Contains(err.Error(), "invalid argument") {
		t.Fatalf("refused write: %v", err)
	}
}

// The descriptors are closed: nothing leaks into the fd table.
func TestNoFdLeft(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	before := openFDs(t)
	for i := 0; i < 20; i++ {
		Write(p, []byte("1"), unix.O_CREAT|unix.O_TRUNC, 0o600)
		Read(p)
		Read(p + ".missing")
		Write("/proc/self/oom_score_adj", []byte("x"), 0, 0)
	}
	if after := openFDs(t); after != before {
		t.Fatalf("%d fds open before, %d after", before, after)
	}
}

func openFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}
