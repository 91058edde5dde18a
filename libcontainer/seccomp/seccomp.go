// Package seccomp turns the OCI seccomp config into a BPF filter with
// libseccomp and loads it into the calling thread.
package seccomp

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	libseccomp "github.com/seccomp/libseccomp-golang"
	"golang.org/x/sys/unix"

	"github.com/runmini/runmini/libcontainer/seccomp/bpf"
)

var actions = map[specs.LinuxSeccompAction]libseccomp.ScmpAction{
	specs.ActKill:        libseccomp.ActKillThread,
	specs.ActKillThread:  libseccomp.ActKillThread,
	specs.ActKillProcess: libseccomp.ActKillProcess,
	specs.ActTrap:        libseccomp.ActTrap,
	specs.ActErrno:       libseccomp.ActErrno,
	specs.ActTrace:       libseccomp.ActTrace,
	specs.ActAllow:       libseccomp.ActAllow,
	specs.ActLog:         libseccomp.ActLog,
}

var operators = map[specs.LinuxSeccompOperator]libseccomp.ScmpCompareOp{
	specs.OpNotEqual:     libseccomp.CompareNotEqual,
	specs.OpLessThan:     libseccomp.CompareLess,
	specs.OpLessEqual:    libseccomp.CompareLessOrEqual,
	specs.OpEqualTo:      libseccomp.CompareEqual,
	specs.OpGreaterEqual: libseccomp.CompareGreaterEqual,
	specs.OpGreaterThan:  libseccomp.CompareGreater,
	specs.OpMaskedEqual:  libseccomp.CompareMaskedEqual,
}

// Actions, Operators and Archs list what this build supports (features).
func Actions() []string   { return keys(actions) }
func Operators() []string { return keys(operators) }
func Archs() []string {
	return []string{"SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_ARM", "SCMP_ARCH_AARCH64",
		"SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64", "SCMP_ARCH_MIPS64N32", "SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64",
		"SCMP_ARCH_MIPSEL64N32", "SCMP_ARCH_PPC", "SCMP_ARCH_PPC64", "SCMP_ARCH_PPC64LE", "SCMP_ARCH_S390",
		"SCMP_ARCH_S390X", "SCMP_ARCH_RISCV64"}
}

func keys[K ~string, V any](m map[K]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, string(k))
	}
	return out
}

// archName maps the OCI name (SCMP_ARCH_X86_64) to libseccomp's (amd64).
func archName(a specs.Arch) (libseccomp.ScmpArch, error) {
	name := strings.ToLower(strings.TrimPrefix(string(a), "SCMP_ARCH_"))
	switch name {
	case "x86_64":
		name = "amd64"
	case "aarch64":
		name = "arm64"
	}
	arch, err := libseccomp.GetArchFromString(name)
	if err != nil {
		return 0, fmt.Errorf("seccomp: unknown architecture %q", a)
	}
	return arch, nil
}

func action(a specs.LinuxSeccompAction, errnoRet *uint, defaultErrno int16) (libseccomp.ScmpAction, error) {
	act, ok := actions[a]
	if !ok {
		if a == specs.ActNotify {
			return 0, errors.New("seccomp: SCMP_ACT_NOTIFY is not supported by this build")
		}
		return 0, fmt.Errorf("seccomp: unknown action %q", a)
	}
	switch act {
	case libseccomp.ActErrno, libseccomp.ActTrace:
		code := defaultErrno
		if errnoRet != nil {
			code = int16(*errnoRet)
		}
		act = act.SetReturnCode(code)
	}
	return act, nil
}

// Filter is a compiled filter, ready to load (by the init, from its
// config).
type Filter = bpf.Filter

// profile is a seccomp config checked and turned into libseccomp's terms.
type profile struct {
	def   libseccomp.ScmpAction
	archs []libseccomp.ScmpArch
	flags uintptr
	rules []rule
}

type rule struct {
	names []string
	act   libseccomp.ScmpAction
	conds [][]libseccomp.ScmpCondition
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
		arch, err := archName(a)
		if err != nil {
			return nil, err
		}
		p.archs = append(p.archs, arch)
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
	f, err := libseccomp.NewFilter(p.def)
	if err != nil {
		return nil, fmt.Errorf("seccomp: new filter: %w", err)
	}
	defer f.Release()
	// The runtime decides about no_new_privs itself (process.noNewPrivileges).
	if err := f.SetNoNewPrivsBit(false); err != nil {
		return nil, fmt.Errorf("seccomp: %w", err)
	}
	for i, arch := range p.archs {
		if err := f.AddArch(arch); err != nil {
			return nil, fmt.Errorf("seccomp: add architecture %s: %w", c.Architectures[i], err)
		}
	}
	for _, r := range p.rules {
		if r.act == p.def {
			// libseccomp refuses a rule that repeats the default
			// action; it would change nothing anyway.
			continue
		}
		for _, name := range r.names {
			call, err := libseccomp.GetSyscallFromName(name)
			if err != nil {
				// Profiles list syscalls of newer kernels and other
				// architectures; runc skips the unknown ones too.
				slog.Debug("seccomp: unknown syscall skipped", "name", name)
				continue
			}
			if err := addRule(f, call, r.act, r.conds); err != nil {
				return nil, fmt.Errorf("seccomp: rule for %s: %w", name, err)
			}
		}
	}
	prog, err := exportBPF(f)
	if err != nil {
		return nil, err
	}
	return &Filter{Prog: prog, Flags: p.flags}, nil
}

