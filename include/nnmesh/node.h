/* nnmesh/node.h — a mesh member: the node daemon's network half, on top of the secure link.
 *
 * A node joins the mesh over its MQTT brokers (nnm_link), publishes a signed advert of what it
 * holds and can do (retained, QoS 1, on nnmesh/<mesh>/advert/<id>, cleared by its Last Will),
 * keeps a peer table from the adverts of others (verified: trust, signature, expiry, epoch and
 * sequence; a node id already held by another key is refused), publishes JSON statistics
 * (retained, nnmesh/<mesh>/stats/<id>) and obeys control verbs (drain, resume, policy) sent as
 * signed CTL frames through the link, or as plaintext on nnmesh/<mesh>/ctl/<id>/<verb> when
 * the config allows it.
 *
 * Threads: one owner thread calls nnm_node_poll in a loop; nnm_node_get_* and
 * nnm_node_set_trust may be called from any thread. Adverts and plaintext control are handled
 * on the MQTT library's thread as they arrive.
 *
 * Also here: the advert body codec and verification used by the node and by `nnmesh peers`. */
#ifndef NNMESH_NODE_H
#define NNMESH_NODE_H

#include <stddef.h>
#include <stdint.h>

#include "nnmesh/config.h"
#include "nnmesh/err.h"
#include "nnmesh/graph.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Declared in nnmesh/crypto.h (repeating a typedef of the same type is valid C11). */
typedef struct nnm_identity nnm_identity;
typedef struct nnm_trust nnm_trust;

#define NNM_NODE_VERSION "0.1.0"      /* software version in adverts */
#define NNM_NODE_CAPS_MAX 16          /* capacities kept per peer (extra ones are ignored) */
#define NNM_NODE_MODELS_MAX 32        /* model hashes kept per peer */
#define NNM_NODE_PEERS_MAX 256
#define NNM_NODE_CLOCK_TOLERANCE_S 5  /* clock difference allowed between nodes (adverts) */

/* Why an advert was not taken. Counted per reason in the stats ("adverts_ignored"). */
typedef enum nnm_advert_verdict {
    NNM_ADVERT_ACCEPTED = 0,
    NNM_ADVERT_MALFORMED,         /* not an advert, bad body, or signed fields disagree */
    NNM_ADVERT_WRONG_TOPIC,       /* the advert's id is not the topic's node level */
    NNM_ADVERT_UNTRUSTED,         /* key not admitted by the trust file (or revoked) */
    NNM_ADVERT_BAD_SIGNATURE,
    NNM_ADVERT_EXPIRED,
    NNM_ADVERT_REPLAY,            /* older epoch, or same epoch and sequence not newer */
    NNM_ADVERT_ID_CONFLICT,       /* the id is held by another key: refused and reported */
    NNM_ADVERT_FUTURE,            /* sent later than this node's clock allows: clocks apart */
    NNM_ADVERT__COUNT
} nnm_advert_verdict;

/* Stable id-syntax name of a verdict ("bad-signature"), used in logs and stats JSON. */
const char *nnm_advert_verdict_name(nnm_advert_verdict v);

/* Measured capacity as the node advertises it. gflops: conv3x3, conv1x1, dwconv3x3, fc. */
typedef struct nnm_node_capacity {
    int threads;
    double cpu_quota;             /* cores; 0 = none */
    double gflops[4];
    uint64_t mem_offer;           /* bytes offered to the mesh */
    uint64_t mem_free;            /* bytes free now */
    double load1;
    int cpus_online;
} nnm_node_capacity;

/* One verified advert, decoded. */
typedef struct nnm_node_peer {
    char id[32 + 1];
    uint8_t pk[32];
    char fingerprint[20];
    uint64_t epoch, seq, expiry_ms;
    char version[32 + 1];
    uint64_t free_mem;
    uint32_t load_permille;
    size_t ncaps;
    struct { char name[32 + 1]; uint64_t value; } caps[NNM_NODE_CAPS_MAX];
    size_t nmodels;
    uint8_t models[NNM_NODE_MODELS_MAX][32];
    uint64_t received_ms;         /* local wall clock (ms since the epoch) at arrival */
} nnm_node_peer;

/* Value of capacity name in p, or def when absent. */
uint64_t nnm_node_peer_get_cap(const nnm_node_peer *p, const char *name, uint64_t def);

/* Encodes and signs this node's advert into a new malloc'd buffer (*out, *len; caller frees).
 * caps: the capacities map (names id-syntax), models: content hashes. expiry_ms absolute.
 * Errors: NNM_EINVAL, NNM_ERANGE, NNM_ENOMEM (from the frame codec and nnm_advert_seal). */
nnm_err nnm_node_advert_encode(uint8_t **out, size_t *len, const nnm_identity *self,
                               const char *id, uint64_t epoch, uint64_t seq, uint64_t expiry_ms,
                               uint64_t free_mem, uint32_t load_permille,
                               const char *const *cap_names, const uint64_t *cap_values,
                               size_t ncaps, const uint8_t (*models)[32], size_t nmodels,
                               nnm_diag *diag);

/* Verifies and decodes an advert received on the topic of node topic_id at wall time now_ms.
 * state: the per-peer (epoch, seq) memory (an nnm_advert_state from nnm/crypto.h, passed as
 * void * to keep this header free of crypto's types), or NULL to skip the replay check.
 * Returns the verdict; on NNM_ADVERT_ACCEPTED *out is filled. diag says why otherwise. */
nnm_advert_verdict nnm_node_advert_check(nnm_node_peer *out, const char *topic_id,
                                         const uint8_t *buf, size_t len, nnm_trust *trust,
                                         void *state, uint64_t now_ms, nnm_diag *diag);

/* ---- the node ------------------------------------------------------------------------- */

