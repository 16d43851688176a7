/* scheduler/mesh.c — the scheduler object and its mesh view: nodes, links, the cost model's
 * rates and the online refinement from observed slice and transfer times.
 *
 * Refinement keeps, per (node, op class) and per link, an exponential moving average of
 * log(observed / advertised) time. Working in log space makes the average a geometric mean
 * of ratios: a node 4x slower than it claims converges to a factor 4 whatever its history.
 * A node observed more than 2x slower than it advertises is distrusted a further 25%: its
 * capacity claims are no longer believed (an inflated advert loses work, it cannot gain
 * any). It also learns, from remote results, each peer's per-part overhead (what a part
 * costs beyond compute and bytes) and the coordinator's send work per remote part, in log
 * space of ms + SCHED_OVH_E (nnm_sched_observe_part). When any factor or overhead drifts by
 * more than 25% since the last epoch, the epoch is bumped and refined plans are
 * recomputed. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sched_int.h"

#define LOGQ_MAX 4.1588830833596715   /* log(64): one observation moves at most this */
/* A typical tensor between two parts (64 KiB: a 32x32x16 f32 activation), for comparing one
 * probe of a link with the next (nnm_sched_link_set). */
#define LINK_TYPICAL_BYTES 65536.0
#define DRIFT 0.25

void nnm_sched_config_init(nnm_sched_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->slice_overhead_ms = 0.3;
    cfg->ema_alpha = 0.3;
    cfg->default_rtt_ms = 2.0;
    cfg->default_mbps = 10.0;
    cfg->lz4_ratio = 0.8;
    cfg->codec_mbps = 500.0;
    cfg->fetch_amortize = 64.0;
    cfg->max_parts = 8;
    cfg->max_arms = 10;
    cfg->ucb_c = 0.1;
    cfg->discount = 0.95;
    cfg->plan_share = 0.1;
    cfg->seed = 1;
}

static int valid_id(const char *id)
{
    size_t n = id ? strlen(id) : 0;
    if (n == 0 || n > NNM_ID_MAX) return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = id[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-')) return 0;
    }
    return 1;
}

nnm_err nnm_sched_new(nnm_sched **out, const char *self_id, const nnm_sched_config *cfg,
                      nnm_diag *diag)
{
    nnm_sched_config def;
    nnm_sched_config_init(&def);
    if (cfg == NULL) cfg = &def;
    if (!valid_id(self_id))
        return nnm_diag_set(diag, NNM_EINVAL, "scheduler: coordinator id '%s' is not [a-z0-9-]{1,32}",
                            self_id ? self_id : "(null)");
    if (!(cfg->slice_overhead_ms >= 0) || !(cfg->ema_alpha > 0 && cfg->ema_alpha <= 1) ||
        !(cfg->default_rtt_ms >= 0) || !(cfg->default_mbps > 0) ||
        !(cfg->lz4_ratio > 0 && cfg->lz4_ratio <= 1.5) || !(cfg->codec_mbps > 0) ||
        !(cfg->fetch_amortize >= 1) || cfg->max_parts < 1 || cfg->max_parts > SCHED_MAXN ||
        cfg->max_arms < 1 || cfg->max_arms > 32 || !(cfg->ucb_c >= 0) ||
        !(cfg->discount > 0 && cfg->discount <= 1) || !(cfg->plan_share >= 0))
        return nnm_diag_set(diag, NNM_EINVAL, "scheduler: a configuration value is out of range "
                                              "(see nnm_sched_config_init for the defaults)");
    nnm_sched *s = calloc(1, sizeof *s);
    if (s == NULL) return nnm_diag_set(diag, NNM_ENOMEM, "scheduler: out of memory");
    s->cfg = *cfg;
    strcpy(s->self, self_id);
    s->version = 1;
    s->members = 1;
    s->rng = (uint64_t)cfg->seed * 0x9E3779B97F4A7C15ull + 1;
    *out = s;
    return NNM_OK;
}

void nnm_sched_free(nnm_sched *s)
{
    if (s == NULL) return;
    for (int i = 0; i < SCHED_MAXN; i++) free(s->nodes[i].models);
    while (s->models) {
        sched_model *m = s->models;
        s->models = m->next;
        sched__model_free(m);
    }
    while (s->cache) {
        sched_entry *e = s->cache;
        s->cache = e->next;
        sched__entry_free(e);
    }
    free(s);
}

