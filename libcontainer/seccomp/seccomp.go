// Package seccomp turns the OCI seccomp config into a BPF filter with
// libseccomp: in process where the binary links it (cgo: the tests),
// otherwise through runmini-seccomp, a small C program beside the binary
// (runmini and the shim are built without cgo: a cgo start costs every
// runmini command and every shim ~2.3 ms on the development VM). Both call
// libseccomp the same way and export the same program.
package seccomp

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/runmini/runmini/libcontainer/seccomp/bpf"
)

// The kernel's return values, which are libseccomp's SCMP_ACT_* values.
const (
	retKillThread  = 0x00000000
	retKillProcess = 0x80000000
	retTrap        = 0x00030000
	retErrno       = 0x00050000
	retTrace       = 0x7ff00000
	retLog         = 0x7ffc0000
	retAllow       = 0x7fff0000
)

var actions = map[specs.LinuxSeccompAction]uint32{
	specs.ActKill:        retKillThread,
	specs.ActKillThread:  retKillThread,
	specs.ActKillProcess: retKillProcess,
	specs.ActTrap:        retTrap,
	specs.ActErrno:       retErrno,
	specs.ActTrace:       retTrace,
	specs.ActAllow:       retAllow,
	specs.ActLog:         retLog,
}

// Operators are libseccomp's enum scmp_compare values.
var operators = map[specs.LinuxSeccompOperator]int{
	specs.OpNotEqual:     1,
	specs.OpLessThan:     2,
	specs.OpLessEqual:    3,
	specs.OpEqualTo:      4,
	specs.OpGreaterEqual: 5,
	specs.OpGreaterThan:  6,
	specs.OpMaskedEqual:  7,
}

// archs maps the OCI names this build takes to libseccomp's.
var archs = map[specs.Arch]string{
	"SCMP_ARCH_X86": "x86", "SCMP_ARCH_X86_64": "x86_64", "SCMP_ARCH_X32": "x32",
	"SCMP_ARCH_ARM": "arm", "SCMP_ARCH_AARCH64": "aarch64",
	"SCMP_ARCH_MIPS": "mips", "SCMP_ARCH_MIPS64": "mips64", "SCMP_ARCH_MIPS64N32": "mips64n32",
	"SCMP_ARCH_MIPSEL": "mipsel", "SCMP_ARCH_MIPSEL64": "mipsel64", "SCMP_ARCH_MIPSEL64N32": "mipsel64n32",
	"SCMP_ARCH_PPC": "ppc", "SCMP_ARCH_PPC64": "ppc64", "SCMP_ARCH_PPC64LE": "ppc64le",
	"SCMP_ARCH_S390": "s390", "SCMP_ARCH_S390X": "s390x", "SCMP_ARCH_RISCV64": "riscv64",
}

// Actions, Operators and Archs list what this build supports (features).
func Actions() []string   { return keys(actions) }
func Operators() []string { return keys(operators) }
func Archs() []string     { return keys(archs) }

func keys[K ~string, V any](m map[K]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, string(k))
	}
	slices.Sort(out)
	return out
}

func action(a specs.LinuxSeccompAction, errnoRet *uint, defaultErrno uint32) (uint32, error) {
	act, ok := actions[a]
	if !ok {
		if a == specs.ActNotify {
			return 0, errors.New("seccomp: SCMP_ACT_NOTIFY is not supported by this build")
		}
		return 0, fmt.Errorf("seccomp: unknown action %q", a)
	}
	if act == retErrno || act == retTrace {
		code := defaultErrno
		if errnoRet != nil {
			code = uint32(*errnoRet)
		}
		act |= code & 0xffff
	}
	return act, nil
}

// Filter is a compiled filter, ready to load (by the init, from its
// config).
type Filter = bpf.Filter

// profile is a seccomp config checked and put the way libseccomp is
// called: actions as SCMP_ACT_* values, libseccomp's arch names.
type profile struct {
	def   uint32
	archs []string
	flags uintptr
	rules []rule
}

type rule struct {
	names []string
	act   uint32
	// conds are ORed groups of ANDed conditions: one libseccomp rule
	// each.
	conds [][]cond
}

// cond is libseccomp's struct scmp_arg_cmp.
type cond struct {
	arg          uint
	op           int
	datumA, datB uint64
}

// parse refuses what libseccomp would not be asked to do: unknown
// actions, architectures, flags and argument conditions, a listener.
func parse(c *specs.LinuxSeccomp) (*profile, error) {
	const eperm = 1
	def, err := action(c.DefaultAction, c.DefaultErrnoRet, eperm)
	if err != nil {
		return nil, err
	}
	if c.ListenerPath != "" {
		return nil, errors.New("seccomp: listenerPath is not supported by this build")
	}
	p := &profile{def: def}
	for _, a := range c.Architectures {
		name, ok := archs[a]
		if !ok {
			return nil, fmt.Errorf("seccomp: unknown architecture %q", a)
		}
		p.archs = append(p.archs, name)
	}
	for _, flag := range c.Flags {
		switch flag {
		case specs.LinuxSeccompFlagLog:
			p.flags |= unix.SECCOMP_FILTER_FLAG_LOG
		case specs.LinuxSeccompFlagSpecAllow:
			p.flags |= unix.SECCOMP_FILTER_FLAG_SPEC_ALLOW
		case specs.LinuxSeccompFlagWaitKillableRecv:
			p.flags |= unix.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
		default:
			return nil, fmt.Errorf("seccomp: unsupported flag %q", flag)
		}
	}
	for _, sc := range c.Syscalls {
		act, err := action(sc.Action, sc.ErrnoRet, eperm)
		if err != nil {
			return nil, err
		}
		conds, err := conditions(sc.Args)
		if err != nil {
			return nil, err
		}
		p.rules = append(p.rules, rule{names: sc.Names, act: act, conds: conds})
	}
	return p, nil
}

