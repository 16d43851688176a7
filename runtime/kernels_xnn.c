/* runtime/kernels_xnn.c — the "xnn" kernel backend: XNNPACK operators behind the operator
 * interface of kernels.h.
 *
 * supports() claims a node only when one XNNPACK operator of the Debian 2022 snapshot
 * computes exactly what the node specifies (float32, NHWC where layout matters, constant
 * weights, padding and coordinate semantics that match the reference kernels); everything
 * else is left to the reference backend. prepare() creates the operator once, packing a
 * private copy of the weights (XNNPACK copies them again into its own packed buffer, so
 * nothing points into the graph afterwards); run() binds the tensor pointers with
 * xnn_setup_* and runs the operator on the context's thread pool. A prepared state is not
 * reentrant: the XNNPACK operator keeps the pointers bound by setup, so one state must not
 * run on two threads at once (prepare one state per concurrent runner).
 *
 * Own kernels in the same backend (x86-64 with AVX2 and FMA; NNMESH_GEMM=xnn in the
 * environment turns them off): the Debian build of XNNPACK's f32 GEMM microkernel spills
 * an accumulator to the stack and runs at about half speed, so group-1 convolutions and
 * fully connected layers run on an own register-blocked GEMM, 3x3 depthwise convolutions
 * on an own kernel, and both on an own work pool that never waits for a worker that has
 * not started (see "own dense convolution kernel" and "the own kernels' work pool"). The
 * layout pass's NCHW <-> NHWC Transposes run here too (plain C; XNNPACK has none). Each
 * of them computes what the XNNPACK operator would, and is checked the same way.
 *
 * Facts about this snapshot that the code relies on (checked by tests/unit/test_kernels_xnn.c
 * against the reference kernels):
 *  - convolution and deconvolution weights are [groups][group_out][kH][kW][group_in]
 *    (GOHWI) without XNN_FLAG_DEPTHWISE_CONVOLUTION; a group with one input and one output
 *    channel is packed for the depthwise microkernels from that same layout, so the flag is
 *    not needed (it only selects an alternative HWGo weight layout);
 *  - average pooling divides by the number of input pixels inside the window, padding
 *    excluded (ONNX count_include_pad = 0);
 *  - deconvolution takes ONNX output_padding as the setup-time "adjustment", which must be
 *    smaller than the stride;
 *  - bilinear resize without flags is ONNX half_pixel with source coordinates clamped to the
 *    image, XNN_FLAG_ALIGN_CORNERS is align_corners, XNN_FLAG_TENSORFLOW_LEGACY_MODE is
 *    asymmetric;
 *  - there is no f32 tanh, exp, log, erf, pow, global max pooling or reduction operator;
 *    GlobalMaxPool is run as a max pooling whose window is the whole image. */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <pthreadpool.h>
#include <xnnpack.h>

#include "kernels.h"

/* XNNPACK rejects pooling windows of one pixel and has at most this many tensor dims. */
#define XDIMS XNN_MAX_TENSOR_DIMS

typedef struct xstate {
    xnn_operator_t op;
    nnm_op kind;
    /* Shapes fixed at prepare time (the graph's static shapes); run() checks the tensors
     * against them so that XNNPACK can never write past an output buffer. */
    int n_data;                               /* data inputs checked: 1 or 2 */
    int in_ndim[2];
    int64_t in_shape[2][NNM_MAX_DIMS];
    int out_ndim;
    int64_t out_shape[NNM_MAX_DIMS];
    size_t fc_batch;                          /* fully connected: rows */
    size_t nc_batch;                          /* unary / softmax: rows */
    uint32_t adj_h, adj_w;                    /* deconvolution adjustment */
    size_t pre[XDIMS], post[XDIMS];           /* constant pad */
    struct gconv *own;                        /* Conv on the own kernel instead of op */
    struct dwconv *dw;                        /* depthwise Conv on the own kernel */
} xstate;

/* --- initialization -------------------------------------------------------------------- */

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static enum xnn_status init_status = xnn_status_uninitialized;

static void init_xnnpack(void)
{
    init_status = xnn_initialize(NULL);
}

static const char *status_text(enum xnn_status st)
{
    switch (st) {
    case xnn_status_success: return "success";
    case xnn_status_uninitialized: return "uninitialized";
    case xnn_status_invalid_parameter: return "invalid parameter";
    case xnn_status_invalid_state: return "invalid state";
    case xnn_status_unsupported_parameter: return "unsupported parameter";
    case xnn_status_unsupported_hardware: return "unsupported hardware";
    case xnn_status_out_of_memory: return "out of memory";
    }
    return "unknown status";
}

nnm_err nnm_xnn_init(nnm_diag *diag)
{
    if (pthread_once(&init_once, init_xnnpack) != 0)
        return nnm_diag_set(diag, NNM_EBACKEND, "XNNPACK initialization could not run "
                            "(pthread_once failed); use the reference backend");
    if (init_status != xnn_status_success)
        return nnm_diag_set(diag, NNM_EBACKEND,
                            "XNNPACK failed to initialize (xnn_status %d, %s); this CPU may "
                            "lack the instructions it needs, use the reference backend",
                            (int)init_status, status_text(init_status));
    return NNM_OK;
}

static nnm_err xnn_fail(nnm_diag *diag, const nnm_node *n, const char *call, enum xnn_status st)
{
    return nnm_diag_set(diag, NNM_EBACKEND,
                        "node '%s' (%s): XNNPACK %s failed with xnn_status %d (%s); run this "
                        "node on the reference backend", n->name, n->onnx_op, call, (int)st,
                        status_text(st));
}

/* --- what XNNPACK can run -------------------------------------------------------------- */

/* The value if id names a float32 value with a known, non-empty shape, else NULL. */
static const nnm_value *f32_value(const nnm_graph *g, int id)
{
    if (id < 0 || id >= g->n_values) return NULL;
    const nnm_value *v = &g->values[id];
    if (v->dtype != NNM_DT_F32 || v->ndim < 0 || v->ndim > NNM_MAX_DIMS) return NULL;
    for (int i = 0; i < v->ndim; i++)
        if (v->shape[i] <= 0 || v->shape[i] > (int64_t)UINT32_MAX) return NULL;
    return v;
}

static int64_t value_numel(const nnm_value *v)
{
    int64_t n = 1;
    for (int i = 0; i < v->ndim; i++) n *= v->shape[i];
    return n;
}

static int same_shape(const int64_t *a, int na, const int64_t *b, int nb)
{
    if (na != nb) return 0;
    for (int i = 0; i < na; i++)
        if (a[i] != b[i]) return 0;
    return 1;
}

/* Fused clamp bounds of a node: (-inf, +inf) unless a.act; 0 if XNNPACK cannot take them
 * (it wants min < max, neither NaN). */
static int clamp_bounds(const nnm_attrs *a, float *lo, float *hi)
{
    *lo = a->act ? a->act_min : -INFINITY;
    *hi = a->act ? a->act_max : INFINITY;
    return !isnan(*lo) && !isnan(*hi) && *lo < *hi;
}

/* Output extent of a 2-D window op along one axis, XNNPACK's floor formula; -1 if the
 * padded input is smaller than the dilated window. */
static int64_t window_out(int64_t in, int pad0, int pad1, int k, int s, int d)
{
    int64_t span = in + pad0 + pad1 - ((int64_t)d * (k - 1) + 1);
    if (span < 0) return -1;
    return span / s + 1;
}

static int window_attrs_ok(const nnm_attrs *a)
{
    for (int i = 0; i < 2; i++)
        if (a->kernel[i] < 1 || a->strides[i] < 1 || a->dilations[i] < 1) return 0;
    for (int i = 0; i < 4; i++)
        if (a->pads[i] < 0) return 0;
    return 1;
}

/* Inputs beyond the data inputs a kernel reads must be absent. */
static int extra_inputs_absent(const nnm_node *n, int from)
{
    for (int i = from; i < n->n_in; i++)
        if (n->in[i] >= 0) return 0;
    return 1;
}

static int supports_conv(const nnm_graph *g, const nnm_node *n)
{
    const nnm_attrs *a = &n->a;
    float lo, hi;
    if (a->layout != NNM_IR_NHWC || a->spatial_1d || n->n_in < 2) return 0;
    if (!window_attrs_ok(a) || a->group < 1 || !clamp_bounds(a, &lo, &hi)) return 0;
    const nnm_value *x = f32_value(g, n->in[0]), *w = f32_value(g, n->in[1]);
    const nnm_value *y = f32_value(g, n->out[0]);
    if (!x || !w || !y || !ir__is_const(g, n->in[1])) return 0;
    if (x->ndim != 4 || w->ndim != 4 || y->ndim != 4) return 0;
    if (n->n_in > 2 && n->in[2] >= 0) {
        const nnm_value *b = f32_value(g, n->in[2]);
        if (!b || !ir__is_const(g, n->in[2]) || b->ndim != 1) return 0;
        if (b->shape[0] != (n->op == NNM_OP_CONV ? w->shape[0] : w->shape[1] * a->group))
            return 0;
    }
    if (!extra_inputs_absent(n, 3)) return 0;
    if (w->shape[2] != a->kernel[0] || w->shape[3] != a->kernel[1]) return 0;
    int64_t c = x->shape[3], gr = a->group;
    if (c % gr != 0) return 0;
    if (n->op == NNM_OP_CONV) {
        int64_t m = w->shape[0];
        if (m % gr != 0 || w->shape[1] != c / gr) return 0;
        int64_t oh = window_out(x->shape[1], a->pads[0], a->pads[2], a->kernel[0],
                                a->strides[0], a->dilations[0]);
        int64_t ow = window_out(x->shape[2], a->pads[1], a->pads[3], a->kernel[1],
                                a->strides[1], a->dilations[1]);
        return y->shape[0] == x->shape[0] && y->shape[1] == oh && y->shape[2] == ow &&
               y->shape[3] == m;
    }
    /* ConvTranspose: W is [C, M/group, kH, kW]. */
    if (w->shape[0] != c) return 0;
    if (y->shape[0] != x->shape[0] || y->shape[3] != w->shape[1] * gr) return 0;
    for (int i = 0; i < 2; i++) {
        int64_t base = (int64_t)a->strides[i] * (x->shape[1 + i] - 1) +
                       (int64_t)a->dilations[i] * (a->kernel[i] - 1) + 1 - a->pads[i] -
                       a->pads[i + 2];
        int64_t adj = y->shape[1 + i] - base;
        if (adj < 0 || adj >= a->strides[i]) return 0;
    }
    return 1;
}

/* Bias of a Gemm as a row of N values: C absent, or a constant of N elements ([N] or
 * [1, N]) or of one element. */
static int gemm_bias_ok(const nnm_graph *g, int cid, int64_t nout)
{
    if (cid < 0) return 1;
    const nnm_value *c = f32_value(g, cid);
    if (!c || !ir__is_const(g, cid)) return 0;
    int64_t ne = value_numel(c);
    if (ne == 1 && c->ndim <= 2) return 1;
    if (c->ndim == 1 && c->shape[0] == nout) return 1;
    return c->ndim == 2 && c->shape[0] == 1 && c->shape[1] == nout;
}

