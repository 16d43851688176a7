# tests/mesh.mk — the mesh member (runtime/node.c, nnmeshd, nnmesh peers/ctl) and the example
# meshes of examples/ against real mosquitto brokers on free loopback ports; included from
# tests/local.mk.
check_PROGRAMS += tests/unit/test_node
TESTS += tests/unit/test_node
tests_unit_test_node_SOURCES = tests/unit/test_node.c tests/support/broker.c tests/support/broker.h
tests_unit_test_node_CFLAGS = $(TEST_CFLAGS) -I$(top_srcdir)/tests/support
tests_unit_test_node_LDADD = $(TEST_LIBS)

TESTS += tests/mesh_single.sh tests/mesh_bridged.sh tests/mesh_recipes.sh
EXTRA_DIST += tests/mesh_single.sh tests/mesh_bridged.sh tests/mesh_recipes.sh tests/mesh_lib.sh
