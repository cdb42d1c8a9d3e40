#!/bin/sh
# Fetches the Linux pieces the guest tests boot, from Debian's arm64
# packages, so that nothing prebuilt lives in the repository:
#
#   scripts/linux-artifacts.sh kernel OUT    Debian's arm64 kernel (vmlinuz)
#   scripts/linux-artifacts.sh busybox OUT   Debian's static arm64 busybox
#
# "make linux" runs it and builds the initramfs from the busybox. The .deb
# files are kept in $DEB_CACHE (default ~/.cache/bulkhead/debs): they are
# large (the kernel is about 60 MB) and a fresh clone on the same machine
# should not download them again. A cached .deb is used as it is, without
# asking apt, so the artifacts stay the same until the cache is emptied.
set -eu

DEB_CACHE=${DEB_CACHE:-$HOME/.cache/bulkhead/debs}

# Progress goes to stderr: stdout carries paths between the functions.
say() { echo "linux: $*" >&2; }
die() { echo "linux: $*" >&2; exit 1; }

[ $# -eq 2 ] || die "usage: $0 kernel|busybox OUT"
what=$1
out=$2

# as_root runs a command that changes the machine's package set-up.
# Downloading needs no root, and cached .deb files need no apt at all.
as_root() {
	if [ "$(id -u)" = 0 ]; then
		"$@"
	elif command -v sudo >/dev/null; then
		sudo "$@"
	else
		die "'$*' needs root and there is no sudo: run it as root, then try again"
	fi
}

apt_ready=
# apt_setup makes apt able to download arm64 packages on this (usually
# amd64) machine: arm64 must be a dpkg architecture and its package lists
# fetched. apt-get download installs nothing, so no arm64 package ends up
# on the machine.
apt_setup() {
	[ -z "$apt_ready" ] || return 0
	if [ "$(dpkg --print-architecture)" != arm64 ] &&
		! dpkg --print-foreign-architectures | grep -qx arm64; then
		say "adding the arm64 architecture to dpkg"
		as_root dpkg --add-architecture arm64
	fi
	if ! apt-cache show linux-image-arm64:arm64 >/dev/null 2>&1; then
		say "apt-get update (fetching the arm64 package lists)"
		as_root apt-get update -qq >&2
	fi
	apt-cache show linux-image-arm64:arm64 >/dev/null 2>&1 ||
		die "apt has no linux-image-arm64:arm64 even after apt-get update: check /etc/apt/sources.list*"
	apt_ready=1
}

# cached GLOB prints the newest cached .deb matching GLOB, if any, leaving
# out debug-symbol packages.
cached() {
	# shellcheck disable=SC2086 # $1 is a glob on purpose
	for f in "$DEB_CACHE"/$1; do
		case $f in *-dbg_*) continue ;; esac
		if [ -f "$f" ]; then echo "$f"; fi
	done | sort -V | tail -n 1
}

# download PKG fetches PKG's .deb into the cache and prints its path.
# apt-get download runs in a scratch folder, as apt may leave a partial
# file behind, and the .deb is moved into the cache only when complete.
download() {
	apt_setup
	mkdir -p "$DEB_CACHE"
	pkg=$1
	size=$(apt-cache show --no-all-versions "$pkg" | sed -n 's/^Size: //p' | head -n 1)
	say "downloading $pkg ($(awk -v s="${size:-0}" 'BEGIN { printf "%.1f MB", s / 1e6 }'))"
	dl=$(mktemp -d)
	# As root, apt notes that its _apt user cannot write the private scratch
	# folder and downloads as root: expected, so that note is dropped.
	(cd "$dl" && apt-get download -q "$pkg" 2>&1 |
		grep -v -e 'Download is performed unsandboxed' >&2) || true
	set -- "$dl"/*.deb
	[ -f "$1" ] || { rm -rf "$dl"; die "apt-get download $pkg failed"; }
	mv "$1" "$DEB_CACHE/"
	rm -rf "$dl"
	say "cached $DEB_CACHE/$(basename "$1")"
	echo "$DEB_CACHE/$(basename "$1")"
}

# grep reads the whole listing (no -q): dpkg-deb fails if its pipe closes.
has_vmlinuz() { dpkg-deb -c "$1" | grep '\./boot/vmlinuz-' >/dev/null; }

# kernel_deb prints the path of a cached kernel .deb, downloading it first
# if there is none. linux-image-arm64 is a metapackage: its one dependency
# names the current kernel package, which holds /boot/vmlinuz-*. That is
# the signed package (the image with a Secure Boot signature, which QEMU
# ignores); if a release ever makes it a wrapper without the image, the
# -unsigned package of the same name has it.
kernel_deb() {
	deb=$(cached 'linux-image-[0-9]*-arm64*_arm64.deb')
	if [ -n "$deb" ]; then
		say "using cached $(basename "$deb")"
		echo "$deb"
		return
	fi
	apt_setup
	pkg=$(apt-cache depends linux-image-arm64:arm64 |
		sed -n 's/^ *Depends: \(linux-image-[0-9][^:]*-arm64\)\(:arm64\)\{0,1\}$/\1/p' | head -n 1)
	[ -n "$pkg" ] || die "cannot find the kernel package that linux-image-arm64:arm64 depends on"
	say "linux-image-arm64 is $pkg"
	deb=$(download "$pkg:arm64")
	if ! has_vmlinuz "$deb"; then
		say "$pkg has no /boot/vmlinuz-*: taking $pkg-unsigned"
		rm -f "$deb"
		deb=$(download "$pkg-unsigned:arm64")
		has_vmlinuz "$deb" || die "neither $pkg nor $pkg-unsigned has /boot/vmlinuz-*"
	fi
	echo "$deb"
}

busybox_deb() {
	deb=$(cached 'busybox-static_*_arm64.deb')
	if [ -n "$deb" ]; then
		say "using cached $(basename "$deb")"
		echo "$deb"
		return
	fi
	download busybox-static:arm64
}

# extract DEB PATTERN OUT unpacks DEB in a scratch folder and copies the one
# file whose path in the package matches PATTERN to OUT. The copy goes
# through a temporary name so that make never sees half an output.
extract() {
	x=$(mktemp -d)
	trap 'rm -rf "$x"' EXIT
	say "extracting $(basename "$1")"
	dpkg-deb -x "$1" "$x"
	src=
	# shellcheck disable=SC2086 # $2 is a glob on purpose
	for f in "$x"/$2; do
		if [ -f "$f" ]; then src=$f; break; fi
	done
	[ -n "$src" ] || die "$(basename "$1") has no /$2"
	mkdir -p "$(dirname "$3")"
	cp "$src" "$3.tmp"
	mv "$3.tmp" "$3"
	say "wrote $3 (${src#"$x"}, $(wc -c <"$3") bytes)"
}

# The .deb path is assigned before use so that set -e stops the script
# when finding it fails (a failing $(...) inside arguments would not).
case $what in
kernel)
	deb=$(kernel_deb)
	extract "$deb" 'boot/vmlinuz-*' "$out"
	;;
busybox)
	deb=$(busybox_deb)
	extract "$deb" 'bin/busybox' "$out"
	;;
*) die "unknown artifact $what: kernel or busybox" ;;
esac
