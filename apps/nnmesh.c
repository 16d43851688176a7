/* apps/nnmesh.c — the `nnmesh` command: run and inspect models on this machine (and, as the
 * mesh lands, talk to it). A thin main over libnnmesh: argument parsing, printing, exit
 * codes. Every error is one line on stderr naming the file, node or input, and a non-zero
 * exit status. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "nnmesh/exec.h"
#include "nnmesh/graph.h"
#include "nnmesh/npy.h"
#include "infer.h"
#include "keys.h"
#include "peers.h"

#define MAX_INPUTS 32

static const char usage_text[] =
"NAME\n"
"    nnmesh - run, inspect and split neural networks across a mesh of small devices\n"
"\n"
"SYNOPSIS\n"
"    nnmesh run MODEL.onnx [-i [NAME=]FILE.npy]... [-o DIR] [--threads N] [--repeat N]\n"
"               [--backend auto|xnn|ref] [--no-arena] [--profile]\n"
"    nnmesh inspect MODEL.onnx\n"
"    nnmesh keygen [-o KEYFILE] [--id NODE]\n"
"    nnmesh trust add TRUSTFILE --node ID (PUBKEY | --key KEYFILE)\n"
"    nnmesh trust list TRUSTFILE\n"
"    nnmesh trust revoke TRUSTFILE PUBKEY\n"
"    nnmesh peers --config FILE [--wait SECONDS]\n"
"    nnmesh ctl --config FILE NODE (drain | resume | policy NAME | objective NAME |\n"
"               forward on|off) [--timeout SECONDS]\n"
"    nnmesh infer --config FILE (--model MODEL.onnx | --model-hash HEX) --node NODE\n"
"                 -i [NAME=]FILE.npy ... [-o DIR] [--timeout SECONDS]\n"
"    nnmesh --help | --version\n"
"\n"
"DESCRIPTION\n"
"    run      Runs MODEL on this machine only (no network). Inputs are NumPy .npy files\n"
"             (float32, float16, int8, uint8, int32, int64; C order). A model with one\n"
"             input accepts -i FILE.npy without a name. A symbolic batch dimension takes\n"
"             its size from the first input file. Prints each output's shape and top\n"
"             values and the median latency; with -o writes DIR/<output>.npy.\n"
"    inspect  Prints every node after import (BatchNormalization folded, activations\n"
"             fused, constant sub-graphs folded): op, output shape, FLOPs, parameter\n"
"             bytes and activation bytes, then totals. Unsupported ops are named.\n"
"    keygen   Writes a new Ed25519 node key file (default NODE.key or node.key), mode\n"
"             0600, never overwriting one; prints the public key and its fingerprint\n"
"             (with --id, the trust file line too).\n"
"    trust    Edits the mesh trust file (every node re-reads it within 2 s of a change,\n"
"             or at SIGHUP):\n"
"             add appends 'node ID PUBKEY' (creating the file; --key reads the public\n"
"             key from a key file), list prints every entry with its fingerprint,\n"
"             revoke appends 'revoke PUBKEY'. Each change is checked and written\n"
"             atomically.\n"
"    peers    Connects to the brokers of a node config as an observer, collects the\n"
"             retained adverts for --wait seconds (default 2), verifies each against the\n"
"             trust file (untrusted, forged, expired ones are reported on stderr) and\n"
"             prints a table: id, key fingerprint, epoch, sequence, measured GFLOP/s per\n"
"             op class, threads, load, queue (requests the node holds as their\n"
"             coordinator), memory offered, state, age of the advert, models.\n"
"    ctl      Sends a signed control frame to NODE through the secure link and waits\n"
"             for its answer: drain (stop taking new work), resume, policy NAME (local,\n"
"             equal, memory, capacity, adaptive), objective (latency | throughput),\n"
"             forward (on | off: route stage outputs peer to peer when it coordinates).\n"
"             Use an operator config: an identity in\n"
"             the trust file that no running node uses.\n"
"    infer    Seals a request to NODE (which must hold the model: the hash of\n"
"             MODEL.onnx names it) and waits for the outputs: NODE plans the request with\n"
"             its scheduler, runs the slices across the mesh and answers with the outputs\n"
"             and a trace (which node ran which nodes of the graph, compute, transfer and\n"
"             wait times). Unnamed inputs bind to the model's inputs by position. With -o\n"
"             writes DIR/<output>.npy. The config is an enrolled identity (key, trust file,\n"
"             brokers), like an operator's, that no running node uses. A node keeps one\n"
"             session per identity, so infers of one config take turns (each waits for\n"
"             the key file's lock, within its --timeout); clients that must run at the\n"
"             same time need keys of their own.\n"
"\n"
"OPTIONS\n"
"    -i, --input [NAME=]FILE   bind a .npy file to a model input (repeatable)\n"
"    -o, --output DIR          write outputs as DIR/<name>.npy (DIR is created)\n"
"    -t, --threads N           kernel threads (default 1)\n"
"    -r, --repeat N            run N times and report the median latency (default 1)\n"
"    --backend B               auto (XNNPACK where it has the op, default), xnn, or ref\n"
"                              (portable reference kernels only)\n"
"    --no-arena                one buffer per tensor instead of the planned arena\n"
"    --profile                 print the time spent in every node and its kernel\n"
"\n"
"EXIT STATUS\n"
"    0 on success; 1 when the model, an input or an option is wrong (one line on stderr\n"
"    says which); 2 on usage errors.\n"
"\n"
"EXAMPLES\n"
"    nnmesh inspect examples/models/lenet5-fmnist.onnx\n"
"    nnmesh run examples/models/lenet5-fmnist.onnx -i examples/models/sample-0-ankle-boot.npy\n"
"    nnmesh run mobilenet_v2.onnx -i input=x.npy --threads 2 --repeat 50 -o out/\n";

static int usage_error(const char *fmt, const char *arg)
    __attribute__((format(printf, 1, 0)));

/* fmt holds at most one %s, filled with arg. */
static int usage_error(const char *fmt, const char *arg)
{
    char msg[512];
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    snprintf(msg, sizeof msg, fmt, arg);
#pragma GCC diagnostic pop
    fprintf(stderr, "nnmesh: %s\nTry 'nnmesh --help'.\n", msg);
    return 2;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end != '\0' || v < lo || v > hi) return -1;
    *out = (int)v;
    return 0;
}

