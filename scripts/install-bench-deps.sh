#!/bin/sh
# Installs what `make bench` needs beyond building and testing, when it is
# missing: OpenBLAS (the hand-written baseline's BLAS), and Debian's
# PyTorch and NumPy for /usr/bin/python3 (the framework baseline). Uses
# apt-get (Debian, as root or with sudo), like install-deps.sh.
set -eu

missing=""
[ -f /usr/include/x86_64-linux-gnu/cblas.h ] || [ -f /usr/include/cblas.h ] \
    || missing="$missing libopenblas-dev"
ls /usr/lib/*/libopenblas.so >/dev/null 2>&1 || ls /usr/lib/libopenblas.so >/dev/null 2>&1 \
    || missing="$missing libopenblas-dev"
/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1 || missing="$missing python3-numpy"
/usr/bin/python3 -c 'import torch' >/dev/null 2>&1 || missing="$missing python3-torch"

if [ -z "$missing" ]; then
    exit 0
fi

echo "install-bench-deps: installing$missing" >&2
if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
else
    SUDO=
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq $missing
