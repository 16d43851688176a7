/* runtime/npy.c — reading and writing NumPy .npy files, the format users hand tensors in.
 *
 * Layout of a .npy image: the magic "\x93NUMPY", a major and a minor version byte, the
 * header length (2 bytes little-endian in version 1.0, 4 bytes in 2.0 and 3.0), the header
 * (a Python dict literal padded with spaces and ending in '\n'), then the raw data in C order.
 *
 * The header is outside input: it is parsed by a small recursive-descent reader that accepts
 * only what numpy writes (and what numpy itself would accept back), never evaluates
 * anything, and checks every size before allocating. The data length must equal what the
 * shape and dtype say, byte for byte. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nnmesh/npy.h"

#define MAGIC "\x93NUMPY"
#define MAGIC_LEN 6
/* A valid header for 8 dimensions is under 300 bytes; anything much longer is either a
 * dtype we do not support or an attempt to make us allocate. numpy's own reader refuses
 * headers over 10000 bytes by default. */
#define MAX_HEADER 65536
/* numpy >= 1.23 leaves room after the header so that the first axis can grow in place. */
#define GROWTH_AXIS_MAX_DIGITS 21
#define ALIGN 64

/* What the header says; filled by parse_prefix. */
struct npy_hdr {
    nnm_dtype dtype;
    int ndim;
    int64_t shape[NNM_MAX_DIMS];
    size_t data_off;   /* offset of the first data byte */
    size_t nbytes;     /* data bytes the shape and dtype call for */
};

/* Reader over the header text; pos is always <= len. */
struct cursor {
    const char *s;
    size_t len;
    size_t pos;
    size_t base;       /* file offset of s[0], for messages */
};

static const struct {
    char code[3];
    nnm_dtype dt;
} descr_table[] = {
    {"f4", NNM_DT_F32}, {"f2", NNM_DT_F16}, {"i1", NNM_DT_I8}, {"u1", NNM_DT_U8},
    {"i4", NNM_DT_I32}, {"i8", NNM_DT_I64}, {"b1", NNM_DT_BOOL}, {"f8", NNM_DT_F64},
};

/* Copies at most cap-1 bytes of src into dst for a message, replacing anything that is not
 * printable ASCII (or a quote) with '?', so outside bytes never reach a terminal raw. */
static void printable(char *dst, size_t cap, const char *src, size_t n)
{
    size_t i = 0;
    for (; i < n && i + 1 < cap; i++) {
        unsigned char c = (unsigned char)src[i];
        dst[i] = (c >= 0x20 && c < 0x7f && c != '\'' && c != '"') ? (char)c : '?';
    }
    if (cap > 0) dst[i < cap ? i : cap - 1] = '\0';
}

static void skip_ws(struct cursor *c)
{
    while (c->pos < c->len && (c->s[c->pos] == ' ' || c->s[c->pos] == '\t')) c->pos++;
}

static int peek(struct cursor *c)
{
    return c->pos < c->len ? (unsigned char)c->s[c->pos] : -1;
}

static nnm_err expect(struct cursor *c, char ch, const char *what, nnm_diag *diag)
{
    skip_ws(c);
    if (peek(c) != (unsigned char)ch)
        return nnm_diag_set(diag, NNM_EFORMAT,
                            "malformed .npy header: expected '%c' %s at byte %zu", ch, what,
                            c->base + c->pos);
    c->pos++;
    return NNM_OK;
}

/* Reads a quoted string literal ('...' or "...", no escapes: nothing numpy writes in these
 * positions needs one); *str points into the header, *n is its length. */
static nnm_err read_string(struct cursor *c, const char **str, size_t *n, const char *what,
                           nnm_diag *diag)
{
    skip_ws(c);
    int q = peek(c);
    if (q != '\'' && q != '"')
        return nnm_diag_set(diag, NNM_EFORMAT,
                            "malformed .npy header: expected a quoted %s at byte %zu", what,
                            c->base + c->pos);
    size_t start = ++c->pos;
    while (c->pos < c->len && c->s[c->pos] != q) {
        if (c->s[c->pos] == '\\' || c->s[c->pos] == '\n')
            return nnm_diag_set(diag, NNM_EFORMAT,
                                "malformed .npy header: unexpected %s in %s at byte %zu",
                                c->s[c->pos] == '\\' ? "escape" : "newline", what,
                                c->base + c->pos);
        c->pos++;
    }
    if (c->pos >= c->len)
        return nnm_diag_set(diag, NNM_EFORMAT, "malformed .npy header: unterminated %s",
                            what);
    *str = c->s + start;
    *n = c->pos - start;
    c->pos++;
    return NNM_OK;
}

