/* scheduler/route.c — the worker side of stage-to-stage forwarding (see nnmesh/coord.h and
 * docs/PROTOCOL.md, "Forwarded inputs"): routed TASKs that wait here for their input pieces,
 * pieces that came before their TASK, running a task once its inputs are whole, and sending
 * its outputs on as pieces to the next stage's nodes. Everything runs on the node's poll
 * thread; the inbox has no lock of its own. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "coord_int.h"

static double mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* ---- boxes --------------------------------------------------------------------------- */

static void box_rec(uint8_t *dst, const int64_t *dshape, const uint64_t *at, const uint8_t *src,
                    const int64_t *sshape, const uint64_t *begin, const uint64_t *end, int ndim,
                    int d, size_t es, size_t doff, size_t soff)
{
    if (d == ndim - 1) {
        memcpy(dst + (doff * (size_t)dshape[d] + at[d]) * es,
               src + (soff * (size_t)sshape[d] + begin[d]) * es, (size_t)(end[d] - begin[d]) * es);
        return;
    }
    for (uint64_t i = 0; i < end[d] - begin[d]; i++)
        box_rec(dst, dshape, at, src, sshape, begin, end, ndim, d + 1, es,
                doff * (size_t)dshape[d] + at[d] + i, soff * (size_t)sshape[d] + begin[d] + i);
}

nnm_err coord__box_copy(nnm_tensor *dst, const uint64_t *at, const nnm_tensor *src,
                        const uint64_t *begin, const uint64_t *end, nnm_diag *diag)
{
    if (dst->dtype != src->dtype || dst->ndim != src->ndim || dst->ndim < 1)
        return nnm_diag_set(diag, NNM_ESHAPE, "piece has another dtype or rank than its tensor");
    for (int d = 0; d < dst->ndim; d++) {
        if (begin[d] >= end[d] || end[d] > (uint64_t)src->shape[d] ||
            at[d] > (uint64_t)dst->shape[d] || end[d] - begin[d] > (uint64_t)dst->shape[d] - at[d])
            return nnm_diag_set(diag, NNM_ESHAPE, "piece box does not fit along axis %d", d);
    }
    box_rec(dst->data, dst->shape, at, src->data, src->shape, begin, end, dst->ndim, 0,
            nnm_dtype_size(dst->dtype), 0, 0);
    return NNM_OK;
}

nnm_err coord__box_crop(nnm_tensor *out, const nnm_tensor *src, const uint64_t *begin,
                        const uint64_t *end, nnm_diag *diag)
{
    int64_t shape[NNM_MAX_DIMS];
    uint64_t zero[NNM_MAX_DIMS] = { 0 };
    memset(out, 0, sizeof *out);
    if (src->ndim < 1) return nnm_diag_set(diag, NNM_ESHAPE, "cannot cut a piece of a scalar");
    for (int d = 0; d < src->ndim; d++) {
        if (begin[d] >= end[d] || end[d] > (uint64_t)src->shape[d])
            return nnm_diag_set(diag, NNM_ESHAPE, "piece box does not fit along axis %d", d);
        shape[d] = (int64_t)(end[d] - begin[d]);
    }
    nnm_err rc = nnm_tensor_init(out, src->dtype, src->ndim, shape);
    if (rc != NNM_OK) return nnm_diag_set(diag, rc, "out of memory");
    if ((rc = coord__box_copy(out, zero, src, begin, end, diag)) != NNM_OK) nnm_tensor_cleanup(out);
    return rc;
}

/* ---- the inbox ------------------------------------------------------------------------ */

typedef struct waiting {
    nnm_link_msg msg;              /* the TASK (moved here) */
    char coord[NNM_ID_MAX + 1];
    uint64_t task;
    nnm_tensor *in;                /* one per await, zeroed until pieces fill it */
    unsigned char **got;           /* per await, per listed piece: taken */
    size_t missing;                /* listed pieces not taken yet */
    size_t bytes;
    double since_ms;
} waiting;

typedef struct early {
    char coord[NNM_ID_MAX + 1];
    char from[NNM_ID_MAX + 1];     /* the node that sent it */
    uint64_t task;
    char *name;
    uint64_t at[NNM_MAX_DIMS];
    nnm_tensor t;
    double since_ms;
} early;

