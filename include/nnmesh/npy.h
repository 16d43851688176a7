/* nnmesh/npy.h — NumPy .npy files: the user-facing tensor exchange format.
 *
 * Versions 1.0, 2.0 and 3.0; dtypes float32, float16, int8, uint8, int32, int64, bool,
 * float64, little-endian (or byte-order-free); C order only. The header is parsed strictly:
 * exactly the three keys descr, fortran_order, shape; anything else is an error. */
#ifndef NNMESH_NPY_H
#define NNMESH_NPY_H

#include "nnmesh/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Decodes a whole .npy image from memory into an owned tensor. Errors: NNM_EFORMAT (bad
 * magic, header or length, Fortran order, trailing bytes), NNM_EUNSUPPORTED (dtype or
 * big-endian), NNM_ERANGE (more than NNM_MAX_DIMS dimensions, size overflow), NNM_ENOMEM.
 * On error *out is zeroed. */
nnm_err nnm_npy_decode(nnm_tensor *out, const void *buf, size_t len, nnm_diag *diag);

/* Reads path and decodes it; the diagnostic names the file. */
nnm_err nnm_npy_load(nnm_tensor *out, const char *path, nnm_diag *diag);

/* Encodes t as a version 1.0 .npy image in a malloc'd buffer (*buf, *len); caller frees. */
nnm_err nnm_npy_encode(void **buf, size_t *len, const nnm_tensor *t, nnm_diag *diag);

/* Writes t to path (created 0644, replaced atomically via a temporary file). */
nnm_err nnm_npy_save(const char *path, const nnm_tensor *t, nnm_diag *diag);

#ifdef __cplusplus
}
#endif
#endif
