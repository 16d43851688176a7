/* runtime/passes.c — graph rewriting at import: constant folding of one node with the
 * reference kernels, BatchNormalization folded into the convolution or Gemm before it,
 * Relu/Clip fused into their producer as an output clamp, and the import pipeline that runs
 * them in order (ir__optimize).
 *
 * Invariants kept by every pass: a rewritten node keeps its index (passes only mark nodes
 * NNM_OP_INVALID and let ir__prune drop them), every value keeps one producer, and a
 * constant that a pass modifies is first made private to the node that reads it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"
#include "kernels.h"

/* Largest constant folding may create: 64 MiB plus twice the constants the model already
 * has. Folded values in real models are shapes or rearranged weights; a file whose few bytes
 * fold into gigabytes is hostile, and is refused before anything is allocated. */
static size_t fold_limit(const nnm_graph *g)
{
    size_t have = 0;
    for (int v = 0; v < g->n_values; v++)
        if (g->values[v].data && have < SIZE_MAX / 4) have += g->values[v].nbytes;
    return ((size_t)64 << 20) + 2 * have;
}

nnm_err ir__fold_node(nnm_graph *g, int i, nnm_diag *diag)
{
    if (g == NULL || i < 0 || i >= g->n_nodes) return NNM_EINVAL;
    nnm_node *n = &g->nodes[i];
    nnm_err rc = NNM_ENOMEM;
    int n_in = n->n_in, n_out = n->n_out;
    nnm_tensor *ins = calloc((size_t)(n_in + 1), sizeof *ins);
    nnm_tensor *outs = calloc((size_t)(n_out + 1), sizeof *outs);
    const nnm_tensor **inp = calloc((size_t)(n_in + 1), sizeof *inp);
    nnm_tensor **outp = calloc((size_t)(n_out + 1), sizeof *outp);
    if (!ins || !outs || !inp || !outp) {
        rc = nnm_diag_set(diag, NNM_ENOMEM, "node '%s' (%s): out of memory folding constants",
                          n->name, n->onnx_op);
        goto fail;
    }
    for (int j = 0; j < n_in; j++) {
        int v = n->in[j];
        if (v < 0) continue;
        /* Shape reads only the shape of its input, which may be computed. */
        if (!ir__is_const(g, v) && !(n->op == NNM_OP_SHAPE && j == 0)) {
            rc = nnm_diag_set(diag, NNM_EINVAL,
                              "node '%s' (%s): input '%s' is not constant, cannot fold",
                              n->name, n->onnx_op, g->values[v].name);
            goto fail;
        }
        ins[j] = ir__value_tensor(g, v);
        inp[j] = &ins[j];
    }
    size_t limit = fold_limit(g), total = 0;
    for (int j = 0; j < n_out; j++) {
        int v = n->out[j];
        if (v < 0) continue;
        const nnm_value *val = &g->values[v];
        int64_t ne = val->ndim < 0 ? 0 : nnm_shape_numel(val->shape, val->ndim,
                                                          nnm_dtype_size(val->dtype));
        size_t bytes = ne < 0 ? SIZE_MAX : (size_t)ne * nnm_dtype_size(val->dtype);
        total = bytes > SIZE_MAX - total ? SIZE_MAX : total + bytes;
        if (total > limit) {
            char sb[128];
            rc = nnm_diag_set(diag, NNM_ERANGE,
                              "node '%s' (%s): folding it would create constant '%s' %s %s, "
                              "more than the %zu MiB this model can justify",
                              n->name, n->onnx_op, val->name, nnm_dtype_name(val->dtype),
                              nnm_shape_format(sb, sizeof sb, val->shape, val->ndim),
                              limit >> 20);
            goto fail;
        }
        if (val->ndim < 0) {
            rc = nnm_diag_set(diag, NNM_EINVAL,
                              "node '%s' (%s): output '%s' has no inferred shape, cannot fold",
                              n->name, n->onnx_op, val->name);
            goto fail;
        }
        rc = nnm_tensor_init(&outs[j], val->dtype, val->ndim, val->shape);
        if (rc != NNM_OK) {
            char sb[128];
            rc = nnm_diag_set(diag, rc, "node '%s' (%s): cannot allocate constant '%s' %s %s",
                              n->name, n->onnx_op, val->name, nnm_dtype_name(val->dtype),
                              nnm_shape_format(sb, sizeof sb, val->shape, val->ndim));
            goto fail;
        }
        outp[j] = &outs[j];
    }
    if (n->op == NNM_OP_SHAPE && n_out >= 1 && outp[0] != NULL && inp[0] != NULL &&
        outs[0].dtype == NNM_DT_I64 && outs[0].nbytes == (size_t)ins[0].ndim * sizeof(int64_t)) {
        /* Shapes are static: no kernel needed (the input may have no data yet). */
        for (int d = 0; d < ins[0].ndim; d++) ((int64_t *)outs[0].data)[d] = ins[0].shape[d];
    } else if ((rc = nnm_ref_run(n, inp, (nnm_tensor *const *)outp, diag)) != NNM_OK) {
        goto fail;
    }
    /* Commit: nothing fails below. */
    for (int j = 0; j < n_out; j++) {
        int v = n->out[j];
        if (v < 0) continue;
        nnm_value *val = &g->values[v];
        val->data = outs[j].data;
        val->nbytes = outs[j].nbytes;
        val->producer = -1;
        outs[j].owned = 0;
    }
    n->op = NNM_OP_INVALID;
    rc = NNM_OK;
fail:
    if (outs)
        for (int j = 0; j < n_out; j++) nnm_tensor_cleanup(&outs[j]);
    free(ins);
    free(outs);
    free(inp);
    free(outp);
    return rc;
}

