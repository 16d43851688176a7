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

/* Decodes a whole .npy image from memory into an owned tensor (free it with
 * nnm_tensor_cleanup); buf is only read. Errors: NNM_EFORMAT (bad magic, header, negative
 * dimension, truncated or trailing data), NNM_EUNSUPPORTED (version, dtype, big-endian,
 * Fortran order), NNM_ERANGE (more than NNM_MAX_DIMS dimensions, size overflow),
 * NNM_ENOMEM, NNM_EINVAL (out NULL). On error *out is zeroed. */
nnm_err nnm_npy_decode(nnm_tensor *out, const void *buf, size_t len, nnm_diag *diag);

/* Reads path (a regular file, pipe or device) and decodes it; the diagnostic starts with
 * the path. Errors: those of nnm_npy_decode, and NNM_EIO (cannot open or read; the message
 * holds strerror). */
nnm_err nnm_npy_load(nnm_tensor *out, const char *path, nnm_diag *diag);

/* Encodes t as a version 1.0 .npy image, byte-identical to numpy's np.save, in a malloc'd
 * buffer (*buf, *len); caller frees. Errors: NNM_EINVAL (bad dtype, ndim, or nbytes not
 * matching the shape), NNM_ERANGE, NNM_ENOMEM; on error *buf is NULL. */
nnm_err nnm_npy_encode(void **buf, size_t *len, const nnm_tensor *t, nnm_diag *diag);

/* Writes t to path (created 0644 less the umask, written to path.tmp and renamed over
 * path, so readers never see a partial file). Errors: those of nnm_npy_encode, and NNM_EIO
 * naming the path and strerror; on error path is unchanged and path.tmp removed. */
nnm_err nnm_npy_save(const char *path, const nnm_tensor *t, nnm_diag *diag);

#ifdef __cplusplus
}
#endif
#endif
