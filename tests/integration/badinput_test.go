package integration

// Bad input: each case must end in one clear line on stderr that names the
// problem, a non-zero exit, and nothing left behind: no state directory,
// no cgroup named after the id in any hierarchy, no mount under the bundle,
// no process, no container listed.

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/runmini/runmini/tests/testutil"
)

// cliBadCreate runs `cmd --bundle bundle id` (cmd is create or run) in a
// working directory of its own and checks the failure: an error naming one
// of want (case-insensitive), and nothing left behind. It returns the
// error message.
func cliBadCreate(t *testing.T, cmd, bundle, id string, want []string, flags ...string) string {
	t.Helper()
	return cliBadCreateLax(t, false, cmd, bundle, id, want, flags...)
}

// cliBadCreateLax is cliBadCreate that, with lax, checks only the exit
// status and that nothing is left: for the oracle, runc, whose message is
// less clear than what runmini promises in some cases.
func cliBadCreateLax(t *testing.T, lax bool, cmd, bundle, id string, want []string, flags ...string) string {
	t.Helper()
	cwd := t.TempDir()
	args := append([]string{cmd}, flags...)
	args = append(args, "--bundle", bundle, id)
	out, errOut, code := cliRunIn(t, cwd, args...)
	what := "runtime " + strings.Join(args, " ")
	if code == 0 {
		t.Errorf("%s: exit 0, want an error\nstdout: %s", what, out)
	}
	if lax {
		cliNothingLeft(t, id, bundle, cwd)
		return errOut
	}
	msg := cliErrorLine(t, what, errOut)
	t.Logf("%.200s: %.300s", what, msg)
	if !cliContainsAny(msg, want) {
		t.Errorf("%s: error %q does not name the problem (want one of %q)", what, msg, want)
	}
	cliNothingLeft(t, id, bundle, cwd)
	return msg
}

func cliContainsAny(msg string, want []string) bool {
	for _, w := range want {
		if strings.Contains(strings.ToLower(msg), strings.ToLower(w)) {
			return true
		}
	}
	return false
}

func cliSetNamespaces(ns ...specs.LinuxNamespace) func(*specs.Spec) {
	return func(s *specs.Spec) { s.Linux.Namespaces = ns }
}

var cliStdNamespaces = []specs.LinuxNamespace{
	{Type: specs.PIDNamespace}, {Type: specs.IPCNamespace}, {Type: specs.UTSNamespace}, {Type: specs.MountNamespace},
}

