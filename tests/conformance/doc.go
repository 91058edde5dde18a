// Package conformance runs the OCI runtime validation suite
// (github.com/opencontainers/runtime-tools v0.9.0, built from the Go module
// proxy by scripts/build-validation.sh) against the runtime under test and
// fails when a program listed in expected-pass.txt fails. Run it as root:
//
//	go test ./tests/conformance -v -timeout 30m
//
// The runtime under test is chosen as for the integration tests
// (RUNTIME_UNDER_TEST, RUNMINI_BINARY, else bin/runmini). CONFORMANCE_RUN (a
// regular expression) selects programs, CONFORMANCE_JOBS (default 2) sets how
// many run at once and CONFORMANCE_TIMEOUT (default 120s) bounds each one.
// Each program's output is kept in $RUNMINI_CACHE/conformance-logs/RUNTIME/.
package conformance
