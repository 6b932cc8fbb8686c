#!/usr/bin/env bash
# Build the picorder SD-card image from Debian's archive alone.
#
# Usage: image/build.sh arm64|amd64 [STEP...]
#        image/build.sh --check-tools arm64|amd64
#   steps: base provision initramfs assemble compress  (default: all of them)
#   --check-tools installs and checks the build tools (and the binfmt registration of
#   a foreign architecture), then stops: no build, no cache.
#
# base       mmdebstrap of Debian with every package, cached as a tarball keyed on
#            the package lists; initramfs builds are diverted while packages install.
# provision  extract the base, run ansible/site.yml over the chroot connection twice
#            (the second run must report changed=0), clean the root for shipping.
# initramfs  build the initramfs once (MODULES=list), which also lets raspi-firmware
#            fill /boot/firmware on arm64.
# assemble   MBR + FAT32 RASPIFIRM + ext4 RASPIROOT, without loop mounts.
# compress   xz the image into image/out/picorder-VERSION-ARCH.img.xz (arm64), or
#            keep the raw image in the cache for the boot test (amd64).
#
# The cache (packages, base tarballs, work roots, images) lives outside the
# repository: $PICORDER_BUILD_CACHE, default /var/cache/picorder-build.
set -euo pipefail

# Run from a copy, so that editing the checkout during a long build cannot break it.
if [ -z "${PICORDER_BUILD_SELF:-}" ]; then
    copy=$(mktemp /tmp/picorder-build.XXXXXX.sh)
    cp "$0" "$copy"
    PICORDER_BUILD_SELF=$(readlink -f "$0") exec bash "$copy" "$@"
fi
trap 'rm -f "$0"' EXIT

CHECK_TOOLS=""
if [ "${1:-}" = --check-tools ]; then
    CHECK_TOOLS=1
    shift
fi
ARCH=${1:?usage: image/build.sh arm64|amd64 [STEP...]}
shift
STEPS=("$@")
[ ${#STEPS[@]} -eq 0 ] && STEPS=(base provision initramfs assemble compress)

HERE=$(dirname "$PICORDER_BUILD_SELF")
REPO=$(dirname "$HERE")
SUITE=${PICORDER_SUITE:-bookworm}
CACHE=${PICORDER_BUILD_CACHE:-/var/cache/picorder-build}
DEBS=$CACHE/debs/$SUITE-$ARCH
WORK=$CACHE/$ARCH
ROOT=$WORK/root
OUT=${PICORDER_IMAGE_OUT:-$REPO/image/out}
VERSION=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$REPO/recorder/__init__.py")
FAT_START_MIB=4
FAT_END_MIB=512
[ "$ARCH" = amd64 ] && FAT_END_MIB=68    # only picorder.txt lives there on amd64

case "$ARCH" in
    arm64|amd64) ;;
    *) echo "unknown architecture $ARCH (arm64 or amd64)" >&2; exit 2 ;;
esac
[ "$(id -u)" -eq 0 ] || { echo "image/build.sh must run as root" >&2; exit 2; }

# The build tools: install the packages that are missing (a fresh Debian machine has
# none of them), then check what the build runs, not only the package names.
FOREIGN=""
[ "$ARCH" != "$(dpkg --print-architecture)" ] && FOREIGN=1
QEMU_ARCH=aarch64
[ "$ARCH" = amd64 ] && QEMU_ARCH=x86_64
BINFMT_DIR=/proc/sys/fs/binfmt_misc

install_tools() {
    local need=(mmdebstrap ansible dosfstools mtools fdisk e2fsprogs xz-utils zstd python3-yaml)
    # mmdebstrap needs arch-test (only its Recommends) and a registered qemu for a foreign
    # architecture; binfmt-support registers it when systemd does not (a chroot, a container).
    [ -n "$FOREIGN" ] && need+=(qemu-user-static binfmt-support arch-test)
    local p missing=()
    for p in "${need[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "installing the build tools: ${missing[*]}" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${missing[@]}" >/dev/null
    fi
}

register_binfmt() {
    [ -n "$FOREIGN" ] || return 0
    if [ ! -e "$BINFMT_DIR/status" ]; then
        mount -t binfmt_misc binfmt_misc "$BINFMT_DIR" || true
    fi
    if [ ! -e "$BINFMT_DIR/qemu-$QEMU_ARCH" ]; then
        update-binfmts --enable "qemu-$QEMU_ARCH" >&2 || true
    fi
}

