/* transport/tensor_codec.c — tensor payloads on the wire: the shared consistency check of a
 * wire tensor, and the codecs NONE, F16 (round to nearest even), INT8_AFFINE (per-channel
 * scale and zero point) and LZ4 (block format, kept only when it pays).
 *
 * Element bytes on the wire are little-endian; every supported target (amd64, arm64, armhf)
 * is, and the static assert below keeps a big-endian build from silently sending garbage. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lz4.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "wire_int.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "the wire is little-endian; a big-endian port must swap element bytes");

/* ---- half precision -------------------------------------------------------------------- */

uint16_t transport__f32_to_f16(float f)
{
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t exp = (x >> 23) & 0xffu;
    uint32_t man = x & 0x7fffffu;
    if (exp == 0xff) /* inf stays inf; NaN stays a (quiet) NaN */
        return (uint16_t)(sign | 0x7c00u | (man ? 0x200u | (man >> 13) : 0u));
    int e = (int)exp - 127 + 15;
    if (e >= 31) return (uint16_t)(sign | 0x7c00u);
    if (e <= 0) {
        /* Subnormal half: value = h * 2^-24, so h = (1.man) >> (14 - e), rounded. */
        if (e < -10) return sign;
        uint32_t m = man | 0x800000u;
        unsigned shift = (unsigned)(14 - e);
        uint32_t h = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (h & 1u))) h++;
        return (uint16_t)(sign | h);
    }
    uint32_t h = ((uint32_t)e << 10) | (man >> 13), rem = man & 0x1fffu;
    /* A carry out of the mantissa correctly bumps the exponent (up to inf). */
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) h++;
    return (uint16_t)(sign | h);
}

float transport__f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu, x;
    if (exp == 0) {
        if (man == 0) {
            x = sign;
        } else {
            int e = -1;
            do { e++; man <<= 1; } while ((man & 0x400u) == 0);
            x = sign | ((uint32_t)(112 - e) << 23) | ((man & 0x3ffu) << 13);
        }
    } else if (exp == 31) {
        x = sign | 0x7f800000u | (man << 13);
    } else {
        x = sign | ((exp + 112) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &x, sizeof f);
    return f;
}

/* ---- the consistency check ------------------------------------------------------------- */

uint64_t transport__affine_channels(const nnm_wire_tensor *wt, int *axis)
{
    int a = wt->ndim == 4 ? 1 : wt->ndim - 1;
    if (axis) *axis = a;
    return a < 0 ? 1 : wt->shape[a];
}

static bool numel_of(const nnm_wire_tensor *wt, uint64_t *out)
{
    uint64_t n = 1;
    for (int i = 0; i < wt->ndim; i++) {
        if (wt->shape[i] > INT64_MAX) return false;
        if (__builtin_mul_overflow(n, wt->shape[i], &n)) return false;
    }
    if (n > INT64_MAX) return false;
    *out = n;
    return true;
}

