/* runtime/kernels_ref.c — portable C reference kernels for every op in nnm_op.
 *
 * These kernels are the fallback backend (ops XNNPACK lacks, dtypes it lacks) and the test
 * oracle every other kernel is compared with, so they follow the ONNX specification
 * literally and favour clarity; loop orders are still chosen so that the reference is
 * usable on real models (i-k-j matrix products, plane-wise convolution accumulation).
 *
 * Invariants kept by every kernel:
 *   - shapes, dtypes and attributes are checked against the node before a byte of output
 *     is written; a failed check names the node and what disagrees;
 *   - reads are bounds-checked against the input shapes, so a wrong inferred output shape
 *     can produce a wrong answer or an error but never an out-of-bounds access;
 *   - integer arithmetic wraps (it is done in unsigned types) and integer division by zero
 *     is reported, so outside data never reaches C undefined behaviour.
 * Convolution and pooling accumulate in the same order in both layouts, so an NHWC result
 * is bit-identical to the transposed NCHW result. */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

#define MAXD NNM_MAX_DIMS

/* --- diagnostics ------------------------------------------------------------------------ */

static const char *op_label(const nnm_node *n)
{
    if (n->onnx_op != NULL && n->onnx_op[0] != '\0') return n->onnx_op;
    return ir__op_name(n->op);
}

static nnm_err node_err(nnm_diag *d, const nnm_node *n, nnm_err code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Fills d with "node 'NAME' (Op): <message>" and returns code. */
static nnm_err node_err(nnm_diag *d, const nnm_node *n, nnm_err code, const char *fmt, ...)
{
    char msg[NNM_DIAG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return nnm_diag_set(d, code, "node '%s' (%s): %s", n->name != NULL ? n->name : "?",
                        op_label(n), msg);
}

typedef struct shape_text { char s[128]; } shape_text;

static shape_text shp(const nnm_tensor *t)
{
    shape_text r;
    nnm_shape_format(r.s, sizeof r.s, t->shape, t->ndim);
    return r;
}

/* --- shapes and iteration --------------------------------------------------------------- */

static int64_t prod(const int64_t *s, int from, int to)
{
    int64_t k = 1;
    for (int d = from; d < to; d++) k *= s[d];
    return k;
}

static int64_t numel(const nnm_tensor *t) { return prod(t->shape, 0, t->ndim); }

static void contig_strides(const int64_t *shape, int nd, int64_t *st)
{
    int64_t s = 1;
    for (int d = nd - 1; d >= 0; d--) {
        st[d] = s;
        s *= shape[d];
    }
}

static int same_shape(const nnm_tensor *a, const nnm_tensor *b)
{
    if (a->ndim != b->ndim) return 0;
    for (int d = 0; d < a->ndim; d++)
        if (a->shape[d] != b->shape[d]) return 0;
    return 1;
}

/* Element strides that walk a contiguous tensor of shape ts[tnd] while iterating shape
 * os[ond], numpy-style (right-aligned, size-1 and missing dims broadcast with stride 0).
 * Returns -1 if ts does not broadcast to os. */
static int bc_strides(const int64_t *ts, int tnd, const int64_t *os, int ond, int64_t *st)
{
    if (tnd > ond) return -1;
    int64_t s = 1;
    for (int d = ond - 1; d >= 0; d--) {
        int td = d - (ond - tnd);
        if (td < 0) {
            st[d] = 0;
            continue;
        }
        if (ts[td] == os[d]) st[d] = ts[td] == 1 ? 0 : s;
        else if (ts[td] == 1) st[d] = 0;
        else return -1;
        s *= ts[td];
    }
    return 0;
}

/* Walks a shape row by row (a row is the last dimension) keeping the element offsets of up
 * to two strided operands. rows * inner is the element count. */
typedef struct iter {
    int nd;                         /* outer dims: all but the last */
    int64_t shape[MAXD], cnt[MAXD];
    int64_t st[2][MAXD];
    int64_t off[2];                 /* offsets of the current row's first element */
    int64_t inner, in_st[2];        /* last dim: length and per-operand stride */
    int64_t rows;
} iter;

static void iter_init(iter *it, const int64_t *shape, int nd, const int64_t *st0,
                      const int64_t *st1, int64_t off0, int64_t off1)
{
    memset(it, 0, sizeof *it);
    it->off[0] = off0;
    it->off[1] = off1;
    it->rows = 1;
    if (nd == 0) {
        it->inner = 1;
        return;
    }
    it->nd = nd - 1;
    it->inner = shape[nd - 1];
    it->in_st[0] = st0 != NULL ? st0[nd - 1] : 0;
    it->in_st[1] = st1 != NULL ? st1[nd - 1] : 0;
    for (int d = 0; d < nd - 1; d++) {
        it->shape[d] = shape[d];
        it->st[0][d] = st0 != NULL ? st0[d] : 0;
        it->st[1][d] = st1 != NULL ? st1[d] : 0;
        it->rows *= shape[d];
    }
}

static void iter_next(iter *it)
{
    for (int d = it->nd - 1; d >= 0; d--) {
        it->off[0] += it->st[0][d];
        it->off[1] += it->st[1][d];
        if (++it->cnt[d] < it->shape[d]) return;
        it->off[0] -= it->st[0][d] * it->shape[d];
        it->off[1] -= it->st[1][d] * it->shape[d];
        it->cnt[d] = 0;
    }
}

/* dst (contiguous, shape[nd]) gets src[off + sum_d idx[d] * st[d]]; elements of esz bytes. */
static void copy_strided(void *dst, const void *src, int64_t off, const int64_t *shape, int nd,
                         const int64_t *st, size_t esz)
{
    iter it;
    iter_init(&it, shape, nd, st, NULL, off, 0);
    const int64_t m = it.inner, s = it.in_st[0];
#define COPY_ROWS(T)                                                                       \
    do {                                                                                   \
        T *dp = dst;                                                                       \
        const T *sp = src;                                                                 \
        for (int64_t r = 0; r < it.rows; r++, iter_next(&it)) {                            \
            const T *p = sp + it.off[0];                                                   \
            for (int64_t j = 0; j < m; j++) *dp++ = p[j * s];                              \
        }                                                                                  \
    } while (0)
    switch (esz) {
    case 1: COPY_ROWS(uint8_t); break;
    case 2: COPY_ROWS(uint16_t); break;
    case 4: COPY_ROWS(uint32_t); break;
    case 8: COPY_ROWS(uint64_t); break;
    default: {
        unsigned char *dp = dst;
        const unsigned char *sp = src;
        for (int64_t r = 0; r < it.rows; r++, iter_next(&it))
            for (int64_t j = 0; j < m; j++, dp += esz)
                memcpy(dp, sp + (size_t)(it.off[0] + j * s) * esz, esz);
    }
    }
#undef COPY_ROWS
}

/* --- dtype conversion ------------------------------------------------------------------- */

static float f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu, bits;
    if (e == 0) {
        float v = ldexpf((float)m, -24);            /* zero or subnormal: exact */
        return sign ? -v : v;
    }
    if (e == 31) bits = sign | 0x7f800000u | (m << 13);
    else bits = sign | ((e + 112) << 23) | (m << 13);
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* float32 -> float16, round to nearest even; overflow gives inf, NaN stays NaN. */
static uint16_t f32_to_f16(float f)
{
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    uint32_t sign = (x >> 16) & 0x8000u;
    x &= 0x7fffffffu;
    if (x >= 0x7f800000u) /* inf or NaN (keep a quiet payload bit) */
        return (uint16_t)(sign | 0x7c00u | (x > 0x7f800000u ? 0x200u | ((x >> 13) & 0x3ffu) : 0));
    int e = (int)(x >> 23) - 127;
    if (e > 15) return (uint16_t)(sign | 0x7c00u);
    if (e >= -14) {
        uint32_t mant = x & 0x7fffffu;
        uint32_t h = ((uint32_t)(e + 15) << 10) | (mant >> 13), rem = mant & 0x1fffu;
        if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) h++;   /* may carry into inf */
        return (uint16_t)(sign | h);
    }
    if (e < -25) return (uint16_t)sign;
    /* subnormal: value = mant * 2^(e-23), unit 2^-24 */
    uint32_t mant = (x & 0x7fffffu) | 0x800000u;
    int shift = -e - 1;                                        /* 14..24 */
    uint32_t h = mant >> shift, rem = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (h & 1u))) h++;
    return (uint16_t)(sign | h);
}

static int is_float_dt(nnm_dtype dt)
{
    return dt == NNM_DT_F32 || dt == NNM_DT_F16 || dt == NNM_DT_F64;
}

/* C truncation toward zero, saturated to int64 (NaN gives 0) so that it is defined. */
static int64_t f2i(double v)
{
    if (isnan(v)) return 0;
    if (v >= 9223372036854775807.0) return INT64_MAX;
    if (v <= -9223372036854775808.0) return INT64_MIN;
    return (int64_t)v;
}

static double load_f(const void *p, nnm_dtype dt, int64_t i)
{
    switch (dt) {
    case NNM_DT_F32: return ((const float *)p)[i];
    case NNM_DT_F16: return f16_to_f32(((const uint16_t *)p)[i]);
    case NNM_DT_F64: return ((const double *)p)[i];
    case NNM_DT_I8: return ((const int8_t *)p)[i];
    case NNM_DT_U8: return ((const uint8_t *)p)[i];
    case NNM_DT_I32: return ((const int32_t *)p)[i];
    case NNM_DT_I64: return (double)((const int64_t *)p)[i];
    case NNM_DT_BOOL: return ((const uint8_t *)p)[i] != 0;
    default: return 0;
    }
}

static int64_t load_i(const void *p, nnm_dtype dt, int64_t i)
{
    switch (dt) {
    case NNM_DT_I8: return ((const int8_t *)p)[i];
    case NNM_DT_U8: return ((const uint8_t *)p)[i];
    case NNM_DT_I32: return ((const int32_t *)p)[i];
    case NNM_DT_I64: return ((const int64_t *)p)[i];
    case NNM_DT_BOOL: return ((const uint8_t *)p)[i] != 0;
    default: return f2i(load_f(p, dt, i));
    }
}

/* Stores an integer; narrower integer types wrap (two's complement), bool is v != 0. */
static void store_i(void *p, nnm_dtype dt, int64_t i, int64_t v)
{
    switch (dt) {
    case NNM_DT_F32: ((float *)p)[i] = (float)v; break;
    case NNM_DT_F16: ((uint16_t *)p)[i] = f32_to_f16((float)v); break;
    case NNM_DT_F64: ((double *)p)[i] = (double)v; break;
    case NNM_DT_I8: ((int8_t *)p)[i] = (int8_t)(uint8_t)(uint64_t)v; break;
    case NNM_DT_U8: ((uint8_t *)p)[i] = (uint8_t)(uint64_t)v; break;
    case NNM_DT_I32: ((int32_t *)p)[i] = (int32_t)(uint32_t)(uint64_t)v; break;
    case NNM_DT_I64: ((int64_t *)p)[i] = v; break;
    case NNM_DT_BOOL: ((uint8_t *)p)[i] = v != 0; break;
    default: break;
    }
}

/* Stores a real; integer targets truncate toward zero (saturating at int64, then wrapping
 * like an integer cast), bool is v != 0 (NaN is true). */
