/* crypto/advert.c — signed adverts: a node's capacity announcement (an opaque body) bound to its
 * id, key, epoch, sequence and expiry, and the per-peer check that adverts only move forward.
 *
 * Encoding (big-endian), signed as CRYPTO_TAG_ADVERT || everything before sig:
 *   u8 version=1 | u8 id_len | id | pk[32] | u64 epoch | u64 seq | u64 expiry |
 *   u16 cert_len | cert | u32 body_len | body | sig[64]                                  */
#include <inttypes.h>
#include <stdlib.h>

#include "crypto_int.h"

#define TAG_LEN (sizeof CRYPTO_TAG_ADVERT - 1)

void nnm_advert_state_init(nnm_advert_state *st)
{
    if (st != NULL) memset(st, 0, sizeof *st);
}

nnm_err nnm_advert_seal(uint8_t *out, size_t cap, size_t *out_len, const nnm_identity *self,
                        const char *id, const uint8_t *cert, size_t cert_len, uint64_t epoch,
                        uint64_t seq, uint64_t expiry, const uint8_t *body, size_t body_len,
                        nnm_diag *diag)
{
    if (out == NULL || out_len == NULL || self == NULL || id == NULL ||
        (cert == NULL && cert_len > 0) || (body == NULL && body_len > 0))
        return nnm_diag_set(diag, NNM_EINVAL, "nnm_advert_seal: NULL argument");
    char q[40];
    if (!nnm_id_is_valid(id))
        return nnm_diag_set(diag, NNM_EINVAL,
                            "advert: node id '%s' is invalid; use 1-32 characters of a-z, 0-9 "
                            "and '-'", crypto__quote(q, sizeof q, id, SIZE_MAX));
    if (body_len > NNM_ADVERT_BODY_MAX)
        return nnm_diag_set(diag, NNM_ERANGE, "advert body is %zu bytes, more than %d", body_len,
                            NNM_ADVERT_BODY_MAX);
    if (cert_len > NNM_CERT_MAX)
        return nnm_diag_set(diag, NNM_ERANGE, "certificate is %zu bytes, more than %d", cert_len,
                            NNM_CERT_MAX);
    size_t idl = strlen(id);
    size_t enc = 1 + 1 + idl + 32 + 24 + 2 + cert_len + 4 + body_len;
    if (cap < enc + NNM_SIG_BYTES)
        return nnm_diag_set(diag, NNM_ERANGE, "advert needs %zu bytes, have %zu",
                            enc + NNM_SIG_BYTES, cap);
    uint8_t *msg = malloc(TAG_LEN + enc);
    if (msg == NULL) return nnm_diag_set(diag, NNM_ENOMEM, "out of memory sealing an advert");
    uint8_t *p = msg;
    memcpy(p, CRYPTO_TAG_ADVERT, TAG_LEN);
    p += TAG_LEN;
    *p++ = CRYPTO_FORMAT_V1;
    *p++ = (uint8_t)idl;
    memcpy(p, id, idl);
    p += idl;
    memcpy(p, self->pk, 32);
    p += 32;
    crypto__put_u64(p, epoch);
    crypto__put_u64(p + 8, seq);
    crypto__put_u64(p + 16, expiry);
    p += 24;
    *p++ = (uint8_t)(cert_len >> 8);
    *p++ = (uint8_t)cert_len;
    if (cert_len > 0) memcpy(p, cert, cert_len);
    p += cert_len;
    *p++ = (uint8_t)(body_len >> 24);
    *p++ = (uint8_t)(body_len >> 16);
    *p++ = (uint8_t)(body_len >> 8);
    *p++ = (uint8_t)body_len;
    if (body_len > 0) memcpy(p, body, body_len);
    uint8_t sig[NNM_SIG_BYTES];
    crypto__identity_sign(sig, self, msg, TAG_LEN + enc);
    memcpy(out, msg + TAG_LEN, enc);
    memcpy(out + enc, sig, sizeof sig);
    free(msg);
    *out_len = enc + NNM_SIG_BYTES;
    return NNM_OK;
}

/* Parses buf into a (unverified) advert; *signed_len is the length covered by the signature,
 * *sig and *cert point into buf. */