struct nnm_coord_inbox {
    size_t max_bytes, bytes;
    unsigned hold_ms;
    waiting *w[COORD_INBOX_MAX];
    size_t nw;
    early *e[COORD_INBOX_MAX];
    size_t ne;
    /* Tasks that ran or were refused lately: a piece for one is a duplicate (a producer's
     * and the coordinator's copy of it both came), not one to hold. */
    struct { char coord[NNM_ID_MAX + 1]; uint64_t task; } done[COORD_INBOX_MAX];
    unsigned ndone;
    nnm_coord_inbox_stats st;
};

nnm_err nnm_coord_inbox_new(nnm_coord_inbox **out, size_t max_bytes, unsigned hold_ms,
                            nnm_diag *diag)
{
    *out = calloc(1, sizeof **out);
    if (*out == NULL) return nnm_diag_set(diag, NNM_ENOMEM, "out of memory");
    (*out)->max_bytes = max_bytes ? max_bytes : (size_t)256 << 20;
    (*out)->hold_ms = hold_ms ? hold_ms : 30000;
    return NNM_OK;
}

static void waiting_free(waiting *w)
{
    if (w == NULL) return;
    for (size_t k = 0; w->in && k < w->msg.frame->u.task.nawait; k++) nnm_tensor_cleanup(&w->in[k]);
    for (size_t k = 0; w->got && k < w->msg.frame->u.task.nawait; k++) free(w->got[k]);
    free(w->in);
    free(w->got);
    nnm_link_msg_cleanup(&w->msg);
    free(w);
}

static void early_free(early *e)
{
    if (e == NULL) return;
    free(e->name);
    nnm_tensor_cleanup(&e->t);
    free(e);
}

void nnm_coord_inbox_free(nnm_coord_inbox *ib)
{
    if (ib == NULL) return;
    for (size_t i = 0; i < ib->nw; i++) waiting_free(ib->w[i]);
    for (size_t i = 0; i < ib->ne; i++) early_free(ib->e[i]);
    free(ib);
}

void nnm_coord_inbox_stats_get(const nnm_coord_inbox *ib, nnm_coord_inbox_stats *st)
{
    memset(st, 0, sizeof *st);
    if (ib == NULL) return;
    *st = ib->st;
    st->waiting = ib->nw;
    st->early = ib->ne;
    st->bytes = ib->bytes;
}

static void drop_waiting(nnm_coord_inbox *ib, size_t i)
{
    unsigned k = ib->ndone++ % COORD_INBOX_MAX;
    snprintf(ib->done[k].coord, sizeof ib->done[k].coord, "%s", ib->w[i]->coord);
    ib->done[k].task = ib->w[i]->task;
    ib->bytes -= ib->w[i]->bytes;
    waiting_free(ib->w[i]);
    ib->w[i] = ib->w[--ib->nw];
}

static void drop_early(nnm_coord_inbox *ib, size_t i)
{
    ib->bytes -= ib->e[i]->t.nbytes;
    early_free(ib->e[i]);
    ib->e[i] = ib->e[--ib->ne];
}

static waiting *find_waiting(nnm_coord_inbox *ib, const char *coord, uint64_t task, size_t *idx)
{
    for (size_t i = 0; i < ib->nw; i++)
        if (ib->w[i]->task == task && !strcmp(ib->w[i]->coord, coord)) {
            if (idx) *idx = i;
            return ib->w[i];
        }
    return NULL;
}

/* Answers a task that will not run with status rc (the coordinator re-runs its part). */
static void refuse(const nnm_coord_env *env, const char *coord, uint64_t task, nnm_err rc,
                   const nnm_slice_spec *s)
{
    nnm_trace_entry te;
    memset(&te, 0, sizeof te);
    snprintf(te.node, sizeof te.node, "%s", env->self);
    te.node_begin = s ? s->node_begin : 0;
    te.node_end = s ? s->node_end : 0;
    nnm_frame f;
    memset(&f, 0, sizeof f);
    f.hdr.type = NNM_FRAME_RESULT;
    f.hdr.request = task;
    f.u.result.status = (uint32_t)rc;
    f.u.result.ntrace = 1;
    f.u.result.trace = &te;
    nnm_link_send(env->link, coord, &f, NULL);
}