nnm_err transport__tensor_check(const nnm_wire_tensor *wt, const nnm_wire_limits *lim,
                                const char *what, nnm_diag *diag)
{
    nnm_wire_limits dl;
    if (lim == NULL) {
        nnm_wire_limits_init(&dl);
        lim = &dl;
    }
    size_t es = nnm_dtype_size((nnm_dtype)wt->dtype);
    uint64_t numel, need;
    if (es == 0)
        return nnm_diag_set(diag, NNM_EFORMAT, "%s: unknown dtype %u", what, wt->dtype);
    if (wt->ndim < 0 || wt->ndim > NNM_MAX_DIMS || (size_t)wt->ndim > lim->max_dims)
        return nnm_diag_set(diag, NNM_ERANGE, "%s: %d dimensions; the limit is %zu", what,
                            wt->ndim, lim->max_dims < NNM_MAX_DIMS ? lim->max_dims
                                                                   : (size_t)NNM_MAX_DIMS);
    if (wt->layout >= NNM_LAYOUT__COUNT)
        return nnm_diag_set(diag, NNM_EFORMAT, "%s: unknown layout %u", what, wt->layout);
    if (wt->layout == NNM_LAYOUT_NHWC && wt->ndim != 4)
        return nnm_diag_set(diag, NNM_EFORMAT, "%s: NHWC layout needs 4 dimensions, not %d",
                            what, wt->ndim);
    if (wt->codec >= NNM_CODEC__COUNT)
        return nnm_diag_set(diag, NNM_EFORMAT, "%s: unknown codec %u", what, wt->codec);
    if (!numel_of(wt, &numel) || __builtin_mul_overflow(numel, (uint64_t)es, &need))
        return nnm_diag_set(diag, NNM_ERANGE, "%s: shape overflows 64 bits", what);
    if (need != wt->raw_len)
        return nnm_diag_set(diag, NNM_EFORMAT,
                            "%s: raw length %llu, but %llu %s elements take %llu bytes", what,
                            (unsigned long long)wt->raw_len, (unsigned long long)numel,
                            nnm_dtype_name((nnm_dtype)wt->dtype), (unsigned long long)need);
    if (wt->raw_len > lim->max_tensor_bytes)
        return nnm_diag_set(diag, NNM_ERANGE, "%s: %llu bytes; the tensor limit is %zu", what,
                            (unsigned long long)wt->raw_len, lim->max_tensor_bytes);
    if ((wt->codec == NNM_CODEC_F16 || wt->codec == NNM_CODEC_INT8_AFFINE) &&
        wt->dtype != NNM_DT_F32)
        return nnm_diag_set(diag, NNM_EFORMAT, "%s: codec %u needs float32, not %s", what,
                            wt->codec, nnm_dtype_name((nnm_dtype)wt->dtype));
    uint64_t want_params = 0, want_data = 0;
    switch (wt->codec) {
    case NNM_CODEC_NONE: want_data = wt->raw_len; break;
    case NNM_CODEC_F16: want_data = numel * 2; break;
    case NNM_CODEC_INT8_AFFINE:
        want_data = numel;
        want_params = transport__affine_channels(wt, NULL) * 5; /* <= numel * 5: no overflow */
        if (numel == 0) want_params = 0;
        break;
    case NNM_CODEC_LZ4:
        if (wt->raw_len > LZ4_MAX_INPUT_SIZE)
            return nnm_diag_set(diag, NNM_ERANGE, "%s: %llu bytes is beyond LZ4's block limit",
                                what, (unsigned long long)wt->raw_len);
        if (wt->data_len == 0 ||
            wt->data_len > (size_t)LZ4_compressBound((int)wt->raw_len))
            return nnm_diag_set(diag, NNM_EFORMAT,
                                "%s: %zu LZ4 bytes cannot hold %llu raw bytes", what,
                                wt->data_len, (unsigned long long)wt->raw_len);
        want_data = wt->data_len;
        break;
    default: break;
    }
    if (wt->params_len != want_params)
        return nnm_diag_set(diag, NNM_EFORMAT, "%s: codec params are %zu bytes, expected %llu",
                            what, wt->params_len, (unsigned long long)want_params);
    if (wt->data_len != want_data)
        return nnm_diag_set(diag, NNM_EFORMAT, "%s: data is %zu bytes, expected %llu", what,
                            wt->data_len, (unsigned long long)want_data);
    if ((wt->data_len > 0 && wt->data == NULL) || (wt->params_len > 0 && wt->params == NULL))
        return nnm_diag_set(diag, NNM_EFORMAT, "%s: data missing", what);
    return NNM_OK;
}

