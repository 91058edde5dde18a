package main

import (
	"github.com/urfave/cli/v2"

	"github.com/runmini/runmini/libcontainer"
)

var startCommand = &cli.Command{
	Name:      "start",
	Usage:     "executes the user defined process in a created container",
	ArgsUsage: "<container-id>",
	Action:    onContainer(func(c *cli.Context, ctr *libcontainer.Container) error { return ctr.Start(c.Context) }),
}
