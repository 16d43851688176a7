/* scheduler/sched_int.h — internals of the scheduler shared by its files and its unit tests:
 * the mesh view with refinement state, the per-model analysis (prefix sums, live sets at
 * every cut, per-stage part estimates) and the planning context of the DP. */
#ifndef NNM_SCHEDULER_SCHED_INT_H
#define NNM_SCHEDULER_SCHED_INT_H

#include <stdint.h>

#include "nnmesh/scheduler.h"
#include "ir.h"

#define SCHED_MAXN NNM_SCHED_MAX_NODES
#define SCHED_MAX_CFG (SCHED_MAXN * 4 + 8)
#define SCHED_MAX_SEG 16
#define SCHED_OVH_E 2.0      /* ms added to per-part overheads before taking logs (mesh.c) */

typedef struct sched_node {
    int present;
    nnm_mesh_node pub;                     /* models points into models below */
    double share;                          /* 1 / (1 + min(queue, NNM_QUEUE_MAX)); 1 for the
                                            * planning node itself */
    uint8_t (*models)[NNM_WIRE_HASH_BYTES]; /* owned copy */
    double logm[NNM_OPC__COUNT];           /* EMA of log(observed / predicted-advertised) */
    double logm_epoch[NNM_OPC__COUNT];     /* values when the candidate set was last built */
    int nobs;
    double ovh_logm;                       /* per-part overhead of a remote part here: EMA of
                                            * log((ms + SCHED_OVH_E) / (slice_overhead_ms +
                                            * SCHED_OVH_E)), see nnm_sched_observe_part */
    double ovh_logm_epoch;
    int ovh_nobs;
} sched_node;

typedef struct sched_link {
    int set;
    double rtt_ms, mbps;
    double logm;                           /* EMA of log(observed / advertised) */
    double logm_epoch;
} sched_link;

/* Estimate of a part of stage [a, b) split along an axis, as a function of the share s of
 * the stage's output dimension: work of class c = fixed[c] + split[c] * s. */
typedef struct sched_stage {
    unsigned char feasible;   /* analytic check passed (and not rejected by the slicer) */
    int64_t dim;              /* rows or channels of the stage outputs */
    double fixed[NNM_OPC__COUNT], split[NNM_OPC__COUNT];
} sched_stage;

typedef struct sched_model {
    uint8_t hash[NNM_WIRE_HASH_BYTES];
    const nnm_graph *g;
    int n;                          /* graph nodes */
    int *cls;                       /* per node: nnm_opclass */
    double *work;                   /* per node: flops, or out bytes for OTHER */
    double *pre[NNM_OPC__COUNT];    /* prefix sums of work per class, n + 1 */
    double *pre_param;              /* prefix sums of param bytes */
    double *live;                   /* bytes live across cut p (0..n) */
    int *minprod;                   /* per node: lowest producer index among its inputs */
    sched_stage *st[2];             /* [0] rows, [1] channels: index a * (n + 1) + b */
    struct sched_model *next;
} sched_model;

/* A cached plan set: one plan for static policies, candidates + bandit for adaptive. */
typedef struct sched_entry {
    uint8_t hash[NNM_WIRE_HASH_BYTES];
    uint64_t version, epoch;
    uint64_t members;               /* s->members it was built for (adaptive sets) */
    int stale;                      /* conditions changed since its last DP (see plan.c) */
    uint64_t pred_epoch;            /* epoch the arms' predictions are from (epoch: the DP's) */
    int objective, policy, pin, lossy, src;
    uint64_t generation;
    int n_arms;
    nnm_plan *arms[32];
    double cnt[32], sum[32];        /* discounted counts and latency sums */
    double prior[32];               /* predicted latency (the prior mean) */
    unsigned char local[32];        /* the arm runs every part on the coordinator */
    unsigned char runs[32];         /* measurements so far, up to 2 */
    int dp_arm;                     /* the arm holding the latest DP plan */
    int pending;                    /* its variants are not built yet (see plan.c) */
    double dp_ms;                   /* measured time of one DP run for this set */
    double served_ms;               /* request time observed since the last planning */
    double cal_cnt, cal_sum;        /* discounted count and sum of log(measured / predicted)
                                     * over the arms with several remote parts (prior
                                     * calibration) */
    double cal1_cnt, cal1_sum;      /* the same over the arms with one remote part */
    unsigned char one[32];          /* the arm has one remote part (an offload, say) */
    double last_ms[32];             /* the arm's latest warm measurement */
    signed char drift[32];          /* it was off the arm's mean: +1 slower, -1 faster, 0 */
    int last_arm;                   /* the arm measured last, -1 none */
    uint64_t prev_generation;       /* the set this one replaced (late observations) */
    signed char prev_map[32];       /* its arm i -> arm here, or -1 */
    struct sched_entry *next;
} sched_entry;

struct nnm_sched {
    nnm_sched_config cfg;
    char self[NNM_ID_MAX + 1];
    sched_node nodes[SCHED_MAXN];
    sched_link links[SCHED_MAXN][SCHED_MAXN];
    uint64_t version;                /* any change that should re-plan (nnm_sched_version) */
    uint64_t members;                /* changes of membership, models, memory or draining
                                      * only: the plans of an adaptive set stay valid
                                      * across other changes (speeds, load, links) */
    uint64_t epoch;                  /* bumped when the refined model drifted */
    unsigned obs_since_epoch;        /* observations since the last bump */
    double send_logm;                /* the coordinator's send work per remote part: EMA of
                                      * log((ms + SCHED_OVH_E) / SCHED_OVH_E) (prior 0 ms) */
    double send_logm_epoch;
    uint64_t generation;
    sched_model *models;
    sched_entry *cache;
    int n_cache;
    uint64_t rng;
};