typedef struct nnm_node nnm_node;

typedef enum nnm_node_log_level {
    NNM_NODE_LOG_DEBUG, NNM_NODE_LOG_INFO, NNM_NODE_LOG_WARN, NNM_NODE_LOG_ERROR
} nnm_node_log_level;

/* A log line (one sentence, no newline); called from the poll thread and the MQTT thread. */
typedef void nnm_node_log_fn(void *ctx, nnm_node_log_level level, const char *msg);

typedef struct nnm_node_opts {
    const nnm_config *cfg;            /* borrowed; outlives the node */
    const nnm_identity *identity;     /* borrowed; outlives the node */
    nnm_trust *trust;                 /* borrowed; outlives the node (the link keeps it) */
    uint64_t epoch;                   /* this run's epoch (nnm_node_epoch_next) */
    nnm_node_capacity capacity;       /* measured at start */
    const uint8_t (*models)[32];      /* content hashes of the models held (copied) */
    size_t nmodels;
    /* The loaded models, aligned with models[]: the node takes them when nnm_node_new
     * succeeds (the caller must then not free them); NULL: the node serves no requests of
     * its own models, only tasks. */
    nnm_graph **graphs;
    const char *cache_dir;            /* slice models received from peers (NULL: memory) */
    unsigned remeasure_s;             /* re-measure capacity when idle this often (0: 60 s;
                                         UINT32_MAX: never) */
    nnm_node_log_fn *log;             /* may be NULL */
    void *log_ctx;
} nnm_node_opts;

/* Counters; adverts_ignored indexed by nnm_advert_verdict (ACCEPTED unused). */
typedef struct nnm_node_stats {
    uint64_t adverts_published, adverts_accepted;
    uint64_t adverts_ignored[NNM_ADVERT__COUNT];
    uint64_t joins, leaves, expired;
    uint64_t revoked;                 /* peers evicted by nnm_node_set_trust (also in leaves) */
    uint64_t ctl_accepted, ctl_refused, ctl_unknown, ctl_bad_arg;
    uint64_t frames_unsupported;      /* link frames this node cannot serve yet (TASK ...) */
    uint64_t publish_errors;
    uint64_t requests, slices_run;    /* zero until the scheduler lands */
    size_t peers;
    int draining;
    char policy[32 + 1];
    uint64_t epoch, seq;
} nnm_node_stats;

/* Reads the epoch file (text, one decimal number; missing = 0), writes back one more, and
 * returns it in *epoch. If the file holds nothing usable the epoch starts at the unix time,
 * so a lost file still yields a higher epoch than before. Written atomically (mode 0600).
 * Errors: NNM_EIO (cannot write; errno named), NNM_EFORMAT (garbage in the file). */
nnm_err nnm_node_epoch_next(uint64_t *epoch, const char *path, nnm_diag *diag);

/* Keeps large buffers (up to 64 MiB) on the process heap instead of mapping and unmapping
 * each one (mallopt M_MMAP_THRESHOLD 64 MiB, M_TRIM_THRESHOLD 128 MiB). Frames and tensors
 * of up to tens of MiB are allocated and freed per message; with glibc's defaults each one
 * is mapped, faulted in and zeroed afresh (about 1 ms per MiB: sealing runs at ~570 MB/s
 * instead of ~1.3 GB/s, docs/BENCH_WIRE.md). nnmeshd calls it first thing; the wire
 * benchmark's `--malloc node` too. Process-wide: call before threads start. */
void nnm_node_tune_malloc(void);

/* Creates the node and its link (not connected): Last Will = empty retained message on the
 * advert topic; subscriptions to adverts and (always; refused unless allowed) plaintext
 * control. Errors: NNM_EINVAL (bad option), NNM_ENOMEM, those of nnm_link_new. */
nnm_err nnm_node_new(nnm_node **out, const nnm_node_opts *o, nnm_diag *diag);

/* Starts connecting in the background (never fails for an unreachable broker: that is retried
 * with backoff and logged). Errors: those of nnm_link_start and nnm_mqtt_subscribe. */
nnm_err nnm_node_start(nnm_node *n, nnm_diag *diag);

/* One step of the node's loop: waits up to timeout_ms for a frame from the link (signed
 * control), then runs what is due: advert, stats, peer expiry, capacity re-measurement. */
void nnm_node_poll(nnm_node *n, unsigned timeout_ms);

/* Uses t (borrowed, not NULL) from now on for adverts, control and the link's handshakes
 * (nnm_link_set_trust). Live peers whose advert key t refuses are evicted at once (logged
 * "revoked", counted in stats revoked and leaves) and the link drops their sessions. When this
 * returns nothing uses the previous store: the caller may free it then. Thread-safe. */
void nnm_node_set_trust(nnm_node *n, nnm_trust *t);

/* Leaves cleanly: clears the retained advert, publishes final stats, says BYE to peers with
 * a session and disconnects (the will is discarded by the broker). Idempotent. */
void nnm_node_leave(nnm_node *n);

void nnm_node_get_stats(nnm_node *n, nnm_node_stats *st);

/* Number of live peers, and a copy of peer i (0 <= i < count) into *p. Errors: NNM_ERANGE. */
size_t nnm_node_peer_count(nnm_node *n);
nnm_err nnm_node_peer_get(nnm_node *n, size_t i, nnm_node_peer *p);

/* The stats JSON as published (NUL-terminated into buf of len bytes; 8 KiB suffices).
 * Errors: NNM_ERANGE (buf too small). */
nnm_err nnm_node_stats_json(nnm_node *n, char *buf, size_t len);

/* Leaves (if not done) and frees. NULL-safe. */
void nnm_node_free(nnm_node *n);

#ifdef __cplusplus
}
#endif
#endif
