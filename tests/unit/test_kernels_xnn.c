/* tests/unit/test_kernels_xnn.c — the XNNPACK backend checked against the reference
 * kernels: every op it claims, across shapes (odd sizes, strides, pads, dilations, groups,
 * batch 1 and 2, broadcasting), on seeded random data, within 1e-5 relative (1e-4 for long
 * reductions); results with a 2-thread pool; what supports() refuses; error reporting. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <xnnpack.h>

#include "kernels.h"

/* --- graph building -------------------------------------------------------------------- */

static uint32_t rng = 12345u;

static float frand(float lo, float hi)
{
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return lo + (hi - lo) * (float)(rng >> 8) / (float)(1u << 24);
}

static int add_value(nnm_graph *g, const char *name, int ndim, const int64_t *shape)
{
    int id = ir__value_add(g, name, NNM_DT_F32);
    assert_true(id >= 0);
    g->values[id].ndim = ndim;
    for (int i = 0; i < ndim; i++) g->values[id].shape[i] = shape[i];
    return id;
}

static int add_const(nnm_graph *g, const char *name, int ndim, const int64_t *shape)
{
    nnm_tensor t;
    assert_int_equal(nnm_tensor_init(&t, NNM_DT_F32, ndim, shape), NNM_OK);
    float *p = t.data;
    for (size_t i = 0; i < t.nbytes / sizeof(float); i++) p[i] = frand(-1.0f, 1.0f);
    int id = ir__const_add(g, name, &t);
    assert_true(id >= 0);
    return id;
}

/* Adds node "node" with inputs in[] and one output "y" of the given shape; returns a
 * pointer to the node (valid until the next node is added). */
static nnm_node *add_node(nnm_graph *g, nnm_op op, const int *in, int n_in, int ndim,
                          const int64_t *shape)
{
    int y = add_value(g, "y", ndim, shape);
    int ni = ir__node_add(g, op, "node", NULL, in, n_in, &y, 1);
    assert_true(ni >= 0);
    return &g->nodes[ni];
}

/* --- running and comparing ------------------------------------------------------------- */

/* Range of the random data for non-constant inputs 0 and 1. */
static float in_lo[2] = { -1.0f, -1.0f }, in_hi[2] = { 1.0f, 1.0f };

static void set_ranges(float lo0, float hi0, float lo1, float hi1)
{
    in_lo[0] = lo0; in_hi[0] = hi0;
    in_lo[1] = lo1; in_hi[1] = hi1;
}

static void alloc_like(nnm_tensor *t, const nnm_value *v)
{
    int64_t ne = nnm_shape_numel(v->shape, v->ndim, sizeof(float));
    assert_true(ne > 0);
    memset(t, 0, sizeof *t);
    t->dtype = NNM_DT_F32;
    t->ndim = v->ndim;
    for (int i = 0; i < v->ndim; i++) t->shape[i] = v->shape[i];
    t->nbytes = (size_t)ne * sizeof(float);
    /* The xnn backend may read XNN_EXTRA_BYTES past any input. */
    t->data = calloc(1, t->nbytes + XNN_EXTRA_BYTES);
    assert_non_null(t->data);
    t->owned = 1;
}

/* Runs node 0 of g with the xnn backend (on pool) into *xo and with the reference into *ro;
 * both owned by the caller. Inputs are random in in_lo/in_hi. */
static void run_both(nnm_graph *g, pthreadpool_t pool, nnm_tensor *xo, nnm_tensor *ro)
{
    const nnm_node *n = &g->nodes[0];
    nnm_tensor ins[4];
    const nnm_tensor *inp[4];
    nnm_diag d;
    nnm_diag_clear(&d);
    assert_true(n->n_in <= 4);
    assert_int_equal(nnm_backend_xnn.supports(g, n), 1);
    for (int i = 0; i < n->n_in; i++) {
        inp[i] = NULL;
        memset(&ins[i], 0, sizeof ins[i]);
        if (n->in[i] < 0) continue;
        if (ir__is_const(g, n->in[i])) {
            ins[i] = ir__value_tensor(g, n->in[i]);
        } else {
            alloc_like(&ins[i], &g->values[n->in[i]]);
            float *p = ins[i].data;
            int r = i < 2 ? i : 1;
            for (size_t k = 0; k < ins[i].nbytes / sizeof(float); k++)
                p[k] = frand(in_lo[r], in_hi[r]);
        }
        inp[i] = &ins[i];
    }
    alloc_like(xo, &g->values[n->out[0]]);
    alloc_like(ro, &g->values[n->out[0]]);
    nnm_tensor *xout[1] = { xo }, *rout[1] = { ro };

    nnm_kctx ctx = { .pool = pool, .threads = pool ? 2 : 1 };
    void *st = NULL;
    nnm_err rc = nnm_backend_xnn.prepare(&st, g, n, &ctx, &d);
    if (rc != NNM_OK) fail_msg("prepare: %s", d.msg);
    rc = nnm_backend_xnn.run(st, n, inp, xout, &ctx, &d);
    if (rc != NNM_OK) fail_msg("run: %s", d.msg);
    nnm_backend_xnn.release(st);
    rc = nnm_ref_run(n, inp, rout, &d);
    if (rc != NNM_OK) fail_msg("ref: %s", d.msg);
    for (int i = 0; i < n->n_in; i++)
        if (inp[i] != NULL && ins[i].owned) nnm_tensor_cleanup(&ins[i]);
}

