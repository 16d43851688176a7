/* tests/tools/slice_check.c — checks that slices and parts of slices reproduce the whole.
 *
 * usage: slice_check MODEL.onnx INPUT.npy [--seed N] [--backend ref|auto] [--onnx 1]
 *
 * 1. Runs the model whole.
 * 2. For k = 2..6, cuts it at k-1 random points into contiguous slices, runs them in order
 *    passing values by name, and compares the final outputs with the whole (1e-5 of scale).
 * 3. Finds runs of nodes that can be split by output rows and by output channels, splits
 *    each into 2-4 uneven parts, runs every part on its cropped inputs, joins the outputs
 *    and compares with the run computed as one slice.
 * With --onnx 1 every slice and part is written as ONNX and re-imported before it runs
 * (what a peer receiving the slice's weights does).
 * Prints one line per check and exits 1 on any mismatch. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nnmesh/exec.h"
#include "nnmesh/npy.h"

#define MAXV 4096

typedef struct entry { char *name; nnm_tensor t; } entry;
static entry dict[MAXV];
static int n_dict;
static int backend = NNM_BACKEND_AUTO;
static int via_onnx;     /* --onnx: every slice goes through nnm_graph_encode_onnx and back */
static int failures, checks;

static void dict_clear(void)
{
    for (int i = 0; i < n_dict; i++) {
        free(dict[i].name);
        nnm_tensor_cleanup(&dict[i].t);
    }
    n_dict = 0;
}

static nnm_tensor *dict_get(const char *name)
{
    for (int i = 0; i < n_dict; i++)
        if (!strcmp(dict[i].name, name)) return &dict[i].t;
    return NULL;
}

static void dict_put(const char *name, nnm_tensor *t)   /* takes t */
{
    nnm_tensor *old = dict_get(name);
    if (old) {
        nnm_tensor_cleanup(old);
        *old = *t;
        return;
    }
    if (n_dict == MAXV) { nnm_tensor_cleanup(t); return; }
    dict[n_dict].name = strdup(name);
    dict[n_dict].t = *t;
    n_dict++;
}

static double rel_diff(const nnm_tensor *a, const nnm_tensor *b)
{
    if (a->nbytes != b->nbytes || a->dtype != b->dtype) return INFINITY;
    if (a->dtype != NNM_DT_F32) return memcmp(a->data, b->data, a->nbytes) ? INFINITY : 0;
    const float *x = a->data, *y = b->data;
    size_t n = a->nbytes / 4;
    double md = 0, scale = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)x[i] - (double)y[i]);
        if (isnan(d)) return INFINITY;
        if (d > md) md = d;
        if (fabs((double)y[i]) > scale) scale = fabs((double)y[i]);
    }
    return scale > 0 ? md / scale : md;
}

/* Runs graph s with inputs from the dict (cropped per region); outputs go to outs[]. */
static int run_graph(const nnm_graph *s, nnm_tensor *outs, int *n_out)
{
    nnm_diag d;
    nnm_diag_clear(&d);
    int ni = nnm_graph_input_count(s), no = nnm_graph_output_count(s);
    nnm_tensor ins[64];
    memset(ins, 0, sizeof ins);
    int ok = 0;
    nnm_exec *ex = NULL;
    nnm_exec_opts o = { .backend = backend };
    for (int i = 0; i < ni; i++) {
        nnm_io_info io;
        nnm_region r;
        nnm_graph_input_get(s, i, &io);
        nnm_graph_input_region(s, i, &r);
        nnm_tensor *src = dict_get(io.name);
        if (!src) { fprintf(stderr, "value '%s' not available\n", io.name); goto out; }
        if (nnm_tensor_crop(&ins[i], src, &r) != NNM_OK) { fprintf(stderr, "crop of '%s' failed\n", io.name); goto out; }
    }
    nnm_graph *re = NULL;
    if (via_onnx) {
        void *buf = NULL;
        size_t len = 0;
        if (nnm_graph_encode_onnx(&buf, &len, s, &d) != NNM_OK) { fprintf(stderr, "encode: %s\n", d.msg); goto out; }
        nnm_err rc2 = nnm_graph_decode_onnx(&re, buf, len, "slice.onnx", NULL, &d);
        free(buf);
        if (rc2 != NNM_OK) { fprintf(stderr, "re-import: %s\n", d.msg); goto out; }
        if (nnm_graph_input_count(re) != ni || nnm_graph_output_count(re) != no) {
            fprintf(stderr, "re-import changed the inputs/outputs\n");
            nnm_graph_free(re);
            goto out;
        }
        s = re;
    }
    if (nnm_exec_new(&ex, s, &o, &d) != NNM_OK) { fprintf(stderr, "exec_new: %s\n", d.msg); nnm_graph_free(re); goto out; }
    if (nnm_exec_run(ex, ins, ni, outs, no, &d) != NNM_OK) { fprintf(stderr, "run: %s\n", d.msg); nnm_exec_free(ex); ex = NULL; nnm_graph_free(re); goto out; }
    *n_out = no;
    ok = 1;
    nnm_exec_free(ex);
    ex = NULL;
    nnm_graph_free(re);
out:
    nnm_exec_free(ex);
    for (int i = 0; i < ni; i++) nnm_tensor_cleanup(&ins[i]);
    return ok;
}

