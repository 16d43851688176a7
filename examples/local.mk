# examples/local.mk — bundled models, sample inputs, and the demo target.
EXTRA_DIST += examples/models/lenet5-fmnist.onnx examples/models/lenet5-fmnist-b100.onnx \
	examples/models/sample-0-ankle-boot.npy examples/models/sample-1-pullover.npy \
	examples/models/sample-2-trouser.npy

demo: apps/nnmesh apps/nnmeshd
	NNMESH=$(abs_builddir)/apps/nnmesh NNMESHD=$(abs_builddir)/apps/nnmeshd $(SHELL) $(srcdir)/scripts/demo.sh
.PHONY: demo

# The example meshes (mesh-up.sh / mesh-down.sh; tests/mesh_*.sh run them).
EXTRA_DIST += examples/README.md examples/mesh-up.sh examples/mesh-down.sh \
	examples/mosquitto.acl examples/broker.conf.in examples/bridge.conf.in \
	examples/front.conf.in examples/node.conf.in examples/shell.conf.in
