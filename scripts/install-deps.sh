#!/bin/sh
# Installs what building and testing bpgen needs, when it is missing:
# a C compiler, make, flex, bison, CUnit, and clang (the tests compile
# generated code with both gcc and clang). Uses apt-get (Debian, as root).
#
# Extras, named as arguments:
#   fuzz      clang's libFuzzer runtime (libclang-rt-N-dev), for `make fuzz`
#   valgrind  valgrind, for the memcheck tests of `make test`
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
    valgrind)
        command -v valgrind >/dev/null 2>&1 || extra="$extra valgrind" ;;
    *)
        echo "install-deps: unknown extra '$want'" >&2
        exit 2 ;;
    esac
done
[ -z "$extra" ] || install "$extra"

[ -n "$missing$extra" ] || echo "install-deps: everything is installed"
