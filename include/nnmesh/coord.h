/* nnmesh/coord.h — running one request across the mesh (the coordinator), and serving the
 * tasks other coordinators send (the worker side of the protocol).
 *
 * The coordinator is whichever node took the request. It asks the scheduler for a plan,
 * then runs it stage by stage: for each part it crops the part's inputs from the whole
 * tensors it holds, sends a TASK (sealed, through the link) to the part's node — first the
 * part's weights as an ONNX slice if that node does not hold the model — or runs the part
 * itself, and places each part's outputs into the whole tensors.
 *
 * Forwarding (env->forward): where a stage and the next both run entirely on peers, the
 * coordinator does not wait between them. The first stage's TASKs list the boxes of their
 * outputs each next-stage part needs (forwards), the next stage's TASKs list those inputs as
 * awaited, and the peers send the pieces to each other: the data skips the coordinator, which
 * gets back only the outputs it needs itself (graph outputs, its own parts' inputs, later
 * stages fed through it). Otherwise data flows through the coordinator (a star).
 *
 * Faults: every task has a deadline. A part whose node times out, is declared gone, or
 * answers with an error is run again on the coordinator (which holds the model), so a dead,
 * stopped or lying-about-capacity peer costs latency, never the answer. Every task carries
 * its own id in the frame's request field; a result whose id is unknown, already answered
 * or from another sender is discarded (late and duplicate results).
 *
 * Spot checks: a peer can also answer with valid, sealed, signed but wrong numbers. With
 * probability env->spot_check (drawn from the kernel CSPRNG, so a peer cannot tell which
 * parts are checked) the coordinator re-runs a part a peer answered and compares the two
 * outputs within NNM_COORD_SPOT_TOLERANCE of the output's scale. On a mismatch its own
 * result is used, the peer is excluded (see nnm_coord_stats.excluded) and, if the request
 * already used other unchecked results of that peer, the request is run again without it,
 * so the answer is the correct one. See docs/SCHEDULER.md. */
#ifndef NNMESH_COORD_H
#define NNMESH_COORD_H

#include "nnmesh/scheduler.h"
#include "nnmesh/transport.h"
#include "nnmesh/worker.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A TASK whose node range is [0, NNM_TASK_WHOLE_MODEL) is a request: "run the whole model
 * with these inputs and coordinate it". */
#define NNM_TASK_WHOLE_MODEL UINT32_MAX
/* Name of the uint8 tensor that carries an ONNX slice model in a TENSOR frame. */
#define NNM_MODEL_TENSOR "#model"

enum { NNM_COORD_LOG_INFO, NNM_COORD_LOG_ERROR, NNM_COORD_LOG_DEBUG };

typedef struct nnm_coord_env {
    nnm_link *link;
    nnm_worker *worker;            /* runs local parts; holds the request's model */
    nnm_sched *sched;
    const char *self;              /* this node's id */
    /* Frames that are not results for the running request (TASKs from other coordinators,
     * control, ...) are handed here while the coordinator waits; dispatch takes msg. */
    void (*dispatch)(void *ctx, nnm_link_msg *msg);
    void *ctx;
    /* Whether peer holds the model with this hash (from its advert); NULL: assume not. */
    int (*peer_has_model)(void *ctx, const char *peer, const uint8_t *hash);
    /* Whether peer is still a member; NULL: assume yes. */
    int (*peer_alive)(void *ctx, const char *peer);
    unsigned task_timeout_ms;      /* per remote task (default 10000) */
    nnm_codec codec;               /* wire codec forced on task inputs and outputs; 0 (NONE):
                                    * as the plan chose per edge. A coordinator sends inputs
                                    * with it and asks for results in it (the TASK's
                                    * result_codec); a worker answers with it whatever the
                                    * TASK asks */
    double spot_check;             /* fraction of peer parts re-run here and compared (0..1;
                                    * 0: none) */
    unsigned exclude_ms;           /* how long a peer caught by a spot check stays excluded;
                                    * 0: for the life of the stats (the node's run) */
    const char *request;           /* names the request in log lines (NULL: "a request") */
    /* Log lines, level NNM_COORD_LOG_* (a peer caught: ERROR; how a plan was chosen:
     * DEBUG); NULL: silent. */
    void (*log)(void *ctx, int level, const char *msg);
    int corrupt_results;           /* failpoint, for tests only: nnm_coord_serve perturbs
                                    * every output it sends (a byzantine peer) */
    unsigned suspect_ms;           /* a peer that let a task time out gets no part for this
                                    * long, or until it answers again (0: 3 x task timeout) */
    int forward;                   /* coordinator: route outputs straight from stage to stage
                                    * where both stages run on peers (above); 0: a star */
    struct nnm_coord_inbox *inbox; /* worker: routed tasks waiting for their pieces (NULL:
                                    * routed tasks are refused with NNM_EUNSUPPORTED) */
} nnm_coord_env;