static int supports_fc(const nnm_graph *g, const nnm_node *n)
{
    float lo, hi;
    if (n->n_in < 2 || !clamp_bounds(&n->a, &lo, &hi)) return 0;
    const nnm_value *A = f32_value(g, n->in[0]), *B = f32_value(g, n->in[1]);
    const nnm_value *y = f32_value(g, n->out[0]);
    if (!A || !B || !y || !ir__is_const(g, n->in[1]) || B->ndim != 2) return 0;
    if (n->op == NNM_OP_GEMM) {
        const nnm_attrs *a = &n->a;
        if (a->trans_a != 0 || a->alpha != 1.0f || A->ndim != 2 || y->ndim != 2) return 0;
        int64_t k = a->trans_b ? B->shape[1] : B->shape[0];
        int64_t nout = a->trans_b ? B->shape[0] : B->shape[1];
        int cid = n->n_in > 2 ? n->in[2] : -1;
        if (cid >= 0 && !isfinite(a->beta)) return 0;
        if (!extra_inputs_absent(n, 3) || !gemm_bias_ok(g, cid, nout)) return 0;
        return A->shape[1] == k && y->shape[0] == A->shape[0] && y->shape[1] == nout;
    }
    /* MatMul: A [..., K] times a constant [K, N]. */
    if (!extra_inputs_absent(n, 2) || A->ndim < 1) return 0;
    if (A->shape[A->ndim - 1] != B->shape[0]) return 0;
    if (A->ndim == 1) return y->ndim == 1 && y->shape[0] == B->shape[1];
    if (y->ndim != A->ndim || y->shape[y->ndim - 1] != B->shape[1]) return 0;
    for (int i = 0; i < A->ndim - 1; i++)
        if (y->shape[i] != A->shape[i]) return 0;
    return 1;
}

/* Extra bottom/right padding that turns XNNPACK's floor formula into the graph's output
 * extent (ceil_mode); -1 if no amount does it with every window starting inside the image. */
static int64_t pool_extra_pad(int64_t in, int64_t out, int pad0, int pad1, int k, int s, int d)
{
    int64_t dk = (int64_t)d * (k - 1) + 1;
    int64_t need = (out - 1) * s + dk - (in + pad0 + pad1);
    if (need < 0) need = 0;
    if (window_out(in, pad0, pad1 + (int)need, k, s, d) != out) return -1;
    if ((out - 1) * s - pad0 >= in) return -1;
    return need;
}

static int supports_pool(const nnm_graph *g, const nnm_node *n)
{
    const nnm_attrs *a = &n->a;
    /* Pools carry no fused clamp in the IR; a node that says otherwise goes to the reference. */
    if (a->layout != NNM_IR_NHWC || a->spatial_1d || a->act) return 0;
    if (!extra_inputs_absent(n, 1) || n->n_out != 1) return 0;
    const nnm_value *x = f32_value(g, n->in[0]), *y = f32_value(g, n->out[0]);
    if (!x || !y || x->ndim != 4 || y->ndim != 4) return 0;
    if (y->shape[0] != x->shape[0] || y->shape[3] != x->shape[3]) return 0;
    if (n->op == NNM_OP_GLOBAL_AVGPOOL) return y->shape[1] == 1 && y->shape[2] == 1;
    if (n->op == NNM_OP_GLOBAL_MAXPOOL)
        return y->shape[1] == 1 && y->shape[2] == 1 && x->shape[1] * x->shape[2] > 1;
    if (!window_attrs_ok(a) || a->kernel[0] * a->kernel[1] < 2) return 0;
    if (n->op == NNM_OP_AVGPOOL && (a->dilations[0] != 1 || a->dilations[1] != 1)) return 0;
    int any_pad = 0;
    for (int i = 0; i < 2; i++) {
        /* A window lying wholly in the padding has no defined value in XNNPACK. */
        int dk = a->dilations[i] * (a->kernel[i] - 1) + 1;
        if (a->pads[i] >= dk || a->pads[i + 2] >= dk) return 0;
        int64_t e = pool_extra_pad(x->shape[1 + i], y->shape[1 + i], a->pads[i], a->pads[i + 2],
                                   a->kernel[i], a->strides[i], a->dilations[i]);
        if (e < 0) return 0;
        if (e > 0 || a->pads[i] || a->pads[i + 2]) any_pad = 1;
    }
    /* XNNPACK's average excludes padding; with none, both conventions agree. */
    if (n->op == NNM_OP_AVGPOOL && a->count_include_pad && any_pad) return 0;
    return 1;
}

static int supports_binary(const nnm_graph *g, const nnm_node *n)
{
    float lo, hi;
    if (n->n_in != 2 || n->n_out != 1 || !clamp_bounds(&n->a, &lo, &hi)) return 0;
    if (n->op != NNM_OP_ADD && n->a.act) return 0;     /* only Add carries a fused clamp */
    const nnm_value *A = f32_value(g, n->in[0]), *B = f32_value(g, n->in[1]);
    const nnm_value *y = f32_value(g, n->out[0]);
    if (!A || !B || !y) return 0;
    if (A->ndim > XDIMS || B->ndim > XDIMS || y->ndim > XDIMS) return 0;
    int nd = A->ndim > B->ndim ? A->ndim : B->ndim;
    if (y->ndim != nd) return 0;
    for (int i = 0; i < nd; i++) {
        int64_t da = i < nd - A->ndim ? 1 : A->shape[i - (nd - A->ndim)];
        int64_t db = i < nd - B->ndim ? 1 : B->shape[i - (nd - B->ndim)];
        if (da != db && da != 1 && db != 1) return 0;
        if (y->shape[i] != (da > db ? da : db)) return 0;
    }
    return 1;
}

static int supports_unary(const nnm_graph *g, const nnm_node *n)
{
    const nnm_attrs *a = &n->a;
    if (n->n_in != 1 || n->n_out != 1) return 0;
    const nnm_value *x = f32_value(g, n->in[0]), *y = f32_value(g, n->out[0]);
    if (!x || !y || !same_shape(x->shape, x->ndim, y->shape, y->ndim)) return 0;
    switch (n->op) {
    case NNM_OP_CLIP:
        return !isnan(a->act_min) && !isnan(a->act_max) && a->act_min < a->act_max;
    case NNM_OP_RELU:
    case NNM_OP_SIGMOID:
    case NNM_OP_HARD_SWISH:
    case NNM_OP_SQRT:
        return !a->act;
    case NNM_OP_LEAKY_RELU:
        return !a->act && isfinite(a->alpha);
    case NNM_OP_SOFTMAX:
        /* One softmax over the trailing dims [axis, ndim): the last axis, or any axis in the
         * opset < 13 flattening semantics. */
        if (a->act || a->axis < 0 || a->axis >= (x->ndim > 0 ? x->ndim : 1)) return 0;
        return a->legacy_2d || a->axis == x->ndim - 1 || x->ndim == 0;
    default:
        return 0;
    }
}

static int supports_pad(const nnm_graph *g, const nnm_node *n)
{
    const nnm_attrs *a = &n->a;
    if (!extra_inputs_absent(n, 1) || n->n_out != 1 || a->pad_mode != NNM_PAD_CONSTANT) return 0;
    const nnm_value *x = f32_value(g, n->in[0]), *y = f32_value(g, n->out[0]);
    if (!x || !y || x->ndim < 1 || x->ndim > XDIMS || y->ndim != x->ndim) return 0;
    for (int d = 0; d < x->ndim; d++) {
        int p0 = a->pads[d], p1 = a->pads[x->ndim + d];
        if (p0 < 0 || p1 < 0 || y->shape[d] != x->shape[d] + p0 + p1) return 0;
    }
    return 1;
}

/* XNNPACK resize flags for a node's coordinate mode, or -1. */
static int resize_flags(const nnm_attrs *a, int64_t oh, int64_t ow)
{
    switch (a->coord_mode) {
    case NNM_COORD_HALF_PIXEL: return 0;
    case NNM_COORD_PYTORCH_HALF_PIXEL: return oh > 1 && ow > 1 ? 0 : -1;
    case NNM_COORD_ALIGN_CORNERS: return XNN_FLAG_ALIGN_CORNERS;
    case NNM_COORD_ASYMMETRIC: return XNN_FLAG_TENSORFLOW_LEGACY_MODE;
    default: return -1;
    }
}

static int scale_is_ratio(float scale, int64_t out, int64_t in)
{
    double r = (double)out / (double)in;
    return fabs((double)scale - r) <= 1e-6 * r;
}

static int supports_resize(const nnm_graph *g, const nnm_node *n)
{
    const nnm_attrs *a = &n->a;
    if (!extra_inputs_absent(n, 1) || n->n_out != 1 || a->resize_mode != NNM_RESIZE_LINEAR)
        return 0;
    const nnm_value *x = f32_value(g, n->in[0]), *y = f32_value(g, n->out[0]);
    if (!x || !y || x->ndim != 4 || y->ndim != 4) return 0;
    /* Only dims 1 and 2 may change: the tensor is then NHWC for XNNPACK's purpose. */
    if (y->shape[0] != x->shape[0] || y->shape[3] != x->shape[3]) return 0;
    if (a->scales[0] != 1.0f || a->scales[3] != 1.0f) return 0;
    if (!scale_is_ratio(a->scales[1], y->shape[1], x->shape[1]) ||
        !scale_is_ratio(a->scales[2], y->shape[2], x->shape[2]))
        return 0;
    return resize_flags(a, y->shape[1], y->shape[2]) >= 0;
}

/* The layout pass's Transposes: 4-D float32 NCHW <-> NHWC. This snapshot has no f32
 * transpose operator, and the reference kernel's generic strided walk took 0.25 ms (3% of
 * MobileNetV2) for the 3x224x224 input; this is a plain C blocked 2-D transpose. */
static int supports_transpose(const nnm_graph *g, const nnm_node *n)
{
    static const int to_nhwc[4] = { 0, 2, 3, 1 }, to_nchw[4] = { 0, 3, 1, 2 };
    if (n->n_in != 1 || n->n_out != 1 || n->a.act) return 0;
    const nnm_value *x = f32_value(g, n->in[0]), *y = f32_value(g, n->out[0]);
    if (!x || !y || x->ndim != 4 || y->ndim != 4) return 0;
    const int *p = memcmp(n->a.perm, to_nhwc, sizeof to_nhwc) == 0 ? to_nhwc
                 : memcmp(n->a.perm, to_nchw, sizeof to_nchw) == 0 ? to_nchw : NULL;
    if (p == NULL) return 0;
    for (int i = 0; i < 4; i++)
        if (y->shape[i] != x->shape[p[i]]) return 0;
    return 1;
}

/* Columns [c0, c1) of out[j][i] = in[i][j] for an in of rows x cols, in 32 x 32 blocks; a
 * few rows (an RGB image going channels-last) are interleaved directly. */
static void transpose2d(float *out, const float *in, size_t rows, size_t cols, size_t c0,
                        size_t c1)
{
    if (rows == 3) {
        const float *r0 = in, *r1 = in + cols, *r2 = in + 2 * cols;
        for (size_t j = c0; j < c1; j++) {
            out[3 * j] = r0[j];
            out[3 * j + 1] = r1[j];
            out[3 * j + 2] = r2[j];
        }
        return;
    }
    for (size_t i0 = 0; i0 < rows; i0 += 32) {
        size_t i1 = i0 + 32 < rows ? i0 + 32 : rows;
        for (size_t j0 = c0; j0 < c1; j0 += 32) {
            size_t j1 = j0 + 32 < c1 ? j0 + 32 : c1;
            for (size_t j = j0; j < j1; j++)
                for (size_t i = i0; i < i1; i++) out[j * rows + i] = in[i * cols + j];
        }
    }
}

#define TCOLS 8192            /* columns per transpose task */

typedef struct trun {
    const float *x;
    float *y;
    size_t rows, cols, chunks;   /* per image */
} trun;

static void transpose_task(void *arg, size_t i)
{
    const trun *t = arg;
    size_t img = i / t->chunks, c0 = i % t->chunks * TCOLS;
    size_t c1 = c0 + TCOLS < t->cols ? c0 + TCOLS : t->cols;
    size_t off = img * t->rows * t->cols;
    transpose2d(t->y + off, t->x + off, t->rows, t->cols, c0, c1);
}

