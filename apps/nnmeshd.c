/* apps/nnmeshd.c — the node daemon's main: reads and checks the config file, loads the
 * identity, the trust file and the models, measures capacity, then joins the mesh
 * (nnmesh/node.h: link, signed adverts, peer table, stats, control) until SIGTERM or SIGINT,
 * when it leaves cleanly; SIGHUP, or a change of the trust file seen by polling its inode, size
 * and times every second, re-reads the trust file. A thin main over libnnmesh:
 * argument parsing, logging and signals. Request handling arrives with the scheduler. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "nnmesh/capacity.h"
#include "nnmesh/config.h"
#include "nnmesh/crypto.h"
#include "nnmesh/graph.h"
#include "nnmesh/node.h"
#include "nnmesh/worker.h"

enum { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };
static const char *const level_name[] = { "debug", "info", "warn", "error" };
static int log_min = LOG_INFO;
static char log_node[NNM_ID_MAX + 1];

static void logf_(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* "2026-11-24T04:10:00Z info node n1: message" on stderr, one write per line. */
static void logf_(int level, const char *fmt, ...)
{
    if (level < log_min) return;
    char line[1024], ts[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
    int n = snprintf(line, sizeof line, "%s %s %s%s: ", ts, level_name[level],
                     log_node[0] ? "node " : "nnmeshd", log_node);
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof line) vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s\n", line);
}

/* ---- help, generated in part from the config key table ---------------------------------- */

static const char help_head[] =
"NAME\n"
"    nnmeshd - the nnmesh node daemon: one per device of the mesh\n"
"\n"
"SYNOPSIS\n"
"    nnmeshd --config FILE [--log-level debug|info|warn|error]\n"
"    nnmeshd --check-config FILE\n"
"    nnmeshd --measure [--threads N] [--budget MS]\n"
"    nnmeshd --print-config-doc\n"
"    nnmeshd --help | --version\n"
"\n"
"DESCRIPTION\n"
"    --config FILE\n"
"        Runs a node in the foreground: reads and checks FILE, loads the node's key file,\n"
"        the mesh trust file and every model listed in [models] (each hashed with\n"
"        BLAKE2b-256), measures this machine's capacity, then serves until SIGTERM or\n"
"        SIGINT and exits 0. The trust file is re-read on SIGHUP, and by itself within\n"
"        about 2 s of a change (its inode, size and modification time are checked every\n"
"        second): the new one applies at once to adverts, control and peer handshakes,\n"
"        peers it no longer admits are dropped from the peer table and their sessions\n"
"        wiped, and the log says which keys were added, removed or revoked. A bad new\n"
"        file is logged and the old one kept. Logs go to stderr, one line each:\n"
"            2026-11-24T04:10:00Z info node n1: ...\n"
"\n"
"        Then it joins the mesh: connects to the first reachable URI of [broker] uris\n"
"        (an unreachable broker is retried with backoff and logged, never fatal),\n"
"        publishes a signed advert (capacities, models by hash, free memory, load,\n"
"        epoch, sequence, expiry) retained on nnmesh/<mesh>/advert/<id> every\n"
"        advert_interval, cleared by its Last Will if the node dies; keeps a table of\n"
"        the peers whose adverts verify against the trust file; publishes JSON stats\n"
"        retained on nnmesh/<mesh>/stats/<id>; obeys control (drain, resume, policy,\n"
"        objective, forward) signed by a trusted key ('nnmesh ctl'), or as plaintext on\n"
"        nnmesh/<mesh>/ctl/<id>/<verb> if allow_plaintext_control is true. The epoch\n"
"        is counted in KEYFILE.epoch, one more at every start. SIGTERM clears the\n"
"        advert, says goodbye to peers and disconnects.\n"
"\n"
"        It serves requests: sealed ones from 'nnmesh infer' (any trusted key), and, if\n"
"        allow_shell_ingress is true, plain .npy inputs published on\n"
"        nnmesh/<mesh>/req/<id>/<tag> or req/any/<tag> (a shared subscription), answered\n"
"        as .npy on nnmesh/<mesh>/res/<id>/<tag>. The node that takes a request plans it\n"
"        with its scheduler (policy and objective set by control) and runs the slices on\n"
"        its peers as sealed tasks, shipping a slice's weights to a peer that lacks the\n"
"        model (cached under KEYFILE.cache/). It runs the tasks other nodes send it, and\n"
"        probes its links to each peer (RTT, throughput) for the scheduler and the stats.\n"
"\n"
"        [broker] username and password_file are sent to the broker (ACLs can then use\n"
"        %u; the MQTT client id is the node id, for %c). NOT WIRED YET: [broker] TLS\n"
"        settings are checked but not used (the session is plain TCP).\n"
"\n"
"    --check-config FILE\n"
"        Checks FILE as --config would (unknown or misspelt keys, values, ranges, ids,\n"
"        duplicates, the key file and its mode, the trust file, every model file, which\n"
"        is also parsed) and prints the effective configuration, defaults included.\n"
"        Every error names the file, the line and the key.\n"
"\n"
"    --measure\n"
"        Measures capacity as the node does at start and prints it as JSON: GFLOP/s per\n"
"        op class (3x3 conv, 1x1 conv, depthwise 3x3, fully connected) from short probes\n"
"        of the real kernels (about 0.2 s; under a cgroup CPU quota the result is what\n"
"        the quota lets the node sustain), free memory (MemAvailable capped by the\n"
"        cgroup limit), load average and CPU quota.\n"
"\n"
"    --print-config-doc\n"
"        Prints the configuration reference (docs/CONFIG.md) from the key table.\n"
"\n"
"OPTIONS\n"
"    -c, --config FILE        run a node with FILE\n"
"    --check-config FILE      check FILE and print the effective configuration\n"
"    --log-level LEVEL        least severe level logged (default info)\n"
"    --threads N              probe threads for --measure (default: all online CPUs)\n"
"    --budget MS              probe time for --measure (default 200, at most 10000)\n"
"\n"
"CONFIGURATION FILE\n"
"    An INI file: [section] headers, 'key = value' lines, '#' or ';' comments. Relative\n"
"    paths are relative to the config file's directory. Sizes take K, M or G suffixes\n"
"    (powers of 1024); durations need ms or s. A list may continue on indented lines.\n"
"\n";

