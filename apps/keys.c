/* apps/keys.c — `nnmesh keygen` and `nnmesh trust add|list|revoke`: identities and the mesh
 * trust file from the command line, over crypto.h.
 *
 * The trust file is edited as text so that comments and line order survive: a change is
 * appended as one line, the new text is parsed with nnm_trust_decode before anything is
 * written, and the file is replaced atomically (temporary file, fsync, rename), keeping its
 * mode. A node that re-reads the file on SIGHUP therefore sees the old or the new file,
 * never half of one. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keys.h"
#include "nnmesh/crypto.h"

#define TRUST_MAX (1u << 20)
#define FIELDS 4

const char nnm_cli_keys_usage[] =
"    nnmesh keygen [-o KEYFILE] [--id NODE]\n"
"    nnmesh trust add TRUSTFILE --node ID (PUBKEY | --key KEYFILE)\n"
"    nnmesh trust list TRUSTFILE\n"
"    nnmesh trust revoke TRUSTFILE PUBKEY\n";

static int usage(const char *cmd, const char *msg, const char *arg)
{
    fprintf(stderr, "nnmesh %s: %s%s%s\nTry 'nnmesh --help'.\n", cmd, msg, arg ? " " : "",
            arg ? arg : "");
    return 2;
}

static int fail_diag(const char *cmd, const nnm_diag *d, nnm_err rc)
{
    fprintf(stderr, "nnmesh %s: %s\n", cmd, d->msg[0] ? d->msg : nnm_strerror(rc));
    return 1;
}

/* ---- keygen ------------------------------------------------------------------------------ */

int nnm_cli_keygen(int argc, char **argv)
{
    const char *out = NULL, *id = NULL;
    for (int i = 1; i < argc; i++) {
        if ((!strcmp(argv[i], "-o") || !strcmp(argv[i], "--output")) && i + 1 < argc) out = argv[++i];
        else if (!strcmp(argv[i], "--id") && i + 1 < argc) id = argv[++i];
        else if (!strcmp(argv[i], "-o") || !strcmp(argv[i], "--output") || !strcmp(argv[i], "--id"))
            return usage("keygen", "option needs a value:", argv[i]);
        else return usage("keygen", "unexpected argument", argv[i]);
    }
    if (id != NULL && !nnm_id_is_valid(id)) {
        fprintf(stderr, "nnmesh keygen: --id '%s' is not a valid node id (1 to 32 of a-z, 0-9 "
                "and '-')\n", id);
        return 1;
    }
    char def[64];
    if (out == NULL) {
        snprintf(def, sizeof def, "%s.key", id != NULL ? id : "node");
        out = def;
    }
    nnm_diag d;
    nnm_diag_clear(&d);
    nnm_identity *ident = NULL;
    nnm_err rc = nnm_identity_new(&ident, &d);
    if (rc == NNM_OK) rc = nnm_identity_save(ident, out, &d);
    if (rc != NNM_OK) {
        nnm_identity_free(ident);
        return fail_diag("keygen", &d, rc);
    }
    char b64[NNM_PUBKEY_B64_SIZE], fp[NNM_FINGERPRINT_SIZE];
    nnm_pubkey_encode(b64, nnm_identity_get_pubkey(ident));
    nnm_pubkey_get_fingerprint(fp, nnm_identity_get_pubkey(ident));
    nnm_identity_free(ident);
    printf("key file:    %s (mode 0600; keep it secret)\n", out);
    printf("public key:  %s\n", b64);
    printf("fingerprint: %s\n", fp);
    if (id != NULL)
        printf("trust line:  node %s %s\n(add it to the mesh with: nnmesh trust add TRUSTFILE "
               "--node %s %s)\n", id, b64, id, b64);
    return 0;
}

/* ---- the trust file as text -------------------------------------------------------------- */

typedef struct text {
    char *buf;
    size_t len;
    mode_t mode;
    int exists;
} text;

