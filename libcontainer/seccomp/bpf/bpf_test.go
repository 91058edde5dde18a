package bpf

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// A filter goes to the init as JSON and must come back instruction for
// instruction.
func TestFilterJSONRoundTrip(t *testing.T) {
	f := &Filter{Flags: 3, Prog: []unix.SockFilter{
		{Code: 0x20, K: 4},
		{Code: 0x15, Jt: 1, Jf: 0, K: 0xc000003e},
		{Code: 0x06, K: 0x7fff0000},
		{Code: 0x06, K: 0x80000000},
	}}
	b, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	var back Filter
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&back, f) {
		t.Errorf("round trip: %+v, want %+v (JSON %s)", back, *f, b)
	}
	if err := json.Unmarshal([]byte(`{"prog":"AAAA","flags":0}`), &back); err == nil || !strings.Contains(err.Error(), "whole number") {
		t.Errorf("a truncated program: %v", err)
	}
}

func TestEncodeDecode(t *testing.T) {
	prog := []unix.SockFilter{{Code: 0x20, K: 4}, {Code: 0x15, Jt: 1, Jf: 2, K: 0xc000003e}, {Code: 0x6, K: 0x7fff0000}}
	raw := Encode(prog)
	if len(raw) != 8*len(prog) {
		t.Fatalf("%d bytes for %d instructions", len(raw), len(prog))
	}
	got, err := Decode(raw)
	if err != nil || !slices.Equal(got, prog) {
		t.Fatalf("Decode(Encode(p)) = %v, %v; want %v", got, err, prog)
	}
	for _, bad := range [][]byte{nil, raw[:7], append(raw, 0)} {
		if _, err := Decode(bad); err == nil {
			t.Errorf("Decode accepted %d bytes", len(bad))
		}
	}
}
