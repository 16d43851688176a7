# tests/onnx.mk — tests owned by the onnx work; included from tests/local.mk.

# ONNX import and the import-time passes; models written at test time by onnx_models.py.
check_PROGRAMS += tests/unit/test_onnx
TESTS += tests/unit/test_onnx
tests_unit_test_onnx_SOURCES = tests/unit/test_onnx.c
tests_unit_test_onnx_CFLAGS = $(TEST_CFLAGS) $(PROTOBUFC_CFLAGS) \
	-DNNM_TOP_SRCDIR='"$(abs_top_srcdir)"' -DNNM_SYS_PYTHON='"$(SYS_PYTHON)"'
tests_unit_test_onnx_LDADD = $(TEST_LIBS)
EXTRA_DIST += tests/models/onnx_models.py
CLEANFILES += tests/unit/onnx_models.d/*.onnx

# libonnx-testdata node conformance cases for every supported op.
check_PROGRAMS += tests/tools/onnx_conformance
tests_tools_onnx_conformance_SOURCES = tests/tools/onnx_conformance.c
tests_tools_onnx_conformance_CFLAGS = $(TEST_CFLAGS) $(PROTOBUFC_CFLAGS)
tests_tools_onnx_conformance_LDADD = $(TEST_LIBS)
TESTS += tests/conformance.sh
EXTRA_DIST += tests/conformance.sh

# Fuzz target, built and run by tests/fuzz/run.sh (seeds: tests/fuzz/corpus/onnx/, copies of
# conv_bn_relu, reshape_chain, constants, typed_init and opset10_resize from onnx_models.py).
EXTRA_DIST += tests/fuzz/fuzz_onnx.c
