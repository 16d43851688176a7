/* tests/tools/onnx_conformance.c — runs ONNX's per-operator conformance cases (the node tests
 * shipped by libonnx-testdata) through the importer and the public executor.
 *
 *     onnx_conformance [-v] [-k SUBSTRING] DIR...
 *
 * Each DIR is a case (a directory with model.onnx and test_data_set_N/{input,output}_K.pb,
 * each .pb a serialized onnx.TensorProto) or a directory of cases. A case runs when every op
 * type in its model is one nnmesh supports (nnm_onnx_unsupported_ops() == 0); it is then
 * loaded with nnm_graph_load_onnx (optimizations on; nnm_graph_decode_onnx when parameter
 * inputs were bound, see below) and run through nnm_exec_run with both the
 * reference and the automatic backend; every output is compared with the expected one:
 * floats within 1e-4 of the expected output's largest magnitude (1e-3 relative for float16),
 * NaN equal to NaN, integers and bools exactly.
 *
 * One adaptation, because nnmesh fixes every shape at load time: graph inputs that only feed
 * parameter slots (Reshape's shape, Slice's starts/ends/axes/steps, Squeeze/Unsqueeze axes,
 * Pad's pads and value, Clip's bounds, Resize's roi/scales/sizes, Split's split, Dropout's
 * ratio, ConstantOfShape's shape) are bound as initializers from the data set, as they are in
 * exported models. The case's data inputs stay inputs.
 *
 * Prints "PASS name", "FAIL name: reason" or "SKIP name: reason" per case (a skip reason is
 * the loader's or executor's own NNM_EUNSUPPORTED message), then a summary and the list of
 * skips. Exit status 1 if any case failed, 2 on bad usage. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nnmesh/exec.h"
#include "nnmesh/graph.h"
#include "ir.h"
#include "onnx.pb-c.h"

#define MAX_IO 64

typedef struct skip_entry {
    char *name;
    char *why;
} skip_entry;

static int verbose;
static int n_pass, n_fail, n_skip, n_na;
static skip_entry *skips;
static int n_skips;

/* snprintf through a wrapper: paths are as long as the system allows, and a truncated one
 * simply names a file that does not exist. */
static void fmt(char *buf, size_t len, const char *f, ...) __attribute__((format(printf, 3, 4)));
static void fmt(char *buf, size_t len, const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    vsnprintf(buf, len, f, ap);
    va_end(ap);
}

static int is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int is_file(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static void *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (n < cap) break;
        char *q = realloc(buf, cap * 2);
        if (q == NULL) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = q;
        cap *= 2;
    }
    fclose(f);
    *len = n;
    return buf;
}

