//go:build cgo

package seccomp

import (
	"fmt"
	"log/slog"
	"os"
	"strconv"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	libseccomp "github.com/seccomp/libseccomp-golang"
	"golang.org/x/sys/unix"

	"github.com/runmini/runmini/libcontainer/seccomp/bpf"
)

// compilerID names the libseccomp this process links.
func compilerID() (string, error) {
	major, minor, micro := libseccomp.GetLibraryVersion()
	return fmt.Sprintf("libseccomp %d.%d.%d", major, minor, micro), nil
}

// compile builds p's program with libseccomp in this process.
func compile(p *profile) ([]unix.SockFilter, error) {
	def, err := scmpAction(p.def)
	if err != nil {
		return nil, err
	}
	f, err := libseccomp.NewFilter(def)
	if err != nil {
		return nil, fmt.Errorf("seccomp: new filter: %w", err)
	}
	defer f.Release()
	// The runtime decides about no_new_privs itself (process.noNewPrivileges).
	if err := f.SetNoNewPrivsBit(false); err != nil {
		return nil, fmt.Errorf("seccomp: %w", err)
	}
	for _, name := range p.archs {
		// libseccomp-golang spells two of libseccomp's names as Go does.
		goName := map[string]string{"x86_64": "amd64", "aarch64": "arm64"}[name]
		if goName == "" {
			goName = name
		}
		arch, err := libseccomp.GetArchFromString(goName)
		if err != nil {
			return nil, fmt.Errorf("seccomp: unknown architecture %q", name)
		}
		if err := f.AddArch(arch); err != nil {
			return nil, fmt.Errorf("seccomp: add architecture %s: %w", name, err)
		}
	}
	for _, r := range p.rules {
		if r.act == p.def {
			// libseccomp refuses a rule that repeats the default
			// action; it would change nothing anyway.
			continue
		}
		act, err := scmpAction(r.act)
		if err != nil {
			return nil, err
		}
		for _, name := range r.names {
			call, err := libseccomp.GetSyscallFromName(name)
			if err != nil {
				// Profiles list syscalls of newer kernels and other
				// architectures; runc skips the unknown ones too.
				slog.Debug("seccomp: unknown syscall skipped", "name", name)
				continue
			}
			if err := addRule(f, call, act, r.conds); err != nil {
				return nil, fmt.Errorf("seccomp: rule for %s: %w", name, err)
			}
		}
	}
	return exportBPF(f)
}

// scmpAction is a SCMP_ACT_* value in libseccomp-golang's terms.
func scmpAction(v uint32) (libseccomp.ScmpAction, error) {
	code := int16(v & 0xffff)
	switch v &^ 0xffff {
	case retKillThread:
		return libseccomp.ActKillThread, nil
	case retKillProcess:
		return libseccomp.ActKillProcess, nil
	case retTrap:
		return libseccomp.ActTrap, nil
	case retErrno:
		return libseccomp.ActErrno.SetReturnCode(code), nil
	case retTrace:
		return libseccomp.ActTrace.SetReturnCode(code), nil
	case retLog:
		return libseccomp.ActLog, nil
	case retAllow:
		return libseccomp.ActAllow, nil
	}
	return 0, fmt.Errorf("seccomp: action %#x", v)
}

func addRule(f *libseccomp.ScmpFilter, call libseccomp.ScmpSyscall, act libseccomp.ScmpAction, conds [][]cond) error {
	if len(conds) == 0 {
		return f.AddRule(call, act)
	}
	for _, group := range conds {
		var cs []libseccomp.ScmpCondition
		for _, c := range group {
			vals := []uint64{c.datumA}
			if c.op == operators[specs.OpMaskedEqual] {
				vals = append(vals, c.datB)
			}
			sc, err := libseccomp.MakeCondition(c.arg, libseccomp.ScmpCompareOp(c.op), vals...)
			if err != nil {
				return fmt.Errorf("condition on arg %d: %w", c.arg, err)
			}
			cs = append(cs, sc)
		}
		if err := f.AddRuleConditional(call, act, cs); err != nil {
			return err
		}
	}
	return nil
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
