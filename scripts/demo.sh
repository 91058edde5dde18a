#!/usr/bin/env bash
# A guided tour of runmini's command line: make a busybox bundle, then
# spec, create, state, start, list, exec, ps, kill, state, delete, printing every
# command and what it prints. RUNTIME=runc (or any path) runs the same tour
# against another runtime. Everything it makes lives in one temporary
# directory and is removed on exit, even when interrupted.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

die() {
	echo "demo: $*" >&2
	exit 1
}

[[ $(id -u) == 0 ]] || die "needs root (containers need namespaces, mounts and cgroups)"
command -v jq >/dev/null || die "needs jq to edit config.json (apt-get install jq, or make prereqs)"

if [[ -n ${RUNTIME:-} ]]; then
	runtime=$(command -v "$RUNTIME") || die "RUNTIME=$RUNTIME: not found"
else
	runtime=$repo/bin/runmini
	if [[ ! -x $runtime ]]; then
		echo "demo: building $runtime"
		make -C "$repo" --no-print-directory all
	fi
fi
name=$(basename "$runtime")

busybox=${RUNMINI_BUSYBOX:-/bin/busybox}
[[ -x $busybox ]] || die "no $busybox: install busybox-static"
if command -v readelf >/dev/null && readelf -l "$busybox" | grep -q 'program interpreter'; then
	die "$busybox is dynamically linked and cannot run in a bare rootfs: install busybox-static"
fi

tmp=
id=demo-$$
cleanup() {
	# Runs on every exit path; the container may be in any state by now.
	[[ -n $tmp ]] || return 0
	if [[ -d $tmp/state ]]; then
		"$runtime" --root "$tmp/state" delete --force "$id" >/dev/null 2>&1 || true
	fi
	# A signal can land while a command that writes into $tmp still runs;
	# retry until it is gone.
	for _ in $(seq 20); do
		rm -rf "$tmp" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "demo: could not remove $tmp" >&2
}
# Traps first, so that no signal can leave the temporary directory behind.
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
tmp=$(mktemp -d /tmp/runmini-demo.XXXXXX)
root=$tmp/state
bundle=$tmp/bundle

# say prints a command the way a user would type it, then runs it.
say() {
	printf '\n$ %s\n' "$name $*"
	"$runtime" --root "$root" "$@"
}

echo "demo: busybox bundle in $bundle (runtime: $runtime)"
rootfs=$bundle/rootfs
mkdir -p "$rootfs"
for d in bin dev etc home/user proc root run sys tmp usr var/tmp; do
	mkdir -p "$rootfs/$d"
done
chmod 1777 "$rootfs/tmp" "$rootfs/var/tmp"
cp "$busybox" "$rootfs/bin/busybox"
# One process for all ~270 applet links, run inside the new rootfs so that
# they point at its own /bin/busybox.
chroot "$rootfs" /bin/busybox --install -s /bin
ln -s bin "$rootfs/sbin"
ln -s ../bin "$rootfs/usr/bin"
ln -s ../bin "$rootfs/usr/sbin"
printf 'root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\nuser:x:1000:\nnogroup:x:65534:\n' >"$rootfs/etc/group"

cd "$bundle"
say spec
echo
echo "# edit config.json: no terminal, a process that greets, and exits on SIGTERM"
jq '.process.terminal = false
  | .process.args = ["sh", "-c", "trap \"echo got SIGTERM, exiting; exit 0\" TERM; echo hello from runmini; sleep 1000 & wait"]
  | .hostname = "demo"' config.json >config.json.new
mv config.json.new config.json
jq -c '{terminal: .process.terminal, args: .process.args, hostname}' config.json

say create --bundle "$bundle" "$id"
say state "$id"
say start "$id"
# The greeting comes from the container, asynchronously; let it arrive
# before the next command's output.
sleep 0.3
say list
# A second process in the running container: same namespaces and cgroup.
say exec "$id" sh -c 'echo "exec: hostname $(hostname), pid $$"; ps'
say ps "$id"
say kill "$id" TERM

status=
for _ in $(seq 100); do
	status=$("$runtime" --root "$root" state "$id" | jq -r .status)
	[[ $status == stopped ]] && break
	sleep 0.1
done
[[ $status == stopped ]] || die "container still $status 10 s after SIGTERM"
say state "$id"
say delete "$id"
say list
echo
echo "demo: done"
