# tests/node.mk — the node's config file, capacity measurement, nnmeshd and key/trust
# commands; included from tests/local.mk.
check_PROGRAMS += tests/unit/test_config tests/unit/test_capacity
TESTS += tests/unit/test_config tests/unit/test_capacity

tests_unit_test_config_SOURCES = tests/unit/test_config.c
tests_unit_test_config_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_config_LDADD = $(TEST_LIBS)

tests_unit_test_capacity_SOURCES = tests/unit/test_capacity.c
tests_unit_test_capacity_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_capacity_LDADD = $(TEST_LIBS)

TESTS += tests/config_errors.sh tests/keys.sh
EXTRA_DIST += tests/config_errors.sh tests/keys.sh docs/CONFIG.md

# A burst of shell requests past the queue: each answered once (dist_lib.sh meshes).
TESTS += tests/shell_burst.sh
EXTRA_DIST += tests/shell_burst.sh

# The client commands log in to a broker that refuses anonymous clients.
TESTS += tests/apps_login.sh
EXTRA_DIST += tests/apps_login.sh
