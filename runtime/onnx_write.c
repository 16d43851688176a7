/* runtime/onnx_write.c — writing a graph (a whole model or a slice) back to ONNX.
 *
 * A slice of a model is a graph like any other; writing it as an ONNX file (opset 13) gives
 * a self-contained unit a peer can receive, cache by content hash and load with the same
 * hardened importer, and that a user can open in any ONNX tool. The writer maps normalized
 * attributes back to their opset-13 form: parameters that opset 13 passes as inputs (Reshape
 * shape, Slice starts/ends/axes/steps, Pad pads, Split sizes, Squeeze/Unsqueeze axes, Clip
 * bounds, Resize scales) become initializers, and a fused clamp becomes a Relu or Clip node
 * after its producer. Re-importing the file gives the same graph.
 *
 * All protobuf-c structures are allocated from one arena freed at the end, so error paths
 * need no per-object cleanup.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx.pb-c.h"
#include "ir.h"
#include "nnmesh/graph.h"

/* 16 bytes, so the payload after it is aligned for any field type. */
typedef struct arena_blk { struct arena_blk *next; void *pad_; } arena_blk;

typedef struct wctx {
    arena_blk *blocks;
    const nnm_graph *g;
    Onnx__NodeProto **nodes; size_t n_nodes, cap_nodes;
    Onnx__TensorProto **inits; size_t n_inits, cap_inits;
    int counter;
    int oom;
    nnm_diag *diag;
} wctx;

static void *alloc(wctx *c, size_t n)
{
    arena_blk *b = calloc(1, sizeof(arena_blk) + (n ? n : 1));
    if (b == NULL) { c->oom = 1; return NULL; }
    b->next = c->blocks;
    c->blocks = b;
    return b + 1;
}

static char *sdup(wctx *c, const char *s)
{
    size_t n = strlen(s);
    char *p = alloc(c, n + 1);
    if (p) memcpy(p, s, n + 1);
    return p;
}

static int onnx_dtype(nnm_dtype dt)
{
    switch (dt) {
    case NNM_DT_F32: return ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    case NNM_DT_F16: return ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16;
    case NNM_DT_I8: return ONNX__TENSOR_PROTO__DATA_TYPE__INT8;
    case NNM_DT_U8: return ONNX__TENSOR_PROTO__DATA_TYPE__UINT8;
    case NNM_DT_I32: return ONNX__TENSOR_PROTO__DATA_TYPE__INT32;
    case NNM_DT_I64: return ONNX__TENSOR_PROTO__DATA_TYPE__INT64;
    case NNM_DT_BOOL: return ONNX__TENSOR_PROTO__DATA_TYPE__BOOL;
    case NNM_DT_F64: return ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE;
    default: return ONNX__TENSOR_PROTO__DATA_TYPE__UNDEFINED;
    }
}

static int push(wctx *c, void ***arr, size_t *n, size_t *cap, void *item)
{
    if (item == NULL) return -1;
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 64;
        void **q = realloc(*arr, nc * sizeof(void *));
        if (q == NULL) { c->oom = 1; return -1; }
        *arr = q;
        *cap = nc;
    }
    (*arr)[(*n)++] = item;
    return 0;
}

/* An initializer named name; data is borrowed (it stays alive while packing). */
static Onnx__TensorProto *tensor(wctx *c, const char *name, nnm_dtype dt, int ndim,
                                 const int64_t *shape, const void *data, size_t nbytes)
{
    Onnx__TensorProto *t = alloc(c, sizeof *t);
    if (t == NULL) return NULL;
    onnx__tensor_proto__init(t);
    t->name = sdup(c, name);
    t->has_data_type = 1;
    t->data_type = onnx_dtype(dt);
    t->n_dims = (size_t)ndim;
    t->dims = alloc(c, sizeof(int64_t) * (size_t)(ndim ? ndim : 1));
    if (t->dims) memcpy(t->dims, shape, sizeof(int64_t) * (size_t)ndim);
    t->has_raw_data = 1;
    t->raw_data.len = nbytes;
    t->raw_data.data = (uint8_t *)data;
    return t;
}

/* A new int64 or float 1-D initializer holding vals; returns its name. */
static const char *const_i64(wctx *c, const int64_t *vals, int n)
{
    char name[64];
    snprintf(name, sizeof name, "nnm#param%d", c->counter++);
    int64_t *copy = alloc(c, sizeof(int64_t) * (size_t)(n ? n : 1));
    if (copy == NULL) return NULL;
    if (n) memcpy(copy, vals, sizeof(int64_t) * (size_t)n);
    int64_t shp[1] = { n };
    Onnx__TensorProto *t = tensor(c, name, NNM_DT_I64, 1, shp, copy, sizeof(int64_t) * (size_t)n);
    if (push(c, (void ***)&c->inits, &c->n_inits, &c->cap_inits, t)) return NULL;
    return t->name;
}