// exportBPF renders the filter now: loading must not call into libseccomp,
// because by then the process's rlimits (RLIMIT_AS, RLIMIT_DATA) may leave
// no room for the allocations it makes.
func exportBPF(f *libseccomp.ScmpFilter) ([]unix.SockFilter, error) {
	fd, err := unix.MemfdCreate("seccomp-bpf", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("seccomp: memfd: %w", err)
	}
	mf := os.NewFile(uintptr(fd), "seccomp-bpf")
	defer mf.Close()
	if err := f.ExportBPF(mf); err != nil {
		return nil, fmt.Errorf("seccomp: export filter: %w", err)
	}
	raw, err := os.ReadFile("/proc/self/fd/" + strconv.Itoa(fd))
	if err != nil {
		return nil, fmt.Errorf("seccomp: read filter: %w", err)
	}
	return bpf.Decode(raw)
}

// conditions groups the args: libseccomp ANDs the conditions of one rule
// but refuses two on the same argument, so several conditions on one
// argument become separate rules (an OR), as runc does.
func conditions(args []specs.LinuxSeccompArg) ([][]libseccomp.ScmpCondition, error) {
	if len(args) == 0 {
		return nil, nil
	}
	var all []libseccomp.ScmpCondition
	sameArg := true
	for i, a := range args {
		op, ok := operators[a.Op]
		if !ok {
			return nil, fmt.Errorf("seccomp: unknown operator %q", a.Op)
		}
		vals := []uint64{a.Value}
		if op == libseccomp.CompareMaskedEqual {
			vals = append(vals, a.ValueTwo)
		}
		c, err := libseccomp.MakeCondition(a.Index, op, vals...)
		if err != nil {
			return nil, fmt.Errorf("seccomp: condition on arg %d: %w", a.Index, err)
		}
		all = append(all, c)
		if i > 0 && a.Index != args[0].Index {
			sameArg = false
		}
	}
	if sameArg && len(all) > 1 {
		out := make([][]libseccomp.ScmpCondition, len(all))
		for i, c := range all {
			out[i] = []libseccomp.ScmpCondition{c}
		}
		return out, nil
	}
	return [][]libseccomp.ScmpCondition{all}, nil
}

func addRule(f *libseccomp.ScmpFilter, call libseccomp.ScmpSyscall, act libseccomp.ScmpAction, conds [][]libseccomp.ScmpCondition) error {
	if len(conds) == 0 {
		return f.AddRule(call, act)
	}
	for _, c := range conds {
		if err := f.AddRuleConditional(call, act, c); err != nil {
			return err
		}
	}
	return nil
}

// Cache keeps compiled filters by profile, for a long-running caller: the
// shim compiles the same profile for every container of a pod and for
// every exec (an exec probe every few seconds), and containerd's default
// profile costs libseccomp ~10 ms each time. A Filter from the cache is
// shared and must not be changed. It is safe for concurrent use and holds
// at most max filters, dropping the least recently used.
type Cache struct {
	mu  sync.Mutex
	max int
	// Keyed by the profile's JSON itself: no hash whose collision could
	// hand a container another profile's filter.
	items map[string]*Filter
	order []string // least recently used first
}

// NewCache returns a cache of at most max filters.
func NewCache(max int) *Cache {
	return &Cache{max: max, items: map[string]*Filter{}}
}

// Compile is Compile, remembered by the profile's content. A nil cache
// just compiles.
func (c *Cache) Compile(p *specs.LinuxSeccomp) (*Filter, error) {
	if c == nil {
		return Compile(p)
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("seccomp: %w", err)
	}
	key := string(b)
	c.mu.Lock()
	f, ok := c.items[key]
	if ok {
		c.touch(key)
	}
	c.mu.Unlock()
	if ok {
		return f, nil
	}
	// Compiled outside the lock: two first uses of one profile may both
	// compile, and the second result replaces the first.
	if f, err = Compile(p); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.items[key]; !ok && len(c.order) == c.max {
		delete(c.items, c.order[0])
		c.order = c.order[1:]
	}
	c.items[key] = f
	c.touch(key)
	return f, nil
}

// touch makes key the most recently used. Called with mu held.
func (c *Cache) touch(key string) {
	if i := slices.Index(c.order, key); i >= 0 {
		c.order = slices.Delete(c.order, i, i+1)
	}
	c.order = append(c.order, key)
}
