/* tests/unit/test_crypto_kat.c — known-answer tests: fixed seeds, keys, nonces and inputs give
 * byte-for-byte the outputs computed independently by tests/vectors/crypto/gen_kat.py (RFC 8032
 * Ed25519, draft-irtf-cfrg-xchacha XChaCha20-Poly1305, and the nnmesh formats). */
#include "test_crypto_util.h"
#include "kat.h"

/* RFC 8032 section 7.1 test 1: the signature of the empty message. */
static const char RFC8032_SIG1[] =
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b";

static void hex_decode(uint8_t *out, const char *hex, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned v = 0;
        assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
        out[i] = (uint8_t)v;
    }
}

static void test_identity_fixed_seed_gives_rfc8032_key_and_signature(void **st)
{
    (void)st;
    nnm_identity *a = ident_seed(KAT_SEED_A);
    assert_memory_equal(nnm_identity_get_pubkey(a), KAT_PK_A, 32);
    uint8_t sig[64], want[64];
    hex_decode(want, RFC8032_SIG1, 64);
    crypto__identity_sign(sig, a, (const uint8_t *)"", 0);
    assert_memory_equal(sig, want, 64);
    nnm_identity_free(a);
    nnm_identity *b = ident_seed(KAT_SEED_B);
    assert_memory_equal(nnm_identity_get_pubkey(b), KAT_PK_B, 32);
    nnm_identity_free(b);
}

static void test_pubkey_encode_and_fingerprint_match_vectors(void **st)
{
    (void)st;
    char b64[NNM_PUBKEY_B64_SIZE], fp[NNM_FINGERPRINT_SIZE];
    nnm_pubkey_encode(b64, KAT_PK_A);
    assert_string_equal(b64, KAT_PK_A_B64);
    nnm_pubkey_get_fingerprint(fp, KAT_PK_A);
    assert_string_equal(fp, KAT_FP_A);
    nnm_pubkey_get_fingerprint(fp, KAT_PK_C);
    assert_string_equal(fp, KAT_FP_C);
    uint8_t pk[32];
    assert_int_equal(nnm_pubkey_decode(pk, KAT_PK_C_B64, NULL), NNM_OK);
    assert_memory_equal(pk, KAT_PK_C, 32);
}

static void test_cert_seal_matches_vector_and_opens(void **st)
{
    (void)st;
    nnm_identity *ca = ident_seed(KAT_SEED_B);
    uint8_t buf[NNM_CERT_MAX];
    size_t n = 0;
    assert_int_equal(nnm_cert_seal(buf, sizeof buf, &n, ca, "bob", KAT_PK_C, 1700000000,
                                   1800000000, NULL), NNM_OK);
    assert_int_equal(n, sizeof KAT_CERT_BOB);
    assert_memory_equal(buf, KAT_CERT_BOB, n);
    nnm_cert c;
    assert_int_equal(nnm_cert_open(&c, KAT_CERT_BOB, sizeof KAT_CERT_BOB, NULL), NNM_OK);
    assert_string_equal(c.id, "bob");
    assert_memory_equal(c.node_pk, KAT_PK_C, 32);
    assert_memory_equal(c.authority_pk, KAT_PK_B, 32);
    assert_true(c.not_before == 1700000000 && c.not_after == 1800000000);
    nnm_identity_free(ca);
}

static void test_advert_seal_matches_vector_and_opens(void **st)
{
    (void)st;
    nnm_identity *a = ident_seed(KAT_SEED_A);
    uint8_t buf[512];
    size_t n = 0;
    assert_int_equal(nnm_advert_seal(buf, sizeof buf, &n, a, "alice", NULL, 0, 3, 7, 1700000600,
                                     KAT_ADVERT_BODY, sizeof KAT_ADVERT_BODY, NULL), NNM_OK);
    assert_int_equal(n, sizeof KAT_ADVERT_ALICE);
    assert_memory_equal(buf, KAT_ADVERT_ALICE, n);
    char line[128];
    trust_line(line, sizeof line, "node", "alice", a);
    nnm_trust *t = trust_text(line);
    nnm_signed_advert adv;
    nnm_advert_state s;
    nnm_advert_state_init(&s);
    assert_int_equal(nnm_advert_open(&adv, KAT_ADVERT_ALICE, sizeof KAT_ADVERT_ALICE, t, &s,
                                     1700000000, 0, NULL), NNM_OK);
    assert_string_equal(adv.id, "alice");
    assert_true(adv.epoch == 3 && adv.seq == 7 && adv.expiry == 1700000600);
    assert_int_equal(adv.body_len, sizeof KAT_ADVERT_BODY);
    assert_memory_equal(adv.body, KAT_ADVERT_BODY, adv.body_len);
    nnm_trust_free(t);
    nnm_identity_free(a);
}

