// Command containerd-shim-mini-v2 is runmini's containerd runtime v2 shim
// (runtime type io.containerd.mini.v2).
//
// containerd runs it as `... -namespace NS -address ADDR -publish-binary
// BIN -id ID [-debug] start` (prints the shim's address), as `... -bundle
// DIR delete` after a shim died (prints a DeleteResponse), and as `-info`
// (prints the RuntimeInfo). With no command it is the long-running shim
// that `start` launched.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/runmini/runmini/libcontainer/initproc"
	"github.com/runmini/runmini/shim"
)

func main() {
	// The shim's binary can also be a container's init when runmini-init
	// is not installed beside it; that must happen before anything else.
	if initproc.IsInit() {
		initproc.Init()
	}

	var o shim.Opts
	fs := flag.NewFlagSet(os.Args[0], flag.ContinueOnError)
	fs.StringVar(&o.Namespace, "namespace", "", "namespace that owns the shim")
	fs.StringVar(&o.ID, "id", "", "id of the task")
	fs.StringVar(&o.Address, "address", "", "grpc address back to containerd")
	fs.StringVar(&o.Bundle, "bundle", "", "path to the bundle if not the working directory")
	fs.BoolVar(&o.Debug, "debug", false, "enable debug output in logs")
	fs.String("publish-binary", "", "path to publish binary (unused: events go over ttrpc)")
	fs.String("socket", "", "unused; kept for compatibility")
	version := fs.Bool("v", false, "show the shim version and exit")
	info := fs.Bool("info", false, "print the runtime info and exit")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	if *version {
		fmt.Printf("%s:\n  Version: %s\n  Runtime: %s\n", os.Args[0], shim.Version, shim.Name)
		return
	}
	if *info {
		exit(shim.Info(os.Stdin, os.Stdout))
		return
	}
	if o.Bundle == "" {
		wd, err := os.Getwd()
		exit(err)
		o.Bundle = wd
	}
	o.TTRPCAddress = os.Getenv("TTRPC_ADDRESS")
	ctx := context.Background()
	switch cmd := fs.Arg(0); cmd {
	case "start":
		exit(shim.Start(ctx, &o, os.Stdin, os.Stdout))
	case "delete":
		exit(shim.Delete(ctx, &o, os.Stdout))
	case "":
		exit(shim.Serve(ctx, &o))
	default:
		exit(fmt.Errorf("unknown command %q", cmd))
	}
}

func exit(err error) {
	if err != nil {
		fmt.Fprintf(os.Stderr, "containerd-shim-mini-v2: %v\n", err)
		os.Exit(1)
	}
}
