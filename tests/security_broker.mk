# tests/security_broker.mk — issue 6's broker-level attacks on the hardened example mesh
# (examples/mesh-up.sh: one broker account per node, the user name as client id on the nodes'
# brokers, a front broker for anonymous clients, max_packet_size): topic spoofing (ACL, then
# the nodes' own checks), client-id takeover, and an oversized-message flood with honest
# requests' p99 measured against a baseline in the same run. Included from tests/local.mk.
TESTS += tests/security/topic_spoof.sh tests/security/clientid_takeover.sh tests/security/flood.sh
EXTRA_DIST += tests/security/topic_spoof.sh tests/security/clientid_takeover.sh \
	tests/security/flood.sh tests/security/broker_lib.sh tests/security/broker_tool.py