static int xnn_supports(const nnm_graph *g, const nnm_node *n)
{
    if (g == NULL || n == NULL || n->n_in < 1 || n->n_out < 1 || n->out[0] < 0) return 0;
    if (nnm_xnn_init(NULL) != NNM_OK) return 0;
    switch (n->op) {
    case NNM_OP_CONV:
    case NNM_OP_CONV_TRANSPOSE:
        return n->n_out == 1 && supports_conv(g, n);
    case NNM_OP_GEMM:
    case NNM_OP_MATMUL:
        return n->n_out == 1 && supports_fc(g, n);
    case NNM_OP_MAXPOOL:
    case NNM_OP_AVGPOOL:
    case NNM_OP_GLOBAL_AVGPOOL:
    case NNM_OP_GLOBAL_MAXPOOL:
        return supports_pool(g, n);
    case NNM_OP_ADD: case NNM_OP_SUB: case NNM_OP_MUL: case NNM_OP_DIV:
    case NNM_OP_MAX: case NNM_OP_MIN:
        return supports_binary(g, n);
    case NNM_OP_RELU: case NNM_OP_CLIP: case NNM_OP_SIGMOID: case NNM_OP_HARD_SWISH:
    case NNM_OP_LEAKY_RELU: case NNM_OP_SQRT: case NNM_OP_SOFTMAX:
        return supports_unary(g, n);
    case NNM_OP_PAD:
        return supports_pad(g, n);
    case NNM_OP_RESIZE:
        return supports_resize(g, n);
    case NNM_OP_TRANSPOSE:
        return supports_transpose(g, n);
    default:
        return 0;
    }
}

/* --- own dense convolution kernel (x86-64 AVX2 + FMA) ---------------------------------- *
 *
 * Why: the Debian build of this snapshot compiles XNNPACK's f32 GEMM/IGEMM microkernel for
 * AVX2 (5x16 fma3_broadcast) with GCC, which runs out of the 16 ymm registers and keeps
 * one accumulator on the stack: every step of the inner loop then waits for an FMA, a
 * store and a store-to-load forward of the same stack slot (perf: ~70% of MobileNetV2's
 * samples on the instructions around that spill), about half the machine's FMA rate.
 * So group-1 convolutions (1x1 as a GEMM, kxk as an indirect GEMM) run on the kernel
 * below instead, when the CPU has AVX2 and FMA; depthwise convolutions, pools and the rest
 * stay on XNNPACK, whose kernels for them are fine. NNMESH_GEMM=xnn in the environment
 * turns this off (for A/B measurements).
 *
 * Layout: the weights are packed per panel of 16 output channels as [panel][tap][c][16]
 * (tap = ky * kW + kx), zero-padded past the last channel, and the bias as [panel][16].
 * The microkernel computes 6 output pixels x 16 channels: 12 accumulators, 2 weight
 * vectors and 1 broadcast fit the 16 ymm registers. Input rows are read through one
 * pointer per pixel and tap (a pointer to zeros for padding taps), so 1x1 and kxk
 * convolutions share it. Tiles of pixels x panels are spread over the thread pool. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(NNM_NO_OWN_GEMM)
#define OWN_GEMM 1
#include <immintrin.h>
#endif

#define GMR 6
#define GNR 16
#define GPTRS 2048            /* input row pointers of one tile, on the stack */

typedef struct gconv {
    float *w;                 /* [panels][taps][c][16] */
    float *bias;              /* [panels][16] */
    float *zero;              /* c zeros: the input of a padding tap */
    size_t c, n, panels, taps;
    size_t ih, iw, oh, ow;
    uint32_t kh, kw, sh, sw, dh, dw, pt, pl;
    float lo, hi;
    size_t tile_m, tile_n;    /* thread-pool tiles: pixels, channels (multiple of 16) */
    int pointwise;            /* 1x1, stride 1, no padding: pixel p reads x + p * c */
    size_t chunk_taps;        /* taps per slice of the reduction (see gconv_tile) */
    size_t *tap_off;          /* floats from a window's corner pixel to each tap's pixel */
    size_t span_h, span_w;    /* window extent - 1 (dilated); ih > span_h, iw > span_w */
} gconv;

typedef struct grun {
    const gconv *k;
    const float *x;
    float *y;
    size_t m;                 /* output pixels */
} grun;

static void gconv_free(gconv *k)
{
    if (k == NULL) return;
    free(k->tap_off);
    free(k->w);
    free(k->bias);
    free(k->zero);
    free(k);
}

/* --- the own kernels' work pool ------------------------------------------------------- *
 *
 * pthreadpool (which XNNPACK needs) makes the calling thread wait until every worker has
 * checked in for every parallel call. On a board where another process holds a core, a
 * descheduled worker then costs a scheduler time slice per layer (measured here with a
 * busy process on the other core: MobileNetV2 at 2 threads took 430 ms instead of 9).
 * The own kernels run on this pool instead: tiles are claimed one at a time from a shared
 * counter, the caller claims too, and it waits only for tiles a worker has actually
 * started; a worker that wakes late finds nothing left. One process-wide pool, created on
 * first use with the largest thread count asked for; workers spin briefly between layers,
 * then sleep on a condition variable. One parallel call at a time: a second caller
 * (another executor on another thread) runs its tiles inline. */
#ifdef OWN_GEMM
#include <sched.h>
#include <stdatomic.h>

#define POOL_MAX 64
#define POOL_SPIN 4000

typedef void (*tile_fn)(void *arg, size_t i);

static struct {
    pthread_mutex_t mu;        /* guards sleeping workers and pool growth */
    pthread_cond_t cv;
    pthread_mutex_t busy;      /* one parallel call at a time */
    int workers;
    _Atomic uint32_t gen;      /* generation of the current job */
    _Atomic uint64_t claim;    /* gen << 32 | next tile index */
    _Atomic size_t done;       /* tiles finished in the current job */
    _Atomic(tile_fn) fn;
    _Atomic(void *) arg;
    _Atomic uint32_t n;
} wp = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER,
          .busy = PTHREAD_MUTEX_INITIALIZER };

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* Runs tiles of generation g until none is left; returns how many it ran. */
static size_t pool_drain(uint32_t g, tile_fn fn, void *arg, uint32_t n)
{
    size_t ran = 0;
    for (;;) {
        uint64_t c = atomic_load(&wp.claim);
        if ((uint32_t)(c >> 32) != g || (uint32_t)c >= n) break;
        if (!atomic_compare_exchange_weak(&wp.claim, &c, c + 1)) continue;
        fn(arg, (uint32_t)c);
        atomic_fetch_add(&wp.done, 1);
        ran++;
    }
    return ran;
}

static void *pool_worker(void *unused)
{
    (void)unused;
    uint32_t seen = atomic_load(&wp.gen);
    for (;;) {
        uint32_t g = seen;
        /* Spin a little (the next layer comes within microseconds), then yield the core
         * for a while (the caller may be waiting for it on a busy machine), then sleep. */
        for (int i = 0; i < POOL_SPIN && (g = atomic_load(&wp.gen)) == seen; i++) {
            if (i < POOL_SPIN / 10) cpu_relax();
            else sched_yield();
        }
        if (g == seen) {
            pthread_mutex_lock(&wp.mu);
            while ((g = atomic_load(&wp.gen)) == seen) pthread_cond_wait(&wp.cv, &wp.mu);
            pthread_mutex_unlock(&wp.mu);
        }
        seen = g;
        /* fn, arg and n are stored before gen; if a newer job has started since, its
         * claim word carries another generation and pool_drain runs nothing. */
        pool_drain(g, atomic_load(&wp.fn), atomic_load(&wp.arg), atomic_load(&wp.n));
    }
    return NULL;
}

/* Ensures `want` workers exist (as many as could be started). */
static void pool_grow(int want)
{
    if (want > POOL_MAX) want = POOL_MAX;
    pthread_mutex_lock(&wp.mu);
    while (wp.workers < want) {
        pthread_t t;
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        int rc = pthread_create(&t, &at, pool_worker, NULL);
        pthread_attr_destroy(&at);
        if (rc != 0) break;
        wp.workers++;
    }
    pthread_mutex_unlock(&wp.mu);
}

/* Runs fn(arg, i) for i in [0, n) on up to `threads` threads (the caller included). */
static void pool_run(int threads, tile_fn fn, void *arg, size_t n)
{
    if (threads <= 1 || n <= 1 || n > UINT32_MAX || pthread_mutex_trylock(&wp.busy) != 0) {
        for (size_t i = 0; i < n; i++) fn(arg, i);
        return;
    }
    pool_grow(threads - 1);
    /* The claim word moves to the new generation first, so a worker still holding the
     * previous one claims nothing; the job is published by the store to gen. */
    uint32_t g = atomic_load(&wp.gen) + 1;
    atomic_store(&wp.claim, (uint64_t)g << 32);
    atomic_store(&wp.fn, fn);
    atomic_store(&wp.arg, arg);
    atomic_store(&wp.n, (uint32_t)n);
    atomic_store(&wp.done, 0);
    atomic_store(&wp.gen, g);
    pthread_mutex_lock(&wp.mu);
    pthread_cond_broadcast(&wp.cv);
    pthread_mutex_unlock(&wp.mu);
    pool_drain(g, fn, arg, (uint32_t)n);
    /* Only tiles a worker has claimed are outstanding; each is short. */
    for (int i = 0; atomic_load(&wp.done) < n; i++) {
        if (i < POOL_SPIN) cpu_relax();
        else sched_yield();
    }
    pthread_mutex_unlock(&wp.busy);
}
#else
typedef void (*tile_fn)(void *arg, size_t i);

static void pool_run(int threads, tile_fn fn, void *arg, size_t n)
{
    (void)threads;
    for (size_t i = 0; i < n; i++) fn(arg, i);
}
#endif

#ifdef OWN_GEMM
static int own_gemm_enabled(void)
{
    static int on = -1;
    if (on < 0) {
        const char *e = getenv("NNMESH_GEMM");
        __builtin_cpu_init();
        on = (e == NULL || strcmp(e, "xnn") != 0) && __builtin_cpu_supports("avx2") &&
             __builtin_cpu_supports("fma");
    }
    return on;
}

/* 6x16 tile: rows r < mr of y (row stride ystride floats), nc <= 16 valid channels.
 * a[t * GMR + r] is the input row of pixel r at tap t (c floats). */
/* Initial accumulators of one output row: the bias, or (bias NULL: a later slice of the
 * taps) the partial sums already in y, of which nc <= 16 are valid. */
static inline __attribute__((always_inline, target("avx2,fma")))
void acc_init(const float *bias, const float *y, size_t nc, __m256 *v0, __m256 *v1)
{
    if (bias != NULL) {
        *v0 = _mm256_loadu_ps(bias);
        *v1 = _mm256_loadu_ps(bias + 8);
    } else if (nc == GNR) {
        *v0 = _mm256_loadu_ps(y);
        *v1 = _mm256_loadu_ps(y + 8);
    } else {
        float tmp[GNR] = { 0 };
        memcpy(tmp, y, nc * sizeof *tmp);
        *v0 = _mm256_loadu_ps(tmp);
        *v1 = _mm256_loadu_ps(tmp + 8);
    }
}

