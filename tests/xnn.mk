# tests/xnn.mk — tests owned by the xnn work; included from tests/local.mk.
