#!/bin/sh
# tests/fuzz/run.sh — builds one fuzz target and runs it for a bounded time.
#
#   run.sh TARGET SECONDS     build tests/fuzz/fuzz_TARGET.c and fuzz it for SECONDS
#   run.sh --list             print the target names of the table below
#
# With FUZZ_CC naming a clang that has libFuzzer, the target and the library sources it needs
# are compiled straight from $top_srcdir with -fsanitize=fuzzer,address,undefined and run on a
# copy of the seed corpus tests/fuzz/corpus/TARGET/ (the source tree is never written). A
# crash, leak, timeout, out-of-memory or sanitizer report fails the run; the reproducer is
# kept under $top_builddir/tests/fuzz/out/TARGET/artifacts/.
# Without libFuzzer the same sources are compiled with gcc (+ address,undefined when the
# toolchain has them) and tests/fuzz/replay_main.c, and only the seed corpus is replayed.
#
# Environment (exported by make check): top_srcdir, top_builddir, FUZZ_CC (clang or "no").
# Exit: 0 passed, 1 failed (crash or build error), 2 usage, 77 target has no fuzz_TARGET.c.
# Flag lists ($san, $files, $pkg_flags, ...) are split on purpose.
# shellcheck disable=SC2086
set -u

here=$(cd "$(dirname "$0")" && pwd)
top_srcdir=${top_srcdir:-$(cd "$here/../.." && pwd)}
top_builddir=${top_builddir:-$(pwd)}
FUZZ_CC=${FUZZ_CC:-no}

# The target table. One line per target:
#   NAME | library sources (relative to top_srcdir; a leading @ means a generated file
#          relative to top_builddir) | pkg-config modules | extra link flags
# A target whose tests/fuzz/fuzz_NAME.c does not exist yet is skipped by tests/fuzz.sh.
# Lines other than npy are the owners' to correct when they write their target.
table() {
    cat <<'EOT'
npy      | runtime/npy.c runtime/tensor.c runtime/diag.c | |
onnx     | runtime/onnx.c runtime/graph.c runtime/infer.c runtime/passes.c runtime/kernels_ref.c runtime/tensor.c runtime/diag.c @runtime/onnx.pb-c.c | libprotobuf-c | -lm
frame    | transport/frame.c transport/tensor_codec.c transport/chunk.c transport/topic.c runtime/tensor.c runtime/diag.c | msgpack liblz4 | -lm
envelope | crypto/envelope.c crypto/identity.c crypto/trust.c crypto/advert.c crypto/session.c runtime/diag.c | libsodium | -lpthread
envelope_sealed | crypto/envelope.c crypto/identity.c crypto/trust.c crypto/advert.c crypto/session.c transport/frame.c transport/tensor_codec.c transport/chunk.c transport/topic.c runtime/tensor.c runtime/diag.c | libsodium msgpack liblz4 | -lpthread -lm
advert   | crypto/envelope.c crypto/identity.c crypto/trust.c crypto/advert.c crypto/session.c runtime/diag.c | libsodium | -lpthread
topic    | transport/topic.c runtime/diag.c | |
EOT
}

field() {   # field TARGET N: the Nth |-separated field of TARGET's line, trimmed
    table | awk -F'|' -v t="$1" -v n="$2" '
        { name = $1; gsub(/^[ \t]+|[ \t]+$/, "", name) }
        name == t { v = $n; gsub(/^[ \t]+|[ \t]+$/, "", v); print v; found = 1 }
        END { exit found ? 0 : 1 }'
}

if [ "${1:-}" = "--list" ]; then
    table | awk -F'|' '{ gsub(/[ \t]+/, "", $1); print $1 }'
    exit 0
fi
if [ $# -ne 2 ]; then
    echo "usage: $0 TARGET SECONDS | --list" >&2
    exit 2
fi
target=$1
seconds=$2
case $seconds in
    ''|*[!0-9]*) echo "fuzz: SECONDS must be a whole number, got '$seconds'" >&2; exit 2 ;;
esac
if ! srcs=$(field "$target" 2); then
    echo "fuzz: unknown target '$target' (not in the table of $0)" >&2
    exit 2
fi
mods=$(field "$target" 3)
extra_libs=$(field "$target" 4)
fuzz_src=$top_srcdir/tests/fuzz/fuzz_$target.c
if [ ! -f "$fuzz_src" ]; then
    echo "fuzz: $target: $fuzz_src does not exist yet; skipped"
    exit 77
fi

out=$top_builddir/tests/fuzz/out/$target
mkdir -p "$out" || exit 1

