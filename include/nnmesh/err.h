/* nnmesh/err.h — the one return-code enum of libnnmesh and the caller-owned diagnostic.
 *
 * Every fallible function returns nnm_err (NNM_OK == 0). Functions that can say more also
 * take an nnm_diag *, which may be NULL, and fill it with one sentence a user can act on,
 * naming the file, node, input or key at fault. */
#ifndef NNMESH_ERR_H
#define NNMESH_ERR_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum nnm_err {
    NNM_OK = 0,
    NNM_ENOMEM,        /* out of memory */
    NNM_EINVAL,        /* bad argument from the caller */
    NNM_EIO,           /* file or socket error (errno in the diagnostic) */
    NNM_EFORMAT,       /* malformed input: not ONNX, corrupt .npy, bad frame */
    NNM_EUNSUPPORTED,  /* well-formed but not supported: an op, a dtype, an attribute */
    NNM_ESHAPE,        /* shapes or dtypes do not agree */
    NNM_ERANGE,        /* a count, size or index beyond a limit */
    NNM_ENOTFOUND,     /* a named thing does not exist */
    NNM_ECRYPTO,       /* authentication or signature failure */
    NNM_EREPLAY,       /* a frame seen before */
    NNM_ETRUST,        /* a key not in the trust file */
    NNM_ETIMEOUT,      /* a deadline passed */
    NNM_ESTATE,        /* call not valid in the current state */
    NNM_EBACKEND,      /* a kernel library failed */
    NNM_ECONN,         /* broker or peer connection failure */
    NNM_ERR__COUNT
} nnm_err;

/* Static English text for an error code; never NULL. */
const char *nnm_strerror(nnm_err rc);

#define NNM_DIAG_MAX 512

typedef struct nnm_diag {
    nnm_err code;
    char msg[NNM_DIAG_MAX];
} nnm_diag;

/* Fills d (if not NULL) with code and a printf-style message; returns code, so that
 * `return nnm_diag_set(d, NNM_EFORMAT, "%s: ...", path);` reads naturally.
 * If d already holds a message, it is replaced. */
nnm_err nnm_diag_set(nnm_diag *d, nnm_err code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefixes the message in d with "prefix: " (used to add a file or node name on the way up). */
void nnm_diag_prefix(nnm_diag *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Resets d to NNM_OK and an empty message. NULL-safe. */
void nnm_diag_clear(nnm_diag *d);

#ifdef __cplusplus
}
#endif
#endif
