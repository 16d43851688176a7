/* runtime/tensor.c — dtype facts and owned tensor buffers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nnmesh/tensor.h"

size_t nnm_dtype_size(nnm_dtype dt)
{
    switch (dt) {
    case NNM_DT_F32: case NNM_DT_I32: return 4;
    case NNM_DT_F16: return 2;
    case NNM_DT_I8: case NNM_DT_U8: case NNM_DT_BOOL: return 1;
    case NNM_DT_I64: case NNM_DT_F64: return 8;
    default: return 0;
    }
}

const char *nnm_dtype_name(nnm_dtype dt)
{
    switch (dt) {
    case NNM_DT_F32: return "float32";
    case NNM_DT_F16: return "float16";
    case NNM_DT_I8: return "int8";
    case NNM_DT_U8: return "uint8";
    case NNM_DT_I32: return "int32";
    case NNM_DT_I64: return "int64";
    case NNM_DT_BOOL: return "bool";
    case NNM_DT_F64: return "float64";
    default: return "?";
    }
}

int64_t nnm_shape_numel(const int64_t *shape, int ndim, size_t elem_size)
{
    if (ndim < 0 || ndim > NNM_MAX_DIMS) return -1;
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return -1;
        if (shape[i] != 0 && n > INT64_MAX / shape[i]) return -1;
        n *= shape[i];
    }
    if (elem_size > 1 && (uint64_t)n > SIZE_MAX / elem_size) return -1;
    return n;
}

nnm_err nnm_tensor_init(nnm_tensor *t, nnm_dtype dt, int ndim, const int64_t *shape)
{
    memset(t, 0, sizeof *t);
    size_t es = nnm_dtype_size(dt);
    if (es == 0 || ndim < 0 || ndim > NNM_MAX_DIMS) return NNM_EINVAL;
    int64_t n = nnm_shape_numel(shape, ndim, es);
    if (n < 0) return NNM_ERANGE;
    size_t bytes = (size_t)n * es;
    /* Allocate at least 16 bytes beyond so XNNPACK's over-reads stay inside the block. */
    void *p = calloc(1, bytes + 16);
    if (p == NULL) return NNM_ENOMEM;
    t->dtype = dt;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    t->data = p;
    t->nbytes = bytes;
    t->owned = 1;
    return NNM_OK;
}

void nnm_tensor_cleanup(nnm_tensor *t)
{
    if (t == NULL) return;
    if (t->owned) free(t->data);
    memset(t, 0, sizeof *t);
}

char *nnm_shape_format(char *buf, size_t len, const int64_t *shape, int ndim)
{
    size_t o = 0;
    if (len == 0) return buf;
    buf[0] = '\0';
    o += (size_t)snprintf(buf + o, len - o, "[");
    for (int i = 0; i < ndim && o < len; i++)
        o += (size_t)snprintf(buf + o, len - o, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (o < len) snprintf(buf + o, len - o, "]");
    return buf;
}
