package cgroups

import (
	"path/filepath"
	"slices"
	"sync"
	"testing"
)

// recorder collects every write a manager makes, in order.
type recorder struct {
	mu     sync.Mutex
	writes []string
}

func (r *recorder) trace(path, value string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.writes = append(r.writes, filepath.Base(path)+"="+value)
}

func (r *recorder) index(w string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Index(r.writes, w)
}

// newTraced is New with a recorder attached.
func newTraced(t testing.TB, c Config) (*manager, *recorder, error) {
	t.Helper()
	mgr, err := New(c)
	if err != nil {
		return nil, nil, err
	}
	m := mgr.(*manager)
	rec := &recorder{}
	m.files.trace = rec.trace
	return m, rec, nil
}