static void compare(const char *what, const nnm_tensor *xo, const nnm_tensor *ro, double rtol)
{
    const float *a = xo->data, *b = ro->data;
    size_t ne = ro->nbytes / sizeof(float);
    for (size_t i = 0; i < ne; i++) {
        double tol = rtol * fmax(1.0, fabs((double)b[i]));
        if (!(fabs((double)a[i] - (double)b[i]) <= tol))
            fail_msg("%s: element %zu: xnn %.9g, ref %.9g", what, i, (double)a[i], (double)b[i]);
    }
}

/* Runs node 0 of g both ways and compares; frees g. */
static void check_graph(nnm_graph *g, const char *what, double rtol)
{
    nnm_tensor xo, ro;
    run_both(g, NULL, &xo, &ro);
    compare(what, &xo, &ro, rtol);
    nnm_tensor_cleanup(&xo);
    nnm_tensor_cleanup(&ro);
    ir__graph_free(g);
}

/* --- convolution ----------------------------------------------------------------------- */

typedef struct conv_case {
    int64_t n, h, w, c, m;
    int group, kh, kw, sh, sw, dh, dw;
    int pads[4];            /* top, left, bottom, right */
    int bias;
    int act;                /* clamp to [0, 6] */
    int out_pad[2];         /* transposed only */
} conv_case;

static nnm_graph *conv_graph(const conv_case *cc, int transposed, int layout, int const_w)
{
    nnm_graph *g = ir__graph_new();
    assert_non_null(g);
    int64_t xs[4] = { cc->n, cc->h, cc->w, cc->c };
    int64_t ws[4];
    if (transposed) {
        ws[0] = cc->c; ws[1] = cc->m / cc->group;
    } else {
        ws[0] = cc->m; ws[1] = cc->c / cc->group;
    }
    ws[2] = cc->kh; ws[3] = cc->kw;
    int in[3];
    in[0] = add_value(g, "x", 4, xs);
    in[1] = const_w ? add_const(g, "w", 4, ws) : add_value(g, "w", 4, ws);
    int64_t bs[1] = { cc->m };
    in[2] = cc->bias ? add_const(g, "b", 1, bs) : -1;
    int64_t oh, ow;
    int kh = cc->dh * (cc->kh - 1) + 1, kw = cc->dw * (cc->kw - 1) + 1;
    if (transposed) {
        oh = cc->sh * (cc->h - 1) + cc->out_pad[0] + kh - cc->pads[0] - cc->pads[2];
        ow = cc->sw * (cc->w - 1) + cc->out_pad[1] + kw - cc->pads[1] - cc->pads[3];
    } else {
        oh = (cc->h + cc->pads[0] + cc->pads[2] - kh) / cc->sh + 1;
        ow = (cc->w + cc->pads[1] + cc->pads[3] - kw) / cc->sw + 1;
    }
    int64_t ys[4] = { cc->n, oh, ow, cc->m };
    nnm_node *nd = add_node(g, transposed ? NNM_OP_CONV_TRANSPOSE : NNM_OP_CONV, in, 3, 4, ys);
    nnm_attrs *a = &nd->a;
    a->layout = layout;
    a->kernel[0] = cc->kh; a->kernel[1] = cc->kw;
    a->strides[0] = cc->sh; a->strides[1] = cc->sw;
    a->dilations[0] = cc->dh; a->dilations[1] = cc->dw;
    memcpy(a->pads, cc->pads, sizeof cc->pads);
    a->group = cc->group;
    a->out_pad[0] = cc->out_pad[0]; a->out_pad[1] = cc->out_pad[1];
    if (cc->act) {
        a->act = 1; a->act_min = 0.0f; a->act_max = 6.0f;
    }
    return g;
}

static void test_kernels_xnn_conv_cases_match_ref(void **state)
{
    (void)state;
    static const conv_case cases[] = {
        /* n  h   w   c   m  grp kh kw sh sw dh dw  pads          bias act */
        { 1, 7, 7, 3, 8, 1, 3, 3, 1, 1, 1, 1, { 1, 1, 1, 1 }, 1, 0, { 0, 0 } },
        { 2, 9, 8, 4, 6, 1, 3, 2, 2, 2, 1, 1, { 1, 0, 0, 1 }, 1, 1, { 0, 0 } },
        { 1, 5, 5, 16, 10, 1, 1, 1, 1, 1, 1, 1, { 0, 0, 0, 0 }, 1, 0, { 0, 0 } },
        { 1, 13, 13, 5, 7, 1, 5, 5, 2, 2, 1, 1, { 2, 2, 2, 2 }, 0, 0, { 0, 0 } },
        { 2, 8, 8, 6, 9, 3, 3, 3, 1, 1, 2, 2, { 2, 2, 2, 2 }, 1, 0, { 0, 0 } },     /* grouped */
        { 1, 11, 11, 8, 8, 8, 3, 3, 1, 1, 1, 1, { 1, 1, 1, 1 }, 1, 1, { 0, 0 } },   /* depthwise */
        { 2, 9, 9, 12, 12, 12, 5, 5, 2, 2, 1, 1, { 2, 2, 2, 2 }, 1, 0, { 0, 0 } },  /* dw 5x5 s2 */
        { 1, 10, 9, 4, 8, 4, 3, 3, 2, 2, 1, 1, { 1, 1, 1, 1 }, 0, 0, { 0, 0 } },    /* dw mult 2 */
        { 1, 7, 6, 5, 5, 5, 3, 3, 1, 1, 2, 1, { 2, 1, 2, 1 }, 1, 0, { 0, 0 } },     /* dw dilated */
        { 1, 4, 4, 3, 3, 3, 1, 1, 1, 1, 1, 1, { 0, 0, 0, 0 }, 1, 0, { 0, 0 } },     /* dw 1x1 */
        { 1, 6, 17, 3, 4, 1, 1, 3, 1, 2, 1, 1, { 0, 1, 0, 0 }, 1, 0, { 0, 0 } },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char what[32];
        snprintf(what, sizeof what, "conv case %zu", i);
        check_graph(conv_graph(&cases[i], 0, NNM_IR_NHWC, 1), what, 1e-5);
    }
}

