package shim

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	eventsapi "github.com/containerd/containerd/api/services/ttrpc/events/v1"
	"github.com/containerd/containerd/api/types"
	"github.com/containerd/ttrpc"
	"github.com/containerd/typeurl/v2"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Topics of the task events containerd listens for.
const (
	topicCreate      = "/tasks/create"
	topicStart       = "/tasks/start"
	topicExit        = "/tasks/exit"
	topicDelete      = "/tasks/delete"
	topicExecAdded   = "/tasks/exec-added"
	topicExecStarted = "/tasks/exec-started"
	topicPaused      = "/tasks/paused"
	topicResumed     = "/tasks/resumed"
	topicOOM         = "/tasks/oom"
)

// maxQueued bounds the events kept while containerd is away; beyond it
// the oldest are dropped (and logged) rather than the shim's memory grown
// without bound.
const maxQueued = 4096

// publisher forwards events to containerd's ttrpc Events service in the
// order they were published. While containerd is unreachable (restarting)
// they are queued and retried; a live restore picks them up.
type publisher struct {
	address string
	ns      string

	mu     sync.Mutex
	cond   *sync.Cond
	queue  []*types.Envelope
	closed bool
	idle   chan struct{} // closed when the queue drained after close

	client *ttrpc.Client
}

func newPublisher(address, ns string) *publisher {
	p := &publisher{address: strings.TrimPrefix(address, "unix://"), ns: ns, idle: make(chan struct{})}
	p.cond = sync.NewCond(&p.mu)
	go p.run()
	return p
}

// publish queues an event; it never blocks on containerd.
func (p *publisher) publish(topic string, event any) {
	a, err := typeurl.MarshalAnyToProto(event)
	if err != nil {
		slog.Error("encode event", "topic", topic, "err", err)
		return
	}
	env := &types.Envelope{Timestamp: timestamppb.Now(), Namespace: p.ns, Topic: topic, Event: a}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	if len(p.queue) >= maxQueued {
		slog.Warn("event queue full, dropping the oldest", "topic", p.queue[0].Topic)
		p.queue = p.queue[1:]
	}
	p.queue = append(p.queue, env)
	p.cond.Signal()
}

// close stops accepting events and waits up to timeout for the queue to
// drain, so a shim exiting right after a delete still reports it.
func (p *publisher) close(timeout time.Duration) {
	p.mu.Lock()
	p.closed = true
	p.cond.Signal()
	p.mu.Unlock()
	select {
	case <-p.idle:
	case <-time.After(timeout):
	}
}

func (p *publisher) run() {
	defer close(p.idle)
	backoff := 10 * time.Millisecond
	for {
		p.mu.Lock()
		for len(p.queue) == 0 && !p.closed {
			p.cond.Wait()
		}
		if len(p.queue) == 0 {
			p.mu.Unlock()
			p.disconnect()
			return
		}
		env := p.queue[0]
		closed := p.closed
		p.mu.Unlock()

		err := p.forward(env)
		if _, rejected := status.FromError(err); err != nil && rejected {
			// containerd answered and refused it: retrying cannot help.
			slog.Warn("containerd refused event", "topic", env.Topic, "err", err)
		} else if err != nil {
			if closed && backoff > time.Second {
				// Shutting down and containerd is gone: give up.
				p.disconnect()
				return
			}
			slog.Debug("forward event, will retry", "topic", env.Topic, "err", err)
			p.disconnect()
			time.Sleep(backoff)
			backoff = min(backoff*2, 2*time.Second)
			continue
		}
		backoff = 10 * time.Millisecond
		p.mu.Lock()
		if len(p.queue) > 0 && p.queue[0] == env {
			p.queue = p.queue[1:]
		}
		p.mu.Unlock()
	}
}

func (p *publisher) forward(env *types.Envelope) error {
	if p.client == nil {
		conn, err := net.DialTimeout("unix", p.address, 5*time.Second)
		if err != nil {
			return err
		}
		p.client = ttrpc.NewClient(conn)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := eventsapi.NewTTRPCEventsClient(p.client).Forward(ctx, &eventsapi.ForwardRequest{Envelope: env})
	return err
}

func (p *publisher) disconnect() {
	if p.client != nil {
		p.client.Close()
		p.client = nil
	}
}