int sched__node_find(const nnm_sched *s, const char *id)
{
    if (id == NULL) return -1;
    for (int i = 0; i < SCHED_MAXN; i++)
        if (s->nodes[i].present && !strcmp(s->nodes[i].pub.id, id)) return i;
    return -1;
}

/* Whether a new figure differs enough from the old to plan again: a new mesh version drops
 * the cached plans and the adaptive policy's bandit with them, and planning takes tens of ms
 * on a slow coordinator (hundreds on a quota-limited board). Adverts and probes of a busy
 * mesh wobble by 10-20% all the time; replanning on every wobble kept the bandit from ever
 * learning (bench/dist.sh, 4 boards). */
static int differs(double a, double b)
{
    double m = fabs(a) > fabs(b) ? fabs(a) : fabs(b);
    return m > 0 && fabs(a - b) > 0.25 * m;
}

nnm_err nnm_sched_node_set(nnm_sched *s, const nnm_mesh_node *n, nnm_diag *diag)
{
    if (!valid_id(n->id))
        return nnm_diag_set(diag, NNM_EINVAL, "scheduler: node id '%s' is not [a-z0-9-]{1,32}", n->id);
    for (int c = 0; c < NNM_OPC__COUNT; c++)
        if (!(n->gflops[c] >= 0) || isinf(n->gflops[c]))
            return nnm_diag_set(diag, NNM_EINVAL, "scheduler: node '%s': capacity %d is not a finite rate >= 0",
                                n->id, c);
    if (n->load_permille > 1000)
        return nnm_diag_set(diag, NNM_EINVAL, "scheduler: node '%s': load %u is above 1000 permille",
                            n->id, (unsigned)n->load_permille);
    if (n->nmodels > 0 && n->models == NULL)
        return nnm_diag_set(diag, NNM_EINVAL, "scheduler: node '%s': %zu models but no list", n->id,
                            n->nmodels);
    int i = sched__node_find(s, n->id);
    int fresh = i < 0;
    if (fresh) {
        for (i = 0; i < SCHED_MAXN && s->nodes[i].present; i++) {}
        if (i == SCHED_MAXN)
            return nnm_diag_set(diag, NNM_ERANGE, "scheduler: more than %d nodes in the mesh",
                                SCHED_MAXN);
    }
    uint8_t (*models)[NNM_WIRE_HASH_BYTES] = NULL;
    if (n->nmodels > 0) {
        models = malloc(n->nmodels * sizeof *models);
        if (models == NULL) return nnm_diag_set(diag, NNM_ENOMEM, "scheduler: out of memory");
        memcpy(models, n->models, n->nmodels * sizeof *models);
    }
    /* commit */
    sched_node *sn = &s->nodes[i];
    int changed = fresh, members = fresh;
    if (!fresh) {
        for (int c = 0; c < NNM_OPC__COUNT; c++) changed |= differs(sn->pub.gflops[c], n->gflops[c]);
        changed |= abs((int)sn->pub.load_permille - (int)n->load_permille) > 300;
        changed |= nnm_queue_level(sn->pub.queue) != nnm_queue_level(n->queue);
        /* what a plan may depend on to be valid at all (not only fast) */
        members |= differs((double)sn->pub.free_mem, (double)n->free_mem);
        members |= sn->pub.draining != n->draining;
        members |= sn->pub.nmodels != n->nmodels ||
                   (n->nmodels && memcmp(sn->models, models, n->nmodels * sizeof *models));
        changed |= members;
    } else {
        memset(sn, 0, sizeof *sn);
        for (int j = 0; j < SCHED_MAXN; j++) {
            memset(&s->links[i][j], 0, sizeof s->links[i][j]);
            memset(&s->links[j][i], 0, sizeof s->links[j][i]);
        }
    }
    free(sn->models);
    sn->present = 1;
    sn->pub = *n;
    sn->share = strcmp(n->id, s->self) ? 1.0 / (1.0 + nnm_queue_level(n->queue)) : 1.0;
    sn->models = models;
    sn->pub.models = (const uint8_t (*)[NNM_WIRE_HASH_BYTES])models;
    if (changed) s->version++;
    if (members) s->members++;
    return NNM_OK;
}

