package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/urfave/cli/v2"
)

var updateCommand = &cli.Command{
	Name:      "update",
	Usage:     "update container resource constraints",
	ArgsUsage: "<container-id>",
	Flags: []cli.Flag{
		&cli.StringFlag{Name: "resources", Aliases: []string{"r"}, Usage: `path to a file containing the resources to update or '-' to read from the standard input`},
		&cli.StringFlag{Name: "blkio-weight", Usage: "Specifies per cgroup weight, range is from 10 to 1000"},
		&cli.StringFlag{Name: "cpu-period", Usage: "CPU CFS period to be used for hardcapping (in usecs). 0 to use system default"},
		&cli.StringFlag{Name: "cpu-quota", Usage: "CPU CFS hardcap limit (in usecs). Allowed cpu time in a given period"},
		&cli.StringFlag{Name: "cpu-share", Usage: "CPU shares (relative weight vs. other containers)"},
		&cli.StringFlag{Name: "cpuset-cpus", Usage: "CPU(s) to use"},
		&cli.StringFlag{Name: "cpuset-mems", Usage: "Memory node(s) to use"},
		&cli.StringFlag{Name: "memory", Usage: "Memory limit (in bytes, or with a k, m or g suffix)"},
		&cli.StringFlag{Name: "memory-reservation", Usage: "Memory reservation or soft_limit (in bytes)"},
		&cli.StringFlag{Name: "memory-swap", Usage: "Total memory usage (memory + swap); set '-1' to enable unlimited swap"},
		&cli.StringFlag{Name: "pids-limit", Usage: "Maximum number of pids allowed in the container"},
	},
	Action: func(c *cli.Context) error {
		if err := checkArgs(c, 1, true); err != nil {
			return err
		}
		ctr, err := getContainer(c)
		if err != nil {
			return err
		}
		if err := ctr.ConfigError(); err != nil {
			return err
		}
		r := &specs.LinuxResources{}
		if cfg := ctr.Config(); cfg != nil && cfg.Linux != nil && cfg.Linux.Resources != nil {
			cur := *cfg.Linux.Resources
			r = &cur
		}
		if err := mergeResources(c, r); err != nil {
			return err
		}
		return ctr.Update(r)
	},
}

// mergeResources lays the requested values over the current ones: a
// resources file first, then each flag, as runc does.
func mergeResources(c *cli.Context, r *specs.LinuxResources) error {
	if path := c.String("resources"); path != "" {
		var in io.Reader = os.Stdin
		if path != "-" {
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			defer f.Close()
			in = f
		}
		var upd specs.LinuxResources
		if err := json.NewDecoder(in).Decode(&upd); err != nil {
			return fmt.Errorf("decode resources: %w", err)
		}
		if upd.Memory != nil {
			r.Memory = upd.Memory
		}
		if upd.CPU != nil {
			r.CPU = upd.CPU
		}
		if upd.Pids != nil {
			r.Pids = upd.Pids
		}
		if upd.BlockIO != nil {
			r.BlockIO = upd.BlockIO
		}
		if upd.HugepageLimits != nil {
			r.HugepageLimits = upd.HugepageLimits
		}
		if upd.Unified != nil {
			r.Unified = upd.Unified
		}
	}
	if r.Memory == nil {
		r.Memory = &specs.LinuxMemory{}
	}
	if r.CPU == nil {
		r.CPU = &specs.LinuxCPU{}
	}
	set := func(name string, parse func(string) error) error {
		if v := c.String(name); v != "" {
			if err := parse(v); err != nil {
				return fmt.Errorf("invalid value for %s: %w", name, err)
			}
		}
		return nil
	}
	bytes := func(dst **int64) func(string) error {
		return func(v string) error {
			n, err := parseBytes(v)
			*dst = &n
			return err
		}
	}
	u64 := func(dst **uint64) func(string) error {
		return func(v string) error {
			n, err := strconv.ParseUint(v, 10, 64)
			*dst = &n
			return err
		}
	}
	steps := []struct {
		name  string
		parse func(string) error
	}{
		{"memory", bytes(&r.Memory.Limit)},
		{"memory-reservation", bytes(&r.Memory.Reservation)},
		{"memory-swap", bytes(&r.Memory.Swap)},
		{"cpu-period", u64(&r.CPU.Period)},
		{"cpu-share", u64(&r.CPU.Shares)},
		{"cpu-quota", func(v string) error {
			n, err := strconv.ParseInt(v, 10, 64)
			r.CPU.Quota = &n
			return err
		}},
		{"cpuset-cpus", func(v string) error { r.CPU.Cpus = v; return nil }},
		{"cpuset-mems", func(v string) error { r.CPU.Mems = v; return nil }},
		{"pids-limit", func(v string) error {
			n, err := strconv.ParseInt(v, 10, 64)
			r.Pids = &specs.LinuxPids{Limit: &n}
			return err
		}},
		{"blkio-weight", func(v string) error {
			n, err := strconv.ParseUint(v, 10, 16)
			w := uint16(n)
			if r.BlockIO == nil {
				r.BlockIO = &specs.LinuxBlockIO{}
			}
			r.BlockIO.Weight = &w
			return err
		}},
	}
	for _, st := range steps {
		if err := set(st.name, st.parse); err != nil {
			return err
		}
	}
	return nil
}

// parseBytes reads "1048576", "512k", "64m", "1g" or "-1" (unlimited).
func parseBytes(v string) (int64, error) {
	if v == "-1" {
		return -1, nil
	}
	mult := int64(1)
	switch suffix := strings.ToLower(v[len(v)-1:]); suffix {
	case "k":
		mult = 1 << 10
	case "m":
		mult = 1 << 20
	case "g":
		mult = 1 << 30
	}
	if mult != 1 {
		v = v[:len(v)-1]
	}
	n, err := strconv.ParseInt(strings.TrimSuffix(strings.ToLower(v), "b"), 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a size", v)
	}
	return n * mult, nil
}
