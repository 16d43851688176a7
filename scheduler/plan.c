/* scheduler/plan.c — the planner: dynamic programming over cut points, turning the chosen
 * chain of stages into a plan of parts (each confirmed by nnm_graph_slice, which also gives
 * the regions), choosing codecs per edge, predicting a plan as a timed DAG, the plan cache
 * and the adaptive policy's bandit.
 *
 * DP (latency): best[p][c] is the least time to have computed nodes [0, p) with the last
 * stage in configuration c (which says who holds the data crossing cut p);
 *   best[b][c] = min over a < b, c' of best[a][c'] + stage(c, [a, b) | holders of c')
 * with best[0][source] = 0, plus the transfer of the graph outputs to the coordinator after
 * the last stage. Configurations that hold the data alike (same nodes) are merged before
 * the inner loop, so it costs O(n^2 * C * H) stage evaluations, H the distinct holder sets.
 * Throughput uses the same table with chained node groups (each node in one stage) and
 * max instead of sum (cost.c, sched__ctx_configs). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sched_int.h"

static void hold_src(const sched_ctx *c, sched_hold *h)
{
    h->k = 1;
    h->nodes[0] = c->src;
    h->frac[0] = 1;
}

static int same_holders(const sched_cfg *x, const sched_cfg *y)
{
    return x->k == y->k && !memcmp(x->nodes, y->nodes, (size_t)x->k * sizeof x->nodes[0]);
}

nnm_err sched__dp(const sched_ctx *c, sched_chain *out, nnm_diag *diag)
{
    const sched_model *m = c->m;
    int n = m->n, C = c->n_cfg, V = C;       /* V: the virtual "source" state at cut 0 */
    size_t S = (size_t)(n + 1) * (size_t)(C + 1);
    double *best = malloc(S * sizeof *best), *per = malloc(S * sizeof *per);
    int *fa = malloc(S * sizeof *fa), *fc = malloc(S * sizeof *fc);
    int *cls = malloc(((size_t)C + 1) * sizeof *cls);
    int *rep = malloc(((size_t)C + 1) * sizeof *rep);
    nnm_err rc = NNM_ENOMEM;
    if (!best || !per || !fa || !fc || !cls || !rep) {
        nnm_diag_set(diag, rc, "scheduler: out of memory planning");
        goto done;
    }
    for (size_t i = 0; i < S; i++) { best[i] = INFINITY; per[i] = 0; fa[i] = fc[i] = -1; }
    best[V] = 0;
    /* holder classes: configurations with the same nodes hold the data alike */
    int H = 0;
    for (int x = 0; x < C; x++) {
        int k = H;
        if (!c->groups) {
            for (k = 0; k < H; k++)
                if (same_holders(&c->cfg[rep[k]], &c->cfg[x])) break;
        }
        if (k == H) rep[H++] = x;
        cls[x] = k;
    }
#define AT(p, x) ((size_t)(p) * (size_t)(C + 1) + (size_t)(x))
#define KEY(p, x) (c->groups ? per[AT(p, x)] + 1e-3 * best[AT(p, x)] : best[AT(p, x)])
    int *hbest = malloc(((size_t)H + 1) * sizeof *hbest);
    if (!hbest) {
        nnm_diag_set(diag, rc, "scheduler: out of memory planning");
        goto done;
    }
    for (int b = 1; b <= n; b++) {
        for (int a = 0; a < b; a++) {
            int nh;
            if (a == 0) {
                nh = 1;
                hbest[0] = V;
            } else {
                nh = H;
                for (int k = 0; k < H; k++) hbest[k] = -1;
                if (!c->groups) {
                    for (int x = 0; x < C; x++) {
                        if (isinf(best[AT(a, x)])) continue;
                        int k = cls[x];
                        if (hbest[k] < 0 || KEY(a, x) < KEY(a, hbest[k])) hbest[k] = x;
                    }
                } else {
                    for (int x = 0; x < C; x++) hbest[x] = isinf(best[AT(a, x)]) ? -1 : x;
                }
            }
            for (int k = 0; k < nh; k++) {
                int px = hbest[k];
                if (px < 0) continue;
                sched_hold h;
                if (px == V) hold_src(c, &h);
                else sched__hold_of(c, &c->cfg[px], &h);
                for (int x = 0; x < C; x++) {
                    const sched_cfg *f = &c->cfg[x];
                    if (a == 0 && c->pin &&
                        !(f->type == NNM_STAGE_SINGLE && f->nodes[0] == c->src)) continue;
                    if (c->groups) {
                        int want = px == V ? 0 : c->cfg[px].gstart + c->cfg[px].k;
                        if (f->gstart != want) continue;
                    }
                    double t = sched__stage_ms(c, f, a, b, &h, NULL, NULL, NULL, NULL);
                    if (isinf(t)) continue;
                    if (b == n) {
                        sched_hold h2;
                        sched__hold_of(c, f, &h2);
                        t += sched__sink_ms(c, &h2);
                    }
                    double tot = best[AT(a, px)] + t;
                    double pe = per[AT(a, px)] > t ? per[AT(a, px)] : t;
                    double key = c->groups ? pe + 1e-3 * tot : tot;
                    size_t at = AT(b, x);
                    double old = isinf(best[at]) ? INFINITY : KEY(b, x);
                    if (key < old) {
                        best[at] = tot;
                        per[at] = pe;
                        fa[at] = a;
                        fc[at] = px;
                    }
                }
            }
        }
    }
    int bx = -1;
    for (int x = 0; x < C; x++)
        if (!isinf(best[AT(n, x)]) && (bx < 0 || KEY(n, x) < KEY(n, bx))) bx = x;
    if (bx < 0) {
        rc = nnm_diag_set(diag, NNM_ESTATE,
                          "scheduler: no node of the mesh can run some part of the model (memory, draining or pinning)");
        goto done2;
    }
    /* walk back */
    int cuts[1025], cfgs[1025], ns = 0, p = n, x = bx;
    while (p > 0) {
        cfgs[ns] = x;
        cuts[ns] = p;
        ns++;
        int a = fa[AT(p, x)], px = fc[AT(p, x)];
        p = a;
        x = px;
    }
    out->n = ns;
    for (int i = 0; i < ns; i++) {
        out->cut[i + 1] = cuts[ns - 1 - i];
        out->cfg[i] = cfgs[ns - 1 - i];
    }
    out->cut[0] = 0;
    out->cost = KEY(n, bx);
    rc = NNM_OK;
done2:
    free(hbest);
#undef AT
#undef KEY
done:
    free(best);
    free(per);
    free(fa);
    free(fc);
    free(cls);
    free(rep);
    return rc;
}

/* --- from a chain to a plan --------------------------------------------------------------- */

static double vbytes(const nnm_graph *g, int v)
{
    const nnm_value *val = &g->values[v];
    int64_t n = nnm_shape_numel(val->shape, val->ndim, 1);
    return n < 0 ? 0 : (double)n * (double)nnm_dtype_size(val->dtype);
}

static int stage_of(const sched_chain *ch, int node)
{
    if (node < 0) return -1;
    for (int i = 0; i < ch->n; i++)
        if (node >= ch->cut[i] && node < ch->cut[i + 1]) return i;
    return -1;
}

/* Fills part's inputs, outputs and work from the slice of g it describes. Returns the
 * slicer's error (the caller decides whether a rejected split is fatal). */
