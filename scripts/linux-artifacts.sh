#!/bin/sh
# Fetches the Linux pieces the guest tests boot, from Debian's arm64
# packages, so that nothing prebuilt lives in the repository:
#
#   scripts/linux-artifacts.sh kernel OUT      Debian's arm64 kernel (vmlinuz)
#   scripts/linux-artifacts.sh modules OUTDIR  its modules for virtio-mmio
#                                              block and net and an ext4 root
#   scripts/linux-artifacts.sh busybox OUT     Debian's static arm64 busybox
#
# "make linux" runs it and builds the initramfs from the busybox and the
# modules. The .deb files are kept in $DEB_CACHE (default
# ~/.cache/bulkhead/debs): they are large (the kernel is about 60 MB) and a
# fresh clone on the same machine should not download them again. A cached .deb is used as it is, without
# asking apt, so the artifacts stay the same until the cache is emptied.
set -eu

DEB_CACHE=${DEB_CACHE:-$HOME/.cache/bulkhead/debs}

# Progress goes to stderr: stdout carries paths between the functions.
say() { echo "linux: $*" >&2; }
die() { echo "linux: $*" >&2; exit 1; }

[ $# -eq 2 ] || die "usage: $0 kernel|modules|busybox OUT"
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

# MODULES are the modules the initramfs loads: Debian builds the virtio-mmio
# transport, virtio block and net, and ext4 as modules (the virtio core and
# virtio_ring are built in). Those a kernel has built in are left out.
MODULES='virtio_mmio virtio_blk virtio_net ext4'

# modinfo FILE FIELD prints each value of FIELD in FILE's .modinfo: its
# NUL-terminated "field=value" strings. Newlines in the binary become \001
# first, so that only NULs end records.
modinfo() {
	tr '\n\0' '\001\n' <"$1" | sed -n "s/^$2=//p"
}

# unpack SRC DEST writes module SRC to DEST, decompressed.
unpack() {
	case $1 in
	*.ko) cp "$1" "$2" ;;
	*.ko.xz) xz -dc "$1" >"$2" ;;
	*.ko.zst) zstd -q -dc "$1" >"$2" ;;
	*.ko.gz) gzip -dc "$1" >"$2" ;;
	*) die "$1: not a kernel module" ;;
	esac
}

# lookup NAME prints the path of module NAME in the index ("name path"
# lines, names with - as _, as modprobe compares them) or, when no module
# has that name, of the first that has the alias NAME (softdeps name
# aliases, such as crypto-crc32c). It prints nothing if there is none.
lookup() {
	n=$(echo "$1" | tr - _)
	p=$(awk -v n="$n" '$1 == n { print $2; exit }' "$index")
	if [ -z "$p" ]; then
		# grep -z reads NUL-terminated records, which .modinfo's are.
		p=$(sed 's/^[^ ]* //' "$index" | grep '\.ko$' | xargs -r grep -laz -x -F "alias=$1" | head -n 1) || true
	fi
	if [ -z "$p" ]; then
		for f in $(sed 's/^[^ ]* //' "$index" | grep -v '\.ko$'); do
			unpack "$f" "$stage/.alias"
			if grep -qaz -x -F "alias=$1" "$stage/.alias"; then p=$f; break; fi
		done
	fi
	echo "$p"
}

# builtin NAME succeeds if the kernel has module NAME, or one with the
# alias NAME, built in (the package's modules.builtin and
# modules.builtin.modinfo, which has "module.field=value" records).
builtin() {
	n=$(echo "$1" | tr - _)
	tr - _ <"$mdir/modules.builtin" | grep -qx "\(.*/\)\{0,1\}$n\.ko" && return 0
	[ -f "$mdir/modules.builtin.modinfo" ] &&
		grep -qaz -x "[^.]*\.alias=$(echo "$1" | sed 's/[][\.*^$]/\\&/g')" "$mdir/modules.builtin.modinfo"
}