/* The paths of the backend's own AVX2 kernels that the cases above do not reach: weights of
 * one 16-channel panel larger than the cache block (taps split: c >= 86 at 3x3), a 24-channel
 * output (one 16-wide and one 8-wide panel), a 7x7 stride-2 stem, a 3x3 depthwise with
 * stride 2 and a channel count that is not a multiple of 8. Long reductions (576-4608 terms)
 * are summed in another order than the reference: 1e-4 of scale. */
static void test_kernels_xnn_own_kernel_paths_match_ref(void **state)
{
    (void)state;
    static const conv_case cases[] = {
        /* n  h   w   c    m  grp kh kw sh sw dh dw  pads          bias act */
        { 1, 9, 9, 96, 40, 1, 3, 3, 1, 1, 1, 1, { 1, 1, 1, 1 }, 1, 1, { 0, 0 } },   /* taps split */
        { 1, 12, 11, 144, 24, 1, 1, 1, 1, 1, 1, 1, { 0, 0, 0, 0 }, 1, 0, { 0, 0 } }, /* 24 = 16 + 8 */
        { 1, 33, 31, 3, 16, 1, 7, 7, 2, 2, 1, 1, { 3, 3, 3, 3 }, 1, 1, { 0, 0 } },   /* 7x7 stem */
        { 2, 15, 14, 36, 36, 36, 3, 3, 2, 2, 1, 1, { 1, 1, 1, 1 }, 1, 1, { 0, 0 } }, /* dw s2, 36 ch */
        { 1, 6, 7, 512, 35, 1, 3, 3, 1, 1, 1, 1, { 1, 1, 1, 1 }, 0, 0, { 0, 0 } },   /* 4608-term sums */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char what[48];
        snprintf(what, sizeof what, "own-kernel conv case %zu", i);
        check_graph(conv_graph(&cases[i], 0, NNM_IR_NHWC, 1), what, 1e-4);
    }
}

static void test_kernels_xnn_conv_transpose_cases_match_ref(void **state)
{
    (void)state;
    static const conv_case cases[] = {
        { 1, 4, 4, 3, 5, 1, 3, 3, 2, 2, 1, 1, { 1, 1, 1, 1 }, 1, 0, { 1, 1 } },
        { 2, 5, 3, 4, 6, 2, 2, 2, 2, 2, 1, 1, { 0, 0, 0, 0 }, 1, 0, { 0, 0 } },
        { 1, 3, 3, 8, 8, 8, 3, 3, 1, 1, 1, 1, { 1, 1, 1, 1 }, 0, 1, { 0, 0 } },
        { 1, 4, 5, 2, 3, 1, 3, 3, 2, 2, 2, 2, { 0, 1, 1, 0 }, 1, 0, { 1, 0 } },
        { 2, 3, 4, 6, 4, 1, 4, 3, 3, 1, 1, 1, { 1, 0, 1, 0 }, 1, 0, { 2, 0 } },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char what[40];
        snprintf(what, sizeof what, "conv transpose case %zu", i);
        check_graph(conv_graph(&cases[i], 1, NNM_IR_NHWC, 1), what, 1e-5);
    }
}

/* --- fully connected ------------------------------------------------------------------- */

static nnm_graph *gemm_graph(int64_t m, int64_t k, int64_t n, int trans_b, int c_ndim,
                             const int64_t *c_shape, float beta, int act)
{
    nnm_graph *g = ir__graph_new();
    int64_t as[2] = { m, k }, bs[2];
    bs[0] = trans_b ? n : k;
    bs[1] = trans_b ? k : n;
    int in[3] = { add_value(g, "a", 2, as), add_const(g, "b", 2, bs), -1 };
    if (c_ndim >= 0) in[2] = add_const(g, "c", c_ndim, c_shape);
    int64_t ys[2] = { m, n };
    nnm_node *nd = add_node(g, NNM_OP_GEMM, in, 3, 2, ys);
    nd->a.trans_b = trans_b;
    nd->a.beta = beta;
    if (act) {
        nd->a.act = 1; nd->a.act_min = -0.5f; nd->a.act_max = 0.5f;
    }
    return g;
}

