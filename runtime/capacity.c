/* runtime/capacity.c — measured capacity: kernel probes through the engine, free memory,
 * load and cgroup quotas (see nnmesh/capacity.h for what is measured and why the CPU time
 * is taken into account under a quota).
 *
 * The probes are tiny graphs built directly in the IR (no ONNX file), inferred and handed
 * to the same executor that runs models, so they exercise exactly the kernels (XNNPACK
 * where it has the op) and the threading a model would. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ir.h"
#include "nnmesh/capacity.h"
#include "nnmesh/exec.h"

#define BUDGET_DEFAULT_MS 200
#define BUDGET_MAX_MS 10000

static const char *const probe_names[NNM_PROBE__COUNT] = {
    [NNM_PROBE_CONV3X3] = "conv3x3", [NNM_PROBE_CONV1X1] = "conv1x1",
    [NNM_PROBE_DWCONV3X3] = "dwconv3x3", [NNM_PROBE_FC] = "fc",
};

const char *nnm_probe_name(nnm_probe p)
{
    return (unsigned)p < NNM_PROBE__COUNT ? probe_names[p] : "?";
}

static double clock_ms(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* ---- probe graphs ---------------------------------------------------------------------- */

/* Deterministic small weights: a zero tensor could take a fast path somewhere. */
static int add_weight(nnm_graph *g, const char *name, int nd, const int64_t *shape)
{
    nnm_tensor t;
    if (nnm_tensor_init(&t, NNM_DT_F32, nd, shape) != NNM_OK) return -1;
    float *w = t.data;
    uint32_t s = 12345u;
    for (size_t i = 0; i < t.nbytes / sizeof *w; i++) {
        s = s * 1664525u + 1013904223u;
        w[i] = ((float)(s >> 8) / 16777216.0f - 0.5f) * 0.1f;
    }
    int v = ir__const_add(g, name, &t);
    if (v < 0) nnm_tensor_cleanup(&t);
    return v;
}

static int add_io(nnm_graph *g, int v, int is_input)
{
    int **arr = is_input ? &g->inputs : &g->outputs;
    int *n = is_input ? &g->n_inputs : &g->n_outputs;
    int *p = realloc(*arr, (size_t)(*n + 1) * sizeof *p);
    if (p == NULL) return -1;
    *arr = p;
    p[(*n)++] = v;
    if (is_input) g->values[v].is_input = 1;
    else g->values[v].is_output = 1;
    return 0;
}

/* One-node graph for probe p; the input tensor is allocated to match. */
static nnm_err probe_build(nnm_graph **out, nnm_tensor *input, nnm_probe p, nnm_diag *diag)
{
    nnm_graph *g = ir__graph_new();
    nnm_err rc = NNM_ENOMEM;
    if (g == NULL) goto fail;
    int64_t xs[4] = { 1, 32, 28, 28 }, ws[4] = { 32, 32, 3, 3 }, bs[1] = { 32 };
    int xnd = 4, group = 1, pad = 1;
    nnm_op op = NNM_OP_CONV;
    switch (p) {
    case NNM_PROBE_CONV3X3: break;
    case NNM_PROBE_CONV1X1:
        xs[1] = 64; ws[0] = 64; ws[1] = 64; ws[2] = ws[3] = 1; bs[0] = 64; pad = 0;
        break;
    case NNM_PROBE_DWCONV3X3:
        xs[1] = 128; ws[0] = 128; ws[1] = 1; bs[0] = 128; group = 128;
        break;
    default: /* NNM_PROBE_FC: Gemm with B as [N, K] (transB), like a PyTorch Linear */
        op = NNM_OP_GEMM; xnd = 2; xs[1] = 1024; ws[0] = 1024; ws[1] = 1024; bs[0] = 1024;
        break;
    }
    int x = ir__value_add(g, "x", NNM_DT_F32);
    if (x < 0) goto fail;
    g->values[x].ndim = xnd;
    memcpy(g->values[x].shape, xs, sizeof xs);
    int w = add_weight(g, "w", op == NNM_OP_GEMM ? 2 : 4, ws);
    int b = add_weight(g, "b", 1, bs);
    int y = ir__value_add(g, "y", NNM_DT_UNDEFINED);
    if (w < 0 || b < 0 || y < 0 || add_io(g, x, 1) != 0 || add_io(g, y, 0) != 0) goto fail;
    int k = ir__node_add(g, op, probe_names[p], op == NNM_OP_GEMM ? "Gemm" : "Conv",
                         (int[]){ x, w, b }, 3, &y, 1);
    if (k < 0) goto fail;
    nnm_attrs *a = &g->nodes[k].a;
    if (op == NNM_OP_CONV) {
        a->kernel[0] = (int)ws[2];
        a->kernel[1] = (int)ws[3];
        a->pads[0] = a->pads[1] = a->pads[2] = a->pads[3] = pad;
        a->group = group;
    } else {
        a->trans_b = 1;
    }
    if ((rc = ir__infer(g, diag)) != NNM_OK) goto fail;
    if ((rc = nnm_tensor_init(input, NNM_DT_F32, xnd, xs)) != NNM_OK) goto fail;
    float *xv = input->data;
    for (size_t i = 0; i < input->nbytes / sizeof *xv; i++) xv[i] = (float)(i % 7) * 0.25f;
    *out = g;
    return NNM_OK;
fail:
    ir__graph_free(g);
    if (rc == NNM_ENOMEM) nnm_diag_set(diag, rc, "capacity probe %s: out of memory", probe_names[p]);
    return rc;
}

