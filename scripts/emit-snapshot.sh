#!/bin/sh
# emit-snapshot.sh — the C that a built bpgen writes for every model, kept in
# one folder, so that a change to lowering or emission can be checked for
# byte-identical output:
#
#   scripts/emit-snapshot.sh build/bpgen /tmp/before        # before the change
#   ...change, make...
#   scripts/emit-snapshot.sh build/bpgen /tmp/after
#   diff -r /tmp/before /tmp/after                           # nothing: identical
#
# Models: examples/*/*.net and tests/**/*.net, plus any further .net files or
# folders of them named after OUTDIR (build/tmp after `make test` holds the
# test suites' models). Each is compiled four ways (float, double, each with
# and without --main) into OUTDIR/<way>/<model>.{c,h}; a model that does not
# compile leaves <model>.err with bpgen's status and messages instead, so a
# change in what is rejected shows up in the diff too.
set -u

if [ $# -lt 2 ]; then
    echo "usage: $0 BPGEN OUTDIR [MODEL.net|FOLDER]..." >&2
    exit 2
fi
bpgen=$1
out=$2
shift 2
case $bpgen in /*) ;; *) bpgen=$(pwd)/$bpgen ;; esac
[ -x "$bpgen" ] || { echo "$0: $bpgen is not an executable" >&2; exit 2; }
if [ -e "$out" ] && [ -n "$(ls -A "$out" 2>/dev/null)" ]; then
    echo "$0: $out exists and is not empty" >&2
    exit 2
fi

list=$(mktemp)
trap 'rm -f "$list"' EXIT
{
    ls examples/*/*.net
    find tests -name '*.net'
    for extra in "$@"; do
        if [ -d "$extra" ]; then find "$extra" -name '*.net'; else echo "$extra"; fi
    done
} | sort -u > "$list"

compiled=0
rejected=0
for way in float double float-main double-main; do
    mkdir -p "$out/$way"
done
while IFS= read -r net; do
    # one flat, C-friendly name per path: the model's name comes from it
    name=$(printf '%s' "$net" | sed 's/\.net$//; s/[^A-Za-z0-9]/_/g')
    for way in float double float-main double-main; do
        case $way in
            float) flags="--precision=float" ;;
            double) flags="--precision=double" ;;
            float-main) flags="--precision=float --main" ;;
            double-main) flags="--precision=double --main" ;;
        esac
        # shellcheck disable=SC2086
        if "$bpgen" "$net" -o "$out/$way/$name.c" $flags > "$out/$way/$name.err" 2>&1; then
            rm -f "$out/$way/$name.err"
            compiled=$((compiled + 1))
        else
            echo "status $?" >> "$out/$way/$name.err"
            rejected=$((rejected + 1))
        fi
    done
done < "$list"
echo "$(wc -l < "$list") models: $compiled outputs written, $rejected rejections kept, in $out"