func TestBadBundle(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		mutate func(*specs.Spec)
		// edit changes the bundle directory after it was written.
		edit func(t *testing.T, bundle string)
		want []string
		// runcUnclear marks cases where runc's error is not one clear
		// line naming the problem: with runc as the oracle only the exit
		// status and the cleanup are checked.
		runcUnclear bool
		// createOnly: `run` in the foreground legitimately behaves
		// otherwise (runc uses the caller's terminal).
		createOnly bool
	}{
		{
			name: "invalid JSON",
			edit: func(t *testing.T, b string) {
				cliWrite(t, filepath.Join(b, "config.json"), `{"ociVersion": "1.0.2", "process": {`)
			},
			want:        []string{"config.json", "json", "unexpected end"},
			runcUnclear: true, // "unexpected EOF"
		},
		{
			name: "not an object",
			edit: func(t *testing.T, b string) { cliWrite(t, filepath.Join(b, "config.json"), `[1, 2]`) },
			want: []string{"config.json", "json", "cannot unmarshal"},
		},
		{
			name: "missing config.json",
			edit: func(t *testing.T, b string) { cliRemove(t, filepath.Join(b, "config.json")) },
			want: []string{"config.json"},
		},
		{
			name: "missing rootfs",
			edit: func(t *testing.T, b string) { cliRemove(t, filepath.Join(b, "rootfs")) },
			want: []string{"rootfs"},
		},
		{
			name:   "unknown namespace type",
			mutate: cliSetNamespaces(append([]specs.LinuxNamespace{{Type: "foo"}}, cliStdNamespaces...)...),
			want:   []string{`foo`},
		},
		{
			name:   "duplicate namespace type",
			mutate: cliSetNamespaces(append([]specs.LinuxNamespace{{Type: specs.UTSNamespace}}, cliStdNamespaces...)...),
			want:   []string{"uts", "duplicate"},
		},
		{
			name: "namespace path of the wrong type",
			mutate: cliSetNamespaces(append([]specs.LinuxNamespace{
				{Type: specs.NetworkNamespace, Path: "/proc/self/ns/uts"}}, cliStdNamespaces...)...),
			want:        []string{"/proc/self/ns/uts", "network"},
			runcUnclear: true, // three lines, the last one "can't get final child's PID from pipe: EOF"
		},
		{
			name: "missing namespace path",
			mutate: cliSetNamespaces(append([]specs.LinuxNamespace{
				{Type: specs.NetworkNamespace, Path: "/proc/2147483647/ns/net"}}, cliStdNamespaces...)...),
			want: []string{"/proc/2147483647/ns/net"},
		},
		{
			name:   "missing executable",
			mutate: func(s *specs.Spec) { s.Process.Args = []string{"nope"} },
			want:   []string{`exec: "nope": executable file not found in $PATH`},
		},
		{
			name:   "missing executable path",
			mutate: func(s *specs.Spec) { s.Process.Args = []string{"/bin/nope"} },
			want:   []string{"/bin/nope"},
		},
		{
			name:   "no args",
			mutate: func(s *specs.Spec) { s.Process.Args = nil },
			want:   []string{"args"},
		},
		{
			name:   "relative cwd",
			mutate: func(s *specs.Spec) { s.Process.Cwd = "tmp" },
			want:   []string{"cwd"},
		},
		{
			name: "terminal without console socket",
			mutate: func(s *specs.Spec) {
				s.Process.Terminal = true
			},
			want:       []string{"console socket", "console-socket"},
			createOnly: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			bundle := testutil.Bundle(t, tc.mutate)
			if tc.edit != nil {
				tc.edit(t, bundle)
			}
			lax := tc.runcUnclear && cliIsRunc()
			cliBadCreateLax(t, lax, "create", bundle, testutil.ID(t), tc.want)
			if !tc.createOnly {
				// run goes through the same checks, and must clean up too.
				cliBadCreateLax(t, lax, "run", bundle, testutil.ID(t), tc.want)
			}
		})
	}
	t.Run("missing bundle", func(t *testing.T) {
		t.Parallel()
		missing := filepath.Join(t.TempDir(), "nothing-here")
		cliBadCreate(t, "create", missing, testutil.ID(t), []string{missing, "config.json"})
	})
	t.Run("console socket without terminal", func(t *testing.T) {
		t.Parallel()
		bundle := testutil.Bundle(t, nil)
		sock, _ := cliConsoleSocket(t)
		cliBadCreate(t, "create", bundle, testutil.ID(t), []string{"console socket", "tty"}, "--console-socket", sock)
	})
}

func cliWrite(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func cliRemove(t *testing.T, path string) {
	t.Helper()
	if err := os.RemoveAll(path); err != nil {
		t.Fatal(err)
	}
}

func TestBadID(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, id string }{
		{"empty", ""},
		{"slash", "/"},
		{"dot", "."},
		{"dotdot", ".."},
		{"with slash", "a/b"},
		{"escape", "../escape"},
		{"space", "a b"},
		{"colon", "a:b"},
		{"non-ascii", "caf\u00e9"},
		{"newline", "a\nb"},
		{"over-long for a file name", strings.Repeat("x", 300)},
		{"over-long", strings.Repeat("y", 5000)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// A bundle each: runc works with the bundle as its working
			// directory, and the leftover check looks for processes there.
			bundle := testutil.Bundle(t, func(s *specs.Spec) { s.Process.Args = []string{"sleep", "1000"} })
			msg := cliBadCreate(t, "create", bundle, tc.id, []string{"id", "name too long"})
			if strings.Contains(msg, "\n") {
				t.Errorf("error for id %q spans lines", tc.id)
			}
			// The other commands refuse it as well, and do not touch
			// the filesystem outside the root.
			for _, args := range [][]string{{"state", tc.id}, {"start", tc.id}, {"kill", tc.id, "KILL"}, {"delete", tc.id}} {
				cliFail(t, args...)
			}
			cliNothingLeft(t, tc.id, bundle, "")
		})
	}
	// The runtime's root must not be escaped by delete: a sibling of the
	// root named like the id's target survives.
	t.Run("delete escape", func(t *testing.T) {
		t.Parallel()
		root := testutil.Runtime(t).Root
		victim := filepath.Join(filepath.Dir(root), "victim")
		if err := os.Mkdir(victim, 0o755); err != nil {
			t.Fatal(err)
		}
		cliFail(t, "delete", "../victim")
		cliFail(t, "delete", "--force", "../victim")
		if _, err := os.Stat(victim); err != nil {
			t.Errorf("delete ../victim removed a directory outside the root: %v", err)
		}
	})
}

