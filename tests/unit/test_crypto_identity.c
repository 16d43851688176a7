/* tests/unit/test_crypto_identity.c — identities and key files: round trip, mode 0600 on
 * save, refusal to overwrite, refusal of key files others can read or write (with the chmod
 * advice), malformed and damaged key files, and public key decoding. */
#include "test_crypto_util.h"
#include "kat.h"

static int setup(void **st)
{
    (void)st;
    tdir_make();
    return 0;
}

static int teardown(void **st)
{
    (void)st;
    tdir_remove();
    return 0;
}

static void test_identity_save_then_load_gives_same_key(void **st)
{
    (void)st;
    char path[300];
    tpath(path, sizeof path, "node.key");
    nnm_identity *a = NULL, *b = NULL;
    assert_int_equal(nnm_identity_new(&a, NULL), NNM_OK);
    assert_int_equal(nnm_identity_save(a, path, NULL), NNM_OK);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_int_equal(nnm_identity_load(&b, path, NULL), NNM_OK);
    assert_memory_equal(nnm_identity_get_pubkey(a), nnm_identity_get_pubkey(b), 32);
    /* the loaded secret signs like the original */
    uint8_t s1[64], s2[64];
    crypto__identity_sign(s1, a, (const uint8_t *)"x", 1);
    crypto__identity_sign(s2, b, (const uint8_t *)"x", 1);
    assert_memory_equal(s1, s2, 64);
    nnm_identity_free(a);
    nnm_identity_free(b);
}

static void test_identity_save_fixed_seed_writes_exact_text(void **st)
{
    (void)st;
    char path[300], want[200], got[200] = {0};
    tpath(path, sizeof path, "kat.key");
    nnm_identity *a = ident_seed(KAT_SEED_A);
    assert_int_equal(nnm_identity_save(a, path, NULL), NNM_OK);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(got, 1, sizeof got - 1, f);
    fclose(f);
    snprintf(want, sizeof want, "nnmesh-key v1\nsecret %s\npublic %s\n", KAT_SEED_A_B64, KAT_PK_A_B64);
    assert_int_equal(n, strlen(want));
    assert_string_equal(got, want);
    nnm_identity_free(a);
}

static void test_identity_save_existing_path_refuses_overwrite(void **st)
{
    (void)st;
    char path[300];
    tpath(path, sizeof path, "exists.key");
    write_file(path, "precious\n", 0600);
    nnm_identity *a = ident_byte(1);
    nnm_diag d = {NNM_OK, ""};
    assert_int_equal(nnm_identity_save(a, path, &d), NNM_EIO);
    assert_non_null(strstr(d.msg, "refusing to overwrite"));
    FILE *f = fopen(path, "r");
    char buf[32] = {0};
    assert_non_null(fgets(buf, sizeof buf, f));
    fclose(f);
    assert_string_equal(buf, "precious\n");
    nnm_identity_free(a);
}

static void test_identity_load_mode_0644_refused_with_chmod_advice(void **st)
{
    (void)st;
    char path[300], want[700];
    tpath(path, sizeof path, "open.key");
    nnm_identity *a = ident_byte(2), *b = NULL;
    assert_int_equal(nnm_identity_save(a, path, NULL), NNM_OK);
    assert_int_equal(chmod(path, 0644), 0);
    nnm_diag d = {NNM_OK, ""};
    assert_int_equal(nnm_identity_load(&b, path, &d), NNM_ETRUST);
    assert_null(b);
    snprintf(want, sizeof want, "%s: key file is readable by others (mode 0644); run chmod 600 %s",
             path, path);
    assert_string_equal(d.msg, want);
    assert_int_equal(chmod(path, 0620), 0);
    assert_int_equal(nnm_identity_load(&b, path, &d), NNM_ETRUST);
    assert_non_null(strstr(d.msg, "writable by others (mode 0620)"));
    assert_int_equal(chmod(path, 0400), 0);
    assert_int_equal(nnm_identity_load(&b, path, NULL), NNM_OK);
    nnm_identity_free(a);
    nnm_identity_free(b);
}

static void expect_load(const char *name, const char *text, nnm_err want, const char *needle)
{
    char path[300];
    tpath(path, sizeof path, name);
    write_file(path, text, 0600);
    nnm_identity *b = (nnm_identity *)1;
    nnm_diag d = {NNM_OK, ""};
    assert_int_equal(nnm_identity_load(&b, path, &d), want);
    assert_null(b);
    if (strstr(d.msg, needle) == NULL) fail_msg("'%s' not in '%s'", needle, d.msg);
    assert_non_null(strstr(d.msg, path));
}

static void test_identity_load_malformed_files_refused(void **st)
{
    (void)st;
    char good_pub[100], text[400];
    snprintf(good_pub, sizeof good_pub, "public %s\n", KAT_PK_A_B64);
    expect_load("empty.key", "", NNM_EFORMAT, "not an nnmesh key file");
    expect_load("magic.key", "ssh-ed25519 AAAA\n", NNM_EFORMAT, "not an nnmesh key file");
    expect_load("v2.key", "nnmesh-key v2\n", NNM_EUNSUPPORTED, "'v2' is not supported");
    expect_load("nosecret.key", "nnmesh-key v1\n", NNM_EFORMAT, "line 2");
    snprintf(text, sizeof text, "nnmesh-key v1\nsecret %.42s!\n%s", KAT_SEED_A_B64, good_pub);
    expect_load("badb64.key", text, NNM_EFORMAT, "line 2");
    snprintf(text, sizeof text, "nnmesh-key v1\nsecret %.40s\n%s", KAT_SEED_A_B64, good_pub);
    expect_load("short.key", text, NNM_EFORMAT, "line 2");
    snprintf(text, sizeof text, "nnmesh-key v1\nsecret %s\n", KAT_SEED_A_B64);
    expect_load("nopub.key", text, NNM_EFORMAT, "line 3");
    /* a public key that is not the secret's: damaged or spliced */
    snprintf(text, sizeof text, "nnmesh-key v1\nsecret %s\npublic %s\n", KAT_SEED_A_B64, KAT_PK_C_B64);
    expect_load("mismatch.key", text, NNM_EFORMAT, "does not match");
    snprintf(text, sizeof text, "nnmesh-key v1\nsecret %s\n%sextra\n", KAT_SEED_A_B64, good_pub);
    expect_load("trailing.key", text, NNM_EFORMAT, "after line 3");
}

