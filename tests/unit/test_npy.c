/* tests/unit/test_npy.c — .npy decoding and encoding: golden images written by numpy 1.24,
 * byte-exact encoder output, round trips for every dtype, and each malformed-file error.
 *
 * The golden images below were produced once with Debian's numpy (np.save, or
 * numpy.lib.format.write_array for versions 2.0 and 3.0) and pasted as C literals, so the
 * test needs no Python at run time. */
#include <errno.h>
#include <fcntl.h>
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

#include "nnmesh/npy.h"

/* np.save(f, np.arange(6, dtype='<f4').reshape(2, 3)) */
static const char np_f32_2x3[] =
    "\x93\x4e\x55\x4d\x50\x59\x01\x00\x76\x00"
    "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"
    "                                                          \n"
    "\x00\x00\x00\x00\x00\x00\x80\x3f\x00\x00\x00\x40\x00\x00\x40\x40"
    "\x00\x00\x80\x40\x00\x00\xa0\x40";

/* np.save(f, np.array([-1, 0, 1, 2**40], dtype='<i8')) */
static const char np_i64_4[] =
    "\x93\x4e\x55\x4d\x50\x59\x01\x00\x76\x00"
    "{'descr': '<i8', 'fortran_order': False, 'shape': (4,), }"
    "                                                            \n"
    "\xff\xff\xff\xff\xff\xff\xff\xff\x00\x00\x00\x00\x00\x00\x00\x00"
    "\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00";

/* np.save(f, np.array(True)) */
static const char np_bool_0d[] =
    "\x93\x4e\x55\x4d\x50\x59\x01\x00\x76\x00"
    "{'descr': '|b1', 'fortran_order': False, 'shape': (), }"
    "                                                              \n"
    "\x01";

/* np.save(f, np.array([0.5, 1, -2, 65504], dtype='<f2').reshape(1, 2, 1, 2)) */
static const char np_f16_1x2x1x2[] =
    "\x93\x4e\x55\x4d\x50\x59\x01\x00\x76\x00"
    "{'descr': '<f2', 'fortran_order': False, 'shape': (1, 2, 1, 2), }"
    "                                                    \n"
    "\x00\x38\x00\x3c\x00\xc0\xff\x7b";

/* format.write_array(f, np.array([[0, 255], [7, 128]], dtype='|u1'), version=(2, 0)) */
static const char np_u8_v2[] =
    "\x93\x4e\x55\x4d\x50\x59\x02\x00\x74\x00\x00\x00"
    "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 2), }"
    "                                                        \n"
    "\x00\xff\x07\x80";

/* format.write_array(f, np.array([-128, 127, 0], dtype='|i1'), version=(3, 0)) */
static const char np_i8_v3[] =
    "\x93\x4e\x55\x4d\x50\x59\x03\x00\x74\x00\x00\x00"
    "{'descr': '|i1', 'fortran_order': False, 'shape': (3,), }"
    "                                                          \n"
    "\x80\x7f\x00";

/* np.save(f, np.array([[-2], [70000], [3]], dtype='<i4')) */
static const char np_i32_3x1[] =
    "\x93\x4e\x55\x4d\x50\x59\x01\x00\x76\x00"
    "{'descr': '<i4', 'fortran_order': False, 'shape': (3, 1), }"
    "                                                          \n"
    "\xfe\xff\xff\xff\x70\x11\x01\x00\x03\x00\x00\x00";

/* np.save(f, np.array(3.25)) */
static const char np_f64_0d[] =
    "\x93\x4e\x55\x4d\x50\x59\x01\x00\x76\x00"
    "{'descr': '<f8', 'fortran_order': False, 'shape': (), }"
    "                                                              \n"
    "\x00\x00\x00\x00\x00\x00\x0a\x40";

/* np.save(f, np.zeros((0, 3), dtype='<f4')) */
static const char np_f32_empty[] =
    "\x93\x4e\x55\x4d\x50\x59\x01\x00\x76\x00"
    "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 3), }"
    "                                                          \n";