static nnm_err part_fill(nnm_plan_part *pp, const nnm_graph *g, const sched_chain *ch,
                         nnm_diag *diag)
{
    nnm_graph *sg = NULL;
    nnm_err rc = nnm_graph_slice(&sg, g, pp->node_begin, pp->node_end, &pp->part, diag);
    if (rc != NNM_OK) return rc;
    rc = NNM_ENOMEM;
    pp->in = calloc((size_t)sg->n_inputs + 1, sizeof *pp->in);
    pp->out = calloc((size_t)sg->n_outputs + 1, sizeof *pp->out);
    if (!pp->in || !pp->out) goto fail;
    for (int i = 0; i < sg->n_inputs; i++) {
        const nnm_value *v = &sg->values[sg->inputs[i]];
        nnm_plan_input *in = &pp->in[pp->n_in];
        if (!(in->value = strdup(v->name))) goto fail;
        pp->n_in++;
        nnm_graph_input_region(sg, i, &in->region);
        in->bytes = (size_t)vbytes(sg, sg->inputs[i]);
        int ov = ir__value_find(g, v->name);
        in->src_stage = ov < 0 ? -1 : stage_of(ch, g->values[ov].producer);
        in->codec = NNM_CODEC_NONE;
    }
    for (int i = 0; i < sg->n_outputs; i++) {
        const nnm_value *v = &sg->values[sg->outputs[i]];
        nnm_plan_output *o = &pp->out[pp->n_out];
        if (!(o->value = strdup(v->name))) goto fail;
        pp->n_out++;
        nnm_graph_output_region(sg, i, &o->region);
        o->bytes = (size_t)vbytes(sg, sg->outputs[i]);
        o->codec = NNM_CODEC_NONE;
    }
    for (int c = 0; c < NNM_OPC__COUNT; c++) pp->work[c] = 0;
    for (int k = 0; k < sg->n_nodes; k++) {
        int c = nnm_sched_classify(sg, k);
        pp->work[c] += c == NNM_OPC_OTHER ? (double)sg->nodes[k].out_bytes : sg->nodes[k].flops;
    }
    ir__graph_free(sg);
    return NNM_OK;
fail:
    ir__graph_free(sg);
    return nnm_diag_set(diag, rc, "scheduler: out of memory building a plan");
}

/* Integer part sizes from shares: largest remainder, every kept part at least 1. */
static int part_sizes(const double *share, int k, int64_t dim, int64_t *cnt)
{
    double tot = 0;
    for (int i = 0; i < k; i++) tot += share[i] > 0 ? share[i] : 0;
    if (tot <= 0) return 0;
    int64_t sum = 0;
    double rem[SCHED_MAXN];
    for (int i = 0; i < k; i++) {
        double x = share[i] > 0 ? share[i] / tot * (double)dim : 0;
        cnt[i] = (int64_t)floor(x);
        rem[i] = x - (double)cnt[i];
        sum += cnt[i];
    }
    while (sum < dim) {
        int bi = -1;
        for (int i = 0; i < k; i++)
            if (share[i] > 0 && (bi < 0 || rem[i] > rem[bi])) bi = i;
        cnt[bi]++;
        rem[bi] = -1;
        sum++;
    }
    /* parts that rounded to 0 rows are dropped (their rows went to others) */
    int kept = 0;
    for (int i = 0; i < k; i++) kept += cnt[i] > 0;
    return kept;
}

static nnm_err part_new(nnm_plan_stage *st, const char *node)
{
    nnm_plan_part *p = realloc(st->parts, (size_t)(st->n_parts + 1) * sizeof *p);
    if (p == NULL) return NNM_ENOMEM;
    st->parts = p;
    memset(&p[st->n_parts], 0, sizeof *p);
    strcpy(p[st->n_parts].node, node);
    st->n_parts++;
    return NNM_OK;
}

/* Builds the plan of chain ch. On a split the slicer rejects, *rej_stage gets its index and
 * NNM_EUNSUPPORTED is returned with *out NULL. */
static nnm_err build_plan(const sched_ctx *c, const sched_chain *ch, nnm_plan **out,
                          int *rej_stage, nnm_diag *diag)
{
    const nnm_sched *s = c->s;
    const nnm_graph *g = c->m->g;
    nnm_err rc = NNM_ENOMEM;
    *rej_stage = -1;
    nnm_plan *p = calloc(1, sizeof *p);
    if (p == NULL) goto oom;
    p->stages = calloc((size_t)ch->n, sizeof *p->stages);
    if (p->stages == NULL) goto oom;
    memcpy(p->model_hash, c->m->hash, NNM_WIRE_HASH_BYTES);
    p->mesh_version = s->version;
    p->policy = c->policy;
    p->objective = c->objective;
    p->arm = -1;
    strcpy(p->coordinator, s->nodes[c->sink].pub.id);
    strcpy(p->source, s->nodes[c->src].pub.id);
    sched_hold h;
    hold_src(c, &h);
    for (int i = 0; i < ch->n; i++) {
        const sched_cfg *f = &c->cfg[ch->cfg[i]];
        int a = ch->cut[i], b = ch->cut[i + 1];
        nnm_plan_stage *st = &p->stages[p->n_stages++];
        st->node_begin = a;
        st->node_end = b;
        st->kind = (nnm_stage_kind)f->type;
        double shares[SCHED_MAXN];
        int nseg = 0, segcut[SCHED_MAX_SEG + 1], assign[SCHED_MAX_SEG];
        sched__stage_ms(c, f, a, b, &h, shares, &nseg, segcut, assign);
        if (f->type == NNM_STAGE_SINGLE) {
            if (part_new(st, s->nodes[f->nodes[0]].pub.id) != NNM_OK) goto oom;
            st->parts[0].node_begin = a;
            st->parts[0].node_end = b;
        } else if (f->type == NNM_STAGE_SPLIT) {
            int64_t dim = c->m->st[f->axis][(size_t)a * (size_t)(c->m->n + 1) + (size_t)b].dim;
            int64_t cnt[SCHED_MAXN], at = 0;
            part_sizes(shares, f->k, dim, cnt);
            for (int q = 0; q < f->k; q++) {
                if (cnt[q] <= 0) continue;
                if (part_new(st, s->nodes[f->nodes[q]].pub.id) != NNM_OK) goto oom;
                nnm_plan_part *pp = &st->parts[st->n_parts - 1];
                pp->node_begin = a;
                pp->node_end = b;
                pp->part.kind = f->axis == 0 ? NNM_PART_ROWS : NNM_PART_CHANNELS;
                pp->part.begin = at;
                pp->part.end = at + cnt[q];
                at += cnt[q];
            }
            if (st->n_parts == 1) {   /* everything rounded onto one node */
                st->kind = NNM_STAGE_SINGLE;
                st->parts[0].part.kind = NNM_PART_WHOLE;
                st->parts[0].part.begin = st->parts[0].part.end = 0;
            }
        } else {
            for (int q = 0; q < nseg; q++) {
                if (part_new(st, s->nodes[f->nodes[assign[q]]].pub.id) != NNM_OK) goto oom;
                nnm_plan_part *pp = &st->parts[st->n_parts - 1];
                pp->node_begin = segcut[q];
                pp->node_end = segcut[q + 1];
            }
        }
        for (int q = 0; q < st->n_parts; q++) {
            nnm_diag d2;
            nnm_diag_clear(&d2);
            rc = part_fill(&st->parts[q], g, ch, &d2);
            if (rc == NNM_OK) continue;
            if (rc != NNM_ENOMEM && st->kind != NNM_STAGE_SINGLE) {
                *rej_stage = i;
                rc = NNM_EUNSUPPORTED;
            } else if (diag) {
                *diag = d2;
            }
            nnm_plan_free(p);
            return rc;
        }
        sched__hold_of(c, f, &h);
    }
    /* graph outputs back to the coordinator */
    p->outputs = calloc((size_t)g->n_outputs + 1, sizeof *p->outputs);
    if (p->outputs == NULL) goto oom;
    for (int i = 0; i < g->n_outputs; i++) {
        int v = g->outputs[i];
        nnm_plan_input *o = &p->outputs[p->n_out];
        if (!(o->value = strdup(g->values[v].name))) goto oom;
        p->n_out++;
        o->src_stage = stage_of(ch, g->values[v].producer);
        o->region.axis = -1;
        o->bytes = (size_t)vbytes(g, v);
    }
    *out = p;
    return NNM_OK;
oom:
    nnm_plan_free(p);
    return nnm_diag_set(diag, NNM_ENOMEM, "scheduler: out of memory building a plan");
}

