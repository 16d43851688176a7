/* runtime/infer.c — shape inference and attribute normalization for the graph IR.
 *
 * ir__infer() walks the nodes in topological order. For each node it checks the input count
 * and dtypes, reads the parameter inputs that ONNX passes as tensors (Reshape's shape,
 * Slice's starts/ends/axes/steps, ...) into nnm_attrs and drops them from the node, resolves
 * auto_pad and negative axes, and sets dtype and shape of every output. A node whose inputs
 * are all constant (and every Shape / ConstantOfShape) is then folded with ir__fold_node, so
 * shape sub-graphs become constants before the Reshape that reads them is reached.
 *
 * Contract of one node (ir__infer_node): validate into a private copy of the attributes and
 * the output shapes, commit at the end; on error the node and the graph are unchanged. The
 * node's a.normalized is set on commit; a normalized node has its parameter inputs already
 * dropped and is re-inferred from its attributes, giving the same result (idempotent).
 *
 * Where runtime/ir.h is silent, this file decides (kernels may rely on it):
 *  - Error codes: NNM_ESHAPE for shapes/dtypes that do not agree, dims that would be <= 0 or
 *    overflow, axes out of range; NNM_EFORMAT for malformed attribute values (a zero step,
 *    a perm that is not a permutation, kernel/stride < 1, duplicate axes, a missing required
 *    input); NNM_EUNSUPPORTED for a parameter that is not constant, a non-float dtype on a
 *    float op, more than NNM_MAX_DIMS dims, optional outputs we do not compute.
 *  - Conv/ConvTranspose/pools: after normalization a.kernel is filled (from W for convs),
 *    a.auto_pad is NOTSET and a.pads holds the resolved pads; a.out_shape_attr is cleared
 *    (ConvTranspose output_shape is turned into pads; when the requested output is larger
 *    than the natural one, the extra goes into a.out_pad, which in ONNX also gets bias
 *    only). 1-D ops: kernel[0] = strides[0] = dilations[0] = 1, pads[0] = pads[2] = 0,
 *    out_pad[0] = 0. A Conv whose X is 3-D is treated as 1-D (a.spatial_1d set).
 *    ceil_mode applies to NOTSET and VALID, with the rule that the last window must start
 *    inside the input or the begin pad; auto_pad SAME ignores ceil_mode.
 *  - Reshape: a.ints keeps the requested shape (0 and -1 as given); the output shape is the
 *    resolved one.
 *  - Squeeze/Unsqueeze: a.ints = the normalized axes, ascending, non-negative (Squeeze with
 *    no axes: the axes of size 1 that were removed).
 *  - Split: a.ints = the explicit size of every output (also for an equal split).
 *  - Slice: a.starts/a.steps per dim as in ir.h. The raw lists are rewritten per dim
 *    (a.ints = 0..ndim-1, a.ints3 = starts, a.ints2 = clamped ends, where an end before
 *    index 0 of a negative step is stored as INT64_MIN) so re-inference reproduces them.
 *  - Pad: a.pads[2*ndim] (opset-18 axes expanded); a.ints is freed.
 *  - Clip: constant min/max inputs go to a.act_min/a.act_max (absent ones keep the -inf/+inf
 *    that import presets). Pad's constant_value goes to a.pad_value.
 *  - Resize: a.scales[d] as in ir.h; when sizes were given a.ints keeps them (so float
 *    rounding of out/in cannot change the shape on re-inference). roi is dropped (only
 *    tf_crop_and_resize would read it and it is not supported).
 *  - ReduceMean/ReduceMax: a.axes_mask is authoritative once normalized; a.ints is kept.
 *  - ConstantOfShape: a.ints = the shape, n_in = 0, a.to = output dtype (float32 default).
 *  - Max/Min are variadic: n_in >= 1 inputs broadcast together. Pow's exponent may have
 *    another dtype (the output has the base's dtype). Dropout's extra inputs (ratio,
 *    training_mode) are dropped; training_mode must be a constant false; the mask output is
 *    bool with X's shape.
 *  - Nodes that other passes build already normalized (a.normalized = 1 but without the
 *    lists above: layout.c's Reshape, slice.c's Slice) keep the output shape they were given
 *    when it is consistent: Reshape/Squeeze/Unsqueeze if it holds the input's elements, Slice
 *    if every index it reads is inside the input, Split taking sizes from its outputs.
 *  - MaxPool's Indices output and BatchNormalization's training outputs are unsupported.
 *  - FLOPs: Conv 2*N*M*OH*OW*(C/g)*kh*kw (+ N*M*OH*OW with bias), ConvTranspose
 *    2*N*C*H*W*(M/g)*kh*kw (+ bias), Gemm/MatMul 2*M*N*K (+ M*N for Gemm's C), elementwise
 *    numel(out) per binary step, unary numel, BatchNorm 2*numel, Softmax 5*numel, pools
 *    numel(out)*kh*kw, global pools and reductions numel(in), Resize numel(out); data
 *    movement 0.
 */
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"

typedef struct oshape {
    nnm_dtype dt;
    int ndim;
    int64_t s[NNM_MAX_DIMS];
} oshape;

/* The work area of one node: everything computed here, committed only on success. */
typedef struct job {
    nnm_graph *g;
    const nnm_node *n;
    nnm_attrs a;        /* deep copy of n->a; becomes n->a on commit */
    int *in;            /* the inputs that remain (a prefix of n->in) */
    int n_in;
    oshape *out;        /* n_out entries */
    int n_out;
    double flops;
    nnm_diag *diag;
} job;

#define SHAPE_BUF 128

/* --- small helpers ---------------------------------------------------------------------- */