static void store_f(void *p, nnm_dtype dt, int64_t i, double v)
{
    switch (dt) {
    case NNM_DT_F32: ((float *)p)[i] = (float)v; break;
    case NNM_DT_F16: ((uint16_t *)p)[i] = f32_to_f16((float)v); break;
    case NNM_DT_F64: ((double *)p)[i] = v; break;
    case NNM_DT_BOOL: ((uint8_t *)p)[i] = v != 0; break;
    default: store_i(p, dt, i, f2i(v)); break;
    }
}

/* --- which dtypes each op handles ------------------------------------------------------- */

/* 1 if the reference kernel handles op with data input dtype xt and first output yt. */
static int dtype_ok(const nnm_node *n, nnm_dtype xt, nnm_dtype yt)
{
    switch (n->op) {
    case NNM_OP_CONV: case NNM_OP_CONV_TRANSPOSE: case NNM_OP_GEMM: case NNM_OP_MATMUL:
    case NNM_OP_SQRT: case NNM_OP_EXP: case NNM_OP_LOG: case NNM_OP_ERF: case NNM_OP_SIGMOID:
    case NNM_OP_TANH: case NNM_OP_HARD_SWISH: case NNM_OP_LEAKY_RELU: case NNM_OP_HARD_SIGMOID:
    case NNM_OP_SOFTMAX: case NNM_OP_MAXPOOL: case NNM_OP_AVGPOOL: case NNM_OP_GLOBAL_AVGPOOL:
    case NNM_OP_GLOBAL_MAXPOOL: case NNM_OP_BATCHNORM: case NNM_OP_REDUCE_MEAN:
    case NNM_OP_REDUCE_MAX:
        return xt == NNM_DT_F32;
    case NNM_OP_ADD: case NNM_OP_SUB: case NNM_OP_MUL: case NNM_OP_DIV: case NNM_OP_MAX:
    case NNM_OP_MIN: case NNM_OP_POW:
        return xt != NNM_DT_BOOL && nnm_dtype_size(xt) > 0;
    case NNM_OP_RELU: case NNM_OP_CLIP:
        return xt == NNM_DT_F32 || xt == NNM_DT_I8 || xt == NNM_DT_U8 || xt == NNM_DT_I32 ||
               xt == NNM_DT_I64;
    case NNM_OP_FLATTEN: case NNM_OP_RESHAPE: case NNM_OP_SQUEEZE: case NNM_OP_UNSQUEEZE:
    case NNM_OP_IDENTITY: case NNM_OP_DROPOUT: case NNM_OP_TRANSPOSE: case NNM_OP_CONCAT:
    case NNM_OP_SPLIT: case NNM_OP_SLICE: case NNM_OP_PAD: case NNM_OP_GATHER:
        return nnm_dtype_size(xt) > 0;
    case NNM_OP_RESIZE:
        return n->a.resize_mode == NNM_RESIZE_NEAREST ? nnm_dtype_size(xt) > 0
                                                      : xt == NNM_DT_F32;
    case NNM_OP_CAST:
        return nnm_dtype_size(xt) > 0 && nnm_dtype_size(yt) > 0;
    case NNM_OP_SHAPE:
        return yt == NNM_DT_I64;
    case NNM_OP_CONSTANT_OF_SHAPE:
        return nnm_dtype_size(yt) > 0;
    default:
        return 0;
    }
}

/* --- elementwise helpers ---------------------------------------------------------------- */

/* NaN passes through; this is the fused clamp of Conv/Gemm/MatMul/Add and Clip. */
static void clamp_f32(float *y, int64_t cnt, float lo, float hi)
{
    for (int64_t i = 0; i < cnt; i++) {
        float v = y[i];
        y[i] = v < lo ? lo : (v > hi ? hi : v);
    }
}

static void fused_clamp(const nnm_node *n, nnm_tensor *y)
{
    if (n->a.act != 0 && y->dtype == NNM_DT_F32)
        clamp_f32(y->data, numel(y), n->a.act_min, n->a.act_max);
}

static void bin_f32(nnm_op op, const float *a, const int64_t *sta, const float *b,
                    const int64_t *stb, float *y, const int64_t *shape, int nd)
{
    iter it;
    iter_init(&it, shape, nd, sta, stb, 0, 0);
    const int64_t m = it.inner, sa = it.in_st[0], sb = it.in_st[1];
    for (int64_t r = 0; r < it.rows; r++, iter_next(&it)) {
        const float *pa = a + it.off[0], *pb = b + it.off[1];
        float *py = y + r * m;
        switch (op) {
        case NNM_OP_ADD: for (int64_t j = 0; j < m; j++) py[j] = pa[j * sa] + pb[j * sb]; break;
        case NNM_OP_SUB: for (int64_t j = 0; j < m; j++) py[j] = pa[j * sa] - pb[j * sb]; break;
        case NNM_OP_MUL: for (int64_t j = 0; j < m; j++) py[j] = pa[j * sa] * pb[j * sb]; break;
        case NNM_OP_DIV: for (int64_t j = 0; j < m; j++) py[j] = pa[j * sa] / pb[j * sb]; break;
        case NNM_OP_POW:
            for (int64_t j = 0; j < m; j++) py[j] = powf(pa[j * sa], pb[j * sb]);
            break;
        case NNM_OP_MAX: /* NaN in either operand propagates, as numpy.maximum */
            for (int64_t j = 0; j < m; j++) {
                float u = pa[j * sa], v = pb[j * sb];
                py[j] = (u > v || isnan(u)) ? u : v;
            }
            break;
        case NNM_OP_MIN:
            for (int64_t j = 0; j < m; j++) {
                float u = pa[j * sa], v = pb[j * sb];
                py[j] = (u < v || isnan(u)) ? u : v;
            }
            break;
        default: break;
        }
    }
}

/* Integer versions: wrap-around arithmetic in the unsigned type; the caller has checked
 * that no divisor is zero. INT_MIN / -1 wraps to INT_MIN. Division truncates toward zero. */
#define DEFINE_BIN_INT(NAME, T, UT)                                                        \
    static void NAME(nnm_op op, const T *a, const int64_t *sta, const T *b,                \
                     const int64_t *stb, T *y, const int64_t *shape, int nd)               \
    {                                                                                      \
        iter it;                                                                           \
        iter_init(&it, shape, nd, sta, stb, 0, 0);                                         \
        const int64_t m = it.inner, sa = it.in_st[0], sb = it.in_st[1];                    \
        for (int64_t r = 0; r < it.rows; r++, iter_next(&it)) {                            \
            const T *pa = a + it.off[0], *pb = b + it.off[1];                              \
            T *py = y + r * m;                                                             \
            for (int64_t j = 0; j < m; j++) {                                              \
                T u = pa[j * sa], v = pb[j * sb];                                          \
                switch (op) {                                                              \
                case NNM_OP_ADD: py[j] = (T)((UT)u + (UT)v); break;                        \
                case NNM_OP_SUB: py[j] = (T)((UT)u - (UT)v); break;                        \
                case NNM_OP_MUL: py[j] = (T)((UT)u * (UT)v); break;                        \
                case NNM_OP_DIV: py[j] = v == -1 ? (T)((UT)0 - (UT)u) : (T)(u / v); break; \
                case NNM_OP_MAX: py[j] = u > v ? u : v; break;                             \
                case NNM_OP_MIN: py[j] = u < v ? u : v; break;                             \
                default: break;                                                            \
                }                                                                          \
            }                                                                              \
        }                                                                                  \
    }
DEFINE_BIN_INT(bin_i32, int32_t, uint32_t)
DEFINE_BIN_INT(bin_i64, int64_t, uint64_t)
#undef DEFINE_BIN_INT

/* Slow path for the other numeric dtypes (float16, float64, int8, uint8) and for Pow with
 * an integer base: reals are computed in double, integers in wrapping int64 and stored with
 * the target type's wrap-around. bt is b's dtype (Pow's exponent may differ). */
static void bin_generic(nnm_op op, nnm_dtype dt, const void *a, const int64_t *sta,
                        const void *b, nnm_dtype bt, const int64_t *stb, void *y,
                        const nnm_tensor *out)
{
    iter it;
    iter_init(&it, out->shape, out->ndim, sta, stb, 0, 0);
    const int64_t m = it.inner, sa = it.in_st[0], sb = it.in_st[1];
    int real = is_float_dt(dt);
    for (int64_t r = 0; r < it.rows; r++, iter_next(&it))
        for (int64_t j = 0; j < m; j++) {
            int64_t ia = it.off[0] + j * sa, ib = it.off[1] + j * sb, at = r * m + j;
            if (op == NNM_OP_POW) {
                double v = pow(load_f(a, dt, ia), load_f(b, bt, ib));
                if (real) store_f(y, dt, at, v);
                else store_i(y, dt, at, f2i(v));
            } else if (real) {
                double u = load_f(a, dt, ia), v = load_f(b, dt, ib), w = 0;
                switch (op) {
                case NNM_OP_ADD: w = u + v; break;
                case NNM_OP_SUB: w = u - v; break;
                case NNM_OP_MUL: w = u * v; break;
                case NNM_OP_DIV: w = u / v; break;
                case NNM_OP_MAX: w = (u > v || isnan(u)) ? u : v; break;
                case NNM_OP_MIN: w = (u < v || isnan(u)) ? u : v; break;
                default: break;
                }
                store_f(y, dt, at, w);
            } else {
                int64_t u = load_i(a, dt, ia), v = load_i(b, dt, ib), w = 0;
                switch (op) {
                case NNM_OP_ADD: w = (int64_t)((uint64_t)u + (uint64_t)v); break;
                case NNM_OP_SUB: w = (int64_t)((uint64_t)u - (uint64_t)v); break;
                case NNM_OP_MUL: w = (int64_t)((uint64_t)u * (uint64_t)v); break;
                case NNM_OP_DIV: w = v == -1 ? (int64_t)(0 - (uint64_t)u) : u / v; break;
                case NNM_OP_MAX: w = u > v ? u : v; break;
                case NNM_OP_MIN: w = u < v ? u : v; break;
                default: break;
                }
                store_i(y, dt, at, w);
            }
        }
}

static void bin_any(nnm_op op, nnm_dtype dt, const void *a, const int64_t *sta, const void *b,
                    nnm_dtype bt, const int64_t *stb, void *y, const nnm_tensor *out)
{
    int pow_slow = op == NNM_OP_POW && (dt != NNM_DT_F32 || bt != NNM_DT_F32);
    if (dt == NNM_DT_F32 && !pow_slow) bin_f32(op, a, sta, b, stb, y, out->shape, out->ndim);
    else if (dt == NNM_DT_I32 && !pow_slow) bin_i32(op, a, sta, b, stb, y, out->shape, out->ndim);
    else if (dt == NNM_DT_I64 && !pow_slow) bin_i64(op, a, sta, b, stb, y, out->shape, out->ndim);
    else bin_generic(op, dt, a, sta, b, bt, stb, y, out);
}