struct golden {
    const char *name;
    const char *img;
    size_t len;
    nnm_dtype dt;
    int ndim;
    int64_t shape[NNM_MAX_DIMS];
    int by_np_save;        /* version 1.0 as np.save writes it: our encoder must match */
};

#define G(img) #img, img, sizeof img - 1
static const struct golden goldens[] = {
    {G(np_f32_2x3), NNM_DT_F32, 2, {2, 3}, 1},
    {G(np_i64_4), NNM_DT_I64, 1, {4}, 1},
    {G(np_bool_0d), NNM_DT_BOOL, 0, {0}, 1},
    {G(np_f16_1x2x1x2), NNM_DT_F16, 4, {1, 2, 1, 2}, 1},
    {G(np_u8_v2), NNM_DT_U8, 2, {2, 2}, 0},
    {G(np_i8_v3), NNM_DT_I8, 1, {3}, 0},
    {G(np_i32_3x1), NNM_DT_I32, 2, {3, 1}, 1},
    {G(np_f64_0d), NNM_DT_F64, 0, {0}, 1},
    {G(np_f32_empty), NNM_DT_F32, 2, {0, 3}, 1},
};
#define N_GOLDEN (sizeof goldens / sizeof goldens[0])

/* Directory for files the test writes; removed at the end. */
static char tmpdir[64];

/* Builds an image from a preamble version, header text (used verbatim, then '\n') and
 * data_len bytes of data (0x5a). Caller frees. */
static uint8_t *img_new(size_t *len, int major, const char *hdr, size_t data_len)
{
    size_t pre = major == 1 ? 10 : 12, hl = strlen(hdr) + 1;
    uint8_t *p = malloc(pre + hl + data_len + 1);
    assert_non_null(p);
    memcpy(p, "\x93NUMPY", 6);
    p[6] = (uint8_t)major;
    p[7] = 0;
    p[8] = (uint8_t)(hl & 0xff);
    p[9] = (uint8_t)(hl >> 8);
    if (major != 1) p[10] = p[11] = 0;
    memcpy(p + pre, hdr, hl - 1);
    p[pre + hl - 1] = '\n';
    memset(p + pre + hl, 0x5a, data_len);
    *len = pre + hl + data_len;
    return p;
}

/* Decodes an image expected to fail; checks the code and that the message holds frag. */
static void expect_fail(const void *img, size_t len, nnm_err want, const char *frag)
{
    nnm_tensor t;
    nnm_diag d;
    nnm_diag_clear(&d);
    memset(&t, 0xee, sizeof t);
    nnm_err rc = nnm_npy_decode(&t, img, len, &d);
    if (rc != want || strstr(d.msg, frag) == NULL)
        print_error("got %s '%s', want %s containing '%s'\n", nnm_strerror(rc), d.msg,
                    nnm_strerror(want), frag);
    assert_int_equal(rc, want);
    assert_int_equal(d.code, want);
    assert_non_null(strstr(d.msg, frag));
    assert_null(t.data);            /* *out is zeroed on error */
    assert_int_equal(t.ndim, 0);
}

static void expect_hdr_fail(int major, const char *hdr, size_t data_len, nnm_err want,
                            const char *frag)
{
    size_t len;
    uint8_t *img = img_new(&len, major, hdr, data_len);
    expect_fail(img, len, want, frag);
    free(img);
}

static void expect_hdr_ok(const char *hdr, size_t data_len, nnm_dtype dt, int ndim,
                          const int64_t *shape)
{
    size_t len;
    uint8_t *img = img_new(&len, 1, hdr, data_len);
    nnm_tensor t;
    nnm_diag d;
    nnm_diag_clear(&d);
    nnm_err rc = nnm_npy_decode(&t, img, len, &d);
    if (rc != NNM_OK) print_error("header %s: %s\n", hdr, d.msg);
    assert_int_equal(rc, NNM_OK);
    assert_int_equal(t.dtype, dt);
    assert_int_equal(t.ndim, ndim);
    for (int i = 0; i < ndim; i++) assert_int_equal(t.shape[i], shape[i]);
    assert_int_equal(t.nbytes, data_len);
    nnm_tensor_cleanup(&t);
    free(img);
}

