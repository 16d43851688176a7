/* tests/unit/test_kernels_ref.c — the reference kernels against hand-computed values (from
 * the ONNX operator formulas), against naive direct-formula oracles written here, and
 * against themselves across layouts (an NHWC run equals the transposed NCHW run). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kernels.h"

/* --- helpers ---------------------------------------------------------------------------- */

static nnm_node mknode(nnm_op op, int n_in, int n_out)
{
    nnm_node n;
    memset(&n, 0, sizeof n);
    n.op = op;
    n.name = (char *)"k1";
    n.onnx_op = (char *)ir__op_name(op);
    n.n_in = n_in;
    n.n_out = n_out;
    n.a.group = 1;
    n.a.strides[0] = n.a.strides[1] = 1;
    n.a.dilations[0] = n.a.dilations[1] = 1;
    n.a.alpha = n.a.beta = 1.0f;
    n.a.act_min = -INFINITY;
    n.a.act_max = INFINITY;
    return n;
}

/* Allocates t with shape (nd dims from the varargs, as int) and copies data if not NULL. */
static nnm_tensor *mk(nnm_tensor *t, nnm_dtype dt, const void *data, int nd, ...)
{
    int64_t shape[NNM_MAX_DIMS];
    va_list ap;
    va_start(ap, nd);
    for (int i = 0; i < nd; i++) shape[i] = va_arg(ap, int);
    va_end(ap);
    assert_int_equal(nnm_tensor_init(t, dt, nd, shape), NNM_OK);
    if (data != NULL && t->nbytes > 0) memcpy(t->data, data, t->nbytes);
    return t;
}

static nnm_err run_node(const nnm_node *n, nnm_tensor *in, int nin, nnm_tensor *out, int nout,
                        nnm_diag *d)
{
    const nnm_tensor *ip[16];
    nnm_tensor *op[16];
    for (int i = 0; i < nin; i++) ip[i] = &in[i];
    for (int i = 0; i < nout; i++) op[i] = &out[i];
    return nnm_ref_run(n, ip, op, d);
}

static void cleanup(nnm_tensor *t, int cnt)
{
    for (int i = 0; i < cnt; i++) nnm_tensor_cleanup(&t[i]);
}

static void expect_f32(const nnm_tensor *t, const float *want, int64_t cnt, float tol)
{
    const float *got = t->data;
    int64_t have = (int64_t)(t->nbytes / sizeof(float));
    assert_int_equal(have, cnt);
    for (int64_t i = 0; i < cnt; i++) {
        if (!(fabsf(got[i] - want[i]) <= tol) && !(isnan(got[i]) && isnan(want[i]))) {
            print_error("element %lld: got %.9g, want %.9g\n", (long long)i, got[i], want[i]);
            fail();
        }
    }
}

static uint32_t rng_state = 12345u;

static float frand(void)
{
    rng_state = rng_state * 1664525u + 1013904223u;
    return (float)((rng_state >> 8) & 0xffffu) / 32768.0f - 1.0f;
}

static void fill_rand(nnm_tensor *t)
{
    float *p = t->data;
    for (size_t i = 0; i < t->nbytes / sizeof(float); i++) p[i] = frand();
}

/* NCHW [n,c,h,w] -> NHWC copy */
static void to_nhwc(const nnm_tensor *s, nnm_tensor *d)
{
    int64_t n = s->shape[0], c = s->shape[1], h = s->shape[2], w = s->shape[3];
    assert_int_equal(nnm_tensor_init(d, NNM_DT_F32, 4, (int64_t[]){ n, h, w, c }), NNM_OK);
    const float *sp = s->data;
    float *dp = d->data;
    for (int64_t a = 0; a < n; a++)
        for (int64_t b = 0; b < c; b++)
            for (int64_t y = 0; y < h; y++)
                for (int64_t x = 0; x < w; x++)
                    dp[((a * h + y) * w + x) * c + b] = sp[((a * c + b) * h + y) * w + x];
}

static void expect_bits_equal(const nnm_tensor *a, const nnm_tensor *b)
{
    assert_int_equal(a->nbytes, b->nbytes);
    assert_memory_equal(a->data, b->data, a->nbytes);
}

/* --- convolution ------------------------------------------------------------------------ */

static void test_conv_nchw_pads_stride_bias_clamp_matches_hand_values(void **state)
{
    (void)state;
    float x[9] = { 1, 2, 3, 4, 5, 6, 7, 8, 9 }, w[9], b[1] = { 0.5f };
    for (int i = 0; i < 9; i++) w[i] = 1.0f;
    nnm_tensor in[3], out[1];
    mk(&in[0], NNM_DT_F32, x, 4, 1, 1, 3, 3);
    mk(&in[1], NNM_DT_F32, w, 4, 1, 1, 3, 3);
    mk(&in[2], NNM_DT_F32, b, 1, 1);
    mk(&out[0], NNM_DT_F32, NULL, 4, 1, 1, 2, 2);
    nnm_node n = mknode(NNM_OP_CONV, 3, 1);
    n.a.kernel[0] = n.a.kernel[1] = 3;
    n.a.strides[0] = n.a.strides[1] = 2;
    for (int i = 0; i < 4; i++) n.a.pads[i] = 1;
    n.a.act = 1;
    n.a.act_min = 0.0f;
    n.a.act_max = 20.0f;
    assert_int_equal(run_node(&n, in, 3, out, 1, NULL), NNM_OK);
    expect_f32(&out[0], (float[]){ 12.5f, 16.5f, 20.0f, 20.0f }, 4, 0.0f);
    cleanup(in, 3);
    cleanup(out, 1);
}

static void test_conv_1d_pads_matches_hand_values(void **state)
{
    (void)state;
    nnm_tensor in[2], out[1];
    mk(&in[0], NNM_DT_F32, (float[]){ 1, 2, 3, 4, 5 }, 3, 1, 1, 5);
    mk(&in[1], NNM_DT_F32, (float[]){ 1, 0, -1 }, 3, 1, 1, 3);
    mk(&out[0], NNM_DT_F32, NULL, 3, 1, 1, 5);
    nnm_node n = mknode(NNM_OP_CONV, 2, 1);
    n.a.spatial_1d = 1;
    n.a.kernel[0] = 1;
    n.a.kernel[1] = 3;
    n.a.pads[1] = n.a.pads[3] = 1;
    assert_int_equal(run_node(&n, in, 2, out, 1, NULL), NNM_OK);
    expect_f32(&out[0], (float[]){ -2, -2, -2, -2, 4 }, 5, 0.0f);
    /* the same in NHWC ([N, L, C]) with C = 1 is the same bytes */
    in[0].shape[1] = 5; in[0].shape[2] = 1;
    out[0].shape[1] = 5; out[0].shape[2] = 1;
    n.a.layout = NNM_IR_NHWC;
    assert_int_equal(run_node(&n, in, 2, out, 1, NULL), NNM_OK);
    expect_f32(&out[0], (float[]){ -2, -2, -2, -2, 4 }, 5, 0.0f);
    cleanup(in, 2);
    cleanup(out, 1);
}

/* Direct formula of ONNX Conv (NCHW), accumulated in double. */
static void naive_conv(const nnm_tensor *x, const nnm_tensor *w, const float *bias,
                       const nnm_attrs *a, nnm_tensor *y)
{
    int64_t N = x->shape[0], C = x->shape[1], H = x->shape[2], W = x->shape[3];
    int64_t M = y->shape[1], OH = y->shape[2], OW = y->shape[3];
    int64_t KH = w->shape[2], KW = w->shape[3], G = a->group, cg = C / G, mg = M / G;
    const float *xp = x->data, *wp = w->data;
    float *yp = y->data;
    for (int64_t n = 0; n < N; n++)
        for (int64_t m = 0; m < M; m++)
            for (int64_t oh = 0; oh < OH; oh++)
                for (int64_t ow = 0; ow < OW; ow++) {
                    double s = bias ? bias[m] : 0.0;
                    for (int64_t c = 0; c < cg; c++)
                        for (int64_t kh = 0; kh < KH; kh++)
                            for (int64_t kw = 0; kw < KW; kw++) {
                                int64_t ih = oh * a->strides[0] - a->pads[0] + kh * a->dilations[0];
                                int64_t iw = ow * a->strides[1] - a->pads[1] + kw * a->dilations[1];
                                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                                s += (double)xp[((n * C + (m / mg) * cg + c) * H + ih) * W + iw] *
                                     wp[((m * cg + c) * KH + kh) * KW + kw];
                            }
                    yp[((n * M + m) * OH + oh) * OW + ow] = (float)s;
                }
}

