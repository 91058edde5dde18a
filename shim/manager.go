// Package shim is containerd-shim-mini-v2: the `start`, `delete` and
// `-info` commands containerd runs, and the long-running shim that serves
// containerd's task API over ttrpc and drives libcontainer in-process.
package shim

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	bootstrap "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	taskapi "github.com/containerd/containerd/api/runtime/task/v2"
	"github.com/containerd/containerd/api/types"
	"github.com/containerd/containerd/api/types/runc/options"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/runmini/runmini/cgroups"
	"github.com/runmini/runmini/libcontainer"
	"github.com/runmini/runmini/mount"
	"github.com/runmini/runmini/spec"
)

// Name is the runtime type containerd knows this shim by.
const Name = "io.containerd.mini.v2"

// Version is what -v and -info report; a release build sets it with
// -ldflags "-X github.com/runmini/runmini/shim.Version=...".
var Version = "dev"

// Opts are the flags containerd passes to every invocation.
type Opts struct {
	Namespace string
	ID        string
	Address   string // containerd's gRPC address
	Bundle    string // delete: -bundle; otherwise the working directory
	Debug     bool
	// TTRPCAddress is containerd's ttrpc address, where events go.
	TTRPCAddress string
}

// socketDir is where shim sockets live by convention (containerd's own
// shims use it too); it must keep paths under sun_path's 108 bytes.
const socketDir = "/run/containerd/s"

// groupOf is the shim group a container belongs to: its pod (sandbox) when
// CRI says so, else itself.
func groupOf(bundle, id string) string {
	b, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		return id
	}
	var s struct {
		Annotations map[string]string `json:"annotations"`
	}
	if json.Unmarshal(b, &s) != nil {
		return id
	}
	for _, k := range []string{"io.kubernetes.cri.sandbox-id", "io.containerd.runc.v2.group"} {
		if g := s.Annotations[k]; g != "" {
			return g
		}
	}
	return id
}

func socketPath(dir, address, ns, group string) string {
	sum := sha256.Sum256([]byte(filepath.Join(address, ns, group)))
	return filepath.Join(dir, fmt.Sprintf("%x", sum))
}

// startInput is what containerd wrote on start's stdin.
type startInput struct {
	bootstrap *bootstrap.BootstrapParams // containerd 2.3+
	options   *options.Options           // runc's options, when sent
}

// readStartInput tells containerd 2.3+'s BootstrapParams from the runtime
// options Any that older versions send (or nothing): an Any also decodes as
// BootstrapParams, so only matching instance id and namespace count.
func readStartInput(r io.Reader, o *Opts) (*startInput, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read start input: %w", err)
	}
	in := &startInput{}
	var bp bootstrap.BootstrapParams
	var opts *anypb.Any
	if len(b) > 0 && proto.Unmarshal(b, &bp) == nil && bp.InstanceID == o.ID && bp.Namespace == o.Namespace {
		in.bootstrap = &bp
		for _, e := range bp.GetExtensions() {
			if isRuncOptions(e.GetValue()) {
				opts = e.GetValue()
			}
		}
	} else if len(b) > 0 {
		var a anypb.Any
		if proto.Unmarshal(b, &a) == nil && isRuncOptions(&a) {
			opts = &a
		}
	}
	if opts != nil {
		ro, err := runtimeOptions(opts)
		if err != nil {
			return nil, err
		}
		in.options = ro
	}
	return in, nil
}