static int read_text(text *t, const char *path)
{
    memset(t, 0, sizeof *t);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) return 0;
        fprintf(stderr, "nnmesh trust: %s: %s\n", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > (off_t)TRUST_MAX) {
        fprintf(stderr, "nnmesh trust: %s: not a regular file of at most %u bytes\n", path, TRUST_MAX);
        close(fd);
        return -1;
    }
    t->buf = malloc((size_t)st.st_size + 2);
    if (t->buf == NULL) {
        close(fd);
        fprintf(stderr, "nnmesh trust: out of memory\n");
        return -1;
    }
    while (t->len < (size_t)st.st_size) {
        ssize_t r = read(fd, t->buf + t->len, (size_t)st.st_size - t->len);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        t->len += (size_t)r;
    }
    close(fd);
    t->buf[t->len] = '\0';
    t->mode = st.st_mode & 0777;
    t->exists = 1;
    return 0;
}

/* Splits line n (1-based) of the text into up to FIELDS white-space separated words,
 * ignoring '#' comments; returns the word count. Calls f for every line. */
typedef int (*line_fn)(void *user, unsigned ln, char f[FIELDS][64], int nf);

static int each_line(const text *t, line_fn fn, void *user)
{
    unsigned ln = 0;
    for (size_t p = 0; p < t->len;) {
        size_t e = p;
        while (e < t->len && t->buf[e] != '\n') e++;
        ln++;
        char f[FIELDS][64];
        int nf = 0;
        size_t q = p;
        while (q < e && t->buf[q] != '#' && nf < FIELDS) {
            while (q < e && (t->buf[q] == ' ' || t->buf[q] == '\t' || t->buf[q] == '\r')) q++;
            if (q >= e || t->buf[q] == '#') break;
            size_t k = 0;
            while (q < e && t->buf[q] != ' ' && t->buf[q] != '\t' && t->buf[q] != '\r' &&
                   t->buf[q] != '#') {
                if (k + 1 < sizeof f[nf]) f[nf][k++] = t->buf[q];
                q++;
            }
            f[nf++][k] = '\0';
        }
        if (nf > 0 && fn(user, ln, f, nf) != 0) return -1;
        p = e + 1;
    }
    return 0;
}

