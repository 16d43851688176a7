# tests/fault_proc.mk — issue 6's process fault scenarios (tests/fault/, each on an
# examples/mesh-up.sh mesh with real mosquitto on loopback): kill -9 of a peer mid-stream
# (peer_kill.sh; NNM_DIST_ROUNDS=50 for the full run, 10 by default), a SIGSTOPped straggler
# (straggler.sh), SIGKILL of the broker mid-stream and its restart on the same port
# (broker_kill.sh), a node's clock 300 s ahead and behind under libfaketime (clock_skew.sh).
# Included from tests/local.mk.
TESTS += tests/fault/peer_kill.sh tests/fault/straggler.sh tests/fault/broker_kill.sh \
	tests/fault/clock_skew.sh
EXTRA_DIST += tests/fault/peer_kill.sh tests/fault/straggler.sh tests/fault/broker_kill.sh \
	tests/fault/clock_skew.sh