nnm_err nnm_sched_node_remove(nnm_sched *s, const char *id, nnm_diag *diag)
{
    int i = sched__node_find(s, id);
    if (i < 0) return nnm_diag_set(diag, NNM_ENOTFOUND, "scheduler: no node '%s'", id ? id : "");
    free(s->nodes[i].models);
    memset(&s->nodes[i], 0, sizeof s->nodes[i]);
    s->version++;
    s->members++;
    return NNM_OK;
}

nnm_err nnm_sched_link_set(nnm_sched *s, const char *from, const char *to, double rtt_ms,
                           double mbps, nnm_diag *diag)
{
    int a = sched__node_find(s, from), b = sched__node_find(s, to);
    if (a < 0 || b < 0)
        return nnm_diag_set(diag, NNM_ENOTFOUND, "scheduler: link %s -> %s: no node '%s'",
                            from ? from : "", to ? to : "", a < 0 ? (from ? from : "") : to);
    if (!(rtt_ms >= 0) || !(mbps > 0) || isinf(rtt_ms) || isinf(mbps))
        return nnm_diag_set(diag, NNM_EINVAL, "scheduler: link %s -> %s: rtt %g ms and %g MB/s are not valid",
                            from, to, rtt_ms, mbps);
    sched_link *l = &s->links[a][b];
    /* The learned factor corrects the probed prediction. It survives new probes that predict
     * about the same (it then corrects a steady bias of the probes), but when the probed time
     * of a typical transfer (LINK_TYPICAL_BYTES, where both RTT and throughput count) moves
     * by more than 2x either way, the link itself changed and the factor was about the old
     * one: it starts again from 1. A link never probed was predicted, and its factor learned,
     * with the default figures. */
    double old_rtt = l->set ? l->rtt_ms : s->cfg.default_rtt_ms;
    double old_bw = (l->set ? l->mbps : s->cfg.default_mbps) * 1e3;     /* bytes per ms */
    double was = old_rtt / 2 + LINK_TYPICAL_BYTES / old_bw;
    double now = rtt_ms / 2 + LINK_TYPICAL_BYTES / (mbps * 1e3);
    int reset = l->logm != 0 && (now > 2 * was || was > 2 * now);
    /* RTTs of a fraction of a millisecond differ by 50% between probes and matter little. */
    if (!l->set || (differs(l->rtt_ms, rtt_ms) && fabs(l->rtt_ms - rtt_ms) > 1.0) ||
        differs(l->mbps, mbps) || reset)
        s->version++;
    if (reset) {
        l->logm = 0;
        l->logm_epoch = 0;     /* the plans rebuilt for the new version start from it */
    }
    l->set = 1;
    l->rtt_ms = rtt_ms;
    l->mbps = mbps;
    return NNM_OK;
}

uint64_t nnm_sched_version(const nnm_sched *s)
{
    return s->version;
}

nnm_err nnm_sched_node_from_advert(nnm_mesh_node *n, const char *id, const nnm_advert *adv,
                                   nnm_diag *diag)
{
    if (!valid_id(id))
        return nnm_diag_set(diag, NNM_EINVAL, "advert: node id '%s' is not [a-z0-9-]{1,32}", id ? id : "");
    static const char *const names[NNM_OPC__COUNT] = {
        "mflops-conv3x3", "mflops-conv1x1", "mflops-dwconv", "mflops-fc", "membw-mbps"
    };
    memset(n, 0, sizeof *n);
    strcpy(n->id, id);
    double generic = 0;
    for (size_t i = 0; i < adv->ncaps; i++) {
        const nnm_advert_cap *cp = &adv->caps[i];
        if (!strcmp(cp->name, "gflops")) generic = (double)cp->value;
        if (!strcmp(cp->name, "queue"))
            n->queue = (uint32_t)(cp->value > UINT32_MAX ? UINT32_MAX : cp->value);
        for (int c = 0; c < NNM_OPC__COUNT; c++)
            if (!strcmp(cp->name, names[c])) n->gflops[c] = (double)cp->value / 1000.0;
    }
    for (int c = 0; c < NNM_OPC_OTHER; c++)
        if (n->gflops[c] == 0) n->gflops[c] = generic;
    n->free_mem = adv->free_mem;
    n->load_permille = adv->load_permille > 1000 ? 1000 : adv->load_permille;
    n->nmodels = adv->nmodels;
    n->models = adv->models;
    return NNM_OK;
}

/* --- rates ------------------------------------------------------------------------------- */

/* Advertised rate of class c in work units per millisecond (flops/ms, bytes/ms): what the
 * node measured, less the share other work (load) and its own requests (queue) take. */
