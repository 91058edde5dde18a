package main

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/runmini/runmini/libcontainer"
	"github.com/runmini/runmini/libcontainer/seccomp"
	"github.com/runmini/runmini/spec"
)

// checkArgs enforces runc's argument counts with runc's message.
func checkArgs(c *cli.Context, n int, exact bool) error {
	got := c.NArg()
	if (exact && got != n) || (!exact && got < n) {
		kind := "exactly"
		if !exact {
			kind = "at least"
		}
		s := "s"
		if n == 1 {
			s = ""
		}
		return fmt.Errorf("%s: %q requires %s %d argument%s", c.App.Name, c.Command.Name, kind, n, s)
	}
	return nil
}

func containerID(c *cli.Context) (string, error) {
	id := c.Args().First()
	if id == "" {
		return "", errors.New("container id cannot be empty")
	}
	if err := spec.ValidateID(id); err != nil {
		return "", err
	}
	return id, nil
}

func getContainer(c *cli.Context) (*libcontainer.Container, error) {
	id, err := containerID(c)
	if err != nil {
		return nil, err
	}
	return libcontainer.Load(c.String("root"), id)
}

func rootDir(c *cli.Context) (string, error) {
	return filepath.Abs(c.String("root"))
}

// seccompCache keeps compiled seccomp programs in root, from one runmini
// to the next (see seccomp.NewDirCache).
func seccompCache(root string) *seccomp.Cache {
	return seccomp.NewDirCache(filepath.Join(root, seccomp.CacheDirName))
}

// onContainer is the action of a command that takes just a container id
// and calls one operation on the container.
func onContainer(do func(*cli.Context, *libcontainer.Container) error) cli.ActionFunc {
	return func(c *cli.Context) error {
		if err := checkArgs(c, 1, true); err != nil {
			return err
		}
		ctr, err := getContainer(c)
		if err != nil {
			return err
		}
		return do(c, ctr)
	}
}
