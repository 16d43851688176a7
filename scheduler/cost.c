/* scheduler/cost.c — the cost model over a graph: op classes, the per-model analysis
 * (prefix sums of work per class, bytes live across every cut, estimates of every stage's
 * parts) and the time of one stage in one configuration, which the DP in plan.c sums.
 *
 * Stage estimates. For a stage [a, b) split along rows or channels into parts, the work of
 * a part with share s of the stage's output dimension is modelled per class as
 * fixed + split * s. Rows: each value's needed rows are an affine function c1 * s + c0 of
 * s, traced back through every convolution and pool (in = stride * out + (k - 1) * d + 1 -
 * stride), so the halo that fused row bands recompute lands in `fixed`. Channels: a group-1
 * convolution or a Gemm needs all of its input, so everything before it in the stage is
 * computed whole by every part (fixed); depthwise convolutions and elementwise ops carry
 * the split back. These estimates are computed for all O(n^2) stages in O(n^2) total per
 * axis by walking each stage backwards from its end b while a decreases. The feasibility
 * rules mirror runtime/slice.c; the planner confirms each split it emits with
 * nnm_graph_slice and marks a rejected one infeasible (plan.c). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sched_int.h"

nnm_opclass nnm_sched_classify(const nnm_graph *g, int i)
{
    if (i < 0 || i >= g->n_nodes) return NNM_OPC_OTHER;
    const nnm_node *n = &g->nodes[i];
    switch (n->op) {
    case NNM_OP_CONV: {
        if (n->a.group > 1) return NNM_OPC_DWCONV;
        if (n->n_in > 1 && n->in[1] >= 0) {
            const nnm_value *w = &g->values[n->in[1]];
            if (w->ndim >= 3) {
                int64_t k = 1;
                for (int d = 2; d < w->ndim; d++) k *= w->shape[d];
                if (k == 1) return NNM_OPC_CONV1X1;
            }
        }
        return NNM_OPC_CONV3X3;
    }
    case NNM_OP_CONV_TRANSPOSE:
        return n->a.group > 1 ? NNM_OPC_DWCONV : NNM_OPC_CONV3X3;
    case NNM_OP_GEMM: case NNM_OP_MATMUL:
        return NNM_OPC_FC;
    default:
        return NNM_OPC_OTHER;
    }
}

static double node_work(const nnm_graph *g, int i, int cls)
{
    const nnm_node *n = &g->nodes[i];
    return cls == NNM_OPC_OTHER ? (double)n->out_bytes : n->flops;
}

nnm_err nnm_sched_slice_work(const nnm_graph *g, int a, int b, double work[NNM_OPC__COUNT],
                             nnm_diag *diag)
{
    if (a < 0 || b > g->n_nodes || a >= b)
        return nnm_diag_set(diag, NNM_ERANGE, "scheduler: nodes [%d, %d) are outside the graph's %d",
                            a, b, g->n_nodes);
    for (int c = 0; c < NNM_OPC__COUNT; c++) work[c] = 0;
    for (int i = a; i < b; i++) {
        int c = nnm_sched_classify(g, i);
        work[c] += node_work(g, i, c);
    }
    return NNM_OK;
}

static double value_bytes(const nnm_value *v)
{
    if (v->ndim < 0) return 0;
    int64_t n = nnm_shape_numel(v->shape, v->ndim, 1);
    return n < 0 ? 0 : (double)n * (double)nnm_dtype_size(v->dtype);
}

/* --- per-model analysis ----------------------------------------------------------------- */

void sched__model_free(sched_model *m)
{
    if (m == NULL) return;
    free(m->cls);
    free(m->work);
    for (int c = 0; c < NNM_OPC__COUNT; c++) free(m->pre[c]);
    free(m->pre_param);
    free(m->live);
    free(m->minprod);
    for (int x = 0; x < 2; x++) free(m->st[x]);
    free(m);
}

static int is_unary(nnm_op op)
{
    switch (op) {
    case NNM_OP_SQRT: case NNM_OP_EXP: case NNM_OP_LOG: case NNM_OP_ERF: case NNM_OP_RELU:
    case NNM_OP_SIGMOID: case NNM_OP_TANH: case NNM_OP_HARD_SWISH: case NNM_OP_LEAKY_RELU:
    case NNM_OP_CLIP: case NNM_OP_HARD_SIGMOID: case NNM_OP_IDENTITY: case NNM_OP_DROPOUT:
        return 1;
    default:
        return 0;
    }
}

static int is_binary(nnm_op op)
{
    switch (op) {
    case NNM_OP_ADD: case NNM_OP_SUB: case NNM_OP_MUL: case NNM_OP_DIV: case NNM_OP_POW:
    case NNM_OP_MAX: case NNM_OP_MIN:
        return 1;
    default:
        return 0;
    }
}

