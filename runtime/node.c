/* runtime/node.c — a mesh member (nnmesh/node.h): signed adverts, the peer table, stats and
 * control over the secure link. The node daemon (apps/nnmeshd.c) is a thin main around it.
 *
 * Invariants: n->mu guards the peer table, the counters and the control state; it is never
 * held while publishing or receiving (Paho's callbacks take it, and publishing may wait on
 * Paho). A peer's replay state (epoch, seq) is kept for the life of the process, also after
 * it left, so a replayed old advert is refused; it advances only on a fully verified advert. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "nnmesh/node.h"
#include "nnmesh/transport.h"
#include "nnmesh/wire.h"
#include "nnmesh/crypto.h"
#include "nnmesh/capacity.h"
#include "nnmesh/coord.h"
#include "nnmesh/npy.h"

/* ---- clocks and small helpers ------------------------------------------------------------ */

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static const char *const verdict_names[NNM_ADVERT__COUNT] = {
    [NNM_ADVERT_ACCEPTED] = "accepted",           [NNM_ADVERT_MALFORMED] = "malformed",
    [NNM_ADVERT_WRONG_TOPIC] = "wrong-topic",     [NNM_ADVERT_UNTRUSTED] = "untrusted",
    [NNM_ADVERT_BAD_SIGNATURE] = "bad-signature", [NNM_ADVERT_EXPIRED] = "expired",
    [NNM_ADVERT_REPLAY] = "replay",               [NNM_ADVERT_ID_CONFLICT] = "id-conflict",
    [NNM_ADVERT_FUTURE] = "future",
};

const char *nnm_advert_verdict_name(nnm_advert_verdict v)
{
    return (unsigned)v < NNM_ADVERT__COUNT ? verdict_names[v] : "?";
}

uint64_t nnm_node_peer_get_cap(const nnm_node_peer *p, const char *name, uint64_t def)
{
    for (size_t i = 0; i < p->ncaps; i++)
        if (strcmp(p->caps[i].name, name) == 0) return p->caps[i].value;
    return def;
}

void nnm_node_tune_malloc(void)
{
    mallopt(M_MMAP_THRESHOLD, 64 << 20);
    mallopt(M_TRIM_THRESHOLD, 128 << 20);
}

/* ---- advert codec ------------------------------------------------------------------------- */

nnm_err nnm_node_advert_encode(uint8_t **out, size_t *len, const nnm_identity *self,
                               const char *id, uint64_t epoch, uint64_t seq, uint64_t expiry_ms,
                               uint64_t free_mem, uint32_t load_permille,
                               const char *const *cap_names, const uint64_t *cap_values,
                               size_t ncaps, const uint8_t (*models)[32], size_t nmodels,
                               nnm_diag *diag)
{
    *out = NULL;
    *len = 0;
    if (ncaps > NNM_NODE_CAPS_MAX || nmodels > NNM_NODE_MODELS_MAX)
        return nnm_diag_set(diag, NNM_ERANGE, "advert: %zu capacities and %zu models, at most "
                            "%d and %d", ncaps, nmodels, NNM_NODE_CAPS_MAX, NNM_NODE_MODELS_MAX);
    nnm_advert_cap caps[NNM_NODE_CAPS_MAX];
    for (size_t i = 0; i < ncaps; i++) {
        if (!nnm_id_is_valid(cap_names[i]))
            return nnm_diag_set(diag, NNM_EINVAL, "advert: bad capacity name '%s'", cap_names[i]);
        snprintf(caps[i].name, sizeof caps[i].name, "%s", cap_names[i]);
        caps[i].value = cap_values[i];
    }
    nnm_frame f;
    memset(&f, 0, sizeof f);
    f.hdr.version = NNM_WIRE_VERSION;
    f.hdr.type = NNM_FRAME_ADVERT;
    f.u.advert.epoch = epoch;
    f.u.advert.seq = seq;
    f.u.advert.expiry_ms = expiry_ms;
    snprintf(f.u.advert.version, sizeof f.u.advert.version, "%s", NNM_NODE_VERSION);
    f.u.advert.free_mem = free_mem;
    f.u.advert.load_permille = load_permille > 1000 ? 1000 : load_permille;
    f.u.advert.ncaps = ncaps;
    f.u.advert.caps = caps;
    f.u.advert.nmodels = nmodels;
    f.u.advert.models = models;
    uint8_t *body = NULL;
    size_t blen = 0;
    nnm_err rc = nnm_frame_body_encode(&body, &blen, &f, diag);
    if (rc != NNM_OK) return rc;
    size_t cap = blen + NNM_CERT_MAX + 256;
    uint8_t *buf = malloc(cap);
    if (buf == NULL) {
        free(body);
        return nnm_diag_set(diag, NNM_ENOMEM, "out of memory encoding an advert");
    }
    rc = nnm_advert_seal(buf, cap, len, self, id, NULL, 0, epoch, seq, (expiry_ms + 999) / 1000,
                         body, blen, diag);
    free(body);
    if (rc != NNM_OK) {
        free(buf);
        *len = 0;
        return rc;
    }
    *out = buf;
    return NNM_OK;
}

nnm_advert_verdict nnm_node_advert_check(nnm_node_peer *out, const char *topic_id,
                                         const uint8_t *buf, size_t len, nnm_trust *trust,
                                         void *state, uint64_t now_ms, nnm_diag *diag)
{
    nnm_signed_advert a;
    if (nnm_advert_decode(&a, buf, len, diag) != NNM_OK) return NNM_ADVERT_MALFORMED;
    if (strcmp(a.id, topic_id) != 0) {
        nnm_diag_set(diag, NNM_EFORMAT, "advert of node '%s' published on the topic of '%s'",
                     a.id, topic_id);
        return NNM_ADVERT_WRONG_TOPIC;
    }
    nnm_err rc = nnm_advert_open(&a, buf, len, trust, state, now_ms / 1000,
                                 NNM_NODE_CLOCK_TOLERANCE_S, diag);
    switch (rc) {
    case NNM_OK: break;
    case NNM_ECRYPTO: return NNM_ADVERT_BAD_SIGNATURE;
    case NNM_ETRUST: return NNM_ADVERT_UNTRUSTED;
    case NNM_ETIMEOUT: return NNM_ADVERT_EXPIRED;
    case NNM_EREPLAY: return NNM_ADVERT_REPLAY;
    default: return NNM_ADVERT_MALFORMED;
    }
    nnm_frame_header h;
    memset(&h, 0, sizeof h);
    h.version = NNM_WIRE_VERSION;
    h.type = NNM_FRAME_ADVERT;
    nnm_wire_limits lim;
    nnm_wire_limits_init(&lim);
    lim.max_frame_bytes = NNM_ADVERT_BODY_MAX;
    nnm_frame *f = NULL;
    if (nnm_frame_body_decode(&f, &h, a.body, a.body_len, &lim, diag) != NNM_OK) {
        nnm_diag_prefix(diag, "advert of '%s'", a.id);
        return NNM_ADVERT_MALFORMED;
    }
    const nnm_advert *b = &f->u.advert;
    if (b->epoch != a.epoch || b->seq != a.seq || (b->expiry_ms + 999) / 1000 != a.expiry) {
        nnm_diag_set(diag, NNM_EFORMAT, "advert of '%s': body epoch, sequence or expiry differ "
                     "from the signed ones", a.id);
        nnm_frame_free(f);
        return NNM_ADVERT_MALFORMED;
    }
    /* The sender publishes with expiry = its clock + 3 x its interval, and says the interval
     * (capacity "advert-interval-ms"), so the receiver can tell when it was sent. An advert
     * sent in this node's future means the clocks disagree (the past side is the expiry check
     * in nnm_advert_open). Senders that do not say their interval are judged by expiry only. */
    for (size_t i = 0; i < b->ncaps; i++) {
        if (strcmp(b->caps[i].name, "advert-interval-ms") != 0) continue;
        uint64_t life = b->caps[i].value <= UINT64_MAX / 3 ? 3 * b->caps[i].value : UINT64_MAX;
        uint64_t sent = b->expiry_ms > life ? b->expiry_ms - life : 0;
        if (sent > now_ms + NNM_NODE_CLOCK_TOLERANCE_S * 1000u) {
            uint64_t ahead = (sent - now_ms + 500) / 1000;   /* rounded */
            nnm_diag_set(diag, NNM_ETIMEOUT, "advert from '%s' was sent %" PRIu64 " s after "
                         "this node's clock (%" PRIu64 "), beyond the %d s clock tolerance: the "
                         "clocks are %" PRIu64 " s apart (check NTP)", a.id, ahead,
                         now_ms / 1000, NNM_NODE_CLOCK_TOLERANCE_S, ahead);
            nnm_frame_free(f);
            return NNM_ADVERT_FUTURE;
        }
        break;
    }
    memset(out, 0, sizeof *out);
    snprintf(out->id, sizeof out->id, "%s", a.id);
    memcpy(out->pk, a.pk, sizeof out->pk);
    nnm_pubkey_get_fingerprint(out->fingerprint, a.pk);
    out->epoch = b->epoch;
    out->seq = b->seq;
    out->expiry_ms = b->expiry_ms;
    snprintf(out->version, sizeof out->version, "%s", b->version);
    out->free_mem = b->free_mem;
    out->load_permille = b->load_permille;
    for (size_t i = 0; i < b->ncaps && out->ncaps < NNM_NODE_CAPS_MAX; i++) {
        snprintf(out->caps[out->ncaps].name, sizeof out->caps[0].name, "%s", b->caps[i].name);
        out->caps[out->ncaps++].value = b->caps[i].value;
    }
    for (size_t i = 0; i < b->nmodels && out->nmodels < NNM_NODE_MODELS_MAX; i++)
        memcpy(out->models[out->nmodels++], b->models[i], 32);
    out->received_ms = now_ms;
    nnm_frame_free(f);
    return NNM_ADVERT_ACCEPTED;
}

/* ---- epoch file --------------------------------------------------------------------------- */

nnm_err nnm_node_epoch_next(uint64_t *epoch, const char *path, nnm_diag *diag)
{
    uint64_t old = 0;
    FILE *f = fopen(path, "r");
    if (f != NULL) {
        char line[64] = "";
        if (fgets(line, sizeof line, f) != NULL) {
            char *e;
            errno = 0;
            unsigned long long v = strtoull(line, &e, 10);
            if (errno != 0 || e == line || (*e != '\n' && *e != '\0')) {
                fclose(f);
                return nnm_diag_set(diag, NNM_EFORMAT, "%s: not an epoch number; delete the "
                                    "file to start a new count", path);
            }
            old = v;
        }
        fclose(f);
    } else if (errno != ENOENT) {
        return nnm_diag_set(diag, NNM_EIO, "%s: %s", path, strerror(errno));
    }
    uint64_t next = old + 1;
    if (old == 0) next = (uint64_t)time(NULL);   /* no history: start above any lost one */
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return nnm_diag_set(diag, NNM_EIO, "%s: %s", tmp, strerror(errno));
    char buf[32];
    int k = snprintf(buf, sizeof buf, "%" PRIu64 "\n", next);
    if (write(fd, buf, (size_t)k) != k || fsync(fd) != 0) {
        int e = errno;
        close(fd);
        unlink(tmp);
        return nnm_diag_set(diag, NNM_EIO, "%s: %s", tmp, strerror(e));
    }
    close(fd);
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return nnm_diag_set(diag, NNM_EIO, "%s: %s", path, strerror(e));
    }
    *epoch = next;
    return NNM_OK;
}

