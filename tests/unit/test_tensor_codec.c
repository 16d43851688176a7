/* tests/unit/test_tensor_codec.c — tensor payload codecs: half-precision rounding against
 * known bit patterns, INT8 affine error bounds and channel axis, LZ4 round trips and the AUTO
 * choice, and decode-side validation of corrupt payloads. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "nnmesh/wire.h"
#include "wire_int.h"

static float bits_f(uint32_t x)
{
    float f;
    memcpy(&f, &x, 4);
    return f;
}

static void test_tensor_codec_f16_rounds_to_nearest_even(void **state)
{
    (void)state;
    static const struct { float f; uint16_t h; } cases[] = {
        { 0.0f, 0x0000 }, { 1.0f, 0x3c00 }, { -2.0f, 0xc000 }, { 65504.0f, 0x7bff },
        { 65520.0f, 0x7c00 },                 /* halfway to the next binade: rounds to inf */
        { 65519.0f, 0x7bff }, { 1e9f, 0x7c00 },
        { 0x1p-24f, 0x0001 },                 /* smallest subnormal */
        { 0x1p-25f, 0x0000 },                 /* exactly half of it: ties to even, 0 */
        { 0x1.8p-24f, 0x0002 },               /* 1.5 ulp: ties to even, 2 */
        { 0x1p-14f, 0x0400 },                 /* smallest normal */
        { 0x1.ffcp-15f, 0x0400 },             /* subnormal rounding up into the normals */
        { 1.0f + 0x1p-11f, 0x3c00 },          /* tie, even stays */
        { 1.0f + 0x3p-11f, 0x3c02 },          /* tie, odd rounds up */
        { 1.0f + 0x1.2p-11f, 0x3c01 },        /* just past the tie */
        { -0.0f, 0x8000 }, { 1e-30f, 0x0000 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint16_t h = transport__f32_to_f16(cases[i].f);
        if (h != cases[i].h) print_error("case %zu: %a -> 0x%04x, want 0x%04x\n", i,
                                         (double)cases[i].f, h, cases[i].h);
        assert_int_equal(h, cases[i].h);
    }
    assert_int_equal(transport__f32_to_f16(bits_f(0x7f800000u)), 0x7c00);
    uint16_t nan = transport__f32_to_f16(bits_f(0x7f800001u));
    assert_int_equal(nan & 0x7c00, 0x7c00);
    assert_true((nan & 0x3ff) != 0);
    /* Every half converts to f32 and back unchanged (NaNs stay NaN). */
    for (uint32_t h = 0; h < 65536; h++) {
        float f = transport__f16_to_f32((uint16_t)h);
        uint16_t back = transport__f32_to_f16(f);
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) assert_true(isnan(f));
        else assert_int_equal(back, h);
    }
}

static void tensor_view(nnm_tensor *t, nnm_dtype dt, int ndim, const int64_t *shape, void *data)
{
    memset(t, 0, sizeof *t);
    t->dtype = dt;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    t->data = data;
    t->nbytes = (size_t)nnm_shape_numel(shape, ndim, 1) * nnm_dtype_size(dt);
}