static const char help_tail[] =
"\n"
"EXAMPLE\n"
"    nnmesh keygen --id n1 -o /etc/nnmesh/n1.key\n"
"    nnmesh trust add /etc/nnmesh/trust --node n1 --key /etc/nnmesh/n1.key\n"
"    cat > /etc/nnmesh/node.conf <<EOF\n"
"    [node]\n"
"    id = n1\n"
"    key_file = n1.key\n"
"    [mesh]\n"
"    trust_file = trust\n"
"    [broker]\n"
"    uris = tcp://10.0.0.2:1883, tcp://10.0.0.3:1883\n"
"    [models]\n"
"    mobilenet = /srv/models/mobilenet_v2.onnx\n"
"    EOF\n"
"    nnmeshd --check-config /etc/nnmesh/node.conf && nnmeshd --config /etc/nnmesh/node.conf\n"
"\n"
"EXIT STATUS\n"
"    0 on success and after SIGTERM/SIGINT; 1 when the config, a file it names or a\n"
"    model is wrong (one line on stderr says which, with file and line); 2 on usage\n"
"    errors.\n";

static void print_help(FILE *f)
{
    fputs(help_head, f);
    const char *sect = "";
    for (int i = 0; i < nnm_config_key_count(); i++) {
        nnm_config_key k;
        nnm_config_key_get(i, &k);
        if (strcmp(sect, k.section) != 0) {
            fprintf(f, "    [%s]\n", k.section);
            sect = k.section;
        }
        char range[64] = "";
        if (k.min != NULL) snprintf(range, sizeof range, ", %s..%s", k.min, k.max);
        fprintf(f, "      %s (%s%s%s%s)\n", k.name, k.type, range,
                k.def == NULL ? ", required" : k.def[0] ? ", default " : "",
                k.def != NULL && k.def[0] ? k.def : "");
        /* Wrap the help at 80 columns, indented by 10. */
        const char *h = k.help;
        while (*h) {
            int w = 70;
            int len = (int)strlen(h);
            if (len > w) {
                int cut = w;
                while (cut > 0 && h[cut] != ' ') cut--;
                if (cut == 0) cut = w;
                len = cut;
            }
            fprintf(f, "          %.*s\n", len, h);
            h += len;
            while (*h == ' ') h++;
        }
    }
    fputs(help_tail, f);
}

