/* tests/unit/test_infer.c — shape inference and attribute normalization (runtime/infer.c).
 *
 * Each test builds a small graph by hand (graph inputs with shapes set directly, parameter
 * tensors as constants), runs ir__infer, and checks output shapes, normalized attributes,
 * dropped parameter inputs, statistics, error codes and messages. Data inputs are graph
 * inputs (not constants) unless a test is about constant folding. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "ir.h"

/* --- graph building helpers ------------------------------------------------------------- */

static int add_input(nnm_graph *g, const char *name, nnm_dtype dt, int nd, const int64_t *s)
{
    int v = ir__value_add(g, name, dt);
    assert_true(v >= 0);
    g->values[v].ndim = nd;
    for (int d = 0; d < nd; d++) g->values[v].shape[d] = s[d];
    g->values[v].is_input = 1;
    int *p = realloc(g->inputs, (size_t)(g->n_inputs + 1) * sizeof *p);
    assert_non_null(p);
    g->inputs = p;
    g->inputs[g->n_inputs++] = v;
    return v;
}

static int add_const(nnm_graph *g, const char *name, nnm_dtype dt, int nd, const int64_t *s,
                     const void *data)
{
    nnm_tensor t;
    assert_int_equal(nnm_tensor_init(&t, dt, nd, s), NNM_OK);
    if (data != NULL && t.nbytes > 0) memcpy(t.data, data, t.nbytes);
    int v = ir__const_add(g, name, &t);
    assert_true(v >= 0);
    return v;
}

static int add_i64(nnm_graph *g, const char *name, int n, const int64_t *vals)
{
    int64_t s[1] = { n };
    return add_const(g, name, NNM_DT_I64, 1, s, vals);
}

static int add_f32(nnm_graph *g, const char *name, int n, const float *vals)
{
    int64_t s[1] = { n };
    return add_const(g, name, NNM_DT_F32, 1, s, vals);
}

/* A float constant of shape s filled with zeros (weights). */
static int add_weight(nnm_graph *g, const char *name, int nd, const int64_t *s)
{
    return add_const(g, name, NNM_DT_F32, nd, s, NULL);
}

static int add_val(nnm_graph *g, const char *name)
{
    int v = ir__value_add(g, name, NNM_DT_UNDEFINED);
    assert_true(v >= 0);
    return v;
}

static nnm_node *add_node(nnm_graph *g, nnm_op op, const char *name, const int *in, int n_in,
                          const int *out, int n_out)
{
    int k = ir__node_add(g, op, name, NULL, in, n_in, out, n_out);
    assert_true(k >= 0);
    return &g->nodes[k];
}

static void set_output(nnm_graph *g, int v)
{
    int *p = realloc(g->outputs, (size_t)(g->n_outputs + 1) * sizeof *p);
    assert_non_null(p);
    g->outputs = p;
    g->outputs[g->n_outputs++] = v;
    g->values[v].is_output = 1;
}

/* Checks value v has rank nd and the listed dims. */
static void check_shape(const nnm_graph *g, int v, int nd, ...)
{
    va_list ap;
    assert_int_equal(g->values[v].ndim, nd);
    va_start(ap, nd);
    for (int d = 0; d < nd; d++) {
        long long want = va_arg(ap, long long);
        assert_int_equal(g->values[v].shape[d], want);
    }
    va_end(ap);
}

static void infer_ok(nnm_graph *g)
{
    nnm_diag d;
    nnm_diag_clear(&d);
    nnm_err rc = ir__infer(g, &d);
    if (rc != NNM_OK) print_error("ir__infer: %s\n", d.msg);
    assert_int_equal(rc, NNM_OK);
}

static void infer_fails(nnm_graph *g, nnm_err code, const char *needle)
{
    nnm_diag d;
    nnm_diag_clear(&d);
    nnm_err rc = ir__infer(g, &d);
    if (rc != code || strstr(d.msg, needle) == NULL)
        print_error("got %d '%s', wanted %d containing '%s'\n", rc, d.msg, code, needle);
    assert_int_equal(rc, code);
    assert_non_null(strstr(d.msg, needle));
}

#define S(...) ((const int64_t[]){ __VA_ARGS__ })

/* --- convolutions and pools ------------------------------------------------------------- */

static void test_infer_conv_same_upper_stride2_odd_input_pads_end(void **state)
{
    (void)state;
    nnm_graph *g = ir__graph_new();
    int x = add_input(g, "x", NNM_DT_F32, 4, S(1, 3, 7, 7));
    int w = add_weight(g, "w", 4, S(8, 3, 2, 2));
    int b = add_weight(g, "b", 1, S(8));
    int y = add_val(g, "y");
    nnm_node *n = add_node(g, NNM_OP_CONV, "conv0", (int[]){ x, w, b }, 3, &y, 1);
    n->a.strides[0] = n->a.strides[1] = 2;
    n->a.auto_pad = NNM_AUTOPAD_SAME_UPPER;
    set_output(g, y);
    infer_ok(g);
    n = &g->nodes[0];
    check_shape(g, y, 4, 1LL, 8LL, 4LL, 4LL);
    assert_int_equal(g->values[y].dtype, NNM_DT_F32);
    /* total pad = (4-1)*2 + 2 - 7 = 1 per axis, the odd one at the end */
    assert_int_equal(n->a.pads[0], 0);
    assert_int_equal(n->a.pads[1], 0);
    assert_int_equal(n->a.pads[2], 1);
    assert_int_equal(n->a.pads[3], 1);
    assert_int_equal(n->a.kernel[0], 2);
    assert_int_equal(n->a.kernel[1], 2);
    assert_int_equal(n->a.auto_pad, NNM_AUTOPAD_NOTSET);
    assert_int_equal(n->n_in, 3);
    assert_true(n->a.normalized);
    /* 2*N*M*OH*OW*C*kh*kw + N*M*OH*OW */
    assert_true(n->flops == 2.0 * 8 * 16 * 3 * 4 + 8 * 16);
    assert_int_equal(n->param_bytes, (8 * 3 * 2 * 2 + 8) * 4);
    assert_int_equal(n->out_bytes, 8 * 16 * 4);
    infer_ok(g);   /* idempotent */
    check_shape(g, y, 4, 1LL, 8LL, 4LL, 4LL);
    assert_int_equal(g->nodes[0].a.pads[2], 1);
    ir__graph_free(g);
}

