/* tests/unit/test_crypto_trust.c — the trust file (parsing errors with file and line, empty
 * and unreadable files, invalid keys) and admission decisions (listed, unknown, revoked,
 * id bound to another key, authority certificates valid, expired, early, foreign). */
#include "test_crypto_util.h"
#include "kat.h"

#define NOW 1750000000u

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

static void expect_decode(const char *text, nnm_err want, const char *msg)
{
    nnm_trust *t = (nnm_trust *)1;
    nnm_diag d = {NNM_OK, ""};
    assert_int_equal(nnm_trust_decode(&t, text, strlen(text), "trust.txt", &d), want);
    assert_null(t);
    if (strstr(d.msg, msg) == NULL) fail_msg("'%s' not in '%s'", msg, d.msg);
}

static void test_trust_decode_bad_lines_name_file_and_line(void **st)
{
    (void)st;
    char text[1024];
    snprintf(text, sizeof text, "# mesh\n\nnode alice %s\nfrobnicate x\n", KAT_PK_A_B64);
    expect_decode(text, NNM_EFORMAT, "trust.txt:4: unknown directive 'frobnicate'");
    snprintf(text, sizeof text, "node Alice %s\n", KAT_PK_A_B64);
    expect_decode(text, NNM_EFORMAT, "trust.txt:1: node id 'Alice' is invalid");
    snprintf(text, sizeof text, "node a/b %s\n", KAT_PK_A_B64);
    expect_decode(text, NNM_EFORMAT, "trust.txt:1: node id 'a/b' is invalid");
    expect_decode("\n\nnode alice\n", NNM_EFORMAT, "trust.txt:3: expected 'node <id> <pubkey>'");
    snprintf(text, sizeof text, "node alice %s extra\n", KAT_PK_A_B64);
    expect_decode(text, NNM_EFORMAT, "trust.txt:1: expected 'node <id> <pubkey>'");
    expect_decode("node alice notakey\n", NNM_EFORMAT, "trust.txt:1: public key is not 43");
    expect_decode("revoke\n", NNM_EFORMAT, "trust.txt:1: expected 'revoke <pubkey>'");
    snprintf(text, sizeof text, "node alice %s\nnode alice %s\n", KAT_PK_A_B64, KAT_PK_C_B64);
    expect_decode(text, NNM_EFORMAT, "trust.txt:2: node id 'alice' is already listed on line 1");
    snprintf(text, sizeof text, "node alice %s\nnode bob %s # same key\n", KAT_PK_A_B64, KAT_PK_A_B64);
    expect_decode(text, NNM_EFORMAT, "trust.txt:2: this key is already listed for 'alice' on line 1");
    snprintf(text, sizeof text, "authority ca %s\nnode bob %s\n", KAT_PK_A_B64, KAT_PK_A_B64);
    expect_decode(text, NNM_EFORMAT, "trust.txt:2: this key is already listed for 'ca'");
    snprintf(text, sizeof text, "node alice %s", KAT_PK_A_B64); /* + its NUL */
    nnm_trust *t = NULL;
    assert_int_equal(nnm_trust_decode(&t, text, strlen(text) + 1, "trust.txt", NULL), NNM_EFORMAT);
}

static void test_trust_decode_control_bytes_quoted_in_message(void **st)
{
    (void)st;
    expect_decode("\x1b[2Jevil\xff x\n", NNM_EFORMAT, "trust.txt:1: unknown directive '?[2Jevil?'");
    expect_decode("node \x07" "abcdefghijklmnopqrstuvwxyz0123456789abcdefghij k\n", NNM_EFORMAT,
                  "node id '?abcdefghijklmnopqrstuvwxyz012345678...' is invalid");
}

static void test_trust_decode_zero_or_low_order_key_refused(void **st)
{
    (void)st;
    expect_decode("node alice AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n", NNM_ETRUST,
                  "trust.txt:1: public key is not a valid Ed25519 key");
    char b64[NNM_PUBKEY_B64_SIZE], text[200];
    uint8_t one[32] = {1};
    nnm_pubkey_encode(b64, one);
    snprintf(text, sizeof text, "# x\nauthority ca %s\n", b64);
    expect_decode(text, NNM_ETRUST, "trust.txt:2: public key is not a valid Ed25519 key");
}