/* ---- the node ----------------------------------------------------------------------------- */

#define SHELL_QUEUE_MAX 16
#define SHELL_REFUSED_MAX 64   /* refused shell requests awaiting their error answer */
#define REQ_QUEUE_MAX 16       /* sealed requests waiting while the node coordinates one */
#define SLICE_RING 256

/* A plain .npy request published on req/<node>/<tag> (or req/any/<tag>). */
typedef struct shreq {
    char tag[NNM_ID_MAX + 1];
    uint8_t *buf;
    size_t len;
} shreq;

typedef struct slot {
    nnm_node_peer p;
    nnm_advert_state st;       /* replay memory; kept after the peer left */
    int alive;
    double rtt_ms, mbps;       /* link estimate from this node's probes (0: none yet) */
    uint64_t probed_ms;        /* monotonic time of the last probe attempt */
} slot;

static const char *const policy_names[] = { "local", "equal", "memory", "capacity", "adaptive" };

struct nnm_node {
    const nnm_config *cfg;
    const nnm_identity *ident;
    nnm_trust *trust;
    uint8_t pk[NNM_PUBKEY_BYTES];
    char fp[NNM_FINGERPRINT_SIZE];
    char id[NNM_ID_MAX + 1], mesh[NNM_ID_MAX + 1];
    char t_advert[NNM_TOPIC_MAX], t_stats[NNM_TOPIC_MAX];
    char f_adverts[NNM_TOPIC_MAX], f_ctl[NNM_TOPIC_MAX];
    nnm_link *link;
    nnm_mqtt *mqtt;
    nnm_node_log_fn *log;
    void *log_ctx;
    unsigned remeasure_s;
    uint64_t last_busy;          /* mono ms of the last frame or shell request served */
    uint8_t (*models)[32];
    size_t nmodels;
    uint64_t start_mono;

    pthread_mutex_t mu;        /* everything below */
    nnm_node_capacity cap;
    slot *slots;
    size_t nslots;
    nnm_node_stats st;
    int started, left;
    int publish_now;           /* advert and stats due at once (control, reconnect) */
    int stats_now;             /* stats due at once (a peer joined or left) */
    uint64_t next_advert, next_measure;
    uint64_t last_log[NNM_ADVERT__COUNT + 1];   /* rate limit of refusal logs; [COUNT]: ctl */
    uint64_t suppressed[NNM_ADVERT__COUNT + 1];
    unsigned logged[NNM_ADVERT__COUNT + 1];      /* lines of a kind in its current second */
    struct {                                     /* who was named recently, per kind */
        unsigned kind;
        char id[NNM_ID_MAX + 1];
        uint64_t t;
    } log_recent[16];
    shreq shq[SHELL_QUEUE_MAX];  /* shell requests from Paho's thread, for the poll thread */
    size_t n_shq;
    uint64_t shell_dropped;
    nnm_link_stats drops_logged;  /* link drop counters at the last drop report */
    uint64_t next_drop_report;    /* mono ms: drops are reported at most every 10 s */
    /* Tags of shell requests refused on Paho's thread (queue full, too large): the poll
     * thread answers each with an error, so none goes unanswered unless this overflows too
     * (then only the counter says so). */
    char shell_refused[SHELL_REFUSED_MAX][NNM_ID_MAX + 1];
    int shell_refused_big[SHELL_REFUSED_MAX];
    size_t n_shell_refused;
    double slice_ms[SLICE_RING];  /* recent slice times, for p50/p99 */
    size_t n_slice_ms;

    /* Poll thread only (no lock): serving requests and tasks. */
    nnm_worker *worker;
    nnm_sched *sched;
    int coordinating;            /* inside nnm_coord_run: nested requests are queued */
    nnm_link_msg reqq[REQ_QUEUE_MAX];   /* sealed requests that arrived meanwhile, in order */
    size_t n_reqq;
    uint32_t adv_queue;          /* queue level in the last advert (0..NNM_QUEUE_MAX) */
    uint64_t adv_queue_ms;       /* mono ms of the last advert */
    uint64_t req_done_ms;        /* mono ms the last coordinated request ended */
    int throughput;              /* objective: stream throughput instead of latency (mu) */
    int forward;                 /* route stage outputs peer to peer ([scheduler] forward,
                                  * control verb forward on|off; mu) */
    nnm_coord_stats cst;         /* written under mu (coordinate copies it in and out) */
    nnm_coord_inbox *inbox;      /* routed tasks waiting for pieces (poll thread) */
    nnm_coord_inbox_stats ist;   /* its counters, copied under mu for the stats JSON */
    char req_label[96];          /* the request being coordinated, for log lines */
    int corrupt_results;         /* NNMESH_FAILPOINTS=corrupt-results (tests only) */
    char f_req[NNM_TOPIC_MAX], f_req_any[NNM_TOPIC_MAX + 64];
    int shell;                   /* shell ingress allowed and subscribed */
};

