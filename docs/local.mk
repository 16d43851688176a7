# docs/local.mk — documentation shipped in the tarball.
EXTRA_DIST += docs/MODELS.md
