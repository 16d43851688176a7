/* runtime/graph.c — building and maintaining the graph IR: values, nodes, topological
 * order, pruning, and the op name table. */
#include <stdlib.h>
#include <string.h>

#include "ir.h"

static const struct { nnm_op op; const char *name; } op_table[] = {
    { NNM_OP_CONV, "Conv" }, { NNM_OP_CONV_TRANSPOSE, "ConvTranspose" },
    { NNM_OP_GEMM, "Gemm" }, { NNM_OP_MATMUL, "MatMul" },
    { NNM_OP_ADD, "Add" }, { NNM_OP_SUB, "Sub" }, { NNM_OP_MUL, "Mul" }, { NNM_OP_DIV, "Div" },
    { NNM_OP_POW, "Pow" }, { NNM_OP_MAX, "Max" }, { NNM_OP_MIN, "Min" },
    { NNM_OP_SQRT, "Sqrt" }, { NNM_OP_EXP, "Exp" }, { NNM_OP_LOG, "Log" }, { NNM_OP_ERF, "Erf" },
    { NNM_OP_RELU, "Relu" }, { NNM_OP_SIGMOID, "Sigmoid" }, { NNM_OP_TANH, "Tanh" },
    { NNM_OP_HARD_SWISH, "HardSwish" }, { NNM_OP_LEAKY_RELU, "LeakyRelu" },
    { NNM_OP_CLIP, "Clip" }, { NNM_OP_HARD_SIGMOID, "HardSigmoid" },
    { NNM_OP_SOFTMAX, "Softmax" }, { NNM_OP_MAXPOOL, "MaxPool" },
    { NNM_OP_AVGPOOL, "AveragePool" }, { NNM_OP_GLOBAL_AVGPOOL, "GlobalAveragePool" },
    { NNM_OP_GLOBAL_MAXPOOL, "GlobalMaxPool" }, { NNM_OP_BATCHNORM, "BatchNormalization" },
    { NNM_OP_FLATTEN, "Flatten" }, { NNM_OP_RESHAPE, "Reshape" }, { NNM_OP_SQUEEZE, "Squeeze" },
    { NNM_OP_UNSQUEEZE, "Unsqueeze" }, { NNM_OP_IDENTITY, "Identity" },
    { NNM_OP_DROPOUT, "Dropout" }, { NNM_OP_TRANSPOSE, "Transpose" },
    { NNM_OP_CONCAT, "Concat" }, { NNM_OP_SPLIT, "Split" }, { NNM_OP_SLICE, "Slice" },
    { NNM_OP_PAD, "Pad" }, { NNM_OP_GATHER, "Gather" }, { NNM_OP_SHAPE, "Shape" },
    { NNM_OP_CONSTANT, "Constant" }, { NNM_OP_CONSTANT_OF_SHAPE, "ConstantOfShape" },
    { NNM_OP_CAST, "Cast" }, { NNM_OP_RESIZE, "Resize" },
    { NNM_OP_REDUCE_MEAN, "ReduceMean" }, { NNM_OP_REDUCE_MAX, "ReduceMax" },
};

const char *ir__op_name(nnm_op op)
{
    for (size_t i = 0; i < sizeof op_table / sizeof op_table[0]; i++)
        if (op_table[i].op == op) return op_table[i].name;
    return "?";
}

nnm_op ir__op_from_onnx(const char *op_type)
{
    for (size_t i = 0; i < sizeof op_table / sizeof op_table[0]; i++)
        if (strcmp(op_table[i].name, op_type) == 0) return op_table[i].op;
    return NNM_OP_INVALID;
}

nnm_graph *ir__graph_new(void)
{
    return calloc(1, sizeof(nnm_graph));
}

void ir__attrs_cleanup(nnm_attrs *a)
{
    free(a->ints);
    free(a->ints2);
    free(a->ints3);
    a->ints = a->ints2 = a->ints3 = NULL;
    a->n_ints = a->n_ints2 = a->n_ints3 = 0;
}

static int64_t *dup_ints(const int64_t *p, int n, int *ok)
{
    if (n <= 0 || p == NULL) return NULL;
    int64_t *q = malloc((size_t)n * sizeof *q);
    if (q == NULL) { *ok = 0; return NULL; }
    memcpy(q, p, (size_t)n * sizeof *q);
    return q;
}

