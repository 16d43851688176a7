/* tests/unit/test_onnx.c — ONNX import and the import-time passes.
 *
 * Well-formed models come from tests/models/onnx_models.py, run once per test binary into
 * the build tree; the test checks the imported IR (BN folded, activations fused, shape chains
 * folded, FLOPs) and runs optimized and unoptimized graphs side by side through the public
 * executor. Malformed models are built here with protobuf-c (onnx__model_proto__pack), so the
 * error paths need no Python: every bad input must return the right code and a message that
 * names the file and the node, input or initializer at fault. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "nnmesh/exec.h"
#include "nnmesh/graph.h"
#include "ir.h"
#include "onnx.pb-c.h"

#ifndef NNM_TOP_SRCDIR
#define NNM_TOP_SRCDIR "."
#endif
#ifndef NNM_SYS_PYTHON
#define NNM_SYS_PYTHON "/usr/bin/python3"
#endif

static char model_dir[PATH_MAX - 64];   /* room for "/name.onnx" below */
static int have_models;

static const char *env_or(const char *name, const char *def)
{
    const char *v = getenv(name);
    return v && v[0] ? v : def;
}

static int group_setup(void **state)
{
    (void)state;
    const char *bdir = env_or("top_builddir", ".");
    const char *sdir = env_or("top_srcdir", NNM_TOP_SRCDIR);
    const char *py = env_or("SYS_PYTHON", NNM_SYS_PYTHON);
    snprintf(model_dir, sizeof model_dir, "%s/tests/unit/onnx_models.d", bdir);
    char cmd[3 * PATH_MAX];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && '%s' '%s/tests/models/onnx_models.py' '%s'",
             model_dir, py, sdir, model_dir);
    have_models = strcmp(py, "no") != 0 && system(cmd) == 0;
    if (!have_models) fprintf(stderr, "onnx_models.py failed: model tests are skipped\n");
    return 0;
}

static const char *mpath(const char *name)
{
    static char buf[4][PATH_MAX];
    assert_true(strlen(name) < 60);
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%.60s", model_dir, name);
    return buf[k];
}

static nnm_graph *load_ok(const char *name, int64_t batch, int no_optimize)
{
    if (!have_models) skip();
    nnm_load_opts o = { .batch = batch, .no_optimize = no_optimize };
    nnm_diag d;
    nnm_diag_clear(&d);
    nnm_graph *g = NULL;
    nnm_err rc = nnm_graph_load_onnx(&g, mpath(name), &o, &d);
    if (rc != NNM_OK) fprintf(stderr, "load %s: %s\n", name, d.msg);
    assert_int_equal(rc, NNM_OK);
    assert_non_null(g);
    return g;
}

static int count_op(const nnm_graph *g, const char *op)
{
    int c = 0;
    for (int i = 0; i < nnm_graph_node_count(g); i++) {
        nnm_node_info info;
        assert_int_equal(nnm_graph_node_get(g, i, &info), NNM_OK);
        if (strcmp(info.op, op) == 0) c++;
    }
    return c;
}

static void assert_shape(const int64_t *shape, int ndim, int want_ndim, ...)
{
    va_list ap;
    va_start(ap, want_ndim);
    assert_int_equal(ndim, want_ndim);
    for (int i = 0; i < want_ndim; i++) assert_int_equal(shape[i], va_arg(ap, int));
    va_end(ap);
}

/* Deterministic inputs for every graph input (float: a smooth pattern in [-2, 2]). */
static void make_inputs(const nnm_graph *g, nnm_tensor *in)
{
    for (int i = 0; i < nnm_graph_input_count(g); i++) {
        nnm_io_info io;
        assert_int_equal(nnm_graph_input_get(g, i, &io), NNM_OK);
        assert_int_equal(nnm_tensor_init(&in[i], io.dtype, io.ndim, io.shape), NNM_OK);
        assert_int_equal(io.dtype, NNM_DT_F32);
        float *p = in[i].data;
        size_t n = in[i].nbytes / sizeof(float);
        for (size_t k = 0; k < n; k++) p[k] = 2.0f * sinf(0.37f * (float)k + (float)i);
    }
}

/* Runs g with the reference backend on in[]; fills out[] (caller cleans up). */
static void run(const nnm_graph *g, const nnm_tensor *in, nnm_tensor *out)
{
    nnm_exec_opts eo = { .backend = NNM_BACKEND_REF };
    nnm_exec *ex = NULL;
    nnm_diag d;
    nnm_diag_clear(&d);
    nnm_err rc = nnm_exec_new(&ex, g, &eo, &d);
    if (rc != NNM_OK) fprintf(stderr, "exec_new: %s\n", d.msg);
    assert_int_equal(rc, NNM_OK);
    rc = nnm_exec_run(ex, in, nnm_graph_input_count(g), out, nnm_graph_output_count(g), &d);
    if (rc != NNM_OK) fprintf(stderr, "exec_run: %s\n", d.msg);
    assert_int_equal(rc, NNM_OK);
    nnm_exec_free(ex);
}