/* docs/CONFIG.md; tests/config_errors.sh checks the committed file matches. */
static void print_config_doc(void)
{
    printf("# nnmeshd configuration reference\n\n"
           "<!-- Generated by `nnmeshd --print-config-doc` from the key table in "
           "runtime/config.c; do not edit. -->\n\n"
           "One INI file per node: `[section]` headers, `key = value` lines, `#` or `;` "
           "comments. Relative paths are relative to the config file's directory. Sizes "
           "take `K`, `M` or `G` suffixes (powers of 1024); durations need `ms` or `s`. "
           "A list is comma-separated and may continue on indented lines. Check a file with "
           "`nnmeshd --check-config FILE`: every error names the file, the line and the key, "
           "and an unknown key gets the closest known one as a suggestion.\n\n");
    const char *sect = "";
    for (int i = 0; i < nnm_config_key_count(); i++) {
        nnm_config_key k;
        nnm_config_key_get(i, &k);
        if (strcmp(sect, k.section) != 0) {
            printf("%s## [%s]\n\n| key | type | range | default | description |\n"
                   "|---|---|---|---|---|\n", i ? "\n" : "", k.section);
            sect = k.section;
        }
        char range[64] = "";
        if (k.min != NULL) snprintf(range, sizeof range, "%s .. %s", k.min, k.max);
        printf("| `%s` | %s | %s | %s | %s |\n", k.name, k.type, range,
               k.def == NULL ? "**required**" : k.def[0] ? k.def : "", k.help);
    }
}

/* ---- pieces of a node -------------------------------------------------------------------- */

static int load_config(nnm_config **cfg, const char *path)
{
    nnm_diag d;
    nnm_diag_clear(&d);
    nnm_err rc = nnm_config_load(cfg, path, &d);
    if (rc != NNM_OK) {
        fprintf(stderr, "nnmeshd: %s\n", d.msg[0] ? d.msg : nnm_strerror(rc));
        return -1;
    }
    return 0;
}

typedef struct model {
    nnm_graph *g;
    char hash[2 * 32 + 1];
    uint8_t raw[32];
} model;

/* Loads (and hashes) every model; on error logs it and returns -1. */
static int load_models(const nnm_config *cfg, model *m, int quiet)
{
    for (int i = 0; i < cfg->n_models; i++) {
        const nnm_config_model *cm = &cfg->models[i];
        nnm_diag d;
        nnm_diag_clear(&d);
        if (nnm_model_hash_file(m[i].raw, cm->path, &d) != NNM_OK) {
            fprintf(stderr, "nnmeshd: %s:%d: [models] %s: %s\n", cfg->source, cm->line, cm->id,
                    d.msg);
            return -1;
        }
        sodium_bin2hex(m[i].hash, sizeof m[i].hash, m[i].raw, sizeof m[i].raw);
        nnm_err rc = nnm_graph_load_onnx(&m[i].g, cm->path, NULL, &d);
        if (rc != NNM_OK) {
            fprintf(stderr, "nnmeshd: %s:%d: [models] %s: %s\n", cfg->source, cm->line, cm->id,
                    d.msg[0] ? d.msg : nnm_strerror(rc));
            return -1;
        }
        double flops = 0, params = 0;
        int n = nnm_graph_node_count(m[i].g);
        for (int k = 0; k < n; k++) {
            nnm_node_info ni;
            nnm_graph_node_get(m[i].g, k, &ni);
            flops += ni.flops;
            params += (double)ni.param_bytes;
        }
        if (!quiet)
            logf_(LOG_INFO, "model %s: %s, %d nodes, %.1f MFLOPs, %.2f MiB parameters, "
                  "blake2b-256 %s", cm->id, cm->path, n, flops / 1e6, params / 1048576.0,
                  m[i].hash);
        else
            printf("  model %s: %d nodes, %.1f MFLOPs, %.2f MiB parameters, blake2b-256 %.16s...\n",
                   cm->id, n, flops / 1e6, params / 1048576.0, m[i].hash);
    }
    return 0;
}