/* ---- /proc and cgroups ------------------------------------------------------------------ */

/* Reads a small file into buf (NUL-terminated); -1 if it cannot be read. */
static int read_small(const char *path, char *buf, size_t len)
{
    FILE *f = fopen(path, "re");
    if (f == NULL) return -1;
    size_t n = fread(buf, 1, len - 1, f);
    fclose(f);
    buf[n] = '\0';
    return 0;
}

static int has_token(const char *list, const char *tok)
{
    size_t tl = strlen(tok);
    for (const char *p = list; p != NULL && *p; ) {
        const char *c = strchr(p, ',');
        size_t l = c ? (size_t)(c - p) : strlen(p);
        if (l == tl && !strncmp(p, tok, tl)) return 1;
        p = c ? c + 1 : NULL;
    }
    return 0;
}

/* Directory of this process's cgroup for a v1 controller (ctrl != NULL) or the v2 unified
 * hierarchy (ctrl == NULL), and its mount point, so callers can walk up to the root. */
static int cgroup_dir(const char *ctrl, char *dir, size_t dlen, char *mnt, size_t mlen)
{
    char line[1024], cgpath[512] = "";
    int found = 0;
    FILE *f = fopen("/proc/self/cgroup", "re");
    if (f == NULL) return -1;
    while (!found && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (c2 == NULL) continue;
        *c2 = '\0';
        const char *ctrls = c1 + 1;
        if (ctrl ? has_token(ctrls, ctrl) : (ctrls[0] == '\0' && !strncmp(line, "0:", 2))) {
            snprintf(cgpath, sizeof cgpath, "%s", c2 + 1);
            found = 1;
        }
    }
    fclose(f);
    if (!found) return -1;
    found = 0;
    f = fopen("/proc/self/mountinfo", "re");
    if (f == NULL) return -1;
    while (!found && fgets(line, sizeof line, f)) {
        /* id parent maj:min root mountpoint opts ... - fstype source superopts */
        char root[512], point[512], fstype[64], super[512];
        const char *sep = strstr(line, " - ");
        if (sep == NULL || sscanf(line, "%*s %*s %*s %511s %511s", root, point) != 2 ||
            sscanf(sep + 3, "%63s %*s %511s", fstype, super) != 2)
            continue;
        int ok = ctrl ? !strcmp(fstype, "cgroup") && has_token(super, ctrl)
                      : !strcmp(fstype, "cgroup2");
        if (!ok) continue;
        const char *rel = cgpath;
        size_t rl = strlen(root);
        if (strcmp(root, "/") != 0 && !strncmp(cgpath, root, rl)) rel = cgpath + rl;
        snprintf(mnt, mlen, "%s", point);
        snprintf(dir, dlen, "%s%s", point, rel);
        size_t dl = strlen(dir);
        while (dl > strlen(mnt) && dir[dl - 1] == '/') dir[--dl] = '\0';
        found = 1;
    }
    fclose(f);
    return found ? 0 : -1;
}

