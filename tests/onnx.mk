# tests/onnx.mk — tests owned by the onnx work; included from tests/local.mk.