static void test_npy_numpy_goldens_decode_exactly(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_GOLDEN; i++) {
        const struct golden *g = &goldens[i];
        nnm_tensor t;
        nnm_diag d;
        nnm_diag_clear(&d);
        nnm_err rc = nnm_npy_decode(&t, g->img, g->len, &d);
        if (rc != NNM_OK) print_error("%s: %s\n", g->name, d.msg);
        assert_int_equal(rc, NNM_OK);
        assert_int_equal(t.dtype, g->dt);
        assert_int_equal(t.ndim, g->ndim);
        for (int k = 0; k < g->ndim; k++) assert_int_equal(t.shape[k], g->shape[k]);
        assert_true(t.owned);
        assert_true(t.nbytes <= g->len);
        assert_memory_equal(t.data, g->img + g->len - t.nbytes, t.nbytes);
        nnm_tensor_cleanup(&t);
    }
}

static void test_npy_numpy_goldens_values_are_right(void **state)
{
    (void)state;
    nnm_tensor t;
    assert_int_equal(nnm_npy_decode(&t, np_f32_2x3, sizeof np_f32_2x3 - 1, NULL), NNM_OK);
    for (int i = 0; i < 6; i++) assert_true(((float *)t.data)[i] == (float)i);
    nnm_tensor_cleanup(&t);
    assert_int_equal(nnm_npy_decode(&t, np_i64_4, sizeof np_i64_4 - 1, NULL), NNM_OK);
    assert_int_equal(((int64_t *)t.data)[0], -1);
    assert_int_equal(((int64_t *)t.data)[3], (int64_t)1 << 40);
    nnm_tensor_cleanup(&t);
    assert_int_equal(nnm_npy_decode(&t, np_f64_0d, sizeof np_f64_0d - 1, NULL), NNM_OK);
    assert_int_equal(t.nbytes, 8);
    assert_true(((double *)t.data)[0] == 3.25);
    nnm_tensor_cleanup(&t);
    assert_int_equal(nnm_npy_decode(&t, np_i8_v3, sizeof np_i8_v3 - 1, NULL), NNM_OK);
    assert_int_equal(((int8_t *)t.data)[0], -128);
    nnm_tensor_cleanup(&t);
}

static void test_npy_encoder_output_equals_numpy_bytes(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_GOLDEN; i++) {
        const struct golden *g = &goldens[i];
        if (!g->by_np_save) continue;
        nnm_tensor t;
        assert_int_equal(nnm_npy_decode(&t, g->img, g->len, NULL), NNM_OK);
        void *buf = NULL;
        size_t len = 0;
        assert_int_equal(nnm_npy_encode(&buf, &len, &t, NULL), NNM_OK);
        if (len != g->len) print_error("%s: %zu bytes, numpy wrote %zu\n", g->name, len,
                                       g->len);
        assert_int_equal(len, g->len);
        assert_memory_equal(buf, g->img, len);
        assert_int_equal(len % 64, t.nbytes % 64);   /* header padded to 64 */
        free(buf);
        nnm_tensor_cleanup(&t);
    }
}

/* Fills a tensor with a byte pattern so a round trip shows any misplaced byte. */
static void make_tensor(nnm_tensor *t, nnm_dtype dt, int ndim, const int64_t *shape)
{
    assert_int_equal(nnm_tensor_init(t, dt, ndim, shape), NNM_OK);
    for (size_t i = 0; i < t->nbytes; i++)
        ((uint8_t *)t->data)[i] = (uint8_t)(dt == NNM_DT_BOOL ? i & 1 : i * 7 + 3);
}

static void assert_same_tensor(const nnm_tensor *a, const nnm_tensor *b)
{
    assert_int_equal(a->dtype, b->dtype);
    assert_int_equal(a->ndim, b->ndim);
    for (int i = 0; i < a->ndim; i++) assert_int_equal(a->shape[i], b->shape[i]);
    assert_int_equal(a->nbytes, b->nbytes);
    if (a->nbytes) assert_memory_equal(a->data, b->data, a->nbytes);
}

