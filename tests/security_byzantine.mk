# tests/security_byzantine.mk — issue 6's byzantine peer: tests/security/byzantine.sh starts a
# 3-node example mesh whose n3 returns wrong outputs (NNMESH_FAILPOINTS=corrupt-results) and
# shows that spot-check re-execution ([scheduler] spot_check) catches and excludes it, while
# a coordinator that does not check passes the wrong numbers on. The in-process version is in
# tests/unit/test_coord.c. Included from tests/local.mk.
TESTS += tests/security/byzantine.sh
EXTRA_DIST += tests/security/byzantine.sh
