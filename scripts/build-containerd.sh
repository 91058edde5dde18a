#!/usr/bin/env bash
# Builds containerd, ctr and containerd-shim-runc-v2 of the given versions
# from the Go module proxy, for the shim's end-to-end tests, and caches them
# in ${RUNMINI_CACHE:-/var/tmp/runmini-cache}/containerd/<version>/:
#
#   scripts/build-containerd.sh 2.4.2 2.2.9 1.7.35
#
# A version already in the cache is not built again; "1.6" means Debian's
# containerd package in /usr/bin and is never built. Each version is built
# into a temporary directory beside its final place and renamed into it, so
# the cache never holds half a build, and a per-version lock makes tests
# that ask for the same version at once wait for one build.
set -euo pipefail

cache=${RUNMINI_CACHE:-/var/tmp/runmini-cache}
export GOCACHE=${GOCACHE:-$cache/go-build}
export GOMODCACHE=${GOMODCACHE:-$cache/gomod}
export GOTOOLCHAIN=local
# The modules are built on their own go.mod and go.sum, never runmini's.
export GOFLAGS=-mod=mod
export GOWORK=off
binaries=(containerd ctr containerd-shim-runc-v2)

if (($# == 0)); then
	echo "usage: $0 VERSION... (such as 2.4.2 1.7.35; 1.6 is Debian's)" >&2
	exit 2
fi

# build_v2 VERSION OUT: containerd 2.x installs straight from the proxy.
build_v2() {
	local v=$1 out=$2 pkg=github.com/containerd/containerd/v2
	# As containerd's Makefile does: the shim is static (no cgo) and
	# leaves out gRPC, which it does not serve; the version is stamped in.
	local ldflags="-s -w -X $pkg/version.Version=v$v -X $pkg/version.Package=$pkg"
	GOBIN=$out go install -trimpath -tags urfave_cli_no_docs -ldflags "$ldflags" \
		"$pkg/cmd/containerd@v$v" "$pkg/cmd/ctr@v$v"
	GOBIN=$out CGO_ENABLED=0 go install -trimpath -tags urfave_cli_no_docs,no_grpc \
		-ldflags "$ldflags -extldflags -static" "$pkg/cmd/containerd-shim-runc-v2@v$v"
}

# build_v1 VERSION OUT: go install refuses containerd 1.x at a version
# because its go.mod has exclude (and replace) directives, so its source
# is downloaded and built in place, in a writable copy since the module
# cache is read-only.
build_v1() {
	local v=$1 out=$2 pkg=github.com/containerd/containerd
	local dir src
	# Downloaded from outside any module, so that no go.mod is touched.
	dir=$(cd "$out" && go mod download -json "$pkg@v$v" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')
	if [[ -z $dir || ! -d $dir ]]; then
		echo "build-containerd: go mod download $pkg@v$v gave no source directory" >&2
		return 1
	fi
	src=$out/.src
	cp -r "$dir" "$src"
	chmod -R u+w "$src"
	local ldflags="-s -w -X $pkg/version.Version=v$v -X $pkg/version.Package=$pkg"
	(
		cd "$src"
		go build -trimpath -tags urfave_cli_no_docs -ldflags "$ldflags" \
			-o "$out/containerd" ./cmd/containerd
		go build -trimpath -tags urfave_cli_no_docs -ldflags "$ldflags" \
			-o "$out/ctr" ./cmd/ctr
		CGO_ENABLED=0 go build -trimpath -tags urfave_cli_no_docs,no_grpc \
			-ldflags "$ldflags -extldflags -static" \
			-o "$out/containerd-shim-runc-v2" ./cmd/containerd-shim-runc-v2
	)
	rm -rf "$src"
}

# build VERSION: builds one version into the cache unless it is there.
build() {
	local v=${1#v} final tmp start
	if [[ $v == 1.6 ]]; then
		for b in "${binaries[@]}"; do
			if [[ ! -x /usr/bin/$b ]]; then
				echo "build-containerd: 1.6 is Debian's containerd, but /usr/bin/$b is missing (scripts/prereqs.sh)" >&2
				return 1
			fi
		done
		echo "build-containerd: 1.6 is Debian's, in /usr/bin"
		return 0
	fi
	if [[ ! $v =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
		echo "build-containerd: $v: want a release such as 2.4.2, or 1.6" >&2
		return 1
	fi
	final=$cache/containerd/$v
	mkdir -p "$cache/containerd"
	# One build per version at a time; whoever waited finds it done.
	exec {lock}>"$cache/containerd/.$v.lock"
	flock "$lock"
	if [[ -d $final ]]; then
		echo "build-containerd: $v cached in $final"
		exec {lock}>&-
		return 0
	fi
	tmp=$(mktemp -d "$cache/containerd/.$v.XXXXXX")
	# Removed on failure; after the rename it no longer exists.
	trap 'rm -rf "$tmp"' EXIT
	echo "build-containerd: building $v into $final"
	start=$SECONDS
	case $v in
	1.*) build_v1 "$v" "$tmp" ;;
	2.*) build_v2 "$v" "$tmp" ;;
	*)
		echo "build-containerd: $v: only 1.x and 2.x are known" >&2
		return 1
		;;
	esac
	# The shims of 1.x know only -v, not --version.
	local -A flag=([containerd]=--version [ctr]=--version [containerd-shim-runc-v2]=-v)
	for b in "${binaries[@]}"; do
		if ! "$tmp/$b" "${flag[$b]}" >/dev/null; then
			echo "build-containerd: $tmp/$b ${flag[$b]} failed" >&2
			return 1
		fi
	done
	chmod 0755 "$tmp"
	mv -T "$tmp" "$final"
	trap - EXIT
	exec {lock}>&-
	echo "build-containerd: $v built in $((SECONDS - start))s: $("$final/containerd" --version)"
}

for v in "$@"; do
	build "$v"
done