/* Goes one level up, or returns 0 at the mount point. */
static int dir_up(char *dir, const char *mnt)
{
    if (strlen(dir) <= strlen(mnt)) return 0;
    char *s = strrchr(dir, '/');
    if (s == NULL) return 0;
    *s = '\0';
    if (strlen(dir) < strlen(mnt)) snprintf(dir, strlen(mnt) + 1, "%s", mnt);
    return 1;
}

/* Smallest CPU quota (in cores) on the path from this process's cgroup to the root. */
static double cpu_quota_cores(void)
{
    char dir[1024], mnt[512], path[1100], buf[128];
    double best = 0;
    if (cgroup_dir("cpu", dir, sizeof dir, mnt, sizeof mnt) == 0) {
        do {
            long long q, per;
            snprintf(path, sizeof path, "%s/cpu.cfs_quota_us", dir);
            if (read_small(path, buf, sizeof buf) != 0 || sscanf(buf, "%lld", &q) != 1) continue;
            snprintf(path, sizeof path, "%s/cpu.cfs_period_us", dir);
            if (read_small(path, buf, sizeof buf) != 0 || sscanf(buf, "%lld", &per) != 1) continue;
            if (q > 0 && per > 0 && (best == 0 || (double)q / (double)per < best))
                best = (double)q / (double)per;
        } while (dir_up(dir, mnt));
    }
    if (cgroup_dir(NULL, dir, sizeof dir, mnt, sizeof mnt) == 0) {
        do {
            long long q, per;
            snprintf(path, sizeof path, "%s/cpu.max", dir);
            if (read_small(path, buf, sizeof buf) != 0) continue;
            if (sscanf(buf, "%lld %lld", &q, &per) == 2 && q > 0 && per > 0 &&
                (best == 0 || (double)q / (double)per < best))
                best = (double)q / (double)per;
        } while (dir_up(dir, mnt));
    }
    return best;
}

static int read_u64(const char *path, uint64_t *out)
{
    char buf[64];
    unsigned long long v;
    if (read_small(path, buf, sizeof buf) != 0 || sscanf(buf, "%llu", &v) != 1) return -1;
    *out = v;
    return 0;
}

/* The tightest memory limit (limit - usage smallest) from this cgroup up to the root. */
static void mem_cgroup(uint64_t *limit, uint64_t *usage)
{
    char dir[1024], mnt[512], path[1100];
    const uint64_t none = (uint64_t)1 << 60;   /* v1 writes ~2^63 for "no limit" */
    uint64_t best_room = UINT64_MAX;
    *limit = *usage = 0;
    for (int v2 = 0; v2 < 2; v2++) {
        if (cgroup_dir(v2 ? NULL : "memory", dir, sizeof dir, mnt, sizeof mnt) != 0) continue;
        do {
            uint64_t l, u;
            snprintf(path, sizeof path, "%s/%s", dir, v2 ? "memory.max" : "memory.limit_in_bytes");
            if (read_u64(path, &l) != 0 || l >= none) continue;   /* "max" does not parse */
            snprintf(path, sizeof path, "%s/%s", dir, v2 ? "memory.current" : "memory.usage_in_bytes");
            if (read_u64(path, &u) != 0) u = 0;
            uint64_t room = l > u ? l - u : 0;
            if (room < best_room) {
                best_room = room;
                *limit = l;
                *usage = u;
            }
        } while (dir_up(dir, mnt));
    }
}

