package shim

import (
	"context"
	"fmt"

	taskapi "github.com/containerd/containerd/api/runtime/task/v2"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/ttrpc"
	"google.golang.org/protobuf/proto"
)

// The v2 and v3 task services differ only in their package name: the
// messages are the same on the wire. One implementation, written against
// the v2 Go types, serves both names.
var taskServiceNames = []string{"containerd.task.v2.Task", "containerd.task.v3.Task"}

// registerTaskService registers svc under both service names.
func registerTaskService(srv *ttrpc.Server, svc taskapi.TTRPCTaskService) {
	desc := &ttrpc.ServiceDesc{Methods: map[string]ttrpc.Method{
		"State":      method(svc.State),
		"Create":     method(svc.Create),
		"Start":      method(svc.Start),
		"Delete":     method(svc.Delete),
		"Pids":       method(svc.Pids),
		"Pause":      method(svc.Pause),
		"Resume":     method(svc.Resume),
		"Checkpoint": method(svc.Checkpoint),
		"Kill":       method(svc.Kill),
		"Exec":       method(svc.Exec),
		"ResizePty":  method(svc.ResizePty),
		"CloseIO":    method(svc.CloseIO),
		"Update":     method(svc.Update),
		"Wait":       method(svc.Wait),
		"Stats":      method(svc.Stats),
		"Connect":    method(svc.Connect),
		"Shutdown":   method(svc.Shutdown),
	}}
	for _, name := range taskServiceNames {
		srv.RegisterService(name, desc)
	}
}

// method adapts one typed handler to ttrpc: decode the request into its
// type, call, and turn the error into a status with containerd's code.
func method[Req any, PReq interface {
	*Req
	proto.Message
}, Resp proto.Message](h func(context.Context, PReq) (Resp, error)) ttrpc.Method {
	return func(ctx context.Context, unmarshal func(any) error) (any, error) {
		req := PReq(new(Req))
		if err := unmarshal(req); err != nil {
			return nil, errgrpc.ToGRPC(fmt.Errorf("decode request: %v: %w", err, errdefs.ErrInvalidArgument))
		}
		resp, err := h(ctx, req)
		if err != nil {
			return nil, errgrpc.ToGRPC(err)
		}
		return resp, nil
	}
}