/* Add Sub Mul Div Pow (two inputs) and Max Min (n >= 1 inputs, folded pairwise). */
static nnm_err k_binary(const nnm_node *n, const nnm_tensor *const *in, int nin,
                        nnm_tensor *y, nnm_diag *d)
{
    int variadic = n->op == NNM_OP_MAX || n->op == NNM_OP_MIN;
    int64_t st[MAXD][MAXD];
    float *pow_b = NULL;
    if (variadic ? nin < 1 : nin != 2)
        return node_err(d, n, NNM_EINVAL, "expected %s inputs, got %d",
                        variadic ? "one or more" : "2", nin);
    if (nin > MAXD)
        return node_err(d, n, NNM_EUNSUPPORTED, "%d inputs; at most %d are supported", nin,
                        MAXD);
    for (int k = 0; k < nin; k++) {
        if (in[k] == NULL) return node_err(d, n, NNM_EINVAL, "input %d is missing", k);
        int pow_exp = n->op == NNM_OP_POW && k == 1;
        if (!pow_exp && in[k]->dtype != y->dtype)
            return node_err(d, n, NNM_ESHAPE, "input %d is %s but the output is %s", k,
                            nnm_dtype_name(in[k]->dtype), nnm_dtype_name(y->dtype));
        if (pow_exp && (in[k]->dtype == NNM_DT_BOOL || nnm_dtype_size(in[k]->dtype) == 0))
            return node_err(d, n, NNM_EUNSUPPORTED, "exponent dtype %s is not supported",
                            nnm_dtype_name(in[k]->dtype));
        if (bc_strides(in[k]->shape, in[k]->ndim, y->shape, y->ndim, st[k]) != 0)
            return node_err(d, n, NNM_ESHAPE, "input %d of shape %s does not broadcast to "
                            "the output shape %s", k, shp(in[k]).s, shp(y).s);
    }
    if (n->op == NNM_OP_DIV && !is_float_dt(y->dtype)) {
        int64_t cnt = numel(in[1]);
        for (int64_t i = 0; i < cnt; i++)
            if (load_i(in[1]->data, in[1]->dtype, i) == 0)
                return node_err(d, n, NNM_ERANGE, "integer division by zero (divisor element "
                                "%lld)", (long long)i);
    }
    const void *b = nin > 1 ? in[1]->data : NULL;
    nnm_dtype bt = nin > 1 ? in[1]->dtype : y->dtype;
    if (n->op == NNM_OP_POW && y->dtype == NNM_DT_F32 && bt != NNM_DT_F32) {
        /* float base, other exponent: convert the exponent once, keep the fast path */
        int64_t cnt = numel(in[1]);
        pow_b = malloc((size_t)(cnt > 0 ? cnt : 1) * sizeof *pow_b);
        if (pow_b == NULL) return node_err(d, n, NNM_ENOMEM, "out of memory");
        for (int64_t i = 0; i < cnt; i++) pow_b[i] = (float)load_f(in[1]->data, bt, i);
        b = pow_b;
        bt = NNM_DT_F32;
    }
    /* commit */
    if (nin == 1) {
        copy_strided(y->data, in[0]->data, 0, y->shape, y->ndim, st[0], nnm_dtype_size(y->dtype));
    } else {
        bin_any(n->op, y->dtype, in[0]->data, st[0], b, bt, st[1], y->data, y);
        int64_t yst[MAXD];
        contig_strides(y->shape, y->ndim, yst);
        for (int k = 2; k < nin; k++)
            bin_any(n->op, y->dtype, y->data, yst, in[k]->data, y->dtype, st[k], y->data, y);
    }
    free(pow_b);
    if (n->op == NNM_OP_ADD) fused_clamp(n, y);
    return NNM_OK;
}

/* Clamp bounds given as float, made safe for conversion to an integer type [tmin, tmax]. */
static void int_bounds(const nnm_node *n, double tmin, double tmax, double *lo, double *hi)
{
    double l = n->a.act_min, h = n->a.act_max;
    *lo = isnan(l) || l < tmin ? tmin : (l > tmax ? tmax : ceil(l));
    *hi = isnan(h) || h > tmax ? tmax : (h < tmin ? tmin : floor(h));
}

static nnm_err k_unary(const nnm_node *n, const nnm_tensor *x, nnm_tensor *y, nnm_diag *d)
{
    if (x->dtype != y->dtype || numel(x) != numel(y))
        return node_err(d, n, NNM_ESHAPE, "output %s %s does not match input %s %s",
                        nnm_dtype_name(y->dtype), shp(y).s, nnm_dtype_name(x->dtype), shp(x).s);
    const int64_t cnt = numel(x);
    if (x->dtype != NNM_DT_F32) { /* Relu and Clip on integers (dtype_ok allows no more) */
        double tmin = -9223372036854775808.0, tmax = 9223372036854775807.0, lo = 0, hi = 0;
        if (x->dtype == NNM_DT_I32) { tmin = INT32_MIN; tmax = INT32_MAX; }
        if (x->dtype == NNM_DT_I8) { tmin = INT8_MIN; tmax = INT8_MAX; }
        if (x->dtype == NNM_DT_U8) { tmin = 0; tmax = UINT8_MAX; }
        if (n->op == NNM_OP_CLIP) int_bounds(n, tmin, tmax, &lo, &hi);
        for (int64_t i = 0; i < cnt; i++) {
            int64_t v = load_i(x->data, x->dtype, i);
            if (n->op == NNM_OP_RELU) {
                if (v < 0) v = 0;
            } else {
                if ((double)v < lo) v = f2i(lo);
                if ((double)v > hi) v = f2i(hi);
            }
            store_i(y->data, y->dtype, i, v);
        }
        return NNM_OK;
    }
    const float *xp = x->data;
    float *yp = y->data;
    const float al = n->a.alpha, be = n->a.beta;
    switch (n->op) {
    case NNM_OP_SQRT: for (int64_t i = 0; i < cnt; i++) yp[i] = sqrtf(xp[i]); break;
    case NNM_OP_EXP: for (int64_t i = 0; i < cnt; i++) yp[i] = expf(xp[i]); break;
    case NNM_OP_LOG: for (int64_t i = 0; i < cnt; i++) yp[i] = logf(xp[i]); break;
    case NNM_OP_ERF: for (int64_t i = 0; i < cnt; i++) yp[i] = erff(xp[i]); break;
    case NNM_OP_TANH: for (int64_t i = 0; i < cnt; i++) yp[i] = tanhf(xp[i]); break;
    case NNM_OP_RELU:
        for (int64_t i = 0; i < cnt; i++) yp[i] = xp[i] < 0.0f ? 0.0f : xp[i];
        break;
    case NNM_OP_SIGMOID: /* stable for large |x| */
        for (int64_t i = 0; i < cnt; i++) {
            float v = xp[i];
            if (v >= 0) {
                yp[i] = 1.0f / (1.0f + expf(-v));
            } else {
                float e = expf(v);
                yp[i] = e / (1.0f + e);
            }
        }
        break;
    case NNM_OP_HARD_SWISH: /* x * max(0, min(1, x/6 + 1/2)) */
        for (int64_t i = 0; i < cnt; i++) {
            float v = xp[i], s = v * (1.0f / 6.0f) + 0.5f;
            yp[i] = v * (s < 0.0f ? 0.0f : (s > 1.0f ? 1.0f : s));
        }
        break;
    case NNM_OP_LEAKY_RELU:
        for (int64_t i = 0; i < cnt; i++) yp[i] = xp[i] < 0.0f ? al * xp[i] : xp[i];
        break;
    case NNM_OP_HARD_SIGMOID:
        for (int64_t i = 0; i < cnt; i++) {
            float s = al * xp[i] + be;
            yp[i] = s < 0.0f ? 0.0f : (s > 1.0f ? 1.0f : s);
        }
        break;
    case NNM_OP_CLIP:
        if (xp != yp) memcpy(yp, xp, (size_t)cnt * sizeof *yp);
        clamp_f32(yp, cnt, n->a.act_min, n->a.act_max);
        break;
    default:
        break;
    }
    return NNM_OK;
}

static nnm_err k_softmax(const nnm_node *n, const nnm_tensor *x, nnm_tensor *y, nnm_diag *d)
{
    if (!same_shape(x, y) || y->dtype != NNM_DT_F32)
        return node_err(d, n, NNM_ESHAPE, "output %s does not match input %s", shp(y).s,
                        shp(x).s);
    int nd = x->ndim, ax = n->a.axis;
    if (nd == 0) {
        if (numel(y) == 1) ((float *)y->data)[0] = 1.0f;
        return NNM_OK;
    }
    if (ax < 0 || ax >= nd)
        return node_err(d, n, NNM_EINVAL, "axis %d is out of range for rank %d", ax, nd);
    int64_t outer = prod(x->shape, 0, ax), len, inner;
    if (n->a.legacy_2d) {
        len = prod(x->shape, ax, nd);
        inner = 1;
    } else {
        len = x->shape[ax];
        inner = prod(x->shape, ax + 1, nd);
    }
    const float *xp = x->data;
    float *yp = y->data;
    for (int64_t o = 0; o < outer; o++) {
        for (int64_t i = 0; i < inner; i++) {
            const float *xr = xp + o * len * inner + i;
            float *yr = yp + o * len * inner + i;
            float mx = -INFINITY;
            for (int64_t k = 0; k < len; k++)
                if (xr[k * inner] > mx || isnan(xr[k * inner])) mx = xr[k * inner];
            float sum = 0.0f;
            for (int64_t k = 0; k < len; k++) {
                float e = expf(xr[k * inner] - mx);
                yr[k * inner] = e;
                sum += e;
            }
            for (int64_t k = 0; k < len; k++) yr[k * inner] /= sum;
        }
    }
    return NNM_OK;
}

/* --- convolution and pooling ------------------------------------------------------------ */

/* A 4-D view of an activation in either layout: sizes and element strides of N, C, H, W.
 * Rank-3 tensors are 1-D ops viewed with H = 1. */
typedef struct view4 {
    int64_t n, c, h, w;
    int64_t sn, sc, sh, sw;
} view4;

static int view4_make(const nnm_tensor *t, int layout, view4 *v)
{
    const int64_t *s = t->shape;
    if (t->ndim == 4) {
        if (layout == NNM_IR_NHWC) {
            v->n = s[0]; v->h = s[1]; v->w = s[2]; v->c = s[3];
        } else {
            v->n = s[0]; v->c = s[1]; v->h = s[2]; v->w = s[3];
        }
    } else if (t->ndim == 3) {
        v->n = s[0]; v->h = 1;
        if (layout == NNM_IR_NHWC) {
            v->w = s[1]; v->c = s[2];
        } else {
            v->c = s[1]; v->w = s[2];
        }
    } else {
        return -1;
    }
    if (layout == NNM_IR_NHWC) {
        v->sc = 1; v->sw = v->c; v->sh = v->w * v->c; v->sn = v->h * v->w * v->c;
    } else {
        v->sw = 1; v->sh = v->w; v->sc = v->h * v->w; v->sn = v->c * v->h * v->w;
    }
    return 0;
}

/* Window geometry of a conv/pool node, with the 1-D case folded into H = 1. */
typedef struct geom {
    int64_t kh, kw, sh, sw, dh, dw, pt, pl, pb, pr;
} geom;