void nnm_capacity_get_load(nnm_capacity *cap)
{
    char buf[4096];
    if (cap == NULL) return;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    cap->cpus_online = n > 0 ? (int)n : 1;
    cap->cpu_quota = cpu_quota_cores();
    cap->mem_available = 0;
    if (read_small("/proc/meminfo", buf, sizeof buf) == 0) {
        const char *p = strstr(buf, "MemAvailable:");
        unsigned long long kb;
        if (p != NULL && sscanf(p + 13, "%llu", &kb) == 1) cap->mem_available = kb * 1024;
    }
    mem_cgroup(&cap->mem_cgroup_limit, &cap->mem_cgroup_usage);
    cap->mem_free = cap->mem_available;
    if (cap->mem_cgroup_limit > 0) {
        uint64_t room = cap->mem_cgroup_limit > cap->mem_cgroup_usage
                            ? cap->mem_cgroup_limit - cap->mem_cgroup_usage : 0;
        if (room < cap->mem_free || cap->mem_free == 0) cap->mem_free = room;
    }
    if (read_small("/proc/loadavg", buf, sizeof buf) == 0 &&
        sscanf(buf, "%lf %lf %lf %d/%d", &cap->load1, &cap->load5, &cap->load15,
               &cap->tasks_running, &cap->tasks_total) != 5) {
        cap->load1 = cap->load5 = cap->load15 = 0;
        cap->tasks_running = cap->tasks_total = 0;
    }
}

/* ---- the measurement --------------------------------------------------------------------- */

nnm_err nnm_capacity_measure(nnm_capacity *cap, int threads, int budget_ms, nnm_diag *diag)
{
    if (cap == NULL || threads < 0 || threads > 1024 || budget_ms < 0 || budget_ms > BUDGET_MAX_MS)
        return nnm_diag_set(diag, NNM_EINVAL, "nnm_capacity_measure: threads must be 0..1024 and "
                            "the budget 0..%d ms", BUDGET_MAX_MS);
    double t_start = clock_ms(CLOCK_MONOTONIC);
    memset(cap, 0, sizeof *cap);
    nnm_capacity_get_load(cap);
    if (threads == 0) threads = cap->cpus_online;
    if (budget_ms == 0) budget_ms = BUDGET_DEFAULT_MS;
    cap->threads = threads;

    nnm_err rc = NNM_OK;
    nnm_graph *g[NNM_PROBE__COUNT] = { 0 };
    nnm_exec *ex[NNM_PROBE__COUNT] = { 0 };
    nnm_tensor in[NNM_PROBE__COUNT];
    double wall[NNM_PROBE__COUNT] = { 0 }, cpu[NNM_PROBE__COUNT] = { 0 };
    memset(in, 0, sizeof in);
    nnm_exec_opts eo = { .threads = threads };

    for (int p = 0; p < NNM_PROBE__COUNT; p++) {
        if ((rc = probe_build(&g[p], &in[p], (nnm_probe)p, diag)) != NNM_OK) goto fail;
        if ((rc = nnm_exec_new(&ex[p], g[p], &eo, diag)) != NNM_OK) goto fail;
        cap->probe_flops[p] = g[p]->nodes[0].flops;
    }
    /* Round-robin, one warm-up round first, until the budget is spent: every class then
     * samples the same stretch of time (and the same throttling, if any). */
    double t0 = clock_ms(CLOCK_MONOTONIC);
    for (int round = 0;; round++) {
        for (int p = 0; p < NNM_PROBE__COUNT; p++) {
            nnm_tensor out;
            memset(&out, 0, sizeof out);
            double w0 = clock_ms(CLOCK_MONOTONIC), c0 = clock_ms(CLOCK_PROCESS_CPUTIME_ID);
            if ((rc = nnm_exec_run(ex[p], &in[p], 1, &out, 1, diag)) != NNM_OK) {
                nnm_diag_prefix(diag, "capacity probe %s", probe_names[p]);
                rc = NNM_EBACKEND;
                if (diag) diag->code = rc;
                goto fail;
            }
            double w1 = clock_ms(CLOCK_MONOTONIC), c1 = clock_ms(CLOCK_PROCESS_CPUTIME_ID);
            nnm_tensor_cleanup(&out);
            if (round == 0) continue;
            wall[p] += w1 - w0;
            cpu[p] += c1 - c0;
            cap->runs[p]++;
        }
        if (round == 0) t0 = clock_ms(CLOCK_MONOTONIC);
        else if (clock_ms(CLOCK_MONOTONIC) - t0 >= budget_ms) break;
    }
    /* Time between the timed runs counts too: a throttled process is often stopped in the
     * system call that reads its CPU time, outside any run. Spread it over the classes in
     * proportion to their run time. */
    double loop_ms = clock_ms(CLOCK_MONOTONIC) - t0, timed = 0;
    for (int p = 0; p < NNM_PROBE__COUNT; p++) timed += wall[p];
    if (timed > 0 && loop_ms > timed)
        for (int p = 0; p < NNM_PROBE__COUNT; p++) wall[p] *= loop_ms / timed;
    for (int p = 0; p < NNM_PROBE__COUNT; p++) {
        /* Under a quota the kernel lets the process run at most quota cores on average:
         * the CPU time spent needs at least cpu / quota of wall time. */
        double need = wall[p];
        if (cap->cpu_quota > 0 && cpu[p] / cap->cpu_quota > need) need = cpu[p] / cap->cpu_quota;
        cap->gflops[p] = need > 0 ? cap->probe_flops[p] * cap->runs[p] / (need * 1e6) : 0;
        cap->probe_wall_ms += wall[p];
        cap->probe_cpu_ms += cpu[p];
    }
    rc = NNM_OK;
fail:
    for (int p = 0; p < NNM_PROBE__COUNT; p++) {
        nnm_exec_free(ex[p]);
        ir__graph_free(g[p]);
        nnm_tensor_cleanup(&in[p]);
    }
    cap->wall_ms = clock_ms(CLOCK_MONOTONIC) - t_start;
    return rc;
}

