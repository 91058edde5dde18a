package seccomp

import (
	"bytes"
	"errors"
	"fmt"
	"os/exec"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/runmini/runmini/internal/companion"
	"github.com/runmini/runmini/libcontainer/seccomp/bpf"
)

// HelperName is the program that compiles profiles for a build without
// cgo (cmd/runmini-seccomp, C): installed beside runmini and the shim.
const HelperName = "runmini-seccomp"

// helperPath is HelperName beside this program.
func helperPath() (string, error) {
	p, self, ok := companion.Path(HelperName)
	if !ok {
		return "", fmt.Errorf("seccomp: %s is missing beside %s: it compiles seccomp profiles; install it from the same build", HelperName, self)
	}
	return p, nil
}

// helperInput is p as the helper reads it: one line a call to libseccomp,
// in the order the in-process build makes them.
//
//	default <action>
//	arch <libseccomp name>
//	rule <action> <syscall> <n> [<arg> <op> <datum_a> <datum_b>]...
func helperInput(p *profile) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "default %d\n", p.def)
	for _, a := range p.archs {
		fmt.Fprintf(&b, "arch %s\n", a)
	}
	for _, r := range p.rules {
		if r.act == p.def {
			// As in process: libseccomp refuses it, and it changes
			// nothing.
			continue
		}
		for _, name := range r.names {
			if name == "" || len(name) > 64 || strings.ContainsAny(name, " \t\n") {
				// No syscall is called that (libseccomp would not know
				// it), and the line must stay one line the helper reads.
				continue
			}
			if len(r.conds) == 0 {
				fmt.Fprintf(&b, "rule %d %s 0\n", r.act, name)
			}
			for _, group := range r.conds {
				fmt.Fprintf(&b, "rule %d %s %d", r.act, name, len(group))
				for _, c := range group {
					fmt.Fprintf(&b, " %d %d %d %d", c.arg, c.op, c.datumA, c.datB)
				}
				b.WriteByte('\n')
			}
		}
	}
	return b.Bytes()
}

// compileWithHelper builds p's program with the helper at path.
func compileWithHelper(p *profile, path string) ([]unix.SockFilter, error) {
	cmd := exec.Command(path)
	cmd.Stdin = bytes.NewReader(helperInput(p))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			return nil, errors.New("seccomp: " + msg)
		}
		return nil, fmt.Errorf("seccomp: %s: %w", path, err)
	}
	return bpf.Decode(out)
}
