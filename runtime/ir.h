/* runtime/ir.h — the graph IR shared by ONNX import, shape inference, rewriting passes,
 * kernels and the executor. Internal to libnnmesh (the public face is nnmesh/graph.h).
 *
 * A graph is a list of values (tensors: graph inputs, constants, intermediates) and a list
 * of nodes in topological order. Every value has a static dtype and shape after
 * ir__infer(); dynamic shapes are not supported (symbolic input dims are fixed at import).
 *
 * Attributes come in two stages:
 *   raw:        as imported (ONNX attribute values; parameters that ONNX passes as inputs,
 *               e.g. Reshape's shape or Slice's starts, are still inputs);
 *   normalized: after ir__infer(): every parameter input that is constant has been read into
 *               nnm_attrs (and the input dropped from the node: n_in shrinks to the data
 *               inputs listed below), negative axes made non-negative, auto_pad resolved into
 *               pads, defaults filled in. Kernels read normalized attributes only.
 * The per-op contract for normalized attributes is written next to each NNM_OP_ below.
 *
 * Raw attributes, as runtime/onnx.c stores them (defaults are those of ONNX; ir__node_add
 * presets group = 1, alpha = beta = 1, strides = dilations = 1):
 *   Conv/ConvTranspose/MaxPool/AveragePool: kernel_shape -> a.kernel, strides, dilations,
 *     pads (ONNX order [x1_begin, x2_begin, x1_end, x2_end] -> a.pads[4] = {top, left,
 *     bottom, right}; 1-D ops: H = 1, the one dim goes to index 1 (W) and the node's
 *     a.spatial_1d = 1; the values stay 3-D [N, C, L] and kernels view them as
 *     [N, C, 1, L], weights [M, C/g, k] as [M, C/g, 1, k]), auto_pad -> a.auto_pad, group, output_padding -> a.out_pad,
 *     output_shape -> a.out_shape_attr, ceil_mode, count_include_pad. Missing kernel_shape
 *     on Conv is taken from W by inference.
 *   Gemm: alpha, beta, transA -> trans_a, transB -> trans_b.
 *   LeakyRelu: alpha (default 0.01). HardSigmoid: alpha (0.2), beta (0.5). Elu not supported.
 *   Clip (opset < 11): min/max attributes -> act_min/act_max; (>= 11): inputs 1, 2.
 *     onnx.c presets act_min = -INFINITY, act_max = +INFINITY.
 *   Softmax: axis (default 1 before opset 13, -1 from 13); a.legacy_2d = opset < 13.
 *   BatchNormalization: epsilon (1e-5).
 *   Concat/Split/Gather/Flatten: axis (Flatten default 1, others 0). Split: attribute split
 *     (opset < 13) -> a.ints; from 13 it is input 1.
 *   Transpose: perm -> a.ints (absent: reverse).
 *   Reshape (opset < 5): shape attribute -> a.ints; otherwise input 1. allowzero.
 *   Squeeze/Unsqueeze (opset < 13): axes -> a.ints; from 13 input 1.
 *   Slice (opset < 10): starts -> a.ints3, ends -> a.ints2, axes -> a.ints; from 10 inputs
 *     1..4 (starts, ends, axes, steps).
 *   Pad (opset < 11): pads -> a.ints, value -> a.pad_value; from 11 inputs 1 (pads), 2
 *     (constant_value); mode -> a.pad_mode.
 *   ReduceMean/ReduceMax: axes -> a.ints (absent: all), keepdims (default 1).
 *   Cast: to -> a.to (ONNX TensorProto type mapped to nnm_dtype).
 *   Resize: mode, coordinate_transformation_mode, nearest_mode, cubic_coeff_a; inputs
 *     roi (1), scales (2), sizes (3) as in ONNX (opset 10: scales is input 1; onnx.c
 *     rewrites opset-10 Resize and Upsample-free models to the opset-11 input order).
 *   Constant: value / value_float / value_floats / value_int / value_ints become a constant
 *     value at import (no node). ConstantOfShape: value -> a.pad_value (float) and a.to
 *     (its dtype); the node is kept until inference folds it.
 *   Dropout: ratio ignored (inference); a mask output, if requested, is all true.
 */
