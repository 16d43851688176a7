/* scheduler/coord.c — running a plan across the mesh, spot-checking peers' results, and
 * serving tasks (see nnmesh/coord.h). One thread: the coordinator drives the link itself
 * while it waits and hands every frame that is not one of its results to env->dispatch. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "coord_int.h"

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
    /* Forwarding (see run_once): */
    int stage;
    uint64_t id;               /* task id, chosen when the plan is laid out */
    int check;                 /* drawn for a spot check (never routed) */
    int placed;                /* all its outputs are in the store */
    int routed;                /* its TASK has the routed form */
    struct fwd *fw;            /* pieces of its outputs for the next stage's parts */
    size_t nfw;
    nnm_task_await *aw;        /* inputs that come as pieces from the previous stage */
    size_t naw;
    const char **ret;          /* outputs it returns (routed: the others are forwarded only) */
    size_t nret;
} job;

/* A piece of producer output `name` for consumer job `to`: box [begin, end) of the producer's
 * output ([vbegin, vend) of the whole value), written at `at` of the consumer's input. */
typedef struct fwd {
    int to;
    const char *name;
    int ndim;
    uint64_t begin[NNM_MAX_DIMS], end[NNM_MAX_DIMS], vbegin[NNM_MAX_DIMS], vend[NNM_MAX_DIMS];
    uint64_t at[NNM_MAX_DIMS];
} fwd;

static int job_awaits(const job *j, const char *name)
{
    for (size_t i = 0; i < j->naw; i++)
        if (!strcmp(j->aw[i].name, name)) return 1;
    return 0;
}

static int job_returns(const job *j, const char *name)
{
    if (!j->routed) return 1;
    for (size_t i = 0; i < j->nret; i++)
        if (!strcmp(j->ret[i], name)) return 1;
    return 0;
}

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

/* Crops the part's inputs from the store, in the slice's input order; with skip_awaited,
 * only those that do not come as pieces. *n gets how many. */
static nnm_err job_inputs(job *j, store *st, nnm_tensor *in, const char **names, int skip_awaited,
                          int *n, nnm_diag *diag)
{
    int ni = nnm_graph_input_count(j->slice);
    *n = 0;
    for (int k = 0; k < ni; k++) {
        nnm_io_info io;
        nnm_region r;
        nnm_graph_input_get(j->slice, k, &io);
        nnm_graph_input_region(j->slice, k, &r);
        if (skip_awaited && job_awaits(j, io.name)) continue;
        nnm_tensor *w = store_get(st, io.name);
        if (w == NULL)
            return nnm_diag_set(diag, NNM_ESTATE, "value '%s' is needed before it is computed", io.name);
        nnm_err rc = nnm_tensor_crop(&in[*n], w, &r);
        if (rc != NNM_OK) return nnm_diag_set(diag, rc, "cannot crop '%s' for its part", io.name);
        names[(*n)++] = io.name;
    }
    return NNM_OK;
}

/* Places a part's outputs (slice output order; entries with data NULL were not returned)
 * into the whole tensors. */