static void nlog(nnm_node *n, nnm_node_log_level lv, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void nlog(nnm_node *n, nnm_node_log_level lv, const char *fmt, ...)
{
    if (n->log == NULL) return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    n->log(n->log_ctx, lv, msg);
}

/* Refusals are logged at most once a second per kind (the counters count them all), so a
 * flood of forged messages cannot flood the log. Called with n->mu held. */
/* Rate limit of refusal logs: one line per (kind, sender) a second, and at most 4 lines of a
 * kind a second whoever sends, so a flood of refusals cannot flood the log while two
 * misbehaving senders are each still named. */
static int log_allowed(nnm_node *n, unsigned kind, const char *id, uint64_t *suppressed)
{
    uint64_t now = mono_ms();
    size_t oldest = 0;
    for (size_t i = 0; i < sizeof n->log_recent / sizeof n->log_recent[0]; i++) {
        if (n->log_recent[i].t != 0 && n->log_recent[i].kind == kind &&
            strcmp(n->log_recent[i].id, id) == 0 && now - n->log_recent[i].t < 1000) {
            n->suppressed[kind]++;
            return 0;
        }
        if (n->log_recent[i].t < n->log_recent[oldest].t) oldest = i;
    }
    if (n->last_log[kind] == 0 || now - n->last_log[kind] >= 1000) {
        n->last_log[kind] = now;
        n->logged[kind] = 0;
    }
    if (n->logged[kind] >= 4) {
        n->suppressed[kind]++;
        return 0;
    }
    n->logged[kind]++;
    n->log_recent[oldest].kind = kind;
    snprintf(n->log_recent[oldest].id, sizeof n->log_recent[oldest].id, "%s", id);
    n->log_recent[oldest].t = now;
    *suppressed = n->suppressed[kind];
    n->suppressed[kind] = 0;
    return 1;
}

static slot *find_slot(nnm_node *n, const char *id)
{
    for (size_t i = 0; i < n->nslots; i++)
        if (strcmp(n->slots[i].p.id, id) == 0) return &n->slots[i];
    return NULL;
}

static void count_refusal(nnm_node *n, nnm_advert_verdict v, const char *id, const char *why)
{
    n->st.adverts_ignored[v]++;
    uint64_t sup = 0;
    if (log_allowed(n, (unsigned)v, id, &sup))
        nlog(n, v == NNM_ADVERT_ID_CONFLICT ? NNM_NODE_LOG_ERROR : NNM_NODE_LOG_WARN,
             "advert of '%s' ignored (%s): %s%s", id, nnm_advert_verdict_name(v), why,
             sup ? " (and more like it, not logged)" : "");
}

static void on_advert(nnm_node *n, const char *id, const uint8_t *buf, size_t len)
{
    uint64_t now = wall_ms();
    char fp[NNM_FINGERPRINT_SIZE], fp2[NNM_FINGERPRINT_SIZE], why[NNM_DIAG_MAX + 128];
    pthread_mutex_lock(&n->mu);
    slot *s = find_slot(n, id);
    if (len == 0) {            /* cleared: the node left, or its will fired */
        if (s != NULL && s->alive) {
            s->alive = 0;
            n->st.leaves++;
            n->st.peers--;
            n->stats_now = 1;
            nlog(n, NNM_NODE_LOG_INFO, "peer %s left (advert cleared; epoch %" PRIu64 ")", id,
                 s->p.epoch);
        }
        pthread_mutex_unlock(&n->mu);
        return;
    }
    nnm_signed_advert a;
    if (nnm_advert_decode(&a, buf, len, NULL) == NNM_OK && strcmp(a.id, id) == 0) {
        /* The id is taken: by this node, or by a live peer with another key. */
        const uint8_t *holder = strcmp(id, n->id) == 0 ? n->pk : s != NULL && s->alive ? s->p.pk
                                                                                         : NULL;
        if (holder == n->pk && memcmp(a.pk, n->pk, 32) == 0) {   /* our own advert */
            pthread_mutex_unlock(&n->mu);
            return;
        }
        if (holder != NULL && memcmp(holder, a.pk, 32) != 0) {
            nnm_pubkey_get_fingerprint(fp, a.pk);
            nnm_pubkey_get_fingerprint(fp2, holder);
            snprintf(why, sizeof why, "node id '%s' is already held by key %s%s; refused the "
                     "advert signed by key %s", id, fp2, holder == n->pk ? " (this node)" : "",
                     fp);
            count_refusal(n, NNM_ADVERT_ID_CONFLICT, id, why);
            pthread_mutex_unlock(&n->mu);
            return;
        }
    }
    /* The retained advert delivered again (a resubscription after a reconnect, a bridge
     * coming back): nothing new, not a replay attack; ignored without counting. A replay of
     * an older advert still counts. */
    if (s != NULL && s->st.seen && nnm_advert_decode(&a, buf, len, NULL) == NNM_OK &&
        a.epoch == s->st.epoch && a.seq == s->st.seq && memcmp(a.pk, s->p.pk, 32) == 0) {
        pthread_mutex_unlock(&n->mu);
        return;
    }
    nnm_advert_state st;
    nnm_advert_state_init(&st);
    if (s != NULL) st = s->st;
    nnm_node_peer p;
    nnm_diag d;
    nnm_diag_clear(&d);
    nnm_advert_verdict v = nnm_node_advert_check(&p, id, buf, len, n->trust, &st, now, &d);
    if (v != NNM_ADVERT_ACCEPTED) {
        count_refusal(n, v, id, d.msg[0] ? d.msg : nnm_advert_verdict_name(v));
        pthread_mutex_unlock(&n->mu);
        return;
    }
    if (s == NULL) {
        if (n->nslots == NNM_NODE_PEERS_MAX) {
            /* Forget the longest-gone peer to make room. */
            size_t k = n->nslots;
            for (size_t i = 0; i < n->nslots; i++)
                if (!n->slots[i].alive &&
                    (k == n->nslots || n->slots[i].p.received_ms < n->slots[k].p.received_ms))
                    k = i;
            if (k == n->nslots) {
                count_refusal(n, NNM_ADVERT_MALFORMED, id, "the peer table is full");
                pthread_mutex_unlock(&n->mu);
                return;
            }
            n->slots[k] = n->slots[--n->nslots];
        }
        s = &n->slots[n->nslots++];
        memset(s, 0, sizeof *s);
    }
    n->st.adverts_accepted++;
    if (!s->alive) {
        char was[64] = "";
        if (s->st.seen) snprintf(was, sizeof was, " (was %" PRIu64 ")", s->p.epoch);
        n->st.joins++;
        n->st.peers++;
        n->stats_now = 1;
        nlog(n, NNM_NODE_LOG_INFO, "peer %s %s: key %s, epoch %" PRIu64 "%s, %" PRIu64
             " MFLOP/s conv3x3, %" PRIu64 " MiB offered, %zu model%s", id,
             s->st.seen ? "rejoined" : "joined", p.fingerprint, p.epoch, was,
             nnm_node_peer_get_cap(&p, "mflops-conv3x3", 0),
             nnm_node_peer_get_cap(&p, "mem-mb", 0), p.nmodels, p.nmodels == 1 ? "" : "s");
    } else if (s->p.epoch != p.epoch) {
        nlog(n, NNM_NODE_LOG_INFO, "peer %s restarted: epoch %" PRIu64 " -> %" PRIu64, id,
             s->p.epoch, p.epoch);
    }
    s->p = p;
    s->st = st;
    s->alive = 1;
    pthread_mutex_unlock(&n->mu);
}

/* A control verb that switches between two words: *flag = (arg is `one`). Called under
 * n->mu. Returns NNM_OK or NNM_EINVAL (another word, logged and counted). */
static nnm_err ctl_switch(nnm_node *n, const char *verb, const char *arg, const char *from,
                          const char *one, const char *other, const char *done, int *flag)
{
    if (strcmp(arg, one) != 0 && strcmp(arg, other) != 0) {
        n->st.ctl_bad_arg++;
        nlog(n, NNM_NODE_LOG_WARN, "control from %s: %s '%.40s' is unknown; use %s or %s", from,
             verb, arg, one, other);
        return NNM_EINVAL;
    }
    *flag = strcmp(arg, one) == 0;
    nlog(n, NNM_NODE_LOG_INFO, "%s %s (control from %s)", done, arg, from);
    return NNM_OK;
}

/* Applies a control verb; returns NNM_OK, NNM_ENOTFOUND (unknown verb) or NNM_EINVAL. */
static nnm_err apply_ctl(nnm_node *n, const char *verb, const char *arg, const char *from)
{
    nnm_err rc = NNM_OK;
    pthread_mutex_lock(&n->mu);
    if (strcmp(verb, "drain") == 0) {
        if (!n->st.draining)
            nlog(n, NNM_NODE_LOG_INFO, "draining (control from %s): no new work is accepted",
                 from);
        n->st.draining = 1;
    } else if (strcmp(verb, "resume") == 0) {
        if (n->st.draining)
            nlog(n, NNM_NODE_LOG_INFO, "resuming (control from %s): accepting work again", from);
        n->st.draining = 0;
    } else if (strcmp(verb, "objective") == 0) {
        rc = ctl_switch(n, verb, arg, from, "throughput", "latency", "objective set to",
                        &n->throughput);
    } else if (strcmp(verb, "forward") == 0) {
        rc = ctl_switch(n, verb, arg, from, "on", "off", "forwarding", &n->forward);
    } else if (strcmp(verb, "policy") == 0) {
        size_t k = 0;
        while (k < sizeof policy_names / sizeof *policy_names && strcmp(policy_names[k], arg) != 0)
            k++;
        if (k == sizeof policy_names / sizeof *policy_names) {
            n->st.ctl_bad_arg++;
            nlog(n, NNM_NODE_LOG_WARN, "control from %s: policy '%.40s' is unknown; use local, "
                 "equal, memory, capacity or adaptive", from, arg);
            rc = NNM_EINVAL;
        } else {
            snprintf(n->st.policy, sizeof n->st.policy, "%s", policy_names[k]);
            nlog(n, NNM_NODE_LOG_INFO, "policy set to %s (control from %s)", n->st.policy, from);
        }
    } else {
        n->st.ctl_unknown++;
        nlog(n, NNM_NODE_LOG_WARN, "control from %s: unknown verb '%s' ignored (known: drain, "
             "resume, policy, objective, forward)", from, verb);
        rc = NNM_ENOTFOUND;
    }
    if (rc == NNM_OK) {
        n->st.ctl_accepted++;
        n->publish_now = 1;
    }
    pthread_mutex_unlock(&n->mu);
    return rc;
}

static void on_plain_ctl(nnm_node *n, const char *verb, const uint8_t *buf, size_t len)
{
    if (!n->cfg->allow_plaintext_control) {
        pthread_mutex_lock(&n->mu);
        n->st.ctl_refused++;
        uint64_t sup = 0;
        if (log_allowed(n, NNM_ADVERT__COUNT, "", &sup))
            nlog(n, NNM_NODE_LOG_WARN, "plaintext control '%s' refused: [control] "
                 "allow_plaintext_control is false in %s; send a signed one with 'nnmesh ctl'%s",
                 verb, n->cfg->source, sup ? " (and more, not logged)" : "");
        pthread_mutex_unlock(&n->mu);
        return;
    }
    /* The argument is text from the shell: printable ASCII, surrounding space trimmed. */
    char arg[NNM_ID_MAX * 2 + 1];
    size_t k = 0;
    int bad = len >= sizeof arg;
    for (size_t i = 0; !bad && i < len; i++) {
        if (buf[i] == '\n' || buf[i] == '\r' || buf[i] == ' ' || buf[i] == '\t') continue;
        if (buf[i] < 0x21 || buf[i] > 0x7e) bad = 1;
        else arg[k++] = (char)buf[i];
    }
    arg[k] = '\0';
    if (bad) {
        pthread_mutex_lock(&n->mu);
        n->st.ctl_bad_arg++;
        nlog(n, NNM_NODE_LOG_WARN, "plaintext control '%s': the argument is not short printable "
             "text; ignored", verb);
        pthread_mutex_unlock(&n->mu);
        return;
    }
    apply_ctl(n, verb, arg, "the shell (plaintext)");
}

static void on_other(void *ctx, const char *topic, const uint8_t *payload, size_t len,
                     int retained)
{
    (void)retained;
    nnm_node *n = ctx;
    nnm_topic t;
    if (nnm_topic_decode(&t, topic, strlen(topic), NULL) != NNM_OK || strcmp(t.mesh, n->mesh) != 0)
        return;
    if (t.kind == NNM_TOPIC_ADVERT) on_advert(n, t.node, payload, len);
    else if (t.kind == NNM_TOPIC_CTL && strcmp(t.node, n->id) == 0)
        on_plain_ctl(n, t.arg, payload, len);
    else if (t.kind == NNM_TOPIC_REQ && n->shell &&
             (strcmp(t.node, n->id) == 0 || strcmp(t.node, "any") == 0)) {
        /* Copied and queued: the request runs on the poll thread, not Paho's. */
        pthread_mutex_lock(&n->mu);
        uint8_t *copy = len <= (size_t)n->cfg->max_tensor_bytes + 4096 ? malloc(len ? len : 1) : NULL;
        if (n->n_shq == SHELL_QUEUE_MAX || copy == NULL) {
            int big = len > (size_t)n->cfg->max_tensor_bytes + 4096;
            free(copy);
            n->shell_dropped++;
            int answered = n->n_shell_refused < SHELL_REFUSED_MAX;
            if (answered) {
                snprintf(n->shell_refused[n->n_shell_refused], NNM_ID_MAX + 1, "%s", t.arg);
                n->shell_refused_big[n->n_shell_refused++] = big;
            }
            pthread_mutex_unlock(&n->mu);
            nlog(n, NNM_NODE_LOG_WARN, "shell request '%s' refused: %s%s", t.arg,
                 big ? "larger than [limits] max_tensor_bytes" : "the shell queue is full",
                 answered ? "" : " (no error answer either: too many refused at once)");
            if (answered) nnm_link_wake(n->link);
            return;
        }
        memcpy(copy, payload, len);
        shreq *q = &n->shq[n->n_shq++];
        snprintf(q->tag, sizeof q->tag, "%s", t.arg);
        q->buf = copy;
        q->len = len;
        pthread_mutex_unlock(&n->mu);
        nnm_link_wake(n->link);   /* the poll thread serves it now, not at its next tick */
    }
}

static void on_event(void *ctx, nnm_mqtt_event ev, const char *uri, unsigned attempt,
                     unsigned retry_ms, const char *msg)
{
    nnm_node *n = ctx;
    switch (ev) {
    case NNM_MQTT_EV_CONNECTED:
        nlog(n, NNM_NODE_LOG_INFO, "connected to broker %s", uri ? uri : "?");
        pthread_mutex_lock(&n->mu);
        n->publish_now = 1;    /* a restarted broker lost our retained advert */
        pthread_mutex_unlock(&n->mu);
        break;
    case NNM_MQTT_EV_CONNECT_FAILED:
        /* msg already says when the next attempt is. */
        (void)retry_ms;
        nlog(n, NNM_NODE_LOG_WARN, "no broker reachable (attempt %u): %s", attempt,
             msg ? msg : "");
        break;
    case NNM_MQTT_EV_LOST:
        /* msg says when the next attempt is. */
        (void)retry_ms;
        nlog(n, NNM_NODE_LOG_WARN, "lost broker %s: %s", uri ? uri : "?", msg ? msg : "");
        break;
    case NNM_MQTT_EV_SUBSCRIBE_FAILED:
        nlog(n, NNM_NODE_LOG_ERROR, "%s", msg ? msg : "a subscription was refused");
        break;
    }
}

nnm_err nnm_node_new(nnm_node **out, const nnm_node_opts *o, nnm_diag *diag)
{
    *out = NULL;
    if (o == NULL || o->cfg == NULL || o->identity == NULL || o->trust == NULL ||
        (o->nmodels > 0 && o->models == NULL))
        return nnm_diag_set(diag, NNM_EINVAL, "nnm_node_new: missing option");
    const nnm_config *c = o->cfg;
    if (o->nmodels > NNM_NODE_MODELS_MAX)
        return nnm_diag_set(diag, NNM_ERANGE, "%s: %zu models, a node advertises at most %d",
                            c->source, o->nmodels, NNM_NODE_MODELS_MAX);
    nnm_err rc = NNM_ENOMEM;
    nnm_node *n = calloc(1, sizeof *n);
    if (n == NULL) return nnm_diag_set(diag, rc, "out of memory");
    pthread_mutex_init(&n->mu, NULL);
    n->cfg = c;
    n->forward = c->forward;
    n->ident = o->identity;
    n->trust = o->trust;
    memcpy(n->pk, nnm_identity_get_pubkey(o->identity), sizeof n->pk);
    nnm_pubkey_get_fingerprint(n->fp, n->pk);
    snprintf(n->id, sizeof n->id, "%s", c->node_id);
    snprintf(n->mesh, sizeof n->mesh, "%s", c->mesh_name);
    n->log = o->log;
    n->log_ctx = o->log_ctx;
    n->remeasure_s = o->remeasure_s ? o->remeasure_s : 60;
    n->cap = o->capacity;
    n->st.epoch = o->epoch;
    snprintf(n->st.policy, sizeof n->st.policy, "adaptive");
    n->start_mono = mono_ms();
    if ((n->slots = calloc(NNM_NODE_PEERS_MAX, sizeof *n->slots)) == NULL) goto fail;
    if (o->nmodels > 0) {
        if ((n->models = malloc(o->nmodels * sizeof *n->models)) == NULL) goto fail;
        memcpy(n->models, o->models, o->nmodels * sizeof *n->models);
        n->nmodels = o->nmodels;
    }
    nnm_topic t = { .kind = NNM_TOPIC_ADVERT };
    snprintf(t.mesh, sizeof t.mesh, "%s", n->mesh);
    snprintf(t.node, sizeof t.node, "%s", n->id);
    if ((rc = nnm_topic_encode(n->t_advert, sizeof n->t_advert, &t, diag)) != NNM_OK) goto fail;
    t.kind = NNM_TOPIC_STATS;
    if ((rc = nnm_topic_encode(n->t_stats, sizeof n->t_stats, &t, diag)) != NNM_OK) goto fail;
    t.kind = NNM_TOPIC_CTL;
    snprintf(t.arg, sizeof t.arg, "+");
    if ((rc = nnm_topic_encode(n->f_ctl, sizeof n->f_ctl, &t, diag)) != NNM_OK) goto fail;
    t.kind = NNM_TOPIC_ADVERT;
    t.arg[0] = '\0';
    snprintf(t.node, sizeof t.node, "+");
    if ((rc = nnm_topic_encode(n->f_adverts, sizeof n->f_adverts, &t, diag)) != NNM_OK) goto fail;

    nnm_link_opts lo;
    nnm_link_opts_init(&lo);
    lo.node_id = n->id;
    lo.mesh = n->mesh;
    lo.identity = o->identity;
    lo.trust = o->trust;
    /* The MQTT client id is the node id, so that broker ACLs can say "this client may publish
     * only under its own id" (pattern ... %c, or %u with a broker account per node and
     * use_username_as_clientid, as the example brokers do). */
    lo.mqtt.client_id = n->id;
    char password[NNM_CONFIG_PASSWORD_MAX] = "";
    if ((rc = nnm_config_broker_opts(c, &lo.mqtt, password, diag)) != NNM_OK) goto fail;
    lo.mqtt.will_topic = n->t_advert;
    lo.mqtt.will_payload = NULL;
    lo.mqtt.will_len = 0;
    lo.mqtt.will_qos = 1;
    lo.mqtt.will_retain = 1;
    lo.mqtt.on_event = on_event;
    lo.mqtt.on_event_ctx = n;
    lo.chunk_size = (size_t)c->chunk_size > 1024 ? (size_t)c->chunk_size - 1024 : lo.chunk_size;
    lo.limits.max_tensor_bytes = (size_t)c->max_tensor_bytes;
    lo.on_other = on_other;
    lo.on_other_ctx = n;
    rc = nnm_link_new(&n->link, &lo, diag);
    sodium_memzero(password, sizeof password);   /* the session keeps its own copy */
    if (rc != NNM_OK) goto fail;
    n->mqtt = nnm_link_get_mqtt(n->link);
    if ((rc = nnm_mqtt_subscribe(n->mqtt, n->f_adverts, 1, diag)) != NNM_OK) goto fail;
    if ((rc = nnm_mqtt_subscribe(n->mqtt, n->f_ctl, 1, diag)) != NNM_OK) goto fail;
    nnm_worker_opts wo;
    memset(&wo, 0, sizeof wo);
    wo.threads = o->capacity.threads > 0 ? o->capacity.threads : 1;
    wo.cache_dir = o->cache_dir;
    if ((rc = nnm_worker_new(&n->worker, &wo, diag)) != NNM_OK) goto fail;
    if ((rc = nnm_coord_inbox_new(&n->inbox, 0, 0, diag)) != NNM_OK) goto fail;
    if ((rc = nnm_sched_new(&n->sched, n->id, NULL, diag)) != NNM_OK) goto fail;
    if (c->allow_shell_ingress) {
        /* req/<id>/+ reaches this node; req/any/+ is a shared subscription, so each request
         * published there goes to exactly one node of the mesh. */
        t.kind = NNM_TOPIC_REQ;
        snprintf(t.node, sizeof t.node, "%s", n->id);
        snprintf(t.arg, sizeof t.arg, "+");
        if ((rc = nnm_topic_encode(n->f_req, sizeof n->f_req, &t, diag)) != NNM_OK) goto fail;
        snprintf(t.node, sizeof t.node, "any");
        char any[NNM_TOPIC_MAX];
        if ((rc = nnm_topic_encode(any, sizeof any, &t, diag)) != NNM_OK) goto fail;
        snprintf(n->f_req_any, sizeof n->f_req_any, "$share/%s/%s", n->mesh, any);
        if ((rc = nnm_mqtt_subscribe(n->mqtt, n->f_req, 1, diag)) != NNM_OK) goto fail;
        /* Only a node holding a model takes req/any: a model-less one could only fail it. */
        if (n->nmodels > 0 && (rc = nnm_mqtt_subscribe(n->mqtt, n->f_req_any, 1, diag)) != NNM_OK)
            goto fail;
        n->shell = 1;
    }
    /* Commit: the node takes the graphs (the worker owns them from here). */
    for (size_t i = 0; o->graphs && i < o->nmodels; i++) {
        if (o->graphs[i] == NULL) continue;
        nnm_diag d2;
        if (nnm_worker_add_model(n->worker, o->models[i], o->graphs[i], &d2) != NNM_OK)
            nlog(n, NNM_NODE_LOG_ERROR, "model %zu: %s", i, d2.msg);
        o->graphs[i] = NULL;
    }
    *out = n;
    return NNM_OK;
fail:
    nnm_node_free(n);
    return rc;
}

/* Failpoints, for tests only: NNMESH_FAILPOINTS is a comma-separated list of names.
 * corrupt-results: every slice this node serves returns perturbed outputs (a byzantine
 * peer, for the spot checks of tests/security/byzantine.sh). */
static void read_failpoints(nnm_node *n)
{
    const char *fp = getenv("NNMESH_FAILPOINTS");
    char buf[256];
    snprintf(buf, sizeof buf, "%s", fp ? fp : "");
    char *save = NULL;
    for (char *it = strtok_r(buf, ", ", &save); it; it = strtok_r(NULL, ", ", &save)) {
        if (!strcmp(it, "corrupt-results")) {
            n->corrupt_results = 1;
            nlog(n, NNM_NODE_LOG_ERROR, "failpoint corrupt-results active: this node returns "
                 "wrong outputs; for tests only");
        } else {
            nlog(n, NNM_NODE_LOG_WARN, "NNMESH_FAILPOINTS: unknown failpoint '%s' ignored", it);
        }
    }
}

nnm_err nnm_node_start(nnm_node *n, nnm_diag *diag)
{
    read_failpoints(n);
    nnm_err rc = nnm_link_start(n->link, diag);
    if (rc == NNM_OK) n->started = 1;
    return rc;
}

void nnm_node_set_trust(nnm_node *n, nnm_trust *t)
{
    if (n == NULL || t == NULL) return;
    uint64_t now_s = wall_ms() / 1000;
    pthread_mutex_lock(&n->mu);
    n->trust = t;
    /* Evict at once the live peers whose advert t would refuse (the same check as
     * nnm_advert_open: id and key; node adverts carry no certificate), so the coordinator
     * stops planning on them; their next advert is judged by t. */
    for (size_t i = 0; i < n->nslots; i++) {
        slot *s = &n->slots[i];
        nnm_diag d;
        nnm_diag_clear(&d);
        if (!s->alive || nnm_trust_check(t, s->p.id, s->p.pk, NULL, 0, now_s, &d) != NNM_ETRUST)
            continue;
        s->alive = 0;
        n->st.revoked++;
        n->st.leaves++;
        n->st.peers--;
        n->stats_now = 1;
        nlog(n, NNM_NODE_LOG_WARN, "peer %s revoked (key %s): %s; removed from the peers",
             s->p.id, s->p.fingerprint, d.msg);
    }
    /* Still under n->mu (the order stats publishing uses too): nnm_node_leave marks the node
     * left under it before freeing the link, so the link is alive here. */
    if (!n->left && n->link != NULL) nnm_link_set_trust(n->link, t);
    pthread_mutex_unlock(&n->mu);
}

/* ---- publishing ------------------------------------------------------------------------- */

static void json_str(char *buf, size_t len, size_t *k, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void json_str(char *buf, size_t len, size_t *k, const char *fmt, ...)
{
    if (*k >= len) return;
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(buf + *k, len - *k, fmt, ap);
    va_end(ap);
    *k = w < 0 ? len : *k + (size_t)w;
}

/* Called with n->mu held. */
static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Percentile q of the recent slice times (mutex held). */
static double percentile(nnm_node *n, double q)
{
    size_t k = n->n_slice_ms < SLICE_RING ? n->n_slice_ms : SLICE_RING;
    if (k == 0) return 0;
    double v[SLICE_RING];
    memcpy(v, n->slice_ms, k * sizeof *v);
    qsort(v, k, sizeof *v, cmp_dbl);
    size_t i = (size_t)(q * (double)(k - 1) + 0.5);
    return v[i < k ? i : k - 1];
}

static void record_slice(nnm_node *n, double ms)
{
    pthread_mutex_lock(&n->mu);
    n->slice_ms[n->n_slice_ms % SLICE_RING] = ms;
    n->n_slice_ms++;
    n->st.slices_run++;
    pthread_mutex_unlock(&n->mu);
}

static nnm_err stats_json_locked(nnm_node *n, char *buf, size_t len, const char *state)
{
    nnm_link_stats ls;
    nnm_link_get_stats(n->link, &ls);
    nnm_mqtt_stats ms;
    nnm_mqtt_get_stats(n->mqtt, &ms);
    const nnm_node_stats *s = &n->st;
    size_t k = 0;
    json_str(buf, len, &k, "{\"node\":\"%s\",\"mesh\":\"%s\",\"fingerprint\":\"%s\",\"version\":\""
             NNM_NODE_VERSION "\",\"state\":\"%s\",\"draining\":%s,\"policy\":\"%s\","
             "\"epoch\":%" PRIu64 ",\"seq\":%" PRIu64 ",\"uptime_s\":%" PRIu64 ",\"time_ms\":%"
             PRIu64 ",", n->id, n->mesh, n->fp, state, s->draining ? "true" : "false", s->policy,
             s->epoch, s->seq, (mono_ms() - n->start_mono) / 1000, wall_ms());
    /* bytes_in/out: everything this node's MQTT session carried; link: the peer frames. */
    json_str(buf, len, &k, "\"requests\":%" PRIu64 ",\"slices_run\":%" PRIu64 ",\"bytes_in\":%"
             PRIu64 ",\"bytes_out\":%" PRIu64 ",\"link\":{\"rx_frames\":%" PRIu64
             ",\"rx_bytes\":%" PRIu64 ",\"tx_frames\":%" PRIu64 ",\"tx_bytes\":%" PRIu64
             ",\"sessions\":%" PRIu64 "},\"slice_ms\":{\"p50\":%.3f,\"p99\":%.3f},"
             "\"coordinator\":{\"tasks_sent\":%" PRIu64 ",\"tasks_routed\":%" PRIu64
             ",\"tasks_local\":%" PRIu64
             ",\"tasks_retried\":%" PRIu64 ",\"models_sent\":%" PRIu64 ",\"results_late\":%"
             PRIu64 ",\"plans\":%" PRIu64 ",\"plan_ms\":{\"last\":%.3f,\"max\":%.3f,"
             "\"total\":%.3f},\"result_codecs\":{",
             s->requests, s->slices_run, ms.received_bytes, ms.published_bytes, ls.rx_frames,
             ls.rx_bytes, ls.tx_frames, ls.tx_bytes, ls.sessions, percentile(n, 0.5),
             percentile(n, 0.99), n->cst.tasks_sent, n->cst.tasks_routed, n->cst.tasks_local,
             n->cst.tasks_retried,
             n->cst.models_sent, n->cst.results_late, n->cst.plans, n->cst.plan_ms_last,
             n->cst.plan_ms_max, n->cst.plan_ms_total);
    /* Output tensors peers answered with, by wire codec: f16 or int8 here means results
     * that went through a lossy codec were used. */
    for (unsigned c = 0; c < NNM_CODEC__COUNT; c++)
        json_str(buf, len, &k, "%s\"%s\":%" PRIu64, c ? "," : "", nnm_codec_name(c),
                 n->cst.result_codecs[c]);
    json_str(buf, len, &k, "}},\"shell_dropped\":%" PRIu64 ",", n->shell_dropped);
    json_str(buf, len, &k, "\"spot_checks\":{\"run\":%" PRIu64 ",\"mismatch\":%" PRIu64
             ",\"reruns\":%" PRIu64 ",\"max_ok\":%.3g},\"excluded\":[", n->cst.spot_checks,
             n->cst.spot_mismatches, n->cst.reruns, n->cst.spot_max_ok);
    for (size_t i = 0, nx = 0; i < n->cst.n_excluded; i++)
        if (nnm_coord_peer_excluded(&n->cst, n->cst.excluded[i].id))
            json_str(buf, len, &k, "%s\"%s\"", nx++ ? "," : "", n->cst.excluded[i].id);
    json_str(buf, len, &k, "],\"timeouts\":%" PRIu64 ",\"unresponsive\":[", n->cst.timeouts);
    for (size_t i = 0, nx = 0; i < n->cst.n_suspects; i++)
        if (nnm_coord_peer_suspect(&n->cst, n->cst.suspects[i].id))
            json_str(buf, len, &k, "%s\"%s\"", nx++ ? "," : "", n->cst.suspects[i].id);
    json_str(buf, len, &k, "],");
    json_str(buf, len, &k, "\"forwarding\":{\"on\":%s,\"routed\":%" PRIu64 ",\"completed\":%" PRIu64
             ",\"expired\":%" PRIu64 ",\"rejected\":%" PRIu64 ",\"pieces_in\":%" PRIu64
             ",\"pieces_early\":%" PRIu64 ",\"pieces_dup\":%" PRIu64 ",\"pieces_dropped\":%"
             PRIu64 ",\"pieces_foreign\":%" PRIu64 ",\"pieces_out\":%" PRIu64 ",\"waiting\":%zu},",
             n->forward ? "true" : "false", n->ist.routed,
             n->ist.completed, n->ist.expired, n->ist.rejected, n->ist.pieces_in,
             n->ist.pieces_early, n->ist.pieces_dup, n->ist.pieces_dropped, n->ist.pieces_foreign,
             n->ist.pieces_out, n->ist.waiting);
    json_str(buf, len, &k, "\"errors\":{\"publish\":%" PRIu64 ",\"frames_unsupported\":%" PRIu64
             ",\"connect_failures\":%" PRIu64 ",\"connections_lost\":%" PRIu64 "},",
             s->publish_errors, s->frames_unsupported, ms.connect_failures, ms.lost);
    json_str(buf, len, &k, "\"drops\":{\"malformed\":%" PRIu64 ",\"not_for_me\":%" PRIu64
             ",\"untrusted\":%" PRIu64 ",\"no_session\":%" PRIu64 ",\"bad_tag\":%" PRIu64
             ",\"replay\":%" PRIu64 ",\"hello\":%" PRIu64 ",\"reassembly\":%" PRIu64
             ",\"queue_full\":%" PRIu64 ",\"mqtt_queue_full\":%" PRIu64 "},",
             ls.drop_malformed, ls.drop_not_for_me, ls.drop_untrusted, ls.drop_no_session,
             ls.drop_bad_tag, ls.drop_replay, ls.drop_hello, ls.drop_reasm, ls.drop_queue_full,
             ms.dropped);
    json_str(buf, len, &k, "\"adverts\":{\"published\":%" PRIu64 ",\"accepted\":%" PRIu64
             ",\"ignored\":{", s->adverts_published, s->adverts_accepted);
    for (int v = 1; v < NNM_ADVERT__COUNT; v++)
        json_str(buf, len, &k, "%s\"%s\":%" PRIu64, v > 1 ? "," : "",
                 nnm_advert_verdict_name((nnm_advert_verdict)v), s->adverts_ignored[v]);
    json_str(buf, len, &k, "}},\"control\":{\"accepted\":%" PRIu64 ",\"refused\":%" PRIu64
             ",\"unknown_verb\":%" PRIu64 ",\"bad_arg\":%" PRIu64 "},",
             s->ctl_accepted, s->ctl_refused, s->ctl_unknown, s->ctl_bad_arg);
    json_str(buf, len, &k, "\"membership\":{\"joins\":%" PRIu64 ",\"leaves\":%" PRIu64
             ",\"expired\":%" PRIu64 ",\"revoked\":%" PRIu64 "},\"peers\":%zu,\"peer_ids\":[",
             s->joins, s->leaves, s->expired, s->revoked, s->peers);
    int first = 1;
    for (size_t i = 0; i < n->nslots; i++)
        if (n->slots[i].alive) {
            json_str(buf, len, &k, "%s\"%s\"", first ? "" : ",", n->slots[i].p.id);
            first = 0;
        }
    json_str(buf, len, &k, "],\"links\":{");
    first = 1;
    for (size_t i = 0; i < n->nslots; i++)
        if (n->slots[i].alive && n->slots[i].mbps > 0) {
            json_str(buf, len, &k, "%s\"%s\":{\"rtt_ms\":%.3f,\"mbit_s\":%.1f}", first ? "" : ",",
                     n->slots[i].p.id, n->slots[i].rtt_ms, n->slots[i].mbps);
            first = 0;
        }
    json_str(buf, len, &k, "},\"broker\":{\"connected\":%s,\"uri\":\"%s\",\"connects\":%" PRIu64
             "}}", ms.connected ? "true" : "false", ms.uri, ms.connects);
    if (k >= len) {
        if (len > 0) buf[0] = '\0';
        return NNM_ERANGE;
    }
    return NNM_OK;
}

nnm_err nnm_node_stats_json(nnm_node *n, char *buf, size_t len)
{
    pthread_mutex_lock(&n->mu);
    nnm_err rc = stats_json_locked(n, buf, len, n->left ? "left" : "serving");
    pthread_mutex_unlock(&n->mu);
    return rc;
}

static void publish_stats(nnm_node *n, const char *state)
{
    char json[16384];
    pthread_mutex_lock(&n->mu);
    nnm_err rc = stats_json_locked(n, json, sizeof json, state);
    pthread_mutex_unlock(&n->mu);
    if (rc != NNM_OK) return;
    nnm_diag d;
    nnm_diag_clear(&d);
    rc = nnm_mqtt_publish(n->mqtt, n->t_stats, json, strlen(json), 1, 1, 1000, &d);
    if (rc != NNM_OK && rc != NNM_ECONN) {
        pthread_mutex_lock(&n->mu);
        n->st.publish_errors++;
        pthread_mutex_unlock(&n->mu);
        nlog(n, NNM_NODE_LOG_WARN, "stats not published: %s", d.msg);
    }
}

/* Requests this node holds as their coordinator: the one it runs and those waiting. */
static uint32_t queue_now(nnm_node *n)
{
    pthread_mutex_lock(&n->mu);
    size_t q = (size_t)(n->coordinating != 0) + n->n_shq + n->n_reqq;
    pthread_mutex_unlock(&n->mu);
    return (uint32_t)q;
}

/* A node between two requests of a stream is not idle: its adverts keep the last busy
 * level until QUEUE_IDLE_MS after its last request (a stream's next request usually comes
 * within that), else a periodic advert sent in the gap tells peers it is free. */
#define QUEUE_IDLE_MS 250
#define QUEUE_LEVEL_MS 1000

static void publish_advert(nnm_node *n)
{
    uint32_t queue = queue_now(n);
    if (queue == 0 && n->adv_queue > 0 && mono_ms() - n->req_done_ms < QUEUE_IDLE_MS)
        queue = n->adv_queue;
    nnm_capacity lc;
    memset(&lc, 0, sizeof lc);
    nnm_capacity_get_load(&lc);
    pthread_mutex_lock(&n->mu);
    if (lc.mem_free > 0) n->cap.mem_free = lc.mem_free;
    n->cap.load1 = lc.load1;
    const nnm_node_capacity *c = &n->cap;
    uint64_t offer = c->mem_offer > 0 && c->mem_offer < c->mem_free ? c->mem_offer : c->mem_free;
    int cpus = c->cpus_online > 0 ? c->cpus_online : 1;
    double load = c->load1 / cpus * 1000.0;
    uint32_t load_pm = load < 0 ? 0 : load > 1000 ? 1000 : (uint32_t)(load + 0.5);
    const char *names[NNM_NODE_CAPS_MAX];
    uint64_t vals[NNM_NODE_CAPS_MAX];
    size_t k = 0;
    names[k] = "cpu-cores", vals[k++] = (uint64_t)(c->threads > 0 ? c->threads : 1);
    names[k] = "gflops", vals[k++] = (uint64_t)(c->gflops[0] + 0.5);
    names[k] = "mflops-conv3x3", vals[k++] = (uint64_t)(c->gflops[0] * 1000.0 + 0.5);
    names[k] = "mflops-conv1x1", vals[k++] = (uint64_t)(c->gflops[1] * 1000.0 + 0.5);
    names[k] = "mflops-dwconv", vals[k++] = (uint64_t)(c->gflops[2] * 1000.0 + 0.5);
    names[k] = "mflops-fc", vals[k++] = (uint64_t)(c->gflops[3] * 1000.0 + 0.5);
    names[k] = "mem-mb", vals[k++] = offer / 1048576u;
    names[k] = "draining", vals[k++] = (uint64_t)n->st.draining;
    /* Lets readers compute the advert's age: it was sent at expiry - 3 x interval. */
    names[k] = "advert-interval-ms", vals[k++] = (uint64_t)n->cfg->advert_interval_ms;
    if (c->cpu_quota > 0) names[k] = "cpu-quota-milli", vals[k++] = (uint64_t)(c->cpu_quota * 1000);
    names[k] = "queue", vals[k++] = queue;
    uint64_t seq = ++n->st.seq;
    uint64_t epoch = n->st.epoch;
    pthread_mutex_unlock(&n->mu);

    uint64_t interval = (uint64_t)n->cfg->advert_interval_ms;
    uint64_t expiry = wall_ms() + 3 * interval;
    uint8_t *buf = NULL;
    size_t len = 0;
    nnm_diag d;
    nnm_diag_clear(&d);
    nnm_err rc = nnm_node_advert_encode(&buf, &len, n->ident, n->id, epoch, seq, expiry, offer,
                                        load_pm, names, vals, k,
                                        (const uint8_t(*)[32])n->models, n->nmodels, &d);
    if (rc == NNM_OK) rc = nnm_mqtt_publish(n->mqtt, n->t_advert, buf, len, 1, 1, 1000, &d);
    free(buf);
    pthread_mutex_lock(&n->mu);
    if (rc == NNM_OK) n->st.adverts_published++;
    else if (rc != NNM_ECONN) n->st.publish_errors++;
    pthread_mutex_unlock(&n->mu);
    if (rc != NNM_OK && rc != NNM_ECONN)
        nlog(n, NNM_NODE_LOG_WARN, "advert not published: %s", d.msg);
    n->adv_queue = nnm_queue_level(queue);
    n->adv_queue_ms = mono_ms();
}

/* Peers plan with this node's queue (docs/SCHEDULER.md, cost model): a stream is often
 * shorter than the advert interval, so a change is advertised at once when the node gets
 * busy, within a second between busy levels, and after QUEUE_IDLE_MS without a request when
 * it is idle again (see publish_advert). */
static void advertise_queue(nnm_node *n)
{
    uint32_t lv = nnm_queue_level(queue_now(n)), was = n->adv_queue;
    if (lv == was) return;
    uint64_t now = mono_ms();
    if (lv > 0 && was > 0 && now - n->adv_queue_ms < QUEUE_LEVEL_MS) return;
    if (lv == 0 && now - n->req_done_ms < QUEUE_IDLE_MS) return;
    pthread_mutex_lock(&n->mu);
    int started = n->started && !n->left;
    pthread_mutex_unlock(&n->mu);
    if (started) publish_advert(n);
}

static void remeasure(nnm_node *n)
{
    nnm_capacity mc;
    nnm_diag d;
    nnm_diag_clear(&d);
    if (nnm_capacity_measure(&mc, (int)n->cfg->threads, 0, &d) != NNM_OK) {
        nlog(n, NNM_NODE_LOG_WARN, "capacity re-measurement failed: %s", d.msg);
        return;
    }
    pthread_mutex_lock(&n->mu);
    for (int i = 0; i < 4; i++) n->cap.gflops[i] = mc.gflops[i];
    n->cap.threads = mc.threads;
    n->cap.cpu_quota = mc.cpu_quota;
    n->cap.mem_free = mc.mem_free;
    pthread_mutex_unlock(&n->mu);
    nlog(n, NNM_NODE_LOG_DEBUG, "capacity re-measured: conv3x3 %.2f GFLOP/s", mc.gflops[0]);
}

/* Link probes: each live peer is measured once after it joins and every 5 minutes (the
 * echo RTT and a 256 KiB burst); the scheduler's links and the stats carry the estimates.
 * One peer per poll, so the node stays responsive. */
static void probe_peers(nnm_node *n)
{
    if (n->coordinating || n->link == NULL) return;
    uint64_t now = mono_ms();
    char who[NNM_ID_MAX + 1] = "";
    pthread_mutex_lock(&n->mu);
    for (size_t i = 0; i < n->nslots && !who[0]; i++) {
        slot *s = &n->slots[i];
        if (s->alive && (s->probed_ms == 0 || now - s->probed_ms > 300000)) {
            s->probed_ms = now;
            snprintf(who, sizeof who, "%s", s->p.id);
        }
    }
    pthread_mutex_unlock(&n->mu);
    if (!who[0]) return;
    nnm_diag d;
    nnm_diag_clear(&d);
    double rtt = 0, mbps = 0;
    if (nnm_link_probe(n->link, who, 256 * 1024, 3000, &d) != NNM_OK ||
        nnm_link_get_peer_estimate(n->link, who, &rtt, &mbps, &d) != NNM_OK) {
        nlog(n, NNM_NODE_LOG_DEBUG, "probe of %s: %s", who, d.msg);
        return;
    }
    pthread_mutex_lock(&n->mu);
    slot *s = find_slot(n, who);
    if (s) {
        s->rtt_ms = rtt;
        s->mbps = mbps;
        n->stats_now = 1;
    }
    pthread_mutex_unlock(&n->mu);
    nlog(n, NNM_NODE_LOG_INFO, "link to %s: rtt %.2f ms, %.0f Mbit/s", who, rtt, mbps);
}

/* Logs what the link dropped since the last report (altered, replayed, untrusted frames...)
 * at most every 10 s, so an operator sees an attack or a misconfiguration in the log and not
 * only in the stats counters. Poll thread only. */
static void report_link_drops(nnm_node *n, uint64_t now)
{
    if (now < n->next_drop_report) return;
    nnm_link_stats ls;
    nnm_link_get_stats(n->link, &ls);
    const nnm_link_stats *o = &n->drops_logged;
    struct { const char *what; uint64_t d; } k[] = {
        {"altered or forged (bad tag)", ls.drop_bad_tag - o->drop_bad_tag},
        {"replayed", ls.drop_replay - o->drop_replay},
        {"from untrusted or revoked keys", ls.drop_untrusted - o->drop_untrusted},
        {"under a session this node does not hold", ls.drop_no_session - o->drop_no_session},
        {"malformed", ls.drop_malformed - o->drop_malformed},
        {"addressed to another node", ls.drop_not_for_me - o->drop_not_for_me},
        {"stale or invalid hellos", ls.drop_hello - o->drop_hello},
        {"refused chunks", ls.drop_reasm - o->drop_reasm},
        {"receive queue full", ls.drop_queue_full - o->drop_queue_full},
    };
    char msg[512];
    size_t len = 0;
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++)
        if (k[i].d > 0 && len < sizeof msg)
            len += (size_t)snprintf(msg + len, sizeof msg - len, "%s%" PRIu64 " %s",
                                    len ? ", " : "", k[i].d, k[i].what);
    if (len == 0) return;
    n->drops_logged = ls;
    n->next_drop_report = now + 10000;
    nlog(n, NNM_NODE_LOG_WARN, "link dropped frames: %s (stats: drops)", msg);
}

static void expire_peers(nnm_node *n)
{
    uint64_t now = wall_ms();
    pthread_mutex_lock(&n->mu);
    for (size_t i = 0; i < n->nslots; i++) {
        slot *s = &n->slots[i];
        if (s->alive && now > s->p.expiry_ms + NNM_NODE_CLOCK_TOLERANCE_S * 1000u) {
            s->alive = 0;
            n->st.expired++;
            n->st.leaves++;
            n->st.peers--;
            n->stats_now = 1;
            nlog(n, NNM_NODE_LOG_INFO, "peer %s expired (no advert since %" PRIu64 " ms)",
                 s->p.id, now - s->p.received_ms);
        }
    }
    pthread_mutex_unlock(&n->mu);
}

/* ---- serving requests and tasks (poll thread) ------------------------------------------- */

static void on_frame(nnm_node *n, nnm_link_msg *m);

/* The scheduler's view of the mesh, refreshed from the peer table before each request. */
static void sync_sched(nnm_node *n)
{
    nnm_mesh_node self;
    memset(&self, 0, sizeof self);
    snprintf(self.id, sizeof self.id, "%s", n->id);
    pthread_mutex_lock(&n->mu);
    for (int c = 0; c < 4; c++) self.gflops[c] = n->cap.gflops[c];
    self.free_mem = n->cap.mem_offer;
    self.draining = n->st.draining;
    slot *copy = malloc(n->nslots * sizeof *copy + 1);
    size_t ns = copy ? n->nslots : 0;
    if (copy) memcpy(copy, n->slots, ns * sizeof *copy);
    pthread_mutex_unlock(&n->mu);
    self.models = (const uint8_t(*)[NNM_WIRE_HASH_BYTES])n->models;
    self.nmodels = n->nmodels;
    nnm_sched_node_set(n->sched, &self, NULL);
    static const char *const capname[4] = { "mflops-conv3x3", "mflops-conv1x1", "mflops-dwconv",
                                            "mflops-fc" };
    for (size_t i = 0; i < ns; i++) {
        const nnm_node_peer *p = &copy[i].p;
        if (!copy[i].alive) {
            nnm_sched_node_remove(n->sched, p->id, NULL);
            continue;
        }
        nnm_mesh_node mn;
        memset(&mn, 0, sizeof mn);
        snprintf(mn.id, sizeof mn.id, "%s", p->id);
        for (int c = 0; c < 4; c++) mn.gflops[c] = (double)nnm_node_peer_get_cap(p, capname[c], 0) / 1e3;
        mn.free_mem = p->free_mem;
        mn.load_permille = p->load_permille > 1000 ? 1000 : p->load_permille;
        uint64_t q = nnm_node_peer_get_cap(p, "queue", 0);
        mn.queue = q > UINT32_MAX ? UINT32_MAX : (uint32_t)q;
        mn.draining = nnm_node_peer_get_cap(p, "draining", 0) != 0 ||
                      nnm_coord_peer_excluded(&n->cst, p->id) ||  /* caught by a spot check */
                      nnm_coord_peer_suspect(&n->cst, p->id);     /* let a task time out */
        mn.models = (const uint8_t(*)[NNM_WIRE_HASH_BYTES])p->models;
        mn.nmodels = p->nmodels;
        nnm_sched_node_set(n->sched, &mn, NULL);
        if (copy[i].mbps > 0) {
            /* Both directions from this node's probe (MB/s for the scheduler). */
            nnm_sched_link_set(n->sched, n->id, p->id, copy[i].rtt_ms, copy[i].mbps / 8.0, NULL);
            nnm_sched_link_set(n->sched, p->id, n->id, copy[i].rtt_ms, copy[i].mbps / 8.0, NULL);
        }
    }
    free(copy);
}

static int peer_has_model(void *ctx, const char *peer, const uint8_t *hash)
{
    nnm_node *n = ctx;
    int has = 0;
    pthread_mutex_lock(&n->mu);
    slot *s = find_slot(n, peer);
    if (s && s->alive)
        for (size_t i = 0; i < s->p.nmodels && !has; i++)
            has = memcmp(s->p.models[i], hash, NNM_WIRE_HASH_BYTES) == 0;
    pthread_mutex_unlock(&n->mu);
    return has;
}

static int peer_alive(void *ctx, const char *peer)
{
    nnm_node *n = ctx;
    pthread_mutex_lock(&n->mu);
    slot *s = find_slot(n, peer);
    int alive = s && s->alive;
    pthread_mutex_unlock(&n->mu);
    return alive;
}

static void dispatch(void *ctx, nnm_link_msg *m)
{
    on_frame(ctx, m);
    nnm_link_msg_cleanup(m);
}

static void coord_log(void *ctx, int level, const char *msg)
{
    nlog(ctx, level == NNM_COORD_LOG_ERROR ? NNM_NODE_LOG_ERROR
              : level == NNM_COORD_LOG_DEBUG ? NNM_NODE_LOG_DEBUG : NNM_NODE_LOG_INFO, "%s", msg);
}

static void coord_env(nnm_node *n, nnm_coord_env *env)
{
    memset(env, 0, sizeof *env);
    env->link = n->link;
    env->worker = n->worker;
    env->sched = n->sched;
    env->self = n->id;
    env->dispatch = dispatch;
    env->ctx = n;
    env->peer_has_model = peer_has_model;
    env->peer_alive = peer_alive;
    env->task_timeout_ms = n->cfg->task_timeout_ms > 0 ? (unsigned)n->cfg->task_timeout_ms : 10000;
    env->spot_check = n->cfg->spot_check;
    env->exclude_ms = n->cfg->exclude_ms > 0 ? (unsigned)n->cfg->exclude_ms : 0;
    env->log = coord_log;
    env->corrupt_results = n->corrupt_results;
    pthread_mutex_lock(&n->mu);
    env->forward = n->forward;
    pthread_mutex_unlock(&n->mu);
    env->inbox = n->inbox;
}

static nnm_policy current_policy(nnm_node *n)
{
    pthread_mutex_lock(&n->mu);
    int k = 0;
    while (k < NNM_POLICY__COUNT && strcmp(policy_names[k], n->st.policy) != 0) k++;
    pthread_mutex_unlock(&n->mu);
    return k < NNM_POLICY__COUNT ? (nnm_policy)k : NNM_POLICY_ADAPTIVE;
}

/* Coordinates one request for the model with hash. Inputs bind to the model's inputs by name,
 * or by position when a name is empty or unknown. On success outputs hold the model's outputs
 * (n_out of them, owned) and *trace the parts. */
static nnm_err coordinate(nnm_node *n, const uint8_t *hash, const char *const *names,
                          const nnm_tensor *in, size_t n_in, nnm_tensor **outs, int *n_out,
                          nnm_trace_entry **trace, size_t *ntrace, nnm_diag *diag)
{
    *outs = NULL;
    *n_out = 0;
    const nnm_graph *g = nnm_worker_get_model(n->worker, hash);
    if (g == NULL) return nnm_diag_set(diag, NNM_ENOTFOUND, "this node does not hold that model");
    pthread_mutex_lock(&n->mu);
    int draining = n->st.draining;
    pthread_mutex_unlock(&n->mu);
    if (draining) return nnm_diag_set(diag, NNM_ESTATE, "node %s is draining: send the request to another node", n->id);
    if (n->coordinating) return nnm_diag_set(diag, NNM_ESTATE, "node %s is busy coordinating another request", n->id);
    int gi = nnm_graph_input_count(g), go = nnm_graph_output_count(g);
    if ((size_t)gi != n_in)
        return nnm_diag_set(diag, NNM_EINVAL, "the model takes %d input(s), %zu given", gi, n_in);
    nnm_tensor *args = calloc((size_t)gi + 1, sizeof *args);
    nnm_tensor *res = calloc((size_t)go + 1, sizeof *res);
    if (!args || !res) {
        free(args);
        free(res);
        return nnm_diag_set(diag, NNM_ENOMEM, "out of memory");
    }
    for (int i = 0; i < gi; i++) {
        nnm_io_info io;
        nnm_graph_input_get(g, i, &io);
        size_t k = (size_t)i;
        for (size_t j = 0; j < n_in; j++)
            if (names[j] && !strcmp(names[j], io.name)) k = j;
        args[i] = in[k];
        args[i].owned = 0;
        int same = args[i].dtype == io.dtype && args[i].ndim == io.ndim;
        for (int d = 0; same && d < io.ndim; d++) same = args[i].shape[d] == io.shape[d];
        if (!same) {
            char want[96], got[96];
            nnm_shape_format(want, sizeof want, io.shape, io.ndim);
            nnm_shape_format(got, sizeof got, args[i].shape, args[i].ndim);
            nnm_diag_set(diag, NNM_ESHAPE, "input '%s' expects %s %s, got %s %s", io.name,
                         nnm_dtype_name(io.dtype), want, nnm_dtype_name(args[i].dtype), got);
            free(args);
            free(res);
            return NNM_ESHAPE;
        }
    }
    sync_sched(n);
    nnm_coord_env env;
    coord_env(n, &env);
    char label[sizeof n->req_label];   /* a request refused meanwhile relabels n's */
    snprintf(label, sizeof label, "%s", n->req_label[0] ? n->req_label : "a request");
    env.request = label;
    nnm_plan_opts po;
    memset(&po, 0, sizeof po);
    nnm_config_plan_opts(n->cfg, &po);
    po.policy = current_policy(n);
    pthread_mutex_lock(&n->mu);
    po.objective = n->throughput ? NNM_OBJ_THROUGHPUT : NNM_OBJ_LATENCY;
    po.backlog = (int)(n->n_shq + n->n_reqq);    /* n_reqq: this thread's own */
    pthread_mutex_unlock(&n->mu);
    n->coordinating = 1;
    advertise_queue(n);
    /* A copy: the stats JSON (other threads, under mu) never sees it half updated. Only
     * this thread writes n->cst. */
    nnm_coord_stats cst = n->cst;
    nnm_err rc = nnm_coord_run(&env, g, hash, &po, args, gi, res, go, 60000, trace, ntrace,
                               &cst, diag);
    pthread_mutex_lock(&n->mu);
    if (cst.spot_mismatches != n->cst.spot_mismatches) n->stats_now = 1;
    n->cst = cst;
    pthread_mutex_unlock(&n->mu);
    n->coordinating = 0;
    n->req_done_ms = mono_ms();
    /* Parts the coordinator ran itself are slices this node ran. */
    for (size_t i = 0; rc == NNM_OK && trace && *trace && i < *ntrace; i++)
        if (!strcmp((*trace)[i].node, n->id)) record_slice(n, (double)(*trace)[i].compute_us / 1e3);
    free(args);
    if (rc != NNM_OK) {
        free(res);
        return rc;
    }
    pthread_mutex_lock(&n->mu);
    n->st.requests++;
    n->stats_now = 1;
    pthread_mutex_unlock(&n->mu);
    *outs = res;
    *n_out = go;
    return NNM_OK;
}

/* A sealed request from a client (nnmesh infer) or another node. */
static void serve_request(nnm_node *n, nnm_link_msg *m)
{
    const nnm_frame *f = m->frame;
    const char **names = calloc(m->ntensors + 1, sizeof *names);
    nnm_tensor *outs = NULL;
    int n_out = 0;
    nnm_trace_entry *tr = NULL;
    size_t ntr = 0;
    nnm_diag d;
    nnm_diag_clear(&d);
    nnm_err rc = names ? NNM_OK : NNM_ENOMEM;
    for (size_t i = 0; names && i < m->ntensors; i++) names[i] = f->u.task.tensors[i].name;
    snprintf(n->req_label, sizeof n->req_label, "request %016" PRIx64 " from %s",
             f->hdr.request, f->hdr.sender);
    if (rc == NNM_OK)
        rc = coordinate(n, f->u.task.spec.model_hash, names, m->tensors, m->ntensors, &outs,
                        &n_out, &tr, &ntr, &d);
    free(names);
    nnm_frame r;
    memset(&r, 0, sizeof r);
    r.hdr.request = f->hdr.request;
    nnm_wire_tensor *wt = NULL;
    if (rc == NNM_OK) {
        const nnm_graph *g = nnm_worker_get_model(n->worker, f->u.task.spec.model_hash);
        wt = calloc((size_t)n_out + 1, sizeof *wt);
        for (int i = 0; wt && i < n_out && rc == NNM_OK; i++) {
            nnm_io_info io;
            nnm_graph_output_get(g, i, &io);
            rc = nnm_wire_tensor_encode(&wt[i], &outs[i], NNM_CODEC_NONE, &d);
            wt[i].name = io.name;
        }
        if (!wt) rc = NNM_ENOMEM;
    }
    if (rc == NNM_OK) {
        r.hdr.type = NNM_FRAME_RESULT;
        r.u.result.ntensors = (size_t)n_out;
        r.u.result.tensors = wt;
        r.u.result.ntrace = ntr;
        r.u.result.trace = tr;
        nlog(n, NNM_NODE_LOG_INFO, "request from %s done in %zu part(s)", f->hdr.sender, ntr);
    } else {
        r.hdr.type = NNM_FRAME_ERROR;
        r.u.error.code = (uint32_t)rc;
        r.u.error.message = d.msg[0] ? d.msg : nnm_strerror(rc);
        nlog(n, NNM_NODE_LOG_WARN, "request from %s failed: %s", f->hdr.sender, r.u.error.message);
    }
    nnm_diag d2;
    if (nnm_link_send(n->link, f->hdr.sender, &r, &d2) != NNM_OK)
        nlog(n, NNM_NODE_LOG_WARN, "cannot answer %s: %s", f->hdr.sender, d2.msg);
    for (int i = 0; wt && i < n_out; i++) nnm_wire_tensor_cleanup(&wt[i]);
    free(wt);
    for (int i = 0; outs && i < n_out; i++) nnm_tensor_cleanup(&outs[i]);
    free(outs);
    free(tr);
}

/* Publishes a shell answer. Without a broker (it restarted, or the connection dropped) the
 * answer waits for the reconnection, up to 30 s, instead of being lost. */
static nnm_err publish_answer(nnm_node *n, const char *topic, const void *buf, size_t len,
                              nnm_diag *d)
{
    nnm_err rc = nnm_mqtt_publish(n->mqtt, topic, buf, len, 1, 0, 5000, d);
    if (rc != NNM_ECONN) return rc;
    nlog(n, NNM_NODE_LOG_INFO, "no broker: the answer on %s waits for the reconnection", topic);
    if (nnm_mqtt_wait_connected(n->mqtt, 30000, d) != NNM_OK) return rc;
    return nnm_mqtt_publish(n->mqtt, topic, buf, len, 1, 0, 5000, d);
}

/* res/<node>/<tag> of this node. */
static int shell_topic(nnm_node *n, char *topic, size_t size, const char *tag)
{
    nnm_topic t = { .kind = NNM_TOPIC_RES };
    snprintf(t.mesh, sizeof t.mesh, "%s", n->mesh);
    snprintf(t.node, sizeof t.node, "%s", n->id);
    snprintf(t.arg, sizeof t.arg, "%s", tag);
    return nnm_topic_encode(topic, size, &t, NULL) == NNM_OK;
}

/* Answers a shell request with {"error":"..."} on its result topic. */
static void shell_error(nnm_node *n, const char *topic, const char *tag, const char *msg)
{
    char json[NNM_DIAG_MAX + 64], esc[NNM_DIAG_MAX];
    size_t k = 0;
    for (const char *p = msg; *p && k + 2 < sizeof esc; p++) {
        if (*p == '"' || *p == '\\') esc[k++] = '\\';
        esc[k++] = (*p >= 0x20) ? *p : ' ';
    }
    esc[k] = '\0';
    snprintf(json, sizeof json, "{\"error\":\"%s\"}", esc);
    nnm_diag d2;
    nnm_diag_clear(&d2);
    publish_answer(n, topic, json, strlen(json), &d2);
    nlog(n, NNM_NODE_LOG_WARN, "shell request '%s' failed: %s", tag, esc);
}

/* A plain .npy from the shell: run the node's first model, publish the output .npy (or a
 * JSON error) on res/<node>/<tag>. */
static void serve_shell(nnm_node *n, shreq *q)
{
    char topic[NNM_TOPIC_MAX];
    if (!shell_topic(n, topic, sizeof topic, q->tag)) return;
    nnm_diag d;
    nnm_diag_clear(&d);
    nnm_tensor x, *outs = NULL;
    int n_out = 0;
    nnm_trace_entry *tr = NULL;
    size_t ntr = 0;
    nnm_err rc = NNM_ENOTFOUND;
    if (n->nmodels == 0) {
        nnm_diag_set(&d, rc, "node %s holds no model", n->id);
    } else if ((rc = nnm_npy_decode(&x, q->buf, q->len, &d)) == NNM_OK) {
        const char *name = "";
        snprintf(n->req_label, sizeof n->req_label, "shell request '%s'", q->tag);
        rc = coordinate(n, n->models[0], &name, &x, 1, &outs, &n_out, &tr, &ntr, &d);
        nnm_tensor_cleanup(&x);
    }
    void *buf = NULL;
    size_t len = 0;
    if (rc == NNM_OK && n_out > 0 && nnm_npy_encode(&buf, &len, &outs[0], &d) == NNM_OK) {
        if (publish_answer(n, topic, buf, len, &d) != NNM_OK)
            nlog(n, NNM_NODE_LOG_WARN, "shell request '%s': cannot publish the result: %s", q->tag, d.msg);
        else
            nlog(n, NNM_NODE_LOG_INFO, "shell request '%s' done in %zu part(s)", q->tag, ntr);
    } else {
        shell_error(n, topic, q->tag, d.msg[0] ? d.msg : nnm_strerror(rc));
    }
    free(buf);
    for (int i = 0; outs && i < n_out; i++) nnm_tensor_cleanup(&outs[i]);
    free(outs);
    free(tr);
}

static void on_frame(nnm_node *n, nnm_link_msg *m)
{
    const nnm_frame *f = m->frame;
    nnm_err rc;
    if (f->hdr.type == NNM_FRAME_TASK && f->u.task.spec.node_end == NNM_TASK_WHOLE_MODEL) {
        /* One request is coordinated at a time: one arriving meanwhile (handed over by the
         * coordinator's wait loop) waits its turn, up to [limits] max_inflight in all; past
         * that it gets the busy error at once. The message is moved, not copied. */
        size_t cap = n->cfg->max_inflight > 1 ? (size_t)n->cfg->max_inflight - 1 : 0;
        if (n->coordinating && n->n_reqq < REQ_QUEUE_MAX && n->n_reqq < cap) {
            n->reqq[n->n_reqq++] = *m;
            memset(m, 0, sizeof *m);
            return;
        }
        serve_request(n, m);
        return;
    }
    if (f->hdr.type == NNM_FRAME_TASK || f->hdr.type == NNM_FRAME_TENSOR) {
        pthread_mutex_lock(&n->mu);
        int draining = n->st.draining;
        pthread_mutex_unlock(&n->mu);
        nnm_diag d;
        nnm_diag_clear(&d);
        if (draining && f->hdr.type == NNM_FRAME_TASK) {
            /* The coordinator re-runs the part elsewhere when it sees the error. */
            nnm_frame r;
            memset(&r, 0, sizeof r);
            r.hdr.type = NNM_FRAME_RESULT;
            r.hdr.request = f->hdr.request;
            r.u.result.status = NNM_ESTATE;
            nnm_link_send(n->link, f->hdr.sender, &r, NULL);
            return;
        }
        /* A routed TASK may be moved into the inbox by nnm_coord_serve: what the log lines
         * need is copied first. */
        unsigned type = f->hdr.type;
        int piece = type == NNM_FRAME_TENSOR && f->u.tensor.piece;
        char sender[NNM_ID_MAX + 1];
        snprintf(sender, sizeof sender, "%s", f->hdr.sender);
        size_t model_bytes = m->ntensors > 0 ? m->tensors[0].nbytes : 0;
        nnm_coord_inbox_stats before, after;
        nnm_coord_inbox_stats_get(n->inbox, &before);
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        nnm_coord_env env;
        coord_env(n, &env);
        rc = nnm_coord_serve(&env, m, &d);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        nnm_coord_inbox_stats_get(n->inbox, &after);
        /* A slice ran: an ordinary task, or a routed one whose inputs became whole. */
        int ran = after.completed > before.completed || (type == NNM_FRAME_TASK && m->frame != NULL);
        if (ran && rc == NNM_OK)
            record_slice(n, (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
        if (rc != NNM_OK)
            nlog(n, NNM_NODE_LOG_WARN, "%s from %s: %s", piece ? "piece" : nnm_frame_type_name(type),
                 sender, d.msg);
        else if (type == NNM_FRAME_TENSOR && !piece)
            nlog(n, NNM_NODE_LOG_INFO, "model slice from %s received (%zu bytes), cached",
                 sender, model_bytes);
        return;
    }
    if (f->hdr.type == NNM_FRAME_CTL) {
        char from[NNM_ID_MAX + 16];
        snprintf(from, sizeof from, "%s (signed)", f->hdr.sender);
        rc = apply_ctl(n, f->u.ctl.verb, f->u.ctl.arg ? f->u.ctl.arg : "", from);
    } else {
        /* Results outside a request (late ones), acks: nothing to do, except that a late
         * result shows its sender is answering again. */
        pthread_mutex_lock(&n->mu);
        if (f->hdr.type == NNM_FRAME_RESULT || f->hdr.type == NNM_FRAME_ERROR)
            nnm_coord_peer_unsuspect(&n->cst, f->hdr.sender);
        n->st.frames_unsupported++;
        pthread_mutex_unlock(&n->mu);
        nlog(n, NNM_NODE_LOG_DEBUG, "%s frame from %s ignored (not waiting for it)",
             nnm_frame_type_name(f->hdr.type), f->hdr.sender);
        return;
    }
    if (f->hdr.request == 0) return;
    /* Answer so that the sender (nnmesh ctl) knows the outcome. */
    nnm_frame a;
    memset(&a, 0, sizeof a);
    a.hdr.type = NNM_FRAME_ACK;
    a.hdr.request = f->hdr.request;
    a.u.ack.counter = f->hdr.counter;
    a.u.ack.status = (uint32_t)rc;
    nnm_diag d;
    nnm_diag_clear(&d);
    if (nnm_link_send(n->link, f->hdr.sender, &a, &d) != NNM_OK)
        nlog(n, NNM_NODE_LOG_WARN, "cannot answer %s: %s", f->hdr.sender, d.msg);
}

void nnm_node_poll(nnm_node *n, unsigned timeout_ms)
{
    if (n->left) {
        struct timespec ts = {(time_t)(timeout_ms / 1000), (long)(timeout_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        return;
    }
    nnm_link_msg m;
    memset(&m, 0, sizeof m);
    if (nnm_link_recv(n->link, &m, timeout_ms, NULL) == NNM_OK) {
        on_frame(n, &m);
        nnm_link_msg_cleanup(&m);
        n->last_busy = mono_ms();
    }
    nnm_coord_env env;
    coord_env(n, &env);
    nnm_coord_inbox_expire(&env);
    nnm_coord_inbox_stats ist;
    nnm_coord_inbox_stats_get(n->inbox, &ist);
    uint64_t now = mono_ms();
    pthread_mutex_lock(&n->mu);
    n->ist = ist;
    if (n->n_shq > 0) n->last_busy = now;
    int due = n->publish_now || now >= n->next_advert;
    if (due) {
        n->publish_now = 0;
        n->next_advert = now + (uint64_t)n->cfg->advert_interval_ms;
    }
    int stats = due || n->stats_now;
    n->stats_now = 0;
    int measure = n->next_measure != 0 && now >= n->next_measure && n->remeasure_s != UINT32_MAX;
    if (measure && n->last_busy != 0 && now - n->last_busy < 5000) {
        /* The probes take ~200 ms of this thread: only when nothing was served for 5 s, so a
         * request never waits behind them (a busy node's capacity shows in its slice times). */
        measure = 0;
        n->next_measure = now + 5000;
    } else if (n->next_measure == 0 || measure) {
        n->next_measure = now + (uint64_t)n->remeasure_s * 1000u;
    }
    pthread_mutex_unlock(&n->mu);
    expire_peers(n);
    probe_peers(n);
    report_link_drops(n, now);
    /* Shell requests refused on Paho's thread get their error answer here. */
    for (;;) {
        char tag[NNM_ID_MAX + 1], topic[NNM_TOPIC_MAX], msg[160];
        pthread_mutex_lock(&n->mu);
        if (n->n_shell_refused == 0) {
            pthread_mutex_unlock(&n->mu);
            break;
        }
        snprintf(tag, sizeof tag, "%s", n->shell_refused[0]);
        int big = n->shell_refused_big[0];
        memmove(n->shell_refused, n->shell_refused + 1,
                (n->n_shell_refused - 1) * sizeof n->shell_refused[0]);
        memmove(n->shell_refused_big, n->shell_refused_big + 1,
                (n->n_shell_refused - 1) * sizeof n->shell_refused_big[0]);
        n->n_shell_refused--;
        pthread_mutex_unlock(&n->mu);
        if (big)
            snprintf(msg, sizeof msg, "node %s: the request is larger than [limits] "
                     "max_tensor_bytes (%" PRIu64 " bytes); refused", n->id,
                     (uint64_t)n->cfg->max_tensor_bytes);
        else
            snprintf(msg, sizeof msg, "node %s is busy: %d shell requests are already "
                     "waiting; refused, send it again later", n->id, SHELL_QUEUE_MAX);
        if (shell_topic(n, topic, sizeof topic, tag)) shell_error(n, topic, tag, msg);
    }
    /* Shell requests queued by Paho's thread run here, one at a time. */
    for (;;) {
        shreq q;
        pthread_mutex_lock(&n->mu);
        if (n->n_shq == 0) {
            pthread_mutex_unlock(&n->mu);
            break;
        }
        q = n->shq[0];
        memmove(n->shq, n->shq + 1, (n->n_shq - 1) * sizeof *n->shq);
        n->n_shq--;
        pthread_mutex_unlock(&n->mu);
        serve_shell(n, &q);
        free(q.buf);
    }
    /* Sealed requests that arrived while one was coordinated (more may queue meanwhile). */
    while (n->n_reqq > 0) {
        nnm_link_msg q = n->reqq[0];
        memmove(n->reqq, n->reqq + 1, (n->n_reqq - 1) * sizeof *n->reqq);
        n->n_reqq--;
        serve_request(n, &q);
        nnm_link_msg_cleanup(&q);
    }
    if (measure) remeasure(n);
    if (due) publish_advert(n);
    else advertise_queue(n);
    if (stats) publish_stats(n, "serving");
}

void nnm_node_leave(nnm_node *n)
{
    if (n == NULL || n->left || n->link == NULL || !n->started) return;
    nnm_diag d;
    nnm_diag_clear(&d);
    nnm_err rc = nnm_mqtt_publish(n->mqtt, n->t_advert, "", 0, 1, 1, 2000, &d);
    if (rc != NNM_OK && rc != NNM_ECONN)
        nlog(n, NNM_NODE_LOG_WARN, "could not clear the advert: %s", d.msg);
    pthread_mutex_lock(&n->mu);
    n->left = 1;
    pthread_mutex_unlock(&n->mu);
    publish_stats(n, "left");
    nnm_link_free(n->link);    /* BYE to peers with a session, will published, disconnect */
    n->link = NULL;
    n->mqtt = NULL;
    nlog(n, NNM_NODE_LOG_INFO, "left the mesh (advert cleared)");
}

void nnm_node_get_stats(nnm_node *n, nnm_node_stats *st)
{
    pthread_mutex_lock(&n->mu);
    *st = n->st;
    pthread_mutex_unlock(&n->mu);
}

size_t nnm_node_peer_count(nnm_node *n)
{
    pthread_mutex_lock(&n->mu);
    size_t c = n->st.peers;
    pthread_mutex_unlock(&n->mu);
    return c;
}

nnm_err nnm_node_peer_get(nnm_node *n, size_t i, nnm_node_peer *p)
{
    nnm_err rc = NNM_ERANGE;
    pthread_mutex_lock(&n->mu);
    for (size_t k = 0; k < n->nslots; k++)
        if (n->slots[k].alive && i-- == 0) {
            *p = n->slots[k].p;
            rc = NNM_OK;
            break;
        }
    pthread_mutex_unlock(&n->mu);
    return rc;
}

void nnm_node_free(nnm_node *n)
{
    if (n == NULL) return;
    nnm_node_leave(n);
    nnm_link_free(n->link);
    for (size_t i = 0; i < n->n_shq; i++) free(n->shq[i].buf);
    for (size_t i = 0; i < n->n_reqq; i++) nnm_link_msg_cleanup(&n->reqq[i]);
    nnm_worker_free(n->worker);
    nnm_coord_inbox_free(n->inbox);
    nnm_sched_free(n->sched);
    free(n->slots);
    free(n->models);
    pthread_mutex_destroy(&n->mu);
    free(n);
}