static nnm_err geom_make(const nnm_node *n, int one_d, int64_t kh, int64_t kw, geom *g,
                         nnm_diag *d)
{
    const nnm_attrs *a = &n->a;
    g->kh = kh; g->kw = kw;
    g->sh = a->strides[0]; g->sw = a->strides[1];
    g->dh = a->dilations[0]; g->dw = a->dilations[1];
    g->pt = a->pads[0]; g->pl = a->pads[1]; g->pb = a->pads[2]; g->pr = a->pads[3];
    if (one_d) { /* the importer puts the one spatial dim at index 1 (W) */
        g->kh = 1; g->sh = 1; g->dh = 1; g->pt = 0; g->pb = 0;
    }
    if (g->kh < 1 || g->kw < 1)
        return node_err(d, n, NNM_EINVAL, "kernel %lldx%lld is empty", (long long)g->kh,
                        (long long)g->kw);
    if (g->sh < 1 || g->sw < 1 || g->dh < 1 || g->dw < 1)
        return node_err(d, n, NNM_EINVAL, "strides (%lld, %lld) and dilations (%lld, %lld) "
                        "must be positive", (long long)g->sh, (long long)g->sw,
                        (long long)g->dh, (long long)g->dw);
    /* ConvTranspose with output_shape can need negative pads (the output grows); reads
     * and writes are bounds-checked, so only forward windows insist on pads >= 0. */
    if (n->op != NNM_OP_CONV_TRANSPOSE && (g->pt < 0 || g->pl < 0 || g->pb < 0 || g->pr < 0))
        return node_err(d, n, NNM_EINVAL, "pads (%lld, %lld, %lld, %lld) must not be negative",
                        (long long)g->pt, (long long)g->pl, (long long)g->pb, (long long)g->pr);
    return NNM_OK;
}

/* Indices i in [0, count) with 0 <= i * s + off < lim, as [*lo, *hi). s > 0. */
static void span(int64_t off, int64_t s, int64_t lim, int64_t count, int64_t *lo, int64_t *hi)
{
    int64_t l = off >= 0 ? 0 : (-off + s - 1) / s;
    int64_t t = lim - 1 - off;
    int64_t h = t < 0 ? 0 : t / s + 1;
    if (h > count) h = count;
    if (l > h) l = h;
    *lo = l;
    *hi = h;
}

/* Shared checks of Conv and ConvTranspose; fills the views, the weight's kernel size and
 * group sizes. transposed: W is [C, M/g, kH, kW] instead of [M, C/g, kH, kW]. */
static nnm_err conv_check(const nnm_node *n, const nnm_tensor *const *in, const nnm_tensor *y,
                          int transposed, view4 *xv, view4 *yv, geom *g, int64_t *cg,
                          int64_t *mg, nnm_diag *d)
{
    const nnm_tensor *x = in[0], *w = in[1], *b = n->n_in > 2 ? in[2] : NULL;
    int layout = n->a.layout;
    if (x->ndim != y->ndim || view4_make(x, layout, xv) != 0 || view4_make(y, layout, yv) != 0)
        return node_err(d, n, x->ndim == 5 ? NNM_EUNSUPPORTED : NNM_ESHAPE,
                        "input %s and output %s must both be rank 4 (or rank 3 for 1-D)",
                        shp(x).s, shp(y).s);
    if (w->dtype != NNM_DT_F32 || y->dtype != NNM_DT_F32 || (b != NULL && b->dtype != NNM_DT_F32))
        return node_err(d, n, NNM_EUNSUPPORTED, "weights, bias and output must be float32");
    if (w->ndim != x->ndim)
        return node_err(d, n, NNM_ESHAPE, "weight rank %d does not match input rank %d",
                        w->ndim, x->ndim);
    int64_t kh = w->ndim == 4 ? w->shape[2] : 1, kw = w->shape[w->ndim - 1];
    int64_t grp = n->a.group;
    nnm_err rc = geom_make(n, x->ndim == 3, kh, kw, g, d);
    if (rc != NNM_OK) return rc;
    if (grp < 1 || xv->c % grp != 0 || yv->c % grp != 0)
        return node_err(d, n, NNM_ESHAPE, "group=%lld does not divide %lld input and %lld "
                        "output channels", (long long)grp, (long long)xv->c, (long long)yv->c);
    *cg = xv->c / grp;
    *mg = yv->c / grp;
    int64_t w0 = transposed ? xv->c : yv->c, w1 = transposed ? *mg : *cg;
    if (w->shape[0] != w0 || w->shape[1] != w1)
        return node_err(d, n, NNM_ESHAPE, "weight shape %s does not fit %lld input and %lld "
                        "output channels with group=%lld", shp(w).s, (long long)xv->c,
                        (long long)yv->c, (long long)grp);
    if (b != NULL && numel(b) != yv->c)
        return node_err(d, n, NNM_ESHAPE, "bias has %lld elements for %lld output channels",
                        (long long)numel(b), (long long)yv->c);
    if (xv->n != yv->n)
        return node_err(d, n, NNM_ESHAPE, "batch of output %s differs from input %s",
                        shp(y).s, shp(x).s);
    return NNM_OK;
}

static void fill_bias(float *yp, const view4 *yv, const nnm_tensor *b)
{
    for (int64_t i = 0; i < yv->n; i++)
        for (int64_t c = 0; c < yv->c; c++) {
            float bv = b != NULL ? ((const float *)b->data)[c] : 0.0f;
            float *yo = yp + i * yv->sn + c * yv->sc;
            for (int64_t h = 0; h < yv->h; h++)
                for (int64_t w = 0; w < yv->w; w++) yo[h * yv->sh + w * yv->sw] = bv;
        }
}

static nnm_err k_conv(const nnm_node *n, const nnm_tensor *const *in, nnm_tensor *y, nnm_diag *d)
{
    view4 xv, yv;
    geom g;
    int64_t cg, mg;
    nnm_err rc = conv_check(n, in, y, 0, &xv, &yv, &g, &cg, &mg, d);
    if (rc != NNM_OK) return rc;
    int64_t eh = (xv.h + g.pt + g.pb - ((g.kh - 1) * g.dh + 1)) / g.sh + 1;
    int64_t ew = (xv.w + g.pl + g.pr - ((g.kw - 1) * g.dw + 1)) / g.sw + 1;
    if (xv.h + g.pt + g.pb < (g.kh - 1) * g.dh + 1) eh = 0;
    if (xv.w + g.pl + g.pr < (g.kw - 1) * g.dw + 1) ew = 0;
    if (yv.h != eh || yv.w != ew)
        return node_err(d, n, NNM_ESHAPE, "output %s does not match the %lldx%lld expected "
                        "from input %s", shp(y).s, (long long)eh, (long long)ew, shp(in[0]).s);
    const float *xp = in[0]->data, *wp = in[1]->data;
    float *yp = y->data;
    fill_bias(yp, &yv, n->n_in > 2 ? in[2] : NULL);
    /* For every (output channel, input channel, tap) add w * shifted input plane. */
    for (int64_t i = 0; i < xv.n; i++)
        for (int64_t oc = 0; oc < yv.c; oc++) {
            int64_t grp = oc / mg;
            float *yo = yp + i * yv.sn + oc * yv.sc;
            for (int64_t c = 0; c < cg; c++) {
                const float *xo = xp + i * xv.sn + (grp * cg + c) * xv.sc;
                const float *wo = wp + (oc * cg + c) * g.kh * g.kw;
                for (int64_t kh = 0; kh < g.kh; kh++)
                    for (int64_t kw = 0; kw < g.kw; kw++) {
                        float wv = wo[kh * g.kw + kw];
                        int64_t offw = kw * g.dw - g.pl, lo, hi;
                        span(offw, g.sw, xv.w, yv.w, &lo, &hi);
                        for (int64_t oh = 0; oh < yv.h; oh++) {
                            int64_t ih = oh * g.sh - g.pt + kh * g.dh;
                            if (ih < 0 || ih >= xv.h) continue;
                            const float *xr = xo + ih * xv.sh;
                            float *yr = yo + oh * yv.sh;
                            for (int64_t ow = lo; ow < hi; ow++)
                                yr[ow * yv.sw] += wv * xr[(ow * g.sw + offw) * xv.sw];
                        }
                    }
            }
        }
    fused_clamp(n, y);
    return NNM_OK;
}

static nnm_err k_conv_transpose(const nnm_node *n, const nnm_tensor *const *in, nnm_tensor *y,
                                nnm_diag *d)
{
    view4 xv, yv;
    geom g;
    int64_t cg, mg;
    nnm_err rc = conv_check(n, in, y, 1, &xv, &yv, &g, &cg, &mg, d);
    if (rc != NNM_OK) return rc;
    const float *xp = in[0]->data, *wp = in[1]->data;
    float *yp = y->data;
    fill_bias(yp, &yv, n->n_in > 2 ? in[2] : NULL);
    /* Scatter: input (ih, iw) lands on output (ih*s - pad + k*dil). */
    for (int64_t i = 0; i < xv.n; i++)
        for (int64_t ic = 0; ic < xv.c; ic++) {
            int64_t grp = ic / cg;
            const float *xo = xp + i * xv.sn + ic * xv.sc;
            for (int64_t m = 0; m < mg; m++) {
                float *yo = yp + i * yv.sn + (grp * mg + m) * yv.sc;
                const float *wo = wp + (ic * mg + m) * g.kh * g.kw;
                for (int64_t kh = 0; kh < g.kh; kh++)
                    for (int64_t kw = 0; kw < g.kw; kw++) {
                        float wv = wo[kh * g.kw + kw];
                        int64_t offw = kw * g.dw - g.pl, lo, hi;
                        span(offw, g.sw, yv.w, xv.w, &lo, &hi);
                        for (int64_t ih = 0; ih < xv.h; ih++) {
                            int64_t oh = ih * g.sh - g.pt + kh * g.dh;
                            if (oh < 0 || oh >= yv.h) continue;
                            const float *xr = xo + ih * xv.sh;
                            float *yr = yo + oh * yv.sh;
                            for (int64_t iw = lo; iw < hi; iw++)
                                yr[(iw * g.sw + offw) * yv.sw] += wv * xr[iw * xv.sw];
                        }
                    }
            }
        }
    fused_clamp(n, y);
    return NNM_OK;
}

static nnm_err k_pool(const nnm_node *n, const nnm_tensor *x, nnm_tensor *y, nnm_tensor *yi,
                      nnm_diag *d)
{
    view4 xv, yv;
    geom g;
    if (x->ndim != y->ndim || view4_make(x, n->a.layout, &xv) != 0 ||
        view4_make(y, n->a.layout, &yv) != 0)
        return node_err(d, n, x->ndim == 5 ? NNM_EUNSUPPORTED : NNM_ESHAPE,
                        "input %s and output %s must both be rank 4 (or rank 3 for 1-D)",
                        shp(x).s, shp(y).s);
    if (xv.n != yv.n || xv.c != yv.c || y->dtype != NNM_DT_F32)
        return node_err(d, n, NNM_ESHAPE, "output %s does not match input %s", shp(y).s,
                        shp(x).s);
    if (yi != NULL && (yi->dtype != NNM_DT_I64 || numel(yi) != numel(y)))
        return node_err(d, n, NNM_ESHAPE, "the Indices output must be int64 of shape %s",
                        shp(y).s);
    nnm_err rc = geom_make(n, x->ndim == 3, n->a.kernel[0], n->a.kernel[1], &g, d);
    if (rc != NNM_OK) return rc;
    int is_max = n->op == NNM_OP_MAXPOOL, incl = n->a.count_include_pad;
    const float *xp = x->data;
    float *yp = y->data;
    int64_t *ip = yi != NULL ? yi->data : NULL;
    for (int64_t i = 0; i < xv.n; i++)
        for (int64_t c = 0; c < xv.c; c++) {
            const float *xo = xp + i * xv.sn + c * xv.sc;
            for (int64_t oh = 0; oh < yv.h; oh++)
                for (int64_t ow = 0; ow < yv.w; ow++) {
                    int64_t hs = oh * g.sh - g.pt, ws = ow * g.sw - g.pl;
                    float acc = is_max ? -INFINITY : 0.0f;
                    int64_t valid = 0, padded = 0, arg = -1;
                    for (int64_t kh = 0; kh < g.kh; kh++) {
                        int64_t ih = hs + kh * g.dh;
                        for (int64_t kw = 0; kw < g.kw; kw++) {
                            int64_t iw = ws + kw * g.dw;
                            /* count_include_pad counts taps inside the padded extent only
                             * (not the extra ceil_mode overhang), as ONNX and PyTorch do */
                            if (ih < xv.h + g.pb && iw < xv.w + g.pr) padded++;
                            if (ih < 0 || ih >= xv.h || iw < 0 || iw >= xv.w) continue;
                            float v = xo[ih * xv.sh + iw * xv.sw];
                            valid++;
                            if (!is_max) {
                                acc += v;
                            } else if (arg < 0 || v > acc || (isnan(v) && !isnan(acc))) {
                                acc = v;   /* first NaN wins and sticks */
                                arg = ((i * xv.c + c) * xv.h + ih) * xv.w + iw;
                            }
                        }
                    }
                    int64_t div = incl ? padded : valid;
                    float out = is_max ? acc : (div > 0 ? acc / (float)div : 0.0f);
                    yp[i * yv.sn + c * yv.sc + oh * yv.sh + ow * yv.sw] = out;
                    if (ip != NULL)
                        ip[((i * yv.c + c) * yv.h + oh) * yv.w + ow] = arg < 0 ? 0 : arg;
                }
        }
    return NNM_OK;
}