static void conv_layouts_case(int C, int M, int G, int kh, int kw, int sh, int sw, int dh,
                              int dw, int pt, int pl, int pb, int pr, int with_bias)
{
    int H = 7, W = 8, N = 2;
    int OH = (H + pt + pb - ((kh - 1) * dh + 1)) / sh + 1;
    int OW = (W + pl + pr - ((kw - 1) * dw + 1)) / sw + 1;
    nnm_tensor in[3], out[1], naive, xh, yh, ynhwc;
    mk(&in[0], NNM_DT_F32, NULL, 4, N, C, H, W);
    mk(&in[1], NNM_DT_F32, NULL, 4, M, C / G, kh, kw);
    mk(&in[2], NNM_DT_F32, NULL, 1, M);
    fill_rand(&in[0]);
    fill_rand(&in[1]);
    fill_rand(&in[2]);
    mk(&out[0], NNM_DT_F32, NULL, 4, N, M, OH, OW);
    mk(&naive, NNM_DT_F32, NULL, 4, N, M, OH, OW);
    nnm_node n = mknode(NNM_OP_CONV, with_bias ? 3 : 2, 1);
    n.a.kernel[0] = kh; n.a.kernel[1] = kw;
    n.a.strides[0] = sh; n.a.strides[1] = sw;
    n.a.dilations[0] = dh; n.a.dilations[1] = dw;
    n.a.pads[0] = pt; n.a.pads[1] = pl; n.a.pads[2] = pb; n.a.pads[3] = pr;
    n.a.group = G;
    assert_int_equal(run_node(&n, in, n.n_in, out, 1, NULL), NNM_OK);
    naive_conv(&in[0], &in[1], with_bias ? in[2].data : NULL, &n.a, &naive);
    expect_f32(&out[0], naive.data, (int64_t)N * M * OH * OW, 1e-5f);

    to_nhwc(&in[0], &xh);
    to_nhwc(&out[0], &yh);
    mk(&ynhwc, NNM_DT_F32, NULL, 4, N, OH, OW, M);
    nnm_tensor nin[3] = { xh, in[1], in[2] };
    n.a.layout = NNM_IR_NHWC;
    assert_int_equal(run_node(&n, nin, n.n_in, &ynhwc, 1, NULL), NNM_OK);
    expect_bits_equal(&ynhwc, &yh);
    cleanup(in, 3);
    cleanup(out, 1);
    nnm_tensor_cleanup(&naive);
    nnm_tensor_cleanup(&xh);
    nnm_tensor_cleanup(&yh);
    nnm_tensor_cleanup(&ynhwc);
}

static void test_conv_random_groups_stride_dilation_both_layouts_agree(void **state)
{
    (void)state;
    conv_layouts_case(6, 9, 3, 3, 2, 2, 1, 1, 2, 1, 0, 2, 1, 1);   /* grouped */
    conv_layouts_case(4, 4, 4, 3, 3, 1, 2, 2, 1, 1, 1, 1, 1, 1);   /* depthwise */
    conv_layouts_case(3, 5, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0);   /* pointwise, no bias */
    conv_layouts_case(2, 4, 2, 5, 4, 3, 2, 1, 1, 2, 3, 0, 1, 1);   /* big kernel, odd pads */
}

/* Direct formula of ONNX ConvTranspose (NCHW): y[oh] += x[ih] * w where oh = ih*s - p + k*d */
static void naive_convt(const nnm_tensor *x, const nnm_tensor *w, const nnm_attrs *a,
                        nnm_tensor *y)
{
    int64_t N = x->shape[0], C = x->shape[1], H = x->shape[2], W = x->shape[3];
    int64_t M = y->shape[1], OH = y->shape[2], OW = y->shape[3];
    int64_t KH = w->shape[2], KW = w->shape[3], G = a->group, cg = C / G, mg = M / G;
    const float *xp = x->data, *wp = w->data;
    float *yp = y->data;
    memset(yp, 0, y->nbytes);
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < C; c++)
            for (int64_t m = 0; m < mg; m++)
                for (int64_t ih = 0; ih < H; ih++)
                    for (int64_t iw = 0; iw < W; iw++)
                        for (int64_t kh = 0; kh < KH; kh++)
                            for (int64_t kw = 0; kw < KW; kw++) {
                                int64_t oh = ih * a->strides[0] - a->pads[0] + kh * a->dilations[0];
                                int64_t ow = iw * a->strides[1] - a->pads[1] + kw * a->dilations[1];
                                if (oh < 0 || oh >= OH || ow < 0 || ow >= OW) continue;
                                int64_t oc = (c / cg) * mg + m;
                                yp[((n * M + oc) * OH + oh) * OW + ow] +=
                                    xp[((n * C + c) * H + ih) * W + iw] *
                                    wp[((c * mg + m) * KH + kh) * KW + kw];
                            }
}

static void test_conv_transpose_stride2_matches_hand_values(void **state)
{
    (void)state;
    nnm_tensor in[2], out[1];
    mk(&in[0], NNM_DT_F32, (float[]){ 1, 2, 3, 4 }, 4, 1, 1, 2, 2);
    mk(&in[1], NNM_DT_F32, (float[]){ 1, 1, 1, 1 }, 4, 1, 1, 2, 2);
    mk(&out[0], NNM_DT_F32, NULL, 4, 1, 1, 4, 4);
    nnm_node n = mknode(NNM_OP_CONV_TRANSPOSE, 2, 1);
    n.a.kernel[0] = n.a.kernel[1] = 2;
    n.a.strides[0] = n.a.strides[1] = 2;
    assert_int_equal(run_node(&n, in, 2, out, 1, NULL), NNM_OK);
    expect_f32(&out[0], (float[]){ 1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4 }, 16, 0.0f);
    nnm_tensor_cleanup(&out[0]);
    mk(&out[0], NNM_DT_F32, NULL, 4, 1, 1, 3, 3);
    n.a.strides[0] = n.a.strides[1] = 1;
    assert_int_equal(run_node(&n, in, 2, out, 1, NULL), NNM_OK);
    expect_f32(&out[0], (float[]){ 1, 3, 2, 4, 10, 6, 3, 7, 4 }, 9, 0.0f);
    cleanup(in, 2);
    cleanup(out, 1);
}

static void test_conv_transpose_random_groups_both_layouts_agree(void **state)
{
    (void)state;
    /* C=4, M=6, group 2, k 3x2, stride 2x3, dilation 1x2, pads 1,0,0,1, output_padding 1,1 */
    int N = 1, C = 4, M = 6, G = 2, H = 5, W = 4, kh = 3, kw = 2;
    int sh = 2, sw = 3, dh = 1, dw = 2, pt = 1, pl = 0, pb = 0, pr = 1, oph = 1, opw = 1;
    int OH = sh * (H - 1) + oph + (kh - 1) * dh + 1 - pt - pb;
    int OW = sw * (W - 1) + opw + (kw - 1) * dw + 1 - pl - pr;
    nnm_tensor in[2], out[1], naive, xh, yh, ynhwc;
    mk(&in[0], NNM_DT_F32, NULL, 4, N, C, H, W);
    mk(&in[1], NNM_DT_F32, NULL, 4, C, M / G, kh, kw);
    fill_rand(&in[0]);
    fill_rand(&in[1]);
    mk(&out[0], NNM_DT_F32, NULL, 4, N, M, OH, OW);
    mk(&naive, NNM_DT_F32, NULL, 4, N, M, OH, OW);
    nnm_node n = mknode(NNM_OP_CONV_TRANSPOSE, 2, 1);
    n.a.kernel[0] = kh; n.a.kernel[1] = kw;
    n.a.strides[0] = sh; n.a.strides[1] = sw;
    n.a.dilations[0] = dh; n.a.dilations[1] = dw;
    n.a.pads[0] = pt; n.a.pads[1] = pl; n.a.pads[2] = pb; n.a.pads[3] = pr;
    n.a.out_pad[0] = oph; n.a.out_pad[1] = opw;
    n.a.group = G;
    assert_int_equal(run_node(&n, in, 2, out, 1, NULL), NNM_OK);
    naive_convt(&in[0], &in[1], &n.a, &naive);
    expect_f32(&out[0], naive.data, (int64_t)N * M * OH * OW, 1e-5f);
    to_nhwc(&in[0], &xh);
    to_nhwc(&out[0], &yh);
    mk(&ynhwc, NNM_DT_F32, NULL, 4, N, OH, OW, M);
    nnm_tensor nin[2] = { xh, in[1] };
    n.a.layout = NNM_IR_NHWC;
    assert_int_equal(run_node(&n, nin, 2, &ynhwc, 1, NULL), NNM_OK);
    expect_bits_equal(&ynhwc, &yh);
    cleanup(in, 2);
    cleanup(out, 1);
    nnm_tensor_cleanup(&naive);
    nnm_tensor_cleanup(&xh);
    nnm_tensor_cleanup(&yh);
    nnm_tensor_cleanup(&ynhwc);
}

static void test_conv_bad_group_fails_with_eshape_naming_node(void **state)
{
    (void)state;
    nnm_tensor in[2], out[1];
    mk(&in[0], NNM_DT_F32, NULL, 4, 1, 4, 3, 3);
    mk(&in[1], NNM_DT_F32, NULL, 4, 6, 4, 1, 1);
    mk(&out[0], NNM_DT_F32, NULL, 4, 1, 6, 3, 3);
    nnm_node n = mknode(NNM_OP_CONV, 2, 1);
    n.a.kernel[0] = n.a.kernel[1] = 1;
    n.a.group = 3;
    nnm_diag d;
    nnm_diag_clear(&d);
    assert_int_equal(run_node(&n, in, 2, out, 1, &d), NNM_ESHAPE);
    assert_string_equal(d.msg, "node 'k1' (Conv): group=3 does not divide 4 input and 6 "
                        "output channels");
    cleanup(in, 2);
    cleanup(out, 1);
}

static void test_conv_int32_input_fails_unsupported_naming_dtype(void **state)
{
    (void)state;
    nnm_tensor in[2], out[1];
    mk(&in[0], NNM_DT_I32, NULL, 4, 1, 1, 3, 3);
    mk(&in[1], NNM_DT_F32, NULL, 4, 1, 1, 1, 1);
    mk(&out[0], NNM_DT_F32, NULL, 4, 1, 1, 3, 3);
    nnm_node n = mknode(NNM_OP_CONV, 2, 1);
    nnm_diag d;
    nnm_diag_clear(&d);
    assert_int_equal(run_node(&n, in, 2, out, 1, &d), NNM_EUNSUPPORTED);
    assert_string_equal(d.msg, "node 'k1' (Conv): the reference kernels do not support Conv "
                        "with int32 input and float32 output");
    cleanup(in, 2);
    cleanup(out, 1);
}