/* 1 if input iv of a binary op is broadcast along axis of the output ov. */
static int bcast(const nnm_value *iv, const nnm_value *ov, int axis)
{
    int ax = axis - (ov->ndim - iv->ndim);
    return ax < 0 || ax >= iv->ndim || iv->shape[ax] == 1;
}

/* Scratch for the backward walks. */
typedef struct walk {
    double *c1, *c0;        /* rows: needed rows = c1 * s + c0 */
    unsigned char *rset;
    unsigned char *ch;      /* channels: 0 unset, 1 split, 2 full */
    int *last;              /* last consumer of each value (n for graph outputs) */
} walk;

static void rows_union(walk *w, int v, double c1, double c0)
{
    if (!w->rset[v]) {
        w->rset[v] = 1;
        w->c1[v] = c1;
        w->c0[v] = c0;
        return;
    }
    if (c1 > w->c1[v]) w->c1[v] = c1;
    if (c0 > w->c0[v]) w->c0[v] = c0;
}

/* Rows: processes node k of stage [., b) once its output needs are complete. Returns 0 if
 * the node cannot be split by rows. */
static int rows_node(const nnm_graph *g, sched_model *m, walk *w, int k, sched_stage *acc)
{
    const nnm_node *n = &g->nodes[k];
    if (n->n_out != 1 || n->out[0] < 0) return 0;
    const nnm_value *ov = &g->values[n->out[0]];
    if (ov->ndim != 4 || ov->shape[2] < 1) return 0;
    int ok = 0;
    switch (n->op) {
    case NNM_OP_CONV: case NNM_OP_MAXPOOL: case NNM_OP_AVGPOOL:
        ok = !n->a.spatial_1d;
        break;
    case NNM_OP_BATCHNORM:
        ok = 1;
        break;
    case NNM_OP_CONCAT:
        ok = n->a.axis != 2;
        break;
    default:
        ok = is_unary(n->op) || is_binary(n->op);
        break;
    }
    if (!ok) return 0;
    int v = n->out[0];
    double H = (double)ov->shape[2];
    double c1 = w->rset[v] ? w->c1[v] : H, c0 = w->rset[v] ? w->c0[v] : 0;
    double al = c0 / H, be = c1 / H;
    if (al > 1) al = 1;
    if (be > 1) be = 1;
    acc->fixed[m->cls[k]] += m->work[k] * al;
    acc->split[m->cls[k]] += m->work[k] * be;
    for (int j = 0; j < n->n_in; j++) {
        int iv = n->in[j];
        if (iv < 0 || g->values[iv].data) continue;
        const nnm_value *in = &g->values[iv];
        if (n->op == NNM_OP_CONV || n->op == NNM_OP_MAXPOOL || n->op == NNM_OP_AVGPOOL) {
            if (j > 0) {
                rows_union(w, iv, 0, in->ndim == 4 ? (double)in->shape[2] : 1);
                continue;
            }
            double s = n->a.strides[0], kk = n->a.kernel[0], dl = n->a.dilations[0];
            rows_union(w, iv, c1 * s, c0 * s + (kk - 1) * dl + 1 - s);
        } else if (is_binary(n->op) && bcast(in, ov, 2)) {
            rows_union(w, iv, 0, in->ndim >= 3 ? (double)in->shape[in->ndim - 2] : 1);
        } else {
            rows_union(w, iv, c1, c0);
        }
    }
    return 1;
}

static void ch_union(walk *w, int v, int st)
{
    if (st > w->ch[v]) w->ch[v] = (unsigned char)st;
}

