package specjson

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// fill sets every field reachable from v to a value that is not zero:
// strings name their path, numbers count, slices and maps get two
// elements. A field the generated code does not know would then decline
// or decode differently.
func fill(v reflect.Value, path string, n *int) {
	*n++
	switch v.Kind() {
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem(), path, n)
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if f := v.Type().Field(i); f.IsExported() && f.Tag.Get("json") != "-" {
				fill(v.Field(i), path+"."+f.Name, n)
			}
		}
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		for i := 0; i < 2; i++ {
			fill(v.Index(i), fmt.Sprintf("%s[%d]", path, i), n)
		}
	case reflect.Map:
		v.Set(reflect.MakeMap(v.Type()))
		for i := 0; i < 2; i++ {
			k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
			fill(k, fmt.Sprintf("%s{k%d}", path, i), n)
			fill(e, fmt.Sprintf("%s{v%d}", path, i), n)
			v.SetMapIndex(k, e)
		}
	case reflect.String:
		v.SetString(path)
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(int64(*n % 100))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		v.SetUint(uint64(*n % 200))
	case reflect.Float32, reflect.Float64:
		v.SetFloat(float64(*n) + 0.5)
	case reflect.Interface:
		// What encoding/json makes of an object.
		v.Set(reflect.ValueOf(map[string]any{"s": path, "n": float64(*n), "a": []any{true, nil}}))
	default:
		panic("fill: no rule for " + v.Kind().String() + " at " + path)
	}
}

func filled(t *testing.T) *specs.Spec {
	t.Helper()
	var s specs.Spec
	n := 0
	fill(reflect.ValueOf(&s).Elem(), "spec", &n)
	return &s
}

// TestEveryFieldDecodes fails when the runtime-spec module has a field the
// generated code was not generated for: run `go generate ./spec/specjson`.
func TestEveryFieldDecodes(t *testing.T) {
	want := filled(t)
	data, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	got, ok := Decode(data)
	if !ok {
		t.Fatalf("Decode declined a spec with every field set (stale generated code? run go generate):\n%s", data)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Decode differs from what was encoded:\ngot  %+v\nwant %+v", got, want)
	}
}

// agree checks the package's promise on one input: Decode declines, or
// gives what encoding/json gives (empty maps may be nil).
func agree(t *testing.T, data []byte) {
	t.Helper()
	var want *specs.Spec
	wantErr := json.Unmarshal(data, &want)
	got, ok := Decode(data)
	if !ok {
		return
	}
	if wantErr != nil || want == nil {
		t.Fatalf("Decode accepted what encoding/json refuses (%v): %q", wantErr, data)
	}
	nilEmptyMaps(reflect.ValueOf(want))
	nilEmptyMaps(reflect.ValueOf(got))
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Decode and encoding/json differ on %q:\ngot  %+v\nwant %+v", data, got, want)
	}
}

func nilEmptyMaps(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			nilEmptyMaps(v.Elem())
		}
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				nilEmptyMaps(v.Field(i))
			}
		}
	case reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			nilEmptyMaps(v.Index(i))
		}
	case reflect.Map:
		if v.Len() == 0 && !v.IsNil() {
			v.Set(reflect.Zero(v.Type()))
		}
	}
}

// tricky are inputs on which a fast decoder could part ways with
// encoding/json.
var tricky = []string{
	`{"ociVersion":"1.0.2","process":{"args":["sh"],"cwd":"/"},"root":{"path":"rootfs"}}`,
	`{"OCIVERSION":"1.0.2"}`,
	`{"ociversion":"1.0.2","process":{"Args":["a"]}}`,
	`{"ociVersion":"1","ociVersion":"2"}`,
	`{"annotations":{"a":"1"},"annotations":{"b":"2"}}`,
	`{"linux":{"sysctl":{"a":"1"}},"linux":{"sysctl":{"b":"2"}}}`,
	`{"process":{"args":["a"]},"process":{"cwd":"/"}}`,
	`{"annotations":{"a":"1","a":"2"}}`,
	`{"annotations":{"a":"1"},"x":{"annotations":{}}}`,
	`{"\u006fciVersion":"1.0.2"}`,
	`{"annotations":{"\u0061":"1","a":"2"}}`,
	`{"hostname":"\ud800"}`,
	`{"hostname":"\ud83d\ude00"}`,
	`{"hostname":"\u00e9\n\t\"\\\/"}`,
	"{\"hostname\":\"\xff\"}",
	`{"annotations":{}}`,
	`{"annotations":null,"process":null,"mounts":null}`,
	`{"mounts":[]}`,
	`{"process":{"user":{"uid":1e3}}}`,
	`{"process":{"user":{"uid":1.0}}}`,
	`{"process":{"user":{"uid":-1}}}`,
	`{"process":{"user":{"uid":4294967296}}}`,
	`{"process":{"user":{"uid":01}}}`,
	`{"process":{"user":{"uid":"1"}}}`,
	`{"process":{"terminal":"true"}}`,
	`{"process":{"terminal":1}}`,
	`{"linux":{"resources":{"memory":{"limit":-1,"swappiness":18446744073709551615}}}}`,
	`{"linux":{"resources":{"cpu":{"quota":9223372036854775808}}}}`,
	`{"ociVersion":"1.0.2"} x`,
	`{"ociVersion":"1.0.2"}{}`,
	`{"ociVersion":"1.0.2",}`,
	`{"ociVersion" "1.0.2"}`,
	`{"ociVersion":"1.0.2"`,
	"\ufeff{}",
	"{\f}",
	"{\"ociVersion\":\"a\x01b\"}",
	`null`,
	`[]`,
	`"x"`,
	``,
	` { } `,
	`{"mounts":[{"destination":"/a","options":["ro",null]}]}`,
	`{"linux":{"devices":[{"path":"/dev/x","type":"c","major":1,"minor":3,"fileMode":438}]}}`,
	`{"linux":{"namespaces":[{"type":"pid"},{"type":"network","path":"/proc/1/ns/net"}]}}`,
	`{"linux":{"seccomp":{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["a","b"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":1,"op":"SCMP_CMP_EQ"}]}]}}}`,
}

