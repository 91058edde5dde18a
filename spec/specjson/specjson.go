// Package specjson decodes a runtime spec without reflection.
//
// encoding/json spends ~2 ms on the first decode of a config.json in a
// fresh process (building its per-type caches by reflection), against
// ~0.15 ms for code generated per type; every `runmini create`/`run` and
// every container init is such a fresh process. The generated code
// (easyjson, decoders only) is in specjson_easyjson.go; regenerate it with
// `go generate` whenever the runtime-spec module changes
// (TestEveryFieldDecodes fails until then). Encoding stays with
// encoding/json.
//
// Decode agrees with encoding/json or declines: what it accepts decodes to
// the same spec (maps that are empty may come out nil), and anything where
// the two could differ is left to encoding/json by the caller. That is:
// keys spelled other than exactly as the spec spells them (encoding/json
// folds case), unknown keys, a key twice in one object (encoding/json
// merges repeated maps), escapes in keys, invalid UTF-8 and escaped lone
// surrogates (encoding/json replaces both with U+FFFD), and any input it
// finds wrong, so that errors keep encoding/json's wording.
package specjson

import (
	"bytes"
	"encoding/json"
	"slices"
	"unicode/utf8"

	"github.com/mailru/easyjson/jlexer"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

//go:generate sh ../../scripts/easyjson.sh -disallow_unknown_fields specjson.go

// Spec is specs.Spec with a generated decoder; convert pointers freely.
//
//easyjson:json
type Spec specs.Spec

// Decode decodes a config.json, or returns false when encoding/json must
// (see the package comment).
func Decode(data []byte) (*specs.Spec, bool) {
	if !plain(data) {
		return nil, false
	}
	s := new(Spec)
	if err := Unmarshal(data, s); err != nil {
		return nil, false
	}
	return (*specs.Spec)(s), true
}

// plain reports whether data is a valid JSON object that the generated
// decoder reads exactly as encoding/json would: valid UTF-8, no key
// repeated within an object, no escape in a key, no escaped surrogate.
func plain(data []byte) bool {
	// json.Valid is encoding/json's own syntax check (no reflection):
	// the generated lexer is laxer (leading zeros, control characters in
	// strings).
	data = bytes.TrimLeft(data, " \t\r\n")
	if len(data) == 0 || data[0] != '{' || !utf8.Valid(data) || !json.Valid(data) {
		return false
	}
	// keys[i] holds the keys seen in the i-th enclosing object (nil for
	// an array), innermost last.
	var keys [][]string
	var inObject []bool
	expectKey := false
	for i := 0; i < len(data); i++ {
		switch c := data[i]; c {
		case '{':
			keys = append(keys, nil)
			inObject = append(inObject, true)
			expectKey = true
		case '[':
			keys = append(keys, nil)
			inObject = append(inObject, false)
			expectKey = false
		case '}', ']':
			if len(keys) == 0 {
				return false
			}
			keys, inObject = keys[:len(keys)-1], inObject[:len(inObject)-1]
			expectKey = false
		case ',':
			expectKey = len(inObject) > 0 && inObject[len(inObject)-1]
		case '"':
			end, escaped, ok := scanString(data, i)
			if !ok {
				return false
			}
			if expectKey {
				if escaped {
					return false
				}
				k := string(data[i+1 : end])
				top := len(keys) - 1
				for _, seen := range keys[top] {
					if seen == k {
						return false
					}
				}
				keys[top] = append(keys[top], k)
				expectKey = false
			}
			i = end
		}
	}
	return true
}

// scanString finds the closing quote of the string opening at data[start]
// and whether the string has escapes; ok is false for an unterminated
// string or an escaped UTF-16 surrogate.
func scanString(data []byte, start int) (end int, escaped, ok bool) {
	for i := start + 1; i < len(data); i++ {
		switch data[i] {
		case '"':
			return i, escaped, true
		case '\\':
			escaped = true
			if i+1 < len(data) && data[i+1] == 'u' && i+5 < len(data) && isSurrogate(data[i+2:i+6]) {
				return 0, false, false
			}
			i++
		}
	}
	return 0, false, false
}

// isSurrogate reports whether four hex digits name a UTF-16 surrogate
// (D800-DFFF).
func isSurrogate(hex []byte) bool {
	return (hex[0] == 'd' || hex[0] == 'D') && bytes.IndexByte([]byte("89abcdefABCDEF"), hex[1]) >= 0
}

// Unmarshaler is what easyjson generates. This package, not easyjson's
// root package, names it: that package links net/http (see
// scripts/easyjson.sh).
type Unmarshaler interface {
	UnmarshalEasyJSON(l *jlexer.Lexer)
}

// Unmarshal decodes data, one whole JSON value, into v with its generated
// code.
func Unmarshal(data []byte, v Unmarshaler) error {
	l := jlexer.Lexer{Data: data}
	v.UnmarshalEasyJSON(&l)
	return l.Error()
}

// WithoutLinux returns data, a config.json Decode accepted, with the
// values of the named members of its "linux" object replaced by null, so
// that it decodes to the same spec with those fields nil; the rest is
// byte for byte the same. ok is false when data is not such a document,
// and data comes back unchanged.
func WithoutLinux(data []byte, names ...string) (_ []byte, ok bool) {
	// Decode accepted data: its keys are spelled exactly, unescaped and
	// never twice in an object, so comparing them as they stand is what
	// the decoder does.
	type span struct{ start, end int }
	var cut []span
	l := jlexer.Lexer{Data: data}
	l.Delim('{')
	for l.Ok() && !l.IsDelim('}') {
		key := l.UnsafeString()
		l.WantColon()
		if key != "linux" || l.IsNull() {
			l.SkipRecursive()
			l.WantComma()
			continue
		}
		l.Delim('{')
		for l.Ok() && !l.IsDelim('}') {
			key := l.UnsafeString()
			l.WantColon()
			v := l.Raw()
			if l.Ok() && slices.Contains(names, key) {
				cut = append(cut, span{l.GetPos() - len(v), l.GetPos()})
			}
			l.WantComma()
		}
		l.Delim('}')
		l.WantComma()
	}
	l.Delim('}')
	if !l.Ok() {
		return data, false
	}
	if len(cut) == 0 {
		return data, true
	}
	out := make([]byte, 0, len(data))
	prev := 0
	for _, c := range cut {
		out = append(append(out, data[prev:c.start]...), "null"...)
		prev = c.end
	}
	return append(out, data[prev:]...), true
}
