// Package nsenter joins existing namespaces before the Go runtime starts.
//
// Go cannot setns(2) into a mount or user namespace once the process is
// multithreaded, and the Go runtime starts threads before main. This package
// therefore links a C constructor into every binary that imports it
// (import _ "github.com/runmini/runmini/libcontainer/nsenter"), and the
// constructor runs while the process still has a single thread.
//
// The constructor does nothing unless _RUNMINI_NSPIPE is set. Otherwise it
// reads the variables below, removes them from the environment (the Go side
// of the process never sees them) and acts on them in this order:
//
//   - _RUNMINI_NSPIPE=<fd>: the write end of a pipe. The constructor writes
//     exactly one line to it and closes it: "ok\n" when it did not fork,
//     "pid <N>\n" when it forked (N is the pid of the child that continues,
//     as seen in the caller's pid namespace), or "error <message>\n", after
//     which the process exits with status 1. The message names the failed
//     step, e.g. "setns net (fd 5): Operation not permitted".
//   - _RUNMINI_SETNS=<fd>:<type>,<fd>:<type>,...: namespaces to join, in the
//     given order (the caller puts user first), each fd closed once joined.
//     Types are user, ipc, uts, net, pid, mnt, cgroup and time; the kernel
//     checks that each fd refers to a namespace of the named type.
//   - _RUNMINI_CGROUP=<fd>,<fd>,...: cgroup v1 "tasks" files open for
//     writing, one per hierarchy; before anything else the constructor
//     writes "0" to each (which moves the writing thread, here the whole
//     process, without the cgroup-wide lock that moving another process
//     takes) and closes it.
//   - _RUNMINI_UNSHARE=<decimal clone flags>: namespaces to create after the
//     joins, e.g. when a user namespace was joined and the others must be
//     owned by it. Only CLONE_NEW* flags are accepted.
//
// Joining or creating a pid or time namespace only affects children, so in
// that case the constructor forks: the parent reports "pid <N>" and exits 0
// at once, and the child returns from the constructor into the Go runtime.
// The caller reaps the intermediate process and tracks N from then on.
//
// A binary built without cgo has no constructor and never writes to the
// pipe; [ReadReport] then returns an error at end of file instead of letting
// the process run in the wrong namespaces.
package nsenter