static void human_bytes(char *buf, size_t len, double b)
{
    if (b >= 1024.0 * 1024.0) snprintf(buf, len, "%.2f MiB", b / (1024.0 * 1024.0));
    else if (b >= 1024.0) snprintf(buf, len, "%.1f KiB", b / 1024.0);
    else snprintf(buf, len, "%.0f B", b);
}

static void human_flops(char *buf, size_t len, double f)
{
    if (f >= 1e9) snprintf(buf, len, "%.2fG", f / 1e9);
    else if (f >= 1e6) snprintf(buf, len, "%.2fM", f / 1e6);
    else if (f >= 1e3) snprintf(buf, len, "%.1fK", f / 1e3);
    else snprintf(buf, len, "%.0f", f);
}

static int cmd_inspect(int argc, char **argv)
{
    if (argc < 2) return usage_error("%s", "inspect needs MODEL.onnx");
    if (argc > 2) return usage_error("inspect: unexpected argument '%s'", argv[2]);
    const char *path = argv[1];
    nnm_diag d;
    nnm_diag_clear(&d);
    nnm_graph *g = NULL;
    nnm_err rc = nnm_graph_load_onnx(&g, path, NULL, &d);
    if (rc != NNM_OK) {
        fprintf(stderr, "nnmesh: %s\n", d.msg[0] ? d.msg : nnm_strerror(rc));
        if (rc == NNM_EUNSUPPORTED) {
            char ops[1024];
            nnm_diag d2;
            int k = nnm_onnx_unsupported_ops(path, ops, sizeof ops, &d2);
            if (k > 0) fprintf(stderr, "nnmesh: %s: unsupported ops: %s\n", path, ops);
        }
        return 1;
    }
    printf("%s\n", path);
    for (int i = 0; i < nnm_graph_input_count(g); i++) {
        nnm_io_info io;
        char sh[128];
        nnm_graph_input_get(g, i, &io);
        printf("  input  %-24s %-8s %s\n", io.name, nnm_dtype_name(io.dtype),
               nnm_shape_format(sh, sizeof sh, io.shape, io.ndim));
    }
    for (int i = 0; i < nnm_graph_output_count(g); i++) {
        nnm_io_info io;
        char sh[128];
        nnm_graph_output_get(g, i, &io);
        printf("  output %-24s %-8s %s\n", io.name, nnm_dtype_name(io.dtype),
               nnm_shape_format(sh, sizeof sh, io.shape, io.ndim));
    }
    printf("\n%4s  %-32s %-22s %-20s %10s %11s %11s\n", "#", "node", "op", "output shape",
           "FLOPs", "params", "activation");
    double tf = 0, tp = 0, ta = 0, peak = 0;
    int n = nnm_graph_node_count(g);
    for (int i = 0; i < n; i++) {
        nnm_node_info ni;
        nnm_graph_node_get(g, i, &ni);
        char sh[128], fl[32], pb[32], ab[32], op[64];
        nnm_shape_format(sh, sizeof sh, ni.shape, ni.ndim);
        human_flops(fl, sizeof fl, ni.flops);
        human_bytes(pb, sizeof pb, (double)ni.param_bytes);
        human_bytes(ab, sizeof ab, (double)ni.out_bytes);
        snprintf(op, sizeof op, "%s%s%s", ni.op, ni.fused ? "+" : "", ni.fused ? ni.fused : "");
        printf("%4d  %-32.32s %-22.22s %-20s %10s %11s %11s\n", i, ni.name, op, sh, fl, pb, ab);
        tf += ni.flops;
        tp += (double)ni.param_bytes;
        ta += (double)ni.out_bytes;
        if ((double)ni.out_bytes > peak) peak = (double)ni.out_bytes;
    }
    char fl[32], pb[32], ab[32], pk[32];
    human_flops(fl, sizeof fl, tf);
    human_bytes(pb, sizeof pb, tp);
    human_bytes(ab, sizeof ab, ta);
    human_bytes(pk, sizeof pk, peak);
    printf("\ntotal: %d nodes, %s FLOPs, %s parameters, %s activations (largest %s)\n", n, fl, pb,
           ab, pk);
    nnm_graph_free(g);
    return 0;
}

