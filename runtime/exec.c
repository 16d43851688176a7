/* runtime/exec.c — the executor: binds a graph to kernels and runs it from one
 * liveness-planned activation arena.
 *
 * nnm_exec_new: (1) with XNNPACK enabled, rewrite the graph channels-last (layout.c);
 * (2) pick a backend per node: XNNPACK if it supports the node, else the reference;
 * (3) prepare every node (weight packing); (4) plan memory: every non-constant value gets a
 * buffer, data-movement ops (Reshape, Flatten, Squeeze, Unsqueeze, Identity, Dropout) alias
 * their input, and buffers whose lifetimes do not overlap share arena space (greedy by
 * size, largest first). nnm_exec_run copies the inputs into the arena, runs the steps in
 * order, and copies the outputs out.
 *
 * Invariant: a node's output buffer never overlaps any of its inputs' buffers (their
 * lifetimes overlap at that step), except for aliased data-movement ops, which do not run a
 * kernel at all.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <pthreadpool.h>

#include "nnmesh/exec.h"
#include "kernels.h"
#include "layout.h"

#define ARENA_ALIGN 64
#define SLACK 64            /* >= XNN_EXTRA_BYTES: XNNPACK may read past an input's end */

typedef struct step {
    const nnm_backend *be;
    void *state;
    int skip;                /* aliased data movement: no kernel */
} step;

struct nnm_exec {
    const nnm_graph *user;   /* the graph given by the caller */
    nnm_graph *own;          /* rewritten copy (NHWC), or NULL */
    const nnm_graph *g;      /* what runs: own or user */
    nnm_kctx ctx;
    step *steps;
    int *root;               /* value -> value whose buffer it uses (itself if not aliased) */
    size_t *offset;          /* root value -> arena offset; SIZE_MAX for constants */
    uint8_t *arena;
    size_t arena_bytes;
    int no_arena;
    uint8_t **bufs;          /* no_arena: per-root buffers */
};

static int is_alias_op(nnm_op op)
{
    switch (op) {
    case NNM_OP_RESHAPE: case NNM_OP_FLATTEN: case NNM_OP_SQUEEZE: case NNM_OP_UNSQUEEZE:
    case NNM_OP_IDENTITY: case NNM_OP_DROPOUT:
        return 1;
    default:
        return 0;
    }
}

static size_t value_bytes(const nnm_value *v)
{
    int64_t n = nnm_shape_numel(v->shape, v->ndim < 0 ? 0 : v->ndim, nnm_dtype_size(v->dtype));
    return n < 0 ? 0 : (size_t)n * nnm_dtype_size(v->dtype);
}

void nnm_exec_free(nnm_exec *ex)
{
    if (ex == NULL) return;
    if (ex->steps && ex->g) {
        for (int i = 0; i < ex->g->n_nodes; i++)
            if (ex->steps[i].be && ex->steps[i].be->release) ex->steps[i].be->release(ex->steps[i].state);
    }
    if (ex->bufs && ex->g) {
        for (int i = 0; i < ex->g->n_values; i++) free(ex->bufs[i]);
    }
    free(ex->bufs);
    free(ex->steps);
    free(ex->root);
    free(ex->offset);
    free(ex->arena);
    if (ex->ctx.pool) pthreadpool_destroy(ex->ctx.pool);
    ir__graph_free(ex->own);
    free(ex);
}

typedef struct buf {
    int v;                   /* root value */
    size_t size;
    int first, last;         /* step range where the buffer is live (inclusive) */
    size_t off;
} buf;

static int cmp_size_desc(const void *a, const void *b)
{
    const buf *x = a, *y = b;
    if (x->size != y->size) return x->size < y->size ? 1 : -1;
    return x->v - y->v;
}

static int cmp_off(const void *a, const void *b)
{
    const buf *x = *(const buf *const *)a, *y = *(const buf *const *)b;
    return x->off < y->off ? -1 : x->off > y->off;
}