static nnm_err parse(nnm_signed_advert *a, size_t *signed_len, const uint8_t **sig,
                     const uint8_t **cert, size_t *cert_len, const uint8_t *buf, size_t len,
                     nnm_diag *diag)
{
    memset(a, 0, sizeof *a);
    crypto_rd r = {buf, len, 1};
    unsigned ver = crypto__rd_u8(&r);
    if (r.ok && ver != CRYPTO_FORMAT_V1)
        return nnm_diag_set(diag, NNM_EFORMAT, "advert version %u is not supported", ver);
    crypto__rd_id(&r, a->id);
    const uint8_t *p = crypto__rd_take(&r, 32);
    if (p != NULL) memcpy(a->pk, p, 32);
    a->epoch = crypto__rd_u64(&r);
    a->seq = crypto__rd_u64(&r);
    a->expiry = crypto__rd_u64(&r);
    *cert_len = crypto__rd_u16(&r);
    if (*cert_len > NNM_CERT_MAX) r.ok = 0;
    *cert = crypto__rd_take(&r, *cert_len);
    unsigned long blen = 0;
    if ((p = crypto__rd_take(&r, 4)) != NULL)
        blen = (unsigned long)p[0] << 24 | (unsigned long)p[1] << 16 | (unsigned long)p[2] << 8 | p[3];
    if (blen > NNM_ADVERT_BODY_MAX) r.ok = 0;
    a->body = crypto__rd_take(&r, (size_t)blen);
    a->body_len = (size_t)blen;
    *signed_len = len - r.left;
    *sig = crypto__rd_take(&r, NNM_SIG_BYTES);
    if (!r.ok || r.left != 0) {
        memset(a, 0, sizeof *a);
        return nnm_diag_set(diag, NNM_EFORMAT, "advert is malformed (%zu bytes)", len);
    }
    if (*cert_len == 0) *cert = NULL;
    return NNM_OK;
}

nnm_err nnm_advert_decode(nnm_signed_advert *out, const uint8_t *buf, size_t len, nnm_diag *diag)
{
    if (out == NULL || (buf == NULL && len > 0))
        return nnm_diag_set(diag, NNM_EINVAL, "nnm_advert_decode: NULL argument");
    size_t sl, cl;
    const uint8_t *sig, *cert;
    return parse(out, &sl, &sig, &cert, &cl, buf, len, diag);
}

nnm_err nnm_advert_open(nnm_signed_advert *out, const uint8_t *buf, size_t len, nnm_trust *trust,
                        nnm_advert_state *st, uint64_t now, uint64_t tolerance, nnm_diag *diag)
{
    if (out == NULL || (buf == NULL && len > 0) || trust == NULL)
        return nnm_diag_set(diag, NNM_EINVAL, "nnm_advert_open: NULL argument");
    memset(out, 0, sizeof *out);
    nnm_err rc = crypto__init(diag);
    if (rc != NNM_OK) return rc;
    nnm_signed_advert a;
    size_t signed_len, cert_len;
    const uint8_t *sig, *cert;
    if ((rc = parse(&a, &signed_len, &sig, &cert, &cert_len, buf, len, diag)) != NNM_OK) return rc;
    if (st != NULL && st->seen && strcmp(st->id, a.id) != 0)
        return nnm_diag_set(diag, NNM_EINVAL, "advert from '%s' checked against the state of '%s'",
                            a.id, st->id);

    uint8_t *msg = malloc(TAG_LEN + signed_len);
    if (msg == NULL) return nnm_diag_set(diag, NNM_ENOMEM, "out of memory opening an advert");
    memcpy(msg, CRYPTO_TAG_ADVERT, TAG_LEN);
    memcpy(msg + TAG_LEN, buf, signed_len);
    int bad = crypto_sign_verify_detached(sig, msg, TAG_LEN + signed_len, a.pk) != 0;
    free(msg);
    if (bad)
        return nnm_diag_set(diag, NNM_ECRYPTO,
                            "advert from '%s' has a bad signature (forged or corrupted); ignored",
                            a.id);
    if ((rc = nnm_trust_check(trust, a.id, a.pk, cert, cert_len, now, diag)) != NNM_OK) {
        nnm_diag_prefix(diag, "advert refused");
        return rc;
    }
    if (now > a.expiry && now - a.expiry > tolerance)
        return nnm_diag_set(diag, NNM_ETIMEOUT,
                            "advert from '%s' expired at %" PRIu64 ", %" PRIu64
                            " s before this node's clock (%" PRIu64 "), beyond the %" PRIu64
                            " s clock tolerance: either the advert is stale or the clocks are %"
                            PRIu64 " s apart (check NTP)", a.id, a.expiry, now - a.expiry, now,
                            tolerance, now - a.expiry);
    if (st != NULL && st->seen) {
        if (a.epoch < st->epoch)
            return nnm_diag_set(diag, NNM_EREPLAY,
                                "advert from '%s' is from epoch %" PRIu64 ", older than epoch %"
                                PRIu64 " already seen; ignored", a.id, a.epoch, st->epoch);
        if (a.epoch == st->epoch && a.seq <= st->seq)
            return nnm_diag_set(diag, NNM_EREPLAY,
                                "advert from '%s' has sequence %" PRIu64 " in epoch %" PRIu64
                                ", not newer than %" PRIu64 " already seen; ignored", a.id, a.seq,
                                a.epoch, st->seq);
    }
    if (st != NULL) {
        st->seen = 1;
        memcpy(st->id, a.id, sizeof st->id);
        st->epoch = a.epoch;
        st->seq = a.seq;
    }
    *out = a;
    return NNM_OK;
}