static void test_infer_conv_same_lower_pads_begin(void **state)
{
    (void)state;
    nnm_graph *g = ir__graph_new();
    int x = add_input(g, "x", NNM_DT_F32, 4, S(1, 3, 7, 7));
    int w = add_weight(g, "w", 4, S(8, 3, 2, 2));
    int y = add_val(g, "y");
    nnm_node *n = add_node(g, NNM_OP_CONV, "conv0", (int[]){ x, w }, 2, &y, 1);
    n->a.strides[0] = n->a.strides[1] = 2;
    n->a.auto_pad = NNM_AUTOPAD_SAME_LOWER;
    infer_ok(g);
    check_shape(g, y, 4, 1LL, 8LL, 4LL, 4LL);
    assert_int_equal(g->nodes[0].a.pads[0], 1);
    assert_int_equal(g->nodes[0].a.pads[2], 0);
    ir__graph_free(g);
}

static void test_infer_conv_group_mismatch_names_node(void **state)
{
    (void)state;
    nnm_graph *g = ir__graph_new();
    int x = add_input(g, "x", NNM_DT_F32, 4, S(1, 64, 8, 8));
    int w = add_weight(g, "w", 4, S(6, 21, 3, 3));
    int y = add_val(g, "y");
    nnm_node *n = add_node(g, NNM_OP_CONV, "conv3", (int[]){ x, w }, 2, &y, 1);
    n->a.group = 3;
    infer_fails(g, NNM_ESHAPE, "node 'conv3' (Conv): group=3 does not divide 64 input channels");
    /* on error the node is unchanged */
    assert_false(g->nodes[0].a.normalized);
    assert_int_equal(g->values[y].ndim, -1);
    ir__graph_free(g);
}

static void test_infer_conv_weight_channels_mismatch_fails(void **state)
{
    (void)state;
    nnm_graph *g = ir__graph_new();
    int x = add_input(g, "x", NNM_DT_F32, 4, S(1, 64, 8, 8));
    int w = add_weight(g, "w", 4, S(8, 16, 3, 3));
    int y = add_val(g, "y");
    nnm_node *n = add_node(g, NNM_OP_CONV, "convw", (int[]){ x, w }, 2, &y, 1);
    n->a.group = 2;
    infer_fails(g, NNM_ESHAPE, "node 'convw' (Conv): weight 'w' has 16 input channels");
    ir__graph_free(g);
}

static void test_infer_conv_output_empty_fails(void **state)
{
    (void)state;
    nnm_graph *g = ir__graph_new();
    int x = add_input(g, "x", NNM_DT_F32, 4, S(1, 1, 2, 2));
    int w = add_weight(g, "w", 4, S(1, 1, 3, 3));
    int y = add_val(g, "y");
    add_node(g, NNM_OP_CONV, "tiny", (int[]){ x, w }, 2, &y, 1);
    infer_fails(g, NNM_ESHAPE, "node 'tiny' (Conv): output height would be <= 0");
    ir__graph_free(g);
}

static void test_infer_conv_nhwc_and_1d_layouts(void **state)
{
    (void)state;
    nnm_graph *g = ir__graph_new();
    int x = add_input(g, "x", NNM_DT_F32, 4, S(1, 9, 9, 3));
    int w = add_weight(g, "w", 4, S(8, 3, 3, 3));
    int y = add_val(g, "y");
    nnm_node *n = add_node(g, NNM_OP_CONV, "nhwc", (int[]){ x, w }, 2, &y, 1);
    n->a.layout = NNM_IR_NHWC;
    n->a.strides[0] = n->a.strides[1] = 2;
    n->a.pads[0] = n->a.pads[1] = n->a.pads[2] = n->a.pads[3] = 1;
    int x1 = add_input(g, "x1", NNM_DT_F32, 3, S(1, 2, 10));
    int w1 = add_weight(g, "w1", 3, S(4, 2, 3));
    int y1 = add_val(g, "y1");
    n = add_node(g, NNM_OP_CONV, "conv1d", (int[]){ x1, w1 }, 2, &y1, 1);
    n->a.spatial_1d = 1;
    n->a.dilations[1] = 2;
    infer_ok(g);
    check_shape(g, y, 4, 1LL, 5LL, 5LL, 8LL);
    check_shape(g, y1, 3, 1LL, 4LL, 6LL);
    assert_int_equal(g->nodes[1].a.kernel[0], 1);
    assert_int_equal(g->nodes[1].a.kernel[1], 3);
    ir__graph_free(g);
}

static void test_infer_conv_transpose_output_padding_grows_output(void **state)
{
    (void)state;
    nnm_graph *g = ir__graph_new();
    int x = add_input(g, "x", NNM_DT_F32, 4, S(1, 4, 5, 5));
    int w = add_weight(g, "w", 4, S(4, 2, 3, 3));
    int y = add_val(g, "y");
    nnm_node *n = add_node(g, NNM_OP_CONV_TRANSPOSE, "up", (int[]){ x, w }, 2, &y, 1);
    n->a.strides[0] = n->a.strides[1] = 2;
    n->a.pads[0] = n->a.pads[1] = n->a.pads[2] = n->a.pads[3] = 1;
    n->a.out_pad[0] = n->a.out_pad[1] = 1;
    /* the same with output_shape instead of pads */
    int x2 = add_input(g, "x2", NNM_DT_F32, 4, S(1, 4, 5, 5));
    int y2 = add_val(g, "y2");
    n = add_node(g, NNM_OP_CONV_TRANSPOSE, "up2", (int[]){ x2, w }, 2, &y2, 1);
    n->a.strides[0] = n->a.strides[1] = 2;
    n->a.out_shape_attr[0] = n->a.out_shape_attr[1] = 10;
    infer_ok(g);
    /* 2*(5-1) + 1 + 3 - 2 = 10 */
    check_shape(g, y, 4, 1LL, 2LL, 10LL, 10LL);
    check_shape(g, y2, 4, 1LL, 2LL, 10LL, 10LL);
    /* natural 11, total pad 1: begin gets the larger half */
    n = &g->nodes[1];
    assert_int_equal(n->a.pads[0], 1);
    assert_int_equal(n->a.pads[2], 0);
    assert_int_equal(n->a.out_shape_attr[0], 0);
    assert_true(g->nodes[0].flops == 2.0 * 4 * 25 * 2 * 9);
    ir__graph_free(g);
}