// Start is the `start` command: find or start the long-running shim for
// this container's group and print its address the way the calling
// containerd reads it.
func Start(ctx context.Context, o *Opts, stdin io.Reader, stdout io.Writer) (retErr error) {
	in, err := readStartInput(stdin, o)
	if err != nil {
		return err
	}
	dir := socketDir
	if bp := in.bootstrap; bp != nil {
		if bp.SocketDir != nil && *bp.SocketDir != "" {
			dir = *bp.SocketDir
		}
		if bp.ContainerdTtrpcAddress != "" {
			o.TTRPCAddress = bp.ContainerdTtrpcAddress
		}
		// 2.3+ passes its log level here instead of -debug.
		// (slog's scale: debug and trace are below info).
		if bp.GetLogLevel() <= bootstrap.LogLevel_LOG_LEVEL_DEBUG {
			o.Debug = true
		}
	}
	sock := socketPath(dir, o.Address, o.Namespace, groupOf(o.Bundle, o.ID))
	address := "unix://" + sock
	reply := func() error {
		if err := os.WriteFile(filepath.Join(o.Bundle, "address"), []byte(address), 0o600); err != nil {
			return fmt.Errorf("write address file: %w", err)
		}
		return writeStartReply(stdout, address, in.bootstrap != nil)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create socket dir: %w", err)
	}
	ln, err := listen(sock)
	if err != nil {
		if errors.Is(err, unix.EADDRINUSE) {
			// The group's shim is alive: it serves this container too.
			return reply()
		}
		return err
	}
	defer ln.Close()
	defer func() {
		if retErr != nil {
			os.Remove(sock)
		}
	}()
	lf, err := ln.File()
	if err != nil {
		return err
	}
	defer lf.Close()

	self, err := os.Executable()
	if err != nil {
		return err
	}
	args := []string{"-namespace", o.Namespace, "-id", o.ID, "-address", o.Address}
	if o.Debug {
		args = append(args, "-debug")
	}
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer null.Close()
	cmd := exec.Command(self, args...)
	cmd.Dir = o.Bundle
	// Not containerd's pipes: it reads start's output until they close.
	cmd.Stdin, cmd.Stdout, cmd.Stderr = null, null, null
	cmd.ExtraFiles = []*os.File{lf}
	cmd.Env = append(os.Environ(), "TTRPC_ADDRESS="+o.TTRPCAddress, listenFDEnv+"=3")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start shim: %w", err)
	}
	if in.options != nil && in.options.ShimCgroup != "" {
		// CRI's sandbox_cgroup: the shim is accounted to the pod.
		if err := joinCgroup(in.options.ShimCgroup, cmd.Process.Pid); err != nil {
			cmd.Process.Kill()
			cmd.Wait()
			return err
		}
	}
	// The shim is on its own now; it is reparented once we exit.
	cmd.Process.Release()
	return reply()
}

// listenFDEnv tells the long-running shim which fd is its socket.
const listenFDEnv = "_MINI_SHIM_LISTEN_FD"

// listen creates the shim socket. A socket file left by a dead shim is
// replaced; one a live shim serves is EADDRINUSE.
func listen(path string) (*net.UnixListener, error) {
	for attempt := 0; ; attempt++ {
		ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
		if err == nil {
			// Only containerd (root) may talk to the shim.
			if err := os.Chmod(path, 0o600); err != nil {
				ln.Close()
				return nil, err
			}
			ln.SetUnlinkOnClose(false)
			return ln, nil
		}
		if !errors.Is(err, unix.EADDRINUSE) || attempt > 0 {
			return nil, fmt.Errorf("listen on %s: %w", path, err)
		}
		if c, derr := net.DialTimeout("unix", path, time.Second); derr == nil {
			c.Close()
			return nil, fmt.Errorf("listen on %s: %w", path, unix.EADDRINUSE)
		}
		os.Remove(path)
	}
}

// writeStartReply prints the address: containerd 2.3+ (which sent
// BootstrapParams) gets a BootstrapResult with version 3; every other
// version takes the plain address, which means version 2 to all of them
// (1.6 takes nothing else, and nothing tells 1.7, which rejects version
// 3, from 2.0-2.2).
func writeStartReply(w io.Writer, address string, bootstrapped bool) error {
	if bootstrapped {
		b, err := proto.Marshal(&bootstrap.BootstrapResult{Version: 3, Address: address, Protocol: "ttrpc"})
		if err != nil {
			return err
		}
		// 2.3.0-2.3.3 trim the reply before decoding it.
		if len(b) > 0 && !isSpace(b[0]) && !isSpace(b[len(b)-1]) {
			_, err = w.Write(b)
			return err
		}
	}
	_, err := io.WriteString(w, address)
	return err
}