static nnm_err k_global_pool(const nnm_node *n, const nnm_tensor *x, nnm_tensor *y, nnm_diag *d)
{
    int nd = x->ndim, nhwc = n->a.layout == NNM_IR_NHWC;
    if (nd < 2 || y->dtype != NNM_DT_F32)
        return node_err(d, n, NNM_ESHAPE, "input %s must have rank >= 2", shp(x).s);
    int64_t bn = x->shape[0], c = nhwc ? x->shape[nd - 1] : x->shape[1];
    int64_t sp = nhwc ? prod(x->shape, 1, nd - 1) : prod(x->shape, 2, nd);
    if (numel(y) != bn * c)
        return node_err(d, n, NNM_ESHAPE, "output %s does not match input %s", shp(y).s,
                        shp(x).s);
    const float *xp = x->data;
    float *yp = y->data;
    int is_max = n->op == NNM_OP_GLOBAL_MAXPOOL;
    for (int64_t i = 0; i < bn; i++)
        for (int64_t k = 0; k < c; k++) {
            float acc = is_max ? -INFINITY : 0.0f;
            for (int64_t s = 0; s < sp; s++) {
                float v = nhwc ? xp[(i * sp + s) * c + k] : xp[(i * c + k) * sp + s];
                if (!is_max) acc += v;
                else if (v > acc || isnan(v)) acc = v;
            }
            yp[i * c + k] = is_max ? acc : (sp > 0 ? acc / (float)sp : 0.0f);
        }
    return NNM_OK;
}

static nnm_err k_batchnorm(const nnm_node *n, const nnm_tensor *const *in, nnm_tensor *y,
                           nnm_diag *d)
{
    const nnm_tensor *x = in[0];
    int nd = x->ndim, nhwc = n->a.layout == NNM_IR_NHWC;
    if (nd < 2 || !same_shape(x, y) || y->dtype != NNM_DT_F32)
        return node_err(d, n, NNM_ESHAPE, "input %s must have rank >= 2 and match the output "
                        "%s", shp(x).s, shp(y).s);
    int64_t c = nhwc ? x->shape[nd - 1] : x->shape[1];
    static const char *const names[] = { "", "scale", "B", "mean", "var" };
    for (int k = 1; k <= 4; k++)
        if (in[k]->dtype != NNM_DT_F32 || numel(in[k]) != c)
            return node_err(d, n, NNM_ESHAPE, "%s must be float32 with %lld elements, got %s "
                            "%s", names[k], (long long)c, nnm_dtype_name(in[k]->dtype),
                            shp(in[k]).s);
    const float *sc = in[1]->data, *bi = in[2]->data, *mu = in[3]->data, *va = in[4]->data;
    float *sd = malloc((size_t)(c > 0 ? c : 1) * sizeof *sd);
    if (sd == NULL) return node_err(d, n, NNM_ENOMEM, "out of memory");
    for (int64_t k = 0; k < c; k++) sd[k] = sqrtf(va[k] + n->a.epsilon);
    const float *xp = x->data;
    float *yp = y->data;
    int64_t outer = x->shape[0], inner = nhwc ? 1 : prod(x->shape, 2, nd);
    if (nhwc) outer = prod(x->shape, 0, nd - 1);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t k = 0; k < c; k++)
            for (int64_t s = 0; s < inner; s++) {
                int64_t at = (o * c + k) * inner + s;
                yp[at] = (xp[at] - mu[k]) / sd[k] * sc[k] + bi[k];
            }
    free(sd);
    return NNM_OK;
}

/* --- matrix products -------------------------------------------------------------------- */

static nnm_err k_gemm(const nnm_node *n, const nnm_tensor *const *in, nnm_tensor *y, nnm_diag *d)
{
    const nnm_tensor *a = in[0], *b = in[1], *c = n->n_in > 2 ? in[2] : NULL;
    if (a->ndim != 2 || b->ndim != 2 || y->ndim != 2)
        return node_err(d, n, NNM_ESHAPE, "A %s, B %s and Y %s must be rank 2", shp(a).s,
                        shp(b).s, shp(y).s);
    if (b->dtype != NNM_DT_F32 || y->dtype != NNM_DT_F32 || (c != NULL && c->dtype != NNM_DT_F32))
        return node_err(d, n, NNM_EUNSUPPORTED, "only float32 is supported");
    int ta = n->a.trans_a != 0, tb = n->a.trans_b != 0;
    int64_t m = ta ? a->shape[1] : a->shape[0], k = ta ? a->shape[0] : a->shape[1];
    int64_t kb = tb ? b->shape[1] : b->shape[0], nn = tb ? b->shape[0] : b->shape[1];
    if (k != kb || y->shape[0] != m || y->shape[1] != nn)
        return node_err(d, n, NNM_ESHAPE, "A %s (transA=%d) times B %s (transB=%d) does not "
                        "give Y %s", shp(a).s, ta, shp(b).s, tb, shp(y).s);
    int64_t cst[2] = { 0, 0 };
    if (c != NULL && bc_strides(c->shape, c->ndim, y->shape, 2, cst) != 0)
        return node_err(d, n, NNM_ESHAPE, "C of shape %s does not broadcast to %s", shp(c).s,
                        shp(y).s);
    const float *ap = a->data, *bp = b->data, *cp = c != NULL ? c->data : NULL;
    float *yp = y->data;
    const float alpha = n->a.alpha, beta = n->a.beta;
    for (int64_t i = 0; i < m; i++) {
        float *yr = yp + i * nn;
        if (tb) { /* rows of B are contiguous in k: dot products */
            for (int64_t j = 0; j < nn; j++) {
                float s = 0.0f;
                for (int64_t p = 0; p < k; p++)
                    s += (ta ? ap[p * m + i] : ap[i * k + p]) * bp[j * k + p];
                yr[j] = s;
            }
        } else {  /* i-k-j: stream rows of B */
            for (int64_t j = 0; j < nn; j++) yr[j] = 0.0f;
            for (int64_t p = 0; p < k; p++) {
                float av = ta ? ap[p * m + i] : ap[i * k + p];
                const float *br = bp + p * nn;
                for (int64_t j = 0; j < nn; j++) yr[j] += av * br[j];
            }
        }
        for (int64_t j = 0; j < nn; j++) {
            float v = alpha * yr[j];
            if (cp != NULL) v += beta * cp[i * cst[0] + j * cst[1]];
            yr[j] = v;
        }
    }
    fused_clamp(n, y);
    return NNM_OK;
}

static nnm_err k_matmul(const nnm_node *n, const nnm_tensor *const *in, nnm_tensor *y,
                        nnm_diag *d)
{
    const nnm_tensor *a = in[0], *b = in[1];
    if (a->ndim < 1 || b->ndim < 1)
        return node_err(d, n, NNM_ESHAPE, "operands %s and %s must have rank >= 1", shp(a).s,
                        shp(b).s);
    if (b->dtype != NNM_DT_F32 || y->dtype != NNM_DT_F32)
        return node_err(d, n, NNM_EUNSUPPORTED, "only float32 is supported");
    int a1 = a->ndim == 1, b1 = b->ndim == 1;
    int64_t m = a1 ? 1 : a->shape[a->ndim - 2], k = a->shape[a->ndim - 1];
    int64_t kb = b1 ? b->shape[0] : b->shape[b->ndim - 2], nn = b1 ? 1 : b->shape[b->ndim - 1];
    int nba = a1 ? 0 : a->ndim - 2, nbb = b1 ? 0 : b->ndim - 2;
    int nbo = nba > nbb ? nba : nbb;
    int ynd = nbo + (a1 ? 0 : 1) + (b1 ? 0 : 1);
    int ok = k == kb && y->ndim == ynd;
    if (ok && !a1 && y->shape[nbo] != m) ok = 0;
    if (ok && !b1 && y->shape[ynd - 1] != nn) ok = 0;
    int64_t sta[MAXD] = { 0 }, stb[MAXD] = { 0 };
    if (ok && (bc_strides(a->shape, nba, y->shape, nbo, sta) != 0 ||
               bc_strides(b->shape, nbb, y->shape, nbo, stb) != 0))
        ok = 0;
    if (!ok)
        return node_err(d, n, NNM_ESHAPE, "%s times %s does not give %s", shp(a).s, shp(b).s,
                        shp(y).s);
    const float *ap = a->data, *bp = b->data;
    float *yp = y->data;
    /* batch strides count whole matrices; scale them to elements */
    for (int i = 0; i < nbo; i++) {
        sta[i] *= m * k;
        stb[i] *= k * nn;
    }
    iter it; /* walk batches: the "row" trick needs a trailing dim of 1 */
    int64_t bshape[MAXD + 1], bsa[MAXD + 1], bsb[MAXD + 1];
    for (int i = 0; i < nbo; i++) {
        bshape[i] = y->shape[i];
        bsa[i] = sta[i];
        bsb[i] = stb[i];
    }
    bshape[nbo] = 1;
    bsa[nbo] = bsb[nbo] = 0;
    iter_init(&it, bshape, nbo + 1, bsa, bsb, 0, 0);
    for (int64_t r = 0; r < it.rows; r++, iter_next(&it)) {
        const float *ab = ap + it.off[0], *bb = bp + it.off[1];
        float *yb = yp + r * m * nn;
        for (int64_t i = 0; i < m; i++) {
            float *yr = yb + i * nn;
            for (int64_t j = 0; j < nn; j++) yr[j] = 0.0f;
            for (int64_t p = 0; p < k; p++) {
                float av = ab[i * k + p];
                const float *br = bb + p * nn;
                for (int64_t j = 0; j < nn; j++) yr[j] += av * br[j];
            }
        }
    }
    fused_clamp(n, y);
    return NNM_OK;
}

/* --- data movement ---------------------------------------------------------------------- */