static void test_infer_maxpool_ceil_mode_rounds_up(void **state)
{
    (void)state;
    nnm_graph *g = ir__graph_new();
    int x = add_input(g, "x", NNM_DT_F32, 4, S(1, 1, 6, 6));
    int y = add_val(g, "y"), y2 = add_val(g, "y2");
    nnm_node *n = add_node(g, NNM_OP_MAXPOOL, "pool", &x, 1, &y, 1);
    n->a.kernel[0] = n->a.kernel[1] = 3;
    n->a.strides[0] = n->a.strides[1] = 2;
    n->a.ceil_mode = 1;
    /* ceil would give 4 but the last window would start in the end padding */
    int x2 = add_input(g, "x2", NNM_DT_F32, 4, S(1, 1, 5, 5));
    n = add_node(g, NNM_OP_MAXPOOL, "pool2", &x2, 1, &y2, 1);
    n->a.kernel[0] = n->a.kernel[1] = 2;
    n->a.strides[0] = n->a.strides[1] = 2;
    n->a.pads[0] = n->a.pads[1] = n->a.pads[2] = n->a.pads[3] = 1;
    n->a.ceil_mode = 1;
    infer_ok(g);
    check_shape(g, y, 4, 1LL, 1LL, 3LL, 3LL);
    check_shape(g, y2, 4, 1LL, 1LL, 3LL, 3LL);
    assert_true(g->nodes[0].flops == 9.0 * 9);
    ir__graph_free(g);
}

static void test_infer_global_pool_keeps_channels(void **state)
{
    (void)state;
    nnm_graph *g = ir__graph_new();
    int x = add_input(g, "x", NNM_DT_F32, 4, S(2, 16, 7, 7));
    int y = add_val(g, "y");
    add_node(g, NNM_OP_GLOBAL_AVGPOOL, "gap", &x, 1, &y, 1);
    infer_ok(g);
    check_shape(g, y, 4, 2LL, 16LL, 1LL, 1LL);
    ir__graph_free(g);
}

/* --- linear algebra and elementwise ------------------------------------------------------ */

static void test_infer_gemm_trans_b_with_bias(void **state)
{
    (void)state;
    nnm_graph *g = ir__graph_new();
    int a = add_input(g, "a", NNM_DT_F32, 2, S(4, 5));
    int b = add_weight(g, "b", 2, S(3, 5));
    int c = add_weight(g, "c", 1, S(3));
    int y = add_val(g, "y");
    nnm_node *n = add_node(g, NNM_OP_GEMM, "fc", (int[]){ a, b, c }, 3, &y, 1);
    n->a.trans_b = 1;
    infer_ok(g);
    check_shape(g, y, 2, 4LL, 3LL);
    assert_true(g->nodes[0].flops == 2.0 * 4 * 3 * 5 + 12);
    ir__graph_free(g);
}

static void test_infer_gemm_inner_mismatch_fails(void **state)
{
    (void)state;
    nnm_graph *g = ir__graph_new();
    int a = add_input(g, "a", NNM_DT_F32, 2, S(4, 5));
    int b = add_weight(g, "b", 2, S(3, 5));
    int y = add_val(g, "y");
    add_node(g, NNM_OP_GEMM, "fc", (int[]){ a, b }, 2, &y, 1);
    infer_fails(g, NNM_ESHAPE, "node 'fc' (Gemm): inner dimensions differ");
    ir__graph_free(g);
}

static void test_infer_matmul_batch_broadcast_and_1d(void **state)
{
    (void)state;
    nnm_graph *g = ir__graph_new();
    int a = add_input(g, "a", NNM_DT_F32, 4, S(2, 1, 4, 5));
    int b = add_input(g, "b", NNM_DT_F32, 3, S(3, 5, 6));
    int v1 = add_input(g, "v1", NNM_DT_F32, 1, S(5));
    int c = add_input(g, "c", NNM_DT_F32, 3, S(2, 3, 5));
    int y1 = add_val(g, "y1"), y2 = add_val(g, "y2"), y3 = add_val(g, "y3");
    int y4 = add_val(g, "y4");
    add_node(g, NNM_OP_MATMUL, "mm", (int[]){ a, b }, 2, &y1, 1);
    add_node(g, NNM_OP_MATMUL, "vm", (int[]){ v1, b }, 2, &y2, 1);
    add_node(g, NNM_OP_MATMUL, "mv", (int[]){ c, v1 }, 2, &y3, 1);
    add_node(g, NNM_OP_MATMUL, "dot", (int[]){ v1, v1 }, 2, &y4, 1);
    infer_ok(g);
    check_shape(g, y1, 4, 2LL, 3LL, 4LL, 6LL);
    check_shape(g, y2, 2, 3LL, 6LL);
    check_shape(g, y3, 2, 2LL, 3LL);
    check_shape(g, y4, 0);
    assert_true(g->nodes[0].flops == 2.0 * 6 * 4 * 6 * 5);
    ir__graph_free(g);
}

