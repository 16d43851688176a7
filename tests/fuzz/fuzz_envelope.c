/* tests/fuzz/fuzz_envelope.c — libFuzzer target for nnm_envelope_open (outside bytes: every
 * sealed frame body from the broker) and for the replay window fed with arbitrary counters.
 *
 * The input is the sealed blob, opened with a fixed key and header (those of the XChaCha20
 * known-answer vector, so the seed opens and mutations start from a valid envelope). Contract:
 * shorter than nonce + tag is NNM_EFORMAT, anything else is NNM_OK or NNM_ECRYPTO; on error
 * the output is zeroed and the diagnostic is one printable sentence with the returned code.
 * The same bytes, read as big-endian u64 counters, drive a replay window that is checked
 * against a plain reference model. A broken invariant traps. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crypto_int.h"
#include "../vectors/crypto/kat.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_diag(const nnm_diag *d, nnm_err rc)
{
    if (d->code != rc || d->msg[0] == '\0') __builtin_trap();
    const char *end = memchr(d->msg, '\0', sizeof d->msg);
    if (end == NULL) __builtin_trap();
    for (const char *p = d->msg; p < end; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e) __builtin_trap();
}

static void fuzz_open(const uint8_t *data, size_t size)
{
    uint8_t *out = malloc(size + 1);
    if (out == NULL) return;
    memset(out, 0xa5, size + 1);
    size_t n = 0;
    nnm_diag d;
    nnm_diag_clear(&d);
    nnm_err rc = nnm_envelope_open(out, size, &n, KAT_ENV_KEY, KAT_ENV_AD, sizeof KAT_ENV_AD, data,
                                   size, &d);
    if (size < NNM_ENVELOPE_OVERHEAD) {
        if (rc != NNM_EFORMAT) __builtin_trap();
        check_diag(&d, rc);
    } else if (rc == NNM_OK) {
        if (n != size - NNM_ENVELOPE_OVERHEAD) __builtin_trap();
        /* authentic: sealing the plaintext again under the same nonce gives the same bytes */
        uint8_t *again = malloc(size);
        size_t m = 0;
        if (again != NULL) {
            if (crypto__envelope_seal_nonce(again, size, &m, KAT_ENV_KEY, data, KAT_ENV_AD,
                                            sizeof KAT_ENV_AD, out, n, NULL) != NNM_OK ||
                m != size || memcmp(again, data, size) != 0)
                __builtin_trap();
            free(again);
        }
    } else {
        if (rc != NNM_ECRYPTO) __builtin_trap();
        check_diag(&d, rc);
        for (size_t i = 0; i < size - NNM_ENVELOPE_OVERHEAD; i++)
            if (out[i] != 0) __builtin_trap();
    }
    free(out);
}

/* Reference: accepted iff never accepted before and not NNM_REPLAY_WINDOW or more below the
 * highest accepted counter. */
static void fuzz_replay(const uint8_t *data, size_t size)
{
    enum { MAXC = 512 };
    uint64_t seen[MAXC];
    size_t nseen = 0;
    uint64_t top = 0;
    int any = 0;
    nnm_replay r;
    nnm_replay_init(&r);
    uint64_t base = 0;
    for (size_t off = 0; off + 2 <= size && nseen < MAXC; off += 2) {
        /* two bytes per counter: a small signed step from a base that the first step sets
         * far up, so the window edge, wrap-around and big jumps are all reachable */
        int16_t step = (int16_t)(data[off] << 8 | data[off + 1]);
        uint64_t c = off == 0 ? (uint64_t)(uint16_t)step << 48 : base + (uint64_t)(int64_t)step;
        base = c;
        int dup = 0;
        for (size_t i = 0; i < nseen; i++) dup |= seen[i] == c;
        int want_ok = !dup && (!any || c > top || top - c < NNM_REPLAY_WINDOW);
        nnm_diag d;
        nnm_diag_clear(&d);
        nnm_err chk = nnm_replay_check(&r, c, NULL);
        nnm_err rc = nnm_replay_commit(&r, c, &d);
        if (chk != rc) __builtin_trap();
        if ((rc == NNM_OK) != want_ok) __builtin_trap();
        if (rc != NNM_OK) {
            if (rc != NNM_EREPLAY) __builtin_trap();
            check_diag(&d, rc);
            continue;
        }
        if (nnm_replay_check(&r, c, NULL) != NNM_EREPLAY) __builtin_trap();
        seen[nseen++] = c;
        if (!any || c > top) top = c;
        any = 1;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_open(data, size);
    fuzz_replay(data, size);
    return 0;
}
