/* tests/unit/test_worker.c — the worker runs tasks (slices and parts) of models held by
 * hash, verifies and caches models received from peers, and reports clear errors. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "nnmesh/npy.h"
#include "nnmesh/worker.h"

static char lenet[4096], sample[4096];

static nnm_graph *load_lenet(void)
{
    nnm_graph *g = NULL;
    nnm_diag d;
    assert_int_equal(nnm_graph_load_onnx(&g, lenet, NULL, &d), NNM_OK);
    return g;
}

static nnm_tensor whole_output(void)
{
    nnm_graph *g = load_lenet();
    nnm_tensor x, y;
    nnm_exec *ex = NULL;
    nnm_diag d;
    assert_int_equal(nnm_npy_load(&x, sample, &d), NNM_OK);
    assert_int_equal(nnm_exec_new(&ex, g, NULL, &d), NNM_OK);
    assert_int_equal(nnm_exec_run(ex, &x, 1, &y, 1, &d), NNM_OK);
    nnm_exec_free(ex);
    nnm_graph_free(g);
    nnm_tensor_cleanup(&x);
    return y;
}

static void spec_of(nnm_slice_spec *s, const uint8_t *hash, uint32_t a, uint32_t b, int kind,
                    uint32_t pb, uint32_t pe)
{
    memset(s, 0, sizeof *s);
    memcpy(s->model_hash, hash, NNM_WIRE_HASH_BYTES);
    s->node_begin = a;
    s->node_end = b;
    s->part_kind = (uint8_t)kind;
    s->part_begin = pb;
    s->part_end = pe;
}

static void test_worker_two_slices_equal_whole(void **state)
{
    (void)state;
    nnm_worker *w = NULL;
    nnm_diag d;
    assert_int_equal(nnm_worker_new(&w, NULL, &d), NNM_OK);
    uint8_t h[NNM_WIRE_HASH_BYTES];
    memset(h, 7, sizeof h);
    assert_int_equal(nnm_worker_add_model(w, h, load_lenet(), &d), NNM_OK);
    nnm_tensor x;
    assert_int_equal(nnm_npy_load(&x, sample, &d), NNM_OK);
    nnm_slice_spec s1, s2;
    spec_of(&s1, h, 0, 4, NNM_PART_WHOLE, 0, 0);
    spec_of(&s2, h, 4, 8, NNM_PART_WHOLE, 0, 0);
    const char *n1[1] = { "input" };
    nnm_task_output *o1 = NULL, *o2 = NULL;
    size_t k1 = 0, k2 = 0;
    double ms = -1;
    /* twice: the second run reuses the cached executor */
    for (int rep = 0; rep < 2; rep++) {
        nnm_task_outputs_free(o1, k1);
        assert_int_equal(nnm_worker_run(w, &s1, n1, &x, 1, &o1, &k1, &ms, &d), NNM_OK);
    }
    assert_true(ms >= 0);
    assert_int_equal(k1, 1);
    const char *n2[1] = { o1[0].name };
    assert_int_equal(nnm_worker_run(w, &s2, n2, &o1[0].t, 1, &o2, &k2, NULL, &d), NNM_OK);
    assert_int_equal(k2, 1);
    assert_string_equal(o2[0].name, "output");
    nnm_tensor y = whole_output();
    assert_int_equal(y.nbytes, o2[0].t.nbytes);
    assert_memory_equal(y.data, o2[0].t.data, y.nbytes);
    nnm_tensor_cleanup(&y);
    nnm_task_outputs_free(o1, k1);
    nnm_task_outputs_free(o2, k2);
    nnm_tensor_cleanup(&x);
    nnm_worker_free(w);
}

