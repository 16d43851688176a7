/* scheduler/coord.c — running a plan across the mesh, spot-checking peers' results, and
 * serving tasks (see nnmesh/coord.h). One thread: the coordinator drives the link itself
 * while it waits and hands every frame that is not one of its results to env->dispatch. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "nnmesh/coord.h"

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* ---- whole tensors held by the coordinator, by value name ------------------------------- */

typedef struct held { char *name; nnm_tensor t; } held;
typedef struct store { held *v; size_t n, cap; } store;

static nnm_tensor *store_get(store *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->v[i].name, name)) return &s->v[i].t;
    return NULL;
}

/* Adds a zeroed whole tensor for value name with the shape in io (kept if present). */
static nnm_tensor *store_add(store *s, const nnm_io_info *io, nnm_diag *diag)
{
    nnm_tensor *t = store_get(s, io->name);
    if (t) return t;
    if (s->n == s->cap) {
        size_t nc = s->cap ? 2 * s->cap : 16;
        held *q = realloc(s->v, nc * sizeof *q);
        if (!q) { nnm_diag_set(diag, NNM_ENOMEM, "out of memory"); return NULL; }
        s->v = q;
        s->cap = nc;
    }
    held *h = &s->v[s->n];
    memset(h, 0, sizeof *h);
    if (nnm_tensor_init(&h->t, io->dtype, io->ndim, io->shape) != NNM_OK ||
        !(h->name = strdup(io->name))) {
        nnm_tensor_cleanup(&h->t);
        nnm_diag_set(diag, NNM_ENOMEM, "out of memory");
        return NULL;
    }
    s->n++;
    return &h->t;
}

/* Makes room for the whole outputs of nodes [a, b) (their shapes come from the whole slice). */
static nnm_err store_prepare(store *s, const nnm_graph *g, int a, int b, nnm_diag *diag)
{
    nnm_graph *w = NULL;
    nnm_err rc = nnm_graph_slice(&w, g, a, b, NULL, diag);
    if (rc != NNM_OK) return rc;
    for (int k = 0; k < nnm_graph_output_count(w) && rc == NNM_OK; k++) {
        nnm_io_info io;
        nnm_graph_output_get(w, k, &io);
        if (!store_add(s, &io, diag)) rc = NNM_ENOMEM;
    }
    nnm_graph_free(w);
    return rc;
}

static void store_free(store *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->v[i].name);
        nnm_tensor_cleanup(&s->v[i].t);
    }
    free(s->v);
    memset(s, 0, sizeof *s);
}

/* ---- one part of a stage ---------------------------------------------------------------- */

typedef struct job {
    const nnm_plan_part *pp;
    nnm_graph *slice;          /* the part as a standalone graph (borrows g's weights) */
    char node[NNM_ID_MAX + 1]; /* where it runs now */
    uint64_t task_id;          /* request field of the TASK in flight, 0 if none */
    double sent_ms, deadline_ms;
    int done, local;
    int checked;               /* a spot check confirmed the peer's outputs */
    double compute_ms;
    double held_ms;            /* a peer's: compute plus the wait its trace reports; < 0:
                                * its result had no trace */
    uint64_t transfer_us, wait_us;
    double send_ms;            /* the coordinator's work sending the task; < 0: it shipped
                                * weights too (a one-time cost, not a sample) */
    double posted_ms;          /* when nnm_link_send returned */
} job;

static uint64_t next_task_id(void)
{
    static uint64_t seq;
    if (seq == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        seq = ((uint64_t)ts.tv_sec << 20) ^ (uint64_t)ts.tv_nsec;
    }
    return ++seq;
}

/* Crops the part's inputs from the store, in the slice's input order. */
static nnm_err job_inputs(job *j, store *st, nnm_tensor *in, const char **names, nnm_diag *diag)
{
    int ni = nnm_graph_input_count(j->slice);
    for (int k = 0; k < ni; k++) {
        nnm_io_info io;
        nnm_region r;
        nnm_graph_input_get(j->slice, k, &io);
        nnm_graph_input_region(j->slice, k, &r);
        nnm_tensor *w = store_get(st, io.name);
        if (w == NULL)
            return nnm_diag_set(diag, NNM_ESTATE, "value '%s' is needed before it is computed", io.name);
        nnm_err rc = nnm_tensor_crop(&in[k], w, &r);
        if (rc != NNM_OK) return nnm_diag_set(diag, rc, "cannot crop '%s' for its part", io.name);
        names[k] = nnm_graph_input_count(j->slice) ? io.name : "";
    }
    return NNM_OK;
}

/* Places a part's outputs (slice output order) into the whole tensors. */
static nnm_err job_place(job *j, store *st, const nnm_tensor *outs, int n,
                         nnm_diag *diag)
{
    int no = nnm_graph_output_count(j->slice);
    if (n != no) return nnm_diag_set(diag, NNM_EFORMAT, "part on '%s' returned %d outputs, expected %d", j->node, n, no);
    for (int k = 0; k < no; k++) {
        nnm_io_info io;
        nnm_region r;
        nnm_graph_output_get(j->slice, k, &io);
        nnm_graph_output_region(j->slice, k, &r);
        nnm_tensor *w = store_get(st, io.name);
        if (w == NULL) return nnm_diag_set(diag, NNM_ESTATE, "no room for output '%s'", io.name);
        nnm_err rc = nnm_tensor_place(w, &outs[k], &r);
        if (rc != NNM_OK)
            return nnm_diag_set(diag, rc, "output '%s' from '%s' does not fit its region", io.name, j->node);
    }
    return NNM_OK;
}

/* Runs job j's part with the coordinator's worker on its inputs from st; *outs gets the
 * outputs in the slice's output order (caller frees with nnm_task_outputs_free). */
static nnm_err run_part(const nnm_coord_env *env, const uint8_t *hash, job *j, store *st,
                        nnm_task_output **outs, size_t *n_out, double *ms, nnm_diag *diag)
{
    *outs = NULL;
    *n_out = 0;
    int ni = nnm_graph_input_count(j->slice);
    nnm_tensor *in = calloc((size_t)ni + 1, sizeof *in);
    const char **names = calloc((size_t)ni + 1, sizeof *names);
    nnm_err rc = NNM_ENOMEM;
    if (!in || !names) goto out;
    if ((rc = job_inputs(j, st, in, names, diag)) != NNM_OK) goto out;
    nnm_slice_spec s;
    memset(&s, 0, sizeof s);
    memcpy(s.model_hash, hash, NNM_WIRE_HASH_BYTES);
    s.node_begin = (uint32_t)j->pp->node_begin;
    s.node_end = (uint32_t)j->pp->node_end;
    s.part_kind = (uint8_t)j->pp->part.kind;
    s.part_begin = (uint32_t)j->pp->part.begin;
    s.part_end = (uint32_t)j->pp->part.end;
    rc = nnm_worker_run(env->worker, &s, names, in, (size_t)ni, outs, n_out, ms, diag);
out:
    for (int k = 0; in && k < ni; k++) nnm_tensor_cleanup(&in[k]);
    free(in);
    free(names);
    return rc;
}

