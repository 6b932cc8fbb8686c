#!/usr/bin/env bash
# Install what `make demo` or `make test` needs on a Debian/Ubuntu machine: the apt
# packages that are missing, then the venv and picorder in it. Then check what was
# installed by what it can do (the tools on PATH, the GStreamer elements of the
# simulated cameras), and stop with a message naming whatever is missing.
#
# Usage: scripts/setup.sh demo|test|test-arm64 [--check]
#   test-arm64  test, plus the emulator of the arm64 boot test (make image-test-arm64)
#   --check     install nothing, only check
# Each step prints one line; its output shows only when it fails (all of it with
# PICORDER_VERBOSE=1).
set -euo pipefail
cd "$(dirname "$0")/.."
# A user's PATH on Debian lacks the sbin directories, where some of the tools are.
PATH=$PATH:/usr/sbin:/sbin
profile=${1:-demo}
check_only=""
[ "${2:-}" = --check ] && check_only=1

demo_pkgs=(ffmpeg python3 python3-venv python3-gi gir1.2-gst-rtsp-server-1.0
           gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
           gstreamer1.0-plugins-ugly gstreamer1.0-x)
test_pkgs=(chromium udev e2fsprogs util-linux smartmontools sqlite3 curl
           qemu-system-x86 qemu-utils mmdebstrap ansible ansible-lint yamllint mtools
           dosfstools fdisk zstd xz-utils openssh-client nginx)
arm64_pkgs=(qemu-system-arm)
# What each profile runs, checked on PATH after installing.
demo_tools=(python3 ffmpeg ffprobe)
test_tools=(chromium udevadm mke2fs mkfs.vfat losetup sfdisk smartctl sqlite3 curl
            qemu-system-x86_64 qemu-img qemu-io mmdebstrap ansible-playbook ansible-lint
            yamllint mcopy mtype mdir zstd xz ssh ssh-keygen nginx)
arm64_tools=(qemu-system-aarch64)

pkgs=("${demo_pkgs[@]}")
tools=("${demo_tools[@]}")
case $profile in
    demo) ;;
    test) pkgs+=("${test_pkgs[@]}"); tools+=("${test_tools[@]}") ;;
    test-arm64) pkgs+=("${test_pkgs[@]}" "${arm64_pkgs[@]}")
                tools+=("${test_tools[@]}" "${arm64_tools[@]}") ;;
    *) echo "usage: scripts/setup.sh demo|test|test-arm64 [--check]" >&2; exit 2 ;;
esac

installed=""
log=$(mktemp)
trap 'rm -f "$log"' EXIT

step() {  # step DESCRIPTION COMMAND...: one line, and the command's output if it fails
    local what=$1
    shift
    echo "setup: $what"
    installed=1
    if [ -n "${PICORDER_VERBOSE:-}" ]; then
        "$@"
        return
    fi
    if ! "$@" >"$log" 2>&1; then
        cat "$log" >&2
        echo "setup: failed: $what" >&2
        exit 1
    fi
}

install_apt() {
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || { echo "setup: run as root or install sudo" >&2; return 1; }
        sudo=(sudo)
    fi
    "${sudo[@]}" apt-get update -q
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends "$@"
}

install_venv() {
    rm -rf .venv   # absent, or left half-made by an interrupted run
    python3 -m venv .venv
}

install_picorder() {
    .venv/bin/pip install -q --upgrade pip
    if [ "$profile" = demo ]; then
        .venv/bin/pip install -q -e .
    else
        .venv/bin/pip install -q -e '.[test]'
    fi
}

check() {
    local problems=() tool
    for tool in "${tools[@]}"; do
        command -v "$tool" >/dev/null || problems+=("$tool is not on PATH")
    done
    python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
        || problems+=("python3 is older than 3.11")
    local sim
    # The simulated cameras' own start-up check: the system Python, its GStreamer
    # bindings, and every element their pipelines use.
    if ! sim=$(PYTHONPATH=$PWD /usr/bin/python3 -m recorder.sim.rtsp_server --check-elements 2>&1); then
        problems+=("simulated cameras: ${sim#ERROR }")
    fi
    if [ -z "$check_only" ] && [ ! -x .venv/bin/picorder ]; then
        problems+=(".venv/bin/picorder is missing")
    fi
    if [ ${#problems[@]} -gt 0 ]; then
        echo "setup: $profile cannot run on this machine; missing:" >&2
        printf '  - %s\n' "${problems[@]}" >&2
        exit 1
    fi
}

if [ -n "$check_only" ]; then
    check
    echo "setup: $profile: everything needed is here"
    exit 0
fi

missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    step "apt-get install ${missing[*]}" install_apt "${missing[@]}"
fi

if [ ! -x .venv/bin/python ] || [ ! -x .venv/bin/pip ]; then
    step "python3 -m venv .venv" install_venv
fi
stamp=.venv/.installed-${profile%-arm64}     # test-arm64 installs what test does
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    step "pip install picorder and its dependencies into .venv ($profile)" install_picorder
    touch "$stamp"
fi
check
[ -z "$installed" ] || echo "setup: ready ($profile)"