static void print_output(const char *name, const nnm_tensor *t)
{
    char sh[128];
    printf("output %s: %s %s\n", name, nnm_dtype_name(t->dtype),
           nnm_shape_format(sh, sizeof sh, t->shape, t->ndim));
    if (t->dtype != NNM_DT_F32) return;
    const float *x = t->data;
    int64_t n = (int64_t)(t->nbytes / 4);
    if (n == 0) return;
    /* Top-5 of the last row (a classifier's scores), or of the whole tensor. */
    int64_t row = t->ndim > 0 ? t->shape[t->ndim - 1] : 1;
    if (row <= 0) row = n;
    const float *r = x + (n - row);
    int top[5], k = row < 5 ? (int)row : 5;
    for (int j = 0; j < k; j++) {
        int best = -1;
        for (int64_t i = 0; i < row; i++) {
            int used = 0;
            for (int q = 0; q < j; q++) used |= top[q] == i;
            if (!used && (best < 0 || r[i] > r[best])) best = (int)i;
        }
        top[j] = best;
    }
    printf("  top%d:", k);
    for (int j = 0; j < k; j++) printf(" [%d]=%.6g", top[j], r[top[j]]);
    double sum = 0, mn = INFINITY, mx = -INFINITY;
    for (int64_t i = 0; i < n; i++) {
        sum += x[i];
        if (x[i] < mn) mn = x[i];
        if (x[i] > mx) mx = x[i];
    }
    printf("\n  min %.6g  max %.6g  mean %.6g\n", mn, mx, sum / (double)n);
}