static void test_tensor_codec_int8_affine_is_per_channel_on_axis_1(void **state)
{
    (void)state;
    /* NCHW 2x3x4x5; channel c spans [-c-1, 10c+1], so scales differ by channel. */
    int64_t shape[4] = { 2, 3, 4, 5 };
    float x[120];
    for (int n = 0; n < 2; n++)
        for (int c = 0; c < 3; c++)
            for (int i = 0; i < 20; i++)
                x[(n * 3 + c) * 20 + i] = -(float)c - 1.0f + (float)i * (11.0f * c + 2) / 19.0f;
    x[5] = 0.0f;
    nnm_tensor t, out;
    tensor_view(&t, NNM_DT_F32, 4, shape, x);
    nnm_wire_tensor wt;
    assert_int_equal(nnm_wire_tensor_encode(&wt, &t, NNM_CODEC_INT8_AFFINE, NULL), NNM_OK);
    assert_int_equal(wt.params_len, 3 * 5);
    assert_int_equal(wt.data_len, 120);
    assert_int_equal(nnm_wire_tensor_decode(&out, &wt, NULL, NULL), NNM_OK);
    const float *y = out.data;
    for (int c = 0; c < 3; c++) {
        float scale;
        memcpy(&scale, wt.params + 4 * c, 4);
        float range = (11.0f * c + 2) + 0.0f;
        assert_true(fabsf(scale - range / 255.0f) < 1e-5f);
        for (int n = 0; n < 2; n++)
            for (int i = 0; i < 20; i++) {
                int k = (n * 3 + c) * 20 + i;
                assert_true(fabsf(y[k] - x[k]) <= scale * 0.5f + 1e-6f);
            }
    }
    assert_true(y[5] == 0.0f); /* zero is exact */
    nnm_tensor_cleanup(&out);

    /* A corrupt scale is rejected on decode. */
    uint8_t *params = wt.owned_;
    memcpy(params, &(float){ -1.0f }, 4);
    nnm_diag d;
    assert_int_equal(nnm_wire_tensor_decode(&out, &wt, NULL, &d), NNM_EFORMAT);
    assert_non_null(strstr(d.msg, "scale"));
    nnm_wire_tensor_cleanup(&wt);

    /* 2-D: channels on the last axis; non-f32 refused. */
    int64_t s2[2] = { 4, 6 };
    tensor_view(&t, NNM_DT_F32, 2, s2, x);
    assert_int_equal(nnm_wire_tensor_encode(&wt, &t, NNM_CODEC_INT8_AFFINE, NULL), NNM_OK);
    assert_int_equal(wt.params_len, 6 * 5);
    nnm_wire_tensor_cleanup(&wt);
    tensor_view(&t, NNM_DT_I32, 2, s2, x);
    assert_int_equal(nnm_wire_tensor_encode(&wt, &t, NNM_CODEC_INT8_AFFINE, NULL), NNM_EINVAL);
    x[3] = NAN;
    tensor_view(&t, NNM_DT_F32, 2, s2, x);
    assert_int_equal(nnm_wire_tensor_encode(&wt, &t, NNM_CODEC_INT8_AFFINE, NULL), NNM_EINVAL);
}

static void test_tensor_codec_lz4_round_trips_and_auto_keeps_it_only_if_it_pays(void **state)
{
    (void)state;
    int64_t shape[4] = { 1, 16, 32, 32 };
    size_t n = 16 * 32 * 32;
    float *relu = malloc(n * 4), *noise = malloc(n * 4);
    uint32_t seed = 12345;
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        float v = (float)(seed >> 8) / 16777216.0f - 0.5f;
        relu[i] = v > 0.3f ? v : 0.0f; /* ReLU output: mostly zeros */
        noise[i] = v;
    }
    nnm_tensor t, out;
    nnm_wire_tensor wt;
    tensor_view(&t, NNM_DT_F32, 4, shape, relu);
    assert_int_equal(nnm_wire_tensor_encode(&wt, &t, NNM_CODEC_AUTO, NULL), NNM_OK);
    assert_int_equal(wt.codec, NNM_CODEC_LZ4);
    assert_true(wt.data_len * 10 <= n * 4 * 9);
    assert_int_equal(nnm_wire_tensor_decode(&out, &wt, NULL, NULL), NNM_OK);
    assert_memory_equal(out.data, relu, n * 4);
    nnm_tensor_cleanup(&out);

    /* Corrupt LZ4 and a raw length that lies are format errors, never overruns. */
    nnm_diag d;
    size_t full = wt.data_len;
    wt.data_len = full / 2;
    assert_int_equal(nnm_wire_tensor_decode(&out, &wt, NULL, &d), NNM_EFORMAT);
    assert_null(out.data);
    wt.data_len = full;
    ((uint8_t *)wt.owned_)[full - 1] ^= 0xff; /* the final literal: decodes, wrong bytes */
    ((uint8_t *)wt.owned_)[0] = 0xff;         /* a token claiming a huge literal run */
    assert_int_equal(nnm_wire_tensor_decode(&out, &wt, NULL, &d), NNM_EFORMAT);
    assert_null(out.data);
    nnm_wire_tensor_cleanup(&wt);
    assert_int_equal(nnm_wire_tensor_encode(&wt, &t, NNM_CODEC_LZ4, NULL), NNM_OK);
    wt.shape[3] = 31;
    wt.raw_len -= 16 * 32 * 4;
    assert_int_equal(nnm_wire_tensor_decode(&out, &wt, NULL, &d), NNM_EFORMAT);
    nnm_wire_limits lim;
    nnm_wire_limits_init(&lim);
    lim.max_tensor_bytes = 1024;
    assert_int_equal(nnm_wire_tensor_decode(&out, &wt, &lim, &d), NNM_ERANGE);
    nnm_wire_tensor_cleanup(&wt);

    /* Noise does not compress by 10%: AUTO sends it raw, borrowing the caller's buffer. */
    tensor_view(&t, NNM_DT_F32, 4, shape, noise);
    assert_int_equal(nnm_wire_tensor_encode(&wt, &t, NNM_CODEC_AUTO, NULL), NNM_OK);
    assert_int_equal(wt.codec, NNM_CODEC_NONE);
    assert_ptr_equal(wt.data, noise);
    assert_null(wt.owned_);
    nnm_wire_tensor_cleanup(&wt);

    /* F16 round trip stays within half-precision error. */
    assert_int_equal(nnm_wire_tensor_encode(&wt, &t, NNM_CODEC_F16, NULL), NNM_OK);
    assert_int_equal(wt.data_len, n * 2);
    assert_int_equal(nnm_wire_tensor_decode(&out, &wt, NULL, NULL), NNM_OK);
    const float *y = out.data;
    for (size_t i = 0; i < n; i++) assert_true(fabsf(y[i] - noise[i]) <= 0.5f / 2048.0f);
    nnm_tensor_cleanup(&out);
    nnm_wire_tensor_cleanup(&wt);
    free(relu);
    free(noise);
}

