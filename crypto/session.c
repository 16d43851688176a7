/* crypto/session.c — pairwise sessions from a signed X25519 exchange, and their rekey policy.
 *
 * Both sides send one hello; there are no roles and no ordering, so the exchange survives
 * MQTT reordering. A hello is (big-endian), signed as CRYPTO_TAG_HELLO || everything before sig:
 *   u8 version=1 | u8 len | sender id | u8 len | receiver id | identity pk[32] |
 *   ephemeral X25519 pk[32] | nonce[16] | u16 cert_len | cert | sig[64]
 * Keys: with the two sides ordered by id (lo < hi) and T the transcript
 *   CRYPTO_TAG_SESSION || lo id || hi id || lo eph || hi eph || lo nonce || hi nonce ||
 *   lo identity pk || hi identity pk    (ids length-prefixed),
 * okm = BLAKE2b-512(key = X25519(own eph, peer eph), T); okm[0..32) seals lo -> hi,
 * okm[32..64) seals hi -> lo; the session id is the first 8 bytes of BLAKE2b-128(T).
 * A replayed old hello yields keys nobody holds, so it can only fail to authenticate. */
#include <stdio.h>
#include <stdlib.h>

#include "crypto_int.h"

#define NONCE_BYTES 16
#define HELLO_TAG_LEN (sizeof CRYPTO_TAG_HELLO - 1)

_Static_assert(crypto_scalarmult_BYTES == 32 && crypto_scalarmult_SCALARBYTES == 32, "X25519");
_Static_assert(HELLO_TAG_LEN + 1 + 2 * (1 + NNM_ID_MAX) + 32 + 32 + NONCE_BYTES + 2 + NNM_CERT_MAX +
                       NNM_SIG_BYTES <= NNM_HELLO_MAX + HELLO_TAG_LEN,
               "NNM_HELLO_MAX holds the largest hello");

struct nnm_handshake {
    const nnm_identity *self;
    char self_id[NNM_ID_MAX + 1];
    char peer_id[NNM_ID_MAX + 1];
    uint8_t *eph_sk;            /* 32 bytes, sodium_malloc'd */
    uint8_t eph_pk[32];
    uint8_t nonce[NONCE_BYTES];
    uint8_t cert[NNM_CERT_MAX];
    size_t cert_len;
};

struct nnm_session {
    uint8_t *keys;              /* 64 bytes, sodium_malloc'd: tx key then rx key */
    uint64_t id;
    char peer[NNM_ID_MAX + 1];
    uint64_t created;
    uint64_t sent;
    uint64_t max_messages;
    uint64_t max_age;
    nnm_replay rx;
};

void nnm_handshake_free(nnm_handshake *hs)
{
    if (hs == NULL) return;
    if (hs->eph_sk != NULL) sodium_free(hs->eph_sk);
    sodium_memzero(hs, sizeof *hs);
    free(hs);
}

nnm_err crypto__handshake_new_fixed(nnm_handshake **out, const nnm_identity *self,
                                    const char *self_id, const char *peer_id,
                                    const uint8_t *cert, size_t cert_len,
                                    const uint8_t eph_sk[32], const uint8_t nonce[16],
                                    nnm_diag *diag)
{
    if (out == NULL || self == NULL || self_id == NULL || peer_id == NULL ||
        (cert == NULL && cert_len > 0))
        return nnm_diag_set(diag, NNM_EINVAL, "nnm_handshake_new: NULL argument");
    *out = NULL;
    char q1[40], q2[40];
    if (!nnm_id_is_valid(self_id) || !nnm_id_is_valid(peer_id))
        return nnm_diag_set(diag, NNM_EINVAL,
                            "handshake: node ids '%s' and '%s' must be 1-32 characters of "
                            "a-z, 0-9 and '-'", crypto__quote(q1, sizeof q1, self_id, SIZE_MAX),
                            crypto__quote(q2, sizeof q2, peer_id, SIZE_MAX));
    if (strcmp(self_id, peer_id) == 0)
        return nnm_diag_set(diag, NNM_EINVAL, "handshake: node '%s' cannot pair with itself",
                            self_id);
    if (cert_len > NNM_CERT_MAX)
        return nnm_diag_set(diag, NNM_ERANGE, "handshake: certificate is %zu bytes, more than %d",
                            cert_len, NNM_CERT_MAX);
    nnm_err rc = crypto__init(diag);
    if (rc != NNM_OK) return rc;
    nnm_handshake *hs = calloc(1, sizeof *hs);
    if (hs == NULL) return nnm_diag_set(diag, NNM_ENOMEM, "out of memory for a handshake");
    if ((hs->eph_sk = sodium_malloc(32)) == NULL) {
        nnm_handshake_free(hs);
        return nnm_diag_set(diag, NNM_ENOMEM, "cannot allocate guarded memory for a handshake");
    }
    hs->self = self;
    snprintf(hs->self_id, sizeof hs->self_id, "%s", self_id);
    snprintf(hs->peer_id, sizeof hs->peer_id, "%s", peer_id);
    memcpy(hs->eph_sk, eph_sk, 32);
    crypto_scalarmult_base(hs->eph_pk, hs->eph_sk);
    memcpy(hs->nonce, nonce, NONCE_BYTES);
    if (cert_len > 0) memcpy(hs->cert, cert, cert_len);
    hs->cert_len = cert_len;
    *out = hs;
    return NNM_OK;
}