static inline __attribute__((always_inline, target("avx2,fma")))
void ukernel_6x16_body(size_t mr, size_t nc, size_t taps, size_t c, const float *const *a,
                       const float *w, const float *bias, float *y, size_t ystride, float lo,
                       float hi)
{
    __m256 c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51;
    acc_init(bias, y, nc, &c00, &c01);
    if (bias != NULL) {
        c10 = c20 = c30 = c40 = c50 = c00;
        c11 = c21 = c31 = c41 = c51 = c01;
    } else {
        acc_init(NULL, y + (1 < mr ? 1 : 0) * ystride, nc, &c10, &c11);
        acc_init(NULL, y + (2 < mr ? 2 : 0) * ystride, nc, &c20, &c21);
        acc_init(NULL, y + (3 < mr ? 3 : 0) * ystride, nc, &c30, &c31);
        acc_init(NULL, y + (4 < mr ? 4 : 0) * ystride, nc, &c40, &c41);
        acc_init(NULL, y + (5 < mr ? 5 : 0) * ystride, nc, &c50, &c51);
    }
    for (size_t t = 0; t < taps; t++) {
        const float *a0 = a[0], *a1 = a[1], *a2 = a[2], *a3 = a[3], *a4 = a[4], *a5 = a[5];
        a += GMR;
        for (size_t k = 0; k < c; k++) {
            const __m256 b0 = _mm256_loadu_ps(w), b1 = _mm256_loadu_ps(w + 8);
            w += GNR;
            __m256 v = _mm256_broadcast_ss(a0 + k);
            c00 = _mm256_fmadd_ps(v, b0, c00);
            c01 = _mm256_fmadd_ps(v, b1, c01);
            v = _mm256_broadcast_ss(a1 + k);
            c10 = _mm256_fmadd_ps(v, b0, c10);
            c11 = _mm256_fmadd_ps(v, b1, c11);
            v = _mm256_broadcast_ss(a2 + k);
            c20 = _mm256_fmadd_ps(v, b0, c20);
            c21 = _mm256_fmadd_ps(v, b1, c21);
            v = _mm256_broadcast_ss(a3 + k);
            c30 = _mm256_fmadd_ps(v, b0, c30);
            c31 = _mm256_fmadd_ps(v, b1, c31);
            v = _mm256_broadcast_ss(a4 + k);
            c40 = _mm256_fmadd_ps(v, b0, c40);
            c41 = _mm256_fmadd_ps(v, b1, c41);
            v = _mm256_broadcast_ss(a5 + k);
            c50 = _mm256_fmadd_ps(v, b0, c50);
            c51 = _mm256_fmadd_ps(v, b1, c51);
        }
    }
    const __m256 vlo = _mm256_set1_ps(lo), vhi = _mm256_set1_ps(hi);
    __m256 r[GMR][2] = { { c00, c01 }, { c10, c11 }, { c20, c21 },
                         { c30, c31 }, { c40, c41 }, { c50, c51 } };
    for (size_t i = 0; i < mr; i++, y += ystride) {
        __m256 v0 = _mm256_min_ps(_mm256_max_ps(r[i][0], vlo), vhi);
        __m256 v1 = _mm256_min_ps(_mm256_max_ps(r[i][1], vlo), vhi);
        if (nc == GNR) {
            _mm256_storeu_ps(y, v0);
            _mm256_storeu_ps(y + 8, v1);
        } else {
            float tmp[GNR];
            _mm256_storeu_ps(tmp, v0);
            _mm256_storeu_ps(tmp + 8, v1);
            memcpy(y, tmp, nc * sizeof *tmp);
        }
    }
}

__attribute__((target("avx2,fma")))
static void ukernel_6x16(size_t mr, size_t nc, size_t taps, size_t c, const float *const *a,
                         const float *w, const float *bias, float *y, size_t ystride, float lo,
                         float hi)
{
    ukernel_6x16_body(mr, nc, taps, c, a, w, bias, y, ystride, lo, hi);
}

/* The same for 3 input channels (an RGB stem): the compiler unrolls the channel loop. */
__attribute__((target("avx2,fma")))
static void ukernel_6x16_c3(size_t mr, size_t nc, size_t taps, const float *const *a,
                            const float *w, const float *bias, float *y, size_t ystride,
                            float lo, float hi)
{
    ukernel_6x16_body(mr, nc, taps, 3, a, w, bias, y, ystride, lo, hi);
}

/* 6x8 tile for a last panel with at most 8 channels (24 = 16 + 8 is common): half the
 * multiply-adds of running the zero-padded 6x16 tile. Weights keep the 16-wide panel. */
__attribute__((target("avx2,fma")))
static void ukernel_6x8(size_t mr, size_t nc, size_t taps, size_t c, const float *const *a,
                        const float *w, const float *bias, float *y, size_t ystride, float lo,
                        float hi)
{
    __m256 c0, c1, c2, c3, c4, c5, unused;
    acc_init(bias, y, nc, &c0, &unused);
    if (bias != NULL) {
        c1 = c2 = c3 = c4 = c5 = c0;
    } else {
        acc_init(NULL, y + (1 < mr ? 1 : 0) * ystride, nc, &c1, &unused);
        acc_init(NULL, y + (2 < mr ? 2 : 0) * ystride, nc, &c2, &unused);
        acc_init(NULL, y + (3 < mr ? 3 : 0) * ystride, nc, &c3, &unused);
        acc_init(NULL, y + (4 < mr ? 4 : 0) * ystride, nc, &c4, &unused);
        acc_init(NULL, y + (5 < mr ? 5 : 0) * ystride, nc, &c5, &unused);
    }
    for (size_t t = 0; t < taps; t++) {
        const float *a0 = a[0], *a1 = a[1], *a2 = a[2], *a3 = a[3], *a4 = a[4], *a5 = a[5];
        a += GMR;
        for (size_t k = 0; k < c; k++) {
            const __m256 b = _mm256_loadu_ps(w);
            w += GNR;
            c0 = _mm256_fmadd_ps(_mm256_broadcast_ss(a0 + k), b, c0);
            c1 = _mm256_fmadd_ps(_mm256_broadcast_ss(a1 + k), b, c1);
            c2 = _mm256_fmadd_ps(_mm256_broadcast_ss(a2 + k), b, c2);
            c3 = _mm256_fmadd_ps(_mm256_broadcast_ss(a3 + k), b, c3);
            c4 = _mm256_fmadd_ps(_mm256_broadcast_ss(a4 + k), b, c4);
            c5 = _mm256_fmadd_ps(_mm256_broadcast_ss(a5 + k), b, c5);
        }
    }
    const __m256 vlo = _mm256_set1_ps(lo), vhi = _mm256_set1_ps(hi);
    __m256 r[GMR] = { c0, c1, c2, c3, c4, c5 };
    for (size_t i = 0; i < mr; i++, y += ystride) {
        __m256 v = _mm256_min_ps(_mm256_max_ps(r[i], vlo), vhi);
        if (nc == 8) {
            _mm256_storeu_ps(y, v);
        } else {
            float tmp[8];
            _mm256_storeu_ps(tmp, v);
            memcpy(y, tmp, nc * sizeof *tmp);
        }
    }
}

/* 1x16 tile (one pixel or one row of a fully connected layer): the two halves of even
 * and odd steps accumulate apart, so four chains of multiply-adds are in flight. */
__attribute__((target("avx2,fma")))
static void ukernel_1x16(size_t nc, size_t taps, size_t c, const float *const *a,
                         const float *w, const float *bias, float *y, float lo, float hi)
{
    __m256 c0, c1;
    acc_init(bias, y, nc, &c0, &c1);
    __m256 d0 = _mm256_setzero_ps(), d1 = _mm256_setzero_ps();
    for (size_t t = 0; t < taps; t++) {
        const float *a0 = a[t * GMR];
        size_t k = 0;
        for (; k + 2 <= c; k += 2, w += 2 * GNR) {
            __m256 v = _mm256_broadcast_ss(a0 + k);
            c0 = _mm256_fmadd_ps(v, _mm256_loadu_ps(w), c0);
            c1 = _mm256_fmadd_ps(v, _mm256_loadu_ps(w + 8), c1);
            v = _mm256_broadcast_ss(a0 + k + 1);
            d0 = _mm256_fmadd_ps(v, _mm256_loadu_ps(w + 16), d0);
            d1 = _mm256_fmadd_ps(v, _mm256_loadu_ps(w + 24), d1);
        }
        if (k < c) {
            __m256 v = _mm256_broadcast_ss(a0 + k);
            c0 = _mm256_fmadd_ps(v, _mm256_loadu_ps(w), c0);
            c1 = _mm256_fmadd_ps(v, _mm256_loadu_ps(w + 8), c1);
            w += GNR;
        }
    }
    const __m256 vlo = _mm256_set1_ps(lo), vhi = _mm256_set1_ps(hi);
    __m256 v0 = _mm256_min_ps(_mm256_max_ps(_mm256_add_ps(c0, d0), vlo), vhi);
    __m256 v1 = _mm256_min_ps(_mm256_max_ps(_mm256_add_ps(c1, d1), vlo), vhi);
    if (nc == GNR) {
        _mm256_storeu_ps(y, v0);
        _mm256_storeu_ps(y + 8, v1);
    } else {
        float tmp[GNR];
        _mm256_storeu_ps(tmp, v0);
        _mm256_storeu_ps(tmp + 8, v1);
        memcpy(y, tmp, nc * sizeof *tmp);
    }
}

/* One thread-pool tile: pixels [m0, m0 + tm) x channels [n0, n0 + tn). The input rows of
 * the tile's pixels are looked up once; then each 16-channel weight panel is swept over all
 * of the tile's pixels, so the panel and the tile's rows stay in cache together. */
static void gconv_tile(void *arg, size_t m0, size_t n0, size_t tm, size_t tn)
{
    const grun *g = arg;
    const gconv *k = g->k;
    size_t blocks = (tm + GMR - 1) / GMR, per = k->taps * GMR;
    const float *stack[GPTRS];
    const float **ap = stack;
    if (blocks * per > sizeof stack / sizeof *stack) {
        ap = malloc(blocks * per * sizeof *ap);
        if (ap == NULL) return;     /* not reached: gconv_tiles keeps tiles within GPTRS */
    }
    size_t last = m0 + tm - 1;       /* rows past the tile repeat its last pixel */
    if (k->pointwise) {
        for (size_t i = 0; i < blocks * GMR; i++) {
            size_t p = m0 + i <= last ? m0 + i : last;
            ap[i] = g->x + p * k->c;
        }
    } else {
        size_t plane = k->oh * k->ow;
        size_t b = m0 / plane, oy = m0 % plane / k->ow, ox = m0 % k->ow;
        for (size_t i = 0; i < blocks * GMR; i++) {
            const float **dst = ap + i / GMR * per + i % GMR;
            if (m0 + i > last) {       /* repeat the last real row */
                for (size_t t = 0; t < k->taps; t++) dst[t * GMR] = dst[t * GMR - 1];
                continue;
            }
            size_t iy0 = oy * k->sh - k->pt, ix0 = ox * k->sw - k->pl;   /* may wrap */
            if (iy0 < k->ih - k->span_h && ix0 < k->iw - k->span_w) {
                /* The whole window is inside the image: fixed offsets from its corner. */
                const float *corner = g->x + ((b * k->ih + iy0) * k->iw + ix0) * k->c;
                for (size_t t = 0; t < k->taps; t++) dst[t * GMR] = corner + k->tap_off[t];
            } else {
                for (size_t ky = 0; ky < k->kh; ky++) {
                    size_t iy = iy0 + ky * k->dh;
                    for (size_t kx = 0; kx < k->kw; kx++) {
                        size_t ix = ix0 + kx * k->dw;
                        const float *row = k->zero;
                        if (iy < k->ih && ix < k->iw)
                            row = g->x + ((b * k->ih + iy) * k->iw + ix) * k->c;
                        dst[(ky * k->kw + kx) * GMR] = row;
                    }
                }
            }
            if (++ox == k->ow) {
                ox = 0;
                if (++oy == k->oh) { oy = 0; b++; }
            }
        }
    }
    /* Taps in slices of chunk_taps, so that a panel's slice of weights stays in L1 while
     * the tile's pixels pass; later slices add to the partial sums in y, the last clamps. */
    for (size_t t0 = 0; t0 < k->taps; t0 += k->chunk_taps) {
        size_t nt = k->taps - t0 < k->chunk_taps ? k->taps - t0 : k->chunk_taps;
        int last_slice = t0 + nt == k->taps;
        float lo = last_slice ? k->lo : -INFINITY, hi = last_slice ? k->hi : INFINITY;
        for (size_t n = n0; n < n0 + tn && n < k->n; n += GNR) {
            size_t p = n / GNR;
            size_t nc = k->n - n < GNR ? k->n - n : GNR;
            const float *w = k->w + (p * k->taps + t0) * k->c * GNR;
            const float *bias = t0 == 0 ? k->bias + p * GNR : NULL;
            for (size_t bi = 0; bi < blocks; bi++) {
                size_t m = m0 + bi * GMR;
                size_t mr = m0 + tm - m < GMR ? m0 + tm - m : GMR;
                const float *const *a = ap + bi * per + t0 * GMR;
                float *y = g->y + m * k->n + n;
                if (mr == 1)
                    ukernel_1x16(nc, nt, k->c, a, w, bias, y, lo, hi);
                else if (nc <= 8)
                    ukernel_6x8(mr, nc, nt, k->c, a, w, bias, y, k->n, lo, hi);
                else if (k->c == 3)
                    ukernel_6x16_c3(mr, nc, nt, a, w, bias, y, k->n, lo, hi);
                else
                    ukernel_6x16(mr, nc, nt, k->c, a, w, bias, y, k->n, lo, hi);
            }
        }
    }
    if (ap != stack) free(ap);
}