/* Maps a descr string to a dtype: an optional byte-order character then a type code. */
static nnm_err parse_descr(struct npy_hdr *h, const char *s, size_t n, nnm_diag *diag)
{
    char shown[24];
    printable(shown, sizeof shown, s, n);
    const char *code = s;
    size_t clen = n;
    char order = '=';
    if (n > 0 && strchr("<>|=!", s[0]) != NULL) {
        order = s[0];
        code++;
        clen--;
    }
    for (size_t i = 0; i < sizeof descr_table / sizeof descr_table[0]; i++) {
        if (clen != 2 || memcmp(code, descr_table[i].code, 2) != 0) continue;
        nnm_dtype dt = descr_table[i].dt;
        /* Byte order means nothing for one-byte types: numpy reads '>u1' as '|u1'. The
         * runtime only targets little-endian hosts, so '|' and '=' (native) are '<'. */
        if ((order == '>' || order == '!') && nnm_dtype_size(dt) > 1)
            return nnm_diag_set(diag, NNM_EUNSUPPORTED,
                                "big-endian data (descr '%s') is not supported; convert "
                                "it with arr.astype(arr.dtype.newbyteorder('<'))", shown);
        h->dtype = dt;
        return NNM_OK;
    }
    return nnm_diag_set(diag, NNM_EUNSUPPORTED,
                        "dtype descr '%s' is not supported (use one of float32, float16, "
                        "float64, int8, uint8, int32, int64, bool)", shown);
}

static nnm_err parse_bool(struct cursor *c, int *v, nnm_diag *diag)
{
    skip_ws(c);
    const char *p = c->s + c->pos;
    size_t left = c->len - c->pos;
    if (left >= 4 && memcmp(p, "True", 4) == 0) {
        *v = 1;
        c->pos += 4;
    } else if (left >= 5 && memcmp(p, "False", 5) == 0) {
        *v = 0;
        c->pos += 5;
    } else {
        return nnm_diag_set(diag, NNM_EFORMAT,
                            "malformed .npy header: fortran_order must be True or False "
                            "(byte %zu)", c->base + c->pos);
    }
    return NNM_OK;
}

/* Reads a non-negative decimal dimension. A minus sign is reported as a negative
 * dimension rather than a syntax error because that is what the user needs to hear. */
static nnm_err parse_dim(struct cursor *c, int64_t *v, nnm_diag *diag)
{
    skip_ws(c);
    int neg = 0;
    if (peek(c) == '-') {
        neg = 1;
        c->pos++;
    }
    if (peek(c) < '0' || peek(c) > '9')
        return nnm_diag_set(diag, NNM_EFORMAT,
                            "malformed .npy header: expected a dimension in 'shape' at "
                            "byte %zu", c->base + c->pos);
    uint64_t x = 0;
    int too_big = 0;
    while (peek(c) >= '0' && peek(c) <= '9') {
        unsigned d = (unsigned)(peek(c) - '0');
        if (x > ((uint64_t)INT64_MAX - d) / 10) too_big = 1;
        else x = x * 10 + d;
        c->pos++;
    }
    if (too_big)
        return nnm_diag_set(diag, NNM_ERANGE,
                            ".npy header: a dimension in 'shape' does not fit in 64 bits");
    if (neg && x != 0)
        return nnm_diag_set(diag, NNM_EFORMAT,
                            ".npy header: negative dimension -%llu in 'shape'",
                            (unsigned long long)x);
    *v = (int64_t)x;
    return NNM_OK;
}

/* Python tuple syntax: "()", "(3,)", "(2, 3)", "(2, 3,)". "(3)" is an int in Python,
 * not a tuple, and numpy rejects it; so do we. */