/* ---- routed tasks on the worker side (scheduler/route.c) -------------------------------- */

typedef struct nnm_coord_inbox nnm_coord_inbox;

typedef struct nnm_coord_inbox_stats {
    uint64_t routed;               /* routed TASKs that waited for pieces */
    uint64_t completed;            /* ... whose inputs became whole and ran */
    uint64_t expired;              /* ... dropped after hold_ms (answered NNM_ETIMEOUT) */
    uint64_t rejected;             /* refused (full, duplicate) or failed by a bad piece */
    uint64_t pieces_in, pieces_early, pieces_dup, pieces_dropped;
    uint64_t pieces_foreign;       /* from a node that does not produce them: dropped */
    uint64_t pieces_out;           /* pieces this node sent on (coordinator or producer) */
    size_t waiting, early, bytes;  /* now */
} nnm_coord_inbox_stats;

/* An inbox holding at most max_bytes of awaited inputs and early pieces (0: 256 MiB), for at
 * most hold_ms (0: 30 s). Errors: NNM_ENOMEM. */
nnm_err nnm_coord_inbox_new(nnm_coord_inbox **out, size_t max_bytes, unsigned hold_ms,
                            nnm_diag *diag);
void nnm_coord_inbox_free(nnm_coord_inbox *ib);   /* NULL-safe */
void nnm_coord_inbox_stats_get(const nnm_coord_inbox *ib, nnm_coord_inbox_stats *st);
/* Drops tasks and pieces held longer than hold_ms; such a task is answered NNM_ETIMEOUT.
 * nnm_coord_serve calls it; an idle node should too. */
void nnm_coord_inbox_expire(const nnm_coord_env *env);

/* Largest difference between a peer's output and the coordinator's own, as a fraction of the
 * largest magnitude of the coordinator's output, that a spot check accepts. Honest backends
 * (reference, XNNPACK, any thread count) differ by about 1e-6 of the scale. Outputs that
 * came over a lossy wire codec round by up to 5e-4 (F16) and 4e-3 (INT8) of the scale and are
 * held to 2e-3 and 2e-2 instead. */
#define NNM_COORD_SPOT_TOLERANCE 1e-4

/* A peer caught returning wrong results. */
typedef struct nnm_coord_exclusion {
    char id[NNM_ID_MAX + 1];
    double until_ms;               /* CLOCK_MONOTONIC ms; 0: for good */
    uint64_t task_id;              /* the task that was caught */
    double diff;                   /* its largest difference, relative to the output scale */
} nnm_coord_exclusion;