/* Makes the constant in slot `slot` of node ni private to that node (copying it if anyone
 * else reads it or it is a graph output), so that it can be modified in place. */
static nnm_err const_private(nnm_graph *g, int ni, int slot, nnm_diag *diag)
{
    int v = g->nodes[ni].in[slot];
    if (ir__use_count(g, v) <= 1) return NNM_OK;
    nnm_tensor src = ir__value_tensor(g, v), t;
    if (nnm_tensor_init(&t, src.dtype, src.ndim, src.shape) != NNM_OK)
        return nnm_diag_set(diag, NNM_ENOMEM, "node '%s': out of memory copying '%s'",
                            g->nodes[ni].name, g->values[v].name);
    memcpy(t.data, src.data, src.nbytes);
    char name[512];
    snprintf(name, sizeof name, "%s__%s", g->values[v].name, g->nodes[ni].name);
    for (int k = 1; ir__value_find(g, name) >= 0 && k < 1000000; k++)
        snprintf(name, sizeof name, "%s__%s%d", g->values[v].name, g->nodes[ni].name, k);
    int id = ir__const_add(g, name, &t);
    if (id < 0) {
        nnm_tensor_cleanup(&t);
        return nnm_diag_set(diag, NNM_ENOMEM, "node '%s': out of memory copying '%s'",
                            g->nodes[ni].name, g->values[v].name);
    }
    g->nodes[ni].in[slot] = id;
    return NNM_OK;
}

/* Gives node ni an input in slot `slot` holding a new zero float constant of `len` values
 * (growing its input list). */
static nnm_err const_new_input(nnm_graph *g, int ni, int slot, int64_t len, nnm_diag *diag)
{
    nnm_node *n = &g->nodes[ni];
    if (n->n_in <= slot) {
        int *in = realloc(n->in, sizeof(int) * (size_t)(slot + 1));
        if (in == NULL) goto oom;
        for (int j = n->n_in; j <= slot; j++) in[j] = -1;
        n->in = in;
        n->n_in = slot + 1;
    }
    nnm_tensor t;
    if (nnm_tensor_init(&t, NNM_DT_F32, 1, &len) != NNM_OK) goto oom;
    char name[512];
    snprintf(name, sizeof name, "%s.bias", n->name);
    for (int k = 1; ir__value_find(g, name) >= 0 && k < 1000000; k++)
        snprintf(name, sizeof name, "%s.bias%d", n->name, k);
    int id = ir__const_add(g, name, &t);
    if (id < 0) {
        nnm_tensor_cleanup(&t);
        goto oom;
    }
    g->nodes[ni].in[slot] = id;
    return NNM_OK;
oom:
    return nnm_diag_set(diag, NNM_ENOMEM, "node '%s': out of memory folding BatchNormalization",
                        g->nodes[ni].name);
}

