/* crypto/trust.c — the mesh trust store (node keys, authorities, revocations, read from the
 * trust file) and the node certificates authorities sign.
 *
 * Certificate encoding (big-endian), signed as CRYPTO_TAG_CERT || everything before sig:
 *   u8 version=1 | u8 id_len | id | node_pk[32] | u64 not_before | u64 not_after |
 *   authority_pk[32] | sig[64]                                                          */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypto_int.h"

#define TRUST_FILE_MAX (16u << 20) /* 16 MiB: far beyond any real mesh */
#define TRUST_NAME_MAX 256

typedef struct trust_key {
    char id[NNM_ID_MAX + 1]; /* node id or authority name; empty for revocations */
    uint8_t pk[NNM_PUBKEY_BYTES];
    unsigned line;           /* line in the trust file; 0 for run-time bindings */
} trust_key;

typedef struct key_list {
    trust_key *v;
    size_t n, cap;
} key_list;

struct nnm_trust {
    char name[TRUST_NAME_MAX];
    key_list nodes, authorities, revoked;
    key_list bound;          /* ids admitted by certificate at run time, under lock */
    pthread_mutex_t lock;
};

static int list_push(key_list *l, const char *id, const uint8_t pk[32], unsigned line)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        trust_key *v = realloc(l->v, cap * sizeof *v);
        if (v == NULL) return -1;
        l->v = v;
        l->cap = cap;
    }
    trust_key *k = &l->v[l->n++];
    memset(k, 0, sizeof *k);
    if (id != NULL) snprintf(k->id, sizeof k->id, "%s", id);
    memcpy(k->pk, pk, NNM_PUBKEY_BYTES);
    k->line = line;
    return 0;
}

static const trust_key *find_id(const key_list *l, const char *id)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i].id, id) == 0) return &l->v[i];
    return NULL;
}

static const trust_key *find_pk(const key_list *l, const uint8_t pk[32])
{
    for (size_t i = 0; i < l->n; i++)
        if (sodium_memcmp(l->v[i].pk, pk, NNM_PUBKEY_BYTES) == 0) return &l->v[i];
    return NULL;
}