/* 1 if input slot `slot` of op_type is a parameter that fixes shapes (see the top). */
static int param_slot(const char *op, size_t slot)
{
    static const struct { const char *op; unsigned mask; } t[] = {
        { "Reshape", 1u << 1 }, { "Slice", 0x1eu }, { "Squeeze", 1u << 1 },
        { "Unsqueeze", 1u << 1 }, { "Pad", 0x6u }, { "Clip", 0x6u }, { "Resize", 0xeu },
        { "Split", 1u << 1 }, { "Dropout", 0x6u }, { "ConstantOfShape", 1u },
        { "ReduceMean", 1u << 1 }, { "ReduceMax", 1u << 1 },
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (strcmp(op, t[i].op) == 0) return slot < 32 && (t[i].mask >> slot) & 1u;
    return 0;
}

static int is_initializer(const Onnx__GraphProto *gp, const char *name)
{
    for (size_t i = 0; i < gp->n_initializer; i++)
        if (gp->initializer[i]->name && strcmp(gp->initializer[i]->name, name) == 0) return 1;
    return 0;
}

/* Rewrites the model: parameter-only inputs become initializers from dataset files.
 * names[k] receives the name of data input k (input_k.pb), frozen[k] whether it was bound.
 * Returns the packed model or NULL (msg filled). */
static uint8_t *bind_params(const void *model, size_t mlen, const char *dset, size_t *out_len,
                            char names[][256], int *frozen, int *n_files, char *msg, size_t ml)
{
    Onnx__ModelProto *m = onnx__model_proto__unpack(NULL, mlen, model);
    if (m == NULL || m->graph == NULL) {
        fmt(msg, ml, "model.onnx does not parse");
        if (m) onnx__model_proto__free_unpacked(m, NULL);
        return NULL;
    }
    Onnx__GraphProto *gp = m->graph;
    int k = 0;
    uint8_t *out = NULL;
    for (size_t i = 0; i < gp->n_input;) {
        Onnx__ValueInfoProto *vi = gp->input[i];
        const char *nm = vi->name ? vi->name : "";
        if (is_initializer(gp, nm)) {
            i++;
            continue;
        }
        if (k >= MAX_IO) {
            fmt(msg, ml, "too many inputs");
            goto done;
        }
        fmt(names[k], 256, "%s", nm);
        int puse = 0, duse = 0;
        for (size_t n = 0; n < gp->n_node; n++) {
            const Onnx__NodeProto *np = gp->node[n];
            for (size_t j = 0; j < np->n_input; j++)
                if (np->input[j] && strcmp(np->input[j], nm) == 0) {
                    if (param_slot(np->op_type ? np->op_type : "", j)) puse++;
                    else duse++;
                }
        }
        frozen[k] = 0;
        char path[PATH_MAX];
        fmt(path, sizeof path, "%s/input_%d.pb", dset, k);
        if (puse > 0 && duse == 0 && is_file(path)) {
            size_t tl;
            void *tb = read_all(path, &tl);
            Onnx__TensorProto *tp = tb ? onnx__tensor_proto__unpack(NULL, tl, tb) : NULL;
            free(tb);
            if (tp == NULL) {
                fmt(msg, ml, "%s does not parse as a TensorProto", path);
                goto done;
            }
            free(tp->name);
            tp->name = strdup(nm);
            Onnx__TensorProto **ini = realloc(gp->initializer,
                                              sizeof *ini * (gp->n_initializer + 1));
            if (tp->name == NULL || ini == NULL) {
                onnx__tensor_proto__free_unpacked(tp, NULL);
                fmt(msg, ml, "out of memory");
                goto done;
            }
            gp->initializer = ini;
            ini[gp->n_initializer++] = tp;
            onnx__value_info_proto__free_unpacked(vi, NULL);
            memmove(&gp->input[i], &gp->input[i + 1], sizeof vi * (gp->n_input - i - 1));
            gp->n_input--;
            frozen[k++] = 1;
            continue;
        }
        k++;
        i++;
    }
    *n_files = k;
    *out_len = onnx__model_proto__get_packed_size(m);
    out = malloc(*out_len ? *out_len : 1);
    if (out == NULL) fmt(msg, ml, "out of memory");
    else onnx__model_proto__pack(m, out);
done:
    onnx__model_proto__free_unpacked(m, NULL);
    return out;
}

static double elem(const nnm_tensor *t, size_t i)
{
    switch (t->dtype) {
    case NNM_DT_F32: return ((const float *)t->data)[i];
    case NNM_DT_F64: return ((const double *)t->data)[i];
    case NNM_DT_F16: {
        uint16_t h = ((const uint16_t *)t->data)[i];
        int e = (h >> 10) & 31, mant = h & 1023;
        double mag = e == 0 ? ldexp(mant, -24) : e == 31 ? (mant ? NAN : INFINITY)
                                                         : ldexp(mant | 1024, e - 25);
        return (h & 0x8000) ? -mag : mag;
    }
    case NNM_DT_I8: return ((const int8_t *)t->data)[i];
    case NNM_DT_U8: case NNM_DT_BOOL: return ((const uint8_t *)t->data)[i];
    case NNM_DT_I32: return ((const int32_t *)t->data)[i];
    case NNM_DT_I64: return (double)((const int64_t *)t->data)[i];
    default: return 0;
    }
}

/* 0 if got matches want; else writes why. */
static int compare(const nnm_tensor *got, const nnm_tensor *want, char *why, size_t wl)
{
    char s1[128], s2[128];
    if (got->dtype != want->dtype) {
        fmt(why, wl, "dtype %s, expected %s", nnm_dtype_name(got->dtype),
                 nnm_dtype_name(want->dtype));
        return 1;
    }
    int same = got->ndim == want->ndim;
    for (int d = 0; same && d < got->ndim; d++) same = got->shape[d] == want->shape[d];
    if (!same) {
        fmt(why, wl, "shape %s, expected %s",
                 nnm_shape_format(s1, sizeof s1, got->shape, got->ndim),
                 nnm_shape_format(s2, sizeof s2, want->shape, want->ndim));
        return 1;
    }
    size_t es = nnm_dtype_size(want->dtype);
    size_t n = es ? want->nbytes / es : 0;
    if (want->dtype == NNM_DT_I64 || want->dtype == NNM_DT_I32 || want->dtype == NNM_DT_I8 ||
        want->dtype == NNM_DT_U8 || want->dtype == NNM_DT_BOOL) {
        for (size_t i = 0; i < n; i++)
            if (memcmp((const char *)got->data + i * es, (const char *)want->data + i * es, es)) {
                fmt(why, wl, "element %zu is %.17g, expected %.17g", i, elem(got, i),
                         elem(want, i));
                return 1;
            }
        return 0;
    }
    double mx = 0;
    for (size_t i = 0; i < n; i++) {
        double w = fabs(elem(want, i));
        if (isfinite(w) && w > mx) mx = w;
    }
    double tol = 1e-4 * mx + 1e-7;
    for (size_t i = 0; i < n; i++) {
        double a = elem(got, i), b = elem(want, i);
        if (isnan(a) && isnan(b)) continue;
        if (isinf(b) || isinf(a)) {
            if (a == b) continue;
        } else {
            double t = want->dtype == NNM_DT_F16 ? fmax(tol, 1e-3 * fabs(b)) : tol;
            if (fabs(a - b) <= t) continue;
        }
        fmt(why, wl, "element %zu is %.9g, expected %.9g (tolerance %.3g)", i, a, b, tol);
        return 1;
    }
    return 0;
}

static void record_skip(const char *name, const char *why)
{
    n_skip++;
    printf("SKIP %s: %s\n", name, why);
    skip_entry *s = realloc(skips, sizeof *s * (size_t)(n_skips + 1));
    if (s == NULL) return;
    skips = s;
    skips[n_skips].name = strdup(name);
    skips[n_skips].why = strdup(why);
    n_skips++;
}

/* Runs one data set with one backend. Returns 0 pass, 1 fail, 2 skip; msg says why. */
static int run_backend(const nnm_graph *g, int backend, nnm_tensor *in, int n_in,
                       nnm_tensor *want, int n_want, char *msg, size_t ml)
{
    nnm_exec_opts eo = { .backend = backend };
    nnm_exec *ex = NULL;
    nnm_diag d;
    nnm_diag_clear(&d);
    const char *bname = backend == NNM_BACKEND_REF ? "ref" : "auto";
    nnm_err rc = nnm_exec_new(&ex, g, &eo, &d);
    if (rc != NNM_OK) {
        fmt(msg, ml, "%s%s", rc == NNM_EUNSUPPORTED ? "" : "nnm_exec_new: ", d.msg);
        return rc == NNM_EUNSUPPORTED ? 2 : 1;
    }
    int n_out = nnm_graph_output_count(g);
    if (n_out != n_want || n_out > MAX_IO) {
        fmt(msg, ml, "graph has %d outputs, the data set %d", n_out, n_want);
        nnm_exec_free(ex);
        return 1;
    }
    nnm_tensor out[MAX_IO];
    memset(out, 0, sizeof out);
    rc = nnm_exec_run(ex, in, n_in, out, n_out, &d);
    nnm_exec_free(ex);
    if (rc != NNM_OK) {
        fmt(msg, ml, "%s%s", rc == NNM_EUNSUPPORTED ? "" : "nnm_exec_run: ", d.msg);
        return rc == NNM_EUNSUPPORTED ? 2 : 1;
    }
    int res = 0;
    for (int i = 0; i < n_out && res == 0; i++) {
        char why[400];
        if (compare(&out[i], &want[i], why, sizeof why)) {
            nnm_io_info io;
            nnm_graph_output_get(g, i, &io);
            fmt(msg, ml, "backend %s: output %d '%s': %s", bname, i, io.name, why);
            res = 1;
        }
    }
    for (int i = 0; i < n_out; i++) nnm_tensor_cleanup(&out[i]);
    return res;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted names of entries of dir starting with prefix (caller frees). */
static char **list_dir(const char *dir, const char *prefix, int *n)
{
    *n = 0;
    DIR *d = opendir(dir);
    if (d == NULL) return NULL;
    char **v = NULL;
    int cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, prefix, strlen(prefix)) != 0) continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 64;
            char **q = realloc(v, sizeof *v * (size_t)cap);
            if (q == NULL) break;
            v = q;
        }
        if ((v[*n] = strdup(e->d_name)) != NULL) (*n)++;
    }
    closedir(d);
    if (*n) qsort(v, (size_t)*n, sizeof *v, cmp_str);
    return v;
}