static int check_config(const char *path)
{
    nnm_config *cfg = NULL;
    if (load_config(&cfg, path) != 0) return 1;
    model *m = calloc((size_t)cfg->n_models + 1, sizeof *m);
    if (m == NULL) {
        nnm_config_free(cfg);
        fprintf(stderr, "nnmeshd: out of memory\n");
        return 1;
    }
    printf("%s: OK\n", path);
    int status = load_models(cfg, m, 1) == 0 ? 0 : 1;
    if (status == 0) {
        printf("# effective configuration ('; default': the file does not set the key)\n");
        const char *sect = "";
        for (int i = 0; i < nnm_config_key_count(); i++) {
            nnm_config_key k;
            char val[2048];
            nnm_config_key_get(i, &k);
            nnm_config_get_value(cfg, i, val, sizeof val);
            if (strcmp(sect, k.section) != 0) {
                printf("[%s]\n", k.section);
                sect = k.section;
            }
            if (!strcmp(k.section, "models")) {
                for (int j = 0; j < cfg->n_models; j++)
                    printf("%s = %s\n", cfg->models[j].id, cfg->models[j].path);
                continue;
            }
            if (cfg->key_line[i] != 0) printf("%s = %s\n", k.name, val);
            else if (val[0] != '\0') printf("%s = %s ; default\n", k.name, val);
            else printf("# %s is not set\n", k.name);
        }
    }
    for (int i = 0; i < cfg->n_models; i++) nnm_graph_free(m[i].g);
    free(m);
    nnm_config_free(cfg);
    return status;
}

static int measure(int threads, int budget)
{
    nnm_capacity cap;
    nnm_diag d;
    nnm_diag_clear(&d);
    nnm_err rc = nnm_capacity_measure(&cap, threads, budget, &d);
    if (rc != NNM_OK) {
        fprintf(stderr, "nnmeshd: %s\n", d.msg[0] ? d.msg : nnm_strerror(rc));
        return 1;
    }
    char json[2048];
    nnm_capacity_encode_json(json, sizeof json, &cap);
    printf("%s\n", json);
    return 0;
}

/* ---- running ------------------------------------------------------------------------------ */

static volatile sig_atomic_t got_stop;
static atomic_int got_hup;     /* lock-free (static assert below): set by the handler, taken by
                                  the trust watcher thread */
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "the SIGHUP flag must be usable in a signal handler");

static void node_log(void *ctx, nnm_node_log_level level, const char *msg)
{
    (void)ctx;
    logf_(level == NNM_NODE_LOG_DEBUG ? LOG_DEBUG : level == NNM_NODE_LOG_INFO ? LOG_INFO
          : level == NNM_NODE_LOG_WARN ? LOG_WARN : LOG_ERROR, "%s", msg);
}

static void on_signal(int sig)
{
    if (sig == SIGHUP) atomic_store(&got_hup, 1);
    else got_stop = sig;
}

/* ---- trust file reloads ------------------------------------------------------------------ */

/* What tells versions of the trust file apart without reading it: 'nnmesh trust' rewrites it
 * atomically (a new inode), an editor in place changes its size or times. */
typedef struct file_sig {
    int err;                   /* errno of stat, 0 if the file is there */
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime, ctime;
} file_sig;

static file_sig file_sig_get(const char *path)
{
    file_sig f;
    memset(&f, 0, sizeof f);
    struct stat st;
    if (stat(path, &st) != 0) {
        f.err = errno ? errno : EIO;
        return f;
    }
    f.dev = st.st_dev;
    f.ino = st.st_ino;
    f.size = st.st_size;
    f.mtime = st.st_mtim;
    f.ctime = st.st_ctim;
    return f;
}

static int file_sig_same(const file_sig *a, const file_sig *b)
{
    return a->err == b->err && a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec &&
           a->ctime.tv_sec == b->ctime.tv_sec && a->ctime.tv_nsec == b->ctime.tv_nsec;
}

/* The key lines of a trust file ("node ID KEY", "authority NAME KEY", "revoke KEY"), read
 * only to say what a reload changed; the store itself comes from nnm_trust_load. */
typedef struct tline {
    char kind[16], name[64], key[64];
} tline;

typedef struct tlines {
    tline *v;
    size_t n;
} tlines;

static void tlines_free(tlines *t)
{
    free(t->v);
    t->v = NULL;
    t->n = 0;
}