const char *nnm_codec_name(unsigned codec)
{
    static const char *const names[NNM_CODEC__COUNT] = {
        [NNM_CODEC_NONE] = "none", [NNM_CODEC_F16] = "f16", [NNM_CODEC_INT8_AFFINE] = "int8",
        [NNM_CODEC_LZ4] = "lz4",
    };
    if (codec == NNM_CODEC_AUTO) return "auto";
    if (codec >= NNM_CODEC__COUNT || names[codec] == NULL) return "?";
    return names[codec];
}

/* ---- encode ---------------------------------------------------------------------------- */

void nnm_wire_tensor_cleanup(nnm_wire_tensor *wt)
{
    if (wt == NULL) return;
    free(wt->owned_);
    memset(wt, 0, sizeof *wt);
}

/* Iteration over one quantisation channel: elements (o * C + c) * inner + i. */
typedef struct chan_geom {
    uint64_t outer, C, inner;
} chan_geom;

static chan_geom geom_of(const nnm_wire_tensor *wt)
{
    chan_geom g = { 1, 1, 1 };
    int axis;
    g.C = transport__affine_channels(wt, &axis);
    for (int i = 0; i < wt->ndim; i++) {
        if (i < axis) g.outer *= wt->shape[i];
        else if (i > axis) g.inner *= wt->shape[i];
    }
    return g;
}

/* nearbyintf in the default rounding mode (nearest, ties to even) without the library call,
 * which saves and restores the floating-point environment per element (issue 3: it was most
 * of the INT8 encoder's time). Adding and subtracting 1.5 * 2^23 rounds any |v| <= 2^22 to an
 * integer exactly as nearbyintf does; larger values are first clamped to +-2^22, which the
 * int8 clamp that follows maps to the same -128 or 127 as their rounded selves. (-0.0 comes
 * back as +0.0: after adding the zero point and converting, the byte is the same.) */
#define ROUND_MAGIC 12582912.0f   /* 1.5 * 2^23 */
#define ROUND_LIM 4194304.0f      /* 2^22 */

static inline float round_even(float v)
{
    v = v < -ROUND_LIM ? -ROUND_LIM : v > ROUND_LIM ? ROUND_LIM : v;
    return (v + ROUND_MAGIC) - ROUND_MAGIC;
}

static inline uint8_t quant_one(float x, float scale, float zpf)
{
    float v = round_even(x / scale) + zpf;
    int iv = v < -128.0f ? -128 : v > 127.0f ? 127 : (int)v;
    return (uint8_t)(int8_t)iv;
}

/* One contiguous run of a channel: widens [*lo, *hi] to hold x[0..n); false on a non-finite
 * value. The scalar loop is the definition; the SSE2 one computes the same (min and max take
 * their operands in the scalar loop's order, so a -0.0 never replaces the starting +0.0). */
static bool run_range(const float *x, size_t n, float *lo, float *hi)
{
    size_t i = 0;
    float l = *lo, h = *hi;
#if defined(__SSE2__)
    if (n >= 8) {
        __m128 vl = _mm_set1_ps(l), vh = _mm_set1_ps(h), bad = _mm_setzero_ps();
        for (; i + 4 <= n; i += 4) {
            __m128 v = _mm_loadu_ps(x + i);
            bad = _mm_or_ps(bad, _mm_cmpunord_ps(_mm_sub_ps(v, v), v));   /* inf or NaN */
            vl = _mm_min_ps(v, vl);
            vh = _mm_max_ps(v, vh);
        }
        if (_mm_movemask_ps(bad) != 0) return false;
        float a[4], b[4];
        _mm_storeu_ps(a, vl);
        _mm_storeu_ps(b, vh);
        for (int k = 0; k < 4; k++) {
            if (a[k] < l) l = a[k];
            if (b[k] > h) h = b[k];
        }
    }
#endif
    for (; i < n; i++) {
        float v = x[i];
        if (!isfinite(v)) return false;
        if (v < l) l = v;
        if (v > h) h = v;
    }
    *lo = l;
    *hi = h;
    return true;
}