static nnm_err same_dtype(const nnm_node *n, const nnm_tensor *x, const nnm_tensor *y,
                          nnm_diag *d)
{
    if (x->dtype != y->dtype)
        return node_err(d, n, NNM_ESHAPE, "output dtype %s differs from input dtype %s",
                        nnm_dtype_name(y->dtype), nnm_dtype_name(x->dtype));
    return NNM_OK;
}

static nnm_err k_copy(const nnm_node *n, const nnm_tensor *x, nnm_tensor *const *out, int nout,
                      nnm_diag *d)
{
    nnm_tensor *y = out[0], *mask = nout > 1 ? out[1] : NULL;
    nnm_err rc = same_dtype(n, x, y, d);
    if (rc != NNM_OK) return rc;
    if (numel(x) != numel(y))
        return node_err(d, n, NNM_ESHAPE, "output %s has a different element count than "
                        "input %s", shp(y).s, shp(x).s);
    if (mask != NULL && numel(mask) != numel(x))
        return node_err(d, n, NNM_ESHAPE, "mask %s does not match input %s", shp(mask).s,
                        shp(x).s);
    size_t bytes = (size_t)numel(x) * nnm_dtype_size(x->dtype);
    if (y->data != x->data && bytes > 0) memmove(y->data, x->data, bytes);
    if (mask != NULL) {
        int64_t cnt = numel(mask);
        for (int64_t i = 0; i < cnt; i++) store_i(mask->data, mask->dtype, i, 1);
    }
    return NNM_OK;
}

static nnm_err k_transpose(const nnm_node *n, const nnm_tensor *x, nnm_tensor *y, nnm_diag *d)
{
    nnm_err rc = same_dtype(n, x, y, d);
    if (rc != NNM_OK) return rc;
    int nd = x->ndim, seen[MAXD] = { 0 };
    if (y->ndim != nd)
        return node_err(d, n, NNM_ESHAPE, "output rank %d differs from input rank %d",
                        y->ndim, nd);
    int64_t xst[MAXD], st[MAXD];
    contig_strides(x->shape, nd, xst);
    for (int i = 0; i < nd; i++) {
        int p = n->a.perm[i];
        if (p < 0 || p >= nd || seen[p]++)
            return node_err(d, n, NNM_EINVAL, "perm is not a permutation of 0..%d", nd - 1);
        if (y->shape[i] != x->shape[p])
            return node_err(d, n, NNM_ESHAPE, "output %s is not input %s permuted", shp(y).s,
                            shp(x).s);
        st[i] = xst[p];
    }
    copy_strided(y->data, x->data, 0, y->shape, nd, st, nnm_dtype_size(x->dtype));
    return NNM_OK;
}

static nnm_err k_concat(const nnm_node *n, const nnm_tensor *const *in, int nin, nnm_tensor *y,
                        nnm_diag *d)
{
    int ax = n->a.axis, nd = y->ndim;
    if (nin < 1) return node_err(d, n, NNM_EINVAL, "needs at least one input");
    if (ax < 0 || ax >= nd)
        return node_err(d, n, NNM_EINVAL, "axis %d is out of range for rank %d", ax, nd);
    int64_t total = 0;
    for (int k = 0; k < nin; k++) {
        const nnm_tensor *x = in[k];
        if (x == NULL) return node_err(d, n, NNM_EINVAL, "input %d is missing", k);
        nnm_err rc = same_dtype(n, x, y, d);
        if (rc != NNM_OK) return rc;
        int ok = x->ndim == nd;
        for (int i = 0; ok && i < nd; i++)
            if (i != ax && x->shape[i] != y->shape[i]) ok = 0;
        if (!ok)
            return node_err(d, n, NNM_ESHAPE, "input %d of shape %s does not fit output %s "
                            "on axis %d", k, shp(x).s, shp(y).s, ax);
        total += x->shape[ax];
    }
    if (total != y->shape[ax])
        return node_err(d, n, NNM_ESHAPE, "inputs add up to %lld along axis %d but the "
                        "output has %lld", (long long)total, ax, (long long)y->shape[ax]);
    size_t esz = nnm_dtype_size(y->dtype);
    int64_t outer = prod(y->shape, 0, ax), inner = prod(y->shape, ax + 1, nd);
    size_t row = (size_t)(y->shape[ax] * inner) * esz, pos = 0;
    for (int k = 0; k < nin; k++) {
        size_t part = (size_t)(in[k]->shape[ax] * inner) * esz;
        for (int64_t o = 0; o < outer && part > 0; o++)
            memcpy((char *)y->data + (size_t)o * row + pos,
                   (const char *)in[k]->data + (size_t)o * part, part);
        pos += part;
    }
    return NNM_OK;
}

static nnm_err k_split(const nnm_node *n, const nnm_tensor *x, nnm_tensor *const *out, int nout,
                       nnm_diag *d)
{
    int ax = n->a.axis, nd = x->ndim;
    if (nout < 1) return node_err(d, n, NNM_EINVAL, "needs at least one output");
    if (ax < 0 || ax >= nd)
        return node_err(d, n, NNM_EINVAL, "axis %d is out of range for rank %d", ax, nd);
    int64_t total = 0;
    for (int k = 0; k < nout; k++) {
        const nnm_tensor *y = out[k];
        if (y == NULL) return node_err(d, n, NNM_EINVAL, "output %d is missing", k);
        nnm_err rc = same_dtype(n, x, y, d);
        if (rc != NNM_OK) return rc;
        int ok = y->ndim == nd;
        for (int i = 0; ok && i < nd; i++)
            if (i != ax && x->shape[i] != y->shape[i]) ok = 0;
        if (!ok)
            return node_err(d, n, NNM_ESHAPE, "output %d of shape %s does not fit input %s "
                            "on axis %d", k, shp(y).s, shp(x).s, ax);
        total += y->shape[ax];
    }
    if (total != x->shape[ax])
        return node_err(d, n, NNM_ESHAPE, "outputs add up to %lld along axis %d but the "
                        "input has %lld", (long long)total, ax, (long long)x->shape[ax]);
    size_t esz = nnm_dtype_size(x->dtype);
    int64_t outer = prod(x->shape, 0, ax), inner = prod(x->shape, ax + 1, nd);
    size_t row = (size_t)(x->shape[ax] * inner) * esz, pos = 0;
    for (int k = 0; k < nout; k++) {
        size_t part = (size_t)(out[k]->shape[ax] * inner) * esz;
        for (int64_t o = 0; o < outer && part > 0; o++)
            memcpy((char *)out[k]->data + (size_t)o * part,
                   (const char *)x->data + (size_t)o * row + pos, part);
        pos += part;
    }
    return NNM_OK;
}

static nnm_err k_slice(const nnm_node *n, const nnm_tensor *x, nnm_tensor *y, nnm_diag *d)
{
    nnm_err rc = same_dtype(n, x, y, d);
    if (rc != NNM_OK) return rc;
    int nd = x->ndim;
    if (y->ndim != nd)
        return node_err(d, n, NNM_ESHAPE, "output rank %d differs from input rank %d",
                        y->ndim, nd);
    int64_t xst[MAXD], st[MAXD], off = 0;
    contig_strides(x->shape, nd, xst);
    for (int i = 0; i < nd; i++) {
        int64_t s0 = n->a.starts[i], step = n->a.steps[i], cnt = y->shape[i];
        if (step == 0) return node_err(d, n, NNM_EINVAL, "step of axis %d is 0", i);
        if (cnt > 0) {
            int64_t last = s0 + (cnt - 1) * step;
            if (s0 < 0 || s0 >= x->shape[i] || last < 0 || last >= x->shape[i])
                return node_err(d, n, NNM_ERANGE, "axis %d: %lld elements from %lld step "
                                "%lld run outside the input dim of %lld", i, (long long)cnt,
                                (long long)s0, (long long)step, (long long)x->shape[i]);
            off += s0 * xst[i];
        }
        st[i] = step * xst[i];
    }
    copy_strided(y->data, x->data, off, y->shape, nd, st, nnm_dtype_size(x->dtype));
    return NNM_OK;
}

/* Source index of output position o along a padded dim of input length len, or -1 for the
 * constant value. */
static int64_t pad_map(int mode, int64_t o, int64_t before, int64_t len)
{
    int64_t i = o - before;
    if (i >= 0 && i < len) return i;
    if (mode == NNM_PAD_EDGE) return i < 0 ? 0 : len - 1;
    if (mode == NNM_PAD_REFLECT) {
        if (len == 1) return 0;
        int64_t p = 2 * (len - 1);
        i %= p;
        if (i < 0) i += p;
        return i < len ? i : p - i;
    }
    return -1;
}

static nnm_err k_pad(const nnm_node *n, const nnm_tensor *x, nnm_tensor *y, nnm_diag *d)
{
    nnm_err rc = same_dtype(n, x, y, d);
    if (rc != NNM_OK) return rc;
    int nd = x->ndim, mode = n->a.pad_mode;
    if (y->ndim != nd)
        return node_err(d, n, NNM_ESHAPE, "output rank %d differs from input rank %d",
                        y->ndim, nd);
    if (mode != NNM_PAD_CONSTANT && mode != NNM_PAD_REFLECT && mode != NNM_PAD_EDGE)
        return node_err(d, n, NNM_EUNSUPPORTED, "pad mode %d is not supported", mode);
    int64_t total = 0;
    for (int i = 0; i < nd; i++) {
        int64_t b = n->a.pads[i], e = n->a.pads[nd + i];
        if (x->shape[i] + b + e != y->shape[i])
            return node_err(d, n, NNM_ESHAPE, "axis %d: %lld + pads %lld, %lld is not the "
                            "output's %lld", i, (long long)x->shape[i], (long long)b,
                            (long long)e, (long long)y->shape[i]);
        if (x->shape[i] == 0 && y->shape[i] > 0 && mode != NNM_PAD_CONSTANT)
            return node_err(d, n, NNM_ESHAPE, "axis %d is empty and cannot be padded in "
                            "reflect or edge mode", i);
        total += y->shape[i];
    }
    size_t esz = nnm_dtype_size(x->dtype);
    int64_t *maps = malloc((size_t)(total > 0 ? total : 1) * sizeof *maps);
    if (maps == NULL) return node_err(d, n, NNM_ENOMEM, "out of memory");
    int64_t *map[MAXD], at = 0, xst[MAXD];
    for (int i = 0; i < nd; i++) {
        map[i] = maps + at;
        for (int64_t o = 0; o < y->shape[i]; o++)
            map[i][o] = pad_map(mode, o, n->a.pads[i], x->shape[i]);
        at += y->shape[i];
    }
    contig_strides(x->shape, nd, xst);
    unsigned char cval[8];
    store_f(cval, x->dtype, 0, n->a.pad_value);
    unsigned char *yp = y->data;
    const unsigned char *xp = x->data;
    if (nd == 0) {
        memcpy(yp, xp, esz);
    } else {
        iter it; /* walk output rows; compute the source row from the maps */
        iter_init(&it, y->shape, nd, NULL, NULL, 0, 0);
        for (int64_t r = 0; r < it.rows; r++, iter_next(&it)) {
            int64_t base = 0, is_pad = 0;
            for (int i = 0; i < nd - 1; i++) {
                int64_t s = map[i][it.cnt[i]];
                if (s < 0) is_pad = 1;
                else base += s * xst[i];
            }
            unsigned char *yr = yp + (size_t)(r * it.inner) * esz;
            for (int64_t j = 0; j < it.inner; j++) {
                int64_t s = map[nd - 1][j];
                memcpy(yr + (size_t)j * esz,
                       (is_pad || s < 0) ? cval : xp + (size_t)(base + s) * esz, esz);
            }
        }
    }
    free(maps);
    return NNM_OK;
}