static void test_kernels_xnn_gemm_cases_match_ref(void **state)
{
    (void)state;
    int64_t c9[1] = { 9 }, c10[2] = { 1, 10 }, c1[1] = { 1 };
    check_graph(gemm_graph(5, 7, 9, 0, 1, c9, 1.0f, 0), "gemm [5,7]x[7,9]+[9]", 1e-5);
    check_graph(gemm_graph(3, 16, 10, 1, 2, c10, 0.5f, 0), "gemm transB beta 0.5", 1e-5);
    check_graph(gemm_graph(2, 4, 3, 0, -1, NULL, 1.0f, 1), "gemm no C clamp", 1e-5);
    check_graph(gemm_graph(1, 33, 6, 1, 1, c1, 1.0f, 0), "gemm scalar C", 1e-5);
    check_graph(gemm_graph(4, 300, 7, 1, 1, (int64_t[]){ 7 }, 1.0f, 0), "gemm K=300", 1e-4);
}

static nnm_graph *matmul_graph(int a_ndim, const int64_t *as, int64_t n)
{
    nnm_graph *g = ir__graph_new();
    int64_t k = as[a_ndim - 1];
    int64_t bs[2] = { k, n }, ys[NNM_MAX_DIMS];
    int in[2] = { add_value(g, "a", a_ndim, as), add_const(g, "b", 2, bs) };
    for (int i = 0; i < a_ndim - 1; i++) ys[i] = as[i];
    ys[a_ndim - 1] = n;
    add_node(g, NNM_OP_MATMUL, in, 2, a_ndim, ys);
    return g;
}

static void test_kernels_xnn_matmul_cases_match_ref(void **state)
{
    (void)state;
    check_graph(matmul_graph(3, (int64_t[]){ 3, 4, 8 }, 5), "matmul [3,4,8]x[8,5]", 1e-5);
    check_graph(matmul_graph(1, (int64_t[]){ 8 }, 3), "matmul [8]x[8,3]", 1e-5);
    check_graph(matmul_graph(4, (int64_t[]){ 2, 3, 4, 6 }, 6), "matmul 4-D", 1e-5);
    check_graph(matmul_graph(2, (int64_t[]){ 7, 1 }, 4), "matmul K=1", 1e-5);
}

/* --- pooling --------------------------------------------------------------------------- */

static nnm_graph *pool_graph(nnm_op op, const int64_t *xs, int k, int s, int d, int pad,
                             int ceil_mode, int count_include_pad)
{
    nnm_graph *g = ir__graph_new();
    int in[1] = { add_value(g, "x", 4, xs) };
    int64_t ys[4] = { xs[0], 1, 1, xs[3] };
    if (op == NNM_OP_MAXPOOL || op == NNM_OP_AVGPOOL) {
        int dk = d * (k - 1) + 1;
        for (int i = 1; i <= 2; i++) {
            int64_t span = xs[i] + 2 * pad - dk;
            ys[i] = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
            /* ONNX/PyTorch: the last window must start inside the image or left padding. */
            if (ceil_mode && (ys[i] - 1) * s >= xs[i] + pad) ys[i]--;
        }
    }
    nnm_node *nd = add_node(g, op, in, 1, 4, ys);
    nnm_attrs *a = &nd->a;
    a->layout = NNM_IR_NHWC;
    a->kernel[0] = a->kernel[1] = k;
    a->strides[0] = a->strides[1] = s;
    a->dilations[0] = a->dilations[1] = d;
    for (int i = 0; i < 4; i++) a->pads[i] = pad;
    a->ceil_mode = ceil_mode;
    a->count_include_pad = count_include_pad;
    return g;
}

static void test_kernels_xnn_pool_cases_match_ref(void **state)
{
    (void)state;
    int64_t a[4] = { 1, 7, 7, 4 }, b[4] = { 2, 8, 9, 3 }, c[4] = { 1, 9, 9, 2 };
    int64_t e[4] = { 1, 8, 8, 3 }, f[4] = { 2, 5, 3, 10 }, h[4] = { 1, 7, 7, 32 };
    check_graph(pool_graph(NNM_OP_MAXPOOL, a, 3, 2, 1, 1, 0, 0), "maxpool k3 s2 p1", 1e-6);
    check_graph(pool_graph(NNM_OP_MAXPOOL, b, 2, 2, 1, 0, 0, 0), "maxpool k2 s2", 1e-6);
    check_graph(pool_graph(NNM_OP_MAXPOOL, c, 3, 1, 2, 2, 0, 0), "maxpool dilated", 1e-6);
    check_graph(pool_graph(NNM_OP_MAXPOOL, e, 3, 2, 1, 0, 1, 0), "maxpool ceil", 1e-6);
    check_graph(pool_graph(NNM_OP_AVGPOOL, a, 3, 2, 1, 1, 0, 0), "avgpool exclude pad", 1e-5);
    check_graph(pool_graph(NNM_OP_AVGPOOL, b, 2, 2, 1, 0, 0, 1), "avgpool no pad", 1e-5);
    check_graph(pool_graph(NNM_OP_AVGPOOL, e, 3, 2, 1, 0, 1, 0), "avgpool ceil", 1e-5);
    check_graph(pool_graph(NNM_OP_AVGPOOL, c, 5, 3, 1, 2, 0, 0), "avgpool k5 s3", 1e-5);
    check_graph(pool_graph(NNM_OP_MAXPOOL, e, 2, 3, 1, 0, 0, 0), "maxpool k2 s3", 1e-6);
    check_graph(pool_graph(NNM_OP_AVGPOOL, e, 2, 3, 1, 1, 0, 0), "avgpool k2 s3 p1", 1e-5);
    check_graph(pool_graph(NNM_OP_MAXPOOL, f, 2, 1, 1, 1, 0, 0), "maxpool k2 s1 p1", 1e-6);
    check_graph(pool_graph(NNM_OP_GLOBAL_AVGPOOL, h, 0, 0, 0, 0, 0, 0), "gap 7x7x32", 1e-5);
    check_graph(pool_graph(NNM_OP_GLOBAL_AVGPOOL, f, 0, 0, 0, 0, 0, 0), "gap batch 2", 1e-5);
    check_graph(pool_graph(NNM_OP_GLOBAL_MAXPOOL, f, 0, 0, 0, 0, 0, 0), "gmp batch 2", 1e-6);
    int64_t big[4] = { 1, 40, 40, 3 };
    check_graph(pool_graph(NNM_OP_GLOBAL_AVGPOOL, big, 0, 0, 0, 0, 0, 0), "gap 1600", 1e-4);
}

