/* runtime/layout.c — the NHWC layout pass.
 *
 * XNNPACK wants channels-last activations; ONNX graphs are channels-first. Rather than
 * transposing around every convolution, this pass rewrites a whole (inferred, normalized)
 * graph into a new one where 4-D activations flowing between convolutions, pools and
 * elementwise ops are stored NHWC, and explicit Transpose nodes appear only where a
 * layout-bound op (Reshape, Flatten, Gemm, Softmax, ...) or a graph input/output needs the
 * ONNX layout. Graph inputs and outputs keep their names, dtypes and NCHW shapes, so the
 * rewritten graph is a drop-in replacement for the original.
 *
 * Value naming in the new graph: the NCHW form of an original value keeps its name; the
 * NHWC form is "<name>#nhwc". Either form is created on first demand.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layout.h"

/* NCHW axis -> NHWC axis. */
static const int to_nhwc_axis[4] = { 0, 3, 1, 2 };
/* Transpose perms: NCHW -> NHWC and back. */
static const int perm_to_nhwc[4] = { 0, 2, 3, 1 };
static const int perm_to_nchw[4] = { 0, 3, 1, 2 };

typedef struct lctx {
    const nnm_graph *src;
    nnm_graph *dst;
    int *nchw;     /* src value -> dst value id of its NCHW form, or -1 */
    int *nhwc;     /* src value -> dst value id of its NHWC form, or -1 */
    int counter;
} lctx;

static int is_4d_float(const nnm_value *v)
{
    return v->ndim == 4 && v->dtype == NNM_DT_F32;
}

static int add_value_like(nnm_graph *g, const char *name, const nnm_value *like, int nhwc)
{
    int id = ir__value_add(g, name, like->dtype);
    if (id < 0) return -1;
    nnm_value *v = &g->values[id];
    v->ndim = like->ndim;
    if (nhwc) {
        for (int i = 0; i < 4; i++) v->shape[i] = like->shape[perm_to_nhwc[i]];
    } else {
        for (int i = 0; i < like->ndim; i++) v->shape[i] = like->shape[i];
    }
    return id;
}

static nnm_err add_transpose(lctx *c, int in_id, int out_id, const int *perm, const char *base)
{
    char name[512];
    snprintf(name, sizeof name, "%s#transpose%d", base, c->counter++);
    const nnm_value *iv = &c->dst->values[in_id];
    nnm_op op = NNM_OP_TRANSPOSE;
    /* When H*W == 1 or C == 1 the permutation moves no bytes: a reshape (plain copy) is
     * enough, and the executor may alias it. */
    int64_t hw = perm == perm_to_nhwc ? iv->shape[2] * iv->shape[3] : iv->shape[1] * iv->shape[2];
    int64_t ch = perm == perm_to_nhwc ? iv->shape[1] : iv->shape[3];
    if (hw == 1 || ch == 1) op = NNM_OP_RESHAPE;
    int n = ir__node_add(c->dst, op, name, op == NNM_OP_RESHAPE ? "Reshape" : "Transpose",
                         &in_id, 1, &out_id, 1);
    if (n < 0) return NNM_ENOMEM;
    nnm_node *node = &c->dst->nodes[n];
    for (int i = 0; i < 4; i++) node->a.perm[i] = perm[i];
    node->a.normalized = 1;
    node->out_bytes = c->dst->values[out_id].ndim >= 0
        ? (size_t)nnm_shape_numel(c->dst->values[out_id].shape, 4, 1) * nnm_dtype_size(iv->dtype)
        : 0;
    return NNM_OK;
}

/* Copies a constant of the source graph into dst (NCHW form). */
static int const_copy(lctx *c, int v, const char *name)
{
    return ir__const_borrow(c->dst, name, c->src, v);   /* the source graph outlives us */
}

/* NHWC form of a constant that broadcasts against a 4-D NCHW tensor: right-align it to
 * 4-D, then permute the data. */
static int const_nhwc(lctx *c, int v)
{
    const nnm_value *sv = &c->src->values[v];
    int64_t s4[4] = { 1, 1, 1, 1 };
    for (int i = 0; i < sv->ndim; i++) s4[4 - sv->ndim + i] = sv->shape[i];
    int64_t d4[4];
    for (int i = 0; i < 4; i++) d4[i] = s4[perm_to_nhwc[i]];
    nnm_tensor t;
    if (nnm_tensor_init(&t, sv->dtype, 4, d4) != NNM_OK) return -1;
    size_t es = nnm_dtype_size(sv->dtype);
    const char *src = sv->data;
    char *dst = t.data;
    for (int64_t n = 0; n < s4[0]; n++)
        for (int64_t h = 0; h < s4[2]; h++)
            for (int64_t w = 0; w < s4[3]; w++)
                for (int64_t ch = 0; ch < s4[1]; ch++) {
                    int64_t si = ((n * s4[1] + ch) * s4[2] + h) * s4[3] + w;
                    memcpy(dst, src + si * (int64_t)es, es);
                    dst += es;
                }
    char name[512];
    snprintf(name, sizeof name, "%s#nhwc", sv->name);
    int id = ir__const_add(c->dst, name, &t);
    if (id < 0) nnm_tensor_cleanup(&t);
    return id;
}