/* Quantises one contiguous run: q[i] = clamp(round_even(x[i] / scale) + zp). The SSE2 loop
 * does the same IEEE operations four lanes at a time (divide, clamp, round, add, clamp,
 * truncate an integral value), so the bytes are those of the scalar loop. */
static void run_quant(const float *x, size_t n, float scale, float zpf, uint8_t *q)
{
    size_t i = 0;
#if defined(__SSE2__)
    const __m128 vs = _mm_set1_ps(scale), vz = _mm_set1_ps(zpf), mg = _mm_set1_ps(ROUND_MAGIC);
    const __m128 rl = _mm_set1_ps(-ROUND_LIM), rh = _mm_set1_ps(ROUND_LIM);
    const __m128 ql = _mm_set1_ps(-128.0f), qh = _mm_set1_ps(127.0f);
    for (; i + 16 <= n; i += 16) {
        __m128i w[4];
        for (int k = 0; k < 4; k++) {
            __m128 v = _mm_div_ps(_mm_loadu_ps(x + i + 4 * k), vs);
            v = _mm_min_ps(_mm_max_ps(v, rl), rh);
            v = _mm_sub_ps(_mm_add_ps(v, mg), mg);
            v = _mm_add_ps(v, vz);
            v = _mm_min_ps(_mm_max_ps(v, ql), qh);
            w[k] = _mm_cvttps_epi32(v);
        }
        __m128i b = _mm_packs_epi16(_mm_packs_epi32(w[0], w[1]), _mm_packs_epi32(w[2], w[3]));
        _mm_storeu_si128((__m128i *)(void *)(q + i), b);
    }
#endif
    for (; i < n; i++) q[i] = quant_one(x[i], scale, zpf);
}

static nnm_err affine_encode(nnm_wire_tensor *wt, const float *x, uint8_t *buf, nnm_diag *diag)
{
    chan_geom g = geom_of(wt);
    uint8_t *params = buf, *q = buf + g.C * 5;
    for (uint64_t c = 0; c < g.C; c++) {
        /* The range always holds 0 so that zero (padding, ReLU) is exact. */
        float lo = 0.0f, hi = 0.0f;
        for (uint64_t o = 0; o < g.outer; o++)
            if (!run_range(x + (o * g.C + c) * g.inner, (size_t)g.inner, &lo, &hi))
                return nnm_diag_set(diag, NNM_EINVAL,
                                    "int8 affine codec: tensor holds a non-finite value");
        float scale = (hi - lo) / 255.0f;
        if (!(scale >= FLT_MIN)) scale = 1.0f;
        float zpf = nearbyintf(-128.0f - lo / scale);
        int zp = zpf < -128.0f ? -128 : zpf > 127.0f ? 127 : (int)zpf;
        memcpy(params + c * 4, &scale, 4);
        params[g.C * 4 + c] = (uint8_t)(int8_t)zp;
        for (uint64_t o = 0; o < g.outer; o++) {
            uint64_t k = (o * g.C + c) * g.inner;
            run_quant(x + k, (size_t)g.inner, scale, (float)zp, q + k);
        }
    }
    wt->params = params;
    wt->params_len = g.C * 5;
    wt->data = q;
    return NNM_OK;
}

