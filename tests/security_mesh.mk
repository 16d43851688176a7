# tests/security_mesh.mk — issue 6's attack suite, part 1: one shell test per attack on a real
# example mesh (examples/mesh-up.sh: real mosquitto, real nnmeshd), each showing the attack
# was really attempted (a witness subscriber or tcpdump saw it), the node's log line or stats
# counter that reports it, that the nodes keep serving, and that honest requests still give
# the single-node output (nnmesh run). tests/security/forge_advert signs the forged adverts.
# Included from tests/local.mk.
check_PROGRAMS += tests/security/forge_advert
tests_security_forge_advert_SOURCES = tests/security/forge_advert.c
tests_security_forge_advert_LDADD = libnnmesh.la $(NNM_DEP_LIBS)
TESTS += tests/security/unenrolled.sh tests/security/forged_advert.sh \
	tests/security/tampered_tensor.sh tests/security/replayed_result.sh \
	tests/security/inflated_capacity.sh tests/security/eavesdrop.sh
EXTRA_DIST += tests/security/unenrolled.sh tests/security/forged_advert.sh \
	tests/security/tampered_tensor.sh tests/security/replayed_result.sh \
	tests/security/inflated_capacity.sh tests/security/eavesdrop.sh \
	tests/security/sec_lib.sh tests/security/sec_frames.py