static void tlines_read(tlines *t, const char *path)
{
    memset(t, 0, sizeof *t);
    FILE *f = fopen(path, "r");
    if (f == NULL) return;
    char buf[1024];
    while (fgets(buf, sizeof buf, f) != NULL) {
        char *hash = strchr(buf, '#'), *save = NULL;
        if (hash != NULL) *hash = '\0';
        char *a = strtok_r(buf, " \t\r\n", &save);
        char *b = a != NULL ? strtok_r(NULL, " \t\r\n", &save) : NULL;
        char *c = b != NULL ? strtok_r(NULL, " \t\r\n", &save) : NULL;
        if (b == NULL) continue;
        tline *nv = realloc(t->v, (t->n + 1) * sizeof *nv);
        if (nv == NULL) break;
        t->v = nv;
        tline *l = &t->v[t->n++];
        snprintf(l->kind, sizeof l->kind, "%s", a);
        snprintf(l->name, sizeof l->name, "%s", c != NULL ? b : "");
        snprintf(l->key, sizeof l->key, "%s", c != NULL ? c : b);
    }
    fclose(f);
}

static int tlines_has(const tlines *t, const tline *l)
{
    for (size_t i = 0; i < t->n; i++)
        if (!strcmp(t->v[i].kind, l->kind) && !strcmp(t->v[i].name, l->name) &&
            !strcmp(t->v[i].key, l->key))
            return 1;
    return 0;
}

/* "n3 key FINGERPRINT": with the id a node or authority line of either file gives key. */
static void key_label(char *out, size_t cap, const tlines *a, const tlines *b, const char *key)
{
    const char *name = "";
    for (int k = 0; k < 2 && !name[0]; k++) {
        const tlines *t = k ? b : a;
        for (size_t i = 0; i < t->n && !name[0]; i++)
            if (t->v[i].name[0] && !strcmp(t->v[i].key, key)) name = t->v[i].name;
    }
    uint8_t pk[NNM_PUBKEY_BYTES];
    char fp[NNM_FINGERPRINT_SIZE] = "?";
    if (nnm_pubkey_decode(pk, key, NULL) == NNM_OK) nnm_pubkey_get_fingerprint(fp, pk);
    snprintf(out, cap, "%s%skey %s", name, name[0] ? " " : "", fp);
}

/* One sentence on what changed from old to nw: "1 key revoked (n3 key 7e14-...); ...". */
static void describe_change(char *out, size_t cap, const tlines *old, const tlines *nw)
{
    static const struct { const char *kind; int gone; const char *what; } groups[] = {
        { "revoke", 0, "revoked" },        { "revoke", 1, "no longer revoked" },
        { "node", 0, "added" },            { "node", 1, "removed" },
        { "authority", 0, "authority added" }, { "authority", 1, "authority removed" },
    };
    size_t k = 0;
    out[0] = '\0';
    for (size_t g = 0; g < sizeof groups / sizeof groups[0]; g++) {
        const tlines *from = groups[g].gone ? old : nw, *other = groups[g].gone ? nw : old;
        char list[512] = "";
        size_t cnt = 0, lk = 0;
        for (size_t i = 0; i < from->n; i++) {
            const tline *l = &from->v[i];
            if (strcmp(l->kind, groups[g].kind) != 0 || tlines_has(other, l)) continue;
            if (cnt++ < 4 && lk < sizeof list) {
                char lab[128];
                key_label(lab, sizeof lab, old, nw, l->key);
                lk += (size_t)snprintf(list + lk, sizeof list - lk, "%s%s", cnt > 1 ? ", " : "",
                                       lab);
            }
        }
        if (cnt == 0 || k >= cap) continue;
        k += (size_t)snprintf(out + k, cap - k, "%s%zu key%s %s (%s%s)", k ? "; " : "", cnt,
                              cnt == 1 ? "" : "s", groups[g].what, list, cnt > 4 ? ", ..." : "");
    }
    if (k == 0) snprintf(out, cap, "no key added, removed or revoked");
}

/* The trust watcher: a thread that re-reads the trust file on SIGHUP and when its signature
 * changes (checked every second), so that a revoked key is refused within about 2 s even
 * while the main thread is busy with a long request. It owns the current store. */
typedef struct trust_watch {
    pthread_t th;
    atomic_int stop;
    nnm_node *node;
    const nnm_config *cfg;
    const nnm_identity *ident;
    nnm_trust *trust;          /* the store the node uses now */
    file_sig sig;              /* of the file that store (or the last bad file) came from */
    tlines lines;
} trust_watch;

