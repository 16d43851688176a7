/* transport/frame.c — the frame codec: canonical msgpack encoding of headers and bodies
 * (msgpack-c's packer into our own buffer) and the strict decoder (our own cursor reader; the
 * msgpack-c unpacker does not bound sizes, see DESIGN.md).
 *
 * A frame is two consecutive msgpack arrays: the header (8 fields) and the body (per type).
 * The decoder accepts only the shortest encoding of every integer and length, so that a valid
 * frame has exactly one byte representation: re-encoding a decoded frame gives the input back
 * (the fuzz target checks this). The encoder never emits what the decoder rejects, because it
 * runs the decoder over its own output before handing it out. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire_int.h"

/* ---- limits -------------------------------------------------------------------------- */

void nnm_wire_limits_init(nnm_wire_limits *l)
{
    l->max_frame_bytes = ((size_t)256 << 20) + ((size_t)64 << 10);
    l->max_tensor_bytes = (size_t)256 << 20;
    l->max_dims = NNM_MAX_DIMS;
    l->max_string = NNM_WIRE_STR_MAX;
    l->max_depth = NNM_WIRE_DEPTH_MAX;
    l->max_array_items = 4096;
}

/* Limits from the caller, clamped to the hard maxima the structs are sized for. */
static nnm_wire_limits limits_of(const nnm_wire_limits *lim)
{
    nnm_wire_limits l;
    if (lim == NULL) {
        nnm_wire_limits_init(&l);
        return l;
    }
    l = *lim;
    if (l.max_dims > NNM_MAX_DIMS) l.max_dims = NNM_MAX_DIMS;
    if (l.max_string > NNM_WIRE_STR_MAX) l.max_string = NNM_WIRE_STR_MAX;
    if (l.max_depth > NNM_WIRE_DEPTH_MAX) l.max_depth = NNM_WIRE_DEPTH_MAX;
    return l;
}

bool transport__utf8_ok(const uint8_t *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        uint8_t c = s[i];
        if (c == 0) return false;
        if (c < 0x80) { i++; continue; }
        size_t n;
        uint32_t cp, min;
        if ((c & 0xe0) == 0xc0) { n = 1; cp = c & 0x1f; min = 0x80; }
        else if ((c & 0xf0) == 0xe0) { n = 2; cp = c & 0x0f; min = 0x800; }
        else if ((c & 0xf8) == 0xf0) { n = 3; cp = c & 0x07; min = 0x10000; }
        else return false;
        if (len - i - 1 < n) return false;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return false;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
        i += n + 1;
    }
    return true;
}

const char *nnm_frame_type_name(unsigned type)
{
    static const char *const names[NNM_FRAME__COUNT] = {
        [NNM_FRAME_HELLO] = "hello", [NNM_FRAME_ADVERT] = "advert", [NNM_FRAME_TASK] = "task",
        [NNM_FRAME_TENSOR] = "tensor", [NNM_FRAME_RESULT] = "result",
        [NNM_FRAME_ERROR] = "error", [NNM_FRAME_CTL] = "ctl", [NNM_FRAME_PROBE] = "probe",
        [NNM_FRAME_ACK] = "ack", [NNM_FRAME_BYE] = "bye", [NNM_FRAME_CHUNK] = "chunk",
    };
    if (type >= NNM_FRAME__COUNT || names[type] == NULL) return "?";
    return names[type];
}

/* ---- writer ---------------------------------------------------------------------------- */

static int buf_write(void *data, const char *p, size_t n)
{
    wire_buf *b = data;
    if (b->oom) return -1;
    if (n > b->cap - b->len) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap - b->len < n) {
            if (cap > SIZE_MAX / 2) { b->oom = true; return -1; }
            cap *= 2;
        }
        uint8_t *q = realloc(b->p, cap);
        if (q == NULL) { b->oom = true; return -1; }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
    return 0;
}

void transport__buf_init(wire_buf *b, size_t reserve)
{
    memset(b, 0, sizeof *b);
    if (reserve > 0) {
        b->p = malloc(reserve);
        if (b->p != NULL) b->cap = reserve;
    }
    msgpack_packer_init(&b->pk, b, buf_write);
}

