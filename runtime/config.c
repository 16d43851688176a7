/* runtime/config.c — the node's config file: one table of keys, an INI reader (libinih) that
 * checks every line against it, and the checks of the files the config names.
 *
 * The table below is the only place a key is described. The parser, `nnmeshd --help` and
 * docs/CONFIG.md (via nnm_config_key_get) all read it. Defaults, minimums and maximums are
 * written as text and go through the same value parser as the file, so a default that
 * does not parse would fail the first test that loads an empty config.
 *
 * libinih (Debian's build) does not pass line numbers to the handler, so the file is fed
 * through a reader that counts lines; the handler runs right after the reader returned the
 * line it reports, so the count is the key's line. Only the first error is kept. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nnmesh/config.h"
#include "nnmesh/crypto.h"
#include "nnmesh/scheduler.h"
#include "nnmesh/transport.h"

enum { T_STRING, T_INT, T_SIZE, T_BOOL, T_DURATION, T_LIST, T_ID, T_PATH, T_FRACTION };

static const char *const type_name[] = {
    [T_STRING] = "string", [T_INT] = "int", [T_SIZE] = "size", [T_BOOL] = "bool",
    [T_DURATION] = "duration", [T_LIST] = "list", [T_ID] = "id", [T_PATH] = "path",
    [T_FRACTION] = "fraction",
};

enum {
    F_REQUIRED = 1,   /* no default: the file must set it */
    F_MAP = 2,        /* the [models] map: any id as name, the value is the entry */
    F_URI = 4,        /* list items are MQTT broker URIs */
    F_SECRET = 8,     /* path to a secret: mode must be 0600 or stricter */
};

typedef struct keydef {
    const char *section;
    const char *name;
    int type;
    const char *min, *max;   /* text, parsed like a value of the key's type; NULL: none */
    const char *def;         /* NULL: none (required, or an optional string left unset) */
    const char *help;
    size_t off;              /* into nnm_config; the list's count sits right after it */
    int flags;
} keydef;

#define OFF(f) offsetof(nnm_config, f)

