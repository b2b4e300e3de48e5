#!/bin/sh
# Installs what building and testing bpgen needs, when it is missing:
# a C compiler, make, flex, bison, CUnit, clang (the tests compile
# generated code with both gcc and clang), PyTorch (python3-torch, which
# tests compare kernels with), Open MPI (mpicc builds build/libbp_mpi.a,
# mpirun runs the 2-rank training test), Graphviz (`make docs` and the
# tests render `bpgen --dot`) and xmllint (the tests check the training
# curves' SVG). Uses apt-get (Debian, as root).
set -eu

missing=""
command -v cc >/dev/null 2>&1 || missing="$missing gcc"
command -v make >/dev/null 2>&1 || missing="$missing make"
command -v flex >/dev/null 2>&1 || missing="$missing flex"
command -v bison >/dev/null 2>&1 || missing="$missing bison"
command -v clang >/dev/null 2>&1 || missing="$missing clang"
[ -f /usr/include/CUnit/Basic.h ] || missing="$missing libcunit1-dev"
command -v dot >/dev/null 2>&1 || missing="$missing graphviz"
command -v xmllint >/dev/null 2>&1 || missing="$missing libxml2-utils"
# PyTorch (Debian's, for /usr/bin/python3): tests compare kernels with it
[ -d /usr/lib/python3/dist-packages/torch ] && [ -d /usr/lib/python3/dist-packages/numpy ] \
    || missing="$missing python3-torch python3-numpy"
command -v mpicc >/dev/null 2>&1 || missing="$missing libopenmpi-dev"
command -v mpirun >/dev/null 2>&1 || missing="$missing openmpi-bin"

if [ -z "$missing" ]; then
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
