# tests/dist.mk — issue 5's functional and fault acceptance on 4-node example meshes
# (examples/mesh-up.sh, real mosquitto on loopback): LeNet, MobileNetV2 and ResNet-18 split
# across the mesh with a model-less peer, via nnmesh infer and mosquitto_pub/sub
# (dist_models.sh); kill -9 of a peer mid-stream, a SIGSTOPped straggler, a broker restart
# (dist_faults.sh; NNM_DIST_ROUNDS=50 for the full run of its kill rounds, 10 by default).
# Included from tests/local.mk.
TESTS += tests/dist_models.sh tests/dist_faults.sh
EXTRA_DIST += tests/dist_models.sh tests/dist_faults.sh tests/dist_lib.sh