#ifndef NNM_RUNTIME_IR_H
#define NNM_RUNTIME_IR_H

#include <stdint.h>
#include <stddef.h>

#include "nnmesh/err.h"
#include "nnmesh/tensor.h"

/* Ops. Data inputs after normalization are listed; (opt) may be -1. Layout-sensitive ops
 * carry a.layout: NNM_IR_NCHW as in ONNX, or NNM_IR_NHWC after the layout pass. */
typedef enum nnm_op {
    NNM_OP_INVALID = 0,
    /* in: X, W, B(opt). W is [M, C/group, kH, kW] (OIHW) in both layouts.
     * a.kernel, a.strides, a.dilations, a.pads[4] = {top, left, bottom, right}, a.group,
     * fused clamp a.act (a.act_min, a.act_max). 1-D convs are imported as 2-D with H = 1. */
    NNM_OP_CONV,
    /* in: X, W, B(opt). W is [C, M/group, kH, kW] (IOHW). Same attrs plus a.out_pad[2]. */
    NNM_OP_CONV_TRANSPOSE,
    /* in: A, B, C(opt). a.alpha, a.beta, a.trans_a, a.trans_b, fused clamp. */
    NNM_OP_GEMM,
    /* in: A, B. numpy matmul semantics with batch broadcasting; fused clamp. */
    NNM_OP_MATMUL,
    /* Binary elementwise, numpy broadcasting. in: A, B. ADD may carry a fused clamp. */
    NNM_OP_ADD, NNM_OP_SUB, NNM_OP_MUL, NNM_OP_DIV, NNM_OP_POW, NNM_OP_MAX, NNM_OP_MIN,
    /* Unary elementwise. in: X. */
    NNM_OP_SQRT, NNM_OP_EXP, NNM_OP_LOG, NNM_OP_ERF, NNM_OP_RELU, NNM_OP_SIGMOID,
    NNM_OP_TANH, NNM_OP_HARD_SWISH,
    NNM_OP_LEAKY_RELU,   /* a.alpha */
    NNM_OP_CLIP,         /* a.act_min, a.act_max (-inf/+inf when absent) */
    NNM_OP_HARD_SIGMOID, /* a.alpha, a.beta */
    /* in: X. a.axis (>= 0). a.legacy_2d: opset < 13 semantics, softmax over the flattened
     * dims [axis, ndim) instead of the one axis. */
    NNM_OP_SOFTMAX,
    /* Pools. in: X. a.kernel, a.strides, a.dilations, a.pads, a.ceil_mode (already applied
     * to the output shape), a.count_include_pad (AVGPOOL), a.layout. */
    NNM_OP_MAXPOOL, NNM_OP_AVGPOOL,
    NNM_OP_GLOBAL_AVGPOOL, NNM_OP_GLOBAL_MAXPOOL,    /* in: X; a.layout */
    /* in: X, scale, B, mean, var. a.epsilon. Folded into a preceding Conv/Gemm at import
     * when possible; otherwise run as is (channel axis 1, or 3 for NHWC layout). */
    NNM_OP_BATCHNORM,
    /* Pure data movement; output shape fully determined by inference, kernels copy bytes.
     * FLATTEN, RESHAPE, SQUEEZE, UNSQUEEZE, IDENTITY, DROPOUT: in: X (the rest dropped). */
    NNM_OP_FLATTEN, NNM_OP_RESHAPE, NNM_OP_SQUEEZE, NNM_OP_UNSQUEEZE, NNM_OP_IDENTITY,
    NNM_OP_DROPOUT,
    NNM_OP_TRANSPOSE,    /* in: X. a.perm[ndim] complete */
    NNM_OP_CONCAT,       /* in: X1..Xn (any n >= 1). a.axis >= 0 */
    NNM_OP_SPLIT,        /* in: X; n_out outputs. a.axis >= 0; sizes from the output shapes */
    /* in: X. Normalized per dimension d < ndim: a.starts[d] (first index, clamped),
     * a.steps[d] (non-zero); the count is the output shape. */
    NNM_OP_SLICE,
    /* in: X. a.pads[2*ndim] as ONNX: begins then ends (may be negative = crop),
     * a.pad_mode (NNM_PAD_CONSTANT/REFLECT/EDGE), a.pad_value. */
    NNM_OP_PAD,
    NNM_OP_GATHER,       /* in: X, indices (int32/int64, may be negative). a.axis >= 0 */
    NNM_OP_SHAPE,        /* in: X -> int64 [ndim]. Always folded (static shapes). */
    NNM_OP_CONSTANT,     /* no inputs; folded into a constant value at import */
    NNM_OP_CONSTANT_OF_SHAPE, /* folded at import */
    NNM_OP_CAST,         /* in: X. a.to (nnm_dtype) */
    /* in: X. a.resize_mode (NNM_RESIZE_NEAREST/LINEAR), a.coord_mode, a.nearest_mode,
     * a.scales[ndim] (the scale used for coordinate mapping: given scales, or out/in). */
    NNM_OP_RESIZE,
    /* in: X. a.axes_mask (bit d set = reduce dim d), a.keepdims. */
    NNM_OP_REDUCE_MEAN, NNM_OP_REDUCE_MAX,
    NNM_OP__COUNT
} nnm_op;