static const keydef keys[] = {
    { "node", "id", T_ID, NULL, NULL, NULL,
      "This node's id, [a-z0-9-]{1,32}; unique in the mesh and used in MQTT topics.",
      OFF(node_id), F_REQUIRED },
    { "node", "key_file", T_PATH, NULL, NULL, NULL,
      "The node's Ed25519 key file, written by 'nnmesh keygen'; must be mode 0600.",
      OFF(key_file), F_REQUIRED },
    { "node", "threads", T_INT, "0", "256", "0",
      "Kernel threads for inference; 0 uses every online CPU.", OFF(threads), 0 },
    { "node", "memory_limit", T_SIZE, "0", "1024G", "0",
      "Memory the node offers to the mesh for weights and activations; 0 offers the measured "
      "available memory (MemAvailable, capped by the cgroup limit).",
      OFF(memory_limit), 0 },

    { "mesh", "name", T_ID, NULL, NULL, "nnmesh",
      "The mesh to join, [a-z0-9-]{1,32}; the first level of every topic.", OFF(mesh_name), 0 },
    { "mesh", "trust_file", T_PATH, NULL, NULL, NULL,
      "The mesh trust file listing the node keys and authorities admitted ('nnmesh trust "
      "add'); re-read on SIGHUP.", OFF(trust_file), F_REQUIRED },
    { "mesh", "advert_interval", T_DURATION, "100ms", "3600s", "5s",
      "How often the node publishes its signed capacity advert.", OFF(advert_interval_ms), 0 },

    { "broker", "uris", T_LIST, NULL, NULL, "tcp://127.0.0.1:1883",
      "Comma-separated MQTT broker URIs (tcp://, mqtt://, ssl://, mqtts://, ws://, wss://), "
      "tried in order on connect and on failure.", OFF(broker_uris), F_URI },
    { "broker", "keepalive", T_DURATION, "1s", "3600s", "30s",
      "MQTT keepalive; a silent broker is declared lost after 1.5 times this.",
      OFF(keepalive_ms), 0 },
    { "broker", "tls_ca_file", T_PATH, NULL, NULL, NULL,
      "PEM file of the CA that signed the broker's TLS certificate (ssl://, mqtts://, wss://).",
      OFF(tls_ca_file), 0 },
    { "broker", "tls_cert_file", T_PATH, NULL, NULL, NULL,
      "PEM client certificate for brokers that require one; needs tls_key_file.",
      OFF(tls_cert_file), 0 },
    { "broker", "tls_key_file", T_PATH, NULL, NULL, NULL,
      "PEM private key of tls_cert_file; must be mode 0600.", OFF(tls_key_file), F_SECRET },
    { "broker", "username", T_STRING, NULL, NULL, NULL,
      "MQTT user name, when the broker requires a password.", OFF(username), 0 },
    { "broker", "password_file", T_PATH, NULL, NULL, NULL,
      "File whose first line is the MQTT password (never in the config itself); must be mode "
      "0600; needs username.", OFF(password_file), F_SECRET },

    { "models", "<id>", T_PATH, NULL, NULL, NULL,
      "One line per model this node holds: '<model id> = <path to .onnx>'. Model ids are "
      "[a-z0-9-]{1,32} and unique; each file is hashed (BLAKE2b-256) at start.",
      OFF(models), F_MAP },

    { "limits", "max_frame_bytes", T_SIZE, "64K", "16M", "2M",
      "Largest MQTT message (one frame or one chunk) the node accepts; larger ones are "
      "dropped unread.", OFF(max_frame_bytes), 0 },
    { "limits", "chunk_size", T_SIZE, "16K", "1M", "1M",
      "Tensors are sent in chunks of at most this many bytes (Paho stalls on messages larger "
      "than the socket buffer); at most max_frame_bytes - 4K.", OFF(chunk_size), 0 },
    { "limits", "max_inflight", T_INT, "1", "4096", "16",
      "Requests the node works on at once; more are refused with a busy error.",
      OFF(max_inflight), 0 },
    { "limits", "max_tensor_bytes", T_SIZE, "1K", "4G", "256M",
      "Largest tensor the node accepts from a peer or a request.", OFF(max_tensor_bytes), 0 },
    { "limits", "task_timeout", T_DURATION, "100ms", "3600s", "10s",
      "Deadline of a part sent to a peer by this node when it coordinates a request; when it "
      "passes the part is re-run elsewhere and a late answer is discarded.",
      OFF(task_timeout_ms), 0 },

    /* 0.02: the re-runs cost 2% of the work sent to peers, and a peer that corrupts every
     * part it serves is caught after 50 of its parts on average (95% within 150). */
    { "scheduler", "spot_check", T_FRACTION, "0", "1", "0.02",
      "Fraction of the parts peers answer that this node, when it coordinates, re-runs itself "
      "and compares (chosen at random, unpredictably); a peer whose outputs differ is "
      "excluded and the node's own result is used. 0 turns spot checks off; 1 checks every "
      "part.", OFF(spot_check), 0 },
    { "scheduler", "exclude_for", T_DURATION, "0s", "604800s", "0s",
      "How long a peer caught by a spot check stays out of this node's plans; 0s keeps it "
      "out until this node restarts.", OFF(exclude_ms), 0 },
    { "scheduler", "allow_lossy", T_BOOL, NULL, NULL, "false",
      "Let the plans of requests this node coordinates send f32 tensors between nodes as "
      "f16 or int8 where that is faster; outputs then differ from a single node's by more "
      "than 1e-5 of their scale. Off: lossless codecs only (none, lz4).",
      OFF(allow_lossy), 0 },
    { "scheduler", "forward", T_BOOL, NULL, NULL, "true",
      "When this node coordinates and two consecutive stages of a plan both run on peers, the "
      "first stage's peers send their outputs straight to the next stage's peers instead of "
      "through this node. Parts routed that way are never spot-checked (their inputs and "
      "outputs do not pass through here); false keeps every part's data on this node's link.",
      OFF(forward), 0 },

    { "control", "allow_shell_ingress", T_BOOL, NULL, NULL, "false",
      "Accept raw .npy requests published by mosquitto_pub on the request topic (not signed: "
      "anyone who may publish there can use the mesh).", OFF(allow_shell_ingress), 0 },
    { "control", "allow_plaintext_control", T_BOOL, NULL, NULL, "false",
      "Accept unsigned control messages (policy, drain, resume) from the shell.",
      OFF(allow_plaintext_control), 0 },
};

#define N_KEYS ((int)(sizeof keys / sizeof keys[0]))
_Static_assert(sizeof keys / sizeof keys[0] <= NNM_CONFIG_KEYS_MAX, "nnm_config.key_line is too small");
_Static_assert(offsetof(nnm_config, n_broker_uris) == offsetof(nnm_config, broker_uris) + sizeof(char **),
               "a list's count must follow its array");

static const char *const sections[] = { "node", "mesh", "broker", "models", "limits",
                                        "scheduler", "control" };
#define N_SECTIONS ((int)(sizeof sections / sizeof sections[0]))

int nnm_config_key_count(void)
{
    return N_KEYS;
}

nnm_err nnm_config_key_get(int i, nnm_config_key *k)
{
    if (i < 0 || i >= N_KEYS || k == NULL) return NNM_ERANGE;
    const keydef *d = &keys[i];
    k->section = d->section;
    k->name = d->name;
    k->type = type_name[d->type];
    k->min = d->min;
    k->max = d->max;
    k->def = (d->flags & F_REQUIRED) ? NULL : d->def != NULL ? d->def : "";
    if (d->flags & F_MAP) k->def = "";
    k->help = d->help;
    return NNM_OK;
}

/* ---- value parsers ---------------------------------------------------------------------
 * Each returns 0 or -1 and, on -1, writes what is wrong into why (a phrase that follows
 * "key: "). */