/* Channels: as rows_node. */
static int ch_node(const nnm_graph *g, sched_model *m, walk *w, int k, sched_stage *acc)
{
    const nnm_node *n = &g->nodes[k];
    if (n->n_out != 1 || n->out[0] < 0) return 0;
    int v = n->out[0];
    const nnm_value *ov = &g->values[v];
    if (ov->ndim < 2) return 0;
    int st = w->ch[v] ? w->ch[v] : 1;
    int ok = 0, in_st = st;
    switch (n->op) {
    case NNM_OP_CONV: {
        const nnm_value *iv = &g->values[n->in[0]];
        int64_t gr = n->a.group, M = ov->shape[1];
        if (gr <= 1) {
            ok = 1;
            in_st = 2;
        } else {
            ok = (M / gr == 1) || st == 2;     /* depthwise, or grouped computed whole */
            (void)iv;
        }
        break;
    }
    case NNM_OP_GEMM:
        ok = 1;
        in_st = 2;
        break;
    case NNM_OP_MATMUL:
        ok = n->n_in > 1 && n->in[1] >= 0 && g->values[n->in[1]].data &&
             g->values[n->in[1]].ndim == 2;
        in_st = 2;
        break;
    case NNM_OP_BATCHNORM: case NNM_OP_MAXPOOL: case NNM_OP_AVGPOOL:
    case NNM_OP_GLOBAL_AVGPOOL: case NNM_OP_GLOBAL_MAXPOOL:
        ok = 1;
        break;
    case NNM_OP_FLATTEN: {
        const nnm_value *iv = &g->values[n->in[0]];
        ok = iv->ndim == 4 && iv->shape[2] * iv->shape[3] == 1 && n->a.axis == 1;
        break;
    }
    default:
        ok = is_unary(n->op) || is_binary(n->op);
        break;
    }
    if (!ok) return 0;
    if (st == 1) acc->split[m->cls[k]] += m->work[k];
    else acc->fixed[m->cls[k]] += m->work[k];
    for (int j = 0; j < n->n_in; j++) {
        int iv = n->in[j];
        if (iv < 0 || g->values[iv].data) continue;
        int s2 = in_st;
        if (is_binary(n->op) && bcast(&g->values[iv], ov, 1)) s2 = 2;
        ch_union(w, iv, s2);
    }
    return 1;
}

/* Fills the stage estimates of both axes for every [a, b). */
static nnm_err stages_build(sched_model *m)
{
    const nnm_graph *g = m->g;
    int n = m->n, nv = g->n_values;
    size_t ns = (size_t)(n + 1) * (size_t)(n + 1);
    walk w;
    memset(&w, 0, sizeof w);
    w.c1 = malloc((size_t)nv * sizeof *w.c1);
    w.c0 = malloc((size_t)nv * sizeof *w.c0);
    w.rset = malloc((size_t)nv);
    w.ch = malloc((size_t)nv);
    w.last = malloc((size_t)nv * sizeof *w.last);
    for (int x = 0; x < 2; x++) m->st[x] = calloc(ns, sizeof(sched_stage));
    nnm_err rc = NNM_ENOMEM;
    if (!w.c1 || !w.c0 || !w.rset || !w.ch || !w.last || !m->st[0] || !m->st[1])
        goto done;
    for (int v = 0; v < nv; v++) w.last[v] = g->values[v].is_output ? n : -1;
    for (int k = 0; k < n; k++)
        for (int j = 0; j < g->nodes[k].n_in; j++) {
            int v = g->nodes[k].in[j];
            if (v >= 0 && k > w.last[v]) w.last[v] = k;
        }
    for (int x = 0; x < 2; x++) {
        for (int b = 1; b <= n; b++) {
            memset(w.rset, 0, (size_t)nv);
            memset(w.ch, 0, (size_t)nv);
            sched_stage acc;
            memset(&acc, 0, sizeof acc);
            acc.feasible = 1;
            acc.dim = -1;
            for (int a = b - 1; a >= 0; a--) {
                const nnm_node *nd = &g->nodes[a];
                /* seeds: outputs of node a read at or after b */
                for (int j = 0; j < nd->n_out && acc.feasible; j++) {
                    int v = nd->out[j];
                    if (v < 0 || w.last[v] < b) continue;
                    const nnm_value *ov = &g->values[v];
                    int axis = x == 0 ? 2 : 1;
                    if (ov->ndim <= axis || (x == 0 && ov->ndim != 4)) {
                        acc.feasible = 0;
                        break;
                    }
                    if (acc.dim < 0) acc.dim = ov->shape[axis];
                    else if (acc.dim != ov->shape[axis]) acc.feasible = 0;
                    if (x == 0) rows_union(&w, v, (double)ov->shape[2], 0);
                    else ch_union(&w, v, 1);
                }
                if (acc.feasible) {
                    int ok = x == 0 ? rows_node(g, m, &w, a, &acc) : ch_node(g, m, &w, a, &acc);
                    if (!ok) acc.feasible = 0;
                }
                m->st[x][(size_t)a * (size_t)(n + 1) + (size_t)b] = acc;
                if (!acc.feasible) {
                    /* sticky: every longer stage [a' < a, b) contains this node or output */
                    for (int a2 = a - 1; a2 >= 0; a2--)
                        m->st[x][(size_t)a2 * (size_t)(n + 1) + (size_t)b].feasible = 0;
                    break;
                }
            }
        }
    }
    rc = NNM_OK;
done:
    free(w.c1);
    free(w.c0);
    free(w.rset);
    free(w.ch);
    free(w.last);
    return rc;
}