static nnm_err job_place(job *j, store *st, const nnm_tensor *outs, int n,
                         nnm_diag *diag)
{
    int no = nnm_graph_output_count(j->slice);
    if (n != no) return nnm_diag_set(diag, NNM_EFORMAT, "part on '%s' returned %d outputs, expected %d", j->node, n, no);
    for (int k = 0; k < no; k++) {
        nnm_io_info io;
        nnm_region r;
        if (outs[k].data == NULL && outs[k].nbytes == 0 && outs[k].ndim == 0) continue;
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
    if ((rc = job_inputs(j, st, in, names, 0, &ni, diag)) != NNM_OK) goto out;
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
        j->done = j->placed = rc == NNM_OK;
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
                env->log(env->ctx, NNM_COORD_LOG_INFO, msg);
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
        env->log(env->ctx, NNM_COORD_LOG_INFO, msg);
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
                         unsigned timeout_ms, nnm_coord_stats *stats, store *st,
                         const job *jobs_all, nnm_diag *diag)
{
    double t_start = now_ms();     /* the send work is serial here: the scheduler learns it */
    int shipped_now = 0;
    int ni = nnm_graph_input_count(j->slice);
    nnm_tensor *in = calloc((size_t)ni + 1, sizeof *in);
    const char **names = calloc((size_t)ni + 1, sizeof *names);
    nnm_wire_tensor *wt = calloc((size_t)ni + 1, sizeof *wt);
    nnm_err rc = NNM_ENOMEM;
    if (!in || !names || !wt) goto out;
    if ((rc = job_inputs(j, st, in, names, 1, &ni, diag)) != NNM_OK) goto out;
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
    j->task_id = j->id ? j->id : next_task_id();
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
    nnm_task_forward *tf = NULL;
    if (j->routed) {
        f.u.task.routed = 1;
        f.u.task.nawait = j->naw;
        f.u.task.await = j->aw;
        f.u.task.nreturn = j->nret;
        f.u.task.returns = j->ret;
        if (j->nfw && (tf = calloc(j->nfw, sizeof *tf)) == NULL) {
            rc = nnm_diag_set(diag, NNM_ENOMEM, "out of memory");
            goto out;
        }
        for (size_t i = 0; i < j->nfw; i++) {
            const fwd *w = &j->fw[i];
            snprintf(tf[i].node, sizeof tf[i].node, "%s", jobs_all[w->to].node);
            tf[i].task = jobs_all[w->to].id;
            tf[i].name = w->name;
            tf[i].ndim = w->ndim;
            memcpy(tf[i].begin, w->begin, sizeof w->begin);
            memcpy(tf[i].end, w->end, sizeof w->end);
            memcpy(tf[i].at, w->at, sizeof w->at);
        }
        f.u.task.nforward = j->nfw;
        f.u.task.forward = tf;
    }
    j->sent_ms = now_ms();
    j->deadline_ms = j->sent_ms + timeout_ms;
    rc = nnm_link_send(env->link, j->node, &f, diag);
    j->posted_ms = now_ms();
    j->send_ms = shipped_now ? -1 : j->posted_ms - t_start;
    if (rc == NNM_OK && stats) {
        stats->tasks_sent++;
        stats->tasks_routed += j->routed != 0;
    }
    free(tf);
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
    int no = nnm_graph_output_count(j->slice), want = 0;
    for (int k = 0; k < no; k++) {
        nnm_io_info io;
        nnm_graph_output_get(j->slice, k, &io);
        want += job_returns(j, io.name);
    }
    if ((size_t)want != m->ntensors)
        return nnm_diag_set(diag, NNM_EFORMAT, "part on '%s' returned %zu outputs, expected %d",
                            j->node, m->ntensors, want);
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
        if (!job_returns(j, io.name)) continue;     /* forwarded only: stays empty */
        int found = -1;
        for (size_t i = 0; i < m->ntensors && found < 0; i++) {
            const char *nm = f->u.result.tensors[i].name;
            if (nm == NULL || nm[0] == '\0') found = -2;
            else if (!strcmp(nm, io.name)) found = (int)i;
        }
        if (found == -2) found = (size_t)k < m->ntensors ? k : -1;   /* unnamed: by position */
        if (found < 0) {
            rc = nnm_diag_set(diag, NNM_EFORMAT, "part on '%s' returned no output '%s'", j->node, io.name);
        } else {
            ord[k] = m->tensors[found];
            codecs[k] = f->u.result.tensors[found].codec;
            if (stats && (unsigned)codecs[k] < NNM_CODEC__COUNT)
                stats->result_codecs[codecs[k]]++;
        }
    }
    if (rc == NNM_OK && j->check) {
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
    if (rc == NNM_OK) {
        j->done = 1;
        j->placed = j->nret == (size_t)no || !j->routed;
    }
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
        env->log(env->ctx, NNM_COORD_LOG_ERROR, msg);
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
        env->log(env->ctx, NNM_COORD_LOG_INFO, msg);
    }
}

/* ---- forwarding: which stage feeds the next directly -------------------------------------- */

/* The run's parts, all stages, in stage order. */
typedef struct run {
    const nnm_coord_env *env;
    const nnm_graph *g;
    const uint8_t *hash;
    nnm_coord_stats *stats;
    store st;
    job *jobs;
    int nj;
    unsigned tmo;
} run;

static int slice_has_output(const nnm_graph *slice, const char *name, int *k)
{
    for (int i = 0; i < nnm_graph_output_count(slice); i++) {
        nnm_io_info io;
        nnm_graph_output_get(slice, i, &io);
        if (!strcmp(io.name, name)) {
            if (k) *k = i;
            return 1;
        }
    }
    return 0;
}

static int slice_input_index(const nnm_graph *slice, const char *name)
{
    for (int i = 0; i < nnm_graph_input_count(slice); i++) {
        nnm_io_info io;
        nnm_graph_input_get(slice, i, &io);
        if (!strcmp(io.name, name)) return i;
    }
    return -1;
}

static int graph_output(const nnm_graph *g, const char *name)
{
    for (int i = 0; i < nnm_graph_output_count(g); i++) {
        nnm_io_info io;
        nnm_graph_output_get(g, i, &io);
        if (!strcmp(io.name, name)) return 1;
    }
    return 0;
}