/* --- elementwise ----------------------------------------------------------------------- */

static nnm_graph *binary_graph(nnm_op op, int na, const int64_t *as, int nb, const int64_t *bs,
                               int b_const, int act)
{
    nnm_graph *g = ir__graph_new();
    int in[2] = { add_value(g, "a", na, as), b_const ? add_const(g, "b", nb, bs)
                                                     : add_value(g, "b", nb, bs) };
    int nd = na > nb ? na : nb;
    int64_t ys[NNM_MAX_DIMS];
    for (int i = 0; i < nd; i++) {
        int64_t da = i < nd - na ? 1 : as[i - (nd - na)];
        int64_t db = i < nd - nb ? 1 : bs[i - (nd - nb)];
        ys[i] = da > db ? da : db;
    }
    nnm_node *n = add_node(g, op, in, 2, nd, ys);
    if (act) {
        n->a.act = 1; n->a.act_min = 0.0f; n->a.act_max = 0.75f;
    }
    return g;
}

static void test_kernels_xnn_binary_broadcast_match_ref(void **state)
{
    (void)state;
    static const nnm_op ops[] = { NNM_OP_ADD, NNM_OP_SUB, NNM_OP_MUL, NNM_OP_DIV, NNM_OP_MAX,
                                  NNM_OP_MIN };
    int64_t s1[4] = { 1, 7, 7, 32 }, s2[1] = { 32 }, s3[4] = { 2, 3, 4, 5 };
    int64_t s4[4] = { 1, 3, 1, 5 }, s5[3] = { 4, 1, 6 }, s6[2] = { 5, 1 };
    int64_t s7[2] = { 3, 5 }, s8[6] = { 2, 1, 3, 1, 2, 3 }, s9[5] = { 4, 1, 2, 1, 3 };
    set_ranges(-1.0f, 1.0f, 0.5f, 2.0f);   /* divisors away from zero */
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        char what[48];
        snprintf(what, sizeof what, "%s [1,7,7,32]+[32]", ir__op_name(ops[i]));
        check_graph(binary_graph(ops[i], 4, s1, 1, s2, 1, 0), what, 1e-5);
        snprintf(what, sizeof what, "%s [2,3,4,5]*[1,3,1,5]", ir__op_name(ops[i]));
        check_graph(binary_graph(ops[i], 4, s3, 4, s4, 0, 0), what, 1e-5);
        snprintf(what, sizeof what, "%s [1,3,1,5]*[2,3,4,5]", ir__op_name(ops[i]));
        check_graph(binary_graph(ops[i], 4, s4, 4, s3, 0, 0), what, 1e-5);
        snprintf(what, sizeof what, "%s [4,1,6]*[5,1]", ir__op_name(ops[i]));
        check_graph(binary_graph(ops[i], 3, s5, 2, s6, 0, 0), what, 1e-5);
        snprintf(what, sizeof what, "%s [3,5]*[3,5]", ir__op_name(ops[i]));
        check_graph(binary_graph(ops[i], 2, s7, 2, s7, 0, 0), what, 1e-5);
        snprintf(what, sizeof what, "%s 6-D by 5-D", ir__op_name(ops[i]));
        check_graph(binary_graph(ops[i], 6, s8, 5, s9, 0, 0), what, 1e-5);
        snprintf(what, sizeof what, "%s by a scalar", ir__op_name(ops[i]));
        check_graph(binary_graph(ops[i], 2, s7, 0, NULL, 1, 0), what, 1e-5);
    }
    check_graph(binary_graph(NNM_OP_ADD, 4, s1, 1, s2, 1, 1), "Add with clamp", 1e-5);
    check_graph(binary_graph(NNM_OP_ADD, 4, s3, 4, s4, 0, 1), "Add broadcast clamp", 1e-5);
    set_ranges(-1.0f, 1.0f, -1.0f, 1.0f);
}

static nnm_graph *unary_graph(nnm_op op, int ndim, const int64_t *xs)
{
    nnm_graph *g = ir__graph_new();
    int in[1] = { add_value(g, "x", ndim, xs) };
    add_node(g, op, in, 1, ndim, xs);
    return g;
}