// Check refuses what Compile would refuse for the profile itself, without
// compiling: a caller can then compile in the background once nothing is
// left to say no but libseccomp.
func Check(c *specs.LinuxSeccomp) error {
	_, err := parse(c)
	return err
}

// Compile checks the config and builds the filter; nothing is loaded.
func Compile(c *specs.LinuxSeccomp) (*Filter, error) {
	p, err := parse(c)
	if err != nil {
		return nil, err
	}
	prog, err := compile(p)
	if err != nil {
		return nil, err
	}
	return &Filter{Prog: prog, Flags: p.flags}, nil
}

// conditions groups the args: libseccomp ANDs the conditions of one rule
// but refuses two on the same argument, so several conditions on one
// argument become separate rules (an OR), as runc does.
func conditions(args []specs.LinuxSeccompArg) ([][]cond, error) {
	if len(args) == 0 {
		return nil, nil
	}
	var all []cond
	sameArg := true
	for i, a := range args {
		op, ok := operators[a.Op]
		if !ok {
			return nil, fmt.Errorf("seccomp: unknown operator %q", a.Op)
		}
		// libseccomp's arguments are 0 to 5 (and its MakeCondition says
		// so for the in-process build).
		if a.Index > 5 {
			return nil, fmt.Errorf("seccomp: condition on arg %d: argument index out of range", a.Index)
		}
		c := cond{arg: a.Index, op: op, datumA: a.Value}
		if a.Op == specs.OpMaskedEqual {
			c.datB = a.ValueTwo
		}
		all = append(all, c)
		if i > 0 && a.Index != args[0].Index {
			sameArg = false
		}
	}
	if !sameArg && len(all) > 6 {
		// A rule compares each of the six arguments at most once.
		return nil, fmt.Errorf("seccomp: %d argument conditions in one rule, at most 6", len(all))
	}
	if sameArg && len(all) > 1 {
		out := make([][]cond, len(all))
		for i, c := range all {
			out[i] = []cond{c}
		}
		return out, nil
	}
	return [][]cond{all}, nil
}

// Cache keeps compiled filters by profile, for a long-running caller: the
// shim compiles the same profile for every container of a pod and for
// every exec (an exec probe every few seconds), and containerd's default
// profile costs libseccomp ~10 ms each time. A Filter from the cache is
// shared and must not be changed. It is safe for concurrent use and holds
// at most max filters, dropping the least recently used. A Cache may also
// keep the programs in a directory, for the callers that come after (see
// NewDirCache and WithDir).
type Cache struct {
	// dir keeps the programs in files too ("" for none).
	dir string
	mem *memCache // nil for none
}

type memCache struct {
	mu  sync.Mutex
	max int
	// Keyed by the profile's JSON itself: no hash whose collision could
	// hand a container another profile's filter.
	items map[string]*Filter
	order []string // least recently used first
}

// NewCache returns a cache of at most max filters.
func NewCache(max int) *Cache {
	return &Cache{mem: &memCache{max: max, items: map[string]*Filter{}}}
}

// WithDir is c, keeping the programs in dir as well (NewDirCache), and
// sharing c's filters in memory.
func (c *Cache) WithDir(dir string) *Cache {
	if c == nil {
		return NewDirCache(dir)
	}
	return &Cache{dir: dir, mem: c.mem}
}

// Compile is Compile, remembered by the profile's content. A nil cache
// just compiles.
func (c *Cache) Compile(p *specs.LinuxSeccomp) (*Filter, error) {
	if c == nil {
		return Compile(p)
	}
	m := c.mem
	if m == nil {
		return c.build(p)
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("seccomp: %w", err)
	}
	key := string(b)
	m.mu.Lock()
	f, ok := m.items[key]
	if ok {
		m.touch(key)
	}
	m.mu.Unlock()
	if ok {
		return f, nil
	}
	// Compiled outside the lock: two first uses of one profile may both
	// compile, and the second result replaces the first.
	if f, err = c.build(p); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.items[key]; !ok && len(m.order) == m.max {
		delete(m.items, m.order[0])
		m.order = m.order[1:]
	}
	m.items[key] = f
	m.touch(key)
	return f, nil
}

// build is Compile, through the directory if there is one.
func (c *Cache) build(p *specs.LinuxSeccomp) (*Filter, error) {
	if c.dir == "" {
		return Compile(p)
	}
	prof, err := parse(p)
	if err != nil {
		return nil, err
	}
	return compileIn(c.dir, prof)
}

// touch makes key the most recently used. Called with mu held.
func (m *memCache) touch(key string) {
	if i := slices.Index(m.order, key); i >= 0 {
		m.order = slices.Delete(m.order, i, i+1)
	}
	m.order = append(m.order, key)
}
