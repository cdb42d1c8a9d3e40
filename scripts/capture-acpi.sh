#!/bin/sh
# Captures the ACPI tables QEMU's virt machine gives UEFI firmware (Debian's
# AAVMF) into acpi/testdata/qemu-virt: it boots `make linux`'s kernel under
# the firmware, has the initramfs's shell print /sys/firmware/acpi/tables
# in hex, and writes each table Bulkhead reads as TABLE.dat.
#
#	scripts/capture-acpi.sh [OUTDIR]
set -eu
out=${1:-acpi/testdata/qemu-virt}
build=${BUILD:-build}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp /usr/share/AAVMF/AAVMF_VARS.fd "$tmp/vars.fd"
# The shell needs time to come up under emulation before it is typed at.
{
	sleep 70
	printf 'cd /sys/firmware/acpi/tables\n'
	sleep 1
	printf 'for f in APIC FACP GTDT IORT MCFG SPCR; do echo "==TABLE $f"; hexdump -v -e '"'"'32/1 "%%02x" "\\n"'"'"' "$f"; done; echo "==END"\n'
	sleep 15
	printf 'poweroff -f\n'
	sleep 5
} | timeout 150 qemu-system-aarch64 -machine virt,virtualization=on,gic-version=3,iommu=smmuv3 \
	-cpu neoverse-n1 -smp 2 -m 1G -nographic -monitor none -serial stdio \
	-drive if=pflash,format=raw,readonly=on,file=/usr/share/AAVMF/AAVMF_CODE.fd \
	-drive if=pflash,format=raw,file="$tmp/vars.fd" \
	-kernel "$build/linux/vmlinuz" -initrd "$build/linux/rootfs.cpio.gz" -append console=ttyAMA0 \
	>"$tmp/console.log" 2>&1 || true
mkdir -p "$out"
tr -d '\r' <"$tmp/console.log" | awk -v out="$out" '
	/^==TABLE / { f = out "/" $2 ".hex"; printf "" > f; next }
	/^==/ { f = ""; next }
	f != "" { gsub(/[ \t]/, "") }
	f != "" && /^[0-9a-f]+$/ { print >> f }
'
for h in "$out"/*.hex; do
	[ -e "$h" ] || { echo "capture-acpi: no tables in the console log ($tmp/console.log)" >&2; exit 1; }
	xxd -r -p "$h" "${h%.hex}.dat"
	rm "$h"
done
ls -l "$out"
