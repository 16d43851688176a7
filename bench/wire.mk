# bench/wire.mk — the wire benchmark (issue 3); included from bench/local.mk. A program built
# with `make`, never run by `make check`: bench/wire.sh runs it and writes docs/BENCH_WIRE.md.
# It reuses the tests' broker helper to start a private mosquitto on a free loopback port.
noinst_PROGRAMS += bench/wire_bench
bench_wire_bench_SOURCES = bench/wire_bench.c tests/support/broker.c tests/support/broker.h
bench_wire_bench_CFLAGS = $(AM_CFLAGS) $(SODIUM_CFLAGS) -I$(top_srcdir)/tests/support
bench_wire_bench_LDADD = libnnmesh.la $(NNM_DEP_LIBS)
EXTRA_DIST += bench/wire.sh