/* --- predicting a plan as a timed DAG ----------------------------------------------------- */

/* Bytes of input `in` that part q of its producing stage supplies. */
static double overlap_bytes(const nnm_plan_input *in, const nnm_plan_part *q, int nparts)
{
    for (int k = 0; k < q->n_out; k++) {
        const nnm_plan_output *o = &q->out[k];
        if (strcmp(o->value, in->value)) continue;
        if (o->region.axis < 0) return (double)in->bytes;
        int64_t ol = o->region.end - o->region.begin;
        if (ol <= 0) return 0;
        double per = (double)o->bytes / (double)ol;
        if (in->region.axis < 0) return (double)o->bytes;
        if (in->region.axis != o->region.axis) return (double)in->bytes / nparts;
        int64_t lo = in->region.begin > o->region.begin ? in->region.begin : o->region.begin;
        int64_t hi = in->region.end < o->region.end ? in->region.end : o->region.end;
        return hi > lo ? per * (double)(hi - lo) : 0;
    }
    return 0;
}

static double part_ms(const nnm_sched *s, int j, const nnm_plan_part *pp, int refined)
{
    double t = s->cfg.slice_overhead_ms;
    for (int c = 0; c < NNM_OPC__COUNT; c++) t += pp->work[c] / sched__rate(s, j, c, refined);
    return t;
}

/* Arrival time of input `in` at node j: the latest of its producers' finish + transfer. */
/* Times every part (fills pred fields when fill is set). */
static nnm_err predict(const nnm_sched *s, nnm_plan *p, int refined, int fill, double *lat,
                       double *period, nnm_diag *diag)
{
    nnm_err rc = NNM_ENOMEM;
    int **nidx = calloc((size_t)p->n_stages + 1, sizeof *nidx);
    double **fin = calloc((size_t)p->n_stages + 1, sizeof *fin);
    double busy[SCHED_MAXN] = { 0 }, freeat[SCHED_MAXN] = { 0 };
    int src = sched__node_find(s, p->source), sink = sched__node_find(s, p->coordinator);
    if (!nidx || !fin) goto done;
    if (src < 0 || sink < 0) {
        rc = nnm_diag_set(diag, NNM_ENOTFOUND, "scheduler: plan node '%s' is not in the mesh",
                          src < 0 ? p->source : p->coordinator);
        goto done;
    }
    /* Star execution (scheduler/coord.c): the coordinator holds each stage's inputs when the
     * stage starts (ready), sends every remote part its inputs one after another over its
     * own link (up), runs its own parts, and the stage is done when every part's outputs are
     * back with it (inputs and outputs each timed with their edge's codec). The request's
     * inputs are with the coordinator at time 0 (a pinned source runs the first stage, but
     * the coordinator still holds the request).
     * Refined, the coordinator's send work per remote part (snd) is serial on it and comes
     * before its own parts; a remote part pays its node's learned overhead (ovh - the
     * slice_overhead_ms in part_ms) between its compute and its answer. */
    (void)src;
    double ready = 0, snd = sched__send_ms(s, refined);
    for (int i = 0; i < p->n_stages; i++) {
        const nnm_plan_stage *st = &p->stages[i];
        nidx[i] = malloc(((size_t)st->n_parts + 1) * sizeof **nidx);
        fin[i] = malloc(((size_t)st->n_parts + 1) * sizeof **fin);
        if (!nidx[i] || !fin[i]) goto done;
        double end = 0, up = ready, done_at = ready, cpu = ready;
        int remote = 0;
        for (int q = 0; q < st->n_parts; q++) remote += strcmp(st->parts[q].node, p->coordinator) != 0;
        for (int q = 0; q < st->n_parts; q++) {
            const nnm_plan_part *pp = &st->parts[q];
            int j = sched__node_find(s, pp->node);
            if (j < 0) {
                rc = nnm_diag_set(diag, NNM_ENOTFOUND, "scheduler: plan node '%s' is not in the mesh",
                                  pp->node);
                goto done;
            }
            nidx[i][q] = j;
            double start = ready + remote * snd, ext = 0;
            if (j != sink) {
                cpu += snd;
                if (cpu > up) up = cpu;
                for (int k = 0; k < pp->n_in; k++)
                    up += sched__edge_ms(s, sink, j, (double)pp->in[k].bytes, pp->in[k].codec, refined);
                start = up;
                ext = sched__part_ovh(s, j, sink, refined) - s->cfg.slice_overhead_ms;
            }
            if (freeat[j] > start) start = freeat[j];
            double t = part_ms(s, j, pp, refined);
            fin[i][q] = start + t + ext;
            freeat[j] = fin[i][q];
            busy[j] += t + ext;
            double back = fin[i][q];
            if (j != sink)
                for (int k = 0; k < pp->n_out; k++)
                    back += sched__edge_ms(s, j, sink, (double)pp->out[k].bytes, pp->out[k].codec,
                                           refined);
            if (back > done_at) done_at = back;
            if (fill) st->parts[q].pred_ms = t;
            if (fin[i][q] > end) end = fin[i][q];
        }
        if (fill) p->stages[i].pred_end_ms = end;
        ready = done_at;
    }
    double L = ready;
    double P = 0;
    for (int j = 0; j < SCHED_MAXN; j++) if (busy[j] > P) P = busy[j];
    *lat = L;
    *period = P;
    rc = NNM_OK;
done:
    if (rc == NNM_ENOMEM) nnm_diag_set(diag, rc, "scheduler: out of memory predicting a plan");
    for (int i = 0; i < p->n_stages && nidx && fin; i++) {
        free(nidx[i]);
        free(fin[i]);
    }
    free(nidx);
    free(fin);
    return rc;
}

nnm_err nnm_sched_plan_predict(const nnm_sched *s, const nnm_plan *plan, int refined,
                               double *latency_ms, double *period_ms, nnm_diag *diag)
{
    return predict(s, (nnm_plan *)plan, refined, 0, latency_ms, period_ms, diag);
}

static int value_is_f32(const nnm_graph *g, const char *name)
{
    int v = ir__value_find(g, name);
    return v >= 0 && g->values[v].dtype == NNM_DT_F32;
}

/* Codec of every edge: the one that moves the largest share of the edge fastest. Inputs come
 * from the node holding most of them; a part's outputs (its result) go back to the
 * coordinator, which runs the plan as a star (scheduler/coord.c), by the same rule. */
static void choose_codecs(const nnm_sched *s, nnm_plan *p, const nnm_graph *g, int lossy,
                          int refined)
{
    int src = sched__node_find(s, p->source), sink = sched__node_find(s, p->coordinator);
    for (int i = 0; i <= p->n_stages; i++) {
        int last = i == p->n_stages;
        int np = last ? 1 : p->stages[i].n_parts;
        for (int q = 0; q < np; q++) {
            int j = last ? sink : sched__node_find(s, p->stages[i].parts[q].node);
            int nin = last ? p->n_out : p->stages[i].parts[q].n_in;
            for (int k = 0; k < nin; k++) {
                nnm_plan_input *in = last ? &p->outputs[k] : &p->stages[i].parts[q].in[k];
                int f32 = value_is_f32(g, in->value);
                int from = src;
                double by = (double)in->bytes;
                if (in->src_stage >= 0) {
                    const nnm_plan_stage *ps = &p->stages[in->src_stage];
                    double bb = -1;
                    for (int r = 0; r < ps->n_parts; r++) {
                        double x = overlap_bytes(in, &ps->parts[r], ps->n_parts);
                        int fr = sched__node_find(s, ps->parts[r].node);
                        if (fr != j && x > bb) { bb = x; from = fr; by = x; }
                    }
                    if (bb < 0) from = j;
                }
                sched__link_ms(s, from, j, by, refined, lossy, f32, &in->codec);
            }
            if (last) continue;
            nnm_plan_part *pp = &p->stages[i].parts[q];
            for (int k = 0; k < pp->n_out; k++)
                sched__link_ms(s, j, sink, (double)pp->out[k].bytes, refined, lossy,
                               value_is_f32(g, pp->out[k].value), &pp->out[k].codec);
        }
    }
}