static nnm_err parse_shape(struct cursor *c, struct npy_hdr *h, nnm_diag *diag)
{
    nnm_err rc;
    if ((rc = expect(c, '(', "to open the 'shape' tuple", diag)) != NNM_OK) return rc;
    int n = 0, trailing_comma = 0;
    skip_ws(c);
    while (peek(c) != ')') {
        int64_t d = 0;
        if ((rc = parse_dim(c, &d, diag)) != NNM_OK) return rc;
        if (n == NNM_MAX_DIMS)
            return nnm_diag_set(diag, NNM_ERANGE,
                                ".npy header: 'shape' has more than %d dimensions",
                                NNM_MAX_DIMS);
        h->shape[n++] = d;
        skip_ws(c);
        trailing_comma = 0;
        if (peek(c) == ',') {
            c->pos++;
            trailing_comma = 1;
            skip_ws(c);
        } else if (peek(c) != ')') {
            return nnm_diag_set(diag, NNM_EFORMAT,
                                "malformed .npy header: expected ',' or ')' in 'shape' at "
                                "byte %zu", c->base + c->pos);
        }
    }
    if (n == 1 && !trailing_comma)
        return nnm_diag_set(diag, NNM_EFORMAT,
                            "malformed .npy header: 'shape' is not a tuple (a 1-d shape is "
                            "written '(%lld,)')", (long long)h->shape[0]);
    c->pos++;
    h->ndim = n;
    return NNM_OK;
}

/* Parses the dict text s[0..len) (without the final '\n'); base is its file offset. */
static nnm_err parse_dict(const char *s, size_t len, size_t base, struct npy_hdr *h,
                          nnm_diag *diag)
{
    struct cursor c = {s, len, 0, base};
    enum { K_DESCR = 1, K_FORTRAN = 2, K_SHAPE = 4 };
    unsigned seen = 0;
    int fortran = 0;
    nnm_err rc;
    if ((rc = expect(&c, '{', "to open the header dict", diag)) != NNM_OK) return rc;
    for (;;) {
        skip_ws(&c);
        if (peek(&c) == '}') break;
        const char *key;
        size_t klen;
        if ((rc = read_string(&c, &key, &klen, "key", diag)) != NNM_OK) return rc;
        unsigned k = 0;
        if (klen == 5 && memcmp(key, "descr", 5) == 0) k = K_DESCR;
        else if (klen == 13 && memcmp(key, "fortran_order", 13) == 0) k = K_FORTRAN;
        else if (klen == 5 && memcmp(key, "shape", 5) == 0) k = K_SHAPE;
        char shown[40];
        printable(shown, sizeof shown, key, klen);
        if (k == 0)
            return nnm_diag_set(diag, NNM_EFORMAT,
                                ".npy header: unexpected key '%s' (only 'descr', "
                                "'fortran_order' and 'shape' are allowed)", shown);
        if (seen & k)
            return nnm_diag_set(diag, NNM_EFORMAT, ".npy header: key '%s' appears twice",
                                shown);
        seen |= k;
        if ((rc = expect(&c, ':', "after a key", diag)) != NNM_OK) return rc;
        if (k == K_DESCR) {
            const char *v;
            size_t vlen;
            skip_ws(&c);
            if (peek(&c) == '[')
                return nnm_diag_set(diag, NNM_EUNSUPPORTED,
                                    "structured dtypes are not supported; save a plain "
                                    "array");
            if ((rc = read_string(&c, &v, &vlen, "descr", diag)) != NNM_OK) return rc;
            if ((rc = parse_descr(h, v, vlen, diag)) != NNM_OK) return rc;
        } else if (k == K_FORTRAN) {
            if ((rc = parse_bool(&c, &fortran, diag)) != NNM_OK) return rc;
        } else {
            if ((rc = parse_shape(&c, h, diag)) != NNM_OK) return rc;
        }
        skip_ws(&c);
        if (peek(&c) == ',') {
            c.pos++;
        } else if (peek(&c) != '}') {
            return nnm_diag_set(diag, NNM_EFORMAT,
                                "malformed .npy header: expected ',' or '}' at byte %zu",
                                c.base + c.pos);
        }
    }
    c.pos++;
    /* Only the space padding may follow the dict. */
    skip_ws(&c);
    if (c.pos != c.len)
        return nnm_diag_set(diag, NNM_EFORMAT,
                            "malformed .npy header: unexpected text after the dict at "
                            "byte %zu", c.base + c.pos);
    if (!(seen & K_DESCR) || !(seen & K_FORTRAN) || !(seen & K_SHAPE))
        return nnm_diag_set(diag, NNM_EFORMAT, ".npy header: missing key '%s'",
                            !(seen & K_DESCR) ? "descr"
                            : !(seen & K_FORTRAN) ? "fortran_order" : "shape");
    if (fortran)
        return nnm_diag_set(diag, NNM_EUNSUPPORTED,
                            "Fortran-order arrays are not supported; save "
                            "np.ascontiguousarray(arr) instead");
    return NNM_OK;
}