func TestDuplicateID(t *testing.T) {
	t.Parallel()
	bundle := testutil.Bundle(t, func(s *specs.Spec) { s.Process.Args = []string{"sleep", "1000"} })
	other := testutil.Bundle(t, func(s *specs.Spec) { s.Process.Args = []string{"sleep", "1000"} })
	id := testutil.ID(t)
	cliMust(t, "create", "--bundle", bundle, id)
	before := cliGetState(t, id)

	var msgs []string
	for _, cmd := range []string{"create", "run"} {
		cwd := t.TempDir()
		_, errOut, code := cliRunIn(t, cwd, cmd, "--bundle", other, id)
		if code == 0 {
			t.Errorf("%s of a duplicate id: exit 0", cmd)
		}
		msgs = append(msgs, cliErrorLine(t, cmd+" of a duplicate id", errOut))
		// The existing container is untouched.
		after := cliGetState(t, id)
		if after.Status != "created" || after.Pid != before.Pid || after.Bundle != bundle || !after.Created.Equal(before.Created) {
			t.Errorf("%s of a duplicate id changed the container: %+v, was %+v", cmd, after, before)
		}
		cliNothingLeft(t, "", other, cwd, id)
	}
	cliMust(t, "start", id)
	cliWaitStatus(t, id, "running")
	cliMust(t, "delete", "-f", id)

	t.Run("runc's text", func(t *testing.T) {
		for _, msg := range msgs {
			if !strings.Contains(msg, "container with given ID already exists") {
				t.Errorf("duplicate id: %q, want runc's \"container with given ID already exists\"", msg)
			}
		}
	})
}

func TestBadSignal(t *testing.T) {
	t.Parallel()
	bundle := testutil.Bundle(t, func(s *specs.Spec) { s.Process.Args = []string{"sleep", "1000"} })
	id := testutil.ID(t)
	cliMust(t, "run", "-d", "--bundle", bundle, id)
	st := cliWaitStatus(t, id, "running")
	for _, sig := range []string{"FOO", "SIGFOO", "SIG", "KILLL", "-9"} {
		msg := cliFail(t, "kill", id, sig)
		if !strings.Contains(msg, `unknown signal "`+sig+`"`) && !(cliIsRunc() && sig == "-9") {
			t.Errorf("kill %s: error %q, want runc's %q", sig, msg, `unknown signal "`+sig+`"`)
		}
	}
	// A number that is no signal fails too, without a text to compare
	// (runc passes it to kill(2)).
	cliFail(t, "kill", id, "99")
	cliFail(t, "kill", "--all", id, "FOO")
	if after := cliGetState(t, id); after.Status != "running" || after.Pid != st.Pid || !cliProcAlive(st.Pid, 0) {
		t.Errorf("a refused kill changed the container: %+v", after)
	}
	// Too many arguments is an error too, not a signal.
	cliFail(t, "kill", id, "KILL", "extra")
	if !cliProcAlive(st.Pid, 0) {
		t.Errorf("kill with an extra argument killed the container")
	}
	cliMust(t, "delete", "-f", id)
}

// TestBadUsage: missing or extra arguments are one-line errors too.
func TestBadUsage(t *testing.T) {
	t.Parallel()
	id := testutil.ID(t)
	for _, args := range [][]string{
		{"create"}, {"start"}, {"state"}, {"kill"}, {"delete"}, {"run"},
		{"start", id, "extra"}, {"state", id, "extra"}, {"delete", id, "extra"},
		{"list", "extra"}, {"spec", "extra"},
		{"no-such-command"},
	} {
		msg := cliFail(t, args...)
		if msg == "" {
			t.Errorf("%q: no error message", args)
		}
	}
	cliNothingLeft(t, id, "", "")
}
