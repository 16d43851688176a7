# tests/xnn.mk — tests owned by the xnn work; included from tests/local.mk.
# The XNNPACK backend compared op by op with the reference kernels.
check_PROGRAMS += tests/unit/test_kernels_xnn
TESTS += tests/unit/test_kernels_xnn
tests_unit_test_kernels_xnn_SOURCES = tests/unit/test_kernels_xnn.c
tests_unit_test_kernels_xnn_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_kernels_xnn_LDADD = $(TEST_LIBS)