static void test_npy_every_dtype_and_rank_round_trips(void **state)
{
    (void)state;
    static const int64_t shapes[][4] = {{0}, {5}, {2, 3, 1, 4}, {1, 0, 3, 2}};
    static const int ranks[] = {0, 1, 4, 4};
    for (int dt = NNM_DT_F32; dt < NNM_DT__COUNT; dt++) {
        for (size_t s = 0; s < sizeof ranks / sizeof ranks[0]; s++) {
            nnm_tensor t, u;
            make_tensor(&t, (nnm_dtype)dt, ranks[s], shapes[s]);
            void *buf;
            size_t len;
            assert_int_equal(nnm_npy_encode(&buf, &len, &t, NULL), NNM_OK);
            assert_int_equal(len % 64, t.nbytes % 64);
            nnm_diag d;
            nnm_diag_clear(&d);
            nnm_err rc = nnm_npy_decode(&u, buf, len, &d);
            if (rc != NNM_OK) print_error("%s: %s\n", nnm_dtype_name(dt), d.msg);
            assert_int_equal(rc, NNM_OK);
            assert_same_tensor(&t, &u);

            /* And through a file. */
            char path[128];
            snprintf(path, sizeof path, "%s/rt_%d_%zu.npy", tmpdir, dt, s);
            nnm_tensor_cleanup(&u);
            assert_int_equal(nnm_npy_save(path, &t, NULL), NNM_OK);
            assert_int_equal(nnm_npy_load(&u, path, NULL), NNM_OK);
            assert_same_tensor(&t, &u);
            nnm_tensor_cleanup(&u);
            nnm_tensor_cleanup(&t);
            free(buf);
        }
    }
}

static void test_npy_save_is_0644_and_leaves_no_temp(void **state)
{
    (void)state;
    char path[128], tmp[140];
    snprintf(path, sizeof path, "%s/mode.npy", tmpdir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    nnm_tensor t;
    int64_t shape[2] = {2, 3};
    make_tensor(&t, NNM_DT_F32, 2, shape);
    mode_t old = umask(022);
    assert_int_equal(nnm_npy_save(path, &t, NULL), NNM_OK);
    /* Replacing an existing file works too and keeps the new content. */
    ((float *)t.data)[0] = 42.0f;
    assert_int_equal(nnm_npy_save(path, &t, NULL), NNM_OK);
    umask(old);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);
    assert_int_equal(stat(tmp, &st), -1);
    nnm_tensor u;
    assert_int_equal(nnm_npy_load(&u, path, NULL), NNM_OK);
    assert_true(((float *)u.data)[0] == 42.0f);
    nnm_tensor_cleanup(&u);
    nnm_tensor_cleanup(&t);
}

static void test_npy_save_to_missing_dir_names_path(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof path, "%s/no/such/dir/x.npy", tmpdir);
    nnm_tensor t;
    int64_t shape[1] = {3};
    make_tensor(&t, NNM_DT_U8, 1, shape);
    nnm_diag d;
    assert_int_equal(nnm_npy_save(path, &t, &d), NNM_EIO);
    assert_non_null(strstr(d.msg, path));
    assert_non_null(strstr(d.msg, strerror(ENOENT)));
    nnm_tensor_cleanup(&t);
}