nnm_err ir__attrs_copy(nnm_attrs *dst, const nnm_attrs *src)
{
    int ok = 1;
    *dst = *src;
    dst->ints = dup_ints(src->ints, src->n_ints, &ok);
    dst->ints2 = dup_ints(src->ints2, src->n_ints2, &ok);
    dst->ints3 = dup_ints(src->ints3, src->n_ints3, &ok);
    if (!ok) {
        ir__attrs_cleanup(dst);
        return NNM_ENOMEM;
    }
    return NNM_OK;
}

static void node_cleanup(nnm_node *n)
{
    free(n->name);
    free(n->onnx_op);
    free(n->in);
    free(n->out);
    ir__attrs_cleanup(&n->a);
}

void ir__graph_free(nnm_graph *g)
{
    if (g == NULL) return;
    for (int i = 0; i < g->n_values; i++) {
        free(g->values[i].name);
        if (!g->values[i].borrowed) free(g->values[i].data);
    }
    for (int i = 0; i < g->n_nodes; i++) node_cleanup(&g->nodes[i]);
    free(g->values);
    free(g->nodes);
    free(g->inputs);
    free(g->outputs);
    free(g->source);
    free(g->in_region);
    free(g->out_region);
    free(g);
}

int ir__value_find(const nnm_graph *g, const char *name)
{
    for (int i = 0; i < g->n_values; i++)
        if (strcmp(g->values[i].name, name) == 0) return i;
    return -1;
}

static int grow(void **p, int *cap, int need, size_t elem)
{
    if (need <= *cap) return 0;
    int nc = *cap ? *cap * 2 : 16;
    while (nc < need) nc *= 2;
    void *q = realloc(*p, (size_t)nc * elem);
    if (q == NULL) return -1;
    memset((char *)q + (size_t)*cap * elem, 0, (size_t)(nc - *cap) * elem);
    *p = q;
    *cap = nc;
    return 0;
}

int ir__value_add(nnm_graph *g, const char *name, nnm_dtype dt)
{
    if (ir__value_find(g, name) >= 0) return -1;
    if (grow((void **)&g->values, &g->cap_values, g->n_values + 1, sizeof(nnm_value)) != 0)
        return -1;
    char *nm = strdup(name);
    if (nm == NULL) return -1;
    nnm_value *v = &g->values[g->n_values];
    memset(v, 0, sizeof *v);
    v->name = nm;
    v->dtype = dt;
    v->ndim = -1;
    v->producer = -1;
    return g->n_values++;
}

int ir__const_add(nnm_graph *g, const char *name, nnm_tensor *t)
{
    int id = ir__value_add(g, name, t->dtype);
    if (id < 0) return -1;
    nnm_value *v = &g->values[id];
    v->ndim = t->ndim;
    for (int i = 0; i < t->ndim; i++) v->shape[i] = t->shape[i];
    if (t->owned) {
        v->data = t->data;
    } else {
        v->data = malloc(t->nbytes ? t->nbytes : 1);
        if (v->data == NULL) {
            free(v->name);
            g->n_values--;
            return -1;
        }
        memcpy(v->data, t->data, t->nbytes);
    }
    if (v->data == NULL) v->data = malloc(1);   /* empty constants still count as constant */
    v->nbytes = t->nbytes;
    memset(t, 0, sizeof *t);
    return id;
}

int ir__const_borrow(nnm_graph *g, const char *name, const nnm_graph *src, int src_v)
{
    const nnm_value *sv = &src->values[src_v];
    if (sv->data == NULL) return -1;
    int id = ir__value_add(g, name, sv->dtype);
    if (id < 0) return -1;
    nnm_value *v = &g->values[id];
    v->ndim = sv->ndim;
    for (int i = 0; i < sv->ndim; i++) v->shape[i] = sv->shape[i];
    v->data = sv->data;
    v->nbytes = sv->nbytes;
    v->borrowed = 1;
    return id;
}