nnm_err sched__model_get(nnm_sched *s, const nnm_graph *g, const uint8_t *hash,
                         sched_model **out, nnm_diag *diag)
{
    for (sched_model *m = s->models; m; m = m->next)
        if (m->g == g && !memcmp(m->hash, hash, NNM_WIRE_HASH_BYTES)) {
            *out = m;
            return NNM_OK;
        }
    int n = g->n_nodes;
    if (n < 1 || n > 1024)
        return nnm_diag_set(diag, NNM_ERANGE, "scheduler: a graph of %d nodes cannot be planned (1..1024)", n);
    nnm_err rc = NNM_ENOMEM;
    sched_model *m = calloc(1, sizeof *m);
    if (m == NULL) goto fail;
    memcpy(m->hash, hash, NNM_WIRE_HASH_BYTES);
    m->g = g;
    m->n = n;
    m->cls = malloc((size_t)n * sizeof *m->cls);
    m->work = malloc((size_t)n * sizeof *m->work);
    m->pre_param = calloc((size_t)n + 1, sizeof *m->pre_param);
    m->live = calloc((size_t)n + 2, sizeof *m->live);
    m->minprod = malloc((size_t)n * sizeof *m->minprod);
    if (!m->cls || !m->work || !m->pre_param || !m->live || !m->minprod) goto fail;
    for (int c = 0; c < NNM_OPC__COUNT; c++)
        if (!(m->pre[c] = calloc((size_t)n + 1, sizeof(double)))) goto fail;
    for (int i = 0; i < n; i++) {
        m->cls[i] = nnm_sched_classify(g, i);
        m->work[i] = node_work(g, i, m->cls[i]);
        for (int c = 0; c < NNM_OPC__COUNT; c++)
            m->pre[c][i + 1] = m->pre[c][i] + (c == m->cls[i] ? m->work[i] : 0);
        m->pre_param[i + 1] = m->pre_param[i] + (double)g->nodes[i].param_bytes;
        int mp = n;
        for (int j = 0; j < g->nodes[i].n_in; j++) {
            int v = g->nodes[i].in[j];
            if (v >= 0 && !g->values[v].data && g->values[v].producer < mp)
                mp = g->values[v].producer;
        }
        m->minprod[i] = mp;
    }
    /* live bytes: value v (not constant) crosses cut p when def < p <= last */
    for (int v = 0; v < g->n_values; v++) {
        const nnm_value *val = &g->values[v];
        if (val->data) continue;
        int def = val->producer, last = val->is_output ? n : -1;
        for (int k = (def < 0 ? 0 : def); k < n; k++)
            for (int j = 0; j < g->nodes[k].n_in; j++)
                if (g->nodes[k].in[j] == v && k > last) last = k;
        if (last <= def) continue;
        double by = value_bytes(val);
        m->live[def + 1] += by;
        m->live[last + 1] -= by;
    }
    for (int p = 1; p <= n; p++) m->live[p] += m->live[p - 1];
    if ((rc = stages_build(m)) != NNM_OK) goto fail;
    m->next = s->models;     /* commit */
    s->models = m;
    *out = m;
    return NNM_OK;
fail:
    sched__model_free(m);
    return nnm_diag_set(diag, rc, "scheduler: out of memory analysing the graph");
}

/* --- planning context -------------------------------------------------------------------- */

void sched__ctx_init(sched_ctx *c, const nnm_sched *s, sched_model *m, int refined)
{
    memset(c, 0, sizeof *c);
    c->s = s;
    c->m = m;
    c->refined = refined;
    c->src = c->sink = sched__node_find(s, s->self);
    c->send = sched__send_ms(s, refined);
    for (int i = 0; i < SCHED_MAXN; i++) {
        c->perturb[i] = 1;
        if (!s->nodes[i].present) continue;
        c->ovh[i] = sched__part_ovh(s, i, -1, refined);   /* as a remote part (see ovh_of) */
        for (int k = 0; k < NNM_OPC__COUNT; k++) c->rate[i][k] = sched__rate(s, i, k, refined);
    }
}

/* Time for node i to run the whole model: the speed order of the planner. */
static double whole_ms(const sched_ctx *c, int i)
{
    double t = 0;
    for (int k = 0; k < NNM_OPC__COUNT; k++) t += c->m->pre[k][c->m->n] / c->rate[i][k];
    return t;
}

static void add_cfg(sched_ctx *c, int type, int axis, const int *nodes, int k)
{
    if (c->n_cfg >= SCHED_MAX_CFG) return;
    sched_cfg *f = &c->cfg[c->n_cfg++];
    memset(f, 0, sizeof *f);
    f->type = type;
    f->axis = axis;
    f->k = k;
    f->gstart = -1;
    memcpy(f->nodes, nodes, (size_t)k * sizeof *nodes);
}

