/* tests/unit/test_crypto_advert.c — signed adverts: round trip, forged and corrupted adverts,
 * untrusted senders, expiry with clock tolerance, and the per-peer (epoch, seq) order. */
#include "test_crypto_util.h"
#include "kat.h"

#define NOW 1700000000u
static const uint8_t BODY[] = {0x82, 0xa3, 'c', 'p', 'u', 0x04, 0xa3, 'm', 'e', 'm', 0xcd, 0x08, 0x00};

typedef struct fix {
    nnm_identity *alice;
    nnm_trust *trust;
} fix;

static int setup(void **st)
{
    fix *f = calloc(1, sizeof *f);
    f->alice = ident_seed(KAT_SEED_A);
    char line[128];
    trust_line(line, sizeof line, "node", "alice", f->alice);
    f->trust = trust_text(line);
    *st = f;
    return 0;
}

static int teardown(void **st)
{
    fix *f = *st;
    nnm_trust_free(f->trust);
    nnm_identity_free(f->alice);
    free(f);
    return 0;
}

static size_t seal(uint8_t *buf, size_t cap, const nnm_identity *id, const char *name,
                   uint64_t epoch, uint64_t seq, uint64_t expiry)
{
    size_t n = 0;
    assert_int_equal(nnm_advert_seal(buf, cap, &n, id, name, NULL, 0, epoch, seq, expiry, BODY,
                                     sizeof BODY, NULL), NNM_OK);
    return n;
}

static nnm_err open_at(fix *f, nnm_advert_state *s, const uint8_t *buf, size_t n, uint64_t now,
                       uint64_t tol, nnm_diag *d)
{
    nnm_signed_advert a;
    return nnm_advert_open(&a, buf, n, f->trust, s, now, tol, d);
}

static void test_advert_seal_open_round_trip(void **st)
{
    fix *f = *st;
    uint8_t buf[512];
    size_t n = seal(buf, sizeof buf, f->alice, "alice", 1, 1, NOW + 60);
    nnm_signed_advert a;
    nnm_advert_state s;
    nnm_advert_state_init(&s);
    assert_int_equal(nnm_advert_open(&a, buf, n, f->trust, &s, NOW, 0, NULL), NNM_OK);
    assert_string_equal(a.id, "alice");
    assert_memory_equal(a.pk, KAT_PK_A, 32);
    assert_int_equal(a.body_len, sizeof BODY);
    assert_memory_equal(a.body, BODY, sizeof BODY);
    assert_true(a.body >= buf && a.body < buf + n); /* borrowed */
    assert_true(s.seen && s.epoch == 1 && s.seq == 1);
    assert_string_equal(s.id, "alice");
}

static void test_advert_every_bit_flip_rejected(void **st)
{
    fix *f = *st;
    uint8_t buf[512], c[512];
    size_t n = seal(buf, sizeof buf, f->alice, "alice", 1, 1, NOW + 60);
    for (size_t i = 0; i < n * 8; i++) {
        memcpy(c, buf, n);
        c[i / 8] ^= (uint8_t)(1u << (i % 8));
        nnm_advert_state s;
        nnm_advert_state_init(&s);
        nnm_err rc = open_at(f, &s, c, n, NOW, 0, NULL);
        if (rc != NNM_ECRYPTO && rc != NNM_EFORMAT && rc != NNM_ETRUST)
            fail_msg("bit %zu: accepted or wrong error %d", i, rc);
        assert_false(s.seen);
    }
}