int ir__node_add(nnm_graph *g, nnm_op op, const char *name, const char *onnx_op,
                 const int *in, int n_in, const int *out, int n_out)
{
    if (grow((void **)&g->nodes, &g->cap_nodes, g->n_nodes + 1, sizeof(nnm_node)) != 0)
        return -1;
    nnm_node *n = &g->nodes[g->n_nodes];
    memset(n, 0, sizeof *n);
    n->op = op;
    n->name = strdup(name);
    n->onnx_op = strdup(onnx_op ? onnx_op : ir__op_name(op));
    n->in = malloc((size_t)(n_in > 0 ? n_in : 1) * sizeof(int));
    n->out = malloc((size_t)(n_out > 0 ? n_out : 1) * sizeof(int));
    if (!n->name || !n->onnx_op || !n->in || !n->out) {
        node_cleanup(n);
        memset(n, 0, sizeof *n);
        return -1;
    }
    if (n_in > 0) memcpy(n->in, in, (size_t)n_in * sizeof(int));
    if (n_out > 0) memcpy(n->out, out, (size_t)n_out * sizeof(int));
    n->n_in = n_in;
    n->n_out = n_out;
    n->a.group = 1;
    n->a.alpha = 1.0f;
    n->a.beta = 1.0f;
    for (int i = 0; i < 2; i++) n->a.strides[i] = n->a.dilations[i] = 1;
    for (int i = 0; i < n_out; i++)
        if (out[i] >= 0) g->values[out[i]].producer = g->n_nodes;
    return g->n_nodes++;
}

nnm_tensor ir__value_tensor(const nnm_graph *g, int v)
{
    nnm_tensor t;
    memset(&t, 0, sizeof t);
    if (v < 0 || v >= g->n_values) return t;
    const nnm_value *val = &g->values[v];
    t.dtype = val->dtype;
    t.ndim = val->ndim < 0 ? 0 : val->ndim;
    for (int i = 0; i < t.ndim; i++) t.shape[i] = val->shape[i];
    t.data = val->data;
    t.nbytes = val->nbytes;
    return t;
}

int ir__is_const(const nnm_graph *g, int v)
{
    return v >= 0 && v < g->n_values && g->values[v].data != NULL;
}

int ir__use_count(const nnm_graph *g, int v)
{
    int c = g->values[v].is_output ? 1 : 0;
    for (int i = 0; i < g->n_nodes; i++) {
        const nnm_node *n = &g->nodes[i];
        if (n->op == NNM_OP_INVALID) continue;
        for (int j = 0; j < n->n_in; j++)
            if (n->in[j] == v) c++;
    }
    return c;
}

nnm_err ir__toposort(nnm_graph *g, nnm_diag *diag)
{
    int nn = g->n_nodes, nv = g->n_values;
    nnm_err rc = NNM_ENOMEM;
    int *prod = malloc((size_t)(nv ? nv : 1) * sizeof(int));
    int *ready = calloc((size_t)(nv ? nv : 1), sizeof(int));
    int *done = calloc((size_t)(nn ? nn : 1), sizeof(int));
    nnm_node *sorted = malloc((size_t)(nn ? nn : 1) * sizeof(nnm_node));
    if (!prod || !ready || !done || !sorted) goto out;
    for (int v = 0; v < nv; v++) prod[v] = -1;
    for (int i = 0; i < nn; i++) {
        for (int j = 0; j < g->nodes[i].n_out; j++) {
            int v = g->nodes[i].out[j];
            if (v < 0) continue;
            if (prod[v] >= 0 || g->values[v].data != NULL) {
                rc = nnm_diag_set(diag, NNM_EFORMAT,
                                  "value '%s' is produced by more than one node ('%s', '%s')",
                                  g->values[v].name, prod[v] >= 0 ? g->nodes[prod[v]].name : "initializer",
                                  g->nodes[i].name);
                goto out;
            }
            prod[v] = i;
        }
    }
    for (int v = 0; v < nv; v++) ready[v] = prod[v] < 0;
    int k = 0;
    /* Kahn's algorithm, stable: repeatedly take the first node whose inputs are ready. */
    for (int progress = 1; progress && k < nn;) {
        progress = 0;
        for (int i = 0; i < nn; i++) {
            if (done[i]) continue;
            const nnm_node *n = &g->nodes[i];
            int ok = 1;
            for (int j = 0; j < n->n_in && ok; j++)
                if (n->in[j] >= 0 && !ready[n->in[j]]) ok = 0;
            if (!ok) continue;
            done[i] = 1;
            sorted[k++] = *n;
            for (int j = 0; j < n->n_out; j++)
                if (n->out[j] >= 0) ready[n->out[j]] = 1;
            progress = 1;
        }
    }
    if (k < nn) {
        for (int i = 0; i < nn; i++)
            if (!done[i]) {
                rc = nnm_diag_set(diag, NNM_EFORMAT,
                                  "node '%s' (%s) is part of a cycle or reads a value nothing produces",
                                  g->nodes[i].name, g->nodes[i].onnx_op);
                break;
            }
        goto out;
    }
    if (nn > 0) memcpy(g->nodes, sorted, (size_t)nn * sizeof(nnm_node));
    for (int v = 0; v < nv; v++) g->values[v].producer = -1;
    for (int i = 0; i < nn; i++)
        for (int j = 0; j < g->nodes[i].n_out; j++)
            if (g->nodes[i].out[j] >= 0) g->values[g->nodes[i].out[j]].producer = i;
    rc = NNM_OK;
out:
    free(prod);
    free(ready);
    free(done);
    free(sorted);
    return rc;
}

