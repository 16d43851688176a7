/* nnmesh/exec.h — running a graph, or a slice of it, on this machine.
 *
 * An executor binds a graph to kernels (XNNPACK where it has the op, the portable reference
 * kernels elsewhere), plans one activation arena by liveness, and runs the graph many times.
 * A slice is itself a graph: nnm_graph_slice() cuts nodes [a, b) of the topological order,
 * or a part of them (a range of output channels, or a band of output rows with the input
 * halo traced back), into a standalone graph whose inputs and outputs carry the region of
 * the original tensor they cover. Running every part and writing each output into its
 * region reproduces the slice. */
#ifndef NNMESH_EXEC_H
#define NNMESH_EXEC_H

#include "nnmesh/graph.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nnm_exec nnm_exec;

enum { NNM_BACKEND_AUTO = 0, NNM_BACKEND_REF = 1, NNM_BACKEND_XNN = 2 };

typedef struct nnm_exec_opts {
    int threads;        /* 0 or 1: single thread */
    int backend;        /* NNM_BACKEND_*: AUTO uses XNNPACK where it can */
    int no_arena;       /* one buffer per tensor instead of the liveness-planned arena */
    int profile;        /* time every node (see nnm_exec_profile_get) */
} nnm_exec_opts;

/* Prepares g for execution (packs weights). g must outlive the executor. opts may be NULL.
 * Errors: NNM_ENOMEM, NNM_EBACKEND, NNM_EUNSUPPORTED. */
nnm_err nnm_exec_new(nnm_exec **out, const nnm_graph *g, const nnm_exec_opts *opts,
                     nnm_diag *diag);
/* Like nnm_exec_new, but takes ownership of g (freed by nnm_exec_free, also on error) and
 * frees every weight that only XNNPACK reads, once XNNPACK has packed its own copy: a model
 * then costs its weights once, not twice. The graph's accessors still work; its released
 * constants must not be used again (do not slice it). */
nnm_err nnm_exec_new_owning(nnm_exec **out, nnm_graph *g, const nnm_exec_opts *opts,
                            nnm_diag *diag);
void nnm_exec_free(nnm_exec *ex);   /* NULL-safe */

/* Runs the graph. inputs[i] matches graph input i (dtype and shape checked; the message
 * names the input). outputs[] receives n_out owned tensors (caller cleans them up), in
 * graph output order; n_out must equal nnm_graph_output_count. */
nnm_err nnm_exec_run(nnm_exec *ex, const nnm_tensor *inputs, int n_in, nnm_tensor *outputs,
                     int n_out, nnm_diag *diag);

/* Bytes of the activation arena (or of all per-tensor buffers with no_arena). */
size_t nnm_exec_arena_bytes(const nnm_exec *ex);
/* The executor's own graph (after the layout pass: it may have more nodes than the graph
 * given to nnm_exec_new, e.g. inserted Transposes). Borrowed. */
const nnm_graph *nnm_exec_graph(const nnm_exec *ex);
/* Name of the backend that runs node i of nnm_exec_graph ("xnn", "ref" or "alias"). */
const char *nnm_exec_node_backend(const nnm_exec *ex, int i);
/* With opts.profile: total milliseconds spent in node i over all runs so far. */
double nnm_exec_profile_get(const nnm_exec *ex, int i);

/* --- slices ---------------------------------------------------------------------------- */

typedef struct nnm_part {
    int kind;              /* NNM_PART_* */
    int64_t begin, end;    /* output channels or output rows [begin, end) of the slice's outputs */
} nnm_part;

/* Where a slice input or output sits in the original tensor: along axis, [begin, end);
 * axis -1 means the whole tensor. */
typedef struct nnm_region {
    int axis;
    int64_t begin, end;
} nnm_region;

/* Cuts nodes [a, b) of g (topological order) into a standalone graph that shares g's
 * unmodified weights (g must outlive it; channel parts own their weight slices). Its inputs are the
 * values that nodes in [a, b) read and that are produced before a (or are graph inputs);
 * its outputs are the values produced in [a, b) that are read at or after b or are graph
 * outputs. With part != NULL and kind != WHOLE, only that part is computed; channel parts
 * need every output of the slice to be 4-D with the channel axis traceable back to a conv
 * or gemm in the slice; row parts need every node in the slice to be spatially local
 * (conv, pools, elementwise, concat on channels). Errors: NNM_ERANGE (bad a, b or part),
 * NNM_EUNSUPPORTED (the slice cannot be split that way; the message says which node). */
nnm_err nnm_graph_slice(nnm_graph **out, const nnm_graph *g, int a, int b,
                        const nnm_part *part, nnm_diag *diag);
/* Region of the original tensor that slice input / output i covers. */
nnm_err nnm_graph_input_region(const nnm_graph *slice, int i, nnm_region *r);
nnm_err nnm_graph_output_region(const nnm_graph *slice, int i, nnm_region *r);
/* Copies region r of src into the fresh tensor dst (owned). */
nnm_err nnm_tensor_crop(nnm_tensor *dst, const nnm_tensor *src, const nnm_region *r);
/* Writes part into dst at region r (dst already has the whole shape). */
nnm_err nnm_tensor_place(nnm_tensor *dst, const nnm_tensor *part, const nnm_region *r);

#ifdef __cplusplus
}
#endif
#endif