static void test_infer_add_broadcasts_numpy_style(void **state)
{
    (void)state;
    nnm_graph *g = ir__graph_new();
    int a = add_input(g, "a", NNM_DT_F32, 4, S(8, 1, 6, 1));
    int b = add_input(g, "b", NNM_DT_F32, 3, S(7, 1, 5));
    int c = add_input(g, "c", NNM_DT_F32, 1, S(4));
    int y = add_val(g, "y"), y2 = add_val(g, "y2");
    add_node(g, NNM_OP_ADD, "add", (int[]){ a, b }, 2, &y, 1);
    add_node(g, NNM_OP_MAX, "max3", (int[]){ a, b, a }, 3, &y2, 1);
    int yb = add_val(g, "yb");
    add_node(g, NNM_OP_MUL, "bad", (int[]){ b, c }, 2, &yb, 1);
    infer_fails(g, NNM_ESHAPE, "node 'bad' (Mul)");
    check_shape(g, y, 4, 8LL, 7LL, 6LL, 5LL);
    check_shape(g, y2, 4, 8LL, 7LL, 6LL, 5LL);
    assert_true(g->nodes[0].flops == 8.0 * 7 * 6 * 5);
    ir__graph_free(g);
}

static void test_infer_clip_reads_bounds_and_drops_inputs(void **state)
{
    (void)state;
    nnm_graph *g = ir__graph_new();
    int x = add_input(g, "x", NNM_DT_F32, 2, S(2, 2));
    int lo = add_const(g, "lo", NNM_DT_F32, 0, NULL, (const float[]){ 0.0f });
    int hi = add_const(g, "hi", NNM_DT_F32, 0, NULL, (const float[]){ 6.0f });
    int y = add_val(g, "y");
    add_node(g, NNM_OP_CLIP, "relu6", (int[]){ x, lo, hi }, 3, &y, 1);
    infer_ok(g);
    assert_int_equal(g->nodes[0].n_in, 1);
    assert_true(g->nodes[0].a.act_min == 0.0f);
    assert_true(g->nodes[0].a.act_max == 6.0f);
    ir__graph_free(g);
}

static void test_infer_softmax_legacy_keeps_axis(void **state)
{
    (void)state;
    nnm_graph *g = ir__graph_new();
    int x = add_input(g, "x", NNM_DT_F32, 3, S(2, 3, 4));
    int y = add_val(g, "y"), y2 = add_val(g, "y2");
    nnm_node *n = add_node(g, NNM_OP_SOFTMAX, "sm", &x, 1, &y, 1);
    n->a.axis = 1;
    n->a.legacy_2d = 1;
    n = add_node(g, NNM_OP_SOFTMAX, "sm13", &x, 1, &y2, 1);
    n->a.axis = -1;
    infer_ok(g);
    check_shape(g, y, 3, 2LL, 3LL, 4LL);
    assert_int_equal(g->nodes[0].a.axis, 1);
    assert_true(g->nodes[0].a.legacy_2d);
    assert_int_equal(g->nodes[1].a.axis, 2);
    assert_true(g->nodes[0].flops == 5.0 * 24);
    ir__graph_free(g);
}

/* --- shape manipulation ------------------------------------------------------------------ */

static void test_infer_reshape_zero_and_minus_one(void **state)
{
    (void)state;
    nnm_graph *g = ir__graph_new();
    int x = add_input(g, "x", NNM_DT_F32, 3, S(2, 3, 4));
    int s = add_i64(g, "s", 2, S(0, -1));
    int y = add_val(g, "y");
    add_node(g, NNM_OP_RESHAPE, "rs", (int[]){ x, s }, 2, &y, 1);
    infer_ok(g);
    check_shape(g, y, 2, 2LL, 12LL);
    assert_int_equal(g->nodes[0].n_in, 1);
    assert_int_equal(g->nodes[0].a.n_ints, 2);
    assert_int_equal(g->nodes[0].a.ints[1], -1);
    assert_true(g->nodes[0].flops == 0.0);
    infer_ok(g);
    check_shape(g, y, 2, 2LL, 12LL);
    assert_int_equal(g->nodes[0].n_in, 1);
    ir__graph_free(g);
}

static void test_infer_reshape_minus_one_not_dividing_fails(void **state)
{
    (void)state;
    nnm_graph *g = ir__graph_new();
    int x = add_input(g, "x", NNM_DT_F32, 3, S(2, 3, 5));
    int s = add_i64(g, "s", 2, S(4, -1));
    int y = add_val(g, "y");
    add_node(g, NNM_OP_RESHAPE, "rs_bad", (int[]){ x, s }, 2, &y, 1);
    infer_fails(g, NNM_ESHAPE, "node 'rs_bad' (Reshape): cannot reshape");
    assert_int_equal(g->nodes[0].n_in, 2);   /* unchanged on error */
    ir__graph_free(g);
}

static void test_infer_reshape_huge_shape_fails(void **state)
{
    (void)state;
    nnm_graph *g = ir__graph_new();
    int x = add_input(g, "x", NNM_DT_F32, 1, S(4));
    int s = add_i64(g, "s", 3, S(INT64_C(1) << 40, INT64_C(1) << 40, 4));
    int y = add_val(g, "y");
    add_node(g, NNM_OP_RESHAPE, "huge", (int[]){ x, s }, 2, &y, 1);
    infer_fails(g, NNM_ESHAPE, "node 'huge' (Reshape)");
    ir__graph_free(g);
}

static void test_infer_reshape_runtime_shape_unsupported(void **state)
{
    (void)state;
    nnm_graph *g = ir__graph_new();
    int x = add_input(g, "x", NNM_DT_F32, 1, S(4));
    int s = add_input(g, "s", NNM_DT_I64, 1, S(2));
    int y = add_val(g, "y");
    add_node(g, NNM_OP_RESHAPE, "rs", (int[]){ x, s }, 2, &y, 1);
    infer_fails(g, NNM_EUNSUPPORTED, "node 'rs' (Reshape): shape is computed at run time; "
                "only static shapes are supported");
    ir__graph_free(g);
}

static void test_infer_flatten_axis0_gives_row(void **state)
{
    (void)state;
    nnm_graph *g = ir__graph_new();
    int x = add_input(g, "x", NNM_DT_F32, 3, S(2, 3, 4));
    int y = add_val(g, "y"), y2 = add_val(g, "y2");
    add_node(g, NNM_OP_FLATTEN, "fl0", &x, 1, &y, 1);
    nnm_node *n = add_node(g, NNM_OP_FLATTEN, "fl", &x, 1, &y2, 1);
    n->a.axis = -1;
    infer_ok(g);
    check_shape(g, y, 2, 1LL, 24LL);
    check_shape(g, y2, 2, 6LL, 4LL);
    assert_int_equal(g->nodes[1].a.axis, 2);
    ir__graph_free(g);
}

