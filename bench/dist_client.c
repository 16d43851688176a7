/* bench/dist_client.c — the distributed benchmark's client (issue 5): one enrolled link to the
 * mesh (config like `nnmesh infer`'s), many sealed whole-model requests over it, the round
 * trip of each measured from the send to the RESULT. Not a test; bench/dist.sh runs it.
 *
 *   dist_client --config shell.conf --model M.onnx -i FILE.npy --nodes n1[,n2...]
 *               [--count N] [--inflight K] [--per-node D] [--warmup W] [--check REF.npy]
 *               [--timeout S]
 *
 * Requests go to the listed nodes round robin; at most K are in flight in total and at most
 * D (default 1) per node. A node coordinates one request at a time and queues the next ones
 * (up to its [limits] max_inflight): D = 1 measures the mesh without queueing; D = 2 lets a
 * node receive its next input while it computes, as a camera stream would (K = D x nodes).
 * K = 1 with one node measures batch-1 latency; K = the number of nodes keeps every
 * node coordinating a request of its own (a stream). One line per request:
 *   req I node NODE ms RTT compute SUM_MS transfer SUM_MS wait MAX_MS parts P nodes K maxdiff D
 * (compute, transfer: summed over the trace's parts; wait: the latest part's start; nodes: how
 * many distinct nodes ran a part), the last request's parts (part NODE nodes [A, B) compute MS
 * transfer MS wait MS), then a summary:
 *   summary n N errors E p50 MS p90 MS mean MS wall S throughput REQ_PER_S */
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

#define MAX_NODES 16

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

static double pct(double *v, int n, double q)
{
    if (n == 0) return 0;
    qsort(v, (size_t)n, sizeof *v, cmp_dbl);
    double pos = q * (n - 1);
    int i = (int)pos;
    return i + 1 < n ? v[i] + (pos - i) * (v[i + 1] - v[i]) : v[i];
}

#define MAX_PER_NODE 4

typedef struct slot {
    uint64_t request;    /* 0: free */
    double t0;
    int index;
    int node;
} slot;

