#!/usr/bin/env bash
# Install what `make demo` or `make test` needs on a Debian/Ubuntu machine:
# the apt packages that are missing, then the venv and picorder in it.
# Usage: scripts/setup.sh demo|test
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${1:-demo}

demo_pkgs=(ffmpeg python3 python3-venv python3-gi gir1.2-gst-rtsp-server-1.0
           gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
           gstreamer1.0-plugins-ugly gstreamer1.0-x)
test_pkgs=(chromium udev e2fsprogs util-linux smartmontools sqlite3 curl
           qemu-system-x86 qemu-utils mmdebstrap ansible ansible-lint yamllint mtools
           dosfstools fdisk zstd xz-utils openssh-client)
pkgs=("${demo_pkgs[@]}")
[ "$profile" = test ] && pkgs+=("${test_pkgs[@]}")

missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing apt packages: ${missing[*]}"
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if [ ! -x .venv/bin/python ] || [ ! -x .venv/bin/pip ]; then
    rm -rf .venv   # absent, or left half-made by an interrupted run
    python3 -m venv .venv
fi
stamp=.venv/.installed-$profile
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    .venv/bin/pip install -q --upgrade pip
    if [ "$profile" = test ]; then
        .venv/bin/pip install -q -e '.[test]'
    else
        .venv/bin/pip install -q -e .
    fi
    touch "$stamp"
fi
