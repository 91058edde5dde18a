package spec

import (
	"errors"
	"fmt"
)

// MaxIDLength bounds container ids. runc has no limit, but the id names a
// directory under the state root and a cgroup, so it must leave room for
// both within PATH_MAX (4096).
const MaxIDLength = 1024

// ErrInvalidID is runc's error for a container id it refuses.
var ErrInvalidID = errors.New("invalid container ID format")

// ValidateID accepts the ids runc accepts: one or more of ASCII letters,
// digits, '_', '+', '-' and '.', except "." and "..", which would name the
// state directory itself or its parent. The error wraps ErrInvalidID.
func ValidateID(id string) error {
	if id == "" {
		return fmt.Errorf("%w: id must not be empty", ErrInvalidID)
	}
	if len(id) > MaxIDLength {
		return fmt.Errorf("%w: id is %d bytes long, the limit is %d", ErrInvalidID, len(id), MaxIDLength)
	}
	if id == "." || id == ".." {
		return fmt.Errorf("%w: %q", ErrInvalidID, id)
	}
	for i := 0; i < len(id); i++ {
		switch c := id[i]; {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9',
			c == '_', c == '+', c == '-', c == '.':
		default:
			return fmt.Errorf("%w: %q", ErrInvalidID, id)
		}
	}
	return nil
}
