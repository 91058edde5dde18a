package main

import (
	"encoding/json"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/runmini/runmini/libcontainer"
)

var stateCommand = &cli.Command{
	Name:      "state",
	Usage:     "output the state of a container",
	ArgsUsage: "<container-id>",
	Action: onContainer(func(_ *cli.Context, ctr *libcontainer.Container) error {
		b, err := json.MarshalIndent(ctr.State(), "", "  ")
		if err != nil {
			return err
		}
		_, err = os.Stdout.Write(append(b, '\n'))
		return err
	}),
}
