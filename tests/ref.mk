# tests/ref.mk — tests owned by the ref work; included from tests/local.mk.