static int ensure_dir(const char *dir)
{
    if (mkdir(dir, 0755) == 0 || errno == EEXIST) return 0;
    return -1;
}

static int cmd_run(int argc, char **argv)
{
    const char *model = NULL, *outdir = NULL;
    const char *in_spec[MAX_INPUTS];
    int n_spec = 0, threads = 1, repeat = 1;
    nnm_exec_opts eo = { 0 };
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has_val = i + 1 < argc;
        if (!strcmp(a, "-i") || !strcmp(a, "--input")) {
            if (!has_val) return usage_error("%s needs a value", a);
            if (n_spec == MAX_INPUTS) return usage_error("too many inputs (at most %s)", "32");
            in_spec[n_spec++] = argv[++i];
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            if (!has_val) return usage_error("%s needs a value", a);
            outdir = argv[++i];
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            if (!has_val || parse_int(argv[++i], 1, 256, &threads))
                return usage_error("--threads needs a number from 1 to 256%s", "");
        } else if (!strcmp(a, "-r") || !strcmp(a, "--repeat")) {
            if (!has_val || parse_int(argv[++i], 1, 1000000, &repeat))
                return usage_error("--repeat needs a number from 1 to 1000000%s", "");
        } else if (!strcmp(a, "--backend")) {
            if (!has_val) return usage_error("%s needs a value", a);
            const char *b = argv[++i];
            if (!strcmp(b, "auto")) eo.backend = NNM_BACKEND_AUTO;
            else if (!strcmp(b, "xnn")) eo.backend = NNM_BACKEND_XNN;
            else if (!strcmp(b, "ref")) eo.backend = NNM_BACKEND_REF;
            else return usage_error("unknown backend '%s' (auto, xnn or ref)", b);
        } else if (!strcmp(a, "--no-arena")) {
            eo.no_arena = 1;
        } else if (!strcmp(a, "--profile")) {
            eo.profile = 1;
        } else if (a[0] == '-' && a[1] != '\0') {
            return usage_error("unknown option '%s'", a);
        } else if (model == NULL) {
            model = a;
        } else {
            return usage_error("unexpected argument '%s'", a);
        }
    }
    if (model == NULL) return usage_error("%s", "run needs MODEL.onnx");
    eo.threads = threads;

    int status = 1;
    nnm_diag d;
    nnm_diag_clear(&d);
    nnm_graph *g = NULL;
    nnm_exec *ex = NULL;
    nnm_tensor files[MAX_INPUTS], inputs[MAX_INPUTS], outputs[64];
    const char *names[MAX_INPUTS];
    memset(files, 0, sizeof files);
    memset(inputs, 0, sizeof inputs);
    memset(outputs, 0, sizeof outputs);
    double *times = NULL;
    int n_out = 0;

    /* Read the input files first: a symbolic batch dimension takes its size from them. */
    for (int i = 0; i < n_spec; i++) {
        const char *eq = strchr(in_spec[i], '=');
        const char *file = eq ? eq + 1 : in_spec[i];
        names[i] = NULL;
        static char namebuf[MAX_INPUTS][256];
        if (eq) {
            size_t len = (size_t)(eq - in_spec[i]);
            if (len == 0 || len >= sizeof namebuf[i]) {
                fprintf(stderr, "nnmesh: -i %s: empty or too long input name\n", in_spec[i]);
                goto out;
            }
            memcpy(namebuf[i], in_spec[i], len);
            namebuf[i][len] = '\0';
            names[i] = namebuf[i];
        }
        if (nnm_npy_load(&files[i], file, &d) != NNM_OK) {
            fprintf(stderr, "nnmesh: %s\n", d.msg);
            goto out;
        }
    }
    nnm_load_opts lo = { 0 };
    if (n_spec > 0 && files[0].ndim > 0) lo.batch = files[0].shape[0];
    if (nnm_graph_load_onnx(&g, model, &lo, &d) != NNM_OK) {
        fprintf(stderr, "nnmesh: %s\n", d.msg);
        goto out;
    }
    int n_in = nnm_graph_input_count(g);
    n_out = nnm_graph_output_count(g);
    if (n_out > 64) {
        fprintf(stderr, "nnmesh: %s: more than 64 outputs\n", model);
        n_out = 0;
        goto out;
    }
    /* Bind files to inputs by name, or positionally for unnamed ones. */
    int bound[MAX_INPUTS] = { 0 };
    for (int i = 0; i < n_spec; i++) {
        int k = -1;
        if (names[i]) {
            for (int j = 0; j < n_in; j++) {
                nnm_io_info io;
                nnm_graph_input_get(g, j, &io);
                if (!strcmp(io.name, names[i])) k = j;
            }
            if (k < 0) {
                fprintf(stderr, "nnmesh: %s: the model has no input named '%s'\n", model, names[i]);
                goto out;
            }
        } else {
            for (int j = 0; j < n_in && k < 0; j++)
                if (!bound[j]) k = j;
            if (k < 0) {
                fprintf(stderr, "nnmesh: %s: more input files than model inputs (%d)\n", model, n_in);
                goto out;
            }
        }
        if (k >= MAX_INPUTS || bound[k]) {
            fprintf(stderr, "nnmesh: input bound twice: %s\n", in_spec[i]);
            goto out;
        }
        bound[k] = 1;
        inputs[k] = files[i];
    }
    for (int j = 0; j < n_in; j++) {
        nnm_io_info io;
        char sh[128];
        nnm_graph_input_get(g, j, &io);
        if (j >= MAX_INPUTS || !bound[j]) {
            fprintf(stderr, "nnmesh: %s: missing input '%s' (%s %s): pass -i %s=FILE.npy\n", model, io.name,
                    nnm_dtype_name(io.dtype), nnm_shape_format(sh, sizeof sh, io.shape, io.ndim), io.name);
            goto out;
        }
        /* Name the file in shape errors: the executor only knows the input. */
        const nnm_tensor *t = &inputs[j];
        int same = t->dtype == io.dtype && t->ndim == io.ndim;
        for (int q = 0; same && q < io.ndim; q++) same = t->shape[q] == io.shape[q];
        if (!same) {
            char got[128];
            const char *file = "";
            for (int i = 0; i < n_spec; i++)
                if (inputs[j].data == files[i].data) {
                    const char *eq = strchr(in_spec[i], '=');
                    file = eq ? eq + 1 : in_spec[i];
                }
            fprintf(stderr, "nnmesh: %s: input '%s' expects %s %s, the file holds %s %s\n", file,
                    io.name, nnm_dtype_name(io.dtype), nnm_shape_format(sh, sizeof sh, io.shape, io.ndim),
                    nnm_dtype_name(t->dtype), nnm_shape_format(got, sizeof got, t->shape, t->ndim));
            goto out;
        }
    }
    /* The executor takes the graph: weights XNNPACK packs are then held once. */
    nnm_graph *gg = g;
    g = NULL;
    if (nnm_exec_new_owning(&ex, gg, &eo, &d) != NNM_OK) {
        fprintf(stderr, "nnmesh: %s: %s\n", model, d.msg);
        goto out;
    }
    g = (nnm_graph *)gg;   /* still valid: owned by ex, freed with it */
    times = malloc((size_t)repeat * sizeof *times);
    if (times == NULL) {
        fprintf(stderr, "nnmesh: out of memory\n");
        goto out;
    }
    for (int r = 0; r < repeat; r++) {
        if (r > 0)
            for (int j = 0; j < n_out; j++) nnm_tensor_cleanup(&outputs[j]);
        double t0 = now_ms();
        if (nnm_exec_run(ex, inputs, n_in, outputs, n_out, &d) != NNM_OK) {
            fprintf(stderr, "nnmesh: %s: %s\n", model, d.msg);
            goto out;
        }
        times[r] = now_ms() - t0;
    }
    for (int j = 0; j < n_out; j++) {
        nnm_io_info io;
        nnm_graph_output_get(g, j, &io);
        print_output(io.name, &outputs[j]);
        if (outdir) {
            char path[PATH_MAX];
            if (ensure_dir(outdir) != 0) {
                fprintf(stderr, "nnmesh: %s: cannot create directory: %s\n", outdir, strerror(errno));
                goto out;
            }
            /* Output names come from the model file: keep only safe characters. */
            char safe[200];
            size_t k = 0;
            for (const char *p = io.name; *p && k + 1 < sizeof safe; p++)
            {
                int bad = *p == '/' || *p == '\\' || (*p == '.' && k == 0);
                safe[k] = bad ? '_' : *p;
                k++;
            }
            safe[k] = '\0';
            snprintf(path, sizeof path, "%s/%s.npy", outdir, safe);
            if (nnm_npy_save(path, &outputs[j], &d) != NNM_OK) {
                fprintf(stderr, "nnmesh: %s\n", d.msg);
                goto out;
            }
            printf("  wrote %s\n", path);
        }
    }
    if (eo.profile) {
        const nnm_graph *xg = nnm_exec_graph(ex);
        int nn = nnm_graph_node_count(xg);
        double total = 0;
        for (int i = 0; i < nn; i++) total += nnm_exec_profile_get(ex, i);
        printf("\nprofile (mean ms per run, executed graph after the layout pass):\n");
        printf("%4s  %-40s %-18s %-6s %9s %6s\n", "#", "node", "op", "kernel", "ms", "%");
        for (int i = 0; i < nn; i++) {
            nnm_node_info ni;
            nnm_graph_node_get(xg, i, &ni);
            double ms = nnm_exec_profile_get(ex, i) / repeat;
            printf("%4d  %-40.40s %-18.18s %-6s %9.3f %5.1f%%\n", i, ni.name, ni.op,
                   nnm_exec_node_backend(ex, i), ms, total > 0 ? 100.0 * ms * repeat / total : 0.0);
        }
    }
    qsort(times, (size_t)repeat, sizeof *times, cmp_double);
    double med = repeat % 2 ? times[repeat / 2] : (times[repeat / 2 - 1] + times[repeat / 2]) / 2;
    char ab[32];
    human_bytes(ab, sizeof ab, (double)nnm_exec_arena_bytes(ex));
    printf("latency: median %.3f ms over %d run%s (min %.3f, max %.3f), threads %d, arena %s\n", med,
           repeat, repeat == 1 ? "" : "s", times[0], times[repeat - 1], threads, ab);
    status = 0;
