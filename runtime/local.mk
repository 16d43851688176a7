# runtime/local.mk — the engine: tensors, .npy, ONNX import, graph IR, kernels, executor.
noinst_LTLIBRARIES += runtime/libnnm_runtime.la
libnnmesh_la_LIBADD += runtime/libnnm_runtime.la

# The ONNX parser is generated at build time from the system's onnx.proto (libonnx-dev).
runtime/onnx.pb-c.c runtime/onnx.pb-c.h: $(ONNX_PROTO)
	$(AM_V_GEN)$(MKDIR_P) runtime && \
	$(PROTOC_C) --c_out=runtime --proto_path=$(dir $(ONNX_PROTO)) $(ONNX_PROTO)
BUILT_SOURCES += runtime/onnx.pb-c.c runtime/onnx.pb-c.h
CLEANFILES += runtime/onnx.pb-c.c runtime/onnx.pb-c.h
nodist_runtime_libnnm_runtime_la_SOURCES = runtime/onnx.pb-c.c runtime/onnx.pb-c.h

runtime_libnnm_runtime_la_CFLAGS = $(AM_CFLAGS) $(PROTOBUFC_CFLAGS) $(SODIUM_CFLAGS) $(INIH_CFLAGS)
runtime_libnnm_runtime_la_SOURCES = \
	runtime/ir.h runtime/kernels.h \
	runtime/diag.c runtime/tensor.c runtime/graph.c runtime/npy.c \
	runtime/onnx.c runtime/infer.c runtime/passes.c \
	runtime/kernels_ref.c runtime/kernels_xnn.c \
	runtime/exec.c runtime/slice.c runtime/layout.c runtime/layout.h runtime/onnx_write.c runtime/worker.c \
	runtime/config.c runtime/capacity.c \
	runtime/node.c

nnmeshinclude_HEADERS += include/nnmesh/err.h include/nnmesh/tensor.h include/nnmesh/npy.h \
	include/nnmesh/graph.h include/nnmesh/exec.h \
	include/nnmesh/config.h include/nnmesh/capacity.h include/nnmesh/worker.h \
	include/nnmesh/node.h
