package cgroups

import (
	"errors"
	"fmt"
	"runtime"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// cgroup v2 has no devices files: access to device nodes is decided by an
// eBPF program of type BPF_PROG_TYPE_CGROUP_DEVICE attached to the cgroup.
// runmini builds that program and talks to bpf(2) itself rather than
// through containerd's cgroup2 package and cilium/ebpf: those link
// protobuf descriptors, BTF and ELF readers whose package initialisation
// alone costs every `runmini` process ~5 ms at start, for a program of a
// few dozen instructions and four bpf(2) commands.

// insn is one eBPF instruction (struct bpf_insn).
type insn struct {
	code uint8
	regs uint8 // dst in the low nibble, src in the high one
	off  int16
	imm  int32
}

// The opcodes the device filter uses (linux/bpf.h, linux/bpf_common.h).
const (
	opLoadWord   = 0x61 // BPF_LDX|BPF_MEM|BPF_W: dst = *(u32 *)(src + off)
	opAnd32Imm   = 0x54 // BPF_ALU|BPF_AND|BPF_K: dst &= imm (32 bit)
	opRsh32Imm   = 0x74 // BPF_ALU|BPF_RSH|BPF_K: dst >>= imm (32 bit)
	opMov32Reg   = 0xbc // BPF_ALU|BPF_MOV|BPF_X: dst = src (32 bit)
	opMov64Imm   = 0xb7 // BPF_ALU64|BPF_MOV|BPF_K: dst = imm
	opJneImm     = 0x55 // BPF_JMP|BPF_JNE|BPF_K: if dst != imm goto +off
	opJneReg     = 0x5d // BPF_JMP|BPF_JNE|BPF_X: if dst != src goto +off
	opExit       = 0x95 // BPF_JMP|BPF_EXIT
	devcgBlock   = 1    // BPF_DEVCG_DEV_BLOCK
	devcgChar    = 2    // BPF_DEVCG_DEV_CHAR
	devcgMknod   = 1    // BPF_DEVCG_ACC_MKNOD
	devcgRead    = 2    // BPF_DEVCG_ACC_READ
	devcgWrite   = 4    // BPF_DEVCG_ACC_WRITE
	regCtx       = 1    // r1: struct bpf_cgroup_dev_ctx *
	regType      = 2    // r2: device type
	regAccess    = 3    // r3: requested access
	regMajor     = 4    // r4
	regMinor     = 5    // r5
	regScratch   = 1    // r1 once the context is read
	regRet       = 0    // r0: 1 allows, 0 denies
	jumpToNext   = -1   // placeholder offset, resolved per block
	fullAccess   = devcgMknod | devcgRead | devcgWrite
	wildcardRule = -1
)

func ins(code uint8, dst, src uint8, off int16, imm int32) insn {
	return insn{code: code, regs: dst | src<<4, off: off, imm: imm}
}

// deviceProgram compiles normalised rules (see deviceRule) into a filter
// with the semantics of the v1 devices list: the last rule that matches
// an access decides it, and an access no rule matches is denied. The
// rules are checked last to first, each a block that returns its verdict
// on a match and jumps to the next block otherwise.
func deviceProgram(rules []specs.LinuxDeviceCgroup) []insn {
	// struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }
	// with access_type = type | access << 16.
	prog := []insn{
		ins(opLoadWord, regType, regCtx, 0, 0),
		ins(opAnd32Imm, regType, 0, 0, 0xffff),
		ins(opLoadWord, regAccess, regCtx, 0, 0),
		ins(opRsh32Imm, regAccess, 0, 0, 16),
		ins(opLoadWord, regMajor, regCtx, 4, 0),
		ins(opLoadWord, regMinor, regCtx, 8, 0),
	}
	for i := len(rules) - 1; i >= 0; i-- {
		r := rules[i]
		var block []insn
		switch r.Type {
		case "b":
			block = append(block, ins(opJneImm, regType, 0, jumpToNext, devcgBlock))
		case "c":
			block = append(block, ins(opJneImm, regType, 0, jumpToNext, devcgChar))
		}
		if acc := accessBits(r.Access); acc != fullAccess {
			// Matches when every requested bit is one the rule names.
			block = append(block,
				ins(opMov32Reg, regScratch, regAccess, 0, 0),
				ins(opAnd32Imm, regScratch, 0, 0, acc),
				ins(opJneReg, regScratch, regAccess, jumpToNext, 0))
		}
		if *r.Major != wildcardRule {
			block = append(block, ins(opJneImm, regMajor, 0, jumpToNext, int32(uint32(*r.Major))))
		}
		if *r.Minor != wildcardRule {
			block = append(block, ins(opJneImm, regMinor, 0, jumpToNext, int32(uint32(*r.Minor))))
		}
		verdict := int32(0)
		if r.Allow {
			verdict = 1
		}
		matchesAll := len(block) == 0
		block = append(block, ins(opMov64Imm, regRet, 0, 0, verdict), ins(opExit, 0, 0, 0, 0))
		for j := range block {
			if block[j].off == jumpToNext {
				block[j].off = int16(len(block) - j - 1)
			}
		}
		prog = append(prog, block...)
		if matchesAll {
			// Nothing after a rule for every device is reachable, and the
			// verifier refuses unreachable instructions.
			return prog
		}
	}
	return append(prog, ins(opMov64Imm, regRet, 0, 0, 0), ins(opExit, 0, 0, 0, 0))
}

func accessBits(access string) int32 {
	var bits int32
	for _, c := range access {
		switch c {
		case 'm':
			bits |= devcgMknod
		case 'r':
			bits |= devcgRead
		case 'w':
			bits |= devcgWrite
		}
	}
	return bits
}

// bpf(2) attributes, laid out as the kernel's union bpf_attr members.
type progLoadAttr struct {
	progType           uint32
	insnCnt            uint32
	insns              uint64
	license            uint64
	logLevel           uint32
	logSize            uint32
	logBuf             uint64
	kernVersion        uint32
	progFlags          uint32
	progName           [16]byte
	progIfindex        uint32
	expectedAttachType uint32
}

type progAttachAttr struct {
	targetFD     uint32
	attachBpfFD  uint32
	attachType   uint32
	attachFlags  uint32
	replaceBpfFD uint32
}

type progQueryAttr struct {
	targetFD    uint32
	attachType  uint32
	queryFlags  uint32
	attachFlags uint32
	progIDs     uint64
	progCnt     uint32
	_           uint32
}

type getFDByIDAttr struct {
	id        uint32
	nextID    uint32
	openFlags uint32
}

func bpf(cmd uintptr, attr unsafe.Pointer, size uintptr) (int, error) {
	r, _, errno := unix.Syscall(unix.SYS_BPF, cmd, uintptr(attr), size)
	if errno != 0 {
		return -1, errno
	}
	return int(r), nil
}

var license = []byte("Apache\x00")

// loadDeviceProgram loads prog and returns its fd. When the verifier
// refuses it, the load is repeated with a log so the error says why.
func loadDeviceProgram(prog []insn) (int, error) {
	log := make([]byte, 64<<10)
	// The kernel reads prog, the license and the log through addresses
	// Go does not see as references.
	defer runtime.KeepAlive(prog)
	defer runtime.KeepAlive(log)
	attr := progLoadAttr{
		progType: unix.BPF_PROG_TYPE_CGROUP_DEVICE,
		insnCnt:  uint32(len(prog)),
		insns:    uint64(uintptr(unsafe.Pointer(&prog[0]))),
		license:  uint64(uintptr(unsafe.Pointer(&license[0]))),
	}
	copy(attr.progName[:], "runmini_devices")
	fd, err := bpf(unix.BPF_PROG_LOAD, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	if err == nil {
		return fd, nil
	}
	attr.logLevel, attr.logSize = 1, uint32(len(log))
	attr.logBuf = uint64(uintptr(unsafe.Pointer(&log[0])))
	if fd, err := bpf(unix.BPF_PROG_LOAD, unsafe.Pointer(&attr), unsafe.Sizeof(attr)); err == nil {
		return fd, nil
	}
	if n := clen(log); n > 0 {
		return -1, fmt.Errorf("load device filter: %w: verifier: %s", err, log[:n])
	}
	return -1, fmt.Errorf("load device filter: %w", err)
}

func clen(b []byte) int {
	for i, c := range b {
		if c == 0 {
			return i
		}
	}
	return len(b)
}

// attachedDevicePrograms lists the ids of the device programs attached to
// the cgroup dirFD.
func attachedDevicePrograms(dirFD int) ([]uint32, error) {
	ids := make([]uint32, 16)
	for {
		attr := progQueryAttr{
			targetFD:   uint32(dirFD),
			attachType: unix.BPF_CGROUP_DEVICE,
			progIDs:    uint64(uintptr(unsafe.Pointer(&ids[0]))),
			progCnt:    uint32(len(ids)),
		}
		_, err := bpf(unix.BPF_PROG_QUERY, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
		runtime.KeepAlive(ids)
		if err == unix.ENOSPC && int(attr.progCnt) > len(ids) {
			// More than fit: the kernel said how many there are.
			ids = make([]uint32, attr.progCnt)
			continue
		}
		if err != nil {
			return nil, err
		}
		return ids[:attr.progCnt], nil
	}
}

// setDeviceFilter attaches a filter for rules to the cgroup dirFD and then
// detaches the device programs that were there before. With
// BPF_F_ALLOW_MULTI an access must pass every attached program, so keeping
// the old ones would let only the intersection of old and new rules
// through (and every update would add one); attaching first means the
// cgroup is never without a filter.
func setDeviceFilter(dirFD int, rules []specs.LinuxDeviceCgroup) error {
	old, err := attachedDevicePrograms(dirFD)
	if err != nil {
		return fmt.Errorf("query device filters: %w", err)
	}
	progFD, err := loadDeviceProgram(deviceProgram(rules))
	if err != nil {
		return err
	}
	defer unix.Close(progFD)
	attach := progAttachAttr{
		targetFD:    uint32(dirFD),
		attachBpfFD: uint32(progFD),
		attachType:  unix.BPF_CGROUP_DEVICE,
		attachFlags: unix.BPF_F_ALLOW_MULTI,
	}
	if _, err := bpf(unix.BPF_PROG_ATTACH, unsafe.Pointer(&attach), unsafe.Sizeof(attach)); err != nil {
		return fmt.Errorf("attach device filter: %w", err)
	}
	var errs []error
	for _, id := range old {
		if err := detachProgram(dirFD, id); err != nil {
			errs = append(errs, fmt.Errorf("detach old device filter %d: %w", id, err))
		}
	}
	return errors.Join(errs...)
}

func detachProgram(dirFD int, id uint32) error {
	get := getFDByIDAttr{id: id}
	fd, err := bpf(unix.BPF_PROG_GET_FD_BY_ID, unsafe.Pointer(&get), unsafe.Sizeof(get))
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	detach := progAttachAttr{targetFD: uint32(dirFD), attachBpfFD: uint32(fd), attachType: unix.BPF_CGROUP_DEVICE}
	_, err = bpf(unix.BPF_PROG_DETACH, unsafe.Pointer(&detach), unsafe.Sizeof(detach))
	return err
}