int main(int argc, char **argv)
{
    const char *cfg_path = NULL, *model = NULL, *input = NULL, *nodes_arg = NULL, *check = NULL;
    int count = 20, inflight = 1, per_node = 1, warmup = 2, timeout_s = 60;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) { fprintf(stderr, "dist_client: %s needs a value\n", a); return 2; }
        if (!strcmp(a, "--config")) cfg_path = v;
        else if (!strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "-i")) input = v;
        else if (!strcmp(a, "--nodes")) nodes_arg = v;
        else if (!strcmp(a, "--check")) check = v;
        else if (!strcmp(a, "--count")) count = atoi(v);
        else if (!strcmp(a, "--inflight")) inflight = atoi(v);
        else if (!strcmp(a, "--per-node")) per_node = atoi(v);
        else if (!strcmp(a, "--warmup")) warmup = atoi(v);
        else if (!strcmp(a, "--timeout")) timeout_s = atoi(v);
        else { fprintf(stderr, "dist_client: unknown option %s\n", a); return 2; }
        i++;
    }
    if (!cfg_path || !model || !input || !nodes_arg || count < 1 || inflight < 1 || warmup < 0 ||
        per_node < 1 || per_node > MAX_PER_NODE) {
        fprintf(stderr, "usage: dist_client --config FILE --model M.onnx -i FILE.npy --nodes A[,B..] "
                        "[--count N] [--inflight K] [--per-node D (1-%d)] [--warmup W] [--check REF.npy] "
                        "[--timeout S]\n", MAX_PER_NODE);
        return 2;
    }
    char nodes[MAX_NODES][NNM_ID_MAX + 1];
    int nn = 0;
    {
        char buf[512];
        snprintf(buf, sizeof buf, "%s", nodes_arg);
        for (char *s = strtok(buf, ","); s && nn < MAX_NODES; s = strtok(NULL, ","))
            snprintf(nodes[nn++], sizeof nodes[0], "%s", s);
    }
    if (inflight > nn * per_node) inflight = nn * per_node;
    if (sodium_init() < 0) return 1;
    nnm_diag d;
    nnm_diag_clear(&d);
    uint8_t hash[NNM_WIRE_HASH_BYTES];
    if (nnm_model_hash_file(hash, model, &d) != NNM_OK) {
        fprintf(stderr, "dist_client: %s\n", d.msg);
        return 1;
    }
    nnm_tensor x, ref;
    memset(&x, 0, sizeof x);
    memset(&ref, 0, sizeof ref);
    nnm_wire_tensor wt;
    memset(&wt, 0, sizeof wt);
    if (nnm_npy_load(&x, input, &d) != NNM_OK || (check && nnm_npy_load(&ref, check, &d) != NNM_OK) ||
        nnm_wire_tensor_encode(&wt, &x, NNM_CODEC_NONE, &d) != NNM_OK) {
        fprintf(stderr, "dist_client: %s\n", d.msg);
        return 1;
    }
    wt.name = "";
    nnm_config *cfg = NULL;
    nnm_identity *id = NULL;
    nnm_trust *trust = NULL;
    nnm_link *l = NULL;
    if (nnm_config_load(&cfg, cfg_path, &d) != NNM_OK || nnm_identity_load(&id, cfg->key_file, &d) != NNM_OK ||
        nnm_trust_load(&trust, cfg->trust_file, &d) != NNM_OK) {
        fprintf(stderr, "dist_client: %s\n", d.msg);
        return 1;
    }
    nnm_link_opts o;
    nnm_link_opts_init(&o);
    o.node_id = cfg->node_id;
    o.mesh = cfg->mesh_name;
    o.identity = id;
    o.trust = trust;
    char password[NNM_CONFIG_PASSWORD_MAX];
    if (nnm_config_broker_opts(cfg, &o.mqtt, password, &d) != NNM_OK) {
        fprintf(stderr, "dist_client: %s\n", d.msg);
        return 1;
    }
    o.send_timeout_ms = (unsigned)timeout_s * 1000u;
    nnm_err lrc = nnm_link_new(&l, &o, &d);
    sodium_memzero(password, sizeof password);
    if (lrc != NNM_OK || nnm_link_start(l, &d) != NNM_OK ||
        nnm_mqtt_wait_connected(nnm_link_get_mqtt(l), 10000, &d) != NNM_OK) {
        fprintf(stderr, "dist_client: %s\n", d.msg);
        return 1;
    }
    int total = warmup + count, sent = 0, done = 0, errors = 0, next_node = 0;
    slot sl[MAX_NODES * MAX_PER_NODE];
    memset(sl, 0, sizeof sl);
    int nslots = nn * per_node, load[MAX_NODES] = { 0 };
    double *rtt = calloc((size_t)count + 1, sizeof *rtt);
    int nrtt = 0;
    double wall0 = 0, wall1 = 0;
    int in_flight = 0;
    while (done < total) {
        /* Fill: the next node round robin with fewer than D of our requests in flight. */
        while (sent < total && in_flight < inflight) {
            int c = -1, k = -1;
            for (int t = 0; t < nn && c < 0; t++)
                if (load[(next_node + t) % nn] < per_node) c = (next_node + t) % nn;
            if (c < 0) break;
            for (int q = 0; q < nslots && k < 0; q++)
                if (!sl[q].request) k = q;
            if (k < 0) break;
            next_node = (c + 1) % nn;
            sl[k].node = c;
            if (sent == warmup && wall0 == 0) wall0 = now_ms();
            nnm_frame f;
            memset(&f, 0, sizeof f);
            f.hdr.type = NNM_FRAME_TASK;
            randombytes_buf(&f.hdr.request, sizeof f.hdr.request);
            f.hdr.request |= 1;
            memcpy(f.u.task.spec.model_hash, hash, sizeof hash);
            f.u.task.spec.node_begin = 0;
            f.u.task.spec.node_end = NNM_TASK_WHOLE_MODEL;
            f.u.task.spec.part_kind = NNM_PART_WHOLE;
            f.u.task.spec.result_codec = NNM_CODEC_AUTO;   /* ignored: a request's reply is NONE */
            f.u.task.ntensors = 1;
            f.u.task.tensors = &wt;
            sl[k].request = f.hdr.request;
            sl[k].t0 = now_ms();
            sl[k].index = sent;
            if (nnm_link_send(l, nodes[c], &f, &d) != NNM_OK) {
                fprintf(stderr, "dist_client: %s: %s\n", nodes[c], d.msg);
                return 1;
            }
            load[c]++;
            sent++;
            in_flight++;
        }
        nnm_link_msg m;
        memset(&m, 0, sizeof m);
        if (nnm_link_recv(l, &m, 200, &d) != NNM_OK) {
            for (int k = 0; k < nslots; k++)
                if (sl[k].request && now_ms() - sl[k].t0 > timeout_s * 1e3) {
                    fprintf(stderr, "dist_client: %s did not answer within %d s\n", nodes[sl[k].node],
                            timeout_s);
                    return 1;
                }
            continue;
        }
        const nnm_frame *r = m.frame;
        int k = -1;
        for (int c = 0; r && c < nslots && k < 0; c++)
            if (sl[c].request && sl[c].request == r->hdr.request && !strcmp(r->hdr.sender, nodes[sl[c].node]))
                k = c;
        if (k < 0 || (r->hdr.type != NNM_FRAME_RESULT && r->hdr.type != NNM_FRAME_ERROR)) {
            nnm_link_msg_cleanup(&m);
            continue;
        }
        double ms = now_ms() - sl[k].t0;
        int idx = sl[k].index, kn = sl[k].node;
        sl[k].request = 0;
        load[kn]--;
        in_flight--;
        done++;
        if (done == total) wall1 = now_ms();
        if (r->hdr.type == NNM_FRAME_ERROR || r->u.result.status != 0) {
            errors++;
            printf("req %d node %s error %s\n", idx, nodes[kn],
                   r->hdr.type == NNM_FRAME_ERROR && r->u.error.message ? r->u.error.message : "status");
            nnm_link_msg_cleanup(&m);
            continue;
        }
        double comp = 0, xfer = 0, wait = 0, maxdiff = -1;
        char seen[MAX_NODES * 2][NNM_ID_MAX + 1];
        int nseen = 0;
        for (size_t t = 0; t < r->u.result.ntrace; t++) {
            const nnm_trace_entry *e = &r->u.result.trace[t];
            comp += (double)e->compute_us / 1e3;
            xfer += (double)e->transfer_us / 1e3;
            if ((double)e->wait_us / 1e3 > wait) wait = (double)e->wait_us / 1e3;
            int s = 0;
            while (s < nseen && strcmp(seen[s], e->node)) s++;
            if (s == nseen && nseen < MAX_NODES * 2) snprintf(seen[nseen++], sizeof seen[0], "%s", e->node);
        }
        if (check && m.ntensors > 0 && m.tensors[0].nbytes == ref.nbytes && ref.dtype == NNM_DT_F32) {
            const float *a = m.tensors[0].data, *b = ref.data;
            maxdiff = 0;
            for (size_t q = 0; q < ref.nbytes / 4; q++)
                if (fabsf(a[q] - b[q]) > maxdiff) maxdiff = fabsf(a[q] - b[q]);
        }
        printf("req %d node %s ms %.3f compute %.3f transfer %.3f wait %.3f parts %zu nodes %d maxdiff %g%s\n",
               idx, nodes[kn], ms, comp, xfer, wait, r->u.result.ntrace, nseen, maxdiff,
               idx < warmup ? " warmup" : "");
        if (idx == total - 1)   /* the last request's parts, for "where the time goes" */
            for (size_t t = 0; t < r->u.result.ntrace; t++) {
                const nnm_trace_entry *e = &r->u.result.trace[t];
                printf("part %s nodes [%u, %u) compute %.3f transfer %.3f wait %.3f\n", e->node,
                       e->node_begin, e->node_end, (double)e->compute_us / 1e3,
                       (double)e->transfer_us / 1e3, (double)e->wait_us / 1e3);
            }
        fflush(stdout);
        if (idx >= warmup && nrtt < count) rtt[nrtt++] = ms;
        nnm_link_msg_cleanup(&m);
    }
    double mean = 0;
    for (int i = 0; i < nrtt; i++) mean += rtt[i] / nrtt;
    double wall = (wall1 - wall0) / 1e3;
    double p90 = pct(rtt, nrtt, 0.9), p50 = pct(rtt, nrtt, 0.5);
    /* Throughput: requests completed after the warm-up over the time since the first
     * measured send (the warm-up requests still in flight then are not counted). */
    printf("summary n %d errors %d p50 %.3f p90 %.3f mean %.3f wall %.3f throughput %.3f\n", nrtt,
           errors, p50, p90, mean, wall, wall > 0 ? (count - 0.0) / wall : 0);
    free(rtt);
    nnm_wire_tensor_cleanup(&wt);
    nnm_tensor_cleanup(&x);
    nnm_tensor_cleanup(&ref);
    nnm_link_free(l);
    nnm_trust_free(trust);
    nnm_identity_free(id);
    nnm_config_free(cfg);
    return errors ? 3 : 0;
}