nnm_err nnm_capacity_encode_json(char *out, size_t len, const nnm_capacity *c)
{
    if (out == NULL || c == NULL || len == 0) return NNM_EINVAL;
    size_t o = 0;
    int n = snprintf(out, len,
                     "{\"threads\":%d,\"cpus_online\":%d,\"cpu_quota\":%.3f,\"gflops\":{",
                     c->threads, c->cpus_online, c->cpu_quota);
    if (n < 0 || (size_t)n >= len) goto small;
    o = (size_t)n;
    for (int p = 0; p < NNM_PROBE__COUNT; p++) {
        n = snprintf(out + o, len - o, "%s\"%s\":%.3f", p ? "," : "", probe_names[p], c->gflops[p]);
        if (n < 0 || (size_t)n >= len - o) goto small;
        o += (size_t)n;
    }
    n = snprintf(out + o, len - o, "},\"runs\":{");
    if (n < 0 || (size_t)n >= len - o) goto small;
    o += (size_t)n;
    for (int p = 0; p < NNM_PROBE__COUNT; p++) {
        n = snprintf(out + o, len - o, "%s\"%s\":%d", p ? "," : "", probe_names[p], c->runs[p]);
        if (n < 0 || (size_t)n >= len - o) goto small;
        o += (size_t)n;
    }
    n = snprintf(out + o, len - o,
                 "},\"probe_wall_ms\":%.1f,\"probe_cpu_ms\":%.1f,\"wall_ms\":%.1f,"
                 "\"mem_available\":%llu,\"mem_cgroup_limit\":%llu,\"mem_cgroup_usage\":%llu,"
                 "\"mem_free\":%llu,\"loadavg\":[%.2f,%.2f,%.2f],\"tasks_running\":%d,"
                 "\"tasks_total\":%d}",
                 c->probe_wall_ms, c->probe_cpu_ms, c->wall_ms,
                 (unsigned long long)c->mem_available, (unsigned long long)c->mem_cgroup_limit,
                 (unsigned long long)c->mem_cgroup_usage, (unsigned long long)c->mem_free,
                 c->load1, c->load5, c->load15, c->tasks_running, c->tasks_total);
    if (n < 0 || (size_t)n >= len - o) goto small;
    return NNM_OK;
small:
    out[0] = '\0';
    return NNM_ERANGE;
}
