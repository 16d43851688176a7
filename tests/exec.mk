# tests/exec.mk — tests owned by the exec work; included from tests/local.mk.