/* Places worker outputs (slice output order) into the whole tensors. */
static nnm_err place_outputs(job *j, store *st, const nnm_task_output *outs, size_t n_out,
                             nnm_diag *diag)
{
    nnm_tensor *ts = calloc(n_out + 1, sizeof *ts);
    if (!ts) return nnm_diag_set(diag, NNM_ENOMEM, "out of memory");
    for (size_t k = 0; k < n_out; k++) ts[k] = outs[k].t;
    nnm_err rc = job_place(j, st, ts, (int)n_out, diag);
    free(ts);
    return rc;
}

static nnm_err run_local(const nnm_coord_env *env, const nnm_graph *g, const uint8_t *hash,
                         job *j, store *st, nnm_diag *diag)
{
    (void)g;
    nnm_task_output *outs = NULL;
    size_t n_out = 0;
    nnm_err rc = run_part(env, hash, j, st, &outs, &n_out, &j->compute_ms, diag);
    if (rc == NNM_OK) {
        rc = place_outputs(j, st, outs, n_out, diag);
        snprintf(j->node, sizeof j->node, "%s", env->self);
        j->local = 1;
        j->done = rc == NNM_OK;
    }
    nnm_task_outputs_free(outs, n_out);
    return rc;
}

/* ---- spot checks ------------------------------------------------------------------------ */

int nnm_coord_peer_excluded(const nnm_coord_stats *stats, const char *peer)
{
    if (stats == NULL || peer == NULL) return 0;
    double now = now_ms();
    for (size_t i = 0; i < stats->n_excluded; i++)
        if (!strcmp(stats->excluded[i].id, peer))
            return stats->excluded[i].until_ms == 0 || now < stats->excluded[i].until_ms;
    return 0;
}

/* Drops the exclusions that expired (logged: the peer gets parts again). */
static void prune_excluded(const nnm_coord_env *env, nnm_coord_stats *stats)
{
    double now = now_ms();
    size_t k = 0;
    for (size_t i = 0; i < stats->n_excluded; i++) {
        nnm_coord_exclusion *e = &stats->excluded[i];
        if (e->until_ms != 0 && now >= e->until_ms) {
            if (env->log) {
                char msg[160];
                snprintf(msg, sizeof msg, "peer %s: its exclusion for wrong results expired; it "
                         "may get parts again", e->id);
                env->log(env->ctx, 0, msg);
            }
            continue;
        }
        stats->excluded[k++] = *e;
    }
    stats->n_excluded = k;
}

int nnm_coord_peer_suspect(const nnm_coord_stats *stats, const char *peer)
{
    if (stats == NULL || peer == NULL) return 0;
    double now = now_ms();
    for (size_t i = 0; i < stats->n_suspects; i++)
        if (!strcmp(stats->suspects[i].id, peer)) return now < stats->suspects[i].until_ms;
    return 0;
}

void nnm_coord_peer_unsuspect(nnm_coord_stats *stats, const char *peer)
{
    if (stats == NULL || peer == NULL) return;
    for (size_t i = 0; i < stats->n_suspects; i++)
        if (!strcmp(stats->suspects[i].id, peer)) {
            stats->suspects[i] = stats->suspects[--stats->n_suspects];
            return;
        }
}

/* A task of peer's passed its deadline: no part goes there for a while (see coord.h). */
static void suspect_peer(const nnm_coord_env *env, nnm_coord_stats *stats, const char *peer,
                         unsigned tmo)
{
    if (stats == NULL) return;
    stats->timeouts++;
    size_t i = 0;
    while (i < stats->n_suspects && strcmp(stats->suspects[i].id, peer) != 0) i++;
    if (i == stats->n_suspects) {
        if (stats->n_suspects == NNM_SCHED_MAX_NODES) return;
        stats->n_suspects++;
    }
    snprintf(stats->suspects[i].id, sizeof stats->suspects[i].id, "%s", peer);
    unsigned ms = env->suspect_ms ? env->suspect_ms : 3 * tmo;
    stats->suspects[i].until_ms = now_ms() + ms;
    if (env->log) {
        char msg[256];
        snprintf(msg, sizeof msg, "peer %s did not answer %s within its %u ms deadline: the part "
                 "runs here, and %s gets no part for %u ms or until it answers again", peer,
                 env->request ? env->request : "a request", tmo, peer, ms);
        env->log(env->ctx, 0, msg);
    }
}

static void exclude_peer(const nnm_coord_env *env, nnm_coord_stats *stats, const char *peer,
                         uint64_t task_id, double diff)
{
    nnm_coord_exclusion *e = NULL;
    for (size_t i = 0; i < stats->n_excluded && !e; i++)
        if (!strcmp(stats->excluded[i].id, peer)) e = &stats->excluded[i];
    if (!e && stats->n_excluded < NNM_SCHED_MAX_NODES) e = &stats->excluded[stats->n_excluded++];
    if (!e) e = &stats->excluded[0];   /* full (cannot happen: one entry per node) */
    memset(e, 0, sizeof *e);
    snprintf(e->id, sizeof e->id, "%s", peer);
    e->until_ms = env->exclude_ms ? now_ms() + env->exclude_ms : 0;
    e->task_id = task_id;
    e->diff = diff;
}

/* Whether this result is checked: an unbiased draw from the kernel's CSPRNG, so a peer cannot
 * predict which of its answers are re-run. If no random bytes can be had, it is checked. */
static int draw_check(double rate)
{
    if (!(rate > 0)) return 0;
    if (rate >= 1) return 1;
    uint32_t r;
    if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r) return 1;
    return (double)r < rate * 4294967296.0;
}

static double half_to_double(uint16_t h)
{
    int e = (h >> 10) & 0x1f, m = h & 0x3ff;
    double v = e == 0 ? ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexp(m + 1024, e - 25);
    return (h & 0x8000) ? -v : v;
}

