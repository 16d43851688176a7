/* runtime/slice.c — cutting a graph into slices and parts of slices.
 *
 * A slice is nodes [a, b) of the topological order, turned into a standalone graph. A part
 * of a slice computes only a range of the slice outputs along one axis:
 *   rows (axis 2 of NCHW): each node's needed output rows are traced back through the
 *     receptive field of convolutions and pools (o*stride - pad ... + (k-1)*dilation), so
 *     every boundary input is cropped to the band plus its halo, and the pads of each
 *     convolution are rewritten so the band computes exactly the rows it would have
 *     computed in the whole tensor;
 *   channels (axis 1): a convolution (group 1), Gemm or MatMul computes only its output
 *     channels [lo, hi) with the matching rows of its weights; depthwise and grouped
 *     convolutions, BatchNormalization, pools and elementwise ops carry the range back.
 * Values whose computed range is wider than one consumer needs are cropped by an inserted
 * Slice node. Every input and output of the result records the region of the original
 * tensor it covers, so parts can be joined with nnm_tensor_place.
 *
 * Works on the graph as imported (NCHW, inferred, normalized); the executor applies its
 * own layout pass to the result.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nnmesh/exec.h"
#include "ir.h"

typedef struct range {
    int set;                /* 0: not needed by the part */
    int64_t lo, hi;         /* along the part axis; full range when the axis is absent */
} range;

typedef struct sctx {
    const nnm_graph *g;
    nnm_graph *d;
    int a, b;
    int axis;               /* 1 channels, 2 rows, -1 whole */
    range *need;            /* per source value */
    int *map;               /* source value -> new value holding need[v] */
    int counter;
    nnm_diag *diag;
} sctx;

static int64_t dim_of(const nnm_value *v, int axis)
{
    return axis >= 0 && axis < v->ndim ? v->shape[axis] : 1;
}

/* Axis of input value iv that lines up with the output's part axis under right-aligned
 * broadcasting, or -1 if the input is broadcast along it. */
static int bcast_axis(const nnm_value *iv, const nnm_value *ov, int axis)
{
    int ax = axis - (ov->ndim - iv->ndim);
    if (ax < 0 || ax >= iv->ndim || iv->shape[ax] == 1) return -1;
    return ax;
}