static int parse_i64(const char *s, int64_t *out, const char **end)
{
    char *e;
    errno = 0;
    long long v = strtoll(s, &e, 10);
    if (e == s || errno == ERANGE || !(isdigit((unsigned char)s[0]) || s[0] == '-' || s[0] == '+'))
        return -1;
    *out = v;
    *end = e;
    return 0;
}

static int parse_int(const char *s, int64_t *out, char *why, size_t wl)
{
    const char *e;
    if (parse_i64(s, out, &e) != 0 || *e != '\0') {
        snprintf(why, wl, "'%s' is not a whole number", s);
        return -1;
    }
    return 0;
}

static int parse_size(const char *s, int64_t *out, char *why, size_t wl)
{
    const char *e;
    int64_t v;
    if (parse_i64(s, &v, &e) != 0 || v < 0) goto bad;
    int shift = 0;
    switch (toupper((unsigned char)*e)) {
    case '\0': break;
    case 'K': shift = 10; e++; break;
    case 'M': shift = 20; e++; break;
    case 'G': shift = 30; e++; break;
    case 'B': break;
    default: goto bad;
    }
    if (shift && (*e == 'i' || *e == 'I')) e++;
    if (*e == 'B' || *e == 'b') e++;
    if (*e != '\0') goto bad;
    if (v > (INT64_MAX >> shift)) {
        snprintf(why, wl, "'%s' is too large", s);
        return -1;
    }
    *out = v << shift;
    return 0;
bad:
    snprintf(why, wl, "'%s' is not a size (a whole number of bytes with an optional K, M or G "
             "suffix, e.g. 512K)", s);
    return -1;
}

static int parse_duration(const char *s, int64_t *out, char *why, size_t wl)
{
    const char *e;
    int64_t v;
    if (parse_i64(s, &v, &e) != 0 || v < 0) goto bad;
    if (!strcmp(e, "ms")) *out = v;
    else if (!strcmp(e, "s")) {
        if (v > INT64_MAX / 1000) goto bad;
        *out = v * 1000;
    } else goto bad;
    return 0;
bad:
    snprintf(why, wl, "'%s' is not a duration (a whole number with the unit ms or s, e.g. "
             "500ms or 30s)", s);
    return -1;
}

static int parse_fraction(const char *s, double *out, char *why, size_t wl)
{
    char *e;
    errno = 0;
    double v = strtod(s, &e);
    if (e == s || *e != '\0' || errno == ERANGE || !isfinite(v) ||
        !(isdigit((unsigned char)s[0]) || s[0] == '.')) {
        snprintf(why, wl, "'%s' is not a decimal number (e.g. 0.05)", s);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_bool(const char *s, int *out, char *why, size_t wl)
{
    static const char *const yes[] = { "true", "yes", "on", "1" };
    static const char *const no[] = { "false", "no", "off", "0" };
    for (int i = 0; i < 4; i++) {
        if (!strcasecmp(s, yes[i])) { *out = 1; return 0; }
        if (!strcasecmp(s, no[i])) { *out = 0; return 0; }
    }
    snprintf(why, wl, "'%s' is not a boolean (true or false)", s);
    return -1;
}

/* An MQTT broker URI as Paho takes it: scheme://host:port. */
static int check_uri(const char *u, char *why, size_t wl)
{
    static const char *const schemes[] = { "tcp://", "mqtt://", "ssl://", "mqtts://", "ws://",
                                           "wss://" };
    const char *rest = NULL;
    for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++)
        if (!strncmp(u, schemes[i], strlen(schemes[i]))) rest = u + strlen(schemes[i]);
    if (rest == NULL) {
        snprintf(why, wl, "'%s' is not a broker URI (tcp://, mqtt://, ssl://, mqtts://, ws:// "
                 "or wss:// followed by host:port)", u);
        return -1;
    }
    const char *colon = strrchr(rest, ':');
    if (*rest == '\0' || *rest == ':' || colon == NULL) {
        snprintf(why, wl, "'%s' needs a host and a port, e.g. tcp://127.0.0.1:1883", u);
        return -1;
    }
    char *e;
    long port = strtol(colon + 1, &e, 10);
    if (e == colon + 1 || (*e != '\0' && *e != '/') || port < 1 || port > 65535) {
        snprintf(why, wl, "'%s': the port must be a number from 1 to 65535", u);
        return -1;
    }
    return 0;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s)) s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1])) s[--n] = '\0';
    return s;
}

/* Bounds are text in the key's type; they always parse (a test loads every default). */
static int64_t bound(const keydef *k, const char *text)
{
    char why[64];
    int64_t v = 0;
    if (k->type == T_SIZE) parse_size(text, &v, why, sizeof why);
    else if (k->type == T_DURATION) parse_duration(text, &v, why, sizeof why);
    else parse_int(text, &v, why, sizeof why);
    return v;
}

/* ---- the loader ------------------------------------------------------------------------ */

