/* crypto/identity.c — node identities: Ed25519 key pairs in guarded memory, the mode-0600 key
 * file, and the printable forms of public keys (base64url, fingerprint). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypto_int.h"

_Static_assert(NNM_PUBKEY_BYTES == crypto_sign_PUBLICKEYBYTES, "Ed25519 public key size");
_Static_assert(NNM_SIG_BYTES == crypto_sign_BYTES, "Ed25519 signature size");
_Static_assert(NNM_PUBKEY_B64_SIZE ==
                   sodium_base64_ENCODED_LEN(NNM_PUBKEY_BYTES, sodium_base64_VARIANT_URLSAFE_NO_PADDING),
               "base64url public key size");

#define KEYFILE_MAGIC "nnmesh-key v1"
#define KEYFILE_MAX 1024 /* a real key file is about 110 bytes */

nnm_err crypto__init(nnm_diag *diag)
{
    /* sodium_init is thread-safe and idempotent: 0 first time, 1 afterwards. */
    if (sodium_init() < 0)
        return nnm_diag_set(diag, NNM_EBACKEND, "libsodium failed to initialise (no entropy source?)");
    return NNM_OK;
}

int nnm_id_is_valid(const char *s)
{
    if (s == NULL) return 0;
    size_t n = 0;
    for (; s[n] != '\0'; n++) {
        char c = s[n];
        if (n >= NNM_ID_MAX) return 0;
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return 0;
    }
    return n >= 1;
}