static void need_union(range *r, int64_t lo, int64_t hi)
{
    if (!r->set) {
        r->set = 1;
        r->lo = lo;
        r->hi = hi;
        return;
    }
    if (lo < r->lo) r->lo = lo;
    if (hi > r->hi) r->hi = hi;
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

/* Input range node n needs from input j to produce output range [lo, hi) along the part
 * axis. Sets *full = 1 when the whole input is needed, *skip = 1 for weights and other
 * inputs that are constants handled by the builder. Returns NNM_EUNSUPPORTED with a message
 * naming the node when the node cannot be split along the axis. */
static nnm_err input_need(sctx *c, const nnm_node *n, int j, int64_t lo, int64_t hi,
                          int64_t *ilo, int64_t *ihi, int *full)
{
    const nnm_graph *g = c->g;
    const nnm_value *ov = &g->values[n->out[0]];
    const nnm_value *iv = &g->values[n->in[j]];
    *full = 0;
    const char *what = c->axis == 2 ? "rows" : "channels";
    /* A node asked for its whole output along the axis is simply computed whole: any op can
     * do that, split or not. */
    if (lo == 0 && hi == dim_of(ov, c->axis)) {
        *full = 1;
        return NNM_OK;
    }
    if (c->axis == 2) {
        switch (n->op) {
        case NNM_OP_CONV: case NNM_OP_MAXPOOL: case NNM_OP_AVGPOOL: {
            if (n->a.spatial_1d || ov->ndim != 4) break;
            if (j > 0) { *full = 1; return NNM_OK; }
            int64_t s = n->a.strides[0], k = n->a.kernel[0], dl = n->a.dilations[0];
            int64_t st = lo * s - n->a.pads[0];
            int64_t en = (hi - 1) * s - n->a.pads[0] + (k - 1) * dl + 1;
            *ilo = st < 0 ? 0 : st;
            *ihi = en > iv->shape[2] ? iv->shape[2] : en;
            if (*ihi < *ilo) *ihi = *ilo;
            return NNM_OK;
        }
        case NNM_OP_BATCHNORM:
            if (j > 0) { *full = 1; return NNM_OK; }
            *ilo = lo; *ihi = hi;
            return NNM_OK;
        case NNM_OP_CONCAT:
            if (n->a.axis == 2) break;
            *ilo = lo; *ihi = hi;
            return NNM_OK;
        default:
            if (is_unary(n->op) && ov->ndim == 4) { *ilo = lo; *ihi = hi; return NNM_OK; }
            if (is_binary(n->op) && ov->ndim == 4) {
                if (bcast_axis(iv, ov, 2) < 0) { *full = 1; return NNM_OK; }
                *ilo = lo; *ihi = hi;
                return NNM_OK;
            }
            break;
        }
    } else {
        switch (n->op) {
        case NNM_OP_CONV: {
            if (j > 0) { *full = 1; return NNM_OK; }
            int64_t M = ov->shape[1], C = iv->shape[1], gr = n->a.group;
            int64_t mg = M / gr, cg = C / gr;
            if (gr == 1) { *full = 1; return NNM_OK; }
            if (lo % mg || hi % mg) {
                return nnm_diag_set(c->diag, NNM_EUNSUPPORTED,
                                    "node '%s' (Conv): channel range [%lld, %lld) is not aligned to its groups of %lld output channels",
                                    n->name, (long long)lo, (long long)hi, (long long)mg);
            }
            *ilo = lo / mg * cg;
            *ihi = hi / mg * cg;
            return NNM_OK;
        }
        case NNM_OP_GEMM: case NNM_OP_MATMUL:
            *full = 1;
            return NNM_OK;
        case NNM_OP_BATCHNORM: case NNM_OP_MAXPOOL: case NNM_OP_AVGPOOL:
        case NNM_OP_GLOBAL_AVGPOOL: case NNM_OP_GLOBAL_MAXPOOL:
            if (j > 0) { *full = 1; return NNM_OK; }
            *ilo = lo; *ihi = hi;
            return NNM_OK;
        case NNM_OP_FLATTEN:
            if (iv->ndim == 4 && iv->shape[2] * iv->shape[3] == 1 && n->a.axis == 1) {
                *ilo = lo; *ihi = hi;
                return NNM_OK;
            }
            break;
        default:
            if (is_unary(n->op)) { *ilo = lo; *ihi = hi; return NNM_OK; }
            if (is_binary(n->op)) {
                if (bcast_axis(iv, ov, 1) < 0) { *full = 1; return NNM_OK; }
                *ilo = lo; *ihi = hi;
                return NNM_OK;
            }
            break;
        }
    }
    return nnm_diag_set(c->diag, NNM_EUNSUPPORTED,
                        "node '%s' (%s) cannot be split by output %s", n->name, n->onnx_op, what);
}

/* Creates a new value for source value v covering range r (or the whole). */
static int new_value(sctx *c, int v, const range *r, const char *name)
{
    const nnm_value *sv = &c->g->values[v];
    int id = ir__value_add(c->d, name, sv->dtype);
    if (id < 0) return -1;
    nnm_value *dv = &c->d->values[id];
    dv->ndim = sv->ndim;
    for (int i = 0; i < sv->ndim; i++) dv->shape[i] = sv->shape[i];
    if (c->axis >= 0 && r && r->set && c->axis < sv->ndim) dv->shape[c->axis] = r->hi - r->lo;
    return id;
}

/* A constant of the new graph: source constant v, sliced along axis to [lo, hi) when
 * axis >= 0. Returns the id (cached for whole copies) or -1. */
static int const_part(sctx *c, int v, int axis, int64_t lo, int64_t hi)
{
    const nnm_value *sv = &c->g->values[v];
    char name[600];
    if (axis < 0) {
        if (c->map[v] >= 0) return c->map[v];
        c->map[v] = ir__const_borrow(c->d, sv->name, c->g, v);
        return c->map[v];
    }
    int64_t shp[NNM_MAX_DIMS];
    for (int i = 0; i < sv->ndim; i++) shp[i] = sv->shape[i];
    shp[axis] = hi - lo;
    nnm_tensor t;
    if (nnm_tensor_init(&t, sv->dtype, sv->ndim, shp) != NNM_OK) return -1;
    size_t es = nnm_dtype_size(sv->dtype);
    int64_t outer = 1, inner = 1;
    for (int i = 0; i < axis; i++) outer *= sv->shape[i];
    for (int i = axis + 1; i < sv->ndim; i++) inner *= sv->shape[i];
    const char *src = sv->data;
    char *dst = t.data;
    for (int64_t o = 0; o < outer; o++) {
        memcpy(dst, src + ((o * sv->shape[axis] + lo) * inner) * (int64_t)es,
               (size_t)((hi - lo) * inner) * es);
        dst += (hi - lo) * inner * (int64_t)es;
    }
    snprintf(name, sizeof name, "%s#part%d", sv->name, c->counter++);
    int id = ir__const_add(c->d, name, &t);
    if (id < 0) nnm_tensor_cleanup(&t);
    return id;
}

/* Adds a Slice node cropping new value src (covering [have_lo, ...) along the axis) to
 * [lo, hi); returns the new value id. */
static int crop(sctx *c, int src, int64_t have_lo, int64_t lo, int64_t hi, const char *name)
{
    const nnm_value *sv = &c->d->values[src];
    int id = ir__value_add(c->d, name, sv->dtype);
    if (id < 0) return -1;
    nnm_value *dv = &c->d->values[id];
    sv = &c->d->values[src];
    dv->ndim = sv->ndim;
    for (int i = 0; i < sv->ndim; i++) dv->shape[i] = sv->shape[i];
    dv->shape[c->axis] = hi - lo;
    char nn[600];
    snprintf(nn, sizeof nn, "%s#crop%d", name, c->counter++);
    int k = ir__node_add(c->d, NNM_OP_SLICE, nn, "Slice", &src, 1, &id, 1);
    if (k < 0) return -1;
    nnm_node *node = &c->d->nodes[k];
    for (int i = 0; i < NNM_MAX_DIMS; i++) {
        node->a.starts[i] = 0;
        node->a.steps[i] = 1;
    }
    node->a.starts[c->axis] = lo - have_lo;
    node->a.normalized = 1;
    node->out_bytes = (size_t)nnm_shape_numel(dv->shape, dv->ndim, 1) * nnm_dtype_size(dv->dtype);
    return id;
}

static nnm_err oom(sctx *c)
{
    return nnm_diag_set(c->diag, NNM_ENOMEM, "out of memory while slicing");
}

nnm_err nnm_graph_slice(nnm_graph **out, const nnm_graph *g, int a, int b,
                        const nnm_part *part, nnm_diag *diag)
{
    if (a < 0 || b > g->n_nodes || a >= b)
        return nnm_diag_set(diag, NNM_ERANGE, "slice [%d, %d) is outside the graph's %d nodes", a,
                            b, g->n_nodes);
    sctx c;
    memset(&c, 0, sizeof c);
    c.g = g;
    c.a = a;
    c.b = b;
    c.diag = diag;
    c.axis = -1;
    if (part && part->kind == NNM_PART_CHANNELS) c.axis = 1;
    else if (part && part->kind == NNM_PART_ROWS) c.axis = 2;
    else if (part && part->kind != NNM_PART_WHOLE)
        return nnm_diag_set(diag, NNM_ERANGE, "unknown part kind %d", part->kind);
    nnm_err rc = NNM_ENOMEM;
    int nv = g->n_values;
    int *outs = NULL, n_outs = 0, *ins = NULL, n_ins = 0;
    int *nin = NULL, *nout = NULL;
    c.need = calloc((size_t)nv + 1, sizeof(range));
    c.map = malloc(((size_t)nv + 1) * sizeof(int));
    outs = malloc(((size_t)nv + 1) * sizeof(int));
    ins = malloc(((size_t)nv + 1) * sizeof(int));
    c.d = ir__graph_new();
    if (!c.need || !c.map || !outs || !ins || !c.d) goto fail;
    for (int v = 0; v < nv; v++) c.map[v] = -1;

    /* Slice outputs: produced in [a, b), read at or after b or a graph output. */
    for (int i = a; i < b; i++) {
        const nnm_node *n = &g->nodes[i];
        for (int j = 0; j < n->n_out; j++) {
            int v = n->out[j];
            if (v < 0) continue;
            int used = g->values[v].is_output;
            for (int k = b; k < g->n_nodes && !used; k++)
                for (int q = 0; q < g->nodes[k].n_in; q++)
                    if (g->nodes[k].in[q] == v) used = 1;
            if (used) outs[n_outs++] = v;
        }
    }
    if (n_outs == 0) {
        rc = nnm_diag_set(diag, NNM_ERANGE, "slice [%d, %d) produces nothing used later", a, b);
        goto fail;
    }
    /* Seed the needed ranges with the part. */
    for (int i = 0; i < n_outs; i++) {
        const nnm_value *ov = &g->values[outs[i]];
        range *r = &c.need[outs[i]];
        if (c.axis < 0) {
            r->set = 1;
            continue;
        }
        if (ov->ndim <= c.axis) {
            rc = nnm_diag_set(diag, NNM_EUNSUPPORTED,
                              "slice output '%s' has %d dimensions: it cannot be split by %s",
                              ov->name, ov->ndim, c.axis == 1 ? "channels" : "rows");
            goto fail;
        }
        int64_t dim = ov->shape[c.axis];
        if (i > 0 && dim != g->values[outs[0]].shape[c.axis]) {
            rc = nnm_diag_set(diag, NNM_EUNSUPPORTED,
                              "slice outputs '%s' and '%s' differ in %s (%lld vs %lld): a part must cut them alike",
                              g->values[outs[0]].name, ov->name, c.axis == 1 ? "channels" : "rows",
                              (long long)g->values[outs[0]].shape[c.axis], (long long)dim);
            goto fail;
        }
        if (part->begin < 0 || part->end > dim || part->begin >= part->end) {
            rc = nnm_diag_set(diag, NNM_ERANGE, "part [%lld, %lld) is outside output '%s' (%lld %s)",
                              (long long)part->begin, (long long)part->end, ov->name, (long long)dim,
                              c.axis == 1 ? "channels" : "rows");
            goto fail;
        }
        need_union(r, part->begin, part->end);
    }
    /* Backward: propagate needed ranges to inputs. */
    for (int i = b - 1; i >= a; i--) {
        const nnm_node *n = &g->nodes[i];
        if (n->n_out < 1 || n->out[0] < 0) continue;
        int any = 0;
        for (int j = 0; j < n->n_out; j++)
            if (n->out[j] >= 0 && c.need[n->out[j]].set) any = 1;
        if (!any) continue;
        if (c.axis >= 0 && n->n_out > 1 && !(n->op == NNM_OP_DROPOUT)) {
            rc = nnm_diag_set(diag, NNM_EUNSUPPORTED, "node '%s' (%s) has several outputs and cannot be split",
                              n->name, n->onnx_op);
            goto fail;
        }
        const range *ro = &c.need[n->out[0]];
        for (int j = 0; j < n->n_in; j++) {
            int v = n->in[j];
            if (v < 0 || g->values[v].data) continue;
            if (c.axis < 0) {
                c.need[v].set = 1;
                continue;
            }
            int64_t lo = 0, hi = 0;
            int full = 0;
            if ((rc = input_need(&c, n, j, ro->lo, ro->hi, &lo, &hi, &full)) != NNM_OK) goto fail;
            const nnm_value *iv = &g->values[v];
            if (full) need_union(&c.need[v], 0, dim_of(iv, c.axis));
            else need_union(&c.need[v], lo, hi);
        }
    }
    /* Boundary inputs: needed values not produced inside [a, b). */
    for (int i = a; i < b; i++) {
        const nnm_node *n = &g->nodes[i];
        for (int j = 0; j < n->n_in; j++) {
            int v = n->in[j];
            if (v < 0 || g->values[v].data || !c.need[v].set) continue;
            int p = g->values[v].producer;
            if (p >= a && p < b) continue;
            int dup = 0;
            for (int k = 0; k < n_ins; k++) dup |= ins[k] == v;
            if (!dup) ins[n_ins++] = v;
        }
    }
    nnm_graph *d = c.d;
    d->opset = g->opset;
    d->inputs = malloc(((size_t)n_ins + 1) * sizeof(int));
    d->outputs = malloc(((size_t)n_outs + 1) * sizeof(int));
    d->in_region = calloc((size_t)n_ins + 1, sizeof(nnm_region));
    d->out_region = calloc((size_t)n_outs + 1, sizeof(nnm_region));
    if (!d->inputs || !d->outputs || !d->in_region || !d->out_region) goto fail;
    if (g->source && !(d->source = strdup(g->source))) goto fail;
    for (int k = 0; k < n_ins; k++) {
        int v = ins[k];
        int id = new_value(&c, v, &c.need[v], g->values[v].name);
        if (id < 0) goto fail;
        d->values[id].is_input = 1;
        d->inputs[d->n_inputs] = id;
        nnm_region *r = &d->in_region[d->n_inputs++];
        int whole = c.axis < 0 || (c.need[v].lo == 0 && c.need[v].hi == dim_of(&g->values[v], c.axis));
        r->axis = whole ? -1 : c.axis;
        r->begin = whole ? 0 : c.need[v].lo;
        r->end = whole ? 0 : c.need[v].hi;
        c.map[v] = id;
    }
    /* Forward: build the nodes. */
    for (int i = a; i < b; i++) {
        const nnm_node *n = &g->nodes[i];
        if (n->n_out < 1) continue;
        int any = 0;
        for (int j = 0; j < n->n_out; j++)
            if (n->out[j] >= 0 && c.need[n->out[j]].set) any = 1;
        if (!any) continue;
        const range *ro = &c.need[n->out[0]];
        nin = malloc(((size_t)n->n_in + 1) * sizeof(int));
        nout = malloc(((size_t)n->n_out + 1) * sizeof(int));
        if (!nin || !nout) goto fail;
        nnm_attrs at;
        if ((rc = ir__attrs_copy(&at, &n->a)) != NNM_OK) goto fail;
        rc = NNM_ENOMEM;
        int64_t olo = ro->lo, ohi = ro->hi;
        for (int j = 0; j < n->n_in; j++) {
            int v = n->in[j];
            nin[j] = -1;
            if (v < 0) continue;
            const nnm_value *iv = &g->values[v];
            if (iv->data) {
                /* Constants: weights and broadcast operands follow channel parts. */
                int ax = -1;
                int64_t lo = 0, hi = 0;
                if (c.axis == 1) {
                    if (n->op == NNM_OP_CONV && (j == 1 || j == 2)) {
                        ax = 0; lo = olo; hi = ohi;
                    } else if (n->op == NNM_OP_GEMM && j == 1) {
                        ax = n->a.trans_b ? 0 : 1; lo = olo; hi = ohi;
                    } else if (n->op == NNM_OP_GEMM && j == 2) {
                        ax = bcast_axis(iv, &g->values[n->out[0]], 1); lo = olo; hi = ohi;
                    } else if (n->op == NNM_OP_MATMUL && j == 1) {
                        if (iv->ndim != 2) {
                            rc = nnm_diag_set(diag, NNM_EUNSUPPORTED,
                                              "node '%s' (MatMul): only a 2-D constant B can be split by channels", n->name);
                            ir__attrs_cleanup(&at);
                            goto fail;
                        }
                        ax = 1; lo = olo; hi = ohi;
                    } else if (n->op == NNM_OP_BATCHNORM && j > 0) {
                        ax = 0; lo = olo; hi = ohi;
                    } else if (is_binary(n->op)) {
                        ax = bcast_axis(iv, &g->values[n->out[0]], 1); lo = olo; hi = ohi;
                    }
                    if (ax >= 0 && lo == 0 && hi == iv->shape[ax]) ax = -1;
                } else if (c.axis == 2 && is_binary(n->op)) {
                    ax = bcast_axis(iv, &g->values[n->out[0]], 2); lo = olo; hi = ohi;
                    if (ax >= 0 && lo == 0 && hi == iv->shape[ax]) ax = -1;
                }
                if (n->op == NNM_OP_MATMUL && j == 0 && c.axis == 1) ax = -1;
                nin[j] = const_part(&c, v, ax, lo, hi);
                if (nin[j] < 0) { ir__attrs_cleanup(&at); goto fail; }
                continue;
            }
            if (c.axis < 0) {
                nin[j] = c.map[v];
                continue;
            }
            int64_t lo = 0, hi = 0;
            int full = 0;
            if ((rc = input_need(&c, n, j, olo, ohi, &lo, &hi, &full)) != NNM_OK) {
                ir__attrs_cleanup(&at);
                goto fail;
            }
            rc = NNM_ENOMEM;
            if (full) { lo = 0; hi = dim_of(iv, c.axis); }
            const range *have = &c.need[v];
            if (have->lo == lo && have->hi == hi) {
                nin[j] = c.map[v];
            } else {
                char nm[600];
                snprintf(nm, sizeof nm, "%s#band%d", iv->name, c.counter++);
                nin[j] = crop(&c, c.map[v], have->lo, lo, hi, nm);
            }
            if (nin[j] < 0) { ir__attrs_cleanup(&at); goto fail; }
            /* Rows: rewrite pads so the band computes the rows of the whole. */
            /* A node computing its whole output keeps its own pads and groups. */
            int whole_out = olo == 0 && ohi == dim_of(&g->values[n->out[0]], c.axis);
            if (c.axis == 2 && j == 0 && !whole_out &&
                (n->op == NNM_OP_CONV || n->op == NNM_OP_MAXPOOL || n->op == NNM_OP_AVGPOOL)) {
                int64_t s = n->a.strides[0], k = n->a.kernel[0], dl = n->a.dilations[0];
                int64_t st = olo * s - n->a.pads[0];
                int64_t en = (ohi - 1) * s - n->a.pads[0] + (k - 1) * dl + 1;
                at.pads[0] = (int)(st < 0 ? -st : 0);
                at.pads[2] = (int)(en > iv->shape[2] ? en - iv->shape[2] : 0);
                at.ceil_mode = 0;
            }
            if (c.axis == 1 && j == 0 && n->op == NNM_OP_CONV && n->a.group > 1 && !whole_out) {
                int64_t mg = g->values[n->out[0]].shape[1] / n->a.group;
                at.group = (int)((ohi - olo) / mg);
            }
        }
        for (int j = 0; j < n->n_out; j++) {
            int v = n->out[j];
            nout[j] = -1;
            if (v < 0) continue;
            const nnm_value *ov = &g->values[v];
            int is_slice_out = 0;
            for (int k = 0; k < n_outs; k++) is_slice_out |= outs[k] == v;
            char nm[600];
            int widened = is_slice_out && c.axis >= 0 &&
                          (c.need[v].lo != part->begin || c.need[v].hi != part->end);
            snprintf(nm, sizeof nm, widened ? "%s#full" : "%s", ov->name);
            range r = c.need[v];
            if (!r.set) r = *ro;
            nout[j] = new_value(&c, v, &r, nm);
            if (nout[j] < 0) { ir__attrs_cleanup(&at); goto fail; }
            c.map[v] = nout[j];
        }
        int k = ir__node_add(d, n->op, n->name, n->onnx_op, nin, n->n_in, nout, n->n_out);
        if (k < 0) { ir__attrs_cleanup(&at); goto fail; }
        nnm_node *dn = &d->nodes[k];
        ir__attrs_cleanup(&dn->a);
        dn->a = at;
        /* Work scales with the share of the output computed. */
        const nnm_value *ov = &g->values[n->out[0]];
        double frac = 1.0;
        if (c.axis >= 0 && ov->ndim > c.axis && ov->shape[c.axis] > 0)
            frac = (double)(ohi - olo) / (double)ov->shape[c.axis];
        dn->flops = n->flops * frac;
        dn->param_bytes = n->param_bytes;
        dn->out_bytes = (size_t)((double)n->out_bytes * frac);
        free(nin); nin = NULL;
        free(nout); nout = NULL;
    }
    /* Outputs, cropped to the requested part where a wider range was computed. */
    for (int k = 0; k < n_outs; k++) {
        int v = outs[k];
        int id = c.map[v];
        nnm_region *r = &d->out_region[k];
        r->axis = c.axis;
        r->begin = c.axis < 0 ? 0 : part->begin;
        r->end = c.axis < 0 ? 0 : part->end;
        if (c.axis >= 0 && (c.need[v].lo != part->begin || c.need[v].hi != part->end)) {
            id = crop(&c, id, c.need[v].lo, part->begin, part->end, g->values[v].name);
            if (id < 0) goto fail;
        }
        d->values[id].is_output = 1;
        d->outputs[d->n_outputs++] = id;
    }
    free(c.need);
    free(c.map);
    free(outs);
    free(ins);
    *out = d;
    return NNM_OK;
fail:
    if (rc == NNM_ENOMEM) oom(&c);
    free(nin);
    free(nout);
    free(c.need);
    free(c.map);
    free(outs);
    free(ins);
    ir__graph_free(c.d);
    return rc;
}

nnm_err nnm_graph_input_region(const nnm_graph *s, int i, nnm_region *r)
{
    if (i < 0 || i >= s->n_inputs) return NNM_ERANGE;
    if (s->in_region) *r = s->in_region[i];
    else { r->axis = -1; r->begin = r->end = 0; }
    return NNM_OK;
}

nnm_err nnm_graph_output_region(const nnm_graph *s, int i, nnm_region *r)
{
    if (i < 0 || i >= s->n_outputs) return NNM_ERANGE;
    if (s->out_region) *r = s->out_region[i];
    else { r->axis = -1; r->begin = r->end = 0; }
    return NNM_OK;
}

/* Copies between a whole tensor and a region of it; to_part selects the direction. */
static nnm_err region_copy(nnm_tensor *whole, nnm_tensor *partt, const nnm_region *r, int to_part)
{
    size_t es = nnm_dtype_size(whole->dtype);
    if (r->axis < 0) {
        if (whole->nbytes != partt->nbytes) return NNM_ESHAPE;
        if (to_part) memcpy(partt->data, whole->data, whole->nbytes);
        else memcpy(whole->data, partt->data, whole->nbytes);
        return NNM_OK;
    }
    if (r->axis >= whole->ndim || partt->ndim != whole->ndim || partt->dtype != whole->dtype)
        return NNM_ESHAPE;
    if (r->begin < 0 || r->end > whole->shape[r->axis] || r->end - r->begin != partt->shape[r->axis])
        return NNM_ESHAPE;
    for (int i = 0; i < whole->ndim; i++)
        if (i != r->axis && whole->shape[i] != partt->shape[i]) return NNM_ESHAPE;
    int64_t outer = 1, inner = 1;
    for (int i = 0; i < r->axis; i++) outer *= whole->shape[i];
    for (int i = r->axis + 1; i < whole->ndim; i++) inner *= whole->shape[i];
    int64_t span = (r->end - r->begin) * inner * (int64_t)es;
    for (int64_t o = 0; o < outer; o++) {
        char *w = (char *)whole->data + ((o * whole->shape[r->axis] + r->begin) * inner) * (int64_t)es;
        char *p = (char *)partt->data + o * span;
        if (to_part) memcpy(p, w, (size_t)span);
        else memcpy(w, p, (size_t)span);
    }
    return NNM_OK;
}

nnm_err nnm_tensor_crop(nnm_tensor *dst, const nnm_tensor *src, const nnm_region *r)
{
    int64_t shp[NNM_MAX_DIMS];
    for (int i = 0; i < src->ndim; i++) shp[i] = src->shape[i];
    if (r->axis >= 0) {
        if (r->axis >= src->ndim || r->begin < 0 || r->end > src->shape[r->axis] || r->begin >= r->end)
            return NNM_ERANGE;
        shp[r->axis] = r->end - r->begin;
    }
    nnm_err rc = nnm_tensor_init(dst, src->dtype, src->ndim, shp);
    if (rc != NNM_OK) return rc;
    if ((rc = region_copy((nnm_tensor *)src, dst, r, 1)) != NNM_OK) nnm_tensor_cleanup(dst);
    return rc;
}

nnm_err nnm_tensor_place(nnm_tensor *dst, const nnm_tensor *part, const nnm_region *r)
{
    return region_copy(dst, (nnm_tensor *)part, r, 0);
}