static double element(const nnm_tensor *t, size_t i)
{
    switch (t->dtype) {
    case NNM_DT_F32: return ((const float *)t->data)[i];
    case NNM_DT_F64: return ((const double *)t->data)[i];
    case NNM_DT_F16: return half_to_double(((const uint16_t *)t->data)[i]);
    case NNM_DT_I8: return ((const int8_t *)t->data)[i];
    case NNM_DT_U8: case NNM_DT_BOOL: return ((const uint8_t *)t->data)[i];
    case NNM_DT_I32: return ((const int32_t *)t->data)[i];
    case NNM_DT_I64: return (double)((const int64_t *)t->data)[i];
    default: return 0;
    }
}

/* Largest |p - m| over the elements of a peer's output p and the coordinator's own m, and
 * the largest |m|. A dtype or size that differs, or a NaN on one side only, is an infinite
 * difference. */
static void tensor_diff(const nnm_tensor *p, const nnm_tensor *m, double *diff, double *scale)
{
    *diff = 0;
    *scale = 0;
    size_t es = nnm_dtype_size(m->dtype);
    if (p->dtype != m->dtype || p->nbytes != m->nbytes || es == 0) {
        *diff = INFINITY;
        return;
    }
    for (size_t i = 0; i < m->nbytes / es; i++) {
        double a = element(p, i), b = element(m, i);
        if (isnan(a) || isnan(b)) {
            if (!isnan(a) != !isnan(b)) *diff = INFINITY;
            continue;
        }
        if (fabs(b) > *scale && isfinite(b)) *scale = fabs(b);
        if (a == b) continue;           /* also equal infinities */
        double d = fabs(a - b);         /* an infinity on one side only: infinite */
        if (d > *diff) *diff = d;
    }
}

/* Tolerance for an output that came over the wire with codec (lossy codecs round). */
static double spot_tolerance(int codec)
{
    if (codec == NNM_CODEC_F16) return 2e-3;
    if (codec == NNM_CODEC_INT8_AFFINE) return 2e-2;
    return NNM_COORD_SPOT_TOLERANCE;
}

typedef struct check {
    int ran;                   /* the coordinator re-ran the part */
    int mismatch;
    double diff;               /* largest difference relative to the output scale */
    double abs_diff, scale;
    int worst;                 /* output with the largest relative difference */
    double tol;                /* the tolerance it was held to */
    nnm_task_output *mine;     /* the coordinator's outputs (slice order), owned */
    size_t n_mine;
    double ms;
} check;

/* Re-runs j's part here and compares with the peer's outputs peer[0..no) (slice output
 * order; codecs: how each came over the wire). A failure to run it leaves c->ran 0: the
 * peer's result stands unchecked. */
static void spot_check(const nnm_coord_env *env, const uint8_t *hash, job *j, store *st,
                       const nnm_tensor *peer, const int *codecs, int no, check *c)
{
    memset(c, 0, sizeof *c);
    nnm_diag d;
    nnm_diag_clear(&d);
    if (run_part(env, hash, j, st, &c->mine, &c->n_mine, &c->ms, &d) != NNM_OK) return;
    if (c->n_mine != (size_t)no) {
        nnm_task_outputs_free(c->mine, c->n_mine);
        c->mine = NULL;
        c->n_mine = 0;
        return;
    }
    c->ran = 1;
    c->worst = 0;
    for (int k = 0; k < no; k++) {
        double ad, sc;
        tensor_diff(&peer[k], &c->mine[k].t, &ad, &sc);
        /* Relative to the output's scale; an all-zero output compares absolutely. */
        double rel = ad / (sc > 1e-6 ? sc : 1e-6);
        if (isnan(rel)) rel = INFINITY;
        if (k == 0 || rel > c->diff) {
            c->diff = rel;
            c->abs_diff = ad;
            c->scale = sc;
            c->worst = k;
            c->tol = spot_tolerance(codecs[k]);
        }
        if (rel > spot_tolerance(codecs[k])) c->mismatch = 1;
    }
}

static void check_cleanup(check *c)
{
    nnm_task_outputs_free(c->mine, c->n_mine);
    memset(c, 0, sizeof *c);
}

/* Sends the part's weights as an ONNX slice; *h gets its hash. */
static nnm_err send_model(const nnm_coord_env *env, job *j, uint64_t task_id,
                          uint8_t h[NNM_WIRE_HASH_BYTES], nnm_diag *diag)
{
    void *buf = NULL;
    size_t len = 0;
    nnm_err rc = nnm_graph_encode_onnx(&buf, &len, j->slice, diag);
    if (rc != NNM_OK) return rc;
    nnm_model_hash(h, buf, len);
    nnm_tensor t;
    memset(&t, 0, sizeof t);
    t.dtype = NNM_DT_U8;
    t.ndim = 1;
    t.shape[0] = (int64_t)len;
    t.data = buf;
    t.nbytes = len;
    nnm_wire_tensor wt;
    if ((rc = nnm_wire_tensor_encode(&wt, &t, NNM_CODEC_AUTO, diag)) == NNM_OK) {
        wt.name = NNM_MODEL_TENSOR;
        rc = nnm_link_send_tensors(env->link, j->node, task_id, &wt, 1, diag);
        nnm_wire_tensor_cleanup(&wt);
    }
    free(buf);
    return rc;
}

/* Slices already shipped: (peer, model, node range, part) -> the slice's hash. A peer keeps
 * what it received (in memory and on disk), so a stream ships each slice once; when a peer
 * answers "model not held" (it lost its cache) the entry is dropped and the next request
 * ships the slice again. One coordinator per process drives this table (its poll thread). */
typedef struct shipped {
    int used;
    char peer[NNM_ID_MAX + 1];
    uint8_t model[NNM_WIRE_HASH_BYTES], slice[NNM_WIRE_HASH_BYTES];
    int a, b, kind;
    int64_t pb, pe;
    uint32_t n_nodes;
} shipped;
#define SHIPPED_MAX 512
static shipped ship_table[SHIPPED_MAX];
static unsigned ship_next;

static shipped *ship_find(const char *peer, const uint8_t *model, const nnm_plan_part *pp)
{
    for (unsigned i = 0; i < SHIPPED_MAX; i++) {
        shipped *e = &ship_table[i];
        if (e->used && !strcmp(e->peer, peer) && !memcmp(e->model, model, NNM_WIRE_HASH_BYTES) &&
            e->a == pp->node_begin && e->b == pp->node_end && e->kind == pp->part.kind &&
            e->pb == pp->part.begin && e->pe == pp->part.end)
            return e;
    }
    return NULL;
}

