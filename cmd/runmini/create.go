package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/urfave/cli/v2"

	"github.com/runmini/runmini/libcontainer"
	"github.com/runmini/runmini/spec"
)

var createFlags = []cli.Flag{
	&cli.StringFlag{Name: "bundle", Aliases: []string{"b"}, Value: "", Usage: "path to the root of the bundle directory, defaults to the current directory"},
	&cli.StringFlag{Name: "console-socket", Usage: "path to an AF_UNIX socket which will receive a file descriptor referencing the master end of the console's pseudoterminal"},
	&cli.StringFlag{Name: "pid-file", Usage: "specify the file to write the process id to"},
	&cli.BoolFlag{Name: "no-pivot", Usage: "do not use pivot root to jail process inside rootfs.  This should be used whenever the rootfs is on top of a ramdisk"},
	&cli.BoolFlag{Name: "no-new-keyring", Usage: "do not create a new session keyring for the container.  This will cause the container to inherit the calling processes session key"},
	&cli.IntFlag{Name: "preserve-fds", Usage: "Pass N additional file descriptors to the container (stdio + $LISTEN_FDS + N in total)"},
}

var createCommand = &cli.Command{
	Name:      "create",
	Usage:     "create a container",
	ArgsUsage: "<container-id>",
	Flags:     createFlags,
	Action: func(c *cli.Context) error {
		if err := checkArgs(c, 1, true); err != nil {
			return err
		}
		// Not in the foreground: never a tty proxy to close.
		_, _, _, err := createContainer(c, false, nil)
		return err
	},
}

// createContainer loads and validates the bundle, then creates the
// container. Nothing is created before the input has been checked. In the
// foreground, a terminal container without --console-socket gets its pty
// through a ttyProxy (returned; the caller attaches and closes it).
// run, when not nil, is how `run` wants the container started (see
// runStart).
func createContainer(c *cli.Context, foreground bool, run *runStart) (_ *libcontainer.Container, _ *libcontainer.Process, tty *ttyProxy, retErr error) {
	id, err := containerID(c)
	if err != nil {
		return nil, nil, nil, err
	}
	root, err := rootDir(c)
	if err != nil {
		return nil, nil, nil, err
	}
	bundle := c.String("bundle")
	if bundle == "" {
		bundle = "."
	}
	bundle, err = filepath.Abs(bundle)
	if err != nil {
		return nil, nil, nil, err
	}
	s, specJSON, err := spec.LoadJSON(bundle)
	if err != nil {
		return nil, nil, nil, err
	}
	if err := spec.Validate(s, bundle); err != nil {
		return nil, nil, nil, err
	}
	rootfs := spec.RootfsPath(s, bundle)
	n := c.Int("preserve-fds")
	if n < 0 {
		return nil, nil, nil, fmt.Errorf("invalid --preserve-fds %d", n)
	}
	consoleSocket := c.String("console-socket")
	if foreground && consoleSocket == "" && s.Process != nil && s.Process.Terminal {
		if tty, err = newTTYProxy(); err != nil {
			return nil, nil, nil, err
		}
		defer func() {
			if retErr != nil {
				tty.close()
			}
		}()
		consoleSocket = tty.path()
	}
	opts := &libcontainer.CreateOpts{
		Root:          root,
		ID:            id,
		Bundle:        bundle,
		Spec:          s,
		SpecJSON:      specJSON,
		Rootfs:        rootfs,
		ConsoleSocket: consoleSocket,
		NoPivot:       c.Bool("no-pivot"),
		NoNewKeyring:  c.Bool("no-new-keyring"),
		PreserveFDs:   n,
		SeccompCache:  seccompCache(root),
	}
	if run != nil {
		// A terminal of ours must be attached before the process starts.
		opts.BeforeCreate, opts.BeforeStart, opts.StartNow = run.beforeCreate, run.beforeStart, tty == nil
	}
	ctr, proc, err := libcontainer.Create(c.Context, opts)
	if err != nil {
		return nil, nil, nil, err
	}
	if p := c.String("pid-file"); p != "" {
		if err := writePidFile(p, proc.Pid); err != nil {
			ctr.Delete(c.Context, true)
			return nil, nil, nil, err
		}
	}
	return ctr, proc, tty, nil
}

// runStart is how `run` has its container started: it waits for its
// catch of the signals that would end it before anything is made
// (beforeCreate) and for its catch of every signal before the process
// starts (beforeStart), and the init executes the process as soon as it
// is created unless a terminal must be attached first.
type runStart struct{ beforeCreate, beforeStart func() }

// writePidFile writes atomically: a reader never sees an empty file.
func writePidFile(path string, pid int) error {
	path, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(pid)), 0o644); err != nil {
		return fmt.Errorf("write pid file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write pid file: %w", err)
	}
	return nil
}
