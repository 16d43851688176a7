/* nnmesh/scheduler.h — the scheduler core: mesh view, cost model, planner, policies.
 *
 * Pure computation, no networking. A scheduler (nnm_sched) lives in every node; the node
 * that takes a request asks it for a plan. It keeps:
 *   - a mesh view: nodes (measured GFLOP/s per op class as adverts carry them, free memory,
 *     load, models held) and links per ordered pair (RTT, throughput);
 *   - a cost model: compute time of graph nodes [a, b) (or a part) on a node, transfer time
 *     of a boundary tensor over a link with a given codec, both refined online from observed
 *     slice and transfer times (an exponential moving average of observed/predicted), and
 *     a learned per-part overhead of every peer and send cost of the coordinator;
 *   - a planner: dynamic programming over cut points of the topological order, choosing for
 *     each stage one node, k parallel parts (output rows or channels, sized to each node's
 *     predicted speed) or k disjoint branches, for batch-1 latency or stream throughput;
 *   - policies for experiments (local, equal split, memory-proportional, static capacity,
 *     adaptive: a discounted UCB bandit over candidate plans fed by measured latency).
 * docs/SCHEDULER.md explains the model, the DP and the bandit.
 *
 * A plan (nnm_plan) is a plain value: stages of parts, each part a node id plus the fields
 * of an nnm_slice_spec (node range, part kind and range) and the regions of its inputs and
 * outputs; every part input and output carries the wire codec of its edge. Plans returned
 * to callers are owned by them (nnm_plan_free). Not thread-safe: one scheduler per thread,
 * or a lock. */
#ifndef NNMESH_SCHEDULER_H
#define NNMESH_SCHEDULER_H

#include <stddef.h>
#include <stdint.h>

#include "nnmesh/err.h"
#include "nnmesh/exec.h"
#include "nnmesh/graph.h"
#include "nnmesh/wire.h"

