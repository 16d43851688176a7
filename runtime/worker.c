/* runtime/worker.c — models by content hash and a cache of prepared slice executors (see
 * nnmesh/worker.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <sodium.h>

#include "nnmesh/worker.h"

typedef struct model {
    uint8_t hash[NNM_WIRE_HASH_BYTES];
    nnm_graph *g;
} model;

typedef struct task {
    int used;
    uint8_t hash[NNM_WIRE_HASH_BYTES];
    uint32_t begin, end;
    uint8_t kind;
    uint32_t pbegin, pend;
    nnm_graph *slice;        /* borrows the model's weights: freed before the model */
    nnm_exec *ex;
    uint64_t last_use;
} task;

struct nnm_worker {
    nnm_worker_opts o;
    char *cache_dir;
    model *models;
    size_t n_models, cap_models;
    task *tasks;
    uint64_t tick;
};

void nnm_model_hash(uint8_t out[NNM_WIRE_HASH_BYTES], const void *buf, size_t len)
{
    crypto_generichash(out, NNM_WIRE_HASH_BYTES, buf, len, NULL, 0);
}

nnm_err nnm_model_hash_file(uint8_t out[NNM_WIRE_HASH_BYTES], const char *path, nnm_diag *diag)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) return nnm_diag_set(diag, NNM_EIO, "%s: cannot read: %s", path, strerror(errno));
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, NNM_WIRE_HASH_BYTES);
    unsigned char buf[65536];
    size_t r;
    while ((r = fread(buf, 1, sizeof buf, f)) > 0) crypto_generichash_update(&st, buf, r);
    int err = ferror(f) ? errno : 0;
    fclose(f);
    if (err) return nnm_diag_set(diag, NNM_EIO, "%s: cannot read: %s", path, strerror(err));
    crypto_generichash_final(&st, out, NNM_WIRE_HASH_BYTES);
    return NNM_OK;
}

static void hex(char *out, const uint8_t *h)
{
    sodium_bin2hex(out, 2 * NNM_WIRE_HASH_BYTES + 1, h, NNM_WIRE_HASH_BYTES);
}

nnm_err nnm_worker_new(nnm_worker **out, const nnm_worker_opts *opts, nnm_diag *diag)
{
    nnm_worker *w = calloc(1, sizeof *w);
    if (w == NULL) return nnm_diag_set(diag, NNM_ENOMEM, "out of memory");
    if (opts) w->o = *opts;
    if (w->o.max_tasks == 0) w->o.max_tasks = 16;
    w->o.cache_dir = NULL;
    w->tasks = calloc(w->o.max_tasks, sizeof(task));
    if (w->tasks == NULL) {
        nnm_worker_free(w);
        return nnm_diag_set(diag, NNM_ENOMEM, "out of memory");
    }
    if (opts && opts->cache_dir) {
        if (mkdir(opts->cache_dir, 0700) != 0 && errno != EEXIST) {
            nnm_err rc = nnm_diag_set(diag, NNM_EIO, "%s: cannot create the model cache: %s",
                                      opts->cache_dir, strerror(errno));
            nnm_worker_free(w);
            return rc;
        }
        if (!(w->cache_dir = strdup(opts->cache_dir))) {
            nnm_worker_free(w);
            return nnm_diag_set(diag, NNM_ENOMEM, "out of memory");
        }
    }
    *out = w;
    return NNM_OK;
}

static void task_clear(task *t)
{
    nnm_exec_free(t->ex);
    nnm_graph_free(t->slice);
    memset(t, 0, sizeof *t);
}

void nnm_worker_free(nnm_worker *w)
{
    if (w == NULL) return;
    for (size_t i = 0; w->tasks && i < w->o.max_tasks; i++) task_clear(&w->tasks[i]);
    for (size_t i = 0; i < w->n_models; i++) nnm_graph_free(w->models[i].g);
    free(w->tasks);
    free(w->models);
    free(w->cache_dir);
    free(w);
}

static model *find(nnm_worker *w, const uint8_t *hash)
{
    for (size_t i = 0; i < w->n_models; i++)
        if (memcmp(w->models[i].hash, hash, NNM_WIRE_HASH_BYTES) == 0) return &w->models[i];
    return NULL;
}