enum { NNM_IR_NCHW = 0, NNM_IR_NHWC = 1 };
enum { NNM_AUTOPAD_NOTSET = 0, NNM_AUTOPAD_SAME_UPPER, NNM_AUTOPAD_SAME_LOWER, NNM_AUTOPAD_VALID };
enum { NNM_PAD_CONSTANT = 0, NNM_PAD_REFLECT, NNM_PAD_EDGE };
enum { NNM_RESIZE_NEAREST = 0, NNM_RESIZE_LINEAR };
enum {
    NNM_COORD_HALF_PIXEL = 0, NNM_COORD_ASYMMETRIC, NNM_COORD_PYTORCH_HALF_PIXEL,
    NNM_COORD_ALIGN_CORNERS, NNM_COORD_TF_HALF_PIXEL_FOR_NN
};
enum {
    NNM_NEAREST_ROUND_PREFER_FLOOR = 0, NNM_NEAREST_ROUND_PREFER_CEIL, NNM_NEAREST_FLOOR,
    NNM_NEAREST_CEIL
};

typedef struct nnm_attrs {
    int layout;                 /* NNM_IR_* for conv, pools, batchnorm */
    int spatial_1d;             /* imported from a 1-D conv/pool: H = 1 was inserted */
    int kernel[2], strides[2], dilations[2];
    int pads[2 * NNM_MAX_DIMS]; /* conv/pool: {top, left, bottom, right}; PAD: 2*ndim */
    int auto_pad;               /* raw only; resolved into pads by inference */
    int out_pad[2];             /* ConvTranspose output_padding */
    int64_t out_shape_attr[2];  /* ConvTranspose output_shape (raw; 0 = absent) */
    int group;
    int ceil_mode, count_include_pad;
    /* fused clamp on the output: applied when act != 0 */
    int act;
    float act_min, act_max;
    float alpha, beta;          /* Gemm, LeakyRelu, HardSigmoid */
    int trans_a, trans_b;
    float epsilon;              /* BatchNormalization */
    int axis;
    int legacy_2d;              /* Softmax opset < 13 */
    int keepdims;
    int noop_with_empty_axes;
    uint32_t axes_mask;         /* reductions */
    int perm[NNM_MAX_DIMS];     /* Transpose */
    int64_t starts[NNM_MAX_DIMS], steps[NNM_MAX_DIMS];   /* Slice (normalized) */
    /* raw parameter lists (ONNX attributes of older opsets: axes, ends, split, shape) */
    int64_t *ints;  int n_ints;   /* owned: generic raw list (axes / split / shape / perm) */
    int64_t *ints2; int n_ints2;  /* owned: second raw list (Slice ends) */
    int64_t *ints3; int n_ints3;  /* owned: third raw list (Slice starts, raw) */
    int pad_mode;
    float pad_value;
    int resize_mode, coord_mode, nearest_mode;
    float cubic_coeff_a;
    float scales[NNM_MAX_DIMS];
    nnm_dtype to;               /* Cast */
    int allowzero;              /* Reshape */
    int normalized;             /* set by ir__infer once parameter inputs were read into
                                 * these attrs and dropped; a second pass does not re-read */
} nnm_attrs;

