# SPDX-License-Identifier: GPL-2.0
# Shared settings for the build and VM scripts. Sourced, never executed.
#
# Everything that is downloaded or built lives in one cache directory outside
# the repository, so that a fresh clone reuses it and `git clean` never
# touches it:
#
#   $VIRTIO_RS_CACHE/chroot/      Debian trixie toolchain root (mmdebstrap)
#   $VIRTIO_RS_CACHE/ccache/      compiler cache for the kernel build
#   $VIRTIO_RS_CACHE/src/         unpacked and patched linux-source-7.3
#   $VIRTIO_RS_CACHE/kbuild/      kernel build directory (O=)
#   $VIRTIO_RS_CACHE/out/         module build copies, initramfs, VM logs
#   $VIRTIO_RS_CACHE/kbuild-release/, out-release/
#                                 the same for the release-style kernel
#                                 (KFLAVOR=release: make bench)
#
# Inside the chroot the cache is mounted at /cache and the repository at
# /repo, so paths look the same for every run.

VIRTIO_RS_CACHE=${VIRTIO_RS_CACHE:-$HOME/.cache/virtio-rs}
CHROOT=$VIRTIO_RS_CACHE/chroot

# The kernel flavor: the test kernel (debug options on) or the release-style
# kernel of the benchmark. KB/OUT on the host, CKB/COUT inside the chroot.
KFLAVOR=${KFLAVOR:-test}
case "$KFLAVOR" in
test) KB_NAME=kbuild OUT_NAME=out ;;
release) KB_NAME=kbuild-release OUT_NAME=out-release ;;
*) printf 'error: KFLAVOR must be test or release\n' >&2; exit 1 ;;
esac
KB=$VIRTIO_RS_CACHE/$KB_NAME
OUT=$VIRTIO_RS_CACHE/$OUT_NAME
CKB=/cache/$KB_NAME
COUT=/cache/$OUT_NAME
export KFLAVOR
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

die() {
	printf 'error: %s\n' "$*" >&2
	exit 1
}

note() {
	printf '==> %s\n' "$*"
}

# Run a command inside the chroot, in a private mount namespace: the bind
# mounts exist only for the lifetime of the command and are never visible on
# the host, so deleting the cache can never reach through into /dev or the
# repository. VIRTIO_RS_SHARE, when set, is a host directory mounted at
# /share for the command.
in_chroot() {
	[ -e "$CHROOT/.complete" ] || die "toolchain chroot missing: run 'make setup' first"
	mkdir -p "$VIRTIO_RS_CACHE/ccache" "$VIRTIO_RS_CACHE/out"
	unshare --mount --propagation private --fork -- /bin/bash -euc '
		root=$1; cache=$2; repo=$3; shift 3
		mount --make-rprivate /
		mount -t proc proc "$root/proc"
		mount -t tmpfs -o mode=755,size=64k devtmp "$root/dev"
		for d in null zero full random urandom tty kvm; do
			[ -e "/dev/$d" ] || continue
			touch "$root/dev/$d"
			mount --bind "/dev/$d" "$root/dev/$d"
		done
		ln -s /proc/self/fd "$root/dev/fd"
		mkdir -p "$root/dev/shm" "$root/dev/pts"
		mount -t tmpfs -o mode=1777 shm "$root/dev/shm"
		mount -t tmpfs -o mode=1777 tmp "$root/tmp"
		mkdir -p "$root/cache" "$root/repo"
		mount --bind "$cache" "$root/cache"
		mount --bind "$repo" "$root/repo"
		if [ -n "${VIRTIO_RS_SHARE:-}" ]; then
			mkdir -p "$root/share"
			mount --bind "$VIRTIO_RS_SHARE" "$root/share"
		fi
		exec chroot "$root" /usr/bin/env -i \
			HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
			LANG=C.UTF-8 TERM=dumb CCACHE_DIR=/cache/ccache \
			"$@"
	' in_chroot "$CHROOT" "$VIRTIO_RS_CACHE" "$REPO" "$@"
}

# Copy this repository's sources, as a user's checkout has them (the files
# git knows, not this tree's build outputs), into directory $1. tar keeps
# their times, so an unchanged copy is not rebuilt.
copy_sources() {
	mkdir -p "$1"
	if git -C "$REPO" rev-parse --git-dir >/dev/null 2>&1; then
		(cd "$REPO" && git ls-files -z --cached --others --exclude-standard |
			tar --null --ignore-failed-read -T - -cf - 2>/dev/null) | tar -xf - -C "$1"
	else
		# Not a checkout (an unpacked release): what the build needs.
		(cd "$REPO" && tar --exclude='*.o' --exclude='*.ko' --exclude='.*.cmd' -cf - \
			Makefile Kbuild Kconfig dkms.conf drivers include tools/kernel tools/sim) |
			tar -xf - -C "$1"
	fi
}
