package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/runmini/runmini/cmd/runmini/internal/catch"
	"github.com/runmini/runmini/libcontainer"
	"golang.org/x/sys/unix"
)

var runCommand = &cli.Command{
	Name:      "run",
	Usage:     "create and run a container",
	ArgsUsage: "<container-id>",
	Flags: append([]cli.Flag{
		&cli.BoolFlag{Name: "detach", Aliases: []string{"d"}, Usage: "detach from the container's process"},
		&cli.BoolFlag{Name: "keep", Usage: "do not delete the container after it exits"},
	}, createFlags...),
	Action: func(c *cli.Context) error {
		if err := checkArgs(c, 1, true); err != nil {
			return err
		}
		detach := c.Bool("detach")
		fwd, err := foreground(detach)
		if err != nil {
			return err
		}
		ctr, proc, tty, err := createContainer(c, !detach, &runStart{beforeCreate: fwd.WaitFatal, beforeStart: fwd.WaitAll})
		if err != nil {
			return err
		}
		if tty != nil {
			defer tty.close()
			if err := tty.attach(); err != nil {
				ctr.Delete(c.Context, true)
				return err
			}
		}
		fwd.WaitAll()
		if err := ctr.Start(c.Context); err != nil {
			ctr.Delete(c.Context, true)
			return err
		}
		if detach {
			return nil
		}
		ws := waitForeground(proc, fwd.Sigs, tty)
		if !c.Bool("keep") {
			if err := ctr.Delete(c.Context, true); err != nil {
				return err
			}
		}
		return exitStatus(ws)
	},
}

// foreground prepares to wait for a process we are about to start, unless
// it is to be detached (nil, nothing to wait for): the process may become
// our grandchild (joining a pid namespace makes nsenter fork), so we become
// a subreaper, and every signal is caught, to be forwarded to it (see
// package catch; usually its init started the catch already).
func foreground(detach bool) (*catch.Catch, error) {
	if detach {
		return nil, nil
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return nil, fmt.Errorf("become subreaper: %w", err)
	}
	if c := catch.Early(); c != nil {
		return c, nil
	}
	return catch.Start(), nil
}

// waitForeground waits for a process the caller started in the foreground,
// forwarding the signals it receives (SIGWINCH resizes the tty instead).
func waitForeground(proc *libcontainer.Process, sigs chan os.Signal, tty *ttyProxy) unix.WaitStatus {
	done := make(chan unix.WaitStatus, 1)
	go func() {
		ws, _ := proc.Wait()
		done <- ws
	}()
	for {
		select {
		case s := <-sigs:
			sig := s.(unix.Signal)
			if sig == unix.SIGCHLD || sig == unix.SIGURG || sig == unix.SIGPIPE {
				continue
			}
			if sig == unix.SIGWINCH && tty != nil {
				tty.resize()
				continue
			}
			unix.Kill(proc.Pid, sig)
		case ws := <-done:
			return ws
		}
	}
}

// exitStatus is the container's status as a shell reports it: the exit
// code, or 128+signal.
func exitStatus(ws unix.WaitStatus) error {
	code := ws.ExitStatus()
	if ws.Signaled() {
		code = 128 + int(ws.Signal())
	}
	if code == 0 {
		return nil
	}
	return exitError(code)
}