typedef struct loader {
    nnm_config *c;
    const char *name;          /* file name for messages */
    char *dir;                 /* directory relative paths are resolved against, or NULL */
    /* line reader */
    FILE *f;
    const char *text;          /* or a string */
    size_t pos;
    int line;
    int line_indented;         /* the current line starts with white space */
    int long_line;             /* first line longer than the reader's buffer, or 0 */
    /* per key: the line it was set on (0: default) */
    int set_line[N_KEYS];
    int last_key;              /* key of the previous handler call, for continuations */
    int last_line;
    /* first error */
    nnm_err rc;
    nnm_diag *diag;
    int err_line;
} loader;

static void fail_at(loader *L, int line, nnm_err rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void fail_at(loader *L, int line, nnm_err rc, const char *fmt, ...)
{
    if (L->rc != NNM_OK) return;   /* keep the first */
    char msg[NNM_DIAG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    L->rc = rc;
    L->err_line = line;
    if (line > 0) nnm_diag_set(L->diag, rc, "%s:%d: %s", L->name, line, msg);
    else nnm_diag_set(L->diag, rc, "%s: %s", L->name, msg);
}

/* An fgets that counts lines and swallows the rest of an over-long line (reported). */
static char *read_line(char *buf, int num, void *stream)
{
    loader *L = stream;
    int n = 0, c = 0, longer = 0;
    for (;;) {
        if (L->f != NULL) c = getc(L->f);
        else c = L->text[L->pos] != '\0' ? (unsigned char)L->text[L->pos++] : EOF;
        if (c == EOF) break;
        if (n < num - 2) buf[n++] = (char)c;
        else if (c != '\n' && c != '\r') longer = 1;
        if (c == '\n') break;
    }
    if (n == 0 && c == EOF) return NULL;
    buf[n] = '\0';
    L->line++;
    L->line_indented = n > 0 && (buf[0] == ' ' || buf[0] == '\t');
    if (longer && L->long_line == 0) {
        L->long_line = L->line;
        fail_at(L, L->line, NNM_EFORMAT, "line is longer than %d characters", num - 3);
    }
    return buf;
}

static int levenshtein(const char *a, const char *b)
{
    int la = (int)strlen(a), lb = (int)strlen(b);
    if (la > 40 || lb > 40) return 99;
    int prev[41], cur[41];
    for (int j = 0; j <= lb; j++) prev[j] = j;
    for (int i = 1; i <= la; i++) {
        cur[0] = i;
        for (int j = 1; j <= lb; j++) {
            int sub = prev[j - 1] + (tolower((unsigned char)a[i - 1]) != b[j - 1]);
            int del = prev[j] + 1, ins = cur[j - 1] + 1;
            cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
        memcpy(prev, cur, sizeof prev);
    }
    return prev[lb];
}

static int find_section(const char *s)
{
    for (int i = 0; i < N_SECTIONS; i++)
        if (!strcmp(sections[i], s)) return i;
    return -1;
}

static int find_key(const char *section, const char *name)
{
    for (int i = 0; i < N_KEYS; i++)
        if (!strcmp(keys[i].section, section) &&
            ((keys[i].flags & F_MAP) || !strcmp(keys[i].name, name)))
            return i;
    return -1;
}

/* "; did you mean [mesh] trust_file?" for the known key closest to section.name. */
static void suggest(char *out, size_t len, const char *section, const char *name)
{
    int best = -1, bd = 99;
    for (int i = 0; i < N_KEYS; i++) {
        if (keys[i].flags & F_MAP) continue;
        int d = levenshtein(name, keys[i].name);
        if (strcmp(keys[i].section, section) != 0) d += 1;   /* prefer the same section */
        if (d < bd) { bd = d; best = i; }
    }
    int limit = (int)strlen(name) / 2 + 1;
    if (best >= 0 && bd <= limit) {
        if (!strcmp(keys[best].section, section))
            snprintf(out, len, "; did you mean '%s'?", keys[best].name);
        else
            snprintf(out, len, "; did you mean '%s' in [%s]?", keys[best].name, keys[best].section);
    } else {
        snprintf(out, len, "; the keys of [%s] are listed by 'nnmeshd --help'", section);
    }
}

static char *resolve_path(const loader *L, const char *v)
{
    if (v[0] == '/' || L->dir == NULL) return strdup(v);
    if (!strcmp(L->dir, "/")) {
        size_t n = strlen(v) + 2;
        char *p = malloc(n);
        if (p != NULL) snprintf(p, n, "/%s", v);
        return p;
    }
    size_t n = strlen(L->dir) + strlen(v) + 2;
    char *p = malloc(n);
    if (p != NULL) snprintf(p, n, "%s/%s", L->dir, v);
    return p;
}

static int list_append(char ***v, int *n, const char *item)
{
    char **nv = realloc(*v, (size_t)(*n + 1) * sizeof *nv);
    if (nv == NULL) return -1;
    *v = nv;
    if ((nv[*n] = strdup(item)) == NULL) return -1;
    (*n)++;
    return 0;
}

static void list_free(char **v, int n)
{
    for (int i = 0; i < n; i++) free(v[i]);
    free(v);
}

/* Parses value text into the field of key k; line is for messages (0: a default). */
static void set_value(loader *L, int k, const char *name, const char *value, int line,
                      int append)
{
    const keydef *d = &keys[k];
    char why[NNM_DIAG_MAX - 64];
    char *field = (char *)L->c + d->off;
    char *v = strdup(value);
    if (v == NULL) { fail_at(L, line, NNM_ENOMEM, "out of memory"); return; }
    char *t = trim(v);
    const char *where = d->section;

    if (t[0] == '\0' && d->type != T_LIST && d->type != T_STRING) {
        fail_at(L, line, NNM_EFORMAT, "[%s] %s: needs a value (%s)", where, name,
                type_name[d->type]);
        goto out;
    }
    switch (d->type) {
    case T_INT: case T_SIZE: case T_DURATION: {
        int64_t x;
        int r = d->type == T_INT ? parse_int(t, &x, why, sizeof why)
              : d->type == T_SIZE ? parse_size(t, &x, why, sizeof why)
              : parse_duration(t, &x, why, sizeof why);
        if (r != 0) {
            fail_at(L, line, NNM_EFORMAT, "[%s] %s: %s", where, name, why);
            break;
        }
        if ((d->min && x < bound(d, d->min)) || (d->max && x > bound(d, d->max))) {
            fail_at(L, line, NNM_ERANGE, "[%s] %s: %s is out of range (%s to %s)", where, name,
                    t, d->min, d->max);
            break;
        }
        *(int64_t *)field = x;
        break;
    }
    case T_FRACTION: {
        double x, lo = 0, hi = 0;
        if (parse_fraction(t, &x, why, sizeof why) != 0) {
            fail_at(L, line, NNM_EFORMAT, "[%s] %s: %s", where, name, why);
            break;
        }
        if ((d->min && (parse_fraction(d->min, &lo, why, sizeof why), x < lo)) ||
            (d->max && (parse_fraction(d->max, &hi, why, sizeof why), x > hi))) {
            fail_at(L, line, NNM_ERANGE, "[%s] %s: %s is out of range (%s to %s)", where, name,
                    t, d->min, d->max);
            break;
        }
        *(double *)field = x;
        break;
    }
    case T_BOOL: {
        int b;
        if (parse_bool(t, &b, why, sizeof why) != 0)
            fail_at(L, line, NNM_EFORMAT, "[%s] %s: %s", where, name, why);
        else *(int *)field = b;
        break;
    }
    case T_LIST: {
        char ***lv = (char ***)field;
        int *ln = (int *)(field + sizeof(char **));
        if (!append) { list_free(*lv, *ln); *lv = NULL; *ln = 0; }
        char *save = NULL;
        int any = 0;
        for (char *it = strtok_r(t, ",", &save); it != NULL; it = strtok_r(NULL, ",", &save)) {
            it = trim(it);
            if (*it == '\0') continue;
            if ((d->flags & F_URI) && check_uri(it, why, sizeof why) != 0) {
                fail_at(L, line, NNM_EFORMAT, "[%s] %s: %s", where, name, why);
                goto out;
            }
            if (list_append(lv, ln, it) != 0) { fail_at(L, line, NNM_ENOMEM, "out of memory"); goto out; }
            any = 1;
        }
        if (!any && !append)
            fail_at(L, line, NNM_EFORMAT, "[%s] %s: needs at least one item (comma-separated)",
                    where, name);
        break;
    }
    case T_ID:
        if (!nnm_id_is_valid(t)) {
            fail_at(L, line, NNM_EFORMAT, "[%s] %s: '%.64s' is not a valid id (1 to 32 of a-z, "
                    "0-9 and '-')", where, name, t);
            break;
        }
        /* fall through */
    case T_STRING: case T_PATH: {
        char **sp = (char **)field;
        char *nv = d->type == T_PATH ? resolve_path(L, t) : strdup(t);
        if (nv == NULL) { fail_at(L, line, NNM_ENOMEM, "out of memory"); break; }
        free(*sp);
        *sp = t[0] != '\0' || d->type != T_STRING ? nv : (free(nv), NULL);
        break;
    }
    }
out:
    free(v);
}

static void add_model(loader *L, const char *id, const char *value, int line)
{
    nnm_config *c = L->c;
    char buf[NNM_DIAG_MAX];
    snprintf(buf, sizeof buf, "%s", value);
    char *p = trim(buf);
    if (!nnm_id_is_valid(id)) {
        fail_at(L, line, NNM_EFORMAT, "[models] '%.64s' is not a valid model id (1 to 32 of a-z, "
                "0-9 and '-')", id);
        return;
    }
    for (int i = 0; i < c->n_models; i++)
        if (!strcmp(c->models[i].id, id)) {
            fail_at(L, line, NNM_EFORMAT, "[models] %s: model id listed twice (first on line %d)",
                    id, c->models[i].line);
            return;
        }
    if (*p == '\0') {
        fail_at(L, line, NNM_EFORMAT, "[models] %s: needs the path of an .onnx file", id);
        return;
    }
    nnm_config_model *m = realloc(c->models, (size_t)(c->n_models + 1) * sizeof *m);
    if (m == NULL) { fail_at(L, line, NNM_ENOMEM, "out of memory"); return; }
    c->models = m;
    m = &c->models[c->n_models];
    m->id = strdup(id);
    m->path = resolve_path(L, p);
    m->line = line;
    c->n_models++;
    if (m->id == NULL || m->path == NULL) fail_at(L, line, NNM_ENOMEM, "out of memory");
}

static int on_pair(void *user, const char *section, const char *name, const char *value)
{
    loader *L = user;
    int line = L->line;
    if (L->rc != NNM_OK) return 1;
    if (section[0] == '\0') {
        fail_at(L, line, NNM_EFORMAT, "%s: key outside any section; start the file with [node]",
                name);
        return 1;
    }
    if (find_section(section) < 0) {
        int best = -1, bd = 99;
        for (int i = 0; i < N_SECTIONS; i++) {
            int d = levenshtein(section, sections[i]);
            if (d < bd) { bd = d; best = i; }
        }
        if (bd <= 2)
            fail_at(L, line, NNM_EFORMAT, "unknown section [%s]; did you mean [%s]?", section,
                    sections[best]);
        else
            fail_at(L, line, NNM_EFORMAT, "unknown section [%s] (known: [node], [mesh], [broker], "
                    "[models], [limits], [scheduler], [control])", section);
        return 1;
    }
    int k = find_key(section, name);
    if (k < 0) {
        char hint[160];
        suggest(hint, sizeof hint, section, name);
        fail_at(L, line, NNM_EFORMAT, "[%s] %s: unknown key%s", section, name, hint);
        return 1;
    }
    /* inih calls again with the same name for an indented continuation line. */
    int continuation = L->line_indented && k == L->last_key && L->last_line < line;
    if (keys[k].flags & F_MAP) {
        if (continuation) {
            fail_at(L, line, NNM_EFORMAT, "[models] %s: continuation lines are not allowed here; "
                    "unindent the line", name);
            return 1;
        }
        add_model(L, name, value, line);
    } else if (continuation) {
        if (keys[k].type != T_LIST) {
            fail_at(L, line, NNM_EFORMAT, "[%s] %s: only list keys may continue on an indented "
                    "line; unindent it", section, name);
            return 1;
        }
        set_value(L, k, name, value, line, 1);
    } else {
        if (L->set_line[k] != 0) {
            fail_at(L, line, NNM_EFORMAT, "[%s] %s: set twice (first on line %d); keep one",
                    section, name, L->set_line[k]);
            return 1;
        }
        L->set_line[k] = line;
        set_value(L, k, name, value, line, 0);
    }
    L->last_key = k;
    L->last_line = line;
    return 1;
}

/* Checks that cut across keys, once the whole file is read. */
static void check_keys(loader *L)
{
    nnm_config *c = L->c;
    for (int k = 0; k < N_KEYS; k++)
        if ((keys[k].flags & F_REQUIRED) && L->set_line[k] == 0)
            fail_at(L, 0, NNM_EFORMAT, "[%s] %s is required: %s", keys[k].section, keys[k].name,
                    keys[k].help);
    int kc = find_key("limits", "chunk_size");
    if (c->chunk_size > c->max_frame_bytes - 4096)
        fail_at(L, L->set_line[kc], NNM_ERANGE, "[limits] chunk_size: %lld bytes leaves no room for "
                "the frame header within max_frame_bytes (%lld); lower it to at most %lldK",
                (long long)c->chunk_size, (long long)c->max_frame_bytes,
                (long long)(c->max_frame_bytes - 4096) / 1024);
    if ((c->tls_cert_file == NULL) != (c->tls_key_file == NULL))
        fail_at(L, L->set_line[find_key("broker", c->tls_cert_file ? "tls_cert_file" : "tls_key_file")],
                NNM_EFORMAT, "[broker] tls_cert_file and tls_key_file go together; set both or "
                "neither");
    if (c->password_file != NULL && c->username == NULL)
        fail_at(L, L->set_line[find_key("broker", "password_file")], NNM_EFORMAT,
                "[broker] password_file needs username");
}

/* A file the config names must be a readable regular file (and private for secrets). */
static void check_file(loader *L, int line, const char *what, const char *path, int secret)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        fail_at(L, line, NNM_EIO, "%s: %s: %s", what, path, strerror(errno));
        return;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        fail_at(L, line, NNM_EIO, "%s: %s: not a regular file", what, path);
    } else if (st.st_size == 0) {
        fail_at(L, line, NNM_EFORMAT, "%s: %s: the file is empty", what, path);
    } else if (secret && (st.st_mode & 077) != 0) {
        fail_at(L, line, NNM_ETRUST, "%s: %s is accessible by others (mode %04o); run chmod 600 %s",
                what, path, (unsigned)(st.st_mode & 07777), path);
    }
    close(fd);
}

static void check_files(loader *L)
{
    nnm_config *c = L->c;
    nnm_diag d;
    int k;
    if (L->rc != NNM_OK) return;

    k = find_key("node", "key_file");
    nnm_identity *id = NULL;
    nnm_diag_clear(&d);
    if (nnm_identity_load(&id, c->key_file, &d) != NNM_OK)
        fail_at(L, L->set_line[k], d.code, "[node] key_file: %s%s", d.msg,
                d.code == NNM_EIO ? " (create one with 'nnmesh keygen -o FILE')" : "");
    nnm_identity_free(id);

    k = find_key("mesh", "trust_file");
    nnm_trust *t = NULL;
    nnm_diag_clear(&d);
    if (L->rc == NNM_OK && nnm_trust_load(&t, c->trust_file, &d) != NNM_OK)
        fail_at(L, L->set_line[k], d.code, "[mesh] trust_file: %s%s", d.msg,
                d.code == NNM_EIO ? " (create one with 'nnmesh trust add')" : "");
    nnm_trust_free(t);

    static const char *const files[] = { "tls_ca_file", "tls_cert_file", "tls_key_file",
                                         "password_file" };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        k = find_key("broker", files[i]);
        const char *p = *(char **)((char *)c + keys[k].off);
        char what[64];
        snprintf(what, sizeof what, "[broker] %s", files[i]);
        if (p != NULL) check_file(L, L->set_line[k], what, p, keys[k].flags & F_SECRET);
    }
    for (int i = 0; i < c->n_models; i++) {
        char what[64];
        snprintf(what, sizeof what, "[models] %s", c->models[i].id);
        check_file(L, c->models[i].line, what, c->models[i].path, 0);
    }
}