void transport__buf_cleanup(wire_buf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

nnm_err transport__buf_finish(wire_buf *b, uint8_t **out, size_t *len, nnm_diag *diag)
{
    if (b->oom || b->p == NULL) {
        transport__buf_cleanup(b);
        *out = NULL;
        *len = 0;
        return nnm_diag_set(diag, NNM_ENOMEM, "out of memory while encoding a frame");
    }
    *out = b->p;
    *len = b->len;
    b->p = NULL;
    return NNM_OK;
}

void transport__put_str(wire_buf *b, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    msgpack_pack_str(&b->pk, n);
    if (n) msgpack_pack_str_body(&b->pk, s, n);
}

void transport__put_bin(wire_buf *b, const void *p, size_t n)
{
    msgpack_pack_bin(&b->pk, n);
    if (n) msgpack_pack_bin_body(&b->pk, p, n);
}

/* ---- reader ---------------------------------------------------------------------------- */

static nnm_err rd_fail(wire_rd *r, nnm_err rc, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static nnm_err rd_fail(wire_rd *r, nnm_err rc, const char *what, const char *fmt, ...)
{
    char msg[NNM_DIAG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return nnm_diag_set(r->diag, rc, "frame: %s: %s", what, msg);
}

static uint64_t be_get(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) v = (v << 8) | p[i];
    return v;
}

static nnm_err rd_need(wire_rd *r, size_t n, const char *what)
{
    if (r->left < n)
        return rd_fail(r, NNM_EFORMAT, what, "the frame ends %zu bytes early", n - r->left);
    return NNM_OK;
}

static const char *type_word(uint8_t b)
{
    if (b <= 0x7f || (b >= 0xcc && b <= 0xcf)) return "an unsigned integer";
    if (b >= 0xe0 || (b >= 0xd0 && b <= 0xd3)) return "a negative integer";
    if (b <= 0x8f || b == 0xde || b == 0xdf) return "a map";
    if (b <= 0x9f || b == 0xdc || b == 0xdd) return "an array";
    if (b <= 0xbf || (b >= 0xd9 && b <= 0xdb)) return "a string";
    if (b >= 0xc4 && b <= 0xc6) return "binary data";
    if (b == 0xc0) return "nil";
    if (b == 0xc2 || b == 0xc3) return "a boolean";
    if (b == 0xca || b == 0xcb) return "a float";
    if (b == 0xc1) return "the never-used byte 0xc1";
    return "an extension";
}

/* Reads a length-prefixed header: fix (mask) or 8/16/32-bit forms at codes c8/c16/c32
 * (c8 == 0 when the family has no 8-bit form). Enforces the shortest form. */
static nnm_err rd_len(wire_rd *r, size_t *n, uint8_t fix_lo, uint8_t fix_hi, uint8_t c8,
                      uint8_t c16, uint8_t c32, const char *expect, const char *what)
{
    nnm_err rc;
    if ((rc = rd_need(r, 1, what)) != NNM_OK) return rc;
    uint8_t b = r->p[0];
    size_t hdr;
    uint64_t v, min;
    if (fix_hi > fix_lo && b >= fix_lo && b <= fix_hi) {
        hdr = 1; v = (uint64_t)(b - fix_lo); min = 0;
    } else if (c8 != 0 && b == c8) {
        hdr = 2; min = fix_hi > fix_lo ? (uint64_t)(fix_hi - fix_lo) + 1 : 0;
    } else if (b == c16) {
        hdr = 3; min = c8 != 0 ? 256 : (uint64_t)(fix_hi - fix_lo) + 1;
    } else if (b == c32) {
        hdr = 5; min = 65536;
    } else {
        return rd_fail(r, NNM_EFORMAT, what, "expected %s, found %s (0x%02x)", expect,
                       type_word(b), b);
    }
    if ((rc = rd_need(r, hdr, what)) != NNM_OK) return rc;
    if (hdr > 1) {
        v = be_get(r->p + 1, hdr - 1);
        if (v < min)
            return rd_fail(r, NNM_EFORMAT, what,
                           "length %llu is not in its shortest encoding (non-canonical)",
                           (unsigned long long)v);
    }
    r->p += hdr;
    r->left -= hdr;
    *n = (size_t)v;
    return NNM_OK;
}

nnm_err transport__rd_uint(wire_rd *r, uint64_t *v, uint64_t max, const char *what)
{
    nnm_err rc;
    if ((rc = rd_need(r, 1, what)) != NNM_OK) return rc;
    uint8_t b = r->p[0];
    size_t n;
    uint64_t min;
    if (b <= 0x7f) { n = 0; min = 0; }
    else if (b == 0xcc) { n = 1; min = 0x80; }
    else if (b == 0xcd) { n = 2; min = 0x100; }
    else if (b == 0xce) { n = 4; min = 0x10000; }
    else if (b == 0xcf) { n = 8; min = 0x100000000ull; }
    else if (b >= 0xe0 || (b >= 0xd0 && b <= 0xd3))
        return rd_fail(r, NNM_EFORMAT, what, "is negative; expected a non-negative integer");
    else
        return rd_fail(r, NNM_EFORMAT, what, "expected an unsigned integer, found %s (0x%02x)",
                       type_word(b), b);
    if ((rc = rd_need(r, 1 + n, what)) != NNM_OK) return rc;
    uint64_t x = n ? be_get(r->p + 1, n) : b;
    if (x < min)
        return rd_fail(r, NNM_EFORMAT, what,
                       "%llu is not in its shortest encoding (non-canonical)",
                       (unsigned long long)x);
    if (x > max)
        return rd_fail(r, NNM_ERANGE, what, "%llu exceeds the maximum %llu",
                       (unsigned long long)x, (unsigned long long)max);
    r->p += 1 + n;
    r->left -= 1 + n;
    *v = x;
    return NNM_OK;
}

static nnm_err rd_container(wire_rd *r, size_t *n, size_t want, size_t min_item, bool map,
                            const char *what)
{
    nnm_err rc;
    size_t cnt;
    if (map)
        rc = rd_len(r, &cnt, 0x80, 0x8f, 0, 0xde, 0xdf, "a map", what);
    else
        rc = rd_len(r, &cnt, 0x90, 0x9f, 0, 0xdc, 0xdd, "an array", what);
    if (rc != NNM_OK) return rc;
    if (want != 0 && cnt != want)
        return rd_fail(r, NNM_EFORMAT, what, "has %zu items, expected %zu", cnt, want);
    if (min_item == 0) min_item = 1;
    if (cnt > r->left / min_item)
        return rd_fail(r, NNM_EFORMAT, what,
                       "claims %zu items but only %zu bytes remain", cnt, r->left);
    if (cnt > r->lim->max_array_items)
        return rd_fail(r, NNM_ERANGE, what, "has %zu items; the limit is %zu", cnt,
                       r->lim->max_array_items);
    if (r->depth + 1 > r->lim->max_depth)
        return rd_fail(r, NNM_ERANGE, what, "nests deeper than %zu levels", r->lim->max_depth);
    r->depth++;
    *n = cnt;
    return NNM_OK;
}

nnm_err transport__rd_array(wire_rd *r, size_t *n, size_t want, size_t min_item,
                            const char *what)
{
    return rd_container(r, n, want, min_item, false, what);
}

nnm_err transport__rd_map(wire_rd *r, size_t *n, size_t min_item, const char *what)
{
    return rd_container(r, n, 0, min_item, true, what);
}

void transport__rd_leave(wire_rd *r)
{
    if (r->depth > 0) r->depth--;
}

/* Length header then a check against bytes left (format) and max (range). */
static nnm_err rd_bytes(wire_rd *r, const uint8_t **p, size_t *n, size_t max, bool str,
                        const char *what)
{
    nnm_err rc;
    size_t len;
    if (str)
        rc = rd_len(r, &len, 0xa0, 0xbf, 0xd9, 0xda, 0xdb, "a string", what);
    else
        rc = rd_len(r, &len, 0, 0, 0xc4, 0xc5, 0xc6, "binary data", what);
    if (rc != NNM_OK) return rc;
    if (len > r->left)
        return rd_fail(r, NNM_EFORMAT, what, "declares %zu bytes but only %zu remain", len,
                       r->left);
    if (len > max)
        return rd_fail(r, NNM_ERANGE, what, "is %zu bytes; the limit is %zu", len, max);
    *p = r->p;
    *n = len;
    r->p += len;
    r->left -= len;
    return NNM_OK;
}

nnm_err transport__rd_bin(wire_rd *r, const uint8_t **p, size_t *n, size_t max,
                          const char *what)
{
    return rd_bytes(r, p, n, max, false, what);
}

nnm_err transport__rd_strref(wire_rd *r, const char **p, size_t *n, size_t max,
                             const char *what)
{
    const uint8_t *q;
    nnm_err rc = rd_bytes(r, &q, n, max, true, what);
    if (rc == NNM_OK) *p = (const char *)q;
    return rc;
}

static nnm_err rd_id(wire_rd *r, char out[NNM_ID_MAX + 1], bool allow_empty, bool dots,
                     const char *what)
{
    const char *s;
    size_t n;
    nnm_err rc = transport__rd_strref(r, &s, &n, NNM_ID_MAX, what);
    if (rc != NNM_OK) return rc;
    if (n == 0 && allow_empty) {
        out[0] = '\0';
        return NNM_OK;
    }
    if (dots) {
        if (!transport__id_ok(s, n, true))
            return rd_fail(r, NNM_EFORMAT, what, "must be 1 to %d of [a-z0-9.-]", NNM_ID_MAX);
        memcpy(out, s, n);
        out[n] = '\0';
        return NNM_OK;
    }
    char w[96];
    snprintf(w, sizeof w, "frame: %s", what);
    return nnm_id_decode(out, s, n, w, r->diag);
}

static nnm_err rd_u32(wire_rd *r, uint32_t *v, const char *what)
{
    uint64_t x;
    nnm_err rc = transport__rd_uint(r, &x, UINT32_MAX, what);
    if (rc == NNM_OK) *v = (uint32_t)x;
    return rc;
}

static nnm_err rd_u64(wire_rd *r, uint64_t *v, const char *what)
{
    return transport__rd_uint(r, v, UINT64_MAX, what);
}

/* ---- decoder allocations --------------------------------------------------------------- */

typedef struct pool_blk {
    struct pool_blk *next;
    max_align_t data[];
} pool_blk;

/* Zeroed memory that lives as long as the frame. Sizes are bounded by counts that were
 * already checked against the bytes left, so a frame cannot ask for more than a small
 * multiple of its own size. */
static void *pool_alloc(nnm_frame *f, size_t n)
{
    if (n > SIZE_MAX - sizeof(pool_blk)) return NULL;
    pool_blk *b = calloc(1, sizeof *b + n);
    if (b == NULL) return NULL;
    b->next = f->pool_;
    f->pool_ = b;
    return b->data;
}

static char *pool_strdup(nnm_frame *f, const char *s, size_t n)
{
    char *p = pool_alloc(f, n + 1);
    if (p != NULL) memcpy(p, s, n);
    return p;
}

void nnm_frame_free(nnm_frame *f)
{
    if (f == NULL) return;
    pool_blk *b = f->pool_;
    while (b != NULL) {
        pool_blk *next = b->next;
        free(b);
        b = next;
    }
    free(f);
}

/* ---- header ---------------------------------------------------------------------------- */

static bool broadcast_ok(unsigned type)
{
    return type == NNM_FRAME_HELLO || type == NNM_FRAME_ADVERT || type == NNM_FRAME_PROBE ||
           type == NNM_FRAME_BYE;
}

static nnm_err rd_header(wire_rd *r, nnm_frame_header *h)
{
    nnm_err rc;
    size_t n;
    uint64_t v;
    const char *s;
    if ((rc = transport__rd_array(r, &n, NNM_WIRE_HEADER_FIELDS, 1, "header")) != NNM_OK)
        return rc;
    if ((rc = transport__rd_uint(r, &v, UINT8_MAX, "header version")) != NNM_OK) return rc;
    if (v != NNM_WIRE_VERSION)
        return rd_fail(r, NNM_EUNSUPPORTED, "header version",
                       "frame is wire version %llu; this node speaks version %d",
                       (unsigned long long)v, NNM_WIRE_VERSION);
    h->version = (uint8_t)v;
    if ((rc = transport__rd_uint(r, &v, UINT8_MAX, "header type")) != NNM_OK) return rc;
    if (v == 0 || v >= NNM_FRAME__COUNT)
        return rd_fail(r, NNM_EFORMAT, "header type", "unknown frame type %llu",
                       (unsigned long long)v);
    h->type = (uint8_t)v;
    if ((rc = rd_id(r, h->sender, false, false, "header sender id")) != NNM_OK) return rc;
    if ((rc = rd_id(r, h->receiver, broadcast_ok(h->type), false, "header receiver id")) !=
        NNM_OK)
        return rc;
    if ((rc = rd_u64(r, &h->session, "header session")) != NNM_OK) return rc;
    if ((rc = rd_u64(r, &h->counter, "header counter")) != NNM_OK) return rc;
    if ((rc = rd_u64(r, &h->request, "header request id")) != NNM_OK) return rc;
    if ((rc = transport__rd_strref(r, &s, &n, r->lim->max_string, "header topic")) != NNM_OK)
        return rc;
    nnm_topic t;
    if ((rc = nnm_topic_decode(&t, s, n, r->diag)) != NNM_OK) {
        nnm_diag_prefix(r->diag, "frame: header topic");
        return rc;
    }
    memcpy(h->topic, s, n);
    h->topic[n] = '\0';
    transport__rd_leave(r);
    return NNM_OK;
}

nnm_err nnm_frame_header_decode(nnm_frame_header *h, size_t *used, const uint8_t *buf,
                                size_t len, const nnm_wire_limits *lim, nnm_diag *diag)
{
    nnm_wire_limits l = limits_of(lim);
    wire_rd r = { .p = buf, .left = len, .lim = &l, .depth = 0, .diag = diag };
    memset(h, 0, sizeof *h);
    if (buf == NULL && len > 0) return nnm_diag_set(diag, NNM_EINVAL, "frame: no buffer");
    if (len > l.max_frame_bytes)
        return nnm_diag_set(diag, NNM_ERANGE, "frame: %zu bytes; the limit is %zu", len,
                            l.max_frame_bytes);
    nnm_err rc = rd_header(&r, h);
    if (rc != NNM_OK) {
        memset(h, 0, sizeof *h);
        return rc;
    }
    *used = len - r.left;
    return NNM_OK;
}

static void put_header(wire_buf *b, const nnm_frame_header *h)
{
    msgpack_pack_array(&b->pk, NNM_WIRE_HEADER_FIELDS);
    msgpack_pack_uint8(&b->pk, h->version);
    msgpack_pack_uint8(&b->pk, h->type);
    transport__put_str(b, h->sender);
    transport__put_str(b, h->receiver);
    msgpack_pack_uint64(&b->pk, h->session);
    msgpack_pack_uint64(&b->pk, h->counter);
    msgpack_pack_uint64(&b->pk, h->request);
    transport__put_str(b, h->topic);
}

/* Fields are fixed-size arrays; a caller who forgot the NUL must not make us read past. */
static nnm_err header_strings_ok(const nnm_frame_header *h, nnm_diag *diag)
{
    if (memchr(h->sender, 0, sizeof h->sender) == NULL ||
        memchr(h->receiver, 0, sizeof h->receiver) == NULL ||
        memchr(h->topic, 0, sizeof h->topic) == NULL)
        return nnm_diag_set(diag, NNM_EINVAL, "frame header: a string field is not terminated");
    return NNM_OK;
}

/* The decoder judges the encoder's output: a rejection becomes NNM_EINVAL (the caller's
 * fields are at fault), except that a limit stays NNM_ERANGE. */
static nnm_err as_encode_error(nnm_err rc)
{
    return (rc == NNM_EFORMAT || rc == NNM_EUNSUPPORTED) ? NNM_EINVAL : rc;
}

nnm_err nnm_frame_header_encode(uint8_t **out, size_t *len, const nnm_frame_header *h,
                                nnm_diag *diag)
{
    nnm_err rc;
    wire_buf b;
    *out = NULL;
    *len = 0;
    if ((rc = header_strings_ok(h, diag)) != NNM_OK) return rc;
    transport__buf_init(&b, 128);
    put_header(&b, h);
    uint8_t *p;
    size_t n, used;
    if ((rc = transport__buf_finish(&b, &p, &n, diag)) != NNM_OK) return rc;
    nnm_frame_header chk;
    if ((rc = nnm_frame_header_decode(&chk, &used, p, n, NULL, diag)) != NNM_OK) {
        free(p);
        return as_encode_error(rc);
    }
    *out = p;
    *len = n;
    return NNM_OK;
}

/* ---- bodies: decode -------------------------------------------------------------------- */

#define TRY(expr) do { if ((rc = (expr)) != NNM_OK) return rc; } while (0)

static nnm_err oom(wire_rd *r)
{
    return nnm_diag_set(r->diag, NNM_ENOMEM, "out of memory while decoding a frame");
}

static nnm_err rd_text(wire_rd *r, nnm_frame *f, const char **out, const char *what)
{
    nnm_err rc;
    const char *s;
    size_t n;
    TRY(transport__rd_strref(r, &s, &n, r->lim->max_string, what));
    if (!transport__utf8_ok((const uint8_t *)s, n))
        return rd_fail(r, NNM_EFORMAT, what, "is not valid UTF-8 or contains NUL");
    char *p = pool_strdup(f, s, n);
    if (p == NULL) return oom(r);
    *out = p;
    return NNM_OK;
}

static nnm_err rd_tensor(wire_rd *r, nnm_frame *f, nnm_wire_tensor *t, const char *what)
{
    nnm_err rc;
    size_t n;
    uint64_t v;
    char w[96];
    TRY(transport__rd_array(r, &n, 8, 1, what));
    snprintf(w, sizeof w, "%s name", what);
    TRY(rd_text(r, f, &t->name, w));
    snprintf(w, sizeof w, "%s dtype", what);
    TRY(transport__rd_uint(r, &v, UINT8_MAX, w));
    t->dtype = (uint8_t)v;
    snprintf(w, sizeof w, "%s shape", what);
    TRY(transport__rd_array(r, &n, 0, 1, w));
    if (n > r->lim->max_dims)
        return rd_fail(r, NNM_ERANGE, w, "has %zu dimensions; the limit is %zu", n,
                       r->lim->max_dims);
    t->ndim = (int)n;
    for (size_t i = 0; i < n; i++) {
        snprintf(w, sizeof w, "%s shape[%zu]", what, i);
        TRY(transport__rd_uint(r, &t->shape[i], INT64_MAX, w));
    }
    transport__rd_leave(r);
    snprintf(w, sizeof w, "%s layout", what);
    TRY(transport__rd_uint(r, &v, UINT8_MAX, w));
    t->layout = (uint8_t)v;
    snprintf(w, sizeof w, "%s codec", what);
    TRY(transport__rd_uint(r, &v, UINT8_MAX, w));
    t->codec = (uint8_t)v;
    snprintf(w, sizeof w, "%s raw length", what);
    TRY(rd_u64(r, &t->raw_len, w));
    snprintf(w, sizeof w, "%s params", what);
    TRY(transport__rd_bin(r, &t->params, &t->params_len, r->lim->max_frame_bytes, w));
    snprintf(w, sizeof w, "%s data", what);
    TRY(transport__rd_bin(r, &t->data, &t->data_len, r->lim->max_frame_bytes, w));
    transport__rd_leave(r);
    snprintf(w, sizeof w, "frame: %s", what);
    return transport__tensor_check(t, r->lim, w, r->diag);
}

static nnm_err rd_tensors(wire_rd *r, nnm_frame *f, size_t *count,
                          const nnm_wire_tensor **out)
{
    nnm_err rc;
    size_t n;
    TRY(transport__rd_array(r, &n, 0, 9, "tensors"));
    nnm_wire_tensor *ts = NULL;
    if (n > 0 && (ts = pool_alloc(f, n * sizeof *ts)) == NULL) return oom(r);
    for (size_t i = 0; i < n; i++) {
        char w[32];
        snprintf(w, sizeof w, "tensor %zu", i);
        TRY(rd_tensor(r, f, &ts[i], w));
    }
    transport__rd_leave(r);
    *count = n;
    *out = ts;
    return NNM_OK;
}

static nnm_err rd_hash(wire_rd *r, uint8_t out[NNM_WIRE_HASH_BYTES], const char *what)
{
    nnm_err rc;
    const uint8_t *p;
    size_t n;
    TRY(transport__rd_bin(r, &p, &n, NNM_WIRE_HASH_BYTES, what));
    if (n != NNM_WIRE_HASH_BYTES)
        return rd_fail(r, NNM_EFORMAT, what, "is %zu bytes, expected %d", n,
                       NNM_WIRE_HASH_BYTES);
    memcpy(out, p, n);
    return NNM_OK;
}

static nnm_err rd_spec(wire_rd *r, nnm_slice_spec *s)
{
    nnm_err rc;
    size_t n;
    uint64_t v;
    TRY(transport__rd_array(r, &n, 0, 1, "slice spec"));
    if (n != 8 && n != 9)
        return rd_fail(r, NNM_EFORMAT, "slice spec", "has %zu items, expected 9 (or 8 without "
                       "the result codec)", n);
    TRY(rd_hash(r, s->model_hash, "slice model hash"));
    TRY(rd_u32(r, &s->node_begin, "slice node begin"));
    TRY(rd_u32(r, &s->node_end, "slice node end"));
    if (s->node_begin >= s->node_end)
        return rd_fail(r, NNM_EFORMAT, "slice node range", "[%u, %u) is empty",
                       s->node_begin, s->node_end);
    TRY(transport__rd_uint(r, &v, UINT8_MAX, "slice part kind"));
    if (v >= NNM_PART__COUNT)
        return rd_fail(r, NNM_EFORMAT, "slice part kind", "unknown part kind %llu",
                       (unsigned long long)v);
    s->part_kind = (uint8_t)v;
    TRY(rd_u32(r, &s->part_begin, "slice part begin"));
    TRY(rd_u32(r, &s->part_end, "slice part end"));
    if (s->part_kind == NNM_PART_WHOLE ? (s->part_begin != 0 || s->part_end != 0)
                                       : s->part_begin >= s->part_end)
        return rd_fail(r, NNM_EFORMAT, "slice part range", "[%u, %u) does not suit part kind %u",
                       s->part_begin, s->part_end, s->part_kind);
    TRY(rd_u32(r, &s->attempt, "slice attempt"));
    TRY(rd_u64(r, &s->deadline_ms, "slice deadline"));
    /* Without the 9th field the result codec is AUTO: what senders from before the field
     * expected, and how the encoder writes AUTO so that workers from before it still take
     * the default TASK. A 9-field spec saying AUTO (the encoder of the previous build) thus
     * re-encodes with 8 fields: the one accepted form that is not the encoder's own. */
    s->result_codec = NNM_CODEC_AUTO;
    if (n == 9) {
        TRY(transport__rd_uint(r, &v, UINT8_MAX, "slice result codec"));
        if (v >= NNM_CODEC__COUNT && v != NNM_CODEC_AUTO)
            return rd_fail(r, NNM_EFORMAT, "slice result codec", "unknown codec %llu",
                           (unsigned long long)v);
        s->result_codec = (uint8_t)v;
    }
    transport__rd_leave(r);
    return NNM_OK;
}

static nnm_err rd_trace(wire_rd *r, nnm_frame *f)
{
    nnm_err rc;
    size_t n, k;
    TRY(transport__rd_array(r, &n, 0, 7, "trace"));
    nnm_trace_entry *es = NULL;
    if (n > 0 && (es = pool_alloc(f, n * sizeof *es)) == NULL) return oom(r);
    for (size_t i = 0; i < n; i++) {
        nnm_trace_entry *e = &es[i];
        TRY(transport__rd_array(r, &k, 6, 1, "trace entry"));
        TRY(rd_id(r, e->node, false, false, "trace node id"));
        TRY(rd_u32(r, &e->node_begin, "trace node begin"));
        TRY(rd_u32(r, &e->node_end, "trace node end"));
        if (e->node_begin >= e->node_end)
            return rd_fail(r, NNM_EFORMAT, "trace node range", "[%u, %u) is empty",
                           e->node_begin, e->node_end);
        TRY(rd_u64(r, &e->compute_us, "trace compute us"));
        TRY(rd_u64(r, &e->transfer_us, "trace transfer us"));
        TRY(rd_u64(r, &e->wait_us, "trace wait us"));
        transport__rd_leave(r);
    }
    transport__rd_leave(r);
    f->u.result.ntrace = n;
    f->u.result.trace = es;
    return NNM_OK;
}

/* ---- stage-to-stage forwarding: decode ------------------------------------------------ */

/* The name of an awaited input, a forwarded output or a returned output: a tensor name that
 * must not be empty, as it names a value of the graph. */
static nnm_err rd_name(wire_rd *r, nnm_frame *f, const char **out, const char *what)
{
    nnm_err rc;
    TRY(rd_text(r, f, out, what));
    if ((*out)[0] == '\0') return rd_fail(r, NNM_EFORMAT, what, "is empty; it must name a value");
    return NNM_OK;
}

/* An array of per-dimension values (a shape, a box corner, an offset), each <= INT64_MAX
 * since shapes are int64 in memory. want < 0: 1 to max_dims values; want >= 0: exactly want
 * values (`as` says why, for the diagnostic). *ndim gets the count. */
static nnm_err rd_dims(wire_rd *r, uint64_t v[NNM_MAX_DIMS], int *ndim, int want,
                       const char *as, const char *what)
{
    nnm_err rc;
    size_t n;
    char w[96];
    TRY(transport__rd_array(r, &n, 0, 1, what));
    if (want < 0 && n == 0) return rd_fail(r, NNM_EFORMAT, what, "has no dimensions");
    if (want < 0 && n > r->lim->max_dims)
        return rd_fail(r, NNM_ERANGE, what, "has %zu dimensions; the limit is %zu", n,
                       r->lim->max_dims);
    if (want >= 0 && n != (size_t)want)
        return rd_fail(r, NNM_EFORMAT, what, "has %zu values, expected %d (%s)", n, want, as);
    for (size_t i = 0; i < n; i++) {
        snprintf(w, sizeof w, "%s[%zu]", what, i);
        TRY(transport__rd_uint(r, &v[i], INT64_MAX, w));
    }
    transport__rd_leave(r);
    *ndim = (int)n;
    return NNM_OK;
}

/* piece = [from, at, shape]: the box [at, at + shape) of the awaited input `a` that node
 * `from` sends. The worker matches every piece it receives against these boxes, so each box
 * has the await's rank, is not empty and lies within the await's shape: a box the input
 * cannot hold would only make the task wait for a piece that can never fit. */
static nnm_err rd_await_piece(wire_rd *r, const nnm_task_await *a, nnm_await_piece *p,
                              const char *what)
{
    nnm_err rc;
    size_t n;
    int nd;
    uint64_t end;
    char w[96];
    TRY(transport__rd_array(r, &n, 3, 1, what));
    snprintf(w, sizeof w, "%s from", what);
    TRY(rd_id(r, p->from, false, false, w));
    snprintf(w, sizeof w, "%s at", what);
    TRY(rd_dims(r, p->at, &nd, a->ndim, "as many as the await's shape", w));
    snprintf(w, sizeof w, "%s shape", what);
    TRY(rd_dims(r, p->shape, &nd, a->ndim, "as many as the await's shape", w));
    for (int d = 0; d < a->ndim; d++)
        if (p->shape[d] == 0)
            return rd_fail(r, NNM_EFORMAT, w, "dimension %d is 0; a piece is never empty", d);
    snprintf(w, sizeof w, "%s box", what);
    for (int d = 0; d < a->ndim; d++)   /* each <= INT64_MAX: cannot wrap; checked anyway */
        if (__builtin_add_overflow(p->at[d], p->shape[d], &end) || end > a->shape[d])
            return rd_fail(r, NNM_EFORMAT, w, "dimension %d: at %llu + shape %llu ends past "
                           "the await's %llu", d, (unsigned long long)p->at[d],
                           (unsigned long long)p->shape[d], (unsigned long long)a->shape[d]);
    transport__rd_leave(r);
    return NNM_OK;
}

/* await = [name, dtype, shape, pieces]: the worker allocates it, so its size is judged as a
 * tensor's: a known dtype, no empty dimension, numel x dtype size within 64 bits and the
 * tensor limit. pieces lists every piece the input is made of (at least one), each bound to
 * its producer. */
static nnm_err rd_await(wire_rd *r, nnm_frame *f, nnm_task_await *a, const char *what)
{
    nnm_err rc;
    size_t n, es;
    uint64_t v, bytes;
    char w[96];
    TRY(transport__rd_array(r, &n, 4, 1, what));
    snprintf(w, sizeof w, "%s name", what);
    TRY(rd_name(r, f, &a->name, w));
    snprintf(w, sizeof w, "%s dtype", what);
    TRY(transport__rd_uint(r, &v, UINT8_MAX, w));
    if ((es = nnm_dtype_size((nnm_dtype)v)) == 0)
        return rd_fail(r, NNM_EFORMAT, w, "unknown dtype %llu", (unsigned long long)v);
    a->dtype = (uint8_t)v;
    snprintf(w, sizeof w, "%s shape", what);
    TRY(rd_dims(r, a->shape, &a->ndim, -1, NULL, w));
    bytes = es;
    for (int d = 0; d < a->ndim; d++) {
        if (a->shape[d] == 0)
            return rd_fail(r, NNM_EFORMAT, w, "dimension %d is 0; an awaited input is never "
                           "empty", d);
        if (__builtin_mul_overflow(bytes, a->shape[d], &bytes))
            return rd_fail(r, NNM_ERANGE, w, "overflows 64 bits");
    }
    if (bytes > r->lim->max_tensor_bytes)
        return rd_fail(r, NNM_ERANGE, w, "takes %llu bytes; the tensor limit is %zu",
                       (unsigned long long)bytes, r->lim->max_tensor_bytes);
    snprintf(w, sizeof w, "%s pieces", what);
    TRY(transport__rd_array(r, &n, 0, 7, w));   /* [from >= 2, at >= 2, shape >= 2] */
    if (n == 0)
        return rd_fail(r, NNM_EFORMAT, w, "is empty; an awaited input comes in at least one "
                       "piece");
    nnm_await_piece *ps = pool_alloc(f, n * sizeof *ps);
    if (ps == NULL) return oom(r);
    for (size_t i = 0; i < n; i++) {
        char pw[64];                    /* "await 4095 piece 4095", room for its fields */
        snprintf(pw, sizeof pw, "%s piece %zu", what, i);
        TRY(rd_await_piece(r, a, &ps[i], pw));
    }
    transport__rd_leave(r);
    a->npiece = n;
    a->pieces = ps;
    transport__rd_leave(r);
    return NNM_OK;
}

/* forward = [node, task, name, begin, end, at]: a non-empty box of the output `name`, to be
 * written at `at` of the consumer's input. Whether it fits there is the consumer's to judge. */
static nnm_err rd_forward(wire_rd *r, nnm_frame *f, nnm_task_forward *fw, const char *what)
{
    nnm_err rc;
    size_t n;
    int nd;
    char w[96];
    TRY(transport__rd_array(r, &n, 6, 1, what));
    snprintf(w, sizeof w, "%s node id", what);
    TRY(rd_id(r, fw->node, false, false, w));
    snprintf(w, sizeof w, "%s task", what);
    TRY(rd_u64(r, &fw->task, w));
    if (fw->task == 0)
        return rd_fail(r, NNM_EFORMAT, w, "is 0; it must be the consumer's task id");
    snprintf(w, sizeof w, "%s name", what);
    TRY(rd_name(r, f, &fw->name, w));
    snprintf(w, sizeof w, "%s begin", what);
    TRY(rd_dims(r, fw->begin, &fw->ndim, -1, NULL, w));
    snprintf(w, sizeof w, "%s end", what);
    TRY(rd_dims(r, fw->end, &nd, fw->ndim, "as many as begin", w));
    snprintf(w, sizeof w, "%s at", what);
    TRY(rd_dims(r, fw->at, &nd, fw->ndim, "as many as begin", w));
    for (int d = 0; d < fw->ndim; d++)
        if (fw->begin[d] >= fw->end[d]) {
            snprintf(w, sizeof w, "%s box", what);
            return rd_fail(r, NNM_EFORMAT, w, "dimension %d: [%llu, %llu) is empty", d,
                           (unsigned long long)fw->begin[d], (unsigned long long)fw->end[d]);
        }
    transport__rd_leave(r);
    return NNM_OK;
}

static int name_cmp(const void *a, const void *b)
{
    const char *const *x = a, *const *y = b;
    return strcmp(*x, *y);
}

/* Sorts v (pointers into the frame) and returns a name it holds twice, or NULL. */
static const char *name_repeated(const char **v, size_t n)
{
    if (n > 1) qsort(v, n, sizeof *v, name_cmp);
    for (size_t i = 1; i < n; i++)
        if (strcmp(v[i - 1], v[i]) == 0) return v[i];
    return NULL;
}

/* The three arrays of a routed TASK: awaits, forwards, returns (each may be empty). An
 * awaited input is unique and not also carried, so that every input has one source; a
 * returned output is unique. Sorting a copy of the names keeps this O(n log n). */
static nnm_err rd_routes(wire_rd *r, nnm_frame *f)
{
    nnm_err rc;
    size_t n;
    char w[32], esc[64];
    const char **names = NULL;
    const char *dup;

    /* [name >= 2, dtype, shape >= 2, pieces >= 8 (one piece of 7)] */
    TRY(transport__rd_array(r, &n, 0, 14, "awaits"));
    nnm_task_await *as = NULL;
    if (n > 0 && ((as = pool_alloc(f, n * sizeof *as)) == NULL ||
                  (names = pool_alloc(f, n * sizeof *names)) == NULL))
        return oom(r);
    for (size_t i = 0; i < n; i++) {
        snprintf(w, sizeof w, "await %zu", i);
        TRY(rd_await(r, f, &as[i], w));
        names[i] = as[i].name;
    }
    transport__rd_leave(r);
    f->u.task.nawait = n;
    f->u.task.await = as;
    if (n > 0 && (dup = name_repeated(names, n)) != NULL)
        return rd_fail(r, NNM_EFORMAT, "awaits", "'%s' is awaited twice",
                       transport__escape(esc, sizeof esc, dup, strlen(dup)));
    for (size_t i = 0; n > 0 && i < f->u.task.ntensors; i++) {
        const char *t = f->u.task.tensors[i].name;
        if (bsearch(&t, names, n, sizeof *names, name_cmp) != NULL)
            return rd_fail(r, NNM_EFORMAT, "awaits", "'%s' is also tensor %zu of the task",
                           transport__escape(esc, sizeof esc, t, strlen(t)), i);
    }

    TRY(transport__rd_array(r, &n, 0, 12, "forwards"));  /* 6 fields, 4 of them >= 2 bytes */
    nnm_task_forward *fws = NULL;
    if (n > 0 && (fws = pool_alloc(f, n * sizeof *fws)) == NULL) return oom(r);
    for (size_t i = 0; i < n; i++) {
        snprintf(w, sizeof w, "forward %zu", i);
        TRY(rd_forward(r, f, &fws[i], w));
    }
    transport__rd_leave(r);
    f->u.task.nforward = n;
    f->u.task.forward = fws;

    TRY(transport__rd_array(r, &n, 0, 2, "returns"));   /* non-empty strings */
    const char **rets = NULL;
    if (n > 0 && ((rets = pool_alloc(f, n * sizeof *rets)) == NULL ||
                  (names = pool_alloc(f, n * sizeof *names)) == NULL))
        return oom(r);
    for (size_t i = 0; i < n; i++) {
        snprintf(w, sizeof w, "return %zu", i);
        TRY(rd_name(r, f, &rets[i], w));
        names[i] = rets[i];
    }
    transport__rd_leave(r);
    f->u.task.nreturn = n;
    f->u.task.returns = rets;
    if (n > 0 && (dup = name_repeated(names, n)) != NULL)
        return rd_fail(r, NNM_EFORMAT, "returns", "'%s' is returned twice",
                       transport__escape(esc, sizeof esc, dup, strlen(dup)));
    f->u.task.routed = 1;
    return NNM_OK;
}

/* The two fields a piece adds to a TENSOR: the coordinator's id, then where each tensor
 * goes, one value per dimension of that tensor. A piece is addressed by the consumer's task
 * id, so it needs a request. */
static nnm_err rd_piece(wire_rd *r, nnm_frame *f)
{
    nnm_err rc;
    size_t n;
    int nd;
    char w[32], as[64];
    if (f->hdr.request == 0)
        return rd_fail(r, NNM_EFORMAT, "piece request id",
                       "is 0; a piece carries the consumer's task id in the header request");
    TRY(rd_id(r, f->u.tensor.coord, false, false, "piece coordinator id"));
    TRY(transport__rd_array(r, &n, 0, 1, "piece at"));
    if (n != f->u.tensor.ntensors)
        return rd_fail(r, NNM_EFORMAT, "piece at", "has %zu entries, expected %zu (one per "
                       "tensor)", n, f->u.tensor.ntensors);
    nnm_piece_at *at = NULL;
    if (n > 0 && (at = pool_alloc(f, n * sizeof *at)) == NULL) return oom(r);
    for (size_t i = 0; i < n; i++) {
        snprintf(w, sizeof w, "piece at %zu", i);
        snprintf(as, sizeof as, "one per dimension of tensor %zu", i);
        TRY(rd_dims(r, at[i].v, &nd, f->u.tensor.tensors[i].ndim, as, w));
    }
    transport__rd_leave(r);
    f->u.tensor.at = at;
    f->u.tensor.piece = 1;
    return NNM_OK;
}

static nnm_err rd_advert(wire_rd *r, nnm_frame *f)
{
    nnm_err rc;
    size_t n;
    uint64_t v;
    nnm_advert *a = &f->u.advert;
    TRY(rd_u64(r, &a->epoch, "advert epoch"));
    TRY(rd_u64(r, &a->seq, "advert sequence"));
    TRY(rd_u64(r, &a->expiry_ms, "advert expiry"));
    TRY(rd_id(r, a->version, false, true, "advert version"));
    TRY(rd_u64(r, &a->free_mem, "advert free memory"));
    TRY(transport__rd_uint(r, &v, 1000, "advert load permille"));
    a->load_permille = (uint32_t)v;
    TRY(transport__rd_map(r, &n, 2, "advert capacities"));
    nnm_advert_cap *caps = NULL;
    if (n > 0 && (caps = pool_alloc(f, n * sizeof *caps)) == NULL) return oom(r);
    for (size_t i = 0; i < n; i++) {
        TRY(rd_id(r, caps[i].name, false, false, "advert capacity name"));
        if (i > 0 && strcmp(caps[i - 1].name, caps[i].name) >= 0)
            return rd_fail(r, NNM_EFORMAT, "advert capacities",
                           "key '%s' is out of order or repeated; keys must be sorted and unique",
                           caps[i].name);
        TRY(rd_u64(r, &caps[i].value, "advert capacity value"));
    }
    transport__rd_leave(r);
    a->ncaps = n;
    a->caps = caps;
    TRY(transport__rd_array(r, &n, 0, 2 + NNM_WIRE_HASH_BYTES, "advert models"));
    uint8_t (*models)[NNM_WIRE_HASH_BYTES] = NULL;
    if (n > 0 && (models = pool_alloc(f, n * sizeof *models)) == NULL) return oom(r);
    for (size_t i = 0; i < n; i++) TRY(rd_hash(r, models[i], "advert model hash"));
    transport__rd_leave(r);
    a->nmodels = n;
    a->models = (const uint8_t (*)[NNM_WIRE_HASH_BYTES])models;
    return NNM_OK;
}

/* Field counts of each body array, by type: n, or also ext for the types with an extended
 * form (a routed TASK, a piece TENSOR), which the field count alone tells apart. */
static const struct { size_t n, ext; } body_fields[NNM_FRAME__COUNT] = {
    [NNM_FRAME_HELLO] = { 1, 0 }, [NNM_FRAME_ADVERT] = { 8, 0 }, [NNM_FRAME_TASK] = { 2, 5 },
    [NNM_FRAME_TENSOR] = { 1, 3 }, [NNM_FRAME_RESULT] = { 3, 0 }, [NNM_FRAME_ERROR] = { 2, 0 },
    [NNM_FRAME_CTL] = { 2, 0 }, [NNM_FRAME_PROBE] = { 3, 0 }, [NNM_FRAME_ACK] = { 2, 0 },
    [NNM_FRAME_BYE] = { 1, 0 }, [NNM_FRAME_CHUNK] = { 5, 0 },
};

static nnm_err rd_body(wire_rd *r, nnm_frame *f)
{
    nnm_err rc;
    size_t n, fields;
    const char *s;
    unsigned type = f->hdr.type;
    size_t want = body_fields[type].n, ext = body_fields[type].ext;
    TRY(transport__rd_array(r, &fields, ext == 0 ? want : 0, 1, "body"));
    if (ext != 0 && fields != want && fields != ext)
        return rd_fail(r, NNM_EFORMAT, "body", "has %zu items, expected %zu or %zu", fields,
                       want, ext);
    switch (type) {
    case NNM_FRAME_HELLO:
        TRY(transport__rd_bin(r, &f->u.hello.payload, &f->u.hello.len,
                              r->lim->max_frame_bytes, "hello payload"));
        break;
    case NNM_FRAME_ADVERT:
        TRY(rd_advert(r, f));
        break;
    case NNM_FRAME_TASK:
        TRY(rd_spec(r, &f->u.task.spec));
        TRY(rd_tensors(r, f, &f->u.task.ntensors, &f->u.task.tensors));
        if (fields == ext) TRY(rd_routes(r, f));
        break;
    case NNM_FRAME_TENSOR:
        TRY(rd_tensors(r, f, &f->u.tensor.ntensors, &f->u.tensor.tensors));
        if (fields == ext) TRY(rd_piece(r, f));
        break;
    case NNM_FRAME_RESULT:
        TRY(rd_u32(r, &f->u.result.status, "result status"));
        TRY(rd_tensors(r, f, &f->u.result.ntensors, &f->u.result.tensors));
        TRY(rd_trace(r, f));
        break;
    case NNM_FRAME_ERROR:
        TRY(rd_u32(r, &f->u.error.code, "error code"));
        TRY(rd_text(r, f, &f->u.error.message, "error message"));
        break;
    case NNM_FRAME_CTL:
        TRY(transport__rd_strref(r, &s, &n, NNM_ID_MAX, "ctl verb"));
        TRY(nnm_id_decode(f->u.ctl.verb, s, n, "frame: ctl verb", r->diag));
        TRY(rd_text(r, f, &f->u.ctl.arg, "ctl argument"));
        break;
    case NNM_FRAME_PROBE:
        TRY(rd_u64(r, &f->u.probe.seq, "probe sequence"));
        TRY(rd_u64(r, &f->u.probe.sent_us, "probe send time"));
        TRY(transport__rd_bin(r, &f->u.probe.pad, &f->u.probe.pad_len,
                              r->lim->max_frame_bytes, "probe padding"));
        break;
    case NNM_FRAME_ACK:
        TRY(rd_u64(r, &f->u.ack.counter, "ack counter"));
        TRY(rd_u32(r, &f->u.ack.status, "ack status"));
        break;
    case NNM_FRAME_BYE:
        TRY(rd_text(r, f, &f->u.bye.reason, "bye reason"));
        break;
    case NNM_FRAME_CHUNK: {
        uint64_t off, len;
        TRY(rd_u64(r, &f->u.chunk.stream, "chunk stream id"));
        TRY(rd_u32(r, &f->u.chunk.index, "chunk index"));
        TRY(rd_u32(r, &f->u.chunk.count, "chunk count"));
        TRY(rd_u64(r, &f->u.chunk.total, "chunk total length"));
        TRY(transport__rd_bin(r, &f->u.chunk.data, &f->u.chunk.len, r->lim->max_frame_bytes,
                              "chunk data"));
        if (!transport__chunk_span(f->u.chunk.total, f->u.chunk.count, f->u.chunk.index, &off,
                                   &len))
            return rd_fail(r, NNM_EFORMAT, "chunk",
                           "index %u, count %u and total %llu break the chunking rule",
                           f->u.chunk.index, f->u.chunk.count,
                           (unsigned long long)f->u.chunk.total);
        if (len != f->u.chunk.len)
            return rd_fail(r, NNM_EFORMAT, "chunk data", "is %zu bytes, expected %llu",
                           f->u.chunk.len, (unsigned long long)len);
        break;
    }
    default:
        return rd_fail(r, NNM_EFORMAT, "header type", "unknown frame type %u", type);
    }
    transport__rd_leave(r);
    if (r->left != 0)
        return rd_fail(r, NNM_EFORMAT, "body", "%zu trailing bytes after the body", r->left);
    return NNM_OK;
}

nnm_err nnm_frame_body_decode(nnm_frame **out, const nnm_frame_header *h, const uint8_t *buf,
                              size_t len, const nnm_wire_limits *lim, nnm_diag *diag)
{
    nnm_wire_limits l = limits_of(lim);
    wire_rd r = { .p = buf, .left = len, .lim = &l, .depth = 0, .diag = diag };
    nnm_err rc = NNM_ENOMEM;
    nnm_frame *f = NULL;
    *out = NULL;
    if (h->type == 0 || h->type >= NNM_FRAME__COUNT) {
        rc = nnm_diag_set(diag, NNM_EINVAL, "frame: unknown frame type %u", h->type);
        goto fail;
    }
    if (len > l.max_frame_bytes) {
        rc = nnm_diag_set(diag, NNM_ERANGE, "frame: body of %zu bytes; the limit is %zu", len,
                          l.max_frame_bytes);
        goto fail;
    }
    if ((f = calloc(1, sizeof *f)) == NULL) {
        rc = nnm_diag_set(diag, NNM_ENOMEM, "out of memory while decoding a frame");
        goto fail;
    }
    f->hdr = *h;
    if ((rc = rd_body(&r, f)) != NNM_OK) goto fail;
    *out = f;
    return NNM_OK;
fail:
    nnm_frame_free(f);
    return rc;
}

nnm_err nnm_frame_decode(nnm_frame **out, const uint8_t *buf, size_t len,
                         const nnm_wire_limits *lim, nnm_diag *diag)
{
    nnm_frame_header h;
    size_t used;
    *out = NULL;
    nnm_err rc = nnm_frame_header_decode(&h, &used, buf, len, lim, diag);
    if (rc != NNM_OK) return rc;
    return nnm_frame_body_decode(out, &h, buf + used, len - used, lim, diag);
}

/* ---- bodies: encode -------------------------------------------------------------------- */

static void put_dims(wire_buf *b, const uint64_t *v, int n)
{
    msgpack_pack_array(&b->pk, (size_t)n);
    for (int i = 0; i < n; i++) msgpack_pack_uint64(&b->pk, v[i]);
}

static void put_tensor(wire_buf *b, const nnm_wire_tensor *t)
{
    msgpack_pack_array(&b->pk, 8);
    transport__put_str(b, t->name);
    msgpack_pack_uint8(&b->pk, t->dtype);
    put_dims(b, t->shape, t->ndim);
    msgpack_pack_uint8(&b->pk, t->layout);
    msgpack_pack_uint8(&b->pk, t->codec);
    msgpack_pack_uint64(&b->pk, t->raw_len);
    transport__put_bin(b, t->params, t->params_len);
    transport__put_bin(b, t->data, t->data_len);
}

static void put_tensors(wire_buf *b, size_t n, const nnm_wire_tensor *ts)
{
    msgpack_pack_array(&b->pk, n);
    for (size_t i = 0; i < n; i++) put_tensor(b, &ts[i]);
}

/* AUTO, the default, is written as the 8-field spec without result_codec: a worker from
 * before the field then still takes the default TASK. */
static void put_spec(wire_buf *b, const nnm_slice_spec *s)
{
    bool codec = s->result_codec != NNM_CODEC_AUTO;
    msgpack_pack_array(&b->pk, codec ? 9 : 8);
    transport__put_bin(b, s->model_hash, NNM_WIRE_HASH_BYTES);
    msgpack_pack_uint32(&b->pk, s->node_begin);
    msgpack_pack_uint32(&b->pk, s->node_end);
    msgpack_pack_uint8(&b->pk, s->part_kind);
    msgpack_pack_uint32(&b->pk, s->part_begin);
    msgpack_pack_uint32(&b->pk, s->part_end);
    msgpack_pack_uint32(&b->pk, s->attempt);
    msgpack_pack_uint64(&b->pk, s->deadline_ms);
    if (codec) msgpack_pack_uint8(&b->pk, s->result_codec);
}

static void put_routes(wire_buf *b, const nnm_frame *f)
{
    msgpack_pack_array(&b->pk, f->u.task.nawait);
    for (size_t i = 0; i < f->u.task.nawait; i++) {
        const nnm_task_await *a = &f->u.task.await[i];
        msgpack_pack_array(&b->pk, 4);
        transport__put_str(b, a->name);
        msgpack_pack_uint8(&b->pk, a->dtype);
        put_dims(b, a->shape, a->ndim);
        msgpack_pack_array(&b->pk, a->npiece);
        for (size_t k = 0; k < a->npiece; k++) {
            const nnm_await_piece *p = &a->pieces[k];
            msgpack_pack_array(&b->pk, 3);
            transport__put_str(b, p->from);
            put_dims(b, p->at, a->ndim);
            put_dims(b, p->shape, a->ndim);
        }
    }
    msgpack_pack_array(&b->pk, f->u.task.nforward);
    for (size_t i = 0; i < f->u.task.nforward; i++) {
        const nnm_task_forward *fw = &f->u.task.forward[i];
        msgpack_pack_array(&b->pk, 6);
        transport__put_str(b, fw->node);
        msgpack_pack_uint64(&b->pk, fw->task);
        transport__put_str(b, fw->name);
        put_dims(b, fw->begin, fw->ndim);
        put_dims(b, fw->end, fw->ndim);
        put_dims(b, fw->at, fw->ndim);
    }
    msgpack_pack_array(&b->pk, f->u.task.nreturn);
    for (size_t i = 0; i < f->u.task.nreturn; i++) transport__put_str(b, f->u.task.returns[i]);
}

static void put_piece(wire_buf *b, const nnm_frame *f)
{
    transport__put_str(b, f->u.tensor.coord);
    msgpack_pack_array(&b->pk, f->u.tensor.ntensors);
    for (size_t i = 0; i < f->u.tensor.ntensors; i++)
        put_dims(b, f->u.tensor.at[i].v, f->u.tensor.tensors[i].ndim);
}

/* The field count of f's body: the extended form for a routed TASK or a piece TENSOR. */
static size_t body_count(const nnm_frame *f)
{
    bool ext = (f->hdr.type == NNM_FRAME_TASK && f->u.task.routed) ||
               (f->hdr.type == NNM_FRAME_TENSOR && f->u.tensor.piece);
    return ext ? body_fields[f->hdr.type].ext : body_fields[f->hdr.type].n;
}

static int cap_cmp(const void *a, const void *b)
{
    const nnm_advert_cap *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

static void put_advert(wire_buf *b, const nnm_advert *a, const nnm_advert_cap **sorted)
{
    msgpack_pack_uint64(&b->pk, a->epoch);
    msgpack_pack_uint64(&b->pk, a->seq);
    msgpack_pack_uint64(&b->pk, a->expiry_ms);
    transport__put_str(b, a->version);
    msgpack_pack_uint64(&b->pk, a->free_mem);
    msgpack_pack_uint32(&b->pk, a->load_permille);
    msgpack_pack_map(&b->pk, a->ncaps);
    for (size_t i = 0; i < a->ncaps; i++) {
        transport__put_str(b, sorted[i]->name);
        msgpack_pack_uint64(&b->pk, sorted[i]->value);
    }
    msgpack_pack_array(&b->pk, a->nmodels);
    for (size_t i = 0; i < a->nmodels; i++) transport__put_bin(b, a->models[i], NNM_WIRE_HASH_BYTES);
}

static void put_body(wire_buf *b, const nnm_frame *f, const nnm_advert_cap **sorted)
{
    msgpack_pack_array(&b->pk, body_count(f));
    switch (f->hdr.type) {
    case NNM_FRAME_HELLO:
        transport__put_bin(b, f->u.hello.payload, f->u.hello.len);
        break;
    case NNM_FRAME_ADVERT:
        put_advert(b, &f->u.advert, sorted);
        break;
    case NNM_FRAME_TASK:
        put_spec(b, &f->u.task.spec);
        put_tensors(b, f->u.task.ntensors, f->u.task.tensors);
        if (f->u.task.routed) put_routes(b, f);
        break;
    case NNM_FRAME_TENSOR:
        put_tensors(b, f->u.tensor.ntensors, f->u.tensor.tensors);
        if (f->u.tensor.piece) put_piece(b, f);
        break;
    case NNM_FRAME_RESULT:
        msgpack_pack_uint32(&b->pk, f->u.result.status);
        put_tensors(b, f->u.result.ntensors, f->u.result.tensors);
        msgpack_pack_array(&b->pk, f->u.result.ntrace);
        for (size_t i = 0; i < f->u.result.ntrace; i++) {
            const nnm_trace_entry *e = &f->u.result.trace[i];
            msgpack_pack_array(&b->pk, 6);
            transport__put_str(b, e->node);
            msgpack_pack_uint32(&b->pk, e->node_begin);
            msgpack_pack_uint32(&b->pk, e->node_end);
            msgpack_pack_uint64(&b->pk, e->compute_us);
            msgpack_pack_uint64(&b->pk, e->transfer_us);
            msgpack_pack_uint64(&b->pk, e->wait_us);
        }
        break;
    case NNM_FRAME_ERROR:
        msgpack_pack_uint32(&b->pk, f->u.error.code);
        transport__put_str(b, f->u.error.message);
        break;
    case NNM_FRAME_CTL:
        transport__put_str(b, f->u.ctl.verb);
        transport__put_str(b, f->u.ctl.arg);
        break;
    case NNM_FRAME_PROBE:
        msgpack_pack_uint64(&b->pk, f->u.probe.seq);
        msgpack_pack_uint64(&b->pk, f->u.probe.sent_us);
        transport__put_bin(b, f->u.probe.pad, f->u.probe.pad_len);
        break;
    case NNM_FRAME_ACK:
        msgpack_pack_uint64(&b->pk, f->u.ack.counter);
        msgpack_pack_uint32(&b->pk, f->u.ack.status);
        break;
    case NNM_FRAME_BYE:
        transport__put_str(b, f->u.bye.reason);
        break;
    case NNM_FRAME_CHUNK:
        msgpack_pack_uint64(&b->pk, f->u.chunk.stream);
        msgpack_pack_uint32(&b->pk, f->u.chunk.index);
        msgpack_pack_uint32(&b->pk, f->u.chunk.count);
        msgpack_pack_uint64(&b->pk, f->u.chunk.total);
        transport__put_bin(b, f->u.chunk.data, f->u.chunk.len);
        break;
    default:
        break;
    }
}

static bool tensors_shaped(size_t n, const nnm_wire_tensor *ts)
{
    if (n > 0 && ts == NULL) return false;
    for (size_t i = 0; i < n; i++)
        if (ts[i].ndim < 0 || ts[i].ndim > NNM_MAX_DIMS) return false;
    return true;
}

/* body_writable for the extended forms, naming the field: a routed TASK's arrays present
 * (an await's pieces too, at least one) with 1 to NNM_MAX_DIMS dims and terminated node ids,
 * a piece's at present and its coordinator id terminated. Short forms ignore these fields. */
static nnm_err routes_writable(const nnm_frame *f, nnm_diag *diag)
{
    if (f->hdr.type == NNM_FRAME_TASK && f->u.task.routed) {
        if ((f->u.task.nawait > 0 && f->u.task.await == NULL) ||
            (f->u.task.nforward > 0 && f->u.task.forward == NULL) ||
            (f->u.task.nreturn > 0 && f->u.task.returns == NULL))
            return nnm_diag_set(diag, NNM_EINVAL, "frame: task awaits, forwards or returns: "
                                "a NULL array with a count");
        for (size_t i = 0; i < f->u.task.nawait; i++) {
            const nnm_task_await *a = &f->u.task.await[i];
            if (a->ndim < 1 || a->ndim > NNM_MAX_DIMS)
                return nnm_diag_set(diag, NNM_EINVAL, "frame: await %zu shape: %d dimensions; "
                                    "expected 1 to %d", i, a->ndim, NNM_MAX_DIMS);
            if (a->npiece == 0)
                return nnm_diag_set(diag, NNM_EINVAL, "frame: await %zu pieces: none; an "
                                    "awaited input comes in at least one piece", i);
            if (a->pieces == NULL)
                return nnm_diag_set(diag, NNM_EINVAL, "frame: await %zu pieces: NULL for %zu "
                                    "pieces", i, a->npiece);
            for (size_t k = 0; k < a->npiece; k++)
                if (memchr(a->pieces[k].from, 0, sizeof a->pieces[k].from) == NULL)
                    return nnm_diag_set(diag, NNM_EINVAL, "frame: await %zu piece %zu from: "
                                        "not terminated", i, k);
        }
        for (size_t i = 0; i < f->u.task.nforward; i++) {
            const nnm_task_forward *fw = &f->u.task.forward[i];
            if (fw->ndim < 1 || fw->ndim > NNM_MAX_DIMS)
                return nnm_diag_set(diag, NNM_EINVAL, "frame: forward %zu begin: %d dimensions; "
                                    "expected 1 to %d", i, fw->ndim, NNM_MAX_DIMS);
            if (memchr(fw->node, 0, sizeof fw->node) == NULL)
                return nnm_diag_set(diag, NNM_EINVAL, "frame: forward %zu node id: not "
                                    "terminated", i);
        }
    }
    if (f->hdr.type == NNM_FRAME_TENSOR && f->u.tensor.piece) {
        if (f->u.tensor.ntensors > 0 && f->u.tensor.at == NULL)
            return nnm_diag_set(diag, NNM_EINVAL, "frame: piece at: NULL for %zu tensors",
                                f->u.tensor.ntensors);
        if (memchr(f->u.tensor.coord, 0, sizeof f->u.tensor.coord) == NULL)
            return nnm_diag_set(diag, NNM_EINVAL, "frame: piece coordinator id: not terminated");
    }
    return NNM_OK;
}

/* What the writer itself needs to stay in bounds: known type, arrays present, dims in
 * range, fixed-size strings terminated. Everything else is judged by the decoder. */
static nnm_err body_writable(const nnm_frame *f, nnm_diag *diag)
{
    unsigned type = f->hdr.type;
    bool ok = true;
    if (type == 0 || type >= NNM_FRAME__COUNT)
        return nnm_diag_set(diag, NNM_EINVAL, "frame: unknown frame type %u", type);
    switch (type) {
    case NNM_FRAME_TASK: ok = tensors_shaped(f->u.task.ntensors, f->u.task.tensors); break;
    case NNM_FRAME_TENSOR: ok = tensors_shaped(f->u.tensor.ntensors, f->u.tensor.tensors); break;
    case NNM_FRAME_RESULT:
        ok = tensors_shaped(f->u.result.ntensors, f->u.result.tensors) &&
             (f->u.result.ntrace == 0 || f->u.result.trace != NULL);
        for (size_t i = 0; ok && i < f->u.result.ntrace; i++)
            ok = memchr(f->u.result.trace[i].node, 0, NNM_ID_MAX + 1) != NULL;
        break;
    case NNM_FRAME_ADVERT:
        ok = (f->u.advert.ncaps == 0 || f->u.advert.caps != NULL) &&
             (f->u.advert.nmodels == 0 || f->u.advert.models != NULL) &&
             memchr(f->u.advert.version, 0, NNM_ID_MAX + 1) != NULL;
        for (size_t i = 0; ok && i < f->u.advert.ncaps; i++)
            ok = memchr(f->u.advert.caps[i].name, 0, NNM_ID_MAX + 1) != NULL;
        break;
    case NNM_FRAME_CTL: ok = memchr(f->u.ctl.verb, 0, NNM_ID_MAX + 1) != NULL; break;
    case NNM_FRAME_HELLO: ok = f->u.hello.len == 0 || f->u.hello.payload != NULL; break;
    case NNM_FRAME_PROBE: ok = f->u.probe.pad_len == 0 || f->u.probe.pad != NULL; break;
    case NNM_FRAME_CHUNK: ok = f->u.chunk.len == 0 || f->u.chunk.data != NULL; break;
    default: break;
    }
    if (!ok)
        return nnm_diag_set(diag, NNM_EINVAL,
                            "frame: %s body has a NULL array, an unterminated id or bad ndim",
                            nnm_frame_type_name(type));
    return routes_writable(f, diag);
}

static size_t tensors_bytes(size_t n, const nnm_wire_tensor *ts)
{
    size_t s = 0;
    for (size_t i = 0; i < n; i++) s += ts[i].data_len + ts[i].params_len + 128;
    return s;
}

/* Encodes header (if with_header) then body into b; the caller judges the result. */
static nnm_err encode_into(wire_buf *b, const nnm_frame *f, bool with_header, nnm_diag *diag)
{
    nnm_err rc;
    const nnm_advert_cap **sorted = NULL;
    if ((rc = body_writable(f, diag)) != NNM_OK) return rc;
    if (with_header && (rc = header_strings_ok(&f->hdr, diag)) != NNM_OK) return rc;
    size_t reserve = 512;
    switch (f->hdr.type) {
    case NNM_FRAME_TASK:
        reserve += tensors_bytes(f->u.task.ntensors, f->u.task.tensors);
        if (f->u.task.routed) {
            reserve += f->u.task.nawait * 48 + f->u.task.nforward * 128 +
                       f->u.task.nreturn * 32;
            for (size_t i = 0; i < f->u.task.nawait; i++)    /* checked by routes_writable */
                reserve += f->u.task.await[i].npiece * 64;
        }
        break;
    case NNM_FRAME_TENSOR:
        reserve += tensors_bytes(f->u.tensor.ntensors, f->u.tensor.tensors);
        break;
    case NNM_FRAME_RESULT:
        reserve += tensors_bytes(f->u.result.ntensors, f->u.result.tensors) +
                   f->u.result.ntrace * 64;
        break;
    case NNM_FRAME_CHUNK: reserve += f->u.chunk.len; break;
    case NNM_FRAME_HELLO: reserve += f->u.hello.len; break;
    case NNM_FRAME_PROBE: reserve += f->u.probe.pad_len; break;
    case NNM_FRAME_ADVERT:
        if (f->u.advert.ncaps > 0) {
            sorted = malloc(f->u.advert.ncaps * sizeof *sorted);
            if (sorted == NULL)
                return nnm_diag_set(diag, NNM_ENOMEM, "out of memory while encoding a frame");
            for (size_t i = 0; i < f->u.advert.ncaps; i++) sorted[i] = &f->u.advert.caps[i];
            qsort(sorted, f->u.advert.ncaps, sizeof *sorted, cap_cmp);
        }
        reserve += f->u.advert.nmodels * 34 + f->u.advert.ncaps * 48;
        break;
    default: break;
    }
    transport__buf_init(b, reserve);
    if (with_header) put_header(b, &f->hdr);
    put_body(b, f, sorted);
    free(sorted);
    return NNM_OK;
}

static nnm_err encode(uint8_t **out, size_t *len, const nnm_frame *f, bool with_header,
                      nnm_diag *diag)
{
    nnm_err rc;
    wire_buf b;
    uint8_t *p = NULL;
    size_t n = 0;
    nnm_frame *chk = NULL;
    *out = NULL;
    *len = 0;
    if ((rc = encode_into(&b, f, with_header, diag)) != NNM_OK) return rc;
    if ((rc = transport__buf_finish(&b, &p, &n, diag)) != NNM_OK) return rc;
    if (with_header)
        rc = nnm_frame_decode(&chk, p, n, NULL, diag);
    else
        rc = nnm_frame_body_decode(&chk, &f->hdr, p, n, NULL, diag);
    nnm_frame_free(chk);
    if (rc != NNM_OK) {
        free(p);
        return as_encode_error(rc);
    }
    *out = p;
    *len = n;
    return NNM_OK;
}

nnm_err nnm_frame_body_encode(uint8_t **out, size_t *len, const nnm_frame *f, nnm_diag *diag)
{
    return encode(out, len, f, false, diag);
}

nnm_err nnm_frame_encode(uint8_t **out, size_t *len, const nnm_frame *f, nnm_diag *diag)
{
    return encode(out, len, f, true, diag);
}