nnm_err nnm_wire_tensor_encode(nnm_wire_tensor *wt, const nnm_tensor *t, nnm_codec codec,
                               nnm_diag *diag)
{
    nnm_err rc = NNM_EINVAL;
    uint8_t *buf = NULL;
    nnm_wire_tensor w;
    memset(&w, 0, sizeof w);
    memset(wt, 0, sizeof *wt);
    size_t es = nnm_dtype_size(t->dtype);
    if (es == 0 || t->ndim < 0 || t->ndim > NNM_MAX_DIMS) {
        rc = nnm_diag_set(diag, NNM_EINVAL, "tensor encode: bad dtype %d or ndim %d",
                          (int)t->dtype, t->ndim);
        goto fail;
    }
    int64_t numel = nnm_shape_numel(t->shape, t->ndim, es);
    if (numel < 0 || (uint64_t)numel * es != t->nbytes || (t->nbytes > 0 && t->data == NULL)) {
        rc = nnm_diag_set(diag, NNM_EINVAL,
                          "tensor encode: shape, dtype and %zu data bytes do not agree",
                          t->nbytes);
        goto fail;
    }
    w.name = "";
    w.dtype = (uint8_t)t->dtype;
    w.layout = NNM_LAYOUT_ROWMAJOR;
    w.ndim = t->ndim;
    for (int i = 0; i < t->ndim; i++) w.shape[i] = (uint64_t)t->shape[i];
    w.raw_len = t->nbytes;
    if ((codec == NNM_CODEC_F16 || codec == NNM_CODEC_INT8_AFFINE) && t->dtype != NNM_DT_F32) {
        rc = nnm_diag_set(diag, NNM_EINVAL, "tensor encode: codec %d needs float32, not %s",
                          (int)codec, nnm_dtype_name(t->dtype));
        goto fail;
    }
    switch (codec) {
    case NNM_CODEC_NONE:
        w.codec = NNM_CODEC_NONE;
        w.data = t->data;
        w.data_len = t->nbytes;
        break;
    case NNM_CODEC_F16: {
        w.codec = NNM_CODEC_F16;
        if ((buf = malloc((size_t)numel * 2 + 1)) == NULL) goto nomem;
        const float *x = t->data;
        for (int64_t i = 0; i < numel; i++) {
            uint16_t h = transport__f32_to_f16(x[i]);
            memcpy(buf + 2 * i, &h, 2);
        }
        w.data = buf;
        w.data_len = (size_t)numel * 2;
        break;
    }
    case NNM_CODEC_INT8_AFFINE: {
        w.codec = NNM_CODEC_INT8_AFFINE;
        /* An empty tensor has no channel parameters (transport__tensor_check agrees). */
        uint64_t C = numel == 0 ? 0 : transport__affine_channels(&w, NULL);
        if ((buf = malloc((size_t)C * 5 + (size_t)numel + 1)) == NULL) goto nomem;
        if (numel > 0 && (rc = affine_encode(&w, t->data, buf, diag)) != NNM_OK) goto fail;
        if (numel == 0) w.data = buf;
        w.data_len = (size_t)numel;
        break;
    }
    case NNM_CODEC_LZ4:
    case NNM_CODEC_AUTO: {
        if (t->nbytes > LZ4_MAX_INPUT_SIZE) {
            if (codec == NNM_CODEC_AUTO) goto raw;
            rc = nnm_diag_set(diag, NNM_ERANGE, "tensor encode: %zu bytes is beyond LZ4's limit",
                              t->nbytes);
            goto fail;
        }
        int bound = LZ4_compressBound((int)t->nbytes);
        if ((buf = malloc((size_t)bound)) == NULL) goto nomem;
        int n = LZ4_compress_default(t->data, (char *)buf, (int)t->nbytes, bound);
        if (n <= 0) {
            rc = nnm_diag_set(diag, NNM_EBACKEND, "tensor encode: LZ4 compression failed");
            goto fail;
        }
        /* AUTO keeps LZ4 only when it saves at least 10%: below that the decode cost and
         * the buffer are not worth it. */
        if (codec == NNM_CODEC_AUTO && (uint64_t)n * 10 > (uint64_t)t->nbytes * 9) {
            free(buf);
            buf = NULL;
            goto raw;
        }
        uint8_t *small = realloc(buf, (size_t)n);
        if (small != NULL) buf = small;
        w.codec = NNM_CODEC_LZ4;
        w.data = buf;
        w.data_len = (size_t)n;
        break;
    raw:
        w.codec = NNM_CODEC_NONE;
        w.data = t->data;
        w.data_len = t->nbytes;
        break;
    }
    default:
        rc = nnm_diag_set(diag, NNM_EINVAL, "tensor encode: unknown codec %d", (int)codec);
        goto fail;
    }
    w.owned_ = buf;
    *wt = w;
    return NNM_OK;
nomem:
    rc = nnm_diag_set(diag, NNM_ENOMEM, "tensor encode: out of memory");
fail:
    free(buf);
    return rc;
}