static void watch_reload(trust_watch *w, const char *why)
{
    const char *path = w->cfg->trust_file;
    w->sig = file_sig_get(path);   /* before reading: a change meanwhile is seen next time */
    nnm_trust *nt = NULL;
    nnm_diag d;
    nnm_diag_clear(&d);
    if (nnm_trust_load(&nt, path, &d) != NNM_OK) {
        logf_(LOG_ERROR, "%s: %s; keeping the trust file loaded before", why, d.msg);
        return;
    }
    tlines nl;
    tlines_read(&nl, path);
    char what[768];
    describe_change(what, sizeof what, &w->lines, &nl);
    nnm_node_set_trust(w->node, nt);   /* when it returns nothing uses the old store */
    nnm_trust_free(w->trust);
    w->trust = nt;
    tlines_free(&w->lines);
    w->lines = nl;
    logf_(LOG_INFO, "%s: trust file %s reloaded: %s; adverts, control and peer handshakes use "
          "it now", why, path, what);
    nnm_diag_clear(&d);
    if (nnm_trust_check(nt, w->cfg->node_id, nnm_identity_get_pubkey(w->ident), NULL, 0,
                        (uint64_t)time(NULL), &d) != NNM_OK)
        logf_(LOG_WARN, "the new trust file does not admit this node itself (%s): peers that "
              "read it will refuse this node", d.msg);
}

static void *watch_main(void *arg)
{
    trust_watch *w = arg;
    unsigned tick = 0;
    while (!atomic_load(&w->stop)) {
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
        if (atomic_exchange(&got_hup, 0)) {
            watch_reload(w, "SIGHUP");
            continue;
        }
        if (++tick % 10 != 0) continue;   /* the file: once a second */
        file_sig now = file_sig_get(w->cfg->trust_file);
        if (file_sig_same(&now, &w->sig)) continue;
        if (now.err != 0) {
            w->sig = now;
            logf_(LOG_ERROR, "file changed: trust file %s: %s; keeping the trust file loaded "
                  "before", w->cfg->trust_file, strerror(now.err));
            continue;
        }
        watch_reload(w, "file changed");
    }
    return NULL;
}