static void test_kernels_xnn_unary_match_ref(void **state)
{
    (void)state;
    static const int64_t shapes[3][4] = { { 1, 7, 7, 32 }, { 37 }, { 2, 3, 5 } };
    static const int ndims[3] = { 4, 1, 3 };
    for (int s = 0; s < 3; s++) {
        set_ranges(-5.0f, 5.0f, 0, 0);
        check_graph(unary_graph(NNM_OP_RELU, ndims[s], shapes[s]), "Relu", 1e-6);
        check_graph(unary_graph(NNM_OP_SIGMOID, ndims[s], shapes[s]), "Sigmoid", 1e-5);
        check_graph(unary_graph(NNM_OP_HARD_SWISH, ndims[s], shapes[s]), "HardSwish", 1e-5);
        nnm_graph *g = unary_graph(NNM_OP_CLIP, ndims[s], shapes[s]);
        g->nodes[0].a.act_min = -0.5f;
        g->nodes[0].a.act_max = 0.25f;
        check_graph(g, "Clip", 1e-6);
        g = unary_graph(NNM_OP_CLIP, ndims[s], shapes[s]);
        g->nodes[0].a.act_min = -INFINITY;
        g->nodes[0].a.act_max = 1.5f;
        check_graph(g, "Clip max only", 1e-6);
        g = unary_graph(NNM_OP_LEAKY_RELU, ndims[s], shapes[s]);
        g->nodes[0].a.alpha = 0.1f;
        check_graph(g, "LeakyRelu", 1e-6);
        set_ranges(0.01f, 4.0f, 0, 0);
        check_graph(unary_graph(NNM_OP_SQRT, ndims[s], shapes[s]), "Sqrt", 1e-6);
    }
    set_ranges(-1.0f, 1.0f, -1.0f, 1.0f);
}

static nnm_graph *softmax_graph(int ndim, const int64_t *xs, int axis, int legacy)
{
    nnm_graph *g = unary_graph(NNM_OP_SOFTMAX, ndim, xs);
    g->nodes[0].a.axis = axis;
    g->nodes[0].a.legacy_2d = legacy;
    return g;
}

static void test_kernels_xnn_softmax_match_ref(void **state)
{
    (void)state;
    set_ranges(-4.0f, 4.0f, 0, 0);
    check_graph(softmax_graph(2, (int64_t[]){ 4, 10 }, 1, 0), "softmax [4,10]", 1e-5);
    check_graph(softmax_graph(3, (int64_t[]){ 2, 3, 17 }, 2, 0), "softmax [2,3,17]", 1e-5);
    check_graph(softmax_graph(3, (int64_t[]){ 2, 3, 4 }, 1, 1), "softmax legacy axis 1", 1e-5);
    check_graph(softmax_graph(2, (int64_t[]){ 1, 1000 }, 1, 1), "softmax 1000", 1e-4);
    set_ranges(-1.0f, 1.0f, -1.0f, 1.0f);
}

/* --- pad and resize -------------------------------------------------------------------- */

static nnm_graph *pad_graph(int ndim, const int64_t *xs, const int *pads, float value)
{
    nnm_graph *g = ir__graph_new();
    int in[1] = { add_value(g, "x", ndim, xs) };
    int64_t ys[NNM_MAX_DIMS];
    for (int d = 0; d < ndim; d++) ys[d] = xs[d] + pads[d] + pads[ndim + d];
    nnm_node *n = add_node(g, NNM_OP_PAD, in, 1, ndim, ys);
    for (int i = 0; i < 2 * ndim; i++) n->a.pads[i] = pads[i];
    n->a.pad_mode = NNM_PAD_CONSTANT;
    n->a.pad_value = value;
    return g;
}

static void test_kernels_xnn_pad_match_ref(void **state)
{
    (void)state;
    check_graph(pad_graph(4, (int64_t[]){ 1, 5, 5, 3 }, (int[]){ 0, 1, 2, 0, 0, 2, 1, 0 }, 0.5f),
                "pad NHWC", 0.0);
    check_graph(pad_graph(2, (int64_t[]){ 3, 4 }, (int[]){ 1, 0, 2, 3 }, 0.0f), "pad 2-D", 0.0);
    check_graph(pad_graph(1, (int64_t[]){ 7 }, (int[]){ 3, 0 }, -2.0f), "pad 1-D", 0.0);
}

static nnm_graph *resize_graph(const int64_t *xs, int64_t oh, int64_t ow, int coord)
{
    nnm_graph *g = ir__graph_new();
    int in[1] = { add_value(g, "x", 4, xs) };
    int64_t ys[4] = { xs[0], oh, ow, xs[3] };
    nnm_node *n = add_node(g, NNM_OP_RESIZE, in, 1, 4, ys);
    n->a.resize_mode = NNM_RESIZE_LINEAR;
    n->a.coord_mode = coord;
    n->a.scales[0] = n->a.scales[3] = 1.0f;
    n->a.scales[1] = (float)oh / (float)xs[1];
    n->a.scales[2] = (float)ow / (float)xs[2];
    return g;
}