/* The dst id of src value v in the requested layout, creating a Transpose if needed. */
static int get_form(lctx *c, int v, int nhwc)
{
    if (v < 0) return -1;
    const nnm_value *sv = &c->src->values[v];
    if (sv->data != NULL) {
        if (!nhwc) {
            if (c->nchw[v] < 0) c->nchw[v] = const_copy(c, v, sv->name);
            return c->nchw[v];
        }
        if (c->nhwc[v] < 0) c->nhwc[v] = const_nhwc(c, v);
        return c->nhwc[v];
    }
    int *want = nhwc ? c->nhwc : c->nchw;
    int *have = nhwc ? c->nchw : c->nhwc;
    if (want[v] >= 0) return want[v];
    if (have[v] < 0) return -1;            /* not produced yet: caller bug */
    char name[512];
    if (nhwc)
        snprintf(name, sizeof name, "%s#nhwc", sv->name);
    else
        snprintf(name, sizeof name, "%s", sv->name);
    int id = add_value_like(c->dst, name, sv, nhwc);
    if (id < 0) return -1;
    if (add_transpose(c, have[v], id, nhwc ? perm_to_nhwc : perm_to_nchw, sv->name) != NNM_OK)
        return -1;
    want[v] = id;
    return id;
}

static int op_is_spatial(nnm_op op)
{
    switch (op) {
    case NNM_OP_CONV: case NNM_OP_CONV_TRANSPOSE: case NNM_OP_MAXPOOL: case NNM_OP_AVGPOOL:
    case NNM_OP_GLOBAL_AVGPOOL: case NNM_OP_GLOBAL_MAXPOOL: case NNM_OP_BATCHNORM:
        return 1;
    default:
        return 0;
    }
}

static int op_is_layout_free(nnm_op op)
{
    switch (op) {
    case NNM_OP_ADD: case NNM_OP_SUB: case NNM_OP_MUL: case NNM_OP_DIV: case NNM_OP_POW:
    case NNM_OP_MAX: case NNM_OP_MIN:
    case NNM_OP_SQRT: case NNM_OP_EXP: case NNM_OP_LOG: case NNM_OP_ERF: case NNM_OP_RELU:
    case NNM_OP_SIGMOID: case NNM_OP_TANH: case NNM_OP_HARD_SWISH: case NNM_OP_LEAKY_RELU:
    case NNM_OP_CLIP: case NNM_OP_HARD_SIGMOID: case NNM_OP_IDENTITY: case NNM_OP_DROPOUT:
    case NNM_OP_CONCAT: case NNM_OP_PAD: case NNM_OP_RESIZE:
        return 1;
    default:
        return 0;
    }
}

/* Whether node n of the source graph should run channels-last. */
static int wants_nhwc(const lctx *c, const nnm_node *n)
{
    const nnm_graph *g = c->src;
    if (n->n_out < 1 || n->out[0] < 0 || !is_4d_float(&g->values[n->out[0]])) return 0;
    if (op_is_spatial(n->op)) {
        const nnm_value *x = &g->values[n->in[0]];
        return is_4d_float(x) && !n->a.spatial_1d && n->a.layout == NNM_IR_NCHW;
    }
    if (!op_is_layout_free(n->op)) return 0;
    if (n->op == NNM_OP_DROPOUT && n->n_out > 1 && n->out[1] >= 0) return 0;
    /* Follow the producers: go channels-last if some 4-D data input already is, and every
     * non-constant input is 4-D (or broadcastable constant). */
    int any = 0;
    for (int i = 0; i < n->n_in; i++) {
        int v = n->in[i];
        if (v < 0) continue;
        const nnm_value *sv = &g->values[v];
        if (sv->data != NULL) {
            if (sv->ndim > 4) return 0;
            continue;
        }
        if (sv->ndim != 4) return 0;
        if (c->nhwc[v] >= 0) any = 1;
    }
    return any;
}