typedef struct nnm_coord_stats {
    uint64_t tasks_sent, tasks_local, tasks_retried;
    uint64_t tasks_routed;         /* ... of tasks_sent: routed (awaiting pieces, forwarding
                                    * pieces, or both) */
    uint64_t models_sent;
    uint64_t results_late;         /* discarded: unknown, answered or from another sender */
    uint64_t spot_checks;          /* peer parts re-run here and compared */
    uint64_t spot_mismatches;      /* ... whose outputs differed: the peer was excluded */
    uint64_t reruns;               /* requests run again without a peer caught lying */
    double spot_max_ok;            /* largest relative difference a passed check saw: the
                                    * honest noise, against NNM_COORD_SPOT_TOLERANCE */
    uint64_t result_codecs[NNM_CODEC__COUNT];   /* output tensors received from peers, by
                                                 * the wire codec they came with */
    /* Peers excluded after a mismatch: no part is sent to them while excluded. This is
     * state, not only counts: pass the same stats to every request of a node (the node's
     * scheduler should also see them as draining, so that plans leave them out). */
    size_t n_excluded;
    nnm_coord_exclusion excluded[NNM_SCHED_MAX_NODES];
    /* Peers that let a task pass its deadline (stopped, cut off, overloaded): no part is sent
     * to them until until_ms (CLOCK_MONOTONIC) or until any frame of theirs reaches the
     * coordinator (a late result proves it is back), so that one unreachable peer costs
     * one deadline, not one per request. */
    uint64_t timeouts;             /* tasks whose deadline passed */
    /* Planning (nnm_sched_plan) per request: a cache hit takes microseconds; a new candidate
     * set, a refresh after the refined model drifted, or the DP plan's variants take one DP
     * run each (docs/SCHEDULER.md). It is part of the first trace entry's wait. */
    uint64_t plans;
    double plan_ms_last, plan_ms_max, plan_ms_total;
    size_t n_suspects;
    struct { char id[NNM_ID_MAX + 1]; double until_ms; } suspects[NNM_SCHED_MAX_NODES];
} nnm_coord_stats;

/* Runs one request for model g (hash) with inputs (graph input order). outputs receive the
 * graph's outputs (owned). *trace (may be NULL) gets one entry per part actually used
 * (malloc'd, caller frees). plan_opts may be NULL. stats (may be NULL) is added to.
 * Errors: NNM_EINVAL (inputs), the scheduler's, NNM_ETIMEOUT (the request's own deadline,
 * if deadline_ms > 0, passed), the local engine's. On error outputs are zeroed.
 * Peers in stats->excluded get no part; a spot check that catches a peer adds it there
 * (expired entries are dropped at the start of a run). */
nnm_err nnm_coord_run(const nnm_coord_env *env, const nnm_graph *g,
                      const uint8_t hash[NNM_WIRE_HASH_BYTES], const nnm_plan_opts *plan_opts,
                      const nnm_tensor *inputs, int n_in, nnm_tensor *outputs, int n_out,
                      unsigned deadline_ms, nnm_trace_entry **trace, size_t *n_trace,
                      nnm_coord_stats *stats, nnm_diag *diag);

/* 1 if stats (may be NULL) lists peer as excluded now (its exclusion has not expired). */
int nnm_coord_peer_excluded(const nnm_coord_stats *stats, const char *peer);

/* 1 if peer let a task time out recently and has not answered since (stats may be NULL). */
int nnm_coord_peer_suspect(const nnm_coord_stats *stats, const char *peer);

/* Forgets a suspicion (the peer rejoined or answered). */
void nnm_coord_peer_unsuspect(nnm_coord_stats *stats, const char *peer);

/* Serves a TASK (not a whole-model request) or a TENSOR frame from a peer: runs the slice
 * with env->worker and sends back a RESULT with the same request id (status non-zero on
 * failure), after sending its forwarded pieces; or stores a shipped model; or takes pieces.
 * A routed TASK whose awaited inputs are not whole yet waits in env->inbox: msg is then
 * moved there (zeroed); otherwise it stays the caller's (clean it up either way). */
nnm_err nnm_coord_serve(const nnm_coord_env *env, nnm_link_msg *msg, nnm_diag *diag);

#ifdef __cplusplus
}
#endif
#endif