/* Tiles for the pool. A pixel tile's input rows (tm x taps x c floats) should stay in
 * L2 while every weight panel streams past them, so tm is the most pixels whose rows fit
 * in 192 KiB (at most 512, a multiple of 6), evened out over the tiles; the weights are
 * then read once per pixel tile (small late layers: once). With threads, channel tiles
 * are split first, then pixel tiles, until there are about 8 tiles per thread (tiles are
 * claimed as threads come free: finer tiles even out a core that runs something else). */
static void gconv_tiles(gconv *k, size_t m, int threads)
{
    /* A panel's weights are taps * c * 64 bytes: above 48 KiB, slice the taps so that a
     * slice takes at most 32 KiB (at least one tap). */
    size_t tap_bytes = k->c * GNR * sizeof(float);
    k->chunk_taps = k->taps;
    if (k->taps * tap_bytes > 48 * 1024) {
        k->chunk_taps = 32 * 1024 / tap_bytes;
        if (k->chunk_taps < 1) k->chunk_taps = 1;
    }
    size_t row = k->chunk_taps * k->c * sizeof(float);
    size_t fit = (192 * 1024 / row) / GMR * GMR;
    if (fit > 512) fit = 512;
    /* The tile's row pointers must fit gconv_tile's stack array (GPTRS). */
    if (fit > GPTRS / (k->taps * GMR) * GMR) fit = GPTRS / (k->taps * GMR) * GMR;
    if (fit < GMR) fit = GMR;
    size_t nt = (m + fit - 1) / fit;
    size_t tm = ((m + nt - 1) / nt + GMR - 1) / GMR * GMR, tn = k->panels * GNR;
    size_t want = threads > 1 ? 8 * (size_t)threads : 1;
    while (((m + tm - 1) / tm) * ((k->panels * GNR + tn - 1) / tn) < want) {
        if (tn > GNR) tn = (tn / GNR + 1) / 2 * GNR;
        else if (tm > GMR) tm = (tm / GMR + 1) / 2 * GMR;
        else break;
    }
    k->tile_m = tm;
    k->tile_n = tn;
}

/* 1 if the own kernel takes this (already supported) convolution. */
static int gconv_takes(const nnm_graph *g, const nnm_node *n)
{
    if (!own_gemm_enabled() || n->op != NNM_OP_CONV || n->a.group != 1) return 0;
    const nnm_value *w = &g->values[n->in[1]];
    /* Few input channels per tap (a 3-channel stem) waste the pointer set-up. */
    return w->shape[2] * w->shape[3] <= 64;
}

static nnm_err gconv_prepare(gconv **out, const nnm_graph *g, const nnm_node *n, int threads)
{
    const nnm_attrs *a = &n->a;
    const nnm_value *x = &g->values[n->in[0]], *wv = &g->values[n->in[1]];
    const nnm_value *y = &g->values[n->out[0]];
    const float *w = wv->data;
    const float *bias = n->n_in > 2 && n->in[2] >= 0 ? g->values[n->in[2]].data : NULL;
    gconv *k = calloc(1, sizeof *k);
    if (k == NULL) return NNM_ENOMEM;
    k->n = (size_t)wv->shape[0];
    k->c = (size_t)wv->shape[1];
    k->kh = (uint32_t)a->kernel[0];
    k->kw = (uint32_t)a->kernel[1];
    k->taps = (size_t)k->kh * k->kw;
    k->panels = (k->n + GNR - 1) / GNR;
    k->ih = (size_t)x->shape[1];
    k->iw = (size_t)x->shape[2];
    k->oh = (size_t)y->shape[1];
    k->ow = (size_t)y->shape[2];
    k->sh = (uint32_t)a->strides[0];
    k->sw = (uint32_t)a->strides[1];
    k->dh = (uint32_t)a->dilations[0];
    k->dw = (uint32_t)a->dilations[1];
    k->pt = (uint32_t)a->pads[0];
    k->pl = (uint32_t)a->pads[1];
    k->pointwise = k->taps == 1 && k->sh == 1 && k->sw == 1 && k->pt == 0 && k->pl == 0 &&
                   a->pads[2] == 0 && a->pads[3] == 0;
    clamp_bounds(a, &k->lo, &k->hi);
    k->span_h = (size_t)k->dh * (k->kh - 1);
    k->span_w = (size_t)k->dw * (k->kw - 1);
    k->tap_off = malloc(k->taps * sizeof *k->tap_off);
    if (k->tap_off == NULL || k->span_h >= k->ih || k->span_w >= k->iw) {
        /* A window larger than the image never lies inside it: border path only. */
        if (k->tap_off == NULL) {
            gconv_free(k);
            return NNM_ENOMEM;
        }
        k->span_h = k->ih;
        k->span_w = k->iw;
    }
    for (size_t ky = 0; ky < k->kh; ky++)
        for (size_t kx = 0; kx < k->kw; kx++)
            k->tap_off[ky * k->kw + kx] = (ky * k->dh * k->iw + kx * k->dw) * k->c;
    size_t wn = k->panels * k->taps * k->c * GNR;
    k->w = aligned_alloc(64, (wn * sizeof(float) + 63) / 64 * 64);
    k->bias = calloc(k->panels * GNR, sizeof(float));
    k->zero = calloc(k->c, sizeof(float));
    if (!k->w || !k->bias || !k->zero) {
        gconv_free(k);
        return NNM_ENOMEM;
    }
    memset(k->w, 0, wn * sizeof(float));
    /* ONNX OIHW [n][c][ky][kx] -> [panel][tap][c][16]. */
    for (size_t o = 0; o < k->n; o++) {
        float *dst = k->w + (o / GNR) * k->taps * k->c * GNR + o % GNR;
        for (size_t ci = 0; ci < k->c; ci++)
            for (size_t t = 0; t < k->taps; t++)
                dst[(t * k->c + ci) * GNR] = w[(o * k->c + ci) * k->taps + t];
        if (bias) k->bias[o] = bias[o];
    }
    gconv_tiles(k, (size_t)y->shape[0] * k->oh * k->ow, threads);
    *out = k;
    return NNM_OK;
}

/* A fully connected layer as a 1x1 convolution over m rows: B is [k][n] when
 * transposed (MatMul, Gemm transB = 0), else [n][k]; bias holds n values or is NULL. */
static nnm_err gfc_prepare(gconv **out, const float *B, int transposed, size_t kin, size_t nout,
                           const float *bias, float lo, float hi, size_t m, int threads)
{
    gconv *k = calloc(1, sizeof *k);
    if (k == NULL) return NNM_ENOMEM;
    k->n = nout;
    k->c = kin;
    k->kh = k->kw = k->sh = k->sw = k->dh = k->dw = 1;
    k->taps = 1;
    k->panels = (nout + GNR - 1) / GNR;
    k->ih = k->oh = m;
    k->iw = k->ow = 1;
    k->pointwise = 1;
    k->lo = lo;
    k->hi = hi;
    size_t wn = k->panels * kin * GNR;
    k->w = aligned_alloc(64, (wn * sizeof(float) + 63) / 64 * 64);
    k->bias = calloc(k->panels * GNR, sizeof(float));
    k->zero = calloc(1, sizeof(float));
    if (!k->w || !k->bias || !k->zero) {
        gconv_free(k);
        return NNM_ENOMEM;
    }
    memset(k->w, 0, wn * sizeof(float));
    for (size_t o = 0; o < nout; o++) {
        float *dst = k->w + (o / GNR) * kin * GNR + o % GNR;
        for (size_t ci = 0; ci < kin; ci++)
            dst[ci * GNR] = transposed ? B[ci * nout + o] : B[o * kin + ci];
        if (bias) k->bias[o] = bias[o];
    }
    gconv_tiles(k, m, threads);
    *out = k;
    return NNM_OK;
}

static void gconv_task(void *arg, size_t i)
{
    const grun *g = arg;
    const gconv *k = g->k;
    size_t tn = (k->panels * GNR + k->tile_n - 1) / k->tile_n;
    size_t m0 = i / tn * k->tile_m, n0 = i % tn * k->tile_n;
    size_t m = g->m - m0 < k->tile_m ? g->m - m0 : k->tile_m;
    gconv_tile(arg, m0, n0, m, k->tile_n);
}

static void gconv_run(const gconv *k, const float *x, float *y, size_t batch, int threads)
{
    grun g = { k, x, y, batch * k->oh * k->ow };
    size_t tm = (g.m + k->tile_m - 1) / k->tile_m;
    size_t tn = (k->panels * GNR + k->tile_n - 1) / k->tile_n;
    pool_run(threads, gconv_task, &g, tm * tn);
}
#else
static int own_gemm_enabled(void) { return 0; }
static int gconv_takes(const nnm_graph *g, const nnm_node *n) { (void)g; (void)n; return 0; }
static nnm_err gconv_prepare(gconv **out, const nnm_graph *g, const nnm_node *n, int threads)
{
    (void)out; (void)g; (void)n; (void)threads;
    return NNM_EUNSUPPORTED;
}
static void gconv_run(const gconv *k, const float *x, float *y, size_t batch, int threads)
{
    (void)k; (void)x; (void)y; (void)batch; (void)threads;
}
static nnm_err gfc_prepare(gconv **out, const float *B, int transposed, size_t kin, size_t nout,
                           const float *bias, float lo, float hi, size_t m, int threads)
{
    (void)out; (void)B; (void)transposed; (void)kin; (void)nout; (void)bias; (void)lo;
    (void)hi; (void)m; (void)threads;
    return NNM_EUNSUPPORTED;
}
#endif

/* Depthwise 3x3 (one output channel per input channel, C a multiple of 8) on the same
 * AVX2 + FMA condition. XNNPACK's depthwise kernel loads its 9 weights with every output
 * pixel; this one keeps them in registers for a whole output row of one 8-channel block,
 * so each multiply-add needs one load. Padding rows read a row of zeros with pixel
 * stride 0; the border pixels of a row, where a window crosses the left or right edge,
 * take a checked path. Weights packed [C/8][9][8]. */
typedef struct dwconv {
    float *w;                 /* [C/8][9][8] */
    float *bias;              /* [C] */
    float *zero;              /* C zeros */
    size_t c, ih, iw, oh, ow;
    uint32_t sh, sw, pt, pl;
    float lo, hi;
} dwconv;

typedef struct dwrun {
    const dwconv *k;
    const float *x;
    float *y;
    size_t tile;              /* channel blocks per task */
} dwrun;

static void dwconv_free(dwconv *k)
{
    if (k == NULL) return;
    free(k->w);
    free(k->bias);
    free(k->zero);
    free(k);
}

