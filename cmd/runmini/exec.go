package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/urfave/cli/v2"

	"github.com/runmini/runmini/libcontainer"
)

var execCommand = &cli.Command{
	Name:      "exec",
	Usage:     "execute new process inside the container",
	ArgsUsage: "<container-id> <command> [command options]",
	Flags: []cli.Flag{
		&cli.StringFlag{Name: "console-socket", Usage: "path to an AF_UNIX socket which will receive a file descriptor referencing the master end of the console's pseudoterminal"},
		&cli.StringFlag{Name: "cwd", Usage: "current working directory in the container"},
		&cli.StringSliceFlag{Name: "env", Aliases: []string{"e"}, Usage: "set environment variables"},
		&cli.BoolFlag{Name: "tty", Aliases: []string{"t"}, Usage: "allocate a pseudo-TTY"},
		&cli.StringFlag{Name: "user", Aliases: []string{"u"}, Usage: "UID (format: <uid>[:<gid>])"},
		&cli.Int64SliceFlag{Name: "additional-gids", Aliases: []string{"g"}, Usage: "additional gids"},
		&cli.StringFlag{Name: "process", Aliases: []string{"p"}, Usage: "path to the process.json"},
		&cli.BoolFlag{Name: "detach", Aliases: []string{"d"}, Usage: "detach from the container's process"},
		&cli.StringFlag{Name: "pid-file", Usage: "specify the file to write the process id to"},
		&cli.BoolFlag{Name: "no-new-privs", Usage: "set the no new privileges value for the process"},
		&cli.StringSliceFlag{Name: "cap", Aliases: []string{"c"}, Usage: "add a capability to the bounding set for the process"},
		&cli.IntFlag{Name: "preserve-fds", Usage: "Pass N additional file descriptors to the container (stdio + $LISTEN_FDS + N in total)"},
	},
	Action: func(c *cli.Context) error {
		if err := checkArgs(c, 1, false); err != nil {
			return err
		}
		detach := c.Bool("detach")
		fwd, err := foreground(detach)
		if err != nil {
			return err
		}
		ctr, err := getContainer(c)
		if err != nil {
			return err
		}
		root, err := rootDir(c)
		if err != nil {
			return err
		}
		cfg := ctr.Config()
		if cfg == nil {
			if err := ctr.ConfigError(); err != nil {
				return err
			}
			return errors.New("cannot exec in a stopped container")
		}
		p, err := execProcess(c, cfg)
		if err != nil {
			return err
		}
		consoleSocket := c.String("console-socket")
		var tty *ttyProxy
		if p.Terminal && consoleSocket == "" {
			if detach {
				return errors.New("cannot allocate tty if runmini will detach without setting console socket")
			}
			if tty, err = newTTYProxy(); err != nil {
				return err
			}
			defer tty.close()
			consoleSocket = tty.path()
		}
		n := c.Int("preserve-fds")
		if n < 0 {
			return fmt.Errorf("invalid --preserve-fds %d", n)
		}
		// The process runs as soon as it exists: every signal first.
		fwd.WaitAll()
		proc, err := ctr.Exec(c.Context, &libcontainer.ExecOpts{
			Process:       p,
			ConsoleSocket: consoleSocket,
			PreserveFDs:   n,
			SeccompCache:  seccompCache(root),
		})
		if err != nil {
			return err
		}
		if path := c.String("pid-file"); path != "" {
			if err := writePidFile(path, proc.Pid); err != nil {
				return err
			}
		}
		if detach {
			return nil
		}
		if tty != nil {
			if err := tty.attach(); err != nil {
				return err
			}
		}
		return exitStatus(waitForeground(proc, fwd.Sigs, tty))
	},
}

// execProcess is the process to run: --process, or the container's own
// process with the command line's args and overrides (runc's rules).
func execProcess(c *cli.Context, cfg *specs.Spec) (*specs.Process, error) {
	if path := c.String("process"); path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read process.json: %w", err)
		}
		p := new(specs.Process)
		if err := json.Unmarshal(b, p); err != nil {
			return nil, fmt.Errorf("parse %s: %w", path, err)
		}
		return p, nil
	}
	args := c.Args().Tail()
	if len(args) == 0 {
		return nil, errors.New("exec args cannot be empty")
	}
	if cfg.Process == nil {
		return nil, errors.New("the container has no process to derive one from: use --process")
	}
	p := *cfg.Process
	p.Args = args
	p.Terminal = c.Bool("tty")
	p.ConsoleSize = nil
	p.Env = append(slices.Clone(p.Env), c.StringSlice("env")...)
	if cwd := c.String("cwd"); cwd != "" {
		p.Cwd = cwd
	}
	if u := c.String("user"); u != "" {
		uid, gid, hasGID := strings.Cut(u, ":")
		n, err := strconv.ParseUint(uid, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("parsing %s as int for uid failed: %w", uid, err)
		}
		p.User.UID = uint32(n)
		if hasGID {
			n, err := strconv.ParseUint(gid, 10, 32)
			if err != nil {
				return nil, fmt.Errorf("parsing %s as int for gid failed: %w", gid, err)
			}
			p.User.GID = uint32(n)
		}
	}
	for _, g := range c.Int64Slice("additional-gids") {
		if g < 0 || g > 1<<32-1 {
			return nil, fmt.Errorf("additional-gids: %d out of range", g)
		}
		p.User.AdditionalGids = append(slices.Clone(p.User.AdditionalGids), uint32(g))
	}
	if caps := c.StringSlice("cap"); len(caps) > 0 {
		pc := specs.LinuxCapabilities{}
		if p.Capabilities != nil {
			pc = *p.Capabilities
		}
		pc.Bounding = append(slices.Clone(pc.Bounding), caps...)
		pc.Effective = append(slices.Clone(pc.Effective), caps...)
		pc.Permitted = append(slices.Clone(pc.Permitted), caps...)
		p.Capabilities = &pc
	}
	if c.Bool("no-new-privs") {
		p.NoNewPrivileges = true
	}
	return &p, nil
}
