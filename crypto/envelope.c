/* crypto/envelope.c — sealed envelopes (XChaCha20-Poly1305, random 24-byte nonce, frame header
 * as associated data) and the sliding replay window over frame counters.
 *
 * Each envelope stands alone (nonce || ciphertext || tag), so lost, duplicated and reordered
 * MQTT messages cost nothing but themselves; duplicates are caught by the replay window after
 * authentication. */
#include <inttypes.h>
#include <stdint.h>

#include "crypto_int.h"

_Static_assert(NNM_ENVELOPE_NONCE_BYTES == crypto_aead_xchacha20poly1305_ietf_NPUBBYTES, "nonce size");
_Static_assert(NNM_ENVELOPE_TAG_BYTES == crypto_aead_xchacha20poly1305_ietf_ABYTES, "tag size");
_Static_assert(NNM_KEY_BYTES == crypto_aead_xchacha20poly1305_ietf_KEYBYTES, "key size");
_Static_assert(NNM_REPLAY_WINDOW % 64 == 0, "replay window is whole words");

nnm_err crypto__envelope_seal_nonce(uint8_t *out, size_t out_cap, size_t *out_len,
                                    const uint8_t key[NNM_KEY_BYTES],
                                    const uint8_t nonce[NNM_ENVELOPE_NONCE_BYTES],
                                    const uint8_t *ad, size_t ad_len, const uint8_t *pt,
                                    size_t pt_len, nnm_diag *diag)
{
    if (out == NULL || out_len == NULL || key == NULL || nonce == NULL ||
        (ad == NULL && ad_len > 0) || (pt == NULL && pt_len > 0))
        return nnm_diag_set(diag, NNM_EINVAL, "nnm_envelope_seal: NULL argument");
    if (pt_len > crypto_aead_xchacha20poly1305_ietf_MESSAGEBYTES_MAX ||
        out_cap < NNM_ENVELOPE_OVERHEAD || out_cap - NNM_ENVELOPE_OVERHEAD < pt_len)
        return nnm_diag_set(diag, NNM_ERANGE,
                            "sealing %zu bytes needs an output of %zu bytes or more, have %zu",
                            pt_len, pt_len + NNM_ENVELOPE_OVERHEAD, out_cap);
    memcpy(out, nonce, NNM_ENVELOPE_NONCE_BYTES);
    unsigned long long clen = 0;
    crypto_aead_xchacha20poly1305_ietf_encrypt(out + NNM_ENVELOPE_NONCE_BYTES, &clen, pt, pt_len,
                                               ad, ad_len, NULL, nonce, key);
    *out_len = NNM_ENVELOPE_NONCE_BYTES + (size_t)clen;
    return NNM_OK;
}

nnm_err nnm_envelope_seal(uint8_t *out, size_t out_cap, size_t *out_len,
                          const uint8_t key[NNM_KEY_BYTES], const uint8_t *ad, size_t ad_len,
                          const uint8_t *pt, size_t pt_len, nnm_diag *diag)
{
    nnm_err rc = crypto__init(diag);
    if (rc != NNM_OK) return rc;
    /* 192-bit random nonces: collisions are negligible without any per-key state. */
    uint8_t nonce[NNM_ENVELOPE_NONCE_BYTES];
    randombytes_buf(nonce, sizeof nonce);
    return crypto__envelope_seal_nonce(out, out_cap, out_len, key, nonce, ad, ad_len, pt, pt_len,
                                       diag);
}

