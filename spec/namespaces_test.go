package spec

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

var childMapping = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 200000, Size: 65536}}

// startInUserNS starts a process in a new user and network namespace and
// returns its pid; the process is killed and reaped at cleanup.
func startInUserNS(t *testing.T) int {
	t.Helper()
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skipf("no sleep binary to hold namespaces open: %v", err)
	}
	cmd := exec.Command(sleep, "1000")
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  unix.CLONE_NEWUSER | unix.CLONE_NEWNET,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 200000, Size: 65536}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 200000, Size: 65536}},
	}
	if err := cmd.Start(); err != nil {
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSPC) {
			t.Skipf("cannot create a user namespace here: %v", err)
		}
		t.Fatalf("start process in new user namespace: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd.Process.Pid
}

func TestValidateJoinedUserNamespace(t *testing.T) {
	pid := startInUserNS(t)
	childUser := fmt.Sprintf("/proc/%d/ns/user", pid)
	childNet := fmt.Sprintf("/proc/%d/ns/net", pid)

	// A bind mount of the namespace file, as `ip netns` or a pod manager
	// would make, exercises the lookup of a process in the namespace.
	pinned := filepath.Join(t.TempDir(), "userns")
	if err := os.WriteFile(pinned, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(childUser, pinned, "", unix.MS_BIND, ""); err != nil {
		t.Fatalf("bind-mount %s: %v", childUser, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(pinned, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", pinned, err)
		}
	})

	other := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 300000, Size: 65536}}
	runValidateCases(t, []validateCase{
		{"join child userns and its netns", func(s *specs.Spec, _ string) {
			setNS(s, specs.UserNamespace, childUser)
			setNS(s, specs.NetworkNamespace, childNet)
		}, ""},
		{"join host userns and child netns", func(s *specs.Spec, _ string) {
			setNS(s, specs.UserNamespace, "/proc/self/ns/user")
			setNS(s, specs.NetworkNamespace, childNet)
		}, ""},
		{"join child userns and host netns", func(s *specs.Spec, _ string) {
			setNS(s, specs.UserNamespace, childUser)
			setNS(s, specs.NetworkNamespace, "/proc/self/ns/net")
		}, `namespace "network": /proc/self/ns/net cannot be joined from the user namespace ` + childUser},
		{"child userns matching mappings", func(s *specs.Spec, _ string) {
			setNS(s, specs.UserNamespace, childUser)
			s.Linux.UIDMappings, s.Linux.GIDMappings = childMapping, childMapping
		}, ""},
		{"child userns other mappings", func(s *specs.Spec, _ string) {
			setNS(s, specs.UserNamespace, childUser)
			s.Linux.UIDMappings, s.Linux.GIDMappings = childMapping, other
		}, "non-matching mapping specified"},
		{"child userns unmapped user", func(s *specs.Spec, _ string) {
			setNS(s, specs.UserNamespace, childUser)
			s.Process.User.UID = 65536
		}, "process.user.uid 65536 is not mapped"},
		{"pinned userns matching mappings", func(s *specs.Spec, _ string) {
			setNS(s, specs.UserNamespace, pinned)
			s.Linux.UIDMappings, s.Linux.GIDMappings = childMapping, childMapping
		}, ""},
		{"pinned userns other mappings", func(s *specs.Spec, _ string) {
			setNS(s, specs.UserNamespace, pinned)
			s.Linux.UIDMappings, s.Linux.GIDMappings = other, childMapping
		}, "non-matching mapping specified"},
	})
}

func TestJoinedUserNSMappings(t *testing.T) {
	pid := startInUserNS(t)
	uids, gids, found, err := joinedUserNSMappings(fmt.Sprintf("/proc/%d/ns/user", pid))
	if err != nil || !found {
		t.Fatalf("joinedUserNSMappings: found=%v err=%v", found, err)
	}
	if !sameMappings(uids, childMapping) || !sameMappings(gids, childMapping) {
		t.Fatalf("got uid map %v, gid map %v, want %v", uids, gids, childMapping)
	}
	if _, _, _, err := joinedUserNSMappings("/nonexistent/ns/user"); err == nil || !strings.Contains(err.Error(), "/nonexistent/ns/user") {
		t.Fatalf("missing path: got %v, want an error naming it", err)
	}
}

func TestSameMappings(t *testing.T) {
	a := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1, Size: 1}, {ContainerID: 1, HostID: 5, Size: 2}}
	b := []specs.LinuxIDMapping{a[1], a[0]}
	if !sameMappings(a, b) {
		t.Error("order should not matter")
	}
	if sameMappings(a, a[:1]) {
		t.Error("different lengths compared equal")
	}
	c := []specs.LinuxIDMapping{a[0], {ContainerID: 1, HostID: 5, Size: 3}}
	if sameMappings(a, c) {
		t.Error("different sizes compared equal")
	}
}

func TestOpenNamespaceRefusesFifo(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	// Opening a fifo for reading would block; O_PATH must not.
	f, err := openNamespace(fifo)
	if err == nil {
		f.Close()
		t.Fatal("a fifo was accepted as a namespace file")
	}
	if !strings.Contains(err.Error(), "is not a namespace file") {
		t.Fatalf("got %v", err)
	}
}

func openFDs(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

// TestValidateLeaksNoFDs runs the checks that open namespace files, on both
// their success and failure paths, and verifies every fd was closed.
func TestValidateLeaksNoFDs(t *testing.T) {
	pid := startInUserNS(t)
	bundle := newBundle(t)
	specsToCheck := []func(*specs.Spec){
		func(s *specs.Spec) {
			setNS(s, specs.UserNamespace, fmt.Sprintf("/proc/%d/ns/user", pid))
			setNS(s, specs.NetworkNamespace, fmt.Sprintf("/proc/%d/ns/net", pid))
		},
		func(s *specs.Spec) {
			setNS(s, specs.UserNamespace, fmt.Sprintf("/proc/%d/ns/user", pid))
			setNS(s, specs.NetworkNamespace, "/proc/self/ns/net")
		},
		func(s *specs.Spec) { setNS(s, specs.NetworkNamespace, "/proc/self/ns/pid") },
		func(s *specs.Spec) { setNS(s, specs.NetworkNamespace, bundle) },
	}
	before := openFDs(t)
	for range 10 {
		for _, mutate := range specsToCheck {
			s := Default(false)
			mutate(s)
			_ = Validate(s, bundle)
		}
	}
	if after := openFDs(t); after != before {
		t.Fatalf("open fds: %d before, %d after", before, after)
	}
}