/* Writes text to path atomically, with the given mode. */
static int write_atomic(const char *path, const char *buf, size_t len, mode_t mode)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0) {
        fprintf(stderr, "nnmesh trust: %s: %s\n", tmp, strerror(errno));
        return -1;
    }
    size_t o = 0;
    while (o < len) {
        ssize_t w = write(fd, buf + o, len - o);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break;
        o += (size_t)w;
    }
    int ok = o == len && fchmod(fd, mode) == 0 && fsync(fd) == 0;
    int err = errno;
    if (close(fd) != 0) ok = 0;
    if (!ok || rename(tmp, path) != 0) {
        if (ok) err = errno;
        fprintf(stderr, "nnmesh trust: cannot write %s: %s\n", path, strerror(err));
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* Appends line to the text, checks the result parses as a trust file, writes it. */
static int append_line(text *t, const char *path, const char *line)
{
    static const char header[] =
        "# nnmesh trust file: who may join the mesh. One entry per line:\n"
        "#   node <id> <pubkey>          admit a node key\n"
        "#   authority <name> <pubkey>   admit nodes holding a certificate it signed\n"
        "#   revoke <pubkey>             refuse a key\n";
    size_t need = (t->exists ? t->len : sizeof header) + strlen(line) + 3;
    char *nb = malloc(need);
    if (nb == NULL) {
        fprintf(stderr, "nnmesh trust: out of memory\n");
        return -1;
    }
    size_t n = 0;
    if (t->exists) {
        memcpy(nb, t->buf, t->len);
        n = t->len;
        if (n > 0 && nb[n - 1] != '\n') nb[n++] = '\n';
    } else {
        memcpy(nb, header, sizeof header - 1);
        n = sizeof header - 1;
    }
    n += (size_t)sprintf(nb + n, "%s\n", line);
    nnm_diag d;
    nnm_diag_clear(&d);
    nnm_trust *tr = NULL;
    nnm_err rc = nnm_trust_decode(&tr, nb, n, path, &d);
    nnm_trust_free(tr);
    if (rc != NNM_OK) {
        free(nb);
        return fail_diag("trust", &d, rc), -1;
    }
    /* A trust file must not be writable by others (nnm_trust_load refuses it). */
    mode_t mode = t->exists ? (t->mode & ~(mode_t)022) : 0644;
    int r = write_atomic(path, nb, n, mode);
    free(nb);
    return r;
}

typedef struct scan {
    const char *id;
    uint8_t pk[NNM_PUBKEY_BYTES];
    unsigned id_line, pk_line, revoked_line;
} scan;

static int scan_line(void *user, unsigned ln, char f[FIELDS][64], int nf)
{
    scan *s = user;
    uint8_t pk[NNM_PUBKEY_BYTES];
    const char *key = NULL;
    if (!strcmp(f[0], "node") && nf >= 3) {
        if (s->id != NULL && !strcmp(f[1], s->id) && !s->id_line) s->id_line = ln;
        key = f[2];
    } else if (!strcmp(f[0], "authority") && nf >= 3) {
        key = f[2];
    } else if (!strcmp(f[0], "revoke") && nf >= 2) {
        if (nnm_pubkey_decode(pk, f[1], NULL) == NNM_OK && !memcmp(pk, s->pk, sizeof pk))
            s->revoked_line = ln;
        return 0;
    }
    if (key != NULL && nnm_pubkey_decode(pk, key, NULL) == NNM_OK && !memcmp(pk, s->pk, sizeof pk) &&
        !s->pk_line)
        s->pk_line = ln;
    return 0;
}

static int is_pubkey(const char *s)
{
    uint8_t pk[NNM_PUBKEY_BYTES];
    return nnm_pubkey_decode(pk, s, NULL) == NNM_OK;
}

static int trust_add(int argc, char **argv)
{
    const char *file = NULL, *id = NULL, *keyfile = NULL, *pubkey = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--node") && i + 1 < argc) id = argv[++i];
        else if (!strcmp(argv[i], "--key") && i + 1 < argc) keyfile = argv[++i];
        else if (!strcmp(argv[i], "--node") || !strcmp(argv[i], "--key"))
            return usage("trust add", "option needs a value:", argv[i]);
        else if (argv[i][0] == '-' && argv[i][1] != '\0' && !is_pubkey(argv[i]))
            /* A public key is base64url and may itself start with '-'. */
            return usage("trust add", "unknown option", argv[i]);
        else if (file == NULL) file = argv[i];
        else if (pubkey == NULL) pubkey = argv[i];
        else return usage("trust add", "unexpected argument", argv[i]);
    }
    if (file == NULL) return usage("trust add", "needs TRUSTFILE", NULL);
    if (id == NULL) return usage("trust add", "needs --node ID", NULL);
    if ((pubkey == NULL) == (keyfile == NULL))
        return usage("trust add", "needs exactly one of PUBKEY or --key KEYFILE", NULL);
    if (!nnm_id_is_valid(id)) {
        fprintf(stderr, "nnmesh trust add: --node '%s' is not a valid node id (1 to 32 of a-z, 0-9 "
                "and '-')\n", id);
        return 1;
    }
    scan s = { .id = id };
    nnm_diag d;
    nnm_diag_clear(&d);
    nnm_err rc;
    if (keyfile != NULL) {
        nnm_identity *ident = NULL;
        if ((rc = nnm_identity_load(&ident, keyfile, &d)) != NNM_OK) return fail_diag("trust add", &d, rc);
        memcpy(s.pk, nnm_identity_get_pubkey(ident), sizeof s.pk);
        nnm_identity_free(ident);
    } else if ((rc = nnm_pubkey_decode(s.pk, pubkey, &d)) != NNM_OK) {
        fprintf(stderr, "nnmesh trust add: %s: %s\n", pubkey, d.msg);
        return 1;
    }
    text t;
    if (read_text(&t, file) != 0) return 1;
    each_line(&t, scan_line, &s);
    char b64[NNM_PUBKEY_B64_SIZE], fp[NNM_FINGERPRINT_SIZE], line[160];
    nnm_pubkey_encode(b64, s.pk);
    nnm_pubkey_get_fingerprint(fp, s.pk);
    int status = 1;
    if (s.revoked_line)
        fprintf(stderr, "nnmesh trust add: %s:%u: key %s is revoked; remove that line first to "
                "admit it again\n", file, s.revoked_line, fp);
    else if (s.id_line)
        fprintf(stderr, "nnmesh trust add: %s:%u: node '%s' is already listed; revoke its key "
                "first to give it a new one\n", file, s.id_line, id);
    else if (s.pk_line)
        fprintf(stderr, "nnmesh trust add: %s:%u: key %s is already listed\n", file, s.pk_line, fp);
    else {
        snprintf(line, sizeof line, "node %s %s", id, b64);
        if (append_line(&t, file, line) == 0) {
            printf("%s: added node %s, key %s (fingerprint %s)\n", file, id, b64, fp);
            status = 0;
        }
    }
    free(t.buf);
    return status;
}