typedef struct nnm_value {
    char *name;                 /* owned, unique in the graph */
    nnm_dtype dtype;
    int ndim;                   /* -1 until shape inference */
    int64_t shape[NNM_MAX_DIMS];
    void *data;                 /* non-NULL: a constant, owned by the graph (malloc) */
    size_t nbytes;              /* bytes of data for constants */
    int producer;               /* node index, or -1 for graph inputs and constants */
    int is_input, is_output;    /* listed among the graph's inputs / outputs */
    int borrowed;               /* data belongs to another graph (not freed with this one) */
} nnm_value;

typedef struct nnm_node {
    nnm_op op;
    char *name;                 /* owned; never NULL (import invents "op_<index>") */
    char *onnx_op;              /* owned; the ONNX op_type, for messages */
    int n_in, n_out;
    int *in, *out;              /* owned arrays of value ids; -1 = absent optional input */
    nnm_attrs a;
    /* filled by ir__infer */
    double flops;               /* multiply-adds count 2 flops */
    size_t param_bytes;         /* bytes of constant inputs (weights, biases) */
    size_t out_bytes;           /* bytes of all outputs */
} nnm_node;

struct nnm_graph {
    nnm_value *values; int n_values, cap_values;
    nnm_node *nodes;   int n_nodes,  cap_nodes;
    int *inputs;  int n_inputs;     /* non-constant graph inputs, in ONNX order */
    int *outputs; int n_outputs;
    int opset;                      /* default-domain opset */
    char *source;                   /* file name for messages (owned, may be NULL) */
    /* Slices (nnm_graph_slice): region of the original tensor each input/output covers;
     * NULL for a whole model. Arrays of n_inputs / n_outputs nnm_region, owned. */
    struct nnm_region *in_region, *out_region;
};
typedef struct nnm_graph nnm_graph;

/* --- construction (runtime/graph.c) ---------------------------------------------------- */

nnm_graph *ir__graph_new(void);
void ir__graph_free(nnm_graph *g);              /* NULL-safe */
/* Adds a value with unknown shape (ndim = -1); returns its id or -1 on ENOMEM.
 * name is copied. Fails (-1) if the name exists. */
int ir__value_add(nnm_graph *g, const char *name, nnm_dtype dt);
/* Adds a constant value taking ownership of t->data (t is zeroed on success; on failure
 * the caller keeps t). Returns id or -1. */
int ir__const_add(nnm_graph *g, const char *name, nnm_tensor *t);
/* Adds a constant that shares the data of constant src_v of graph src (no copy): src must
 * outlive g. Returns id or -1. */
int ir__const_borrow(nnm_graph *g, const char *name, const nnm_graph *src, int src_v);
/* Id of the value named name, or -1. */
int ir__value_find(const nnm_graph *g, const char *name);
/* Appends a node; in/out arrays are copied, names copied. Returns node index or -1. */
int ir__node_add(nnm_graph *g, nnm_op op, const char *name, const char *onnx_op,
                 const int *in, int n_in, const int *out, int n_out);