static void test_worker_row_parts_join_to_slice(void **state)
{
    (void)state;
    nnm_worker *w = NULL;
    nnm_diag d;
    assert_int_equal(nnm_worker_new(&w, NULL, &d), NNM_OK);
    uint8_t h[NNM_WIRE_HASH_BYTES];
    memset(h, 3, sizeof h);
    nnm_graph *g = load_lenet();
    assert_int_equal(nnm_worker_add_model(w, h, g, &d), NNM_OK);
    nnm_tensor x;
    assert_int_equal(nnm_npy_load(&x, sample, &d), NNM_OK);
    const char *names[1] = { "input" };
    /* whole [0, 2): conv + pool, output [1, 6, 14, 14] */
    nnm_slice_spec s;
    spec_of(&s, h, 0, 2, NNM_PART_WHOLE, 0, 0);
    nnm_task_output *ref = NULL;
    size_t nref = 0;
    assert_int_equal(nnm_worker_run(w, &s, names, &x, 1, &ref, &nref, NULL, &d), NNM_OK);
    nnm_tensor joined;
    assert_int_equal(nnm_tensor_init(&joined, NNM_DT_F32, ref[0].t.ndim, ref[0].t.shape), NNM_OK);
    uint32_t cuts[4] = { 0, 3, 9, 14 };
    for (int p = 0; p < 3; p++) {
        spec_of(&s, h, 0, 2, NNM_PART_ROWS, cuts[p], cuts[p + 1]);
        /* the task's inputs are cropped to what the part needs: ask the slicer */
        nnm_graph *part = NULL;
        nnm_part pt = { NNM_PART_ROWS, cuts[p], cuts[p + 1] };
        assert_int_equal(nnm_graph_slice(&part, nnm_worker_get_model(w, h), 0, 2, &pt, &d), NNM_OK);
        nnm_region r;
        assert_int_equal(nnm_graph_input_region(part, 0, &r), NNM_OK);
        nnm_tensor xc;
        assert_int_equal(nnm_tensor_crop(&xc, &x, &r), NNM_OK);
        nnm_task_output *o = NULL;
        size_t no = 0;
        assert_int_equal(nnm_worker_run(w, &s, names, &xc, 1, &o, &no, NULL, &d), NNM_OK);
        assert_int_equal(o[0].region.axis, 2);
        assert_int_equal(nnm_tensor_place(&joined, &o[0].t, &o[0].region), NNM_OK);
        nnm_task_outputs_free(o, no);
        nnm_tensor_cleanup(&xc);
        nnm_graph_free(part);
    }
    assert_memory_equal(joined.data, ref[0].t.data, joined.nbytes);
    nnm_tensor_cleanup(&joined);
    nnm_task_outputs_free(ref, nref);
    nnm_tensor_cleanup(&x);
    nnm_worker_free(w);
}

static void test_worker_received_model_verified_and_cached(void **state)
{
    (void)state;
    char dir[] = "/tmp/nnm-worker-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char cache[256];
    snprintf(cache, sizeof cache, "%s/cache", dir);
    nnm_worker_opts o = { .cache_dir = cache };
    nnm_worker *w = NULL;
    nnm_diag d;
    assert_int_equal(nnm_worker_new(&w, &o, &d), NNM_OK);
    /* a peer sends the slice [4, 8) of LeNet as ONNX */
    nnm_graph *g = load_lenet(), *sl = NULL;
    assert_int_equal(nnm_graph_slice(&sl, g, 4, 8, NULL, &d), NNM_OK);
    void *buf = NULL;
    size_t len = 0;
    assert_int_equal(nnm_graph_encode_onnx(&buf, &len, sl, &d), NNM_OK);
    uint8_t h[NNM_WIRE_HASH_BYTES], bad[NNM_WIRE_HASH_BYTES];
    nnm_model_hash(h, buf, len);
    memcpy(bad, h, sizeof bad);
    bad[0] ^= 1;
    assert_int_equal(nnm_worker_put_model(w, bad, buf, len, &d), NNM_ECRYPTO);
    assert_non_null(strstr(d.msg, "do not match"));
    assert_false(nnm_worker_has_model(w, bad));
    assert_int_equal(nnm_worker_put_model(w, h, buf, len, &d), NNM_OK);
    assert_true(nnm_worker_has_model(w, h));
    nnm_worker_free(w);
    /* a new worker on the same cache finds it on disk */
    assert_int_equal(nnm_worker_new(&w, &o, &d), NNM_OK);
    assert_true(nnm_worker_has_model(w, h));
    /* running a task of a model not held names the hash */
    nnm_slice_spec s;
    spec_of(&s, bad, 0, 1, NNM_PART_WHOLE, 0, 0);
    nnm_task_output *out = NULL;
    size_t n = 0;
    nnm_tensor x;
    memset(&x, 0, sizeof x);
    const char *names[1] = { "x" };
    assert_int_equal(nnm_worker_run(w, &s, names, &x, 1, &out, &n, NULL, &d), NNM_ENOTFOUND);
    assert_non_null(strstr(d.msg, "not held"));
    /* a missing input is named */
    spec_of(&s, h, 0, 4, NNM_PART_WHOLE, 0, 0);
    assert_int_equal(nnm_worker_run(w, &s, names, &x, 1, &out, &n, NULL, &d), NNM_EINVAL);
    assert_non_null(strstr(d.msg, "is missing"));
    nnm_worker_free(w);
    free(buf);
    nnm_graph_free(sl);
    nnm_graph_free(g);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const char *src = getenv("top_srcdir");
    if (src == NULL) src = "..";
    snprintf(lenet, sizeof lenet, "%s/examples/models/lenet5-fmnist.onnx", src);
    snprintf(sample, sizeof sample, "%s/examples/models/sample-0-ankle-boot.npy", src);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_worker_two_slices_equal_whole),
        cmocka_unit_test(test_worker_row_parts_join_to_slice),
        cmocka_unit_test(test_worker_received_model_verified_and_cached),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