static void test_infer_squeeze_without_axes_removes_ones(void **state)
{
    (void)state;
    nnm_graph *g = ir__graph_new();
    int x = add_input(g, "x", NNM_DT_F32, 4, S(1, 3, 1, 4));
    int y = add_val(g, "y");
    add_node(g, NNM_OP_SQUEEZE, "sq", &x, 1, &y, 1);
    infer_ok(g);
    check_shape(g, y, 2, 3LL, 4LL);
    assert_int_equal(g->nodes[0].a.n_ints, 2);
    assert_int_equal(g->nodes[0].a.ints[0], 0);
    assert_int_equal(g->nodes[0].a.ints[1], 2);
    infer_ok(g);
    check_shape(g, y, 2, 3LL, 4LL);
    ir__graph_free(g);
}

static void test_infer_squeeze_non_one_axis_fails(void **state)
{
    (void)state;
    nnm_graph *g = ir__graph_new();
    int x = add_input(g, "x", NNM_DT_F32, 2, S(1, 3));
    int ax = add_i64(g, "ax", 1, S(1));
    int y = add_val(g, "y");
    add_node(g, NNM_OP_SQUEEZE, "sq", (int[]){ x, ax }, 2, &y, 1);
    infer_fails(g, NNM_ESHAPE, "node 'sq' (Squeeze): cannot squeeze axis 1");
    ir__graph_free(g);
}

static void test_infer_unsqueeze_axes_input_normalized(void **state)
{
    (void)state;
    nnm_graph *g = ir__graph_new();
    int x = add_input(g, "x", NNM_DT_F32, 2, S(3, 4));
    int ax = add_i64(g, "ax", 2, S(0, -1));
    int y = add_val(g, "y");
    add_node(g, NNM_OP_UNSQUEEZE, "unsq", (int[]){ x, ax }, 2, &y, 1);
    infer_ok(g);
    check_shape(g, y, 4, 1LL, 3LL, 4LL, 1LL);
    assert_int_equal(g->nodes[0].n_in, 1);
    assert_int_equal(g->nodes[0].a.ints[0], 0);
    assert_int_equal(g->nodes[0].a.ints[1], 3);
    infer_ok(g);
    check_shape(g, y, 4, 1LL, 3LL, 4LL, 1LL);
    ir__graph_free(g);
}

static void test_infer_transpose_default_reverses(void **state)
{
    (void)state;
    nnm_graph *g = ir__graph_new();
    int x = add_input(g, "x", NNM_DT_F32, 3, S(2, 3, 4));
    int y = add_val(g, "y"), y2 = add_val(g, "y2");
    add_node(g, NNM_OP_TRANSPOSE, "tr", &x, 1, &y, 1);
    nnm_node *n = add_node(g, NNM_OP_TRANSPOSE, "tr2", &x, 1, &y2, 1);
    n->a.ints = malloc(3 * sizeof(int64_t));
    assert_non_null(n->a.ints);
    n->a.n_ints = 3;
    n->a.ints[0] = 0; n->a.ints[1] = 2; n->a.ints[2] = 1;
    infer_ok(g);
    check_shape(g, y, 3, 4LL, 3LL, 2LL);
    check_shape(g, y2, 3, 2LL, 4LL, 3LL);
    assert_int_equal(g->nodes[0].a.perm[0], 2);
    assert_int_equal(g->nodes[1].a.perm[1], 2);
    ir__graph_free(g);
}

static void test_infer_concat_sums_axis_and_rejects_mismatch(void **state)
{
    (void)state;
    nnm_graph *g = ir__graph_new();
    int a = add_input(g, "a", NNM_DT_F32, 2, S(2, 3));
    int b = add_input(g, "b", NNM_DT_F32, 2, S(2, 4));
    int y = add_val(g, "y"), y2 = add_val(g, "y2");
    nnm_node *n = add_node(g, NNM_OP_CONCAT, "cat", (int[]){ a, b, a }, 3, &y, 1);
    n->a.axis = -1;
    add_node(g, NNM_OP_CONCAT, "cat_bad", (int[]){ a, b }, 2, &y2, 1);
    infer_fails(g, NNM_ESHAPE, "node 'cat_bad' (Concat): input 'b' [2, 4] does not match");
    check_shape(g, y, 2, 2LL, 10LL);
    assert_int_equal(g->nodes[0].a.axis, 1);
    ir__graph_free(g);
}

static void test_infer_split_equal_and_explicit_sizes(void **state)
{
    (void)state;
    nnm_graph *g = ir__graph_new();
    int x = add_input(g, "x", NNM_DT_F32, 2, S(6, 4));
    int sp = add_i64(g, "sp", 2, S(1, 3));
    int o[5];
    o[0] = add_val(g, "o0"); o[1] = add_val(g, "o1"); o[2] = add_val(g, "o2");
    o[3] = add_val(g, "o3"); o[4] = add_val(g, "o4");
    add_node(g, NNM_OP_SPLIT, "eq", &x, 1, o, 3);
    nnm_node *n = add_node(g, NNM_OP_SPLIT, "ex", (int[]){ x, sp }, 2, o + 3, 2);
    n->a.axis = -1;
    infer_ok(g);
    for (int k = 0; k < 3; k++) check_shape(g, o[k], 2, 2LL, 4LL);
    check_shape(g, o[3], 2, 6LL, 1LL);
    check_shape(g, o[4], 2, 6LL, 3LL);
    assert_int_equal(g->nodes[0].a.n_ints, 3);
    assert_int_equal(g->nodes[0].a.ints[2], 2);
    assert_int_equal(g->nodes[1].n_in, 1);
    assert_int_equal(g->nodes[1].a.axis, 1);
    ir__graph_free(g);
}