void nnm_trust_free(nnm_trust *t)
{
    if (t == NULL) return;
    free(t->nodes.v);
    free(t->authorities.v);
    free(t->revoked.v);
    free(t->bound.v);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

/* ---- parsing -------------------------------------------------------------------------- */

#define MAX_FIELDS 4
#define FIELD_MAX 64

/* Splits a line (comment already removed) into at most MAX_FIELDS NUL-terminated fields of
 * at most FIELD_MAX - 1 characters. Returns the field count, or -1 if there are too many or
 * one is too long. */
static int split_fields(char f[MAX_FIELDS][FIELD_MAX], const char *s, size_t n)
{
    int nf = 0;
    size_t i = 0;
    while (i < n) {
        while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r')) i++;
        if (i == n) break;
        size_t b = i;
        while (i < n && s[i] != ' ' && s[i] != '\t' && s[i] != '\r') i++;
        if (nf == MAX_FIELDS || i - b >= FIELD_MAX) return -1;
        memcpy(f[nf], s + b, i - b);
        f[nf][i - b] = '\0';
        nf++;
    }
    return nf;
}

static nnm_err line_key(uint8_t pk[32], const char *b64, const char *name, unsigned ln,
                        nnm_diag *diag)
{
    nnm_err rc = nnm_pubkey_decode(pk, b64, diag);
    if (rc != NNM_OK) nnm_diag_prefix(diag, "%s:%u", name, ln);
    return rc;
}

static nnm_err parse_line(nnm_trust *t, const char *s, size_t n, unsigned ln, nnm_diag *diag)
{
    const char *name = t->name;
    const char *hash = memchr(s, '#', n);
    if (hash != NULL) n = (size_t)(hash - s);
    char f[MAX_FIELDS][FIELD_MAX];
    int nf = split_fields(f, s, n);
    if (nf == 0) return NNM_OK;
    if (nf < 0)
        return nnm_diag_set(diag, NNM_EFORMAT,
                            "%s:%u: too many or too long fields; expected 'node <id> <pubkey>', "
                            "'authority <name> <pubkey>' or 'revoke <pubkey>'", name, ln);
    uint8_t pk[32];
    char q[40];
    nnm_err rc;
    if (strcmp(f[0], "node") == 0 || strcmp(f[0], "authority") == 0) {
        int is_node = f[0][0] == 'n';
        const char *what = is_node ? "node id" : "authority name";
        if (nf != 3)
            return nnm_diag_set(diag, NNM_EFORMAT, "%s:%u: expected '%s <%s> <pubkey>'", name, ln,
                                f[0], is_node ? "id" : "name");
        if (!nnm_id_is_valid(f[1]))
            return nnm_diag_set(diag, NNM_EFORMAT,
                                "%s:%u: %s '%s' is invalid; use 1-32 characters of a-z, 0-9 and '-'",
                                name, ln, what, crypto__quote(q, sizeof q, f[1], FIELD_MAX));
        if ((rc = line_key(pk, f[2], name, ln, diag)) != NNM_OK) return rc;
        key_list *l = is_node ? &t->nodes : &t->authorities;
        const trust_key *k = find_id(l, f[1]);
        if (k != NULL)
            return nnm_diag_set(diag, NNM_EFORMAT, "%s:%u: %s '%s' is already listed on line %u",
                                name, ln, what, f[1], k->line);
        if ((k = find_pk(&t->nodes, pk)) != NULL || (k = find_pk(&t->authorities, pk)) != NULL)
            return nnm_diag_set(diag, NNM_EFORMAT,
                                "%s:%u: this key is already listed for '%s' on line %u; one key, "
                                "one name", name, ln, k->id, k->line);
        if (list_push(l, f[1], pk, ln) != 0)
            return nnm_diag_set(diag, NNM_ENOMEM, "%s: out of memory", name);
        return NNM_OK;
    }
    if (strcmp(f[0], "revoke") == 0) {
        if (nf != 2)
            return nnm_diag_set(diag, NNM_EFORMAT, "%s:%u: expected 'revoke <pubkey>'", name, ln);
        if ((rc = line_key(pk, f[1], name, ln, diag)) != NNM_OK) return rc;
        if (find_pk(&t->revoked, pk) == NULL && list_push(&t->revoked, NULL, pk, ln) != 0)
            return nnm_diag_set(diag, NNM_ENOMEM, "%s: out of memory", name);
        return NNM_OK;
    }
    return nnm_diag_set(diag, NNM_EFORMAT,
                        "%s:%u: unknown directive '%s'; expected node, authority or revoke", name,
                        ln, crypto__quote(q, sizeof q, f[0], FIELD_MAX));
}

nnm_err nnm_trust_decode(nnm_trust **out, const char *text, size_t len, const char *name,
                         nnm_diag *diag)
{
    if (out == NULL || (text == NULL && len > 0))
        return nnm_diag_set(diag, NNM_EINVAL, "nnm_trust_decode: NULL argument");
    *out = NULL;
    if (name == NULL) name = "trust file";
    nnm_err rc = crypto__init(diag);
    if (rc != NNM_OK) return rc;
    nnm_trust *t = calloc(1, sizeof *t);
    if (t == NULL) return nnm_diag_set(diag, NNM_ENOMEM, "%s: out of memory", name);
    if (pthread_mutex_init(&t->lock, NULL) != 0) {
        free(t);
        return nnm_diag_set(diag, NNM_ENOMEM, "%s: cannot create a lock", name);
    }
    snprintf(t->name, sizeof t->name, "%s", name);
    if (text != NULL && memchr(text, '\0', len) != NULL) {
        rc = nnm_diag_set(diag, NNM_EFORMAT, "%s: contains a NUL byte; not a text trust file", name);
        goto fail;
    }
    unsigned ln = 0;
    const char *p = text, *end = len > 0 ? text + len : text;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *e = nl != NULL ? nl : end;
        ln++;
        if ((rc = parse_line(t, p, (size_t)(e - p), ln, diag)) != NNM_OK) goto fail;
        p = nl != NULL ? nl + 1 : end;
    }
    if (t->nodes.n == 0 && t->authorities.n == 0) {
        rc = nnm_diag_set(diag, NNM_EFORMAT,
                          "%s: admits no one; add 'node <id> <pubkey>' or 'authority <name> "
                          "<pubkey>' lines", name);
        goto fail;
    }
    *out = t;
    return NNM_OK;
fail:
    nnm_trust_free(t);
    return rc;
}

