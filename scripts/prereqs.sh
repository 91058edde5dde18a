#!/usr/bin/env bash
# Installs what building and testing runmini needs on a Debian host, and
# only what is missing: apt-get runs only when a package is absent, so a
# second run costs nothing and works offline.
set -euo pipefail

# Debian packages the build and the tests use:
#   gcc, libc6-dev   cgo and the static links of bin/runmini-init-nsenter, the shim
#                    and bin/runmini-seccomp (C) (libc.a)
#   libseccomp-dev   seccomp filters (libseccomp.a, linked statically)
#   busybox-static   the busybox rootfs of the integration tests and demo
#   containerd       runmini as BinaryName of containerd's runc shim (1.6, integration)
#   runc             the runc shim's runtime under the containerd builds of
#                    scripts/build-containerd.sh (Debian's containerd pulls it in too)
#   iproute2         network namespace checks in the integration tests
#   util-linux       unshare, for the validation suite's private mount ns
#   tar              the validation suite unpacks its rootfs with it
#   ca-certificates  HTTPS to the Go module proxy
#   jq               scripts/demo.sh edits config.json with it
#   make             this build
packages=(gcc libc6-dev libseccomp-dev pkg-config busybox-static containerd runc iproute2 util-linux tar jq ca-certificates make)
# Extra packages named on the command line (make bench: runc crun).
packages+=("$@")

installed() {
	[[ $(dpkg-query -W -f '${db:Status-Status}' "$1" 2>/dev/null) == installed ]]
}

missing=()
for p in "${packages[@]}"; do
	installed "$p" || missing+=("$p")
done

if ((${#missing[@]})); then
	echo "prerequisites: installing ${missing[*]}"
	if [[ $(id -u) != 0 ]]; then
		echo "prerequisites: missing ${missing[*]}; run as root to install them" >&2
		exit 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
	echo "prerequisites: all Debian packages present"
fi

# Go itself is not a Debian package here: the module needs a newer Go than
# Debian ships, and GOTOOLCHAIN=local forbids fetching one.
if ! command -v go >/dev/null; then
	echo "prerequisites: no go in PATH (need the version in go.mod)" >&2
	exit 1
fi
libc_a=$(gcc -print-file-name=libc.a)
if [[ $libc_a != /* ]]; then
	echo "prerequisites: gcc finds no libc.a for the static link (libc6-dev)" >&2
	exit 1
fi
echo "prerequisites: $(go version), gcc $(gcc -dumpversion), $libc_a"