/* Stage configurations the DP chooses from. */
typedef struct sched_cfg {
    int type;                 /* NNM_STAGE_* */
    int axis;                 /* split: 0 rows, 1 channels */
    int k;                    /* nodes */
    int gstart;               /* throughput groups: position of nodes[0] in the speed
                               * order (a stage follows the group ending there); else -1 */
    int nodes[SCHED_MAXN];    /* mesh indices */
} sched_cfg;

/* Who holds the data at a cut: mesh index and fraction of the bytes. */
typedef struct sched_hold {
    int k;
    int nodes[SCHED_MAXN];
    double frac[SCHED_MAXN];
} sched_hold;

typedef struct sched_ctx {
    const nnm_sched *s;
    sched_model *m;
    int refined;
    int policy, objective, lossy;
    int src, sink, pin;
    double rate[SCHED_MAXN][NNM_OPC__COUNT];   /* work units per ms */
    double ovh[SCHED_MAXN];        /* per-part overhead of a remote part on each node (ms) */
    double send;                   /* coordinator's send work per remote part (ms) */
    double weight[SCHED_MAXN];     /* fixed share weights (EQUAL/MEMORY), 0 = equalize */
    double perturb[SCHED_MAXN];    /* share multipliers (bandit candidates), 1 = none */
    uint32_t exclude;              /* mesh indices not to use for parts */
    int whole_on;                  /* 1 + the mesh index every stage runs on (the adaptive
                                    * policy's offload candidates); 0: none */
    int groups;                    /* throughput: configurations are chained groups */
    int n_cfg;
    sched_cfg cfg[SCHED_MAX_CFG];
} sched_ctx;

/* A DP solution: stages [cut[i], cut[i+1]) with configuration cfg[i]. */
typedef struct sched_chain {
    int n;
    int cut[1025];
    int cfg[1024];
    double cost;
} sched_chain;

/* mesh.c */
int sched__node_find(const nnm_sched *s, const char *id);
double sched__rate(const nnm_sched *s, int node, int c, int refined);
double sched__link_ms(const nnm_sched *s, int from, int to, double bytes, int refined,
                      int lossy, int is_f32, nnm_codec *codec);
double sched__link_rtt(const nnm_sched *s, int from, int to, int refined);
int sched__has_model(const nnm_sched *s, int node, const uint8_t *hash);
/* Per-part overhead (ms) of a part on node j for the coordinator sink: slice_overhead_ms
 * for the sink's own parts and on the advertised model, the learned one otherwise. */
double sched__part_ovh(const nnm_sched *s, int j, int sink, int refined);
/* The coordinator's serial send work per remote part (ms): 0 on the advertised model. */
double sched__send_ms(const nnm_sched *s, int refined);
/* Milliseconds to move bytes from -> to with a given codec (0 when from == to). */
double sched__edge_ms(const nnm_sched *s, int from, int to, double bytes, nnm_codec codec,
                      int refined);
/* Predicted transfer of a part on node j run by the coordinator sink: its inputs there and
 * its outputs back, each with its planned codec (as nnm_sched_plan_predict times them). */
double sched__part_xfer_ms(const nnm_sched *s, int sink, int j, const nnm_plan_part *pp,
                           int refined);

/* cost.c */
nnm_err sched__model_get(nnm_sched *s, const nnm_graph *g, const uint8_t *hash,
                         sched_model **out, nnm_diag *diag);
void sched__model_free(sched_model *m);
void sched__ctx_init(sched_ctx *c, const nnm_sched *s, sched_model *m, int refined);
void sched__ctx_configs(sched_ctx *c);
/* Time of stage [a, b) in configuration cfg after holders h; fills shares (split: per cfg
 * node, 0 = dropped) and, for branches, seg/assign. Returns INFINITY if infeasible. */
double sched__stage_ms(const sched_ctx *c, const sched_cfg *cfg, int a, int b,
                       const sched_hold *h, double *shares, int *nseg, int *segcut,
                       int *assign);
void sched__hold_of(const sched_ctx *c, const sched_cfg *cfg, sched_hold *h);
double sched__sink_ms(const sched_ctx *c, const sched_hold *h);
/* Cost of a chain evaluated with the same functions as the DP (for tests). */
double sched__chain_ms(const sched_ctx *c, const sched_chain *ch);

/* plan.c */
nnm_err sched__dp(const sched_ctx *c, sched_chain *out, nnm_diag *diag);
void sched__entry_free(sched_entry *e);   /* NULL-safe */
/* The adaptive policy's choice among e's arms (exposed for tests). */
int sched__pick_arm(const nnm_sched *s, const sched_entry *e);
/* The same with `backlog` requests waiting at the coordinator (nnm_plan_opts.backlog). */
int sched__pick_arm_backlog(const nnm_sched *s, const sched_entry *e, int backlog);

#endif