func TestAgreesWithEncodingJSON(t *testing.T) {
	for _, in := range tricky {
		agree(t, []byte(in))
	}
	// The configs runc and containerd write.
	files, _ := filepath.Glob("../testdata/*.json")
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		agree(t, data)
	}
}

// TestDeclines: inputs where the two could differ go to encoding/json.
func TestDeclines(t *testing.T) {
	for _, in := range []string{
		`{"OCIVERSION":"1.0.2"}`,
		`{"annotations":{"a":"1"},"annotations":{"b":"2"}}`,
		`{"annotations":{"\u0061":"1","a":"2"}}`,
		`{"hostname":"\ud800"}`,
		"{\"hostname\":\"\xff\"}",
		`{"unknown":1}`,
		`null`,
	} {
		if _, ok := Decode([]byte(in)); ok {
			t.Errorf("Decode accepted %q", in)
		}
	}
	if _, ok := Decode([]byte(tricky[0])); !ok {
		t.Errorf("Decode declined a plain spec %q", tricky[0])
	}
}

func FuzzAgreesWithEncodingJSON(f *testing.F) {
	for _, in := range tricky {
		f.Add([]byte(in))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if !strings.Contains(string(data), "{") {
			return
		}
		agree(t, data)
	})
}

// TestWithoutLinux: the named members of "linux" decode as nil and
// nothing else changes, wherever they stand and however the document is
// laid out.
func TestWithoutLinux(t *testing.T) {
	full := `{
  "ociVersion": "1.2.0",
  "hostname": "linux",
  "annotations": {"linux": "seccomp", "x": "{\"linux\":1}"},
  "linux" : {
    "seccomp" : {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read", "}"], "action": "SCMP_ACT_ALLOW"}]},
    "namespaces": [{"type": "pid"}],
    "resources": {"devices": [{"allow": false, "access": "rwm"}]},
    "maskedPaths": ["/proc/kcore"]
  },
  "process": {"args": ["sh"], "cwd": "/"}
}`
	out, ok := WithoutLinux([]byte(full), "seccomp", "resources")
	if !ok {
		t.Fatal("declined")
	}
	got, ok := Decode(out)
	if !ok {
		t.Fatalf("result does not decode: %s", out)
	}
	want, _ := Decode([]byte(full))
	if want.Linux.Seccomp == nil || want.Linux.Resources == nil {
		t.Fatal("test document lost its seccomp or resources")
	}
	want.Linux.Seccomp, want.Linux.Resources = nil, nil
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	if !strings.Contains(string(out), `"seccomp" : null,`) || !strings.Contains(string(out), `"resources": null,`) {
		t.Fatalf("values not replaced in place: %s", out)
	}

	for _, doc := range []string{
		`{"ociVersion":"1.2.0"}`,
		`{"linux":null}`,
		`{"linux":{}}`,
		`{"linux":{"maskedPaths":["/seccomp"]},"seccomp":{"a":1}}`,
	} {
		out, ok := WithoutLinux([]byte(doc), "seccomp")
		if !ok || string(out) != doc {
			t.Errorf("%s: got %s, %v; want it unchanged", doc, out, ok)
		}
	}
	for _, bad := range []string{`{"linux":{"seccomp":}}`, `[]`, `{"linux":`, ``} {
		if out, ok := WithoutLinux([]byte(bad), "seccomp"); ok || string(out) != bad {
			t.Errorf("%q: got %q, %v; want it declined and unchanged", bad, out, ok)
		}
	}
}