static void free_list(char **v, int n)
{
    for (int i = 0; i < n; i++) free(v[i]);
    free(v);
}

/* Runs one data set; 0 pass, 1 fail, 2 skip. */
static int run_dataset(const char *cdir, const void *model, size_t mlen, const char *dset,
                       char *msg, size_t ml)
{
    static char names[MAX_IO][256];
    int frozen[MAX_IO], n_files = 0, res = 1;
    size_t plen = 0;
    nnm_graph *g = NULL;
    nnm_tensor in[MAX_IO], want[MAX_IO];
    int n_in = 0, n_want = 0;
    memset(in, 0, sizeof in);
    memset(want, 0, sizeof want);
    uint8_t *packed = bind_params(model, mlen, dset, &plen, names, frozen, &n_files, msg, ml);
    if (packed == NULL) return 1;
    char mname[PATH_MAX];
    fmt(mname, sizeof mname, "%s/model.onnx", cdir);
    nnm_diag d;
    nnm_diag_clear(&d);
    int n_frozen = 0;
    for (int k = 0; k < n_files; k++) n_frozen += frozen[k];
    /* Nothing bound: load the file itself, through the path users take. */
    nnm_err rc = n_frozen ? nnm_graph_decode_onnx(&g, packed, plen, mname, NULL, &d)
                          : nnm_graph_load_onnx(&g, mname, NULL, &d);
    free(packed);
    if (rc != NNM_OK) {
        fmt(msg, ml, "%s", d.msg);
        return rc == NNM_EUNSUPPORTED ? 2 : 1;
    }
    n_in = nnm_graph_input_count(g);
    if (n_in > MAX_IO) goto out;
    for (int i = 0; i < n_in; i++) {
        nnm_io_info io;
        nnm_graph_input_get(g, i, &io);
        int k = 0;
        while (k < n_files && (frozen[k] || strcmp(names[k], io.name) != 0)) k++;
        char path[PATH_MAX];
        fmt(path, sizeof path, "%s/input_%d.pb", dset, k);
        size_t len;
        void *buf = k < n_files ? read_all(path, &len) : NULL;
        if (buf == NULL) {
            fmt(msg, ml, "no data for graph input '%s'", io.name);
            goto out;
        }
        rc = ir__tensor_decode_onnx(&in[i], buf, len, path, &d);
        free(buf);
        if (rc != NNM_OK) {
            fmt(msg, ml, "%s", d.msg);
            res = rc == NNM_EUNSUPPORTED ? 2 : 1;
            goto out;
        }
    }
    for (n_want = 0; n_want < MAX_IO; n_want++) {
        char path[PATH_MAX];
        fmt(path, sizeof path, "%s/output_%d.pb", dset, n_want);
        size_t len;
        void *buf = read_all(path, &len);
        if (buf == NULL) break;
        rc = ir__tensor_decode_onnx(&want[n_want], buf, len, path, &d);
        free(buf);
        if (rc != NNM_OK) {
            fmt(msg, ml, "%s", d.msg);
            res = rc == NNM_EUNSUPPORTED ? 2 : 1;
            goto out;
        }
    }
    res = run_backend(g, NNM_BACKEND_REF, in, n_in, want, n_want, msg, ml);
    if (res == 0) res = run_backend(g, NNM_BACKEND_AUTO, in, n_in, want, n_want, msg, ml);
out:
    for (int i = 0; i < MAX_IO; i++) {
        nnm_tensor_cleanup(&in[i]);
        nnm_tensor_cleanup(&want[i]);
    }
    nnm_graph_free(g);
    return res;
}