static double adv_rate(const sched_node *n, int c)
{
    double g = n->pub.gflops[c];
    if (g <= 0) {
        if (c == NNM_OPC_OTHER) g = 2.0;            /* GB/s of a small board */
        else if (n->pub.gflops[NNM_OPC_CONV3X3] > 0) g = n->pub.gflops[NNM_OPC_CONV3X3];
        else g = 1.0;
    }
    return g * 1e6 * n->share / (1.0 + n->pub.load_permille / 1000.0);
}

static double factor(const sched_node *n, int c)
{
    double f = exp(n->logm[c]);
    if (f > 2.0) f *= 1.25;      /* distrust: see the top of this file */
    return f;
}

double sched__rate(const nnm_sched *s, int node, int c, int refined)
{
    const sched_node *n = &s->nodes[node];
    double r = adv_rate(n, c);
    return refined ? r / factor(n, c) : r;
}

double nnm_sched_node_factor(const nnm_sched *s, const char *node, nnm_opclass c)
{
    int i = sched__node_find(s, node);
    if (i < 0 || (int)c < 0 || c >= NNM_OPC__COUNT) return 0;
    return exp(s->nodes[i].logm[c]);
}

int sched__has_model(const nnm_sched *s, int node, const uint8_t *hash)
{
    const sched_node *n = &s->nodes[node];
    for (size_t i = 0; i < n->pub.nmodels; i++)
        if (!memcmp(n->models[i], hash, NNM_WIRE_HASH_BYTES)) return 1;
    return 0;
}

double sched__link_rtt(const nnm_sched *s, int from, int to, int refined)
{
    if (from == to) return 0;
    const sched_link *l = &s->links[from][to];
    double rtt = l->set ? l->rtt_ms : s->cfg.default_rtt_ms;
    return refined ? rtt * exp(l->logm) : rtt;
}

/* Milliseconds to move bytes over from -> to with the best allowed codec (chosen into
 * *codec if not NULL). Lossless candidates: NONE, LZ4; lossy (f32 only): F16, INT8. */
double sched__link_ms(const nnm_sched *s, int from, int to, double bytes, int refined,
                      int lossy, int is_f32, nnm_codec *codec)
{
    if (codec) *codec = NNM_CODEC_NONE;
    if (from == to || bytes <= 0) return 0;
    const sched_link *l = &s->links[from][to];
    double rtt = l->set ? l->rtt_ms : s->cfg.default_rtt_ms;
    double bw = (l->set ? l->mbps : s->cfg.default_mbps) * 1e3;     /* bytes per ms */
    double m = refined ? exp(l->logm) : 1.0;
    double cpu = bytes / (s->cfg.codec_mbps * 1e3);
    double best = (rtt / 2 + bytes / bw) * m;
    double t = (rtt / 2 + bytes * s->cfg.lz4_ratio / bw) * m + cpu;
    if (t < best) {
        best = t;
        if (codec) *codec = NNM_CODEC_LZ4;
    }
    if (lossy && is_f32) {
        t = (rtt / 2 + bytes * 0.5 / bw) * m + cpu;
        if (t < best) {
            best = t;
            if (codec) *codec = NNM_CODEC_F16;
        }
        t = (rtt / 2 + bytes * 0.25 / bw) * m + cpu;
        if (t < best) {
            best = t;
            if (codec) *codec = NNM_CODEC_INT8_AFFINE;
        }
    }
    return best;
}

double sched__edge_ms(const nnm_sched *s, int from, int to, double bytes, nnm_codec codec,
                      int refined)
{
    if (from == to || bytes <= 0) return 0;
    const sched_link *l = &s->links[from][to];
    double rtt = l->set ? l->rtt_ms : s->cfg.default_rtt_ms;
    double bw = (l->set ? l->mbps : s->cfg.default_mbps) * 1e3;
    double ratio = codec == NNM_CODEC_F16 ? 0.5 : codec == NNM_CODEC_INT8_AFFINE ? 0.25
                   : codec == NNM_CODEC_LZ4 ? s->cfg.lz4_ratio : 1.0;
    double t = (rtt / 2 + bytes * ratio / bw) * (refined ? exp(l->logm) : 1.0);
    if (codec != NNM_CODEC_NONE) t += bytes / (s->cfg.codec_mbps * 1e3);
    return t;
}

