package main

import (
	"errors"
	"io"
	"maps"
	"slices"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/runmini/runmini/cmd/runmini/internal/catch"
)

// package catch starts a foreground catch from its init only when
// MayDetach says no argument could set --detach: whenever it says so,
// urfave/cli, parsing the real flags of run and exec, must find detach
// false.
func TestMayDetach(t *testing.T) {
	for _, c := range []struct {
		cmd  *cli.Command
		args []string
		may  bool
	}{
		{runCommand, []string{"-b", "/bundle", "id"}, false},
		{runCommand, []string{"--bundle=/b", "--pid-file", "/p", "id"}, false},
		{runCommand, []string{"--keep", "id"}, false},
		{runCommand, []string{"-d", "id"}, true},
		{runCommand, []string{"--d", "id"}, true},
		{runCommand, []string{"-detach", "id"}, true},
		{runCommand, []string{"--detach", "id"}, true},
		{runCommand, []string{"--detach=true", "id"}, true},
		{runCommand, []string{"-d=false", "id"}, true},
		{execCommand, []string{"--cwd", "/", "-e", "A=1", "id", "sh"}, false},
		{execCommand, []string{"-d", "id", "sh"}, true},
		{execCommand, []string{"id", "ls", "-d", "/"}, true}, // conservative: the process's own -d
	} {
		if got := catch.MayDetach(c.args); got != c.may {
			t.Errorf("MayDetach(%q) = %v, want %v", c.args, got, c.may)
		}
		var detach bool
		app := &cli.App{
			Commands: []*cli.Command{{Name: c.cmd.Name, Flags: c.cmd.Flags, Action: func(ctx *cli.Context) error {
				detach = ctx.Bool("detach")
				return nil
			}}},
			Writer:         io.Discard,
			ExitErrHandler: func(*cli.Context, error) {},
		}
		if err := app.Run(append([]string{"runmini", c.cmd.Name}, c.args...)); err != nil {
			t.Fatalf("%s %q: %v", c.cmd.Name, c.args, err)
		}
		if detach && !catch.MayDetach(c.args) {
			t.Errorf("%s %q: urfave/cli sets --detach, MayDetach says it cannot", c.cmd.Name, c.args)
		}
	}
}

// catch.CommandArgs finds the command where urfave/cli, parsing the app's
// real global flags, does.
func TestCommandArgs(t *testing.T) {
	errStop := errors.New("stop before the command")
	for _, args := range [][]string{
		{"run", "-b", "/b", "id"},
		{"--root", "/r", "run", "id"},
		{"--root=/r", "--debug", "exec", "id", "sh"},
		{"--log", "run", "state", "id"},
		{"--log-format", "json", "--systemd-cgroup", "list"},
		{"--debug", "run", "--detach", "id"},
		{"--bogus", "run", "id"},
		{"--", "run", "id"},
		{"--root", "/r"},
	} {
		got := catch.CommandArgs(args)
		var want []string
		app := newApp()
		app.Writer, app.ErrWriter = io.Discard, io.Discard
		app.Before = func(c *cli.Context) error {
			want = c.Args().Slice()
			return errStop
		}
		if err := app.Run(append([]string{"runmini"}, args...)); !errors.Is(err, errStop) {
			// urfave/cli stopped before the command: commandArgs must not
			// have found one.
			want = nil
		}
		if len(want) == 0 {
			want = nil
		}
		if got != nil && !slices.Equal(got, want) {
			t.Errorf("CommandArgs(%q) = %q, urfave/cli finds %q", args, got, want)
		}
		if got == nil && want != nil && args[0] != "--" {
			t.Errorf("CommandArgs(%q) found no command, urfave/cli finds %q", args, want)
		}
	}
}

// catch.GlobalFlags, which package catch reads the command line with
// before urfave/cli exists, names the app's global flags and which take a
// value.
func TestGlobalFlags(t *testing.T) {
	want := map[string]bool{}
	for _, f := range newApp().Flags {
		v, ok := f.(cli.DocGenerationFlag)
		if !ok {
			t.Fatalf("flag %v: cannot tell whether it takes a value", f.Names())
		}
		for _, n := range f.Names() {
			want[n] = v.TakesValue()
		}
	}
	if !maps.Equal(catch.GlobalFlags, want) {
		t.Fatalf("catch.GlobalFlags = %v, the app's flags are %v", catch.GlobalFlags, want)
	}
}
