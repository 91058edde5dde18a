package cgroups

import (
	"path/filepath"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/runmini/runmini/cgroups/internal/cgtest"
)

// Benchmarks of the setup path against a fake cgroupfs: they measure our
// resolution, translation and the syscalls of the writes, not the
// kernel's cgroup work.

func benchResources() *specs.LinuxResources {
	return &specs.LinuxResources{
		Memory: &specs.LinuxMemory{Limit: cgtest.Ptr(int64(256 << 20)), Swap: cgtest.Ptr(int64(512 << 20)), Reservation: cgtest.Ptr(int64(128 << 20))},
		CPU:    &specs.LinuxCPU{Shares: cgtest.Ptr(uint64(512)), Quota: cgtest.Ptr(int64(50000)), Period: cgtest.Ptr(uint64(100000)), Cpus: "0-1", Mems: "0"},
		Pids:   &specs.LinuxPids{Limit: cgtest.Ptr(int64(1024))},
		BlockIO: &specs.LinuxBlockIO{
			Weight:                cgtest.Ptr(uint16(500)),
			ThrottleReadBpsDevice: []specs.LinuxThrottleDevice{{LinuxBlockIODevice: specs.LinuxBlockIODevice{Major: 8, Minor: 0}, Rate: 1 << 20}},
		},
		HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 4 << 20}},
	}
}

func BenchmarkNewV1(b *testing.B) {
	root := b.TempDir()
	cgtest.FakeV1(b, root, "/ctr")
	c := Config{Path: "/ctr", Root: root, Mode: ModeV1, Resources: benchResources()}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := New(c); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCreateV1(b *testing.B) {
	root := b.TempDir()
	cgtest.FakeV1(b, root, "/ctr")
	r := benchResources()
	r.Devices = []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}, {Allow: true, Type: "c", Major: cgtest.Ptr(int64(1)), Minor: cgtest.Ptr(int64(3)), Access: "rwm"}}
	c := Config{Path: "/ctr", Root: root, Mode: ModeV1, Resources: r}
	b.ReportAllocs()
	for b.Loop() {
		m, err := New(c)
		if err != nil {
			b.Fatal(err)
		}
		if err := m.Create(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCreateV2(b *testing.B) {
	root := b.TempDir()
	cgtest.FakeV2(b, root, "/pod/ctr", cgtest.V2Controllers)
	c := Config{Path: "/pod/ctr", Root: root, Mode: ModeV2, Resources: benchResources()}
	b.ReportAllocs()
	for b.Loop() {
		m, err := New(c)
		if err != nil {
			b.Fatal(err)
		}
		if err := m.Create(); err != nil {
			b.Fatal(err)
		}
		m.(*manager).closeFD()
	}
}

func BenchmarkSetV2(b *testing.B) {
	root := b.TempDir()
	cgtest.FakeV2(b, root, "/ctr", cgtest.V2Controllers)
	m, err := New(Config{Path: "/ctr", Root: root, Mode: ModeV2})
	if err != nil {
		b.Fatal(err)
	}
	r := benchResources()
	b.ReportAllocs()
	for b.Loop() {
		if err := m.Set(r); err != nil {
			b.Fatal(err)
		}
	}
	if got := cgtest.ReadFile(b, filepath.Join(root, "ctr", "memory.max")); got != "268435456" {
		b.Fatalf("memory.max = %q", got)
	}
}
