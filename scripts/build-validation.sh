#!/usr/bin/env bash
# Builds the OCI runtime validation suite (opencontainers/runtime-tools v0.9.0)
# from the Go module proxy into $CACHE/runtime-tools:
#   validation/<name>   one program per feature (prints TAP)
#   runtimetest         static helper the programs copy into each bundle
#   rootfs-amd64.tar.gz rootfs the programs unpack into each bundle
# v0.9.0 predates Go modules and its Godeps pins no longer match current
# releases, so it is built in a throwaway module that pins the old versions.
# The build is skipped when the result is already there (delete the dir to
# force a rebuild).
set -euo pipefail

CACHE=${RUNMINI_CACHE:-/var/tmp/runmini-cache}
OUT=$CACHE/runtime-tools
STAMP=$OUT/.complete
RT_VERSION=v0.9.0

if [[ -f $STAMP ]]; then
	echo "validation suite: cached in $OUT"
	exit 0
fi

mkdir -p "$CACHE"
# Two builds at once (two checkouts testing) would replace each other's
# output; the second one waits and then finds the first one's result.
exec 9>"$CACHE/runtime-tools.lock"
flock 9
if [[ -f $STAMP ]]; then
	echo "validation suite: cached in $OUT"
	exit 0
fi

export GOTOOLCHAIN=local GOFLAGS=-mod=mod
export GOPROXY=${GOPROXY:-https://proxy.golang.org}
# Only the module proxy is reachable: never fall back to a VCS fetch.
export GOPROXY=${GOPROXY%%,direct}
export GOCACHE=${GOCACHE:-$CACHE/go-build}
export GOMODCACHE=${GOMODCACHE:-$CACHE/gomod}

work=$(mktemp -d "$CACHE/rt-build.XXXXXX")
trap 'rm -rf "$work"' EXIT

mod=$work/mod
mkdir -p "$mod"
cat >"$mod/go.mod" <<'GOMOD'
module runmini.local/validation-build

go 1.20
GOMOD

cd "$mod"
go get \
	github.com/opencontainers/runtime-tools@$RT_VERSION \
	github.com/opencontainers/runtime-spec@v1.0.2-0.20181111125026-1722abf79c2f \
	github.com/opencontainers/selinux@v1.0.0 \
	github.com/syndtr/gocapability@v0.0.0-20170704070218-db04d3cc01c8 \
	github.com/mrunalp/fileutils@v0.0.0-20160930181131-4ee1cc9a8058 \
	github.com/satori/go.uuid@v1.1.0 \
	github.com/sirupsen/logrus@v1.0.2-0.20170713114250-a3f95b5c4235 \
	github.com/blang/semver@v3.5.0+incompatible \
	github.com/hashicorp/go-multierror@v1.0.0 \
	github.com/hashicorp/errwrap@v1.0.0 \
	github.com/urfave/cli@v1.19.1 \
	github.com/mndrix/tap-go@v0.0.0-20171203230836-629fa407e90b \
	github.com/xeipuuv/gojsonschema@v0.0.0-20170528113821-0c8571ac0ce1 \
	github.com/xeipuuv/gojsonpointer@v0.0.0-20170225233418-6fe8760cad35 \
	github.com/xeipuuv/gojsonreference@v0.0.0-20150808065054-e02fc20de94c \
	golang.org/x/sys@v0.0.0-20170407050850-f3918c30c5c2

rtdir=$(go list -m -f '{{.Dir}}' github.com/opencontainers/runtime-tools)
stage=$work/out
mkdir -p "$stage/validation"

mapfile -t progs < <(go list -f '{{if eq .Name "main"}}{{.ImportPath}}{{end}}' \
	github.com/opencontainers/runtime-tools/validation/...)
if ((${#progs[@]} == 0)); then
	echo "validation suite: no programs found under $rtdir/validation" >&2
	exit 1
fi
echo "validation suite: building ${#progs[@]} programs"
go build -trimpath -o "$stage/validation/" "${progs[@]}"
CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$stage/runtimetest" \
	github.com/opencontainers/runtime-tools/cmd/runtimetest
install -m 0644 "$rtdir/rootfs-amd64.tar.gz" "$stage/rootfs-amd64.tar.gz"

# Publish atomically so an interrupted build never looks complete.
rm -rf "$OUT"
mv "$stage" "$OUT"
chmod -R a+rX "$OUT"
touch "$STAMP"
echo "validation suite: built into $OUT"
