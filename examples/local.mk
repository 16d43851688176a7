# examples/local.mk — bundled models, sample inputs, and the demo target.
EXTRA_DIST += examples/models/lenet5-fmnist.onnx examples/models/lenet5-fmnist-b100.onnx \
	examples/models/sample-0-ankle-boot.npy examples/models/sample-1-pullover.npy \
	examples/models/sample-2-trouser.npy

demo: apps/nnmesh
	NNMESH=apps/nnmesh MODELS=$(srcdir)/examples/models $(SHELL) $(srcdir)/scripts/demo.sh
.PHONY: demo