static void test_npy_header_variants_numpy_accepts_decode(void **state)
{
    (void)state;
    const int64_t s23[] = {2, 3}, s3[] = {3};
    /* Keys in any order, no trailing comma, no spaces, tuple trailing comma. */
    expect_hdr_ok("{'shape': (2, 3), 'fortran_order': False, 'descr': '<f4'}", 24,
                  NNM_DT_F32, 2, s23);
    expect_hdr_ok("{'descr':'<f4','fortran_order':False,'shape':(2,3)}", 24, NNM_DT_F32, 2,
                  s23);
    expect_hdr_ok("{ 'descr' : '<i4' , 'fortran_order' : False , 'shape' : ( 2 , 3 , ) , }   ",
                  24, NNM_DT_I32, 2, s23);
    /* Double quotes are Python too. */
    expect_hdr_ok("{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (3,)}", 12,
                  NNM_DT_F32, 1, s3);
    /* Byte-order variants: '<u1', '>u1' and '|i1' are all fine for one-byte types;
     * '|', '=' and no prefix mean native, which is little-endian here. */
    expect_hdr_ok("{'descr': '<u1', 'fortran_order': False, 'shape': (3,), }", 3, NNM_DT_U8,
                  1, s3);
    expect_hdr_ok("{'descr': '>u1', 'fortran_order': False, 'shape': (3,), }", 3, NNM_DT_U8,
                  1, s3);
    expect_hdr_ok("{'descr': '<i1', 'fortran_order': False, 'shape': (3,), }", 3, NNM_DT_I8,
                  1, s3);
    expect_hdr_ok("{'descr': '<b1', 'fortran_order': False, 'shape': (3,), }", 3,
                  NNM_DT_BOOL, 1, s3);
    expect_hdr_ok("{'descr': '=f8', 'fortran_order': False, 'shape': (3,), }", 24,
                  NNM_DT_F64, 1, s3);
    expect_hdr_ok("{'descr': 'f2', 'fortran_order': False, 'shape': (3,), }", 6, NNM_DT_F16,
                  1, s3);
    /* Old numpy padded to 16 bytes and wrote no growth padding. */
    expect_hdr_ok("{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }    ", 24,
                  NNM_DT_I64, 1, s3);
}

static void test_npy_bad_magic_is_eformat(void **state)
{
    (void)state;
    char img[sizeof np_f32_2x3];
    memcpy(img, np_f32_2x3, sizeof img);
    img[1] = 'X';
    expect_fail(img, sizeof img - 1, NNM_EFORMAT, "bad magic");
    expect_fail("PK\x03\x04 a zip file, not npy", 26, NNM_EFORMAT, "not a .npy file");
}

static void test_npy_empty_input_is_eformat(void **state)
{
    (void)state;
    expect_fail("", 0, NNM_EFORMAT, "empty");
    expect_fail(NULL, 0, NNM_EFORMAT, "empty");
}

static void test_npy_truncated_header_is_eformat(void **state)
{
    (void)state;
    expect_fail(np_f32_2x3, 4, NNM_EFORMAT, "truncated .npy header");
    expect_fail(np_f32_2x3, 9, NNM_EFORMAT, "truncated .npy header");
    expect_fail(np_u8_v2, 11, NNM_EFORMAT, "truncated .npy header");
    expect_fail(np_f32_2x3, 50, NNM_EFORMAT, "goes beyond the end");
}

static void test_npy_header_length_beyond_file_is_eformat(void **state)
{
    (void)state;
    char img[sizeof np_f32_2x3];
    memcpy(img, np_f32_2x3, sizeof img);
    img[8] = (char)0xff;
    img[9] = 0x7f;
    expect_fail(img, sizeof img - 1, NNM_EFORMAT, "header length 32767 goes beyond the end");
    /* Version 2.0 with a 4 GB header length: refused before any allocation. */
    char v2[sizeof np_u8_v2];
    memcpy(v2, np_u8_v2, sizeof v2);
    v2[8] = v2[9] = v2[10] = v2[11] = (char)0xff;
    expect_fail(v2, sizeof v2 - 1, NNM_EFORMAT, "exceeds the limit");
}

static void test_npy_bad_version_is_eunsupported(void **state)
{
    (void)state;
    char img[sizeof np_f32_2x3];
    memcpy(img, np_f32_2x3, sizeof img);
    img[6] = 4;
    expect_fail(img, sizeof img - 1, NNM_EUNSUPPORTED, "version 4.0");
    img[6] = 1;
    img[7] = 1;
    expect_fail(img, sizeof img - 1, NNM_EUNSUPPORTED, "version 1.1");
}

static void test_npy_missing_or_extra_key_is_eformat(void **state)
{
    (void)state;
    expect_hdr_fail(1, "{'descr': '<f4', 'shape': (2,), }", 8, NNM_EFORMAT,
                    "missing key 'fortran_order'");
    expect_hdr_fail(1, "{'descr': '<f4', 'fortran_order': False, }", 4, NNM_EFORMAT,
                    "missing key 'shape'");
    expect_hdr_fail(1, "{'fortran_order': False, 'shape': (2,), }", 8, NNM_EFORMAT,
                    "missing key 'descr'");
    expect_hdr_fail(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1, }",
                    8, NNM_EFORMAT, "unexpected key 'x'");
    expect_hdr_fail(1, "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, "
                    "'shape': (2,), }", 8, NNM_EFORMAT, "key 'descr' appears twice");
}