/* Builds the configuration list for c->policy: see the policies in docs/SCHEDULER.md. */
void sched__ctx_configs(sched_ctx *c)
{
    const nnm_sched *s = c->s;
    int order[SCHED_MAXN], n = 0;
    double t[SCHED_MAXN];
    for (int i = 0; i < SCHED_MAXN; i++) {
        if (!s->nodes[i].present || s->nodes[i].pub.draining || (c->exclude >> i & 1)) continue;
        order[n] = i;
        t[i] = whole_ms(c, i);
        n++;
    }
    for (int i = 1; i < n; i++)            /* insertion sort by speed, fastest first */
        for (int j = i; j > 0 && t[order[j]] < t[order[j - 1]]; j--) {
            int x = order[j]; order[j] = order[j - 1]; order[j - 1] = x;
        }
    c->n_cfg = 0;
    if (c->whole_on > 0) {
        int j = c->whole_on - 1;
        add_cfg(c, NNM_STAGE_SINGLE, 0, &j, 1);
        return;
    }
    int maxk = n < s->cfg.max_parts ? n : s->cfg.max_parts;
    if (c->policy == NNM_POLICY_LOCAL) {
        add_cfg(c, NNM_STAGE_SINGLE, 0, &c->sink, 1);
        if (c->src != c->sink) add_cfg(c, NNM_STAGE_SINGLE, 0, &c->src, 1);
        return;
    }
    if (c->policy == NNM_POLICY_EQUAL || c->policy == NNM_POLICY_MEMORY) {
        uint64_t minmem = 0;
        for (int i = 0; i < n; i++) {
            uint64_t fm = s->nodes[order[i]].pub.free_mem;
            if (fm && (!minmem || fm < minmem)) minmem = fm;
        }
        for (int i = 0; i < n; i++) {
            uint64_t fm = s->nodes[order[i]].pub.free_mem;
            c->weight[order[i]] = c->policy == NNM_POLICY_EQUAL ? 1.0
                                  : (double)(fm ? fm : (minmem ? minmem : 1));
        }
        add_cfg(c, NNM_STAGE_SINGLE, 0, &c->sink, 1);
        if (c->src != c->sink) add_cfg(c, NNM_STAGE_SINGLE, 0, &c->src, 1);
        if (maxk >= 2) {
            add_cfg(c, NNM_STAGE_SPLIT, 0, order, maxk);
            add_cfg(c, NNM_STAGE_SPLIT, 1, order, maxk);
            add_cfg(c, NNM_STAGE_BRANCHES, 0, order, maxk);
        }
        return;
    }
    if (c->objective == NNM_OBJ_THROUGHPUT) {
        /* groups of consecutive nodes in speed order (the source first when pinned): each
         * node serves one pipeline stage; the DP chains groups end to start */
        if (c->pin && c->src >= 0) {
            int p = -1;
            for (int i = 0; i < n; i++) if (order[i] == c->src) p = i;
            if (p < 0) p = n < SCHED_MAXN ? n++ : n - 1;
            for (int i = p; i > 0; i--) order[i] = order[i - 1];
            order[0] = c->src;
        }
        if (n > 8) n = 8;
        for (int st = 0; st < n; st++)
            for (int k = 1; st + k <= n && k <= maxk; k++) {
                if (k == 1) {
                    add_cfg(c, NNM_STAGE_SINGLE, 0, order + st, 1);
                    c->cfg[c->n_cfg - 1].gstart = st;
                    continue;
                }
                for (int ty = 0; ty < 3; ty++) {
                    add_cfg(c, ty == 2 ? NNM_STAGE_BRANCHES : NNM_STAGE_SPLIT, ty == 1, order + st, k);
                    c->cfg[c->n_cfg - 1].gstart = st;
                }
            }
        c->groups = 1;
        return;
    }
    for (int i = 0; i < n; i++) add_cfg(c, NNM_STAGE_SINGLE, 0, order + i, 1);
    int have_src = 0;
    for (int i = 0; i < n; i++) have_src |= order[i] == c->src;
    if (!have_src && c->src >= 0) add_cfg(c, NNM_STAGE_SINGLE, 0, &c->src, 1);
    for (int k = 2; k <= maxk; k++) {
        add_cfg(c, NNM_STAGE_SPLIT, 0, order, k);
        add_cfg(c, NNM_STAGE_SPLIT, 1, order, k);
        add_cfg(c, NNM_STAGE_BRANCHES, 0, order, k);
    }
}

/* --- stage time -------------------------------------------------------------------------- */

