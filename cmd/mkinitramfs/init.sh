#!/bin/sh
# /init of the guest-test initramfs, run by busybox sh as PID 1.

export PATH=/bin:/sbin:/usr/bin:/usr/sbin

mount -t proc proc /proc
mount -t sysfs sysfs /sys
# A kernel with CONFIG_DEVTMPFS_MOUNT may have mounted it already; either
# way /dev then has the serial console's node that cttyhack opens.
mount -t devtmpfs devtmpfs /dev 2>/dev/null || true

# The tests wait for this line; the number is the seconds from kernel
# start to here (the first field of /proc/uptime).
read -r up _ </proc/uptime
echo "bulkhead-init: up $up"

# /dev/console cannot be a controlling terminal, so the shell would run
# without job control (no Ctrl-C, no fg/bg). setsid gives it a session of
# its own and cttyhack reopens the real console device (ttyAMA0) as its
# terminal.
setsid cttyhack sh

# PID 1 must not exit (the kernel would panic): power off instead.
poweroff -f