#ifdef __cplusplus
extern "C" {
#endif

#define NNM_SCHED_MAX_NODES 32

/* Op classes of the cost model. The first four match the capacity probes (nnm_probe). */
typedef enum nnm_opclass {
    NNM_OPC_CONV3X3 = 0,   /* convolutions with a kernel larger than 1x1, group 1 */
    NNM_OPC_CONV1X1,       /* pointwise convolutions, group 1 */
    NNM_OPC_DWCONV,        /* depthwise and grouped convolutions */
    NNM_OPC_FC,            /* Gemm, MatMul */
    NNM_OPC_OTHER,         /* everything else: memory bound, work counted in output bytes */
    NNM_OPC__COUNT
} nnm_opclass;

typedef enum nnm_policy {
    NNM_POLICY_LOCAL = 0,  /* everything on the coordinator */
    NNM_POLICY_EQUAL,      /* equal parts on all nodes; stage cuts from the DP */
    NNM_POLICY_MEMORY,     /* parts proportional to free memory; stage cuts from the DP */
    NNM_POLICY_CAPACITY,   /* the DP on advertised capacities, never refined */
    NNM_POLICY_ADAPTIVE,   /* the DP on the refined model + a bandit over candidate plans */
    NNM_POLICY__COUNT
} nnm_policy;

typedef enum nnm_objective {
    NNM_OBJ_LATENCY = 0,   /* batch-1 latency (default) */
    NNM_OBJ_THROUGHPUT,    /* stream throughput: the bottleneck stage of a pipeline */
    NNM_OBJ__COUNT
} nnm_objective;

typedef enum nnm_stage_kind {
    NNM_STAGE_SINGLE = 0,  /* one node runs the stage */
    NNM_STAGE_SPLIT,       /* k parts of the stage (rows or channels) on k nodes */
    NNM_STAGE_BRANCHES,    /* independent sub-ranges (disjoint branches) on several nodes */
    NNM_STAGE__COUNT
} nnm_stage_kind;

/* Queue lengths beyond this count as this (a busy node's share does not go to zero). */
#define NNM_QUEUE_MAX 3

/* The level a queue length counts as: 0 .. NNM_QUEUE_MAX. */
static inline uint32_t nnm_queue_level(uint32_t q)
{
    return q > NNM_QUEUE_MAX ? NNM_QUEUE_MAX : q;
}

/* A node as the scheduler sees it (a copy is kept; models are copied too). */
typedef struct nnm_mesh_node {
    char id[NNM_ID_MAX + 1];
    double gflops[NNM_OPC__COUNT];  /* advertised GFLOP/s per class; [NNM_OPC_OTHER] is
                                     * memory bandwidth in GB/s. 0: unknown (a default or
                                     * the conv3x3 figure is used) */
    uint64_t free_mem;              /* bytes; 0: unknown (no memory constraint) */
    uint32_t load_permille;         /* 0..1000: other work on the node; rates / (1 + load) */
    uint32_t queue;                 /* requests the node holds as their coordinator (running
                                     * or waiting; advert capability `queue`). A peer's rates
                                     * / (1 + min(queue, NNM_QUEUE_MAX)): its own requests
                                     * share its CPU with the parts it runs for others. The
                                     * planning node's own entry is not divided (its backlog
                                     * is nnm_plan_opts.backlog) */
    int draining;                   /* takes no new parts (still a valid source/sink) */
    size_t nmodels;
    const uint8_t (*models)[NNM_WIRE_HASH_BYTES];   /* hashes of models held (borrowed) */
} nnm_mesh_node;

typedef struct nnm_sched_config {
    double slice_overhead_ms;   /* cost per part run (default 0.3): the coordinator's own
                                 * parts, every part on the advertised model, and the prior
                                 * of the refined model's learned per-part overhead */
    double ema_alpha;           /* weight of a new observation (default 0.3) */
    double default_rtt_ms;      /* links never set (default 2) */
    double default_mbps;        /* MB/s of links never set (default 10) */
    double lz4_ratio;           /* estimated LZ4 size / raw size of activations (0.8) */
    double codec_mbps;          /* encode+decode speed of every codec, MB/s (default 500) */
    double fetch_amortize;      /* weights fetched by a node lacking the model are charged
                                 * 1/fetch_amortize of their transfer time (default 64) */
    int max_parts;              /* parts of a split stage (default 8, at most 32) */
    int max_arms;               /* bandit candidates (default 10) */
    double ucb_c;               /* UCB exploration weight (default 0.1) */
    double discount;            /* bandit discount per observation (default 0.95) */
    double plan_share;          /* adaptive: optional planning (a refresh after the refined
                                 * model drifted, building the DP plan's variants) waits
                                 * until it costs at most this share of the request time
                                 * observed since the last such step (default 0.1; 0: no
                                 * wait) */
    unsigned seed;              /* deterministic tie-breaking */
} nnm_sched_config;

typedef struct nnm_plan_opts {
    nnm_objective objective;
    nnm_policy policy;
    const char *source;         /* node holding the request input (NULL: the coordinator) */
    int pin_first;              /* the first stage runs whole on the source (sensor owner) */
    int allow_lossy;            /* f16 / int8 codecs may be chosen for f32 edges */
    int backlog;                /* requests waiting behind this one at the coordinator:
                                 * optional planning (adaptive refreshes and variants) would
                                 * hold each of them up, so its budget shrinks by 1 + backlog */
} nnm_plan_opts;

/* One input of a part: a value of the original graph, the region the part reads, where it
 * comes from and how it travels. */
typedef struct nnm_plan_input {
    char *value;               /* value name in the original graph (owned by the plan) */
    int src_stage;             /* producing stage, or -1: a request input at the source */
    nnm_region region;         /* of the whole tensor (axis -1: all of it) */
    size_t bytes;              /* raw bytes of the region */
    nnm_codec codec;           /* wire codec of this edge (NONE when local) */
} nnm_plan_input;

typedef struct nnm_plan_output {
    char *value;               /* owned */
    nnm_region region;
    size_t bytes;
    nnm_codec codec;           /* wire codec of the result edge back to the coordinator
                                * (NONE when local) */
} nnm_plan_output;

typedef struct nnm_plan_part {
    char node[NNM_ID_MAX + 1];
    int node_begin, node_end;  /* graph nodes [begin, end) (a sub-range for branches) */
    nnm_part part;             /* WHOLE, or rows / channels [begin, end) */
    int n_in, n_out;
    nnm_plan_input *in;        /* owned */
    nnm_plan_output *out;      /* owned */
    double work[NNM_OPC__COUNT];   /* flops per class (OTHER: bytes) of this part's slice */
    double pred_ms;            /* predicted compute time (slice_overhead_ms included; a
                                * remote part's learned overhead is not) */
} nnm_plan_part;

typedef struct nnm_plan_stage {
    int node_begin, node_end;
    nnm_stage_kind kind;
    int n_parts;
    nnm_plan_part *parts;      /* owned */
    double pred_end_ms;        /* predicted time the stage's last part ends */
} nnm_plan_stage;

typedef struct nnm_plan {
    uint8_t model_hash[NNM_WIRE_HASH_BYTES];
    uint64_t mesh_version;
    nnm_policy policy;
    nnm_objective objective;
    char coordinator[NNM_ID_MAX + 1];   /* the sink: outputs return here */
    char source[NNM_ID_MAX + 1];        /* holds the request input */
    int n_stages;
    nnm_plan_stage *stages;    /* owned */
    int n_out;
    nnm_plan_input *outputs;   /* graph outputs returning to the coordinator (owned) */
    double pred_latency_ms;    /* batch-1 latency predicted when planned */
    double pred_period_ms;     /* predicted time between results when streaming */
    int arm;                   /* adaptive: bandit candidate index; -1 otherwise */
    uint64_t generation;       /* adaptive: candidate set the arm belongs to */
} nnm_plan;

typedef struct nnm_sched nnm_sched;

/* Fills cfg with the defaults listed above. */
void nnm_sched_config_init(nnm_sched_config *cfg);

/* New scheduler for the coordinator self_id (an id, [a-z0-9-]{1,32}); the coordinator must
 * be added with nnm_sched_node_set before planning. cfg may be NULL (defaults).
 * Errors: NNM_EINVAL (bad id or config value, named), NNM_ENOMEM. */
nnm_err nnm_sched_new(nnm_sched **out, const char *self_id, const nnm_sched_config *cfg,
                      nnm_diag *diag);
/* Frees the scheduler, its plan cache and model analyses. NULL-safe. */
void nnm_sched_free(nnm_sched *s);

/* Adds or updates a node (copied). Bumps the mesh version when the node is new, its models,
 * memory (25%) or draining flag change (members: adaptive plan sets are rebuilt), or its
 * capacities (25%), load (300 permille) or queue level change (conditions: adaptive sets
 * are predicted again in place; other policies re-plan). Errors: NNM_EINVAL (bad id, negative
 * rate, load > 1000), NNM_ERANGE (more than NNM_SCHED_MAX_NODES), NNM_ENOMEM. */
nnm_err nnm_sched_node_set(nnm_sched *s, const nnm_mesh_node *n, nnm_diag *diag);
/* Removes a node (left or dead). NNM_ENOTFOUND if unknown. */
nnm_err nnm_sched_node_remove(nnm_sched *s, const char *id, nnm_diag *diag);
/* Sets the link from -> to as probed. The link's learned factor (nnm_sched_link_factor) is
 * kept, unless the probed time of a 64 KiB transfer changes by more than 2x either way (from
 * the defaults for a link not probed before): the link changed, and its factor is reset to 1
 * (and the mesh version changes). Errors: NNM_ENOTFOUND (unknown node), NNM_EINVAL
 * (rtt < 0, mbps <= 0). */
nnm_err nnm_sched_link_set(nnm_sched *s, const char *from, const char *to, double rtt_ms,
                           double mbps, nnm_diag *diag);
/* Mesh version: changes whenever plans should be recomputed or predicted again. */
uint64_t nnm_sched_version(const nnm_sched *s);

/* Fills n from a decoded advert: capacities "mflops-conv3x3", "mflops-conv1x1",
 * "mflops-dwconv", "mflops-fc" (MFLOP/s), "membw-mbps" (MB/s) and, as a fallback for every
 * compute class, "gflops"; free_mem, load and models borrowed from adv. Unknown capacity
 * names are ignored. Errors: NNM_EINVAL (bad id). */
nnm_err nnm_sched_node_from_advert(nnm_mesh_node *n, const char *id, const nnm_advert *adv,
                                   nnm_diag *diag);

/* --- cost model ------------------------------------------------------------------------- */

/* Op class of node i of g (topological order); NNM_OPC_OTHER if i is out of range. */
nnm_opclass nnm_sched_classify(const nnm_graph *g, int i);
/* Work of nodes [a, b) of g per class: flops, or output bytes for NNM_OPC_OTHER.
 * Errors: NNM_ERANGE. */
nnm_err nnm_sched_slice_work(const nnm_graph *g, int a, int b, double work[NNM_OPC__COUNT],
                             nnm_diag *diag);
/* Predicted milliseconds for node to do work (per class), overhead included; refined
 * selects the refined model (else advertised capacities only). NNM_ENOTFOUND. */
nnm_err nnm_sched_compute_ms(const nnm_sched *s, const char *node,
                             const double work[NNM_OPC__COUNT], int refined, double *ms,
                             nnm_diag *diag);
/* Predicted milliseconds to move bytes (raw) from -> to with codec: RTT/2 + wire bytes /
 * throughput + codec time; 0 when from == to. NNM_ENOTFOUND, NNM_EINVAL (codec). */
nnm_err nnm_sched_transfer_ms(const nnm_sched *s, const char *from, const char *to,
                              size_t bytes, nnm_codec codec, int refined, double *ms,
                              nnm_diag *diag);
/* Feeds an observed compute time of a part (from a result's trace) into the refined model
 * of its node: the observed/predicted ratio is spread over the op classes of the part by
 * their share of the prediction. Errors: NNM_ENOTFOUND, NNM_EINVAL (ms <= 0). */
nnm_err nnm_sched_observe_slice(nnm_sched *s, const nnm_plan_part *part, double observed_ms,
                                nnm_diag *diag);
/* Feeds an observed transfer of bytes (raw) from -> to. Errors as above. */
nnm_err nnm_sched_observe_transfer(nnm_sched *s, const char *from, const char *to,
                                   size_t bytes, double observed_ms, nnm_diag *diag);
/* Feeds the measured end-to-end latency of a request run with plan (adaptive policy: the
 * bandit's reward; other policies: ignored). NNM_EINVAL (ms <= 0). */
nnm_err nnm_sched_observe_latency(nnm_sched *s, const nnm_plan *plan, double observed_ms,
                                  nnm_diag *diag);
/* Feeds what one remote part cost when its result arrived, for the refined model's
 * per-part overhead of part->node and the coordinator's send work per remote part:
 * roundtrip_ms from the end of the task's send to the result taken (decoded) here,
 * compute_ms as the worker reported it, send_ms the coordinator's own work sending the task
 * (cropping, encoding, sealing, publishing). The overhead sample is roundtrip_ms -
 * compute_ms - the refined model's transfer of the part's inputs and outputs (their
 * planned codecs), floored at 0 (roundtrip_ms must end when the answer arrived, not when a
 * busy coordinator got to it: nnm_link_msg.arrived_ms). Both
 * figures are exponential moving averages that count towards the refined model's drift
 * (docs/SCHEDULER.md, "Cost model"). Errors, with nothing changed: NNM_ENOTFOUND (unknown
 * node), NNM_EINVAL (the coordinator's own part; a time that is negative or not finite). */
nnm_err nnm_sched_observe_part(nnm_sched *s, const nnm_plan_part *part, double roundtrip_ms,
                               double compute_ms, double send_ms, nnm_diag *diag);
/* Feeds the network time of one remote part's exchange: net_ms is the round trip (end of
 * the task's send to the result's arrival) minus the time the worker held the task (its
 * compute and its wait, from the result's trace). Both links between the coordinator and
 * part->node are refined by the ratio of net_ms to the probed prediction for the part's
 * input and output bytes (their planned codecs). Errors, with nothing changed:
 * NNM_ENOTFOUND (unknown node), NNM_EINVAL (the coordinator's own part; net_ms not a
 * positive finite time). */
nnm_err nnm_sched_observe_exchange(nnm_sched *s, const nnm_plan_part *part, double net_ms,
                                   nnm_diag *diag);
/* Multiplier observed/probed of the link from -> to (1: as probed), or 0 if a node is
 * unknown. Reset to 1 by a probe that changes the link by more than 2x (nnm_sched_link_set). */
double nnm_sched_link_factor(const nnm_sched *s, const char *from, const char *to);
/* Multiplier observed/advertised of node's time for class c (1: as advertised), or 0 if
 * the node is unknown. */
double nnm_sched_node_factor(const nnm_sched *s, const char *node, nnm_opclass c);
/* Per-part overhead (ms) the refined model charges a part on node: learned by
 * nnm_sched_observe_part for a peer (slice_overhead_ms until observed), always
 * slice_overhead_ms for the coordinator's own parts; -1 if the node is unknown. */
double nnm_sched_node_overhead(const nnm_sched *s, const char *node);
/* The coordinator's send work per remote part (ms) the refined model charges: learned by
 * nnm_sched_observe_part, 0 until observed. */
double nnm_sched_send_overhead(const nnm_sched *s);

/* --- planning --------------------------------------------------------------------------- */

/* Plans a request for graph g (hash identifies it in the cache and on the wire; g must be
 * the graph as loaded, and must outlive the scheduler's use of it: the analysis is cached
 * by hash). opts may be NULL (latency, adaptive, source = coordinator). *out gets a new
 * plan owned by the caller. Plans are cached per (hash, mesh version, objective, policy,
 * source, pin, lossy); the adaptive policy picks one of its candidates per call, and its
 * measurements carry over when a new version rebuilds the set (docs/SCHEDULER.md).
 * Errors: NNM_EINVAL (opts), NNM_ENOTFOUND (coordinator or source not in the mesh),
 * NNM_ESTATE (no node can run some stage, e.g. memory), NNM_ENOMEM, and the slicer's
 * errors if the graph cannot be sliced at all. */
nnm_err nnm_sched_plan(nnm_sched *s, const nnm_graph *g,
                       const uint8_t hash[NNM_WIRE_HASH_BYTES], const nnm_plan_opts *opts,
                       nnm_plan **out, nnm_diag *diag);
/* Writes one line into buf (NUL-terminated, truncated to len) on how the adaptive policy chose
 * plan (returned by nnm_sched_plan): per candidate arm its parts and nodes, its prediction
 * and calibrated prior, its discounted count and measured mean, and the calibration ratios;
 * "" when plan is not an adaptive arm of a cached set. For logs and experiments. */
void nnm_sched_explain(const nnm_sched *s, const nnm_plan *plan, char *buf, size_t len);
/* Predicts plan's batch-1 latency and streaming period under s's model (refined or not),
 * following every edge of the plan (regions, codecs) as a timed DAG.
 * Errors: NNM_ENOTFOUND (a node of the plan is not in s). */
nnm_err nnm_sched_plan_predict(const nnm_sched *s, const nnm_plan *plan, int refined,
                               double *latency_ms, double *period_ms, nnm_diag *diag);
/* Fraction of the plan's predicted compute that runs on node (0..1). */
double nnm_plan_node_share(const nnm_plan *plan, const char *node);
/* The codec a TASK for part asks its worker to answer with (nnm_slice_spec.result_codec):
 * its outputs' codec, or NNM_CODEC_AUTO (lossless) when they differ or there are none; a
 * slice spec has room for one. */
nnm_codec nnm_plan_part_result_codec(const nnm_plan_part *part);

/* One nnm_slice_spec per part, stage by stage, parts in order (spec k belongs to the k-th
 * part; its node is plan->stages[..].parts[..].node), result_codec as
 * nnm_plan_part_result_codec. attempt and deadline are 0: the caller sets them. *out is
 * malloc'd (caller frees). Errors: NNM_ENOMEM, NNM_ERANGE. */
nnm_err nnm_plan_to_specs(nnm_slice_spec **out, size_t *n, const nnm_plan *plan,
                          nnm_diag *diag);
/* Human-readable plan (for `nnmesh infer --explain`); g (may be NULL) adds node names.
 * *out is malloc'd, NUL-terminated (caller frees). Errors: NNM_ENOMEM. */
nnm_err nnm_plan_format(char **out, const nnm_plan *plan, const nnm_graph *g, nnm_diag *diag);
/* Deep copy. Errors: NNM_ENOMEM. */
nnm_err nnm_plan_copy(nnm_plan **out, const nnm_plan *plan, nnm_diag *diag);
void nnm_plan_free(nnm_plan *plan);   /* NULL-safe */

/* Runs every part of plan in this process (nnm_graph_slice + nnm_exec, backend as given),
 * cropping inputs to their regions and joining outputs into whole tensors: the reference
 * for distributed execution. inputs/outputs as nnm_exec_run on g.
 * Errors: those of slicing and execution, NNM_ESHAPE (regions do not join). */
nnm_err nnm_plan_run_local(const nnm_plan *plan, const nnm_graph *g, int backend,
                           const nnm_tensor *inputs, int n_in, nnm_tensor *outputs, int n_out,
                           nnm_diag *diag);

#ifdef __cplusplus
}
#endif
#endif