static int run_node(const char *path)
{
    int status = 1;
    nnm_config *cfg = NULL;
    nnm_identity *ident = NULL;
    nnm_trust *trust = NULL;
    model *m = NULL;
    nnm_node *node = NULL;
    trust_watch w;
    memset(&w, 0, sizeof w);
    uint8_t (*hashes)[32] = NULL;
    nnm_graph **graphs = NULL;
    nnm_diag d;
    nnm_diag_clear(&d);
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGHUP);
    /* Signals wait until the loop below: a SIGTERM during start-up stops the node there. */
    sigprocmask(SIG_BLOCK, &block, &old);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);

    if (load_config(&cfg, path) != 0) goto out;
    snprintf(log_node, sizeof log_node, "%s", cfg->node_id);
    logf_(LOG_INFO, "starting: config %s, mesh %s, %d broker URI%s, %d model%s", path,
          cfg->mesh_name, cfg->n_broker_uris, cfg->n_broker_uris == 1 ? "" : "s", cfg->n_models,
          cfg->n_models == 1 ? "" : "s");
    nnm_err rc = nnm_identity_load(&ident, cfg->key_file, &d);
    if (rc != NNM_OK) {
        logf_(LOG_ERROR, "%s", d.msg);
        goto out;
    }
    char b64[NNM_PUBKEY_B64_SIZE], fp[NNM_FINGERPRINT_SIZE];
    nnm_pubkey_encode(b64, nnm_identity_get_pubkey(ident));
    nnm_pubkey_get_fingerprint(fp, nnm_identity_get_pubkey(ident));
    logf_(LOG_INFO, "identity %s (fingerprint %s) from %s", b64, fp, cfg->key_file);
    w.sig = file_sig_get(cfg->trust_file);   /* before reading: a change meanwhile is seen */
    if ((rc = nnm_trust_load(&trust, cfg->trust_file, &d)) != NNM_OK) {
        logf_(LOG_ERROR, "%s", d.msg);
        goto out;
    }
    rc = nnm_trust_check(trust, cfg->node_id, nnm_identity_get_pubkey(ident), NULL, 0,
                         (uint64_t)time(NULL), &d);
    logf_(LOG_INFO, "trust file %s loaded%s%s", cfg->trust_file,
          rc == NNM_OK ? "; this node is listed in it" : "; warning: ", rc == NNM_OK ? "" : d.msg);
    if ((m = calloc((size_t)cfg->n_models + 1, sizeof *m)) == NULL) {
        logf_(LOG_ERROR, "out of memory");
        goto out;
    }
    if (load_models(cfg, m, 0) != 0) goto out;
    nnm_capacity cap;
    if ((rc = nnm_capacity_measure(&cap, (int)cfg->threads, 0, &d)) != NNM_OK) {
        logf_(LOG_ERROR, "%s", d.msg);
        goto out;
    }
    char quota[32] = "none";
    if (cap.cpu_quota > 0) snprintf(quota, sizeof quota, "%.2f cores", cap.cpu_quota);
    uint64_t offer = cfg->memory_limit > 0 && (uint64_t)cfg->memory_limit < cap.mem_free
                         ? (uint64_t)cfg->memory_limit : cap.mem_free;
    logf_(LOG_INFO, "capacity (%d thread%s, %.0f ms): conv3x3 %.2f, conv1x1 %.2f, dwconv3x3 %.2f, "
          "fc %.2f GFLOP/s; memory offered %.0f MiB (free %.0f MiB); load %.2f; cpu quota %s",
          cap.threads, cap.threads == 1 ? "" : "s", cap.wall_ms, cap.gflops[NNM_PROBE_CONV3X3],
          cap.gflops[NNM_PROBE_CONV1X1], cap.gflops[NNM_PROBE_DWCONV3X3],
          cap.gflops[NNM_PROBE_FC], (double)offer / 1048576.0, (double)cap.mem_free / 1048576.0,
          cap.load1, quota);
    nnm_node_capacity nc;
    memset(&nc, 0, sizeof nc);
    nc.threads = cap.threads;
    nc.cpu_quota = cap.cpu_quota;
    for (int i = 0; i < 4; i++) nc.gflops[i] = cap.gflops[i];
    nc.mem_offer = offer;
    nc.mem_free = cap.mem_free;
    nc.load1 = cap.load1;
    nc.cpus_online = cap.cpus_online;
    char epoch_path[4096];
    snprintf(epoch_path, sizeof epoch_path, "%s.epoch", cfg->key_file);
    uint64_t epoch = 0;
    if (nnm_node_epoch_next(&epoch, epoch_path, &d) != NNM_OK) {
        logf_(LOG_ERROR, "epoch file: %s", d.msg);
        goto out;
    }
    if (cfg->tls_ca_file != NULL || cfg->tls_cert_file != NULL)
        logf_(LOG_WARN, "[broker] TLS settings are not supported by the MQTT session yet: "
              "connecting without TLS");
    if ((hashes = calloc((size_t)cfg->n_models + 1, sizeof *hashes)) == NULL) {
        logf_(LOG_ERROR, "out of memory");
        goto out;
    }
    for (int i = 0; i < cfg->n_models; i++) memcpy(hashes[i], m[i].raw, 32);
    nnm_node_opts no;
    memset(&no, 0, sizeof no);
    no.cfg = cfg;
    no.identity = ident;
    no.trust = trust;
    no.epoch = epoch;
    no.capacity = nc;
    no.models = (const uint8_t(*)[32])hashes;
    no.nmodels = (size_t)cfg->n_models;
    /* The node takes the loaded graphs (its worker runs slices of them); slice models that
     * coordinators send are cached next to the key file. */
    if ((graphs = calloc((size_t)cfg->n_models + 1, sizeof *graphs)) == NULL) {
        logf_(LOG_ERROR, "out of memory");
        goto out;
    }
    for (int i = 0; i < cfg->n_models; i++) graphs[i] = m[i].g;
    char cache_dir[4096];
    snprintf(cache_dir, sizeof cache_dir, "%s.cache", cfg->key_file);
    no.graphs = graphs;
    no.cache_dir = cache_dir;
    no.log = node_log;
    rc = nnm_node_new(&node, &no, &d);
    for (int i = 0; rc == NNM_OK && i < cfg->n_models; i++) m[i].g = NULL;   /* the node's now */
    if (rc != NNM_OK || (rc = nnm_node_start(node, &d)) != NNM_OK) {
        logf_(LOG_ERROR, "%s", d.msg);
        goto out;
    }
    logf_(LOG_INFO, "joining mesh %s as %s, epoch %" PRIu64 ", via %s%s; serving, waiting for "
          "SIGTERM", cfg->mesh_name, cfg->node_id, epoch, cfg->broker_uris[0],
          cfg->n_broker_uris > 1 ? " (and fallbacks)" : "");
    /* The watcher takes over the store (and frees the ones it replaces). */
    w.node = node;
    w.cfg = cfg;
    w.ident = ident;
    w.trust = trust;
    trust = NULL;
    tlines_read(&w.lines, cfg->trust_file);
    int perr = pthread_create(&w.th, NULL, watch_main, &w);
    if (perr != 0) {
        logf_(LOG_ERROR, "cannot start the trust file watcher: %s", strerror(perr));
        trust = w.trust;
        tlines_free(&w.lines);
        goto out;
    }
    /* Paho's and the watcher's threads were created with the signals blocked: only this
     * thread takes them. */
    sigprocmask(SIG_SETMASK, &old, NULL);
    while (!got_stop) nnm_node_poll(node, 100);
    sigprocmask(SIG_BLOCK, &block, NULL);
    atomic_store(&w.stop, 1);
    pthread_join(w.th, NULL);
    trust = w.trust;
    tlines_free(&w.lines);
    logf_(LOG_INFO, "stopping (%s)", got_stop == SIGINT ? "SIGINT" : "SIGTERM");
    nnm_node_leave(node);
    status = 0;
