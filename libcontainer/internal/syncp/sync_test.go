package syncp

import (
	"encoding/json"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestSyncRoundTrip(t *testing.T) {
	p, c, err := NewPair()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	defer c.Close()
	parent, child := &Conn{F: p}, &Conn{F: c}
	// A config far larger than a page must arrive whole.
	big := &specs.Spec{Process: &specs.Process{Env: []string{strings.Repeat("x", 200000)}}}
	if err := parent.Send(&Msg{Type: MsgConfig, Config: &InitConfig{ID: "a", Spec: big}}); err != nil {
		t.Fatal(err)
	}
	var logged []string
	if err := child.Send(&Msg{Type: MsgLog, Log: []byte(`{"level":"INFO","msg":"hi"}`)}); err != nil {
		t.Fatal(err)
	}
	if err := child.Send(&Msg{Type: MsgReady}); err != nil {
		t.Fatal(err)
	}
	m, err := child.Expect(MsgConfig, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m.Config.ID != "a" || len(m.Config.Spec.Process.Env[0]) != 200000 {
		t.Fatalf("config mangled: id %q", m.Config.ID)
	}
	if _, err := parent.Expect(MsgReady, func(b json.RawMessage) { logged = append(logged, string(b)) }); err != nil {
		t.Fatal(err)
	}
	if len(logged) != 1 {
		t.Fatalf("log lines forwarded: %v", logged)
	}
	child.Send(&Msg{Type: MsgError, Error: "boom"})
	if _, err := parent.Expect(MsgOK, nil); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("error message not delivered: %v", err)
	}
	child.Send(&Msg{Type: MsgReady})
	if _, err := parent.Expect(MsgOK, nil); err == nil || !strings.Contains(err.Error(), "protocol") {
		t.Fatalf("unexpected message accepted: %v", err)
	}
	c.Close()
	if _, err := parent.Expect(MsgOK, nil); err == nil {
		t.Fatal("EOF not reported")
	}
}
