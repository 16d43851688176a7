/* tests/unit/test_crypto_envelope.c — sealed envelopes (round trip, every single-bit change of
 * nonce, ciphertext, tag and associated data rejected, short input, wrong key, capacity) and
 * the replay window (duplicates, reordering inside the window, too old, big jumps). */
#include "test_crypto_util.h"
#include "kat.h"

static const uint8_t KEY[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
                                17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};
static const uint8_t AD[] = "v1|tensor|alice|bob|s=42|c=7|r=9|nnm/mesh/bob/in";
static const uint8_t PT[] = "a tensor chunk, or anything else";

static void test_envelope_seal_open_round_trip_with_fresh_nonces(void **st)
{
    (void)st;
    uint8_t s1[128], s2[128], pt[64];
    size_t n1 = 0, n2 = 0, m = 0;
    assert_int_equal(nnm_envelope_seal(s1, sizeof s1, &n1, KEY, AD, sizeof AD, PT, sizeof PT, NULL), NNM_OK);
    assert_int_equal(nnm_envelope_seal(s2, sizeof s2, &n2, KEY, AD, sizeof AD, PT, sizeof PT, NULL), NNM_OK);
    assert_int_equal(n1, sizeof PT + NNM_ENVELOPE_OVERHEAD);
    assert_memory_not_equal(s1, s2, NNM_ENVELOPE_NONCE_BYTES); /* random nonce per message */
    assert_int_equal(nnm_envelope_open(pt, sizeof pt, &m, KEY, AD, sizeof AD, s1, n1, NULL), NNM_OK);
    assert_int_equal(m, sizeof PT);
    assert_memory_equal(pt, PT, m);
    /* empty plaintext and empty associated data */
    assert_int_equal(nnm_envelope_seal(s1, sizeof s1, &n1, KEY, NULL, 0, NULL, 0, NULL), NNM_OK);
    assert_int_equal(n1, NNM_ENVELOPE_OVERHEAD);
    assert_int_equal(nnm_envelope_open(NULL, 0, &m, KEY, NULL, 0, s1, n1, NULL), NNM_OK);
    assert_int_equal(m, 0);
}

static void test_envelope_every_bit_flip_of_blob_rejected(void **st)
{
    (void)st;
    uint8_t s[128], c[128], pt[64];
    size_t n = 0, m = 0;
    assert_int_equal(nnm_envelope_seal(s, sizeof s, &n, KEY, AD, sizeof AD, PT, sizeof PT, NULL), NNM_OK);
    /* nonce (0..23), ciphertext, tag (last 16): every bit */
    for (size_t i = 0; i < n * 8; i++) {
        memcpy(c, s, n);
        c[i / 8] ^= (uint8_t)(1u << (i % 8));
        memset(pt, 0xaa, sizeof pt);
        nnm_diag d = {NNM_OK, ""};
        assert_int_equal(nnm_envelope_open(pt, sizeof pt, &m, KEY, AD, sizeof AD, c, n, &d), NNM_ECRYPTO);
        for (size_t k = 0; k < sizeof PT; k++) assert_int_equal(pt[k], 0); /* nothing leaks */
    }
}

static void test_envelope_every_bit_flip_of_ad_rejected(void **st)
{
    (void)st;
    uint8_t s[128], ad[sizeof AD], pt[64];
    size_t n = 0, m = 0;
    assert_int_equal(nnm_envelope_seal(s, sizeof s, &n, KEY, AD, sizeof AD, PT, sizeof PT, NULL), NNM_OK);
    for (size_t i = 0; i < sizeof AD * 8; i++) {
        memcpy(ad, AD, sizeof ad);
        ad[i / 8] ^= (uint8_t)(1u << (i % 8));
        assert_int_equal(nnm_envelope_open(pt, sizeof pt, &m, KEY, ad, sizeof ad, s, n, NULL), NNM_ECRYPTO);
    }
    /* shorter or longer AD */
    assert_int_equal(nnm_envelope_open(pt, sizeof pt, &m, KEY, AD, sizeof AD - 1, s, n, NULL), NNM_ECRYPTO);
    assert_int_equal(nnm_envelope_open(pt, sizeof pt, &m, KEY, NULL, 0, s, n, NULL), NNM_ECRYPTO);
}