nnm_err nnm_handshake_new(nnm_handshake **out, const nnm_identity *self, const char *self_id,
                          const char *peer_id, const uint8_t *cert, size_t cert_len,
                          nnm_diag *diag)
{
    nnm_err rc = crypto__init(diag);
    if (rc != NNM_OK) return rc;
    uint8_t sk[32], nonce[NONCE_BYTES];
    randombytes_buf(sk, sizeof sk);
    randombytes_buf(nonce, sizeof nonce);
    rc = crypto__handshake_new_fixed(out, self, self_id, peer_id, cert, cert_len, sk, nonce, diag);
    sodium_memzero(sk, sizeof sk);
    return rc;
}

static size_t put_id(uint8_t *p, const char *id)
{
    size_t n = strlen(id);
    p[0] = (uint8_t)n;
    memcpy(p + 1, id, n);
    return 1 + n;
}

nnm_err nnm_hello_encode(uint8_t *out, size_t cap, size_t *out_len, const nnm_handshake *hs,
                         nnm_diag *diag)
{
    if (out == NULL || out_len == NULL || hs == NULL)
        return nnm_diag_set(diag, NNM_EINVAL, "nnm_hello_encode: NULL argument");
    uint8_t msg[HELLO_TAG_LEN + NNM_HELLO_MAX];
    size_t o = HELLO_TAG_LEN;
    memcpy(msg, CRYPTO_TAG_HELLO, HELLO_TAG_LEN);
    msg[o++] = CRYPTO_FORMAT_V1;
    o += put_id(msg + o, hs->self_id);
    o += put_id(msg + o, hs->peer_id);
    memcpy(msg + o, hs->self->pk, 32);
    o += 32;
    memcpy(msg + o, hs->eph_pk, 32);
    o += 32;
    memcpy(msg + o, hs->nonce, NONCE_BYTES);
    o += NONCE_BYTES;
    msg[o++] = (uint8_t)(hs->cert_len >> 8);
    msg[o++] = (uint8_t)hs->cert_len;
    memcpy(msg + o, hs->cert, hs->cert_len);
    o += hs->cert_len;
    size_t enc = o - HELLO_TAG_LEN;
    if (cap < enc + NNM_SIG_BYTES)
        return nnm_diag_set(diag, NNM_ERANGE, "hello needs %zu bytes, have %zu",
                            enc + NNM_SIG_BYTES, cap);
    uint8_t sig[NNM_SIG_BYTES];
    crypto__identity_sign(sig, hs->self, msg, o);
    memcpy(out, msg + HELLO_TAG_LEN, enc);
    memcpy(out + enc, sig, sizeof sig);
    *out_len = enc + NNM_SIG_BYTES;
    return NNM_OK;
}

/* The fields of a received hello; pointers into the message. */
typedef struct hello {
    char from[NNM_ID_MAX + 1];
    char to[NNM_ID_MAX + 1];
    const uint8_t *pk, *eph, *nonce, *cert, *sig;
    size_t cert_len, signed_len;
} hello;

