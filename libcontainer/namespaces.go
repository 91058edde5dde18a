package libcontainer

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/runmini/runmini/libcontainer/nsenter"
)

var nsFlags = map[specs.LinuxNamespaceType]uintptr{
	specs.PIDNamespace:     unix.CLONE_NEWPID,
	specs.NetworkNamespace: unix.CLONE_NEWNET,
	specs.MountNamespace:   unix.CLONE_NEWNS,
	specs.IPCNamespace:     unix.CLONE_NEWIPC,
	specs.UTSNamespace:     unix.CLONE_NEWUTS,
	specs.UserNamespace:    unix.CLONE_NEWUSER,
	specs.CgroupNamespace:  unix.CLONE_NEWCGROUP,
	specs.TimeNamespace:    unix.CLONE_NEWTIME,
}

// nsenter's names for the types, in the order they are joined: the user
// namespace first (it grants the rights to join the others), mount late so
// the other fds were all opened in the runtime's view.
var joinOrder = []struct {
	typ  specs.LinuxNamespaceType
	name string
}{
	{specs.UserNamespace, "user"},
	{specs.IPCNamespace, "ipc"},
	{specs.UTSNamespace, "uts"},
	{specs.NetworkNamespace, "net"},
	{specs.PIDNamespace, "pid"},
	{specs.CgroupNamespace, "cgroup"},
	{specs.TimeNamespace, "time"},
	{specs.MountNamespace, "mnt"},
}

// nsName is the nsenter and /proc/PID/ns name of a namespace type.
func nsName(typ specs.LinuxNamespaceType) string {
	for _, j := range joinOrder {
		if j.typ == typ {
			return j.name
		}
	}
	return string(typ)
}

// nsPlan says who creates or joins each namespace:
//   - cloneFlags: created by clone() itself, in one step with the init;
//   - joins: entered by the nsenter constructor before the Go runtime starts
//     (setns into mount and user namespaces needs a single thread);
//   - cUnshare: created by the constructor after joining a user namespace,
//     so that they belong to it;
//   - initUnshare: created by the init itself: the cgroup namespace once the
//     init sits in its cgroup (its root is the cgroup at unshare time), and
//     the time namespace, whose offsets must be written before any process
//     lives in it.
type nsPlan struct {
	cloneFlags  uintptr
	cUnshare    uintptr
	initUnshare uintptr
	joins       []*os.File
	joinNames   []string
	newUser     bool
	private     map[specs.LinuxNamespaceType]bool // new (not joined) namespaces
	has         map[specs.LinuxNamespaceType]bool
}

func (p *nsPlan) close() {
	for _, f := range p.joins {
		f.Close()
	}
	p.joins = nil
}

// planNamespaces opens every namespace to join (checking its type) and
// decides who creates the new ones. bornInCgroup is true when the init is
// cloned straight into its cgroup (cgroup v2).
func planNamespaces(s *specs.Spec, bornInCgroup bool) (_ *nsPlan, retErr error) {
	p := &nsPlan{private: map[specs.LinuxNamespaceType]bool{}, has: map[specs.LinuxNamespaceType]bool{}}
	defer func() {
		if retErr != nil {
			p.close()
		}
	}()
	if s.Linux == nil {
		return p, nil
	}
	paths := map[specs.LinuxNamespaceType]string{}
	for _, ns := range s.Linux.Namespaces {
		if _, ok := nsFlags[ns.Type]; !ok {
			return nil, fmt.Errorf("unknown namespace type %q", ns.Type)
		}
		if p.has[ns.Type] {
			return nil, fmt.Errorf("duplicate namespace type %q", ns.Type)
		}
		p.has[ns.Type] = true
		if ns.Path == "" {
			p.private[ns.Type] = true
		} else {
			paths[ns.Type] = ns.Path
		}
	}
	userJoined := paths[specs.UserNamespace] != ""
	p.newUser = p.private[specs.UserNamespace]
	for _, j := range joinOrder {
		path, ok := paths[j.typ]
		if !ok {
			continue
		}
		f, err := openNS(path, j.typ)
		if err != nil {
			return nil, err
		}
		p.joins = append(p.joins, f)
		p.joinNames = append(p.joinNames, j.name)
	}
	for typ := range p.private {
		flag := nsFlags[typ]
		switch {
		case typ == specs.TimeNamespace:
			p.initUnshare |= flag
		case typ == specs.CgroupNamespace && !bornInCgroup:
			p.initUnshare |= flag
		case userJoined:
			p.cUnshare |= flag
		default:
			p.cloneFlags |= flag
		}
	}
	return p, nil
}

func openNS(path string, typ specs.LinuxNamespaceType) (*os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open %s namespace path: %w", typ, err)
	}
	got, err := unix.IoctlRetInt(int(f.Fd()), unix.NS_GET_NSTYPE)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("namespace path %s is not a namespace: %w", path, err)
	}
	if uintptr(got) != nsFlags[typ] {
		f.Close()
		return nil, fmt.Errorf("namespace path %s is not a %s namespace", path, typ)
	}
	return f, nil
}

// nsenterEnv is the constructor's contract (libcontainer/nsenter): fds are
// numbered as the child will see them.
func (p *nsPlan) nsenterEnv(firstFD, pipeFD int) []string {
	var parts []string
	for i, name := range p.joinNames {
		parts = append(parts, strconv.Itoa(firstFD+i)+":"+name)
	}
	env := []string{nsenter.EnvPipe + "=" + strconv.Itoa(pipeFD)}
	if len(parts) > 0 {
		env = append(env, nsenter.EnvSetns+"="+strings.Join(parts, ","))
	}
	if p.cUnshare != 0 {
		env = append(env, nsenter.EnvUnshare+"="+strconv.FormatUint(uint64(p.cUnshare), 10))
	}
	return env
}

// needsNsenter: the constructor only runs when something must be joined or
// created inside a joined user namespace.
func (p *nsPlan) needsNsenter() bool { return len(p.joins) > 0 || p.cUnshare != 0 }