/* --- pooling and batch norm ------------------------------------------------------------- */

static void test_pool_avg_count_include_pad_matches_hand_values(void **state)
{
    (void)state;
    nnm_tensor in[1], out[1];
    mk(&in[0], NNM_DT_F32, (float[]){ 1, 2, 3, 4, 5, 6, 7, 8, 9 }, 4, 1, 1, 3, 3);
    mk(&out[0], NNM_DT_F32, NULL, 4, 1, 1, 4, 4);
    nnm_node n = mknode(NNM_OP_AVGPOOL, 1, 1);
    n.a.kernel[0] = n.a.kernel[1] = 2;
    for (int i = 0; i < 4; i++) n.a.pads[i] = 1;
    assert_int_equal(run_node(&n, in, 1, out, 1, NULL), NNM_OK);
    expect_f32(&out[0], (float[]){ 1, 1.5f, 2.5f, 3, 2.5f, 3, 4, 4.5f, 5.5f, 6, 7, 7.5f,
                                   7, 7.5f, 8.5f, 9 }, 16, 0.0f);
    n.a.count_include_pad = 1;
    assert_int_equal(run_node(&n, in, 1, out, 1, NULL), NNM_OK);
    expect_f32(&out[0], (float[]){ 0.25f, 0.75f, 1.25f, 0.75f, 1.25f, 3, 4, 2.25f, 2.75f, 6,
                                   7, 3.75f, 1.75f, 3.75f, 4.25f, 2.25f }, 16, 0.0f);
    cleanup(in, 1);
    cleanup(out, 1);
}

static void test_pool_max_dilation_indices_matches_hand_values(void **state)
{
    (void)state;
    float x[16];
    for (int i = 0; i < 16; i++) x[i] = (float)(i + 1);
    nnm_tensor in[1], out[2];
    mk(&in[0], NNM_DT_F32, x, 4, 1, 1, 4, 4);
    mk(&out[0], NNM_DT_F32, NULL, 4, 1, 1, 2, 2);
    mk(&out[1], NNM_DT_I64, NULL, 4, 1, 1, 2, 2);
    nnm_node n = mknode(NNM_OP_MAXPOOL, 1, 2);
    n.a.kernel[0] = n.a.kernel[1] = 2;
    n.a.dilations[0] = n.a.dilations[1] = 2;
    assert_int_equal(run_node(&n, in, 1, out, 2, NULL), NNM_OK);
    expect_f32(&out[0], (float[]){ 11, 12, 15, 16 }, 4, 0.0f);
    const int64_t *idx = out[1].data;
    assert_int_equal(idx[0], 10);
    assert_int_equal(idx[3], 15);
    /* kernel 2 stride 2, no dilation */
    n.a.dilations[0] = n.a.dilations[1] = 1;
    n.a.strides[0] = n.a.strides[1] = 2;
    assert_int_equal(run_node(&n, in, 1, out, 1, NULL), NNM_OK);
    expect_f32(&out[0], (float[]){ 6, 8, 14, 16 }, 4, 0.0f);
    cleanup(in, 1);
    cleanup(out, 2);
}

static void test_pool_random_both_layouts_agree(void **state)
{
    (void)state;
    for (int op = 0; op < 2; op++) {
        nnm_tensor in[1], out[1], xh, yh, ynhwc;
        mk(&in[0], NNM_DT_F32, NULL, 4, 2, 3, 7, 6);
        fill_rand(&in[0]);
        /* k 3x2, stride 2x1, pads 1,0,1,1, ceil-mode-like extra output row */
        mk(&out[0], NNM_DT_F32, NULL, 4, 2, 3, 5, 6);
        nnm_node n = mknode(op ? NNM_OP_MAXPOOL : NNM_OP_AVGPOOL, 1, 1);
        n.a.kernel[0] = 3; n.a.kernel[1] = 2;
        n.a.strides[0] = 2;
        n.a.pads[0] = 1; n.a.pads[2] = 1; n.a.pads[3] = 1;
        n.a.count_include_pad = 1;
        assert_int_equal(run_node(&n, in, 1, out, 1, NULL), NNM_OK);
        to_nhwc(&in[0], &xh);
        to_nhwc(&out[0], &yh);
        mk(&ynhwc, NNM_DT_F32, NULL, 4, 2, 5, 6, 3);
        n.a.layout = NNM_IR_NHWC;
        assert_int_equal(run_node(&n, &xh, 1, &ynhwc, 1, NULL), NNM_OK);
        expect_bits_equal(&ynhwc, &yh);
        cleanup(in, 1);
        cleanup(out, 1);
        nnm_tensor_cleanup(&xh);
        nnm_tensor_cleanup(&yh);
        nnm_tensor_cleanup(&ynhwc);
    }
}

static void test_pool_global_avg_max_both_layouts_match_hand_values(void **state)
{
    (void)state;
    nnm_tensor in[1], out[1];
    mk(&in[0], NNM_DT_F32, (float[]){ 1, 2, 3, 4, -1, -2, -3, 9 }, 4, 1, 2, 2, 2);
    mk(&out[0], NNM_DT_F32, NULL, 4, 1, 2, 1, 1);
    nnm_node n = mknode(NNM_OP_GLOBAL_AVGPOOL, 1, 1);
    assert_int_equal(run_node(&n, in, 1, out, 1, NULL), NNM_OK);
    expect_f32(&out[0], (float[]){ 2.5f, 0.75f }, 2, 0.0f);
    n.op = NNM_OP_GLOBAL_MAXPOOL;
    assert_int_equal(run_node(&n, in, 1, out, 1, NULL), NNM_OK);
    expect_f32(&out[0], (float[]){ 4, 9 }, 2, 0.0f);
    /* NHWC: the same numbers interleaved, [1, 2, 2, 2] */
    memcpy(in[0].data, (float[]){ 1, -1, 2, -2, 3, -3, 4, 9 }, 8 * sizeof(float));
    n.a.layout = NNM_IR_NHWC;
    assert_int_equal(run_node(&n, in, 1, out, 1, NULL), NNM_OK);
    expect_f32(&out[0], (float[]){ 4, 9 }, 2, 0.0f);
    n.op = NNM_OP_GLOBAL_AVGPOOL;
    assert_int_equal(run_node(&n, in, 1, out, 1, NULL), NNM_OK);
    expect_f32(&out[0], (float[]){ 2.5f, 0.75f }, 2, 0.0f);
    cleanup(in, 1);
    cleanup(out, 1);
}

static void test_batchnorm_both_layouts_match_hand_values(void **state)
{
    (void)state;
    nnm_tensor in[5], out[1];
    mk(&in[0], NNM_DT_F32, (float[]){ 1, 2, 3, 4 }, 4, 1, 2, 1, 2);
    mk(&in[1], NNM_DT_F32, (float[]){ 1, 2 }, 1, 2);
    mk(&in[2], NNM_DT_F32, (float[]){ 0, 1 }, 1, 2);
    mk(&in[3], NNM_DT_F32, (float[]){ 1, 3 }, 1, 2);
    mk(&in[4], NNM_DT_F32, (float[]){ 3, 3 }, 1, 2);
    mk(&out[0], NNM_DT_F32, NULL, 4, 1, 2, 1, 2);
    nnm_node n = mknode(NNM_OP_BATCHNORM, 5, 1);
    n.a.epsilon = 1.0f;
    assert_int_equal(run_node(&n, in, 5, out, 1, NULL), NNM_OK);
    expect_f32(&out[0], (float[]){ 0, 0.5f, 1, 2 }, 4, 0.0f);
    nnm_tensor_cleanup(&in[0]);
    nnm_tensor_cleanup(&out[0]);
    mk(&in[0], NNM_DT_F32, (float[]){ 1, 3, 2, 4 }, 4, 1, 1, 2, 2);
    mk(&out[0], NNM_DT_F32, NULL, 4, 1, 1, 2, 2);
    n.a.layout = NNM_IR_NHWC;
    assert_int_equal(run_node(&n, in, 5, out, 1, NULL), NNM_OK);
    expect_f32(&out[0], (float[]){ 0, 1, 0.5f, 2 }, 4, 0.0f);
    cleanup(in, 5);
    cleanup(out, 1);
}

/* --- Gemm and MatMul -------------------------------------------------------------------- */