static void assert_close(const nnm_tensor *a, const nnm_tensor *b)
{
    assert_int_equal(a->dtype, NNM_DT_F32);
    assert_int_equal(b->dtype, NNM_DT_F32);
    assert_int_equal(a->ndim, b->ndim);
    for (int i = 0; i < a->ndim; i++) assert_int_equal(a->shape[i], b->shape[i]);
    assert_int_equal(a->nbytes, b->nbytes);
    const float *x = a->data, *y = b->data;
    size_t n = a->nbytes / sizeof(float);
    float mx = 0;
    for (size_t i = 0; i < n; i++) mx = fmaxf(mx, fabsf(y[i]));
    for (size_t i = 0; i < n; i++)
        if (fabsf(x[i] - y[i]) > 1e-4f * fmaxf(mx, 1.0f))
            fail_msg("element %zu: %g vs %g", i, (double)x[i], (double)y[i]);
}

/* Loads name optimized and not, runs both on the same inputs, compares every output. */
static void assert_same_as_unoptimized(const char *name, nnm_graph *opt)
{
    nnm_graph *raw = load_ok(name, 1, 1);
    int ni = nnm_graph_input_count(opt), no = nnm_graph_output_count(opt);
    assert_int_equal(ni, nnm_graph_input_count(raw));
    assert_int_equal(no, nnm_graph_output_count(raw));
    nnm_tensor in[4], o1[4], o2[4];
    assert_true(ni <= 4 && no <= 4);
    make_inputs(opt, in);
    run(opt, in, o1);
    run(raw, in, o2);
    for (int i = 0; i < no; i++) {
        assert_close(&o1[i], &o2[i]);
        nnm_tensor_cleanup(&o1[i]);
        nnm_tensor_cleanup(&o2[i]);
    }
    for (int i = 0; i < ni; i++) nnm_tensor_cleanup(&in[i]);
    nnm_graph_free(raw);
}

/* --- well-formed models ------------------------------------------------------------------ */

static void test_onnx_conv_bn_relu_folds_and_fuses(void **state)
{
    (void)state;
    nnm_graph *g = load_ok("conv_bn_relu.onnx", 2, 0);
    assert_int_equal(nnm_graph_node_count(g), 1);
    assert_int_equal(count_op(g, "BatchNormalization"), 0);
    nnm_node_info info;
    assert_int_equal(nnm_graph_node_get(g, 0, &info), NNM_OK);
    assert_string_equal(info.op, "Conv");
    assert_non_null(info.fused);
    assert_string_equal(info.fused, "Relu");
    assert_shape(info.shape, info.ndim, 4, 2, 4, 8, 8);
    /* 2*N*M*OH*OW*(C/g)*kh*kw, plus one add per output for the bias the folded BN left */
    assert_true(info.flops == 2.0 * 2 * 4 * 8 * 8 * 3 * 3 * 3 + 2 * 4 * 8 * 8);
    nnm_io_info io;
    assert_int_equal(nnm_graph_input_get(g, 0, &io), NNM_OK);
    assert_string_equal(io.name, "x");
    assert_shape(io.shape, io.ndim, 4, 2, 3, 8, 8);   /* symbolic N took opts.batch */
    assert_int_equal(nnm_graph_output_get(g, 0, &io), NNM_OK);
    assert_string_equal(io.name, "y");
    assert_int_equal(nnm_graph_node_get(g, 1, &info), NNM_ERANGE);
    assert_int_equal(nnm_graph_input_get(g, 1, &io), NNM_ERANGE);
    nnm_graph_free(g);

    g = load_ok("conv_bn_relu.onnx", 1, 0);
    assert_same_as_unoptimized("conv_bn_relu.onnx", g);
    nnm_graph_free(g);
    g = load_ok("conv_bn_relu.onnx", 1, 1);
    assert_int_equal(nnm_graph_node_count(g), 3);
    assert_int_equal(count_op(g, "BatchNormalization"), 1);
    nnm_graph_free(g);
}