static void test_npy_malformed_header_is_eformat(void **state)
{
    (void)state;
    expect_hdr_fail(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2), }", 8,
                    NNM_EFORMAT, "not a tuple");
    expect_hdr_fail(1, "{'descr': '<f4', 'fortran_order': false, 'shape': (2,), }", 8,
                    NNM_EFORMAT, "True or False");
    expect_hdr_fail(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), } x", 8,
                    NNM_EFORMAT, "after the dict");
    expect_hdr_fail(1, "{'descr': '<f4' 'fortran_order': False, 'shape': (2,), }", 8,
                    NNM_EFORMAT, "expected ',' or '}'");
    expect_hdr_fail(1, "{'descr': '<f4", 8, NNM_EFORMAT, "unterminated descr");
    expect_hdr_fail(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2 3), }", 8,
                    NNM_EFORMAT, "expected ',' or ')'");
    expect_hdr_fail(1, "['descr', '<f4']", 8, NNM_EFORMAT, "expected '{'");
    /* The header must end in '\n' (img_new adds one; overwrite it). */
    size_t len;
    uint8_t *img = img_new(&len, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': "
                           "(2,), }", 8);
    img[len - 9] = ' ';
    expect_fail(img, len, NNM_EFORMAT, "newline");
    free(img);
}

static void test_npy_fortran_order_is_eunsupported(void **state)
{
    (void)state;
    expect_hdr_fail(1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", 24,
                    NNM_EUNSUPPORTED, "Fortran");
}

static void test_npy_big_endian_is_eunsupported(void **state)
{
    (void)state;
    expect_hdr_fail(1, "{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", 8,
                    NNM_EUNSUPPORTED, "big-endian");
    expect_hdr_fail(1, "{'descr': '>i8', 'fortran_order': False, 'shape': (2,), }", 16,
                    NNM_EUNSUPPORTED, "big-endian");
}

static void test_npy_unknown_descr_is_eunsupported(void **state)
{
    (void)state;
    expect_hdr_fail(1, "{'descr': '<c8', 'fortran_order': False, 'shape': (2,), }", 16,
                    NNM_EUNSUPPORTED, "'<c8' is not supported");
    expect_hdr_fail(1, "{'descr': '<U3', 'fortran_order': False, 'shape': (2,), }", 24,
                    NNM_EUNSUPPORTED, "'<U3'");
    expect_hdr_fail(1, "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }",
                    8, NNM_EUNSUPPORTED, "structured");
}

static void test_npy_nine_dims_is_erange(void **state)
{
    (void)state;
    expect_hdr_fail(1, "{'descr': '|u1', 'fortran_order': False, "
                    "'shape': (1, 1, 1, 1, 1, 1, 1, 1, 1), }", 1, NNM_ERANGE,
                    "more than 8 dimensions");
    const int64_t s8[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    expect_hdr_ok("{'descr': '|u1', 'fortran_order': False, "
                  "'shape': (1, 1, 1, 1, 1, 1, 1, 1), }", 1, NNM_DT_U8, 8, s8);
}

static void test_npy_negative_dim_is_eformat(void **state)
{
    (void)state;
    expect_hdr_fail(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, -3), }", 24,
                    NNM_EFORMAT, "negative dimension -3");
}