static double xfer_in(const sched_ctx *c, const sched_hold *h, int j, double bytes)
{
    double t = 0;
    for (int i = 0; i < h->k; i++) {
        if (h->nodes[i] == j || h->frac[i] <= 0) continue;
        double x = sched__link_ms(c->s, h->nodes[i], j, bytes * h->frac[i], c->refined,
                                  c->lossy, 1, NULL);
        if (x > t) t = x;
    }
    return t;
}

/* The coordinator runs plans as a star (scheduler/coord.c): it holds every stage's inputs
 * and outputs, sends each remote part its inputs and gets its outputs back. So a stage on a
 * remote node also pays the way back, and the data of a stage's remote parts all passes
 * through the coordinator's own link, one transfer after another. The way back uses the
 * best allowed codec, as choose_codecs (plan.c) picks for the result edge and the TASK asks
 * the worker to answer with. */
static double xfer_out(const sched_ctx *c, int j, double bytes)
{
    if (j == c->sink || bytes <= 0) return 0;
    return sched__link_ms(c->s, j, c->sink, bytes, c->refined, c->lossy, 1, NULL);
}

static double rtt_in(const sched_ctx *c, const sched_hold *h, int j)
{
    double t = 0;
    for (int i = 0; i < h->k; i++) {
        if (h->nodes[i] == j || h->frac[i] <= 0) continue;
        double x = sched__link_rtt(c->s, h->nodes[i], j, c->refined) / 2;
        if (x > t) t = x;
    }
    return t;
}

static double fetch_ms(const sched_ctx *c, int j, double param)
{
    if (param <= 0 || sched__has_model(c->s, j, c->m->hash) || j == c->sink) return 0;
    return sched__link_ms(c->s, c->sink, j, param, c->refined, 0, 0, NULL) /
           c->s->cfg.fetch_amortize;
}

static int mem_ok(const sched_ctx *c, int j, double bytes)
{
    uint64_t fm = c->s->nodes[j].pub.free_mem;
    return fm == 0 || bytes <= (double)fm;
}

/* Per-part cost beyond compute and bytes: the coordinator's own parts keep
 * slice_overhead_ms; a remote part pays its node's (learned, when refined) overhead. */
static double ovh_of(const sched_ctx *c, int j)
{
    return j == c->sink ? c->s->cfg.slice_overhead_ms : c->ovh[j];
}

static double work_ms(const sched_ctx *c, int j, const double *w)
{
    double t = 0;
    for (int k = 0; k < NNM_OPC__COUNT; k++) t += w[k] / c->rate[j][k];
    return t;
}

/* Independent sub-ranges of [a, b): split points m with no node in [m, b) reading a value
 * produced in [a, m). segcut gets a = cut[0] < ... < cut[nseg] = b. */
static int segments(const sched_ctx *c, int a, int b, int *segcut)
{
    const nnm_graph *g = c->m->g;
    int ns = 0;
    int lo = INT32_MAX;   /* min over k in [m, b) of the lowest producer in [a, k) */
    int pts[SCHED_MAX_SEG + 1], np = 0;
    for (int m = b - 1; m > a; m--) {
        const nnm_node *n = &g->nodes[m];
        for (int j = 0; j < n->n_in; j++) {
            int v = n->in[j];
            if (v < 0 || g->values[v].data) continue;
            int p = g->values[v].producer;
            if (p >= a && p < lo) lo = p;
        }
        if (lo >= m && np < SCHED_MAX_SEG - 1) pts[np++] = m;
    }
    segcut[ns++] = a;
    for (int i = np - 1; i >= 0; i--) segcut[ns++] = pts[i];
    segcut[ns] = b;
    return ns;
}