static void test_envelope_short_blob_rejected_as_format(void **st)
{
    (void)st;
    uint8_t s[NNM_ENVELOPE_OVERHEAD] = {0}, pt[8];
    size_t m = 0;
    for (size_t n = 0; n < NNM_ENVELOPE_OVERHEAD; n++) {
        nnm_diag d = {NNM_OK, ""};
        assert_int_equal(nnm_envelope_open(pt, sizeof pt, &m, KEY, AD, sizeof AD, s, n, &d), NNM_EFORMAT);
        assert_non_null(strstr(d.msg, "shorter than nonce and tag"));
    }
    /* checked before anything else, even a NULL key or output */
    assert_int_equal(nnm_envelope_open(NULL, 0, &m, NULL, NULL, 0, s, 3, NULL), NNM_EFORMAT);
}

static void test_envelope_wrong_key_or_truncation_rejected(void **st)
{
    (void)st;
    uint8_t s[128], pt[64], k2[32];
    size_t n = 0, m = 0;
    memcpy(k2, KEY, 32);
    k2[31] ^= 0x80;
    assert_int_equal(nnm_envelope_seal(s, sizeof s, &n, KEY, AD, sizeof AD, PT, sizeof PT, NULL), NNM_OK);
    assert_int_equal(nnm_envelope_open(pt, sizeof pt, &m, k2, AD, sizeof AD, s, n, NULL), NNM_ECRYPTO);
    for (size_t k = NNM_ENVELOPE_OVERHEAD; k < n; k++)
        assert_int_equal(nnm_envelope_open(pt, sizeof pt, &m, KEY, AD, sizeof AD, s, k, NULL), NNM_ECRYPTO);
}

static void test_envelope_small_output_rejected_as_range(void **st)
{
    (void)st;
    uint8_t s[128], pt[64];
    size_t n = 0, m = 0;
    assert_int_equal(nnm_envelope_seal(s, sizeof PT + NNM_ENVELOPE_OVERHEAD - 1, &n, KEY, AD, sizeof AD,
                                       PT, sizeof PT, NULL), NNM_ERANGE);
    assert_int_equal(nnm_envelope_seal(s, 3, &n, KEY, AD, sizeof AD, PT, sizeof PT, NULL), NNM_ERANGE);
    assert_int_equal(nnm_envelope_seal(s, sizeof s, &n, KEY, AD, sizeof AD, PT, sizeof PT, NULL), NNM_OK);
    assert_int_equal(nnm_envelope_open(pt, sizeof PT - 1, &m, KEY, AD, sizeof AD, s, n, NULL), NNM_ERANGE);
}

/* ---- replay window ---- */

static void test_replay_duplicate_rejected(void **st)
{
    (void)st;
    nnm_replay r;
    nnm_replay_init(&r);
    nnm_diag d = {NNM_OK, ""};
    assert_int_equal(nnm_replay_commit(&r, 0, NULL), NNM_OK);
    assert_int_equal(nnm_replay_commit(&r, 0, &d), NNM_EREPLAY);
    assert_non_null(strstr(d.msg, "already received"));
    assert_int_equal(nnm_replay_commit(&r, 1, NULL), NNM_OK);
    assert_int_equal(nnm_replay_commit(&r, 1, NULL), NNM_EREPLAY);
    assert_int_equal(nnm_replay_commit(&r, 0, NULL), NNM_EREPLAY);
}