static void ship_forget(const char *peer, const uint8_t *model, const nnm_plan_part *pp)
{
    shipped *e = ship_find(peer, model, pp);
    if (e) e->used = 0;
}

/* The wire codec of a part's input: the caller's (env->codec) if set, else the one the plan
 * chose for the edge; the plan's LZ4 travels as AUTO, which keeps LZ4 only where it saves
 * 10% (the plan assumed a ratio; an image input does not compress). */
static nnm_codec edge_codec(const nnm_coord_env *env, const nnm_plan_part *pp, const char *name)
{
    if (env->codec) return env->codec;
    for (int i = 0; i < pp->n_in; i++)
        if (pp->in[i].value != NULL && strcmp(pp->in[i].value, name) == 0)
            return pp->in[i].codec == NNM_CODEC_LZ4 ? NNM_CODEC_AUTO : pp->in[i].codec;
    return NNM_CODEC_AUTO;
}

static nnm_err send_task(const nnm_coord_env *env, const uint8_t *hash, job *j, uint32_t attempt,
                         unsigned timeout_ms, nnm_coord_stats *stats, store *st, nnm_diag *diag)
{
    double t_start = now_ms();     /* the send work is serial here: the scheduler learns it */
    int shipped_now = 0;
    int ni = nnm_graph_input_count(j->slice);
    nnm_tensor *in = calloc((size_t)ni + 1, sizeof *in);
    const char **names = calloc((size_t)ni + 1, sizeof *names);
    nnm_wire_tensor *wt = calloc((size_t)ni + 1, sizeof *wt);
    nnm_err rc = NNM_ENOMEM;
    if (!in || !names || !wt) goto out;
    if ((rc = job_inputs(j, st, in, names, diag)) != NNM_OK) goto out;
    for (int k = 0; k < ni; k++) {
        if ((rc = nnm_wire_tensor_encode(&wt[k], &in[k], edge_codec(env, j->pp, names[k]), diag)) != NNM_OK)
            goto out;
        wt[k].name = names[k];
    }
    if (env->peer_alive && !env->peer_alive(env->ctx, j->node)) {
        /* It left since the plan was made: no task, and no weights shipped to a dead peer. */
        rc = nnm_diag_set(diag, NNM_ECONN, "'%s' left the mesh", j->node);
        goto out;
    }
    j->task_id = next_task_id();
    nnm_frame f;
    memset(&f, 0, sizeof f);
    f.hdr.type = NNM_FRAME_TASK;
    f.hdr.request = j->task_id;
    nnm_slice_spec *s = &f.u.task.spec;
    if (env->peer_has_model && env->peer_has_model(env->ctx, j->node, hash)) {
        memcpy(s->model_hash, hash, NNM_WIRE_HASH_BYTES);
        s->node_begin = (uint32_t)j->pp->node_begin;
        s->node_end = (uint32_t)j->pp->node_end;
        s->part_kind = (uint8_t)j->pp->part.kind;
        s->part_begin = (uint32_t)j->pp->part.begin;
        s->part_end = (uint32_t)j->pp->part.end;
    } else {
        /* The peer lacks the model: ship this part's slice (weights included) first, unless
         * it was shipped before; the peer runs it whole and keeps it by hash. */
        shipped *e = ship_find(j->node, hash, j->pp);
        if (e) {
            memcpy(s->model_hash, e->slice, NNM_WIRE_HASH_BYTES);
        } else {
            if ((rc = send_model(env, j, j->task_id, s->model_hash, diag)) != NNM_OK) goto out;
            shipped_now = 1;
            if (stats) stats->models_sent++;
            e = &ship_table[ship_next++ % SHIPPED_MAX];
            memset(e, 0, sizeof *e);
            e->used = 1;
            snprintf(e->peer, sizeof e->peer, "%s", j->node);
            memcpy(e->model, hash, NNM_WIRE_HASH_BYTES);
            memcpy(e->slice, s->model_hash, NNM_WIRE_HASH_BYTES);
            e->a = j->pp->node_begin;
            e->b = j->pp->node_end;
            e->kind = j->pp->part.kind;
            e->pb = j->pp->part.begin;
            e->pe = j->pp->part.end;
        }
        s->node_begin = 0;
        s->node_end = (uint32_t)nnm_graph_node_count(j->slice);
        s->part_kind = NNM_PART_WHOLE;
    }
    s->attempt = attempt;
    s->deadline_ms = 0;
    /* The codec to answer with, shipped slices too: the caller's if set, else the plan's for
     * the part's result edges (AUTO, lossless, when it chose different ones for its outputs,
     * say F16 for an f32 one and NONE for an int64 one: the spec has room for one). The
     * worker sends a requested LZ4 as AUTO, as edge_codec does (nnm_coord_serve). */
    s->result_codec = (uint8_t)(env->codec ? env->codec : nnm_plan_part_result_codec(j->pp));
    f.u.task.ntensors = (size_t)ni;
    f.u.task.tensors = wt;
    j->sent_ms = now_ms();
    j->deadline_ms = j->sent_ms + timeout_ms;
    rc = nnm_link_send(env->link, j->node, &f, diag);
    j->posted_ms = now_ms();
    j->send_ms = shipped_now ? -1 : j->posted_ms - t_start;
    if (rc == NNM_OK && stats) stats->tasks_sent++;
out:
    for (int k = 0; wt && k < ni; k++) nnm_wire_tensor_cleanup(&wt[k]);
    for (int k = 0; in && k < ni; k++) nnm_tensor_cleanup(&in[k]);
    free(wt);
    free(in);
    free(names);
    return rc;
}

/* A RESULT for job j: place its outputs, after a spot check if one is drawn (c says how it
 * went; on a mismatch the coordinator's own outputs are placed). Returns NNM_OK when placed;
 * c is the caller's to clean up either way. */
