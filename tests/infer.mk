# tests/infer.mk — tests owned by the infer work; included from tests/local.mk.
check_PROGRAMS += tests/unit/test_infer
TESTS += tests/unit/test_infer
tests_unit_test_infer_SOURCES = tests/unit/test_infer.c
tests_unit_test_infer_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_infer_LDADD = $(TEST_LIBS)