/* --- cache, candidates and the bandit -------------------------------------------------- */

/* Whether two plans have the same stages and, per stage, the same nodes running the same
 * kinds of parts in the same order; with ranges also the same part ranges (equal), else the
 * ranges may differ (alike: shares re-balanced after a speed estimate moved; such a plan
 * moves the same tensors between the same nodes, so its measured latency carries). */
static int plans_match(const nnm_plan *x, const nnm_plan *y, int ranges)
{
    if (x->n_stages != y->n_stages) return 0;
    for (int i = 0; i < x->n_stages; i++) {
        const nnm_plan_stage *a = &x->stages[i], *b = &y->stages[i];
        if (a->node_begin != b->node_begin || a->node_end != b->node_end ||
            a->n_parts != b->n_parts) return 0;
        for (int q = 0; q < a->n_parts; q++) {
            const nnm_plan_part *u = &a->parts[q], *v = &b->parts[q];
            if (strcmp(u->node, v->node) || u->node_begin != v->node_begin ||
                u->node_end != v->node_end || u->part.kind != v->part.kind) return 0;
            if (ranges && (u->part.begin != v->part.begin || u->part.end != v->part.end))
                return 0;
        }
    }
    return 1;
}

static int plans_equal(const nnm_plan *x, const nnm_plan *y) { return plans_match(x, y, 1); }
static int plans_alike(const nnm_plan *x, const nnm_plan *y) { return plans_match(x, y, 0); }

/* Parts of p that do not run on its coordinator. */
static int plan_remote_parts(const nnm_plan *p)
{
    int n = 0;
    for (int i = 0; i < p->n_stages; i++)
        for (int q = 0; q < p->stages[i].n_parts; q++)
            n += strcmp(p->stages[i].parts[q].node, p->coordinator) != 0;
    return n;
}

static int plan_is_local(const nnm_plan *p)
{
    return plan_remote_parts(p) == 0;
}

/* DP + build, retrying while the slicer rejects a split the analytic rules allowed. */
static nnm_err plan_ctx(sched_ctx *c, nnm_plan **out, nnm_diag *diag)
{
    sched_chain *ch = malloc(sizeof *ch);
    if (ch == NULL) return nnm_diag_set(diag, NNM_ENOMEM, "scheduler: out of memory planning");
    nnm_err rc = NNM_OK;
    for (int tries = 0; tries < 64; tries++) {
        if ((rc = sched__dp(c, ch, diag)) != NNM_OK) break;
        int rej = -1;
        rc = build_plan(c, ch, out, &rej, diag);
        if (rc == NNM_OK || rej < 0) break;
        const sched_cfg *f = &c->cfg[ch->cfg[rej]];
        int a = ch->cut[rej], b = ch->cut[rej + 1];
        if (f->type == NNM_STAGE_SPLIT) {
            c->m->st[f->axis][(size_t)a * (size_t)(c->m->n + 1) + (size_t)b].feasible = 0;
        } else {
            /* a branch split the slicer rejects: forbid that config here (rare) */
            c->m->st[0][(size_t)a * (size_t)(c->m->n + 1) + (size_t)b].feasible = 0;
            c->m->st[1][(size_t)a * (size_t)(c->m->n + 1) + (size_t)b].feasible = 0;
            rc = nnm_diag_set(diag, NNM_EUNSUPPORTED, "scheduler: a branch split was rejected by the slicer");
            break;
        }
        rc = NNM_EUNSUPPORTED;
    }
    free(ch);
    if (rc == NNM_OK) {
        double L, P;
        choose_codecs(c->s, *out, c->m->g, c->lossy, c->refined);
        if ((rc = predict(c->s, *out, c->refined, 1, &L, &P, diag)) != NNM_OK) {
            nnm_plan_free(*out);
            *out = NULL;
            return rc;
        }
        (*out)->pred_latency_ms = L;
        (*out)->pred_period_ms = P;
    }
    return rc;
}

void sched__entry_free(sched_entry *e)
{
    if (e == NULL) return;
    for (int i = 0; i < e->n_arms; i++) nnm_plan_free(e->arms[i]);
    free(e);
}

/* Builds candidate arms of the adaptive policy around the DP plan e->arms[e->dp_arm]:
 * variants first..last of (0) the DP without a node used in a parallel stage, (1) with that
 * node's shares halved, (2) local-only, (3) the whole model on one peer (each peer; not
 * with a pinned first slice). Offloading is the plan a loaded coordinator needs, and one the
 * DP's star model rarely proposes while it is optimistic about splits: a split that measured
 * badly then leaves nothing but local-only in reach. */
static nnm_err candidates(sched_ctx *base, sched_entry *e, int first, int last, nnm_diag *diag)
{
    const nnm_sched *s = base->s;
    const nnm_plan *p0 = e->arms[e->dp_arm];
    int used[SCHED_MAXN] = { 0 };
    for (int i = 0; i < p0->n_stages; i++) {
        if (p0->stages[i].n_parts < 2) continue;
        for (int q = 0; q < p0->stages[i].n_parts; q++) {
            int j = sched__node_find(s, p0->stages[i].parts[q].node);
            if (j >= 0) used[j] = 1;
        }
    }
    sched_ctx *c = malloc(sizeof *c);
    if (c == NULL) return nnm_diag_set(diag, NNM_ENOMEM, "scheduler: out of memory planning");
    for (int variant = first; variant <= last; variant++) {
        for (int j = 0; j < SCHED_MAXN && e->n_arms < s->cfg.max_arms && e->n_arms < 32; j++) {
            if (variant < 2 && !used[j]) continue;
            if (variant == 2 && j > 0) break;
            if (variant == 3 && (base->pin || j == base->src || !s->nodes[j].present ||
                                 s->nodes[j].pub.draining || (base->exclude >> j & 1)))
                continue;
            *c = *base;
            if (variant == 0) {
                if (base->pin && j == base->src) continue;
                c->exclude |= 1u << j;
            } else if (variant == 1) {
                c->perturb[j] = 0.5;
            } else if (variant == 2) {
                c->policy = NNM_POLICY_LOCAL;
            } else {
                c->whole_on = j + 1;
            }
            sched__ctx_configs(c);
            nnm_plan *p = NULL;
            nnm_diag d2;
            if (plan_ctx(c, &p, &d2) != NNM_OK) continue;   /* a variant may be infeasible */
            int dup = 0;
            for (int a = 0; a < e->n_arms && !dup; a++) dup = plans_equal(e->arms[a], p);
            if (dup) {
                nnm_plan_free(p);
                continue;
            }
            p->policy = NNM_POLICY_ADAPTIVE;
            e->arms[e->n_arms++] = p;
        }
    }
    free(c);
    return NNM_OK;
}

/* Bounded exploration (docs/SCHEDULER.md, "Adaptive"). An arm counts as measured while its
 * discounted count is at least MEASURED_MIN: one measurement stays for about 45 requests at
 * discount 0.95, and then the arm may be tried again (the mesh may have changed).
 * - Calibration: the predictions of arms that use peers are multiplied by the geometric
 *   mean of measured / predicted over the measurements of such arms (discounted like the
 *   counts, and kept across rebuilds of the set: it describes the cost model, not a plan),
 *   so a cost model that is optimistic about links and peers does not make every untried
 *   split look best. The local-only arm keeps its prediction: it involves no link and no
 *   peer, what the model gets wrong, and it is measured anyway (Baseline).
 * - Bound: an arm is eligible only when its measured mean (unmeasured: its calibrated
 *   prior) is at most EXPLORE_RATIO times the best measured mean; an unmeasured one, in a
 *   busy mesh (requests wait at the coordinator, or a peer advertises a queue), only when
 *   its calibrated prior beats both that mean and that arm's own prediction. An unmeasured
 *   arm with a part on a peer that advertises requests of its own waits until that peer is
 *   idle, unless no other arm is eligible (uses_busy_peer).
 * - Baseline: the local-only arm is measured whenever it is not (and some arm is), twice
 *   at first, so the bound always knows what running locally costs. In a busy mesh it also
 *   goes first, unless some arm is predicted EXPLORE_RATIO times faster.
 * Among the eligible arms: discounted UCB1, the calibrated prior counting as one
 * observation, exploration bonus c * best mean * sqrt(2 ln N / n_i). */
