# tests/wire.mk — tests owned by the wire work; included from tests/local.mk.
