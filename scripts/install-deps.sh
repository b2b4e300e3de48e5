#!/bin/sh
# Installs what bpgen needs, when it is missing, with apt-get (Debian; sudo
# when not root). Arguments name what is wanted (default: test):
#
#   build     what `make` and `make demo` need: a C compiler, make, flex,
#             bison
#   test      build, and everything `make test` needs as well: CUnit;
#             clang (generated code is compiled with gcc and clang);
#             PyTorch and NumPy for /usr/bin/python3 (kernels and
#             safetensors are compared with PyTorch); Open MPI (mpicc
#             builds build/libbp_mpi.a, mpirun runs the 2-rank test);
#             cmake, pkg-config and man (the install tests); valgrind (the
#             memcheck tests); Graphviz (the tests render `bpgen --dot`;
#             `make docs`) and xmllint (the tests check the training
#             curves' SVG)
#   valgrind  valgrind alone
#   data      build, and the Fashion-MNIST data set (make examples,
#             make bench-fashion; `test` installs it too)
#
# zlib (zlib1g-dev) is a build need: the runtime's IDX reader, runtime/idx.c.
#   fuzz      clang and its libFuzzer runtime (libclang-rt-N-dev), for
#             `make fuzz`
set -eu

missing=""
want() {   # want COMMAND-OR-TEST PACKAGE
    sh -c "$1" >/dev/null 2>&1 || missing="$missing $2"
}
build_tools() {
    want 'command -v cc' gcc
    want 'command -v make' make
    want 'command -v flex' flex
    want 'command -v bison' bison
    want 'test -f /usr/include/zlib.h' zlib1g-dev
}

[ $# -gt 0 ] || set -- test
for group in "$@"; do
    case $group in
    build)
        build_tools ;;
    test)
        build_tools
        want 'command -v clang' clang
        want 'test -f /usr/include/CUnit/Basic.h' libcunit1-dev
        want '/usr/bin/python3 -c "import torch"' python3-torch
        want '/usr/bin/python3 -c "import numpy"' python3-numpy
        want 'command -v mpicc' libopenmpi-dev
        want 'command -v mpirun' openmpi-bin
        want 'command -v cmake' cmake
        want 'command -v pkg-config' pkg-config
        want 'command -v man' man-db
        want 'command -v valgrind' valgrind
        want 'command -v dot' graphviz
        want 'command -v xmllint' libxml2-utils
        want 'test -d /usr/share/datasets/fashion-mnist' dataset-fashion-mnist ;;
    data)
        build_tools
        want 'test -d /usr/share/datasets/fashion-mnist' dataset-fashion-mnist ;;
    valgrind)
        want 'command -v valgrind' valgrind ;;
    fuzz)
        build_tools
        want 'command -v clang' clang
        # the libFuzzer runtime that matches the installed clang's version
        dir=$(clang --print-runtime-dir 2>/dev/null || true)
        if ! ls "$dir"/libclang_rt.fuzzer*.a >/dev/null 2>&1; then
            major=$(clang -dumpversion 2>/dev/null | cut -d. -f1)
            missing="$missing libclang-rt-${major:-14}-dev"
        fi ;;
    *)
        echo "install-deps: unknown group '$group' (build, test, data, valgrind, fuzz)" >&2
        exit 2 ;;
    esac
done

[ -n "$missing" ] || exit 0

echo "install-deps: installing$missing"
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq $missing