typedef struct lister {
    const text *t;
    int n;
} lister;

static int is_revoked(const text *t, const uint8_t pk[NNM_PUBKEY_BYTES])
{
    scan s = { 0 };
    memcpy(s.pk, pk, sizeof s.pk);
    each_line(t, scan_line, &s);
    return s.revoked_line != 0;
}

static int list_line(void *user, unsigned ln, char f[FIELDS][64], int nf)
{
    lister *L = user;
    uint8_t pk[NNM_PUBKEY_BYTES];
    const char *key = nf >= 3 ? f[2] : nf == 2 ? f[1] : "";
    const char *name = nf >= 3 ? f[1] : "-";
    char fp[NNM_FINGERPRINT_SIZE] = "?";
    if (nnm_pubkey_decode(pk, key, NULL) == NNM_OK) nnm_pubkey_get_fingerprint(fp, pk);
    int revoked = strcmp(f[0], "revoke") != 0 && fp[0] != '?' && is_revoked(L->t, pk);
    printf("%-9s %-32s %-19s %s%s\n", f[0], name, fp, key, revoked ? "  (revoked)" : "");
    (void)ln;
    L->n++;
    return 0;
}

static int trust_list(int argc, char **argv)
{
    if (argc != 2) return usage("trust list", "needs exactly one TRUSTFILE", NULL);
    const char *file = argv[1];
    nnm_diag d;
    nnm_diag_clear(&d);
    nnm_trust *tr = NULL;
    nnm_err rc = nnm_trust_load(&tr, file, &d);   /* the same checks a node makes */
    nnm_trust_free(tr);
    if (rc != NNM_OK) return fail_diag("trust list", &d, rc);
    text t;
    if (read_text(&t, file) != 0) return 1;
    lister L = { &t, 0 };
    printf("%-9s %-32s %-19s %s\n", "kind", "id", "fingerprint", "public key");
    each_line(&t, list_line, &L);
    free(t.buf);
    return 0;
}

static int trust_revoke(int argc, char **argv)
{
    if (argc != 3) return usage("trust revoke", "needs TRUSTFILE and PUBKEY", NULL);
    const char *file = argv[1];
    scan s = { 0 };
    nnm_diag d;
    nnm_diag_clear(&d);
    if (nnm_pubkey_decode(s.pk, argv[2], &d) != NNM_OK) {
        fprintf(stderr, "nnmesh trust revoke: %s: %s\n", argv[2], d.msg);
        return 1;
    }
    text t;
    if (read_text(&t, file) != 0) return 1;
    if (!t.exists) {
        fprintf(stderr, "nnmesh trust revoke: %s: no such trust file\n", file);
        return 1;
    }
    each_line(&t, scan_line, &s);
    char b64[NNM_PUBKEY_B64_SIZE], fp[NNM_FINGERPRINT_SIZE], line[128];
    nnm_pubkey_encode(b64, s.pk);
    nnm_pubkey_get_fingerprint(fp, s.pk);
    int status = 1;
    if (s.revoked_line) {
        fprintf(stderr, "nnmesh trust revoke: %s:%u: key %s is already revoked\n", file,
                s.revoked_line, fp);
    } else {
        snprintf(line, sizeof line, "revoke %s", b64);
        if (append_line(&t, file, line) == 0) {
            printf("%s: revoked key %s (fingerprint %s)%s; running nodes reload the file "
                   "within 2 s (or at SIGHUP)\n", file, b64, fp,
                   s.pk_line ? "" : " (not listed here: refused if certified)");
            status = 0;
        }
    }
    free(t.buf);
    return status;
}

int nnm_cli_trust(int argc, char **argv)
{
    if (argc < 2) return usage("trust", "needs a subcommand: add, list or revoke", NULL);
    if (!strcmp(argv[1], "add")) return trust_add(argc - 1, argv + 1);
    if (!strcmp(argv[1], "list")) return trust_list(argc - 1, argv + 1);
    if (!strcmp(argv[1], "revoke")) return trust_revoke(argc - 1, argv + 1);
    return usage("trust", "unknown subcommand", argv[1]);
}
