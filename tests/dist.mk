# tests/dist.mk — issue 5's functional acceptance on 4-node example meshes
# (examples/mesh-up.sh, real mosquitto on loopback): LeNet, MobileNetV2 and ResNet-18 split
# across the mesh with a model-less peer, via nnmesh infer and mosquitto_pub/sub
# (dist_models.sh). Its fault scenarios (kill -9 of a peer, a SIGSTOPped straggler, the
# broker killed) are in tests/fault/ (tests/fault_proc.mk); dist_lib.sh serves both.
# Included from tests/local.mk.
TESTS += tests/dist_models.sh
EXTRA_DIST += tests/dist_models.sh tests/dist_lib.sh
