# scripts/local.mk — helper scripts shipped in the tarball.
dist_noinst_SCRIPTS += scripts/install-deps.sh scripts/arm-check.sh scripts/demo.sh scripts/make_models.py \
	scripts/train_lenet.py scripts/fmnist.py scripts/ort_run.js scripts/npy_compare.py
EXTRA_DIST += scripts/package.json scripts/package-lock.json