static void test_trust_decode_empty_or_comments_only_refused(void **st)
{
    (void)st;
    expect_decode("", NNM_EFORMAT, "admits no one");
    expect_decode("# nothing here\n\n   \n", NNM_EFORMAT, "admits no one");
    char text[200];
    snprintf(text, sizeof text, "revoke %s\n", KAT_PK_A_B64);
    expect_decode(text, NNM_EFORMAT, "admits no one");
}

static void test_trust_load_file_errors(void **st)
{
    (void)st;
    char path[300], text[200];
    nnm_trust *t = NULL;
    nnm_diag d = {NNM_OK, ""};
    assert_int_equal(nnm_trust_load(&t, tpath(path, sizeof path, "missing.txt"), &d), NNM_EIO);
    assert_non_null(strstr(d.msg, path));
    write_file(tpath(path, sizeof path, "empty.txt"), "", 0644);
    assert_int_equal(nnm_trust_load(&t, path, &d), NNM_EFORMAT);
    assert_non_null(strstr(d.msg, "empty"));
    snprintf(text, sizeof text, "node alice %s\nnode bob\n", KAT_PK_A_B64);
    write_file(tpath(path, sizeof path, "bad.txt"), text, 0644);
    assert_int_equal(nnm_trust_load(&t, path, &d), NNM_EFORMAT);
    char want[400];
    snprintf(want, sizeof want, "%s:2: expected", path);
    assert_non_null(strstr(d.msg, want));
    snprintf(text, sizeof text, "node alice %s\n", KAT_PK_A_B64);
    write_file(tpath(path, sizeof path, "ww.txt"), text, 0666);
    assert_int_equal(nnm_trust_load(&t, path, &d), NNM_ETRUST);
    assert_non_null(strstr(d.msg, "chmod o-w"));
    assert_int_equal(chmod(path, 0644), 0);
    assert_int_equal(nnm_trust_load(&t, path, &d), NNM_OK);
    assert_int_equal(nnm_trust_check(t, "alice", KAT_PK_A, NULL, 0, NOW, NULL), NNM_OK);
    nnm_trust_free(t);
}

static void test_trust_check_listed_unknown_and_rebound(void **st)
{
    (void)st;
    char text[300];
    snprintf(text, sizeof text, "node alice %s # A\n\tnode  carol\t%s\n", KAT_PK_A_B64, KAT_PK_C_B64);
    nnm_trust *t = trust_text(text);
    nnm_diag d = {NNM_OK, ""};
    assert_int_equal(nnm_trust_check(t, "alice", KAT_PK_A, NULL, 0, NOW, &d), NNM_OK);
    assert_int_equal(nnm_trust_check(t, "carol", KAT_PK_C, NULL, 0, NOW, &d), NNM_OK);
    /* unknown key, no certificate: the message says which line to add */
    assert_int_equal(nnm_trust_check(t, "dave", KAT_PK_B, NULL, 0, NOW, &d), NNM_ETRUST);
    char want[200];
    snprintf(want, sizeof want, "add the line 'node dave %s'", KAT_PK_B_B64);
    assert_non_null(strstr(d.msg, want));
    /* alice with another key */
    assert_int_equal(nnm_trust_check(t, "alice", KAT_PK_B, NULL, 0, NOW, &d), NNM_ETRUST);
    assert_non_null(strstr(d.msg, "binds 'alice'"));
    /* alice's key claiming another id */
    assert_int_equal(nnm_trust_check(t, "mallory", KAT_PK_A, NULL, 0, NOW, &d), NNM_ETRUST);
    assert_non_null(strstr(d.msg, "gives to 'alice'"));
    assert_int_equal(nnm_trust_check(t, "Bad/id", KAT_PK_A, NULL, 0, NOW, &d), NNM_EINVAL);
    nnm_trust_free(t);
}

static void test_trust_check_revoked_key_refused(void **st)
{
    (void)st;
    char text[300];
    snprintf(text, sizeof text, "node alice %s\nrevoke %s\n", KAT_PK_A_B64, KAT_PK_A_B64);
    nnm_trust *t = trust_text(text);
    nnm_diag d = {NNM_OK, ""};
    assert_int_equal(nnm_trust_check(t, "alice", KAT_PK_A, NULL, 0, NOW, &d), NNM_ETRUST);
    assert_non_null(strstr(d.msg, "revoked"));
    nnm_trust_free(t);
}