static void test_session_fixed_ephemerals_give_vector_hellos_and_keys(void **st)
{
    (void)st;
    nnm_identity *a = ident_seed(KAT_SEED_A), *b = ident_seed(KAT_SEED_C);
    nnm_handshake *ha = NULL, *hb = NULL;
    assert_int_equal(crypto__handshake_new_fixed(&ha, a, "alice", "bob", NULL, 0, KAT_EPH_A,
                                                 KAT_NONCE_A, NULL), NNM_OK);
    assert_int_equal(crypto__handshake_new_fixed(&hb, b, "bob", "alice", NULL, 0, KAT_EPH_B,
                                                 KAT_NONCE_B, NULL), NNM_OK);
    uint8_t m[NNM_HELLO_MAX];
    size_t n = 0;
    assert_int_equal(nnm_hello_encode(m, sizeof m, &n, ha, NULL), NNM_OK);
    assert_int_equal(n, sizeof KAT_HELLO_ALICE);
    assert_memory_equal(m, KAT_HELLO_ALICE, n);
    assert_int_equal(nnm_hello_encode(m, sizeof m, &n, hb, NULL), NNM_OK);
    assert_int_equal(n, sizeof KAT_HELLO_BOB);
    assert_memory_equal(m, KAT_HELLO_BOB, n);

    char text[256], l2[128];
    trust_line(text, sizeof text, "node", "alice", a);
    trust_line(l2, sizeof l2, "node", "bob", b);
    strcat(text, l2);
    nnm_trust *t = trust_text(text);
    nnm_session *sa = NULL, *sb = NULL;
    assert_int_equal(nnm_hello_open(&sa, ha, KAT_HELLO_BOB, sizeof KAT_HELLO_BOB, t, 100, NULL),
                     NNM_OK);
    assert_int_equal(nnm_hello_open(&sb, hb, KAT_HELLO_ALICE, sizeof KAT_HELLO_ALICE, t, 100,
                                    NULL), NNM_OK);
    assert_memory_equal(nnm_session_get_tx_key(sa), KAT_KEY_ALICE_TO_BOB, 32);
    assert_memory_equal(nnm_session_get_rx_key(sa), KAT_KEY_BOB_TO_ALICE, 32);
    assert_memory_equal(nnm_session_get_tx_key(sb), KAT_KEY_BOB_TO_ALICE, 32);
    assert_memory_equal(nnm_session_get_rx_key(sb), KAT_KEY_ALICE_TO_BOB, 32);
    assert_true(nnm_session_get_id(sa) == KAT_SESSION_ID);
    assert_true(nnm_session_get_id(sb) == KAT_SESSION_ID);
    assert_string_equal(nnm_session_get_peer(sa), "bob");
    nnm_session_free(sa);
    nnm_session_free(sb);
    nnm_handshake_free(ha);
    nnm_handshake_free(hb);
    nnm_trust_free(t);
    nnm_identity_free(a);
    nnm_identity_free(b);
}

static void test_envelope_fixed_nonce_matches_xchacha_vector(void **st)
{
    (void)st;
    uint8_t out[sizeof KAT_ENV_SEALED];
    size_t n = 0;
    assert_int_equal(crypto__envelope_seal_nonce(out, sizeof out, &n, KAT_ENV_KEY, KAT_ENV_NONCE,
                                                 KAT_ENV_AD, sizeof KAT_ENV_AD, KAT_ENV_PT,
                                                 sizeof KAT_ENV_PT, NULL), NNM_OK);
    assert_int_equal(n, sizeof KAT_ENV_SEALED);
    assert_memory_equal(out, KAT_ENV_SEALED, n);
    uint8_t pt[sizeof KAT_ENV_PT];
    assert_int_equal(nnm_envelope_open(pt, sizeof pt, &n, KAT_ENV_KEY, KAT_ENV_AD,
                                       sizeof KAT_ENV_AD, KAT_ENV_SEALED, sizeof KAT_ENV_SEALED,
                                       NULL), NNM_OK);
    assert_int_equal(n, sizeof KAT_ENV_PT);
    assert_memory_equal(pt, KAT_ENV_PT, n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_identity_fixed_seed_gives_rfc8032_key_and_signature),
        cmocka_unit_test(test_pubkey_encode_and_fingerprint_match_vectors),
        cmocka_unit_test(test_cert_seal_matches_vector_and_opens),
        cmocka_unit_test(test_advert_seal_matches_vector_and_opens),
        cmocka_unit_test(test_session_fixed_ephemerals_give_vector_hellos_and_keys),
        cmocka_unit_test(test_envelope_fixed_nonce_matches_xchacha_vector),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