/* Plans memory: roots, lifetimes, offsets. */
static nnm_err plan_memory(nnm_exec *ex)
{
    const nnm_graph *g = ex->g;
    int nv = g->n_values, nn = g->n_nodes;
    ex->root = malloc((size_t)(nv + 1) * sizeof(int));
    ex->offset = malloc((size_t)(nv + 1) * sizeof(size_t));
    int *first = malloc((size_t)(nv + 1) * sizeof(int));
    int *last = malloc((size_t)(nv + 1) * sizeof(int));
    buf *bufs = malloc((size_t)(nv + 1) * sizeof(buf));
    buf **placed = malloc((size_t)(nv + 1) * sizeof(buf *));
    nnm_err rc = NNM_ENOMEM;
    if (!ex->root || !ex->offset || !first || !last || !bufs || !placed) goto out;
    for (int v = 0; v < nv; v++) {
        ex->root[v] = v;
        ex->offset[v] = SIZE_MAX;
        first[v] = g->values[v].is_input ? -1 : nn;
        last[v] = -2;
    }
    for (int i = 0; i < nn; i++) {
        const nnm_node *n = &g->nodes[i];
        if (ex->steps[i].skip) {
            int r = ex->root[n->in[0]];
            ex->root[n->out[0]] = r;
            if (n->n_out > 1 && n->out[1] >= 0) first[n->out[1]] = i < first[n->out[1]] ? i : first[n->out[1]];
        }
        for (int j = 0; j < n->n_out; j++) {
            int v = n->out[j];
            if (v < 0) continue;
            int r = ex->root[v];
            if (i < first[r]) first[r] = i;
            if (i > last[r]) last[r] = i;
        }
        for (int j = 0; j < n->n_in; j++) {
            int v = n->in[j];
            if (v < 0 || g->values[v].data) continue;
            int r = ex->root[v];
            if (i > last[r]) last[r] = i;
        }
    }
    /* Graph outputs live to the end (they are copied out after the last step). */
    for (int i = 0; i < g->n_outputs; i++) {
        int r = ex->root[g->outputs[i]];
        if (g->values[r].data == NULL) last[r] = nn;
    }
    int nb = 0;
    for (int v = 0; v < nv; v++) {
        if (ex->root[v] != v || g->values[v].data != NULL) continue;
        if (last[v] < -1) last[v] = first[v];      /* produced, never read */
        bufs[nb].v = v;
        bufs[nb].size = (value_bytes(&g->values[v]) + SLACK + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN;
        bufs[nb].first = first[v];
        bufs[nb].last = last[v];
        nb++;
    }
    if (ex->no_arena) {
        ex->bufs = calloc((size_t)(nv + 1), sizeof(uint8_t *));
        if (!ex->bufs) goto out;
        size_t total = 0;
        for (int b = 0; b < nb; b++) {
            ex->bufs[bufs[b].v] = aligned_alloc(ARENA_ALIGN, bufs[b].size);
            if (!ex->bufs[bufs[b].v]) goto out;
            memset(ex->bufs[bufs[b].v], 0, bufs[b].size);
            total += bufs[b].size;
        }
        ex->arena_bytes = total;
        rc = NNM_OK;
        goto out;
    }
    /* Greedy by size: place each buffer at the lowest offset that does not collide with an
     * already placed buffer whose lifetime overlaps. */
    qsort(bufs, (size_t)nb, sizeof(buf), cmp_size_desc);
    size_t total = 0;
    for (int b = 0; b < nb; b++) {
        /* The already placed buffers (bufs[0..b)) whose lifetimes overlap this one. */
        int k = 0;
        for (int p = 0; p < b; p++) {
            if (bufs[p].last < bufs[b].first || bufs[b].last < bufs[p].first) continue;
            placed[k++] = &bufs[p];
        }
        qsort(placed, (size_t)k, sizeof(buf *), cmp_off);
        size_t off = 0;
        for (int p = 0; p < k; p++) {
            if (off + bufs[b].size <= placed[p]->off) break;
            size_t end = placed[p]->off + placed[p]->size;
            if (end > off) off = end;
        }
        bufs[b].off = off;
        if (off + bufs[b].size > total) total = off + bufs[b].size;
    }
    ex->arena_bytes = total;
    ex->arena = aligned_alloc(ARENA_ALIGN, total ? total : ARENA_ALIGN);
    if (!ex->arena) goto out;
    memset(ex->arena, 0, total);
    for (int b = 0; b < nb; b++) ex->offset[bufs[b].v] = bufs[b].off;
    rc = NNM_OK;
out:
    free(first);
    free(last);
    free(bufs);
    free(placed);
    return rc;
}

static void *value_ptr(const nnm_exec *ex, int v)
{
    const nnm_graph *g = ex->g;
    if (g->values[v].data) return g->values[v].data;
    int r = ex->root[v];
    if (ex->no_arena) return ex->bufs[r];
    return ex->arena + ex->offset[r];
}

nnm_err nnm_exec_new(nnm_exec **out, const nnm_graph *g, const nnm_exec_opts *opts,
                     nnm_diag *diag)
{
    nnm_exec_opts o = { 0 };
    if (opts) o = *opts;
    nnm_err rc = NNM_ENOMEM;
    nnm_exec *ex = calloc(1, sizeof *ex);
    if (ex == NULL) goto fail;
    ex->user = g;
    ex->g = g;
    ex->no_arena = o.no_arena;
    int use_xnn = o.backend != NNM_BACKEND_REF;
    if (use_xnn) {
        if ((rc = nnm_xnn_init(diag)) != NNM_OK) {
            if (o.backend == NNM_BACKEND_XNN) goto fail;
            use_xnn = 0;            /* AUTO: fall back to the reference kernels */
            nnm_diag_clear(diag);
        }
    }
    if (use_xnn) {
        if ((rc = layout__to_nhwc(&ex->own, g, diag)) != NNM_OK) goto fail;
        ex->g = ex->own;
    }
    ex->ctx.threads = o.threads > 1 ? o.threads : 1;
    if (ex->ctx.threads > 1) {
        ex->ctx.pool = pthreadpool_create((size_t)ex->ctx.threads);
        if (ex->ctx.pool == NULL) {
            rc = nnm_diag_set(diag, NNM_ENOMEM, "cannot create a pool of %d threads", ex->ctx.threads);
            goto fail;
        }
    }
    const nnm_graph *rg = ex->g;
    ex->steps = calloc((size_t)(rg->n_nodes + 1), sizeof(step));
    if (ex->steps == NULL) { rc = NNM_ENOMEM; goto fail; }
    for (int i = 0; i < rg->n_nodes; i++) {
        const nnm_node *n = &rg->nodes[i];
        step *s = &ex->steps[i];
        if (is_alias_op(n->op) && n->in[0] >= 0 && !rg->values[n->in[0]].data &&
            !rg->values[n->out[0]].is_output && !rg->values[n->in[0]].is_input) {
            /* Aliasing a graph input or output would tie the user's buffers together;
             * everything else shares bytes. Dropout's mask output still needs a kernel. */
            if (!(n->op == NNM_OP_DROPOUT && n->n_out > 1 && n->out[1] >= 0)) {
                s->skip = 1;
                continue;
            }
        }
        s->be = use_xnn && nnm_backend_xnn.supports(rg, n) ? &nnm_backend_xnn : &nnm_backend_ref;
        if (s->be->prepare && (rc = s->be->prepare(&s->state, rg, n, &ex->ctx, diag)) != NNM_OK) {
            s->be = NULL;
            goto fail;
        }
    }
    if ((rc = plan_memory(ex)) != NNM_OK) {
        nnm_diag_set(diag, rc, "cannot allocate the activation arena");
        goto fail;
    }
    *out = ex;
    return NNM_OK;
fail:
    nnm_exec_free(ex);
    return rc;
}

size_t nnm_exec_arena_bytes(const nnm_exec *ex)
{
    return ex->arena_bytes;
}

const char *nnm_exec_node_backend(const nnm_exec *ex, int i)
{
    if (i < 0 || i >= ex->g->n_nodes) return NULL;
    if (ex->steps[i].skip) return "alias";
    return ex->steps[i].be ? ex->steps[i].be->name : "?";
}

static void view_of(nnm_tensor *t, const nnm_exec *ex, int v)
{
    const nnm_value *val = &ex->g->values[v];
    memset(t, 0, sizeof *t);
    t->dtype = val->dtype;
    t->ndim = val->ndim;
    for (int i = 0; i < val->ndim; i++) t->shape[i] = val->shape[i];
    t->data = value_ptr(ex, v);
    t->nbytes = value_bytes(val);
}

nnm_err nnm_exec_run(nnm_exec *ex, const nnm_tensor *inputs, int n_in, nnm_tensor *outputs,
                     int n_out, nnm_diag *diag)
{
    const nnm_graph *g = ex->g;
    if (n_in != g->n_inputs)
        return nnm_diag_set(diag, NNM_EINVAL, "the model takes %d input(s), %d given", g->n_inputs, n_in);
    if (n_out != g->n_outputs)
        return nnm_diag_set(diag, NNM_EINVAL, "the model has %d output(s), %d requested", g->n_outputs, n_out);
    for (int i = 0; i < n_in; i++) {
        const nnm_value *v = &g->values[g->inputs[i]];
        const nnm_tensor *t = &inputs[i];
        int same = t->dtype == v->dtype && t->ndim == v->ndim;
        for (int d = 0; same && d < v->ndim; d++) same = t->shape[d] == v->shape[d];
        if (!same) {
            char want[128], got[128];
            nnm_shape_format(want, sizeof want, v->shape, v->ndim);
            nnm_shape_format(got, sizeof got, t->shape, t->ndim);
            return nnm_diag_set(diag, NNM_ESHAPE, "input '%s': expected %s %s, got %s %s", v->name,
                                nnm_dtype_name(v->dtype), want, nnm_dtype_name(t->dtype), got);
        }
    }
    for (int i = 0; i < n_out; i++) memset(&outputs[i], 0, sizeof outputs[i]);
    for (int i = 0; i < n_in; i++)
        memcpy(value_ptr(ex, g->inputs[i]), inputs[i].data, value_bytes(&g->values[g->inputs[i]]));

    nnm_tensor tin[64], tout[16];
    const nnm_tensor *pin[64];
    nnm_tensor *pout[16];
    nnm_tensor *heap_in = NULL;
    const nnm_tensor **heap_pin = NULL;
    nnm_err rc = NNM_OK;
    for (int i = 0; i < g->n_nodes && rc == NNM_OK; i++) {
        const nnm_node *n = &g->nodes[i];
        step *s = &ex->steps[i];
        if (s->skip) continue;
        nnm_tensor *ti = tin;
        const nnm_tensor **pi = pin;
        if (n->n_in > 64) {
            free(heap_in);
            free(heap_pin);
            heap_in = malloc((size_t)n->n_in * sizeof *heap_in);
            heap_pin = malloc((size_t)n->n_in * sizeof *heap_pin);
            if (!heap_in || !heap_pin) { rc = NNM_ENOMEM; break; }
            ti = heap_in;
            pi = heap_pin;
        }
        if (n->n_out > 16) {
            rc = nnm_diag_set(diag, NNM_EUNSUPPORTED, "node '%s' has more than 16 outputs", n->name);
            break;
        }
        for (int j = 0; j < n->n_in; j++) {
            if (n->in[j] < 0) { pi[j] = NULL; continue; }
            view_of(&ti[j], ex, n->in[j]);
            pi[j] = &ti[j];
        }
        for (int j = 0; j < n->n_out; j++) {
            if (n->out[j] < 0) { pout[j] = NULL; continue; }
            view_of(&tout[j], ex, n->out[j]);
            pout[j] = &tout[j];
        }
        rc = s->be->run(s->state, n, pi, pout, &ex->ctx, diag);
        if (rc != NNM_OK && diag && diag->msg[0] == '\0')
            nnm_diag_set(diag, rc, "node '%s' (%s) failed", n->name, n->onnx_op);
    }
    free(heap_in);
    free(heap_pin);
    if (rc != NNM_OK) return rc;
    for (int i = 0; i < n_out; i++) {
        const nnm_value *v = &g->values[g->outputs[i]];
        if ((rc = nnm_tensor_init(&outputs[i], v->dtype, v->ndim, v->shape)) != NNM_OK) {
            for (int j = 0; j < i; j++) nnm_tensor_cleanup(&outputs[j]);
            return nnm_diag_set(diag, rc, "cannot allocate output '%s'", v->name);
        }
        memcpy(outputs[i].data, value_ptr(ex, g->outputs[i]), outputs[i].nbytes);
    }
    return NNM_OK;
}