# Resolve sources and include directories (each source's own directory, so that internal
# headers beside the .c files are found).
files=
incs="-I$top_srcdir/include -I$top_srcdir/runtime -I$top_builddir/runtime -I$top_builddir"
for s in $srcs; do
    case $s in
        @*) f=$top_builddir/${s#@} ;;
        *) f=$top_srcdir/$s ;;
    esac
    if [ ! -f "$f" ]; then
        echo "fuzz: $target: source $f is missing (fix the table in tests/fuzz/run.sh" \
             "or build the generated file first)" >&2
        exit 1
    fi
    files="$files $f"
    d=$(dirname "$f")
    case " $incs " in *" -I$d "*) ;; *) incs="$incs -I$d" ;; esac
done

pkg_flags=
if [ -n "$mods" ]; then
    if ! pkg_flags=$(pkg-config --cflags --libs $mods 2>&1); then
        echo "fuzz: $target: pkg-config $mods failed: $pkg_flags" >&2
        exit 1
    fi
fi

common="-std=c11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer -Wall $incs"

# Does a compiler accept these flags for a trivial fuzz target?
probe() {   # probe CC FLAGS...
    cc=$1; shift
    printf '%s\n' '#include <stddef.h>' '#include <stdint.h>' \
        'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);' \
        'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }' \
        > "$out/probe.c"
    extra=
    case " $* " in *fuzzer*) ;; *) extra=$top_srcdir/tests/fuzz/replay_main.c ;; esac
    "$cc" "$@" -o "$out/probe" "$out/probe.c" $extra >/dev/null 2>&1
    rc=$?
    rm -f "$out/probe" "$out/probe.c"
    return $rc
}

mode=replay
if [ "$FUZZ_CC" != no ] && [ -n "$FUZZ_CC" ] && command -v "$FUZZ_CC" >/dev/null 2>&1 &&
   probe "$FUZZ_CC" -fsanitize=fuzzer,address,undefined; then
    mode=libfuzzer
    cc=$FUZZ_CC
    san="-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined"
    main=
else
    cc=gcc
    command -v gcc >/dev/null 2>&1 || cc=cc
    san="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
    probe "$cc" $san || san=
    main=$top_srcdir/tests/fuzz/replay_main.c
fi

bin=$out/fuzz_$target
if ! "$cc" $common $san -o "$bin" "$fuzz_src" $main $files $pkg_flags $extra_libs \
        > "$out/build.log" 2>&1; then
    echo "fuzz: $target: building with $cc failed:" >&2
    cat "$out/build.log" >&2
    exit 1
fi

seeds=$top_srcdir/tests/fuzz/corpus/$target
if [ "$mode" = replay ]; then
    echo "fuzz: $target: NOTE: no clang with libFuzzer (FUZZ_CC=$FUZZ_CC); built with $cc" \
         "${san:+and sanitizers }and ONLY REPLAYED the seed corpus: nothing new was explored"
    if [ ! -d "$seeds" ]; then
        echo "fuzz: $target: no seed corpus at $seeds; nothing to replay"
        exit 0
    fi
    "$bin" "$seeds"
    rc=$?
    [ $rc -eq 0 ] || echo "fuzz: $target: FAILED replaying $seeds (exit $rc)" >&2
    [ $rc -eq 0 ] && exit 0 || exit 1
fi

# libFuzzer: work on a copy of the seeds; inputs it finds accumulate there between runs.
corpus=$out/corpus
mkdir -p "$corpus" "$out/artifacts" || exit 1
[ -d "$seeds" ] && cp -R "$seeds"/. "$corpus"/
dict=
[ -f "$top_srcdir/tests/fuzz/$target.dict" ] && dict=-dict=$top_srcdir/tests/fuzz/$target.dict
echo "fuzz: $target: libFuzzer for ${seconds}s ($cc), corpus $corpus"
"$bin" -max_total_time="$seconds" -rss_limit_mb=1024 -timeout=10 -print_final_stats=1 \
    -artifact_prefix="$out/artifacts/" $dict "$corpus" > "$out/fuzz.log" 2>&1
rc=$?
if [ $rc -ne 0 ]; then
    echo "fuzz: $target: FAILED (libFuzzer exit $rc); last lines of $out/fuzz.log:" >&2
    tail -n 60 "$out/fuzz.log" >&2
    for a in "$out"/artifacts/*; do
        [ -f "$a" ] && echo "fuzz: $target: reproduce with: $bin $a" >&2
    done
    exit 1
fi
grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|Done )' "$out/fuzz.log" |
    sed "s/^/fuzz: $target: /"
exit 0
