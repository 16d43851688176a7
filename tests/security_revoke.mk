# tests/security_revoke.mk — issue 6, revocation within 10 s: tests/security/revoke.sh revokes
# a node's key in the shared trust file of a 3-node example mesh (examples/mesh-up.sh, real
# mosquitto and nnmeshd) and checks that the nodes notice the file by themselves (and on
# SIGHUP), evict the node from their peers, drop and count its frames on the link, and keep
# answering requests correctly without it; then admits it again. The link part is unit-tested
# in tests/unit/test_link_security (nnm_link_set_trust). Included from tests/local.mk.
TESTS += tests/security/revoke.sh
EXTRA_DIST += tests/security/revoke.sh