nnm_err nnm_worker_add_model(nnm_worker *w, const uint8_t hash[NNM_WIRE_HASH_BYTES],
                             nnm_graph *g, nnm_diag *diag)
{
    model *m = find(w, hash);
    if (m) {
        /* Tasks borrow the old graph's weights: drop them first. */
        for (size_t i = 0; i < w->o.max_tasks; i++)
            if (w->tasks[i].used && !memcmp(w->tasks[i].hash, hash, NNM_WIRE_HASH_BYTES))
                task_clear(&w->tasks[i]);
        nnm_graph_free(m->g);
        m->g = g;
        return NNM_OK;
    }
    if (w->n_models == w->cap_models) {
        size_t nc = w->cap_models ? 2 * w->cap_models : 8;
        model *q = realloc(w->models, nc * sizeof *q);
        if (q == NULL) {
            nnm_graph_free(g);
            return nnm_diag_set(diag, NNM_ENOMEM, "out of memory");
        }
        w->models = q;
        w->cap_models = nc;
    }
    memcpy(w->models[w->n_models].hash, hash, NNM_WIRE_HASH_BYTES);
    w->models[w->n_models].g = g;
    w->n_models++;
    return NNM_OK;
}

nnm_err nnm_worker_put_model(nnm_worker *w, const uint8_t hash[NNM_WIRE_HASH_BYTES],
                             const void *onnx, size_t len, nnm_diag *diag)
{
    uint8_t h[NNM_WIRE_HASH_BYTES];
    char hx[2 * NNM_WIRE_HASH_BYTES + 1];
    nnm_model_hash(h, onnx, len);
    hex(hx, hash);
    if (sodium_memcmp(h, hash, NNM_WIRE_HASH_BYTES) != 0)
        return nnm_diag_set(diag, NNM_ECRYPTO, "model %.16s...: the bytes received do not match the hash",
                            hx);
    nnm_graph *g = NULL;
    char name[128];
    snprintf(name, sizeof name, "model %.16s", hx);
    nnm_err rc = nnm_graph_decode_onnx(&g, onnx, len, name, NULL, diag);
    if (rc != NNM_OK) return rc;
    if (w->cache_dir) {
        char path[4096], tmp[4200];
        snprintf(path, sizeof path, "%s/%s.onnx", w->cache_dir, hx);
        snprintf(tmp, sizeof tmp, "%s.tmp", path);
        FILE *f = fopen(tmp, "wb");
        int ok = f != NULL && fwrite(onnx, 1, len, f) == len;
        if (f && fclose(f) != 0) ok = 0;
        if (!ok || rename(tmp, path) != 0) {
            remove(tmp);
            nnm_graph_free(g);
            return nnm_diag_set(diag, NNM_EIO, "%s: cannot write the model cache", path);
        }
    }
    return nnm_worker_add_model(w, hash, g, diag);
}

int nnm_worker_has_model(nnm_worker *w, const uint8_t hash[NNM_WIRE_HASH_BYTES])
{
    if (find(w, hash)) return 1;
    if (w->cache_dir == NULL) return 0;
    char hx[2 * NNM_WIRE_HASH_BYTES + 1], path[4096];
    hex(hx, hash);
    snprintf(path, sizeof path, "%s/%s.onnx", w->cache_dir, hx);
    FILE *f = fopen(path, "rb");
    if (f == NULL) return 0;
    void *buf = NULL;
    long len = -1;
    if (fseek(f, 0, SEEK_END) == 0) len = ftell(f);
    if (len > 0 && fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)len)) != NULL &&
        fread(buf, 1, (size_t)len, f) != (size_t)len) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf == NULL) return 0;
    /* The cache is re-verified: a corrupted file is removed, not trusted. */
    char *dir = w->cache_dir;
    w->cache_dir = NULL;               /* do not rewrite the file we just read */
    nnm_err rc = nnm_worker_put_model(w, hash, buf, (size_t)len, NULL);
    w->cache_dir = dir;
    free(buf);
    if (rc != NNM_OK) {
        remove(path);
        return 0;
    }
    return 1;
}

const nnm_graph *nnm_worker_get_model(nnm_worker *w, const uint8_t hash[NNM_WIRE_HASH_BYTES])
{
    model *m = find(w, hash);
    return m ? m->g : NULL;
}