static nnm_err take_result(const nnm_coord_env *env, const uint8_t *hash, job *j, store *st,
                           const nnm_link_msg *m, nnm_coord_stats *stats, check *c,
                           nnm_diag *diag)
{
    memset(c, 0, sizeof *c);
    const nnm_frame *f = m->frame;
    if (f->hdr.type == NNM_FRAME_ERROR)
        return nnm_diag_set(diag, NNM_EBACKEND, "'%s' failed the task: %s", j->node,
                            f->u.error.message ? f->u.error.message : "?");
    if (f->u.result.status != 0)
        return nnm_diag_set(diag, (nnm_err)f->u.result.status, "'%s' failed the task (%s)", j->node,
                            nnm_strerror((nnm_err)f->u.result.status));
    double rt = now_ms() - j->sent_ms;
    j->compute_ms = 0;
    j->held_ms = -1;
    if (f->u.result.ntrace > 0) {
        j->compute_ms = (double)f->u.result.trace[0].compute_us / 1e3;
        j->held_ms = j->compute_ms + (double)f->u.result.trace[0].wait_us / 1e3;
    }
    j->transfer_us = (uint64_t)((rt - j->compute_ms) * 1e3 > 0 ? (rt - j->compute_ms) * 1e3 : 0);
    /* Outputs are matched by value name: a peer that runs the part from a received ONNX
     * slice re-derives the slice's outputs, possibly in another order (a residual block's
     * skip and main values have the same shape, so a positional match would place them
     * silently swapped). Unnamed outputs fall back to position. */
    int no = nnm_graph_output_count(j->slice);
    if ((size_t)no != m->ntensors)
        return nnm_diag_set(diag, NNM_EFORMAT, "part on '%s' returned %zu outputs, expected %d",
                            j->node, m->ntensors, no);
    nnm_tensor *ord = calloc((size_t)no + 1, sizeof *ord);
    int *codecs = calloc((size_t)no + 1, sizeof *codecs);
    if (!ord || !codecs) {
        free(ord);
        free(codecs);
        return nnm_diag_set(diag, NNM_ENOMEM, "out of memory");
    }
    nnm_err rc = NNM_OK;
    for (int k = 0; k < no && rc == NNM_OK; k++) {
        nnm_io_info io;
        nnm_graph_output_get(j->slice, k, &io);
        int found = -1;
        for (size_t i = 0; i < m->ntensors && found < 0; i++) {
            const char *nm = f->u.result.tensors[i].name;
            if (nm == NULL || nm[0] == '\0') found = -2;
            else if (!strcmp(nm, io.name)) found = (int)i;
        }
        if (found == -2) found = k;   /* unnamed: by position */
        if (found < 0) {
            rc = nnm_diag_set(diag, NNM_EFORMAT, "part on '%s' returned no output '%s'", j->node, io.name);
        } else {
            ord[k] = m->tensors[found];
            codecs[k] = f->u.result.tensors[found].codec;
            if (stats && (unsigned)codecs[k] < NNM_CODEC__COUNT)
                stats->result_codecs[codecs[k]]++;
        }
    }
    if (rc == NNM_OK && draw_check(env->spot_check)) {
        /* Checked before placing: the part's inputs in st are not touched by placing its
         * outputs (a stage's parts read earlier stages only), so the re-run sees exactly
         * what the peer was sent. */
        spot_check(env, hash, j, st, ord, codecs, no, c);
        if (c->ran && stats) {
            stats->spot_checks++;
            if (c->mismatch) stats->spot_mismatches++;
            else if (c->diff > stats->spot_max_ok) stats->spot_max_ok = c->diff;
        }
    }
    if (rc == NNM_OK) {
        if (c->ran && c->mismatch) {
            rc = place_outputs(j, st, c->mine, c->n_mine, diag);
        } else {
            rc = job_place(j, st, ord, no, diag);
            j->checked = c->ran;
        }
    }
    free(ord);
    free(codecs);
    if (rc == NNM_OK) j->done = 1;
    return rc;
}

/* A spot check caught job `bad`'s peer: logs it and excludes the peer. Returns 1 when the
 * request must be run again: the request already used another result of that peer that no
 * check confirmed (an earlier stage's, in tr, or one of this stage's jobs). */
static int caught(const nnm_coord_env *env, nnm_coord_stats *stats, job *jobs, int n_jobs,
                  job *bad, const check *c, const nnm_trace_entry *tr, size_t ntr)
{
    char peer[NNM_ID_MAX + 1];
    snprintf(peer, sizeof peer, "%s", bad->node);
    exclude_peer(env, stats, peer, bad->task_id, c->diff);
    int redo = 0;
    for (size_t i = 0; i < ntr && !redo; i++) redo = !strcmp(tr[i].node, peer);
    for (int p = 0; p < n_jobs && !redo; p++)
        redo = &jobs[p] != bad && jobs[p].done && !jobs[p].local && !jobs[p].checked &&
               !strcmp(jobs[p].node, peer);
    if (env->log) {
        nnm_io_info io;
        nnm_graph_output_get(bad->slice, c->worst, &io);
        char msg[512], until[64] = "until this node restarts";
        if (env->exclude_ms) snprintf(until, sizeof until, "for %u s", env->exclude_ms / 1000);
        snprintf(msg, sizeof msg, "spot check: peer %s returned wrong outputs for %s (task %016llx, "
                 "nodes [%d, %d)): output '%s' differs by %.3g (%.3g of its scale %.3g; tolerance "
                 "%.0e); the coordinator's own result is used and %s is excluded %s%s", peer,
                 env->request ? env->request : "a request", (unsigned long long)bad->task_id,
                 bad->pp->node_begin, bad->pp->node_end, io.name, c->abs_diff, c->diff, c->scale,
                 c->tol, peer, until,
                 redo ? "; the request runs again without it (it used other unchecked results "
                        "of that peer)" : "");
        env->log(env->ctx, 1, msg);
    }
    /* The part's result is now the coordinator's own. */
    snprintf(bad->node, sizeof bad->node, "%s", env->self);
    bad->local = 1;
    bad->compute_ms = c->ms;
    return redo;
}

/* Counts the time planning took; a long one (candidate plans built on a slow board) is
 * logged, since it delays the request like waiting for a peer would. */
#define PLAN_LOG_MS 20.0
static void plan_timed(const nnm_coord_env *env, nnm_coord_stats *stats, double ms)
{
    stats->plans++;
    stats->plan_ms_last = ms;
    stats->plan_ms_total += ms;
    if (ms > stats->plan_ms_max) stats->plan_ms_max = ms;
    if (env->log && ms >= PLAN_LOG_MS) {
        char msg[200];
        snprintf(msg, sizeof msg, "planning %s took %.1f ms (candidate plans built or refreshed: "
                 "a new model, mesh or refined cost model); it is part of the first part's wait",
                 env->request ? env->request : "a request", ms);
        env->log(env->ctx, 0, msg);
    }
}

/* One run of the request (see nnm_coord_run); *redo is set (with an error) when a spot check
 * caught a peer whose other results this run already used. */