static nnm_err load(nnm_config **out, FILE *f, const char *text, const char *name,
                    const char *dir, int files, nnm_diag *diag)
{
    loader L;
    memset(&L, 0, sizeof L);
    L.name = name;
    L.f = f;
    L.text = text;
    L.diag = diag;
    L.last_key = -1;
    nnm_diag_clear(diag);
    if ((L.c = calloc(1, sizeof *L.c)) == NULL || (L.c->source = strdup(name)) == NULL) {
        L.rc = nnm_diag_set(diag, NNM_ENOMEM, "%s: out of memory", name);
        goto fail;
    }
    if (dir != NULL && (L.dir = strdup(dir)) == NULL) {
        L.rc = nnm_diag_set(diag, NNM_ENOMEM, "%s: out of memory", name);
        goto fail;
    }
    /* Defaults first, through the same parser as the file. */
    for (int k = 0; k < N_KEYS; k++)
        if (keys[k].def != NULL && !(keys[k].flags & F_MAP)) set_value(&L, k, keys[k].name, keys[k].def, 0, 0);
    if (L.rc != NNM_OK) goto fail;

    int syntax = ini_parse_stream(read_line, &L, on_pair, &L);
    if (syntax > 0 && (L.rc == NNM_OK || syntax < L.err_line)) {
        L.rc = NNM_OK;   /* the syntax error comes first */
        fail_at(&L, syntax, NNM_EFORMAT, "expected 'key = value' or '[section]'");
    }
    if (f != NULL && ferror(f))
        fail_at(&L, 0, NNM_EIO, "read error: %s", strerror(errno));
    if (L.rc != NNM_OK) goto fail;
    memcpy(L.c->key_line, L.set_line, sizeof L.set_line);
    check_keys(&L);
    if (files) check_files(&L);
    if (L.rc != NNM_OK) goto fail;
    free(L.dir);
    *out = L.c;   /* commit */
    return NNM_OK;
fail:
    free(L.dir);
    nnm_config_free(L.c);
    return L.rc;
}

