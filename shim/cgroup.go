package shim

import (
	"errors"
	"fmt"
	"log/slog"

	eventstypes "github.com/containerd/containerd/api/events"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/runmini/runmini/cgroups"
	cgstats "github.com/runmini/runmini/cgroups/stats"
)

// stats reads the task's cgroup metrics as the Any `ctr task metrics`
// decodes (io.containerd.cgroups.v1.Metrics or .v2.Metrics).
func (t *task) stats() (*anypb.Any, error) {
	m, err := t.c.Cgroup()
	if err != nil {
		return nil, fmt.Errorf("%v: %w", err, errdefs.ErrNotFound)
	}
	metrics, err := cgstats.Metrics(m)
	if err != nil {
		return nil, fmt.Errorf("stats of %s: %w", t.id, err)
	}
	return typeurl.MarshalAnyToProto(metrics)
}

// watchOOM publishes a TaskOOM event for each OOM in the task's cgroup
// and returns how to stop watching. A cgroup without the memory
// controller has nothing to watch.
func (s *service) watchOOM(t *task) func() {
	m, err := t.c.Cgroup()
	if err != nil {
		return func() {}
	}
	w, err := cgroups.NewOOMWatcher(m)
	if err != nil {
		if !errors.Is(err, cgroups.ErrControllerUnavailable) {
			slog.Warn("cannot watch for OOM kills", "id", t.id, "err", err)
		}
		return func() {}
	}
	go func() {
		for range w.C {
			s.pub.publish(topicOOM, &eventstypes.TaskOOM{ContainerID: t.id})
		}
	}()
	return func() { w.Close() }
}