static void test_replay_out_of_order_within_window_accepted_once(void **st)
{
    (void)st;
    nnm_replay r;
    nnm_replay_init(&r);
    assert_int_equal(nnm_replay_commit(&r, 100, NULL), NNM_OK);
    assert_int_equal(nnm_replay_commit(&r, 105, NULL), NNM_OK);
    for (uint64_t c = 101; c < 105; c++) {
        assert_int_equal(nnm_replay_check(&r, c, NULL), NNM_OK);
        assert_int_equal(nnm_replay_check(&r, c, NULL), NNM_OK); /* check does not record */
        assert_int_equal(nnm_replay_commit(&r, c, NULL), NNM_OK);
        assert_int_equal(nnm_replay_commit(&r, c, NULL), NNM_EREPLAY);
    }
    /* the oldest counter still inside the window */
    assert_int_equal(nnm_replay_commit(&r, 2000, NULL), NNM_OK);
    assert_int_equal(nnm_replay_commit(&r, 2000 - (NNM_REPLAY_WINDOW - 1), NULL), NNM_OK);
    assert_int_equal(nnm_replay_commit(&r, 2000 - (NNM_REPLAY_WINDOW - 1), NULL), NNM_EREPLAY);
}

static void test_replay_too_old_rejected(void **st)
{
    (void)st;
    nnm_replay r;
    nnm_replay_init(&r);
    nnm_diag d = {NNM_OK, ""};
    assert_int_equal(nnm_replay_commit(&r, 5000, NULL), NNM_OK);
    assert_int_equal(nnm_replay_commit(&r, 5000 - NNM_REPLAY_WINDOW, &d), NNM_EREPLAY);
    assert_non_null(strstr(d.msg, "outside the replay window"));
    assert_int_equal(nnm_replay_commit(&r, 0, NULL), NNM_EREPLAY);
}

static void test_replay_window_slides_keep_bits(void **st)
{
    (void)st;
    /* Record counters with steps of 1 to 70 (within words, across word boundaries, whole
     * words), then check every counter in the window against a plain list. */
    nnm_replay r;
    nnm_replay_init(&r);
    static uint8_t seen[4000];
    memset(seen, 0, sizeof seen);
    for (uint64_t c = 0; c < 4000; c += 1 + (c * 7919) % 70) {
        assert_int_equal(nnm_replay_commit(&r, c, NULL), NNM_OK);
        seen[c] = 1;
    }
    uint64_t top = r.top;
    assert_true(top > 3900 && top < 4000);
    for (uint64_t c = top - (NNM_REPLAY_WINDOW - 1); c <= top; c++)
        assert_int_equal(nnm_replay_check(&r, c, NULL), seen[c] ? NNM_EREPLAY : NNM_OK);
    for (uint64_t c = 0; c < top - (NNM_REPLAY_WINDOW - 1); c++)
        assert_int_equal(nnm_replay_check(&r, c, NULL), NNM_EREPLAY);
    /* a jump beyond the window forgets everything behind it */
    assert_int_equal(nnm_replay_commit(&r, UINT64_MAX, NULL), NNM_OK);
    assert_int_equal(nnm_replay_check(&r, UINT64_MAX - 1, NULL), NNM_OK);
    assert_int_equal(nnm_replay_check(&r, UINT64_MAX, NULL), NNM_EREPLAY);
    assert_int_equal(nnm_replay_check(&r, top, NULL), NNM_EREPLAY);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_envelope_seal_open_round_trip_with_fresh_nonces),
        cmocka_unit_test(test_envelope_every_bit_flip_of_blob_rejected),
        cmocka_unit_test(test_envelope_every_bit_flip_of_ad_rejected),
        cmocka_unit_test(test_envelope_short_blob_rejected_as_format),
        cmocka_unit_test(test_envelope_wrong_key_or_truncation_rejected),
        cmocka_unit_test(test_envelope_small_output_rejected_as_range),
        cmocka_unit_test(test_replay_duplicate_rejected),
        cmocka_unit_test(test_replay_out_of_order_within_window_accepted_once),
        cmocka_unit_test(test_replay_too_old_rejected),
        cmocka_unit_test(test_replay_window_slides_keep_bits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