/* Inputs go out with their edge's codec, and the worker answers with its result edge's (the
 * TASK's result_codec). */
double sched__part_xfer_ms(const nnm_sched *s, int sink, int j, const nnm_plan_part *pp,
                           int refined)
{
    double t = 0;
    for (int k = 0; k < pp->n_in; k++)
        t += sched__edge_ms(s, sink, j, (double)pp->in[k].bytes, pp->in[k].codec, refined);
    for (int k = 0; k < pp->n_out; k++)
        t += sched__edge_ms(s, j, sink, (double)pp->out[k].bytes, pp->out[k].codec, refined);
    return t;
}

/* The learned figures are kept as logs of (ms + SCHED_OVH_E): see nnm_sched_observe_part.
 * Until a node is observed its log is exactly 0 and the prior is returned as such. */
double sched__part_ovh(const nnm_sched *s, int j, int sink, int refined)
{
    double p = s->cfg.slice_overhead_ms, L = s->nodes[j].ovh_logm;
    if (!refined || j == sink || L == 0) return p;
    double v = (p + SCHED_OVH_E) * exp(L) - SCHED_OVH_E;
    return v > 0 ? v : 0;
}

double sched__send_ms(const nnm_sched *s, int refined)
{
    if (!refined || s->send_logm == 0) return 0;
    double v = SCHED_OVH_E * exp(s->send_logm) - SCHED_OVH_E;
    return v > 0 ? v : 0;
}

double nnm_sched_node_overhead(const nnm_sched *s, const char *node)
{
    int i = sched__node_find(s, node);
    if (i < 0) return -1;
    return sched__part_ovh(s, i, sched__node_find(s, s->self), 1);
}

double nnm_sched_send_overhead(const nnm_sched *s)
{
    return sched__send_ms(s, 1);
}

/* --- public cost queries ---------------------------------------------------------------- */

nnm_err nnm_sched_compute_ms(const nnm_sched *s, const char *node,
                             const double work[NNM_OPC__COUNT], int refined, double *ms,
                             nnm_diag *diag)
{
    int i = sched__node_find(s, node);
    if (i < 0) return nnm_diag_set(diag, NNM_ENOTFOUND, "scheduler: no node '%s'", node ? node : "");
    double t = s->cfg.slice_overhead_ms;
    for (int c = 0; c < NNM_OPC__COUNT; c++) t += work[c] / sched__rate(s, i, c, refined);
    *ms = t;
    return NNM_OK;
}

nnm_err nnm_sched_transfer_ms(const nnm_sched *s, const char *from, const char *to,
                              size_t bytes, nnm_codec codec, int refined, double *ms,
                              nnm_diag *diag)
{
    int a = sched__node_find(s, from), b = sched__node_find(s, to);
    if (a < 0 || b < 0)
        return nnm_diag_set(diag, NNM_ENOTFOUND, "scheduler: no node '%s'",
                            a < 0 ? (from ? from : "") : (to ? to : ""));
    switch (codec) {
    case NNM_CODEC_NONE: case NNM_CODEC_F16: case NNM_CODEC_INT8_AFFINE: case NNM_CODEC_LZ4: break;
    default:
        return nnm_diag_set(diag, NNM_EINVAL, "scheduler: codec %d has no cost model", (int)codec);
    }
    *ms = sched__edge_ms(s, a, b, (double)bytes, codec, refined);
    return NNM_OK;
}

/* --- observations ------------------------------------------------------------------------ */

/* A drift of more than 25% re-plans (plan.c: the adaptive candidates are predicted again on
 * the refined model and the DP runs once), but at most once per this many observations
 * unless some factor moved by more than 2x: a DP is ~60 ms for MobileNetV2 on a 25%-quota
 * board, and a request gives several observations while the refinement wobbles. A node
 * that lies about its capacity drifts by far more. */
#define DRIFT_MIN_OBS 4
#define DRIFT_BIG 0.6931471805599453   /* log(2) */

