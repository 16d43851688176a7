# tests/ref.mk — tests owned by the ref work; included from tests/local.mk.
# The reference kernels (runtime/kernels_ref.c) against hand-computed ONNX values, naive
# oracles and each other across layouts.
check_PROGRAMS += tests/unit/test_kernels_ref
TESTS += tests/unit/test_kernels_ref
tests_unit_test_kernels_ref_SOURCES = tests/unit/test_kernels_ref.c
tests_unit_test_kernels_ref_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_kernels_ref_LDADD = $(TEST_LIBS)