nnm_err layout__to_nhwc(nnm_graph **out, const nnm_graph *src, nnm_diag *diag)
{
    nnm_err rc = NNM_ENOMEM;
    lctx c;
    memset(&c, 0, sizeof c);
    c.src = src;
    c.dst = ir__graph_new();
    c.nchw = malloc((size_t)(src->n_values + 1) * sizeof(int));
    c.nhwc = malloc((size_t)(src->n_values + 1) * sizeof(int));
    int *ins = NULL, *outs = NULL;
    if (!c.dst || !c.nchw || !c.nhwc) goto fail;
    for (int i = 0; i < src->n_values; i++) c.nchw[i] = c.nhwc[i] = -1;
    nnm_graph *d = c.dst;
    d->opset = src->opset;
    if (src->source && !(d->source = strdup(src->source))) goto fail;

    d->inputs = malloc((size_t)(src->n_inputs + 1) * sizeof(int));
    d->outputs = malloc((size_t)(src->n_outputs + 1) * sizeof(int));
    if (!d->inputs || !d->outputs) goto fail;
    for (int i = 0; i < src->n_inputs; i++) {
        int v = src->inputs[i];
        int id = add_value_like(d, src->values[v].name, &src->values[v], 0);
        if (id < 0) goto fail;
        d->values[id].is_input = 1;
        d->inputs[d->n_inputs++] = id;
        c.nchw[v] = id;
    }

    for (int k = 0; k < src->n_nodes; k++) {
        const nnm_node *n = &src->nodes[k];
        int nhwc = wants_nhwc(&c, n);
        ins = malloc((size_t)(n->n_in + 1) * sizeof(int));
        outs = malloc((size_t)(n->n_out + 1) * sizeof(int));
        if (!ins || !outs) goto fail;
        for (int i = 0; i < n->n_in; i++) {
            int v = n->in[i];
            if (v < 0) { ins[i] = -1; continue; }
            /* Weights of spatial ops stay as they are (OIHW); only data goes NHWC. */
            int want = nhwc && (i == 0 || (!op_is_spatial(n->op)));
            if (want && src->values[v].data != NULL && op_is_spatial(n->op)) want = 0;
            ins[i] = get_form(&c, v, want);
            if (ins[i] < 0) {
                rc = nnm_diag_set(diag, NNM_ENOMEM, "layout pass failed at node '%s'", n->name);
                goto fail;
            }
        }
        for (int i = 0; i < n->n_out; i++) {
            int v = n->out[i];
            if (v < 0) { outs[i] = -1; continue; }
            const nnm_value *sv = &src->values[v];
            char name[512];
            int as_nhwc = nhwc && sv->ndim == 4;
            snprintf(name, sizeof name, as_nhwc ? "%s#nhwc" : "%s", sv->name);
            outs[i] = add_value_like(d, name, sv, as_nhwc);
            if (outs[i] < 0) goto fail;
            if (as_nhwc) c.nhwc[v] = outs[i]; else c.nchw[v] = outs[i];
        }
        int id = ir__node_add(d, n->op, n->name, n->onnx_op, ins, n->n_in, outs, n->n_out);
        if (id < 0) goto fail;
        nnm_node *dn = &d->nodes[id];
        if ((rc = ir__attrs_copy(&dn->a, &n->a)) != NNM_OK) goto fail;
        rc = NNM_ENOMEM;
        dn->flops = n->flops;
        dn->param_bytes = n->param_bytes;
        dn->out_bytes = n->out_bytes;
        if (nhwc) {
            if (op_is_spatial(n->op)) {
                dn->a.layout = NNM_IR_NHWC;
            } else if (n->op == NNM_OP_CONCAT) {
                dn->a.axis = to_nhwc_axis[n->a.axis];
            } else if (n->op == NNM_OP_PAD) {
                for (int i = 0; i < 4; i++) {
                    dn->a.pads[to_nhwc_axis[i]] = n->a.pads[i];
                    dn->a.pads[4 + to_nhwc_axis[i]] = n->a.pads[4 + i];
                }
            } else if (n->op == NNM_OP_RESIZE) {
                for (int i = 0; i < 4; i++) dn->a.scales[to_nhwc_axis[i]] = n->a.scales[i];
            }
        }
        free(ins); ins = NULL;
        free(outs); outs = NULL;
    }

    for (int i = 0; i < src->n_outputs; i++) {
        int v = src->outputs[i];
        int id = get_form(&c, v, 0);
        if (id < 0) goto fail;
        d->values[id].is_output = 1;
        d->outputs[d->n_outputs++] = id;
    }
    *out = d;
    free(c.nchw);
    free(c.nhwc);
    return NNM_OK;
fail:
    free(ins);
    free(outs);
    ir__graph_free(c.dst);
    free(c.nchw);
    free(c.nhwc);
    if (rc == NNM_ENOMEM && diag && diag->code == NNM_OK)
        nnm_diag_set(diag, NNM_ENOMEM, "out of memory in the layout pass");
    return rc;
}
