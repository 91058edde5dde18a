package nsenter

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// Environment variables read by the constructor; see the package comment.
const (
	EnvPipe    = "_RUNMINI_NSPIPE"
	EnvSetns   = "_RUNMINI_SETNS"
	EnvUnshare = "_RUNMINI_UNSHARE"
	EnvCgroup  = "_RUNMINI_CGROUP"
)

// Skipped tells, in a process's Go code, that its parent asked for the
// constructor (the environment still names a pipe) but this binary has none
// to run: it was built without cgo. Such a process must report the error
// on the pipe, or the parent would wait for the report forever.
func Skipped() (pipeFD int, skipped bool) {
	v := os.Getenv(EnvPipe)
	if v == "" {
		return -1, false
	}
	fd, err := strconv.Atoi(v)
	if err != nil {
		return -1, true
	}
	return fd, true
}

// maxReport bounds the line read from the pipe; the constructor never
// writes more than a few hundred bytes.
const maxReport = 1024

// ReadReport reads the constructor's one-line report from the read end of
// the pipe named by EnvPipe. It returns the pid of the process that went on
// into the Go runtime when the constructor forked, 0 when it did not, or an
// error carrying the constructor's message.
func ReadReport(r io.Reader) (int, error) {
	line, err := bufio.NewReaderSize(io.LimitReader(r, maxReport), maxReport).ReadString('\n')
	if err != nil {
		if errors.Is(err, io.EOF) {
			if line == "" {
				return 0, errors.New("nsenter: no report (binary built without the nsenter constructor?)")
			}
			return 0, fmt.Errorf("nsenter: truncated report %q", line)
		}
		return 0, fmt.Errorf("nsenter: read report: %w", err)
	}
	line = strings.TrimSuffix(line, "\n")
	switch {
	case line == "ok":
		return 0, nil
	case strings.HasPrefix(line, "pid "):
		pid, err := strconv.Atoi(strings.TrimPrefix(line, "pid "))
		if err != nil || pid <= 0 {
			return 0, fmt.Errorf("nsenter: malformed report %q", line)
		}
		return pid, nil
	case strings.HasPrefix(line, "error "):
		return 0, fmt.Errorf("nsenter: %s", strings.TrimPrefix(line, "error "))
	}
	return 0, fmt.Errorf("nsenter: malformed report %q", line)
}
