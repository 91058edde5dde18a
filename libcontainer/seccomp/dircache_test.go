//go:build cgo

package seccomp

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/runmini/runmini/libcontainer/seccomp/bpf"
)

// The directory cache gives what Compile gives, reads a program back only
// from a file it can trust that was compiled from the very same input, and
// stays bounded.
func TestDirCache(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the untrusted-file cases chown to another user")
	}
	containerd := containerdDefault(t)
	small := func(name string) *specs.LinuxSeccomp {
		return &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Architectures: []specs.Arch{specs.ArchX86_64},
			Syscalls: []specs.LinuxSyscall{{Names: []string{name}, Action: specs.ActErrno}}}
	}
	root := t.TempDir()
	dir := filepath.Join(root, CacheDirName)
	c := NewDirCache(dir)
	compileBoth := func(p *specs.LinuxSeccomp) *Filter {
		t.Helper()
		got, err := c.Compile(p)
		if err != nil {
			t.Fatal(err)
		}
		want, err := Compile(p)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got.Prog, want.Prog) || got.Flags != want.Flags {
			t.Fatalf("the cache gave %d instructions (flags %#x), Compile %d (%#x)", len(got.Prog), got.Flags, len(want.Prog), want.Flags)
		}
		return got
	}
	// A miss writes one file, 0600 in a 0700 directory.
	compileBoth(&containerd)
	ents, err := os.ReadDir(dir)
	if err != nil || len(ents) != 1 {
		t.Fatalf("cache dir after one compile: %v, %v", ents, err)
	}
	file := filepath.Join(dir, ents[0].Name())
	for p, want := range map[string]os.FileMode{dir: os.ModeDir | 0o700, file: 0o600} {
		if st, err := os.Stat(p); err != nil || st.Mode() != want {
			t.Fatalf("%s: mode %v, %v; want %v", p, st.Mode(), err, want)
		}
	}

	// Marked: a program read back from the file shows as such (the kernel
	// would never take this one, the test only compares).
	mark := func() []unix.SockFilter {
		t.Helper()
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		prog, err := bpf.Decode(raw[len(raw)-8:])
		if err != nil {
			t.Fatal(err)
		}
		prog[0].K ^= 0xdead
		copy(raw[len(raw)-8:], bpf.Encode(prog))
		if err := os.WriteFile(file, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		return prog
	}
	marked := mark()
	if f, err := c.Compile(&containerd); err != nil || f.Prog[len(f.Prog)-1] != marked[0] {
		t.Fatalf("a hit did not come from the file: %v", err)
	}
	// What may not be trusted is compiled afresh (and rewritten).
	untrusted := map[string]func(){
		"group-writable file":  func() { os.Chmod(file, 0o620) },
		"file of another user": func() { os.Chown(file, 65534, 65534) },
		"world-writable dir":   func() { os.Chmod(dir, 0o777) },
		"symlink": func() {
			other := filepath.Join(root, "elsewhere")
			os.Rename(file, other)
			os.Symlink(other, file)
		},
	}
	for name, spoil := range untrusted {
		mark()
		spoil()
		compileBoth(&containerd)
		// Restore a trusted state for the next case.
		os.Chmod(dir, 0o700)
		os.Remove(file)
		compileBoth(&containerd)
		if st, err := os.Lstat(file); err != nil || !st.Mode().IsRegular() {
			t.Fatalf("%s: the rewrite left %v, %v", name, st, err)
		}
	}
	// Another profile is another file; a file compiled from other input
	// (another profile's, of the same length, under this one's name) is
	// not used.
	compileBoth(small("chdir"))
	ents, _ = os.ReadDir(dir)
	if len(ents) != 2 {
		t.Fatalf("two profiles, %d files", len(ents))
	}
	before := map[string]bool{}
	for _, e := range ents {
		before[e.Name()] = true
	}
	compileBoth(small("chown"))
	ents, _ = os.ReadDir(dir)
	var chdir, chown string
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		switch {
		case !before[e.Name()]:
			chown = p
		case p != file:
			chdir = p
		}
	}
	if chdir == "" || chown == "" {
		t.Fatalf("files: %v", ents)
	}
	if err := os.Rename(chdir, chown); err != nil {
		t.Fatal(err)
	}
	compileBoth(small("chown"))
	// Bounded: past maxCached files the directory starts over.
	for i := 0; i < maxCached+5; i++ {
		compileBoth(small(fmt.Sprintf("no_such_call_%d", i)))
	}
	if ents, _ := os.ReadDir(dir); len(ents) > maxCached {
		t.Fatalf("%d files kept, at most %d wanted", len(ents), maxCached)
	}
	// A bad profile fails as it does without the cache, and writes nothing.
	kept, _ := os.ReadDir(dir)
	if _, err := c.Compile(&specs.LinuxSeccomp{DefaultAction: "SCMP_ACT_BOGUS"}); err == nil {
		t.Error("a bad profile compiled through the directory cache")
	}
	if after, _ := os.ReadDir(dir); len(after) != len(kept) {
		t.Error("a bad profile left a file")
	}
}

// WithDir: a shim's cache keeps its filters in memory and its programs in
// the directory, where another shim (another Cache) finds them.
func TestCacheWithDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), CacheDirName)
	p := containerdDefault(t)
	mem := NewCache(4)
	a, err := mem.WithDir(dir).Compile(&p)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := mem.WithDir(dir).Compile(&p); err != nil || b != a {
		t.Errorf("views of one cache do not share the filter in memory: %v", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil || len(ents) != 1 {
		t.Fatalf("%s: %v, %v; want the one program", dir, ents, err)
	}
	// Another cache (another shim) reads the file: mark it and see.
	file := filepath.Join(dir, ents[0].Name())
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)-4] ^= 0xff
	if err := os.WriteFile(file, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := NewCache(4).WithDir(dir).Compile(&p)
	if err != nil {
		t.Fatal(err)
	}
	if last := len(c.Prog) - 1; c.Prog[last] == a.Prog[last] {
		t.Error("another cache compiled the profile again instead of reading the program")
	}
	var none *Cache
	if f, err := none.WithDir(dir).Compile(&p); err != nil || f == nil {
		t.Errorf("a nil cache with a directory: %v", err)
	}
}
