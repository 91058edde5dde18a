#!/usr/bin/env bash
# The shim's tour: a private containerd (its own config, root, state and
# socket in a temporary directory, with the io.containerd.mini.v2 runtime
# found on its PATH), a busybox image built in Go and imported, then
# `ctr run --runtime io.containerd.mini.v2`, an exec and `ctr task
# metrics`, printing every command and what it prints. Everything is torn
# down on exit, even when interrupted.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
die() {
	echo "demo: $*" >&2
	exit 1
}
[[ $(id -u) == 0 ]] || die "needs root"
command -v containerd >/dev/null || die "needs containerd (apt-get install containerd, or make prereqs)"
[[ -x $repo/bin/containerd-shim-mini-v2 ]] || make -C "$repo" --no-print-directory all

tmp=
daemon=
ns=demo
id=demo-$$
ctr_() { ctr --address "$tmp/c.sock" --namespace "$ns" "$@"; }
cleanup() {
	[[ -n $tmp ]] || return 0
	if [[ -n $daemon ]]; then
		ctr_ task kill -s SIGKILL "$id" >/dev/null 2>&1 || true
		ctr_ task rm -f "$id" >/dev/null 2>&1 || true
		ctr_ container rm "$id" >/dev/null 2>&1 || true
		kill "$daemon" 2>/dev/null || true
		for _ in $(seq 100); do kill -0 "$daemon" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$daemon" 2>/dev/null || true
	fi
	grep -F "$tmp" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
	rm -rf "$tmp"
	# The shim's state root for the namespace (with any compiled seccomp
	# programs in it); a real namespace keeps it.
	rm -rf "/run/containerd/runmini/$ns/@seccomp"
	rmdir "/run/containerd/runmini/$ns" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
tmp=$(mktemp -d /tmp/mini-ctrd.XXXXXX)

# say prints a ctr command the way a user would type it, then runs it.
say() {
	printf '\n$ ctr %s\n' "$*"
	ctr_ "$@"
}

cat >"$tmp/config.toml" <<TOML
version = 2
root = "$tmp/root"
state = "$tmp/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$tmp/c.sock"
[ttrpc]
  address = "$tmp/c.sock.ttrpc"
TOML
echo "demo: a private containerd ($(containerd --version | awk '{print $3}')) in $tmp; config:"
cat "$tmp/config.toml"
# containerd finds the shim for runtime io.containerd.mini.v2 as the binary
# containerd-shim-mini-v2 on its PATH.
PATH=$repo/bin:$PATH containerd --config "$tmp/config.toml" >"$tmp/containerd.log" 2>&1 &
daemon=$!
for _ in $(seq 100); do ctr_ version >/dev/null 2>&1 && break; sleep 0.1; done
ctr_ version >/dev/null || die "containerd did not start: $(tail -5 "$tmp/containerd.log")"

read -r image ref < <(cd "$repo" && GOFLAGS=-mod=mod go run ./tests/tools/busybox-image)
echo "demo: busybox OCI image built in Go: $image"
say image import "$image"
say run --rm --runtime io.containerd.mini.v2 "$ref" "$id-once" sh -c 'echo hello from the mini shim; exit 3' || echo "(exit status $?)"
say run -d --runtime io.containerd.mini.v2 "$ref" "$id" sleep 1000
say task ls
say task exec --exec-id e1 "$id" sh -c 'echo "exec in $(hostname): $(ps | wc -l) lines of ps"'
say task metrics "$id"
say task kill -s SIGKILL "$id"
for _ in $(seq 100); do ctr_ task ls | grep -q STOPPED && break; sleep 0.1; done
say task rm "$id"
say container rm "$id"
echo
echo "demo: shim processes left: $(pgrep -c -f "containerd-shim-mini-v2 -namespace $ns " || true)"
