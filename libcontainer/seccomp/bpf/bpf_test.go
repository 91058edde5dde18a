package bpf

import (
	"encoding/json"
	"reflect"
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