static int is_f32_const(const nnm_graph *g, int v)
{
    return ir__is_const(g, v) && g->values[v].dtype == NNM_DT_F32;
}

static int64_t value_numel(const nnm_graph *g, int v)
{
    const nnm_value *val = &g->values[v];
    return val->ndim < 0 ? -1 : nnm_shape_numel(val->shape, val->ndim, 1);
}

/* Checks that BN node b can be folded into its producer; returns the producer or -1. */
static int bn_target(const nnm_graph *g, int b)
{
    const nnm_node *bn = &g->nodes[b];
    if (bn->n_in < 5 || bn->in[0] < 0) return -1;
    for (int j = 1; j < bn->n_out; j++)
        if (bn->out[j] >= 0) return -1;
    if (bn->out[0] < 0) return -1;
    int x = bn->in[0];
    const nnm_value *xv = &g->values[x];
    if (xv->dtype != NNM_DT_F32 || xv->ndim < 2 || bn->a.layout != NNM_IR_NCHW) return -1;
    int64_t C = xv->shape[1];
    for (int j = 1; j < 5; j++)
        if (!is_f32_const(g, bn->in[j]) || value_numel(g, bn->in[j]) != C) return -1;
    int p = xv->producer;
    if (p < 0 || p >= b) return -1;
    const nnm_node *pn = &g->nodes[p];
    if (pn->n_out < 1 || pn->out[0] != x) return -1;
    if (ir__use_count(g, x) != 1) return -1;
    if (pn->n_in < 2 || !is_f32_const(g, pn->in[1])) return -1;
    int has_b = pn->n_in >= 3 && pn->in[2] >= 0;
    const nnm_value *w = &g->values[pn->in[1]];
    if (pn->a.act) return -1;   /* a clamp sits between the conv and the BN */
    switch (pn->op) {
    case NNM_OP_CONV:
        if (w->ndim < 3 || w->shape[0] != C || pn->a.layout != NNM_IR_NCHW) return -1;
        if (has_b && (!is_f32_const(g, pn->in[2]) || value_numel(g, pn->in[2]) != C)) return -1;
        return p;
    case NNM_OP_CONV_TRANSPOSE:
        if (w->ndim < 3 || pn->a.group < 1 || w->shape[1] * pn->a.group != C ||
            w->shape[0] % pn->a.group != 0 || pn->a.layout != NNM_IR_NCHW)
            return -1;
        if (has_b && (!is_f32_const(g, pn->in[2]) || value_numel(g, pn->in[2]) != C)) return -1;
        return p;
    case NNM_OP_GEMM:
        if (xv->ndim != 2 || w->ndim != 2 || w->shape[pn->a.trans_b ? 0 : 1] != C) return -1;
        if (has_b) {
            int64_t nc = value_numel(g, pn->in[2]);
            const nnm_value *cv = &g->values[pn->in[2]];
            if (!is_f32_const(g, pn->in[2])) return -1;
            if (!(nc == 1 || (nc == C && cv->shape[cv->ndim - 1] == C))) return -1;
        }
        return p;
    default:
        return -1;
    }
}