/* authority B ("ca") certifies bob = key C from 1700000000 to 1800000000 (KAT_CERT_BOB) */
static void test_trust_check_authority_certificate_admitted(void **st)
{
    (void)st;
    char text[300];
    snprintf(text, sizeof text, "authority ca %s\n", KAT_PK_B_B64);
    nnm_trust *t = trust_text(text);
    nnm_diag d = {NNM_OK, ""};
    assert_int_equal(nnm_trust_check(t, "bob", KAT_PK_C, NULL, 0, NOW, &d), NNM_ETRUST);
    assert_int_equal(nnm_trust_check(t, "bob", KAT_PK_C, KAT_CERT_BOB, sizeof KAT_CERT_BOB, NOW, &d),
                     NNM_OK);
    /* validity is inclusive at both ends */
    assert_int_equal(nnm_trust_check(t, "bob", KAT_PK_C, KAT_CERT_BOB, sizeof KAT_CERT_BOB,
                                     1700000000, NULL), NNM_OK);
    assert_int_equal(nnm_trust_check(t, "bob", KAT_PK_C, KAT_CERT_BOB, sizeof KAT_CERT_BOB,
                                     1800000000, NULL), NNM_OK);
    nnm_trust_free(t);
}

static void test_trust_check_expired_or_early_certificate_refused(void **st)
{
    (void)st;
    char text[300];
    snprintf(text, sizeof text, "authority ca %s\n", KAT_PK_B_B64);
    nnm_trust *t = trust_text(text);
    nnm_diag d = {NNM_OK, ""};
    assert_int_equal(nnm_trust_check(t, "bob", KAT_PK_C, KAT_CERT_BOB, sizeof KAT_CERT_BOB,
                                     1800000001, &d), NNM_ETRUST);
    assert_non_null(strstr(d.msg, "expired at 1800000000, 1 s ago"));
    assert_int_equal(nnm_trust_check(t, "bob", KAT_PK_C, KAT_CERT_BOB, sizeof KAT_CERT_BOB,
                                     1699999990, &d), NNM_ETRUST);
    assert_non_null(strstr(d.msg, "not valid before 1700000000, 10 s from now"));
    nnm_trust_free(t);
}

static void test_trust_check_bad_certificates_refused(void **st)
{
    (void)st;
    char text[300];
    nnm_diag d = {NNM_OK, ""};
    /* authority not in this trust file */
    snprintf(text, sizeof text, "node alice %s\n", KAT_PK_A_B64);
    nnm_trust *t = trust_text(text);
    assert_int_equal(nnm_trust_check(t, "bob", KAT_PK_C, KAT_CERT_BOB, sizeof KAT_CERT_BOB, NOW, &d),
                     NNM_ETRUST);
    assert_non_null(strstr(d.msg, "not an authority"));
    nnm_trust_free(t);

    snprintf(text, sizeof text, "authority ca %s\n", KAT_PK_B_B64);
    t = trust_text(text);
    /* certificate for another id or another key */
    assert_int_equal(nnm_trust_check(t, "carl", KAT_PK_C, KAT_CERT_BOB, sizeof KAT_CERT_BOB, NOW, &d),
                     NNM_ETRUST);
    assert_non_null(strstr(d.msg, "issued to 'bob'"));
    assert_int_equal(nnm_trust_check(t, "bob", KAT_PK_A, KAT_CERT_BOB, sizeof KAT_CERT_BOB, NOW, &d),
                     NNM_ETRUST);
    /* every single-bit flip breaks the certificate */
    uint8_t c[sizeof KAT_CERT_BOB];
    for (size_t i = 0; i < sizeof c * 8; i++) {
        memcpy(c, KAT_CERT_BOB, sizeof c);
        c[i / 8] ^= (uint8_t)(1u << (i % 8));
        assert_int_equal(nnm_trust_check(t, "bob", KAT_PK_C, c, sizeof c, NOW, NULL), NNM_ETRUST);
    }
    /* truncated */
    for (size_t n = 1; n < sizeof c; n++)
        assert_int_equal(nnm_trust_check(t, "bob", KAT_PK_C, KAT_CERT_BOB, n, NOW, NULL), NNM_ETRUST);
    nnm_trust_free(t);

    /* revoked authority */
    snprintf(text, sizeof text, "authority ca %s\nrevoke %s\n", KAT_PK_B_B64, KAT_PK_B_B64);
    t = trust_text(text);
    assert_int_equal(nnm_trust_check(t, "bob", KAT_PK_C, KAT_CERT_BOB, sizeof KAT_CERT_BOB, NOW, &d),
                     NNM_ETRUST);
    assert_non_null(strstr(d.msg, "revoked"));
    nnm_trust_free(t);
}

