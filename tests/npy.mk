# tests/npy.mk — tests owned by the npy work; included from tests/local.mk.