# add NAME [WANTED_BY] copies module NAME into $stage after the modules it
# needs, appending each to $stage/order once it is there. Its needs are its
# "depends=" (the modules whose symbols it uses, as modpost found them: what
# depmod writes into modules.dep, which Debian's package leaves to its
# postinst) and the "pre:" modules of its "softdep=" (ext4 and jbd2 need
# crc32c, which they load by name at run time).
add() {
	local asked name path deps d
	asked=$(echo "$1" | tr - _)
	case " $done " in *" $asked "*) return 0 ;; esac
	path=$(lookup "$1")
	if [ -z "$path" ]; then
		if builtin "$1"; then
			say "$1${2:+ (which $2 needs)} is built into the kernel"
			done="$done$asked "
			return 0
		fi
		die "$(basename "$deb") has no module $1${2:+ (which $2 needs)}"
	fi
	# An alias names its module by another name: both count as done.
	name=$(awk -v p="$path" '$2 == p { print $1; exit }' "$index")
	case " $done " in *" $name "*) done="$done$asked "; return 0 ;; esac
	case " $visiting " in *" $name "*) die "modules $visiting$name depend on each other in a cycle" ;; esac
	unpack "$path" "$stage/$name.ko.tmp"
	vermagic=$(modinfo "$stage/$name.ko.tmp" vermagic)
	case $vermagic in
	"$release "*) ;;
	*) die "${path#"$x"/}: vermagic '$vermagic', not for kernel $release" ;;
	esac
	visiting="$visiting$name "
	deps=$(modinfo "$stage/$name.ko.tmp" depends | tr , ' ')
	# "softdep=pre: a b post: c": the words after pre: until post:.
	deps="$(modinfo "$stage/$name.ko.tmp" softdep | awk '{
		pre = 0
		for (i = 1; i <= NF; i++) {
			if ($i == "pre:") pre = 1
			else if ($i == "post:") pre = 0
			else if (pre) print $i
		}
	}') $deps"
	for d in $deps; do add "$d" "$name"; done
	visiting=${visiting%"$name "}
	mv "$stage/$name.ko.tmp" "$stage/$name.ko"
	echo "$name.ko" >>"$stage/order"
	done="$done$name "
	[ "$asked" = "$name" ] || done="$done$asked "
}

# modules DEB OUTDIR unpacks the kernel package DEB and writes MODULES and
# what they need into OUTDIR, with OUTDIR/order listing them one a line,
# each after the modules it needs. OUTDIR is replaced whole, and order is
# written last, so that make never sees half an output.
modules() {
	x=$(mktemp -d)
	trap 'rm -rf "$x"' EXIT
	say "extracting $(basename "$1") (modules)"
	dpkg-deb -x "$1" "$x"
	set -- "$x"/lib/modules/*/
	[ $# -eq 1 ] && [ -d "$1" ] || die "$(basename "$deb") has not exactly one /lib/modules/VERSION"
	release=$(basename "$1")
	mdir=$1
	index=$x/index
	find "$1" -type f \( -name '*.ko' -o -name '*.ko.xz' -o -name '*.ko.zst' -o -name '*.ko.gz' \) |
		sort | awk '{ n = $0; sub(/.*\//, "", n); sub(/\.ko(\.(xz|zst|gz))?$/, "", n); gsub(/-/, "_", n); print n, $0 }' >"$index"
	[ -s "$index" ] || die "$(basename "$deb") has no modules under /lib/modules/$release"
	stage=$x/out
	mkdir "$stage"
	: >"$stage/order"
	done= visiting=
	for m in $MODULES; do add "$m"; done
	rm -f "$stage/.alias"
	rm -rf "$out.tmp"
	mkdir -p "$(dirname "$out")"
	mkdir "$out.tmp"
	for m in $(cat "$stage/order"); do cp "$stage/$m" "$out.tmp/$m"; done
	cp "$stage/order" "$out.tmp/order.tmp"
	rm -rf "$out"
	mv "$out.tmp" "$out"
	mv "$out/order.tmp" "$out/order"
	say "wrote $out ($release: $(tr '\n' ' ' <"$out/order")$(du -sk "$out" | cut -f1) KiB)"
}

# The .deb path is assigned before use so that set -e stops the script
# when finding it fails (a failing $(...) inside arguments would not).
case $what in
kernel)
	deb=$(kernel_deb)
	extract "$deb" 'boot/vmlinuz-*' "$out"
	;;
modules)
	deb=$(kernel_deb)
	modules "$deb" "$out"
	;;
busybox)
	deb=$(busybox_deb)
	extract "$deb" 'bin/busybox' "$out"
	;;
*) die "unknown artifact $what: kernel, modules or busybox" ;;
esac