static void test_identity_load_crlf_and_missing_newline_accepted(void **st)
{
    (void)st;
    char path[300], text[400];
    tpath(path, sizeof path, "crlf.key");
    snprintf(text, sizeof text, "nnmesh-key v1\r\nsecret %s\r\npublic %s", KAT_SEED_A_B64, KAT_PK_A_B64);
    write_file(path, text, 0600);
    nnm_identity *b = NULL;
    assert_int_equal(nnm_identity_load(&b, path, NULL), NNM_OK);
    assert_memory_equal(nnm_identity_get_pubkey(b), KAT_PK_A, 32);
    nnm_identity_free(b);
}

static void test_identity_load_missing_or_directory_refused(void **st)
{
    (void)st;
    char path[300];
    nnm_identity *b = NULL;
    nnm_diag d = {NNM_OK, ""};
    assert_int_equal(nnm_identity_load(&b, tpath(path, sizeof path, "none.key"), &d), NNM_EIO);
    assert_non_null(strstr(d.msg, "No such file"));
    assert_int_equal(mkdir(tpath(path, sizeof path, "dir.key"), 0700), 0);
    assert_int_equal(nnm_identity_load(&b, path, &d), NNM_EFORMAT);
    assert_non_null(strstr(d.msg, "not a regular file"));
}

static void test_pubkey_decode_zero_and_low_order_refused(void **st)
{
    (void)st;
    uint8_t pk[32];
    char b64[NNM_PUBKEY_B64_SIZE];
    nnm_diag d = {NNM_OK, ""};
    memset(pk, 0, sizeof pk);
    nnm_pubkey_encode(b64, pk);
    assert_int_equal(nnm_pubkey_decode(pk, b64, &d), NNM_ETRUST);
    assert_non_null(strstr(d.msg, "low-order"));
    /* the identity point (y = 1) has order 1 */
    memset(pk, 0, sizeof pk);
    pk[0] = 1;
    nnm_pubkey_encode(b64, pk);
    assert_int_equal(nnm_pubkey_decode(pk, b64, NULL), NNM_ETRUST);
    /* y = -1 (order 2) */
    static const uint8_t order2[32] = {0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                       0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                       0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                       0xff, 0x7f};
    nnm_pubkey_encode(b64, order2);
    assert_int_equal(nnm_pubkey_decode(pk, b64, NULL), NNM_ETRUST);
    assert_int_equal(nnm_pubkey_decode(pk, "not base64!", NULL), NNM_EFORMAT);
    assert_int_equal(nnm_pubkey_decode(pk, "", NULL), NNM_EFORMAT);
    char longer[64];
    snprintf(longer, sizeof longer, "%sA", KAT_PK_A_B64);
    assert_int_equal(nnm_pubkey_decode(pk, longer, NULL), NNM_EFORMAT);
}

static void test_id_is_valid_charset_and_length(void **st)
{
    (void)st;
    assert_true(nnm_id_is_valid("a"));
    assert_true(nnm_id_is_valid("node-7"));
    assert_true(nnm_id_is_valid("abcdefghijklmnopqrstuvwxyz012345"));  /* 32 */
    assert_false(nnm_id_is_valid("abcdefghijklmnopqrstuvwxyz0123456")); /* 33 */
    assert_false(nnm_id_is_valid(""));
    assert_false(nnm_id_is_valid(NULL));
    assert_false(nnm_id_is_valid("Alice"));
    assert_false(nnm_id_is_valid("a/b"));
    assert_false(nnm_id_is_valid("a+"));
    assert_false(nnm_id_is_valid("#"));
    assert_false(nnm_id_is_valid("$sys"));
    assert_false(nnm_id_is_valid("a b"));
}

static void test_identity_free_null_is_safe(void **st)
{
    (void)st;
    nnm_identity_free(NULL);
    nnm_trust_free(NULL);
    nnm_session_free(NULL);
    nnm_handshake_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_identity_save_then_load_gives_same_key),
        cmocka_unit_test(test_identity_save_fixed_seed_writes_exact_text),
        cmocka_unit_test(test_identity_save_existing_path_refuses_overwrite),
        cmocka_unit_test(test_identity_load_mode_0644_refused_with_chmod_advice),
        cmocka_unit_test(test_identity_load_malformed_files_refused),
        cmocka_unit_test(test_identity_load_crlf_and_missing_newline_accepted),
        cmocka_unit_test(test_identity_load_missing_or_directory_refused),
        cmocka_unit_test(test_pubkey_decode_zero_and_low_order_refused),
        cmocka_unit_test(test_id_is_valid_charset_and_length),
        cmocka_unit_test(test_identity_free_null_is_safe),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