void nnm_coord_inbox_expire(const nnm_coord_env *env)
{
    nnm_coord_inbox *ib = env->inbox;
    if (ib == NULL) return;
    double now = mono_ms();
    for (size_t i = 0; i < ib->nw;) {
        waiting *w = ib->w[i];
        if (now - w->since_ms > ib->hold_ms) {
            refuse(env, w->coord, w->task, NNM_ETIMEOUT, &w->msg.frame->u.task.spec);
            ib->st.expired++;
            drop_waiting(ib, i);
        } else {
            i++;
        }
    }
    for (size_t i = 0; i < ib->ne;) {
        if (now - ib->e[i]->since_ms > ib->hold_ms) {
            ib->st.pieces_dropped++;
            drop_early(ib, i);
        } else {
            i++;
        }
    }
}

/* Whether node id may send pieces of w: its coordinator, or a producer of any of them. */
static int party(const waiting *w, const char *id)
{
    const nnm_frame *f = w->msg.frame;
    if (!strcmp(id, w->coord)) return 1;
    for (size_t k = 0; k < f->u.task.nawait; k++)
        for (size_t e = 0; e < f->u.task.await[k].npiece; e++)
            if (!strcmp(f->u.task.await[k].pieces[e].from, id)) return 1;
    return 0;
}

/* Writes piece t (name, at) from node `from` into w. A piece is taken only as one of the
 * pieces its await lists, from that piece's producer or from the coordinator (which stands
 * in for a producer it re-ran): pieces are bound to their producers, so a node that learns a
 * task id cannot write into another's task. Returns NNM_OK when taken or a duplicate;
 * NNM_ETRUST for a piece from a node with no part in the task (dropped: *foreign set, the
 * task waits on); else the task's parties disagree on its shape (NNM_ESHAPE): it cannot
 * run right. */
static nnm_err put_piece(waiting *w, const char *from, const char *name, const uint64_t *at,
                         const nnm_tensor *t, nnm_coord_inbox_stats *st, int *foreign,
                         nnm_diag *diag)
{
    const nnm_frame *f = w->msg.frame;
    *foreign = 0;
    int k = -1;
    for (size_t i = 0; i < f->u.task.nawait && k < 0; i++)
        if (!strcmp(f->u.task.await[i].name, name)) k = (int)i;
    const nnm_task_await *a = k >= 0 ? &f->u.task.await[k] : NULL;
    size_t e = a ? a->npiece : 0;
    if (a && t->ndim == a->ndim)
        for (e = 0; e < a->npiece; e++) {
            int same = 1;
            for (int d = 0; d < a->ndim && same; d++)
                same = a->pieces[e].at[d] == at[d] && a->pieces[e].shape[d] == (uint64_t)t->shape[d];
            if (same) break;
        }
    int listed = a && e < a->npiece;
    if (listed ? strcmp(from, a->pieces[e].from) != 0 && strcmp(from, w->coord) != 0
               : !party(w, from)) {
        *foreign = 1;
        st->pieces_foreign++;
        return nnm_diag_set(diag, NNM_ETRUST, "piece of '%s' for task %016llx of %s from '%s', "
                            "which does not produce it: dropped", name,
                            (unsigned long long)w->task, w->coord, from);
    }
    if (a == NULL) return nnm_diag_set(diag, NNM_ESHAPE, "piece of '%s': the task awaits no such input", name);
    if (!listed)
        return nnm_diag_set(diag, NNM_ESHAPE, "piece of '%s' (%d dimensions) is none of the %zu "
                            "pieces the task awaits", name, t->ndim, a->npiece);
    if (w->got[k][e]) {
        st->pieces_dup++;
        return NNM_OK;
    }
    uint64_t zero[NNM_MAX_DIMS] = { 0 }, end[NNM_MAX_DIMS];
    for (int d = 0; d < t->ndim; d++) end[d] = (uint64_t)t->shape[d];
    nnm_diag d2;
    nnm_diag_clear(&d2);
    nnm_err rc = coord__box_copy(&w->in[k], at, t, zero, end, &d2);
    if (rc != NNM_OK) return nnm_diag_set(diag, rc, "piece of '%s' does not fit it: %s", name, d2.msg);
    w->got[k][e] = 1;
    w->missing--;
    st->pieces_in++;
    return NNM_OK;
}