double sched__stage_ms(const sched_ctx *c, const sched_cfg *cfg, int a, int b,
                       const sched_hold *h, double *shares, int *nseg, int *segcut,
                       int *assign)
{
    const sched_model *m = c->m;
    double B = m->live[a];
    double W[NNM_OPC__COUNT];
    for (int k = 0; k < NNM_OPC__COUNT; k++) W[k] = m->pre[k][b] - m->pre[k][a];
    double param = m->pre_param[b] - m->pre_param[a];
    if (cfg->type == NNM_STAGE_SINGLE) {
        int j = cfg->nodes[0];
        if ((c->policy == NNM_POLICY_EQUAL || c->policy == NNM_POLICY_MEMORY) &&
            !(c->pin && a == 0 && j == c->src)) {
            /* The baselines split every stage that can be split (on all nodes), and run
             * whole only what cannot be split at all: a single node of the graph. A longer
             * unsplittable range must be cut into pieces, some of which split. */
            size_t at = (size_t)a * (size_t)(m->n + 1) + (size_t)b;
            for (int x = 0; x < 2 && c->n_cfg > 1; x++)
                if (m->st[x][at].feasible && m->st[x][at].dim >= c->cfg[c->n_cfg - 1].k)
                    return INFINITY;
            if (c->n_cfg > 1 && b - a > 1) return INFINITY;
        }
        if (!mem_ok(c, j, param)) return INFINITY;
        if (shares) shares[0] = 1;
        return xfer_in(c, h, j, B) + work_ms(c, j, W) + ovh_of(c, j) + fetch_ms(c, j, param) +
               xfer_out(c, j, m->live[b]) + (j == c->sink ? 0 : c->send);
    }
    if (cfg->type == NNM_STAGE_SPLIT) {
        const sched_stage *st = &m->st[cfg->axis][(size_t)a * (size_t)(m->n + 1) + (size_t)b];
        if (!st->feasible || st->dim < cfg->k) return INFINITY;
        double A[SCHED_MAXN], Bv[SCHED_MAXN], s[SCHED_MAXN];
        int on[SCHED_MAXN];
        for (int i = 0; i < cfg->k; i++) {
            int j = cfg->nodes[i];
            on[i] = !(c->exclude >> j & 1);
            A[i] = ovh_of(c, j) + work_ms(c, j, st->fixed) + fetch_ms(c, j, param / cfg->k);
            Bv[i] = work_ms(c, j, st->split);
            if (cfg->axis == 0) {
                double r = rtt_in(c, h, j);
                A[i] += r;
                Bv[i] += xfer_in(c, h, j, B) - r;
            } else {
                A[i] += xfer_in(c, h, j, B);
            }
            Bv[i] += xfer_out(c, j, m->live[b]);   /* its share of the outputs, back */
            if (Bv[i] <= 1e-12) Bv[i] = 1e-12;
        }
        /* The coordinator sends the remote parts one after another (each costs it c->send)
         * before it runs its own part: the i-th remote part starts i sends late, its own
         * part all of them late. A0 holds A without these delays. */
        double A0[SCHED_MAXN];
        memcpy(A0, A, (size_t)cfg->k * sizeof *A);
        int fixed = c->weight[cfg->nodes[0]] > 0, act = 0;
        for (;;) {
            act = 0;
            if (c->send > 0) {
                int r = 0, rank = 0;
                for (int i = 0; i < cfg->k; i++) r += on[i] && cfg->nodes[i] != c->sink;
                for (int i = 0; i < cfg->k; i++) {
                    if (!on[i]) continue;
                    A[i] = A0[i] + c->send * (cfg->nodes[i] == c->sink ? r : ++rank);
                }
            }
            if (fixed) {
                double ws = 0;
                for (int i = 0; i < cfg->k; i++) if (on[i]) ws += c->weight[cfg->nodes[i]];
                for (int i = 0; i < cfg->k; i++) s[i] = on[i] ? c->weight[cfg->nodes[i]] / ws : 0;
                for (int i = 0; i < cfg->k; i++) act += on[i];
                break;
            }
            /* equal finish time: A_i + B_i s_i = T for all active i, sum s_i = 1 */
            double inv = 0, ab = 0;
            for (int i = 0; i < cfg->k; i++)
                if (on[i]) { inv += 1 / Bv[i]; ab += A[i] / Bv[i]; act++; }
            if (act == 0) return INFINITY;
            double T = (1 + ab) / inv;
            int worst = -1;
            double ws = 0;
            for (int i = 0; i < cfg->k; i++) {
                if (!on[i]) { s[i] = 0; continue; }
                s[i] = (T - A[i]) / Bv[i];
                if (s[i] * (double)st->dim < 1 && (worst < 0 || s[i] < ws)) { worst = i; ws = s[i]; }
            }
            if (worst < 0) break;
            on[worst] = 0;
        }
        if (act < 2) return INFINITY;
        double tot = 0;
        for (int i = 0; i < cfg->k; i++) { s[i] *= c->perturb[cfg->nodes[i]]; tot += s[i]; }
        double T = 0;
        for (int i = 0; i < cfg->k; i++) {
            s[i] /= tot;
            if (s[i] <= 0) continue;
            int j = cfg->nodes[i];
            double pb = cfg->axis == 1 ? param * s[i] : param;
            if (!mem_ok(c, j, pb)) return INFINITY;
            double t = A[i] + Bv[i] * s[i];
            if (t > T) T = t;
        }
        /* The remote parts' inputs and outputs share the coordinator's link. */
        double serial = 0;
        for (int i = 0; i < cfg->k; i++) {
            int j = cfg->nodes[i];
            if (s[i] <= 0 || j == c->sink) continue;
            double in = xfer_in(c, h, j, B);
            serial += (cfg->axis == 0 ? in * s[i] : in) + xfer_out(c, j, m->live[b]) * s[i] +
                      c->send;
        }
        if (serial > T) T = serial;
        if (shares) for (int i = 0; i < cfg->k; i++) shares[i] = s[i];
        return T;
    }
    /* branches: independent sub-ranges placed longest first on the node that ends earliest */
    int cut[SCHED_MAX_SEG + 1];
    int ns = segments(c, a, b, cut);
    if (ns < 2) return INFINITY;
    double fin[SCHED_MAXN], segw[SCHED_MAX_SEG];
    int used[SCHED_MAXN], idx[SCHED_MAX_SEG];
    for (int i = 0; i < cfg->k; i++) { fin[i] = 0; used[i] = 0; }
    for (int q = 0; q < ns; q++) {
        idx[q] = q;
        double w[NNM_OPC__COUNT];
        for (int k = 0; k < NNM_OPC__COUNT; k++) w[k] = m->pre[k][cut[q + 1]] - m->pre[k][cut[q]];
        segw[q] = work_ms(c, cfg->nodes[0], w);
    }
    for (int i = 1; i < ns; i++)
        for (int j = i; j > 0 && segw[idx[j]] > segw[idx[j - 1]]; j--) {
            int x = idx[j]; idx[j] = idx[j - 1]; idx[j - 1] = x;
        }
    /* Each sub-range is a part: a remote one waits for its send (the coordinator sends them
     * one after another, c->send each); the coordinator's own run after all sends. */
    double T = 0;
    int nsent = 0, own = -1, own_sent = 0;
    for (int qi = 0; qi < ns; qi++) {
        int q = idx[qi];
        double w[NNM_OPC__COUNT];
        for (int k = 0; k < NNM_OPC__COUNT; k++) w[k] = m->pre[k][cut[q + 1]] - m->pre[k][cut[q]];
        double pq = m->pre_param[cut[q + 1]] - m->pre_param[cut[q]];
        int best = -1;
        double bt = INFINITY;
        for (int i = 0; i < cfg->k; i++) {
            int j = cfg->nodes[i];
            if (c->exclude >> j & 1 || !mem_ok(c, j, pq)) continue;
            double start;
            if (j == c->sink) {
                start = used[i] ? fin[i] : nsent * c->send;
            } else {
                start = xfer_in(c, h, j, B) + (nsent + 1) * c->send;
                if (used[i] && fin[i] > start) start = fin[i];
            }
            double t = start + work_ms(c, j, w) + ovh_of(c, j) + fetch_ms(c, j, pq) +
                       xfer_out(c, j, m->live[b] / ns);
            if (t < bt) { bt = t; best = i; }
        }
        if (best < 0) return INFINITY;
        if (cfg->nodes[best] != c->sink) nsent++;
        else if (own < 0) { own = best; own_sent = nsent; }
        fin[best] = bt;
        used[best] = 1;
        if (assign) assign[q] = best;
        if (bt > T) T = bt;
    }
    if (own >= 0 && nsent > own_sent) {        /* sends placed after its first part */
        fin[own] += (nsent - own_sent) * c->send;
        if (fin[own] > T) T = fin[own];
    }
    if (nseg) *nseg = ns;
    if (segcut) memcpy(segcut, cut, (size_t)(ns + 1) * sizeof *cut);
    return T;
}

