#!/bin/sh
# Builds the ext4 root filesystem that Linux guests mount with
# root=/dev/vda (the initramfs's /init switch_roots to it):
#
#   scripts/mkrootfs.sh BUSYBOX OUT
#
# BUSYBOX is the static arm64 busybox of the initramfs. The image holds it
# with links for its applets, /etc/passwd and /etc/group, empty /proc,
# /sys, /dev (devtmpfs at boot: no device nodes), /tmp and /root, and the
# /sbin/init below. It needs no root privileges: mke2fs -d copies a
# staging folder in, and debugfs then gives every inode owner 0:0 and
# fixed times. With the fixed UUID, hash seed, mke2fs settings and
# E2FSPROGS_FAKE_TIME, the same busybox and e2fsprogs give the same image
# byte for byte. "make rootfs" runs it.
set -eu

SIZE=64M
# Every time in the image: SOURCE_DATE_EPOCH if set, else 2024-01-01.
# (E2FSPROGS_FAKE_TIME takes 0 as unset.)
EPOCH=${SOURCE_DATE_EPOCH:-1704067200}
UUID=b01c4ead-0000-4000-8000-000000000001
HASH_SEED=b01c4ead-0000-4000-8000-000000000002

say() { echo "rootfs: $*" >&2; }
die() { echo "rootfs: $*" >&2; exit 1; }

[ $# -eq 2 ] || die "usage: $0 BUSYBOX OUT"
busybox=$1
out=$2
[ -f "$busybox" ] || die "busybox $busybox does not exist: run make linux (or scripts/linux-artifacts.sh busybox $busybox)"
for t in mke2fs debugfs e2fsck; do
	command -v $t >/dev/null || [ -x /sbin/$t ] || [ -x /usr/sbin/$t ] ||
		die "$t is missing: install e2fsprogs"
done
PATH=$PATH:/sbin:/usr/sbin

# The applets linked to /bin/busybox: those of the initramfs and what a
# person or a test at the root's shell uses (Debian's busybox-static has
# them all).
APPLETS='
[ ash awk basename cat chgrp chmod chown chroot clear cmp cp cttyhack cut
date dd df diff dirname dmesg du echo egrep env expr false fgrep find free
grep gunzip gzip halt head hexdump hostname id ifconfig insmod ip kill
killall less ln ls lsmod md5sum mkdir mkfifo mknod mktemp more mount mv nc
nproc od ping pivot_root poweroff printf ps pwd readlink realpath reboot rm
rmdir rmmod route sed seq setsid sh sha1sum sha256sum sleep sort stat stty
sync sysctl tail tar tee test time timeout top touch tr true truncate tty
udhcpc umount uname uniq uptime usleep vi watch wc wget which xargs xxd yes
zcat
'

x=$(mktemp -d)
trap 'rm -rf "$x"' EXIT
umask 022
root=$x/root
mkdir -p "$root"
for d in bin sbin usr usr/bin usr/sbin etc proc sys dev root tmp mnt var; do
	mkdir "$root/$d"
done
chmod 1777 "$root/tmp"
chmod 0700 "$root/root"
cp "$busybox" "$root/bin/busybox"
chmod 0755 "$root/bin/busybox"
set -f # [ is an applet, not a pattern
for a in $APPLETS; do
	ln -s /bin/busybox "$root/bin/$a"
done
set +f
echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
echo 'root:x:0:' >"$root/etc/group"

# /sbin/init, PID 1 of the root. The initramfs moves its /proc, /sys and
# /dev here before switch_root; a kernel that mounts the root itself has
# not mounted them.
cat >"$root/sbin/init" <<'EOF'
#!/bin/sh
# /sbin/init of the Bulkhead test root filesystem (scripts/mkrootfs.sh).
export PATH=/bin:/sbin:/usr/bin:/usr/sbin

[ -e /proc/self ] || mount -t proc proc /proc
[ -d /sys/kernel ] || mount -t sysfs sysfs /sys
[ -c /dev/console ] || mount -t devtmpfs devtmpfs /dev 2>/dev/null || true

# Tests wait for this line; the number is the seconds since kernel start.
read -r up _ </proc/uptime
echo "bulkhead-rootfs: up $up"

# A session of its own, with the console (ttyAMA0) as its terminal.
setsid cttyhack sh

# PID 1 must not exit: write everything out, leave the journal clean for
# debugfs to read the disk back, and power off.
sync
mount -o remount,ro / 2>/dev/null || true
poweroff -f
EOF
chmod 0755 "$root/sbin/init"

# The fixed settings, in place of the machine's /etc/mke2fs.conf: Debian
# 12's ext4 features (no orphan_file, which kernels before 5.15 lack), 4 KiB
# blocks, and inode tables and journal written out now rather than by the
# kernel in the background at first mount.
cat >"$x/mke2fs.conf" <<'EOF'
[defaults]
	base_features = sparse_super,large_file,filetype,resize_inode,dir_index,ext_attr
	default_mntopts = acl,user_xattr
	enable_periodic_fsck = 0
	blocksize = 4096
	inode_size = 256
	inode_ratio = 16384
	lazy_itable_init = false
	lazy_journal_init = false

[fs_types]
	ext4 = {
		features = has_journal,extent,huge_file,flex_bg,metadata_csum,64bit,dir_nlink,extra_isize
	}
EOF

# debugfs commands that make every inode 0:0 with times $EPOCH, whoever
# ran this and whenever. Names have no spaces (see above).
{
	for p in / /lost+found $(cd "$root" && find . -mindepth 1 | sed 's|^\.||' | LC_ALL=C sort); do
		for f in "uid 0" "gid 0" "atime @$EPOCH" "ctime @$EPOCH" "mtime @$EPOCH" "crtime @$EPOCH"; do
			echo "sif $p $f"
		done
	done
} >"$x/fix"

mkdir -p "$(dirname "$out")"
tmp=$out.tmp
rm -f "$tmp"
# LC_ALL=C: mke2fs -d adds each folder's entries in sorted order.
if ! log=$(LC_ALL=C MKE2FS_CONFIG=$x/mke2fs.conf E2FSPROGS_FAKE_TIME=$EPOCH \
	mke2fs -q -F -t ext4 -L bulkhead-root -U "$UUID" \
	-E "root_owner=0:0,hash_seed=$HASH_SEED,nodiscard" -d "$root" "$tmp" "$SIZE" 2>&1); then
	rm -f "$tmp"
	die "mke2fs failed: $log"
fi
if ! log=$(E2FSPROGS_FAKE_TIME=$EPOCH debugfs -w -f "$x/fix" "$tmp" 2>&1 >/dev/null) ||
	[ -n "$(echo "$log" | grep -v '^debugfs [0-9.]* (')" ]; then
	rm -f "$tmp"
	die "debugfs failed to set owners and times: $log"
fi
if ! log=$(e2fsck -fn "$tmp" 2>&1); then
	rm -f "$tmp"
	die "e2fsck finds the new image inconsistent: $log"
fi
mv "$tmp" "$out"
say "wrote $out ($SIZE ext4, $(du -k "$out" | cut -f1) KiB used, sha256 $(sha256sum "$out" | cut -c1-16))"
