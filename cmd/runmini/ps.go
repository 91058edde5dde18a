package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"
)

var psCommand = &cli.Command{
	Name:      "ps",
	Usage:     "ps displays the processes running inside a container",
	ArgsUsage: "<container-id> [ps options]",
	Flags: []cli.Flag{
		&cli.StringFlag{Name: "format", Aliases: []string{"f"}, Value: "table", Usage: "select one of: table or json"},
	},
	Action: func(c *cli.Context) error {
		if err := checkArgs(c, 1, false); err != nil {
			return err
		}
		ctr, err := getContainer(c)
		if err != nil {
			return err
		}
		pids, err := ctr.Processes()
		if err != nil {
			return err
		}
		switch c.String("format") {
		case "json":
			if pids == nil {
				pids = []int{}
			}
			return json.NewEncoder(os.Stdout).Encode(pids)
		case "table":
		default:
			return fmt.Errorf("invalid format option")
		}
		// As runc: the host's ps with the caller's options, keeping the
		// header and the lines of the container's processes.
		args := c.Args().Tail()
		if len(args) == 0 {
			args = []string{"-ef"}
		}
		out, err := exec.Command("ps", args...).Output()
		if err != nil {
			return fmt.Errorf("ps: %w", err)
		}
		lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
		col := -1
		for i, f := range strings.Fields(lines[0]) {
			if f == "PID" {
				col = i
			}
		}
		if col < 0 {
			return fmt.Errorf("ps output has no PID column")
		}
		in := map[string]bool{}
		for _, p := range pids {
			in[strconv.Itoa(p)] = true
		}
		fmt.Println(lines[0])
		for _, l := range lines[1:] {
			if f := strings.Fields(l); len(f) > col && in[f[col]] {
				fmt.Println(l)
			}
		}
		return nil
	},
}
