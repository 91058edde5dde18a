package main

import (
	"github.com/urfave/cli/v2"

	"github.com/runmini/runmini/spec"
)

var killCommand = &cli.Command{
	Name:      "kill",
	Usage:     "kill sends the specified signal (default: SIGTERM) to the container's init process",
	ArgsUsage: "<container-id> [signal]",
	Flags: []cli.Flag{
		&cli.BoolFlag{Name: "all", Aliases: []string{"a"}, Usage: "send the specified signal to all processes inside the container"},
	},
	Action: func(c *cli.Context) error {
		if err := checkArgs(c, 1, false); err != nil {
			return err
		}
		if c.NArg() > 2 {
			return checkArgs(c, 2, true)
		}
		name := c.Args().Get(1)
		if name == "" {
			name = "SIGTERM"
		}
		sig, err := spec.SignalFromString(name)
		if err != nil {
			return err
		}
		ctr, err := getContainer(c)
		if err != nil {
			return err
		}
		return ctr.Signal(sig, c.Bool("all"))
	},
}