static void test_kernels_xnn_resize_bilinear_match_ref(void **state)
{
    (void)state;
    check_graph(resize_graph((int64_t[]){ 1, 4, 5, 3 }, 8, 10, NNM_COORD_HALF_PIXEL),
                "resize half_pixel x2", 1e-5);
    check_graph(resize_graph((int64_t[]){ 2, 3, 3, 2 }, 7, 5, NNM_COORD_ALIGN_CORNERS),
                "resize align_corners", 1e-5);
    check_graph(resize_graph((int64_t[]){ 1, 4, 4, 1 }, 8, 6, NNM_COORD_ASYMMETRIC),
                "resize asymmetric", 1e-5);
    check_graph(resize_graph((int64_t[]){ 1, 8, 8, 2 }, 3, 5, NNM_COORD_PYTORCH_HALF_PIXEL),
                "resize pytorch_half_pixel down", 1e-5);
    check_graph(resize_graph((int64_t[]){ 1, 5, 7, 4 }, 11, 3, NNM_COORD_HALF_PIXEL),
                "resize half_pixel mixed", 1e-5);
}

/* --- threads --------------------------------------------------------------------------- */

static void test_kernels_xnn_threadpool_2_matches_single_thread(void **state)
{
    (void)state;
    pthreadpool_t pool = pthreadpool_create(2);
    assert_non_null(pool);
    conv_case cc = { 2, 15, 13, 8, 16, 1, 3, 3, 2, 1, 1, 1, { 1, 1, 1, 1 }, 1, 1, { 0, 0 } };
    conv_case dw = { 2, 15, 13, 16, 16, 16, 3, 3, 1, 1, 1, 1, { 1, 1, 1, 1 }, 1, 0, { 0, 0 } };
    nnm_graph *gs[4] = {
        conv_graph(&cc, 0, NNM_IR_NHWC, 1), conv_graph(&dw, 0, NNM_IR_NHWC, 1),
        gemm_graph(9, 40, 24, 1, 1, (int64_t[]){ 24 }, 1.0f, 0),
        binary_graph(NNM_OP_ADD, 4, (int64_t[]){ 2, 7, 7, 32 }, 1, (int64_t[]){ 32 }, 1, 0),
    };
    for (int i = 0; i < 4; i++) {
        nnm_tensor x1, r1, x2, r2;
        uint32_t seed = rng;
        run_both(gs[i], NULL, &x1, &r1);
        rng = seed;    /* same inputs again */
        run_both(gs[i], pool, &x2, &r2);
        compare("2 threads vs ref", &x2, &r2, 1e-5);
        assert_memory_equal(x1.data, x2.data, x1.nbytes);
        nnm_tensor_cleanup(&x1); nnm_tensor_cleanup(&r1);
        nnm_tensor_cleanup(&x2); nnm_tensor_cleanup(&r2);
        ir__graph_free(gs[i]);
    }
    pthreadpool_destroy(pool);
}

/* --- what is refused ------------------------------------------------------------------- */

static void test_kernels_xnn_unsupported_nodes_return_0(void **state)
{
    (void)state;
    conv_case cc = { 1, 7, 7, 3, 8, 1, 3, 3, 1, 1, 1, 1, { 1, 1, 1, 1 }, 1, 0, { 0, 0 } };
    nnm_graph *g = conv_graph(&cc, 0, NNM_IR_NCHW, 1);
    assert_int_equal(nnm_backend_xnn.supports(g, &g->nodes[0]), 0);   /* NCHW */
    ir__graph_free(g);
    g = conv_graph(&cc, 0, NNM_IR_NHWC, 0);
    assert_int_equal(nnm_backend_xnn.supports(g, &g->nodes[0]), 0);   /* weight not constant */
    ir__graph_free(g);
    g = conv_graph(&cc, 0, NNM_IR_NHWC, 1);
    g->nodes[0].a.spatial_1d = 1;
    assert_int_equal(nnm_backend_xnn.supports(g, &g->nodes[0]), 0);
    ir__graph_free(g);
    g = conv_graph(&cc, 0, NNM_IR_NHWC, 1);
    g->values[g->nodes[0].out[0]].shape[1] = 6;                        /* inconsistent shape */
    assert_int_equal(nnm_backend_xnn.supports(g, &g->nodes[0]), 0);
    ir__graph_free(g);

    /* Average pooling that counts padding: XNNPACK excludes it. */
    g = pool_graph(NNM_OP_AVGPOOL, (int64_t[]){ 1, 7, 7, 4 }, 3, 2, 1, 1, 0, 1);
    assert_int_equal(nnm_backend_xnn.supports(g, &g->nodes[0]), 0);
    ir__graph_free(g);
    /* A clamp where the IR defines none (only Conv, ConvTranspose, Gemm, MatMul, Add). */
    g = binary_graph(NNM_OP_MUL, 2, (int64_t[]){ 3, 5 }, 2, (int64_t[]){ 3, 5 }, 0, 1);
    assert_int_equal(nnm_backend_xnn.supports(g, &g->nodes[0]), 0);
    ir__graph_free(g);
    g = pool_graph(NNM_OP_MAXPOOL, (int64_t[]){ 1, 7, 7, 4 }, 3, 2, 1, 1, 0, 0);
    g->nodes[0].a.act = 1;
    assert_int_equal(nnm_backend_xnn.supports(g, &g->nodes[0]), 0);
    ir__graph_free(g);
    g = gemm_graph(5, 7, 9, 0, 1, (int64_t[]){ 9 }, 1.0f, 0);
    g->nodes[0].a.alpha = 2.0f;
    assert_int_equal(nnm_backend_xnn.supports(g, &g->nodes[0]), 0);
    g->nodes[0].a.alpha = 1.0f;
    g->nodes[0].a.trans_a = 1;
    assert_int_equal(nnm_backend_xnn.supports(g, &g->nodes[0]), 0);
    ir__graph_free(g);
    g = softmax_graph(2, (int64_t[]){ 4, 10 }, 0, 0);                  /* not the last axis */
    assert_int_equal(nnm_backend_xnn.supports(g, &g->nodes[0]), 0);
    ir__graph_free(g);
    g = resize_graph((int64_t[]){ 1, 4, 5, 3 }, 8, 10, NNM_COORD_HALF_PIXEL);
    g->nodes[0].a.resize_mode = NNM_RESIZE_NEAREST;
    assert_int_equal(nnm_backend_xnn.supports(g, &g->nodes[0]), 0);
    g->nodes[0].a.resize_mode = NNM_RESIZE_LINEAR;
    g->nodes[0].a.scales[1] = 2.5f;                                    /* not out/in */
    assert_int_equal(nnm_backend_xnn.supports(g, &g->nodes[0]), 0);
    ir__graph_free(g);
    g = unary_graph(NNM_OP_TANH, 1, (int64_t[]){ 8 });                 /* no f32 tanh here */
    assert_int_equal(nnm_backend_xnn.supports(g, &g->nodes[0]), 0);
    ir__graph_free(g);
    g = pad_graph(2, (int64_t[]){ 3, 4 }, (int[]){ 1, 0, 2, 3 }, 0.0f);
    g->nodes[0].a.pad_mode = NNM_PAD_REFLECT;
    assert_int_equal(nnm_backend_xnn.supports(g, &g->nodes[0]), 0);
    ir__graph_free(g);
    g = matmul_graph(2, (int64_t[]){ 3, 4 }, 5);
    g->values[g->nodes[0].in[0]].dtype = NNM_DT_F16;
    assert_int_equal(nnm_backend_xnn.supports(g, &g->nodes[0]), 0);
    ir__graph_free(g);
}

