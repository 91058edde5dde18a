package seccomp

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/runmini/runmini/internal/sysfile"
	"github.com/runmini/runmini/libcontainer/seccomp/bpf"
)

// CacheDirName is the directory, in runmini's --root, of the compiled
// programs NewDirCache keeps. It is not a valid container id.
const CacheDirName = "@seccomp"

// maxCached bounds the programs a directory keeps (a few KiB each): more
// distinct profiles than that and it starts over.
const maxCached = 64

// NewDirCache returns a cache that keeps compiled programs as files in
// dir, for a caller that starts once per container (the runmini CLI):
// containerd's default profile costs libseccomp ~10 ms of CPU, ~25 ms of
// wall time beside a container's start on a VM, on every `runmini run`.
//
// A file holds the program and what it was compiled from: the compiler
// (runmini-seccomp's file identity, or libseccomp's version in process),
// the kernel release, the architecture and the exact calls made to
// libseccomp (the profile, canonical). A program is used only when all of
// that is byte for byte what this compile would start from, so neither a
// hash collision, a profile change nor an upgraded libseccomp can hand a
// container another filter; and only from a file that this user owns and
// nobody else can write, in a directory alike (a writable cache would let
// its writer weaken every container's filter). Anything else is compiled
// afresh. Writing the cache is best effort.
func NewDirCache(dir string) *Cache { return &Cache{dir: dir} }

func compileIn(dir string, c *profile) (*Filter, error) {
	id, err := compilerID()
	if err != nil {
		return nil, err
	}
	key := cacheKey(id, c)
	h := fnv.New64a()
	h.Write(key)
	file := filepath.Join(dir, strconv.FormatUint(h.Sum64(), 16))
	if prog, ok := readCached(dir, file, key); ok {
		slog.Debug("seccomp program from the cache", "file", file)
		return &Filter{Prog: prog, Flags: c.flags}, nil
	}
	prog, err := compile(c)
	if err != nil {
		return nil, err
	}
	writeCached(dir, file, key, prog)
	return &Filter{Prog: prog, Flags: c.flags}, nil
}

const cacheMagic = "runmini seccomp cache 1\n"

func cacheKey(compiler string, p *profile) []byte {
	var u unix.Utsname
	unix.Uname(&u)
	var b bytes.Buffer
	b.WriteString(cacheMagic)
	b.WriteString(compiler + "\n")
	b.Write(bytes.TrimRight(u.Release[:], "\x00"))
	b.WriteString("\n" + runtime.GOARCH + "\n")
	b.Write(helperInput(p))
	return b.Bytes()
}

// readCached returns the program in file if the file is trusted and was
// compiled from key.
func readCached(dir, file string, key []byte) ([]unix.SockFilter, bool) {
	if !trusted(dir, unix.S_IFDIR) || !trusted(file, unix.S_IFREG) {
		return nil, false
	}
	b, err := sysfile.Read(file)
	if err != nil || len(b) < 4 {
		return nil, false
	}
	n := binary.LittleEndian.Uint32(b)
	if uint64(n) != uint64(len(key)) || len(b) < 4+len(key) || !bytes.Equal(b[4:4+len(key)], key) {
		return nil, false
	}
	prog, err := bpf.Decode(b[4+len(key):])
	return prog, err == nil
}

// trusted: p is of type typ (not a symlink), ours, and only we may write
// it.
func trusted(p string, typ uint32) bool {
	var st unix.Stat_t
	if unix.Lstat(p, &st) != nil {
		return false
	}
	return st.Mode&unix.S_IFMT == typ && st.Uid == uint32(os.Geteuid()) && st.Mode&0o022 == 0
}

func writeCached(dir, file string, key []byte, prog []unix.SockFilter) {
	if err := os.MkdirAll(dir, 0o700); err != nil || !trusted(dir, unix.S_IFDIR) {
		return
	}
	if ents, err := os.ReadDir(dir); err == nil && len(ents) >= maxCached {
		for _, e := range ents {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
	b := binary.LittleEndian.AppendUint32(nil, uint32(len(key)))
	b = append(b, key...)
	b = append(b, bpf.Encode(prog)...)
	tmp := filepath.Join(dir, fmt.Sprintf(".%d.tmp", os.Getpid()))
	if sysfile.Write(tmp, b, unix.O_CREAT|unix.O_EXCL, 0o600) != nil {
		os.Remove(tmp)
		return
	}
	if os.Rename(tmp, file) != nil {
		os.Remove(tmp)
	}
}
