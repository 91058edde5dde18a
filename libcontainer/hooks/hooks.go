// Package hooks runs OCI lifecycle hooks.
package hooks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/opencontainers/runtime-spec/specs-go"
)

// outputCap bounds how much of a hook's stdout and stderr is kept for the
// error message; a chatty hook must not blow up the runtime's memory or logs.
const outputCap = 4096

// waitDelay bounds how long Run waits for a hook's output pipes to close
// after the hook exited or was killed: a background child it left behind
// may hold them open forever.
const waitDelay = 2 * time.Second

// RunAll runs hooks in order and stops at the first failure. kind is the
// spec's name for the hook list (prestart, createRuntime, createContainer,
// startContainer, poststart, poststop); errors read like runc's:
// "error running <kind> hook #<n>: ...", n counting from 0.
func RunAll(ctx context.Context, kind string, hooks []specs.Hook, state *specs.State) error {
	for i, h := range hooks {
		if err := Run(ctx, h, state); err != nil {
			return fmt.Errorf("error running %s hook #%d: %w", kind, i, err)
		}
	}
	return nil
}

// Run executes one hook: h.Path with h.Args as argv (h.Args[0] is argv[0];
// h.Path when Args is empty), exactly h.Env as the environment (nothing is
// inherited; a repeated key keeps its last value) and the state as JSON on
// stdin. A non-zero exit is an error that quotes the hook's output. When
// h.Timeout is set the hook is killed after that many seconds; ctx ends it
// early too.
func Run(ctx context.Context, h specs.Hook, state *specs.State) error {
	if !filepath.IsAbs(h.Path) {
		return fmt.Errorf("hook path %q is not absolute", h.Path)
	}
	if h.Timeout != nil && *h.Timeout <= 0 {
		return fmt.Errorf("hook %s: timeout %d must be positive", h.Path, *h.Timeout)
	}
	if state == nil {
		return fmt.Errorf("hook %s: no container state", h.Path)
	}
	stdin, err := json.Marshal(state)
	if err != nil {
		return fmt.Errorf("hook %s: encode state: %w", h.Path, err)
	}

	runCtx := ctx
	if h.Timeout != nil {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeout(ctx, time.Duration(*h.Timeout)*time.Second)
		defer cancel()
	}
	// CommandContext kills the hook by its pid (pidfd where available)
	// when runCtx ends.
	cmd := exec.CommandContext(runCtx, h.Path)
	cmd.Args = h.Args
	if len(cmd.Args) == 0 {
		cmd.Args = []string{h.Path}
	}
	// A nil Env would inherit ours.
	cmd.Env = append([]string{}, h.Env...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr cappedBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = waitDelay

	if err := cmd.Start(); err != nil {
		// Already names the path: "fork/exec /x: no such file or directory".
		return err
	}
	err = cmd.Wait()
	// ErrWaitDelay: the hook exited 0 but left a child holding its output
	// open; the hook itself succeeded.
	if err == nil || errors.Is(err, exec.ErrWaitDelay) {
		return nil
	}
	switch {
	case ctx.Err() != nil:
		err = fmt.Errorf("%w (%w)", ctx.Err(), err)
	case runCtx.Err() != nil:
		err = fmt.Errorf("killed after timeout of %ds: %w", *h.Timeout, context.DeadlineExceeded)
	}
	if out := describeOutput(&stdout, &stderr); out != "" {
		return fmt.Errorf("%s: %w, %s", h.Path, err, out)
	}
	return fmt.Errorf("%s: %w", h.Path, err)
}

func describeOutput(stdout, stderr *cappedBuffer) string {
	var parts []string
	if s := stderr.String(); s != "" {
		parts = append(parts, fmt.Sprintf("stderr: %q", s))
	}
	if s := stdout.String(); s != "" {
		parts = append(parts, fmt.Sprintf("stdout: %q", s))
	}
	return strings.Join(parts, ", ")
}

// cappedBuffer keeps the first outputCap bytes written to it and discards
// the rest while reporting success, so the hook never blocks or sees EPIPE.
type cappedBuffer struct {
	buf       bytes.Buffer
	truncated bool
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	if room := outputCap - b.buf.Len(); room < len(p) {
		b.truncated = true
		b.buf.Write(p[:max(room, 0)])
	} else {
		b.buf.Write(p)
	}
	return len(p), nil
}

func (b *cappedBuffer) String() string {
	s := strings.TrimSpace(b.buf.String())
	if b.truncated {
		s += " [truncated]"
	}
	return s
}
