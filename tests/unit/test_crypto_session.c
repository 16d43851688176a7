/* tests/unit/test_crypto_session.c — the signed X25519 exchange (both sides agree on keys and
 * session id, untrusted / forged / misaddressed / degenerate hellos refused, certified peers
 * admitted), session sealing with replay protection, and the rekey policy. */
#include "test_crypto_util.h"
#include "kat.h"

#define NOW 1750000000u

typedef struct fix {
    nnm_identity *alice, *bob;
    nnm_trust *trust;
    nnm_handshake *ha, *hb;
    uint8_t hello_a[NNM_HELLO_MAX], hello_b[NNM_HELLO_MAX];
    size_t na, nb;
} fix;

static int setup(void **st)
{
    fix *f = calloc(1, sizeof *f);
    f->alice = ident_seed(KAT_SEED_A);
    f->bob = ident_seed(KAT_SEED_C);
    char text[300], l2[128];
    trust_line(text, sizeof text, "node", "alice", f->alice);
    trust_line(l2, sizeof l2, "node", "bob", f->bob);
    strcat(text, l2);
    f->trust = trust_text(text);
    assert_int_equal(nnm_handshake_new(&f->ha, f->alice, "alice", "bob", NULL, 0, NULL), NNM_OK);
    assert_int_equal(nnm_handshake_new(&f->hb, f->bob, "bob", "alice", NULL, 0, NULL), NNM_OK);
    assert_int_equal(nnm_hello_encode(f->hello_a, sizeof f->hello_a, &f->na, f->ha, NULL), NNM_OK);
    assert_int_equal(nnm_hello_encode(f->hello_b, sizeof f->hello_b, &f->nb, f->hb, NULL), NNM_OK);
    *st = f;
    return 0;
}

static int teardown(void **st)
{
    fix *f = *st;
    nnm_handshake_free(f->ha);
    nnm_handshake_free(f->hb);
    nnm_trust_free(f->trust);
    nnm_identity_free(f->alice);
    nnm_identity_free(f->bob);
    free(f);
    return 0;
}

static void pair(fix *f, nnm_session **sa, nnm_session **sb)
{
    assert_int_equal(nnm_hello_open(sa, f->ha, f->hello_b, f->nb, f->trust, NOW, NULL), NNM_OK);
    assert_int_equal(nnm_hello_open(sb, f->hb, f->hello_a, f->na, f->trust, NOW, NULL), NNM_OK);
}

static void test_session_both_sides_derive_crossed_keys_and_same_id(void **st)
{
    fix *f = *st;
    nnm_session *sa = NULL, *sb = NULL;
    pair(f, &sa, &sb);
    assert_memory_equal(nnm_session_get_tx_key(sa), nnm_session_get_rx_key(sb), 32);
    assert_memory_equal(nnm_session_get_rx_key(sa), nnm_session_get_tx_key(sb), 32);
    assert_memory_not_equal(nnm_session_get_tx_key(sa), nnm_session_get_rx_key(sa), 32);
    assert_true(nnm_session_get_id(sa) == nnm_session_get_id(sb));
    assert_string_equal(nnm_session_get_peer(sa), "bob");
    assert_string_equal(nnm_session_get_peer(sb), "alice");
    /* a second exchange gives fresh keys */
    nnm_handshake *h2 = NULL;
    nnm_session *s2 = NULL;
    uint8_t m[NNM_HELLO_MAX];
    size_t n = 0;
    assert_int_equal(nnm_handshake_new(&h2, f->bob, "bob", "alice", NULL, 0, NULL), NNM_OK);
    assert_int_equal(nnm_hello_encode(m, sizeof m, &n, h2, NULL), NNM_OK);
    assert_int_equal(nnm_hello_open(&s2, f->ha, m, n, f->trust, NOW, NULL), NNM_OK);
    assert_memory_not_equal(nnm_session_get_tx_key(s2), nnm_session_get_tx_key(sa), 32);
    assert_true(nnm_session_get_id(s2) != nnm_session_get_id(sa));
    nnm_session_free(s2);
    nnm_handshake_free(h2);
    nnm_session_free(sa);
    nnm_session_free(sb);
}