static void test_infer_split_uneven_fails(void **state)
{
    (void)state;
    nnm_graph *g = ir__graph_new();
    int x = add_input(g, "x", NNM_DT_F32, 1, S(7));
    int o[2] = { add_val(g, "o0"), add_val(g, "o1") };
    add_node(g, NNM_OP_SPLIT, "sp", &x, 1, o, 2);
    infer_fails(g, NNM_ESHAPE, "node 'sp' (Split)");
    ir__graph_free(g);
}

static void test_infer_slice_negative_step_and_huge_end(void **state)
{
    (void)state;
    nnm_graph *g = ir__graph_new();
    int x = add_input(g, "x", NNM_DT_F32, 2, S(10, 20));
    int st = add_i64(g, "st", 2, S(2, -1));
    int en = add_i64(g, "en", 2, S(INT64_MAX, INT64_MIN));
    int ax = add_i64(g, "ax", 2, S(0, -1));
    int sp = add_i64(g, "sp", 2, S(3, -2));
    int y = add_val(g, "y");
    add_node(g, NNM_OP_SLICE, "sl", (int[]){ x, st, en, ax, sp }, 5, &y, 1);
    infer_ok(g);
    /* dim 0: 2, 5, 8; dim 1: 19, 17, ..., 1 */
    check_shape(g, y, 2, 3LL, 10LL);
    const nnm_node *n = &g->nodes[0];
    assert_int_equal(n->n_in, 1);
    assert_int_equal(n->a.starts[0], 2);
    assert_int_equal(n->a.steps[0], 3);
    assert_int_equal(n->a.starts[1], 19);
    assert_int_equal(n->a.steps[1], -2);
    infer_ok(g);
    check_shape(g, y, 2, 3LL, 10LL);
    assert_int_equal(g->nodes[0].a.starts[1], 19);
    assert_int_equal(g->nodes[0].a.steps[1], -2);
    ir__graph_free(g);
}

static void test_infer_slice_unsliced_dims_default(void **state)
{
    (void)state;
    nnm_graph *g = ir__graph_new();
    int x = add_input(g, "x", NNM_DT_F32, 3, S(4, 5, 6));
    int st = add_i64(g, "st", 1, S(-3));
    int en = add_i64(g, "en", 1, S(100));
    int ax = add_i64(g, "ax", 1, S(1));
    int y = add_val(g, "y");
    add_node(g, NNM_OP_SLICE, "sl", (int[]){ x, st, en, ax }, 4, &y, 1);
    infer_ok(g);
    check_shape(g, y, 3, 4LL, 3LL, 6LL);
    assert_int_equal(g->nodes[0].a.starts[0], 0);
    assert_int_equal(g->nodes[0].a.steps[0], 1);
    assert_int_equal(g->nodes[0].a.starts[1], 2);
    assert_int_equal(g->nodes[0].a.steps[2], 1);
    ir__graph_free(g);
}

static void test_infer_slice_zero_step_fails(void **state)
{
    (void)state;
    nnm_graph *g = ir__graph_new();
    int x = add_input(g, "x", NNM_DT_F32, 1, S(10));
    int st = add_i64(g, "st", 1, S(0));
    int en = add_i64(g, "en", 1, S(5));
    int ax = add_i64(g, "ax", 1, S(0));
    int sp = add_i64(g, "sp", 1, S(0));
    int y = add_val(g, "y");
    add_node(g, NNM_OP_SLICE, "slz", (int[]){ x, st, en, ax, sp }, 5, &y, 1);
    infer_fails(g, NNM_EFORMAT, "node 'slz' (Slice): step for axis 0 is 0");
    ir__graph_free(g);
}

static void test_infer_pad_negative_crops(void **state)
{
    (void)state;
    nnm_graph *g = ir__graph_new();
    int x = add_input(g, "x", NNM_DT_F32, 4, S(1, 3, 5, 5));
    int p = add_i64(g, "p", 8, S(0, 0, 1, -1, 0, 0, -2, 2));
    int cv = add_const(g, "cv", NNM_DT_F32, 0, NULL, (const float[]){ 1.5f });
    int y = add_val(g, "y");
    add_node(g, NNM_OP_PAD, "pad", (int[]){ x, p, cv }, 3, &y, 1);
    infer_ok(g);
    check_shape(g, y, 4, 1LL, 3LL, 4LL, 6LL);
    const nnm_node *n = &g->nodes[0];
    assert_int_equal(n->n_in, 1);
    assert_int_equal(n->a.pads[2], 1);
    assert_int_equal(n->a.pads[3], -1);
    assert_int_equal(n->a.pads[6], -2);
    assert_int_equal(n->a.pads[7], 2);
    assert_true(n->a.pad_value == 1.5f);
    infer_ok(g);
    check_shape(g, y, 4, 1LL, 3LL, 4LL, 6LL);
    ir__graph_free(g);
}

static void test_infer_pad_cropping_too_much_fails(void **state)
{
    (void)state;
    nnm_graph *g = ir__graph_new();
    int x = add_input(g, "x", NNM_DT_F32, 1, S(3));
    int p = add_i64(g, "p", 2, S(-2, -2));
    int y = add_val(g, "y");
    add_node(g, NNM_OP_PAD, "crop", (int[]){ x, p }, 2, &y, 1);
    infer_fails(g, NNM_ESHAPE, "node 'crop' (Pad)");
    ir__graph_free(g);
}

static void test_infer_gather_2d_indices(void **state)
{
    (void)state;
    nnm_graph *g = ir__graph_new();
    int x = add_input(g, "x", NNM_DT_F32, 3, S(5, 4, 3));
    int64_t s[2] = { 2, 2 };
    int idx = add_const(g, "idx", NNM_DT_I64, 2, s, (const int64_t[]){ 0, 3, -1, 2 });
    int y = add_val(g, "y");
    nnm_node *n = add_node(g, NNM_OP_GATHER, "ga", (int[]){ x, idx }, 2, &y, 1);
    n->a.axis = -2;
    infer_ok(g);
    check_shape(g, y, 4, 5LL, 2LL, 2LL, 3LL);
    assert_int_equal(g->nodes[0].a.axis, 1);
    assert_int_equal(g->nodes[0].n_in, 2);
    ir__graph_free(g);
}