out:
    nnm_node_free(node);
    free(hashes);
    free(graphs);
    if (m != NULL)
        for (int i = 0; i < cfg->n_models; i++) nnm_graph_free(m[i].g);
    free(m);
    nnm_trust_free(trust);
    nnm_identity_free(ident);
    nnm_config_free(cfg);
    return status;
}

static int usage_error(const char *msg, const char *arg)
{
    fprintf(stderr, "nnmeshd: %s%s%s\nTry 'nnmeshd --help'.\n", msg, arg ? " " : "", arg ? arg : "");
    return 2;
}

static int parse_num(const char *s, int lo, int hi, int *out)
{
    char *e;
    errno = 0;
    long v = strtol(s, &e, 10);
    if (errno || e == s || *e || v < lo || v > hi) return -1;
    *out = (int)v;
    return 0;
}

int main(int argc, char **argv)
{
    nnm_node_tune_malloc();   /* big message buffers stay on the heap (docs/BENCH_WIRE.md) */
    const char *config = NULL, *check = NULL;
    int do_measure = 0, threads = 0, budget = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has = i + 1 < argc;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            print_help(stdout);
            return 0;
        } else if (!strcmp(a, "--version")) {
            printf("nnmeshd %s\n", PACKAGE_VERSION);
            return 0;
        } else if (!strcmp(a, "--print-config-doc")) {
            print_config_doc();
            return 0;
        } else if (!strcmp(a, "-c") || !strcmp(a, "--config")) {
            if (!has) return usage_error("option needs a FILE:", a);
            config = argv[++i];
        } else if (!strcmp(a, "--check-config")) {
            if (!has) return usage_error("option needs a FILE:", a);
            check = argv[++i];
        } else if (!strcmp(a, "--measure")) {
            do_measure = 1;
        } else if (!strcmp(a, "--threads")) {
            if (!has || parse_num(argv[++i], 0, 1024, &threads))
                return usage_error("--threads needs a number from 0 to 1024", NULL);
        } else if (!strcmp(a, "--budget")) {
            if (!has || parse_num(argv[++i], 1, 10000, &budget))
                return usage_error("--budget needs milliseconds from 1 to 10000", NULL);
        } else if (!strcmp(a, "--log-level")) {
            if (!has) return usage_error("option needs a LEVEL:", a);
            const char *l = argv[++i];
            int k = -1;
            for (int j = 0; j < 4; j++)
                if (!strcmp(l, level_name[j])) k = j;
            if (k < 0) return usage_error("--log-level takes debug, info, warn or error, not", l);
            log_min = k;
        } else {
            return usage_error("unknown argument", a);
        }
    }
    if (!!config + !!check + do_measure != 1)
        return usage_error("give one of --config FILE, --check-config FILE or --measure", NULL);
    if (check != NULL) return check_config(check);
    if (do_measure) return measure(threads, budget);
    return run_node(config);
}
