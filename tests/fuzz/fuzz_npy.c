/* tests/fuzz/fuzz_npy.c — libFuzzer target for the .npy decoder (outside bytes: users' files
 * and mosquitto_pub payloads).
 *
 * Besides "no crash, no leak, no undefined behaviour" it checks the decoder's contract:
 * on error the tensor is zeroed and the diagnostic holds one printable sentence with the
 * returned code; on success nbytes matches the shape, and encode -> decode gives back the
 * same tensor, and encoding that again gives the same bytes. A broken invariant traps. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nnmesh/npy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_diag(const nnm_diag *d, nnm_err rc)
{
    if (d->code != rc || d->msg[0] == '\0') __builtin_trap();
    const char *end = memchr(d->msg, '\0', sizeof d->msg);
    if (end == NULL) __builtin_trap();
    /* Bytes from the input must never reach a terminal raw. */
    for (const char *p = d->msg; p < end; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e) __builtin_trap();
}

static int same_tensor(const nnm_tensor *a, const nnm_tensor *b)
{
    if (a->dtype != b->dtype || a->ndim != b->ndim || a->nbytes != b->nbytes) return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return 0;
    return a->nbytes == 0 || memcmp(a->data, b->data, a->nbytes) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    nnm_tensor t, u;
    nnm_diag d;
    nnm_diag_clear(&d);
    nnm_err rc = nnm_npy_decode(&t, data, size, &d);
    if (rc != NNM_OK) {
        check_diag(&d, rc);
        if (t.data != NULL || t.ndim != 0 || t.nbytes != 0) __builtin_trap();
        return 0;
    }
    int64_t numel = nnm_shape_numel(t.shape, t.ndim, nnm_dtype_size(t.dtype));
    if (numel < 0 || (size_t)numel * nnm_dtype_size(t.dtype) != t.nbytes) __builtin_trap();
    if (t.nbytes > size) __builtin_trap();

    void *buf = NULL, *buf2 = NULL;
    size_t len = 0, len2 = 0;
    if (nnm_npy_encode(&buf, &len, &t, &d) != NNM_OK) __builtin_trap();
    if (nnm_npy_decode(&u, buf, len, &d) != NNM_OK) __builtin_trap();
    if (!same_tensor(&t, &u)) __builtin_trap();
    if (nnm_npy_encode(&buf2, &len2, &u, &d) != NNM_OK) __builtin_trap();
    if (len != len2 || memcmp(buf, buf2, len) != 0) __builtin_trap();
    if (len % 64 != t.nbytes % 64) __builtin_trap();   /* header padded to 64 bytes */
    free(buf);
    free(buf2);
    nnm_tensor_cleanup(&u);
    nnm_tensor_cleanup(&t);
    return 0;
}
