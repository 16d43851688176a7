/* tests/security/forge_advert.c — writes an advert an attacker could publish, for the security
 * tests of tests/security/ (never used by the product).
 *
 * usage: forge_advert TRUSTFILE REAL.bin KEYFILE OUT.bin [--id ID] [--seq N] [--scale F]
 *                     [--expiry-s S] [--corrupt-signature]
 *
 * REAL.bin is a node's genuine retained advert (mosquitto_sub -C 1 -N > REAL.bin); it must
 * verify against TRUSTFILE (it may have expired since). OUT.bin gets an advert with REAL's epoch, models, memory and load,
 * signed with KEYFILE's key (any key: the node's own, another node's, a fresh untrusted one):
 *   --id ID               the node id it claims (default REAL's)
 *   --seq N               its sequence number (default REAL's + 1)
 *   --scale F             every capacity whose name starts with "mflops-" or is "gflops" is
 *                         multiplied by F (an inflated capacity claim)
 *   --expiry-s S          expires S seconds from now (default 30)
 *   --corrupt-signature   flips one bit of the signature (the last byte) after signing
 * Prints one line: the claimed id, epoch, sequence, conv3x3 MFLOP/s and the signer's
 * fingerprint. Exit status 0, or 1 with one line on stderr. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nnmesh/crypto.h"
#include "nnmesh/node.h"

static uint8_t *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) return NULL;
    size_t cap = 4096, n = 0;
    uint8_t *buf = malloc(cap);
    while (buf != NULL) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) break;
        uint8_t *nb = realloc(buf, cap * 2);
        if (nb == NULL) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = nb;
        cap *= 2;
    }
    fclose(f);
    *len = n;
    return buf;
}

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: forge_advert TRUSTFILE REAL.bin KEYFILE OUT.bin [--id ID] "
                "[--seq N] [--scale F] [--expiry-s S] [--corrupt-signature]\n");
        return 2;
    }
    const char *id = NULL;
    long long seq = -1;
    double scale = 1.0, expiry_s = 30;
    int corrupt = 0;
    for (int i = 5; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--corrupt-signature")) corrupt = 1;
        else if (v != NULL && !strcmp(a, "--id")) id = v, i++;
        else if (v != NULL && !strcmp(a, "--seq")) seq = atoll(v), i++;
        else if (v != NULL && !strcmp(a, "--scale")) scale = atof(v), i++;
        else if (v != NULL && !strcmp(a, "--expiry-s")) expiry_s = atof(v), i++;
        else {
            fprintf(stderr, "forge_advert: unknown or incomplete option '%s'\n", a);
            return 2;
        }
    }

    int status = 1;
    nnm_diag d;
    nnm_diag_clear(&d);
    nnm_trust *trust = NULL;
    nnm_identity *key = NULL;
    uint8_t *real = NULL, *out = NULL;
    size_t rlen = 0, olen = 0;
    if (nnm_trust_load(&trust, argv[1], &d) != NNM_OK || nnm_identity_load(&key, argv[3], &d) != NNM_OK) {
        fprintf(stderr, "forge_advert: %s\n", d.msg);
        goto out;
    }
    if ((real = read_all(argv[2], &rlen)) == NULL) {
        fprintf(stderr, "forge_advert: %s: %s\n", argv[2], strerror(errno));
        goto out;
    }
    /* The template must be genuine: its own id is taken from the advert itself. */
    nnm_signed_advert sa;
    if (nnm_advert_decode(&sa, real, rlen, &d) != NNM_OK) {
        fprintf(stderr, "forge_advert: %s: %s\n", argv[2], d.msg);
        goto out;
    }
    /* Checked as of just before its own expiry (sa.expiry, in seconds): a template captured a
     * while ago serves as well as a fresh one. */
    static nnm_node_peer p;
    nnm_advert_verdict v = nnm_node_advert_check(&p, sa.id, real, rlen, trust, NULL,
                                                 sa.expiry * 1000u - 1000u, &d);
    if (v != NNM_ADVERT_ACCEPTED) {
        fprintf(stderr, "forge_advert: %s: not a genuine advert (%s): %s\n", argv[2],
                nnm_advert_verdict_name(v), d.msg);
        goto out;
    }
    const char *names[NNM_NODE_CAPS_MAX];
    uint64_t vals[NNM_NODE_CAPS_MAX];
    for (size_t i = 0; i < p.ncaps; i++) {
        names[i] = p.caps[i].name;
        vals[i] = p.caps[i].value;
        if (!strncmp(names[i], "mflops-", 7) || !strcmp(names[i], "gflops"))
            vals[i] = (uint64_t)((double)vals[i] * scale + 0.5);
    }
    uint64_t s = seq >= 0 ? (uint64_t)seq : p.seq + 1;
    if (nnm_node_advert_encode(&out, &olen, key, id ? id : p.id, p.epoch, s,
                               wall_ms() + (uint64_t)(expiry_s * 1000.0), p.free_mem,
                               p.load_permille, names, vals, p.ncaps,
                               (const uint8_t(*)[32])p.models, p.nmodels, &d) != NNM_OK) {
        fprintf(stderr, "forge_advert: %s\n", d.msg);
        goto out;
    }
    if (corrupt) out[olen - 1] ^= 0x01;   /* the signature is the last 64 bytes */
    FILE *f = fopen(argv[4], "wb");
    if (f == NULL || fwrite(out, 1, olen, f) != olen || fclose(f) != 0) {
        fprintf(stderr, "forge_advert: %s: %s\n", argv[4], strerror(errno));
        goto out;
    }
    char fp[NNM_FINGERPRINT_SIZE];
    nnm_pubkey_get_fingerprint(fp, nnm_identity_get_pubkey(key));
    nnm_node_peer q = p;
    for (size_t i = 0; i < p.ncaps; i++) q.caps[i].value = vals[i];
    printf("forged advert: id %s epoch %llu seq %llu mflops-conv3x3 %llu (genuine %llu) signed "
           "by %s%s\n", id ? id : p.id, (unsigned long long)p.epoch, (unsigned long long)s,
           (unsigned long long)nnm_node_peer_get_cap(&q, "mflops-conv3x3", 0),
           (unsigned long long)nnm_node_peer_get_cap(&p, "mflops-conv3x3", 0), fp,
           corrupt ? ", signature corrupted" : "");
    status = 0;
out:
    free(out);
    free(real);
    nnm_identity_free(key);
    nnm_trust_free(trust);
    return status;
}