nnm_err nnm_config_load(nnm_config **out, const char *path, nnm_diag *diag)
{
    if (out == NULL || path == NULL)
        return nnm_diag_set(diag, NNM_EINVAL, "nnm_config_load: NULL argument");
    *out = NULL;
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return nnm_diag_set(diag, NNM_EIO, "%s: cannot open the config file: %s", path,
                            strerror(errno));
    char *dir = strdup(path);
    if (dir == NULL) {
        fclose(f);
        return nnm_diag_set(diag, NNM_ENOMEM, "%s: out of memory", path);
    }
    /* Relative paths in the file are relative to its directory, made absolute so that the
     * summary and the logs say exactly which file is meant. */
    char *slash = strrchr(dir, '/');
    if (slash == NULL) strcpy(dir, ".");
    else if (slash == dir) slash[1] = '\0';
    else *slash = '\0';
    char *abs = realpath(dir, NULL);
    nnm_err rc = load(out, f, NULL, path, abs != NULL ? abs : dir, 1, diag);
    free(abs);
    free(dir);
    fclose(f);
    return rc;
}

nnm_err nnm_config_decode(nnm_config **out, const char *text, const char *name,
                          nnm_diag *diag)
{
    if (out == NULL || text == NULL)
        return nnm_diag_set(diag, NNM_EINVAL, "nnm_config_decode: NULL argument");
    *out = NULL;
    return load(out, NULL, text, name != NULL ? name : "config", NULL, 0, diag);
}