static nnm_err k_gather(const nnm_node *n, const nnm_tensor *x, const nnm_tensor *ind,
                        nnm_tensor *y, nnm_diag *d)
{
    nnm_err rc = same_dtype(n, x, y, d);
    if (rc != NNM_OK) return rc;
    int ax = n->a.axis, nd = x->ndim;
    if (ind->dtype != NNM_DT_I32 && ind->dtype != NNM_DT_I64)
        return node_err(d, n, NNM_EUNSUPPORTED, "indices must be int32 or int64, not %s",
                        nnm_dtype_name(ind->dtype));
    if (ax < 0 || ax >= nd)
        return node_err(d, n, NNM_EINVAL, "axis %d is out of range for rank %d", ax, nd);
    int64_t outer = prod(x->shape, 0, ax), len = x->shape[ax];
    int64_t inner = prod(x->shape, ax + 1, nd), ni = numel(ind);
    if (y->ndim != nd - 1 + ind->ndim || numel(y) != outer * ni * inner)
        return node_err(d, n, NNM_ESHAPE, "output %s does not match input %s gathered with "
                        "indices %s on axis %d", shp(y).s, shp(x).s, shp(ind).s, ax);
    for (int64_t j = 0; j < ni; j++) {
        int64_t v = load_i(ind->data, ind->dtype, j);
        if (v < -len || v >= len)
            return node_err(d, n, NNM_ERANGE, "index %lld (at position %lld) is out of range "
                            "for axis %d of size %lld", (long long)v, (long long)j, ax,
                            (long long)len);
    }
    size_t esz = nnm_dtype_size(x->dtype), blk = (size_t)inner * esz;
    unsigned char *yp = y->data;
    const unsigned char *xp = x->data;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < ni && blk > 0; j++) {
            int64_t v = load_i(ind->data, ind->dtype, j);
            if (v < 0) v += len;
            memcpy(yp + (size_t)(o * ni + j) * blk, xp + (size_t)(o * len + v) * blk, blk);
        }
    return NNM_OK;
}

static nnm_err k_shape(const nnm_node *n, const nnm_tensor *x, nnm_tensor *y, nnm_diag *d)
{
    /* a.starts[0] is the first dim reported (0 unless Shape-15 start was given) */
    int64_t cnt = numel(y), s0 = n->a.starts[0];
    if (s0 < 0 || s0 + cnt > x->ndim)
        return node_err(d, n, NNM_ESHAPE, "output of %lld dims from dim %lld does not fit "
                        "input rank %d", (long long)cnt, (long long)s0, x->ndim);
    for (int64_t i = 0; i < cnt; i++) ((int64_t *)y->data)[i] = x->shape[s0 + i];
    return NNM_OK;
}

static nnm_err k_cast(const nnm_node *n, const nnm_tensor *x, nnm_tensor *y, nnm_diag *d)
{
    int64_t cnt = numel(x);
    if (numel(y) != cnt)
        return node_err(d, n, NNM_ESHAPE, "output %s does not match input %s", shp(y).s,
                        shp(x).s);
    if (x->dtype == y->dtype) {
        size_t bytes = (size_t)cnt * nnm_dtype_size(x->dtype);
        if (y->data != x->data && bytes > 0) memmove(y->data, x->data, bytes);
        return NNM_OK;
    }
    if (is_float_dt(x->dtype))
        for (int64_t i = 0; i < cnt; i++) store_f(y->data, y->dtype, i, load_f(x->data, x->dtype, i));
    else
        for (int64_t i = 0; i < cnt; i++) store_i(y->data, y->dtype, i, load_i(x->data, x->dtype, i));
    return NNM_OK;
}

static nnm_err k_const_of_shape(const nnm_node *n, nnm_tensor *y, nnm_diag *d)
{
    (void)d;
    int64_t cnt = numel(y);
    if (cnt == 0) return NNM_OK;
    store_f(y->data, y->dtype, 0, n->a.pad_value);
    size_t esz = nnm_dtype_size(y->dtype);
    for (int64_t i = 1; i < cnt; i++)
        memcpy((char *)y->data + (size_t)i * esz, y->data, esz);
    return NNM_OK;
}

/* --- Resize ----------------------------------------------------------------------------- */

/* ONNX Resize coordinate transformation: output coordinate -> input coordinate.
 * len_out is length_resized as the ONNX reference computes it: len_in * scale, which is
 * fractional when explicit scales do not divide evenly (test_resize_downsample_scales_
 * linear_align_corners expects that); the caller snaps it to the integer output length
 * when they agree. */
static double resize_coord(int mode, double xr, double scale, int64_t len_in, double len_out)
{
    switch (mode) {
    case NNM_COORD_ASYMMETRIC: return xr / scale;
    case NNM_COORD_PYTORCH_HALF_PIXEL: return len_out > 1.0 ? (xr + 0.5) / scale - 0.5 : 0.0;
    case NNM_COORD_ALIGN_CORNERS:
        return len_out == 1.0 ? 0.0 : xr * (double)(len_in - 1) / (len_out - 1.0);
    case NNM_COORD_TF_HALF_PIXEL_FOR_NN: return (xr + 0.5) / scale;
    default: return (xr + 0.5) / scale - 0.5;                /* half_pixel */
    }
}

static int64_t resize_nearest(int mode, double xo)
{
    double fl = floor(xo);
    if (xo == fl) return (int64_t)fl;
    switch (mode) {
    case NNM_NEAREST_ROUND_PREFER_CEIL: return (int64_t)(xo - fl >= 0.5 ? fl + 1 : fl);
    case NNM_NEAREST_FLOOR: return (int64_t)fl;
    case NNM_NEAREST_CEIL: return (int64_t)fl + 1;
    default: return (int64_t)(xo - fl > 0.5 ? fl + 1 : fl); /* round_prefer_floor */
    }
}

typedef struct rtap { int64_t i0, i1; float w1; } rtap;

/* One separable pass along dim ax: src shape sh (dim ax of length len_in) -> dst with
 * len_out along ax. Linear: (1 - w1) * src[i0] + w1 * src[i1]. Nearest: src[i0]. */
static void resize_pass(const void *src, void *dst, const int64_t *sh, int nd, int ax,
                        int64_t len_in, int64_t len_out, const rtap *tap, int linear, size_t esz)
{
    int64_t outer = prod(sh, 0, ax), inner = prod(sh, ax + 1, nd);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < len_out; j++) {
            int64_t so0 = (o * len_in + tap[j].i0) * inner, so1 = (o * len_in + tap[j].i1) * inner;
            int64_t dof = (o * len_out + j) * inner;
            if (linear) {
                const float *s = src;
                float *t = dst, w1 = tap[j].w1, w0 = 1.0f - w1;
                for (int64_t i = 0; i < inner; i++) t[dof + i] = w0 * s[so0 + i] + w1 * s[so1 + i];
            } else {
                memcpy((char *)dst + (size_t)dof * esz, (const char *)src + (size_t)so0 * esz,
                       (size_t)inner * esz);
            }
        }
}

static nnm_err k_resize(const nnm_node *n, const nnm_tensor *x, nnm_tensor *y, nnm_diag *d)
{
    nnm_err rc = same_dtype(n, x, y, d);
    if (rc != NNM_OK) return rc;
    int nd = x->ndim, linear = n->a.resize_mode == NNM_RESIZE_LINEAR;
    if (y->ndim != nd)
        return node_err(d, n, NNM_ESHAPE, "output rank %d differs from input rank %d",
                        y->ndim, nd);
    if (n->a.resize_mode != NNM_RESIZE_NEAREST && !linear)
        return node_err(d, n, NNM_EUNSUPPORTED, "resize mode %d (cubic?) is not supported",
                        n->a.resize_mode);
    if (n->a.coord_mode < NNM_COORD_HALF_PIXEL || n->a.coord_mode > NNM_COORD_TF_HALF_PIXEL_FOR_NN)
        return node_err(d, n, NNM_EUNSUPPORTED, "coordinate transformation mode %d is not "
                        "supported", n->a.coord_mode);
    int64_t total = 0;
    for (int i = 0; i < nd; i++) {
        if (x->shape[i] == 0 && y->shape[i] > 0)
            return node_err(d, n, NNM_ESHAPE, "cannot resize empty axis %d to %lld", i,
                            (long long)y->shape[i]);
        total += y->shape[i];
    }
    size_t esz = nnm_dtype_size(x->dtype);
    rtap *taps = malloc((size_t)(total > 0 ? total : 1) * sizeof *taps), *tap[MAXD];
    if (taps == NULL) return node_err(d, n, NNM_ENOMEM, "out of memory");
    /* Per-axis source taps; an axis whose taps are the identity needs no pass. */
    int ident[MAXD], first = -1;
    int64_t at = 0;
    for (int ax = 0; ax < nd; ax++) {
        int64_t li = x->shape[ax], lo = y->shape[ax];
        double scale = n->a.scales[ax];
        if (!(scale > 0) || !isfinite(scale)) scale = li > 0 ? (double)lo / (double)li : 1.0;
        double lr = (double)li * scale;
        if (fabs(lr - (double)lo) <= 1e-4 * (double)lo) lr = (double)lo;
        tap[ax] = taps + at;
        at += lo;
        ident[ax] = li == lo;
        for (int64_t j = 0; j < lo; j++) {
            rtap *t = &tap[ax][j];
            double xo = resize_coord(n->a.coord_mode, (double)j, scale, li, lr);
            if (linear) {
                double fl = floor(xo);
                int64_t i0 = (int64_t)fl, i1 = i0 + 1;
                t->w1 = (float)(xo - fl);
                t->i0 = i0 < 0 ? 0 : (i0 >= li ? li - 1 : i0);  /* edge values outside */
                t->i1 = i1 < 0 ? 0 : (i1 >= li ? li - 1 : i1);
                if (t->i0 == t->i1) t->w1 = 0.0f;
            } else {
                int64_t i0 = resize_nearest(n->a.nearest_mode, xo);
                t->i0 = t->i1 = i0 < 0 ? 0 : (i0 >= li ? li - 1 : i0);
                t->w1 = 0.0f;
            }
            if (t->i0 != j || t->w1 != 0.0f) ident[ax] = 0;
        }
        if (!ident[ax] && first < 0) first = ax;
    }
    /* Separable passes from the innermost axis outwards (the order of the ONNX reference's
     * recursion); the last pass writes into y. */
    int64_t cur[MAXD];
    for (int i = 0; i < nd; i++) cur[i] = x->shape[i];
    const void *src = x->data;
    void *buf = NULL;
    if (first < 0 && numel(y) > 0) memcpy(y->data, x->data, (size_t)numel(y) * esz);
    for (int ax = nd - 1; ax >= first && first >= 0; ax--) {
        if (ident[ax]) continue;
        int64_t sh_in[MAXD];
        memcpy(sh_in, cur, sizeof sh_in);
        cur[ax] = y->shape[ax];
        void *dst = y->data;
        if (ax != first) {
            int64_t cnt = prod(cur, 0, nd);
            dst = malloc((size_t)(cnt > 0 ? cnt : 1) * esz);
            if (dst == NULL) {
                free(buf);
                free(taps);
                return node_err(d, n, NNM_ENOMEM, "out of memory");
            }
        }
        resize_pass(src, dst, sh_in, nd, ax, sh_in[ax], cur[ax], tap[ax], linear, esz);
        free(buf);
        buf = dst == y->data ? NULL : dst;
        src = dst;
    }
    free(buf);
    free(taps);
    return NNM_OK;
}

