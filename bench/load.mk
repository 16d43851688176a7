# bench/load.mk — the load and soak harness (issue 6); included from bench/local.mk. A program
# built with `make`, never run by `make check`: bench/load.sh (highest sustained request rate
# under a p99 target) and bench/soak.sh (50-node membership soak, RSS drift under load) run it
# and print the figures that docs/BENCH_LOAD.md reports.
noinst_PROGRAMS += bench/load
bench_load_SOURCES = bench/load.c
bench_load_CFLAGS = $(AM_CFLAGS) $(SODIUM_CFLAGS)
bench_load_LDADD = libnnmesh.la $(NNM_DEP_LIBS) -lm
EXTRA_DIST += bench/load.sh bench/soak.sh docs/BENCH_LOAD.md