// joinCgroup moves pid into the existing cgroup path (runc's ShimCgroup
// option), in every hierarchy.
func joinCgroup(path string, pid int) error {
	m, err := cgroups.New(cgroups.Config{Path: path})
	if err != nil {
		return fmt.Errorf("shim cgroup %s: %w", path, err)
	}
	if err := m.Apply(pid); err != nil {
		return fmt.Errorf("join shim cgroup %s: %w", path, err)
	}
	return nil
}

func isRuncOptions(a *anypb.Any) bool {
	return a != nil && strings.HasSuffix(a.GetTypeUrl(), "containerd.runc.v1.Options")
}

func isSpace(c byte) bool { return bytes.IndexByte([]byte(" \t\n\v\f\r"), c) >= 0 }

// Delete is the `delete` command, run by containerd when the shim is gone:
// kill and remove the container, unmount its rootfs, and print the
// DeleteResponse.
func Delete(ctx context.Context, o *Opts, stdout io.Writer) error {
	root := readRoot(o.Bundle, o.Namespace)
	pid := 0
	if c, err := libcontainer.Load(root, o.ID); err == nil {
		pid = c.Pid()
		if err := c.Delete(ctx, true); err != nil {
			fmt.Fprintf(os.Stderr, "delete container %s: %v\n", o.ID, err)
		}
	}
	if err := mount.UnmountAll(filepath.Join(o.Bundle, "rootfs")); err != nil {
		fmt.Fprintf(os.Stderr, "%v\n", err)
	}
	os.Remove(filepath.Join(o.Bundle, optionsFile))
	removeDeadSocket(o.Bundle)
	b, err := proto.Marshal(&taskapi.DeleteResponse{
		Pid:        uint32(pid),
		ExitStatus: 128 + uint32(unix.SIGKILL),
		ExitedAt:   timestamppb.Now(),
	})
	if err != nil {
		return err
	}
	_, err = stdout.Write(b)
	return err
}

// removeDeadSocket removes the socket of the bundle's shim when no shim
// serves it any more (it was killed): a live one (the rest of a pod) is
// left alone.
func removeDeadSocket(bundle string) {
	b, err := os.ReadFile(filepath.Join(bundle, "address"))
	if err != nil {
		return
	}
	path := strings.TrimPrefix(strings.TrimSpace(string(b)), "unix://")
	if !strings.HasPrefix(path, "/") {
		return
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return
	}
	os.Remove(path)
}

// Info is `-info`: the RuntimeInfo containerd asks for, with the runtime's
// features (what `runmini features` prints).
func Info(stdin io.Reader, stdout io.Writer) error {
	info := &types.RuntimeInfo{
		Name:    Name,
		Version: &types.RuntimeVersion{Version: Version},
	}
	if b, err := io.ReadAll(stdin); err == nil && len(b) > 0 {
		var a anypb.Any
		if proto.Unmarshal(b, &a) == nil && a.TypeUrl != "" {
			info.Options = &a
		}
	}
	f, err := json.Marshal(spec.Features())
	if err != nil {
		return err
	}
	info.Features = &anypb.Any{TypeUrl: featuresTypeURL, Value: f}
	b, err := proto.Marshal(info)
	if err != nil {
		return err
	}
	_, err = stdout.Write(b)
	return err
}

// featuresTypeURL is how containerd registers runtime-spec's Features
// (JSON) with typeurl.
const featuresTypeURL = "types.containerd.io/opencontainers/runtime-spec/1/features/Features"
