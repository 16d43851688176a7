/* bench/load.c — open-loop load generator (issue 6): one enrolled client link to the mesh
 * (a config like `nnmesh infer`'s) sends sealed whole-model requests at a fixed mean rate,
 * each at its scheduled time whatever is still unanswered (open loop), spread round robin
 * over the given nodes (or all to one coordinator: --nodes n1), for a duration; then it waits
 * up to --drain seconds for the last answers. Not a test; bench/load.sh and bench/soak.sh run it.
 *
 *   load --config shell.conf --model M.onnx -i FILE.npy --nodes n1[,n2...] --rate R
 *        --duration S [--arrivals poisson|constant] [--timeout S] [--drain S] [--seed N]
 *        [--interval S] [--raw FILE]
 *
 * A node coordinates one request at a time and queues the sealed requests that arrive
 * meanwhile, up to [limits] max_inflight in all (default 16), past which it answers with a
 * busy error at once: one client session can keep many requests in flight, and the node's
 * queue (not the client) bounds concurrency. Before the clock starts every node gets one
 * request in turn (sessions handshaken, models loaded), not counted.
 *
 * Latency is from the actual send to the answer; sends that could not leave on time (the
 * link blocks while a peer's flow-control window is full) show in the send lag figures.
 * An answer after --timeout counts as a timeout (and "late"), never as a latency sample.
 * Output: with --interval, a line every S seconds
 *   tick T sent N ok N errors N busy N p50 MS p99 MS inflight N
 * (the requests answered in that interval), then one summary line of key/value pairs:
 *   load rate R arrivals A duration S nodes K sent N ok N errors N busy N timeouts N late N
 *   lost N dup N stray N send_rate X ok_rate X p50 MS p90 MS p99 MS max MS mean MS
 *   lag_p99 MS lag_max MS send_ms_max MS
 * and one line per node: node ID sent N ok N errors N p50 MS p99 MS.
 * With --raw, one line per request: index node sched_ms send_ms latency_ms parts nodes
 * compute_ms status (parts: trace entries of the answer; nodes: distinct nodes that ran them;
 * compute_ms: their compute time summed, so latency - compute is transport and queueing; status ok,
 * error:MESSAGE, timeout or lost). The summary's split counts the answers that ran on more
 * than one node (the coordinator's policy split the model). Exit status: 0, or 3 when any request failed. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "nnmesh/config.h"
#include "nnmesh/coord.h"
#include "nnmesh/crypto.h"
#include "nnmesh/npy.h"
#include "nnmesh/transport.h"
#include "nnmesh/worker.h"

#define MAX_NODES 64

enum { ST_PENDING, ST_OK, ST_ERROR, ST_BUSY };

typedef struct req {
    double sched;      /* ms since start: when it should have left */
    double sent;       /* ms since start: when nnm_link_send returned */
    double lat;        /* ms from the send to the answer, or -1 */
    int node;
    int status;
    int answers;       /* >1: duplicated */
    int timed_out;
    int parts;         /* trace entries of the answer (parts run), nodes: distinct nodes */
    int nodes;
    double compute;    /* ms: the parts' compute time, summed */
    char *err;
} req;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The q-quantile of v[0..n) (sorts v), nearest rank above: a p99 of 100 samples is the 99th. */
static double pct(double *v, size_t n, double q)
{
    if (n == 0) return 0;
    qsort(v, n, sizeof *v, cmp_dbl);
    size_t i = (size_t)ceil(q * (double)n);
    return v[i == 0 ? 0 : i - 1];
}

/* A uniform double in (0, 1]. */
static double unif(void)
{
    return ((double)randombytes_uniform(1u << 30) + 1.0) / (double)(1u << 30);
}

static int usage(void)
{
    fprintf(stderr, "usage: load --config FILE --model M.onnx -i FILE.npy --nodes A[,B..] --rate R "
                    "--duration S [--arrivals poisson|constant] [--timeout S] [--drain S] "
                    "[--interval S] [--raw FILE]\n");
    return 2;
}

typedef struct client {
    nnm_link *l;
    uint8_t hash[NNM_WIRE_HASH_BYTES];
    nnm_wire_tensor *wt;
    uint64_t prefix;    /* high 32 bits of every request id of this run */
} client;