/* The stage whose parts produce value name, or -1 (a graph input). */
static int producer_stage(const run *r, const char *name)
{
    for (int i = 0; i < r->nj; i++)
        if (slice_has_output(r->jobs[i].slice, name, NULL)) return r->jobs[i].stage;
    return -1;
}

/* A part that may take part in forwarding: on a peer that is reachable, trusted now, not
 * drawn for a spot check (a checked part's inputs and outputs must pass through here). */
static int routable(const run *r, const job *j)
{
    const nnm_coord_env *env = r->env;
    return strcmp(j->node, env->self) != 0 && !j->check &&
           !nnm_coord_peer_excluded(r->stats, j->node) && !nnm_coord_peer_suspect(r->stats, j->node) &&
           !(env->peer_alive && !env->peer_alive(env->ctx, j->node));
}

/* Adds the piece of producer p's output k that consumer q needs as its input ki, which it
 * awaits as a: to p's forwards, and to a's pieces, bound to p's node. */
static nnm_err add_piece(run *r, job *p, int k, int q, int ki, nnm_task_await *a, nnm_diag *diag)
{
    nnm_io_info io;
    nnm_region rp, rq;
    nnm_graph_output_get(p->slice, k, &io);
    nnm_graph_output_region(p->slice, k, &rp);
    nnm_graph_input_region(r->jobs[q].slice, ki, &rq);
    const nnm_tensor *whole = store_get(&r->st, io.name);
    if (whole == NULL) return nnm_diag_set(diag, NNM_ESTATE, "no room for '%s'", io.name);
    fwd w;
    memset(&w, 0, sizeof w);
    w.to = q;
    w.name = io.name;
    w.ndim = whole->ndim;
    for (int d = 0; d < whole->ndim; d++) {
        uint64_t lo = 0, hi = (uint64_t)whole->shape[d];
        if (rp.axis == d) { lo = lo > (uint64_t)rp.begin ? lo : (uint64_t)rp.begin; hi = hi < (uint64_t)rp.end ? hi : (uint64_t)rp.end; }
        if (rq.axis == d) { lo = lo > (uint64_t)rq.begin ? lo : (uint64_t)rq.begin; hi = hi < (uint64_t)rq.end ? hi : (uint64_t)rq.end; }
        if (lo >= hi) return NNM_OK;               /* this producer has none of it */
        w.vbegin[d] = lo;
        w.vend[d] = hi;
        uint64_t po = rp.axis == d ? (uint64_t)rp.begin : 0, qo = rq.axis == d ? (uint64_t)rq.begin : 0;
        w.begin[d] = lo - po;
        w.end[d] = hi - po;
        w.at[d] = lo - qo;
    }
    fwd *nw = realloc(p->fw, (p->nfw + 1) * sizeof *nw);
    if (nw == NULL) return nnm_diag_set(diag, NNM_ENOMEM, "out of memory");
    p->fw = nw;
    p->fw[p->nfw++] = w;
    /* a->pieces is this run's own allocation (const only in the frame's view). */
    nnm_await_piece *np = realloc((void *)a->pieces, (a->npiece + 1) * sizeof *np);
    if (np == NULL) return nnm_diag_set(diag, NNM_ENOMEM, "out of memory");
    a->pieces = np;
    nnm_await_piece *e = &np[a->npiece++];
    memset(e, 0, sizeof *e);
    snprintf(e->from, sizeof e->from, "%s", p->node);
    for (int d = 0; d < w.ndim; d++) {
        e->at[d] = w.at[d];
        e->shape[d] = w.end[d] - w.begin[d];
    }
    return NNM_OK;
}

/* Decides, before anything is sent, which stages the previous one feeds directly: stage s
 * is fed when it and stage s-1 run entirely on routable peers and every input of s comes
 * from s-1, from the request, or from a stage that is complete here by the time s is sent
 * (one before the last stage that waits). Fills the parts' awaits, forwards and returns. */