/* Validates the preamble and header. buf holds the first `have` bytes of an image of
 * `total` bytes; have must cover the header whenever the header fits in total. */
static nnm_err parse_prefix(const uint8_t *buf, size_t have, size_t total, struct npy_hdr *h,
                            nnm_diag *diag)
{
    memset(h, 0, sizeof *h);
    if (total == 0)
        return nnm_diag_set(diag, NNM_EFORMAT, "empty file, not a .npy image");
    size_t m = total < MAGIC_LEN ? total : MAGIC_LEN;
    if (have < m || memcmp(buf, MAGIC, m) != 0)
        return nnm_diag_set(diag, NNM_EFORMAT,
                            "not a .npy file (bad magic; expected \\x93NUMPY)");
    if (total < MAGIC_LEN + 2)
        return nnm_diag_set(diag, NNM_EFORMAT,
                            "truncated .npy header: %zu bytes, too short for the preamble",
                            total);
    unsigned major = buf[6], minor = buf[7];
    if ((major < 1 || major > 3) || minor != 0)
        return nnm_diag_set(diag, NNM_EUNSUPPORTED,
                            ".npy format version %u.%u is not supported (1.0, 2.0, 3.0 are)",
                            major, minor);
    size_t lenbytes = major == 1 ? 2 : 4;
    size_t pre = MAGIC_LEN + 2 + lenbytes;
    if (total < pre)
        return nnm_diag_set(diag, NNM_EFORMAT,
                            "truncated .npy header: %zu bytes, too short for the preamble",
                            total);
    size_t hlen = (size_t)buf[8] | (size_t)buf[9] << 8;
    if (lenbytes == 4) hlen |= (size_t)buf[10] << 16 | (size_t)buf[11] << 24;
    if (hlen > MAX_HEADER)
        return nnm_diag_set(diag, NNM_EFORMAT,
                            ".npy header length %zu exceeds the limit of %d bytes", hlen,
                            MAX_HEADER);
    if (hlen > total - pre)
        return nnm_diag_set(diag, NNM_EFORMAT,
                            "truncated .npy header: header length %zu goes beyond the end "
                            "of the file (%zu bytes)", hlen, total);
    if (hlen == 0 || buf[pre + hlen - 1] != '\n')
        return nnm_diag_set(diag, NNM_EFORMAT,
                            "malformed .npy header: it does not end with a newline");
    nnm_err rc = parse_dict((const char *)buf + pre, hlen - 1, pre, h, diag);
    if (rc != NNM_OK) return rc;
    size_t es = nnm_dtype_size(h->dtype);
    int64_t numel = nnm_shape_numel(h->shape, h->ndim, es);
    if (numel < 0) {
        char sh[200];
        return nnm_diag_set(diag, NNM_ERANGE,
                            ".npy shape %s of %s is too large to address",
                            nnm_shape_format(sh, sizeof sh, h->shape, h->ndim),
                            nnm_dtype_name(h->dtype));
    }
    h->data_off = pre + hlen;
    h->nbytes = (size_t)numel * es;
    return NNM_OK;
}

/* The data section must be exactly as long as the header says. */
static nnm_err check_data_len(const struct npy_hdr *h, size_t found, nnm_diag *diag)
{
    if (found < h->nbytes)
        return nnm_diag_set(diag, NNM_EFORMAT,
                            "truncated: expected %zu bytes of data, found %zu", h->nbytes,
                            found);
    if (found > h->nbytes)
        return nnm_diag_set(diag, NNM_EFORMAT,
                            "%zu trailing bytes after the data (expected %zu bytes)",
                            found - h->nbytes, h->nbytes);
    return NNM_OK;
}

static nnm_err tensor_from_hdr(nnm_tensor *out, const struct npy_hdr *h, nnm_diag *diag)
{
    nnm_err rc = nnm_tensor_init(out, h->dtype, h->ndim, h->shape);
    if (rc == NNM_ENOMEM)
        return nnm_diag_set(diag, rc, "out of memory allocating %zu bytes of .npy data",
                            h->nbytes);
    if (rc != NNM_OK) return nnm_diag_set(diag, rc, "cannot create the tensor");
    return NNM_OK;
}