static nnm_err run_once(const nnm_coord_env *env, const nnm_graph *g,
                        const uint8_t hash[NNM_WIRE_HASH_BYTES], const nnm_plan_opts *plan_opts,
                        const nnm_tensor *inputs, int n_in, nnm_tensor *outputs, int n_out,
                        double t0, unsigned deadline_ms, nnm_trace_entry **trace,
                        size_t *n_trace, nnm_coord_stats *stats, int *redo, nnm_diag *diag)
{
    *redo = 0;
    if (trace) *trace = NULL;
    if (n_trace) *n_trace = 0;
    memset(outputs, 0, (size_t)n_out * sizeof *outputs);
    unsigned tmo = env->task_timeout_ms ? env->task_timeout_ms : 10000;
    nnm_plan *plan = NULL;
    store st = { 0 };
    job *jobs = NULL;
    nnm_trace_entry *tr = NULL;
    size_t ntr = 0;
    double tp = now_ms();
    nnm_err rc = nnm_sched_plan(env->sched, g, hash, plan_opts, &plan, diag);
    if (rc != NNM_OK) return rc;
    double plan_ms = now_ms() - tp;
    plan_timed(env, stats, plan_ms);
    rc = NNM_ENOMEM;
    size_t total_parts = 0;
    for (int s = 0; s < plan->n_stages; s++) total_parts += (size_t)plan->stages[s].n_parts;
    tr = calloc(total_parts + 1, sizeof *tr);
    if (!tr) goto fail;
    for (int i = 0; i < n_in; i++) {
        nnm_io_info io;
        nnm_graph_input_get(g, i, &io);
        nnm_tensor *w = store_add(&st, &io, diag);
        if (!w) { rc = NNM_ENOMEM; goto fail; }
        if (w->nbytes != inputs[i].nbytes || w->dtype != inputs[i].dtype) {
            rc = nnm_diag_set(diag, NNM_ESHAPE, "input '%s' has the wrong dtype or size", io.name);
            goto fail;
        }
        memcpy(w->data, inputs[i].data, w->nbytes);
    }
    for (int s = 0; s < plan->n_stages; s++) {
        const nnm_plan_stage *stg = &plan->stages[s];
        jobs = calloc((size_t)stg->n_parts + 1, sizeof *jobs);
        if (!jobs) { rc = NNM_ENOMEM; goto fail; }
        for (int p = 0; p < stg->n_parts; p++) {
            job *j = &jobs[p];
            j->pp = &stg->parts[p];
            snprintf(j->node, sizeof j->node, "%s", j->pp->node);
            if ((rc = nnm_graph_slice(&j->slice, g, j->pp->node_begin, j->pp->node_end,
                                      &j->pp->part, diag)) != NNM_OK)
                goto fail;
            if ((rc = store_prepare(&st, g, j->pp->node_begin, j->pp->node_end, diag)) != NNM_OK)
                goto fail;
        }
        /* Remote parts first, so they compute while the coordinator runs its own. */
        for (int p = 0; p < stg->n_parts; p++) {
            job *j = &jobs[p];
            j->wait_us = (uint64_t)((now_ms() - t0) * 1e3);
            if (!strcmp(j->node, env->self)) continue;
            if (nnm_coord_peer_excluded(stats, j->node) || nnm_coord_peer_suspect(stats, j->node)) {
                /* Caught returning wrong results, or not answering: its parts run here. */
                snprintf(j->node, sizeof j->node, "%s", env->self);
                continue;
            }
            nnm_diag d2;
            nnm_diag_clear(&d2);
            if (send_task(env, hash, j, 0, tmo, stats, &st, &d2) != NNM_OK) {
                /* Could not even send (peer unknown, no session): run it here. */
                j->task_id = 0;
                if (stats) stats->tasks_retried++;
                snprintf(j->node, sizeof j->node, "%s", env->self);
            }
        }
        for (int p = 0; p < stg->n_parts; p++) {
            job *j = &jobs[p];
            if (strcmp(j->node, env->self) != 0) continue;
            if ((rc = run_local(env, g, hash, j, &st, diag)) != NNM_OK) goto fail;
            if (stats) stats->tasks_local++;
            /* The coordinator's own parts refine its speed too, so a coordinator that gets
             * loaded learns it (and plans around itself) like any peer. A part moved here
             * from a peer is not the peer's time. */
            if (!strcmp(j->pp->node, env->self))
                nnm_sched_observe_slice(env->sched, j->pp, j->compute_ms > 0 ? j->compute_ms : 0.01, NULL);
        }
        /* Wait for the remote parts; a timeout, a departure or an error reruns the part
         * here. Frames that are not our results go to dispatch. */
        for (;;) {
            int pending = 0;
            double now = now_ms();
            for (int p = 0; p < stg->n_parts; p++) {
                job *j = &jobs[p];
                if (j->done) continue;
                int gone = (env->peer_alive && !env->peer_alive(env->ctx, j->node)) ||
                           nnm_coord_peer_excluded(stats, j->node);
                if (now > j->deadline_ms || gone) {
                    if (!gone) {
                        suspect_peer(env, stats, j->node, tmo);
                        /* At least this slow: the cost model learns it too. */
                        nnm_sched_observe_slice(env->sched, j->pp, now - j->sent_ms, NULL);
                    }
                    j->task_id = 0;     /* a late answer is now unknown: discarded */
                    if (stats) stats->tasks_retried++;
                    if ((rc = run_local(env, g, hash, j, &st, diag)) != NNM_OK) goto fail;
                    continue;
                }
                pending++;
            }
            if (!pending) break;
            if (deadline_ms && now - t0 > deadline_ms) {
                rc = nnm_diag_set(diag, NNM_ETIMEOUT, "request deadline of %u ms passed", deadline_ms);
                goto fail;
            }
            nnm_link_msg m;
            memset(&m, 0, sizeof m);
            nnm_diag d2;
            double asked = now_ms();
            nnm_err r2 = nnm_link_recv(env->link, &m, 20, &d2);
            if (r2 == NNM_ETIMEOUT) continue;
            if (r2 != NNM_OK) continue;
            /* An answer's round trip ends at its arrival (complete and opened, stamped by the
             * link) plus its decode here: the time it sat in the queue while the coordinator
             * was busy with other parts is not the peer's. */
            double got = now_ms(), arrived = m.arrived_ms > 0 ? m.arrived_ms : asked;
            double ready = arrived + (got - (arrived > asked ? arrived : asked));
            const nnm_frame *f = m.frame;
            job *mine = NULL;
            if (f && (f->hdr.type == NNM_FRAME_RESULT || f->hdr.type == NNM_FRAME_ERROR)) {
                /* Any answer, even a late one, shows the peer is back. */
                nnm_coord_peer_unsuspect(stats, f->hdr.sender);
                for (int p = 0; p < stg->n_parts && !mine; p++)
                    if (!jobs[p].done && jobs[p].task_id && jobs[p].task_id == f->hdr.request &&
                        !strcmp(jobs[p].node, f->hdr.sender))
                        mine = &jobs[p];
                if (!mine) {
                    if (stats) stats->results_late++;
                    nnm_link_msg_cleanup(&m);
                    continue;
                }
                nnm_diag d3;
                nnm_diag_clear(&d3);
                check chk;
                if (take_result(env, hash, mine, &st, &m, stats, &chk, &d3) != NNM_OK) {
                    check_cleanup(&chk);
                    /* A peer that lost a shipped slice gets it again next time. */
                    if (d3.code == NNM_ENOTFOUND) ship_forget(mine->node, hash, mine->pp);
                    /* An error or a malformed answer: the part runs here. */
                    mine->task_id = 0;
                    if (stats) stats->tasks_retried++;
                    nnm_link_msg_cleanup(&m);
                    if ((rc = run_local(env, g, hash, mine, &st, diag)) != NNM_OK) goto fail;
                    continue;
                }
                nnm_link_msg_cleanup(&m);
                if (chk.ran && chk.mismatch) {
                    *redo = caught(env, stats, jobs, stg->n_parts, mine, &chk, tr, ntr);
                    check_cleanup(&chk);
                    if (*redo) {
                        rc = nnm_diag_set(diag, NNM_ESTATE, "a peer was caught returning wrong "
                                          "results: the request runs again without it");
                        goto fail;
                    }
                    continue;
                }
                check_cleanup(&chk);
                if (!mine->local) {
                    nnm_sched_observe_slice(env->sched, mine->pp, mine->compute_ms > 0 ? mine->compute_ms : 0.01, NULL);
                    /* What the part cost beyond compute and bytes: learned per peer, and
                     * the send work per remote part, so plans stop paying for parts that
                     * cost more than they save (docs/SCHEDULER.md, "Cost model"). */
                    double rt = ready > mine->posted_ms ? ready - mine->posted_ms : 0;
                    if (mine->send_ms >= 0) {
                        /* The network both ways: the round trip less what the peer says it
                         * held the task; it refines the two links (an answer without a
                         * trace, or that claims to have been held longer than its round
                         * trip, teaches nothing). */
                        if (mine->held_ms >= 0 && rt > mine->held_ms)
                            nnm_sched_observe_exchange(env->sched, mine->pp, rt - mine->held_ms, NULL);
                        nnm_sched_observe_part(env->sched, mine->pp, rt, mine->compute_ms,
                                               mine->send_ms, NULL);
                    }
                }
                continue;
            }
            if (env->dispatch) env->dispatch(env->ctx, &m);
            else nnm_link_msg_cleanup(&m);
        }
        for (int p = 0; p < stg->n_parts; p++) {
            job *j = &jobs[p];
            nnm_trace_entry *e = &tr[ntr++];
            snprintf(e->node, sizeof e->node, "%s", j->node);
            e->node_begin = (uint32_t)j->pp->node_begin;
            e->node_end = (uint32_t)j->pp->node_end;
            e->compute_us = (uint64_t)(j->compute_ms * 1e3);
            e->transfer_us = j->local ? 0 : j->transfer_us;
            e->wait_us = j->wait_us;
            nnm_graph_free(j->slice);
        }
        free(jobs);
        jobs = NULL;
    }
    for (int i = 0; i < n_out; i++) {
        nnm_io_info io;
        nnm_graph_output_get(g, i, &io);
        nnm_tensor *w = store_get(&st, io.name);
        if (!w) {
            rc = nnm_diag_set(diag, NNM_ESTATE, "output '%s' was never computed", io.name);
            goto fail;
        }
        outputs[i] = *w;               /* move out of the store */
        memset(w, 0, sizeof *w);
    }
    /* The bandit judges the plan: the time spent planning it is not the plan's. */
    double lat = now_ms() - t0 - plan_ms;
    nnm_sched_observe_latency(env->sched, plan, lat > 0.001 ? lat : 0.001, NULL);
    nnm_plan_free(plan);
    store_free(&st);
    if (trace) { *trace = tr; tr = NULL; }
    if (n_trace) *n_trace = ntr;
    free(tr);
    return NNM_OK;
fail:
    if (jobs) {
        const nnm_plan_stage *stg = NULL;
        for (int s = 0; s < plan->n_stages; s++)
            if (jobs[0].pp >= plan->stages[s].parts && jobs[0].pp < plan->stages[s].parts + plan->stages[s].n_parts)
                stg = &plan->stages[s];
        for (int p = 0; stg && p < stg->n_parts; p++) nnm_graph_free(jobs[p].slice);
        free(jobs);
    }
    for (int i = 0; i < n_out; i++) nnm_tensor_cleanup(&outputs[i]);
    nnm_plan_free(plan);
    store_free(&st);
    free(tr);
    return rc;
}