static nnm_err plan_routes(run *r, const nnm_plan *plan, int *fed, nnm_diag *diag)
{
    int first = 0, last_wait = 0;
    fed[0] = 0;
    for (int s = 0; s < plan->n_stages; s++) {
        int n = plan->stages[s].n_parts;
        if (s > 0) {
            int ok = r->env->forward;
            for (int p = first - plan->stages[s - 1].n_parts; ok && p < first + n; p++)
                ok = routable(r, &r->jobs[p]);
            for (int p = first; ok && p < first + n; p++) {
                const nnm_graph *sl = r->jobs[p].slice;
                for (int i = 0; ok && i < nnm_graph_input_count(sl); i++) {
                    nnm_io_info io;
                    nnm_graph_input_get(sl, i, &io);
                    int ps = producer_stage(r, io.name);
                    ok = ps == s - 1 || ps < last_wait;
                }
            }
            fed[s] = ok;
            if (!ok) last_wait = s;
        }
        first += n;
    }
    /* Awaits and pieces. */
    for (int q = 0; q < r->nj; q++) {
        job *c = &r->jobs[q];
        if (!fed[c->stage]) continue;
        for (int i = 0; i < nnm_graph_input_count(c->slice); i++) {
            nnm_io_info io;
            nnm_graph_input_get(c->slice, i, &io);
            if (producer_stage(r, io.name) != c->stage - 1) continue;
            nnm_task_await *na = realloc(c->aw, (c->naw + 1) * sizeof *na);
            if (na == NULL) return nnm_diag_set(diag, NNM_ENOMEM, "out of memory");
            c->aw = na;
            nnm_task_await *a = &c->aw[c->naw++];
            memset(a, 0, sizeof *a);
            a->name = io.name;
            a->dtype = (uint8_t)io.dtype;
            a->ndim = io.ndim;
            for (int d = 0; d < io.ndim; d++) a->shape[d] = (uint64_t)io.shape[d];
            c->routed = 1;
            for (int p = 0; p < r->nj; p++) {
                int k;
                if (r->jobs[p].stage == c->stage - 1 && slice_has_output(r->jobs[p].slice, io.name, &k)) {
                    nnm_err rc = add_piece(r, &r->jobs[p], k, q, i, a, diag);
                    if (rc != NNM_OK) return rc;
                }
            }
        }
    }
    /* Returns of every routed part: an output comes back unless every part that reads it
     * awaits it as pieces. */
    for (int p = 0; p < r->nj; p++) {
        job *j = &r->jobs[p];
        if (j->nfw == 0 && j->naw == 0) continue;
        int no = nnm_graph_output_count(j->slice);
        if ((j->ret = calloc((size_t)no + 1, sizeof *j->ret)) == NULL)
            return nnm_diag_set(diag, NNM_ENOMEM, "out of memory");
        for (int k = 0; k < no; k++) {
            nnm_io_info io;
            nnm_graph_output_get(j->slice, k, &io);
            int needed = graph_output(r->g, io.name);
            for (int q = 0; q < r->nj && !needed; q++)
                needed = slice_input_index(r->jobs[q].slice, io.name) >= 0 &&
                         !job_awaits(&r->jobs[q], io.name);
            if (needed) j->ret[j->nret++] = io.name;
        }
        j->routed = 1;
    }
    return NNM_OK;
}

/* Whether value name is whole in the store: a request input, or every part producing it
 * placed it. */
static int have_value(const run *r, const char *name)
{
    for (int i = 0; i < r->nj; i++) {
        const job *j = &r->jobs[i];
        if (!slice_has_output(j->slice, name, NULL)) continue;
        if (!(j->placed || (j->done && job_returns(j, name)))) return 0;
    }
    return 1;
}

static void bump_consumers(run *r, job *p)
{
    double until = now_ms() + r->tmo;
    for (size_t i = 0; i < p->nfw; i++) {
        job *c = &r->jobs[p->fw[i].to];
        if (c->deadline_ms < until) c->deadline_ms = until;
    }
}

/* p ran here: its consumers (only = -1: all; else that job) still wait for its pieces,
 * which now come from the store. */
static void send_pieces_from_store(run *r, job *p, int only)
{
    for (size_t i = 0; i < p->nfw; i++) {
        const fwd *w = &p->fw[i];
        job *c = &r->jobs[w->to];
        if (only >= 0 && w->to != only) continue;
        if (c->done || c->task_id == 0) continue;      /* not sent yet: it gets them then */
        const nnm_tensor *whole = store_get(&r->st, w->name);
        nnm_diag d;
        nnm_diag_clear(&d);
        if (whole == NULL ||
            coord__send_piece(r->env, r->env->self, c->node, c->id, w->name, whole, w->vbegin,
                              w->vend, w->at, edge_codec(r->env, c->pp, w->name), &d) != NNM_OK) {
            /* The consumer's deadline runs out and it runs here. */
            continue;
        }
    }
    bump_consumers(r, p);
}

/* Runs job j here, first running here whatever produces an input the store lacks (a
 * forwarded value whose producer or consumer failed), and sends j's pieces on if it has
 * routed consumers. */