#ifdef OWN_GEMM
/* Output row `row` (batch * oh + oy) for channel blocks [cb0, cb0 + ncb). */
__attribute__((target("avx2,fma")))
static void dwconv_row(void *arg, size_t row, size_t cb0, size_t ncb)
{
    const dwrun *d = arg;
    const dwconv *k = d->k;
    size_t b = row / k->oh, oy = row % k->oh, c = k->c;
    const float *rows[3];
    size_t rstride[3];                       /* floats between horizontally adjacent pixels */
    for (int ky = 0; ky < 3; ky++) {
        size_t iy = oy * k->sh + (size_t)ky - k->pt;
        if (iy < k->ih) {
            rows[ky] = d->x + (b * k->ih + iy) * k->iw * c;
            rstride[ky] = c;
        } else {
            rows[ky] = k->zero;
            rstride[ky] = 0;
        }
    }
    /* Interior pixels: ox * sw - pl >= 0 and ox * sw - pl + 2 < iw. */
    size_t lo_x = (k->pl + k->sw - 1) / k->sw;
    size_t hi_x = k->iw + k->pl >= 3 ? (k->iw + k->pl - 3) / k->sw + 1 : 0;
    if (hi_x > k->ow) hi_x = k->ow;
    if (lo_x > hi_x) lo_x = hi_x;
    const __m256 vlo = _mm256_set1_ps(k->lo), vhi = _mm256_set1_ps(k->hi);
    float *yrow = d->y + row * k->ow * c;
    for (size_t cb = cb0; cb < cb0 + ncb; cb++) {
        size_t co = cb * 8;
        const float *w = k->w + cb * 72;
        const __m256 w0 = _mm256_loadu_ps(w), w1 = _mm256_loadu_ps(w + 8),
                     w2 = _mm256_loadu_ps(w + 16), w3 = _mm256_loadu_ps(w + 24),
                     w4 = _mm256_loadu_ps(w + 32), w5 = _mm256_loadu_ps(w + 40),
                     w6 = _mm256_loadu_ps(w + 48), w7 = _mm256_loadu_ps(w + 56),
                     w8 = _mm256_loadu_ps(w + 64);
        const __m256 vb = _mm256_loadu_ps(k->bias + co);
        /* Border pixels: checked taps. */
        for (size_t ox = 0; ox < k->ow; ox++) {
            if (ox == lo_x) ox = hi_x;
            if (ox >= k->ow) break;
            __m256 acc = vb;
            for (int ky = 0; ky < 3; ky++)
                for (int kx = 0; kx < 3; kx++) {
                    size_t ix = ox * k->sw + (size_t)kx - k->pl;
                    if (ix >= k->iw) continue;
                    acc = _mm256_fmadd_ps(_mm256_loadu_ps(rows[ky] + ix * rstride[ky] + co),
                                          _mm256_loadu_ps(w + (ky * 3 + kx) * 8), acc);
                }
            acc = _mm256_min_ps(_mm256_max_ps(acc, vlo), vhi);
            _mm256_storeu_ps(yrow + ox * c + co, acc);
        }
        const size_t s0 = rstride[0], s1 = rstride[1], s2 = rstride[2];
        const size_t step0 = s0 * k->sw, step1 = s1 * k->sw, step2 = s2 * k->sw;
        size_t ix0 = lo_x * k->sw - k->pl;
        const float *r0 = rows[0] + ix0 * s0 + co, *r1 = rows[1] + ix0 * s1 + co,
                    *r2 = rows[2] + ix0 * s2 + co;
        float *out = yrow + lo_x * c + co;
        for (size_t ox = lo_x; ox < hi_x; ox++) {
            __m256 a0 = _mm256_fmadd_ps(_mm256_loadu_ps(r0), w0, vb);
            __m256 a1 = _mm256_mul_ps(_mm256_loadu_ps(r1), w3);
            __m256 a2 = _mm256_mul_ps(_mm256_loadu_ps(r2), w6);
            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(r0 + s0), w1, a0);
            a1 = _mm256_fmadd_ps(_mm256_loadu_ps(r1 + s1), w4, a1);
            a2 = _mm256_fmadd_ps(_mm256_loadu_ps(r2 + s2), w7, a2);
            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(r0 + 2 * s0), w2, a0);
            a1 = _mm256_fmadd_ps(_mm256_loadu_ps(r1 + 2 * s1), w5, a1);
            a2 = _mm256_fmadd_ps(_mm256_loadu_ps(r2 + 2 * s2), w8, a2);
            __m256 acc = _mm256_add_ps(_mm256_add_ps(a0, a1), a2);
            acc = _mm256_min_ps(_mm256_max_ps(acc, vlo), vhi);
            _mm256_storeu_ps(out, acc);
            r0 += step0;
            r1 += step1;
            r2 += step2;
            out += c;
        }
    }
}

/* 1 if the own depthwise kernel takes this (already supported) convolution. */
static int dwconv_takes(const nnm_graph *g, const nnm_node *n)
{
    if (!own_gemm_enabled() || n->op != NNM_OP_CONV) return 0;
    const nnm_attrs *a = &n->a;
    const nnm_value *x = &g->values[n->in[0]], *w = &g->values[n->in[1]];
    int64_t c = x->shape[3];
    return a->group == c && w->shape[0] == c && w->shape[1] == 1 && c % 8 == 0 &&
           a->kernel[0] == 3 && a->kernel[1] == 3 && a->dilations[0] == 1 &&
           a->dilations[1] == 1 && a->strides[0] <= 2 && a->strides[1] <= 2 &&
           a->pads[0] <= 2 && a->pads[1] <= 2;
}

static nnm_err dwconv_prepare(dwconv **out, const nnm_graph *g, const nnm_node *n)
{
    const nnm_attrs *a = &n->a;
    const nnm_value *x = &g->values[n->in[0]], *y = &g->values[n->out[0]];
    const float *w = g->values[n->in[1]].data;
    const float *bias = n->n_in > 2 && n->in[2] >= 0 ? g->values[n->in[2]].data : NULL;
    dwconv *k = calloc(1, sizeof *k);
    if (k == NULL) return NNM_ENOMEM;
    k->c = (size_t)x->shape[3];
    k->ih = (size_t)x->shape[1];
    k->iw = (size_t)x->shape[2];
    k->oh = (size_t)y->shape[1];
    k->ow = (size_t)y->shape[2];
    k->sh = (uint32_t)a->strides[0];
    k->sw = (uint32_t)a->strides[1];
    k->pt = (uint32_t)a->pads[0];
    k->pl = (uint32_t)a->pads[1];
    clamp_bounds(a, &k->lo, &k->hi);
    k->w = malloc(k->c * 9 * sizeof(float));
    k->bias = calloc(k->c, sizeof(float));
    k->zero = calloc(k->c + 8, sizeof(float));
    if (!k->w || !k->bias || !k->zero) {
        dwconv_free(k);
        return NNM_ENOMEM;
    }
    /* ONNX [C][1][3][3] -> [C/8][9][8]. */
    for (size_t ch = 0; ch < k->c; ch++) {
        for (size_t t = 0; t < 9; t++) k->w[(ch / 8 * 9 + t) * 8 + ch % 8] = w[ch * 9 + t];
        if (bias) k->bias[ch] = bias[ch];
    }
    *out = k;
    return NNM_OK;
}

static void dwconv_task(void *arg, size_t i)
{
    const dwrun *d = arg;
    size_t cbs = d->k->c / 8, per = (cbs + d->tile - 1) / d->tile;
    size_t cb0 = i % per * d->tile;
    dwconv_row(arg, i / per, cb0, cbs - cb0 < d->tile ? cbs - cb0 : d->tile);
}

static void dwconv_run(const dwconv *k, const float *x, float *y, size_t batch, int threads)
{
    size_t cbs = k->c / 8;
    /* Whole rows per task unless there are few rows (late layers: 7x7 or 14x14). */
    dwrun d = { k, x, y, batch * k->oh >= 16 ? cbs : (cbs + 3) / 4 };
    pool_run(threads, dwconv_task, &d, batch * k->oh * ((cbs + d.tile - 1) / d.tile));
}
#else
static int dwconv_takes(const nnm_graph *g, const nnm_node *n) { (void)g; (void)n; return 0; }
static nnm_err dwconv_prepare(dwconv **out, const nnm_graph *g, const nnm_node *n)
{
    (void)out; (void)g; (void)n;
    return NNM_EUNSUPPORTED;
}
static void dwconv_run(const dwconv *k, const float *x, float *y, size_t batch, int threads)
{
    (void)k; (void)x; (void)y; (void)batch; (void)threads;
}
#endif

/* --- prepare --------------------------------------------------------------------------- */

/* ONNX conv weights [M, C/g, kH, kW] (OIHW) to XNNPACK's [g][M/g][kH][kW][C/g]: since the
 * output channels of a group are contiguous, that is OHWI. */
static float *pack_conv_weights(const float *w, int64_t m, int64_t ci, int64_t kh, int64_t kw)
{
    float *p = malloc((size_t)(m * ci * kh * kw) * sizeof *p);
    if (p == NULL) return NULL;
    for (int64_t o = 0; o < m; o++)
        for (int64_t c = 0; c < ci; c++)
            for (int64_t y = 0; y < kh; y++)
                for (int64_t x = 0; x < kw; x++)
                    p[((o * kh + y) * kw + x) * ci + c] = w[((o * ci + c) * kh + y) * kw + x];
    return p;
}

/* ONNX transposed-conv weights [C, M/g, kH, kW] (IOHW, C = g * C/g) to XNNPACK's
 * [g][M/g][kH][kW][C/g]. */
static float *pack_deconv_weights(const float *w, int64_t groups, int64_t cg, int64_t mg,
                                  int64_t kh, int64_t kw)
{
    float *p = malloc((size_t)(groups * cg * mg * kh * kw) * sizeof *p);
    if (p == NULL) return NULL;
    for (int64_t gi = 0; gi < groups; gi++)
        for (int64_t c = 0; c < cg; c++)
            for (int64_t o = 0; o < mg; o++)
                for (int64_t y = 0; y < kh; y++)
                    for (int64_t x = 0; x < kw; x++)
                        p[(((gi * mg + o) * kh + y) * kw + x) * cg + c] =
                            w[((((gi * cg + c) * mg) + o) * kh + y) * kw + x];
    return p;
}

static void record_shapes(xstate *s, const nnm_graph *g, const nnm_node *n, int n_data)
{
    s->n_data = n_data;
    for (int i = 0; i < n_data; i++) {
        const nnm_value *v = &g->values[n->in[i]];
        s->in_ndim[i] = v->ndim;
        memcpy(s->in_shape[i], v->shape, sizeof v->shape);
    }
    const nnm_value *y = &g->values[n->out[0]];
    s->out_ndim = y->ndim;
    memcpy(s->out_shape, y->shape, sizeof y->shape);
}

static nnm_err prepare_conv(xstate *s, const nnm_graph *g, const nnm_node *n, int threads,
                            nnm_diag *diag)
{
    if (gconv_takes(g, n)) return gconv_prepare(&s->own, g, n, threads);
    if (dwconv_takes(g, n)) return dwconv_prepare(&s->dw, g, n);
    const nnm_attrs *a = &n->a;
    const nnm_value *x = &g->values[n->in[0]], *w = &g->values[n->in[1]];
    const float *bias = n->n_in > 2 && n->in[2] >= 0 ? g->values[n->in[2]].data : NULL;
    uint32_t groups = (uint32_t)a->group;
    float lo, hi;
    clamp_bounds(a, &lo, &hi);
    enum xnn_status st;
    float *packed;
    if (n->op == NNM_OP_CONV) {
        int64_t m = w->shape[0], ci = w->shape[1];
        packed = pack_conv_weights(w->data, m, ci, w->shape[2], w->shape[3]);
        if (packed == NULL) return NNM_ENOMEM;
        st = xnn_create_convolution2d_nhwc_f32(
            (uint32_t)a->pads[0], (uint32_t)a->pads[3], (uint32_t)a->pads[2], (uint32_t)a->pads[1],
            (uint32_t)a->kernel[0], (uint32_t)a->kernel[1],
            (uint32_t)a->strides[0], (uint32_t)a->strides[1],
            (uint32_t)a->dilations[0], (uint32_t)a->dilations[1],
            groups, (size_t)ci, (size_t)(m / groups), (size_t)x->shape[3], (size_t)m,
            packed, bias, lo, hi, 0, &s->op);
        free(packed);
        if (st != xnn_status_success)
            return xnn_fail(diag, n, "xnn_create_convolution2d_nhwc_f32", st);
        return NNM_OK;
    }
    int64_t cg = w->shape[0] / groups, mg = w->shape[1];
    const nnm_value *y = &g->values[n->out[0]];
    for (int i = 0; i < 2; i++) {
        int64_t base = (int64_t)a->strides[i] * (x->shape[1 + i] - 1) +
                       (int64_t)a->dilations[i] * (a->kernel[i] - 1) + 1 - a->pads[i] -
                       a->pads[i + 2];
        uint32_t adj = (uint32_t)(y->shape[1 + i] - base);
        if (i == 0) s->adj_h = adj; else s->adj_w = adj;
    }
    packed = pack_deconv_weights(w->data, groups, cg, mg, w->shape[2], w->shape[3]);
    if (packed == NULL) return NNM_ENOMEM;
    st = xnn_create_deconvolution2d_nhwc_f32(
        (uint32_t)a->pads[0], (uint32_t)a->pads[3], (uint32_t)a->pads[2], (uint32_t)a->pads[1],
        (uint32_t)a->kernel[0], (uint32_t)a->kernel[1],
        (uint32_t)a->strides[0], (uint32_t)a->strides[1],
        (uint32_t)a->dilations[0], (uint32_t)a->dilations[1],
        groups, (size_t)cg, (size_t)mg, (size_t)x->shape[3], (size_t)(mg * groups),
        packed, bias, lo, hi, 0, &s->op);
    free(packed);
    if (st != xnn_status_success)
        return xnn_fail(diag, n, "xnn_create_deconvolution2d_nhwc_f32", st);
    return NNM_OK;
}