static const char *const_f32(wctx *c, const float *vals, int n, int scalar)
{
    char name[64];
    snprintf(name, sizeof name, "nnm#param%d", c->counter++);
    float *copy = alloc(c, sizeof(float) * (size_t)(n ? n : 1));
    if (copy == NULL) return NULL;
    memcpy(copy, vals, sizeof(float) * (size_t)n);
    int64_t shp[1] = { n };
    Onnx__TensorProto *t = tensor(c, name, NNM_DT_F32, scalar ? 0 : 1, shp, copy, sizeof(float) * (size_t)n);
    if (push(c, (void ***)&c->inits, &c->n_inits, &c->cap_inits, t)) return NULL;
    return t->name;
}

/* A new attribute named name of the given type; the caller fills its value. */
static Onnx__AttributeProto *attr_new(wctx *c, const char *name,
                                      Onnx__AttributeProto__AttributeType type)
{
    Onnx__AttributeProto *a = alloc(c, sizeof *a);
    if (!a) return NULL;
    onnx__attribute_proto__init(a);
    a->name = sdup(c, name);
    a->has_type = 1;
    a->type = type;
    return a;
}

static Onnx__AttributeProto *attr_i(wctx *c, const char *name, int64_t v)
{
    Onnx__AttributeProto *a = attr_new(c, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    if (a) {
        a->has_i = 1;
        a->i = v;
    }
    return a;
}

static Onnx__AttributeProto *attr_f(wctx *c, const char *name, float v)
{
    Onnx__AttributeProto *a = attr_new(c, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
    if (a) {
        a->has_f = 1;
        a->f = v;
    }
    return a;
}

static Onnx__AttributeProto *attr_s(wctx *c, const char *name, const char *v)
{
    Onnx__AttributeProto *a = attr_new(c, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING);
    if (a) {
        a->has_s = 1;
        a->s.data = (uint8_t *)sdup(c, v);
        a->s.len = strlen(v);
    }
    return a;
}

static Onnx__AttributeProto *attr_ints(wctx *c, const char *name, const int64_t *v, int n)
{
    Onnx__AttributeProto *a = attr_new(c, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    if (a) {
        a->n_ints = (size_t)n;
        a->ints = alloc(c, sizeof(int64_t) * (size_t)(n ? n : 1));
        if (a->ints && n) memcpy(a->ints, v, sizeof(int64_t) * (size_t)n);
    }
    return a;
}

typedef struct nbuild {
    Onnx__NodeProto *p;
    Onnx__AttributeProto *attrs[16];
    int n_attrs;
    const char *in[NNM_MAX_DIMS + 64];
    int n_in;
} nbuild;

static void nb_attr(nbuild *b, Onnx__AttributeProto *a)
{
    if (b->n_attrs < 16) b->attrs[b->n_attrs++] = a;
}

/* Emits node op_type with inputs b->in and the given outputs. */
static int emit(wctx *c, nbuild *b, const char *op, const char *name, const char *const *outs,
                int n_out)
{
    Onnx__NodeProto *p = alloc(c, sizeof *p);
    if (!p) return -1;
    onnx__node_proto__init(p);
    p->op_type = sdup(c, op);
    p->name = sdup(c, name);
    p->domain = sdup(c, "");
    p->n_input = (size_t)b->n_in;
    p->input = alloc(c, sizeof(char *) * (size_t)(b->n_in ? b->n_in : 1));
    p->n_output = (size_t)n_out;
    p->output = alloc(c, sizeof(char *) * (size_t)(n_out ? n_out : 1));
    p->n_attribute = (size_t)b->n_attrs;
    p->attribute = alloc(c, sizeof(void *) * (size_t)(b->n_attrs ? b->n_attrs : 1));
    if (!p->input || !p->output || !p->attribute) return -1;
    for (int i = 0; i < b->n_in; i++) p->input[i] = sdup(c, b->in[i] ? b->in[i] : "");
    for (int i = 0; i < n_out; i++) p->output[i] = sdup(c, outs[i] ? outs[i] : "");
    for (int i = 0; i < b->n_attrs; i++) {
        if (b->attrs[i] == NULL) return -1;
        p->attribute[i] = b->attrs[i];
    }
    return push(c, (void ***)&c->nodes, &c->n_nodes, &c->cap_nodes, p);
}

static const char *vname(const wctx *c, int v)
{
    return v < 0 ? "" : c->g->values[v].name;
}

static void conv_attrs(wctx *c, nbuild *b, const nnm_node *n, int with_dil)
{
    const nnm_attrs *a = &n->a;
    if (a->spatial_1d) {
        int64_t k[1] = { a->kernel[1] }, s[1] = { a->strides[1] }, d[1] = { a->dilations[1] };
        int64_t p[2] = { a->pads[1], a->pads[3] };
        nb_attr(b, attr_ints(c, "kernel_shape", k, 1));
        nb_attr(b, attr_ints(c, "strides", s, 1));
        if (with_dil) nb_attr(b, attr_ints(c, "dilations", d, 1));
        nb_attr(b, attr_ints(c, "pads", p, 2));
    } else {
        int64_t k[2] = { a->kernel[0], a->kernel[1] }, s[2] = { a->strides[0], a->strides[1] };
        int64_t d[2] = { a->dilations[0], a->dilations[1] };
        int64_t p[4] = { a->pads[0], a->pads[1], a->pads[2], a->pads[3] };
        nb_attr(b, attr_ints(c, "kernel_shape", k, 2));
        nb_attr(b, attr_ints(c, "strides", s, 2));
        if (with_dil) nb_attr(b, attr_ints(c, "dilations", d, 2));
        nb_attr(b, attr_ints(c, "pads", p, 4));
    }
}

static const char *op_type_name(nnm_op op)
{
    return ir__op_name(op);
}

/* One IR node -> one or two ONNX nodes. */
static nnm_err write_node(wctx *c, const nnm_node *n)
{
    const nnm_graph *g = c->g;
    const nnm_attrs *a = &n->a;
    nbuild b;
    memset(&b, 0, sizeof b);
    for (int i = 0; i < n->n_in && i < (int)(sizeof b.in / sizeof b.in[0]); i++)
        b.in[b.n_in++] = vname(c, n->in[i]);
    if (n->n_in > (int)(sizeof b.in / sizeof b.in[0]))
        return nnm_diag_set(c->diag, NNM_EUNSUPPORTED, "node '%s' has too many inputs to write", n->name);
    const char *outs[16];
    int n_out = n->n_out < 16 ? n->n_out : 16;
    for (int i = 0; i < n_out; i++) outs[i] = vname(c, n->out[i]);
    const nnm_value *x = n->n_in > 0 && n->in[0] >= 0 ? &g->values[n->in[0]] : NULL;
    /* A fused clamp writes the producer to a fresh name, then Relu/Clip to the real output. */
    char pre[600];
    const char *final_out = outs[0];
    if (a->act) {
        snprintf(pre, sizeof pre, "%s#preact", outs[0]);
        outs[0] = pre;
    }
    if (a->layout == NNM_IR_NHWC && (n->op == NNM_OP_CONV || n->op == NNM_OP_CONV_TRANSPOSE ||
                                     n->op == NNM_OP_MAXPOOL || n->op == NNM_OP_AVGPOOL ||
                                     n->op == NNM_OP_GLOBAL_AVGPOOL || n->op == NNM_OP_GLOBAL_MAXPOOL ||
                                     n->op == NNM_OP_BATCHNORM))
        return nnm_diag_set(c->diag, NNM_EUNSUPPORTED,
                            "node '%s': channels-last graphs (after the layout pass) cannot be written as ONNX", n->name);
    const char *op = op_type_name(n->op);
    switch (n->op) {
    case NNM_OP_CONV:
        conv_attrs(c, &b, n, 1);
        nb_attr(&b, attr_i(c, "group", a->group));
        break;
    case NNM_OP_CONV_TRANSPOSE:
        conv_attrs(c, &b, n, 1);
        nb_attr(&b, attr_i(c, "group", a->group));
        if (a->out_pad[0] || a->out_pad[1]) {
            int64_t op2[2] = { a->out_pad[0], a->out_pad[1] }, op1[1] = { a->out_pad[1] };
            nb_attr(&b, a->spatial_1d ? attr_ints(c, "output_padding", op1, 1)
                                      : attr_ints(c, "output_padding", op2, 2));
        }
        break;
    case NNM_OP_MAXPOOL: case NNM_OP_AVGPOOL:
        conv_attrs(c, &b, n, n->op == NNM_OP_MAXPOOL);
        if (a->ceil_mode) nb_attr(&b, attr_i(c, "ceil_mode", 1));
        if (n->op == NNM_OP_AVGPOOL) nb_attr(&b, attr_i(c, "count_include_pad", a->count_include_pad));
        break;
    case NNM_OP_GEMM:
        nb_attr(&b, attr_f(c, "alpha", a->alpha));
        nb_attr(&b, attr_f(c, "beta", a->beta));
        nb_attr(&b, attr_i(c, "transA", a->trans_a));
        nb_attr(&b, attr_i(c, "transB", a->trans_b));
        break;
    case NNM_OP_LEAKY_RELU:
        nb_attr(&b, attr_f(c, "alpha", a->alpha));
        break;
    case NNM_OP_HARD_SIGMOID:
        nb_attr(&b, attr_f(c, "alpha", a->alpha));
        nb_attr(&b, attr_f(c, "beta", a->beta));
        break;
    case NNM_OP_CLIP: {
        float lo = a->act_min, hi = a->act_max;
        b.in[1] = isinf(lo) ? "" : const_f32(c, &lo, 1, 1);
        b.in[2] = isinf(hi) ? "" : const_f32(c, &hi, 1, 1);
        b.n_in = 3;
        break;
    }
    case NNM_OP_SOFTMAX:
        if (a->legacy_2d && x && a->axis != x->ndim - 1)
            return nnm_diag_set(c->diag, NNM_EUNSUPPORTED,
                                "node '%s' (Softmax): opset-%d semantics over axes %d.. cannot be written at opset 13",
                                n->name, g->opset, a->axis);
        nb_attr(&b, attr_i(c, "axis", a->axis));
        break;
    case NNM_OP_BATCHNORM:
        nb_attr(&b, attr_f(c, "epsilon", a->epsilon));
        break;
    case NNM_OP_FLATTEN: case NNM_OP_CONCAT: case NNM_OP_GATHER:
        nb_attr(&b, attr_i(c, "axis", a->axis));
        break;
    case NNM_OP_RESHAPE: {
        const nnm_value *y = &g->values[n->out[0]];
        b.in[1] = const_i64(c, y->shape, y->ndim);
        b.n_in = 2;
        break;
    }
    case NNM_OP_SQUEEZE: case NNM_OP_UNSQUEEZE:
        b.in[1] = const_i64(c, a->ints, a->n_ints);
        b.n_in = 2;
        break;
    case NNM_OP_DROPOUT:
        op = "Identity";
        n_out = 1;
        break;
    case NNM_OP_TRANSPOSE: {
        int64_t p[NNM_MAX_DIMS];
        for (int i = 0; x && i < x->ndim; i++) p[i] = a->perm[i];
        nb_attr(&b, attr_ints(c, "perm", p, x ? x->ndim : 0));
        break;
    }
    case NNM_OP_SPLIT: {
        int64_t sz[16];
        for (int i = 0; i < n_out; i++) sz[i] = g->values[n->out[i]].shape[a->axis];
        nb_attr(&b, attr_i(c, "axis", a->axis));
        b.in[1] = const_i64(c, sz, n_out);
        b.n_in = 2;
        break;
    }
    case NNM_OP_SLICE: {
        const nnm_value *y = &g->values[n->out[0]];
        int64_t st[NNM_MAX_DIMS], en[NNM_MAX_DIMS], ax[NNM_MAX_DIMS], sp[NNM_MAX_DIMS];
        for (int d = 0; d < x->ndim; d++) {
            st[d] = a->starts[d];
            sp[d] = a->steps[d];
            ax[d] = d;
            en[d] = a->starts[d] + y->shape[d] * a->steps[d];
            if (a->steps[d] < 0 && en[d] < 0) en[d] = INT64_MIN;   /* "before index 0" */
        }
        b.in[1] = const_i64(c, st, x->ndim);
        b.in[2] = const_i64(c, en, x->ndim);
        b.in[3] = const_i64(c, ax, x->ndim);
        b.in[4] = const_i64(c, sp, x->ndim);
        b.n_in = 5;
        break;
    }
    case NNM_OP_PAD: {
        int64_t p[2 * NNM_MAX_DIMS];
        for (int i = 0; i < 2 * x->ndim; i++) p[i] = a->pads[i];
        static const char *const modes[] = { "constant", "reflect", "edge" };
        nb_attr(&b, attr_s(c, "mode", modes[a->pad_mode >= 0 && a->pad_mode < 3 ? a->pad_mode : 0]));
        b.in[1] = const_i64(c, p, 2 * x->ndim);
        if (x->dtype == NNM_DT_F32) {
            float v = a->pad_value;
            b.in[2] = const_f32(c, &v, 1, 1);
            b.n_in = 3;
        } else {
            b.n_in = 2;
        }
        break;
    }
    case NNM_OP_CAST:
        nb_attr(&b, attr_i(c, "to", onnx_dtype(a->to)));
        break;
    case NNM_OP_RESIZE: {
        static const char *const coord[] = { "half_pixel", "asymmetric", "pytorch_half_pixel",
                                             "align_corners", "tf_half_pixel_for_nearest" };
        static const char *const near[] = { "round_prefer_floor", "round_prefer_ceil", "floor", "ceil" };
        nb_attr(&b, attr_s(c, "mode", a->resize_mode == NNM_RESIZE_LINEAR ? "linear" : "nearest"));
        nb_attr(&b, attr_s(c, "coordinate_transformation_mode", coord[a->coord_mode % 5]));
        nb_attr(&b, attr_s(c, "nearest_mode", near[a->nearest_mode % 4]));
        const nnm_value *y = &g->values[n->out[0]];
        b.in[1] = "";
        if (a->n_ints == x->ndim) {
            /* sizes were given: keep them, so float rounding cannot change the shape */
            b.in[2] = "";
            b.in[3] = const_i64(c, y->shape, y->ndim);
            b.n_in = 4;
        } else {
            b.in[2] = const_f32(c, a->scales, x->ndim, 0);
            b.n_in = 3;
        }
        break;
    }
    case NNM_OP_REDUCE_MEAN: case NNM_OP_REDUCE_MAX: {
        int64_t ax[NNM_MAX_DIMS];
        int k = 0;
        for (int d = 0; x && d < x->ndim; d++)
            if (a->axes_mask & (1u << d)) ax[k++] = d;
        nb_attr(&b, attr_ints(c, "axes", ax, k));
        nb_attr(&b, attr_i(c, "keepdims", a->keepdims));
        break;
    }
    case NNM_OP_SHAPE: case NNM_OP_CONSTANT: case NNM_OP_CONSTANT_OF_SHAPE: case NNM_OP_INVALID:
    case NNM_OP__COUNT:
        return nnm_diag_set(c->diag, NNM_EUNSUPPORTED, "node '%s' (%s) should have been folded",
                            n->name, n->onnx_op);
    default:
        break;   /* elementwise ops without attributes */
    }
    if (c->oom) return NNM_ENOMEM;
    if (emit(c, &b, op, n->name, outs, n_out) != 0) return NNM_ENOMEM;
    if (a->act) {
        nbuild r;
        memset(&r, 0, sizeof r);
        r.in[0] = pre;
        r.n_in = 1;
        char nm[600];
        snprintf(nm, sizeof nm, "%s#act", n->name);
        const char *o1[1] = { final_out };
        int relu = a->act_min == 0.0f && isinf(a->act_max) && a->act_max > 0;
        if (!relu) {
            float lo = a->act_min, hi = a->act_max;
            r.in[1] = isinf(lo) ? "" : const_f32(c, &lo, 1, 1);
            r.in[2] = isinf(hi) ? "" : const_f32(c, &hi, 1, 1);
            r.n_in = 3;
        }
        if (c->oom || emit(c, &r, relu ? "Relu" : "Clip", nm, o1, 1) != 0) return NNM_ENOMEM;
    }
    return NNM_OK;
}

static Onnx__ValueInfoProto *value_info(wctx *c, const nnm_value *v)
{
    Onnx__ValueInfoProto *vi = alloc(c, sizeof *vi);
    Onnx__TypeProto *tp = alloc(c, sizeof *tp);
    Onnx__TypeProto__Tensor *tt = alloc(c, sizeof *tt);
    Onnx__TensorShapeProto *sp = alloc(c, sizeof *sp);
    if (!vi || !tp || !tt || !sp) return NULL;
    onnx__value_info_proto__init(vi);
    onnx__type_proto__init(tp);
    onnx__type_proto__tensor__init(tt);
    onnx__tensor_shape_proto__init(sp);
    vi->name = sdup(c, v->name);
    vi->type = tp;
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp->tensor_type = tt;
    tt->has_elem_type = 1;
    tt->elem_type = onnx_dtype(v->dtype);
    tt->shape = sp;
    sp->n_dim = (size_t)v->ndim;
    sp->dim = alloc(c, sizeof(void *) * (size_t)(v->ndim ? v->ndim : 1));
    if (!sp->dim) return NULL;
    for (int i = 0; i < v->ndim; i++) {
        Onnx__TensorShapeProto__Dimension *d = alloc(c, sizeof *d);
        if (!d) return NULL;
        onnx__tensor_shape_proto__dimension__init(d);
        d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
        d->dim_value = v->shape[i];
        sp->dim[i] = d;
    }
    return vi;
}

nnm_err nnm_graph_encode_onnx(void **out, size_t *len, const nnm_graph *g, nnm_diag *diag)
{
    wctx c;
    memset(&c, 0, sizeof c);
    c.g = g;
    c.diag = diag;
    nnm_err rc = NNM_ENOMEM;
    *out = NULL;
    *len = 0;
    uint8_t *buf = NULL;
    for (int v = 0; v < g->n_values; v++) {
        const nnm_value *val = &g->values[v];
        if (val->data == NULL) continue;
        Onnx__TensorProto *t = tensor(&c, val->name, val->dtype, val->ndim, val->shape, val->data, val->nbytes);
        if (push(&c, (void ***)&c.inits, &c.n_inits, &c.cap_inits, t)) goto fail;
    }
    for (int i = 0; i < g->n_nodes; i++) {
        if (g->nodes[i].op == NNM_OP_INVALID) continue;
        if ((rc = write_node(&c, &g->nodes[i])) != NNM_OK) goto fail;
        rc = NNM_ENOMEM;
    }
    Onnx__GraphProto gp = ONNX__GRAPH_PROTO__INIT;
    gp.name = sdup(&c, "nnmesh");
    gp.n_node = c.n_nodes;
    gp.node = c.nodes;
    gp.n_initializer = c.n_inits;
    gp.initializer = c.inits;
    gp.n_input = (size_t)g->n_inputs;
    gp.input = alloc(&c, sizeof(void *) * (size_t)(g->n_inputs + 1));
    gp.n_output = (size_t)g->n_outputs;
    gp.output = alloc(&c, sizeof(void *) * (size_t)(g->n_outputs + 1));
    if (!gp.input || !gp.output) goto fail;
    for (int i = 0; i < g->n_inputs; i++)
        if (!(gp.input[i] = value_info(&c, &g->values[g->inputs[i]]))) goto fail;
    for (int i = 0; i < g->n_outputs; i++)
        if (!(gp.output[i] = value_info(&c, &g->values[g->outputs[i]]))) goto fail;
    Onnx__OperatorSetIdProto os = ONNX__OPERATOR_SET_ID_PROTO__INIT;
    os.domain = sdup(&c, "");
    os.has_version = 1;
    os.version = 13;
    Onnx__OperatorSetIdProto *osp = &os;
    Onnx__ModelProto m = ONNX__MODEL_PROTO__INIT;
    m.has_ir_version = 1;
    m.ir_version = 7;
    m.n_opset_import = 1;
    m.opset_import = &osp;
    m.producer_name = sdup(&c, "nnmesh");
    m.graph = &gp;
    if (c.oom) goto fail;
    size_t n = onnx__model_proto__get_packed_size(&m);
    buf = malloc(n ? n : 1);
    if (buf == NULL) goto fail;
    onnx__model_proto__pack(&m, buf);
    *out = buf;
    *len = n;
    rc = NNM_OK;
fail:
    if (rc == NNM_ENOMEM) nnm_diag_set(diag, rc, "out of memory while writing ONNX");
    free(c.nodes);
    free(c.inits);
    while (c.blocks) {
        arena_blk *b = c.blocks;
        c.blocks = b->next;
        free(b);
    }
    return rc;
}

nnm_err nnm_graph_save_onnx(const char *path, const nnm_graph *g, nnm_diag *diag)
{
    void *buf = NULL;
    size_t len = 0;
    nnm_err rc = nnm_graph_encode_onnx(&buf, &len, g, diag);
    if (rc != NNM_OK) return rc;
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (f == NULL) {
        free(buf);
        return nnm_diag_set(diag, NNM_EIO, "%s: cannot create", tmp);
    }
    int ok = fwrite(buf, 1, len, f) == len;
    ok &= fclose(f) == 0;
    free(buf);
    if (!ok || rename(tmp, path) != 0) {
        remove(tmp);
        return nnm_diag_set(diag, NNM_EIO, "%s: cannot write", path);
    }
    return NNM_OK;
}
