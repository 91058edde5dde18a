//go:build !cgo

package seccomp

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// compile builds p's program with the helper beside this program: this
// build does not link libseccomp.
func compile(p *profile) ([]unix.SockFilter, error) {
	path, err := helperPath()
	if err != nil {
		return nil, err
	}
	return compileWithHelper(p, path)
}

// compilerID names the helper file the program comes from: another file
// (an upgrade) may compile differently.
func compilerID() (string, error) {
	path, err := helperPath()
	if err != nil {
		return "", err
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return "", fmt.Errorf("seccomp: %s: %w", path, err)
	}
	return fmt.Sprintf("%s %d:%d %d %d.%09d", path, st.Dev, st.Ino, st.Size, st.Mtim.Sec, st.Mtim.Nsec), nil
}