static nnm_err fail(job *j, nnm_err code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static nnm_err fail(job *j, nnm_err code, const char *fmt, ...)
{
    char msg[NNM_DIAG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return nnm_diag_set(j->diag, code, "node '%s' (%s): %s", j->n->name, j->n->onnx_op, msg);
}

static const char *shp(char *buf, const int64_t *s, int nd)
{
    return nnm_shape_format(buf, SHAPE_BUF, s, nd);
}

static const char *vshp(char *buf, const nnm_value *v)
{
    return nnm_shape_format(buf, SHAPE_BUF, v->shape, v->ndim);
}

/* Input k, or NULL when absent (beyond n_in or -1). */
static const nnm_value *inv(const job *j, int k)
{
    if (k < 0 || k >= j->n_in || j->in[k] < 0) return NULL;
    return &j->g->values[j->in[k]];
}

static int is_float(nnm_dtype dt)
{
    return dt == NNM_DT_F32 || dt == NNM_DT_F16 || dt == NNM_DT_F64;
}

static int is_intlist(nnm_dtype dt)
{
    return dt == NNM_DT_I64 || dt == NNM_DT_I32;
}

static int64_t numel(const int64_t *s, int nd)
{
    return nnm_shape_numel(s, nd, 1);
}

static void set_out(job *j, int k, nnm_dtype dt, const int64_t *s, int nd)
{
    if (k >= j->n_out) return;
    j->out[k].dt = dt;
    j->out[k].ndim = nd;
    for (int d = 0; d < nd; d++) j->out[k].s[d] = s[d];
}

static void copy_out_from(job *j, int k, const nnm_value *v, nnm_dtype dt)
{
    set_out(j, k, dt, v->shape, v->ndim);
}

/* A node built already normalized by another pass (layout, slicing) may carry only the
 * fields kernels read, not the lists inference derives shapes from. For data-movement ops the
 * output shape it set is then kept, provided it holds exactly the input's elements.
 * Returns 1 (output set), 0 (no known output: infer as usual) or -1 (element count differs). */
static int keep_known_output(job *j, const nnm_value *x)
{
    int v = j->n_out > 0 ? j->n->out[0] : -1;
    if (!j->a.normalized || v < 0) return 0;
    const nnm_value *o = &j->g->values[v];
    if (o->ndim < 0 || o->ndim > NNM_MAX_DIMS) return 0;
    int64_t a = numel(o->shape, o->ndim), b = numel(x->shape, x->ndim);
    if (a < 0 || a != b) return -1;
    set_out(j, 0, x->dtype, o->shape, o->ndim);
    return 1;
}

/* Checks counts: the first min_in inputs must be present, at most max_in inputs. */
static nnm_err arity(job *j, int min_in, int max_in, int min_out, int max_out)
{
    if (j->n_in < min_in || j->n_in > max_in) {
        if (min_in == max_in)
            return fail(j, NNM_EFORMAT, "expects %d input%s, has %d", min_in,
                        min_in == 1 ? "" : "s", j->n_in);
        return fail(j, NNM_EFORMAT, "expects %d to %d inputs, has %d", min_in, max_in, j->n_in);
    }
    for (int k = 0; k < min_in; k++)
        if (j->in[k] < 0) return fail(j, NNM_EFORMAT, "required input %d is missing", k);
    if (j->n_out < min_out || j->n_out > max_out)
        return fail(j, NNM_EFORMAT, "expects %d to %d outputs, has %d", min_out, max_out,
                    j->n_out);
    if (j->n_out > 0 && j->n->out[0] < 0)
        return fail(j, NNM_EFORMAT, "its first output is missing");
    return NNM_OK;
}

static nnm_err need_float(job *j, const nnm_value *v)
{
    if (!is_float(v->dtype))
        return fail(j, NNM_EUNSUPPORTED, "input '%s' is %s; only floating-point types are "
                    "supported here", v->name, nnm_dtype_name(v->dtype));
    return NNM_OK;
}

static nnm_err same_dtype(job *j, const nnm_value *ref, const nnm_value *v)
{
    if (v != NULL && v->dtype != ref->dtype)
        return fail(j, NNM_ESHAPE, "input '%s' is %s but input '%s' is %s", v->name,
                    nnm_dtype_name(v->dtype), ref->name, nnm_dtype_name(ref->dtype));
    return NNM_OK;
}

/* Normalizes axis into [0, rank + extra); negative values count from rank. */
static nnm_err norm_axis(job *j, const char *what, int64_t axis, int rank, int extra, int *out)
{
    if (axis < -(int64_t)rank || axis >= (int64_t)rank + extra)
        return fail(j, NNM_ESHAPE, "%s %lld is out of range for a %d-D tensor", what,
                    (long long)axis, rank);
    *out = (int)(axis < 0 ? axis + rank : axis);
    return NNM_OK;
}

static float half_to_float(uint16_t h)
{
    int e = (h >> 10) & 31, m = h & 1023;
    float v;
    if (e == 0) v = ldexpf((float)m, -24);
    else if (e == 31) v = m ? NAN : INFINITY;
    else v = ldexpf((float)(m | 1024), e - 25);
    return (h & 0x8000) ? -v : v;
}

/* Element i of a constant buffer as double (numeric dtypes only). */
static double elem_double(const void *data, nnm_dtype dt, int64_t i)
{
    const char *p = (const char *)data + (size_t)i * nnm_dtype_size(dt);
    switch (dt) {
    case NNM_DT_F32: { float x; memcpy(&x, p, 4); return x; }
    case NNM_DT_F64: { double x; memcpy(&x, p, 8); return x; }
    case NNM_DT_F16: { uint16_t x; memcpy(&x, p, 2); return half_to_float(x); }
    case NNM_DT_I8: return (double)*(const int8_t *)p;
    case NNM_DT_U8: case NNM_DT_BOOL: return (double)*(const uint8_t *)p;
    case NNM_DT_I32: { int32_t x; memcpy(&x, p, 4); return x; }
    case NNM_DT_I64: { int64_t x; memcpy(&x, p, 8); return (double)x; }
    default: return 0.0;
    }
}

static int64_t elem_int(const void *data, nnm_dtype dt, int64_t i)
{
    if (dt == NNM_DT_I32) {
        int32_t x;
        memcpy(&x, (const char *)data + (size_t)i * 4, 4);
        return x;
    }
    int64_t x;
    memcpy(&x, (const char *)data + (size_t)i * 8, 8);
    return x;
}

/* Checks that parameter input k is a constant of at most 1 dimension whose bytes cover its
 * shape, and returns its element count. */
static nnm_err param_check(job *j, int k, const char *what, const nnm_value **out,
                           int64_t *count)
{
    const nnm_value *v = inv(j, k);
    *out = v;
    *count = 0;
    if (v == NULL) return NNM_OK;
    if (v->data == NULL)
        return fail(j, NNM_EUNSUPPORTED, "%s is computed at run time; only static shapes are "
                    "supported", what);
    if (v->ndim > 1)
        return fail(j, NNM_ESHAPE, "%s '%s' must be 1-D, has shape %s", what, v->name,
                    vshp((char[SHAPE_BUF]){0}, v));
    size_t es = nnm_dtype_size(v->dtype);
    int64_t c = nnm_shape_numel(v->shape, v->ndim, es);
    if (c < 0 || (uint64_t)c * es > v->nbytes)
        return fail(j, NNM_EFORMAT, "%s '%s' holds fewer bytes than its shape needs", what,
                    v->name);
    if (c > (1 << 24))
        return fail(j, NNM_ERANGE, "%s '%s' has %lld elements; too many", what, v->name,
                    (long long)c);
    *count = c;
    return NNM_OK;
}

/* Reads constant integer input k into a malloc'd list (NULL when empty or absent). */
static nnm_err param_ints(job *j, int k, const char *what, int64_t **out, int *count)
{
    const nnm_value *v;
    int64_t c;
    *out = NULL;
    *count = 0;
    nnm_err rc = param_check(j, k, what, &v, &c);
    if (rc != NNM_OK || v == NULL || c == 0) return rc;
    if (!is_intlist(v->dtype))
        return fail(j, NNM_ESHAPE, "%s '%s' must be int64, is %s", what, v->name,
                    nnm_dtype_name(v->dtype));
    int64_t *p = malloc((size_t)c * sizeof *p);
    if (p == NULL) return fail(j, NNM_ENOMEM, "out of memory reading %s", what);
    for (int64_t i = 0; i < c; i++) p[i] = elem_int(v->data, v->dtype, i);
    *out = p;
    *count = (int)c;
    return NNM_OK;
}

/* Reads constant scalar input k (a 1-element tensor) as double; *present = 0 when the input
 * is absent or empty. */
static nnm_err param_scalar(job *j, int k, const char *what, double *val, int *present)
{
    const nnm_value *v;
    int64_t c;
    *present = 0;
    nnm_err rc = param_check(j, k, what, &v, &c);
    if (rc != NNM_OK || v == NULL || c == 0) return rc;
    if (c != 1)
        return fail(j, NNM_ESHAPE, "%s '%s' must hold one value, holds %lld", what, v->name,
                    (long long)c);
    if (nnm_dtype_size(v->dtype) == 0)
        return fail(j, NNM_EUNSUPPORTED, "%s '%s' has an unknown dtype", what, v->name);
    *val = elem_double(v->data, v->dtype, 0);
    *present = 1;
    return NNM_OK;
}

static void replace_ints(int64_t **list, int *n, int64_t *p, int count)
{
    free(*list);
    *list = p;
    *n = count;
}

/* --- convolutions and pools --------------------------------------------------------------- */

typedef struct geo { int64_t n, c, h, w; } geo;

/* Reads N, C, H, W of X according to a.layout and a.spatial_1d. */
static nnm_err spatial_in(job *j, const nnm_value *x, geo *o)
{
    char b[SHAPE_BUF];
    if (x->ndim == 3 && !j->a.spatial_1d) j->a.spatial_1d = 1;
    if (x->ndim > 4)
        return fail(j, NNM_EUNSUPPORTED, "input '%s' has shape %s; only 1-D and 2-D spatial "
                    "inputs are supported", x->name, vshp(b, x));
    int want = j->a.spatial_1d ? 3 : 4;
    if (x->ndim != want)
        return fail(j, NNM_ESHAPE, "input '%s' must be %d-D, has shape %s", x->name, want,
                    vshp(b, x));
    int nhwc = j->a.layout == NNM_IR_NHWC;
    o->n = x->shape[0];
    if (j->a.spatial_1d) {
        o->h = 1;
        o->c = nhwc ? x->shape[2] : x->shape[1];
        o->w = nhwc ? x->shape[1] : x->shape[2];
        j->a.kernel[0] = 1;
        j->a.strides[0] = j->a.dilations[0] = 1;
        j->a.pads[0] = j->a.pads[2] = 0;
        j->a.out_pad[0] = 0;
        j->a.out_shape_attr[0] = 0;
    } else {
        o->c = nhwc ? x->shape[3] : x->shape[1];
        o->h = nhwc ? x->shape[1] : x->shape[2];
        o->w = nhwc ? x->shape[2] : x->shape[3];
    }
    return NNM_OK;
}

static void spatial_out(job *j, int k, nnm_dtype dt, int64_t n, int64_t c, int64_t h,
                        int64_t w)
{
    int64_t s[4];
    int nhwc = j->a.layout == NNM_IR_NHWC;
    if (j->a.spatial_1d) {
        s[0] = n; s[1] = nhwc ? w : c; s[2] = nhwc ? c : w;
        set_out(j, k, dt, s, 3);
    } else {
        s[0] = n;
        if (nhwc) { s[1] = h; s[2] = w; s[3] = c; }
        else { s[1] = c; s[2] = h; s[3] = w; }
        set_out(j, k, dt, s, 4);
    }
}

/* One spatial axis of a Conv or pool: resolves auto_pad into pb and pe and computes the
 * output size (>= 1, or an error). */
static nnm_err window(job *j, const char *axis, int64_t in, int k, int s, int d, int *pb,
                      int *pe, int pool, int64_t *out)
{
    if (k < 1 || s < 1 || d < 1)
        return fail(j, NNM_EFORMAT, "%s: kernel %d, stride %d and dilation %d must all be "
                    ">= 1", axis, k, s, d);
    int64_t ek = (int64_t)(k - 1) * d + 1;
    int ap = j->a.auto_pad;
    if (ap == NNM_AUTOPAD_SAME_UPPER || ap == NNM_AUTOPAD_SAME_LOWER) {
        int64_t o = in / s + (in % s != 0);
        if (o < 1)
            return fail(j, NNM_ESHAPE, "output %s would be %lld (input %s is %lld)", axis,
                        (long long)o, axis, (long long)in);
        int64_t total = (o - 1) * s + ek - in;
        if (total < 0) total = 0;
        if (total > INT_MAX)
            return fail(j, NNM_ERANGE, "%s: padding of %lld is too large", axis,
                        (long long)total);
        int small = (int)(total / 2), big = (int)(total - total / 2);
        *pb = ap == NNM_AUTOPAD_SAME_UPPER ? small : big;
        *pe = ap == NNM_AUTOPAD_SAME_UPPER ? big : small;
        *out = o;
        return NNM_OK;
    }
    if (ap == NNM_AUTOPAD_VALID) *pb = *pe = 0;
    else if (ap != NNM_AUTOPAD_NOTSET)
        return fail(j, NNM_EFORMAT, "unknown auto_pad value %d", ap);
    if (*pb < 0 || *pe < 0)
        return fail(j, NNM_EFORMAT, "%s: pads %d and %d must not be negative", axis, *pb, *pe);
    int64_t num = in + *pb + *pe - ek;
    if (num < 0)
        return fail(j, NNM_ESHAPE, "output %s would be <= 0: input %s %lld plus pads %d+%d is "
                    "smaller than the kernel extent %lld", axis, axis, (long long)in, *pb, *pe,
                    (long long)ek);
    int64_t o = num / s + 1;
    if (pool && j->a.ceil_mode) {
        o = (num + s - 1) / s + 1;
        if ((o - 1) * s >= in + *pb) o--;   /* the last window must start inside */
    }
    *out = o;
    return NNM_OK;
}

/* Fills a.kernel from the weight's spatial dims (or checks it against them). */
static nnm_err conv_kernel(job *j, const nnm_value *w, int64_t *kh, int64_t *kw)
{
    char b[SHAPE_BUF];
    int one_d = j->a.spatial_1d;
    if (w->ndim != (one_d ? 3 : 4))
        return fail(j, NNM_ESHAPE, "weight '%s' must be %d-D, has shape %s", w->name,
                    one_d ? 3 : 4, vshp(b, w));
    *kh = one_d ? 1 : w->shape[2];
    *kw = w->shape[one_d ? 2 : 3];
    if (*kh < 1 || *kw < 1 || *kh > INT_MAX || *kw > INT_MAX)
        return fail(j, NNM_ESHAPE, "weight '%s' has kernel dims %lld x %lld", w->name,
                    (long long)*kh, (long long)*kw);
    if (j->a.kernel[0] == 0) j->a.kernel[0] = (int)*kh;
    if (j->a.kernel[1] == 0) j->a.kernel[1] = (int)*kw;
    if (j->a.kernel[0] != *kh || j->a.kernel[1] != *kw)
        return fail(j, NNM_ESHAPE, "kernel_shape %d x %d does not match weight '%s' %s",
                    j->a.kernel[0], j->a.kernel[1], w->name, vshp(b, w));
    return NNM_OK;
}

static nnm_err check_bias(job *j, const nnm_value *x, const nnm_value *b, int64_t m)
{
    char s[SHAPE_BUF];
    if (b == NULL) return NNM_OK;
    nnm_err rc = same_dtype(j, x, b);
    if (rc != NNM_OK) return rc;
    if (b->ndim != 1 || b->shape[0] != m)
        return fail(j, NNM_ESHAPE, "bias '%s' has shape %s, expected [%lld]", b->name,
                    vshp(s, b), (long long)m);
    return NNM_OK;
}

static nnm_err infer_conv(job *j)
{
    nnm_err rc = arity(j, 2, 3, 1, 1);
    if (rc != NNM_OK) return rc;
    const nnm_value *x = inv(j, 0), *w = inv(j, 1), *b = inv(j, 2);
    geo g;
    int64_t kh, kw, oh, ow;
    if ((rc = need_float(j, x)) != NNM_OK || (rc = same_dtype(j, x, w)) != NNM_OK) return rc;
    if ((rc = spatial_in(j, x, &g)) != NNM_OK) return rc;
    if ((rc = conv_kernel(j, w, &kh, &kw)) != NNM_OK) return rc;
    int grp = j->a.group;
    int64_t m = w->shape[0], cg = w->shape[1];
    if (grp < 1) return fail(j, NNM_EFORMAT, "group=%d must be >= 1", grp);
    if (g.c % grp != 0)
        return fail(j, NNM_ESHAPE, "group=%d does not divide %lld input channels", grp,
                    (long long)g.c);
    if (cg != g.c / grp)
        return fail(j, NNM_ESHAPE, "weight '%s' has %lld input channels per group; with "
                    "group=%d and %lld input channels it needs %lld", w->name, (long long)cg,
                    grp, (long long)g.c, (long long)(g.c / grp));
    if (m < 1 || m % grp != 0)
        return fail(j, NNM_ESHAPE, "group=%d does not divide %lld output channels", grp,
                    (long long)m);
    if ((rc = check_bias(j, x, b, m)) != NNM_OK) return rc;
    if ((rc = window(j, "height", g.h, j->a.kernel[0], j->a.strides[0], j->a.dilations[0],
                     &j->a.pads[0], &j->a.pads[2], 0, &oh)) != NNM_OK) return rc;
    if ((rc = window(j, "width", g.w, j->a.kernel[1], j->a.strides[1], j->a.dilations[1],
                     &j->a.pads[1], &j->a.pads[3], 0, &ow)) != NNM_OK) return rc;
    j->a.auto_pad = NNM_AUTOPAD_NOTSET;
    spatial_out(j, 0, x->dtype, g.n, m, oh, ow);
    double outs = (double)g.n * (double)m * (double)oh * (double)ow;
    j->flops = 2.0 * outs * (double)cg * (double)kh * (double)kw + (b ? outs : 0.0);
    return NNM_OK;
}

/* One spatial axis of a ConvTranspose. */
static nnm_err ct_window(job *j, const char *axis, int64_t in, int idx, int *pb, int *pe,
                         int64_t *out)
{
    int k = j->a.kernel[idx], s = j->a.strides[idx], d = j->a.dilations[idx];
    int *op = &j->a.out_pad[idx];
    int64_t target = j->a.out_shape_attr[idx];
    int ap = j->a.auto_pad;
    if (k < 1 || s < 1 || d < 1)
        return fail(j, NNM_EFORMAT, "%s: kernel %d, stride %d and dilation %d must all be "
                    ">= 1", axis, k, s, d);
    if (*op < 0 || (*op >= s && *op >= d))
        return fail(j, NNM_EFORMAT, "%s: output_padding %d must be >= 0 and smaller than the "
                    "stride %d or the dilation %d", axis, *op, s, d);
    if (in < 1) return fail(j, NNM_ESHAPE, "input %s is %lld", axis, (long long)in);
    int64_t ek = (int64_t)(k - 1) * d + 1, full;
    if (__builtin_mul_overflow((int64_t)s, in - 1, &full) ||
        __builtin_add_overflow(full, (int64_t)*op + ek, &full))
        return fail(j, NNM_ESHAPE, "output %s overflows", axis);
    if (target < 0)
        return fail(j, NNM_EFORMAT, "output_shape %lld is negative", (long long)target);
    if (target == 0 && (ap == NNM_AUTOPAD_SAME_UPPER || ap == NNM_AUTOPAD_SAME_LOWER)) {
        if (__builtin_mul_overflow(in, (int64_t)s, &target))
            return fail(j, NNM_ESHAPE, "output %s overflows", axis);
    }
    if (target > 0) {
        int64_t total = full - target;
        if (total < 0) {
            /* The requested output is larger than the natural one: the extra rows get bias
             * only, which is what output padding does. */
            if (-total + *op > INT_MAX)
                return fail(j, NNM_ERANGE, "output_shape %lld is too large", (long long)target);
            *op += (int)-total;
            total = 0;
        }
        if (total > INT_MAX)
            return fail(j, NNM_ERANGE, "%s: padding of %lld is too large", axis,
                        (long long)total);
        int small = (int)(total / 2), big = (int)(total - total / 2);
        if (ap == NNM_AUTOPAD_SAME_UPPER) { *pb = small; *pe = big; }
        else { *pb = big; *pe = small; }
    } else if (ap == NNM_AUTOPAD_VALID) {
        *pb = *pe = 0;
    } else if (ap != NNM_AUTOPAD_NOTSET) {
        return fail(j, NNM_EFORMAT, "unknown auto_pad value %d", ap);
    }
    if (*pb < 0 || *pe < 0)
        return fail(j, NNM_EFORMAT, "%s: pads %d and %d must not be negative", axis, *pb, *pe);
    *out = (int64_t)s * (in - 1) + *op + ek - *pb - *pe;
    if (*out < 1)
        return fail(j, NNM_ESHAPE, "output %s would be %lld <= 0", axis, (long long)*out);
    j->a.out_shape_attr[idx] = 0;
    return NNM_OK;
}

static nnm_err infer_conv_transpose(job *j)
{
    nnm_err rc = arity(j, 2, 3, 1, 1);
    if (rc != NNM_OK) return rc;
    const nnm_value *x = inv(j, 0), *w = inv(j, 1), *b = inv(j, 2);
    geo g;
    int64_t kh, kw, oh, ow, m;
    if ((rc = need_float(j, x)) != NNM_OK || (rc = same_dtype(j, x, w)) != NNM_OK) return rc;
    if ((rc = spatial_in(j, x, &g)) != NNM_OK) return rc;
    if ((rc = conv_kernel(j, w, &kh, &kw)) != NNM_OK) return rc;
    int grp = j->a.group;
    if (grp < 1) return fail(j, NNM_EFORMAT, "group=%d must be >= 1", grp);
    if (w->shape[0] != g.c)
        return fail(j, NNM_ESHAPE, "weight '%s' is for %lld input channels, input '%s' has "
                    "%lld", w->name, (long long)w->shape[0], x->name, (long long)g.c);
    if (g.c % grp != 0)
        return fail(j, NNM_ESHAPE, "group=%d does not divide %lld input channels", grp,
                    (long long)g.c);
    if (w->shape[1] < 1 || __builtin_mul_overflow(w->shape[1], (int64_t)grp, &m))
        return fail(j, NNM_ESHAPE, "weight '%s' gives an invalid number of output channels",
                    w->name);
    if ((rc = check_bias(j, x, b, m)) != NNM_OK) return rc;
    if ((rc = ct_window(j, "height", g.h, 0, &j->a.pads[0], &j->a.pads[2], &oh)) != NNM_OK)
        return rc;
    if ((rc = ct_window(j, "width", g.w, 1, &j->a.pads[1], &j->a.pads[3], &ow)) != NNM_OK)
        return rc;
    j->a.auto_pad = NNM_AUTOPAD_NOTSET;
    spatial_out(j, 0, x->dtype, g.n, m, oh, ow);
    j->flops = 2.0 * (double)g.n * (double)g.c * (double)g.h * (double)g.w *
               (double)w->shape[1] * (double)kh * (double)kw;
    if (b) j->flops += (double)g.n * (double)m * (double)oh * (double)ow;
    return NNM_OK;
}

static nnm_err infer_pool(job *j)
{
    nnm_err rc = arity(j, 1, 1, 1, 2);
    if (rc != NNM_OK) return rc;
    if (j->n_out == 2 && j->n->out[1] >= 0)
        return fail(j, NNM_EUNSUPPORTED, "the Indices output is not supported");
    const nnm_value *x = inv(j, 0);
    geo g;
    int64_t oh, ow;
    if ((rc = need_float(j, x)) != NNM_OK) return rc;
    if ((rc = spatial_in(j, x, &g)) != NNM_OK) return rc;
    if ((rc = window(j, "height", g.h, j->a.kernel[0], j->a.strides[0], j->a.dilations[0],
                     &j->a.pads[0], &j->a.pads[2], 1, &oh)) != NNM_OK) return rc;
    if ((rc = window(j, "width", g.w, j->a.kernel[1], j->a.strides[1], j->a.dilations[1],
                     &j->a.pads[1], &j->a.pads[3], 1, &ow)) != NNM_OK) return rc;
    j->a.auto_pad = NNM_AUTOPAD_NOTSET;
    spatial_out(j, 0, x->dtype, g.n, g.c, oh, ow);
    j->flops = (double)g.n * (double)g.c * (double)oh * (double)ow *
               (double)j->a.kernel[0] * (double)j->a.kernel[1];
    return NNM_OK;
}

static nnm_err infer_global_pool(job *j)
{
    char b[SHAPE_BUF];
    nnm_err rc = arity(j, 1, 1, 1, 1);
    if (rc != NNM_OK) return rc;
    const nnm_value *x = inv(j, 0);
    if ((rc = need_float(j, x)) != NNM_OK) return rc;
    if (x->ndim < 3)
        return fail(j, NNM_ESHAPE, "input '%s' must have at least 3 dims, has shape %s",
                    x->name, vshp(b, x));
    int64_t s[NNM_MAX_DIMS];
    int nhwc = j->a.layout == NNM_IR_NHWC;
    for (int d = 0; d < x->ndim; d++) s[d] = 1;
    s[0] = x->shape[0];
    if (nhwc) s[x->ndim - 1] = x->shape[x->ndim - 1];
    else s[1] = x->shape[1];
    set_out(j, 0, x->dtype, s, x->ndim);
    j->flops = (double)numel(x->shape, x->ndim);
    return NNM_OK;
}

/* --- linear algebra ------------------------------------------------------------------------ */

/* Numpy broadcast of o (in/out) with b; -1 if incompatible or beyond NNM_MAX_DIMS. */
static int bcast(int64_t *o, int *on, const int64_t *b, int bn)
{
    int rn = *on > bn ? *on : bn;
    int64_t r[NNM_MAX_DIMS];
    if (rn > NNM_MAX_DIMS) return -1;
    for (int i = 0; i < rn; i++) {
        int ia = i - (rn - *on), ib = i - (rn - bn);
        int64_t da = ia >= 0 ? o[ia] : 1, db = ib >= 0 ? b[ib] : 1;
        if (da == db || db == 1) r[i] = da;
        else if (da == 1) r[i] = db;
        else return -1;
    }
    memcpy(o, r, (size_t)rn * sizeof *r);
    *on = rn;
    return 0;
}

static nnm_err infer_gemm(job *j)
{
    char b1[SHAPE_BUF], b2[SHAPE_BUF];
    nnm_err rc = arity(j, 2, 3, 1, 1);
    if (rc != NNM_OK) return rc;
    const nnm_value *a = inv(j, 0), *b = inv(j, 1), *c = inv(j, 2);
    if ((rc = need_float(j, a)) != NNM_OK || (rc = same_dtype(j, a, b)) != NNM_OK ||
        (rc = same_dtype(j, a, c)) != NNM_OK) return rc;
    if (a->ndim != 2 || b->ndim != 2)
        return fail(j, NNM_ESHAPE, "inputs '%s' %s and '%s' %s must be 2-D", a->name,
                    vshp(b1, a), b->name, vshp(b2, b));
    int64_t m = j->a.trans_a ? a->shape[1] : a->shape[0];
    int64_t k = j->a.trans_a ? a->shape[0] : a->shape[1];
    int64_t kb = j->a.trans_b ? b->shape[1] : b->shape[0];
    int64_t n = j->a.trans_b ? b->shape[0] : b->shape[1];
    if (k != kb)
        return fail(j, NNM_ESHAPE, "inner dimensions differ: '%s' %s (transA=%d) and '%s' %s "
                    "(transB=%d)", a->name, vshp(b1, a), j->a.trans_a, b->name, vshp(b2, b),
                    j->a.trans_b);
    int64_t o[2] = { m, n };
    if (c != NULL) {
        int ok = c->ndim <= 2;
        if (ok && c->ndim == 2) ok = (c->shape[0] == 1 || c->shape[0] == m) &&
                                     (c->shape[1] == 1 || c->shape[1] == n);
        if (ok && c->ndim == 1) ok = c->shape[0] == 1 || c->shape[0] == n;
        if (!ok)
            return fail(j, NNM_ESHAPE, "input '%s' %s does not broadcast to the output %s",
                        c->name, vshp(b1, c), shp(b2, o, 2));
    }
    set_out(j, 0, a->dtype, o, 2);
    j->flops = 2.0 * (double)m * (double)n * (double)k + (c ? (double)m * (double)n : 0.0);
    return NNM_OK;
}

static nnm_err infer_matmul(job *j)
{
    char b1[SHAPE_BUF], b2[SHAPE_BUF];
    nnm_err rc = arity(j, 2, 2, 1, 1);
    if (rc != NNM_OK) return rc;
    const nnm_value *a = inv(j, 0), *b = inv(j, 1);
    if ((rc = same_dtype(j, a, b)) != NNM_OK) return rc;
    if (a->ndim < 1 || b->ndim < 1)
        return fail(j, NNM_ESHAPE, "inputs '%s' %s and '%s' %s must have at least 1 dim",
                    a->name, vshp(b1, a), b->name, vshp(b2, b));
    int64_t m = a->ndim == 1 ? 1 : a->shape[a->ndim - 2];
    int64_t k = a->shape[a->ndim - 1];
    int64_t kb = b->ndim == 1 ? b->shape[0] : b->shape[b->ndim - 2];
    int64_t n = b->ndim == 1 ? 1 : b->shape[b->ndim - 1];
    if (k != kb)
        return fail(j, NNM_ESHAPE, "inner dimensions differ: '%s' %s and '%s' %s", a->name,
                    vshp(b1, a), b->name, vshp(b2, b));
    int64_t o[NNM_MAX_DIMS + 2];
    int on = a->ndim > 2 ? a->ndim - 2 : 0;
    memcpy(o, a->shape, (size_t)on * sizeof *o);
    if (bcast(o, &on, b->shape, b->ndim > 2 ? b->ndim - 2 : 0) != 0)
        return fail(j, NNM_ESHAPE, "batch dimensions of '%s' %s and '%s' %s do not broadcast",
                    a->name, vshp(b1, a), b->name, vshp(b2, b));
    double batch = 1.0;
    for (int d = 0; d < on; d++) batch *= (double)o[d];
    if (a->ndim > 1) o[on++] = m;
    if (b->ndim > 1) o[on++] = n;
    if (on > NNM_MAX_DIMS)
        return fail(j, NNM_EUNSUPPORTED, "the output would have more than %d dims",
                    NNM_MAX_DIMS);
    set_out(j, 0, a->dtype, o, on);
    j->flops = 2.0 * batch * (double)m * (double)n * (double)k;
    return NNM_OK;
}

/* --- elementwise -------------------------------------------------------------------------- */

static nnm_err infer_binary(job *j)
{
    char b1[SHAPE_BUF], b2[SHAPE_BUF];
    int variadic = j->n->op == NNM_OP_MAX || j->n->op == NNM_OP_MIN;
    nnm_err rc = arity(j, variadic ? 1 : 2, variadic ? INT_MAX : 2, 1, 1);
    if (rc != NNM_OK) return rc;
    const nnm_value *a = inv(j, 0);
    int64_t o[NNM_MAX_DIMS];
    int on = a->ndim;
    memcpy(o, a->shape, (size_t)on * sizeof *o);
    for (int k = 1; k < j->n_in; k++) {
        const nnm_value *b = inv(j, k);
        if (b == NULL) return fail(j, NNM_EFORMAT, "input %d is missing", k);
        if (j->n->op != NNM_OP_POW && (rc = same_dtype(j, a, b)) != NNM_OK) return rc;
        if (bcast(o, &on, b->shape, b->ndim) != 0)
            return fail(j, NNM_ESHAPE, "input '%s' %s does not broadcast with %s", b->name,
                        vshp(b2, b), shp(b1, o, on));
    }
    set_out(j, 0, a->dtype, o, on);
    int64_t ne = numel(o, on);
    j->flops = (double)(ne < 0 ? 0 : ne) * (double)(j->n_in > 1 ? j->n_in - 1 : 1);
    return NNM_OK;
}

static nnm_err infer_unary(job *j)
{
    nnm_op op = j->n->op;
    nnm_err rc = arity(j, 1, op == NNM_OP_CLIP ? 3 : 1, 1, 1);
    if (rc != NNM_OK) return rc;
    const nnm_value *x = inv(j, 0);
    if (op != NNM_OP_RELU && op != NNM_OP_CLIP && (rc = need_float(j, x)) != NNM_OK) return rc;
    if (op == NNM_OP_CLIP) {
        if (!j->a.normalized) {
            double v;
            int present;
            if ((rc = param_scalar(j, 1, "min", &v, &present)) != NNM_OK) return rc;
            if (present) j->a.act_min = (float)v;
            if ((rc = param_scalar(j, 2, "max", &v, &present)) != NNM_OK) return rc;
            if (present) j->a.act_max = (float)v;
        }
        j->n_in = 1;
    }
    copy_out_from(j, 0, x, x->dtype);
    j->flops = (double)numel(x->shape, x->ndim);
    return NNM_OK;
}

static nnm_err infer_softmax(job *j)
{
    nnm_err rc = arity(j, 1, 1, 1, 1);
    if (rc != NNM_OK) return rc;
    const nnm_value *x = inv(j, 0);
    if ((rc = need_float(j, x)) != NNM_OK) return rc;
    if (x->ndim < 1) return fail(j, NNM_ESHAPE, "input '%s' is a scalar", x->name);
    if ((rc = norm_axis(j, "axis", j->a.axis, x->ndim, 0, &j->a.axis)) != NNM_OK) return rc;
    copy_out_from(j, 0, x, x->dtype);
    j->flops = 5.0 * (double)numel(x->shape, x->ndim);
    return NNM_OK;
}

static nnm_err infer_batchnorm(job *j)
{
    char b[SHAPE_BUF];
    nnm_err rc = arity(j, 5, 5, 1, 5);
    if (rc != NNM_OK) return rc;
    for (int k = 1; k < j->n_out; k++)
        if (j->n->out[k] >= 0)
            return fail(j, NNM_EUNSUPPORTED, "training-mode outputs are not supported");
    const nnm_value *x = inv(j, 0);
    if ((rc = need_float(j, x)) != NNM_OK) return rc;
    if (x->ndim < 2)
        return fail(j, NNM_ESHAPE, "input '%s' must have at least 2 dims, has shape %s",
                    x->name, vshp(b, x));
    int64_t c = j->a.layout == NNM_IR_NHWC ? x->shape[x->ndim - 1] : x->shape[1];
    for (int k = 1; k < 5; k++) {
        const nnm_value *p = inv(j, k);
        if ((rc = same_dtype(j, x, p)) != NNM_OK) return rc;
        if (p->ndim != 1 || p->shape[0] != c)
            return fail(j, NNM_ESHAPE, "input '%s' has shape %s, expected [%lld] (one value "
                        "per channel)", p->name, vshp(b, p), (long long)c);
    }
    copy_out_from(j, 0, x, x->dtype);
    j->flops = 2.0 * (double)numel(x->shape, x->ndim);
    return NNM_OK;
}

/* --- shape manipulation ------------------------------------------------------------------ */

static nnm_err infer_flatten(job *j)
{
    nnm_err rc = arity(j, 1, 1, 1, 1);
    if (rc != NNM_OK) return rc;
    const nnm_value *x = inv(j, 0);
    if ((rc = norm_axis(j, "axis", j->a.axis, x->ndim, 1, &j->a.axis)) != NNM_OK) return rc;
    int64_t o[2] = { numel(x->shape, j->a.axis),
                     numel(x->shape + j->a.axis, x->ndim - j->a.axis) };
    set_out(j, 0, x->dtype, o, 2);
    return NNM_OK;
}

static nnm_err infer_reshape(job *j)
{
    char b1[SHAPE_BUF], b2[SHAPE_BUF];
    nnm_err rc = arity(j, 1, 2, 1, 1);
    if (rc != NNM_OK) return rc;
    const nnm_value *x = inv(j, 0);
    if (!j->a.normalized && j->n_in == 2) {
        int64_t *p;
        int c;
        if (inv(j, 1) == NULL) return fail(j, NNM_EFORMAT, "the shape input is missing");
        if ((rc = param_ints(j, 1, "shape", &p, &c)) != NNM_OK) return rc;
        replace_ints(&j->a.ints, &j->a.n_ints, p, c);
    }
    j->n_in = 1;
    if (j->a.normalized && j->a.n_ints == 0 && x->ndim != 0) {
        int k = keep_known_output(j, x);
        if (k > 0) return NNM_OK;
        if (k < 0)
            return fail(j, NNM_ESHAPE, "output does not hold the %lld elements of '%s' %s",
                        (long long)numel(x->shape, x->ndim), x->name, vshp(b2, x));
    }
    const int64_t *want = j->a.ints;
    int nd = j->a.n_ints;
    if (nd > NNM_MAX_DIMS)
        return fail(j, NNM_EUNSUPPORTED, "target shape has %d dims; at most %d are supported",
                    nd, NNM_MAX_DIMS);
    int64_t o[NNM_MAX_DIMS], known = 1, in_n = numel(x->shape, x->ndim);
    int neg = -1, zero = 0;
    for (int d = 0; d < nd; d++) {
        int64_t v = want[d];
        if (v == -1) {
            if (neg >= 0)
                return fail(j, NNM_EFORMAT, "target shape %s has more than one -1",
                            shp(b1, want, nd));
            neg = d;
            o[d] = 1;
            continue;
        }
        if (v < -1)
            return fail(j, NNM_ESHAPE, "target shape %s has the invalid dim %lld",
                        shp(b1, want, nd), (long long)v);
        if (v == 0 && !j->a.allowzero) {
            if (d >= x->ndim)
                return fail(j, NNM_ESHAPE, "target shape %s copies dim %d (0) but input '%s' "
                            "has only %d dims", shp(b1, want, nd), d, x->name, x->ndim);
            v = x->shape[d];
        } else if (v == 0) {
            zero = 1;
        }
        o[d] = v;
        if (__builtin_mul_overflow(known, v, &known))
            return fail(j, NNM_ESHAPE, "target shape %s is too large", shp(b1, want, nd));
    }
    if (zero && neg >= 0)
        return fail(j, NNM_EFORMAT, "target shape %s has both -1 and 0 with allowzero=1",
                    shp(b1, want, nd));
    if (neg >= 0) {
        if (known == 0 || in_n % known != 0)
            return fail(j, NNM_ESHAPE, "cannot reshape '%s' %s (%lld elements) into %s: the "
                        "other dims do not divide the element count", x->name, vshp(b2, x),
                        (long long)in_n, shp(b1, want, nd));
        o[neg] = in_n / known;
    } else if (known != in_n) {
        return fail(j, NNM_ESHAPE, "cannot reshape '%s' %s (%lld elements) into %s (%lld "
                    "elements)", x->name, vshp(b2, x), (long long)in_n, shp(b1, o, nd),
                    (long long)known);
    }
    set_out(j, 0, x->dtype, o, nd);
    return NNM_OK;
}

/* Reads an axes parameter (input k if present and not normalized, else a.ints). */
static nnm_err axes_param(job *j, int k)
{
    if (!j->a.normalized && inv(j, k) != NULL) {
        int64_t *p;
        int c;
        nnm_err rc = param_ints(j, k, "axes", &p, &c);
        if (rc != NNM_OK) return rc;
        replace_ints(&j->a.ints, &j->a.n_ints, p, c);
    }
    return NNM_OK;
}

/* Turns the axes in a.ints into a bit mask over rank dims (duplicates are an error). */
static nnm_err axes_mask(job *j, int rank, uint32_t *mask)
{
    *mask = 0;
    for (int i = 0; i < j->a.n_ints; i++) {
        int ax = 0;
        nnm_err rc = norm_axis(j, "axis", j->a.ints[i], rank, 0, &ax);
        if (rc != NNM_OK) return rc;
        if (*mask & (1u << ax))
            return fail(j, NNM_EFORMAT, "axis %d is listed twice", ax);
        *mask |= 1u << ax;
    }
    return NNM_OK;
}

/* Stores mask as an ascending list in a.ints. */
static nnm_err mask_to_ints(job *j, uint32_t mask, int rank)
{
    int c = 0;
    int64_t *p = malloc(NNM_MAX_DIMS * sizeof *p);
    if (p == NULL) return fail(j, NNM_ENOMEM, "out of memory");
    for (int d = 0; d < rank; d++)
        if (mask & (1u << d)) p[c++] = d;
    if (c == 0) {
        free(p);
        p = NULL;
    }
    replace_ints(&j->a.ints, &j->a.n_ints, p, c);
    return NNM_OK;
}

static nnm_err infer_squeeze(job *j)
{
    char b[SHAPE_BUF];
    nnm_err rc = arity(j, 1, 2, 1, 1);
    if (rc != NNM_OK) return rc;
    const nnm_value *x = inv(j, 0);
    uint32_t mask = 0;
    if ((rc = axes_param(j, 1)) != NNM_OK) return rc;
    j->n_in = 1;
    if (j->a.normalized && j->a.n_ints == 0 && keep_known_output(j, x) > 0) return NNM_OK;
    if (j->a.n_ints == 0) {
        for (int d = 0; d < x->ndim; d++)
            if (x->shape[d] == 1) mask |= 1u << d;
    } else {
        if ((rc = axes_mask(j, x->ndim, &mask)) != NNM_OK) return rc;
        for (int d = 0; d < x->ndim; d++)
            if ((mask & (1u << d)) && x->shape[d] != 1)
                return fail(j, NNM_ESHAPE, "cannot squeeze axis %d of '%s' %s: its size is "
                            "not 1", d, x->name, vshp(b, x));
    }
    int64_t o[NNM_MAX_DIMS];
    int on = 0;
    for (int d = 0; d < x->ndim; d++)
        if (!(mask & (1u << d))) o[on++] = x->shape[d];
    if ((rc = mask_to_ints(j, mask, x->ndim)) != NNM_OK) return rc;
    set_out(j, 0, x->dtype, o, on);
    return NNM_OK;
}

static nnm_err infer_unsqueeze(job *j)
{
    nnm_err rc = arity(j, 1, 2, 1, 1);
    if (rc != NNM_OK) return rc;
    const nnm_value *x = inv(j, 0);
    uint32_t mask;
    if ((rc = axes_param(j, 1)) != NNM_OK) return rc;
    j->n_in = 1;
    if (j->a.normalized && j->a.n_ints == 0 && keep_known_output(j, x) > 0) return NNM_OK;
    if (j->a.n_ints == 0) return fail(j, NNM_EFORMAT, "axes are missing");
    int r = x->ndim + j->a.n_ints;
    if (r > NNM_MAX_DIMS)
        return fail(j, NNM_EUNSUPPORTED, "the output would have %d dims; at most %d are "
                    "supported", r, NNM_MAX_DIMS);
    if ((rc = axes_mask(j, r, &mask)) != NNM_OK) return rc;
    int64_t o[NNM_MAX_DIMS];
    for (int d = 0, k = 0; d < r; d++) o[d] = (mask & (1u << d)) ? 1 : x->shape[k++];
    if ((rc = mask_to_ints(j, mask, r)) != NNM_OK) return rc;
    set_out(j, 0, x->dtype, o, r);
    return NNM_OK;
}

static nnm_err infer_transpose(job *j)
{
    nnm_err rc = arity(j, 1, 1, 1, 1);
    if (rc != NNM_OK) return rc;
    const nnm_value *x = inv(j, 0);
    int r = x->ndim, perm[NNM_MAX_DIMS];
    uint32_t seen = 0;
    if (!j->a.normalized && j->a.n_ints > 0 && j->a.n_ints != r)
        return fail(j, NNM_EFORMAT, "perm has %d entries for a %d-D input", j->a.n_ints, r);
    for (int d = 0; d < r; d++) {
        int64_t p;
        if (j->a.normalized) p = j->a.perm[d];
        else if (j->a.n_ints > 0) p = j->a.ints[d];
        else p = r - 1 - d;
        if (p < 0 || p >= r || (seen & (1u << p)))
            return fail(j, NNM_EFORMAT, "perm is not a permutation of 0..%d", r - 1);
        seen |= 1u << p;
        perm[d] = (int)p;
    }
    int64_t o[NNM_MAX_DIMS];
    for (int d = 0; d < r; d++) {
        j->a.perm[d] = perm[d];
        o[d] = x->shape[perm[d]];
    }
    set_out(j, 0, x->dtype, o, r);
    return NNM_OK;
}

static nnm_err infer_concat(job *j)
{
    char b1[SHAPE_BUF], b2[SHAPE_BUF];
    nnm_err rc = arity(j, 1, INT_MAX, 1, 1);
    if (rc != NNM_OK) return rc;
    const nnm_value *x = inv(j, 0);
    if (x->ndim < 1) return fail(j, NNM_ESHAPE, "input '%s' is a scalar", x->name);
    if ((rc = norm_axis(j, "axis", j->a.axis, x->ndim, 0, &j->a.axis)) != NNM_OK) return rc;
    int ax = j->a.axis;
    int64_t o[NNM_MAX_DIMS];
    memcpy(o, x->shape, (size_t)x->ndim * sizeof *o);
    for (int k = 1; k < j->n_in; k++) {
        const nnm_value *v = inv(j, k);
        if (v == NULL) return fail(j, NNM_EFORMAT, "input %d is missing", k);
        if ((rc = same_dtype(j, x, v)) != NNM_OK) return rc;
        int ok = v->ndim == x->ndim;
        for (int d = 0; ok && d < x->ndim; d++)
            if (d != ax && v->shape[d] != x->shape[d]) ok = 0;
        if (!ok)
            return fail(j, NNM_ESHAPE, "input '%s' %s does not match '%s' %s outside axis %d",
                        v->name, vshp(b1, v), x->name, vshp(b2, x), ax);
        if (__builtin_add_overflow(o[ax], v->shape[ax], &o[ax]))
            return fail(j, NNM_ESHAPE, "the concatenated axis overflows");
    }
    set_out(j, 0, x->dtype, o, x->ndim);
    return NNM_OK;
}

static nnm_err infer_split(job *j)
{
    char b[SHAPE_BUF];
    nnm_err rc = arity(j, 1, 2, 1, INT_MAX);
    if (rc != NNM_OK) return rc;
    const nnm_value *x = inv(j, 0);
    if (!j->a.normalized && inv(j, 1) != NULL) {
        int64_t *p;
        int c;
        if ((rc = param_ints(j, 1, "split", &p, &c)) != NNM_OK) return rc;
        replace_ints(&j->a.ints, &j->a.n_ints, p, c);
    }
    j->n_in = 1;
    if (x->ndim < 1) return fail(j, NNM_ESHAPE, "input '%s' is a scalar", x->name);
    if ((rc = norm_axis(j, "axis", j->a.axis, x->ndim, 0, &j->a.axis)) != NNM_OK) return rc;
    int ax = j->a.axis, n = j->n_out;
    int64_t dim = x->shape[ax];
    if (j->a.normalized && j->a.n_ints == 0) {
        /* built normalized by another pass: ir.h says sizes come from the output shapes */
        int known = 1;
        for (int k = 0; k < n; k++) {
            int v = j->n->out[k];
            if (v < 0 || j->g->values[v].ndim != x->ndim) known = 0;
        }
        if (known) {
            int64_t *p = malloc((size_t)n * sizeof *p);
            if (p == NULL) return fail(j, NNM_ENOMEM, "out of memory");
            for (int k = 0; k < n; k++) p[k] = j->g->values[j->n->out[k]].shape[ax];
            replace_ints(&j->a.ints, &j->a.n_ints, p, n);
        }
    }
    if (j->a.n_ints > 0) {
        int64_t sum = 0;
        if (j->a.n_ints != n)
            return fail(j, NNM_ESHAPE, "split has %d sizes but the node has %d outputs",
                        j->a.n_ints, n);
        for (int k = 0; k < n; k++)
            if (j->a.ints[k] < 0 || __builtin_add_overflow(sum, j->a.ints[k], &sum))
                return fail(j, NNM_ESHAPE, "split size %lld is invalid",
                            (long long)j->a.ints[k]);
        if (sum != dim)
            return fail(j, NNM_ESHAPE, "split sizes add up to %lld but axis %d of '%s' %s has "
                        "%lld", (long long)sum, ax, x->name, vshp(b, x), (long long)dim);
    } else {
        if (dim % n != 0)
            return fail(j, NNM_ESHAPE, "axis %d of '%s' %s (%lld) does not split evenly into "
                        "%d outputs", ax, x->name, vshp(b, x), (long long)dim, n);
        int64_t *p = malloc((size_t)n * sizeof *p);
        if (p == NULL) return fail(j, NNM_ENOMEM, "out of memory");
        for (int k = 0; k < n; k++) p[k] = dim / n;
        replace_ints(&j->a.ints, &j->a.n_ints, p, n);
    }
    for (int k = 0; k < n; k++) {
        int64_t o[NNM_MAX_DIMS];
        memcpy(o, x->shape, (size_t)x->ndim * sizeof *o);
        o[ax] = j->a.ints[k];
        set_out(j, k, x->dtype, o, x->ndim);
    }
    return NNM_OK;
}

/* ONNX Slice clamping for one dim: returns the first index and the element count. */
static void slice_dim(int64_t dim, int64_t start, int64_t end, int64_t step, int64_t *first,
                      int64_t *count, int64_t *canon_end)
{
    if (start < 0) start += dim;
    if (end < 0) end += dim;
    if (step > 0) {
        start = start < 0 ? 0 : start > dim ? dim : start;
        end = end < 0 ? 0 : end > dim ? dim : end;
        *count = end > start ? (int64_t)((uint64_t)(end - start - 1) / (uint64_t)step) + 1 : 0;
        *canon_end = end;
    } else if (dim == 0) {
        start = 0;
        *count = 0;
        *canon_end = INT64_MIN;
    } else {
        uint64_t us = (uint64_t)(-(step + 1)) + 1;
        start = start < 0 ? 0 : start > dim - 1 ? dim - 1 : start;
        end = end < -1 ? -1 : end > dim - 1 ? dim - 1 : end;
        *count = start > end ? (int64_t)((uint64_t)(start - end - 1) / us) + 1 : 0;
        *canon_end = end == -1 ? INT64_MIN : end;
    }
    *first = start;
}

/* A Slice built normalized by another pass (a.starts/a.steps only; the count is the output
 * shape it set): checks that every index it reads lies inside the input. */
static nnm_err slice_from_output(job *j, const nnm_value *x)
{
    char b[SHAPE_BUF];
    int v = j->n->out[0], r = x->ndim;
    const nnm_value *o = &j->g->values[v];
    j->n_in = 1;
    if (o->ndim != r)
        return fail(j, NNM_EFORMAT, "normalized Slice has no starts/ends lists and no output "
                    "shape of rank %d", r);
    for (int d = 0; d < r; d++) {
        int64_t c = o->shape[d], st = j->a.starts[d], sp = j->a.steps[d], last;
        if (sp == 0) return fail(j, NNM_EFORMAT, "step for axis %d is 0", d);
        if (c < 0) return fail(j, NNM_ESHAPE, "output dim %d is negative", d);
        if (c == 0) continue;
        if (st < 0 || st >= x->shape[d] || __builtin_mul_overflow(c - 1, sp, &last) ||
            __builtin_add_overflow(st, last, &last) || last < 0 || last >= x->shape[d])
            return fail(j, NNM_ESHAPE, "axis %d (start %lld, step %lld, %lld elements) reads "
                        "outside input '%s' %s", d, (long long)st, (long long)sp, (long long)c,
                        x->name, vshp(b, x));
    }
    set_out(j, 0, x->dtype, o->shape, r);
    return NNM_OK;
}

static nnm_err infer_slice(job *j)
{
    nnm_err rc = arity(j, 1, 5, 1, 1);
    if (rc != NNM_OK) return rc;
    const nnm_value *x = inv(j, 0);
    int r = x->ndim;
    if (j->a.normalized && (j->a.n_ints3 != r || j->a.n_ints2 != r || j->a.n_ints != r))
        return slice_from_output(j, x);
    int64_t *st = NULL, *en = NULL, *ax = NULL, *sp = NULL;
    int nst = 0, nen = 0, nax = 0, nsp = 0;
    int64_t *l_ax = NULL, *l_st = NULL, *l_en = NULL;
    int owned = 0;
    if (!j->a.normalized && j->n_in > 1) {
        owned = 1;
        if (inv(j, 1) == NULL || inv(j, 2) == NULL) {
            rc = fail(j, NNM_EFORMAT, "starts and ends are required");
            goto out;
        }
        if ((rc = param_ints(j, 1, "starts", &st, &nst)) != NNM_OK ||
            (rc = param_ints(j, 2, "ends", &en, &nen)) != NNM_OK ||
            (rc = param_ints(j, 3, "axes", &ax, &nax)) != NNM_OK ||
            (rc = param_ints(j, 4, "steps", &sp, &nsp)) != NNM_OK) goto out;
        if (inv(j, 4) != NULL && nsp != nst) {
            rc = fail(j, NNM_ESHAPE, "steps has %d entries, starts has %d", nsp, nst);
            goto out;
        }
        if (inv(j, 3) != NULL && nax != nst) {
            rc = fail(j, NNM_ESHAPE, "axes has %d entries, starts has %d", nax, nst);
            goto out;
        }
    } else {
        st = j->a.ints3; nst = j->a.n_ints3;
        en = j->a.ints2; nen = j->a.n_ints2;
        ax = j->a.ints; nax = j->a.n_ints;
        if (j->a.normalized) { sp = j->a.steps; nsp = r; }
        if (nax != 0 && nax != nst) {
            rc = fail(j, NNM_ESHAPE, "axes has %d entries, starts has %d", nax, nst);
            goto out;
        }
    }
    j->n_in = 1;
    if (nst != nen) {
        rc = fail(j, NNM_ESHAPE, "starts has %d entries, ends has %d", nst, nen);
        goto out;
    }
    if (nst > r) {
        rc = fail(j, NNM_ESHAPE, "%d axes are sliced but input '%s' has %d dims", nst,
                  x->name, r);
        goto out;
    }
    int64_t first[NNM_MAX_DIMS], step[NNM_MAX_DIMS], o[NNM_MAX_DIMS], cend[NNM_MAX_DIMS];
    uint32_t seen = 0;
    for (int d = 0; d < r; d++) {
        first[d] = 0;
        step[d] = 1;
        o[d] = x->shape[d];
        cend[d] = x->shape[d];
    }
    for (int k = 0; k < nst; k++) {
        int d = 0;
        if ((rc = norm_axis(j, "axis", nax > 0 ? ax[k] : k, r, 0, &d)) != NNM_OK) goto out;
        int64_t s = j->a.normalized ? sp[d] : nsp > 0 ? sp[k] : 1;
        if (seen & (1u << d)) {
            rc = fail(j, NNM_EFORMAT, "axis %d is sliced twice", d);
            goto out;
        }
        seen |= 1u << d;
        if (s == 0) {
            rc = fail(j, NNM_EFORMAT, "step for axis %d is 0", d);
            goto out;
        }
        step[d] = s;
        slice_dim(x->shape[d], st[k], en[k], s, &first[d], &o[d], &cend[d]);
    }
    /* Canonical per-dim lists (see the top of the file). */
    size_t bytes = (size_t)(r > 0 ? r : 1) * sizeof(int64_t);
    l_ax = malloc(bytes);
    l_st = malloc(bytes);
    l_en = malloc(bytes);
    if (!l_ax || !l_st || !l_en) {
        rc = fail(j, NNM_ENOMEM, "out of memory");
        goto out;
    }
    for (int d = 0; d < r; d++) {
        l_ax[d] = d;
        l_st[d] = first[d];
        l_en[d] = cend[d];
    }
    if (!owned) {      /* st/en/ax alias the lists being replaced */
        st = en = ax = NULL;
    }
    replace_ints(&j->a.ints, &j->a.n_ints, l_ax, r);
    replace_ints(&j->a.ints3, &j->a.n_ints3, l_st, r);
    replace_ints(&j->a.ints2, &j->a.n_ints2, l_en, r);
    l_ax = l_st = l_en = NULL;
    for (int d = 0; d < NNM_MAX_DIMS; d++) {
        j->a.starts[d] = d < r ? first[d] : 0;
        j->a.steps[d] = d < r ? step[d] : 1;
    }
    set_out(j, 0, x->dtype, o, r);
    rc = NNM_OK;
out:
    if (owned) {
        free(st);
        free(en);
        free(ax);
        free(sp);
    }
    free(l_ax);
    free(l_st);
    free(l_en);
    return rc;
}

static nnm_err infer_pad(job *j)
{
    char b[SHAPE_BUF];
    nnm_err rc = arity(j, 1, 4, 1, 1);
    if (rc != NNM_OK) return rc;
    const nnm_value *x = inv(j, 0);
    int r = x->ndim;
    int pads[2 * NNM_MAX_DIMS];
    if (!j->a.normalized) {
        int64_t *p = NULL, *axl = NULL;
        int np = 0, nax = 0;
        int from_input = j->n_in > 1;
        double v;
        int present;
        if (from_input) {
            if (inv(j, 1) == NULL) return fail(j, NNM_EFORMAT, "the pads input is missing");
            if ((rc = param_ints(j, 1, "pads", &p, &np)) != NNM_OK) return rc;
            if ((rc = param_scalar(j, 2, "constant_value", &v, &present)) != NNM_OK ||
                (rc = param_ints(j, 3, "axes", &axl, &nax)) != NNM_OK) {
                free(p);
                return rc;
            }
            if (present) j->a.pad_value = (float)v;
        } else {
            p = j->a.ints;
            np = j->a.n_ints;
        }
        int naxes = inv(j, 3) != NULL ? nax : r;
        uint32_t seen = 0;
        rc = NNM_OK;
        if (np != 2 * naxes)
            rc = fail(j, NNM_ESHAPE, "pads has %d values; input '%s' %s needs %d", np, x->name,
                      vshp(b, x), 2 * naxes);
        for (int d = 0; d < 2 * NNM_MAX_DIMS; d++) pads[d] = 0;
        for (int k = 0; rc == NNM_OK && k < naxes; k++) {
            int d = k;
            if (inv(j, 3) != NULL && (rc = norm_axis(j, "axis", axl[k], r, 0, &d)) != NNM_OK)
                break;
            if (seen & (1u << d)) {
                rc = fail(j, NNM_EFORMAT, "axis %d is padded twice", d);
                break;
            }
            seen |= 1u << d;
            int64_t pb = p[k], pe = p[k + naxes];
            if (pb < INT_MIN || pb > INT_MAX || pe < INT_MIN || pe > INT_MAX) {
                rc = fail(j, NNM_ESHAPE, "pads for axis %d are too large", d);
                break;
            }
            pads[d] = (int)pb;
            pads[d + r] = (int)pe;
        }
        if (from_input) {
            free(p);
            free(axl);
        }
        if (rc != NNM_OK) return rc;
        memcpy(j->a.pads, pads, sizeof pads);
        replace_ints(&j->a.ints, &j->a.n_ints, NULL, 0);
    }
    j->n_in = 1;
    int64_t o[NNM_MAX_DIMS];
    for (int d = 0; d < r; d++) {
        int64_t in = x->shape[d], pb = j->a.pads[d], pe = j->a.pads[d + r];
        o[d] = in + pb + pe;
        if (o[d] < 0)
            return fail(j, NNM_ESHAPE, "pads %lld and %lld make axis %d of '%s' %s negative",
                        (long long)pb, (long long)pe, d, x->name, vshp(b, x));
        if (j->a.pad_mode == NNM_PAD_REFLECT && (pb >= in || pe >= in) && (pb > 0 || pe > 0))
            return fail(j, NNM_ESHAPE, "reflect pads %lld and %lld must be smaller than axis "
                        "%d (%lld)", (long long)pb, (long long)pe, d, (long long)in);
        if (j->a.pad_mode == NNM_PAD_EDGE && in == 0 && (pb > 0 || pe > 0))
            return fail(j, NNM_ESHAPE, "edge padding of the empty axis %d", d);
    }
    set_out(j, 0, x->dtype, o, r);
    return NNM_OK;
}

static nnm_err infer_gather(job *j)
{
    char b[SHAPE_BUF];
    nnm_err rc = arity(j, 2, 2, 1, 1);
    if (rc != NNM_OK) return rc;
    const nnm_value *x = inv(j, 0), *idx = inv(j, 1);
    if (!is_intlist(idx->dtype))
        return fail(j, NNM_ESHAPE, "indices '%s' must be int32 or int64, is %s", idx->name,
                    nnm_dtype_name(idx->dtype));
    if (x->ndim < 1) return fail(j, NNM_ESHAPE, "input '%s' is a scalar", x->name);
    if ((rc = norm_axis(j, "axis", j->a.axis, x->ndim, 0, &j->a.axis)) != NNM_OK) return rc;
    int ax = j->a.axis, r = x->ndim - 1 + idx->ndim;
    if (r > NNM_MAX_DIMS)
        return fail(j, NNM_EUNSUPPORTED, "the output would have %d dims; at most %d are "
                    "supported", r, NNM_MAX_DIMS);
    int64_t dim = x->shape[ax];
    if (idx->data != NULL) {
        int64_t c = numel(idx->shape, idx->ndim);
        if (c < 0 || (uint64_t)c * nnm_dtype_size(idx->dtype) > idx->nbytes)
            return fail(j, NNM_EFORMAT, "indices '%s' hold fewer bytes than their shape "
                        "needs", idx->name);
        for (int64_t i = 0; i < c; i++) {
            int64_t v = elem_int(idx->data, idx->dtype, i);
            if (v < -dim || v >= dim)
                return fail(j, NNM_ESHAPE, "index %lld in '%s' is out of range for axis %d of "
                            "'%s' %s", (long long)v, idx->name, ax, x->name, vshp(b, x));
        }
    }
    int64_t o[NNM_MAX_DIMS];
    int on = 0;
    for (int d = 0; d < ax; d++) o[on++] = x->shape[d];
    for (int d = 0; d < idx->ndim; d++) o[on++] = idx->shape[d];
    for (int d = ax + 1; d < x->ndim; d++) o[on++] = x->shape[d];
    set_out(j, 0, x->dtype, o, on);
    return NNM_OK;
}

static nnm_err infer_shape(job *j)
{
    nnm_err rc = arity(j, 1, 1, 1, 1);
    if (rc != NNM_OK) return rc;
    int64_t o[1] = { inv(j, 0)->ndim };
    set_out(j, 0, NNM_DT_I64, o, 1);
    return NNM_OK;
}

static nnm_err infer_constant_of_shape(job *j)
{
    char b[SHAPE_BUF];
    nnm_err rc = arity(j, j->a.normalized ? 0 : 1, j->a.normalized ? 0 : 1, 1, 1);
    if (rc != NNM_OK) return rc;
    if (!j->a.normalized) {
        int64_t *p;
        int c;
        if ((rc = param_ints(j, 0, "shape", &p, &c)) != NNM_OK) return rc;
        replace_ints(&j->a.ints, &j->a.n_ints, p, c);
    }
    j->n_in = 0;
    if (j->a.n_ints > NNM_MAX_DIMS)
        return fail(j, NNM_EUNSUPPORTED, "shape has %d dims; at most %d are supported",
                    j->a.n_ints, NNM_MAX_DIMS);
    for (int d = 0; d < j->a.n_ints; d++)
        if (j->a.ints[d] < 0)
            return fail(j, NNM_ESHAPE, "shape %s has a negative dim",
                        shp(b, j->a.ints, j->a.n_ints));
    if (j->a.to == NNM_DT_UNDEFINED) j->a.to = NNM_DT_F32;
    if (nnm_dtype_size(j->a.to) == 0)
        return fail(j, NNM_EUNSUPPORTED, "value has an unsupported dtype (%d)", (int)j->a.to);
    set_out(j, 0, j->a.to, j->a.ints, j->a.n_ints);
    return NNM_OK;
}

static nnm_err infer_cast(job *j)
{
    nnm_err rc = arity(j, 1, 1, 1, 1);
    if (rc != NNM_OK) return rc;
    if (nnm_dtype_size(j->a.to) == 0)
        return fail(j, NNM_EUNSUPPORTED, "cast to an unsupported dtype (%d)", (int)j->a.to);
    copy_out_from(j, 0, inv(j, 0), j->a.to);
    return NNM_OK;
}

static nnm_err infer_resize(job *j)
{
    char b[SHAPE_BUF];
    nnm_err rc = arity(j, 1, 4, 1, 1);
    if (rc != NNM_OK) return rc;
    const nnm_value *x = inv(j, 0);
    int r = x->ndim;
    if (r < 1) return fail(j, NNM_ESHAPE, "input '%s' is a scalar", x->name);
    if (r > NNM_MAX_DIMS) return fail(j, NNM_EUNSUPPORTED, "too many dims");
    if (!j->a.normalized) {
        const nnm_value *sv;
        int64_t nsc, *sz = NULL;
        int nsz = 0;
        float sc[NNM_MAX_DIMS];
        if ((rc = param_check(j, 2, "scales", &sv, &nsc)) != NNM_OK) return rc;
        if (nsc > 0 && !is_float(sv->dtype))
            return fail(j, NNM_ESHAPE, "scales '%s' must be float32, is %s", sv->name,
                        nnm_dtype_name(sv->dtype));
        if (nsc > 0 && nsc != r)
            return fail(j, NNM_ESHAPE, "scales has %lld values; input '%s' %s has %d dims",
                        (long long)nsc, x->name, vshp(b, x), r);
        for (int d = 0; d < nsc; d++) sc[d] = (float)elem_double(sv->data, sv->dtype, d);
        if ((rc = param_ints(j, 3, "sizes", &sz, &nsz)) != NNM_OK) return rc;
        if ((nsz > 0) == (nsc > 0)) {
            free(sz);
            return fail(j, NNM_EFORMAT, "exactly one of scales and sizes must be given");
        }
        if (nsz > 0 && nsz != r) {
            free(sz);
            return fail(j, NNM_ESHAPE, "sizes has %d values; input '%s' %s has %d dims", nsz,
                        x->name, vshp(b, x), r);
        }
        replace_ints(&j->a.ints, &j->a.n_ints, sz, nsz);
        for (int d = 0; d < nsc; d++) j->a.scales[d] = sc[d];
    }
    j->n_in = 1;
    int64_t o[NNM_MAX_DIMS];
    for (int d = 0; d < r; d++) {
        int64_t in = x->shape[d];
        if (j->a.n_ints == r) {
            o[d] = j->a.ints[d];
            if (o[d] < 0)
                return fail(j, NNM_ESHAPE, "size %lld for axis %d is negative",
                            (long long)o[d], d);
            if (in == 0 && o[d] > 0)
                return fail(j, NNM_ESHAPE, "cannot resize the empty axis %d to %lld", d,
                            (long long)o[d]);
            j->a.scales[d] = in > 0 ? (float)((double)o[d] / (double)in) : 1.0f;
        } else {
            double s = j->a.scales[d];
            if (!(s > 0.0) || !isfinite(s))
                return fail(j, NNM_EFORMAT, "scale %g for axis %d must be positive", s, d);
            double v = floor((double)in * s);
            if (v > 4611686018427387904.0)   /* 2^62 */
                return fail(j, NNM_ESHAPE, "scale %g makes axis %d too large", s, d);
            o[d] = (int64_t)v;
        }
    }
    set_out(j, 0, x->dtype, o, r);
    int64_t ne = numel(o, r);
    j->flops = ne > 0 ? (double)ne : 0.0;
    return NNM_OK;
}

static nnm_err infer_reduce(job *j)
{
    nnm_err rc = arity(j, 1, 2, 1, 1);
    if (rc != NNM_OK) return rc;
    const nnm_value *x = inv(j, 0);
    int r = x->ndim;
    uint32_t mask;
    if (!j->a.normalized) {
        if ((rc = axes_param(j, 1)) != NNM_OK) return rc;
        if (j->a.n_ints == 0) {
            mask = j->a.noop_with_empty_axes ? 0 : (r > 0 ? (uint32_t)((1u << r) - 1) : 0);
        } else if ((rc = axes_mask(j, r, &mask)) != NNM_OK) {
            return rc;
        }
        j->a.axes_mask = mask;
    }
    j->n_in = 1;
    mask = j->a.axes_mask;
    if (r < 32 && (mask >> r) != 0)
        return fail(j, NNM_ESHAPE, "axes mask 0x%x does not fit a %d-D input", mask, r);
    int64_t o[NNM_MAX_DIMS];
    int on = 0;
    for (int d = 0; d < r; d++) {
        if (!(mask & (1u << d))) o[on++] = x->shape[d];
        else if (j->a.keepdims) o[on++] = 1;
    }
    set_out(j, 0, x->dtype, o, on);
    j->flops = (double)numel(x->shape, r);
    return NNM_OK;
}

static nnm_err infer_identity(job *j)
{
    int dropout = j->n->op == NNM_OP_DROPOUT;
    nnm_err rc = arity(j, 1, dropout ? 3 : 1, 1, dropout ? 2 : 1);
    if (rc != NNM_OK) return rc;
    const nnm_value *x = inv(j, 0);
    if (dropout && !j->a.normalized) {
        double v;
        int present;
        if ((rc = param_scalar(j, 2, "training_mode", &v, &present)) != NNM_OK) return rc;
        if (present && v != 0.0)
            return fail(j, NNM_EUNSUPPORTED, "training_mode=1 is not supported (nnmesh runs "
                        "inference only)");
    }
    j->n_in = 1;
    copy_out_from(j, 0, x, x->dtype);
    if (j->n_out > 1) copy_out_from(j, 1, x, NNM_DT_BOOL);
    return NNM_OK;
}

static nnm_err dispatch(job *j)
{
    switch (j->n->op) {
    case NNM_OP_CONV: return infer_conv(j);
    case NNM_OP_CONV_TRANSPOSE: return infer_conv_transpose(j);
    case NNM_OP_GEMM: return infer_gemm(j);
    case NNM_OP_MATMUL: return infer_matmul(j);
    case NNM_OP_ADD: case NNM_OP_SUB: case NNM_OP_MUL: case NNM_OP_DIV: case NNM_OP_POW:
    case NNM_OP_MAX: case NNM_OP_MIN:
        return infer_binary(j);
    case NNM_OP_SQRT: case NNM_OP_EXP: case NNM_OP_LOG: case NNM_OP_ERF: case NNM_OP_RELU:
    case NNM_OP_SIGMOID: case NNM_OP_TANH: case NNM_OP_HARD_SWISH: case NNM_OP_LEAKY_RELU:
    case NNM_OP_CLIP: case NNM_OP_HARD_SIGMOID:
        return infer_unary(j);
    case NNM_OP_SOFTMAX: return infer_softmax(j);
    case NNM_OP_MAXPOOL: case NNM_OP_AVGPOOL: return infer_pool(j);
    case NNM_OP_GLOBAL_AVGPOOL: case NNM_OP_GLOBAL_MAXPOOL: return infer_global_pool(j);
    case NNM_OP_BATCHNORM: return infer_batchnorm(j);
    case NNM_OP_FLATTEN: return infer_flatten(j);
    case NNM_OP_RESHAPE: return infer_reshape(j);
    case NNM_OP_SQUEEZE: return infer_squeeze(j);
    case NNM_OP_UNSQUEEZE: return infer_unsqueeze(j);
    case NNM_OP_IDENTITY: case NNM_OP_DROPOUT: return infer_identity(j);
    case NNM_OP_TRANSPOSE: return infer_transpose(j);
    case NNM_OP_CONCAT: return infer_concat(j);
    case NNM_OP_SPLIT: return infer_split(j);
    case NNM_OP_SLICE: return infer_slice(j);
    case NNM_OP_PAD: return infer_pad(j);
    case NNM_OP_GATHER: return infer_gather(j);
    case NNM_OP_SHAPE: return infer_shape(j);
    case NNM_OP_CONSTANT:
        return fail(j, NNM_EFORMAT, "Constant nodes must become constant values at import");
    case NNM_OP_CONSTANT_OF_SHAPE: return infer_constant_of_shape(j);
    case NNM_OP_CAST: return infer_cast(j);
    case NNM_OP_RESIZE: return infer_resize(j);
    case NNM_OP_REDUCE_MEAN: case NNM_OP_REDUCE_MAX: return infer_reduce(j);
    default:
        return fail(j, NNM_EUNSUPPORTED, "op is not supported");
    }
}

/* --- driver ----------------------------------------------------------------------------- */

/* Every present input must have a known, valid shape and a known dtype. */
static nnm_err check_inputs(job *j)
{
    char b[SHAPE_BUF];
    for (int k = 0; k < j->n_in; k++) {
        if (j->in[k] >= j->g->n_values)
            return fail(j, NNM_EFORMAT, "input %d refers to value %d, which does not exist", k,
                        j->in[k]);
        const nnm_value *v = inv(j, k);
        if (v == NULL) continue;
        if (v->ndim < 0)
            return fail(j, NNM_ESHAPE, "input '%s' has no known shape (is it a graph input "
                        "without a shape, or produced by a later node?)", v->name);
        if (v->ndim > NNM_MAX_DIMS)
            return fail(j, NNM_EUNSUPPORTED, "input '%s' has %d dims; at most %d are supported",
                        v->name, v->ndim, NNM_MAX_DIMS);
        size_t es = nnm_dtype_size(v->dtype);
        if (es == 0)
            return fail(j, NNM_EUNSUPPORTED, "input '%s' has an unknown dtype", v->name);
        if (nnm_shape_numel(v->shape, v->ndim, es) < 0)
            return fail(j, NNM_ESHAPE, "input '%s' has the invalid shape %s", v->name,
                        vshp(b, v));
    }
    for (int k = 0; k < j->n_out; k++)
        if (j->n->out[k] >= j->g->n_values)
            return fail(j, NNM_EFORMAT, "output %d refers to value %d, which does not exist", k,
                        j->n->out[k]);
    return NNM_OK;
}

/* Every produced output must have a dtype and a shape whose byte size fits. */
static nnm_err check_outputs(job *j, size_t *out_bytes)
{
    char b[SHAPE_BUF];
    *out_bytes = 0;
    for (int k = 0; k < j->n_out; k++) {
        if (j->n->out[k] < 0) continue;
        const oshape *o = &j->out[k];
        const char *name = j->g->values[j->n->out[k]].name;
        size_t es = nnm_dtype_size(o->dt);
        if (es == 0)
            return fail(j, NNM_EUNSUPPORTED, "output '%s' would have an unknown dtype", name);
        int64_t c = nnm_shape_numel(o->s, o->ndim, es);
        if (c < 0)
            return fail(j, NNM_ESHAPE, "output '%s' would have shape %s, which is negative or "
                        "too large", name, shp(b, o->s, o->ndim));
        if (__builtin_add_overflow(*out_bytes, (size_t)c * es, out_bytes))
            return fail(j, NNM_ESHAPE, "outputs are too large");
    }
    return NNM_OK;
}

nnm_err ir__infer_node(nnm_graph *g, int node, nnm_diag *diag)
{
    if (g == NULL || node < 0 || node >= g->n_nodes)
        return nnm_diag_set(diag, NNM_EINVAL, "node index %d is out of range", node);
    nnm_node *n = &g->nodes[node];
    if (n->op == NNM_OP_INVALID) return NNM_OK;
    nnm_err rc;
    size_t out_bytes = 0;
    job j;
    memset(&j, 0, sizeof j);
    j.g = g;
    j.n = n;
    j.diag = diag;
    j.n_in = n->n_in;
    j.n_out = n->n_out;
    j.in = malloc((size_t)(n->n_in > 0 ? n->n_in : 1) * sizeof *j.in);
    j.out = calloc((size_t)(n->n_out > 0 ? n->n_out : 1), sizeof *j.out);
    if (j.in == NULL || j.out == NULL || ir__attrs_copy(&j.a, &n->a) != NNM_OK) {
        rc = fail(&j, NNM_ENOMEM, "out of memory");
        goto fail;
    }
    if (n->n_in > 0) memcpy(j.in, n->in, (size_t)n->n_in * sizeof *j.in);
    if ((rc = check_inputs(&j)) != NNM_OK) goto fail;
    if ((rc = dispatch(&j)) != NNM_OK) goto fail;
    if ((rc = check_outputs(&j, &out_bytes)) != NNM_OK) goto fail;

    /* Commit: nothing fails after this line. */
    ir__attrs_cleanup(&n->a);
    n->a = j.a;
    n->a.normalized = 1;
    n->n_in = j.n_in;
    n->param_bytes = 0;
    for (int k = 0; k < n->n_in; k++)
        if (ir__is_const(g, n->in[k])) n->param_bytes += g->values[n->in[k]].nbytes;
    for (int k = 0; k < n->n_out; k++) {
        if (n->out[k] < 0) continue;
        nnm_value *v = &g->values[n->out[k]];
        v->dtype = j.out[k].dt;
        v->ndim = j.out[k].ndim;
        memset(v->shape, 0, sizeof v->shape);
        memcpy(v->shape, j.out[k].s, (size_t)v->ndim * sizeof v->shape[0]);
    }
    n->flops = j.flops;
    n->out_bytes = out_bytes;
    free(j.in);
    free(j.out);
    return NNM_OK;
fail:
    ir__attrs_cleanup(&j.a);
    free(j.in);
    free(j.out);
    return rc;
}

/* A node is folded when everything it reads is constant; Shape and ConstantOfShape always
 * (shapes are static). */
static int foldable(const nnm_graph *g, const nnm_node *n)
{
    if (n->op == NNM_OP_SHAPE || n->op == NNM_OP_CONSTANT_OF_SHAPE) return 1;
    for (int k = 0; k < n->n_in; k++)
        if (n->in[k] >= 0 && !ir__is_const(g, n->in[k])) return 0;
    return 1;
}

nnm_err ir__infer(nnm_graph *g, nnm_diag *diag)
{
    if (g == NULL) return nnm_diag_set(diag, NNM_EINVAL, "no graph");
    for (int i = 0; i < g->n_nodes; i++) {
        if (g->nodes[i].op == NNM_OP_INVALID) continue;
        nnm_err rc = ir__infer_node(g, i, diag);
        if (rc != NNM_OK) return rc;
        if (foldable(g, &g->nodes[i]) && (rc = ir__fold_node(g, i, diag)) != NNM_OK)
            return rc;
    }
    for (int k = 0; k < g->n_outputs; k++) {
        int v = g->outputs[k];
        if (v < 0 || v >= g->n_values)
            return nnm_diag_set(diag, NNM_EFORMAT, "graph output %d refers to no value", k);
        if (g->values[v].ndim < 0)
            return nnm_diag_set(diag, NNM_ESHAPE, "graph output '%s' is not computed by any "
                                "node", g->values[v].name);
    }
    return NNM_OK;
}
