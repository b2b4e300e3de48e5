#!/bin/sh
# Installs what building and testing bpgen needs, when it is missing:
# a C compiler, make, flex, bison, CUnit, and clang (the tests compile
# generated code with both gcc and clang); for the install tests cmake,
# pkg-config and man; for the safetensors round trip with PyTorch,
# python3-torch and python3-numpy. Uses apt-get (Debian, as root).
set -eu

missing=""
command -v cc >/dev/null 2>&1 || missing="$missing gcc"
command -v make >/dev/null 2>&1 || missing="$missing make"
command -v flex >/dev/null 2>&1 || missing="$missing flex"
command -v bison >/dev/null 2>&1 || missing="$missing bison"
command -v clang >/dev/null 2>&1 || missing="$missing clang"
[ -f /usr/include/CUnit/Basic.h ] || missing="$missing libcunit1-dev"
command -v cmake >/dev/null 2>&1 || missing="$missing cmake"
command -v pkg-config >/dev/null 2>&1 || missing="$missing pkg-config"
command -v man >/dev/null 2>&1 || missing="$missing man-db"
/usr/bin/python3 -c 'import importlib.util as u, sys; sys.exit(not u.find_spec("torch"))' >/dev/null 2>&1 || missing="$missing python3-torch"
/usr/bin/python3 -c 'import importlib.util as u, sys; sys.exit(not u.find_spec("numpy"))' >/dev/null 2>&1 || missing="$missing python3-numpy"

if [ -z "$missing" ]; then
    echo "install-deps: everything is installed"
    exit 0
fi

echo "install-deps: installing$missing"
if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
else
    SUDO=
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq $missing
