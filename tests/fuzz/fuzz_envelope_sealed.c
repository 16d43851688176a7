/* tests/fuzz/fuzz_envelope_sealed.c — libFuzzer target that SEALS the input and opens it, so
 * the fuzzer's bytes reach what runs after a successful open: the strict frame body decoder
 * (every frame type, chosen by the input), exactly as the link does with an authenticated
 * frame.
 *
 * Input: byte 0 = associated-data length (mod 64, capped by the input), then the header
 * bytes, then the plaintext. Checks: open(seal(pt)) == pt; the output is pt + overhead
 * bytes; a second seal uses a fresh nonce; flipping one bit (chosen by the input) anywhere in
 * the sealed blob or the header makes open fail with NNM_ECRYPTO. A broken invariant traps. */
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crypto_int.h"
#include "../vectors/crypto/kat.h"
#include "nnmesh/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) return 0;
    size_t ad_len = data[0] % 64;
    if (ad_len > size - 1) ad_len = size - 1;
    const uint8_t *ad = data + 1;
    const uint8_t *pt = ad + ad_len;
    size_t pt_len = size - 1 - ad_len;

    size_t cap = pt_len + NNM_ENVELOPE_OVERHEAD;
    uint8_t *s1 = malloc(cap), *s2 = malloc(cap), *out = malloc(pt_len + 1), *adc = malloc(ad_len + 1);
    if (s1 == NULL || s2 == NULL || out == NULL || adc == NULL) goto done;
    size_t n1 = 0, n2 = 0, m = 0;
    if (nnm_envelope_seal(s1, cap, &n1, KAT_ENV_KEY, ad, ad_len, pt, pt_len, NULL) != NNM_OK ||
        n1 != cap)
        __builtin_trap();
    if (nnm_envelope_seal(s2, cap, &n2, KAT_ENV_KEY, ad, ad_len, pt, pt_len, NULL) != NNM_OK ||
        memcmp(s1, s2, NNM_ENVELOPE_NONCE_BYTES) == 0)
        __builtin_trap();
    if (nnm_envelope_open(out, pt_len, &m, KAT_ENV_KEY, ad, ad_len, s1, n1, NULL) != NNM_OK ||
        m != pt_len || (pt_len > 0 && memcmp(out, pt, pt_len) != 0))
        __builtin_trap();

    /* Behind the crypto: the opened body goes to the frame body decoder, as in the link.
     * A decoded body must re-encode (the decoder accepts canonical bytes only). */
    {
        nnm_frame_header hh;
        memset(&hh, 0, sizeof hh);
        hh.version = NNM_WIRE_VERSION;
        hh.type = (uint8_t)(1 + (ad_len % (NNM_FRAME__COUNT - 1)));
        snprintf(hh.sender, sizeof hh.sender, "a");
        snprintf(hh.receiver, sizeof hh.receiver, "b");
        snprintf(hh.topic, sizeof hh.topic, "nnmesh/m/inbox/b");
        nnm_frame *fr = NULL;
        if (nnm_frame_body_decode(&fr, &hh, out, m, NULL, NULL) == NNM_OK) nnm_frame_free(fr);
    }

    /* one bit flipped, in the blob or in the header, chosen from the input itself */
    uint64_t h = 1469598103934665603u;
    for (size_t i = 0; i < size; i++) h = (h ^ data[i]) * 1099511628211u;
    size_t bits = (n1 + ad_len) * 8, bit = (size_t)(h % bits);
    memcpy(adc, ad, ad_len);
    if (bit < n1 * 8)
        s1[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    else
        adc[(bit - n1 * 8) / 8] ^= (uint8_t)(1u << (bit % 8));
    if (nnm_envelope_open(out, pt_len, &m, KAT_ENV_KEY, adc, ad_len, s1, n1, NULL) != NNM_ECRYPTO)
        __builtin_trap();
done:
    free(s1);
    free(s2);
    free(out);
    free(adc);
    return 0;
}