static void test_gemm_transposes_alpha_beta_broadcast_c_match_hand_values(void **state)
{
    (void)state;
    const float a[6] = { 1, 2, 3, 4, 5, 6 }, at[6] = { 1, 4, 2, 5, 3, 6 };
    const float b[6] = { 1, 0, 0, 1, 1, 1 }, bt[6] = { 1, 0, 1, 0, 1, 1 };
    const float want[4] = { 8.5f, 11, 20.5f, 23 };
    for (int t = 0; t < 4; t++) {
        int ta = t & 1, tb = t >> 1;
        nnm_tensor in[3], out[1];
        if (ta) mk(&in[0], NNM_DT_F32, at, 2, 3, 2);
        else mk(&in[0], NNM_DT_F32, a, 2, 2, 3);
        if (tb) mk(&in[1], NNM_DT_F32, bt, 2, 2, 3);
        else mk(&in[1], NNM_DT_F32, b, 2, 3, 2);
        mk(&in[2], NNM_DT_F32, (float[]){ 1, 2 }, 1, 2);
        mk(&out[0], NNM_DT_F32, NULL, 2, 2, 2);
        nnm_node n = mknode(NNM_OP_GEMM, 3, 1);
        n.a.alpha = 2.0f;
        n.a.beta = 0.5f;
        n.a.trans_a = ta;
        n.a.trans_b = tb;
        assert_int_equal(run_node(&n, in, 3, out, 1, NULL), NNM_OK);
        expect_f32(&out[0], want, 4, 0.0f);
        n.a.act = 1;
        n.a.act_max = 21.0f;
        assert_int_equal(run_node(&n, in, 3, out, 1, NULL), NNM_OK);
        expect_f32(&out[0], (float[]){ 8.5f, 11, 20.5f, 21 }, 4, 0.0f);
        cleanup(in, 3);
        cleanup(out, 1);
    }
}

static void test_matmul_1d_operands_match_hand_values(void **state)
{
    (void)state;
    nnm_tensor in[2], out[1];
    nnm_node n = mknode(NNM_OP_MATMUL, 2, 1);
    mk(&in[0], NNM_DT_F32, (float[]){ 1, 2, 3 }, 1, 3);
    mk(&in[1], NNM_DT_F32, (float[]){ 1, 0, 0, 1, 1, 1 }, 2, 3, 2);
    mk(&out[0], NNM_DT_F32, NULL, 1, 2);
    assert_int_equal(run_node(&n, in, 2, out, 1, NULL), NNM_OK);
    expect_f32(&out[0], (float[]){ 4, 5 }, 2, 0.0f);
    cleanup(in, 2);
    cleanup(out, 1);
    mk(&in[0], NNM_DT_F32, (float[]){ 1, 2, 3, 4, 5, 6 }, 2, 2, 3);
    mk(&in[1], NNM_DT_F32, (float[]){ 1, 1, 1 }, 1, 3);
    mk(&out[0], NNM_DT_F32, NULL, 1, 2);
    assert_int_equal(run_node(&n, in, 2, out, 1, NULL), NNM_OK);
    expect_f32(&out[0], (float[]){ 6, 15 }, 2, 0.0f);
    cleanup(out, 1);
    mk(&out[0], NNM_DT_F32, NULL, 0);
    nnm_tensor v[2] = { in[1], in[1] };
    assert_int_equal(run_node(&n, v, 2, out, 1, NULL), NNM_OK);
    expect_f32(&out[0], (float[]){ 3 }, 1, 0.0f);
    cleanup(in, 2);
    cleanup(out, 1);
}

static void test_matmul_batch_broadcast_matches_naive(void **state)
{
    (void)state;
    nnm_tensor in[2], out[1];
    mk(&in[0], NNM_DT_F32, NULL, 4, 2, 1, 2, 3);
    mk(&in[1], NNM_DT_F32, NULL, 3, 3, 3, 4);
    mk(&out[0], NNM_DT_F32, NULL, 4, 2, 3, 2, 4);
    fill_rand(&in[0]);
    fill_rand(&in[1]);
    nnm_node n = mknode(NNM_OP_MATMUL, 2, 1);
    assert_int_equal(run_node(&n, in, 2, out, 1, NULL), NNM_OK);
    const float *a = in[0].data, *b = in[1].data, *y = out[0].data;
    for (int p = 0; p < 2; p++)
        for (int q = 0; q < 3; q++)
            for (int i = 0; i < 2; i++)
                for (int j = 0; j < 4; j++) {
                    double s = 0;
                    for (int k = 0; k < 3; k++)
                        s += (double)a[(p * 2 + i) * 3 + k] * b[(q * 3 + k) * 4 + j];
                    assert_true(fabs(y[((p * 3 + q) * 2 + i) * 4 + j] - s) < 1e-5);
                }
    /* mismatched inner dims */
    nnm_tensor_cleanup(&in[1]);
    mk(&in[1], NNM_DT_F32, NULL, 3, 3, 2, 4);
    nnm_diag d;
    nnm_diag_clear(&d);
    assert_int_equal(run_node(&n, in, 2, out, 1, &d), NNM_ESHAPE);
    assert_non_null(strstr(d.msg, "node 'k1' (MatMul)"));
    cleanup(in, 2);
    cleanup(out, 1);
}

/* --- elementwise ------------------------------------------------------------------------ */

static void test_binary_broadcast_3d_by_1d_matches_hand_values(void **state)
{
    (void)state;
    nnm_tensor in[2], out[1];
    mk(&in[0], NNM_DT_F32, (float[]){ 0, 10, 20, 30, 40, 50 }, 3, 2, 3, 1);
    mk(&in[1], NNM_DT_F32, (float[]){ 1, 2, 3, 4 }, 1, 4);
    mk(&out[0], NNM_DT_F32, NULL, 3, 2, 3, 4);
    nnm_node n = mknode(NNM_OP_ADD, 2, 1);
    assert_int_equal(run_node(&n, in, 2, out, 1, NULL), NNM_OK);
    const float *y = out[0].data;
    for (int i = 0; i < 6; i++)
        for (int j = 0; j < 4; j++) assert_true(y[i * 4 + j] == (float)(i * 10 + j + 1));
    /* B - A the other way round, and a fused clamp on Add */
    n.op = NNM_OP_SUB;
    nnm_tensor sw[2] = { in[1], in[0] };
    assert_int_equal(run_node(&n, sw, 2, out, 1, NULL), NNM_OK);
    assert_true(y[5] == 2.0f - 10.0f);
    n.op = NNM_OP_ADD;
    n.a.act = 1;
    n.a.act_min = 0.0f;
    n.a.act_max = 6.0f;
    assert_int_equal(run_node(&n, in, 2, out, 1, NULL), NNM_OK);
    assert_true(y[3] == 4.0f && y[4] == 6.0f);
    /* [2,3,1] and [3] do not broadcast to [2,3,4] */
    nnm_tensor_cleanup(&in[1]);
    mk(&in[1], NNM_DT_F32, NULL, 1, 3);
    nnm_diag d;
    nnm_diag_clear(&d);
    assert_int_equal(run_node(&n, in, 2, out, 1, &d), NNM_ESHAPE);
    assert_string_equal(d.msg, "node 'k1' (Add): input 1 of shape [3] does not broadcast to "
                        "the output shape [2, 3, 4]");
    cleanup(in, 2);
    cleanup(out, 1);
}

static void test_binary_int_div_truncates_and_zero_fails(void **state)
{
    (void)state;
    nnm_tensor in[2], out[1];
    mk(&in[0], NNM_DT_I32, (int32_t[]){ 7, -7, 7, -7, INT32_MIN }, 1, 5);
    mk(&in[1], NNM_DT_I32, (int32_t[]){ 2, 2, -2, -2, -1 }, 1, 5);
    mk(&out[0], NNM_DT_I32, NULL, 1, 5);
    nnm_node n = mknode(NNM_OP_DIV, 2, 1);
    assert_int_equal(run_node(&n, in, 2, out, 1, NULL), NNM_OK);
    const int32_t *y = out[0].data;
    assert_int_equal(y[0], 3);
    assert_int_equal(y[1], -3);
    assert_int_equal(y[2], -3);
    assert_int_equal(y[3], 3);
    assert_int_equal(y[4], INT32_MIN);
    cleanup(in, 2);
    cleanup(out, 1);
    mk(&in[0], NNM_DT_I64, (int64_t[]){ -9, 9 }, 1, 2);
    mk(&in[1], NNM_DT_I64, (int64_t[]){ 4 }, 0);
    mk(&out[0], NNM_DT_I64, NULL, 1, 2);
    assert_int_equal(run_node(&n, in, 2, out, 1, NULL), NNM_OK);
    assert_int_equal(((int64_t *)out[0].data)[0], -2);
    assert_int_equal(((int64_t *)out[0].data)[1], 2);
    n.op = NNM_OP_MUL;
    assert_int_equal(run_node(&n, in, 2, out, 1, NULL), NNM_OK);
    assert_int_equal(((int64_t *)out[0].data)[0], -36);
    n.op = NNM_OP_DIV;
    ((int64_t *)in[1].data)[0] = 0;
    nnm_diag d;
    nnm_diag_clear(&d);
    assert_int_equal(run_node(&n, in, 2, out, 1, &d), NNM_ERANGE);
    assert_string_equal(d.msg, "node 'k1' (Div): integer division by zero (divisor element 0)");
    cleanup(in, 2);
    cleanup(out, 1);
}

static void test_binary_pow_int_exponent_and_variadic_max_min(void **state)
{
    (void)state;
    nnm_tensor in[3], out[1];
    mk(&in[0], NNM_DT_F32, (float[]){ 2, 3, 4, 0.5f }, 2, 2, 2);
    mk(&in[1], NNM_DT_I64, (int64_t[]){ 2, 3 }, 1, 2);
    mk(&out[0], NNM_DT_F32, NULL, 2, 2, 2);
    nnm_node n = mknode(NNM_OP_POW, 2, 1);
    assert_int_equal(run_node(&n, in, 2, out, 1, NULL), NNM_OK);
    expect_f32(&out[0], (float[]){ 4, 27, 16, 0.125f }, 4, 0.0f);
    nnm_tensor_cleanup(&in[1]);
    mk(&in[1], NNM_DT_F32, (float[]){ 1, 5 }, 1, 2);
    mk(&in[2], NNM_DT_F32, (float[]){ 3.5f }, 0);
    n = mknode(NNM_OP_MAX, 3, 1);
    assert_int_equal(run_node(&n, in, 3, out, 1, NULL), NNM_OK);
    expect_f32(&out[0], (float[]){ 3.5f, 5, 4, 5 }, 4, 0.0f);
    n.op = NNM_OP_MIN;
    assert_int_equal(run_node(&n, in, 3, out, 1, NULL), NNM_OK);
    expect_f32(&out[0], (float[]){ 1, 3, 1, 0.5f }, 4, 0.0f);
    n.n_in = 1; /* one input: a copy */
    assert_int_equal(run_node(&n, in, 1, out, 1, NULL), NNM_OK);
    expect_f32(&out[0], (float[]){ 2, 3, 4, 0.5f }, 4, 0.0f);
    cleanup(in, 3);
    cleanup(out, 1);
}

