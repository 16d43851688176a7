/* tests/unit/test_crypto_util.h — small helpers shared by the crypto unit tests: a private
 * temporary directory, writing a file with a given mode, and identities from fixed seeds. */
#ifndef TEST_CRYPTO_UTIL_H
#define TEST_CRYPTO_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "nnmesh/crypto.h"
#include "crypto_int.h"

/* A fresh directory under $TMPDIR (or /tmp); paths inside it are built with tpath. */
static char tdir[256] __attribute__((unused));

static inline void tdir_make(void)
{
    const char *base = getenv("TMPDIR");
    snprintf(tdir, sizeof tdir, "%s/nnm-crypto-XXXXXX", base != NULL ? base : "/tmp");
    assert_non_null(mkdtemp(tdir));
}

static inline void tdir_remove(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tdir);
    assert_int_equal(system(cmd), 0);
}

static inline const char *tpath(char *buf, size_t cap, const char *name)
{
    snprintf(buf, cap, "%s/%s", tdir, name);
    return buf;
}

/* Writes text to path (replacing it) and sets mode. */
static inline void write_file(const char *path, const char *text, mode_t mode)
{
    unlink(path);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
    assert_int_equal(fclose(f), 0);
    assert_int_equal(chmod(path, mode), 0);
}

static inline nnm_identity *ident_seed(const uint8_t seed[32])
{
    nnm_identity *id = NULL;
    assert_int_equal(crypto__identity_from_seed(&id, seed, NULL), NNM_OK);
    return id;
}

static inline nnm_identity *ident_byte(uint8_t b)
{
    uint8_t seed[32];
    memset(seed, b, sizeof seed);
    return ident_seed(seed);
}

/* A trust store from text, which must parse. */
static inline nnm_trust *trust_text(const char *text)
{
    nnm_trust *t = NULL;
    nnm_diag d = {NNM_OK, ""};
    nnm_err rc = nnm_trust_decode(&t, text, strlen(text), "trust.txt", &d);
    if (rc != NNM_OK) fprintf(stderr, "trust_text: %s\n", d.msg);
    assert_int_equal(rc, NNM_OK);
    return t;
}

/* "node ID PK" for identity id. */
static inline void trust_line(char *out, size_t cap, const char *kind, const char *name,
                              const nnm_identity *id)
{
    char b64[NNM_PUBKEY_B64_SIZE];
    nnm_pubkey_encode(b64, nnm_identity_get_pubkey(id));
    snprintf(out, cap, "%s %s %s\n", kind, name, b64);
}

#endif