static void test_trust_check_certified_id_stays_bound_to_first_key(void **st)
{
    (void)st;
    nnm_identity *ca = ident_seed(KAT_SEED_B), *other = ident_byte(9);
    char text[300];
    snprintf(text, sizeof text, "authority ca %s\n", KAT_PK_B_B64);
    nnm_trust *t = trust_text(text);
    assert_int_equal(nnm_trust_check(t, "bob", KAT_PK_C, KAT_CERT_BOB, sizeof KAT_CERT_BOB, NOW, NULL),
                     NNM_OK);
    /* the same authority certifies bob again with another key: refused while bob is bound */
    uint8_t c2[NNM_CERT_MAX];
    size_t n = 0;
    const uint8_t *opk = nnm_identity_get_pubkey(other);
    assert_int_equal(nnm_cert_seal(c2, sizeof c2, &n, ca, "bob", opk, 0, UINT64_MAX, NULL), NNM_OK);
    nnm_diag d = {NNM_OK, ""};
    assert_int_equal(nnm_trust_check(t, "bob", opk, c2, n, NOW, &d), NNM_ETRUST);
    assert_non_null(strstr(d.msg, "admitted earlier"));
    /* and bob's key cannot come back under another certified id */
    assert_int_equal(nnm_cert_seal(c2, sizeof c2, &n, ca, "bobby", KAT_PK_C, 0, UINT64_MAX, NULL),
                     NNM_OK);
    assert_int_equal(nnm_trust_check(t, "bobby", KAT_PK_C, c2, n, NOW, &d), NNM_ETRUST);
    assert_non_null(strstr(d.msg, "already uses"));
    nnm_trust_free(t);
    nnm_identity_free(ca);
    nnm_identity_free(other);
}

static void test_cert_seal_bad_arguments_refused(void **st)
{
    (void)st;
    nnm_identity *ca = ident_seed(KAT_SEED_B);
    uint8_t c[NNM_CERT_MAX], zero[32] = {0};
    size_t n = 0;
    assert_int_equal(nnm_cert_seal(c, sizeof c, &n, ca, "Bob", KAT_PK_C, 0, 1, NULL), NNM_EINVAL);
    assert_int_equal(nnm_cert_seal(c, sizeof c, &n, ca, "bob", KAT_PK_C, 2, 1, NULL), NNM_EINVAL);
    assert_int_equal(nnm_cert_seal(c, sizeof c, &n, ca, "bob", zero, 0, 1, NULL), NNM_EINVAL);
    assert_int_equal(nnm_cert_seal(c, 10, &n, ca, "bob", KAT_PK_C, 0, 1, NULL), NNM_ERANGE);
    nnm_identity_free(ca);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trust_decode_bad_lines_name_file_and_line),
        cmocka_unit_test(test_trust_decode_control_bytes_quoted_in_message),
        cmocka_unit_test(test_trust_decode_zero_or_low_order_key_refused),
        cmocka_unit_test(test_trust_decode_empty_or_comments_only_refused),
        cmocka_unit_test(test_trust_load_file_errors),
        cmocka_unit_test(test_trust_check_listed_unknown_and_rebound),
        cmocka_unit_test(test_trust_check_revoked_key_refused),
        cmocka_unit_test(test_trust_check_authority_certificate_admitted),
        cmocka_unit_test(test_trust_check_expired_or_early_certificate_refused),
        cmocka_unit_test(test_trust_check_bad_certificates_refused),
        cmocka_unit_test(test_trust_check_certified_id_stays_bound_to_first_key),
        cmocka_unit_test(test_cert_seal_bad_arguments_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
