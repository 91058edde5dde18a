package syncp

import (
	"log/slog"
	"time"
)

// procStart is close to the moment the Go runtime handed over to us: the
// time before it (exec, runtime start, package inits) is measured from the
// outside by `make bench`.
var procStart = time.Now()

// Phase logs, at debug level, how far into this process a step of the
// start path is: `runmini --debug` shows where a container's start goes.
func Phase(step string) {
	slog.Debug("phase", "step", step, "ms", float64(time.Since(procStart).Microseconds())/1000)
}