static void test_infer_gather_index_out_of_range_fails(void **state)
{
    (void)state;
    nnm_graph *g = ir__graph_new();
    int x = add_input(g, "x", NNM_DT_F32, 1, S(4));
    int idx = add_i64(g, "idx", 1, S(4));
    int y = add_val(g, "y");
    add_node(g, NNM_OP_GATHER, "gbad", (int[]){ x, idx }, 2, &y, 1);
    infer_fails(g, NNM_ESHAPE, "node 'gbad' (Gather): index 4");
    ir__graph_free(g);
}

static void test_infer_resize_from_scales_and_sizes(void **state)
{
    (void)state;
    nnm_graph *g = ir__graph_new();
    int x = add_input(g, "x", NNM_DT_F32, 4, S(1, 3, 5, 7));
    int sc = add_f32(g, "sc", 4, (const float[]){ 1.0f, 1.0f, 2.0f, 1.5f });
    int sz = add_i64(g, "sz", 4, S(1, 3, 8, 3));
    int empty = add_f32(g, "empty", 0, NULL);
    int y = add_val(g, "y"), y2 = add_val(g, "y2");
    add_node(g, NNM_OP_RESIZE, "up", (int[]){ x, -1, sc }, 3, &y, 1);
    add_node(g, NNM_OP_RESIZE, "to", (int[]){ x, empty, empty, sz }, 4, &y2, 1);
    infer_ok(g);
    check_shape(g, y, 4, 1LL, 3LL, 10LL, 10LL);
    check_shape(g, y2, 4, 1LL, 3LL, 8LL, 3LL);
    assert_true(g->nodes[0].a.scales[3] == 1.5f);
    assert_true(g->nodes[1].a.scales[2] == 1.6f);
    assert_true(g->nodes[1].a.scales[3] == (float)(3.0 / 7.0));
    assert_int_equal(g->nodes[0].n_in, 1);
    assert_int_equal(g->nodes[1].n_in, 1);
    infer_ok(g);
    check_shape(g, y2, 4, 1LL, 3LL, 8LL, 3LL);
    check_shape(g, y, 4, 1LL, 3LL, 10LL, 10LL);
    ir__graph_free(g);
}

static void test_infer_reduce_mean_keepdims0_multiple_axes(void **state)
{
    (void)state;
    nnm_graph *g = ir__graph_new();
    int x = add_input(g, "x", NNM_DT_F32, 4, S(2, 3, 4, 5));
    int ax = add_i64(g, "ax", 2, S(1, 2));
    int y = add_val(g, "y"), y2 = add_val(g, "y2"), y3 = add_val(g, "y3");
    nnm_node *n = add_node(g, NNM_OP_REDUCE_MEAN, "rm", &x, 1, &y, 1);
    n->a.ints = malloc(2 * sizeof(int64_t));
    assert_non_null(n->a.ints);
    n->a.ints[0] = 0;
    n->a.ints[1] = -1;
    n->a.n_ints = 2;
    n = add_node(g, NNM_OP_REDUCE_MAX, "rx", (int[]){ x, ax }, 2, &y2, 1);
    n->a.keepdims = 1;
    add_node(g, NNM_OP_REDUCE_MEAN, "all", &x, 1, &y3, 1);
    infer_ok(g);
    check_shape(g, y, 2, 3LL, 4LL);
    assert_int_equal(g->nodes[0].a.axes_mask, 0x9u);
    check_shape(g, y2, 4, 2LL, 1LL, 1LL, 5LL);
    assert_int_equal(g->nodes[1].a.axes_mask, 0x6u);
    assert_int_equal(g->nodes[1].n_in, 1);
    check_shape(g, y3, 0);
    assert_int_equal(g->nodes[2].a.axes_mask, 0xfu);
    ir__graph_free(g);
}

static void test_infer_dropout_mask_is_bool(void **state)
{
    (void)state;
    nnm_graph *g = ir__graph_new();
    int x = add_input(g, "x", NNM_DT_F32, 2, S(2, 3));
    int ratio = add_f32(g, "ratio", 1, (const float[]){ 0.5f });
    int y = add_val(g, "y"), m = add_val(g, "m");
    add_node(g, NNM_OP_DROPOUT, "do", (int[]){ x, ratio }, 2, (int[]){ y, m }, 2);
    infer_ok(g);
    check_shape(g, y, 2, 2LL, 3LL);
    check_shape(g, m, 2, 2LL, 3LL);
    assert_int_equal(g->values[m].dtype, NNM_DT_BOOL);
    assert_int_equal(g->nodes[0].n_in, 1);
    ir__graph_free(g);
}

static void test_infer_unknown_input_shape_fails(void **state)
{
    (void)state;
    nnm_graph *g = ir__graph_new();
    int x = add_val(g, "nowhere");
    int y = add_val(g, "y");
    add_node(g, NNM_OP_RELU, "r", &x, 1, &y, 1);
    infer_fails(g, NNM_ESHAPE, "node 'r' (Relu): input 'nowhere' has no known shape");
    ir__graph_free(g);
}

/* --- nodes built already normalized by other passes (layout, slicing) ------------------- */

static void test_infer_prenormalized_reshape_keeps_output_shape(void **state)
{
    (void)state;
    nnm_graph *g = ir__graph_new();
    int x = add_input(g, "x", NNM_DT_F32, 4, S(1, 8, 1, 1));
    int y = add_val(g, "y");
    g->values[y].ndim = 4;
    memcpy(g->values[y].shape, S(1, 1, 1, 8), 4 * sizeof(int64_t));
    nnm_node *n = add_node(g, NNM_OP_RESHAPE, "to_nhwc", &x, 1, &y, 1);
    n->a.normalized = 1;
    infer_ok(g);
    check_shape(g, y, 4, 1LL, 1LL, 1LL, 8LL);
    ir__graph_free(g);
}

