//go:build !cgo

package seccomp

import "golang.org/x/sys/unix"

// compile builds p's program with the helper beside this program: this
// build does not link libseccomp.
func compile(p *profile) ([]unix.SockFilter, error) {
	path, err := helperPath()
	if err != nil {
		return nil, err
	}
	return compileWithHelper(p, path)
}
