package seccomp

import (
	"slices"

	"github.com/runmini/runmini/spec"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func TestCompileRejectsBadInput(t *testing.T) {
	for name, c := range map[string]*specs.LinuxSeccomp{
		"action":      {DefaultAction: "SCMP_ACT_BOGUS"},
		"notify":      {DefaultAction: specs.ActNotify},
		"arch":        {DefaultAction: specs.ActAllow, Architectures: []specs.Arch{"SCMP_ARCH_VAX"}},
		"operator":    {DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Names: []string{"read"}, Action: specs.ActErrno, Args: []specs.LinuxSeccompArg{{Index: 0, Op: "SCMP_CMP_BOGUS"}}}}},
		"flag":        {DefaultAction: specs.ActAllow, Flags: []specs.LinuxSeccompFlag{"SECCOMP_FILTER_FLAG_BOGUS"}},
		"listener":    {DefaultAction: specs.ActAllow, ListenerPath: "/run/x.sock"},
		"rule action": {DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Names: []string{"read"}, Action: "SCMP_ACT_BOGUS"}}},
		"arg index":   {DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Names: []string{"read"}, Action: specs.ActErrno, Args: []specs.LinuxSeccompArg{{Index: 6, Op: specs.OpEqualTo}}}}},
		"seven args": {DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Names: []string{"read"}, Action: specs.ActErrno, Args: []specs.LinuxSeccompArg{
			{Index: 0, Op: specs.OpEqualTo}, {Index: 1, Op: specs.OpEqualTo}, {Index: 2, Op: specs.OpEqualTo}, {Index: 3, Op: specs.OpEqualTo},
			{Index: 4, Op: specs.OpEqualTo}, {Index: 5, Op: specs.OpEqualTo}, {Index: 0, Op: specs.OpNotEqual}}}}},
	} {
		if _, err := Compile(c); err == nil {
			t.Errorf("%s: compiled", name)
		}
		// Check refuses all of it before anything is made; the
		// compile then happens in the background.
		if err := Check(c); err == nil {
			t.Errorf("%s: passed Check", name)
		}
	}
	if err := Check(&specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Architectures: []specs.Arch{"SCMP_ARCH_X86_64"},
		Syscalls: []specs.LinuxSyscall{{Names: []string{"read"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 0, Value: 1, Op: specs.OpEqualTo}}}}}); err != nil {
		t.Errorf("a good profile failed Check: %v", err)
	}
}

func TestCompileSkipsUnknownSyscalls(t *testing.T) {
	f, err := Compile(&specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Architectures: []specs.Arch{"SCMP_ARCH_X86_64", "SCMP_ARCH_X86"},
		Syscalls: []specs.LinuxSyscall{{Names: []string{"no_such_syscall", "getcwd"}, Action: specs.ActErrno}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Prog) == 0 {
		t.Fatal("empty program")
	}
}

// TestLoadedFilter loads a filter in a child process (filters cannot be
// removed) and checks a denied syscall fails with the configured errno
// while an argument-conditional rule only hits the matching calls.
func TestLoadedFilter(t *testing.T) {
	if os.Getenv("SECCOMP_TEST_CHILD") == "1" {
		runtime.LockOSThread()
		ret := uint(int(unix.EXDEV))
		f, err := Compile(&specs.LinuxSeccomp{
			DefaultAction: specs.ActAllow,
			Syscalls: []specs.LinuxSyscall{
				{Names: []string{"getcwd"}, Action: specs.ActErrno, ErrnoRet: &ret},
				{Names: []string{"dup3"}, Action: specs.ActErrno, Args: []specs.LinuxSeccompArg{{Index: 1, Value: 100, Op: specs.OpEqualTo}}},
			},
		})
		if err != nil {
			os.Stdout.WriteString("compile: " + err.Error())
			os.Exit(1)
		}
		if err := f.Load(); err != nil {
			os.Stdout.WriteString("load: " + err.Error())
			os.Exit(1)
		}
		buf := make([]byte, 256)
		_, err1 := unix.Getcwd(buf)
		err2 := unix.Dup3(0, 100, 0)
		err3 := unix.Dup3(0, 101, 0)
		os.Stdout.WriteString(errString(err1) + "," + errString(err2) + "," + errString(err3))
		os.Exit(0)
	}
	if os.Getuid() != 0 {
		t.Skip("loading a filter without no_new_privs needs CAP_SYS_ADMIN")
	}
	cmd := exec.Command(os.Args[0], "-test.run=TestLoadedFilter$")
	cmd.Env = append(os.Environ(), "SECCOMP_TEST_CHILD=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v: %s", err, out)
	}
	want := unix.EXDEV.Error() + "," + unix.EPERM.Error() + ",ok"
	if got := strings.TrimSpace(string(out)); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func errString(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}

// The features JSON (package spec) must describe exactly what Compile takes.
func TestFeaturesMatch(t *testing.T) {
	sc := spec.Features().Linux.Seccomp
	for name, pair := range map[string][2][]string{
		"actions":   {sc.Actions, Actions()},
		"operators": {sc.Operators, Operators()},
		"archs":     {sc.Archs, Archs()},
	} {
		a, b := slices.Sorted(slices.Values(pair[0])), slices.Sorted(slices.Values(pair[1]))
		if !slices.Equal(a, b) {
			t.Errorf("%s: features %v, seccomp package %v", name, a, b)
		}
	}
	// libseccomp knows every architecture the features name (a filter
	// takes those of the native byte order only: x86 and arm here).
	for _, a := range Archs() {
		p := &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Architectures: []specs.Arch{specs.Arch(a)},
			Syscalls: []specs.LinuxSyscall{{Names: []string{"getcwd"}, Action: specs.ActErrno}}}
		_, err := Compile(p)
		if err != nil && !strings.Contains(err.Error(), "numerical argument out of domain") {
			t.Errorf("arch %s: %v", a, err)
		}
	}
}

func TestCacheSharesFiltersByContent(t *testing.T) {
	profile := func(name string) *specs.LinuxSeccomp {
		return &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Architectures: []specs.Arch{"SCMP_ARCH_X86_64"},
			Syscalls: []specs.LinuxSyscall{{Names: []string{name}, Action: specs.ActErrno}}}
	}
	c := NewCache(2)
	compile := func(p *specs.LinuxSeccomp) *Filter {
		t.Helper()
		f, err := c.Compile(p)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	a := compile(profile("chdir"))
	if compile(profile("chdir")) != a {
		t.Error("an equal profile (another copy) was compiled again")
	}
	b := compile(profile("getcwd"))
	if b == a || slices.Equal(a.Prog, b.Prog) {
		t.Error("different profiles share a filter")
	}
	compile(profile("chdir")) // now getcwd is the least recently used
	compile(profile("mkdir"))
	if compile(profile("chdir")) != a {
		t.Error("the most recently used filter was dropped")
	}
	if compile(profile("getcwd")) == b {
		t.Error("a cache of 2 kept 3 filters")
	}
	if _, err := c.Compile(&specs.LinuxSeccomp{DefaultAction: "SCMP_ACT_BOGUS"}); err == nil {
		t.Error("a bad profile compiled through the cache")
	}
	var none *Cache
	if f, err := none.Compile(profile("chdir")); err != nil || f == a {
		t.Errorf("a nil cache: %v, %v (shared: %v)", f, err, f == a)
	}
}