/* Who holds a stage's outputs: the coordinator, which gathered them (star execution). */
void sched__hold_of(const sched_ctx *c, const sched_cfg *cfg, sched_hold *h)
{
    (void)cfg;
    h->k = 1;
    h->nodes[0] = c->sink;
    h->frac[0] = 1;
}

double sched__sink_ms(const sched_ctx *c, const sched_hold *h)
{
    return xfer_in(c, h, c->sink, c->m->live[c->m->n]);
}

double sched__chain_ms(const sched_ctx *c, const sched_chain *ch)
{
    sched_hold h;
    h.k = 1;
    h.nodes[0] = c->src;
    h.frac[0] = 1;
    double tot = 0, per = 0;
    for (int i = 0; i < ch->n; i++) {
        const sched_cfg *f = &c->cfg[ch->cfg[i]];
        double t = sched__stage_ms(c, f, ch->cut[i], ch->cut[i + 1], &h, NULL, NULL, NULL, NULL);
        if (i == ch->n - 1) {
            sched_hold h2;
            sched__hold_of(c, f, &h2);
            t += sched__sink_ms(c, &h2);
        }
        tot += t;
        if (t > per) per = t;
        sched__hold_of(c, f, &h);
    }
    return c->groups ? per + 1e-3 * tot : tot;
}