static void test_infer_prenormalized_slice_checks_bounds(void **state)
{
    (void)state;
    nnm_graph *g = ir__graph_new();
    int x = add_input(g, "x", NNM_DT_F32, 2, S(3, 10));
    int y = add_val(g, "y");
    g->values[y].ndim = 2;
    memcpy(g->values[y].shape, S(3, 4), 2 * sizeof(int64_t));
    nnm_node *n = add_node(g, NNM_OP_SLICE, "crop", &x, 1, &y, 1);
    for (int d = 0; d < NNM_MAX_DIMS; d++) n->a.steps[d] = 1;
    n->a.starts[1] = 6;
    n->a.normalized = 1;
    infer_ok(g);
    check_shape(g, y, 2, 3LL, 4LL);
    g->nodes[0].a.starts[1] = 7;   /* would read index 10 */
    infer_fails(g, NNM_ESHAPE, "node 'crop' (Slice): axis 1");
    ir__graph_free(g);
}

/* --- constant folding (uses ir__fold_node and the reference kernels) --------------------- */

static void test_infer_shape_chain_folds_into_reshape(void **state)
{
    (void)state;
    nnm_graph *g = ir__graph_new();
    int x = add_input(g, "x", NNM_DT_F32, 3, S(2, 3, 4));
    int v = add_input(g, "v", NNM_DT_F32, 1, S(24));
    int s = add_val(g, "s"), y = add_val(g, "y");
    add_node(g, NNM_OP_SHAPE, "shape", &x, 1, &s, 1);
    add_node(g, NNM_OP_RESHAPE, "rs", (int[]){ v, s }, 2, &y, 1);
    set_output(g, y);
    infer_ok(g);
    assert_int_equal(g->nodes[0].op, NNM_OP_INVALID);
    assert_true(ir__is_const(g, s));
    check_shape(g, s, 1, 3LL);
    check_shape(g, y, 3, 2LL, 3LL, 4LL);
    assert_int_equal(g->nodes[1].n_in, 1);
    ir__graph_free(g);
}

static void test_infer_constant_of_shape_folds(void **state)
{
    (void)state;
    nnm_graph *g = ir__graph_new();
    int s = add_i64(g, "s", 2, S(2, 3));
    int y = add_val(g, "y");
    nnm_node *n = add_node(g, NNM_OP_CONSTANT_OF_SHAPE, "cos", &s, 1, &y, 1);
    n->a.pad_value = 2.0f;
    infer_ok(g);
    assert_int_equal(g->nodes[0].op, NNM_OP_INVALID);
    check_shape(g, y, 2, 2LL, 3LL);
    assert_int_equal(g->values[y].dtype, NNM_DT_F32);
    assert_true(ir__is_const(g, y));
    assert_true(((const float *)g->values[y].data)[5] == 2.0f);
    ir__graph_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_infer_conv_same_upper_stride2_odd_input_pads_end),
        cmocka_unit_test(test_infer_conv_same_lower_pads_begin),
        cmocka_unit_test(test_infer_conv_group_mismatch_names_node),
        cmocka_unit_test(test_infer_conv_weight_channels_mismatch_fails),
        cmocka_unit_test(test_infer_conv_output_empty_fails),
        cmocka_unit_test(test_infer_conv_nhwc_and_1d_layouts),
        cmocka_unit_test(test_infer_conv_transpose_output_padding_grows_output),
        cmocka_unit_test(test_infer_maxpool_ceil_mode_rounds_up),
        cmocka_unit_test(test_infer_global_pool_keeps_channels),
        cmocka_unit_test(test_infer_gemm_trans_b_with_bias),
        cmocka_unit_test(test_infer_gemm_inner_mismatch_fails),
        cmocka_unit_test(test_infer_matmul_batch_broadcast_and_1d),
        cmocka_unit_test(test_infer_add_broadcasts_numpy_style),
        cmocka_unit_test(test_infer_clip_reads_bounds_and_drops_inputs),
        cmocka_unit_test(test_infer_softmax_legacy_keeps_axis),
        cmocka_unit_test(test_infer_reshape_zero_and_minus_one),
        cmocka_unit_test(test_infer_reshape_minus_one_not_dividing_fails),
        cmocka_unit_test(test_infer_reshape_huge_shape_fails),
        cmocka_unit_test(test_infer_reshape_runtime_shape_unsupported),
        cmocka_unit_test(test_infer_flatten_axis0_gives_row),
        cmocka_unit_test(test_infer_squeeze_without_axes_removes_ones),
        cmocka_unit_test(test_infer_squeeze_non_one_axis_fails),
        cmocka_unit_test(test_infer_unsqueeze_axes_input_normalized),
        cmocka_unit_test(test_infer_transpose_default_reverses),
        cmocka_unit_test(test_infer_concat_sums_axis_and_rejects_mismatch),
        cmocka_unit_test(test_infer_split_equal_and_explicit_sizes),
        cmocka_unit_test(test_infer_split_uneven_fails),
        cmocka_unit_test(test_infer_slice_negative_step_and_huge_end),
        cmocka_unit_test(test_infer_slice_unsliced_dims_default),
        cmocka_unit_test(test_infer_slice_zero_step_fails),
        cmocka_unit_test(test_infer_pad_negative_crops),
        cmocka_unit_test(test_infer_pad_cropping_too_much_fails),
        cmocka_unit_test(test_infer_gather_2d_indices),
        cmocka_unit_test(test_infer_gather_index_out_of_range_fails),
        cmocka_unit_test(test_infer_resize_from_scales_and_sizes),
        cmocka_unit_test(test_infer_reduce_mean_keepdims0_multiple_axes),
        cmocka_unit_test(test_infer_dropout_mask_is_bool),
        cmocka_unit_test(test_infer_unknown_input_shape_fails),
        cmocka_unit_test(test_infer_prenormalized_reshape_keeps_output_shape),
        cmocka_unit_test(test_infer_prenormalized_slice_checks_bounds),
        cmocka_unit_test(test_infer_shape_chain_folds_into_reshape),
        cmocka_unit_test(test_infer_constant_of_shape_folds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