/* A borrowed tensor view of constant value v (data NULL if not constant). */
nnm_tensor ir__value_tensor(const nnm_graph *g, int v);
/* 1 if value v is a constant. v may be -1 (returns 0). */
int ir__is_const(const nnm_graph *g, int v);
/* Frees owned attribute lists. */
void ir__attrs_cleanup(nnm_attrs *a);
/* Deep copy of attrs (owned lists duplicated). */
nnm_err ir__attrs_copy(nnm_attrs *dst, const nnm_attrs *src);

/* Re-sorts nodes topologically (stable) and sets producers. NNM_EFORMAT on a cycle or a
 * value produced twice. */
nnm_err ir__toposort(nnm_graph *g, nnm_diag *diag);
/* Removes nodes whose outputs are not used by any graph output and values nobody uses;
 * renumbers ids. */
nnm_err ir__prune(nnm_graph *g);
/* Number of nodes consuming value v (graph outputs count as a consumer). */
int ir__use_count(const nnm_graph *g, int v);

/* Op name ("Conv"), and the op for an ONNX op_type in the default domain, or
 * NNM_OP_INVALID. */
const char *ir__op_name(nnm_op op);
nnm_op ir__op_from_onnx(const char *op_type);

/* --- ONNX tensors (runtime/onnx.c) -------------------------------------------------- */

/* Decodes a serialized onnx.TensorProto (e.g. a conformance case's input_0.pb) into an owned
 * tensor; name is used in messages. Errors: NNM_EFORMAT, NNM_EUNSUPPORTED (dtype, external
 * data), NNM_ENOMEM. On error *out is zeroed. */
nnm_err ir__tensor_decode_onnx(nnm_tensor *out, const void *buf, size_t len, const char *name,
                               nnm_diag *diag);

/* --- shape inference and normalization (runtime/infer.c) ------------------------------ */

/* Infers dtype and shape of every value in topological order, normalizes attributes (see
 * the top of this file), and fills flops/param_bytes/out_bytes. Constant folding happens on
 * the way: a node whose inputs are all constant (and every Shape node) is evaluated with
 * ir__fold_node as soon as it is inferred, so Shape/Gather/Concat chains feeding a Reshape
 * are constants by the time the Reshape is reached. Folded nodes are marked with
 * op = NNM_OP_INVALID and removed by ir__prune. Idempotent. Errors name the node:
 * NNM_ESHAPE, NNM_EUNSUPPORTED (e.g. a Reshape whose shape is computed from data). */
nnm_err ir__infer(nnm_graph *g, nnm_diag *diag);
/* Infers and normalizes one node only (its inputs must be known). */
nnm_err ir__infer_node(nnm_graph *g, int node, nnm_diag *diag);

/* --- rewriting passes (runtime/passes.c) ---------------------------------------------- */

/* Evaluates node i (already inferred, all inputs constant, or a Shape) with the reference
 * kernels and turns its outputs into constants; marks the node NNM_OP_INVALID. */
nnm_err ir__fold_node(nnm_graph *g, int i, nnm_diag *diag);
/* Folds BatchNormalization into the Conv/ConvTranspose/Gemm before it when that node's
 * output has no other consumer. */
nnm_err ir__fold_batchnorm(nnm_graph *g, nnm_diag *diag);
/* Fuses Relu and Clip (constant bounds) into the Conv/ConvTranspose/Gemm/MatMul/Add before
 * them as a clamp, when the producer's output has no other consumer. */
nnm_err ir__fuse_activations(nnm_graph *g, nnm_diag *diag);
/* Runs the whole import pipeline: toposort, infer (folding constants), fold BN, fuse,
 * prune, infer again. */
nnm_err ir__optimize(nnm_graph *g, nnm_diag *diag);

#endif