static void test_onnx_gemm_bn_clip_folds_into_gemm(void **state)
{
    (void)state;
    nnm_graph *g = load_ok("gemm_bn_clip.onnx", 1, 0);
    assert_int_equal(nnm_graph_node_count(g), 1);
    nnm_node_info info;
    assert_int_equal(nnm_graph_node_get(g, 0, &info), NNM_OK);
    assert_string_equal(info.op, "Gemm");
    assert_non_null(info.fused);
    assert_string_equal(info.fused, "Clip");
    assert_true(g->nodes[0].a.act_min == 0.0f && g->nodes[0].a.act_max == 6.0f);
    assert_same_as_unoptimized("gemm_bn_clip.onnx", g);
    nnm_graph_free(g);
}

static void test_onnx_convtranspose_bn_folds(void **state)
{
    (void)state;
    nnm_graph *g = load_ok("convt_bn.onnx", 1, 0);
    assert_int_equal(nnm_graph_node_count(g), 1);
    assert_int_equal(count_op(g, "ConvTranspose"), 1);
    assert_same_as_unoptimized("convt_bn.onnx", g);
    nnm_graph_free(g);
}

static void test_onnx_shared_weight_copied_before_fold(void **state)
{
    (void)state;
    nnm_graph *g = load_ok("shared_bn.onnx", 1, 0);
    assert_int_equal(nnm_graph_node_count(g), 2);
    assert_int_equal(count_op(g, "Conv"), 2);
    assert_int_not_equal(g->nodes[0].in[1], g->nodes[1].in[1]);
    assert_same_as_unoptimized("shared_bn.onnx", g);
    nnm_graph_free(g);
}

static void test_onnx_standalone_bn_still_runs(void **state)
{
    (void)state;
    nnm_graph *g = load_ok("standalone_bn.onnx", 1, 0);
    assert_int_equal(nnm_graph_node_count(g), 1);
    assert_int_equal(count_op(g, "BatchNormalization"), 1);
    nnm_tensor in[1], out[1];
    make_inputs(g, in);
    run(g, in, out);
    const nnm_node *n = &g->nodes[0];
    const float *sc = g->values[n->in[1]].data, *b = g->values[n->in[2]].data;
    const float *mean = g->values[n->in[3]].data, *var = g->values[n->in[4]].data;
    const float *x = in[0].data, *y = out[0].data;
    for (int c = 0; c < 3; c++)
        for (int k = 0; k < 16; k++) {
            float want = (x[c * 16 + k] - mean[c]) / sqrtf(var[c] + 1e-3f) * sc[c] + b[c];
            assert_true(fabsf(y[c * 16 + k] - want) <= 1e-4f * fmaxf(1.0f, fabsf(want)));
        }
    nnm_tensor_cleanup(&in[0]);
    nnm_tensor_cleanup(&out[0]);
    nnm_graph_free(g);
}

static void test_onnx_bn_with_second_reader_not_folded(void **state)
{
    (void)state;
    nnm_graph *g = load_ok("bn_two_uses.onnx", 1, 0);
    assert_int_equal(count_op(g, "Conv"), 1);
    assert_int_equal(count_op(g, "BatchNormalization"), 1);
    assert_int_equal(nnm_graph_output_count(g), 2);
    assert_same_as_unoptimized("bn_two_uses.onnx", g);
    nnm_graph_free(g);
}

static void test_onnx_grouped_conv_flops_match_formula(void **state)
{
    (void)state;
    nnm_graph *g = load_ok("grouped_conv.onnx", 1, 0);
    nnm_node_info info;
    assert_int_equal(nnm_graph_node_get(g, 0, &info), NNM_OK);
    assert_string_equal(info.op, "Conv");
    assert_string_equal(info.name, "gconv");
    assert_null(info.fused);
    assert_shape(info.shape, info.ndim, 4, 1, 6, 4, 4);
    assert_true(info.flops == 2.0 * 1 * 6 * 4 * 4 * (4 / 2) * 3 * 3);
    assert_int_equal(info.param_bytes, 6 * 2 * 3 * 3 * sizeof(float));
    assert_int_equal(info.out_bytes, 6 * 4 * 4 * sizeof(float));
    assert_int_equal(info.dtype, NNM_DT_F32);
    nnm_graph_free(g);
}