static void run_case(const char *cdir)
{
    const char *name = strrchr(cdir, '/') ? strrchr(cdir, '/') + 1 : cdir;
    char mpath[PATH_MAX], msg[1024], ops[512];
    fmt(mpath, sizeof mpath, "%s/model.onnx", cdir);
    nnm_diag d;
    nnm_diag_clear(&d);
    int nu = nnm_onnx_unsupported_ops(mpath, ops, sizeof ops, &d);
    if (nu < 0) {
        n_fail++;
        printf("FAIL %s: %s\n", name, d.msg);
        return;
    }
    if (nu > 0) {
        n_na++;
        if (verbose) printf("NA   %s: uses %s\n", name, ops);
        return;
    }
    size_t mlen;
    void *model = read_all(mpath, &mlen);
    int nd = 0;
    char **dsets = list_dir(cdir, "test_data_set_", &nd);
    int res = 1;
    msg[0] = '\0';
    if (model == NULL) fmt(msg, sizeof msg, "cannot read %s", mpath);
    else if (nd == 0) fmt(msg, sizeof msg, "no test_data_set_* directory");
    for (int i = 0; model && i < nd; i++) {
        char dset[PATH_MAX];
        fmt(dset, sizeof dset, "%s/%s", cdir, dsets[i]);
        res = run_dataset(cdir, model, mlen, dset, msg, sizeof msg);
        if (res != 0) break;
    }
    free_list(dsets, nd);
    free(model);
    if (res == 0) {
        n_pass++;
        printf("PASS %s\n", name);
    } else if (res == 2) {
        record_skip(name, msg);
    } else {
        n_fail++;
        printf("FAIL %s: %s\n", name, msg);
    }
    fflush(stdout);
}

