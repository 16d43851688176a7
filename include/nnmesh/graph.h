/* nnmesh/graph.h — a model loaded from ONNX: the graph IR seen from outside.
 *
 * Loading parses the file with a protobuf-c parser generated from onnx.proto, infers every
 * shape, folds constants, folds BatchNormalization into convolutions, fuses clamp
 * activations, and prunes dead nodes. The graph is immutable afterwards and may be shared
 * by several executors. */
#ifndef NNMESH_GRAPH_H
#define NNMESH_GRAPH_H

#include <stddef.h>
#include <stdint.h>

#include "nnmesh/err.h"
#include "nnmesh/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nnm_graph nnm_graph;

typedef struct nnm_load_opts {
    int64_t batch;        /* value for symbolic/unknown input dims (0 = 1) */
    int no_optimize;      /* keep BatchNormalization and activations as separate nodes */
} nnm_load_opts;

/* Loads an ONNX model from path (opsets 7..17 of the default domain). opts may be NULL.
 * Errors: NNM_EIO (cannot read), NNM_EFORMAT (not ONNX, truncated, inconsistent),
 * NNM_EUNSUPPORTED (an op, attribute or dtype; the message names the node and op),
 * NNM_ESHAPE, NNM_ENOMEM. The diagnostic starts with the path. */
nnm_err nnm_graph_load_onnx(nnm_graph **out, const char *path, const nnm_load_opts *opts,
                            nnm_diag *diag);
/* The same from an in-memory image; name is used in messages. */
nnm_err nnm_graph_decode_onnx(nnm_graph **out, const void *buf, size_t len, const char *name,
                              const nnm_load_opts *opts, nnm_diag *diag);
void nnm_graph_free(nnm_graph *g);   /* NULL-safe */

/* Writes g (a whole model or a slice) as an ONNX model at opset 13 in a malloc'd buffer
 * (*out, *len; caller frees): parameters that opset 13 takes as inputs become initializers,
 * fused activations become Relu/Clip nodes. Re-importing it gives the same graph. Errors:
 * NNM_EUNSUPPORTED (a channels-last graph from the executor, or an opset-11 Softmax over
 * several axes), NNM_ENOMEM. */
nnm_err nnm_graph_encode_onnx(void **out, size_t *len, const nnm_graph *g, nnm_diag *diag);
/* The same into path (atomically, through path.tmp). */
nnm_err nnm_graph_save_onnx(const char *path, const nnm_graph *g, nnm_diag *diag);

typedef struct nnm_node_info {
    const char *name;      /* borrowed from the graph */
    const char *op;        /* ONNX op type, e.g. "Conv" */
    int ndim;              /* of the first output */
    int64_t shape[NNM_MAX_DIMS];
    nnm_dtype dtype;
    double flops;
    size_t param_bytes;
    size_t out_bytes;
    const char *fused;     /* "Relu", "Clip" or NULL: an activation fused into this node */
} nnm_node_info;

typedef struct nnm_io_info {
    const char *name;      /* borrowed */
    nnm_dtype dtype;
    int ndim;
    int64_t shape[NNM_MAX_DIMS];
} nnm_io_info;

int nnm_graph_node_count(const nnm_graph *g);
/* Fills info for node i in topological order; NNM_ERANGE if i is out of range. */
nnm_err nnm_graph_node_get(const nnm_graph *g, int i, nnm_node_info *info);
int nnm_graph_input_count(const nnm_graph *g);
int nnm_graph_output_count(const nnm_graph *g);
nnm_err nnm_graph_input_get(const nnm_graph *g, int i, nnm_io_info *info);
nnm_err nnm_graph_output_get(const nnm_graph *g, int i, nnm_io_info *info);

/* Lists the op types in an ONNX file that nnmesh does not support, without failing on
 * them: writes up to cap names (borrowed from a static table or the graph... see below)
 * joined by ", " into buf and returns how many distinct unsupported op types there are,
 * or -1 if the file cannot be parsed (diag filled). */
int nnm_onnx_unsupported_ops(const char *path, char *buf, size_t len, nnm_diag *diag);

#ifdef __cplusplus
}
#endif
#endif