#define MEASURED_MIN 0.1
#define EXPLORE_RATIO 1.5
/* Change detection: two warm measurements in a row this far off an arm's mean, on the same
 * side, start its history over (see nnm_sched_observe_latency). */
#define SHIFT_RATIO 1.5
/* How much slower a plan's cold first run may be than its warm runs (ResNet-18 offloaded to a
 * 25% board: 1235 ms cold, ~370 warm). */
#define COLD_RATIO 3.0

/* The calibration of arm i's prediction. Arms with one remote part (an offload, a stage on
 * one peer) have their own: a split's per-part costs, which a measured split puts into the
 * shared ratio (7x on the boards), do not apply to them, and a loaded coordinator could
 * never try the offload it needs. Until one is measured they take the model's prediction,
 * which has learned the per-part overhead and the links from the split. */
static double cal_of(double cnt, double sum)
{
    return cnt >= MEASURED_MIN ? exp(sum / cnt) : 1;
}

static double cal_ratio(const sched_entry *e, int i)
{
    return e->one[i] ? cal_of(e->cal1_cnt, e->cal1_sum) : cal_of(e->cal_cnt, e->cal_sum);
}

/* Arm i's calibrated prediction (the local-only arm keeps its own, see above). */
static double arm_q(const sched_entry *e, int i)
{
    return e->local[i] ? e->prior[i] : e->prior[i] * cal_ratio(e, i);
}

/* The best measured mean over the arms but `skip` (-1: none); INFINITY if none is measured. */
static double best_mean(const sched_entry *e, int skip)
{
    double best = INFINITY;
    for (int i = 0; i < e->n_arms; i++)
        if (i != skip && e->cnt[i] >= MEASURED_MIN && e->sum[i] / e->cnt[i] < best)
            best = e->sum[i] / e->cnt[i];
    return best;
}

/* Mesh indices of the peers that advertise requests of their own (nnm_mesh_node.queue), but
 * src (a pinned first slice's owner; -1: none). */
static uint32_t busy_peers(const nnm_sched *s, int src)
{
    uint32_t m = 0;
    for (int i = 0; i < SCHED_MAXN && i < 32; i++)
        if (i != src && s->nodes[i].present && s->nodes[i].pub.queue > 0 &&
            strcmp(s->nodes[i].pub.id, s->self))
            m |= 1u << i;
    return m;
}

/* Whether plan p puts a part on a peer in the set busy (busy_peers). Such a peer serves a task
 * only between its own runs (a node runs one thing at a time), so each stage with a part
 * there may wait for a whole request of the peer's, which the cost model does not price: a
 * ResNet-18 split over 2 boards, 12 stages and 22 parts, predicted 173 ms against 183
 * measured locally, ran 4.4 s while the peer streamed (docs/BENCH_DIST.md). */
static int uses_busy_peer(const nnm_sched *s, const nnm_plan *p, uint32_t busy)
{
    for (int st = 0; busy && p && st < p->n_stages; st++)
        for (int k = 0; k < p->stages[st].n_parts; k++) {
            int i = sched__node_find(s, p->stages[st].parts[k].node);
            if (i >= 0 && i < 32 && (busy >> i & 1)) return 1;
        }
    return 0;
}

int sched__pick_arm(const nnm_sched *s, const sched_entry *e)
{
    return sched__pick_arm_backlog(s, e, 0);
}

int sched__pick_arm_backlog(const nnm_sched *s, const sched_entry *e, int backlog)
{
    double best_meas = best_mean(e, -1);
    /* A busy mesh: requests wait behind this one, or a peer advertises requests of its own
     * (then an exploration slows their streams too, and the ratio of its gain to its risk
     * is worst: a MobileNetV2 node with an empty queue, its peers streaming, tried a 5-part
     * split predicted at 55 ms against 50 measured locally; it ran 203 ms, then 362 warm). */
    uint32_t busy_set = busy_peers(s, -1);
    int busy = backlog > 0 || busy_set != 0;
    /* In a busy mesh an untried arm must be predicted (calibrated) better
     * than the best measured mean, not merely within the bound, and better than that arm's
     * own prediction: a like-for-like comparison where the model misjudges both (MobileNetV2
     * mid-stream: local predicted 29 ms, measured 39; a 2-node split predicted 31 ran 510
     * ms). A split's first run is where the cost model is most wrong (peers busy with their
     * own streams: a 22-part ResNet-18 split predicted 269 ms ran 3.3 s mid-stream against
     * 229 ms local), and every queued request pays for it; an idle moment explores as
     * usual. */
    double untried_max = EXPLORE_RATIO * best_meas;
    if (busy) {
        untried_max = best_meas;
        for (int i = 0; i < e->n_arms; i++)
            if (e->cnt[i] >= MEASURED_MIN && e->sum[i] / e->cnt[i] == best_meas &&
                arm_q(e, i) < untried_max)
                untried_max = arm_q(e, i);
    }
    /* An arm whose only run was its cold first one runs again at once, if a warm run
     * COLD_RATIO times faster would be within the bound of another measured arm: that run
     * paid one-time costs (slice executors built on a peer, weights loaded: 3x a warm run of
     * ResNet-18 on a 25% board), and as its mean it kept the plan out of bounds for ~45
     * requests. Nothing else measured (a set's first request): the baseline comes first; a
     * stream's first split re-run at once cost 5-8 s on 4 loaded boards. In a busy mesh the
     * warm run must promise to beat the other arm, as an untried one must. */
    int la = e->last_arm;
    if (la >= 0 && la < e->n_arms && e->runs[la] == 1 && e->cnt[la] >= MEASURED_MIN) {
        double other = best_mean(e, la);
        if (!isinf(other) &&
            e->sum[la] / e->cnt[la] <= COLD_RATIO * (busy ? 1.0 : EXPLORE_RATIO) * other)
            return la;
    }
    /* Nothing measured yet (a set's first request) while the mesh is busy (requests wait
     * here, or a peer holds requests of its own): a split runs blind, cold, and where the
     * cost model is most wrong, so it goes first only when predicted EXPLORE_RATIO times
     * faster than running locally; otherwise the baseline goes first and the split is tried
     * under the bounds below. A ResNet-18 stream's first requests on 4 boards ran the DP's
     * 21-part split, predicted at 323 ms against 347 ms local, in 2.7-3.3 s: every peer was
     * busy with its own stream. An idle mesh tries the split first as before: there its
     * cold run is what keeps splits that do not pay from being explored further. */
    if (isinf(best_meas) && busy) {
        int loc = -1;
        double best_q = INFINITY;
        for (int i = 0; i < e->n_arms; i++) {
            if (e->local[i] && loc < 0) loc = i;
            else if (!e->local[i] && !uses_busy_peer(s, e->arms[i], busy_set) &&
                     arm_q(e, i) < best_q)
                best_q = arm_q(e, i);
        }
        if (loc >= 0 && !(best_q * EXPLORE_RATIO <= e->prior[loc])) return loc;
    }
    /* The local-only plan is the baseline a mesh must beat, and its prediction rests on the
     * coordinator's advertised speed alone: once any arm is measured, so is it (twice: the
     * first run is a cold one, see nnm_sched_observe_latency). */
    for (int i = 0; i < e->n_arms; i++)
        if (e->local[i] && (e->cnt[i] < MEASURED_MIN || e->runs[i] < 2) && !isinf(best_meas))
            return i;
    double N = 0, scale = INFINITY;
    double mean[32], cnt[32];
    int ok[32], deferred[32], others = 0;
    for (int i = 0; i < e->n_arms; i++) {
        double q = arm_q(e, i);
        int measured = e->cnt[i] >= MEASURED_MIN;
        ok[i] = (measured ? e->sum[i] / e->cnt[i] <= EXPLORE_RATIO * best_meas
                          : q <= untried_max) ||
                isinf(best_meas);
        /* Untried, with a part on a peer busy with requests of its own: not explored
         * until that peer is idle again (its advert says so 250 ms after its last
         * request), unless no other arm is eligible. */
        deferred[i] = ok[i] && !measured && !e->local[i] &&
                      uses_busy_peer(s, e->arms[i], busy_set);
        others += ok[i] && !deferred[i];
        cnt[i] = e->cnt[i] + 1;                    /* the prior counts as one observation */
        mean[i] = (e->sum[i] + q) / cnt[i];
        N += cnt[i];
    }
    for (int i = 0; i < e->n_arms; i++) {
        if (others && deferred[i]) ok[i] = 0;
        if (ok[i] && mean[i] < scale) scale = mean[i];
    }
    int best = -1;
    double bs = INFINITY;
    for (int i = 0; i < e->n_arms; i++) {
        if (!ok[i]) continue;
        double sc = mean[i] - s->cfg.ucb_c * scale * sqrt(2 * log(N) / cnt[i]);
        if (best < 0 || sc < bs) { bs = sc; best = i; }
    }
    return best < 0 ? 0 : best;
}