nnm_err ir__prune(nnm_graph *g)
{
    int nn = g->n_nodes, nv = g->n_values;
    char *live_v = calloc((size_t)(nv ? nv : 1), 1);
    char *live_n = calloc((size_t)(nn ? nn : 1), 1);
    int *remap = malloc((size_t)(nv ? nv : 1) * sizeof(int));
    if (!live_v || !live_n || !remap) {
        free(live_v); free(live_n); free(remap);
        return NNM_ENOMEM;
    }
    for (int i = 0; i < g->n_outputs; i++) live_v[g->outputs[i]] = 1;
    for (int i = 0; i < g->n_inputs; i++) live_v[g->inputs[i]] = 1;
    /* Reverse topological sweep: a node is live if it produces a live value. */
    for (int i = nn - 1; i >= 0; i--) {
        nnm_node *n = &g->nodes[i];
        if (n->op == NNM_OP_INVALID) continue;
        int live = 0;
        for (int j = 0; j < n->n_out; j++)
            if (n->out[j] >= 0 && live_v[n->out[j]] && !g->values[n->out[j]].data) live = 1;
        if (!live) continue;
        live_n[i] = 1;
        for (int j = 0; j < n->n_in; j++)
            if (n->in[j] >= 0) live_v[n->in[j]] = 1;
        for (int j = 0; j < n->n_out; j++)
            if (n->out[j] >= 0) live_v[n->out[j]] = 1;
    }
    /* Compact values. */
    int k = 0;
    for (int v = 0; v < nv; v++) {
        if (live_v[v]) {
            remap[v] = k;
            g->values[k++] = g->values[v];
        } else {
            remap[v] = -1;
            free(g->values[v].name);
            if (!g->values[v].borrowed) free(g->values[v].data);
        }
    }
    g->n_values = k;
    /* Compact nodes. */
    k = 0;
    for (int i = 0; i < nn; i++) {
        nnm_node *n = &g->nodes[i];
        if (!live_n[i]) {
            node_cleanup(n);
            continue;
        }
        for (int j = 0; j < n->n_in; j++)
            if (n->in[j] >= 0) n->in[j] = remap[n->in[j]];
        for (int j = 0; j < n->n_out; j++)
            if (n->out[j] >= 0) n->out[j] = remap[n->out[j]];
        g->nodes[k++] = *n;
    }
    g->n_nodes = k;
    for (int i = 0; i < g->n_inputs; i++) g->inputs[i] = remap[g->inputs[i]];
    for (int i = 0; i < g->n_outputs; i++) g->outputs[i] = remap[g->outputs[i]];
    for (int v = 0; v < g->n_values; v++) g->values[v].producer = -1;
    for (int i = 0; i < g->n_nodes; i++)
        for (int j = 0; j < g->nodes[i].n_out; j++)
            if (g->nodes[i].out[j] >= 0) g->values[g->nodes[i].out[j]].producer = i;
    free(live_v);
    free(live_n);
    free(remap);
    return NNM_OK;
}
