/* runtime/kernels.h — the operator interface: kernel backends behind one small vtable.
 *
 * Two backends: "ref", portable C for every op (the test oracle and the fallback), and
 * "xnn", XNNPACK for the ops it has. The executor asks a backend whether it supports a node
 * (after inference, so shapes and normalized attributes are final), prepares it once (weight
 * packing happens here), then runs it many times with fresh buffers.
 *
 * Buffers: every input and output tensor passed to run() is contiguous C order with the
 * shape of its value in the graph (NHWC ops see NHWC shapes). Input buffers handed to the
 * xnn backend have at least XNN_EXTRA_BYTES of readable slack after the data. Outputs never
 * alias inputs unless the node is one of the data-movement ops the executor aliases itself.
 */
#ifndef NNM_RUNTIME_KERNELS_H
#define NNM_RUNTIME_KERNELS_H

#include "ir.h"

typedef struct pthreadpool *pthreadpool_t;

typedef struct nnm_kctx {
    pthreadpool_t pool;     /* may be NULL: single thread */
    int threads;
} nnm_kctx;

typedef struct nnm_backend {
    const char *name;
    /* 1 if this backend can run node n of g as it stands. */
    int (*supports)(const nnm_graph *g, const nnm_node *n);
    /* Creates per-node state (packed weights, operator objects). Constant inputs are read
     * from the graph; the state must not keep pointers into the graph's constants (the
     * graph may be freed first). *state may be set to NULL if none is needed. */
    nnm_err (*prepare)(void **state, const nnm_graph *g, const nnm_node *n,
                       const nnm_kctx *ctx, nnm_diag *diag);
    /* Runs the node. in[i] is NULL for an absent optional input; constant inputs are passed
     * too (as views of the graph's data). out[] are preallocated to the inferred shapes. */
    nnm_err (*run)(void *state, const nnm_node *n, const nnm_tensor *const *in,
                   nnm_tensor *const *out, const nnm_kctx *ctx, nnm_diag *diag);
    void (*release)(void *state);    /* NULL-safe */
} nnm_backend;

extern const nnm_backend nnm_backend_ref;
extern const nnm_backend nnm_backend_xnn;

/* The reference kernel for any node: stateless, single-threaded, every op in nnm_op (for
 * every dtype the op allows; arithmetic in float32 plus int32/int64 where shape
 * computations need it). Reads normalized attributes only. Errors: NNM_EUNSUPPORTED for
 * a dtype it lacks, naming the node. */
nnm_err nnm_ref_run(const nnm_node *n, const nnm_tensor *const *in, nnm_tensor *const *out,
                    nnm_diag *diag);

/* XNNPACK is initialized once per process (thread-safe). NNM_EBACKEND if it fails. */
nnm_err nnm_xnn_init(nnm_diag *diag);

#endif
