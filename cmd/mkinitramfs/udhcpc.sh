#!/bin/sh
# /etc/udhcpc/default.script of the guest-test initramfs: busybox
# udhcpc runs it with the lease in its environment (ip, subnet, router,
# dns) and configures the interface from it.
case $1 in
deconfig)
	ip -4 addr flush dev "$interface"
	ip link set "$interface" up
	;;
bound | renew)
	ip -4 addr flush dev "$interface"
	ip addr add "$ip/${mask:-24}" dev "$interface"
	for r in $router; do
		ip route replace default via "$r" dev "$interface"
		break
	done
	: >/etc/resolv.conf
	for d in $dns; do
		echo "nameserver $d" >>/etc/resolv.conf
	done
	echo "udhcpc: $interface is $ip/${mask:-24}"
	;;
esac
exit 0
