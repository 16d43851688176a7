/* nnmesh/worker.h — the part of a node that runs slices for the mesh.
 *
 * A worker holds models by content hash (BLAKE2b-256 of the ONNX bytes): whole models the
 * node's config lists, and slice models a coordinator sent (cached on disk under their hash,
 * so a restarted node does not fetch them again). It runs a task — nodes [begin, end) of a
 * model, or a part of them — from named input tensors, keeping the prepared executors of
 * recent tasks so a stream of requests pays slicing and weight packing once.
 *
 * Not thread-safe: one thread drives a worker. */
#ifndef NNMESH_WORKER_H
#define NNMESH_WORKER_H

#include <stddef.h>
#include <stdint.h>

#include "nnmesh/exec.h"
#include "nnmesh/graph.h"
#include "nnmesh/wire.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nnm_worker nnm_worker;

typedef struct nnm_worker_opts {
    int threads;               /* kernel threads (0/1: one) */
    int backend;               /* NNM_BACKEND_* */
    const char *cache_dir;     /* where received slice models are kept; NULL: memory only */
    size_t max_tasks;          /* prepared executors kept (LRU), default 16 */
} nnm_worker_opts;

/* A task's output: a value of the task's model, the region of the original tensor it
 * covers, and the data (owned). */
typedef struct nnm_task_output {
    char *name;
    nnm_region region;
    nnm_tensor t;
} nnm_task_output;

/* Creates a worker. opts may be NULL. Errors: NNM_ENOMEM, NNM_EIO (cache_dir cannot be
 * created). */
nnm_err nnm_worker_new(nnm_worker **out, const nnm_worker_opts *opts, nnm_diag *diag);
void nnm_worker_free(nnm_worker *w);   /* NULL-safe */

/* Content hash of an ONNX image (BLAKE2b-256). */
void nnm_model_hash(uint8_t out[NNM_WIRE_HASH_BYTES], const void *buf, size_t len);

/* The same hash of a file, read in pieces (the model's id in adverts and requests). Errors:
 * NNM_EIO ("PATH: cannot read: ..."). */
nnm_err nnm_model_hash_file(uint8_t out[NNM_WIRE_HASH_BYTES], const char *path, nnm_diag *diag);

/* Adds a model; the worker takes g (also on error). Errors: NNM_ENOMEM. A hash already held
 * is replaced. */
nnm_err nnm_worker_add_model(nnm_worker *w, const uint8_t hash[NNM_WIRE_HASH_BYTES],
                             nnm_graph *g, nnm_diag *diag);
/* Loads an ONNX image sent by a peer, after checking that its hash is `hash`; stores it in
 * cache_dir/<hex>.onnx. Errors: NNM_ECRYPTO (hash mismatch), the importer's errors, NNM_EIO. */
nnm_err nnm_worker_put_model(nnm_worker *w, const uint8_t hash[NNM_WIRE_HASH_BYTES],
                             const void *onnx, size_t len, nnm_diag *diag);
/* 1 if the worker holds the model (in memory or in its disk cache, which it then loads). */
int nnm_worker_has_model(nnm_worker *w, const uint8_t hash[NNM_WIRE_HASH_BYTES]);
/* The model (borrowed) or NULL. */
const nnm_graph *nnm_worker_get_model(nnm_worker *w, const uint8_t hash[NNM_WIRE_HASH_BYTES]);

/* Runs the task spec (model hash, node range, part) on named inputs: every input of the
 * task's slice must be among them, cropped to the region the slice expects (extra inputs are
 * ignored). *outs gets *n_out outputs (free with nnm_task_outputs_free). compute_ms (may be
 * NULL) gets the kernel time. Errors: NNM_ENOTFOUND (model not held: the message names the
 * hash, so the coordinator can send it), NNM_EINVAL (a missing input, named), NNM_ESHAPE (an
 * input of the wrong shape), the slicer's and executor's errors. The worker stays usable. */
nnm_err nnm_worker_run(nnm_worker *w, const nnm_slice_spec *spec, const char *const *in_names,
                       const nnm_tensor *in, size_t n_in, nnm_task_output **outs,
                       size_t *n_out, double *compute_ms, nnm_diag *diag);
void nnm_task_outputs_free(nnm_task_output *outs, size_t n);

#ifdef __cplusplus
}
#endif
#endif