static void report(const char *what, double diff)
{
    checks++;
    int ok = diff <= 1e-5;
    if (!ok) failures++;
    printf("%s %s: max diff %.3g of scale\n", ok ? "PASS" : "FAIL", what, diff);
}

/* Runs slices [cuts[i], cuts[i+1]) in order; returns 1 on success (values in dict). */
static int run_chain(const nnm_graph *g, const int *cuts, int k)
{
    for (int i = 0; i < k; i++) {
        nnm_graph *s = NULL;
        nnm_diag d;
        if (nnm_graph_slice(&s, g, cuts[i], cuts[i + 1], NULL, &d) != NNM_OK) {
            fprintf(stderr, "slice [%d,%d): %s\n", cuts[i], cuts[i + 1], d.msg);
            return 0;
        }
        nnm_tensor outs[64];
        int no = 0;
        int ok = run_graph(s, outs, &no);
        for (int j = 0; ok && j < no; j++) {
            nnm_io_info io;
            nnm_graph_output_get(s, j, &io);
            dict_put(io.name, &outs[j]);
        }
        nnm_graph_free(s);
        if (!ok) return 0;
    }
    return 1;
}

static int cmp_int(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }

/* Splits [a, b) into parts of kind along an output dim of size dim; compares with whole. */
static void check_parts(const nnm_graph *g, int a, int b, int kind, int64_t dim, int nparts)
{
    nnm_graph *whole = NULL;
    nnm_diag d;
    if (nnm_graph_slice(&whole, g, a, b, NULL, &d) != NNM_OK) return;
    nnm_tensor ref[64], joined[64];
    int no = 0;
    if (!run_graph(whole, ref, &no)) { failures++; nnm_graph_free(whole); return; }
    for (int j = 0; j < no; j++) nnm_tensor_init(&joined[j], ref[j].dtype, ref[j].ndim, ref[j].shape);
    /* Uneven cut points: 1, 2, 3... weighted. */
    int64_t cuts[8];
    int wsum = 0;
    for (int p = 0; p < nparts; p++) wsum += p + 1;
    cuts[0] = 0;
    for (int p = 1; p < nparts; p++) cuts[p] = cuts[p - 1] + (dim * (p)) / wsum;
    cuts[nparts] = dim;
    int ok = 1;
    for (int p = 0; p < nparts && ok; p++) {
        if (cuts[p + 1] <= cuts[p]) continue;
        nnm_part part = { kind, cuts[p], cuts[p + 1] };
        nnm_graph *s = NULL;
        if (nnm_graph_slice(&s, g, a, b, &part, &d) != NNM_OK) {
            fprintf(stderr, "part [%lld,%lld) of [%d,%d): %s\n", (long long)part.begin, (long long)part.end, a, b, d.msg);
            ok = 0;
            break;
        }
        nnm_tensor outs[64];
        int n2 = 0;
        if (!run_graph(s, outs, &n2)) ok = 0;
        for (int j = 0; ok && j < n2; j++) {
            nnm_region r;
            nnm_graph_output_region(s, j, &r);
            if (nnm_tensor_place(&joined[j], &outs[j], &r) != NNM_OK) ok = 0;
        }
        for (int j = 0; j < n2; j++) nnm_tensor_cleanup(&outs[j]);
        nnm_graph_free(s);
    }
    double worst = 0;
    for (int j = 0; j < no; j++) {
        double r = rel_diff(&joined[j], &ref[j]);
        if (r > worst) worst = r;
        nnm_tensor_cleanup(&joined[j]);
        nnm_tensor_cleanup(&ref[j]);
    }
    char what[128];
    snprintf(what, sizeof what, "%d %s parts of nodes [%d, %d)", nparts,
             kind == NNM_PART_ROWS ? "row" : "channel", a, b);
    report(what, ok ? worst : INFINITY);
    nnm_graph_free(whole);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: slice_check MODEL.onnx INPUT.npy [--seed N] [--backend ref|auto] [--onnx 1]\n");
        return 2;
    }
    unsigned seed = 1;
    for (int i = 3; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--seed")) seed = (unsigned)atoi(argv[i + 1]);
        if (!strcmp(argv[i], "--backend")) backend = !strcmp(argv[i + 1], "ref") ? NNM_BACKEND_REF : NNM_BACKEND_AUTO;
        if (!strcmp(argv[i], "--onnx")) via_onnx = atoi(argv[i + 1]);
    }
    srand(seed);
    nnm_diag d;
    nnm_graph *g = NULL;
    nnm_tensor x;
    if (nnm_npy_load(&x, argv[2], &d) != NNM_OK) { fprintf(stderr, "%s\n", d.msg); return 2; }
    if (nnm_graph_load_onnx(&g, argv[1], NULL, &d) != NNM_OK) { fprintf(stderr, "%s\n", d.msg); return 2; }
    nnm_io_info in0;
    nnm_graph_input_get(g, 0, &in0);
    int n = nnm_graph_node_count(g);
    int no = nnm_graph_output_count(g);
    nnm_tensor whole[64];
    {
        nnm_exec *ex = NULL;
        nnm_exec_opts o = { .backend = backend };
        if (nnm_exec_new(&ex, g, &o, &d) != NNM_OK || nnm_exec_run(ex, &x, 1, whole, no, &d) != NNM_OK) {
            fprintf(stderr, "whole run: %s\n", d.msg);
            return 1;
        }
        nnm_exec_free(ex);
    }
    printf("%s: %d nodes\n", argv[1], n);
    for (int k = 2; k <= 6 && k <= n; k++) {
        int cuts[8];
        cuts[0] = 0;
        cuts[k] = n;
        /* k-1 distinct random cut points in (0, n) */
        for (int i = 1; i < k; i++) {
            int c, dup;
            do {
                c = 1 + rand() % (n - 1);
                dup = 0;
                for (int j = 1; j < i; j++) dup |= cuts[j] == c;
            } while (dup);
            cuts[i] = c;
        }
        qsort(cuts + 1, (size_t)(k - 1), sizeof(int), cmp_int);
        dict_clear();
        nnm_tensor cp;
        nnm_region all = { -1, 0, 0 };
        nnm_tensor_crop(&cp, &x, &all);
        dict_put(in0.name, &cp);
        double worst = INFINITY;
        if (run_chain(g, cuts, k)) {
            worst = 0;
            for (int j = 0; j < no; j++) {
                nnm_io_info io;
                nnm_graph_output_get(g, j, &io);
                nnm_tensor *t = dict_get(io.name);
                double r = t ? rel_diff(t, &whole[j]) : INFINITY;
                if (r > worst) worst = r;
            }
        }
        char what[256];
        int o = snprintf(what, sizeof what, "%d slices, cuts", k);
        for (int i = 1; i < k; i++) o += snprintf(what + o, sizeof what - (size_t)o, " %d", cuts[i]);
        report(what, worst);
    }
    /* Parts: probe runs starting at each node, extend while the part slicing works. */
    int done_rows = 0, done_ch = 0;
    for (int a = 0; a < n && (done_rows < 3 || done_ch < 3); a += 1 + n / 12) {
        for (int kind = NNM_PART_CHANNELS; kind <= NNM_PART_ROWS; kind++) {
            int *done = kind == NNM_PART_ROWS ? &done_rows : &done_ch;
            if (*done >= 3) continue;
            int best_b = -1;
            int64_t best_dim = 0;
            for (int b = a + 1; b <= n && b <= a + 12; b++) {
                nnm_graph *s = NULL;
                nnm_part part = { kind, 0, 1 };
                if (nnm_graph_slice(&s, g, a, b, &part, &d) != NNM_OK) {
                    if (d.code == NNM_EUNSUPPORTED) break;
                    continue;
                }
                nnm_region r;
                nnm_graph_output_region(s, 0, &r);
                nnm_graph *w = NULL;
                nnm_graph_slice(&w, g, a, b, NULL, &d);
                nnm_io_info io;
                nnm_graph_output_get(w, 0, &io);
                int64_t dim = io.shape[kind == NNM_PART_ROWS ? 2 : 1];
                if (dim >= 4) { best_b = b; best_dim = dim; }
                nnm_graph_free(w);
                nnm_graph_free(s);
            }
            if (best_b < 0) continue;
            /* Values before a come from a whole run of [0, a). */
            dict_clear();
            nnm_tensor cp;
            nnm_region all = { -1, 0, 0 };
            nnm_tensor_crop(&cp, &x, &all);
            dict_put(in0.name, &cp);
            int cuts[2] = { 0, a };
            if (a > 0 && !run_chain(g, cuts, 1)) continue;
            check_parts(g, a, best_b, kind, best_dim, 2 + (*done % 3));
            (*done)++;
        }
    }
    dict_clear();
    for (int j = 0; j < no; j++) nnm_tensor_cleanup(&whole[j]);
    nnm_tensor_cleanup(&x);
    nnm_graph_free(g);
    printf("%d passed, %d failed\n", checks - failures, failures);
    return failures ? 1 : 0;
}