int main(int argc, char **argv)
{
    const char *filter = NULL;
    int opt;
    while ((opt = getopt(argc, argv, "vk:")) != -1) {
        if (opt == 'v') verbose = 1;
        else if (opt == 'k') filter = optarg;
        else {
            fprintf(stderr, "usage: %s [-v] [-k SUBSTRING] DIR...\n", argv[0]);
            return 2;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "usage: %s [-v] [-k SUBSTRING] DIR...\n", argv[0]);
        return 2;
    }
    for (int a = optind; a < argc; a++) {
        char mp[PATH_MAX];
        fmt(mp, sizeof mp, "%s/model.onnx", argv[a]);
        if (is_file(mp)) {
            run_case(argv[a]);
            continue;
        }
        if (!is_dir(argv[a])) {
            fprintf(stderr, "%s: not a case directory or a directory of cases\n", argv[a]);
            return 2;
        }
        int n = 0;
        char **v = list_dir(argv[a], "", &n);
        for (int i = 0; i < n; i++) {
            if (v[i][0] == '.' || (filter && strstr(v[i], filter) == NULL)) continue;
            char cdir[PATH_MAX];
            fmt(cdir, sizeof cdir, "%s/%s", argv[a], v[i]);
            fmt(mp, sizeof mp, "%s/model.onnx", cdir);
            if (is_file(mp)) run_case(cdir);
        }
        free_list(v, n);
    }
    printf("\n%d passed, %d failed, %d skipped; %d cases not run (they use operators nnmesh "
           "does not support; -v lists them)\n", n_pass, n_fail, n_skip, n_na);
    if (n_skips) {
        printf("Skipped cases:\n");
        for (int i = 0; i < n_skips; i++) printf("  %s: %s\n", skips[i].name, skips[i].why);
    }
    for (int i = 0; i < n_skips; i++) {
        free(skips[i].name);
        free(skips[i].why);
    }
    free(skips);
    return n_fail ? 1 : 0;
}