void nnm_config_free(nnm_config *c)
{
    if (c == NULL) return;
    for (int k = 0; k < N_KEYS; k++) {
        char *field = (char *)c + keys[k].off;
        if (keys[k].type == T_LIST) list_free(*(char ***)field, *(int *)(field + sizeof(char **)));
        else if (keys[k].type == T_STRING || keys[k].type == T_ID || keys[k].type == T_PATH) {
            if (!(keys[k].flags & F_MAP)) free(*(char **)field);
        }
    }
    for (int i = 0; i < c->n_models; i++) {
        free(c->models[i].id);
        free(c->models[i].path);
    }
    free(c->models);
    free(c->source);
    free(c);
}

static void format_scaled(char *buf, size_t len, int64_t v, int duration)
{
    if (duration) {
        if (v % 1000 == 0) snprintf(buf, len, "%llds", (long long)(v / 1000));
        else snprintf(buf, len, "%lldms", (long long)v);
        return;
    }
    static const char suf[] = "GMK";
    for (int i = 0; i < 3; i++) {
        int64_t unit = (int64_t)1 << (10 * (3 - i));
        if (v != 0 && v % unit == 0) {
            snprintf(buf, len, "%lld%c", (long long)(v / unit), suf[i]);
            return;
        }
    }
    snprintf(buf, len, "%lld", (long long)v);
}