static void test_session_seal_open_with_replay_window(void **st)
{
    fix *f = *st;
    nnm_session *sa = NULL, *sb = NULL;
    pair(f, &sa, &sb);
    static const uint8_t ad[] = "hdr c=1", pt[] = "payload";
    uint8_t s1[64], s2[64], out[32];
    size_t n1 = 0, n2 = 0, m = 0;
    assert_int_equal(nnm_session_seal(s1, sizeof s1, &n1, sa, ad, sizeof ad, pt, sizeof pt, NULL), NNM_OK);
    assert_int_equal(nnm_session_seal(s2, sizeof s2, &n2, sa, ad, sizeof ad, pt, sizeof pt, NULL), NNM_OK);
    /* delivered out of order, then duplicated */
    assert_int_equal(nnm_session_open(out, sizeof out, &m, sb, 2, ad, sizeof ad, s2, n2, NULL), NNM_OK);
    assert_int_equal(nnm_session_open(out, sizeof out, &m, sb, 1, ad, sizeof ad, s1, n1, NULL), NNM_OK);
    assert_int_equal(m, sizeof pt);
    assert_memory_equal(out, pt, m);
    nnm_diag d = {NNM_OK, ""};
    memset(out, 0x55, sizeof out);
    assert_int_equal(nnm_session_open(out, sizeof out, &m, sb, 1, ad, sizeof ad, s1, n1, &d), NNM_EREPLAY);
    assert_non_null(strstr(d.msg, "session with 'alice'"));
    assert_int_equal(out[0], 0); /* replayed plaintext is wiped */
    /* a forged envelope does not burn its counter */
    uint8_t s3[64], bad[64];
    size_t n3 = 0;
    assert_int_equal(nnm_session_seal(s3, sizeof s3, &n3, sa, ad, sizeof ad, pt, sizeof pt, NULL), NNM_OK);
    memcpy(bad, s3, n3);
    bad[30] ^= 1;
    assert_int_equal(nnm_session_open(out, sizeof out, &m, sb, 3, ad, sizeof ad, bad, n3, NULL), NNM_ECRYPTO);
    assert_int_equal(nnm_session_open(out, sizeof out, &m, sb, 3, ad, sizeof ad, s3, n3, NULL), NNM_OK);
    /* alice cannot open her own message: directions have different keys */
    assert_int_equal(nnm_session_open(out, sizeof out, &m, sa, 9, ad, sizeof ad, s1, n1, NULL), NNM_ECRYPTO);
    nnm_session_free(sa);
    nnm_session_free(sb);
}

static void test_session_needs_rekey_after_count_or_age(void **st)
{
    fix *f = *st;
    nnm_session *sa = NULL, *sb = NULL;
    pair(f, &sa, &sb);
    assert_false(nnm_session_needs_rekey(sa, NOW));
    assert_false(nnm_session_needs_rekey(sa, NOW + 3599));
    assert_true(nnm_session_needs_rekey(sa, NOW + 3600)); /* default: one hour */
    nnm_session_set_rekey(sa, 3, 0);
    uint8_t s[64];
    size_t n = 0;
    for (int i = 0; i < 3; i++) {
        assert_false(nnm_session_needs_rekey(sa, NOW + 999999));
        assert_int_equal(nnm_session_seal(s, sizeof s, &n, sa, NULL, 0, (const uint8_t *)"x", 1, NULL), NNM_OK);
    }
    assert_true(nnm_session_needs_rekey(sa, NOW));
    nnm_session_set_rekey(sb, 0, 10);
    assert_false(nnm_session_needs_rekey(sb, NOW + 9));
    assert_true(nnm_session_needs_rekey(sb, NOW + 10));
    nnm_session_free(sa);
    nnm_session_free(sb);
}

static void test_session_untrusted_peer_refused(void **st)
{
    fix *f = *st;
    nnm_identity *m = ident_byte(0x77);
    nnm_handshake *hm = NULL;
    uint8_t msg[NNM_HELLO_MAX];
    size_t n = 0;
    assert_int_equal(nnm_handshake_new(&hm, m, "bob", "alice", NULL, 0, NULL), NNM_OK);
    assert_int_equal(nnm_hello_encode(msg, sizeof msg, &n, hm, NULL), NNM_OK);
    nnm_session *s = (nnm_session *)1;
    nnm_diag d = {NNM_OK, ""};
    assert_int_equal(nnm_hello_open(&s, f->ha, msg, n, f->trust, NOW, &d), NNM_ETRUST);
    assert_null(s);
    assert_non_null(strstr(d.msg, "hello refused"));
    nnm_handshake_free(hm);
    nnm_identity_free(m);
}

