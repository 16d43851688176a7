#!/bin/sh
# tests/fuzz.sh — the make check entry point for fuzzing: runs every target of the table in
# tests/fuzz/run.sh whose tests/fuzz/fuzz_TARGET.c exists, FUZZ_SECONDS each (default 20;
# CI=true keeps the default). Fails if any target fails; skips (77) if none exists.
set -u
here=$(cd "$(dirname "$0")" && pwd)
top_srcdir=${top_srcdir:-$(cd "$here/.." && pwd)}
export top_srcdir
top_builddir=${top_builddir:-$(pwd)}
export top_builddir
FUZZ_CC=${FUZZ_CC:-no}
export FUZZ_CC

seconds=${FUZZ_SECONDS:-20}
case $seconds in
    ''|*[!0-9]*) echo "fuzz: FUZZ_SECONDS must be a whole number, got '$seconds'" >&2; exit 1 ;;
esac

run=$top_srcdir/tests/fuzz/run.sh
failed=
ran=0
for t in $(sh "$run" --list); do
    [ -f "$top_srcdir/tests/fuzz/fuzz_$t.c" ] || continue
    ran=$((ran + 1))
    sh "$run" "$t" "$seconds" || failed="$failed $t"
done
if [ "$ran" -eq 0 ]; then
    echo "fuzz: no fuzz targets exist yet"
    exit 77
fi
if [ -n "$failed" ]; then
    echo "fuzz: FAILED:$failed" >&2
    exit 1
fi
echo "fuzz: $ran target(s) passed"
exit 0
