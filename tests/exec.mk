# tests/exec.mk — executor, slicing and whole-model tests (the lead's).
noinst_PROGRAMS += tests/tools/slice_check
tests_tools_slice_check_SOURCES = tests/tools/slice_check.c
tests_tools_slice_check_LDADD = libnnmesh.la $(NNM_DEP_LIBS)

TESTS += tests/cli_errors.sh tests/models.sh tests/slicing.sh tests/lenet.sh
EXTRA_DIST += tests/lib.sh tests/cli_errors.sh tests/models.sh tests/slicing.sh tests/lenet.sh

# Models exported by scripts/make_models.py are cached in the build tree.
clean-local: clean-model-cache
clean-model-cache:
	rm -rf tests/model-cache
.PHONY: clean-model-cache

check_PROGRAMS += tests/unit/test_worker
TESTS += tests/unit/test_worker
tests_unit_test_worker_SOURCES = tests/unit/test_worker.c
tests_unit_test_worker_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_worker_LDADD = $(TEST_LIBS)

check_PROGRAMS += tests/unit/test_coord
TESTS += tests/unit/test_coord
tests_unit_test_coord_SOURCES = tests/unit/test_coord.c tests/unit/test_link_util.h $(MQTT_TEST_SUPPORT)
tests_unit_test_coord_CFLAGS = $(TEST_CFLAGS) -I$(top_srcdir)/tests/support
tests_unit_test_coord_LDADD = $(TEST_LIBS) -lpthread