nnm_err nnm_trust_load(nnm_trust **out, const char *path, nnm_diag *diag)
{
    if (out == NULL || path == NULL)
        return nnm_diag_set(diag, NNM_EINVAL, "nnm_trust_load: NULL argument");
    *out = NULL;
    nnm_err rc;
    char *buf = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return nnm_diag_set(diag, NNM_EIO, "%s: cannot open trust file: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        rc = nnm_diag_set(diag, NNM_EIO, "%s: cannot stat trust file: %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = nnm_diag_set(diag, NNM_EIO, "%s: trust file is not a regular file", path);
        goto fail;
    }
    /* Whoever can write the trust file can admit any key. */
    if ((st.st_mode & 002) != 0) {
        rc = nnm_diag_set(diag, NNM_ETRUST,
                          "%s: trust file is writable by everyone (mode %04o); run chmod o-w %s",
                          path, (unsigned)(st.st_mode & 07777), path);
        goto fail;
    }
    if (st.st_size > (off_t)TRUST_FILE_MAX) {
        rc = nnm_diag_set(diag, NNM_ERANGE, "%s: trust file is larger than %u bytes", path,
                          TRUST_FILE_MAX);
        goto fail;
    }
    size_t cap = (size_t)st.st_size + 1, n = 0;
    if ((buf = malloc(cap)) == NULL) {
        rc = nnm_diag_set(diag, NNM_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    for (;;) {
        if (n == cap) {
            rc = nnm_diag_set(diag, NNM_EIO, "%s: trust file changed while being read", path);
            goto fail;
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            rc = nnm_diag_set(diag, NNM_EIO, "%s: cannot read trust file: %s", path, strerror(errno));
            goto fail;
        }
        if (r == 0) break;
        n += (size_t)r;
    }
    if (n == 0) {
        rc = nnm_diag_set(diag, NNM_EFORMAT,
                          "%s: trust file is empty; add 'node <id> <pubkey>' lines", path);
        goto fail;
    }
    rc = nnm_trust_decode(out, buf, n, path, diag);
fail:
    free(buf);
    close(fd);
    return rc;
}

/* ---- certificates --------------------------------------------------------------------- */

#define CERT_SIGNED_MAX (sizeof CRYPTO_TAG_CERT - 1 + NNM_CERT_MAX)

/* Encodes the unsigned part of a certificate into out (at least NNM_CERT_MAX); returns its
 * length. */
static size_t cert_body(uint8_t *out, const char *id, const uint8_t node_pk[32], uint64_t nb,
                        uint64_t na, const uint8_t auth_pk[32])
{
    size_t o = 0, idl = strlen(id);
    out[o++] = CRYPTO_FORMAT_V1;
    out[o++] = (uint8_t)idl;
    memcpy(out + o, id, idl);
    o += idl;
    memcpy(out + o, node_pk, 32);
    o += 32;
    crypto__put_u64(out + o, nb);
    o += 8;
    crypto__put_u64(out + o, na);
    o += 8;
    memcpy(out + o, auth_pk, 32);
    o += 32;
    return o;
}

nnm_err nnm_cert_seal(uint8_t *out, size_t cap, size_t *out_len, const nnm_identity *authority,
                      const char *id, const uint8_t node_pk[NNM_PUBKEY_BYTES],
                      uint64_t not_before, uint64_t not_after, nnm_diag *diag)
{
    if (out == NULL || out_len == NULL || authority == NULL || id == NULL || node_pk == NULL)
        return nnm_diag_set(diag, NNM_EINVAL, "nnm_cert_seal: NULL argument");
    char q[40];
    if (!nnm_id_is_valid(id))
        return nnm_diag_set(diag, NNM_EINVAL,
                            "certificate: node id '%s' is invalid; use 1-32 characters of a-z, "
                            "0-9 and '-'", crypto__quote(q, sizeof q, id, SIZE_MAX));
    if (not_after < not_before)
        return nnm_diag_set(diag, NNM_EINVAL, "certificate for '%s': not_after is before not_before",
                            id);
    if (!crypto__pubkey_is_valid(node_pk))
        return nnm_diag_set(diag, NNM_EINVAL,
                            "certificate for '%s': node key is not a valid Ed25519 key", id);
    uint8_t msg[CERT_SIGNED_MAX];
    size_t tl = sizeof CRYPTO_TAG_CERT - 1;
    memcpy(msg, CRYPTO_TAG_CERT, tl);
    size_t bl = cert_body(msg + tl, id, node_pk, not_before, not_after, authority->pk);
    if (cap < bl + NNM_SIG_BYTES)
        return nnm_diag_set(diag, NNM_ERANGE, "certificate for '%s' needs %zu bytes, have %zu", id,
                            bl + NNM_SIG_BYTES, cap);
    uint8_t sig[NNM_SIG_BYTES];
    crypto__identity_sign(sig, authority, msg, tl + bl);
    memcpy(out, msg + tl, bl);
    memcpy(out + bl, sig, sizeof sig);
    *out_len = bl + NNM_SIG_BYTES;
    return NNM_OK;
}

nnm_err nnm_cert_open(nnm_cert *out, const uint8_t *buf, size_t len, nnm_diag *diag)
{
    if (out == NULL || (buf == NULL && len > 0))
        return nnm_diag_set(diag, NNM_EINVAL, "nnm_cert_open: NULL argument");
    memset(out, 0, sizeof *out);
    nnm_err rc = crypto__init(diag);
    if (rc != NNM_OK) return rc;
    if (len > NNM_CERT_MAX)
        return nnm_diag_set(diag, NNM_EFORMAT, "certificate is %zu bytes, more than %d", len,
                            NNM_CERT_MAX);
    nnm_cert c;
    memset(&c, 0, sizeof c);
    crypto_rd r = {buf, len, 1};
    unsigned ver = crypto__rd_u8(&r);
    if (r.ok && ver != CRYPTO_FORMAT_V1)
        return nnm_diag_set(diag, NNM_EFORMAT, "certificate version %u is not supported", ver);
    crypto__rd_id(&r, c.id);
    const uint8_t *p = crypto__rd_take(&r, 32);
    if (p != NULL) memcpy(c.node_pk, p, 32);
    c.not_before = crypto__rd_u64(&r);
    c.not_after = crypto__rd_u64(&r);
    if ((p = crypto__rd_take(&r, 32)) != NULL) memcpy(c.authority_pk, p, 32);
    size_t signed_len = len - r.left;
    if ((p = crypto__rd_take(&r, NNM_SIG_BYTES)) != NULL) memcpy(c.sig, p, NNM_SIG_BYTES);
    if (!r.ok || r.left != 0)
        return nnm_diag_set(diag, NNM_EFORMAT, "certificate is malformed (%zu bytes)", len);
    if (c.not_after < c.not_before || !crypto__pubkey_is_valid(c.node_pk) ||
        !crypto__pubkey_is_valid(c.authority_pk))
        return nnm_diag_set(diag, NNM_EFORMAT,
                            "certificate for '%s' is malformed (dates or keys invalid)", c.id);
    uint8_t msg[CERT_SIGNED_MAX];
    size_t tl = sizeof CRYPTO_TAG_CERT - 1;
    memcpy(msg, CRYPTO_TAG_CERT, tl);
    memcpy(msg + tl, buf, signed_len);
    if (crypto_sign_verify_detached(c.sig, msg, tl + signed_len, c.authority_pk) != 0)
        return nnm_diag_set(diag, NNM_ECRYPTO, "certificate for '%s' has a bad signature", c.id);
    *out = c;
    return NNM_OK;
}

/* ---- admission ------------------------------------------------------------------------ */

static nnm_err check_locked(nnm_trust *t, const char *id, const uint8_t pk[32],
                            const uint8_t *cert, size_t cert_len, uint64_t now, nnm_diag *diag)
{
    char fp[NNM_FINGERPRINT_SIZE], fp2[NNM_FINGERPRINT_SIZE];
    nnm_pubkey_get_fingerprint(fp, pk);
    if (find_pk(&t->revoked, pk) != NULL)
        return nnm_diag_set(diag, NNM_ETRUST, "node '%s': key %s is revoked in %s", id, fp, t->name);
    const trust_key *k = find_id(&t->nodes, id);
    if (k != NULL) {
        if (sodium_memcmp(k->pk, pk, 32) == 0) return NNM_OK;
        nnm_pubkey_get_fingerprint(fp2, k->pk);
        return nnm_diag_set(diag, NNM_ETRUST,
                            "node '%s' presented key %s, but %s:%u binds '%s' to key %s", id, fp,
                            t->name, k->line, id, fp2);
    }
    if ((k = find_pk(&t->nodes, pk)) != NULL || (k = find_pk(&t->authorities, pk)) != NULL)
        return nnm_diag_set(diag, NNM_ETRUST,
                            "node '%s' presented key %s, which %s:%u gives to '%s'", id, fp,
                            t->name, k->line, k->id);
    const trust_key *b = find_id(&t->bound, id);
    if (b != NULL && sodium_memcmp(b->pk, pk, 32) != 0) {
        nnm_pubkey_get_fingerprint(fp2, b->pk);
        return nnm_diag_set(diag, NNM_ETRUST,
                            "node '%s' presented key %s, but was admitted earlier with key %s",
                            id, fp, fp2);
    }
    const trust_key *bp = find_pk(&t->bound, pk);
    if (bp != NULL && strcmp(bp->id, id) != 0)
        return nnm_diag_set(diag, NNM_ETRUST,
                            "node '%s' presented key %s, which node '%s' already uses", id, fp,
                            bp->id);
    if (cert == NULL || cert_len == 0) {
        char b64[NNM_PUBKEY_B64_SIZE];
        nnm_pubkey_encode(b64, pk);
        return nnm_diag_set(diag, NNM_ETRUST,
                            "node '%s' (key %s) is not in %s and has no certificate; to admit it "
                            "add the line 'node %s %s'", id, fp, t->name, id, b64);
    }
    nnm_cert c;
    nnm_diag sub = {NNM_OK, ""};
    if (nnm_cert_open(&c, cert, cert_len, &sub) != NNM_OK)
        return nnm_diag_set(diag, NNM_ETRUST, "node '%s': %s", id, sub.msg);
    if (strcmp(c.id, id) != 0)
        return nnm_diag_set(diag, NNM_ETRUST, "node '%s' sent a certificate issued to '%s'", id,
                            c.id);
    if (sodium_memcmp(c.node_pk, pk, 32) != 0)
        return nnm_diag_set(diag, NNM_ETRUST,
                            "node '%s': its certificate is for another key than %s", id, fp);
    nnm_pubkey_get_fingerprint(fp2, c.authority_pk);
    const trust_key *a = find_pk(&t->authorities, c.authority_pk);
    if (a == NULL)
        return nnm_diag_set(diag, NNM_ETRUST,
                            "node '%s': certificate signed by %s, which is not an authority in %s",
                            id, fp2, t->name);
    if (find_pk(&t->revoked, c.authority_pk) != NULL)
        return nnm_diag_set(diag, NNM_ETRUST,
                            "node '%s': certificate signed by authority '%s', which is revoked", id,
                            a->id);
    if (now < c.not_before)
        return nnm_diag_set(diag, NNM_ETRUST,
                            "node '%s': certificate not valid before %" PRIu64 ", %" PRIu64
                            " s from now (check the clocks)", id, c.not_before, c.not_before - now);
    if (now > c.not_after)
        return nnm_diag_set(diag, NNM_ETRUST,
                            "node '%s': certificate expired at %" PRIu64 ", %" PRIu64
                            " s ago; ask authority '%s' for a new one", id, c.not_after,
                            now - c.not_after, a->id);
    if (b == NULL && list_push(&t->bound, id, pk, 0) != 0)
        return nnm_diag_set(diag, NNM_ENOMEM, "out of memory admitting node '%s'", id);
    return NNM_OK;
}

nnm_err nnm_trust_check(nnm_trust *t, const char *id, const uint8_t pk[NNM_PUBKEY_BYTES],
                        const uint8_t *cert, size_t cert_len, uint64_t now, nnm_diag *diag)
{
    if (t == NULL || id == NULL || pk == NULL)
        return nnm_diag_set(diag, NNM_EINVAL, "nnm_trust_check: NULL argument");
    char q[40];
    if (!nnm_id_is_valid(id))
        return nnm_diag_set(diag, NNM_EINVAL,
                            "node id '%s' is invalid; ids are 1-32 characters of a-z, 0-9 and '-'",
                            crypto__quote(q, sizeof q, id, SIZE_MAX));
    pthread_mutex_lock(&t->lock);
    nnm_err rc = check_locked(t, id, pk, cert, cert_len, now, diag);
    pthread_mutex_unlock(&t->lock);
    return rc;
}
