#!/bin/sh
# Installs what bpgen needs, when it is missing, with apt-get (Debian; sudo
# when not root).
#
#   sh scripts/install-deps.sh build   what `make` and `make demo` need:
#                                      a C compiler, make, flex, bison
#   sh scripts/install-deps.sh         (or `test`) everything `make test`
#                                      needs as well: CUnit; clang (generated
#                                      code is compiled with gcc and clang);
#                                      PyTorch and NumPy for /usr/bin/python3
#                                      (kernels and safetensors are compared
#                                      with PyTorch); Open MPI (mpicc builds
#                                      build/libbp_mpi.a, mpirun runs the
#                                      2-rank test); cmake, pkg-config and man
#                                      (the install tests); Graphviz (the
#                                      tests render `bpgen --dot`; `make docs`)
#                                      and xmllint (the tests check the
#                                      training curves' SVG)
set -eu

mode=${1:-test}
missing=""
command -v cc >/dev/null 2>&1 || missing="$missing gcc"
command -v make >/dev/null 2>&1 || missing="$missing make"
command -v flex >/dev/null 2>&1 || missing="$missing flex"
command -v bison >/dev/null 2>&1 || missing="$missing bison"
if [ "$mode" != build ]; then
    command -v clang >/dev/null 2>&1 || missing="$missing clang"
    [ -f /usr/include/CUnit/Basic.h ] || missing="$missing libcunit1-dev"
    /usr/bin/python3 -c 'import importlib.util as u, sys; sys.exit(not u.find_spec("torch"))' >/dev/null 2>&1 \
        || missing="$missing python3-torch"
    /usr/bin/python3 -c 'import importlib.util as u, sys; sys.exit(not u.find_spec("numpy"))' >/dev/null 2>&1 \
        || missing="$missing python3-numpy"
    command -v mpicc >/dev/null 2>&1 || missing="$missing libopenmpi-dev"
    command -v mpirun >/dev/null 2>&1 || missing="$missing openmpi-bin"
    command -v cmake >/dev/null 2>&1 || missing="$missing cmake"
    command -v pkg-config >/dev/null 2>&1 || missing="$missing pkg-config"
    command -v man >/dev/null 2>&1 || missing="$missing man-db"
    command -v dot >/dev/null 2>&1 || missing="$missing graphviz"
    command -v xmllint >/dev/null 2>&1 || missing="$missing libxml2-utils"
fi

[ -n "$missing" ] || exit 0

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