static void test_binary_other_dtypes_use_generic_path(void **state)
{
    (void)state;
    nnm_tensor in[2], out[1];
    nnm_node n = mknode(NNM_OP_ADD, 2, 1);
    mk(&in[0], NNM_DT_U8, (uint8_t[]){ 250, 3 }, 1, 2);
    mk(&in[1], NNM_DT_U8, (uint8_t[]){ 10 }, 1, 1);
    mk(&out[0], NNM_DT_U8, NULL, 1, 2);
    assert_int_equal(run_node(&n, in, 2, out, 1, NULL), NNM_OK);
    assert_memory_equal(out[0].data, ((uint8_t[]){ 4, 13 }), 2);       /* wraps like C */
    cleanup(in, 2);
    cleanup(out, 1);
    n.op = NNM_OP_POW;                                                  /* int base */
    mk(&in[0], NNM_DT_I32, (int32_t[]){ 3, -2 }, 1, 2);
    mk(&in[1], NNM_DT_F32, (float[]){ 2.0f }, 0);
    mk(&out[0], NNM_DT_I32, NULL, 1, 2);
    assert_int_equal(run_node(&n, in, 2, out, 1, NULL), NNM_OK);
    assert_memory_equal(out[0].data, ((int32_t[]){ 9, 4 }), 2 * sizeof(int32_t));
    cleanup(in, 2);
    cleanup(out, 1);
    n.op = NNM_OP_DIV;
    mk(&in[0], NNM_DT_F64, (double[]){ 1.0, -3.0 }, 1, 2);
    mk(&in[1], NNM_DT_F64, (double[]){ 3.0, 0.5 }, 1, 2);
    mk(&out[0], NNM_DT_F64, NULL, 1, 2);
    assert_int_equal(run_node(&n, in, 2, out, 1, NULL), NNM_OK);
    assert_true(((double *)out[0].data)[0] == 1.0 / 3.0 && ((double *)out[0].data)[1] == -6.0);
    cleanup(in, 2);
    cleanup(out, 1);
    n = mknode(NNM_OP_CLIP, 1, 1);                                     /* int8 clip */
    n.a.act_min = -100.5f;
    mk(&in[0], NNM_DT_I8, (int8_t[]){ -128, 5, 127 }, 1, 3);
    mk(&out[0], NNM_DT_I8, NULL, 1, 3);
    assert_int_equal(run_node(&n, in, 1, out, 1, NULL), NNM_OK);
    assert_memory_equal(out[0].data, ((int8_t[]){ -100, 5, 127 }), 3);
    cleanup(in, 1);
    cleanup(out, 1);
}

