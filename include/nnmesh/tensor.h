/* nnmesh/tensor.h — dense tensors: dtype, shape and a contiguous C-order buffer.
 *
 * nnm_tensor is a plain value type (like a struct iovec): the fields are public. A tensor
 * either owns its buffer (owned != 0, freed by nnm_tensor_cleanup) or borrows it. */
#ifndef NNMESH_TENSOR_H
#define NNMESH_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "nnmesh/err.h"

#ifdef __cplusplus
extern "C" {
#endif

#define NNM_MAX_DIMS 8

/* Element types. The numeric values are part of the wire format (frames carry them):
 * append only. */
typedef enum nnm_dtype {
    NNM_DT_UNDEFINED = 0,
    NNM_DT_F32 = 1,
    NNM_DT_F16 = 2,
    NNM_DT_I8 = 3,
    NNM_DT_U8 = 4,
    NNM_DT_I32 = 5,
    NNM_DT_I64 = 6,
    NNM_DT_BOOL = 7,
    NNM_DT_F64 = 8,
    NNM_DT__COUNT
} nnm_dtype;

/* How a slice of a model is split between nodes (the engine's slicer and the wire share
 * it). The numeric values are wire values: append only. */
typedef enum nnm_part_kind {
    NNM_PART_WHOLE = 0,        /* the whole slice */
    NNM_PART_CHANNELS = 1,     /* output channels [begin, end) */
    NNM_PART_ROWS = 2,         /* output rows [begin, end) */
    NNM_PART__COUNT
} nnm_part_kind;

typedef struct nnm_tensor {
    nnm_dtype dtype;
    int ndim;                       /* 0..NNM_MAX_DIMS; 0 is a scalar */
    int64_t shape[NNM_MAX_DIMS];
    void *data;                     /* ndim product * dtype size bytes, C order */
    size_t nbytes;
    int owned;                      /* data was allocated for this tensor */
} nnm_tensor;

/* Bytes per element (0 for NNM_DT_UNDEFINED or an unknown value). */
size_t nnm_dtype_size(nnm_dtype dt);
/* Short lower-case name ("float32", "int64", ...) or "?". */
const char *nnm_dtype_name(nnm_dtype dt);

/* Number of elements of a shape; returns -1 if a dimension is negative or the product
 * overflows int64 or SIZE_MAX bytes for elem_size (pass 1 to ignore bytes). */
int64_t nnm_shape_numel(const int64_t *shape, int ndim, size_t elem_size);

/* Allocates a zeroed, owned tensor. Errors: NNM_EINVAL (bad dtype or ndim),
 * NNM_ERANGE (negative or overflowing shape), NNM_ENOMEM. On error *t is zeroed. */
nnm_err nnm_tensor_init(nnm_tensor *t, nnm_dtype dt, int ndim, const int64_t *shape);

/* Frees an owned buffer and zeroes the struct. NULL-safe. */
void nnm_tensor_cleanup(nnm_tensor *t);

/* Writes "[1, 3, 224, 224]" into buf (always NUL-terminated); returns buf. */
char *nnm_shape_format(char *buf, size_t len, const int64_t *shape, int ndim);

#ifdef __cplusplus
}
#endif
#endif