static void test_onnx_reshape_chain_folds_to_constant(void **state)
{
    (void)state;
    nnm_graph *g = load_ok("reshape_chain.onnx", 3, 0);
    assert_int_equal(count_op(g, "Shape"), 0);
    assert_int_equal(count_op(g, "Gather"), 0);
    assert_int_equal(count_op(g, "Unsqueeze"), 0);
    assert_int_equal(count_op(g, "Concat"), 0);
    assert_int_equal(count_op(g, "Reshape"), 1);
    assert_int_equal(nnm_graph_node_count(g), 2);
    /* The folded chain leaves no values behind. */
    assert_true(ir__value_find(g, "s") < 0);
    assert_true(ir__value_find(g, "n1") < 0);
    nnm_io_info io;
    assert_int_equal(nnm_graph_output_get(g, 0, &io), NNM_OK);
    assert_shape(io.shape, io.ndim, 2, 3, 48);
    nnm_tensor in[1], out[1];
    make_inputs(g, in);
    run(g, in, out);
    const float *x = in[0].data, *y = out[0].data;
    for (int i = 0; i < 3 * 48; i++) assert_true(y[i] == fmaxf(x[i], 0.0f));
    nnm_tensor_cleanup(&in[0]);
    nnm_tensor_cleanup(&out[0]);
    nnm_graph_free(g);
}

static void test_onnx_constant_nodes_become_constants(void **state)
{
    (void)state;
    nnm_graph *g = load_ok("constants.onnx", 1, 0);
    assert_int_equal(nnm_graph_node_count(g), 3);
    assert_int_equal(count_op(g, "Constant"), 0);
    int c1 = ir__value_find(g, "c1");
    assert_true(c1 >= 0 && ir__is_const(g, c1));
    nnm_tensor in[1], out[1];
    make_inputs(g, in);
    run(g, in, out);
    assert_shape(out[0].shape, out[0].ndim, 2, 1, 12);
    const float *x = in[0].data, *y = out[0].data;
    for (int i = 0; i < 12; i++) assert_true(fabsf(y[i] - (x[i] + (float)(i / 4 + 1)) * 2) < 1e-5f);
    nnm_tensor_cleanup(&in[0]);
    nnm_tensor_cleanup(&out[0]);
    nnm_graph_free(g);
}

static void test_onnx_typed_initializers_load(void **state)
{
    (void)state;
    nnm_graph *g = load_ok("typed_init.onnx", 1, 0);
    nnm_tensor in[1], out[1];
    make_inputs(g, in);
    run(g, in, out);
    assert_shape(out[0].shape, out[0].ndim, 2, 2, 2);
    const float *x = in[0].data, *y = out[0].data;
    const float c[4] = { 0.5f, -0.5f, 1.0f, -1.0f };
    float gm[8];
    for (int r = 0; r < 2; r++)
        for (int j = 0; j < 4; j++) {
            float s = c[j];
            for (int k = 0; k < 3; k++) s += x[r * 3 + k] * (float)(k * 4 + j);
            gm[r * 4 + j] = s;
        }
    /* reshape [4, 2], gather rows 3 and 0 */
    assert_true(fabsf(y[0] - gm[6]) < 1e-4f && fabsf(y[1] - gm[7]) < 1e-4f);
    assert_true(fabsf(y[2] - gm[0]) < 1e-4f && fabsf(y[3] - gm[1]) < 1e-4f);
    nnm_tensor_cleanup(&in[0]);
    nnm_tensor_cleanup(&out[0]);
    nnm_graph_free(g);
}

static void test_onnx_variadic_max_becomes_chain(void **state)
{
    (void)state;
    nnm_graph *g = load_ok("max3.onnx", 1, 0);
    assert_int_equal(count_op(g, "Max"), 2);
    nnm_tensor in[3], out[1];
    make_inputs(g, in);
    run(g, in, out);
    const float *a = in[0].data, *b = in[1].data, *c = in[2].data, *y = out[0].data;
    for (int i = 0; i < 6; i++)
        assert_true(y[i] == fmaxf(fmaxf(a[i], b[i]), c[i % 3]));
    for (int i = 0; i < 3; i++) nnm_tensor_cleanup(&in[i]);
    nnm_tensor_cleanup(&out[0]);
    nnm_graph_free(g);
}

static void test_onnx_old_opsets_use_attribute_forms(void **state)
{
    (void)state;
    nnm_graph *g = load_ok("opset9_slice.onnx", 1, 0);
    nnm_io_info io;
    assert_int_equal(nnm_graph_output_get(g, 0, &io), NNM_OK);
    assert_shape(io.shape, io.ndim, 4, 1, 2, 3, 3);
    nnm_graph_free(g);

    g = load_ok("opset10_resize.onnx", 1, 0);
    assert_int_equal(nnm_graph_output_get(g, 0, &io), NNM_OK);
    assert_shape(io.shape, io.ndim, 4, 1, 2, 6, 6);
    nnm_tensor in[1], out[1];
    make_inputs(g, in);
    run(g, in, out);
    const float *x = in[0].data, *y = out[0].data;
    for (int ch = 0; ch < 2; ch++)
        for (int i = 0; i < 6; i++)
            for (int j = 0; j < 6; j++)   /* Resize-10 nearest: floor(out / scale) */
                assert_true(y[ch * 36 + i * 6 + j] == x[ch * 9 + (i / 2) * 3 + j / 2]);
    nnm_tensor_cleanup(&in[0]);
    nnm_tensor_cleanup(&out[0]);
    nnm_graph_free(g);
}