static nnm_err run_here(run *r, job *j, int depth, nnm_diag *diag)
{
    if (depth > r->nj) return nnm_diag_set(diag, NNM_ESTATE, "forwarding loop");
    for (int i = 0; i < nnm_graph_input_count(j->slice); i++) {
        nnm_io_info io;
        nnm_graph_input_get(j->slice, i, &io);
        if (have_value(r, io.name)) continue;
        for (int p = 0; p < r->nj; p++) {
            job *q = &r->jobs[p];
            if (q->placed || !slice_has_output(q->slice, io.name, NULL)) continue;
            if (!q->done && q->task_id && r->stats) r->stats->tasks_retried++;
            q->task_id = 0;                 /* a late answer is discarded */
            nnm_err rc = run_here(r, q, depth + 1, diag);
            if (rc != NNM_OK) return rc;
        }
    }
    nnm_err rc = run_local(r->env, r->g, r->hash, j, &r->st, diag);
    if (rc != NNM_OK) return rc;
    if (r->stats) r->stats->tasks_local++;
    if (j->nfw) send_pieces_from_store(r, j, -1);
    return NNM_OK;
}

/* A part that failed on its peer (timeout, departure, error): it runs here. */
static nnm_err take_over(run *r, job *j, nnm_diag *diag)
{
    j->task_id = 0;     /* a late answer is now unknown: discarded */
    if (r->stats) r->stats->tasks_retried++;
    return run_here(r, j, 0, diag);
}

/* Whether a producer of one of j's awaited inputs has not finished. */
static int waits_for_producer(const run *r, const job *j)
{
    for (size_t a = 0; a < j->naw; a++)
        for (int p = 0; p < r->nj; p++)
            if (!r->jobs[p].done && slice_has_output(r->jobs[p].slice, j->aw[a].name, NULL)) return 1;
    return 0;
}

/* Waits until every part sent so far has finished (or was run here). */
static nnm_err wait_parts(run *r, double t0, unsigned deadline_ms, int *redo, nnm_diag *diag)
{
    const nnm_coord_env *env = r->env;
    nnm_coord_stats *stats = r->stats;
    nnm_err rc;
    for (;;) {
        int pending = 0;
        double now = now_ms();
        for (int p = 0; p < r->nj; p++) {
            job *j = &r->jobs[p];
            if (j->done || j->task_id == 0) continue;
            int gone = (env->peer_alive && !env->peer_alive(env->ctx, j->node)) ||
                       nnm_coord_peer_excluded(stats, j->node);
            /* A part waiting for its pieces is not late while its producers work. */
            if (!gone && (now <= j->deadline_ms || waits_for_producer(r, j))) {
                pending++;
                continue;
            }
            if (!gone) {
                suspect_peer(env, stats, j->node, r->tmo);
                /* At least this slow: the cost model learns it too. */
                if (j->naw == 0) nnm_sched_observe_slice(env->sched, j->pp, now - j->sent_ms, NULL);
            }
            if ((rc = take_over(r, j, diag)) != NNM_OK) return rc;
        }
        if (!pending) return NNM_OK;
        if (deadline_ms && now - t0 > deadline_ms)
            return nnm_diag_set(diag, NNM_ETIMEOUT, "request deadline of %u ms passed", deadline_ms);
        nnm_link_msg m;
        memset(&m, 0, sizeof m);
        nnm_diag d2;
        double asked = now_ms();
        nnm_err r2 = nnm_link_recv(env->link, &m, 20, &d2);
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
            for (int p = 0; p < r->nj && !mine; p++)
                if (!r->jobs[p].done && r->jobs[p].task_id && r->jobs[p].task_id == f->hdr.request &&
                    !strcmp(r->jobs[p].node, f->hdr.sender))
                    mine = &r->jobs[p];
            if (!mine) {
                if (stats) stats->results_late++;
                nnm_link_msg_cleanup(&m);
                continue;
            }
            nnm_diag d3;
            nnm_diag_clear(&d3);
            check chk;
            if (take_result(env, r->hash, mine, &r->st, &m, stats, &chk, &d3) != NNM_OK) {
                check_cleanup(&chk);
                /* A peer that lost a shipped slice gets it again next time. */
                if (d3.code == NNM_ENOTFOUND) ship_forget(mine->node, r->hash, mine->pp);
                /* An error or a malformed answer: the part runs here. */
                nnm_link_msg_cleanup(&m);
                if ((rc = take_over(r, mine, diag)) != NNM_OK) return rc;
                continue;
            }
            nnm_link_msg_cleanup(&m);
            bump_consumers(r, mine);
            if (chk.ran && chk.mismatch) {
                *redo = caught(env, stats, r->jobs, r->nj, mine, &chk, NULL, 0);
                check_cleanup(&chk);
                if (*redo)
                    return nnm_diag_set(diag, NNM_ESTATE, "a peer was caught returning wrong "
                                        "results: the request runs again without it");
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
                    /* A routed part's round trip includes its wait for pieces: not an
                     * overhead sample. */
                    if (mine->naw == 0)
                        nnm_sched_observe_part(env->sched, mine->pp, rt, mine->compute_ms,
                                               mine->send_ms, NULL);
                }
            }
            continue;
        }
        if (env->dispatch) env->dispatch(env->ctx, &m);
        else nnm_link_msg_cleanup(&m);
    }
}

