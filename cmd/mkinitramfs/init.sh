#!/bin/sh
# /init of the guest-test initramfs, run by busybox sh as PID 1.

export PATH=/bin:/sbin:/usr/bin:/usr/sbin

mount -t proc proc /proc
mount -t sysfs sysfs /sys
# A kernel with CONFIG_DEVTMPFS_MOUNT may have mounted it already; either
# way /dev then has the serial console's node that cttyhack opens.
mount -t devtmpfs devtmpfs /dev 2>/dev/null || true

# The modules of mkinitramfs -modules (virtio-mmio, virtio block and net,
# ext4 and what they need), each listed after those it needs. Silent when
# they load; a module that fails is reported and the boot goes on.
if [ -f /lib/modules/order ]; then
	while read -r m; do
		[ -n "$m" ] || continue
		if ! err=$(insmod "/lib/modules/$m" 2>&1); then
			case $err in
			*"File exists"*) ;; # loaded already, or built in
			*) echo "bulkhead-init: cannot load module $m: $err" ;;
			esac
		fi
	done </lib/modules/order
fi

# The tests wait for this line; the number is the seconds from kernel
# start to here (the first field of /proc/uptime).
read -r up _ </proc/uptime
echo "bulkhead-init: up $up"

# The root the kernel command line names: root=/dev/vdX, with rootfstype=
# (ext4 by default), rootflags=, ro or rw (the default) and init= (the
# root's /sbin/init by default). Words after "--" are init's, not these.
root= fstype=ext4 flags= mode=rw rinit=/sbin/init
read -r cmdline </proc/cmdline
set -f
for w in $cmdline; do
	case $w in
	--) break ;;
	root=*) root=${w#root=} ;;
	rootfstype=*) fstype=${w#rootfstype=} ;;
	rootflags=*) flags=${w#rootflags=} ;;
	ro | rw) mode=$w ;;
	init=*) rinit=${w#init=} ;;
	esac
done
set +f

# enter_root mounts $root on /newroot, moves /dev, /proc and /sys into it
# and switch_roots to its init. It returns, saying why, only if it cannot.
enter_root() {
	case $root in
	/dev/*) ;;
	*)
		echo "bulkhead-init: root=$root is not supported: name a device node (root=/dev/vda)"
		return 1
		;;
	esac
	# The node appears when virtio_blk finds the disk, normally before its
	# insmod returns; a slow probe gets 5 seconds.
	i=0
	while [ ! -b "$root" ]; do
		if [ $i -ge 50 ]; then
			echo "bulkhead-init: root $root did not appear within 5 s (no virtio-blk disk, or its modules did not load)"
			return 1
		fi
		sleep 0.1
		i=$((i + 1))
	done
	mkdir -p /newroot
	if ! err=$(mount -t "$fstype" -o "$mode${flags:+,$flags}" "$root" /newroot 2>&1); then
		echo "bulkhead-init: cannot mount root $root ($fstype, $mode${flags:+,$flags}): $err"
		return 1
	fi
	if [ ! -e "/newroot$rinit" ] && [ ! -L "/newroot$rinit" ]; then
		echo "bulkhead-init: root $root has no $rinit"
		umount /newroot
		return 1
	fi
	for d in dev proc sys; do
		if [ -d "/newroot/$d" ]; then
			mount --move "/$d" "/newroot/$d" || echo "bulkhead-init: cannot move /$d into the root"
		else
			umount "/$d" 2>/dev/null
		fi
	done
	# switch_root empties the initramfs, makes /newroot / and runs init as
	# PID 1, with the arguments the kernel gave this one.
	exec switch_root /newroot "$rinit" "$@"
}

if [ -n "$root" ]; then
	enter_root "$@"
	echo "bulkhead-init: staying in the initramfs"
fi

# /dev/console cannot be a controlling terminal, so the shell would run
# without job control (no Ctrl-C, no fg/bg). setsid gives it a session of
# its own and cttyhack reopens the real console device (ttyAMA0) as its
# terminal.
setsid cttyhack sh

# PID 1 must not exit (the kernel would panic): power off instead.
poweroff -f
