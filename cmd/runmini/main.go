// Command runmini is a low-level OCI runtime with runc's command line.
package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/urfave/cli/v2"

	// Maps the binary and the heap it is about to use in one go (see the
	// packages).
	_ "github.com/runmini/runmini/internal/prefault/cliheap"
	_ "github.com/runmini/runmini/internal/prefault/segments"
	"github.com/runmini/runmini/libcontainer/initproc"
)

// version is set by the Makefile (-X main.version=...).
var (
	version = "0.1.0-dev"
	commit  = ""
)

func main() {
	// Without runmini-init beside us, the init runs from this binary.
	if initproc.IsInit() {
		initproc.Init() // never returns
	}
	app := newApp()
	if err := app.Run(os.Args); err != nil {
		fatal(err)
	}
}

func newApp() *cli.App {
	cli.VersionPrinter = func(c *cli.Context) {
		fmt.Printf("runmini version %s\n", version)
		if commit != "" {
			fmt.Printf("commit: %s\n", commit)
		}
		fmt.Printf("spec: %s\ngo: %s\n", specs.Version, runtime.Version())
	}
	return &cli.App{
		Name:    "runmini",
		Usage:   "a small, fast OCI container runtime with runc's command line",
		Version: version,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "root", Value: "/run/runmini", Usage: "root directory for storage of container state (this should be located in tmpfs)"},
			&cli.StringFlag{Name: "log", Usage: "set the log file to write runmini logs to (default is stderr)"},
			&cli.StringFlag{Name: "log-format", Value: "text", Usage: "set the log format ('text' (default), or 'json')"},
			&cli.BoolFlag{Name: "debug", Usage: "enable debug logging"},
			&cli.BoolFlag{Name: "systemd-cgroup", Usage: "enable systemd cgroup support"},
			&cli.StringFlag{Name: "criu", Hidden: true, Usage: "accepted for runc compatibility; checkpointing is not supported"},
			&cli.StringFlag{Name: "rootless", Value: "auto", Hidden: true, Usage: "accepted for runc compatibility"},
		},
		Before: setup,
		Commands: []*cli.Command{
			createCommand,
			startCommand,
			runCommand,
			stateCommand,
			killCommand,
			execCommand,
			pauseCommand,
			resumeCommand,
			psCommand,
			updateCommand,
			deleteCommand,
			listCommand,
			specCommand,
			featuresCommand,
		},
		// Errors are printed once, by fatal.
		ExitErrHandler: func(*cli.Context, error) {},
		// A usage error is one line, not the help page.
		OnUsageError: func(c *cli.Context, err error, _ bool) error { return err },
	}
}

var logFile io.Writer

func setup(c *cli.Context) error {
	var w io.Writer = os.Stderr
	if p := c.String("log"); p != "" {
		f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_APPEND|os.O_SYNC, 0o644)
		if err != nil {
			return fmt.Errorf("open log file: %w", err)
		}
		w, logFile = f, f
	}
	opts := &slog.HandlerOptions{Level: slog.LevelWarn, ReplaceAttr: lowerLevel}
	if c.Bool("debug") {
		opts.Level = slog.LevelDebug
	}
	var h slog.Handler
	switch c.String("log-format") {
	case "text":
		h = slog.NewTextHandler(w, opts)
	case "json":
		h = slog.NewJSONHandler(w, opts)
	default:
		return fmt.Errorf("invalid log-format: %s", c.String("log-format"))
	}
	slog.SetDefault(slog.New(h))
	if c.Bool("systemd-cgroup") {
		if _, err := os.Stat("/run/systemd/system"); err != nil {
			return fmt.Errorf("systemd cgroup flag passed, but systemd support for managing cgroups is not available")
		}
		return fmt.Errorf("systemd cgroup driver is not supported by this build of runmini; use the cgroupfs driver (omit --systemd-cgroup)")
	}
	return nil
}

// lowerLevel writes levels as runc (logrus) does, "error" rather than slog's
// "ERROR": containerd's runc shim and podman read runtime logs written by
// runc and match the level as it spells it.
func lowerLevel(_ []string, a slog.Attr) slog.Attr {
	if a.Key == slog.LevelKey && a.Value.Kind() == slog.KindAny {
		if l, ok := a.Value.Any().(slog.Level); ok {
			a.Value = slog.StringValue(strings.ToLower(l.String()))
		}
	}
	return a
}

// exitError carries a process exit code (run) without an error message.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// fatal prints one line and exits 1. With --log the error also goes to the
// log file, where containerd's runc shim and podman look for it.
func fatal(err error) {
	if code, ok := err.(exitError); ok {
		os.Exit(int(code))
	}
	msg := strings.TrimSpace(err.Error())
	if logFile != nil {
		slog.Error(msg)
	}
	fmt.Fprintln(os.Stderr, msg)
	os.Exit(1)
}