/* --- reductions ------------------------------------------------------------------------- */

static nnm_err k_reduce(const nnm_node *n, const nnm_tensor *x, nnm_tensor *y, nnm_diag *d)
{
    int nd = x->ndim;
    uint32_t mask = n->a.axes_mask;
    if (y->dtype != NNM_DT_F32)
        return node_err(d, n, NNM_EUNSUPPORTED, "only float32 is supported");
    if (nd < 32 && (mask >> nd) != 0)
        return node_err(d, n, NNM_EINVAL, "axes mask 0x%x names dims beyond rank %d",
                        (unsigned)mask, nd);
    int64_t kept[MAXD] = { 0 }, ost[MAXD], rcount = 1;
    for (int i = 0; i < nd; i++) {
        int red = (mask >> i) & 1u;
        kept[i] = red ? 1 : x->shape[i];
        if (red) rcount *= x->shape[i];
    }
    int64_t ocnt = prod(kept, 0, nd);
    if (numel(y) != ocnt)
        return node_err(d, n, NNM_ESHAPE, "output %s does not match input %s reduced over "
                        "mask 0x%x", shp(y).s, shp(x).s, (unsigned)mask);
    contig_strides(kept, nd, ost);
    for (int i = 0; i < nd; i++)
        if ((mask >> i) & 1u) ost[i] = 0;
    int is_max = n->op == NNM_OP_REDUCE_MAX;
    double *acc = NULL;
    float *yp = y->data;
    const float *xp = x->data;
    if (!is_max) {
        acc = calloc((size_t)(ocnt > 0 ? ocnt : 1), sizeof *acc);
        if (acc == NULL) return node_err(d, n, NNM_ENOMEM, "out of memory");
    } else {
        for (int64_t i = 0; i < ocnt; i++) yp[i] = -INFINITY;
    }
    iter it;
    iter_init(&it, x->shape, nd, ost, NULL, 0, 0);
    const int64_t m = it.inner, s = it.in_st[0];
    for (int64_t r = 0; r < it.rows; r++, iter_next(&it)) {
        const float *xr = xp + r * m;
        for (int64_t j = 0; j < m; j++) {
            int64_t o = it.off[0] + j * s;
            float v = xr[j];
            if (!is_max) acc[o] += v;
            else if (v > yp[o] || isnan(v)) yp[o] = v;
        }
    }
    if (!is_max) {
        for (int64_t i = 0; i < ocnt; i++)
            yp[i] = rcount > 0 ? (float)(acc[i] / (double)rcount) : NAN;
        free(acc);
    }
    return NNM_OK;
}

/* --- dispatch --------------------------------------------------------------------------- */

/* Minimum number of present data inputs per op (optional inputs beyond it may be NULL). */
static int min_inputs(nnm_op op)
{
    switch (op) {
    case NNM_OP_CONSTANT_OF_SHAPE: return 0;
    case NNM_OP_CONV: case NNM_OP_CONV_TRANSPOSE: case NNM_OP_GEMM: case NNM_OP_MATMUL:
    case NNM_OP_ADD: case NNM_OP_SUB: case NNM_OP_MUL: case NNM_OP_DIV: case NNM_OP_POW:
    case NNM_OP_GATHER:
        return 2;
    case NNM_OP_BATCHNORM: return 5;
    default: return 1;
    }
}

/* Checks every tensor handed in: sane rank and shape, buffer big enough. */
static nnm_err check_tensor(const nnm_node *n, const nnm_tensor *t, const char *what, int k,
                            nnm_diag *d)
{
    size_t esz = nnm_dtype_size(t->dtype);
    if (esz == 0) return node_err(d, n, NNM_EUNSUPPORTED, "%s %d has unknown dtype %d", what, k,
                                  (int)t->dtype);
    int64_t cnt = nnm_shape_numel(t->shape, t->ndim, esz);
    if (cnt < 0) return node_err(d, n, NNM_ESHAPE, "%s %d has an invalid shape", what, k);
    if (t->nbytes < (size_t)cnt * esz || (cnt > 0 && t->data == NULL))
        return node_err(d, n, NNM_EINVAL, "%s %d buffer holds %zu bytes; shape %s needs %zu",
                        what, k, t->nbytes, shp(t).s, (size_t)cnt * esz);
    return NNM_OK;
}

nnm_err nnm_ref_run(const nnm_node *n, const nnm_tensor *const *in, nnm_tensor *const *out,
                    nnm_diag *diag)
{
    if (n == NULL || (n->n_in > 0 && in == NULL) || n->n_out < 1 || out == NULL ||
        out[0] == NULL)
        return nnm_diag_set(diag, NNM_EINVAL, "reference kernel: node, inputs or output missing");
    if (n->op == NNM_OP_INVALID || n->op == NNM_OP_CONSTANT || n->op >= NNM_OP__COUNT)
        return node_err(diag, n, NNM_EINVAL, "this op is folded at import and is never run");
    int need = min_inputs(n->op);
    if (n->n_in < need)
        return node_err(diag, n, NNM_EINVAL, "needs %d inputs, has %d", need, n->n_in);
    for (int k = 0; k < n->n_in; k++) {
        if (in[k] == NULL) {
            if (k < need || n->op == NNM_OP_CONCAT || n->op == NNM_OP_MAX || n->op == NNM_OP_MIN)
                return node_err(diag, n, NNM_EINVAL, "input %d is missing", k);
            continue;
        }
        nnm_err rc = check_tensor(n, in[k], "input", k, diag);
        if (rc != NNM_OK) return rc;
    }
    for (int k = 0; k < n->n_out; k++) {
        if (out[k] == NULL) {
            if (n->op == NNM_OP_SPLIT) return node_err(diag, n, NNM_EINVAL, "output %d is missing", k);
            continue;
        }
        nnm_err rc = check_tensor(n, out[k], "output", k, diag);
        if (rc != NNM_OK) return rc;
    }
    const nnm_tensor *x = n->n_in > 0 ? in[0] : NULL;
    nnm_tensor *y = out[0];
    nnm_dtype xt = x != NULL ? x->dtype : NNM_DT_UNDEFINED;
    if (!dtype_ok(n, xt, y->dtype))
        return node_err(diag, n, NNM_EUNSUPPORTED, "the reference kernels do not support "
                        "%s with %s input and %s output", op_label(n), nnm_dtype_name(xt),
                        nnm_dtype_name(y->dtype));
    switch (n->op) {
    case NNM_OP_CONV: return k_conv(n, in, y, diag);
    case NNM_OP_CONV_TRANSPOSE: return k_conv_transpose(n, in, y, diag);
    case NNM_OP_GEMM: return k_gemm(n, in, y, diag);
    case NNM_OP_MATMUL: return k_matmul(n, in, y, diag);
    case NNM_OP_ADD: case NNM_OP_SUB: case NNM_OP_MUL: case NNM_OP_DIV: case NNM_OP_POW:
    case NNM_OP_MAX: case NNM_OP_MIN:
        return k_binary(n, in, n->n_in, y, diag);
    case NNM_OP_SQRT: case NNM_OP_EXP: case NNM_OP_LOG: case NNM_OP_ERF: case NNM_OP_RELU:
    case NNM_OP_SIGMOID: case NNM_OP_TANH: case NNM_OP_HARD_SWISH: case NNM_OP_LEAKY_RELU:
    case NNM_OP_CLIP: case NNM_OP_HARD_SIGMOID:
        return k_unary(n, x, y, diag);
    case NNM_OP_SOFTMAX: return k_softmax(n, x, y, diag);
    case NNM_OP_MAXPOOL:
        return k_pool(n, x, y, n->n_out > 1 ? out[1] : NULL, diag);
    case NNM_OP_AVGPOOL: return k_pool(n, x, y, NULL, diag);
    case NNM_OP_GLOBAL_AVGPOOL: case NNM_OP_GLOBAL_MAXPOOL: return k_global_pool(n, x, y, diag);
    case NNM_OP_BATCHNORM: return k_batchnorm(n, in, y, diag);
    case NNM_OP_FLATTEN: case NNM_OP_RESHAPE: case NNM_OP_SQUEEZE: case NNM_OP_UNSQUEEZE:
    case NNM_OP_IDENTITY:
        return k_copy(n, x, out, 1, diag);
    case NNM_OP_DROPOUT: return k_copy(n, x, out, n->n_out, diag);
    case NNM_OP_TRANSPOSE: return k_transpose(n, x, y, diag);
    case NNM_OP_CONCAT: return k_concat(n, in, n->n_in, y, diag);
    case NNM_OP_SPLIT: return k_split(n, x, out, n->n_out, diag);
    case NNM_OP_SLICE: return k_slice(n, x, y, diag);
    case NNM_OP_PAD: return k_pad(n, x, y, diag);
    case NNM_OP_GATHER: return k_gather(n, x, in[1], y, diag);
    case NNM_OP_SHAPE: return k_shape(n, x, y, diag);
    case NNM_OP_CONSTANT_OF_SHAPE: return k_const_of_shape(n, y, diag);
    case NNM_OP_CAST: return k_cast(n, x, y, diag);
    case NNM_OP_RESIZE: return k_resize(n, x, y, diag);
    case NNM_OP_REDUCE_MEAN: case NNM_OP_REDUCE_MAX: return k_reduce(n, x, y, diag);
    default:
        return node_err(diag, n, NNM_EUNSUPPORTED, "op %d has no reference kernel", (int)n->op);
    }
}

/* --- the backend vtable ----------------------------------------------------------------- */

static nnm_dtype value_dtype(const nnm_graph *g, const int *ids, int cnt, int k)
{
    if (k >= cnt || ids[k] < 0 || ids[k] >= g->n_values) return NNM_DT_UNDEFINED;
    return g->values[ids[k]].dtype;
}

static int ref_supports(const nnm_graph *g, const nnm_node *n)
{
    if (g == NULL || n == NULL) return 0;
    nnm_dtype xt = value_dtype(g, n->in, n->n_in, 0), yt = value_dtype(g, n->out, n->n_out, 0);
    if (n->op == NNM_OP_GATHER) {
        nnm_dtype it = value_dtype(g, n->in, n->n_in, 1);
        if (it != NNM_DT_I32 && it != NNM_DT_I64) return 0;
    }
    return dtype_ok(n, xt, yt);
}

static nnm_err ref_prepare(void **state, const nnm_graph *g, const nnm_node *n,
                           const nnm_kctx *ctx, nnm_diag *diag)
{
    (void)g; (void)n; (void)ctx; (void)diag;
    *state = NULL;
    return NNM_OK;
}

static nnm_err ref_run(void *state, const nnm_node *n, const nnm_tensor *const *in,
                       nnm_tensor *const *out, const nnm_kctx *ctx, nnm_diag *diag)
{
    (void)state; (void)ctx;
    return nnm_ref_run(n, in, out, diag);
}

static void ref_release(void *state) { (void)state; }

const nnm_backend nnm_backend_ref = {
    .name = "ref",
    .supports = ref_supports,
    .prepare = ref_prepare,
    .run = ref_run,
    .release = ref_release,
};
