package syncp

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/runmini/runmini/libcontainer/seccomp/bpf"
	"github.com/runmini/runmini/spec/specjson"
)

func sendConfig(c *Conn, ic *InitConfig, pid int) error {
	b, err := EncodeConfig(ic, nil)
	if err != nil {
		return err
	}
	return c.SendConfig(b, pid)
}

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
	if err := sendConfig(parent, &InitConfig{ID: "a", Spec: (*specjson.Spec)(big)}, 42); err != nil {
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
	ic, err := ReadConfig(m)
	if err != nil {
		t.Fatal(err)
	}
	if ic.ID != "a" || len(ic.Spec.Process.Env[0]) != 200000 || ic.InitPid != 42 {
		t.Fatalf("config mangled: id %q", ic.ID)
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

// TestEncodeConfigRawSpec: given the spec's JSON, the config carries it in
// place of ic.Spec, and every other field as well.
func TestEncodeConfigRawSpec(t *testing.T) {
	raw := []byte(`{
	"ociVersion": "1.2.0",
	"process": {"args": ["/bin/true"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
	"hostname": "from-raw <&>",
	"mounts": [{"destination": "/data", "type": "bind", "source": "data", "options": ["rbind"]}]
}`)
	other := &specs.Spec{Hostname: "from-struct"}
	ic := &InitConfig{Version: Version, ID: "c1", Bundle: "/b", Spec: (*specjson.Spec)(other), ConsoleFD: -1, ExecSockFD: 5, NoPivot: true, CgroupPaths: map[string]string{"pids": "/p"}}
	b, err := EncodeConfig(ic, raw)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ReadConfig(&Msg{Type: MsgConfig, Config: b, Pid: 7})
	if err != nil {
		t.Fatal(err)
	}
	var want specs.Spec
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual((*specs.Spec)(got.Spec), &want) {
		t.Fatalf("spec: got %+v, want %+v", got.Spec, want)
	}
	got.Spec, ic.Spec, ic.InitPid = nil, nil, 7
	if !reflect.DeepEqual(got, ic) {
		t.Fatalf("config: got %+v, want %+v", got, ic)
	}
	if other.Hostname != "from-struct" {
		t.Fatal("EncodeConfig changed the caller's spec")
	}
}

// TestReadConfigFromAnotherBuild: a config with keys this build does not
// know from a runmini of another protocol version still tells its
// version, so that the init can say so; from this version it is an error.
func TestReadConfigFromAnotherBuild(t *testing.T) {
	m := &Msg{Type: MsgConfig, Config: []byte(`{"version":"runmini-sync-0","id":"x","spec":{"ociVersion":"1.0.2","newField":{"a":1}},"newTop":true}`)}
	ic, err := ReadConfig(m)
	if err != nil {
		t.Fatal(err)
	}
	if ic.Version != "runmini-sync-0" {
		t.Fatalf("decoded %+v", ic)
	}
	m.Config = []byte(`{"version":"` + Version + `","spec":{"newField":1}}`)
	if _, err := ReadConfig(m); err == nil || !strings.Contains(err.Error(), "unknown field") {
		t.Fatalf("same version, unknown field: %v", err)
	}
	if _, err := ReadConfig(&Msg{Type: MsgConfig, Config: []byte(`{"id":`)}); err == nil || !strings.Contains(err.Error(), "decode init config") {
		t.Fatalf("truncated config: %v", err)
	}
}

// TestAppendString: a string reads back from our encoding as it does from
// encoding/json's, invalid UTF-8 included.
func TestAppendString(t *testing.T) {
	for _, s := range []string{"", "plain", `q"b\s/`, "\n\r\t\b\f\x00\x1f\x7f", "é€😀", "\u2028\u2029", "bad \xff\xfe utf8", "\xed\xa0\x80"} {
		ours := appendString(nil, s)
		if !json.Valid(ours) {
			t.Fatalf("%q: invalid JSON %s", s, ours)
		}
		want, _ := json.Marshal(s)
		var a, b string
		if err := json.Unmarshal(ours, &a); err != nil {
			t.Fatal(err)
		}
		json.Unmarshal(want, &b)
		if a != b {
			t.Errorf("%q: reads back as %q, encoding/json's as %q", s, a, b)
		}
	}
}

// TestMsgJSON: every field survives our encoder and the generated decoder.
func TestMsgJSON(t *testing.T) {
	f := &bpf.Filter{Prog: []unix.SockFilter{{Code: 6, Jt: 1, Jf: 2, K: 0x7fff0000}}, Flags: 4}
	in := &Msg{Type: MsgSeccomp, Error: "e\"\n", Config: []byte(`{"id":"x"}`), Log: []byte(`{"msg":"m"}`), Seccomp: f, Pid: 7}
	b := in.appendJSON(nil)
	var viaStd Msg
	if err := json.Unmarshal(b, &viaStd); err != nil {
		t.Fatalf("encoding/json cannot read %s: %v", b, err)
	}
	out := new(Msg)
	if err := specjson.Unmarshal(b, out); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, out) || !reflect.DeepEqual(in, &viaStd) {
		t.Fatalf("%s decoded as %+v / %+v", b, out, &viaStd)
	}
}