static nnm_err prepare_fc(xstate *s, const nnm_graph *g, const nnm_node *n, int threads,
                          nnm_diag *diag)
{
    const nnm_value *A = &g->values[n->in[0]], *B = &g->values[n->in[1]];
    float lo, hi;
    clamp_bounds(&n->a, &lo, &hi);
    /* B [K, N] (MatMul, Gemm transB = 0) is the transposed form of XNNPACK's [N, K]. */
    int transposed = n->op == NNM_OP_MATMUL || !n->a.trans_b;
    size_t k = (size_t)(transposed ? B->shape[0] : B->shape[1]);
    size_t nout = (size_t)(transposed ? B->shape[1] : B->shape[0]);
    float *bias = NULL;
    int cid = n->op == NNM_OP_GEMM && n->n_in > 2 ? n->in[2] : -1;
    if (cid >= 0) {
        const nnm_value *c = &g->values[cid];
        const float *cd = c->data;
        int scalar = value_numel(c) == 1;
        bias = malloc(nout * sizeof *bias);
        if (bias == NULL) return NNM_ENOMEM;
        for (size_t j = 0; j < nout; j++) bias[j] = n->a.beta * cd[scalar ? 0 : j];
    }
    s->fc_batch = (size_t)(value_numel(A) / (int64_t)k);
    if (own_gemm_enabled()) {
        nnm_err rc = gfc_prepare(&s->own, B->data, transposed, k, nout, bias, lo, hi,
                                 s->fc_batch, threads);
        free(bias);
        return rc;
    }
    enum xnn_status st = xnn_create_fully_connected_nc_f32(
        k, nout, k, nout, B->data, bias, lo, hi, transposed ? XNN_FLAG_TRANSPOSE_WEIGHTS : 0,
        &s->op);
    free(bias);
    if (st != xnn_status_success)
        return xnn_fail(diag, n, "xnn_create_fully_connected_nc_f32", st);
    return NNM_OK;
}

static nnm_err prepare_pool(xstate *s, const nnm_graph *g, const nnm_node *n, nnm_diag *diag)
{
    const nnm_attrs *a = &n->a;
    const nnm_value *x = &g->values[n->in[0]], *y = &g->values[n->out[0]];
    size_t c = (size_t)x->shape[3];
    const float lo = -INFINITY, hi = INFINITY;
    enum xnn_status st;
    if (n->op == NNM_OP_GLOBAL_AVGPOOL) {
        st = xnn_create_global_average_pooling_nwc_f32(c, c, c, lo, hi, 0, &s->op);
        if (st != xnn_status_success)
            return xnn_fail(diag, n, "xnn_create_global_average_pooling_nwc_f32", st);
        return NNM_OK;
    }
    if (n->op == NNM_OP_GLOBAL_MAXPOOL) {
        st = xnn_create_max_pooling2d_nhwc_f32(0, 0, 0, 0, (uint32_t)x->shape[1],
                                               (uint32_t)x->shape[2], 1, 1, 1, 1, c, c, c, lo,
                                               hi, 0, &s->op);
        if (st != xnn_status_success)
            return xnn_fail(diag, n, "xnn_create_max_pooling2d_nhwc_f32", st);
        return NNM_OK;
    }
    uint32_t extra[2];
    for (int i = 0; i < 2; i++)
        extra[i] = (uint32_t)pool_extra_pad(x->shape[1 + i], y->shape[1 + i], a->pads[i],
                                            a->pads[i + 2], a->kernel[i], a->strides[i],
                                            a->dilations[i]);
    uint32_t top = (uint32_t)a->pads[0], left = (uint32_t)a->pads[1];
    uint32_t bottom = (uint32_t)a->pads[2] + extra[0], right = (uint32_t)a->pads[3] + extra[1];
    if (n->op == NNM_OP_MAXPOOL) {
        st = xnn_create_max_pooling2d_nhwc_f32(
            top, right, bottom, left, (uint32_t)a->kernel[0], (uint32_t)a->kernel[1],
            (uint32_t)a->strides[0], (uint32_t)a->strides[1], (uint32_t)a->dilations[0],
            (uint32_t)a->dilations[1], c, c, c, lo, hi, 0, &s->op);
        if (st != xnn_status_success)
            return xnn_fail(diag, n, "xnn_create_max_pooling2d_nhwc_f32", st);
        return NNM_OK;
    }
    st = xnn_create_average_pooling2d_nhwc_f32(
        top, right, bottom, left, (uint32_t)a->kernel[0], (uint32_t)a->kernel[1],
        (uint32_t)a->strides[0], (uint32_t)a->strides[1], c, c, c, lo, hi, 0, &s->op);
    if (st != xnn_status_success)
        return xnn_fail(diag, n, "xnn_create_average_pooling2d_nhwc_f32", st);
    return NNM_OK;
}

static nnm_err prepare_binary(xstate *s, const nnm_node *n, nnm_diag *diag)
{
    float lo, hi;
    clamp_bounds(&n->a, &lo, &hi);   /* (-inf, +inf) except on Add (see supports_binary) */
    enum xnn_status st;
    const char *call;
    switch (n->op) {
    case NNM_OP_ADD:
        call = "xnn_create_add_nd_f32";
        st = xnn_create_add_nd_f32(lo, hi, 0, &s->op);
        break;
    case NNM_OP_SUB:
        call = "xnn_create_subtract_nd_f32";
        st = xnn_create_subtract_nd_f32(lo, hi, 0, &s->op);
        break;
    case NNM_OP_MUL:
        call = "xnn_create_multiply_nd_f32";
        st = xnn_create_multiply_nd_f32(lo, hi, 0, &s->op);
        break;
    case NNM_OP_DIV:
        call = "xnn_create_divide_nd_f32";
        st = xnn_create_divide_nd_f32(lo, hi, 0, &s->op);
        break;
    case NNM_OP_MAX:
        call = "xnn_create_maximum_nd_f32";
        st = xnn_create_maximum_nd_f32(0, &s->op);
        break;
    default:
        call = "xnn_create_minimum_nd_f32";
        st = xnn_create_minimum_nd_f32(0, &s->op);
        break;
    }
    if (st != xnn_status_success) return xnn_fail(diag, n, call, st);
    return NNM_OK;
}

static nnm_err prepare_unary(xstate *s, const nnm_graph *g, const nnm_node *n, nnm_diag *diag)
{
    const nnm_value *x = &g->values[n->in[0]];
    size_t total = (size_t)value_numel(x), ch = total;
    s->nc_batch = 1;
    enum xnn_status st;
    const char *call;
    switch (n->op) {
    case NNM_OP_RELU:
        call = "xnn_create_clamp_nc_f32";
        st = xnn_create_clamp_nc_f32(ch, ch, ch, 0.0f, INFINITY, 0, &s->op);
        break;
    case NNM_OP_CLIP:
        call = "xnn_create_clamp_nc_f32";
        st = xnn_create_clamp_nc_f32(ch, ch, ch, n->a.act_min, n->a.act_max, 0, &s->op);
        break;
    case NNM_OP_SIGMOID:
        call = "xnn_create_sigmoid_nc_f32";
        st = xnn_create_sigmoid_nc_f32(ch, ch, ch, 0, &s->op);
        break;
    case NNM_OP_HARD_SWISH:
        call = "xnn_create_hardswish_nc_f32";
        st = xnn_create_hardswish_nc_f32(ch, ch, ch, 0, &s->op);
        break;
    case NNM_OP_LEAKY_RELU:
        call = "xnn_create_leaky_relu_nc_f32";
        st = xnn_create_leaky_relu_nc_f32(ch, ch, ch, n->a.alpha, 0, &s->op);
        break;
    case NNM_OP_SQRT:
        call = "xnn_create_square_root_nc_f32";
        st = xnn_create_square_root_nc_f32(ch, ch, ch, 0, &s->op);
        break;
    default: /* SOFTMAX over the trailing dims [axis, ndim) */
        ch = 1;
        for (int d = n->a.axis; d < x->ndim; d++) ch *= (size_t)x->shape[d];
        s->nc_batch = total / ch;
        call = "xnn_create_softmax_nc_f32";
        st = xnn_create_softmax_nc_f32(ch, ch, ch, 0, &s->op);
        break;
    }
    if (st != xnn_status_success) return xnn_fail(diag, n, call, st);
    return NNM_OK;
}

static nnm_err prepare_pad(xstate *s, const nnm_graph *g, const nnm_node *n, nnm_diag *diag)
{
    int nd = g->values[n->in[0]].ndim;
    for (int d = 0; d < nd; d++) {
        s->pre[d] = (size_t)n->a.pads[d];
        s->post[d] = (size_t)n->a.pads[nd + d];
    }
    uint32_t bits;
    memcpy(&bits, &n->a.pad_value, sizeof bits);
    enum xnn_status st = xnn_create_constant_pad_nd_x32(&bits, 0, &s->op);
    if (st != xnn_status_success)
        return xnn_fail(diag, n, "xnn_create_constant_pad_nd_x32", st);
    return NNM_OK;
}

static nnm_err prepare_resize(xstate *s, const nnm_graph *g, const nnm_node *n, nnm_diag *diag)
{
    const nnm_value *x = &g->values[n->in[0]], *y = &g->values[n->out[0]];
    size_t c = (size_t)x->shape[3];
    int flags = resize_flags(&n->a, y->shape[1], y->shape[2]);
    enum xnn_status st = xnn_create_resize_bilinear2d_nhwc_f32(c, c, c, (uint32_t)flags, &s->op);
    if (st != xnn_status_success)
        return xnn_fail(diag, n, "xnn_create_resize_bilinear2d_nhwc_f32", st);
    return NNM_OK;
}

static void xnn_release(void *state)
{
    xstate *s = state;
    if (s == NULL) return;
    if (s->op != NULL) xnn_delete_operator(s->op);
    gconv_free(s->own);
    dwconv_free(s->dw);
    free(s);
}