static void test_advert_forged_signature_rejected(void **st)
{
    fix *f = *st;
    uint8_t buf[512];
    size_t n = seal(buf, sizeof buf, f->alice, "alice", 1, 1, NOW + 60);
    /* mallory signs alice's advert with her own key but keeps alice's key in it */
    nnm_identity *m = ident_byte(0x66);
    uint8_t forged[512];
    size_t fn = seal(forged, sizeof forged, m, "alice", 1, 2, NOW + 60);
    assert_int_equal(fn, n);
    memcpy(forged + 7, KAT_PK_A, 32); /* version, id_len, "alice", then the key */
    nnm_diag d = {NNM_OK, ""};
    assert_int_equal(open_at(f, NULL, forged, fn, NOW, 0, &d), NNM_ECRYPTO);
    assert_non_null(strstr(d.msg, "bad signature"));
    /* signed properly with her own key: not trusted as alice */
    fn = seal(forged, sizeof forged, m, "alice", 1, 2, NOW + 60);
    assert_int_equal(open_at(f, NULL, forged, fn, NOW, 0, &d), NNM_ETRUST);
    assert_non_null(strstr(d.msg, "advert refused"));
    /* truncations */
    for (size_t k = 0; k < n; k++) assert_int_equal(open_at(f, NULL, buf, k, NOW, 0, NULL), NNM_EFORMAT);
    nnm_identity_free(m);
}

static void test_advert_expired_rejected_with_clock_skew(void **st)
{
    fix *f = *st;
    uint8_t buf[512];
    size_t n = seal(buf, sizeof buf, f->alice, "alice", 1, 1, NOW);
    nnm_diag d = {NNM_OK, ""};
    assert_int_equal(open_at(f, NULL, buf, n, NOW, 0, &d), NNM_OK);
    assert_int_equal(open_at(f, NULL, buf, n, NOW + 30, 30, &d), NNM_OK);
    assert_int_equal(open_at(f, NULL, buf, n, NOW + 125, 30, &d), NNM_ETIMEOUT);
    assert_non_null(strstr(d.msg, "125 s before this node's clock"));
    assert_non_null(strstr(d.msg, "30 s clock tolerance"));
    assert_non_null(strstr(d.msg, "clocks are 125 s apart"));
    /* an expiry near 2^64 does not wrap */
    n = seal(buf, sizeof buf, f->alice, "alice", 1, 1, UINT64_MAX);
    assert_int_equal(open_at(f, NULL, buf, n, NOW, UINT64_MAX, NULL), NNM_OK);
}

static void test_advert_older_sequence_or_epoch_ignored(void **st)
{
    fix *f = *st;
    uint8_t b1[512], b2[512], b3[512], b4[512];
    size_t n1 = seal(b1, sizeof b1, f->alice, "alice", 5, 10, NOW + 60);
    size_t n2 = seal(b2, sizeof b2, f->alice, "alice", 5, 9, NOW + 60);
    size_t n3 = seal(b3, sizeof b3, f->alice, "alice", 4, 99, NOW + 60);
    size_t n4 = seal(b4, sizeof b4, f->alice, "alice", 6, 0, NOW + 60);
    nnm_advert_state s;
    nnm_advert_state_init(&s);
    nnm_diag d = {NNM_OK, ""};
    assert_int_equal(open_at(f, &s, b1, n1, NOW, 0, &d), NNM_OK);
    assert_int_equal(open_at(f, &s, b1, n1, NOW, 0, &d), NNM_EREPLAY); /* same seq */
    assert_non_null(strstr(d.msg, "sequence 10 in epoch 5"));
    assert_int_equal(open_at(f, &s, b2, n2, NOW, 0, &d), NNM_EREPLAY); /* older seq */
    assert_int_equal(open_at(f, &s, b3, n3, NOW, 0, &d), NNM_EREPLAY); /* older epoch */
    assert_non_null(strstr(d.msg, "epoch 4, older than epoch 5"));
    assert_true(s.epoch == 5 && s.seq == 10);
    assert_int_equal(open_at(f, &s, b4, n4, NOW, 0, &d), NNM_OK); /* restart: new epoch, seq 0 */
    assert_true(s.epoch == 6 && s.seq == 0);
    assert_int_equal(open_at(f, &s, b1, n1, NOW, 0, &d), NNM_EREPLAY);
}

static void test_advert_rejected_advert_leaves_state_unchanged(void **st)
{
    fix *f = *st;
    uint8_t b[512];
    size_t n = seal(b, sizeof b, f->alice, "alice", 9, 9, NOW);
    nnm_advert_state s;
    nnm_advert_state_init(&s);
    assert_int_equal(open_at(f, &s, b, n, NOW + 100, 0, NULL), NNM_ETIMEOUT);
    assert_false(s.seen);
}

