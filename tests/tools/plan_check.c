/* tests/tools/plan_check.c — every plan the scheduler emits for a real model runs.
 *
 * usage: plan_check MODEL.onnx INPUT.npy [--explain]
 *
 * Builds a heterogeneous 4-node mesh (4, 2, 2 and 1 GFLOP/s: 50/25/25/12.5% of a board;
 * 100 Mbit/s links with 1 ms RTT, and a fast 1 GB/s variant), plans the model with every
 * policy and objective (and a pinned first stage), runs each plan in-process with
 * nnm_plan_run_local and compares the output with the whole model (1e-5 of its scale).
 * Prints one line per plan (stages, parts, predicted latency) and exits 1 on a mismatch. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nnmesh/exec.h"
#include "nnmesh/npy.h"
#include "nnmesh/scheduler.h"

static double rel_diff(const nnm_tensor *a, const nnm_tensor *b)
{
    if (a->nbytes != b->nbytes || a->dtype != NNM_DT_F32) return INFINITY;
    const float *x = a->data, *y = b->data;
    double md = 0, sc = 0;
    for (size_t i = 0; i < a->nbytes / 4; i++) {
        double d = fabs((double)x[i] - (double)y[i]);
        if (isnan(d)) return INFINITY;
        if (d > md) md = d;
        if (fabs((double)y[i]) > sc) sc = fabs((double)y[i]);
    }
    return sc > 0 ? md / sc : md;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: plan_check MODEL.onnx INPUT.npy [--explain]\n");
        return 2;
    }
    int explain = argc > 3 && !strcmp(argv[3], "--explain");
    nnm_diag d;
    nnm_graph *g = NULL;
    nnm_tensor x, ref;
    memset(&ref, 0, sizeof ref);
    if (nnm_npy_load(&x, argv[2], &d) != NNM_OK ||
        nnm_graph_load_onnx(&g, argv[1], NULL, &d) != NNM_OK) {
        fprintf(stderr, "plan_check: %s\n", d.msg);
        return 1;
    }
    nnm_exec *ex = NULL;
    if (nnm_exec_new(&ex, g, NULL, &d) != NNM_OK || nnm_exec_run(ex, &x, 1, &ref, 1, &d) != NNM_OK) {
        fprintf(stderr, "plan_check: whole model: %s\n", d.msg);
        return 1;
    }
    nnm_exec_free(ex);
    static const char *const ids[] = { "a", "b", "c", "d" };
    const double gf[] = { 4, 2, 2, 1 };
    const double mbps[] = { 12.5, 1000 };
    uint8_t hash[NNM_WIRE_HASH_BYTES] = { 7 };
    int failures = 0, plans = 0;
    static const char *const pname[] = { "local", "equal", "memory", "capacity", "adaptive" };
    for (int li = 0; li < 2; li++) {
        nnm_sched *s = NULL;
        if (nnm_sched_new(&s, "a", NULL, &d) != NNM_OK) return 1;
        for (int i = 0; i < 4; i++) {
            nnm_mesh_node n;
            memset(&n, 0, sizeof n);
            strcpy(n.id, ids[i]);
            for (int c = 0; c < NNM_OPC_OTHER; c++) n.gflops[c] = gf[i];
            n.free_mem = (uint64_t)(i + 1) << 28;
            if (nnm_sched_node_set(s, &n, &d) != NNM_OK) return 1;
        }
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 4; j++)
                if (i != j) nnm_sched_link_set(s, ids[i], ids[j], 1.0, mbps[li], NULL);
        for (int pol = 0; pol < NNM_POLICY__COUNT; pol++)
            for (int obj = 0; obj < NNM_OBJ__COUNT; obj++)
                for (int pin = 0; pin < 2; pin++) {
                    nnm_plan_opts o = { (nnm_objective)obj, (nnm_policy)pol, pin ? "d" : NULL, pin, 0, 0 };
                    nnm_plan *p = NULL;
                    struct timespec t0, t1;
                    clock_gettime(CLOCK_MONOTONIC, &t0);
                    if (nnm_sched_plan(s, g, hash, &o, &p, &d) != NNM_OK) {
                        printf("FAIL plan %s: %s\n", pname[pol], d.msg);
                        failures++;
                        continue;
                    }
                    clock_gettime(CLOCK_MONOTONIC, &t1);
                    double plan_ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
                                     (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
                    nnm_tensor y;
                    double rd = INFINITY;
                    if (nnm_plan_run_local(p, g, NNM_BACKEND_AUTO, &x, 1, &y, 1, &d) == NNM_OK) {
                        rd = rel_diff(&y, &ref);
                        nnm_tensor_cleanup(&y);
                    } else {
                        printf("  run: %s\n", d.msg);
                    }
                    int parts = 0;
                    for (int i = 0; i < p->n_stages; i++) parts += p->stages[i].n_parts;
                    int ok = rd <= 1e-5;
                    printf("%s %-8s %-10s %s links %6.1f MB/s: %2d stages %2d parts, predicted %8.2f ms "
                           "period %8.2f ms, planned in %.1f ms, diff %.2g\n",
                           ok ? "ok  " : "FAIL", pname[pol], obj ? "throughput" : "latency",
                           pin ? "pinned" : "      ", mbps[li], p->n_stages, parts,
                           p->pred_latency_ms, p->pred_period_ms, plan_ms, rd);
                    if (!ok || (explain && pol == NNM_POLICY_ADAPTIVE && !obj && !pin)) {
                        char *txt = NULL;
                        if (nnm_plan_format(&txt, p, g, NULL) == NNM_OK) fputs(txt, stdout);
                        free(txt);
                    }
                    failures += !ok;
                    plans++;
                    nnm_plan_free(p);
                }
        nnm_sched_free(s);
    }
    printf("%s: %d plans, %d failures\n", argv[1], plans, failures);
    nnm_tensor_cleanup(&x);
    nnm_tensor_cleanup(&ref);
    nnm_graph_free(g);
    return failures ? 1 : 0;
}