/* Runs waiting task i, which is complete, and drops it. */
static nnm_err run_waiting(const nnm_coord_env *env, size_t i, nnm_diag *diag)
{
    nnm_coord_inbox *ib = env->inbox;
    waiting *w = ib->w[i];
    const nnm_frame *f = w->msg.frame;
    size_t nc = w->msg.ntensors, na = f->u.task.nawait, n = nc + na;
    const char **names = calloc(n + 1, sizeof *names);
    nnm_tensor *in = calloc(n + 1, sizeof *in);
    nnm_err rc = NNM_ENOMEM;
    if (names && in) {
        for (size_t k = 0; k < nc; k++) {
            names[k] = f->u.task.tensors[k].name ? f->u.task.tensors[k].name : "";
            in[k] = w->msg.tensors[k];
        }
        for (size_t k = 0; k < na; k++) {
            names[nc + k] = f->u.task.await[k].name;
            in[nc + k] = w->in[k];
        }
        ib->st.completed++;
        rc = coord__run_task(env, f, names, in, n, w->msg.arrived_ms, diag);
    } else {
        refuse(env, w->coord, w->task, NNM_ENOMEM, &f->u.task.spec);
    }
    free(names);
    free(in);
    drop_waiting(ib, i);
    return rc;
}

nnm_err coord__take_piece(const nnm_coord_env *env, const char *from, const char *coord,
                          uint64_t task, const char *name, const uint64_t *at, nnm_tensor *t,
                          nnm_diag *diag)
{
    nnm_coord_inbox *ib = env->inbox;
    size_t i;
    waiting *w = find_waiting(ib, coord, task, &i);
    if (w != NULL) {
        int foreign;
        nnm_err rc = put_piece(w, from, name, at, t, &ib->st, &foreign, diag);
        if (rc != NNM_OK && foreign) return rc;      /* not its to send: the task waits on */
        if (rc != NNM_OK) {
            /* A piece that does not fit: the task cannot be right; the coordinator re-runs it. */
            refuse(env, w->coord, w->task, rc, &w->msg.frame->u.task.spec);
            ib->st.rejected++;
            drop_waiting(ib, i);
            return rc;
        }
        return w->missing == 0 ? run_waiting(env, i, diag) : NNM_OK;
    }
    for (unsigned k = 0; k < COORD_INBOX_MAX && k < ib->ndone; k++)
        if (ib->done[k].task == task && !strcmp(ib->done[k].coord, coord)) {
            ib->st.pieces_dup++;
            return NNM_OK;
        }
    if (ib->ne == COORD_INBOX_MAX || ib->bytes + t->nbytes > ib->max_bytes) {
        ib->st.pieces_dropped++;
        return nnm_diag_set(diag, NNM_ERANGE, "piece for task %016llx of %s dropped: %zu pieces "
                            "and %zu bytes already wait for their tasks",
                            (unsigned long long)task, coord, ib->ne, ib->bytes);
    }
    /* Whom an early piece may come from is known only when its TASK comes: until then each
     * sender holds at most a quarter of the early slots and of the bytes, so one trusted
     * node sending pieces for tasks that never come cannot crowd out the others' pieces. */
    size_t held = 0, held_bytes = 0;
    for (size_t k = 0; k < ib->ne; k++)
        if (!strcmp(ib->e[k]->from, from)) {
            held++;
            held_bytes += ib->e[k]->t.nbytes;
        }
    if (held >= COORD_INBOX_MAX / 4 || held_bytes + t->nbytes > ib->max_bytes / 4) {
        ib->st.pieces_dropped++;
        return nnm_diag_set(diag, NNM_ERANGE, "piece for task %016llx of %s dropped: its sender "
                            "'%s' already holds %zu early pieces, %zu bytes (its share: %d, %zu)",
                            (unsigned long long)task, coord, from, held, held_bytes,
                            COORD_INBOX_MAX / 4, ib->max_bytes / 4);
    }
    early *e = calloc(1, sizeof *e);
    if (e == NULL || (e->name = strdup(name)) == NULL) {
        free(e);
        return nnm_diag_set(diag, NNM_ENOMEM, "out of memory");
    }
    snprintf(e->coord, sizeof e->coord, "%s", coord);
    snprintf(e->from, sizeof e->from, "%s", from);
    e->task = task;
    memcpy(e->at, at, (size_t)t->ndim * sizeof *at);
    e->t = *t;
    memset(t, 0, sizeof *t);
    e->since_ms = mono_ms();
    ib->bytes += e->t.nbytes;
    ib->e[ib->ne++] = e;
    ib->st.pieces_early++;
    return NNM_OK;
}

