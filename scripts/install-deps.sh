#!/bin/sh
# Installs what building and testing bpgen needs, when it is missing:
# a C compiler, make, flex, bison, CUnit, clang (the tests compile
# generated code with both gcc and clang), PyTorch (python3-torch, which
# tests compare kernels with), Open MPI (mpicc builds build/libbp_mpi.a,
# mpirun runs the 2-rank training test) and valgrind (the memcheck suite).
# Uses apt-get (Debian, as root). Silent when nothing is missing.
#
# Extras, named as arguments:
#   fuzz      clang's libFuzzer runtime (libclang-rt-N-dev), for `make fuzz`
set -eu

SUDO=
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi

install() {
    echo "install-deps: installing$1"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    # shellcheck disable=SC2086
    $SUDO apt-get install -y -qq $1
}

missing=""
command -v cc >/dev/null 2>&1 || missing="$missing gcc"
command -v make >/dev/null 2>&1 || missing="$missing make"
command -v flex >/dev/null 2>&1 || missing="$missing flex"
command -v bison >/dev/null 2>&1 || missing="$missing bison"
command -v clang >/dev/null 2>&1 || missing="$missing clang"
[ -f /usr/include/CUnit/Basic.h ] || missing="$missing libcunit1-dev"
# PyTorch (Debian's, for /usr/bin/python3): tests compare kernels with it
[ -d /usr/lib/python3/dist-packages/torch ] && [ -d /usr/lib/python3/dist-packages/numpy ] \
    || missing="$missing python3-torch python3-numpy"
command -v mpicc >/dev/null 2>&1 || missing="$missing libopenmpi-dev"
command -v mpirun >/dev/null 2>&1 || missing="$missing openmpi-bin"
command -v valgrind >/dev/null 2>&1 || missing="$missing valgrind"
[ -z "$missing" ] || install "$missing"

extra=""
for want in "$@"; do
    case $want in
    fuzz)
        # the runtime that matches the installed clang's version
        dir=$(clang --print-runtime-dir 2>/dev/null || true)
        if ! ls "$dir"/libclang_rt.fuzzer*.a >/dev/null 2>&1; then
            major=$(clang -dumpversion | cut -d. -f1)
            extra="$extra libclang-rt-$major-dev"
        fi ;;
    *)
        echo "install-deps: unknown extra '$want'" >&2
        exit 2 ;;
    esac
done
[ -z "$extra" ] || install "$extra"
