/* nnmesh/coord.h — running one request across the mesh (the coordinator), and serving the
 * tasks other coordinators send (the worker side of the protocol).
 *
 * The coordinator is whichever node took the request. It asks the scheduler for a plan,
 * then runs it stage by stage: for each part it crops the part's inputs from the whole
 * tensors it holds, sends a TASK (sealed, through the link) to the part's node — first the
 * part's weights as an ONNX slice if that node does not hold the model — or runs the part
 * itself, and places each part's outputs into the whole tensors. Data flows through the
 * coordinator (a star): simple to make exact and fault tolerant; stage-to-stage forwarding
 * is not done yet.
 *
 * Faults: every task has a deadline. A part whose node times out, is declared gone, or
 * answers with an error is run again on the coordinator (which holds the model), so a dead,
 * stopped or lying-about-capacity peer costs latency, never the answer. Every task carries
 * its own id in the frame's request field; a result whose id is unknown, already answered
 * or from another sender is discarded (late and duplicate results). */
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
    nnm_codec codec;               /* wire codec for task inputs/outputs (default AUTO) */
} nnm_coord_env;

typedef struct nnm_coord_stats {
    uint64_t tasks_sent, tasks_local, tasks_retried;
    uint64_t models_sent;
    uint64_t results_late;         /* discarded: unknown, answered or from another sender */
} nnm_coord_stats;

/* Runs one request for model g (hash) with inputs (graph input order). outputs receive the
 * graph's outputs (owned). *trace (may be NULL) gets one entry per part actually used
 * (malloc'd, caller frees). plan_opts may be NULL. stats (may be NULL) is added to.
 * Errors: NNM_EINVAL (inputs), the scheduler's, NNM_ETIMEOUT (the request's own deadline,
 * if deadline_ms > 0, passed), the local engine's. On error outputs are zeroed. */
nnm_err nnm_coord_run(const nnm_coord_env *env, const nnm_graph *g,
                      const uint8_t hash[NNM_WIRE_HASH_BYTES], const nnm_plan_opts *plan_opts,
                      const nnm_tensor *inputs, int n_in, nnm_tensor *outputs, int n_out,
                      unsigned deadline_ms, nnm_trace_entry **trace, size_t *n_trace,
                      nnm_coord_stats *stats, nnm_diag *diag);

/* Serves a TASK (not a whole-model request) or a model-carrying TENSOR frame from a peer:
 * runs the slice with env->worker and sends back a RESULT with the same request id (status
 * non-zero and an ERROR-like message on failure), or stores the model. Returns what
 * happened; the link message stays the caller's. */
nnm_err nnm_coord_serve(const nnm_coord_env *env, const nnm_link_msg *msg, nnm_diag *diag);

#ifdef __cplusplus
}
#endif
#endif
