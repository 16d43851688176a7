/* tests/unit/test_sched_util.h — helpers shared by the scheduler tests: small graphs built
 * with the IR API (conv chains, residual blocks, disjoint branches) with seeded random
 * weights, meshes, and running a graph whole for comparison. Header-only (static). */
#ifndef TEST_SCHED_UTIL_H
#define TEST_SCHED_UTIL_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nnmesh/scheduler.h"
#include "ir.h"

static uint64_t tu_rng = 88172645463325252ull;

static __attribute__((unused)) float tu_rand(void)
{
    tu_rng ^= tu_rng << 13;
    tu_rng ^= tu_rng >> 7;
    tu_rng ^= tu_rng << 17;
    return (float)((tu_rng >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

typedef struct tu_graph {
    nnm_graph *g;
    int counter;
} tu_graph;

static __attribute__((unused)) int tu_input(tu_graph *b, const char *name, int nd, const int64_t *s)
{
    nnm_graph *g = b->g;
    int v = ir__value_add(g, name, NNM_DT_F32);
    g->values[v].ndim = nd;
    for (int d = 0; d < nd; d++) g->values[v].shape[d] = s[d];
    g->values[v].is_input = 1;
    g->inputs = realloc(g->inputs, (size_t)(g->n_inputs + 1) * sizeof(int));
    g->inputs[g->n_inputs++] = v;
    return v;
}

static __attribute__((unused)) int tu_const(tu_graph *b, int nd, const int64_t *s, float scale)
{
    char name[64];
    snprintf(name, sizeof name, "w%d", b->counter++);
    nnm_tensor t;
    nnm_tensor_init(&t, NNM_DT_F32, nd, s);
    float *p = t.data;
    for (size_t i = 0; i < t.nbytes / 4; i++) p[i] = tu_rand() * scale;
    return ir__const_add(b->g, name, &t);
}

static __attribute__((unused)) int tu_val(tu_graph *b)
{
    char name[64];
    snprintf(name, sizeof name, "v%d", b->counter++);
    return ir__value_add(b->g, name, NNM_DT_UNDEFINED);
}

static __attribute__((unused)) int tu_node(tu_graph *b, nnm_op op, const char *onnx, const int *in, int n_in)
{
    char name[64];
    snprintf(name, sizeof name, "%s_%d", onnx, b->counter++);
    int out = tu_val(b);
    ir__node_add(b->g, op, name, onnx, in, n_in, &out, 1);
    return out;
}

/* Conv cin -> cout, kernel k, stride st, group gr, "same" padding, with bias, fused relu. */
static __attribute__((unused)) int tu_conv(tu_graph *b, int x, int64_t cin, int64_t cout, int k, int st, int gr)
{
    int64_t ws[4] = { cout, cin / gr, k, k }, bs[1] = { cout };
    int in[3] = { x, tu_const(b, 4, ws, 1.0f / sqrtf((float)(cin / gr * k * k))),
                  tu_const(b, 1, bs, 0.1f) };
    int y = tu_node(b, NNM_OP_CONV, "Conv", in, 3);
    nnm_node *n = &b->g->nodes[b->g->n_nodes - 1];
    n->a.kernel[0] = n->a.kernel[1] = k;
    n->a.strides[0] = n->a.strides[1] = st;
    n->a.pads[0] = n->a.pads[1] = n->a.pads[2] = n->a.pads[3] = k / 2;
    n->a.group = gr;
    n->a.act = 1;
    n->a.act_min = 0;
    n->a.act_max = INFINITY;
    return y;
}

static __attribute__((unused)) int tu_add(tu_graph *b, int x, int y)
{
    int in[2] = { x, y };
    return tu_node(b, NNM_OP_ADD, "Add", in, 2);
}

static __attribute__((unused)) int tu_head(tu_graph *b, int x, int64_t c, int64_t classes)
{
    int y = tu_node(b, NNM_OP_GLOBAL_AVGPOOL, "GlobalAveragePool", &x, 1);
    y = tu_node(b, NNM_OP_FLATTEN, "Flatten", &y, 1);
    b->g->nodes[b->g->n_nodes - 1].a.axis = 1;
    int64_t ws[2] = { classes, c }, bs[1] = { classes };
    int in[3] = { y, tu_const(b, 2, ws, 1.0f / sqrtf((float)c)), tu_const(b, 1, bs, 0.1f) };
    y = tu_node(b, NNM_OP_GEMM, "Gemm", in, 3);
    nnm_node *n = &b->g->nodes[b->g->n_nodes - 1];
    n->a.trans_b = 1;
    n->a.alpha = n->a.beta = 1;
    return y;
}

static __attribute__((unused)) nnm_graph *tu_finish(tu_graph *b, int out)
{
    nnm_graph *g = b->g;
    g->outputs = realloc(g->outputs, (size_t)(g->n_outputs + 1) * sizeof(int));
    g->outputs[g->n_outputs++] = out;
    g->values[out].is_output = 1;
    g->opset = 13;
    nnm_diag d;
    nnm_diag_clear(&d);
    if (ir__toposort(g, &d) != NNM_OK || ir__infer(g, &d) != NNM_OK) {
        fprintf(stderr, "test graph: %s\n", d.msg);
        ir__graph_free(g);
        return NULL;
    }
    return g;
}

/* A plain chain of `layers` 3x3 convs with c channels on h x h, then a classifier head. */
static __attribute__((unused)) nnm_graph *tu_chain(int layers, int64_t c, int64_t h)
{
    tu_graph b = { ir__graph_new(), 0 };
    int64_t s[4] = { 1, 3, h, h };
    int x = tu_input(&b, "input", 4, s);
    x = tu_conv(&b, x, 3, c, 3, 1, 1);
    for (int i = 1; i < layers; i++) x = tu_conv(&b, x, c, c, 3, 1, 1);
    return tu_finish(&b, tu_head(&b, x, c, 10));
}

/* MobileNetV2-like: stem, inverted residual blocks (1x1 expand, 3x3 depthwise, 1x1
 * project, residual add), head. */
static __attribute__((unused)) nnm_graph *tu_mobile(void)
{
    tu_graph b = { ir__graph_new(), 0 };
    int64_t s[4] = { 1, 3, 32, 32 };
    int x = tu_input(&b, "input", 4, s);
    x = tu_conv(&b, x, 3, 16, 3, 2, 1);
    for (int i = 0; i < 3; i++) {
        int e = tu_conv(&b, x, 16, 64, 1, 1, 1);
        e = tu_conv(&b, e, 64, 64, 3, 1, 64);
        e = tu_conv(&b, e, 64, 16, 1, 1, 1);
        x = tu_add(&b, x, e);
    }
    x = tu_conv(&b, x, 16, 32, 1, 1, 1);
    return tu_finish(&b, tu_head(&b, x, 32, 10));
}

/* NoNN-like: two disjoint sub-networks on the same input, logits added. */
static __attribute__((unused)) nnm_graph *tu_branches(int64_t c, int64_t h)
{
    tu_graph b = { ir__graph_new(), 0 };
    int64_t s[4] = { 1, 3, h, h };
    int x = tu_input(&b, "input", 4, s);
    int y1 = tu_conv(&b, x, 3, c, 3, 1, 1);
    y1 = tu_conv(&b, y1, c, c, 3, 1, 1);
    y1 = tu_head(&b, y1, c, 10);
    int y2 = tu_conv(&b, x, 3, c, 3, 1, 1);
    y2 = tu_conv(&b, y2, c, c, 3, 1, 1);
    y2 = tu_head(&b, y2, c, 10);
    return tu_finish(&b, tu_add(&b, y1, y2));
}

static __attribute__((unused)) void tu_node_set(nnm_sched *s, const char *id, double gf, uint64_t mem)
{
    nnm_mesh_node n;
    memset(&n, 0, sizeof n);
    snprintf(n.id, sizeof n.id, "%s", id);
    for (int c = 0; c < NNM_OPC_OTHER; c++) n.gflops[c] = gf;
    n.gflops[NNM_OPC_OTHER] = 2.0;
    n.free_mem = mem;
    nnm_err rc = nnm_sched_node_set(s, &n, NULL);
    if (rc != NNM_OK) abort();
}

/* Full mesh of links among ids. */
static __attribute__((unused)) void tu_links(nnm_sched *s, const char *const *ids, int n, double rtt, double mbps)
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            if (i != j && nnm_sched_link_set(s, ids[i], ids[j], rtt, mbps, NULL) != NNM_OK) abort();
}

/* Runs g whole on input x (one output). */
static __attribute__((unused)) nnm_err tu_run_whole(const nnm_graph *g, const nnm_tensor *x, nnm_tensor *y)
{
    nnm_exec *ex = NULL;
    nnm_err rc = nnm_exec_new(&ex, g, NULL, NULL);
    if (rc == NNM_OK) rc = nnm_exec_run(ex, x, 1, y, 1, NULL);
    nnm_exec_free(ex);
    return rc;
}

static __attribute__((unused)) void tu_random_input(const nnm_graph *g, nnm_tensor *x)
{
    const nnm_value *v = &g->values[g->inputs[0]];
    nnm_tensor_init(x, NNM_DT_F32, v->ndim, v->shape);
    float *p = x->data;
    for (size_t i = 0; i < x->nbytes / 4; i++) p[i] = tu_rand();
}

/* Max |a - b| relative to max |b|. */
static __attribute__((unused)) double tu_rel_diff(const nnm_tensor *a, const nnm_tensor *b)
{
    if (a->nbytes != b->nbytes) return INFINITY;
    const float *x = a->data, *y = b->data;
    double md = 0, sc = 0;
    for (size_t i = 0; i < a->nbytes / 4; i++) {
        double d = fabs((double)x[i] - (double)y[i]);
        if (d > md || isnan(d)) md = isnan(d) ? INFINITY : d;
        if (fabs((double)y[i]) > sc) sc = fabs((double)y[i]);
    }
    return sc > 0 ? md / sc : md;
}

#endif