static void test_unary_ops_match_hand_values(void **state)
{
    (void)state;
    static const struct {
        nnm_op op; float in, want;
    } cases[] = {
        { NNM_OP_SQRT, 4, 2 }, { NNM_OP_EXP, 0, 1 }, { NNM_OP_LOG, 1, 0 },
        { NNM_OP_ERF, 0, 0 }, { NNM_OP_RELU, -3, 0 }, { NNM_OP_RELU, 2, 2 },
        { NNM_OP_SIGMOID, 0, 0.5f }, { NNM_OP_SIGMOID, -200, 0 }, { NNM_OP_SIGMOID, 200, 1 },
        { NNM_OP_TANH, 0, 0 }, { NNM_OP_HARD_SWISH, 3, 3 }, { NNM_OP_HARD_SWISH, -3, 0 },
        { NNM_OP_HARD_SWISH, 1.5f, 1.5f * 0.75f }, { NNM_OP_LEAKY_RELU, -2, -0.2f },
        { NNM_OP_LEAKY_RELU, 2, 2 }, { NNM_OP_HARD_SIGMOID, 1, 0.7f },
        { NNM_OP_HARD_SIGMOID, 10, 1 }, { NNM_OP_CLIP, 9, 6 }, { NNM_OP_CLIP, -9, -1 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        nnm_tensor in[1], out[1];
        mk(&in[0], NNM_DT_F32, &cases[i].in, 0);
        mk(&out[0], NNM_DT_F32, NULL, 0);
        nnm_node n = mknode(cases[i].op, 1, 1);
        if (cases[i].op == NNM_OP_LEAKY_RELU) n.a.alpha = 0.1f;
        if (cases[i].op == NNM_OP_HARD_SIGMOID) { n.a.alpha = 0.2f; n.a.beta = 0.5f; }
        n.a.act_min = -1.0f;
        n.a.act_max = 6.0f;
        assert_int_equal(run_node(&n, in, 1, out, 1, NULL), NNM_OK);
        expect_f32(&out[0], &cases[i].want, 1, 1e-6f);
        cleanup(in, 1);
        cleanup(out, 1);
    }
    /* Relu and Clip on int64 */
    nnm_tensor in[1], out[1];
    mk(&in[0], NNM_DT_I64, (int64_t[]){ -5, 3, 100 }, 1, 3);
    mk(&out[0], NNM_DT_I64, NULL, 1, 3);
    nnm_node n = mknode(NNM_OP_CLIP, 1, 1);
    n.a.act_min = -2.0f;
    n.a.act_max = 50.0f;
    assert_int_equal(run_node(&n, in, 1, out, 1, NULL), NNM_OK);
    assert_memory_equal(out[0].data, ((int64_t[]){ -2, 3, 50 }), 3 * sizeof(int64_t));
    n.op = NNM_OP_RELU;
    assert_int_equal(run_node(&n, in, 1, out, 1, NULL), NNM_OK);
    assert_memory_equal(out[0].data, ((int64_t[]){ 0, 3, 100 }), 3 * sizeof(int64_t));
    n.op = NNM_OP_EXP;
    assert_int_equal(run_node(&n, in, 1, out, 1, NULL), NNM_EUNSUPPORTED);
    cleanup(in, 1);
    cleanup(out, 1);
}

static void test_softmax_axis_and_legacy_2d_are_stable(void **state)
{
    (void)state;
    nnm_tensor in[1], out[1];
    mk(&in[0], NNM_DT_F32, (float[]){ 1000, 1001, 1002, 1, 2, 3 }, 2, 2, 3);
    mk(&out[0], NNM_DT_F32, NULL, 2, 2, 3);
    nnm_node n = mknode(NNM_OP_SOFTMAX, 1, 1);
    n.a.axis = 1;
    assert_int_equal(run_node(&n, in, 1, out, 1, NULL), NNM_OK);
    float e1 = expf(-2.0f), e2 = expf(-1.0f), s = e1 + e2 + 1.0f;
    float w[6] = { e1 / s, e2 / s, 1 / s, e1 / s, e2 / s, 1 / s };
    expect_f32(&out[0], w, 6, 1e-6f);
    /* axis 0 over columns (opset 13) vs legacy_2d over everything */
    memcpy(in[0].data, (float[]){ 0, 0, 0, 0, 0, 0 }, 6 * sizeof(float));
    n.a.axis = 0;
    assert_int_equal(run_node(&n, in, 1, out, 1, NULL), NNM_OK);
    expect_f32(&out[0], (float[]){ 0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f }, 6, 1e-7f);
    n.a.legacy_2d = 1;
    assert_int_equal(run_node(&n, in, 1, out, 1, NULL), NNM_OK);
    float s6 = 1.0f / 6.0f;
    expect_f32(&out[0], (float[]){ s6, s6, s6, s6, s6, s6 }, 6, 1e-7f);
    cleanup(in, 1);
    cleanup(out, 1);
}

/* --- data movement ---------------------------------------------------------------------- */

static void test_transpose_3d_perm_matches_naive(void **state)
{
    (void)state;
    int32_t x[24];
    for (int i = 0; i < 24; i++) x[i] = i;
    nnm_tensor in[1], out[1];
    mk(&in[0], NNM_DT_I32, x, 3, 2, 3, 4);
    mk(&out[0], NNM_DT_I32, NULL, 3, 4, 2, 3);
    nnm_node n = mknode(NNM_OP_TRANSPOSE, 1, 1);
    n.a.perm[0] = 2; n.a.perm[1] = 0; n.a.perm[2] = 1;
    assert_int_equal(run_node(&n, in, 1, out, 1, NULL), NNM_OK);
    const int32_t *y = out[0].data;
    for (int a = 0; a < 4; a++)
        for (int b = 0; b < 2; b++)
            for (int c = 0; c < 3; c++) assert_int_equal(y[(a * 2 + b) * 3 + c], x[(b * 3 + c) * 4 + a]);
    n.a.perm[2] = 0;
    assert_int_equal(run_node(&n, in, 1, out, 1, NULL), NNM_EINVAL);
    cleanup(in, 1);
    cleanup(out, 1);
}

static void test_concat_split_axis1_roundtrip(void **state)
{
    (void)state;
    nnm_tensor in[2], out[1], parts[2];
    mk(&in[0], NNM_DT_I64, (int64_t[]){ 1, 2 }, 2, 2, 1);
    mk(&in[1], NNM_DT_I64, (int64_t[]){ 3, 4, 5, 6 }, 2, 2, 2);
    mk(&out[0], NNM_DT_I64, NULL, 2, 2, 3);
    nnm_node n = mknode(NNM_OP_CONCAT, 2, 1);
    n.a.axis = 1;
    assert_int_equal(run_node(&n, in, 2, out, 1, NULL), NNM_OK);
    assert_memory_equal(out[0].data, ((int64_t[]){ 1, 3, 4, 2, 5, 6 }), 6 * sizeof(int64_t));
    mk(&parts[0], NNM_DT_I64, NULL, 2, 2, 1);
    mk(&parts[1], NNM_DT_I64, NULL, 2, 2, 2);
    nnm_node s = mknode(NNM_OP_SPLIT, 1, 2);
    s.a.axis = 1;
    assert_int_equal(run_node(&s, out, 1, parts, 2, NULL), NNM_OK);
    assert_memory_equal(parts[0].data, in[0].data, in[0].nbytes);
    assert_memory_equal(parts[1].data, in[1].data, in[1].nbytes);
    cleanup(in, 2);
    cleanup(out, 1);
    cleanup(parts, 2);
}

static void test_slice_negative_steps_and_out_of_range(void **state)
{
    (void)state;
    nnm_tensor in[1], out[1];
    float x[12];
    for (int i = 0; i < 12; i++) x[i] = (float)i;
    mk(&in[0], NNM_DT_F32, x, 2, 3, 4);
    mk(&out[0], NNM_DT_F32, NULL, 2, 2, 2);
    nnm_node n = mknode(NNM_OP_SLICE, 1, 1);
    n.a.starts[0] = 2; n.a.steps[0] = -2;  /* rows 2, 0 */
    n.a.starts[1] = 3; n.a.steps[1] = -2;  /* cols 3, 1 */
    assert_int_equal(run_node(&n, in, 1, out, 1, NULL), NNM_OK);
    expect_f32(&out[0], (float[]){ 11, 9, 3, 1 }, 4, 0.0f);
    n.a.starts[0] = 1;                     /* rows 1, -1: out of range */
    nnm_diag d;
    nnm_diag_clear(&d);
    assert_int_equal(run_node(&n, in, 1, out, 1, &d), NNM_ERANGE);
    assert_non_null(strstr(d.msg, "node 'k1' (Slice): axis 0"));
    cleanup(in, 1);
    cleanup(out, 1);
}

static void test_pad_modes_and_negative_pads_match_hand_values(void **state)
{
    (void)state;
    nnm_tensor in[1], out[1];
    mk(&in[0], NNM_DT_F32, (float[]){ 1, 2, 3 }, 1, 3);
    mk(&out[0], NNM_DT_F32, NULL, 1, 7);
    nnm_node n = mknode(NNM_OP_PAD, 1, 1);
    n.a.pads[0] = 2; n.a.pads[1] = 2;
    n.a.pad_value = 9.0f;
    assert_int_equal(run_node(&n, in, 1, out, 1, NULL), NNM_OK);
    expect_f32(&out[0], (float[]){ 9, 9, 1, 2, 3, 9, 9 }, 7, 0.0f);
    n.a.pad_mode = NNM_PAD_REFLECT;
    assert_int_equal(run_node(&n, in, 1, out, 1, NULL), NNM_OK);
    expect_f32(&out[0], (float[]){ 3, 2, 1, 2, 3, 2, 1 }, 7, 0.0f);
    n.a.pad_mode = NNM_PAD_EDGE;
    assert_int_equal(run_node(&n, in, 1, out, 1, NULL), NNM_OK);
    expect_f32(&out[0], (float[]){ 1, 1, 1, 2, 3, 3, 3 }, 7, 0.0f);
    nnm_tensor_cleanup(&out[0]);
    mk(&out[0], NNM_DT_F32, NULL, 1, 3);
    n.a.pad_mode = NNM_PAD_CONSTANT;
    n.a.pads[0] = -1; n.a.pads[1] = 1;
    n.a.pad_value = 0.0f;
    assert_int_equal(run_node(&n, in, 1, out, 1, NULL), NNM_OK);
    expect_f32(&out[0], (float[]){ 2, 3, 0 }, 3, 0.0f);
    cleanup(in, 1);
    cleanup(out, 1);
    /* 2-D int32: [[1,2],[3,4]] pads (1,0) before, (0,1) after, value 7 */
    mk(&in[0], NNM_DT_I32, (int32_t[]){ 1, 2, 3, 4 }, 2, 2, 2);
    mk(&out[0], NNM_DT_I32, NULL, 2, 3, 3);
    n = mknode(NNM_OP_PAD, 1, 1);
    n.a.pads[0] = 1; n.a.pads[1] = 0; n.a.pads[2] = 0; n.a.pads[3] = 1;
    n.a.pad_value = 7.0f;
    assert_int_equal(run_node(&n, in, 1, out, 1, NULL), NNM_OK);
    assert_memory_equal(out[0].data, ((int32_t[]){ 7, 7, 7, 1, 2, 7, 3, 4, 7 }),
                        9 * sizeof(int32_t));
    cleanup(in, 1);
    cleanup(out, 1);
}

static void test_gather_negative_indices_wrap_and_out_of_range_fails(void **state)
{
    (void)state;
    nnm_tensor in[2], out[1];
    mk(&in[0], NNM_DT_F32, (float[]){ 1, 2, 3, 4, 5, 6 }, 2, 3, 2);
    mk(&in[1], NNM_DT_I64, (int64_t[]){ -1, 0 }, 1, 2);
    mk(&out[0], NNM_DT_F32, NULL, 2, 2, 2);
    nnm_node n = mknode(NNM_OP_GATHER, 2, 1);
    assert_int_equal(run_node(&n, in, 2, out, 1, NULL), NNM_OK);
    expect_f32(&out[0], (float[]){ 5, 6, 1, 2 }, 4, 0.0f);
    cleanup(out, 1);
    nnm_tensor_cleanup(&in[1]);
    /* axis 1 with int32 indices of shape [2, 1] -> [3, 2, 1] */
    mk(&in[1], NNM_DT_I32, (int32_t[]){ 1, -2 }, 2, 2, 1);
    mk(&out[0], NNM_DT_F32, NULL, 3, 3, 2, 1);
    n.a.axis = 1;
    assert_int_equal(run_node(&n, in, 2, out, 1, NULL), NNM_OK);
    expect_f32(&out[0], (float[]){ 2, 1, 4, 3, 6, 5 }, 6, 0.0f);
    ((int32_t *)in[1].data)[1] = 2;
    nnm_diag d;
    nnm_diag_clear(&d);
    assert_int_equal(run_node(&n, in, 2, out, 1, &d), NNM_ERANGE);
    assert_string_equal(d.msg, "node 'k1' (Gather): index 2 (at position 1) is out of range "
                        "for axis 1 of size 2");
    ((int32_t *)in[1].data)[1] = -3;
    assert_int_equal(run_node(&n, in, 2, out, 1, &d), NNM_ERANGE);
    cleanup(in, 2);
    cleanup(out, 1);
}

static void test_copy_ops_shape_and_constant_of_shape(void **state)
{
    (void)state;
    nnm_tensor in[1], out[2];
    mk(&in[0], NNM_DT_U8, (uint8_t[]){ 1, 2, 3, 4, 5, 6 }, 3, 1, 2, 3);
    mk(&out[0], NNM_DT_U8, NULL, 2, 3, 2);
    mk(&out[1], NNM_DT_BOOL, NULL, 3, 1, 2, 3);
    nnm_node n = mknode(NNM_OP_DROPOUT, 1, 2);
    assert_int_equal(run_node(&n, in, 1, out, 2, NULL), NNM_OK);
    assert_memory_equal(out[0].data, in[0].data, 6);
    assert_memory_equal(out[1].data, ((uint8_t[]){ 1, 1, 1, 1, 1, 1 }), 6);
    n = mknode(NNM_OP_RESHAPE, 1, 1);
    memset(out[0].data, 0, 6);
    assert_int_equal(run_node(&n, in, 1, out, 1, NULL), NNM_OK);
    assert_memory_equal(out[0].data, in[0].data, 6);
    cleanup(out, 2);
    mk(&out[0], NNM_DT_I64, NULL, 1, 3);
    n = mknode(NNM_OP_SHAPE, 1, 1);
    assert_int_equal(run_node(&n, in, 1, out, 1, NULL), NNM_OK);
    assert_memory_equal(out[0].data, ((int64_t[]){ 1, 2, 3 }), 3 * sizeof(int64_t));
    cleanup(out, 1);
    mk(&out[0], NNM_DT_I64, NULL, 2, 2, 2);
    n = mknode(NNM_OP_CONSTANT_OF_SHAPE, 0, 1);
    n.a.pad_value = 7.0f;
    assert_int_equal(run_node(&n, in, 0, out, 1, NULL), NNM_OK);
    assert_memory_equal(out[0].data, ((int64_t[]){ 7, 7, 7, 7 }), 4 * sizeof(int64_t));
    n = mknode(NNM_OP_CONSTANT, 0, 1);
    assert_int_equal(run_node(&n, in, 0, out, 1, NULL), NNM_EINVAL);
    cleanup(in, 1);
    cleanup(out, 1);
}

/* --- Cast ------------------------------------------------------------------------------- */

static void test_cast_f32_to_f16_rounds_to_nearest_even(void **state)
{
    (void)state;
    const float x[] = { 1.0f, 65504.0f, 65520.0f, 1.0f / 3.0f, 0x1p-24f, 0x1p-25f, 0x3p-26f,
                        0x3p-25f, -0.0f, 1.0f + 0x1p-11f, 1.0f + 0x3p-11f, -2.5f, 0x1p-14f,
                        65519.0f, 1e10f };
    const uint16_t want[] = { 0x3c00, 0x7bff, 0x7c00, 0x3555, 0x0001, 0x0000, 0x0001,
                              0x0002, 0x8000, 0x3c00, 0x3c02, 0xc100, 0x0400,
                              0x7bff, 0x7c00 };
    size_t cnt = sizeof x / sizeof x[0];
    nnm_tensor in[1], out[1];
    mk(&in[0], NNM_DT_F32, x, 1, (int)cnt);
    mk(&out[0], NNM_DT_F16, NULL, 1, (int)cnt);
    nnm_node n = mknode(NNM_OP_CAST, 1, 1);
    n.a.to = NNM_DT_F16;
    assert_int_equal(run_node(&n, in, 1, out, 1, NULL), NNM_OK);
    const uint16_t *h = out[0].data;
    for (size_t i = 0; i < cnt; i++) {
        if (h[i] != want[i]) print_error("element %zu: got 0x%04x want 0x%04x\n", i, h[i], want[i]);
        assert_int_equal(h[i], want[i]);
    }
    cleanup(in, 1);
    cleanup(out, 1);
}

static void test_cast_f16_all_values_roundtrip_through_f32(void **state)
{
    (void)state;
    nnm_tensor h[1], f[1], back[1];
    mk(&h[0], NNM_DT_F16, NULL, 1, 65536);
    mk(&f[0], NNM_DT_F32, NULL, 1, 65536);
    mk(&back[0], NNM_DT_F16, NULL, 1, 65536);
    uint16_t *hp = h[0].data;
    for (int i = 0; i < 65536; i++) hp[i] = (uint16_t)i;
    nnm_node n = mknode(NNM_OP_CAST, 1, 1);
    assert_int_equal(run_node(&n, h, 1, f, 1, NULL), NNM_OK);
    assert_int_equal(run_node(&n, f, 1, back, 1, NULL), NNM_OK);
    const uint16_t *bp = back[0].data;
    const float *fp = f[0].data;
    assert_true(fp[0x3c00] == 1.0f && fp[0x0001] == 0x1p-24f && fp[0xfbff] == -65504.0f);
    for (int i = 0; i < 65536; i++) {
        int is_nan = (i & 0x7c00) == 0x7c00 && (i & 0x3ff) != 0;
        if (is_nan) assert_true(isnan(fp[i]) && (bp[i] & 0x7c00) == 0x7c00 && (bp[i] & 0x3ff));
        else assert_int_equal(bp[i], i);
    }
    cleanup(h, 1);
    cleanup(f, 1);
    cleanup(back, 1);
}

static void test_cast_float_int_bool_conversions(void **state)
{
    (void)state;
    nnm_tensor in[1], out[1];
    mk(&in[0], NNM_DT_F32, (float[]){ -2.7f, 2.7f, -0.5f, 0.0f, -0.0f, NAN }, 1, 6);
    mk(&out[0], NNM_DT_I32, NULL, 1, 6);
    nnm_node n = mknode(NNM_OP_CAST, 1, 1);
    assert_int_equal(run_node(&n, in, 1, out, 1, NULL), NNM_OK);
    assert_memory_equal(out[0].data, ((int32_t[]){ -2, 2, 0, 0, 0, 0 }), 6 * sizeof(int32_t));
    cleanup(out, 1);
    mk(&out[0], NNM_DT_BOOL, NULL, 1, 6);
    assert_int_equal(run_node(&n, in, 1, out, 1, NULL), NNM_OK);
    assert_memory_equal(out[0].data, ((uint8_t[]){ 1, 1, 1, 0, 0, 1 }), 6);
    cleanup(in, 1);
    cleanup(out, 1);
    mk(&in[0], NNM_DT_I64, (int64_t[]){ -3, 16777217, 0x100000005LL }, 1, 3);
    mk(&out[0], NNM_DT_F32, NULL, 1, 3);
    assert_int_equal(run_node(&n, in, 1, out, 1, NULL), NNM_OK);
    expect_f32(&out[0], (float[]){ -3.0f, 16777216.0f, 4294967296.0f }, 3, 0.0f);
    cleanup(out, 1);
    mk(&out[0], NNM_DT_I32, NULL, 1, 3);
    assert_int_equal(run_node(&n, in, 1, out, 1, NULL), NNM_OK);
    assert_memory_equal(out[0].data, ((int32_t[]){ -3, 16777217, 5 }), 3 * sizeof(int32_t));
    cleanup(out, 1);
    mk(&out[0], NNM_DT_F64, NULL, 1, 3);
    assert_int_equal(run_node(&n, in, 1, out, 1, NULL), NNM_OK);
    assert_true(((double *)out[0].data)[2] == 4294967301.0);
    cleanup(in, 1);
    cleanup(out, 1);
}

/* --- Resize ----------------------------------------------------------------------------- */

/* 2x2 [[1,2],[3,4]] -> 4x4 with scale 2 on H and W. */
static void resize_case(int mode, int coord, int nearest, const float *want)
{
    nnm_tensor in[1], out[1];
    mk(&in[0], NNM_DT_F32, (float[]){ 1, 2, 3, 4 }, 4, 1, 1, 2, 2);
    mk(&out[0], NNM_DT_F32, NULL, 4, 1, 1, 4, 4);
    nnm_node n = mknode(NNM_OP_RESIZE, 1, 1);
    n.a.resize_mode = mode;
    n.a.coord_mode = coord;
    n.a.nearest_mode = nearest;
    n.a.scales[0] = n.a.scales[1] = 1.0f;
    n.a.scales[2] = n.a.scales[3] = 2.0f;
    assert_int_equal(run_node(&n, in, 1, out, 1, NULL), NNM_OK);
    expect_f32(&out[0], want, 16, 1e-6f);
    cleanup(in, 1);
    cleanup(out, 1);
}

static void test_resize_2x2_to_4x4_modes_match_onnx_formulas(void **state)
{
    (void)state;
    /* nearest index maps per axis: [0,0,1,1] and [0,1,1,1] */
    const float n0011[16] = { 1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4 };
    const float n0111[16] = { 1, 2, 2, 2, 3, 4, 4, 4, 3, 4, 4, 4, 3, 4, 4, 4 };
    /* asymmetric x/2 = 0, .5, 1, 1.5 */
    resize_case(NNM_RESIZE_NEAREST, NNM_COORD_ASYMMETRIC, NNM_NEAREST_FLOOR, n0011);
    resize_case(NNM_RESIZE_NEAREST, NNM_COORD_ASYMMETRIC, NNM_NEAREST_ROUND_PREFER_FLOOR, n0011);
    resize_case(NNM_RESIZE_NEAREST, NNM_COORD_ASYMMETRIC, NNM_NEAREST_ROUND_PREFER_CEIL, n0111);
    /* half_pixel (x+.5)/2-.5 = -.25, .25, .75, 1.25 */
    resize_case(NNM_RESIZE_NEAREST, NNM_COORD_HALF_PIXEL, NNM_NEAREST_ROUND_PREFER_FLOOR, n0011);
    resize_case(NNM_RESIZE_NEAREST, NNM_COORD_HALF_PIXEL, NNM_NEAREST_CEIL, n0111);
    /* align_corners x/3 = 0, 1/3, 2/3, 1 */
    resize_case(NNM_RESIZE_NEAREST, NNM_COORD_ALIGN_CORNERS, NNM_NEAREST_CEIL, n0111);
    resize_case(NNM_RESIZE_NEAREST, NNM_COORD_ALIGN_CORNERS, NNM_NEAREST_FLOOR,
                (float[]){ 1, 1, 1, 2, 1, 1, 1, 2, 1, 1, 1, 2, 3, 3, 3, 4 });
    /* tf_half_pixel_for_nearest (x+.5)/2 = .25, .75, 1.25, 1.75 */
    resize_case(NNM_RESIZE_NEAREST, NNM_COORD_TF_HALF_PIXEL_FOR_NN,
                NNM_NEAREST_ROUND_PREFER_FLOOR, n0111);
    /* linear half_pixel: weights per axis t = 0 (clamped), .25, .75, 1 (clamped) */
    resize_case(NNM_RESIZE_LINEAR, NNM_COORD_HALF_PIXEL, 0,
                (float[]){ 1, 1.25f, 1.75f, 2, 1.5f, 1.75f, 2.25f, 2.5f,
                           2.5f, 2.75f, 3.25f, 3.5f, 3, 3.25f, 3.75f, 4 });
    resize_case(NNM_RESIZE_LINEAR, NNM_COORD_PYTORCH_HALF_PIXEL, 0,
                (float[]){ 1, 1.25f, 1.75f, 2, 1.5f, 1.75f, 2.25f, 2.5f,
                           2.5f, 2.75f, 3.25f, 3.5f, 3, 3.25f, 3.75f, 4 });
    /* linear asymmetric: t = 0, .5, 1, 1 (clamped) */
    resize_case(NNM_RESIZE_LINEAR, NNM_COORD_ASYMMETRIC, 0,
                (float[]){ 1, 1.5f, 2, 2, 2, 2.5f, 3, 3, 3, 3.5f, 4, 4, 3, 3.5f, 4, 4 });
    /* linear align_corners: t = 0, 1/3, 2/3, 1; value = 1 + t_x + 2 t_y */
    float ac[16];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) ac[i * 4 + j] = 1.0f + (float)j / 3.0f + 2.0f * (float)i / 3.0f;
    resize_case(NNM_RESIZE_LINEAR, NNM_COORD_ALIGN_CORNERS, 0, ac);
}

