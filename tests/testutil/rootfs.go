// Package testutil holds the helpers shared by runmini's integration tests:
// busybox root filesystems and bundles made at test time, unique container
// ids, and a handle on the runtime under test that runs it with a per-test
// --root and checks, when the test ends, that nothing was left behind.
package testutil

import (
	"debug/elf"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// busyboxEnv names a static busybox to use instead of Debian's busybox-static.
const busyboxEnv = "RUNMINI_BUSYBOX"

// busyboxPaths are where Debian's busybox-static installs the binary (the
// second one on merged-/usr systems where /bin is a symlink).
var busyboxPaths = []string{"/bin/busybox", "/usr/bin/busybox"}

var (
	busyboxOnce    sync.Once
	busyboxPath    string
	busyboxApplets []string
	busyboxErr     error
)

// findBusybox locates a statically linked busybox and lists its applets once
// per test binary: the binary has to run inside a rootfs with no libc.
func findBusybox() (string, []string, error) {
	busyboxOnce.Do(func() {
		busyboxPath, busyboxApplets, busyboxErr = locateBusybox()
	})
	return busyboxPath, busyboxApplets, busyboxErr
}

func locateBusybox() (string, []string, error) {
	candidates := busyboxPaths
	if p := os.Getenv(busyboxEnv); p != "" {
		candidates = []string{p}
	}
	var path string
	for _, c := range candidates {
		if fi, err := os.Stat(c); err == nil && fi.Mode().IsRegular() {
			path = c
			break
		}
	}
	if path == "" {
		return "", nil, fmt.Errorf("no busybox at %s: install Debian's busybox-static (or set %s)",
			strings.Join(candidates, " or "), busyboxEnv)
	}
	static, err := isStatic(path)
	if err != nil {
		return "", nil, err
	}
	if !static {
		return "", nil, fmt.Errorf("%s is dynamically linked and cannot run in a bare rootfs: install busybox-static", path)
	}
	out, err := exec.Command(path, "--list").Output()
	if err != nil {
		return "", nil, fmt.Errorf("%s --list: %w", path, err)
	}
	var applets []string
	for _, a := range strings.Fields(string(out)) {
		// The binary itself goes in as bin/busybox; a name with a slash
		// would escape bin/.
		if a == "busybox" || strings.Contains(a, "/") {
			continue
		}
		applets = append(applets, a)
	}
	if len(applets) == 0 {
		return "", nil, fmt.Errorf("%s --list printed no applets", path)
	}
	return path, applets, nil
}

// isStatic reports whether the ELF file at path needs no dynamic loader.
func isStatic(path string) (bool, error) {
	f, err := elf.Open(path)
	if err != nil {
		return false, fmt.Errorf("read ELF %s: %w", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return false, nil
		}
	}
	return true, nil
}

// requireRoot skips t when it cannot create containers at all.
func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates containers, mounts and cgroups (run as root, e.g. via make test)")
	}
}

// Rootfs returns a new busybox root filesystem in a directory of t's own,
// removed when t ends. Tests may change it freely.
func Rootfs(t testing.TB) string {
	t.Helper()
	requireRoot(t)
	dir := t.TempDir()
	openToContainers(t, dir)
	if err := makeRootfs(dir); err != nil {
		t.Fatalf("make busybox rootfs: %v", err)
	}
	return dir
}

// openToContainers makes dir and its parent (the per-test directory made by
// t.TempDir, mode 0700) searchable by everyone: a container whose root is
// mapped to another uid by a user namespace must still reach its rootfs.
func openToContainers(t testing.TB, dir string) {
	t.Helper()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatalf("make %s searchable: %v", d, err)
		}
	}
}

const passwd = `root:x:0:0:root:/root:/bin/sh
user:x:1000:1000:user:/home/user:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
`

const group = `root:x:0:
user:x:1000:
nogroup:x:65534:
`

const hosts = `127.0.0.1	localhost
::1	localhost ip6-localhost ip6-loopback
`

// makeRootfs fills the existing, empty directory dir with a minimal
// busybox system: every applet linked in bin/, the usual top-level dirs as
// mount points, and users root (0), user (1000) and nobody (65534).
func makeRootfs(dir string) error {
	bb, applets, err := findBusybox()
	if err != nil {
		return err
	}
	dirs := []struct {
		path string
		mode os.FileMode
	}{
		{"bin", 0o755}, {"dev", 0o755}, {"etc", 0o755}, {"home", 0o755},
		{"home/user", 0o755}, {"mnt", 0o755}, {"proc", 0o555}, {"root", 0o700},
		{"run", 0o755}, {"sys", 0o555}, {"tmp", os.ModeSticky | 0o777}, {"usr", 0o755},
		{"var", 0o755}, {"var/tmp", os.ModeSticky | 0o777},
	}
	for _, d := range dirs {
		p := filepath.Join(dir, d.path)
		if err := os.Mkdir(p, d.mode); err != nil {
			return fmt.Errorf("rootfs: %w", err)
		}
		// Mkdir is subject to the umask and ignores the sticky bit.
		if err := os.Chmod(p, d.mode); err != nil {
			return fmt.Errorf("rootfs: %w", err)
		}
	}
	if err := os.Chown(filepath.Join(dir, "home/user"), 1000, 1000); err != nil {
		return fmt.Errorf("rootfs: %w", err)
	}
	if err := copyFile(bb, filepath.Join(dir, "bin/busybox"), 0o755); err != nil {
		return err
	}
	for _, a := range applets {
		if err := os.Symlink("busybox", filepath.Join(dir, "bin", a)); err != nil {
			return fmt.Errorf("rootfs: applet %s: %w", a, err)
		}
	}
	// Scripts and specs name tools by any of the usual paths.
	links := map[string]string{"sbin": "bin", "usr/bin": "../bin", "usr/sbin": "../bin"}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			return fmt.Errorf("rootfs: %w", err)
		}
	}
	files := map[string]string{"etc/passwd": passwd, "etc/group": group, "etc/hosts": hosts, "etc/hostname": "runmini\n"}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return fmt.Errorf("rootfs: %w", err)
		}
	}
	return nil
}

func copyFile(src, dst string, mode os.FileMode) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	defer func() {
		if cerr := out.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("copy %s to %s: %w", src, dst, cerr)
		}
		if err != nil {
			_ = os.Remove(dst)
		}
	}()
	if _, err := io.Copy(out, in); err != nil {
		return fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	return nil
}