static task *task_get(nnm_worker *w, const nnm_slice_spec *s, nnm_diag *diag, nnm_err *rc)
{
    task *free_slot = NULL, *lru = NULL;
    for (size_t i = 0; i < w->o.max_tasks; i++) {
        task *t = &w->tasks[i];
        if (!t->used) {
            if (!free_slot) free_slot = t;
            continue;
        }
        if (!memcmp(t->hash, s->model_hash, NNM_WIRE_HASH_BYTES) && t->begin == s->node_begin &&
            t->end == s->node_end && t->kind == s->part_kind && t->pbegin == s->part_begin &&
            t->pend == s->part_end) {
            t->last_use = ++w->tick;
            return t;
        }
        if (!lru || t->last_use < lru->last_use) lru = t;
    }
    model *m = find(w, s->model_hash);
    if (m == NULL && nnm_worker_has_model(w, s->model_hash)) m = find(w, s->model_hash);
    if (m == NULL) {
        char hx[2 * NNM_WIRE_HASH_BYTES + 1];
        hex(hx, s->model_hash);
        *rc = nnm_diag_set(diag, NNM_ENOTFOUND, "model %s is not held here", hx);
        return NULL;
    }
    task *t = free_slot ? free_slot : lru;
    task_clear(t);
    nnm_part part = { s->part_kind, s->part_begin, s->part_end };
    if ((*rc = nnm_graph_slice(&t->slice, m->g, (int)s->node_begin, (int)s->node_end,
                               s->part_kind == NNM_PART_WHOLE ? NULL : &part, diag)) != NNM_OK)
        return NULL;
    nnm_exec_opts eo = { .threads = w->o.threads, .backend = w->o.backend };
    if ((*rc = nnm_exec_new(&t->ex, t->slice, &eo, diag)) != NNM_OK) {
        task_clear(t);
        return NULL;
    }
    t->used = 1;
    memcpy(t->hash, s->model_hash, NNM_WIRE_HASH_BYTES);
    t->begin = s->node_begin;
    t->end = s->node_end;
    t->kind = s->part_kind;
    t->pbegin = s->part_begin;
    t->pend = s->part_end;
    t->last_use = ++w->tick;
    return t;
}

void nnm_task_outputs_free(nnm_task_output *outs, size_t n)
{
    if (outs == NULL) return;
    for (size_t i = 0; i < n; i++) {
        free(outs[i].name);
        nnm_tensor_cleanup(&outs[i].t);
    }
    free(outs);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

nnm_err nnm_worker_run(nnm_worker *w, const nnm_slice_spec *spec, const char *const *in_names,
                       const nnm_tensor *in, size_t n_in, nnm_task_output **outs,
                       size_t *n_out, double *compute_ms, nnm_diag *diag)
{
    *outs = NULL;
    *n_out = 0;
    nnm_err rc = NNM_OK;
    task *t = task_get(w, spec, diag, &rc);
    if (t == NULL) return rc;
    int ni = nnm_graph_input_count(t->slice), no = nnm_graph_output_count(t->slice);
    nnm_tensor *args = calloc((size_t)ni + 1, sizeof *args);
    nnm_tensor *res = calloc((size_t)no + 1, sizeof *res);
    nnm_task_output *o = calloc((size_t)no + 1, sizeof *o);
    if (!args || !res || !o) {
        rc = nnm_diag_set(diag, NNM_ENOMEM, "out of memory");
        goto out;
    }
    for (int i = 0; i < ni; i++) {
        nnm_io_info io;
        nnm_graph_input_get(t->slice, i, &io);
        size_t k = 0;
        while (k < n_in && strcmp(in_names[k], io.name) != 0) k++;
        if (k == n_in) {
            rc = nnm_diag_set(diag, NNM_EINVAL, "task input '%s' is missing", io.name);
            goto out;
        }
        args[i] = in[k];     /* borrowed view; the executor checks dtype and shape */
        args[i].owned = 0;
    }
    double t0 = now_ms();
    if ((rc = nnm_exec_run(t->ex, args, ni, res, no, diag)) != NNM_OK) goto out;
    if (compute_ms) *compute_ms = now_ms() - t0;
    for (int i = 0; i < no; i++) {
        nnm_io_info io;
        nnm_graph_output_get(t->slice, i, &io);
        nnm_graph_output_region(t->slice, i, &o[i].region);
        o[i].t = res[i];
        memset(&res[i], 0, sizeof res[i]);
        if (!(o[i].name = strdup(io.name))) {
            rc = nnm_diag_set(diag, NNM_ENOMEM, "out of memory");
            nnm_task_outputs_free(o, (size_t)no);
            o = NULL;
            goto out;
        }
    }
    *outs = o;
    *n_out = (size_t)no;
    o = NULL;
out:
    if (o) nnm_task_outputs_free(o, (size_t)no);
    if (res)
        for (int i = 0; i < no; i++) nnm_tensor_cleanup(&res[i]);
    free(res);
    free(args);
    return rc;
}