static void run_free(run *r)
{
    for (int i = 0; r->jobs && i < r->nj; i++) {
        nnm_graph_free(r->jobs[i].slice);
        free(r->jobs[i].fw);
        for (size_t a = 0; a < r->jobs[i].naw; a++) free((void *)r->jobs[i].aw[a].pieces);
        free(r->jobs[i].aw);
        free(r->jobs[i].ret);
    }
    free(r->jobs);
    store_free(&r->st);
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
    run r;
    memset(&r, 0, sizeof r);
    r.env = env;
    r.g = g;
    r.hash = hash;
    r.stats = stats;
    r.tmo = env->task_timeout_ms ? env->task_timeout_ms : 10000;
    nnm_plan *plan = NULL;
    nnm_trace_entry *tr = NULL;
    int *fed = NULL;
    double tp = now_ms();
    nnm_err rc = nnm_sched_plan(env->sched, g, hash, plan_opts, &plan, diag);
    if (rc != NNM_OK) return rc;
    double plan_ms = now_ms() - tp;
    plan_timed(env, stats, plan_ms);
    if (env->log && plan->arm >= 0) {
        char msg[4096];
        int k = snprintf(msg, sizeof msg, "adaptive plan for %s: ",
                         env->request ? env->request : "a request");
        nnm_sched_explain(env->sched, plan, msg + k, sizeof msg - (size_t)k);
        env->log(env->ctx, NNM_COORD_LOG_DEBUG, msg);
    }
    rc = NNM_ENOMEM;
    for (int s = 0; s < plan->n_stages; s++) r.nj += plan->stages[s].n_parts;
    tr = calloc((size_t)r.nj + 1, sizeof *tr);
    r.jobs = calloc((size_t)r.nj + 1, sizeof *r.jobs);
    fed = calloc((size_t)plan->n_stages + 1, sizeof *fed);
    if (!tr || !r.jobs || !fed) goto fail;
    for (int i = 0; i < n_in; i++) {
        nnm_io_info io;
        nnm_graph_input_get(g, i, &io);
        nnm_tensor *w = store_add(&r.st, &io, diag);
        if (!w) { rc = NNM_ENOMEM; goto fail; }
        if (w->nbytes != inputs[i].nbytes || w->dtype != inputs[i].dtype) {
            rc = nnm_diag_set(diag, NNM_ESHAPE, "input '%s' has the wrong dtype or size", io.name);
            goto fail;
        }
        memcpy(w->data, inputs[i].data, w->nbytes);
    }
    /* Every part of every stage, laid out before anything is sent: a routed part's TASK
     * names the next stage's tasks. */
    for (int s = 0, i = 0; s < plan->n_stages; s++) {
        const nnm_plan_stage *stg = &plan->stages[s];
        for (int p = 0; p < stg->n_parts; p++, i++) {
            job *j = &r.jobs[i];
            j->pp = &stg->parts[p];
            j->stage = s;
            snprintf(j->node, sizeof j->node, "%s", j->pp->node);
            if ((rc = nnm_graph_slice(&j->slice, g, j->pp->node_begin, j->pp->node_end,
                                      &j->pp->part, diag)) != NNM_OK)
                goto fail;
            if ((rc = store_prepare(&r.st, g, j->pp->node_begin, j->pp->node_end, diag)) != NNM_OK)
                goto fail;
            if (strcmp(j->node, env->self) != 0) {
                j->id = next_task_id();
                j->check = draw_check(env->spot_check);
            }
        }
    }
    if ((rc = plan_routes(&r, plan, fed, diag)) != NNM_OK) goto fail;
    for (int s = 0, first = 0; s < plan->n_stages; first += plan->stages[s].n_parts, s++) {
        int n = plan->stages[s].n_parts;
        /* A stage fed through here needs the earlier ones finished. */
        if (!fed[s] && (rc = wait_parts(&r, t0, deadline_ms, redo, diag)) != NNM_OK) goto fail;
        /* Remote parts first, so they compute while the coordinator runs its own. */
        for (int p = first; p < first + n; p++) {
            job *j = &r.jobs[p];
            j->wait_us = (uint64_t)((now_ms() - t0) * 1e3);
            if (!strcmp(j->node, env->self)) continue;
            if (!j->routed &&
                (nnm_coord_peer_excluded(stats, j->node) || nnm_coord_peer_suspect(stats, j->node))) {
                /* Caught returning wrong results, or not answering: its parts run here. */
                snprintf(j->node, sizeof j->node, "%s", env->self);
                continue;
            }
            nnm_diag d2;
            nnm_diag_clear(&d2);
            if (send_task(env, hash, j, 0, r.tmo, stats, &r.st, r.jobs, &d2) == NNM_OK) {
                /* Its producers that already ran here send their pieces now. */
                for (int q = 0; j->naw && q < r.nj; q++)
                    if (r.jobs[q].local && r.jobs[q].nfw) send_pieces_from_store(&r, &r.jobs[q], p);
            } else {
                /* Could not even send (peer unknown, no session): run it here, after its
                 * forwarded inputs if it had any. */
                j->task_id = 0;
                if (stats) stats->tasks_retried++;
                if (j->naw == 0) {
                    snprintf(j->node, sizeof j->node, "%s", env->self);
                } else if ((rc = run_here(&r, j, 0, diag)) != NNM_OK) {
                    goto fail;
                }
            }
        }
        for (int p = first; p < first + n; p++) {
            job *j = &r.jobs[p];
            if (strcmp(j->node, env->self) != 0 || j->done) continue;
            if ((rc = run_here(&r, j, 0, diag)) != NNM_OK) goto fail;
            /* The coordinator's own parts refine its speed too, so a coordinator that gets
             * loaded learns it (and plans around itself) like any peer. A part moved here
             * from a peer is not the peer's time. */
            if (!strcmp(j->pp->node, env->self))
                nnm_sched_observe_slice(env->sched, j->pp, j->compute_ms > 0 ? j->compute_ms : 0.01, NULL);
        }
    }
    if ((rc = wait_parts(&r, t0, deadline_ms, redo, diag)) != NNM_OK) goto fail;
    size_t ntr = 0;
    for (int p = 0; p < r.nj; p++) {
        job *j = &r.jobs[p];
        nnm_trace_entry *e = &tr[ntr++];
        snprintf(e->node, sizeof e->node, "%s", j->node);
        e->node_begin = (uint32_t)j->pp->node_begin;
        e->node_end = (uint32_t)j->pp->node_end;
        e->compute_us = (uint64_t)(j->compute_ms * 1e3);
        e->transfer_us = j->local ? 0 : j->transfer_us;
        e->wait_us = j->wait_us;
    }
    for (int i = 0; i < n_out; i++) {
        nnm_io_info io;
        nnm_graph_output_get(g, i, &io);
        nnm_tensor *w = store_get(&r.st, io.name);
        if (!w || !have_value(&r, io.name)) {
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
    run_free(&r);
    free(fed);
    if (trace) { *trace = tr; tr = NULL; }
    if (n_trace) *n_trace = ntr;
    free(tr);
    return NNM_OK;
fail:
    for (int i = 0; i < n_out; i++) nnm_tensor_cleanup(&outputs[i]);
    nnm_plan_free(plan);
    run_free(&r);
    free(fed);
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

/* Sends the pieces a routed TASK asks for: each forward's box of the output of that name. */
static nnm_err send_forwards(const nnm_coord_env *env, const nnm_frame *f,
                             const nnm_task_output *outs, size_t n_out, nnm_diag *diag)
{
    for (size_t i = 0; i < f->u.task.nforward; i++) {
        const nnm_task_forward *e = &f->u.task.forward[i];
        const nnm_tensor *t = NULL;
        for (size_t k = 0; k < n_out && !t; k++)
            if (!strcmp(outs[k].name, e->name)) t = &outs[k].t;
        if (t == NULL)
            return nnm_diag_set(diag, NNM_EFORMAT, "forward of '%s': the task has no such output", e->name);
        if (t->ndim != e->ndim)
            return nnm_diag_set(diag, NNM_ESHAPE, "forward of '%s': rank %d, the output has %d",
                                e->name, e->ndim, t->ndim);
        nnm_err rc = coord__send_piece(env, f->hdr.sender, e->node, e->task, e->name, t,
                                       e->begin, e->end, e->at, answer_codec(env, &f->u.task.spec, t),
                                       diag);
        if (rc != NNM_OK) return rc;
    }
    return NNM_OK;
}

nnm_err coord__run_task(const nnm_coord_env *env, const nnm_frame *f, const char *const *names,
                        const nnm_tensor *in, size_t n, double arrived_ms, nnm_diag *diag)
{
    const nnm_slice_spec *s = &f->u.task.spec;
    nnm_task_output *outs = NULL;
    size_t n_out = 0;
    double ms = 0;
    nnm_diag d2;
    nnm_diag_clear(&d2);
    nnm_err rc = nnm_worker_run(env->worker, s, (const char **)names, in, n, &outs, &n_out, &ms, &d2);
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
    /* Pieces first: the next stage waits for them, the coordinator only for the result. A
     * piece that cannot be sent fails the task, so the coordinator re-runs it and sends the
     * pieces itself. */
    nnm_err rc2 = f->u.task.routed ? send_forwards(env, f, outs, n_out, diag) : NNM_OK;
    nnm_wire_tensor *wt = calloc(n_out + 1, sizeof *wt);
    size_t nw = 0;
    if (rc2 == NNM_OK && wt == NULL) rc2 = nnm_diag_set(diag, NNM_ENOMEM, "out of memory");
    for (size_t i = 0; rc2 == NNM_OK && i < n_out; i++) {
        if (f->u.task.routed) {
            /* A routed task returns only what the coordinator asked for. */
            int asked = 0;
            for (size_t r = 0; r < f->u.task.nreturn && !asked; r++)
                asked = !strcmp(f->u.task.returns[r], outs[i].name);
            if (!asked) continue;
        }
        rc2 = nnm_wire_tensor_encode(&wt[nw], &outs[i].t, answer_codec(env, s, &outs[i].t), diag);
        wt[nw++].name = outs[i].name;
    }
    /* How long the task sat here beyond its compute (queue, waiting for pieces, decode,
     * encode), so the coordinator can tell the network's share of its round trip
     * (docs/PROTOCOL.md). */
    if (arrived_ms > 0) {
        double kept = now_ms() - arrived_ms - ms;
        te.wait_us = kept > 0 ? (uint64_t)(kept * 1e3) : 0;
    }
    if (rc2 == NNM_OK) rc2 = send_status(env, f, NNM_OK, wt, nw, &te, diag);
    else send_status(env, f, rc2, NULL, 0, &te, NULL);
    for (size_t i = 0; wt && i < nw; i++) nnm_wire_tensor_cleanup(&wt[i]);
    free(wt);
    nnm_task_outputs_free(outs, n_out);
    return rc2;
}

nnm_err coord__send_piece(const nnm_coord_env *env, const char *coord, const char *node,
                          uint64_t task, const char *name, const nnm_tensor *t,
                          const uint64_t *begin, const uint64_t *end, const uint64_t *at,
                          nnm_codec codec, nnm_diag *diag)
{
    nnm_tensor piece;
    nnm_err rc = coord__box_crop(&piece, t, begin, end, diag);
    if (rc != NNM_OK) return rc;
    if (!strcmp(node, env->self)) {
        /* This node's own next part: no need for the broker. */
        rc = coord__take_piece(env, env->self, coord, task, name, at, &piece, diag);
    } else {
        nnm_wire_tensor wt;
        if ((rc = nnm_wire_tensor_encode(&wt, &piece, codec, diag)) == NNM_OK) {
            nnm_piece_at pa;
            memset(&pa, 0, sizeof pa);
            memcpy(pa.v, at, (size_t)t->ndim * sizeof *at);
            wt.name = name;
            nnm_frame pf;
            memset(&pf, 0, sizeof pf);
            pf.hdr.type = NNM_FRAME_TENSOR;
            pf.hdr.request = task;
            pf.u.tensor.ntensors = 1;
            pf.u.tensor.tensors = &wt;
            pf.u.tensor.piece = 1;
            snprintf(pf.u.tensor.coord, sizeof pf.u.tensor.coord, "%s", coord);
            pf.u.tensor.at = &pa;
            rc = nnm_link_send(env->link, node, &pf, diag);
            nnm_wire_tensor_cleanup(&wt);
        }
    }
    nnm_tensor_cleanup(&piece);
    if (rc == NNM_OK && env->inbox) coord__inbox_sent(env->inbox);
    return rc;
}

nnm_err nnm_coord_serve(const nnm_coord_env *env, nnm_link_msg *msg, nnm_diag *diag)
{
    const nnm_frame *f = msg->frame;
    if (f == NULL) return NNM_EINVAL;
    if (f->hdr.type == NNM_FRAME_TENSOR && f->u.tensor.piece) return coord__serve_piece(env, msg, diag);
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
    if (f->u.task.routed && f->u.task.nawait > 0) return coord__serve_routed(env, msg, diag);
    size_t n = msg->ntensors;
    const char **names = calloc(n + 1, sizeof *names);
    if (!names) return NNM_ENOMEM;
    for (size_t i = 0; i < n; i++)
        names[i] = f->u.task.tensors[i].name ? f->u.task.tensors[i].name : "";
    nnm_err rc = coord__run_task(env, f, names, msg->tensors, n, msg->arrived_ms, diag);
    free(names);
    return rc;
}