static void test_tensor_codec_empty_and_scalar_tensors_round_trip(void **state)
{
    (void)state;
    int64_t s0[2] = { 0, 3 };
    float one = 2.5f;
    nnm_tensor t, out;
    nnm_wire_tensor wt;
    const nnm_codec codecs[] = { NNM_CODEC_NONE, NNM_CODEC_F16, NNM_CODEC_INT8_AFFINE,
                                 NNM_CODEC_LZ4 };
    for (size_t i = 0; i < 4; i++) {
        tensor_view(&t, NNM_DT_F32, 2, s0, &one);
        assert_int_equal(nnm_wire_tensor_encode(&wt, &t, codecs[i], NULL), NNM_OK);
        assert_int_equal(nnm_wire_tensor_decode(&out, &wt, NULL, NULL), NNM_OK);
        assert_int_equal(out.nbytes, 0);
        nnm_tensor_cleanup(&out);
        nnm_wire_tensor_cleanup(&wt);
        tensor_view(&t, NNM_DT_F32, 0, NULL, &one);
        assert_int_equal(nnm_wire_tensor_encode(&wt, &t, codecs[i], NULL), NNM_OK);
        assert_int_equal(nnm_wire_tensor_decode(&out, &wt, NULL, NULL), NNM_OK);
        assert_true(fabsf(*(float *)out.data - 2.5f) < 0.01f);
        nnm_tensor_cleanup(&out);
        nnm_wire_tensor_cleanup(&wt);
    }
}

/* The names the stats JSON (coordinator.result_codecs) and plan dumps print. */
static void test_tensor_codec_names_cover_every_codec(void **state)
{
    (void)state;
    assert_string_equal(nnm_codec_name(NNM_CODEC_NONE), "none");
    assert_string_equal(nnm_codec_name(NNM_CODEC_F16), "f16");
    assert_string_equal(nnm_codec_name(NNM_CODEC_INT8_AFFINE), "int8");
    assert_string_equal(nnm_codec_name(NNM_CODEC_LZ4), "lz4");
    assert_string_equal(nnm_codec_name(NNM_CODEC_AUTO), "auto");
    assert_string_equal(nnm_codec_name(NNM_CODEC__COUNT), "?");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tensor_codec_f16_rounds_to_nearest_even),
        cmocka_unit_test(test_tensor_codec_int8_affine_is_per_channel_on_axis_1),
        cmocka_unit_test(test_tensor_codec_lz4_round_trips_and_auto_keeps_it_only_if_it_pays),
        cmocka_unit_test(test_tensor_codec_empty_and_scalar_tensors_round_trip),
        cmocka_unit_test(test_tensor_codec_names_cover_every_codec),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