static void test_onnx_unsupported_op_names_node_and_count(void **state)
{
    (void)state;
    if (!have_models) skip();
    nnm_graph *g = (nnm_graph *)1;
    nnm_diag d;
    const char *p = mpath("unsupported_ops.onnx");
    assert_int_equal(nnm_graph_load_onnx(&g, p, NULL, &d), NNM_EUNSUPPORTED);
    assert_null(g);
    assert_int_equal(d.code, NNM_EUNSUPPORTED);
    assert_non_null(strstr(d.msg, p));
    assert_non_null(strstr(d.msg, "node 'nms1' (NonMaxSuppression): operator not supported"));
    assert_non_null(strstr(d.msg, "3 more"));
    char buf[256];
    assert_int_equal(nnm_onnx_unsupported_ops(p, buf, sizeof buf, &d), 3);
    assert_string_equal(buf, "NonMaxSuppression, TopK, com.microsoft.FusedConv");
    char small[12];
    assert_int_equal(nnm_onnx_unsupported_ops(p, small, sizeof small, &d), 3);
    assert_true(strlen(small) < sizeof small);
    assert_int_equal(nnm_onnx_unsupported_ops(mpath("conv_bn_relu.onnx"), buf, sizeof buf, &d), 0);
    assert_string_equal(buf, "");
    assert_int_equal(nnm_onnx_unsupported_ops(mpath("no-such.onnx"), buf, sizeof buf, &d), -1);
    assert_int_equal(d.code, NNM_EIO);
}

/* --- malformed models built here ---------------------------------------------------------- */

enum { INIT_RAW, INIT_RAW_SHORT, INIT_HUGE_DIMS, INIT_UINT16, INIT_EXTERNAL, INIT_FLOAT_SHORT };

/* y = OP(x, w) with x [1, 4] an input and w [4] an initializer; opset and w's encoding vary.
 * Returns the packed bytes (malloc'd). */
static uint8_t *build_model(size_t *len, int64_t opset, const char *op, int init_kind)
{
    Onnx__ModelProto m = ONNX__MODEL_PROTO__INIT;
    Onnx__OperatorSetIdProto os = ONNX__OPERATOR_SET_ID_PROTO__INIT;
    Onnx__OperatorSetIdProto *osp[1] = { &os };
    Onnx__GraphProto gr = ONNX__GRAPH_PROTO__INIT;
    Onnx__NodeProto nd = ONNX__NODE_PROTO__INIT;
    Onnx__NodeProto *ndp[1] = { &nd };
    Onnx__TensorProto w = ONNX__TENSOR_PROTO__INIT;
    Onnx__TensorProto *wp[1] = { &w };
    Onnx__ValueInfoProto xin = ONNX__VALUE_INFO_PROTO__INIT, yout = ONNX__VALUE_INFO_PROTO__INIT;
    Onnx__ValueInfoProto *xinp[1] = { &xin }, *youtp[1] = { &yout };
    Onnx__TypeProto xt = ONNX__TYPE_PROTO__INIT;
    Onnx__TypeProto__Tensor xtt = ONNX__TYPE_PROTO__TENSOR__INIT;
    Onnx__TensorShapeProto xs = ONNX__TENSOR_SHAPE_PROTO__INIT;
    Onnx__TensorShapeProto__Dimension d0 = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__INIT;
    Onnx__TensorShapeProto__Dimension d1 = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__INIT;
    Onnx__TensorShapeProto__Dimension *dims[2] = { &d0, &d1 };
    Onnx__StringStringEntryProto ext = ONNX__STRING_STRING_ENTRY_PROTO__INIT;
    Onnx__StringStringEntryProto *extp[1] = { &ext };
    char *nin[2] = { "x", "w" }, *nout[1] = { "y" };
    static float wdata[4] = { 1, 2, 3, 4 };
    int64_t wdims[1] = { 4 };

    m.has_ir_version = 1;
    m.ir_version = 7;
    os.domain = "";
    os.has_version = 1;
    os.version = opset;
    m.n_opset_import = 1;
    m.opset_import = osp;
    m.graph = &gr;
    gr.name = "g";
    nd.name = "node0";
    nd.op_type = (char *)op;
    nd.n_input = 2;
    nd.input = nin;
    nd.n_output = 1;
    nd.output = nout;
    gr.n_node = 1;
    gr.node = ndp;
    d0.value_case = d1.value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
    d0.dim_value = 1;
    d1.dim_value = 4;
    xs.n_dim = 2;
    xs.dim = dims;
    xtt.has_elem_type = 1;
    xtt.elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    xtt.shape = &xs;
    xt.value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    xt.tensor_type = &xtt;
    xin.name = "x";
    xin.type = &xt;
    yout.name = "y";
    gr.n_input = 1;
    gr.input = xinp;
    gr.n_output = 1;
    gr.output = youtp;
    w.name = "w";
    w.has_data_type = 1;
    w.data_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    w.n_dims = 1;
    w.dims = wdims;
    w.has_raw_data = 1;
    w.raw_data.data = (uint8_t *)wdata;
    w.raw_data.len = sizeof wdata;
    switch (init_kind) {
    case INIT_RAW_SHORT: w.raw_data.len = 12; break;
    case INIT_HUGE_DIMS: wdims[0] = (int64_t)1 << 40; break;
    case INIT_UINT16: w.data_type = ONNX__TENSOR_PROTO__DATA_TYPE__UINT16; w.raw_data.len = 8; break;
    case INIT_EXTERNAL:
        w.has_raw_data = 0;
        w.raw_data.len = 0;
        w.raw_data.data = NULL;
        ext.key = "location";
        ext.value = "weights.bin";
        w.n_external_data = 1;
        w.external_data = extp;
        w.has_data_location = 1;
        w.data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
        break;
    case INIT_FLOAT_SHORT:
        w.has_raw_data = 0;
        w.raw_data.len = 0;
        w.raw_data.data = NULL;
        w.n_float_data = 3;
        w.float_data = wdata;
        break;
    default: break;
    }
    gr.n_initializer = 1;
    gr.initializer = wp;
    *len = onnx__model_proto__get_packed_size(&m);
    uint8_t *buf = malloc(*len);
    assert_non_null(buf);
    assert_int_equal(onnx__model_proto__pack(&m, buf), *len);
    return buf;
}