nnm_err nnm_sched_observe_latency(nnm_sched *s, const nnm_plan *plan, double observed_ms,
                                  nnm_diag *diag)
{
    if (!(observed_ms > 0) || isinf(observed_ms))
        return nnm_diag_set(diag, NNM_EINVAL, "scheduler: observed latency %g ms is not positive",
                            observed_ms);
    if (plan->arm < 0) return NNM_OK;
    for (sched_entry *e = s->cache; e; e = e->next) {
        if (e->generation != plan->generation) continue;
        if (plan->arm >= e->n_arms) return NNM_OK;
        for (int i = 0; i < e->n_arms; i++) {
            e->cnt[i] *= s->cfg.discount;
            e->sum[i] *= s->cfg.discount;
        }
        e->cal_cnt *= s->cfg.discount;
        e->cal_sum *= s->cfg.discount;
        e->cal1_cnt *= s->cfg.discount;
        e->cal1_sum *= s->cfg.discount;
        /* A plan's first run pays one-time costs (slice executors built, weights shipped:
         * 260 ms more than a warm run of ResNet-18 on a 25% board), so its second
         * measurement replaces the first. */
        int a = plan->arm;
        int cold = e->runs[a] == 0;
        if (e->runs[a] == 1) e->cnt[a] = e->sum[a] = 0;
        /* Change detection. The discounted mean forgets slowly (one measurement weighs for
         * ~45 requests) and the arm that runs is the one that drifts first: a coordinator
         * slowed 5x kept its local-only arm's mean at a quarter of what it now measured for
         * 10 requests, and the offload that would have halved the latency out of reach.
         * Two warm measurements in a row more than SHIFT_RATIO off the mean, on the same
         * side (one can be a hiccup), restart the arm's history from them. The other arms
         * keep theirs: halving it too would make every node of a loaded stream, whose
         * latencies move with its peers' load, explore again. */
        if (e->runs[a] >= 2 && e->cnt[a] >= MEASURED_MIN) {
            double r = observed_ms / (e->sum[a] / e->cnt[a]);
            int dir = r > SHIFT_RATIO ? 1 : r < 1 / SHIFT_RATIO ? -1 : 0;
            if (dir != 0 && dir == e->drift[a]) {
                e->cnt[a] = 1;
                e->sum[a] = e->last_ms[a];
                dir = 0;
            }
            e->drift[a] = (signed char)dir;
        }
        if (!cold) e->last_ms[a] = observed_ms;
        e->last_arm = a;
        if (e->runs[a] < 2) e->runs[a]++;
        e->cnt[a] += 1;
        e->sum[a] += observed_ms;
        e->served_ms += observed_ms;
        /* A cold run's one-time costs are not the model's error: it does not calibrate
         * (else the offload that shipped its weights once looks 2-3x off for good). */
        if (!cold && !e->local[a] && e->prior[a] > 0) {
            double *cc = e->one[a] ? &e->cal1_cnt : &e->cal_cnt,
                   *cs = e->one[a] ? &e->cal1_sum : &e->cal_sum;
            *cc += 1;
            *cs += log(observed_ms / e->prior[a]);
        }
        return NNM_OK;
    }
    /* A plan of a candidate set replaced while it ran: credit the arm it became. */
    for (sched_entry *e = s->cache; e; e = e->next) {
        if (e->prev_generation != plan->generation || plan->arm >= 32 ||
            e->prev_map[plan->arm] < 0) continue;
        nnm_plan q = *plan;
        q.arm = e->prev_map[plan->arm];
        q.generation = e->generation;
        return nnm_sched_observe_latency(s, &q, observed_ms, diag);
    }
    return NNM_OK;   /* a plan from a candidate set since dropped: nothing to learn */
}

/* Carries the bandit's evidence of o (the set e replaces) to e's arms [from, n_arms): each old
 * arm not yet carried goes to an equal plan, else to one alike (same stages, nodes and part
 * kinds, other ranges), else is forgotten. Measured latencies of the same plan stay valid
 * evidence across a new mesh version; only the predictions change. */
static void carry(const sched_entry *o, sched_entry *e, int from)
{
    for (int pass = 0; pass < 2; pass++)
        for (int j = 0; j < o->n_arms; j++) {
            if (e->prev_map[j] >= 0) continue;
            for (int i = from; i < e->n_arms; i++) {
                int taken = 0;
                for (int k = 0; k < o->n_arms; k++) taken |= e->prev_map[k] == i;
                if (taken || !(pass ? plans_alike : plans_equal)(o->arms[j], e->arms[i]))
                    continue;
                e->prev_map[j] = (signed char)i;
                e->cnt[i] = o->cnt[j];
                e->sum[i] = o->sum[j];
                e->runs[i] = o->runs[j];
                e->last_ms[i] = o->last_ms[j];
                e->drift[i] = o->drift[j];
                break;
            }
        }
}

/* Unlinks and returns the cached set that e (just built for a new mesh version) replaces:
 * same model, objective, policy, pin, lossy and source; NULL if none. */
static sched_entry *replaced(nnm_sched *s, const sched_entry *e)
{
    sched_entry *o = s->cache, *prev = NULL;
    for (; o; prev = o, o = o->next)
        if (!memcmp(o->hash, e->hash, NNM_WIRE_HASH_BYTES) && o->objective == e->objective &&
            o->policy == e->policy && o->pin == e->pin && o->lossy == e->lossy &&
            o->src == e->src)
            break;
    if (o == NULL) return NULL;
    if (prev) prev->next = o->next;
    else s->cache = o->next;
    s->n_cache--;
    return o;
}

static double mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Whether optional planning of about cost_ms may run now: at most cfg.plan_share of the
 * request time served since the last planning step (a DP of MobileNetV2 takes ~0.1 s on a
 * board at 25% CPU, as long as a request). */
static int budget_ok(const nnm_sched *s, const sched_entry *e, double cost_ms, int backlog)
{
    /* Planning delays this request and each one waiting behind it (a node with a stream
     * queued planned ~10% of its time and lost that much throughput, docs/BENCH_DIST.md):
     * its cost counts once per request it holds up. */
    double held = 1.0 + (backlog > 0 ? backlog : 0);
    return s->cfg.plan_share <= 0 || e->served_ms * s->cfg.plan_share >= cost_ms * held;
}

