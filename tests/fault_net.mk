# tests/fault_net.mk — network faults through a userspace link impairment proxy (the test
# machines' kernel has no netem): tests/tools/impair (delay + jitter, bandwidth, stalls, cuts,
# connection and byte counts; see impair --help), its self-test, and scenarios on 3-node
# example meshes (examples/mesh-up.sh) with one node's broker link, or the bridge between two
# brokers, through the proxy: 500 ms one-way delay (latency_500ms.sh), 1 Mbit/s to a
# model-less peer (bandwidth_1mbit.sh), a 30 s link cut (link_cut.sh; NNM_CUT_S), a 15 s
# bridge cut (bridge_cut.sh; NNM_BRIDGE_CUT_S). Included from tests/local.mk.
check_PROGRAMS += tests/tools/impair
tests_tools_impair_SOURCES = tests/tools/impair.c
FAULT_NET_TESTS = tests/fault/impair_selftest.sh tests/fault/latency_500ms.sh \
	tests/fault/bandwidth_1mbit.sh tests/fault/link_cut.sh tests/fault/bridge_cut.sh
TESTS += $(FAULT_NET_TESTS)
EXTRA_DIST += $(FAULT_NET_TESTS) tests/fault/net_lib.sh
