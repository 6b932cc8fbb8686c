#!/usr/bin/env bash
# File-level check of an arm64 image's firmware partition (no loop mounts):
# the boot firmware's start and fixup files for each supported model, the DTBs,
# the kernel and initrd, config.txt with arm_64bit=1, cmdline.txt with root=LABEL=RASPIROOT.
# Usage: image/check-firmware.sh picorder-VERSION-arm64.img[.xz]
set -euo pipefail
img=${1:?usage: image/check-firmware.sh IMAGE}
tmp=""
if [[ $img == *.xz ]]; then
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    xz -dc "$img" >"$tmp/image.img"
    img=$tmp/image.img
fi
start=$(sfdisk -J "$img" | python3 -c 'import json,sys; print(json.load(sys.stdin)["partitiontable"]["partitions"][0]["start"])')
fat="$img@@$(( start * 512 ))"
export MTOOLS_SKIP_CHECK=1
files=$(mdir -b -i "$fat" ::/ | sed 's|^::/||')
problems=0
need() {  # need DESCRIPTION GLOB...
    local what=$1; shift
    local pattern found=0
    for pattern in "$@"; do
        # shellcheck disable=SC2053
        while read -r f; do [[ $f == $pattern ]] && found=1; done <<<"$files"
    done
    if [ $found -eq 1 ]; then echo "ok       $what"; else echo "MISSING  $what ($*)"; problems=$((problems + 1)); fi
}
need "Pi 3 / Zero 2 W boot loader" bootcode.bin
need "Pi 3 / Zero 2 W firmware (start.elf, fixup.dat)" start.elf
need "fixup.dat" fixup.dat
need "Pi 4 / 400 / CM4 firmware (start4.elf)" start4.elf
need "fixup4.dat" fixup4.dat
need "Pi 3 B DTB" bcm2837-rpi-3-b.dtb
need "Pi 3 B+ DTB" bcm2837-rpi-3-b-plus.dtb
need "Pi Zero 2 W DTB" bcm2837-rpi-zero-2-w.dtb
need "Pi 4 B DTB" bcm2711-rpi-4-b.dtb
need "Pi 400 DTB" bcm2711-rpi-400.dtb
need "CM4 (IO board) DTB" bcm2711-rpi-cm4-io.dtb
need "kernel" 'vmlinuz-*'
need "initrd" 'initrd.img-*'
need "config.txt" config.txt
need "cmdline.txt" cmdline.txt
need "picorder.txt" picorder.txt
config=$(mtype -i "$fat" ::config.txt 2>/dev/null || true)
cmdline=$(mtype -i "$fat" ::cmdline.txt 2>/dev/null || true)
if grep -q '^arm_64bit=1' <<<"$config"; then echo "ok       config.txt has arm_64bit=1"; else echo "BAD      config.txt lacks arm_64bit=1"; problems=$((problems + 1)); fi
if grep -q 'root=LABEL=RASPIROOT' <<<"$cmdline"; then echo "ok       cmdline.txt has root=LABEL=RASPIROOT"; else echo "BAD      cmdline.txt: $cmdline"; problems=$((problems + 1)); fi
if grep -q 'cma=64M' <<<"$cmdline"; then echo "BAD      cmdline.txt has cma=64M (can make a Pi 4 unbootable)"; problems=$((problems + 1)); fi
kernel=$(grep -o '^kernel=.*' <<<"$config" | cut -d= -f2 || true)
initramfs=$(grep -o '^initramfs [^ ]*' <<<"$config" | cut -d' ' -f2 || true)
for f in $kernel $initramfs; do
    grep -qx "$f" <<<"$files" && echo "ok       config.txt names $f, which is there" \
        || { echo "BAD      config.txt names $f, which is missing"; problems=$((problems + 1)); }
done
if [ $problems -ne 0 ]; then
    echo "$problems problem(s) in the firmware partition of $1" >&2
    exit 1
fi
echo "firmware partition of $1: all checks passed"
