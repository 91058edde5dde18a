package cgroups

import (
	"os"
	"path/filepath"
	"testing"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/runmini/runmini/cgroups/internal/cgtest"
)

// run interprets a device program (only the instructions deviceProgram
// emits) for one access, as the kernel would: 1 allows, 0 denies.
func run(t *testing.T, prog []insn, typ, access, major, minor uint32) int64 {
	t.Helper()
	var r [11]uint64
	ctx := [3]uint32{typ | access<<16, major, minor}
	for pc := 0; pc < len(prog); pc++ {
		in := prog[pc]
		dst, src := in.regs&0xf, in.regs>>4
		switch in.code {
		case opLoadWord:
			if src != regCtx || in.off%4 != 0 || in.off < 0 || in.off > 8 {
				t.Fatalf("insn %d: load outside the context: %+v", pc, in)
			}
			r[dst] = uint64(ctx[in.off/4])
		case opAnd32Imm:
			r[dst] = uint64(uint32(r[dst]) & uint32(in.imm))
		case opRsh32Imm:
			r[dst] = uint64(uint32(r[dst]) >> uint32(in.imm))
		case opMov32Reg:
			r[dst] = uint64(uint32(r[src]))
		case opMov64Imm:
			r[dst] = uint64(int64(in.imm))
		case opJneImm:
			if r[dst] != uint64(int64(in.imm)) {
				pc += int(in.off)
			}
		case opJneReg:
			if r[dst] != r[src] {
				pc += int(in.off)
			}
		case opExit:
			return int64(r[regRet])
		default:
			t.Fatalf("insn %d: unknown opcode %#x", pc, in.code)
		}
	}
	t.Fatal("program ran off its end")
	return -1
}

func rules(t *testing.T, in ...specs.LinuxDeviceCgroup) []specs.LinuxDeviceCgroup {
	t.Helper()
	out := make([]specs.LinuxDeviceCgroup, 0, len(in))
	for _, d := range in {
		d, err := deviceRule(d)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, d)
	}
	return out
}

func num(v int64) *int64 { return &v }

func TestDeviceProgram(t *testing.T) {
	const r, w, m = devcgRead, devcgWrite, devcgMknod
	const c, b = devcgChar, devcgBlock
	type access struct {
		typ, acc, major, minor uint32
		allow                  bool
	}
	for _, tc := range []struct {
		name   string
		rules  []specs.LinuxDeviceCgroup
		checks []access
	}{
		{
			name: "default deny with allowed nodes",
			rules: rules(t,
				specs.LinuxDeviceCgroup{Allow: false, Access: "rwm"},
				specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: num(1), Minor: num(3), Access: "rwm"},
				specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: num(136), Access: "rw"},
				specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: num(5), Minor: num(0), Access: "r"},
			),
			checks: []access{
				{c, r, 1, 3, true}, {c, w, 1, 3, true}, {c, m, 1, 3, true},
				{c, r, 1, 5, false}, {b, r, 1, 3, false},
				{c, w, 136, 7, true}, {c, m, 136, 7, false},
				{c, r, 5, 0, true}, {c, w, 5, 0, false},
				{b, r, 8, 0, false},
			},
		},
		{
			name: "the last matching rule decides",
			rules: rules(t,
				specs.LinuxDeviceCgroup{Allow: true, Type: "a"},
				specs.LinuxDeviceCgroup{Allow: false, Type: "c", Major: num(1), Minor: num(5)},
				specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: num(1), Minor: num(5), Access: "r"},
			),
			checks: []access{
				{c, r, 1, 5, true}, {c, w, 1, 5, false}, {c, m, 1, 5, false},
				{c, w, 1, 3, true}, {b, w, 8, 1, true},
			},
		},
		{
			name:   "nothing matches: denied",
			rules:  rules(t, specs.LinuxDeviceCgroup{Allow: true, Type: "b", Major: num(8), Access: "r"}),
			checks: []access{{b, r, 8, 1, true}, {b, w, 8, 1, false}, {c, r, 8, 1, false}, {b, r, 9, 0, false}},
		},
		{
			// No device has such numbers (majors have 12 bits, minors 20):
			// the comparison, 64-bit against a sign-extended immediate,
			// never matches them, and nothing else either.
			name:   "device numbers beyond int32 never match",
			rules:  rules(t, specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: num(1 << 31), Minor: num(1<<32 - 1)}),
			checks: []access{{c, r, 1 << 31, 1<<32 - 1, false}, {c, r, 0, 0, false}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prog := deviceProgram(tc.rules)
			for _, a := range tc.checks {
				got := run(t, prog, a.typ, a.acc, a.major, a.minor) == 1
				if got != a.allow {
					t.Errorf("type %d access %d %d:%d: allowed %v, want %v", a.typ, a.acc, a.major, a.minor, got, a.allow)
				}
			}
			if os.Geteuid() == 0 {
				// The kernel's verifier must accept it too.
				fd, err := loadDeviceProgram(prog)
				if err != nil {
					t.Fatal(err)
				}
				unix.Close(fd)
			}
		})
	}
}

// More device programs than one query returns at first (16) are all
// found and detached when the filter is replaced.
func TestHostDeviceFilterReplacesMany(t *testing.T) {
	cgtest.RequireRoot(t)
	var mnt string
	switch hostMode(t) {
	case ModeHybrid:
		mnt = unifiedRoot(defaultRoot, ModeHybrid)
	case ModeV2:
		mnt = defaultRoot
	default:
		t.Skip("host has no cgroup2 hierarchy")
	}
	dir := filepath.Join(mnt, cgtest.UniqueName(t))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(dir) })
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	all := rules(t, specs.LinuxDeviceCgroup{Allow: true})
	for i := 0; i < 20; i++ {
		if err := setDeviceFilterKeeping(fd, all); err != nil {
			t.Fatal(err)
		}
	}
	if ids, err := attachedDevicePrograms(fd); err != nil || len(ids) != 20 {
		t.Fatalf("%d programs attached (%v), want 20", len(ids), err)
	}
	if err := setDeviceFilter(fd, all); err != nil {
		t.Fatal(err)
	}
	if ids, err := attachedDevicePrograms(fd); err != nil || len(ids) != 1 {
		t.Errorf("%d programs attached after the replace (%v), want 1", len(ids), err)
	}
}

// setDeviceFilterKeeping attaches one more filter, detaching nothing.
func setDeviceFilterKeeping(dirFD int, r []specs.LinuxDeviceCgroup) error {
	prog, err := loadDeviceProgram(deviceProgram(r))
	if err != nil {
		return err
	}
	defer unix.Close(prog)
	a := progAttachAttr{targetFD: uint32(dirFD), attachBpfFD: uint32(prog), attachType: unix.BPF_CGROUP_DEVICE, attachFlags: unix.BPF_F_ALLOW_MULTI}
	_, err = bpf(unix.BPF_PROG_ATTACH, unsafe.Pointer(&a), unsafe.Sizeof(a))
	return err
}