static void check_drift(nnm_sched *s)
{
    int drift = 0, big = 0;
    s->obs_since_epoch++;
    for (int i = 0; i < SCHED_MAXN; i++) {
        if (!s->nodes[i].present) continue;
        for (int c = 0; c < NNM_OPC__COUNT; c++) {
            double d = fabs(s->nodes[i].logm[c] - s->nodes[i].logm_epoch[c]);
            drift |= d > DRIFT;
            big |= d > DRIFT_BIG;
        }
        for (int j = 0; j < SCHED_MAXN; j++) {
            double d = fabs(s->links[i][j].logm - s->links[i][j].logm_epoch);
            drift |= d > DRIFT;
            big |= d > DRIFT_BIG;
        }
        /* per-part overheads: the same thresholds on log(ms + SCHED_OVH_E), so a change
         * counts when it is 25% of the overhead and about half a millisecond or more */
        double d = fabs(s->nodes[i].ovh_logm - s->nodes[i].ovh_logm_epoch);
        drift |= d > DRIFT;
        big |= d > DRIFT_BIG;
    }
    double ds = fabs(s->send_logm - s->send_logm_epoch);
    drift |= ds > DRIFT;
    big |= ds > DRIFT_BIG;
    if (!big && s->obs_since_epoch < DRIFT_MIN_OBS) return;
    if (!drift) return;
    s->epoch++;
    s->obs_since_epoch = 0;
    s->send_logm_epoch = s->send_logm;
    for (int i = 0; i < SCHED_MAXN; i++) {
        s->nodes[i].ovh_logm_epoch = s->nodes[i].ovh_logm;
        for (int c = 0; c < NNM_OPC__COUNT; c++) s->nodes[i].logm_epoch[c] = s->nodes[i].logm[c];
        for (int j = 0; j < SCHED_MAXN; j++) s->links[i][j].logm_epoch = s->links[i][j].logm;
    }
}

static double clampq(double lq)
{
    return lq > LOGQ_MAX ? LOGQ_MAX : lq < -LOGQ_MAX ? -LOGQ_MAX : lq;
}

/* One observation of link a -> b at lq = log(observed / probed prediction): the EMA. */
static void link_learn(nnm_sched *s, int a, int b, double lq)
{
    sched_link *l = &s->links[a][b];
    l->logm += s->cfg.ema_alpha * (clampq(lq) - l->logm);
}

nnm_err nnm_sched_observe_slice(nnm_sched *s, const nnm_plan_part *part, double observed_ms,
                                nnm_diag *diag)
{
    int i = sched__node_find(s, part->node);
    if (i < 0) return nnm_diag_set(diag, NNM_ENOTFOUND, "scheduler: observed node '%s' is unknown", part->node);
    if (!(observed_ms > 0) || isinf(observed_ms))
        return nnm_diag_set(diag, NNM_EINVAL, "scheduler: observed time %g ms of node '%s' is not positive",
                            observed_ms, part->node);
    sched_node *n = &s->nodes[i];
    double t[NNM_OPC__COUNT], tot = 0;
    for (int c = 0; c < NNM_OPC__COUNT; c++) {
        /* the prediction without the distrust penalty: the EMA tracks the plain ratio */
        t[c] = part->work[c] / adv_rate(n, c) * exp(n->logm[c]);
        tot += t[c];
    }
    if (tot <= 0) return NNM_OK;
    double comp = observed_ms - s->cfg.slice_overhead_ms;
    if (comp < 0.05 * observed_ms) comp = 0.05 * observed_ms;
    double lq = clampq(log(comp / tot));
    for (int c = 0; c < NNM_OPC__COUNT; c++)
        n->logm[c] += s->cfg.ema_alpha * (t[c] / tot) * lq;
    n->nobs++;
    check_drift(s);
    return NNM_OK;
}

nnm_err nnm_sched_observe_transfer(nnm_sched *s, const char *from, const char *to,
                                   size_t bytes, double observed_ms, nnm_diag *diag)
{
    int a = sched__node_find(s, from), b = sched__node_find(s, to);
    if (a < 0 || b < 0)
        return nnm_diag_set(diag, NNM_ENOTFOUND, "scheduler: observed link %s -> %s: unknown node",
                            from ? from : "", to ? to : "");
    if (!(observed_ms > 0) || isinf(observed_ms))
        return nnm_diag_set(diag, NNM_EINVAL, "scheduler: observed transfer time %g ms is not positive",
                            observed_ms);
    if (a == b) return NNM_OK;
    const sched_link *l = &s->links[a][b];
    double rtt = l->set ? l->rtt_ms : s->cfg.default_rtt_ms;
    double bw = (l->set ? l->mbps : s->cfg.default_mbps) * 1e3;
    double pred = rtt / 2 + (double)bytes / bw;
    if (pred <= 0) return NNM_OK;
    link_learn(s, a, b, log(observed_ms / pred));
    check_drift(s);
    return NNM_OK;
}