static void test_advert_state_of_another_peer_refused(void **st)
{
    fix *f = *st;
    uint8_t b[512];
    size_t n = seal(b, sizeof b, f->alice, "alice", 1, 1, NOW + 60);
    nnm_advert_state s;
    nnm_advert_state_init(&s);
    s.seen = 1;
    strcpy(s.id, "bob");
    assert_int_equal(open_at(f, &s, b, n, NOW, 0, NULL), NNM_EINVAL);
}

static void test_advert_certified_node_admitted(void **st)
{
    (void)st;
    char line[128];
    nnm_identity *ca = ident_seed(KAT_SEED_B), *bob = ident_seed(KAT_SEED_C);
    trust_line(line, sizeof line, "authority", "ca", ca);
    nnm_trust *t = trust_text(line);
    uint8_t b[600];
    size_t n = 0;
    assert_int_equal(nnm_advert_seal(b, sizeof b, &n, bob, "bob", KAT_CERT_BOB, sizeof KAT_CERT_BOB,
                                     1, 1, 1750000060, BODY, sizeof BODY, NULL), NNM_OK);
    nnm_signed_advert a;
    assert_int_equal(nnm_advert_decode(&a, b, n, NULL), NNM_OK);
    assert_string_equal(a.id, "bob");
    assert_int_equal(nnm_advert_open(&a, b, n, t, NULL, 1750000000, 0, NULL), NNM_OK);
    /* without the certificate: not trusted */
    assert_int_equal(nnm_advert_seal(b, sizeof b, &n, bob, "bob", NULL, 0, 1, 2, 1750000060, BODY,
                                     sizeof BODY, NULL), NNM_OK);
    nnm_trust_free(t);
    t = trust_text(line);
    assert_int_equal(nnm_advert_open(&a, b, n, t, NULL, 1750000000, 0, NULL), NNM_ETRUST);
    nnm_trust_free(t);
    nnm_identity_free(ca);
    nnm_identity_free(bob);
}

static void test_advert_seal_limits(void **st)
{
    fix *f = *st;
    uint8_t small[16];
    size_t n = 0;
    assert_int_equal(nnm_advert_seal(small, sizeof small, &n, f->alice, "alice", NULL, 0, 1, 1, 1,
                                     BODY, sizeof BODY, NULL), NNM_ERANGE);
    assert_int_equal(nnm_advert_seal(small, sizeof small, &n, f->alice, "ALICE", NULL, 0, 1, 1, 1,
                                     BODY, sizeof BODY, NULL), NNM_EINVAL);
    uint8_t *big = calloc(1, NNM_ADVERT_BODY_MAX + 1);
    uint8_t *out = malloc(NNM_ADVERT_BODY_MAX + 512);
    assert_int_equal(nnm_advert_seal(out, NNM_ADVERT_BODY_MAX + 512, &n, f->alice, "alice", NULL, 0,
                                     1, 1, NOW, big, NNM_ADVERT_BODY_MAX + 1, NULL), NNM_ERANGE);
    assert_int_equal(nnm_advert_seal(out, NNM_ADVERT_BODY_MAX + 512, &n, f->alice, "alice", NULL, 0,
                                     1, 1, NOW, big, NNM_ADVERT_BODY_MAX, NULL), NNM_OK);
    assert_int_equal(open_at(f, NULL, out, n, NOW, 0, NULL), NNM_OK);
    free(big);
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_advert_seal_open_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_advert_every_bit_flip_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_advert_forged_signature_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_advert_expired_rejected_with_clock_skew, setup, teardown),
        cmocka_unit_test_setup_teardown(test_advert_older_sequence_or_epoch_ignored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_advert_rejected_advert_leaves_state_unchanged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_advert_state_of_another_peer_refused, setup, teardown),
        cmocka_unit_test(test_advert_certified_node_admitted),
        cmocka_unit_test_setup_teardown(test_advert_seal_limits, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