nnm_err coord__serve_piece(const nnm_coord_env *env, nnm_link_msg *msg, nnm_diag *diag)
{
    const nnm_frame *f = msg->frame;
    if (env->inbox == NULL)
        return nnm_diag_set(diag, NNM_EUNSUPPORTED, "pieces from '%s': this node takes no "
                            "routed tasks", f->hdr.sender);
    nnm_coord_inbox_expire(env);
    nnm_err rc = NNM_OK;
    for (size_t i = 0; i < f->u.tensor.ntensors && i < msg->ntensors && rc == NNM_OK; i++) {
        const char *name = f->u.tensor.tensors[i].name ? f->u.tensor.tensors[i].name : "";
        rc = coord__take_piece(env, f->hdr.sender, f->u.tensor.coord, f->hdr.request, name,
                               f->u.tensor.at[i].v, &msg->tensors[i], diag);
    }
    return rc;
}

typedef struct {
    const nnm_await_piece *p;
    int ndim;
} box_ref;

static int box_cmp(const void *x, const void *y)
{
    const box_ref *a = x, *b = y;
    for (int d = 0; d < a->ndim; d++) {
        if (a->p->at[d] != b->p->at[d]) return a->p->at[d] < b->p->at[d] ? -1 : 1;
        if (a->p->shape[d] != b->p->shape[d]) return a->p->shape[d] < b->p->shape[d] ? -1 : 1;
    }
    return 0;
}

/* Whether an await lists one box twice: its task would wait for a piece that can come only
 * once, until it timed out. Sorted, so that a frame listing tens of thousands of pieces
 * costs n log n, not n^2. 1: a duplicate; -1: out of memory; 0: none. */
static int box_listed_twice(const nnm_task_await *a)
{
    if (a->npiece < 2) return 0;
    box_ref *r = malloc(a->npiece * sizeof *r);
    if (r == NULL) return -1;
    for (size_t k = 0; k < a->npiece; k++) {
        r[k].p = &a->pieces[k];
        r[k].ndim = a->ndim;
    }
    qsort(r, a->npiece, sizeof *r, box_cmp);
    int dup = 0;
    for (size_t k = 1; k < a->npiece && !dup; k++) dup = box_cmp(&r[k - 1], &r[k]) == 0;
    free(r);
    return dup;
}