/* ---- decode ---------------------------------------------------------------------------- */

static nnm_err affine_decode(float *y, const nnm_wire_tensor *wt, const char *what,
                             nnm_diag *diag)
{
    chan_geom g = geom_of(wt);
    const uint8_t *params = wt->params;
    for (uint64_t c = 0; c < g.C; c++) {
        float scale;
        memcpy(&scale, params + c * 4, 4);
        if (!isfinite(scale) || !(scale > 0.0f))
            return nnm_diag_set(diag, NNM_EFORMAT, "%s: channel %llu has scale %g", what,
                                (unsigned long long)c, (double)scale);
        float zp = (float)(int8_t)params[g.C * 4 + c];
        for (uint64_t o = 0; o < g.outer; o++)
            for (uint64_t i = 0; i < g.inner; i++) {
                uint64_t k = (o * g.C + c) * g.inner + i;
                y[k] = ((float)(int8_t)wt->data[k] - zp) * scale;
            }
    }
    return NNM_OK;
}

nnm_err nnm_wire_tensor_decode(nnm_tensor *t, const nnm_wire_tensor *wt,
                               const nnm_wire_limits *lim, nnm_diag *diag)
{
    nnm_err rc;
    char what[96], name[64];
    memset(t, 0, sizeof *t);
    const char *nm = wt->name ? wt->name : "";
    snprintf(what, sizeof what, "tensor '%s'", transport__escape(name, sizeof name, nm, strlen(nm)));
    if ((rc = transport__tensor_check(wt, lim, what, diag)) != NNM_OK) return rc;
    int64_t shape[NNM_MAX_DIMS];
    for (int i = 0; i < wt->ndim; i++) shape[i] = (int64_t)wt->shape[i];
    if ((rc = nnm_tensor_init(t, (nnm_dtype)wt->dtype, wt->ndim, shape)) != NNM_OK)
        return nnm_diag_set(diag, rc, "%s: cannot allocate %llu bytes", what,
                            (unsigned long long)wt->raw_len);
    size_t numel = t->nbytes / nnm_dtype_size(t->dtype);
    switch (wt->codec) {
    case NNM_CODEC_NONE:
        if (t->nbytes) memcpy(t->data, wt->data, t->nbytes);
        break;
    case NNM_CODEC_F16: {
        float *y = t->data;
        for (size_t i = 0; i < numel; i++) {
            uint16_t h;
            memcpy(&h, wt->data + 2 * i, 2);
            y[i] = transport__f16_to_f32(h);
        }
        break;
    }
    case NNM_CODEC_INT8_AFFINE:
        if (numel > 0 && (rc = affine_decode(t->data, wt, what, diag)) != NNM_OK) goto fail;
        break;
    case NNM_CODEC_LZ4: {
        /* The output buffer is exactly raw_len: LZ4_decompress_safe never writes past it and
         * must produce exactly that many bytes. */
        int n = LZ4_decompress_safe((const char *)wt->data, t->data, (int)wt->data_len,
                                    (int)t->nbytes);
        if (n < 0 || (size_t)n != t->nbytes) {
            rc = nnm_diag_set(diag, NNM_EFORMAT,
                              "%s: LZ4 data is corrupt or does not decode to %zu bytes", what,
                              t->nbytes);
            goto fail;
        }
        break;
    }
    default:
        break;
    }
    return NNM_OK;
fail:
    nnm_tensor_cleanup(t);
    return rc;
}