nnm_err nnm_envelope_open(uint8_t *out, size_t out_cap, size_t *out_len,
                          const uint8_t key[NNM_KEY_BYTES], const uint8_t *ad, size_t ad_len,
                          const uint8_t *sealed, size_t sealed_len, nnm_diag *diag)
{
    if (sealed_len < NNM_ENVELOPE_OVERHEAD)
        return nnm_diag_set(diag, NNM_EFORMAT,
                            "sealed envelope is %zu bytes, shorter than nonce and tag (%d)",
                            sealed_len, NNM_ENVELOPE_OVERHEAD);
    if ((out == NULL && out_cap > 0) || out_len == NULL || key == NULL || sealed == NULL ||
        (ad == NULL && ad_len > 0))
        return nnm_diag_set(diag, NNM_EINVAL, "nnm_envelope_open: NULL argument");
    size_t pt_len = sealed_len - NNM_ENVELOPE_OVERHEAD;
    if (out_cap < pt_len)
        return nnm_diag_set(diag, NNM_ERANGE, "opening needs an output of %zu bytes, have %zu",
                            pt_len, out_cap);
    nnm_err rc = crypto__init(diag);
    if (rc != NNM_OK) return rc;
    /* libsodium wants a non-NULL output even for an empty message. */
    uint8_t dummy;
    uint8_t *dst = out != NULL ? out : &dummy;
    unsigned long long mlen = 0;
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(dst, &mlen, NULL,
                                                   sealed + NNM_ENVELOPE_NONCE_BYTES,
                                                   sealed_len - NNM_ENVELOPE_NONCE_BYTES, ad,
                                                   ad_len, sealed, key) != 0) {
        if (out != NULL && pt_len > 0) sodium_memzero(out, pt_len);
        return nnm_diag_set(diag, NNM_ECRYPTO,
                            "sealed envelope failed authentication (wrong key, or altered in "
                            "transit)");
    }
    *out_len = (size_t)mlen;
    return NNM_OK;
}

/* ---- replay window -------------------------------------------------------------------- */

enum { WORDS = NNM_REPLAY_WINDOW / 64 };

void nnm_replay_init(nnm_replay *r)
{
    if (r != NULL) memset(r, 0, sizeof *r);
}

static int bit_get(const nnm_replay *r, uint64_t i)
{
    return (int)((r->bits[i / 64] >> (i % 64)) & 1u);
}

static void bit_set(nnm_replay *r, uint64_t i)
{
    r->bits[i / 64] |= (uint64_t)1 << (i % 64);
}

nnm_err nnm_replay_check(const nnm_replay *r, uint64_t counter, nnm_diag *diag)
{
    if (r == NULL) return nnm_diag_set(diag, NNM_EINVAL, "nnm_replay_check: NULL argument");
    if (!r->any || counter > r->top) return NNM_OK;
    uint64_t back = r->top - counter;
    if (back >= NNM_REPLAY_WINDOW)
        return nnm_diag_set(diag, NNM_EREPLAY,
                            "frame counter %" PRIu64 " is %" PRIu64 " behind the newest (%" PRIu64
                            "), outside the replay window of %d", counter, back, r->top,
                            NNM_REPLAY_WINDOW);
    if (bit_get(r, back))
        return nnm_diag_set(diag, NNM_EREPLAY, "frame counter %" PRIu64 " was already received",
                            counter);
    return NNM_OK;
}

/* Moves the window up by s counters: bit i becomes bit i + s; bits pushed past the window are
 * forgotten. */
static void window_shift(nnm_replay *r, uint64_t s)
{
    if (s >= NNM_REPLAY_WINDOW) {
        memset(r->bits, 0, sizeof r->bits);
        return;
    }
    size_t ws = (size_t)(s / 64);
    unsigned bs = (unsigned)(s % 64);
    for (size_t w = WORDS; w-- > 0;) {
        uint64_t v = 0;
        if (w >= ws) {
            v = r->bits[w - ws] << bs;
            if (bs != 0 && w >= ws + 1) v |= r->bits[w - ws - 1] >> (64 - bs);
        }
        r->bits[w] = v;
    }
}

nnm_err nnm_replay_commit(nnm_replay *r, uint64_t counter, nnm_diag *diag)
{
    nnm_err rc = nnm_replay_check(r, counter, diag);
    if (rc != NNM_OK) return rc;
    if (!r->any) {
        memset(r->bits, 0, sizeof r->bits);
        r->any = 1;
        r->top = counter;
    } else if (counter > r->top) {
        window_shift(r, counter - r->top);
        r->top = counter;
    }
    bit_set(r, r->top - counter);
    return NNM_OK;
}