/* Both legs of a remote part's exchange, timed together: the coordinator knows when its task
 * left and its result arrived, the worker says how long it held the task (compute and wait,
 * by its own clock), and what is left is the network both ways. No clock is shared, so the
 * legs cannot be told apart: both links take the same ratio of observed to predicted time,
 * as an exponential moving average of its log like nnm_sched_observe_transfer. */
nnm_err nnm_sched_observe_exchange(nnm_sched *s, const nnm_plan_part *part, double net_ms,
                                   nnm_diag *diag)
{
    const char *id = part ? part->node : "";
    int j = sched__node_find(s, part ? part->node : NULL);
    int sink = sched__node_find(s, s->self);
    if (j < 0)
        return nnm_diag_set(diag, NNM_ENOTFOUND, "scheduler: observed exchange with '%s': the node is unknown", id);
    if (j == sink || sink < 0)
        return nnm_diag_set(diag, NNM_EINVAL, "scheduler: observed exchange with '%s': the coordinator's "
                                              "own parts cross no link", id);
    if (!(net_ms > 0) || isinf(net_ms))
        return nnm_diag_set(diag, NNM_EINVAL, "scheduler: observed exchange with '%s': %g ms is not "
                                              "a positive time", id, net_ms);
    double pred = sched__part_xfer_ms(s, sink, j, part, 0);
    if (!(pred > 0)) return NNM_OK;     /* nothing crossed (no inputs, no outputs) */
    link_learn(s, sink, j, log(net_ms / pred));
    link_learn(s, j, sink, log(net_ms / pred));
    check_drift(s);
    return NNM_OK;
}

double nnm_sched_link_factor(const nnm_sched *s, const char *from, const char *to)
{
    int a = sched__node_find(s, from), b = sched__node_find(s, to);
    if (a < 0 || b < 0) return 0;
    return a == b ? 1.0 : exp(s->links[a][b].logm);
}

/* The per-part overhead is what a remote part costs beyond its compute and its bytes on the
 * link: the broker hop, the worker's queue and decode, the answer opened and decoded here
 * (docs/BENCH_DIST.md: ~45 ms per part on boards at 25% of a core, against the 0.3 ms
 * prior). It is learned in log space like the rest, so one stalled answer moves it by at
 * most ema_alpha * log 64, but of ms + SCHED_OVH_E: a sample may be 0, and a millisecond
 * more or less per part does not change a plan of parts that compute for tens of ms. */
nnm_err nnm_sched_observe_part(nnm_sched *s, const nnm_plan_part *part, double roundtrip_ms,
                               double compute_ms, double send_ms, nnm_diag *diag)
{
    const char *id = part ? part->node : "";
    int j = sched__node_find(s, part ? part->node : NULL);
    int sink = sched__node_find(s, s->self);
    if (j < 0)
        return nnm_diag_set(diag, NNM_ENOTFOUND, "scheduler: observed part on node '%s': the node is unknown", id);
    if (j == sink)
        return nnm_diag_set(diag, NNM_EINVAL, "scheduler: observed part on '%s': the coordinator's own "
                                              "parts have no round trip (use nnm_sched_observe_slice)", id);
    if (!isfinite(roundtrip_ms) || roundtrip_ms < 0 || !isfinite(compute_ms) || compute_ms < 0 ||
        !isfinite(send_ms) || send_ms < 0)
        return nnm_diag_set(diag, NNM_EINVAL, "scheduler: observed part on '%s': round trip %g ms, "
                                              "compute %g ms and send %g ms must be finite and >= 0",
                            id, roundtrip_ms, compute_ms, send_ms);
    sched_node *n = &s->nodes[j];
    double x = roundtrip_ms - compute_ms - sched__part_xfer_ms(s, sink, j, part, 1);
    if (x < 0) x = 0;
    double cur = sched__part_ovh(s, j, sink, 1);
    n->ovh_logm += s->cfg.ema_alpha * clampq(log((x + SCHED_OVH_E) / (cur + SCHED_OVH_E)));
    double cs = sched__send_ms(s, 1);
    s->send_logm += s->cfg.ema_alpha * clampq(log((send_ms + SCHED_OVH_E) / (cs + SCHED_OVH_E)));
    n->ovh_nobs++;
    check_drift(s);
    return NNM_OK;
}