const char *crypto__quote(char *out, size_t cap, const char *s, size_t n)
{
    size_t o = 0, i = 0;
    if (cap == 0) return out;
    for (; i < n && s[i] != '\0' && o + 1 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        out[o++] = (c >= 0x20 && c <= 0x7e) ? (char)c : '?';
    }
    if (i < n && s[i] != '\0' && cap >= 4) { /* cut short: say so */
        if (o > cap - 4) o = cap - 4;
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
    return out;
}

int crypto__pubkey_is_valid(const uint8_t pk[NNM_PUBKEY_BYTES])
{
    if (sodium_is_zero(pk, NNM_PUBKEY_BYTES)) return 0;
    return crypto_core_ed25519_is_valid_point(pk) == 1;
}

void nnm_pubkey_encode(char out[NNM_PUBKEY_B64_SIZE], const uint8_t pk[NNM_PUBKEY_BYTES])
{
    sodium_bin2base64(out, NNM_PUBKEY_B64_SIZE, pk, NNM_PUBKEY_BYTES,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

/* Strict base64url of exactly n bytes: the whole string must be consumed. */
static int b64_decode_exact(uint8_t *out, size_t n, const char *b64, size_t b64_len)
{
    size_t got = 0;
    if (b64_len != sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_URLSAFE_NO_PADDING) - 1)
        return -1;
    if (sodium_base642bin(out, n, b64, b64_len, NULL, &got, NULL,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 || got != n)
        return -1;
    return 0;
}

nnm_err nnm_pubkey_decode(uint8_t out[NNM_PUBKEY_BYTES], const char *b64, nnm_diag *diag)
{
    if (out == NULL || b64 == NULL) return nnm_diag_set(diag, NNM_EINVAL, "nnm_pubkey_decode: NULL argument");
    nnm_err rc = crypto__init(diag);
    if (rc != NNM_OK) return rc;
    if (b64_decode_exact(out, NNM_PUBKEY_BYTES, b64, strlen(b64)) != 0) {
        memset(out, 0, NNM_PUBKEY_BYTES);
        return nnm_diag_set(diag, NNM_EFORMAT,
                            "public key is not 43 base64url characters (as printed by 'nnmesh keygen')");
    }
    if (!crypto__pubkey_is_valid(out)) {
        memset(out, 0, NNM_PUBKEY_BYTES);
        return nnm_diag_set(diag, NNM_ETRUST,
                            "public key is not a valid Ed25519 key (all-zero or low-order point)");
    }
    return NNM_OK;
}

void nnm_pubkey_get_fingerprint(char out[NNM_FINGERPRINT_SIZE], const uint8_t pk[NNM_PUBKEY_BYTES])
{
    static const char hex[] = "0123456789abcdef";
    uint8_t h[32];
    crypto_generichash(h, sizeof h, pk, NNM_PUBKEY_BYTES, NULL, 0);
    size_t o = 0;
    for (int i = 0; i < 8; i++) {
        if (i > 0 && i % 2 == 0) out[o++] = '-';
        out[o++] = hex[h[i] >> 4];
        out[o++] = hex[h[i] & 15];
    }
    out[o] = '\0';
}

nnm_err crypto__identity_from_seed(nnm_identity **out, const uint8_t seed[32], nnm_diag *diag)
{
    nnm_err rc = crypto__init(diag);
    if (rc != NNM_OK) return rc;
    nnm_identity *id = calloc(1, sizeof *id);
    if (id == NULL) return nnm_diag_set(diag, NNM_ENOMEM, "out of memory for an identity");
    if (pthread_mutex_init(&id->lock, NULL) != 0) {
        free(id);
        return nnm_diag_set(diag, NNM_ENOMEM, "cannot create an identity lock");
    }
    id->sk = sodium_malloc(crypto_sign_SECRETKEYBYTES);
    if (id->sk == NULL) {
        nnm_identity_free(id);
        return nnm_diag_set(diag, NNM_ENOMEM,
                            "cannot allocate guarded memory for a secret key (RLIMIT_MEMLOCK?)");
    }
    crypto_sign_seed_keypair(id->pk, id->sk, seed);
    sodium_mprotect_noaccess(id->sk);
    *out = id;
    return NNM_OK;
}

nnm_err nnm_identity_new(nnm_identity **out, nnm_diag *diag)
{
    if (out == NULL) return nnm_diag_set(diag, NNM_EINVAL, "nnm_identity_new: NULL argument");
    *out = NULL;
    nnm_err rc = crypto__init(diag);
    if (rc != NNM_OK) return rc;
    uint8_t seed[32];
    randombytes_buf(seed, sizeof seed);
    rc = crypto__identity_from_seed(out, seed, diag);
    sodium_memzero(seed, sizeof seed);
    return rc;
}

void nnm_identity_free(nnm_identity *id)
{
    if (id == NULL) return;
    if (id->sk != NULL) sodium_free(id->sk); /* sodium_free wipes before unmapping */
    pthread_mutex_destroy(&id->lock);
    sodium_memzero(id, sizeof *id);
    free(id);
}

const uint8_t *nnm_identity_get_pubkey(const nnm_identity *id)
{
    return id != NULL ? id->pk : NULL;
}

/* The lock is the only mutable part of a const identity; the object was malloc'd non-const,
 * so casting the qualifier away is well defined. */
static void sk_open(const nnm_identity *id)
{
    pthread_mutex_lock((pthread_mutex_t *)&id->lock);
    sodium_mprotect_readonly(id->sk);
}

static void sk_close(const nnm_identity *id)
{
    sodium_mprotect_noaccess(id->sk);
    pthread_mutex_unlock((pthread_mutex_t *)&id->lock);
}

void crypto__identity_sign(uint8_t sig[NNM_SIG_BYTES], const nnm_identity *id,
                           const uint8_t *msg, size_t len)
{
    sk_open(id);
    crypto_sign_detached(sig, NULL, msg, len, id->sk);
    sk_close(id);
}

/* ---- key file ------------------------------------------------------------------------- */

/* Splits the next line off [*p, end): returns its start and length (without '\n' or a
 * trailing '\r'), or NULL at the end. */
static const char *next_line(const char **p, const char *end, size_t *len)
{
    if (*p >= end) return NULL;
    const char *s = *p;
    const char *nl = memchr(s, '\n', (size_t)(end - s));
    const char *e = nl != NULL ? nl : end;
    *p = nl != NULL ? nl + 1 : end;
    if (e > s && e[-1] == '\r') e--;
    *len = (size_t)(e - s);
    return s;
}

/* Parses "KEY <43 base64url chars>" into 32 bytes. */
static int parse_b64_field(uint8_t out[32], const char *line, size_t len, const char *key)
{
    size_t kl = strlen(key);
    if (line == NULL || len <= kl + 1 || memcmp(line, key, kl) != 0 || line[kl] != ' ')
        return -1;
    return b64_decode_exact(out, 32, line + kl + 1, len - kl - 1);
}

static nnm_err parse_keyfile(uint8_t seed[32], uint8_t pk[32], const char *buf, size_t n,
                             const char *path, nnm_diag *diag)
{
    const char *p = buf, *end = buf + n;
    size_t l1 = 0, l2 = 0, l3 = 0, l4 = 0;
    const char *s1 = next_line(&p, end, &l1);
    if (s1 == NULL || l1 != strlen(KEYFILE_MAGIC) || memcmp(s1, KEYFILE_MAGIC, l1) != 0) {
        char q[24];
        if (s1 != NULL && l1 > 11 && memcmp(s1, "nnmesh-key ", 11) == 0)
            return nnm_diag_set(diag, NNM_EUNSUPPORTED,
                                "%s: key file version '%s' is not supported (expected v1)", path,
                                crypto__quote(q, sizeof q, s1 + 11, l1 - 11));
        return nnm_diag_set(diag, NNM_EFORMAT,
                            "%s: not an nnmesh key file (first line must be '" KEYFILE_MAGIC "')",
                            path);
    }
    const char *s2 = next_line(&p, end, &l2);
    if (parse_b64_field(seed, s2, l2, "secret") != 0)
        return nnm_diag_set(diag, NNM_EFORMAT,
                            "%s: line 2 must be 'secret <43 base64url characters>'; the key file is "
                            "damaged", path);
    const char *s3 = next_line(&p, end, &l3);
    if (parse_b64_field(pk, s3, l3, "public") != 0)
        return nnm_diag_set(diag, NNM_EFORMAT,
                            "%s: line 3 must be 'public <43 base64url characters>'; the key file is "
                            "damaged", path);
    const char *s4;
    while ((s4 = next_line(&p, end, &l4)) != NULL)
        if (l4 != 0)
            return nnm_diag_set(diag, NNM_EFORMAT, "%s: unexpected text after line 3", path);
    return NNM_OK;
}

nnm_err nnm_identity_load(nnm_identity **out, const char *path, nnm_diag *diag)
{
    if (out == NULL || path == NULL)
        return nnm_diag_set(diag, NNM_EINVAL, "nnm_identity_load: NULL argument");
    *out = NULL;
    nnm_err rc = crypto__init(diag);
    if (rc != NNM_OK) return rc;

    int fd = -1;
    char *buf = NULL;
    uint8_t seed[32], pk[32];
    nnm_identity *id = NULL;

    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        rc = nnm_diag_set(diag, NNM_EIO, "%s: cannot open key file: %s", path, strerror(errno));
        goto fail;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        rc = nnm_diag_set(diag, NNM_EIO, "%s: cannot stat key file: %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = nnm_diag_set(diag, NNM_EFORMAT, "%s: key file is not a regular file", path);
        goto fail;
    }
    if ((st.st_mode & 077) != 0) {
        rc = nnm_diag_set(diag, NNM_ETRUST,
                          "%s: key file is %s by others (mode %04o); run chmod 600 %s", path,
                          (st.st_mode & 044) ? "readable" : "writable",
                          (unsigned)(st.st_mode & 07777), path);
        goto fail;
    }
    buf = sodium_malloc(KEYFILE_MAX + 1);
    if (buf == NULL) {
        rc = nnm_diag_set(diag, NNM_ENOMEM, "%s: cannot allocate guarded memory", path);
        goto fail;
    }
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, buf + n, KEYFILE_MAX + 1 - n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            rc = nnm_diag_set(diag, NNM_EIO, "%s: cannot read key file: %s", path, strerror(errno));
            goto fail;
        }
        if (r == 0) break;
        n += (size_t)r;
        if (n > KEYFILE_MAX) {
            rc = nnm_diag_set(diag, NNM_EFORMAT, "%s: too large to be an nnmesh key file", path);
            goto fail;
        }
    }
    if ((rc = parse_keyfile(seed, pk, buf, n, path, diag)) != NNM_OK) goto fail;
    if ((rc = crypto__identity_from_seed(&id, seed, diag)) != NNM_OK) goto fail;
    if (sodium_memcmp(id->pk, pk, sizeof pk) != 0) {
        rc = nnm_diag_set(diag, NNM_EFORMAT,
                          "%s: the public key does not match the secret key; the key file is damaged",
                          path);
        goto fail;
    }
    sodium_memzero(seed, sizeof seed);
    sodium_free(buf);
    close(fd);
    *out = id;
    return NNM_OK;
fail:
    sodium_memzero(seed, sizeof seed);
    if (buf != NULL) sodium_free(buf);
    if (fd >= 0) close(fd);
    nnm_identity_free(id);
    return rc;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

nnm_err nnm_identity_save(const nnm_identity *id, const char *path, nnm_diag *diag)
{
    if (id == NULL || path == NULL)
        return nnm_diag_set(diag, NNM_EINVAL, "nnm_identity_save: NULL argument");
    enum { TEXT_MAX = 160 };
    nnm_err rc = NNM_ENOMEM;
    int fd = -1, created = 0;
    char *text = sodium_malloc(TEXT_MAX);
    if (text == NULL) {
        rc = nnm_diag_set(diag, NNM_ENOMEM, "%s: cannot allocate guarded memory", path);
        goto fail;
    }
    {
        uint8_t seed[32];
        char seed64[NNM_PUBKEY_B64_SIZE], pk64[NNM_PUBKEY_B64_SIZE];
        sk_open(id);
        crypto_sign_ed25519_sk_to_seed(seed, id->sk);
        sk_close(id);
        sodium_bin2base64(seed64, sizeof seed64, seed, sizeof seed,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        nnm_pubkey_encode(pk64, id->pk);
        snprintf(text, TEXT_MAX, KEYFILE_MAGIC "\nsecret %s\npublic %s\n", seed64, pk64);
        sodium_memzero(seed, sizeof seed);
        sodium_memzero(seed64, sizeof seed64);
    }
    /* O_EXCL: never replace an existing key (or follow a planted symlink). */
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, 0600);
    if (fd < 0) {
        if (errno == EEXIST)
            rc = nnm_diag_set(diag, NNM_EIO, "%s: file exists; refusing to overwrite a key file "
                              "(move it away first if you mean to replace the identity)", path);
        else
            rc = nnm_diag_set(diag, NNM_EIO, "%s: cannot create key file: %s", path, strerror(errno));
        goto fail;
    }
    created = 1;
    if (write_all(fd, text, strlen(text)) != 0 || fsync(fd) != 0) {
        rc = nnm_diag_set(diag, NNM_EIO, "%s: cannot write key file: %s", path, strerror(errno));
        goto fail;
    }
    if (close(fd) != 0) {
        fd = -1;
        rc = nnm_diag_set(diag, NNM_EIO, "%s: cannot write key file: %s", path, strerror(errno));
        goto fail;
    }
    sodium_free(text);
    return NNM_OK;
fail:
    if (fd >= 0) close(fd);
    if (created) unlink(path);
    if (text != NULL) sodium_free(text);
    return rc;
}