check_tools() {
    local problems=() tool
    for tool in mmdebstrap ansible-playbook mkfs.vfat mcopy mdir sfdisk mke2fs e2fsck xz zstd \
                flock chroot; do
        command -v "$tool" >/dev/null || problems+=("$tool is not on PATH")
    done
    python3 -c 'import yaml' 2>/dev/null || problems+=("python3 cannot import yaml (python3-yaml)")
    if [ -n "$FOREIGN" ]; then
        command -v arch-test >/dev/null || problems+=("arch-test is not on PATH (mmdebstrap needs it)")
        if [ ! -e "$BINFMT_DIR/status" ]; then
            problems+=("binfmt_misc is not mounted at $BINFMT_DIR")
        elif ! head -1 "$BINFMT_DIR/qemu-$QEMU_ARCH" 2>/dev/null | grep -qx enabled; then
            problems+=("qemu-$QEMU_ARCH is not registered with binfmt_misc (update-binfmts --enable qemu-$QEMU_ARCH)")
        elif ! arch-test "$ARCH" >/dev/null 2>&1; then
            problems+=("arch-test $ARCH: this machine cannot run $ARCH programs")
        fi
    fi
    if [ ${#problems[@]} -gt 0 ]; then
        echo "image/build.sh $ARCH cannot run; missing:" >&2
        printf '  - %s\n' "${problems[@]}" >&2
        exit 1
    fi
}

install_tools
register_binfmt
check_tools
if [ -n "$CHECK_TOOLS" ]; then
    echo "image/build.sh $ARCH: build tools ok"
    exit 0
fi

mkdir -p "$DEBS" "$WORK" "$OUT"
# One build per architecture at a time, and none while a boot test uses the image
# (tests/vm holds a shared lock on the same file and sets PICORDER_BUILD_LOCKED).
if [ -z "${PICORDER_BUILD_LOCKED:-}" ]; then
    exec 9>"$WORK/.lock"
    flock 9
fi

log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }

# The packages: image lists plus the roles' lists, so the roles find them installed.
package_list() {
    {
        grep -hv '^\s*#' "$HERE/packages-common.txt" "$HERE/packages-$ARCH.txt"
        python3 - "$REPO" <<'PY'
import sys, yaml
repo = sys.argv[1]
for role, key in (("picorder", "picorder_packages"),
                  ("picorder_nginx", "picorder_nginx_packages"),
                  ("picorder_appliance", "picorder_appliance_packages")):
    with open(f"{repo}/ansible/roles/{role}/defaults/main.yml") as f:
        print("\n".join(yaml.safe_load(f)[key]))
PY
    } | awk 'NF' | sort -u
}

base_key() {
    { echo "$SUITE $ARCH v1"; package_list; sed -n '/^step_base()/,/^}/p' "$0"; } \
        | sha256sum | cut -c1-16
}

step_base() {
    local key tar
    key=$(base_key)
    tar=$WORK/base-$SUITE-$key.tar
    if [ -s "$tar" ]; then
        log "base: reusing $tar"
        return
    fi
    if [ "$ARCH" != "$(dpkg --print-architecture)" ] && [ ! -e /proc/sys/fs/binfmt_misc/status ]; then
        mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    fi
    log "base: mmdebstrap $SUITE $ARCH ($(package_list | wc -l) packages)"
    local mirror=()
    [ -n "${PICORDER_MIRROR:-}" ] && mirror=("$PICORDER_MIRROR")
    nice mmdebstrap --variant=minbase --architectures="$ARCH" \
        --components=main,non-free-firmware \
        --include="$(package_list | paste -sd,)" \
        --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/locale/*' \
        --dpkgopt='path-include=/usr/share/locale/locale.alias' \
        --dpkgopt='path-exclude=/usr/share/doc/*' \
        --dpkgopt='path-include=/usr/share/doc/*/copyright' \
        --setup-hook='mkdir -p "$1/var/cache/apt/archives/"' \
        --setup-hook="sync-in '$DEBS' /var/cache/apt/archives/" \
        --essential-hook='chroot "$1" dpkg-divert --quiet --local --rename --add /usr/sbin/update-initramfs' \
        --essential-hook='ln -sf /bin/true "$1/usr/sbin/update-initramfs"' \
        --customize-hook="sync-out /var/cache/apt/archives '$DEBS'" \
        "$SUITE" "$tar.part" "${mirror[@]}"
    mv "$tar.part" "$tar"
    # Older bases of this suite and architecture are stale now.
    # (mmdebstrap writes a directory: the name does not end in .tar while it is built)
    find "$WORK" -maxdepth 1 -name "base-$SUITE-*.tar" ! -name "$(basename "$tar")" \
        -exec rm -rf {} +
    log "base: done, $(du -h "$tar" | cut -f1)"
}

mount_chroot() {
    mount -t proc proc "$ROOT/proc"
    mount -t sysfs sysfs "$ROOT/sys"
    mount --bind /dev "$ROOT/dev"
}

umount_chroot() {
    local d
    for d in dev sys proc; do
        mountpoint -q "$ROOT/$d" && umount -l "$ROOT/$d"
    done
    return 0
}

build_wheel() {
    local dir=$WORK/wheel
    rm -rf "$dir" && mkdir -p "$dir"
    local py=python3
    [ -x "$REPO/.venv/bin/python" ] && py=$REPO/.venv/bin/python
    log "provision: building the picorder wheel from the checkout"
    "$py" -c 'import wheel' 2>/dev/null || "$py" -m pip install -q wheel >&2
    (cd "$REPO" && "$py" -m pip wheel -q --no-deps --no-build-isolation -w "$dir" . >&2)
    rm -rf "$REPO/build"
    ls "$dir"/picorder-*.whl
}

run_playbook() {
    local wheel=$1 logfile=$2
    local inv=$WORK/inventory.ini
    printf '%s ansible_connection=community.general.chroot ansible_python_interpreter=/usr/bin/python3\n' \
        "$ROOT" >"$inv"
    ANSIBLE_CONFIG=$REPO/ansible/ansible.cfg nice ansible-playbook -i "$inv" \
        -e picorder_image_build=true -e "picorder_wheel=$wheel" \
        "$REPO/ansible/site.yml" | tee "$logfile" >&2
}

step_provision() {
    local tar
    tar=$WORK/base-$SUITE-$(base_key).tar
    [ -e "$tar" ] || { echo "no base $tar: run the base step" >&2; exit 1; }
    umount_chroot 2>/dev/null || true
    rm -rf "$ROOT" && mkdir -p "$ROOT"
    log "provision: copying $(basename "$tar")"
    if [ -d "$tar" ]; then
        cp -a "$tar/." "$ROOT/"
    else
        tar -C "$ROOT" -xpf "$tar"
    fi
    # mmdebstrap copied the build host's files in; give the box its own.
    echo picorder >"$ROOT/etc/hostname"
    ln -sf ../run/systemd/resolve/stub-resolv.conf "$ROOT/etc/resolv.conf"
    local wheel
    wheel=$(build_wheel)
    log "provision: ansible (first run)"
    run_playbook "$wheel" "$WORK/ansible-run1.log"
    log "provision: ansible (second run, must change nothing)"
    run_playbook "$wheel" "$WORK/ansible-run2.log"
    local recap
    recap=$(grep -A2 'PLAY RECAP' "$WORK/ansible-run2.log" | tail -n +2)
    echo "$recap" >"$WORK/ansible-second-run.txt"
    if ! grep -q 'changed=0 ' <<<"$recap" || ! grep -q 'failed=0 ' <<<"$recap"; then
        echo "the second ansible run was not idempotent: $recap" >&2
        exit 1
    fi
}

step_initramfs() {
    log "initramfs: MODULES=list, built once"
    cp -r "$HERE/files/common/." "$ROOT/"
    cp -r "$HERE/files/$ARCH/." "$ROOT/"
    rm -f "$ROOT/usr/sbin/update-initramfs"
    chroot "$ROOT" dpkg-divert --quiet --local --rename --remove /usr/sbin/update-initramfs
    trap 'umount_chroot; rm -f "$0"' EXIT
    mount_chroot
    nice chroot "$ROOT" update-initramfs -c -k all >&2
    umount_chroot
    trap 'rm -f "$0"' EXIT
    # Ship no machine-id, no SSH host keys, no caches (first boot makes its own).
    : >"$ROOT/etc/machine-id"
    rm -f "$ROOT/var/lib/dbus/machine-id" "$ROOT"/etc/ssh/ssh_host_*
    rm -rf "$ROOT"/var/cache/apt/*.bin "$ROOT"/var/cache/apt/archives/*.deb \
        "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/log/*.log "$ROOT"/tmp/*
    # Keep /opt/picorder/dist (the role compares the wheel there on a later run) and
    # the byte-compiled files: the panel's user cannot write them at run time.
}

image_path() { echo "$WORK/picorder-$VERSION-$ARCH.img"; }

step_assemble() {
    local img fatdir rootmib fat_sectors root_start
    img=$(image_path)
    fatdir=$WORK/firmware
    log "assemble: $img"
    rm -rf "$fatdir" && mkdir -p "$fatdir"
    # /boot/firmware must be empty in the ext4 root; its files go to the FAT partition.
    if [ -d "$ROOT/boot/firmware" ]; then
        cp -r "$ROOT/boot/firmware/." "$fatdir/"
        find "$ROOT/boot/firmware" -mindepth 1 -delete
    fi
    cp "$HERE/picorder.txt" "$fatdir/picorder.txt"
    # Root size: contents plus 25 % and 256 MiB of room; first boot grows it to the card.
    rootmib=$(( $(du -sm --apparent-size "$ROOT" | cut -f1) * 5 / 4 + 256 ))
    rm -f "$img"
    truncate -s "$(( FAT_END_MIB + rootmib + 1 ))M" "$img"
    root_start=$(( FAT_END_MIB * 2048 ))
    fat_sectors=$(( (FAT_END_MIB - FAT_START_MIB) * 2048 ))
    sfdisk --no-reread --no-tell-kernel -q "$img" <<EOF
label: dos
start=$(( FAT_START_MIB * 2048 )), size=$fat_sectors, type=c, bootable
start=$root_start, size=$(( rootmib * 2048 )), type=83
EOF
    # FAT32 wants at least 65525 clusters: one sector per cluster on the small amd64 one.
    local spc=()
    [ $(( FAT_END_MIB - FAT_START_MIB )) -lt 256 ] && spc=(-s 1)
    mkfs.vfat -F 32 "${spc[@]}" -n RASPIFIRM --offset "$(( FAT_START_MIB * 2048 ))" "$img" \
        "$(( fat_sectors / 2 ))" >/dev/null
    MTOOLS_SKIP_CHECK=1 mcopy -s -p -m -i "$img@@$(( FAT_START_MIB * 1048576 ))" "$fatdir"/* ::
    nice mke2fs -q -F -t ext4 -L RASPIROOT -d "$ROOT" -E "offset=$(( root_start * 512 ))" \
        "$img" "$(( rootmib * 1024 ))k"
    e2fsck -fn "$img?offset=$(( root_start * 512 ))" >/dev/null
    # The boot test takes the kernel and initrd from here (same bytes as in the image).
    cp "$(readlink -f "$ROOT/vmlinuz")" "$WORK/vmlinuz"
    cp "$(readlink -f "$ROOT/initrd.img")" "$WORK/initrd.img"
    cp "$WORK/ansible-second-run.txt" "$img.ansible-second-run.txt"
    log "assemble: done, $(du -h --apparent-size "$img" | cut -f1) ($(du -h "$img" | cut -f1) used)"
}

step_compress() {
    local img
    img=$(image_path)
    if [ "$ARCH" = amd64 ] && [ -z "${PICORDER_COMPRESS_AMD64:-}" ]; then
        log "compress: skipped for amd64 (the boot test uses $img)"
        return
    fi
    log "compress: xz"
    nice xz -T2 -6 -c "$img" >"$OUT/picorder-$VERSION-$ARCH.img.xz.part"
    mv "$OUT/picorder-$VERSION-$ARCH.img.xz.part" "$OUT/picorder-$VERSION-$ARCH.img.xz"
    log "compress: $OUT/picorder-$VERSION-$ARCH.img.xz $(du -h "$OUT/picorder-$VERSION-$ARCH.img.xz" | cut -f1)"
}

for step in "${STEPS[@]}"; do
    start=$(date +%s)
    "step_$step"
    log "$step took $(( $(date +%s) - start )) s"
done
