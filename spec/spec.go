// Package spec loads and validates an OCI bundle's config.json, produces the
// default spec written by `runmini spec` and describes what this build
// supports (`runmini features`).
//
// Error texts follow runc's where runc has one, because callers
// (containerd-shim-runc-v2, podman, go-runc) match on them.
package spec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/runmini/runmini/internal/sysfile"
	"github.com/runmini/runmini/spec/specjson"
)

// ConfigFile is the name of the spec file inside a bundle.
const ConfigFile = "config.json"

// notFoundError keeps runc's exact wording while still matching
// errors.Is(err, fs.ErrNotExist).
type notFoundError struct{ name string }

func (e notFoundError) Error() string {
	return "JSON specification file " + e.name + " not found"
}

func (e notFoundError) Unwrap() error { return fs.ErrNotExist }

// Load reads and decodes <bundle>/config.json. It does not validate the
// result; call Validate for that.
func Load(bundle string) (*specs.Spec, error) {
	s, _, err := LoadJSON(bundle)
	return s, err
}

// LoadJSON is Load that also returns config.json's bytes when specjson
// decodes them to s (see specjson.Decode), so that they can be handed on
// instead of an encoding of s: whoever decodes them with specjson gets s
// again. It returns nil bytes for a config.json only encoding/json reads.
func LoadJSON(bundle string) (*specs.Spec, []byte, error) {
	path := filepath.Join(bundle, ConfigFile)
	data, err := sysfile.Read(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil, notFoundError{name: ConfigFile}
		}
		return nil, nil, fmt.Errorf("read %s: %w", ConfigFile, err)
	}
	if s, ok := specjson.Decode(data); ok {
		return s, data, nil
	}
	s, err := decodeStd(data)
	return s, nil, err
}

// decodeStd decodes with encoding/json, whose errors name what is wrong.
func decodeStd(data []byte) (*specs.Spec, error) {
	var s *specs.Spec
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("parse %s: %s", ConfigFile, describeJSONError(data, err))
	}
	if s == nil {
		return nil, fmt.Errorf("parse %s: the top-level value must be an object, not null", ConfigFile)
	}
	return s, nil
}

// describeJSONError turns encoding/json's byte offsets into line and column,
// which is what a person editing config.json needs to find the problem.
func describeJSONError(data []byte, err error) string {
	var (
		syntaxErr *json.SyntaxError
		typeErr   *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &syntaxErr):
		line, col := position(data, syntaxErr.Offset)
		return fmt.Sprintf("%s at line %d, column %d", syntaxErr.Error(), line, col)
	case errors.As(err, &typeErr):
		line, col := position(data, typeErr.Offset)
		field := typeErr.Field
		if field == "" {
			field = "(top level)"
		}
		return fmt.Sprintf("field %s: cannot use JSON %s as %s at line %d, column %d",
			field, typeErr.Value, typeErr.Type, line, col)
	default:
		return err.Error()
	}
}

// position converts a byte offset into a 1-based line and column.
func position(data []byte, offset int64) (line, col int) {
	if offset < 0 {
		offset = 0
	}
	if offset > int64(len(data)) {
		offset = int64(len(data))
	}
	before := data[:offset]
	line = bytes.Count(before, []byte{'\n'}) + 1
	col = int(offset) - (bytes.LastIndexByte(before, '\n') + 1)
	if col < 1 {
		col = 1
	}
	return line, col
}

// HasNamespace reports whether s lists a namespace of type t and, if so, the
// path to join ("" means a new namespace is created).
func HasNamespace(s *specs.Spec, t specs.LinuxNamespaceType) (path string, ok bool) {
	if s == nil || s.Linux == nil {
		return "", false
	}
	for _, ns := range s.Linux.Namespaces {
		if ns.Type == t {
			return ns.Path, true
		}
	}
	return "", false
}

// RootfsPath returns the absolute host path of the container's root
// filesystem: root.path resolved against bundle, with symlinks evaluated.
// When the path cannot be resolved (it does not exist, or there is no
// root), the cleaned absolute path is returned; Validate reports why.
func RootfsPath(s *specs.Spec, bundle string) string {
	var root string
	if s != nil && s.Root != nil {
		root = s.Root.Path
	}
	if !filepath.IsAbs(root) {
		root = filepath.Join(bundle, root)
	}
	if abs, err := filepath.Abs(root); err == nil {
		root = abs
	}
	if resolved, err := filepath.EvalSymlinks(root); err == nil {
		return resolved
	}
	return filepath.Clean(root)
}