static void test_npy_shape_overflow_is_erange(void **state)
{
    (void)state;
    /* (2**40, 2**40): the product overflows int64; must fail before allocating. */
    expect_hdr_fail(1, "{'descr': '<f4', 'fortran_order': False, "
                    "'shape': (1099511627776, 1099511627776), }", 0, NNM_ERANGE,
                    "too large");
    /* (2**61,) float64: numel fits int64 but the bytes do not fit size_t. */
    expect_hdr_fail(1, "{'descr': '<f8', 'fortran_order': False, "
                    "'shape': (2305843009213693952,), }", 0, NNM_ERANGE, "too large");
    expect_hdr_fail(1, "{'descr': '<f4', 'fortran_order': False, "
                    "'shape': (99999999999999999999,), }", 0, NNM_ERANGE, "64 bits");
    /* A huge shape with a zero is an empty array, not an error. */
    const int64_t s[2] = {0, 1099511627776};
    expect_hdr_ok("{'descr': '<f4', 'fortran_order': False, "
                  "'shape': (0, 1099511627776), }", 0, NNM_DT_F32, 2, s);
}

static void test_npy_truncated_data_is_eformat(void **state)
{
    (void)state;
    expect_fail(np_f32_2x3, sizeof np_f32_2x3 - 2, NNM_EFORMAT,
                "truncated: expected 24 bytes of data, found 23");
    expect_hdr_fail(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (), }", 0,
                    NNM_EFORMAT, "truncated: expected 8 bytes of data, found 0");
}

static void test_npy_trailing_data_is_eformat(void **state)
{
    (void)state;
    char img[sizeof np_f32_2x3 + 3];
    memcpy(img, np_f32_2x3, sizeof np_f32_2x3);
    expect_fail(img, sizeof np_f32_2x3 + 2, NNM_EFORMAT, "3 trailing bytes after the data");
}

static void test_npy_load_missing_file_names_path_and_errno(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof path, "%s/does-not-exist.npy", tmpdir);
    nnm_tensor t;
    nnm_diag d;
    assert_int_equal(nnm_npy_load(&t, path, &d), NNM_EIO);
    assert_int_equal(strncmp(d.msg, path, strlen(path)), 0);
    assert_non_null(strstr(d.msg, strerror(ENOENT)));
    assert_null(t.data);
    assert_int_equal(nnm_npy_load(&t, tmpdir, &d), NNM_EIO);
    assert_non_null(strstr(d.msg, "directory"));
}

static void write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

static void test_npy_load_bad_files_prefix_path(void **state)
{
    (void)state;
    static const struct {
        size_t cut;          /* bytes of np_f32_2x3 to keep; 0 means empty */
        int extra;           /* bytes to append */
        const char *frag;
    } cases[] = {
        {0, 0, "empty"},
        {5, 0, "truncated .npy header"},
        {11, 0, "truncated .npy header"},
        {100, 0, "goes beyond the end"},
        {sizeof np_f32_2x3 - 5, 0, "truncated: expected 24 bytes of data, found 20"},
        {sizeof np_f32_2x3 - 1, 7, "7 trailing bytes"},
    };
    char path[128];
    snprintf(path, sizeof path, "%s/bad.npy", tmpdir);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t buf[sizeof np_f32_2x3 + 16] = {0};
        memcpy(buf, np_f32_2x3, sizeof np_f32_2x3 - 1);
        write_file(path, buf, cases[i].cut + (size_t)cases[i].extra);
        nnm_tensor t;
        nnm_diag d;
        nnm_diag_clear(&d);
        assert_int_equal(nnm_npy_load(&t, path, &d), NNM_EFORMAT);
        if (strstr(d.msg, cases[i].frag) == NULL) print_error("%s\n", d.msg);
        assert_int_equal(strncmp(d.msg, path, strlen(path)), 0);
        assert_non_null(strstr(d.msg, cases[i].frag));
        assert_null(t.data);
    }
    /* A bad header through a file reads the same as from memory. */
    write_file(path, "\x93NUMPY\x01\x00\x10\x00{'descr': 1}   \n", 26);
    nnm_tensor t;
    nnm_diag d;
    assert_int_equal(nnm_npy_load(&t, path, &d), NNM_EFORMAT);
    assert_non_null(strstr(d.msg, "quoted descr"));
}

