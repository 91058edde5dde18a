package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/runmini/runmini/spec"
)

var specCommand = &cli.Command{
	Name:  "spec",
	Usage: "create a new specification file",
	Flags: []cli.Flag{
		&cli.StringFlag{Name: "bundle", Aliases: []string{"b"}, Usage: "path to the root of the bundle directory"},
		&cli.BoolFlag{Name: "rootless", Usage: "generate a configuration for a rootless container"},
	},
	Action: func(c *cli.Context) error {
		if err := checkArgs(c, 0, true); err != nil {
			return err
		}
		path := filepath.Join(c.String("bundle"), "config.json")
		if _, err := os.Stat(path); err == nil {
			return errors.New("File config.json exists. Remove it first")
		} else if !errors.Is(err, os.ErrNotExist) {
			return err
		}
		b, err := json.MarshalIndent(spec.Default(c.Bool("rootless")), "", "\t")
		if err != nil {
			return err
		}
		if err := os.WriteFile(path, append(b, '\n'), 0o666); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
		return nil
	},
}

var featuresCommand = &cli.Command{
	Name:  "features",
	Usage: "show the enabled features",
	Action: func(c *cli.Context) error {
		if err := checkArgs(c, 0, true); err != nil {
			return err
		}
		b, err := json.MarshalIndent(spec.Features(), "", "    ")
		if err != nil {
			return err
		}
		os.Stdout.Write(append(b, '\n'))
		return nil
	},
}
