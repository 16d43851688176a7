# bench/dist.mk — the distributed benchmark (issue 5); included from bench/local.mk. A program
# built with `make`, never run by `make check`: bench/dist.sh starts a broker and emulated
# boards (CPU-quota cgroups, rate-limited network namespaces), runs it, and writes
# docs/BENCH_DIST.md.
noinst_PROGRAMS += bench/dist_client
bench_dist_client_SOURCES = bench/dist_client.c
bench_dist_client_CFLAGS = $(AM_CFLAGS) $(SODIUM_CFLAGS)
bench_dist_client_LDADD = libnnmesh.la $(NNM_DEP_LIBS) -lm
EXTRA_DIST += bench/dist.sh