static nnm_err xnn_prepare(void **state, const nnm_graph *g, const nnm_node *n,
                           const nnm_kctx *ctx, nnm_diag *diag)
{
    if (state == NULL || g == NULL || n == NULL)
        return nnm_diag_set(diag, NNM_EINVAL, "xnn prepare: state, graph and node are required");
    *state = NULL;
    nnm_err rc = nnm_xnn_init(diag);
    if (rc != NNM_OK) return rc;
    if (!xnn_supports(g, n))
        return nnm_diag_set(diag, NNM_EUNSUPPORTED,
                            "node '%s' (%s): the xnn backend cannot run this node as specified "
                            "(dtype, layout, attributes or non-constant weights); run it on the "
                            "reference backend", n->name, n->onnx_op);
    xstate *s = calloc(1, sizeof *s);
    rc = NNM_ENOMEM;
    if (s == NULL) goto fail;
    s->kind = n->op;
    switch (n->op) {
    case NNM_OP_CONV:
    case NNM_OP_CONV_TRANSPOSE:
        record_shapes(s, g, n, 1);
        rc = prepare_conv(s, g, n, ctx != NULL && ctx->threads > 1 ? ctx->threads : 1, diag);
        break;
    case NNM_OP_GEMM:
    case NNM_OP_MATMUL:
        record_shapes(s, g, n, 1);
        rc = prepare_fc(s, g, n, ctx != NULL && ctx->threads > 1 ? ctx->threads : 1, diag);
        break;
    case NNM_OP_MAXPOOL: case NNM_OP_AVGPOOL:
    case NNM_OP_GLOBAL_AVGPOOL: case NNM_OP_GLOBAL_MAXPOOL:
        record_shapes(s, g, n, 1);
        rc = prepare_pool(s, g, n, diag);
        break;
    case NNM_OP_ADD: case NNM_OP_SUB: case NNM_OP_MUL: case NNM_OP_DIV:
    case NNM_OP_MAX: case NNM_OP_MIN:
        record_shapes(s, g, n, 2);
        rc = prepare_binary(s, n, diag);
        break;
    case NNM_OP_PAD:
        record_shapes(s, g, n, 1);
        rc = prepare_pad(s, g, n, diag);
        break;
    case NNM_OP_RESIZE:
        record_shapes(s, g, n, 1);
        rc = prepare_resize(s, g, n, diag);
        break;
    case NNM_OP_TRANSPOSE:
        record_shapes(s, g, n, 1);
        rc = NNM_OK;
        break;
    default:
        record_shapes(s, g, n, 1);
        rc = prepare_unary(s, g, n, diag);
        break;
    }
    if (rc == NNM_ENOMEM)
        nnm_diag_set(diag, NNM_ENOMEM, "node '%s' (%s): out of memory packing weights for "
                     "XNNPACK", n->name, n->onnx_op);
    if (rc != NNM_OK) goto fail;
    *state = s;     /* commit */
    return NNM_OK;
fail:
    xnn_release(s);
    return rc;
}

/* --- run ------------------------------------------------------------------------------- */

static nnm_err check_tensor(const nnm_node *n, const char *what, int i, const nnm_tensor *t,
                            int ndim, const int64_t *shape, nnm_diag *diag)
{
    char want[96], got[96];
    if (t == NULL || t->data == NULL)
        return nnm_diag_set(diag, NNM_EINVAL, "node '%s' (%s): %s %d has no buffer", n->name,
                            n->onnx_op, what, i);
    if (t->dtype != NNM_DT_F32 || !same_shape(t->shape, t->ndim, shape, ndim))
        return nnm_diag_set(diag, NNM_ESHAPE,
                            "node '%s' (%s): %s %d is %s %s but the node was prepared for "
                            "float32 %s", n->name, n->onnx_op, what, i, nnm_dtype_name(t->dtype),
                            nnm_shape_format(got, sizeof got, t->shape, t->ndim),
                            nnm_shape_format(want, sizeof want, shape, ndim));
    return NNM_OK;
}

static void dims_of(size_t *dst, const int64_t *shape, int ndim)
{
    for (int i = 0; i < ndim; i++) dst[i] = (size_t)shape[i];
}

static nnm_err xnn_run(void *state, const nnm_node *n, const nnm_tensor *const *in,
                       nnm_tensor *const *out, const nnm_kctx *ctx, nnm_diag *diag)
{
    xstate *s = state;
    if (s == NULL || n == NULL || in == NULL || out == NULL)
        return nnm_diag_set(diag, NNM_EINVAL, "xnn run: node '%s' was not prepared",
                            n ? n->name : "?");
    pthreadpool_t pool = ctx != NULL ? ctx->pool : NULL;
    /* Where the own kernels run the convolutions (see the work pool above), the XNNPACK
     * operators left (adds, pools, the classifier) are small or memory-bound; on
     * pthreadpool they would bring back its wait for descheduled workers. */
    if (own_gemm_enabled()) pool = NULL;
    nnm_err rc;
    for (int i = 0; i < s->n_data; i++)
        if ((rc = check_tensor(n, "input", i, in[i], s->in_ndim[i], s->in_shape[i], diag)) != NNM_OK)
            return rc;
    if ((rc = check_tensor(n, "output", 0, out[0], s->out_ndim, s->out_shape, diag)) != NNM_OK)
        return rc;
    const float *x = in[0]->data;
    float *y = out[0]->data;
    const int64_t *xs = s->in_shape[0];
    enum xnn_status st;
    const char *call;
    switch (s->kind) {
    case NNM_OP_CONV:
        if (s->own != NULL) {
            gconv_run(s->own, x, y, (size_t)xs[0], ctx != NULL ? ctx->threads : 1);
            return NNM_OK;
        }
        if (s->dw != NULL) {
            dwconv_run(s->dw, x, y, (size_t)xs[0], ctx != NULL ? ctx->threads : 1);
            return NNM_OK;
        }
        call = "xnn_setup_convolution2d_nhwc_f32";
        st = xnn_setup_convolution2d_nhwc_f32(s->op, (size_t)xs[0], (size_t)xs[1], (size_t)xs[2],
                                              x, y, pool);
        break;
    case NNM_OP_CONV_TRANSPOSE:
        call = "xnn_setup_deconvolution2d_nhwc_f32";
        st = xnn_setup_deconvolution2d_nhwc_f32(s->op, (size_t)xs[0], (size_t)xs[1],
                                                (size_t)xs[2], s->adj_h, s->adj_w, x, y, pool);
        break;
    case NNM_OP_GEMM:
    case NNM_OP_MATMUL:
        if (s->own != NULL) {
            gconv_run(s->own, x, y, 1, ctx != NULL ? ctx->threads : 1);
            return NNM_OK;
        }
        call = "xnn_setup_fully_connected_nc_f32";
        st = xnn_setup_fully_connected_nc_f32(s->op, s->fc_batch, x, y, pool);
        break;
    case NNM_OP_MAXPOOL:
    case NNM_OP_GLOBAL_MAXPOOL:
        call = "xnn_setup_max_pooling2d_nhwc_f32";
        st = xnn_setup_max_pooling2d_nhwc_f32(s->op, (size_t)xs[0], (size_t)xs[1], (size_t)xs[2],
                                              x, y, pool);
        break;
    case NNM_OP_AVGPOOL:
        call = "xnn_setup_average_pooling2d_nhwc_f32";
        st = xnn_setup_average_pooling2d_nhwc_f32(s->op, (size_t)xs[0], (size_t)xs[1],
                                                  (size_t)xs[2], x, y, pool);
        break;
    case NNM_OP_GLOBAL_AVGPOOL:
        call = "xnn_setup_global_average_pooling_nwc_f32";
        st = xnn_setup_global_average_pooling_nwc_f32(s->op, (size_t)xs[0],
                                                      (size_t)(xs[1] * xs[2]), x, y, pool);
        break;
    case NNM_OP_ADD: case NNM_OP_SUB: case NNM_OP_MUL: case NNM_OP_DIV:
    case NNM_OP_MAX: case NNM_OP_MIN: {
        size_t da[XDIMS], db[XDIMS];
        size_t na = (size_t)s->in_ndim[0], nb = (size_t)s->in_ndim[1];
        dims_of(da, s->in_shape[0], s->in_ndim[0]);
        dims_of(db, s->in_shape[1], s->in_ndim[1]);
        const float *b = in[1]->data;
        switch (s->kind) {
        case NNM_OP_ADD:
            call = "xnn_setup_add_nd_f32";
            st = xnn_setup_add_nd_f32(s->op, na, da, nb, db, x, b, y, pool);
            break;
        case NNM_OP_SUB:
            call = "xnn_setup_subtract_nd_f32";
            st = xnn_setup_subtract_nd_f32(s->op, na, da, nb, db, x, b, y, pool);
            break;
        case NNM_OP_MUL:
            call = "xnn_setup_multiply_nd_f32";
            st = xnn_setup_multiply_nd_f32(s->op, na, da, nb, db, x, b, y, pool);
            break;
        case NNM_OP_DIV:
            call = "xnn_setup_divide_nd_f32";
            st = xnn_setup_divide_nd_f32(s->op, na, da, nb, db, x, b, y, pool);
            break;
        case NNM_OP_MAX:
            call = "xnn_setup_maximum_nd_f32";
            st = xnn_setup_maximum_nd_f32(s->op, na, da, nb, db, x, b, y, pool);
            break;
        default:
            call = "xnn_setup_minimum_nd_f32";
            st = xnn_setup_minimum_nd_f32(s->op, na, da, nb, db, x, b, y, pool);
            break;
        }
        break;
    }
    case NNM_OP_RELU:
    case NNM_OP_CLIP:
        call = "xnn_setup_clamp_nc_f32";
        st = xnn_setup_clamp_nc_f32(s->op, s->nc_batch, x, y, pool);
        break;
    case NNM_OP_SIGMOID:
        call = "xnn_setup_sigmoid_nc_f32";
        st = xnn_setup_sigmoid_nc_f32(s->op, s->nc_batch, x, y, pool);
        break;
    case NNM_OP_HARD_SWISH:
        call = "xnn_setup_hardswish_nc_f32";
        st = xnn_setup_hardswish_nc_f32(s->op, s->nc_batch, x, y, pool);
        break;
    case NNM_OP_LEAKY_RELU:
        call = "xnn_setup_leaky_relu_nc_f32";
        st = xnn_setup_leaky_relu_nc_f32(s->op, s->nc_batch, x, y, pool);
        break;
    case NNM_OP_SQRT:
        call = "xnn_setup_square_root_nc_f32";
        st = xnn_setup_square_root_nc_f32(s->op, s->nc_batch, x, y, pool);
        break;
    case NNM_OP_SOFTMAX:
        call = "xnn_setup_softmax_nc_f32";
        st = xnn_setup_softmax_nc_f32(s->op, s->nc_batch, x, y, pool);
        break;
    case NNM_OP_PAD: {
        size_t d[XDIMS];
        dims_of(d, xs, s->in_ndim[0]);
        call = "xnn_setup_constant_pad_nd_x32";
        st = xnn_setup_constant_pad_nd_x32(s->op, (size_t)s->in_ndim[0], d, s->pre, s->post,
                                           x, y, pool);
        break;
    }
    case NNM_OP_RESIZE:
        call = "xnn_setup_resize_bilinear2d_nhwc_f32";
        st = xnn_setup_resize_bilinear2d_nhwc_f32(s->op, (size_t)xs[0], (size_t)xs[1],
                                                  (size_t)xs[2], (size_t)s->out_shape[1],
                                                  (size_t)s->out_shape[2], x, y, pool);
        break;
    case NNM_OP_TRANSPOSE: {
        /* NCHW -> NHWC: per image a C x HW matrix transposed; NHWC -> NCHW: HW x C. */
        size_t img = (size_t)(xs[1] * xs[2] * xs[3]);
        int to_nhwc = n->a.perm[1] == 2;
        trun t = { x, y, to_nhwc ? (size_t)xs[1] : (size_t)(xs[1] * xs[2]), 0, 0 };
        t.cols = img / t.rows;
        t.chunks = (t.cols + TCOLS - 1) / TCOLS;
        pool_run(ctx != NULL ? ctx->threads : 1, transpose_task, &t, (size_t)xs[0] * t.chunks);
        return NNM_OK;
    }
    default:
        return nnm_diag_set(diag, NNM_EINVAL, "node '%s' (%s): state was prepared for another op",
                            n->name, n->onnx_op);
    }
    if (st != xnn_status_success) return xnn_fail(diag, n, call, st);
    st = xnn_run_operator(s->op, pool);
    if (st != xnn_status_success) return xnn_fail(diag, n, "xnn_run_operator", st);
    return NNM_OK;
}

const nnm_backend nnm_backend_xnn = {
    .name = "xnn",
    .supports = xnn_supports,
    .prepare = xnn_prepare,
    .run = xnn_run,
    .release = xnn_release,
};
