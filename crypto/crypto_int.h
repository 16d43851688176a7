/* crypto/crypto_int.h — internals shared by the files of crypto/: the identity struct, byte
 * order helpers, domain-separation tags and the deterministic variants used by known-answer
 * tests. Not installed. */
#ifndef NNM_CRYPTO_INT_H
#define NNM_CRYPTO_INT_H

#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include <sodium.h>

#include "nnmesh/crypto.h"

/* Domain-separation tags: every signature covers one of these first, so a signature made for
 * one purpose can never be replayed as another. */
#define CRYPTO_TAG_ADVERT "nnmesh-advert-v1"
#define CRYPTO_TAG_CERT "nnmesh-cert-v1"
#define CRYPTO_TAG_HELLO "nnmesh-hello-v1"
#define CRYPTO_TAG_SESSION "nnmesh-session-v1"

/* Version byte at the start of every encoded cert, advert and hello. */
#define CRYPTO_FORMAT_V1 1

struct nnm_identity {
    /* crypto_sign_SECRETKEYBYTES in sodium_malloc'd memory, PROT_NONE except while signing
     * or saving under lock. */
    unsigned char *sk;
    uint8_t pk[NNM_PUBKEY_BYTES];
    pthread_mutex_t lock;
};

/* sodium_init once; NNM_EBACKEND if libsodium cannot start. */
nnm_err crypto__init(nnm_diag *diag);

/* A new identity from a 32-byte Ed25519 seed (key files and known-answer tests). */
nnm_err crypto__identity_from_seed(nnm_identity **out, const uint8_t seed[32], nnm_diag *diag);

/* Ed25519 detached signature of msg with id's secret key. */
void crypto__identity_sign(uint8_t sig[NNM_SIG_BYTES], const nnm_identity *id,
                           const uint8_t *msg, size_t len);

/* Nonzero if pk is usable as an Ed25519 public key: not all-zero, on the curve, canonical,
 * not of small order. */
int crypto__pubkey_is_valid(const uint8_t pk[NNM_PUBKEY_BYTES]);

/* nnm_envelope_seal with a caller-chosen nonce. For known-answer tests only: reusing a nonce
 * under one key destroys confidentiality and authenticity. */
nnm_err crypto__envelope_seal_nonce(uint8_t *out, size_t out_cap, size_t *out_len,
                                    const uint8_t key[NNM_KEY_BYTES],
                                    const uint8_t nonce[NNM_ENVELOPE_NONCE_BYTES],
                                    const uint8_t *ad, size_t ad_len, const uint8_t *pt,
                                    size_t pt_len, nnm_diag *diag);

/* nnm_handshake_new with a fixed ephemeral secret and nonce (known-answer tests only). */
nnm_err crypto__handshake_new_fixed(nnm_handshake **out, const nnm_identity *self,
                                    const char *self_id, const char *peer_id,
                                    const uint8_t *cert, size_t cert_len,
                                    const uint8_t eph_sk[32], const uint8_t nonce[16],
                                    nnm_diag *diag);

/* Copies up to n bytes of untrusted text s into out (cap bytes, NUL-terminated) for use in a
 * diagnostic: bytes outside printable ASCII become '?', and a cut is marked with "...".
 * Returns out. */
const char *crypto__quote(char *out, size_t cap, const char *s, size_t n);

/* A bounded reader over bytes from outside: every get checks what is left first and, once
 * anything fails, ok stays 0 and further gets read nothing. */
typedef struct crypto_rd {
    const uint8_t *p;
    size_t left;
    int ok;
} crypto_rd;

static inline void crypto__put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)(v & 0xff);
        v >>= 8;
    }
}

static inline uint64_t crypto__get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = (v << 8) | p[i];
    return v;
}

static inline const uint8_t *crypto__rd_take(crypto_rd *r, size_t n)
{
    if (!r->ok || r->left < n) {
        r->ok = 0;
        return NULL;
    }
    const uint8_t *p = r->p;
    r->p += n;
    r->left -= n;
    return p;
}

static inline uint64_t crypto__rd_u64(crypto_rd *r)
{
    const uint8_t *p = crypto__rd_take(r, 8);
    return p != NULL ? crypto__get_u64(p) : 0;
}

static inline unsigned crypto__rd_u8(crypto_rd *r)
{
    const uint8_t *p = crypto__rd_take(r, 1);
    return p != NULL ? p[0] : 0;
}

static inline unsigned crypto__rd_u16(crypto_rd *r)
{
    const uint8_t *p = crypto__rd_take(r, 2);
    return p != NULL ? ((unsigned)p[0] << 8 | p[1]) : 0;
}

/* Reads a length-prefixed (u8) id into out (NNM_ID_MAX + 1 bytes); the id must be valid. */
static inline void crypto__rd_id(crypto_rd *r, char out[NNM_ID_MAX + 1])
{
    unsigned n = crypto__rd_u8(r);
    const uint8_t *p = NULL;
    out[0] = '\0';
    if (n == 0 || n > NNM_ID_MAX || (p = crypto__rd_take(r, n)) == NULL) {
        r->ok = 0;
        return;
    }
    memcpy(out, p, n);
    out[n] = '\0';
    if (!nnm_id_is_valid(out)) {
        out[0] = '\0';
        r->ok = 0;
    }
}

#endif