static const char *write_file(const char *name, const void *buf, size_t len)
{
    static char path[PATH_MAX];
    const char *dir = have_models ? model_dir : "/tmp";
    assert_true(strlen(dir) + strlen(name) + 2 <= sizeof path);
    strcpy(path, dir);
    strcat(path, "/");
    strcat(path, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (len) assert_int_equal(fwrite(buf, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
    return path;
}

/* Loads the bytes through a file; asserts rc and that the message has every needle. */
static void expect_load_error(const char *file, const void *buf, size_t len, nnm_err want,
                              const char *needle1, const char *needle2)
{
    const char *path = write_file(file, buf, len);
    nnm_graph *g = (nnm_graph *)1;
    nnm_diag d;
    nnm_diag_clear(&d);
    nnm_err rc = nnm_graph_load_onnx(&g, path, NULL, &d);
    if (rc != want) fprintf(stderr, "%s: rc %d: %s\n", file, rc, d.msg);
    assert_int_equal(rc, want);
    assert_null(g);
    assert_int_equal(d.code, want);
    assert_non_null(strstr(d.msg, path));
    if (needle1 && strstr(d.msg, needle1) == NULL) fail_msg("'%s' not in: %s", needle1, d.msg);
    if (needle2 && strstr(d.msg, needle2) == NULL) fail_msg("'%s' not in: %s", needle2, d.msg);
    unlink(path);
}

static void test_onnx_built_model_loads(void **state)
{
    (void)state;
    size_t len;
    uint8_t *buf = build_model(&len, 13, "Add", INIT_RAW);
    nnm_graph *g = NULL;
    nnm_diag d;
    nnm_err rc = nnm_graph_decode_onnx(&g, buf, len, "built.onnx", NULL, &d);
    if (rc != NNM_OK) fprintf(stderr, "%s\n", d.msg);
    assert_int_equal(rc, NNM_OK);
    assert_int_equal(nnm_graph_node_count(g), 1);
    nnm_graph_free(g);
    nnm_graph_free(NULL);
    free(buf);
}

static void test_onnx_opset_out_of_range_is_unsupported(void **state)
{
    (void)state;
    size_t len;
    uint8_t *buf = build_model(&len, 6, "Add", INIT_RAW);
    expect_load_error("opset6.onnx", buf, len, NNM_EUNSUPPORTED, "opset 6", "7 to 17");
    free(buf);
    buf = build_model(&len, 18, "Add", INIT_RAW);
    expect_load_error("opset18.onnx", buf, len, NNM_EUNSUPPORTED, "opset 18", NULL);
    free(buf);
}

static void test_onnx_unsupported_op_is_named(void **state)
{
    (void)state;
    size_t len;
    uint8_t *buf = build_model(&len, 13, "NonMaxSuppression", INIT_RAW);
    expect_load_error("nms.onnx", buf, len, NNM_EUNSUPPORTED,
                      "node 'node0' (NonMaxSuppression): operator not supported", NULL);
    free(buf);
}

static void test_onnx_short_raw_data_is_format_error(void **state)
{
    (void)state;
    size_t len;
    uint8_t *buf = build_model(&len, 13, "Add", INIT_RAW_SHORT);
    expect_load_error("short.onnx", buf, len, NNM_EFORMAT, "initializer 'w'", "12 bytes");
    free(buf);
    buf = build_model(&len, 13, "Add", INIT_FLOAT_SHORT);
    expect_load_error("short_typed.onnx", buf, len, NNM_EFORMAT, "initializer 'w'", "3 values");
    free(buf);
}

static void test_onnx_huge_dims_rejected_before_allocating(void **state)
{
    (void)state;
    size_t len;
    uint8_t *buf = build_model(&len, 13, "Add", INIT_HUGE_DIMS);
    expect_load_error("huge.onnx", buf, len, NNM_EFORMAT, "initializer 'w'", "[1099511627776]");
    free(buf);
}

static void test_onnx_unsupported_dtype_and_external_data(void **state)
{
    (void)state;
    size_t len;
    uint8_t *buf = build_model(&len, 13, "Add", INIT_UINT16);
    expect_load_error("u16.onnx", buf, len, NNM_EUNSUPPORTED, "initializer 'w'", "UINT16");
    free(buf);
    buf = build_model(&len, 13, "Add", INIT_EXTERNAL);
    expect_load_error("ext.onnx", buf, len, NNM_EUNSUPPORTED, "initializer 'w'", "external");
    free(buf);
}

static void test_onnx_text_empty_missing_files(void **state)
{
    (void)state;
    const char *text = "This is not an ONNX model.\nJust some text, a few lines of it.\n";
    expect_load_error("text.onnx", text, strlen(text), NNM_EFORMAT, "not an ONNX model", NULL);
    expect_load_error("empty.onnx", "", 0, NNM_EFORMAT, "empty", NULL);
    nnm_graph *g = (nnm_graph *)1;
    nnm_diag d;
    assert_int_equal(nnm_graph_load_onnx(&g, "/nonexistent/dir/m.onnx", NULL, &d), NNM_EIO);
    assert_null(g);
    assert_non_null(strstr(d.msg, "/nonexistent/dir/m.onnx: cannot read: "));
    assert_non_null(strstr(d.msg, strerror(ENOENT)));
}

static void test_onnx_truncated_prefixes_fail_cleanly(void **state)
{
    (void)state;
    if (!have_models) skip();
    FILE *f = fopen(mpath("conv_bn_relu.onnx"), "rb");
    assert_non_null(f);
    uint8_t buf[8192];
    size_t len = fread(buf, 1, sizeof buf, f);
    fclose(f);
    assert_true(len > 100 && len < sizeof buf);
    int ok = 0, bad = 0;
    for (size_t n = 0; n < len; n += 7) {
        nnm_graph *g = NULL;
        nnm_diag d;
        nnm_diag_clear(&d);
        nnm_err rc = nnm_graph_decode_onnx(&g, buf, n, "cut.onnx", NULL, &d);
        if (rc == NNM_OK) {
            assert_non_null(g);
            ok++;
        } else {
            assert_null(g);
            assert_true(strncmp(d.msg, "cut.onnx: ", 10) == 0);
            bad++;
        }
        nnm_graph_free(g);
    }
    assert_true(bad > 0);
    (void)ok;
}

/* GraphProto -> node -> attribute -> graph ... nested far deeper than any real model. */
static void test_onnx_deep_nesting_rejected(void **state)
{
    (void)state;
    enum { DEPTH = 200 };
    static Onnx__GraphProto gs[DEPTH];
    static Onnx__NodeProto ns[DEPTH];
    static Onnx__NodeProto *nps[DEPTH];
    static Onnx__AttributeProto as[DEPTH];
    static Onnx__AttributeProto *aps[DEPTH];
    for (int i = 0; i < DEPTH; i++) {
        Onnx__GraphProto g0 = ONNX__GRAPH_PROTO__INIT;
        Onnx__NodeProto n0 = ONNX__NODE_PROTO__INIT;
        Onnx__AttributeProto a0 = ONNX__ATTRIBUTE_PROTO__INIT;
        gs[i] = g0;
        ns[i] = n0;
        as[i] = a0;
    }
    for (int i = 0; i < DEPTH; i++) {
        ns[i].op_type = "If";
        nps[i] = &ns[i];
        gs[i].n_node = 1;
        gs[i].node = &nps[i];
        if (i + 1 < DEPTH) {
            as[i].name = "then_branch";
            as[i].g = &gs[i + 1];
            aps[i] = &as[i];
            ns[i].n_attribute = 1;
            ns[i].attribute = &aps[i];
        }
    }
    Onnx__ModelProto m = ONNX__MODEL_PROTO__INIT;
    m.graph = &gs[0];
    size_t len = onnx__model_proto__get_packed_size(&m);
    uint8_t *buf = malloc(len);
    assert_non_null(buf);
    onnx__model_proto__pack(&m, buf);
    nnm_graph *g = NULL;
    nnm_diag d;
    assert_int_equal(nnm_graph_decode_onnx(&g, buf, len, "deep.onnx", NULL, &d), NNM_EFORMAT);
    assert_non_null(strstr(d.msg, "deep.onnx: "));
    assert_non_null(strstr(d.msg, "nested"));
    free(buf);
}

static void test_onnx_tensor_decode_reads_typed_and_raw(void **state)
{
    (void)state;
    Onnx__TensorProto t = ONNX__TENSOR_PROTO__INIT;
    int64_t dims[2] = { 2, 2 };
    int32_t vals[4] = { 1, 0, 5, 0 };
    t.name = "b";
    t.has_data_type = 1;
    t.data_type = ONNX__TENSOR_PROTO__DATA_TYPE__BOOL;
    t.n_dims = 2;
    t.dims = dims;
    t.n_int32_data = 4;
    t.int32_data = vals;
    uint8_t buf[256];
    size_t len = onnx__tensor_proto__pack(&t, buf);
    nnm_tensor out;
    nnm_diag d;
    assert_int_equal(ir__tensor_decode_onnx(&out, buf, len, "b.pb", &d), NNM_OK);
    assert_int_equal(out.dtype, NNM_DT_BOOL);
    assert_int_equal(out.nbytes, 4);
    const uint8_t *p = out.data;
    assert_true(p[0] == 1 && p[1] == 0 && p[2] == 1 && p[3] == 0);
    nnm_tensor_cleanup(&out);
    assert_int_equal(ir__tensor_decode_onnx(&out, "\xff\xff", 2, "bad.pb", &d), NNM_EFORMAT);
    assert_non_null(strstr(d.msg, "bad.pb"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_onnx_conv_bn_relu_folds_and_fuses),
        cmocka_unit_test(test_onnx_gemm_bn_clip_folds_into_gemm),
        cmocka_unit_test(test_onnx_convtranspose_bn_folds),
        cmocka_unit_test(test_onnx_shared_weight_copied_before_fold),
        cmocka_unit_test(test_onnx_standalone_bn_still_runs),
        cmocka_unit_test(test_onnx_bn_with_second_reader_not_folded),
        cmocka_unit_test(test_onnx_grouped_conv_flops_match_formula),
        cmocka_unit_test(test_onnx_reshape_chain_folds_to_constant),
        cmocka_unit_test(test_onnx_constant_nodes_become_constants),
        cmocka_unit_test(test_onnx_typed_initializers_load),
        cmocka_unit_test(test_onnx_variadic_max_becomes_chain),
        cmocka_unit_test(test_onnx_old_opsets_use_attribute_forms),
        cmocka_unit_test(test_onnx_unsupported_op_names_node_and_count),
        cmocka_unit_test(test_onnx_built_model_loads),
        cmocka_unit_test(test_onnx_opset_out_of_range_is_unsupported),
        cmocka_unit_test(test_onnx_unsupported_op_is_named),
        cmocka_unit_test(test_onnx_short_raw_data_is_format_error),
        cmocka_unit_test(test_onnx_huge_dims_rejected_before_allocating),
        cmocka_unit_test(test_onnx_unsupported_dtype_and_external_data),
        cmocka_unit_test(test_onnx_text_empty_missing_files),
        cmocka_unit_test(test_onnx_truncated_prefixes_fail_cleanly),
        cmocka_unit_test(test_onnx_deep_nesting_rejected),
        cmocka_unit_test(test_onnx_tensor_decode_reads_typed_and_raw),
    };
    return cmocka_run_group_tests_name("onnx", tests, group_setup, NULL);
}
