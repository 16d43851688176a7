# tests/npy.mk — tests owned by the npy work; included from tests/local.mk.
# The .npy unit test and the fuzzing entry point: tests/fuzz.sh runs every target listed in
# the table of tests/fuzz/run.sh whose tests/fuzz/fuzz_TARGET.c exists. A new target adds its
# line to that table and its fuzz_TARGET.c (plus dictionary, if any) to EXTRA_DIST in its own
# fragment; every seed corpus is distributed through the tests/fuzz/corpus directory.

check_PROGRAMS += tests/unit/test_npy
TESTS += tests/unit/test_npy
tests_unit_test_npy_SOURCES = tests/unit/test_npy.c
tests_unit_test_npy_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_npy_LDADD = $(TEST_LIBS)

TESTS += tests/fuzz.sh
EXTRA_DIST += tests/fuzz.sh tests/fuzz/run.sh tests/fuzz/replay_main.c tests/fuzz/README.md \
	tests/fuzz/corpus tests/fuzz/fuzz_npy.c tests/fuzz/npy.dict tests/fuzz/gen_corpus_npy.py

# Fuzzer builds, working corpora and crash artifacts live under tests/fuzz/out.
clean-local: clean-fuzz-out
clean-fuzz-out:
	-rm -rf tests/fuzz/out
.PHONY: clean-fuzz-out