/* --- errors ---------------------------------------------------------------------------- */

static void test_kernels_xnn_errors_name_the_node(void **state)
{
    (void)state;
    nnm_diag d;
    nnm_diag_clear(&d);
    assert_int_equal(nnm_xnn_init(&d), NNM_OK);
    assert_int_equal(nnm_xnn_init(&d), NNM_OK);   /* idempotent */
    nnm_backend_xnn.release(NULL);

    /* prepare on a node it does not support */
    nnm_graph *g = unary_graph(NNM_OP_TANH, 1, (int64_t[]){ 8 });
    void *st = (void *)&d;
    assert_int_equal(nnm_backend_xnn.prepare(&st, g, &g->nodes[0], NULL, &d), NNM_EUNSUPPORTED);
    assert_null(st);
    assert_string_equal(d.msg, "node 'node' (Tanh): the xnn backend cannot run this node as "
                               "specified (dtype, layout, attributes or non-constant weights); "
                               "run it on the reference backend");
    ir__graph_free(g);

    /* run with a tensor of the wrong shape */
    g = unary_graph(NNM_OP_RELU, 2, (int64_t[]){ 2, 3 });
    assert_int_equal(nnm_backend_xnn.prepare(&st, g, &g->nodes[0], NULL, &d), NNM_OK);
    assert_non_null(st);
    nnm_tensor x, y;
    assert_int_equal(nnm_tensor_init(&x, NNM_DT_F32, 2, (int64_t[]){ 3, 2 }), NNM_OK);
    assert_int_equal(nnm_tensor_init(&y, NNM_DT_F32, 2, (int64_t[]){ 2, 3 }), NNM_OK);
    const nnm_tensor *in[1] = { &x };
    nnm_tensor *out[1] = { &y };
    assert_int_equal(nnm_backend_xnn.run(st, &g->nodes[0], in, out, NULL, &d), NNM_ESHAPE);
    assert_string_equal(d.msg, "node 'node' (Relu): input 0 is float32 [3, 2] but the node was "
                               "prepared for float32 [2, 3]");
    nnm_backend_xnn.release(st);
    nnm_tensor_cleanup(&x);
    nnm_tensor_cleanup(&y);
    ir__graph_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kernels_xnn_conv_cases_match_ref),
        cmocka_unit_test(test_kernels_xnn_own_kernel_paths_match_ref),
        cmocka_unit_test(test_kernels_xnn_conv_transpose_cases_match_ref),
        cmocka_unit_test(test_kernels_xnn_gemm_cases_match_ref),
        cmocka_unit_test(test_kernels_xnn_matmul_cases_match_ref),
        cmocka_unit_test(test_kernels_xnn_pool_cases_match_ref),
        cmocka_unit_test(test_kernels_xnn_binary_broadcast_match_ref),
        cmocka_unit_test(test_kernels_xnn_unary_match_ref),
        cmocka_unit_test(test_kernels_xnn_softmax_match_ref),
        cmocka_unit_test(test_kernels_xnn_pad_match_ref),
        cmocka_unit_test(test_kernels_xnn_resize_bilinear_match_ref),
        cmocka_unit_test(test_kernels_xnn_threadpool_2_matches_single_thread),
        cmocka_unit_test(test_kernels_xnn_unsupported_nodes_return_0),
        cmocka_unit_test(test_kernels_xnn_errors_name_the_node),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