static void test_resize_downscale_to_1x1_half_pixel_vs_pytorch(void **state)
{
    (void)state;
    nnm_tensor in[1], out[1];
    mk(&in[0], NNM_DT_F32, (float[]){ 1, 2, 3, 4 }, 4, 1, 1, 2, 2);
    mk(&out[0], NNM_DT_F32, NULL, 4, 1, 1, 1, 1);
    nnm_node n = mknode(NNM_OP_RESIZE, 1, 1);
    n.a.resize_mode = NNM_RESIZE_LINEAR;
    n.a.scales[0] = n.a.scales[1] = 1.0f;
    n.a.scales[2] = n.a.scales[3] = 0.5f;
    assert_int_equal(run_node(&n, in, 1, out, 1, NULL), NNM_OK);   /* (0+.5)/.5-.5 = .5 */
    expect_f32(&out[0], (float[]){ 2.5f }, 1, 0.0f);
    n.a.coord_mode = NNM_COORD_PYTORCH_HALF_PIXEL;                  /* length 1 -> 0 */
    assert_int_equal(run_node(&n, in, 1, out, 1, NULL), NNM_OK);
    expect_f32(&out[0], (float[]){ 1.0f }, 1, 0.0f);
    cleanup(in, 1);
    cleanup(out, 1);
}