nnm_err nnm_npy_decode(nnm_tensor *out, const void *buf, size_t len, nnm_diag *diag)
{
    if (out == NULL) return nnm_diag_set(diag, NNM_EINVAL, "nnm_npy_decode: out is NULL");
    memset(out, 0, sizeof *out);
    if (buf == NULL && len > 0)
        return nnm_diag_set(diag, NNM_EINVAL, "nnm_npy_decode: buf is NULL");
    struct npy_hdr h;
    nnm_err rc = parse_prefix(buf, len, len, &h, diag);
    if (rc != NNM_OK) return rc;
    if ((rc = check_data_len(&h, len - h.data_off, diag)) != NNM_OK) return rc;
    if ((rc = tensor_from_hdr(out, &h, diag)) != NNM_OK) return rc;
    if (h.nbytes > 0) memcpy(out->data, (const uint8_t *)buf + h.data_off, h.nbytes);
    return NNM_OK;
}

/* Reads up to n bytes, retrying short reads and EINTR; returns bytes read or -1. */
static ssize_t read_full(int fd, void *p, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, (uint8_t *)p + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return -1;
        if (r == 0) break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

static nnm_err write_full(int fd, const void *p, size_t n)
{
    size_t put = 0;
    while (put < n) {
        ssize_t r = write(fd, (const uint8_t *)p + put, n - put);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return NNM_EIO;
        if (r == 0) {            /* no progress and no errno: call it an I/O error */
            errno = EIO;
            return NNM_EIO;
        }
        put += (size_t)r;
    }
    return NNM_OK;
}

static nnm_err read_error(nnm_diag *diag)
{
    return nnm_diag_set(diag, NNM_EIO, "read failed: %s", strerror(errno));
}

/* Pipes and character devices have no size: read everything, then decode. */
static nnm_err load_stream(nnm_tensor *out, int fd, nnm_diag *diag)
{
    nnm_err rc = NNM_ENOMEM;
    size_t cap = 4096, len = 0;
    uint8_t *buf = malloc(cap);
    if (buf == NULL) goto nomem;
    for (;;) {
        if (len == cap) {
            uint8_t *nb = cap > SIZE_MAX / 2 ? NULL : realloc(buf, cap * 2);
            if (nb == NULL) goto nomem;
            buf = nb;
            cap *= 2;
        }
        size_t room = cap - len;
        ssize_t r = read_full(fd, buf + len, room);
        if (r < 0) {
            rc = read_error(diag);
            goto fail;
        }
        len += (size_t)r;
        if ((size_t)r < room) break;   /* read_full stops short only at end of stream */
    }
    rc = nnm_npy_decode(out, buf, len, diag);
    free(buf);
    return rc;
nomem:
    rc = nnm_diag_set(diag, NNM_ENOMEM, "out of memory reading the file");
fail:
    free(buf);
    return rc;
}

/* Regular files: read the header, check the size the file should have, then read the data
 * straight into the tensor, so a large input is never held twice. */
static nnm_err load_regular(nnm_tensor *out, int fd, size_t total, nnm_diag *diag)
{
    uint8_t pre[MAGIC_LEN + 2 + 4];
    uint8_t *hbuf = NULL;
    nnm_err rc;
    size_t have = total < sizeof pre ? total : sizeof pre;
    ssize_t r = read_full(fd, pre, have);
    if (r < 0) {
        rc = read_error(diag);
        goto fail;
    }
    if ((size_t)r < have) {
        total = (size_t)r;     /* the file shrank under us: judge what is there */
        have = total;
    }
    /* Work out how much header to read; parse_prefix re-validates all of it. */
    size_t want = have;
    if (have >= 10 && memcmp(pre, MAGIC, MAGIC_LEN) == 0 && pre[7] == 0) {
        size_t hlen = (size_t)pre[8] | (size_t)pre[9] << 8, plen = 10;
        if (pre[6] >= 2 && have >= 12) {
            hlen |= (size_t)pre[10] << 16 | (size_t)pre[11] << 24;
            plen = 12;
        }
        if (hlen <= MAX_HEADER && hlen <= total - plen) want = plen + hlen;
    }
    hbuf = malloc(want > 0 ? want : 1);
    if (hbuf == NULL) {
        rc = nnm_diag_set(diag, NNM_ENOMEM, "out of memory reading the header");
        goto fail;
    }
    if (have > 0) memcpy(hbuf, pre, have);
    if (want > have) {
        r = read_full(fd, hbuf + have, want - have);
        if (r < 0) {
            rc = read_error(diag);
            goto fail;
        }
        if ((size_t)r < want - have) total = have + (size_t)r;
    }
    struct npy_hdr h;
    if ((rc = parse_prefix(hbuf, want, total, &h, diag)) != NNM_OK) goto fail;
    if ((rc = check_data_len(&h, total - h.data_off, diag)) != NNM_OK) goto fail;
    if ((rc = tensor_from_hdr(out, &h, diag)) != NNM_OK) goto fail;
    r = read_full(fd, out->data, h.nbytes);
    if (r < 0) {
        rc = read_error(diag);
        goto fail;
    }
    if ((size_t)r < h.nbytes) {
        rc = check_data_len(&h, (size_t)r, diag);
        goto fail;
    }
    uint8_t extra;
    r = read_full(fd, &extra, 1);
    if (r != 0) {
        rc = r < 0 ? read_error(diag)
                   : nnm_diag_set(diag, NNM_EFORMAT, "trailing bytes after the data (the "
                                  "file grew while it was read)");
        goto fail;
    }
    free(hbuf);
    return NNM_OK;
fail:
    free(hbuf);
    nnm_tensor_cleanup(out);
    return rc;
}

nnm_err nnm_npy_load(nnm_tensor *out, const char *path, nnm_diag *diag)
{
    if (out == NULL || path == NULL)
        return nnm_diag_set(diag, NNM_EINVAL, "nnm_npy_load: out and path must not be NULL");
    memset(out, 0, sizeof *out);
    nnm_err rc;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return nnm_diag_set(diag, NNM_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        rc = nnm_diag_set(diag, NNM_EIO, "cannot stat: %s", strerror(errno));
    } else if (S_ISDIR(st.st_mode)) {
        rc = nnm_diag_set(diag, NNM_EIO, "is a directory, not a .npy file");
    } else if (S_ISREG(st.st_mode)) {
        if ((uint64_t)st.st_size > SIZE_MAX)
            rc = nnm_diag_set(diag, NNM_ERANGE, "file of %lld bytes is too large to load",
                              (long long)st.st_size);
        else
            rc = load_regular(out, fd, (size_t)st.st_size, diag);
    } else {
        rc = load_stream(out, fd, diag);
    }
    close(fd);
    if (rc != NNM_OK) nnm_diag_prefix(diag, "%s", path);
    return rc;
}

/* Validates t and writes its version 1.0 header into hdr (which holds at least
 * HDR_CAP bytes); sets *hlen to the full prefix length (magic to '\n'). */
#define HDR_CAP 512
static nnm_err make_header(char *hdr, size_t *hlen, const nnm_tensor *t, nnm_diag *diag)
{
    static const char *const descr[NNM_DT__COUNT] = {
        [NNM_DT_F32] = "<f4", [NNM_DT_F16] = "<f2", [NNM_DT_I8] = "|i1",
        [NNM_DT_U8] = "|u1", [NNM_DT_I32] = "<i4", [NNM_DT_I64] = "<i8",
        [NNM_DT_BOOL] = "|b1", [NNM_DT_F64] = "<f8",
    };
    if (t == NULL) return nnm_diag_set(diag, NNM_EINVAL, "cannot encode a NULL tensor");
    size_t es = nnm_dtype_size(t->dtype);
    if (es == 0)
        return nnm_diag_set(diag, NNM_EINVAL, "cannot encode a tensor of unknown dtype %d",
                            (int)t->dtype);
    if (t->ndim < 0 || t->ndim > NNM_MAX_DIMS)
        return nnm_diag_set(diag, NNM_EINVAL, "cannot encode a tensor with %d dimensions",
                            t->ndim);
    int64_t numel = nnm_shape_numel(t->shape, t->ndim, es);
    char sh[200];
    nnm_shape_format(sh, sizeof sh, t->shape, t->ndim);
    if (numel < 0)
        return nnm_diag_set(diag, NNM_ERANGE, "cannot encode shape %s: negative or too "
                            "large", sh);
    if ((size_t)numel * es != t->nbytes || (t->data == NULL && t->nbytes > 0))
        return nnm_diag_set(diag, NNM_EINVAL,
                            "tensor %s %s has nbytes %zu (expected %zu) or no data",
                            nnm_dtype_name(t->dtype), sh, t->nbytes, (size_t)numel * es);

    /* The dict exactly as numpy 1.24 writes it, so our files are byte-identical. */
    char dict[HDR_CAP];
    int n = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (",
                     descr[t->dtype]);
    for (int i = 0; i < t->ndim; i++)
        n += snprintf(dict + n, sizeof dict - (size_t)n, i ? ", %lld" : "%lld",
                      (long long)t->shape[i]);
    n += snprintf(dict + n, sizeof dict - (size_t)n, "%s), }", t->ndim == 1 ? "," : "");
    if (t->ndim > 0) {
        int digits = snprintf(NULL, 0, "%lld", (long long)t->shape[0]);
        for (int i = digits; i < GROWTH_AXIS_MAX_DIGITS; i++) dict[n++] = ' ';
    }
    size_t body = (size_t)n + 1;                       /* + '\n' */
    size_t total = MAGIC_LEN + 4 + body;
    size_t pad = ALIGN - total % ALIGN;
    if (pad == ALIGN) pad = 0;
    size_t hl = body + pad;                            /* < 512: fits 2 bytes */
    memcpy(hdr, MAGIC, MAGIC_LEN);
    hdr[6] = 1;
    hdr[7] = 0;
    hdr[8] = (char)(hl & 0xff);
    hdr[9] = (char)(hl >> 8);
    memcpy(hdr + 10, dict, (size_t)n);
    memset(hdr + 10 + n, ' ', pad);
    hdr[10 + (size_t)n + pad] = '\n';
    *hlen = 10 + hl;
    return NNM_OK;
}

nnm_err nnm_npy_encode(void **buf, size_t *len, const nnm_tensor *t, nnm_diag *diag)
{
    if (buf == NULL || len == NULL)
        return nnm_diag_set(diag, NNM_EINVAL, "nnm_npy_encode: buf and len must not be NULL");
    *buf = NULL;
    *len = 0;
    char hdr[HDR_CAP + 80];
    size_t hlen;
    nnm_err rc = make_header(hdr, &hlen, t, diag);
    if (rc != NNM_OK) return rc;
    if (t->nbytes > SIZE_MAX - hlen)
        return nnm_diag_set(diag, NNM_ERANGE, "tensor of %zu bytes is too large to encode",
                            t->nbytes);
    uint8_t *p = malloc(hlen + t->nbytes);
    if (p == NULL)
        return nnm_diag_set(diag, NNM_ENOMEM, "out of memory encoding %zu bytes",
                            hlen + t->nbytes);
    memcpy(p, hdr, hlen);
    if (t->nbytes > 0) memcpy(p + hlen, t->data, t->nbytes);
    *buf = p;
    *len = hlen + t->nbytes;
    return NNM_OK;
}

nnm_err nnm_npy_save(const char *path, const nnm_tensor *t, nnm_diag *diag)
{
    if (path == NULL) return nnm_diag_set(diag, NNM_EINVAL, "nnm_npy_save: path is NULL");
    char hdr[HDR_CAP + 80];
    size_t hlen;
    nnm_err rc = make_header(hdr, &hlen, t, diag);
    if (rc != NNM_OK) {
        nnm_diag_prefix(diag, "%s", path);
        return rc;
    }
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 5);
    if (tmp == NULL)
        return nnm_diag_set(diag, NNM_ENOMEM, "%s: out of memory", path);
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = nnm_diag_set(diag, NNM_EIO, "%s: cannot create: %s", tmp, strerror(errno));
        free(tmp);
        return rc;
    }
    const char *what = "write";
    if (write_full(fd, hdr, hlen) != NNM_OK || write_full(fd, t->data, t->nbytes) != NNM_OK)
        goto fail;
    what = "sync";
    if (fsync(fd) != 0) goto fail;
    what = "close";
    int cr = close(fd);
    fd = -1;
    if (cr != 0) goto fail;
    what = "rename";
    if (rename(tmp, path) != 0) goto fail;
    free(tmp);
    return NNM_OK;
fail:
    rc = nnm_diag_set(diag, NNM_EIO, "%s: cannot %s %s: %s", path, what,
                      strcmp(what, "rename") == 0 ? "the temporary file into place" : tmp,
                      strerror(errno));
    if (fd >= 0) close(fd);
    unlink(tmp);
    free(tmp);
    return rc;
}