/* Fills the bandit's view of arms [from, to) just placed in e. */
static void arms_init(sched_entry *e, int from, int to, int adaptive)
{
    for (int i = from; i < to; i++) {
        e->prior[i] = e->arms[i]->pred_latency_ms;
        e->local[i] = (unsigned char)plan_is_local(e->arms[i]);
        e->one[i] = plan_remote_parts(e->arms[i]) == 1;
        e->cnt[i] = e->sum[i] = e->last_ms[i] = 0;
        e->runs[i] = 0;
        e->drift[i] = 0;
        if (e->last_arm == i) e->last_arm = -1;
        e->arms[i]->generation = e->generation;
        e->arms[i]->arm = adaptive ? i : -1;
    }
}

/* Whether the DP plan is worth exploring around: not measured beyond the exploration bound.
 * Its variants (a node excluded or halved) are constrained versions of it, so under the
 * calibration they look no better than it does; while it is out of bounds, building them
 * (one DP each, ~60 ms for MobileNetV2 on a board at 25% CPU) is wasted planning time. */
static int dp_in_bounds(const sched_entry *e)
{
    int d = e->dp_arm;
    return e->cnt[d] < MEASURED_MIN || e->sum[d] / e->cnt[d] <= EXPLORE_RATIO * best_mean(e, -1);
}

/* Every arm's prediction (the bandit's prior) under the current model and mesh figures: a
 * pass over each plan's parts, no DP. */
static void predict_arms(nnm_sched *s, sched_entry *e)
{
    for (int i = 0; i < e->n_arms; i++) {
        double L, P;
        if (predict(s, e->arms[i], 1, 1, &L, &P, NULL) != NNM_OK) continue;
        e->arms[i]->pred_latency_ms = e->prior[i] = L;
        e->arms[i]->pred_period_ms = P;
    }
}

/* The refined model drifted (a new epoch): every arm is predicted again under it and the
 * calibration re-based. This costs no DP, so it happens at once, while the DP that may
 * follow (refresh) waits for its budget: on a loaded board that can be tens of requests,
 * and until the re-basing one bad split's calibration kept the offload that would help out
 * of reach. */
static void repredict(nnm_sched *s, sched_entry *e)
{
    predict_arms(s, e);
    /* The calibration described the old model's error; the refined model has just absorbed
     * the observations behind it (a split measured 10x its prediction teaches the per-part
     * overhead). Re-based on the measured arms that use peers, against their new
     * predictions: else one bad split would keep every plan using peers out of bounds for
     * good, since the local-only baseline is what then runs. No such arm: kept. (A cold
     * first run counts here: leaving it out let a stream's splits, new at every mesh
     * version, look as cheap as the prior says; test_sched_adaptive, slow links.) */
    double cs[2] = { 0, 0 }, cc[2] = { 0, 0 };
    for (int i = 0; i < e->n_arms; i++)
        if (!e->local[i] && e->cnt[i] >= MEASURED_MIN && e->prior[i] > 0) {
            cs[e->one[i]] += e->cnt[i] * log(e->sum[i] / e->cnt[i] / e->prior[i]);
            cc[e->one[i]] += e->cnt[i];
        }
    if (cc[0] > 0) {
        e->cal_sum = cs[0];
        e->cal_cnt = cc[0];
    }
    if (cc[1] > 0) {
        e->cal1_sum = cs[1];
        e->cal1_cnt = cc[1];
    }
    e->pred_epoch = s->epoch;
}

/* The refined model drifted (a new epoch) in the same mesh. Rebuilding the candidates costs
 * one DP each (about 0.5 s for MobileNetV2 on a board at 25% CPU) and the epoch can move
 * every few requests, so instead every arm is predicted again under the refined model
 * (repredict) and the DP runs once: its plan takes a free slot, or replaces the arm that
 * looks worst (measured mean, else calibrated prediction; never the local-only arm).
 * Evidence stays with its plans; the set gets a new generation so that a late observation
 * of a replaced arm is not credited to its successor. A failed DP leaves the arms as they
 * are. */
static void refresh(nnm_sched *s, sched_entry *e, sched_ctx *c)
{
    if (e->pred_epoch != s->epoch) repredict(s, e);
    e->epoch = s->epoch;
    e->stale = 0;
    e->prev_generation = e->generation;
    e->generation = ++s->generation;
    memset(e->prev_map, -1, sizeof e->prev_map);
    for (int i = 0; i < e->n_arms; i++) e->prev_map[i] = (signed char)i;
    nnm_plan *p = NULL;
    nnm_diag d;
    int slot = -1;
    double t0 = mono_ms();
    nnm_err rc = plan_ctx(c, &p, &d);
    e->dp_ms = mono_ms() - t0;
    e->served_ms = 0;
    if (rc == NNM_OK) {
        for (int i = 0; i < e->n_arms && p; i++)
            if (plans_equal(e->arms[i], p)) { nnm_plan_free(p); p = NULL; e->dp_arm = i; }
    }
    if (p && e->n_arms < s->cfg.max_arms && e->n_arms < 32) {
        slot = e->n_arms++;
    } else if (p) {
        double worst = -1;
        for (int i = 0; i < e->n_arms; i++) {
            double est = e->cnt[i] >= MEASURED_MIN ? e->sum[i] / e->cnt[i] : arm_q(e, i);
            if (!e->local[i] && est > worst) { worst = est; slot = i; }
        }
    }
    if (slot >= 0) {
        nnm_plan_free(e->arms[slot]);      /* NULL for a new slot */
        e->arms[slot] = p;
        e->prev_map[slot] = -1;
        e->dp_arm = slot;
        arms_init(e, slot, slot + 1, 1);
    } else {
        nnm_plan_free(p);
    }
    for (int i = 0; i < e->n_arms; i++) e->arms[i]->generation = e->generation;
}

static void ctx_for(sched_ctx *c, nnm_sched *s, sched_model *m, const nnm_plan_opts *opts,
                    int src, int sink)
{
    sched__ctx_init(c, s, m, opts->policy == NNM_POLICY_ADAPTIVE);
    c->policy = opts->policy;
    c->objective = opts->objective;
    c->lossy = !!opts->allow_lossy;
    c->pin = !!opts->pin_first;
    c->src = src;
    c->sink = sink;
    sched__ctx_configs(c);
}