/* ONNX's reference uses length_resized = length_original * scale (fractional here):
 * [[1,2,3,4],[5,6,7,8]] scale 0.6 -> 1x2; x_original = 1 * 3 / (2.4 - 1) = 2.142857. */
static void test_resize_align_corners_fractional_scale_matches_onnx(void **state)
{
    (void)state;
    nnm_tensor in[1], out[1];
    mk(&in[0], NNM_DT_F32, (float[]){ 1, 2, 3, 4, 5, 6, 7, 8 }, 4, 1, 1, 2, 4);
    mk(&out[0], NNM_DT_F32, NULL, 4, 1, 1, 1, 2);
    nnm_node n = mknode(NNM_OP_RESIZE, 1, 1);
    n.a.resize_mode = NNM_RESIZE_LINEAR;
    n.a.coord_mode = NNM_COORD_ALIGN_CORNERS;
    n.a.scales[0] = n.a.scales[1] = 1.0f;
    n.a.scales[2] = n.a.scales[3] = 0.6f;
    assert_int_equal(run_node(&n, in, 1, out, 1, NULL), NNM_OK);
    expect_f32(&out[0], (float[]){ 1.0f, 1.0f + 3.0f / 1.4f }, 2, 1e-5f);
    cleanup(in, 1);
    cleanup(out, 1);
}

/* --- reductions and the backend --------------------------------------------------------- */

static void test_reduce_mean_max_axes_keepdims(void **state)
{
    (void)state;
    nnm_tensor in[1], out[1];
    mk(&in[0], NNM_DT_F32, (float[]){ 1, 2, 3, 4, 5, 6 }, 2, 2, 3);
    mk(&out[0], NNM_DT_F32, NULL, 2, 2, 1);
    nnm_node n = mknode(NNM_OP_REDUCE_MEAN, 1, 1);
    n.a.axes_mask = 2u;
    n.a.keepdims = 1;
    assert_int_equal(run_node(&n, in, 1, out, 1, NULL), NNM_OK);
    expect_f32(&out[0], (float[]){ 2, 5 }, 2, 0.0f);
    cleanup(out, 1);
    mk(&out[0], NNM_DT_F32, NULL, 1, 3);
    n.op = NNM_OP_REDUCE_MAX;
    n.a.axes_mask = 1u;
    n.a.keepdims = 0;
    assert_int_equal(run_node(&n, in, 1, out, 1, NULL), NNM_OK);
    expect_f32(&out[0], (float[]){ 4, 5, 6 }, 3, 0.0f);
    cleanup(out, 1);
    mk(&out[0], NNM_DT_F32, NULL, 0);
    n.op = NNM_OP_REDUCE_MEAN;
    n.a.axes_mask = 3u;
    assert_int_equal(run_node(&n, in, 1, out, 1, NULL), NNM_OK);
    expect_f32(&out[0], (float[]){ 3.5f }, 1, 0.0f);
    cleanup(in, 1);
    cleanup(out, 1);
}

static void test_backend_ref_supports_by_dtype(void **state)
{
    (void)state;
    nnm_graph *g = ir__graph_new();
    assert_non_null(g);
    int x = ir__value_add(g, "x", NNM_DT_F32), xi = ir__value_add(g, "xi", NNM_DT_I64);
    int y = ir__value_add(g, "y", NNM_DT_F32), yi = ir__value_add(g, "yi", NNM_DT_I64);
    int k1 = ir__node_add(g, NNM_OP_SOFTMAX, "sm", NULL, &x, 1, &y, 1);
    int k2 = ir__node_add(g, NNM_OP_SOFTMAX, "smi", NULL, &xi, 1, &yi, 1);
    int k3 = ir__node_add(g, NNM_OP_ADD, "addi", NULL, (int[]){ xi, xi }, 2, &yi, 1);
    int k4 = ir__node_add(g, NNM_OP_GATHER, "ga", NULL, (int[]){ x, x }, 2, &y, 1);
    assert_true(k1 >= 0 && k2 >= 0 && k3 >= 0 && k4 >= 0);
    assert_int_equal(nnm_backend_ref.supports(g, &g->nodes[k1]), 1);
    assert_int_equal(nnm_backend_ref.supports(g, &g->nodes[k2]), 0);
    assert_int_equal(nnm_backend_ref.supports(g, &g->nodes[k3]), 1);
    assert_int_equal(nnm_backend_ref.supports(g, &g->nodes[k4]), 0);
    void *st = (void *)&st;
    assert_int_equal(nnm_backend_ref.prepare(&st, g, &g->nodes[k1], NULL, NULL), NNM_OK);
    assert_null(st);
    nnm_backend_ref.release(NULL);
    ir__graph_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv_nchw_pads_stride_bias_clamp_matches_hand_values),
        cmocka_unit_test(test_conv_1d_pads_matches_hand_values),
        cmocka_unit_test(test_conv_random_groups_stride_dilation_both_layouts_agree),
        cmocka_unit_test(test_conv_transpose_stride2_matches_hand_values),
        cmocka_unit_test(test_conv_transpose_random_groups_both_layouts_agree),
        cmocka_unit_test(test_conv_bad_group_fails_with_eshape_naming_node),
        cmocka_unit_test(test_conv_int32_input_fails_unsupported_naming_dtype),
        cmocka_unit_test(test_pool_avg_count_include_pad_matches_hand_values),
        cmocka_unit_test(test_pool_max_dilation_indices_matches_hand_values),
        cmocka_unit_test(test_pool_random_both_layouts_agree),
        cmocka_unit_test(test_pool_global_avg_max_both_layouts_match_hand_values),
        cmocka_unit_test(test_batchnorm_both_layouts_match_hand_values),
        cmocka_unit_test(test_gemm_transposes_alpha_beta_broadcast_c_match_hand_values),
        cmocka_unit_test(test_matmul_1d_operands_match_hand_values),
        cmocka_unit_test(test_matmul_batch_broadcast_matches_naive),
        cmocka_unit_test(test_binary_broadcast_3d_by_1d_matches_hand_values),
        cmocka_unit_test(test_binary_int_div_truncates_and_zero_fails),
        cmocka_unit_test(test_binary_pow_int_exponent_and_variadic_max_min),
        cmocka_unit_test(test_binary_other_dtypes_use_generic_path),
        cmocka_unit_test(test_unary_ops_match_hand_values),
        cmocka_unit_test(test_softmax_axis_and_legacy_2d_are_stable),
        cmocka_unit_test(test_transpose_3d_perm_matches_naive),
        cmocka_unit_test(test_concat_split_axis1_roundtrip),
        cmocka_unit_test(test_slice_negative_steps_and_out_of_range),
        cmocka_unit_test(test_pad_modes_and_negative_pads_match_hand_values),
        cmocka_unit_test(test_gather_negative_indices_wrap_and_out_of_range_fails),
        cmocka_unit_test(test_copy_ops_shape_and_constant_of_shape),
        cmocka_unit_test(test_cast_f32_to_f16_rounds_to_nearest_even),
        cmocka_unit_test(test_cast_f16_all_values_roundtrip_through_f32),
        cmocka_unit_test(test_cast_float_int_bool_conversions),
        cmocka_unit_test(test_resize_2x2_to_4x4_modes_match_onnx_formulas),
        cmocka_unit_test(test_resize_downscale_to_1x1_half_pixel_vs_pytorch),
        cmocka_unit_test(test_resize_align_corners_fractional_scale_matches_onnx),
        cmocka_unit_test(test_reduce_mean_max_axes_keepdims),
        cmocka_unit_test(test_backend_ref_supports_by_dtype),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
