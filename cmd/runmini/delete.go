package main

import (
	"errors"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/runmini/runmini/libcontainer"
)

var deleteCommand = &cli.Command{
	Name:      "delete",
	Usage:     "delete any resources held by the container often used with detached container",
	ArgsUsage: "<container-id>",
	Flags: []cli.Flag{
		&cli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "Forcibly deletes the container if it is still running (uses SIGKILL)"},
	},
	Action: func(c *cli.Context) error {
		if err := checkArgs(c, 1, true); err != nil {
			return err
		}
		force := c.Bool("force")
		ctr, err := getContainer(c)
		if errors.Is(err, libcontainer.ErrNotExist) {
			if force {
				// Nothing to delete is what force asked for (runc agrees).
				os.RemoveAll(filepath.Join(c.String("root"), c.Args().First()))
				return nil
			}
			return err
		}
		if err != nil {
			return err
		}
		return ctr.Delete(c.Context, force)
	},
}