nnm_err nnm_sched_plan(nnm_sched *s, const nnm_graph *g,
                       const uint8_t hash[NNM_WIRE_HASH_BYTES], const nnm_plan_opts *opts,
                       nnm_plan **out, nnm_diag *diag)
{
    nnm_plan_opts def;
    memset(&def, 0, sizeof def);
    def.policy = NNM_POLICY_ADAPTIVE;
    if (opts == NULL) opts = &def;
    *out = NULL;
    if ((unsigned)opts->objective >= NNM_OBJ__COUNT || (unsigned)opts->policy >= NNM_POLICY__COUNT)
        return nnm_diag_set(diag, NNM_EINVAL, "scheduler: objective %d or policy %d is unknown",
                            (int)opts->objective, (int)opts->policy);
    int sink = sched__node_find(s, s->self);
    if (sink < 0)
        return nnm_diag_set(diag, NNM_ENOTFOUND, "scheduler: the coordinator '%s' is not in the mesh view",
                            s->self);
    int src = opts->source ? sched__node_find(s, opts->source) : sink;
    if (src < 0)
        return nnm_diag_set(diag, NNM_ENOTFOUND, "scheduler: source node '%s' is not in the mesh view",
                            opts->source);
    sched_model *m = NULL;
    nnm_err rc = sched__model_get(s, g, hash, &m, diag);
    if (rc != NNM_OK) return rc;
    int adaptive = opts->policy == NNM_POLICY_ADAPTIVE;
    uint64_t epoch = adaptive ? s->epoch : 0;
    sched_entry *e = s->cache, *prev = NULL;
    for (; e; prev = e, e = e->next)
        if (!memcmp(e->hash, hash, NNM_WIRE_HASH_BYTES) &&
            (adaptive ? e->members == s->members : e->version == s->version) &&
            e->objective == (int)opts->objective &&
            e->policy == (int)opts->policy && e->pin == !!opts->pin_first &&
            e->lossy == !!opts->allow_lossy && e->src == src)
            break;
    if (e == NULL) {
        sched_ctx *c = malloc(sizeof *c);
        e = calloc(1, sizeof *e);
        if (!c || !e) {
            free(c);
            free(e);
            return nnm_diag_set(diag, NNM_ENOMEM, "scheduler: out of memory planning");
        }
        ctx_for(c, s, m, opts, src, sink);
        nnm_plan *p = NULL;
        double t0 = mono_ms();
        rc = plan_ctx(c, &p, diag);
        e->dp_ms = mono_ms() - t0;
        if (rc == NNM_OK) {
            e->arms[e->n_arms++] = p;
            /* The DP plan, local-only and offloads; the DP's variants once it proves
             * worth it. */
            if (adaptive) rc = candidates(c, e, 2, 3, diag);
            e->pending = adaptive;
        }
        if (rc != NNM_OK) {
            free(c);
            sched__entry_free(e);
            return rc;
        }
        memcpy(e->hash, hash, NNM_WIRE_HASH_BYTES);
        e->last_arm = -1;
        e->version = s->version;
        e->members = s->members;
        e->epoch = e->pred_epoch = epoch;
        e->objective = opts->objective;
        e->policy = opts->policy;
        e->pin = !!opts->pin_first;
        e->lossy = !!opts->allow_lossy;
        e->src = src;
        e->generation = ++s->generation;
        arms_init(e, 0, e->n_arms, adaptive);
        memset(e->prev_map, -1, sizeof e->prev_map);
        sched_entry *o = replaced(s, e);
        if (o) {
            carry(o, e, 0);
            e->last_arm = o->last_arm >= 0 && o->last_arm < 32 ? e->prev_map[o->last_arm] : -1;
            e->prev_generation = o->generation;
            e->cal_cnt = o->cal_cnt;
            e->cal_sum = o->cal_sum;
            e->cal1_cnt = o->cal1_cnt;
            e->cal1_sum = o->cal1_sum;
            e->served_ms = o->served_ms;
            /* the old set had its variants: so does this one, if the DP plan still earns
             * them and the planning budget allows (else later, with no evidence) */
            if (adaptive && !o->pending && e->cnt[e->dp_arm] >= MEASURED_MIN && dp_in_bounds(e) &&
                budget_ok(s, e, (s->cfg.max_arms - e->n_arms) * e->dp_ms, opts->backlog)) {
                int from = e->n_arms;
                nnm_diag d;
                if (candidates(c, e, 0, 1, &d) == NNM_OK) e->pending = 0;
                arms_init(e, from, e->n_arms, 1);
                carry(o, e, from);
                e->served_ms = 0;
            }
            sched__entry_free(o);
        }
        free(c);
        e->next = s->cache;
        s->cache = e;
        if (++s->n_cache > 64) {      /* drop the oldest */
            sched_entry *q = s->cache, *qp = NULL;
            while (q->next) { qp = q; q = q->next; }
            if (qp) { qp->next = NULL; sched__entry_free(q); s->n_cache--; }
        }
    } else {
        /* A new epoch refreshes the set; the DP plan measured within bounds gets its
         * variants (they inherit nothing: new plans). */
        if (adaptive && e->pred_epoch != epoch) repredict(s, e);
        /* Speeds, load or links changed, the members did not: every plan is still valid and
         * its evidence still about it. The arms are predicted again under the new figures
         * (the calibration stays: it describes the model's error, as across a rebuild), and
         * the DP runs once, when the planning budget allows (refresh). Rebuilding the set
         * instead cost a loaded 25% board 64-88 ms per change (docs/BENCH_DIST.md, 9). */
        if (adaptive && e->version != s->version) {
            predict_arms(s, e);
            for (int i = 0; i < e->n_arms; i++) e->arms[i]->mesh_version = s->version;
            e->version = s->version;
            e->stale = 1;
        }
        /* Peers busy with requests of their own: a new plan with a part on one would not
         * be explored (uses_busy_peer), so the DP refresh leaves them out (a DP over fewer
         * nodes costs less too), and the DP plan's variants wait until they are idle (a
         * refresh while every peer was busy may have left the local plan as the DP's: it
         * has no variants, and they wait for the next refresh). */
        uint32_t busy = adaptive ? busy_peers(s, src) : 0;
        int fresh = (e->epoch != epoch || e->stale) && budget_ok(s, e, e->dp_ms, opts->backlog);
        int more = !fresh && !busy && e->pending && !e->local[e->dp_arm] &&
                   e->cnt[e->dp_arm] >= MEASURED_MIN && dp_in_bounds(e) &&
                   budget_ok(s, e, (s->cfg.max_arms - e->n_arms) * e->dp_ms, opts->backlog);
        if (fresh || more) {
            sched_ctx *c = malloc(sizeof *c);
            if (c == NULL) return nnm_diag_set(diag, NNM_ENOMEM, "scheduler: out of memory planning");
            ctx_for(c, s, m, opts, src, sink);
            if (busy) {
                c->exclude |= busy;
                sched__ctx_configs(c);
            }
            if (fresh) {
                refresh(s, e, c);
            } else {
                int from = e->n_arms;
                nnm_diag d;
                if (candidates(c, e, 0, 1, &d) == NNM_OK) e->pending = 0;
                arms_init(e, from, e->n_arms, 1);
                e->served_ms = 0;
            }
            free(c);
        }
        if (prev) {                   /* move to front: most recently used */
            prev->next = e->next;
            e->next = s->cache;
            s->cache = e;
        }
    }
    int arm = adaptive ? sched__pick_arm_backlog(s, e, opts->backlog) : 0;
    return nnm_plan_copy(out, e->arms[arm], diag);
}

void nnm_sched_explain(const nnm_sched *s, const nnm_plan *plan, char *buf, size_t len)
{
    if (len == 0) return;
    buf[0] = 0;
    const sched_entry *e = s->cache;
    while (e && e->generation != plan->generation) e = e->next;
    if (e == NULL || plan->arm < 0 || plan->arm >= e->n_arms) return;
    size_t k = 0;
#define OUT(...) do { if (k < len) { int w_ = snprintf(buf + k, len - k, __VA_ARGS__); \
                                     k += w_ > 0 ? (size_t)w_ : 0; } } while (0)
    OUT("arm %d of %d; calibration %.2f (n %.1f), one-remote %.2f (n %.1f);", plan->arm,
        e->n_arms, cal_of(e->cal_cnt, e->cal_sum), e->cal_cnt, cal_of(e->cal1_cnt, e->cal1_sum),
        e->cal1_cnt);
    for (int i = 0; i < e->n_arms; i++) {
        const nnm_plan *p = e->arms[i];
        int parts = 0;
        uint32_t on = 0;
        for (int st = 0; st < p->n_stages; st++)
            for (int q = 0; q < p->stages[st].n_parts; q++, parts++) {
                int j = sched__node_find(s, p->stages[st].parts[q].node);
                if (j >= 0) on |= 1u << j;
            }
        OUT(" [%d%s%s%s %d/%d on", i, i == plan->arm ? "*" : "", i == e->dp_arm ? " dp" : "",
            e->local[i] ? " local" : e->one[i] ? " one" : "", p->n_stages, parts);
        for (int j = 0; j < SCHED_MAXN; j++)
            if (on >> j & 1) OUT(" %s", s->nodes[j].pub.id);
        double q = arm_q(e, i);
        OUT(" pred %.0f prior %.0f n %.2f", e->prior[i], q, e->cnt[i]);
        if (e->cnt[i] > 0) OUT(" mean %.0f", e->sum[i] / e->cnt[i]);
        OUT("]");
    }
#undef OUT
}