static nnm_err send_req(client *c, const char *node, uint64_t id, nnm_diag *d)
{
    nnm_frame f;
    memset(&f, 0, sizeof f);
    f.hdr.type = NNM_FRAME_TASK;
    f.hdr.request = id;
    memcpy(f.u.task.spec.model_hash, c->hash, sizeof c->hash);
    f.u.task.spec.node_begin = 0;
    f.u.task.spec.node_end = NNM_TASK_WHOLE_MODEL;
    f.u.task.spec.part_kind = NNM_PART_WHOLE;
    f.u.task.spec.result_codec = NNM_CODEC_AUTO;   /* ignored: a request's reply is NONE */
    f.u.task.ntensors = 1;
    f.u.task.tensors = c->wt;
    return nnm_link_send(c->l, node, &f, d);
}

/* Warm-up: one request to each node, answered before the next (not counted). */
static int warm_up(client *c, char (*nodes)[NNM_ID_MAX + 1], int nn, int timeout_s)
{
    nnm_diag d;
    for (int k = 0; k < nn; k++) {
        nnm_diag_clear(&d);
        uint64_t id = (c->prefix << 32) | 0xfffffff0u | 1u;   /* never a run index */
        id ^= (uint64_t)k << 1;
        double t0 = now_ms();
        if (send_req(c, nodes[k], id, &d) != NNM_OK) {
            fprintf(stderr, "load: warm-up %s: %s\n", nodes[k], d.msg);
            return -1;
        }
        for (;;) {
            if (now_ms() - t0 > timeout_s * 1e3) {
                fprintf(stderr, "load: warm-up: %s did not answer within %d s\n", nodes[k], timeout_s);
                return -1;
            }
            nnm_link_msg m;
            memset(&m, 0, sizeof m);
            if (nnm_link_recv(c->l, &m, 200, &d) != NNM_OK) continue;
            const nnm_frame *r = m.frame;
            int mine = r && r->hdr.request == id &&
                       (r->hdr.type == NNM_FRAME_RESULT || r->hdr.type == NNM_FRAME_ERROR);
            int bad = mine && (r->hdr.type == NNM_FRAME_ERROR || r->u.result.status != 0);
            if (bad)
                fprintf(stderr, "load: warm-up %s: %s\n", nodes[k],
                        r->hdr.type == NNM_FRAME_ERROR && r->u.error.message ? r->u.error.message
                                                                             : "failed");
            nnm_link_msg_cleanup(&m);
            if (bad) return -1;
            if (mine) {
                fprintf(stderr, "load: warm-up %s: %.1f ms\n", nodes[k], now_ms() - t0);
                break;
            }
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *cfg_path = NULL, *model = NULL, *input = NULL, *nodes_arg = NULL, *raw = NULL;
    const char *arrivals = "poisson";
    double rate = 0, duration = 0, timeout_s = 30, drain_s = -1, interval_s = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) { fprintf(stderr, "load: %s needs a value\n", a); return 2; }
        if (!strcmp(a, "--config")) cfg_path = v;
        else if (!strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "-i")) input = v;
        else if (!strcmp(a, "--nodes")) nodes_arg = v;
        else if (!strcmp(a, "--rate")) rate = atof(v);
        else if (!strcmp(a, "--duration")) duration = atof(v);
        else if (!strcmp(a, "--arrivals")) arrivals = v;
        else if (!strcmp(a, "--timeout")) timeout_s = atof(v);
        else if (!strcmp(a, "--drain")) drain_s = atof(v);
        else if (!strcmp(a, "--interval")) interval_s = atof(v);
        else if (!strcmp(a, "--raw")) raw = v;
        else { fprintf(stderr, "load: unknown option %s\n", a); return usage(); }
        i++;
    }
    int poisson = !strcmp(arrivals, "poisson");
    if (!cfg_path || !model || !input || !nodes_arg || !(rate > 0) || !(duration > 0) ||
        !(timeout_s > 0) || (!poisson && strcmp(arrivals, "constant")))
        return usage();
    if (drain_s < 0) drain_s = timeout_s;
    char nodes[MAX_NODES][NNM_ID_MAX + 1];
    int nn = 0;
    {
        char buf[1024];
        snprintf(buf, sizeof buf, "%s", nodes_arg);
        for (char *s = strtok(buf, ","); s && nn < MAX_NODES; s = strtok(NULL, ","))
            snprintf(nodes[nn++], sizeof nodes[0], "%s", s);
    }
    if (sodium_init() < 0) return 1;
    nnm_diag d;
    nnm_diag_clear(&d);
    client c;
    memset(&c, 0, sizeof c);
    if (nnm_model_hash_file(c.hash, model, &d) != NNM_OK) {
        fprintf(stderr, "load: %s\n", d.msg);
        return 1;
    }
    nnm_tensor x;
    memset(&x, 0, sizeof x);
    nnm_wire_tensor wt;
    memset(&wt, 0, sizeof wt);
    if (nnm_npy_load(&x, input, &d) != NNM_OK || nnm_wire_tensor_encode(&wt, &x, NNM_CODEC_NONE, &d) != NNM_OK) {
        fprintf(stderr, "load: %s\n", d.msg);
        return 1;
    }
    wt.name = "";
    c.wt = &wt;
    c.prefix = randombytes_random() | 1u;
    nnm_config *cfg = NULL;
    nnm_identity *id = NULL;
    nnm_trust *trust = NULL;
    if (nnm_config_load(&cfg, cfg_path, &d) != NNM_OK || nnm_identity_load(&id, cfg->key_file, &d) != NNM_OK ||
        nnm_trust_load(&trust, cfg->trust_file, &d) != NNM_OK) {
        fprintf(stderr, "load: %s\n", d.msg);
        return 1;
    }
    nnm_link_opts o;
    nnm_link_opts_init(&o);
    o.node_id = cfg->node_id;
    o.mesh = cfg->mesh_name;
    o.identity = id;
    o.trust = trust;
    for (int i = 0; i < cfg->n_broker_uris && i < NNM_MQTT_MAX_URIS; i++) o.mqtt.uris[o.mqtt.nuris++] = cfg->broker_uris[i];
    o.send_timeout_ms = (unsigned)(timeout_s * 1000);
    if (nnm_link_new(&c.l, &o, &d) != NNM_OK || nnm_link_start(c.l, &d) != NNM_OK ||
        nnm_mqtt_wait_connected(nnm_link_get_mqtt(c.l), 10000, &d) != NNM_OK) {
        fprintf(stderr, "load: %s\n", d.msg);
        return 1;
    }
    if (warm_up(&c, nodes, nn, (int)timeout_s) != 0) return 1;

    /* The schedule: every arrival time fixed in advance, so sending late never thins it. */
    size_t cap = (size_t)(rate * duration * 1.5) + 64, n = 0;
    req *rq = calloc(cap, sizeof *rq);
    if (!rq) return 1;
    {
        double t = 0;
        for (;;) {
            t += poisson ? -log(unif()) * 1e3 / rate : 1e3 / rate;
            if (t >= duration * 1e3) break;
            if (n == cap) {
                req *nr = realloc(rq, 2 * cap * sizeof *rq);
                if (!nr) return 1;
                memset(nr + cap, 0, cap * sizeof *rq);
                rq = nr;
                cap *= 2;
            }
            rq[n].sched = t;
            rq[n].node = (int)(n % (size_t)nn);
            rq[n].lat = -1;
            n++;
        }
    }
    FILE *rawf = raw ? fopen(raw, "w") : NULL;
    if (raw && !rawf) { perror(raw); return 1; }
    size_t sent = 0, answered = 0, ok = 0, errors = 0, busy = 0, timeouts = 0, late = 0, dup = 0, stray = 0;
    double send_ms_max = 0;
    double *tick_lat = calloc(n + 1, sizeof *tick_lat);
    size_t tick_n = 0, tick_ok = 0, tick_err = 0, tick_busy = 0, tick_sent0 = 0, next_to = 0;
    double t_start = now_ms(), next_tick = interval_s > 0 ? interval_s * 1e3 : -1;
    double end_ms = duration * 1e3 + drain_s * 1e3;
    for (;;) {
        double t = now_ms() - t_start;
        while (sent < n && rq[sent].sched <= t) {
            req *q = &rq[sent];
            double t0 = now_ms();
            uint64_t rid = (c.prefix << 32) | ((uint64_t)sent << 1) | 1u;
            if (send_req(&c, nodes[q->node], rid, &d) != NNM_OK) {
                q->status = ST_ERROR;
                q->answers = 1;
                q->err = strdup(d.msg);
                errors++;
                answered++;
                tick_err++;
            }
            double t1 = now_ms();
            q->sent = t1 - t_start;
            if (t1 - t0 > send_ms_max) send_ms_max = t1 - t0;
            sent++;
            t = now_ms() - t_start;
        }
        /* Timeouts: in send order, so a cursor finds them. */
        while (next_to < sent && (rq[next_to].answers || t - rq[next_to].sent > timeout_s * 1e3)) {
            if (!rq[next_to].answers && !rq[next_to].timed_out) {
                rq[next_to].timed_out = 1;
                timeouts++;
            }
            next_to++;
        }
        if (next_tick > 0 && t >= next_tick) {
            double p50 = pct(tick_lat, tick_n, 0.5), p99 = pct(tick_lat, tick_n, 0.99);
            printf("tick %.0f sent %zu ok %zu errors %zu busy %zu p50 %.3f p99 %.3f inflight %zu\n",
                   next_tick / 1e3, sent - tick_sent0, tick_ok, tick_err, tick_busy, p50, p99,
                   sent - answered - timeouts + late);
            fflush(stdout);
            tick_n = tick_ok = tick_err = tick_busy = 0;
            tick_sent0 = sent;
            next_tick += interval_s * 1e3;
        }
        if (sent == n && (answered + timeouts - late >= n || t >= end_ms)) break;
        double wait = sent < n ? rq[sent].sched - t : 100;
        if (wait > 100) wait = 100;
        if (wait < 0) wait = 0;
        nnm_link_msg m;
        memset(&m, 0, sizeof m);
        if (nnm_link_recv(c.l, &m, (unsigned)ceil(wait), &d) != NNM_OK) continue;
        const nnm_frame *r = m.frame;
        double ta = now_ms() - t_start;
        if (!r || (r->hdr.type != NNM_FRAME_RESULT && r->hdr.type != NNM_FRAME_ERROR)) {
            nnm_link_msg_cleanup(&m);
            continue;
        }
        uint64_t idx = (r->hdr.request >> 1) & 0x7fffffffu;
        if ((r->hdr.request >> 32) != c.prefix || idx >= sent || strcmp(r->hdr.sender, nodes[rq[idx].node])) {
            stray++;   /* a warm-up answer after its time, or not ours */
            nnm_link_msg_cleanup(&m);
            continue;
        }
        req *q = &rq[idx];
        if (q->answers++) {
            dup++;
            nnm_link_msg_cleanup(&m);
            continue;
        }
        answered++;
        if (q->timed_out) late++;
        if (r->hdr.type == NNM_FRAME_ERROR || r->u.result.status != 0) {
            const char *msg = r->hdr.type == NNM_FRAME_ERROR && r->u.error.message
                                  ? r->u.error.message
                                  : nnm_strerror((nnm_err)r->u.result.status);
            q->err = strdup(msg);
            if (strstr(msg, "busy")) { q->status = ST_BUSY; busy++; tick_busy++; }
            else { q->status = ST_ERROR; errors++; tick_err++; }
        } else if (!q->timed_out) {
            q->status = ST_OK;
            q->lat = ta - q->sent;
            q->parts = (int)r->u.result.ntrace;
            for (size_t a = 0; a < r->u.result.ntrace; a++) {
                q->compute += (double)r->u.result.trace[a].compute_us / 1e3;
                size_t b = 0;
                while (b < a && strcmp(r->u.result.trace[a].node, r->u.result.trace[b].node)) b++;
                if (b == a) q->nodes++;
            }
            ok++;
            tick_ok++;
            tick_lat[tick_n++] = q->lat;
        }
        nnm_link_msg_cleanup(&m);
    }
    double wall = (now_ms() - t_start) / 1e3;
    double last_send = sent ? rq[sent - 1].sent : 0, last_ok = 0;
    double *lat = calloc(n + 1, sizeof *lat), *lag = calloc(n + 1, sizeof *lag);
    size_t nl = 0;
    double mean = 0, mx = 0;
    for (size_t i = 0; i < n; i++) {
        lag[i] = rq[i].sent - rq[i].sched;
        if (rq[i].status == ST_OK) {
            lat[nl++] = rq[i].lat;
            mean += rq[i].lat;
            if (rq[i].lat > mx) mx = rq[i].lat;
            if (rq[i].sent + rq[i].lat > last_ok) last_ok = rq[i].sent + rq[i].lat;
        }
        if (rawf)
            fprintf(rawf, "%zu %s %.3f %.3f %.3f %d %d %.3f %s%s\n", i, nodes[rq[i].node], rq[i].sched,
                    rq[i].sent, rq[i].lat, rq[i].parts, rq[i].nodes, rq[i].compute, rq[i].status == ST_OK ? "ok" : rq[i].answers ? "error:" : rq[i].timed_out ? "timeout" : "lost",
                    rq[i].err ? rq[i].err : "");
    }
    if (nl) mean /= (double)nl;
    size_t lost = n - answered;   /* never answered at all (timeouts included) */
    size_t split = 0;
    for (size_t i = 0; i < n; i++) split += rq[i].status == ST_OK && rq[i].nodes > 1;
    double lag_max = 0;
    for (size_t i = 0; i < n; i++) if (lag[i] > lag_max) lag_max = lag[i];
    double lag_p99 = pct(lag, n, 0.99);
    printf("load rate %.3f arrivals %s duration %.1f nodes %d sent %zu ok %zu errors %zu busy %zu "
           "timeouts %zu late %zu lost %zu dup %zu stray %zu send_rate %.3f ok_rate %.3f "
           "p50 %.3f p90 %.3f p99 %.3f max %.3f mean %.3f lag_p99 %.3f lag_max %.3f send_ms_max %.3f "
           "wall %.1f split %zu\n",
           rate, arrivals, duration, nn, sent, ok, errors, busy, timeouts, late, lost, dup, stray,
           last_send > 0 ? (double)sent / (last_send / 1e3) : 0,
           last_ok > 0 ? (double)ok / (last_ok / 1e3) : 0,
           pct(lat, nl, 0.5), pct(lat, nl, 0.9), pct(lat, nl, 0.99), mx, mean, lag_p99, lag_max,
           send_ms_max, wall, split);
    for (int k = 0; k < nn; k++) {
        size_t ks = 0, kok = 0, ke = 0, kn = 0;
        for (size_t i = 0; i < n; i++) {
            if (rq[i].node != k) continue;
            ks++;
            if (rq[i].status == ST_OK) { kok++; lat[kn++] = rq[i].lat; }
            else if (rq[i].answers) ke++;
        }
        printf("node %s sent %zu ok %zu errors %zu p50 %.3f p99 %.3f\n", nodes[k], ks, kok, ke,
               pct(lat, kn, 0.5), pct(lat, kn, 0.99));
    }
    /* The first error messages, to say what failed. */
    int shown = 0;
    for (size_t i = 0; i < n && shown < 3; i++)
        if (rq[i].err) {
            printf("error %zu %s: %s\n", i, nodes[rq[i].node], rq[i].err);
            shown++;
        }
    nnm_link_stats ls;
    nnm_link_get_stats(c.l, &ls);
    printf("link tx_frames %llu rx_frames %llu send_waits %llu drop_queue_full %llu\n",
           (unsigned long long)ls.tx_frames, (unsigned long long)ls.rx_frames,
           (unsigned long long)ls.send_waits, (unsigned long long)ls.drop_queue_full);
    if (rawf) fclose(rawf);
    int failed = ok < n;
    for (size_t i = 0; i < n; i++) free(rq[i].err);
    free(rq);
    free(lat);
    free(lag);
    free(tick_lat);
    nnm_wire_tensor_cleanup(&wt);
    nnm_tensor_cleanup(&x);
    nnm_link_free(c.l);
    nnm_trust_free(trust);
    nnm_identity_free(id);
    nnm_config_free(cfg);
    return failed ? 3 : 0;
}
