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
#include <time.h>

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
    nnm_graph *owned_user;   /* the same, when the executor owns it */
    char *released;          /* per value of g: weight freed after packing (pass NULL) */
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
    double *prof;            /* profile: ms per node, or NULL */
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
    free(ex->prof);
    free(ex->released);
    free(ex->steps);
    free(ex->root);
    free(ex->offset);
    free(ex->arena);
    if (ex->ctx.pool) pthreadpool_destroy(ex->ctx.pool);
    ir__graph_free(ex->own);
    ir__graph_free(ex->owned_user);
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

static int is_packed_op(nnm_op op)
{
    return op == NNM_OP_CONV || op == NNM_OP_CONV_TRANSPOSE || op == NNM_OP_GEMM ||
           op == NNM_OP_MATMUL;
}

/* Owned graphs: a weight read only as the packed operand of XNNPACK convolutions and fully
 * connected layers is freed as soon as the last of them is prepared, so the model's weights
 * are held about once, not twice, even while packing. pending[v] counts the packed
 * consumers of constant v not prepared yet; keep[v] marks constants some kernel reads at
 * run time. */
static void release_after_prepare(nnm_exec *ex, int node, int *pending, const char *keep)
{
    const nnm_graph *g = ex->g;
    const nnm_node *n = &g->nodes[node];
    for (int j = 1; j < n->n_in; j++) {
        int v = n->in[j];
        if (v < 0 || g->values[v].data == NULL || keep[v] || --pending[v] > 0) continue;
        if (g->values[v].is_output) continue;
        void *p = g->values[v].data;
        /* Other values of g sharing the bytes (the layout pass borrows) must agree. */
        int shared = 0;
        for (int q = 0; q < g->n_values && !shared; q++)
            shared = q != v && g->values[q].data == p && (keep[q] || pending[q] > 0);
        if (shared) continue;
        nnm_graph *u = ex->owned_user;
        for (int k = 0; k < u->n_values; k++)
            if (u->values[k].data == p && !u->values[k].borrowed) {
                free(p);
                u->values[k].data = NULL;
                u->values[k].nbytes = 0;
                break;
            }
        for (int q = 0; q < g->n_values; q++)
            if (g->values[q].data == p) {
                ((nnm_value *)&g->values[q])->data = NULL;
                ex->released[q] = 1;
            }
    }
}

static nnm_err exec_create(nnm_exec **out, const nnm_graph *g, nnm_graph *owned,
                           const nnm_exec_opts *opts, nnm_diag *diag);

nnm_err nnm_exec_new_owning(nnm_exec **out, nnm_graph *g, const nnm_exec_opts *opts,
                            nnm_diag *diag)
{
    return exec_create(out, g, g, opts, diag);
}

nnm_err nnm_exec_new(nnm_exec **out, const nnm_graph *g, const nnm_exec_opts *opts,
                     nnm_diag *diag)
{
    return exec_create(out, g, NULL, opts, diag);
}

static nnm_err exec_create(nnm_exec **out, const nnm_graph *g, nnm_graph *owned,
                           const nnm_exec_opts *opts, nnm_diag *diag)
{
    nnm_exec_opts o = { 0 };
    if (opts) o = *opts;
    nnm_err rc = NNM_ENOMEM;
    nnm_exec *ex = calloc(1, sizeof *ex);
    int *pending = NULL;
    char *keep = NULL;
    if (ex == NULL) {
        ir__graph_free(owned);
        return NNM_ENOMEM;
    }
    ex->user = g;
    ex->owned_user = owned;
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
    /* Pass 1: aliasing and backend choice. */
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
    }
    int release = owned != NULL && ex->own != NULL;
    if (release) {
        pending = calloc((size_t)rg->n_values + 1, sizeof(int));
        keep = calloc((size_t)rg->n_values + 1, 1);
        ex->released = calloc((size_t)rg->n_values + 1, 1);
        if (!pending || !keep || !ex->released) { rc = NNM_ENOMEM; goto fail; }
        for (int i = 0; i < rg->n_nodes; i++) {
            const nnm_node *n = &rg->nodes[i];
            int packed = !ex->steps[i].skip && ex->steps[i].be == &nnm_backend_xnn &&
                         is_packed_op(n->op);
            for (int j = 0; j < n->n_in; j++) {
                int v = n->in[j];
                if (v < 0 || rg->values[v].data == NULL) continue;
                if (packed && j > 0) pending[v]++;
                else keep[v] = 1;
            }
        }
    }
    /* Pass 2: prepare (weight packing), releasing packed weights as we go. */
    for (int i = 0; i < rg->n_nodes; i++) {
        const nnm_node *n = &rg->nodes[i];
        step *s = &ex->steps[i];
        if (s->skip) continue;
        if (s->be->prepare && (rc = s->be->prepare(&s->state, rg, n, &ex->ctx, diag)) != NNM_OK) {
            s->be = NULL;
            goto fail;
        }
        if (release && s->be == &nnm_backend_xnn && is_packed_op(n->op))
            release_after_prepare(ex, i, pending, keep);
    }
    if (o.profile && !(ex->prof = calloc((size_t)rg->n_nodes + 1, sizeof(double)))) {
        rc = NNM_ENOMEM;
        goto fail;
    }
    if ((rc = plan_memory(ex)) != NNM_OK) {
        nnm_diag_set(diag, rc, "cannot allocate the activation arena");
        goto fail;
    }
    free(pending);
    free(keep);
    *out = ex;
    return NNM_OK;
fail:
    free(pending);
    free(keep);
    nnm_exec_free(ex);
    return rc;
}

size_t nnm_exec_arena_bytes(const nnm_exec *ex)
{
    return ex->arena_bytes;
}

const nnm_graph *nnm_exec_graph(const nnm_exec *ex)
{
    return ex->g;
}

double nnm_exec_profile_get(const nnm_exec *ex, int i)
{
    if (ex->prof == NULL || i < 0 || i >= ex->g->n_nodes) return 0;
    return ex->prof[i];
}

static double mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
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
            if (n->in[j] < 0 || (ex->released && ex->released[n->in[j]])) {
                pi[j] = NULL;
                continue;
            }
            view_of(&ti[j], ex, n->in[j]);
            pi[j] = &ti[j];
        }
        for (int j = 0; j < n->n_out; j++) {
            if (n->out[j] < 0) { pout[j] = NULL; continue; }
            view_of(&tout[j], ex, n->out[j]);
            pout[j] = &tout[j];
        }
        double t0 = ex->prof ? mono_ms() : 0;
        rc = s->be->run(s->state, n, pi, pout, &ex->ctx, diag);
        if (ex->prof) ex->prof[i] += mono_ms() - t0;
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
