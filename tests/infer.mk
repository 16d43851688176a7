# tests/infer.mk — tests owned by the infer work; included from tests/local.mk.
