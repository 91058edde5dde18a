package spec

import (
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// maxSignal is SIGRTMAX on Linux: the kernel refuses larger numbers.
const maxSignal = 64

// SignalFromString parses a signal the way `runc kill` does: a decimal
// number, or a name with or without the "SIG" prefix in any case ("KILL",
// "SIGKILL", "sigkill"). Unlike runc, numbers outside 0..64 are refused here
// rather than failing later in kill(2).
func SignalFromString(name string) (unix.Signal, error) {
	if n, err := strconv.Atoi(name); err == nil {
		if n < 0 || n > maxSignal {
			return -1, fmt.Errorf("unknown signal %q", name)
		}
		return unix.Signal(n), nil
	}
	sig := strings.ToUpper(name)
	if !strings.HasPrefix(sig, "SIG") {
		sig = "SIG" + sig
	}
	if s := unix.SignalNum(sig); s != 0 {
		return s, nil
	}
	return -1, fmt.Errorf("unknown signal %q", name)
}