static nnm_err fold_one_bn(nnm_graph *g, int b, int p, nnm_diag *diag)
{
    nnm_err rc;
    const nnm_node *bn = &g->nodes[b];
    int64_t C = g->values[bn->in[0]].shape[1];
    double *s = malloc(sizeof(double) * (size_t)(C ? C : 1));
    double *sh = malloc(sizeof(double) * (size_t)(C ? C : 1));
    if (s == NULL || sh == NULL) {
        rc = nnm_diag_set(diag, NNM_ENOMEM, "node '%s': out of memory folding BatchNormalization",
                          bn->name);
        goto fail;
    }
    const float *scale = g->values[bn->in[1]].data, *bias = g->values[bn->in[2]].data;
    const float *mean = g->values[bn->in[3]].data, *var = g->values[bn->in[4]].data;
    for (int64_t c = 0; c < C; c++) {
        s[c] = (double)scale[c] / sqrt((double)var[c] + (double)bn->a.epsilon);
        sh[c] = (double)bias[c] - (double)mean[c] * s[c];
    }
    /* Private, writable weight and bias (or a fresh zero bias). */
    if ((rc = const_private(g, p, 1, diag)) != NNM_OK) goto fail;
    nnm_node *pn = &g->nodes[p];
    int had_bias = pn->n_in >= 3 && pn->in[2] >= 0;
    float old_c = 0.0f;   /* Gemm's scalar C, broadcast to every column */
    int c_scalar = 0;
    if (had_bias && pn->op == NNM_OP_GEMM && value_numel(g, pn->in[2]) == 1 && C != 1) {
        old_c = *(const float *)g->values[pn->in[2]].data;
        c_scalar = 1;
        had_bias = 0;
    }
    if (had_bias) {
        if ((rc = const_private(g, p, 2, diag)) != NNM_OK) goto fail;
    } else {
        if ((rc = const_new_input(g, p, 2, C, diag)) != NNM_OK) goto fail;
        if (c_scalar)
            for (int64_t c = 0; c < C; c++) ((float *)g->values[g->nodes[p].in[2]].data)[c] = old_c;
    }
    pn = &g->nodes[p];
    bn = &g->nodes[b];
    nnm_value *wv = &g->values[pn->in[1]];
    float *w = wv->data;
    float *bb = g->values[pn->in[2]].data;
    int64_t wn = value_numel(g, pn->in[1]);
    switch (pn->op) {
    case NNM_OP_CONV: {
        int64_t per = C ? wn / C : 0;
        for (int64_t m = 0; m < C; m++)
            for (int64_t k = 0; k < per; k++) w[m * per + k] = (float)(w[m * per + k] * s[m]);
        for (int64_t m = 0; m < C; m++) bb[m] = (float)(bb[m] * s[m] + sh[m]);
        break;
    }
    case NNM_OP_CONV_TRANSPOSE: {
        int64_t cin = wv->shape[0], mg = wv->shape[1], grp = pn->a.group;
        int64_t per = (cin && mg) ? wn / (cin * mg) : 0, cig = cin / grp;
        for (int64_t ci = 0; ci < cin; ci++)
            for (int64_t j = 0; j < mg; j++) {
                double f = s[(ci / cig) * mg + j];
                float *row = w + (ci * mg + j) * per;
                for (int64_t k = 0; k < per; k++) row[k] = (float)(row[k] * f);
            }
        for (int64_t m = 0; m < C; m++) bb[m] = (float)(bb[m] * s[m] + sh[m]);
        break;
    }
    default: {   /* GEMM: Y = alpha*A*B' + beta*C, B' column n scaled; C' = s*C + sh/beta */
        int64_t rows = wv->shape[0], cols = wv->shape[1];
        for (int64_t r = 0; r < rows; r++)
            for (int64_t q = 0; q < cols; q++) {
                int64_t nidx = pn->a.trans_b ? r : q;
                w[r * cols + q] = (float)(w[r * cols + q] * s[nidx]);
            }
        if (!had_bias && !c_scalar) pn->a.beta = pn->a.beta == 0.0f ? 1.0f : pn->a.beta;
        if (pn->a.beta == 0.0f) {   /* C was ignored: replace it */
            pn->a.beta = 1.0f;
            for (int64_t m = 0; m < C; m++) bb[m] = 0.0f;
        }
        for (int64_t m = 0; m < C; m++)
            bb[m] = (float)(bb[m] * s[m] + sh[m] / (double)pn->a.beta);
        break;
    }
    }
    /* Rewire: the producer now writes the BN's output; the BN node disappears. */
    int old = pn->out[0], y = bn->out[0];
    pn->out[0] = y;
    g->values[y].producer = p;
    g->values[old].producer = -1;
    g->nodes[b].op = NNM_OP_INVALID;
    rc = NNM_OK;
fail:
    free(s);
    free(sh);
    return rc;
}

