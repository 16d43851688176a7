# docs/local.mk — documentation shipped in the tarball (PROTOCOL, CONFIG and SCHEDULER are
# added by the fragments of the tests that check them).
EXTRA_DIST += docs/MODELS.md docs/ARCHITECTURE.md docs/BENCH_SINGLE.md docs/BENCH_WIRE.md \
	docs/BENCH_DIST.md docs/RELIABILITY.md