out:
    free(times);
    for (int j = 0; j < n_out; j++) nnm_tensor_cleanup(&outputs[j]);
    for (int i = 0; i < n_spec; i++) nnm_tensor_cleanup(&files[i]);
    if (ex != NULL) nnm_exec_free(ex);   /* frees g too */
    else nnm_graph_free(g);
    return status;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage_text, stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        fputs(usage_text, stdout);
        return 0;
    }
    if (!strcmp(cmd, "--version")) {
        printf("nnmesh %s\n", PACKAGE_VERSION);
        return 0;
    }
    if (!strcmp(cmd, "run")) return cmd_run(argc - 1, argv + 1);
    if (!strcmp(cmd, "inspect")) return cmd_inspect(argc - 1, argv + 1);
    if (!strcmp(cmd, "keygen")) return nnm_cli_keygen(argc - 1, argv + 1);
    if (!strcmp(cmd, "trust")) return nnm_cli_trust(argc - 1, argv + 1);
    if (!strcmp(cmd, "peers")) return nnm_cli_peers(argc - 1, argv + 1);
    if (!strcmp(cmd, "ctl")) return nnm_cli_ctl(argc - 1, argv + 1);
    if (!strcmp(cmd, "infer")) return nnm_cli_infer(argc - 1, argv + 1);
    return usage_error("unknown command '%s'", cmd);
}