static void test_session_hello_bit_flips_and_truncations_refused(void **st)
{
    fix *f = *st;
    uint8_t c[NNM_HELLO_MAX];
    for (size_t i = 0; i < f->nb * 8; i++) {
        memcpy(c, f->hello_b, f->nb);
        c[i / 8] ^= (uint8_t)(1u << (i % 8));
        nnm_session *s = NULL;
        nnm_err rc = nnm_hello_open(&s, f->ha, c, f->nb, f->trust, NOW, NULL);
        if (rc == NNM_OK) fail_msg("bit %zu flipped and accepted", i);
        assert_null(s);
    }
    for (size_t k = 0; k < f->nb; k++) {
        nnm_session *s = NULL;
        assert_int_equal(nnm_hello_open(&s, f->ha, f->hello_b, k, f->trust, NOW, NULL), NNM_EFORMAT);
    }
}

static void test_session_misaddressed_hello_refused(void **st)
{
    fix *f = *st;
    nnm_session *s = NULL;
    /* alice's own hello fed back to her: wrong direction */
    assert_int_equal(nnm_hello_open(&s, f->ha, f->hello_a, f->na, f->trust, NOW, NULL), NNM_EINVAL);
    nnm_handshake *h = NULL;
    assert_int_equal(nnm_handshake_new(&h, f->alice, "alice", "alice", NULL, 0, NULL), NNM_EINVAL);
    assert_int_equal(nnm_handshake_new(&h, f->alice, "alice", "Bob", NULL, 0, NULL), NNM_EINVAL);
    assert_null(h);
}

static void test_session_low_order_ephemeral_refused(void **st)
{
    fix *f = *st;
    /* a correctly signed hello from bob whose ephemeral key is the all-zero (low-order) point */
    uint8_t m[NNM_HELLO_MAX + 32];
    size_t o = 0;
    const char tag[] = "nnmesh-hello-v1";
    memcpy(m, tag, sizeof tag - 1);
    o = sizeof tag - 1;
    m[o++] = 1;
    m[o++] = 3;
    memcpy(m + o, "bob", 3), o += 3;
    m[o++] = 5;
    memcpy(m + o, "alice", 5), o += 5;
    memcpy(m + o, KAT_PK_C, 32), o += 32;
    memset(m + o, 0, 32), o += 32;
    memset(m + o, 0x44, 16), o += 16;
    m[o++] = 0;
    m[o++] = 0;
    crypto__identity_sign(m + o, f->bob, m, o);
    o += 64;
    nnm_session *s = NULL;
    nnm_diag d = {NNM_OK, ""};
    assert_int_equal(nnm_hello_open(&s, f->ha, m + sizeof tag - 1, o - (sizeof tag - 1), f->trust, NOW, &d),
                     NNM_ECRYPTO);
    assert_non_null(strstr(d.msg, "degenerate"));
    assert_null(s);
}

static void test_session_certified_peer_admitted(void **st)
{
    fix *f = *st;
    char line[128];
    nnm_identity *ca = ident_seed(KAT_SEED_B);
    trust_line(line, sizeof line, "authority", "ca", ca);
    nnm_trust *t = trust_text(line);
    nnm_handshake *hb = NULL;
    uint8_t msg[NNM_HELLO_MAX];
    size_t n = 0;
    assert_int_equal(nnm_handshake_new(&hb, f->bob, "bob", "alice", KAT_CERT_BOB, sizeof KAT_CERT_BOB,
                                       NULL), NNM_OK);
    assert_int_equal(nnm_hello_encode(msg, sizeof msg, &n, hb, NULL), NNM_OK);
    nnm_session *s = NULL;
    assert_int_equal(nnm_hello_open(&s, f->ha, msg, n, t, NOW, NULL), NNM_OK);
    nnm_session_free(s);
    s = NULL;
    assert_int_equal(nnm_hello_open(&s, f->ha, msg, n, t, 1800000001, NULL), NNM_ETRUST); /* expired */
    nnm_handshake_free(hb);
    nnm_trust_free(t);
    nnm_identity_free(ca);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_session_both_sides_derive_crossed_keys_and_same_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_session_seal_open_with_replay_window, setup, teardown),
        cmocka_unit_test_setup_teardown(test_session_needs_rekey_after_count_or_age, setup, teardown),
        cmocka_unit_test_setup_teardown(test_session_untrusted_peer_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_session_hello_bit_flips_and_truncations_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_session_misaddressed_hello_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_session_low_order_ephemeral_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_session_certified_peer_admitted, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