static nnm_err hello_parse(hello *h, const uint8_t *buf, size_t len, nnm_diag *diag)
{
    memset(h, 0, sizeof *h);
    crypto_rd r = {buf, len, 1};
    unsigned ver = crypto__rd_u8(&r);
    if (r.ok && ver != CRYPTO_FORMAT_V1)
        return nnm_diag_set(diag, NNM_EFORMAT, "hello version %u is not supported", ver);
    crypto__rd_id(&r, h->from);
    crypto__rd_id(&r, h->to);
    h->pk = crypto__rd_take(&r, 32);
    h->eph = crypto__rd_take(&r, 32);
    h->nonce = crypto__rd_take(&r, NONCE_BYTES);
    h->cert_len = crypto__rd_u16(&r);
    if (h->cert_len > NNM_CERT_MAX) r.ok = 0;
    h->cert = crypto__rd_take(&r, h->cert_len);
    h->signed_len = len - r.left;
    h->sig = crypto__rd_take(&r, NNM_SIG_BYTES);
    if (!r.ok || r.left != 0)
        return nnm_diag_set(diag, NNM_EFORMAT, "hello is malformed (%zu bytes)", len);
    if (h->cert_len == 0) h->cert = NULL;
    return NNM_OK;
}

/* Appends the transcript side (id, eph, nonce, pk) in the documented order. */
static void derive(uint8_t keys[64], uint64_t *sid, const uint8_t shared[32],
                   const nnm_handshake *hs, const hello *h)
{
    int self_lo = strcmp(hs->self_id, hs->peer_id) < 0;
    const char *ids[2] = {self_lo ? hs->self_id : hs->peer_id, self_lo ? hs->peer_id : hs->self_id};
    const uint8_t *eph[2] = {self_lo ? hs->eph_pk : h->eph, self_lo ? h->eph : hs->eph_pk};
    const uint8_t *non[2] = {self_lo ? hs->nonce : h->nonce, self_lo ? h->nonce : hs->nonce};
    const uint8_t *pks[2] = {self_lo ? hs->self->pk : h->pk, self_lo ? h->pk : hs->self->pk};
    uint8_t t[sizeof CRYPTO_TAG_SESSION + 2 * (1 + NNM_ID_MAX) + 2 * (32 + NONCE_BYTES + 32)];
    size_t o = sizeof CRYPTO_TAG_SESSION - 1;
    memcpy(t, CRYPTO_TAG_SESSION, o);
    for (int i = 0; i < 2; i++) o += put_id(t + o, ids[i]);
    for (int i = 0; i < 2; i++, o += 32) memcpy(t + o, eph[i], 32);
    for (int i = 0; i < 2; i++, o += NONCE_BYTES) memcpy(t + o, non[i], NONCE_BYTES);
    for (int i = 0; i < 2; i++, o += 32) memcpy(t + o, pks[i], 32);
    uint8_t okm[64], idh[16];
    crypto_generichash(okm, sizeof okm, t, o, shared, 32);
    crypto_generichash(idh, sizeof idh, t, o, NULL, 0);
    /* keys = tx || rx: lo sends with okm[0..32). */
    memcpy(keys, self_lo ? okm : okm + 32, 32);
    memcpy(keys + 32, self_lo ? okm + 32 : okm, 32);
    *sid = crypto__get_u64(idh);
    sodium_memzero(okm, sizeof okm);
}