nnm_err nnm_coord_run(const nnm_coord_env *env, const nnm_graph *g,
                      const uint8_t hash[NNM_WIRE_HASH_BYTES], const nnm_plan_opts *plan_opts,
                      const nnm_tensor *inputs, int n_in, nnm_tensor *outputs, int n_out,
                      unsigned deadline_ms, nnm_trace_entry **trace, size_t *n_trace,
                      nnm_coord_stats *stats, nnm_diag *diag)
{
    if (trace) *trace = NULL;
    if (n_trace) *n_trace = 0;
    memset(outputs, 0, (size_t)n_out * sizeof *outputs);
    if (n_in != nnm_graph_input_count(g) || n_out != nnm_graph_output_count(g))
        return nnm_diag_set(diag, NNM_EINVAL, "the model takes %d inputs and gives %d outputs",
                            nnm_graph_input_count(g), nnm_graph_output_count(g));
    /* Without the caller's stats, exclusions still hold for the reruns of this request. */
    nnm_coord_stats scratch;
    if (stats == NULL) {
        memset(&scratch, 0, sizeof scratch);
        stats = &scratch;
    }
    prune_excluded(env, stats);
    double t0 = now_ms();
    /* Each rerun excludes one more peer, so this ends; the bound is for safety. */
    for (int attempt = 0;; attempt++) {
        int redo = 0;
        nnm_err rc = run_once(env, g, hash, plan_opts, inputs, n_in, outputs, n_out, t0,
                              deadline_ms, trace, n_trace, stats, &redo, diag);
        if (!redo || attempt >= NNM_SCHED_MAX_NODES) return rc;
        stats->reruns++;
        nnm_diag_clear(diag);
    }
}

