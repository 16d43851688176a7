/* tests/fuzz/fuzz_advert.c — libFuzzer target for the signed-message decoders of crypto/ that
 * read outside bytes: adverts (nnm_advert_open / nnm_advert_decode), certificates
 * (nnm_cert_open), hellos (nnm_hello_open) and trust files (nnm_trust_decode). Every input goes
 * through all of them; the seeds are a valid advert, certificate, hello and trust file, so
 * mutations start past the signature checks' parsing.
 *
 * Fixed world: trust = alice (RFC 8032 key 1) as a node and "ca" (key 2) as an authority;
 * alice's handshake with bob uses fixed ephemerals; clock 1700000000, tolerance 60 s.
 * Contract: on error the outputs are zeroed (advert, cert) or NULL (session, trust) and the
 * diagnostic is one printable sentence with the code; on success the fields agree with
 * nnm_advert_decode and lie inside the input. A broken invariant traps. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crypto_int.h"
#include "../vectors/crypto/kat.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NOW 1700000000u

static void check_diag(const nnm_diag *d, nnm_err rc)
{
    if (d->code != rc || d->msg[0] == '\0') __builtin_trap();
    const char *end = memchr(d->msg, '\0', sizeof d->msg);
    if (end == NULL) __builtin_trap();
    for (const char *p = d->msg; p < end; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e) __builtin_trap();
}

static int is_zero(const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != 0) return 0;
    return 1;
}

static nnm_trust *world_trust(void)
{
    char text[256], a[NNM_PUBKEY_B64_SIZE], b[NNM_PUBKEY_B64_SIZE];
    nnm_pubkey_encode(a, KAT_PK_A);
    nnm_pubkey_encode(b, KAT_PK_B);
    snprintf(text, sizeof text, "node alice %s\nauthority ca %s\n", a, b);
    nnm_trust *t = NULL;
    if (nnm_trust_decode(&t, text, strlen(text), "trust", NULL) != NNM_OK) __builtin_trap();
    return t;
}

static void fuzz_advert(const uint8_t *data, size_t size)
{
    nnm_trust *t = world_trust();
    nnm_signed_advert a, u;
    nnm_advert_state st;
    nnm_advert_state_init(&st);
    nnm_diag d;
    nnm_diag_clear(&d);
    nnm_err rc = nnm_advert_open(&a, data, size, t, &st, NOW, 60, &d);
    nnm_err rd = nnm_advert_decode(&u, data, size, NULL);
    if (rc != NNM_OK) {
        check_diag(&d, rc);
        if (!is_zero(&a, sizeof a) || st.seen) __builtin_trap();
        if (rc == NNM_EFORMAT && rd != NNM_EFORMAT) __builtin_trap();
    } else {
        if (rd != NNM_OK || strcmp(a.id, u.id) != 0 || a.epoch != u.epoch || a.seq != u.seq ||
            a.expiry != u.expiry || a.body != u.body || a.body_len != u.body_len)
            __builtin_trap();
        if (!nnm_id_is_valid(a.id) || a.body_len > size ||
            (a.body_len > 0 && (a.body < data || a.body + a.body_len > data + size)))
            __builtin_trap();
        if (!st.seen || st.epoch != a.epoch || st.seq != a.seq) __builtin_trap();
        /* the same advert again is a replay */
        if (nnm_advert_open(&a, data, size, t, &st, NOW, 60, NULL) != NNM_EREPLAY) __builtin_trap();
    }
    if (rd != NNM_OK && !is_zero(&u, sizeof u)) __builtin_trap();
    nnm_trust_free(t);
}

static void fuzz_cert(const uint8_t *data, size_t size)
{
    nnm_cert c;
    nnm_diag d;
    nnm_diag_clear(&d);
    nnm_err rc = nnm_cert_open(&c, data, size, &d);
    if (rc != NNM_OK) {
        check_diag(&d, rc);
        if (!is_zero(&c, sizeof c)) __builtin_trap();
        return;
    }
    if (!nnm_id_is_valid(c.id) || c.not_after < c.not_before) __builtin_trap();
    nnm_trust *t = world_trust();
    nnm_diag_clear(&d);
    rc = nnm_trust_check(t, c.id, c.node_pk, data, size, c.not_before, &d);
    if (rc != NNM_OK) check_diag(&d, rc);
    nnm_trust_free(t);
}

static void fuzz_hello(const uint8_t *data, size_t size)
{
    nnm_identity *alice = NULL;
    nnm_handshake *hs = NULL;
    if (crypto__identity_from_seed(&alice, KAT_SEED_A, NULL) != NNM_OK) __builtin_trap();
    if (crypto__handshake_new_fixed(&hs, alice, "alice", "bob", NULL, 0, KAT_EPH_A, KAT_NONCE_A,
                                    NULL) != NNM_OK)
        __builtin_trap();
    /* bob (key C) is listed so that a valid hello gets all the way to the key derivation */
    char text[256], a[NNM_PUBKEY_B64_SIZE], c[NNM_PUBKEY_B64_SIZE];
    nnm_pubkey_encode(a, KAT_PK_A);
    nnm_pubkey_encode(c, KAT_PK_C);
    snprintf(text, sizeof text, "node alice %s\nnode bob %s\n", a, c);
    nnm_trust *t = NULL;
    if (nnm_trust_decode(&t, text, strlen(text), "trust", NULL) != NNM_OK) __builtin_trap();
    nnm_session *s = (nnm_session *)&s;
    nnm_diag d;
    nnm_diag_clear(&d);
    nnm_err rc = nnm_hello_open(&s, hs, data, size, t, NOW, &d);
    if (rc != NNM_OK) {
        check_diag(&d, rc);
        if (s != NULL) __builtin_trap();
    } else if (strcmp(nnm_session_get_peer(s), "bob") != 0) {
        __builtin_trap();
    }
    nnm_session_free(s);
    nnm_trust_free(t);
    nnm_handshake_free(hs);
    nnm_identity_free(alice);
}

static void fuzz_trust(const uint8_t *data, size_t size)
{
    nnm_trust *t = (nnm_trust *)&t;
    nnm_diag d;
    nnm_diag_clear(&d);
    nnm_err rc = nnm_trust_decode(&t, (const char *)data, size, "fuzz.trust", &d);
    if (rc != NNM_OK) {
        check_diag(&d, rc);
        if (t != NULL) __builtin_trap();
        return;
    }
    nnm_trust_check(t, "alice", KAT_PK_A, NULL, 0, NOW, NULL);
    nnm_trust_free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_advert(data, size);
    fuzz_cert(data, size);
    fuzz_hello(data, size);
    fuzz_trust(data, size);
    return 0;
}