nnm_err coord__serve_routed(const nnm_coord_env *env, nnm_link_msg *msg, nnm_diag *diag)
{
    const nnm_frame *f = msg->frame;
    nnm_coord_inbox *ib = env->inbox;
    const char *coord = f->hdr.sender;
    if (ib == NULL) {
        refuse(env, coord, f->hdr.request, NNM_EUNSUPPORTED, &f->u.task.spec);
        return nnm_diag_set(diag, NNM_EUNSUPPORTED, "routed task from '%s': this node takes no "
                            "routed tasks", coord);
    }
    nnm_coord_inbox_expire(env);
    size_t na = f->u.task.nawait, bytes = 0;
    for (size_t k = 0; k < na; k++) {
        size_t b = nnm_dtype_size((nnm_dtype)f->u.task.await[k].dtype);
        for (int d = 0; d < f->u.task.await[k].ndim; d++) b *= (size_t)f->u.task.await[k].shape[d];
        bytes += b;
    }
    for (size_t k = 0; k < na; k++) {
        int dup = box_listed_twice(&f->u.task.await[k]);
        if (dup == 0) continue;
        nnm_err why = dup < 0 ? NNM_ENOMEM : NNM_ESHAPE;
        ib->st.rejected++;
        refuse(env, coord, f->hdr.request, why, &f->u.task.spec);
        return nnm_diag_set(diag, why, "routed task %016llx from '%s' %s",
                            (unsigned long long)f->hdr.request, coord,
                            dup < 0 ? "refused: out of memory checking its pieces"
                                    : "lists one piece of an input twice; refused");
    }
    if (find_waiting(ib, coord, f->hdr.request, NULL) != NULL) {
        ib->st.rejected++;
        return nnm_diag_set(diag, NNM_EFORMAT, "routed task %016llx from '%s' is already waiting",
                            (unsigned long long)f->hdr.request, coord);
    }
    if (ib->nw == COORD_INBOX_MAX || ib->bytes + bytes > ib->max_bytes) {
        ib->st.rejected++;
        refuse(env, coord, f->hdr.request, NNM_ERANGE, &f->u.task.spec);
        return nnm_diag_set(diag, NNM_ERANGE, "routed task from '%s' refused: %zu tasks and %zu "
                            "bytes already wait for their inputs (limit %zu bytes)", coord,
                            ib->nw, ib->bytes, ib->max_bytes);
    }
    waiting *w = calloc(1, sizeof *w);
    if (w == NULL) {
        refuse(env, coord, f->hdr.request, NNM_ENOMEM, &f->u.task.spec);
        return nnm_diag_set(diag, NNM_ENOMEM, "out of memory");
    }
    snprintf(w->coord, sizeof w->coord, "%s", coord);
    w->task = f->hdr.request;
    w->msg = *msg;                 /* moved: freed with w from here on */
    memset(msg, 0, sizeof *msg);
    int ok = (w->in = calloc(na + 1, sizeof *w->in)) != NULL &&
             (w->got = calloc(na + 1, sizeof *w->got)) != NULL;
    for (size_t k = 0; ok && k < na; k++) {
        const nnm_task_await *a = &f->u.task.await[k];
        int64_t shape[NNM_MAX_DIMS];
        for (int d = 0; d < a->ndim; d++) shape[d] = (int64_t)a->shape[d];
        ok = nnm_tensor_init(&w->in[k], (nnm_dtype)a->dtype, a->ndim, shape) == NNM_OK &&
             (w->got[k] = calloc(a->npiece + 1, 1)) != NULL;
        w->missing += a->npiece;
    }
    if (!ok) {
        refuse(env, w->coord, w->task, NNM_ENOMEM, &f->u.task.spec);
        waiting_free(w);
        return nnm_diag_set(diag, NNM_ENOMEM, "out of memory for the inputs of a routed task");
    }
    w->bytes = bytes;
    w->since_ms = mono_ms();
    ib->bytes += bytes;
    size_t i = ib->nw;
    ib->w[ib->nw++] = w;
    ib->st.routed++;
    /* Pieces that came first. */
    for (size_t e = 0; e < ib->ne;) {
        early *p = ib->e[e];
        if (p->task != w->task || strcmp(p->coord, w->coord) != 0) {
            e++;
            continue;
        }
        nnm_diag d2;
        nnm_diag_clear(&d2);
        int foreign;
        nnm_err rc = put_piece(w, p->from, p->name, p->at, &p->t, &ib->st, &foreign, &d2);
        drop_early(ib, e);
        if (rc != NNM_OK && !foreign) {
            refuse(env, w->coord, w->task, rc, &w->msg.frame->u.task.spec);
            ib->st.rejected++;
            drop_waiting(ib, i);
            return nnm_diag_set(diag, rc, "%s", d2.msg);
        }
    }
    return w->missing == 0 ? run_waiting(env, i, diag) : NNM_OK;
}

void coord__inbox_sent(nnm_coord_inbox *ib)
{
    ib->st.pieces_out++;
}