static nnm_err send_status(const nnm_coord_env *env, const nnm_frame *req, nnm_err status,
                           const nnm_wire_tensor *wt, size_t n, const nnm_trace_entry *te,
                           nnm_diag *diag)
{
    nnm_frame f;
    memset(&f, 0, sizeof f);
    f.hdr.type = NNM_FRAME_RESULT;
    f.hdr.request = req->hdr.request;
    f.u.result.status = (uint32_t)status;
    f.u.result.ntensors = n;
    f.u.result.tensors = wt;
    f.u.result.ntrace = te ? 1 : 0;
    f.u.result.trace = te;
    return nnm_link_send(env->link, req->hdr.sender, &f, diag);
}

/* The corrupt-results failpoint (tests only): a byzantine peer's wrong but plausible
 * outputs. Every 8th element moves by 0.5 plus 1% of its magnitude, so the error shows at
 * any scale; non-float tensors get their first byte flipped. */
static void corrupt(nnm_tensor *t)
{
    size_t es = nnm_dtype_size(t->dtype);
    if (es == 0 || t->nbytes == 0) return;
    for (size_t i = 0; i < t->nbytes / es; i += 8) {
        if (t->dtype == NNM_DT_F32) {
            float *v = (float *)t->data + i;
            *v += 0.5f + 0.01f * fabsf(*v);
        } else if (t->dtype == NNM_DT_F64) {
            double *v = (double *)t->data + i;
            *v += 0.5 + 0.01 * fabs(*v);
        } else if (i == 0) {
            ((uint8_t *)t->data)[0] ^= 0x5a;
        }
    }
}

/* The codec a worker answers with for output t: its own env->codec if set (a test or bench
 * forcing one), else the one the TASK asks for. A requested LZ4 is sent as AUTO (LZ4 only
 * where it saves 10%: the plan assumed a ratio), and a lossy codec applies to f32 outputs
 * only (the others go as AUTO). A TASK of an older coordinator asks for AUTO. */
static nnm_codec answer_codec(const nnm_coord_env *env, const nnm_slice_spec *s,
                              const nnm_tensor *t)
{
    if (env->codec) return env->codec;
    nnm_codec c = (nnm_codec)s->result_codec;
    if (c == NNM_CODEC_LZ4) return NNM_CODEC_AUTO;
    if ((c == NNM_CODEC_F16 || c == NNM_CODEC_INT8_AFFINE) && t->dtype != NNM_DT_F32)
        return NNM_CODEC_AUTO;
    return c;
}

nnm_err nnm_coord_serve(const nnm_coord_env *env, const nnm_link_msg *msg, nnm_diag *diag)
{
    const nnm_frame *f = msg->frame;
    if (f == NULL) return NNM_EINVAL;
    if (f->hdr.type == NNM_FRAME_TENSOR) {
        for (size_t i = 0; i < f->u.tensor.ntensors && i < msg->ntensors; i++) {
            if (f->u.tensor.tensors[i].name == NULL || strcmp(f->u.tensor.tensors[i].name, NNM_MODEL_TENSOR))
                continue;
            const nnm_tensor *t = &msg->tensors[i];
            if (t->dtype != NNM_DT_U8 || t->ndim != 1)
                return nnm_diag_set(diag, NNM_EFORMAT, "model from '%s' is not a uint8 vector", f->hdr.sender);
            uint8_t h[NNM_WIRE_HASH_BYTES];
            nnm_model_hash(h, t->data, t->nbytes);
            return nnm_worker_put_model(env->worker, h, t->data, t->nbytes, diag);
        }
        return nnm_diag_set(diag, NNM_EINVAL, "tensor frame from '%s' carries no model", f->hdr.sender);
    }
    if (f->hdr.type != NNM_FRAME_TASK) return nnm_diag_set(diag, NNM_EINVAL, "not a task");
    const nnm_slice_spec *s = &f->u.task.spec;
    size_t n = msg->ntensors;
    const char **names = calloc(n + 1, sizeof *names);
    if (!names) return NNM_ENOMEM;
    for (size_t i = 0; i < n; i++)
        names[i] = f->u.task.tensors[i].name ? f->u.task.tensors[i].name : "";
    nnm_task_output *outs = NULL;
    size_t n_out = 0;
    double ms = 0;
    nnm_diag d2;
    nnm_diag_clear(&d2);
    nnm_err rc = nnm_worker_run(env->worker, s, names, msg->tensors, n, &outs, &n_out, &ms, &d2);
    free(names);
    nnm_trace_entry te;
    memset(&te, 0, sizeof te);
    snprintf(te.node, sizeof te.node, "%s", env->self);
    te.node_begin = s->node_begin;
    te.node_end = s->node_end;
    te.compute_us = (uint64_t)(ms * 1e3);
    if (rc != NNM_OK) {
        nnm_diag_set(diag, rc, "task from '%s' failed: %s", f->hdr.sender, d2.msg);
        send_status(env, f, rc, NULL, 0, &te, NULL);
        return rc;
    }
    if (env->corrupt_results)
        for (size_t i = 0; i < n_out; i++) corrupt(&outs[i].t);
    nnm_wire_tensor *wt = calloc(n_out + 1, sizeof *wt);
    nnm_err rc2 = wt ? NNM_OK : NNM_ENOMEM;
    for (size_t i = 0; rc2 == NNM_OK && i < n_out; i++) {
        rc2 = nnm_wire_tensor_encode(&wt[i], &outs[i].t, answer_codec(env, s, &outs[i].t), diag);
        wt[i].name = outs[i].name;
    }
    /* How long the task sat here beyond its compute (queue, decode, encode), so the
     * coordinator can tell the network's share of its round trip (docs/PROTOCOL.md). */
    if (msg->arrived_ms > 0) {
        double kept = now_ms() - msg->arrived_ms - ms;
        te.wait_us = kept > 0 ? (uint64_t)(kept * 1e3) : 0;
    }
    if (rc2 == NNM_OK) rc2 = send_status(env, f, NNM_OK, wt, n_out, &te, diag);
    else send_status(env, f, rc2, NULL, 0, &te, NULL);
    for (size_t i = 0; wt && i < n_out; i++) nnm_wire_tensor_cleanup(&wt[i]);
    free(wt);
    nnm_task_outputs_free(outs, n_out);
    return rc2;
}