nnm_err ir__fold_batchnorm(nnm_graph *g, nnm_diag *diag)
{
    for (int b = 0; b < g->n_nodes; b++) {
        if (g->nodes[b].op != NNM_OP_BATCHNORM) continue;
        int p = bn_target(g, b);
        if (p < 0) continue;   /* runs as a standalone BatchNormalization */
        nnm_err rc = fold_one_bn(g, b, p, diag);
        if (rc != NNM_OK) return rc;
    }
    return NNM_OK;
}

nnm_err ir__fuse_activations(nnm_graph *g, nnm_diag *diag)
{
    (void)diag;
    for (int r = 0; r < g->n_nodes; r++) {
        nnm_node *act = &g->nodes[r];
        if (act->op != NNM_OP_RELU && act->op != NNM_OP_CLIP) continue;
        if (act->n_in < 1 || act->in[0] < 0 || act->n_out != 1 || act->out[0] < 0) continue;
        int bounds_known = 1;
        for (int j = 1; j < act->n_in; j++)
            if (act->in[j] >= 0) bounds_known = 0;   /* Clip bounds computed at run time */
        if (!bounds_known) continue;
        int x = act->in[0];
        if (g->values[x].dtype != NNM_DT_F32) continue;
        int p = g->values[x].producer;
        if (p < 0 || p >= r) continue;
        nnm_node *pn = &g->nodes[p];
        if (pn->op != NNM_OP_CONV && pn->op != NNM_OP_CONV_TRANSPOSE && pn->op != NNM_OP_GEMM &&
            pn->op != NNM_OP_MATMUL && pn->op != NNM_OP_ADD)
            continue;
        if (pn->n_out != 1 || pn->out[0] != x || ir__use_count(g, x) != 1) continue;
        float lo = act->op == NNM_OP_RELU ? 0.0f : act->a.act_min;
        float hi = act->op == NNM_OP_RELU ? INFINITY : act->a.act_max;
        if (isnan(lo) || isnan(hi)) continue;
        if (pn->a.act) {
            lo = fmaxf(lo, pn->a.act_min);
            hi = fminf(hi, pn->a.act_max);
        }
        if (lo > hi) continue;   /* Clip's min > max answers max: leave it to the kernel */
        pn->a.act = 1;
        pn->a.act_min = lo;
        pn->a.act_max = hi;
        int y = act->out[0];
        pn->out[0] = y;
        g->values[y].producer = p;
        g->values[x].producer = -1;
        act->op = NNM_OP_INVALID;
    }
    return NNM_OK;
}

nnm_err ir__optimize(nnm_graph *g, nnm_diag *diag)
{
    nnm_err rc;
    /* (A graph without nodes is already sorted; ir__toposort would memcpy to NULL.) */
    if (g->n_nodes > 0 && (rc = ir__toposort(g, diag)) != NNM_OK) return rc;
    if ((rc = ir__infer(g, diag)) != NNM_OK) return rc;
    if ((rc = ir__fold_batchnorm(g, diag)) != NNM_OK) return rc;
    if ((rc = ir__fuse_activations(g, diag)) != NNM_OK) return rc;
    if ((rc = ir__prune(g)) != NNM_OK)
        return nnm_diag_set(diag, rc, "out of memory pruning the graph");
    return ir__infer(g, diag);
}
