#!/usr/bin/python3
"""onnx_models.py - small ONNX models for the importer's unit test (tests/unit/test_onnx.c).

    /usr/bin/python3 tests/models/onnx_models.py OUTDIR

Writes OUTDIR/NAME.onnx for every model below, built with onnx.helper (no torch, so it runs
in well under a second). Weights come from a seeded numpy generator: the files are the same
on every run. The C test checks the imported IR (folding, fusion, shapes, FLOPs) and runs
optimized and unoptimized graphs side by side.
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

RNG = np.random.default_rng(1234)


def rand(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def init(name, arr):
    return numpy_helper.from_array(np.asarray(arr), name)


def model(nodes, inputs, outputs, inits=(), opset=13, name="g"):
    graph = helper.make_graph(nodes, name, inputs, outputs, list(inits))
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                          producer_name="nnmesh-tests")
    m.ir_version = 7
    return m


def vi(name, shape, dtype=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, dtype, shape)


def bn_params(prefix, c):
    return [init(prefix + "_scale", RNG.uniform(0.5, 1.5, c).astype(np.float32)),
            init(prefix + "_bias", rand(c)),
            init(prefix + "_mean", rand(c)),
            init(prefix + "_var", RNG.uniform(0.5, 2.0, c).astype(np.float32))]


def bn_node(prefix, x, y):
    return helper.make_node("BatchNormalization",
                            [x, prefix + "_scale", prefix + "_bias", prefix + "_mean",
                             prefix + "_var"], [y], name=prefix, epsilon=1e-3)


def conv_bn_relu():
    """x[N,3,8,8] (symbolic batch) -> Conv 3x3 pad 1 -> BN -> Relu -> y[N,4,8,8]."""
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv1",
                              kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             bn_node("bn1", "c", "n"),
             helper.make_node("Relu", ["n"], ["y"], name="relu1")]
    inits = [init("w", rand(4, 3, 3, 3)), init("b", rand(4))] + bn_params("bn1", 4)
    return model(nodes, [vi("x", ["N", 3, 8, 8])], [vi("y", ["N", 4, 8, 8])], inits)


def gemm_bn_clip():
    """x[2,6] -> Gemm(transB) -> BN -> Clip(0, 6) -> y[2,5]; Gemm without bias."""
    nodes = [helper.make_node("Gemm", ["x", "w"], ["g"], name="fc", transB=1, alpha=0.5),
             bn_node("bn", "g", "n"),
             helper.make_node("Clip", ["n", "lo", "hi"], ["y"], name="relu6")]
    inits = [init("w", rand(5, 6)), init("lo", np.float32(0)), init("hi", np.float32(6))]
    inits += bn_params("bn", 5)
    return model(nodes, [vi("x", [2, 6])], [vi("y", [2, 5])], inits)


def convt_bn():
    """x[1,4,3,3] -> ConvTranspose(group 2, stride 2) -> BN -> y."""
    nodes = [helper.make_node("ConvTranspose", ["x", "w"], ["c"], name="up",
                              kernel_shape=[3, 3], strides=[2, 2], group=2),
             bn_node("bnt", "c", "y")]
    inits = [init("w", rand(4, 3, 3, 3))] + bn_params("bnt", 6)
    return model(nodes, [vi("x", [1, 4, 3, 3])], [vi("y", [1, 6, 7, 7])], inits)


def shared_bn():
    """Two convs share one weight; each is followed by its own BN."""
    nodes = [helper.make_node("Conv", ["x", "w"], ["ca"], name="conv_a", kernel_shape=[3, 3]),
             bn_node("bn_a", "ca", "ya"),
             helper.make_node("Conv", ["x", "w"], ["cb"], name="conv_b", kernel_shape=[3, 3]),
             bn_node("bn_b", "cb", "yb")]
    inits = [init("w", rand(2, 3, 3, 3))] + bn_params("bn_a", 2) + bn_params("bn_b", 2)
    return model(nodes, [vi("x", [1, 3, 5, 5])],
                 [vi("ya", [1, 2, 3, 3]), vi("yb", [1, 2, 3, 3])], inits)


def standalone_bn():
    """BN straight on a graph input: nothing to fold into, must run on its own."""
    nodes = [bn_node("bn0", "x", "y")]
    return model(nodes, [vi("x", [1, 3, 4, 4])], [vi("y", [1, 3, 4, 4])], bn_params("bn0", 3))


def bn_two_uses():
    """The conv output feeds the BN and a graph output: BN must not be folded."""
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", kernel_shape=[1, 1]),
             bn_node("bn", "c", "y")]
    inits = [init("w", rand(3, 3, 1, 1))] + bn_params("bn", 3)
    return model(nodes, [vi("x", [1, 3, 2, 2])], [vi("y", [1, 3, 2, 2]), vi("c", [1, 3, 2, 2])],
                 inits)


def grouped_conv():
    """x[1,4,6,6] -> Conv(W[6,2,3,3], group 2) -> y[1,6,4,4]; FLOPs 2*1*6*4*4*2*3*3."""
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], name="gconv", group=2,
                              kernel_shape=[3, 3])]
    return model(nodes, [vi("x", [1, 4, 6, 6])], [vi("y", [1, 6, 4, 4])],
                 [init("w", rand(6, 2, 3, 3))])


def reshape_chain():
    """x.view(x.size(0), -1) as torch exports it: Shape->Gather->Unsqueeze->Concat->Reshape."""
    nodes = [helper.make_node("Shape", ["x"], ["s"], name="shape0"),
             helper.make_node("Gather", ["s", "zero"], ["n"], name="gather0", axis=0),
             helper.make_node("Unsqueeze", ["n", "axes0"], ["n1"], name="unsq0"),
             helper.make_node("Concat", ["n1", "minus1"], ["shape"], name="concat0", axis=0),
             helper.make_node("Reshape", ["x", "shape"], ["r"], name="flat"),
             helper.make_node("Relu", ["r"], ["y"], name="relu")]
    inits = [init("zero", np.int64(0)), init("axes0", np.array([0], np.int64)),
             init("minus1", np.array([-1], np.int64))]
    return model(nodes, [vi("x", ["batch", 3, 4, 4])], [vi("y", ["batch", 48])], inits)


def constants():
    """Constant nodes in each form feed Add, Mul and Reshape."""
    c1 = helper.make_tensor("c1v", TensorProto.FLOAT, [1, 3, 1, 1], [1.0, 2.0, 3.0])
    nodes = [helper.make_node("Constant", [], ["c1"], name="k1", value=c1),
             helper.make_node("Constant", [], ["c2"], name="k2", value_float=2.0),
             helper.make_node("Constant", [], ["c3"], name="k3", value_ints=[1, 12]),
             helper.make_node("Add", ["x", "c1"], ["a"], name="add"),
             helper.make_node("Mul", ["a", "c2"], ["m"], name="mul"),
             helper.make_node("Reshape", ["m", "c3"], ["y"], name="reshape")]
    return model(nodes, [vi("x", [1, 3, 2, 2])], [vi("y", [1, 12])])


def typed_init():
    """Initializers in typed fields (float_data, int64_data, int32_data) rather than raw."""
    w = helper.make_tensor("w", TensorProto.FLOAT, [3, 4], [float(i) for i in range(12)])
    c = helper.make_tensor("c", TensorProto.FLOAT, [4], [0.5, -0.5, 1.0, -1.0])
    shape = helper.make_tensor("shape", TensorProto.INT64, [2], [4, 2])
    idx = helper.make_tensor("idx", TensorProto.INT32, [2], [3, 0])
    assert not w.raw_data and not shape.raw_data
    nodes = [helper.make_node("Gemm", ["x", "w", "c"], ["g"], name="fc"),
             helper.make_node("Reshape", ["g", "shape"], ["r"], name="reshape"),
             helper.make_node("Gather", ["r", "idx"], ["y"], name="gather", axis=0)]
    return model(nodes, [vi("x", [2, 3])], [vi("y", [2, 2])], [w, c, shape, idx])


def max3():
    """Variadic Max with three inputs and Min with one."""
    nodes = [helper.make_node("Max", ["a", "b", "c"], ["m"], name="max3"),
             helper.make_node("Min", ["m"], ["y"], name="min1")]
    return model(nodes, [vi("a", [2, 3]), vi("b", [2, 3]), vi("c", [1, 3])], [vi("y", [2, 3])])


def unsupported_ops():
    """Four unsupported nodes of three distinct types, the first a NonMaxSuppression."""
    nodes = [helper.make_node("Relu", ["boxes"], ["b1"], name="ok"),
             helper.make_node("NonMaxSuppression", ["b1", "scores"], ["sel"], name="nms1"),
             helper.make_node("TopK", ["scores", "k"], ["v", "i"], name="topk"),
             helper.make_node("NonMaxSuppression", ["boxes", "scores"], ["sel2"], name="nms2"),
             helper.make_node("FusedConv", ["boxes"], ["fc"], name="fused",
                              domain="com.microsoft")]
    m = model(nodes, [vi("boxes", [1, 4, 4]), vi("scores", [1, 1, 4]),
                      vi("k", [1], TensorProto.INT64)],
              [vi("sel", [1, 3], TensorProto.INT64), vi("v", [1, 1, 1]),
               vi("sel2", [1, 3], TensorProto.INT64), vi("fc", [1, 4, 4])], [])
    m.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return m


def opset9_slice():
    """Opset-9 forms: Slice with attributes, Softmax over the flattened trailing dims."""
    nodes = [helper.make_node("Slice", ["x"], ["s"], name="slice", starts=[0, 1], ends=[1, 3],
                              axes=[0, 1]),
             helper.make_node("Softmax", ["s"], ["y"], name="softmax")]
    return model(nodes, [vi("x", [2, 4, 3, 3])], [vi("y", [1, 2, 3, 3])], opset=9)


def opset10_resize():
    """Resize-10 takes (X, scales); the importer rewrites it to the opset-11 order."""
    nodes = [helper.make_node("Resize", ["x", "scales"], ["y"], name="resize", mode="nearest")]
    inits = [init("scales", np.array([1, 1, 2, 2], np.float32))]
    return model(nodes, [vi("x", [1, 2, 3, 3])], [vi("y", [1, 2, 6, 6])], inits, opset=10)


MODELS = [conv_bn_relu, gemm_bn_clip, convt_bn, shared_bn, standalone_bn, bn_two_uses,
          grouped_conv, reshape_chain, constants, typed_init, max3, unsupported_ops,
          opset9_slice, opset10_resize]


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: onnx_models.py OUTDIR")
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for f in MODELS:
        path = os.path.join(out, f.__name__ + ".onnx")
        tmp = path + ".tmp"
        onnx.save(f(), tmp)
        os.replace(tmp, path)


if __name__ == "__main__":
    main()
