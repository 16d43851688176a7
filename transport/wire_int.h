/* transport/wire_int.h — internals shared by the wire files: a growable output buffer fed by
 * msgpack-c's packer, the strict msgpack cursor reader, and checks both directions share.
 * Not installed; tests may include it. */
#ifndef NNM_TRANSPORT_WIRE_INT_H
#define NNM_TRANSPORT_WIRE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "nnmesh/wire.h"

/* ---- writer ---------------------------------------------------------------------------- */

/* Output buffer. Packer calls never fail individually; oom is sticky and checked once at the
 * end (transport__buf_finish), which keeps encoders free of per-call error plumbing. */
typedef struct wire_buf {
    uint8_t *p;
    size_t len, cap;
    bool oom;
    msgpack_packer pk;
} wire_buf;

void transport__buf_init(wire_buf *b, size_t reserve);
/* Hands the bytes to the caller (*out, *len) or, after an allocation failure, frees them and
 * returns NNM_ENOMEM with *out NULL. */
nnm_err transport__buf_finish(wire_buf *b, uint8_t **out, size_t *len, nnm_diag *diag);
void transport__buf_cleanup(wire_buf *b);
void transport__put_str(wire_buf *b, const char *s);
void transport__put_bin(wire_buf *b, const void *p, size_t n);

/* ---- reader ---------------------------------------------------------------------------- */

/* A cursor over untrusted bytes. Accepts exactly the canonical (shortest) encodings of
 * non-negative integers, str, bin, array and map; every other type is an error. Every
 * declared length is checked against the bytes left and the limits before use. */
typedef struct wire_rd {
    const uint8_t *p;
    size_t left;
    const nnm_wire_limits *lim;
    size_t depth;
    nnm_diag *diag;
} wire_rd;

/* Array header with exactly `want` items (want > 0) or, when want == 0, any count up to
 * max_array_items whose items of at least min_item bytes fit in what is left. Entering an
 * array counts one level of depth; leave it with transport__rd_leave. */
nnm_err transport__rd_array(wire_rd *r, size_t *n, size_t want, size_t min_item,
                            const char *what);
nnm_err transport__rd_map(wire_rd *r, size_t *n, size_t min_item, const char *what);
void transport__rd_leave(wire_rd *r);
nnm_err transport__rd_uint(wire_rd *r, uint64_t *v, uint64_t max, const char *what);
/* A bin of at most max bytes; *p borrows from the input. */
nnm_err transport__rd_bin(wire_rd *r, const uint8_t **p, size_t *n, size_t max,
                          const char *what);
/* The raw bytes of a str (for callers that validate their own way). */
nnm_err transport__rd_strref(wire_rd *r, const char **p, size_t *n, size_t max,
                             const char *what);

/* ---- shared checks --------------------------------------------------------------------- */

/* [a-z0-9-] (plus '.' when dots) of 1..NNM_ID_MAX bytes. */
bool transport__id_ok(const char *s, size_t len, bool dots);
/* Copies s[0..len) into out (always NUL-terminated) for a diagnostic: printable ASCII as is,
 * every other byte as \xNN, cut with "..." when out is too small. Returns out. Peer bytes
 * never reach a terminal raw. */
char *transport__escape(char *out, size_t size, const char *s, size_t len);
/* Valid UTF-8 without NUL, overlongs, surrogates or code points past U+10FFFF. */
bool transport__utf8_ok(const uint8_t *s, size_t len);

/* Checks a wire tensor's fields against each other and lim: dtype, layout, codec, dims,
 * shape x dtype = raw_len, per-codec data and params lengths. Errors: NNM_EFORMAT,
 * NNM_ERANGE; the diagnostic says "<what>: ...". */
nnm_err transport__tensor_check(const nnm_wire_tensor *wt, const nnm_wire_limits *lim,
                                const char *what, nnm_diag *diag);
/* Number of quantisation channels of an INT8_AFFINE tensor and the axis they lie on. */
uint64_t transport__affine_channels(const nnm_wire_tensor *wt, int *axis);

/* The chunking rule: with count chunks over total bytes, every chunk is ceil(total / count)
 * bytes except a shorter, non-empty last one. False if count and total cannot satisfy it or
 * index >= count; else *off and *len locate chunk index. */
bool transport__chunk_span(uint64_t total, uint32_t count, uint32_t index, uint64_t *off,
                           uint64_t *len);

/* Half-precision conversion, round to nearest even (exposed for tests). */
uint16_t transport__f32_to_f16(float f);
float transport__f16_to_f32(uint16_t h);

#endif