static void test_npy_load_from_pipe_works(void **state)
{
    (void)state;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    size_t n = sizeof np_i64_4 - 1;
    assert_int_equal(write(fds[1], np_i64_4, n), (ssize_t)n);
    close(fds[1]);
    char path[64];
    snprintf(path, sizeof path, "/dev/fd/%d", fds[0]);
    nnm_tensor t;
    nnm_diag d;
    nnm_diag_clear(&d);
    nnm_err rc = nnm_npy_load(&t, path, &d);
    if (rc != NNM_OK) print_error("%s\n", d.msg);
    assert_int_equal(rc, NNM_OK);
    assert_int_equal(d.code, NNM_OK);          /* success leaves the diagnostic alone */
    assert_string_equal(d.msg, "");
    assert_int_equal(t.dtype, NNM_DT_I64);
    assert_int_equal(t.shape[0], 4);
    nnm_tensor_cleanup(&t);
    close(fds[0]);
}

static void test_npy_encode_bad_tensor_is_einval(void **state)
{
    (void)state;
    nnm_tensor t;
    int64_t shape[1] = {4};
    make_tensor(&t, NNM_DT_F32, 1, shape);
    void *buf = (void *)1;
    size_t len = 1;
    nnm_diag d;
    t.nbytes = 15;
    assert_int_equal(nnm_npy_encode(&buf, &len, &t, &d), NNM_EINVAL);
    assert_null(buf);
    assert_int_equal(len, 0);
    assert_non_null(strstr(d.msg, "nbytes 15"));
    t.nbytes = 16;
    t.dtype = NNM_DT_UNDEFINED;
    assert_int_equal(nnm_npy_encode(&buf, &len, &t, &d), NNM_EINVAL);
    t.dtype = NNM_DT_F32;
    t.ndim = 9;
    assert_int_equal(nnm_npy_encode(&buf, &len, &t, &d), NNM_EINVAL);
    t.ndim = 1;
    t.shape[0] = -4;
    assert_int_equal(nnm_npy_encode(&buf, &len, &t, &d), NNM_ERANGE);
    t.shape[0] = 4;
    assert_int_equal(nnm_npy_encode(&buf, &len, NULL, &d), NNM_EINVAL);
    assert_int_equal(nnm_npy_encode(&buf, &len, &t, &d), NNM_OK);
    free(buf);
    nnm_tensor_cleanup(&t);
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_npy.XXXXXX");
    return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_npy_numpy_goldens_decode_exactly),
        cmocka_unit_test(test_npy_numpy_goldens_values_are_right),
        cmocka_unit_test(test_npy_encoder_output_equals_numpy_bytes),
        cmocka_unit_test(test_npy_every_dtype_and_rank_round_trips),
        cmocka_unit_test(test_npy_save_is_0644_and_leaves_no_temp),
        cmocka_unit_test(test_npy_save_to_missing_dir_names_path),
        cmocka_unit_test(test_npy_header_variants_numpy_accepts_decode),
        cmocka_unit_test(test_npy_bad_magic_is_eformat),
        cmocka_unit_test(test_npy_empty_input_is_eformat),
        cmocka_unit_test(test_npy_truncated_header_is_eformat),
        cmocka_unit_test(test_npy_header_length_beyond_file_is_eformat),
        cmocka_unit_test(test_npy_bad_version_is_eunsupported),
        cmocka_unit_test(test_npy_missing_or_extra_key_is_eformat),
        cmocka_unit_test(test_npy_malformed_header_is_eformat),
        cmocka_unit_test(test_npy_fortran_order_is_eunsupported),
        cmocka_unit_test(test_npy_big_endian_is_eunsupported),
        cmocka_unit_test(test_npy_unknown_descr_is_eunsupported),
        cmocka_unit_test(test_npy_nine_dims_is_erange),
        cmocka_unit_test(test_npy_negative_dim_is_eformat),
        cmocka_unit_test(test_npy_shape_overflow_is_erange),
        cmocka_unit_test(test_npy_truncated_data_is_eformat),
        cmocka_unit_test(test_npy_trailing_data_is_eformat),
        cmocka_unit_test(test_npy_load_missing_file_names_path_and_errno),
        cmocka_unit_test(test_npy_load_bad_files_prefix_path),
        cmocka_unit_test(test_npy_load_from_pipe_works),
        cmocka_unit_test(test_npy_encode_bad_tensor_is_einval),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