nnm_err nnm_config_get_value(const nnm_config *c, int i, char *buf, size_t len)
{
    if (c == NULL || buf == NULL || len == 0 || i < 0 || i >= N_KEYS) return NNM_ERANGE;
    const keydef *d = &keys[i];
    const char *field = (const char *)c + d->off;
    buf[0] = '\0';
    if (d->flags & F_MAP) {
        size_t o = 0;
        for (int m = 0; m < c->n_models && o < len; m++) {
            int n = snprintf(buf + o, len - o, "%s%s = %s", m ? "; " : "", c->models[m].id,
                             c->models[m].path);
            if (n < 0) break;
            o += (size_t)n;
        }
        return NNM_OK;
    }
    switch (d->type) {
    case T_INT: snprintf(buf, len, "%lld", (long long)*(const int64_t *)field); break;
    case T_SIZE: format_scaled(buf, len, *(const int64_t *)field, 0); break;
    case T_DURATION: format_scaled(buf, len, *(const int64_t *)field, 1); break;
    case T_BOOL: snprintf(buf, len, "%s", *(const int *)field ? "true" : "false"); break;
    case T_FRACTION: snprintf(buf, len, "%g", *(const double *)field); break;
    case T_LIST: {
        char *const *v = *(char *const *const *)field;
        int n = *(const int *)(field + sizeof(char **));
        size_t o = 0;
        for (int k = 0; k < n && o < len; k++) {
            int w = snprintf(buf + o, len - o, "%s%s", k ? ", " : "", v[k]);
            if (w < 0) break;
            o += (size_t)w;
        }
        break;
    }
    default: {
        const char *s = *(const char *const *)field;
        snprintf(buf, len, "%s", s != NULL ? s : "");
    }
    }
    return NNM_OK;
}

nnm_err nnm_config_broker_opts(const nnm_config *c, nnm_mqtt_opts *o,
                               char password[NNM_CONFIG_PASSWORD_MAX], nnm_diag *diag)
{
    if (c == NULL || o == NULL || password == NULL)
        return nnm_diag_set(diag, NNM_EINVAL, "nnm_config_broker_opts: NULL argument");
    password[0] = '\0';
    o->nuris = 0;
    for (int i = 0; i < c->n_broker_uris && i < NNM_MQTT_MAX_URIS; i++)
        o->uris[o->nuris++] = c->broker_uris[i];
    o->keepalive_s = (unsigned)(c->keepalive_ms / 1000 > 0 ? c->keepalive_ms / 1000 : 1);
    o->max_message = (size_t)c->max_frame_bytes;
    if (c->username == NULL) return NNM_OK;
    o->username = c->username;
    if (c->password_file == NULL) return NNM_OK;
    /* First line of the file (nnm_config_load checked its mode is 0600). */
    FILE *pf = fopen(c->password_file, "r");
    if (pf == NULL || fgets(password, NNM_CONFIG_PASSWORD_MAX, pf) == NULL) {
        int e = errno;
        if (pf) fclose(pf);
        password[0] = '\0';
        return nnm_diag_set(diag, NNM_EIO, "%s: cannot read the broker password: %s",
                            c->password_file, e ? strerror(e) : "empty file");
    }
    fclose(pf);
    password[strcspn(password, "\r\n")] = '\0';
    o->password = password;
    return NNM_OK;
}

void nnm_config_plan_opts(const nnm_config *c, nnm_plan_opts *o)
{
    o->allow_lossy = c->allow_lossy;
}