nnm_err nnm_hello_open(nnm_session **out, const nnm_handshake *hs, const uint8_t *msg,
                       size_t len, nnm_trust *trust, uint64_t now, nnm_diag *diag)
{
    if (out == NULL || hs == NULL || (msg == NULL && len > 0) || trust == NULL)
        return nnm_diag_set(diag, NNM_EINVAL, "nnm_hello_open: NULL argument");
    *out = NULL;
    nnm_err rc = crypto__init(diag);
    if (rc != NNM_OK) return rc;
    hello h;
    if ((rc = hello_parse(&h, msg, len, diag)) != NNM_OK) return rc;
    if (strcmp(h.from, hs->peer_id) != 0 || strcmp(h.to, hs->self_id) != 0)
        return nnm_diag_set(diag, NNM_EINVAL,
                            "hello from '%s' to '%s' does not belong to the handshake of '%s' with "
                            "'%s'", h.from, h.to, hs->self_id, hs->peer_id);
    uint8_t signed_msg[HELLO_TAG_LEN + NNM_HELLO_MAX];
    memcpy(signed_msg, CRYPTO_TAG_HELLO, HELLO_TAG_LEN);
    memcpy(signed_msg + HELLO_TAG_LEN, msg, h.signed_len);
    if (crypto_sign_verify_detached(h.sig, signed_msg, HELLO_TAG_LEN + h.signed_len, h.pk) != 0)
        return nnm_diag_set(diag, NNM_ECRYPTO,
                            "hello from '%s' has a bad signature (forged or corrupted)", h.from);
    if ((rc = nnm_trust_check(trust, h.from, h.pk, h.cert, h.cert_len, now, diag)) != NNM_OK) {
        nnm_diag_prefix(diag, "hello refused");
        return rc;
    }
    nnm_session *s = calloc(1, sizeof *s);
    uint8_t *shared = sodium_malloc(32);
    if (s == NULL || shared == NULL || (s->keys = sodium_malloc(64)) == NULL) {
        rc = nnm_diag_set(diag, NNM_ENOMEM, "out of memory for a session with '%s'", h.from);
        goto fail;
    }
    /* crypto_scalarmult fails when the result is all-zero (a low-order peer key). */
    if (crypto_scalarmult(shared, hs->eph_sk, h.eph) != 0) {
        rc = nnm_diag_set(diag, NNM_ECRYPTO,
                          "hello from '%s' carries a degenerate ephemeral key; refused", h.from);
        goto fail;
    }
    derive(s->keys, &s->id, shared, hs, &h);
    sodium_free(shared);
    snprintf(s->peer, sizeof s->peer, "%s", h.from);
    s->created = now;
    s->max_messages = (uint64_t)1 << 32;
    s->max_age = 3600;
    nnm_replay_init(&s->rx);
    *out = s;
    return NNM_OK;
fail:
    if (shared != NULL) sodium_free(shared);
    nnm_session_free(s);
    return rc;
}

void nnm_session_free(nnm_session *s)
{
    if (s == NULL) return;
    if (s->keys != NULL) sodium_free(s->keys);
    sodium_memzero(s, sizeof *s);
    free(s);
}

uint64_t nnm_session_get_id(const nnm_session *s)
{
    return s != NULL ? s->id : 0;
}

const char *nnm_session_get_peer(const nnm_session *s)
{
    return s != NULL ? s->peer : NULL;
}

const uint8_t *nnm_session_get_tx_key(const nnm_session *s)
{
    return s != NULL ? s->keys : NULL;
}

const uint8_t *nnm_session_get_rx_key(const nnm_session *s)
{
    return s != NULL ? s->keys + 32 : NULL;
}

void nnm_session_set_rekey(nnm_session *s, uint64_t max_messages, uint64_t max_age)
{
    if (s == NULL) return;
    s->max_messages = max_messages;
    s->max_age = max_age;
}

int nnm_session_needs_rekey(const nnm_session *s, uint64_t now)
{
    if (s == NULL) return 1;
    if (s->max_messages != 0 && s->sent >= s->max_messages) return 1;
    if (s->max_age != 0 && now >= s->created && now - s->created >= s->max_age) return 1;
    return 0;
}

nnm_err nnm_session_seal(uint8_t *out, size_t out_cap, size_t *out_len, nnm_session *s,
                         const uint8_t *ad, size_t ad_len, const uint8_t *pt, size_t pt_len,
                         nnm_diag *diag)
{
    if (s == NULL) return nnm_diag_set(diag, NNM_EINVAL, "nnm_session_seal: NULL session");
    nnm_err rc = nnm_envelope_seal(out, out_cap, out_len, s->keys, ad, ad_len, pt, pt_len, diag);
    if (rc == NNM_OK) s->sent++;
    return rc;
}

nnm_err nnm_session_open(uint8_t *out, size_t out_cap, size_t *out_len, nnm_session *s,
                         uint64_t counter, const uint8_t *ad, size_t ad_len,
                         const uint8_t *sealed, size_t sealed_len, nnm_diag *diag)
{
    if (s == NULL) return nnm_diag_set(diag, NNM_EINVAL, "nnm_session_open: NULL session");
    size_t n = 0;
    nnm_err rc = nnm_envelope_open(out, out_cap, &n, s->keys + 32, ad, ad_len, sealed, sealed_len,
                                   diag);
    if (rc != NNM_OK) return rc;
    if ((rc = nnm_replay_commit(&s->rx, counter, diag)) != NNM_OK) {
        if (n > 0) sodium_memzero(out, n);
        nnm_diag_prefix(diag, "session with '%s'", s->peer);
        return rc;
    }
    *out_len = n;
    return NNM_OK;
}
