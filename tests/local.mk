# tests/local.mk — cmocka unit tests (one binary per unit), shell integration tests, fuzz.
TEST_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS) -I$(top_srcdir)/runtime
TEST_LIBS = libnnmesh.la $(NNM_DEP_LIBS) $(CMOCKA_LIBS)
include tests/npy.mk
include tests/ref.mk
include tests/xnn.mk
include tests/onnx.mk
include tests/infer.mk
include tests/exec.mk
include tests/crypto.mk
include tests/wire.mk
include tests/mqtt.mk
include tests/node.mk
include tests/sched.mk
include tests/mesh.mk
include tests/dist.mk
include tests/fault_net.mk
include tests/fault_proc.mk
include tests/security_mesh.mk
include tests/security_revoke.mk
include tests/security_byzantine.mk
include tests/security_broker.mk
