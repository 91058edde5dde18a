// Package companion finds the programs runmini and the shim run from
// beside their own binary (runmini-init, runmini-init-nsenter,
// runmini-seccomp): make install puts them all in one directory.
package companion

import (
	"os"
	"path/filepath"
)

// Path is the regular file name beside the running program, and whether it
// is there; self is the running program (for messages).
func Path(name string) (path, self string, ok bool) {
	self, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return "", "", false
	}
	p := filepath.Join(filepath.Dir(self), name)
	if st, err := os.Stat(p); err != nil || !st.Mode().IsRegular() {
		return p, self, false
	}
	return p, self, true
}
