package libcontainer

import "errors"

// Sentinels callers test with errors.Is. Their texts are runc's, because
// containerd-shim-runc-v2, podman and go-runc match on them.
var (
	ErrExist      = errors.New("container with given ID already exists")
	ErrNotExist   = errors.New("container does not exist")
	ErrNotRunning = errors.New("container not running")
	ErrNotCreated = errors.New("container is not in created state")
	ErrStopped    = errors.New("cannot start a container that has stopped")
	ErrRunning    = errors.New("cannot start an already running container")
	ErrPaused     = errors.New("container paused")
	ErrNotPaused  = errors.New("container not paused")
)
