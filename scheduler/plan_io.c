/* scheduler/plan_io.c — plans as values: copy, free, the slice specs the wire sends, the
 * human-readable form (`nnmesh infer --explain`), and a local runner that executes every part
 * of a plan in this process and joins the parts: the reference the distributed executor must
 * match, and the proof that a plan is executable. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sched_int.h"

static void inputs_free(nnm_plan_input *in, int n)
{
    for (int i = 0; i < n && in; i++) free(in[i].value);
    free(in);
}

void nnm_plan_free(nnm_plan *p)
{
    if (p == NULL) return;
    for (int i = 0; i < p->n_stages && p->stages; i++) {
        nnm_plan_stage *st = &p->stages[i];
        for (int q = 0; q < st->n_parts; q++) {
            nnm_plan_part *pp = &st->parts[q];
            inputs_free(pp->in, pp->n_in);
            for (int k = 0; k < pp->n_out && pp->out; k++) free(pp->out[k].value);
            free(pp->out);
        }
        free(st->parts);
    }
    free(p->stages);
    inputs_free(p->outputs, p->n_out);
    free(p);
}

static nnm_err inputs_copy(nnm_plan_input **dst, const nnm_plan_input *src, int n)
{
    *dst = calloc((size_t)n + 1, sizeof **dst);
    if (*dst == NULL) return NNM_ENOMEM;
    for (int i = 0; i < n; i++) {
        (*dst)[i] = src[i];
        (*dst)[i].value = NULL;
    }
    for (int i = 0; i < n; i++)
        if (!((*dst)[i].value = strdup(src[i].value))) return NNM_ENOMEM;
    return NNM_OK;
}

nnm_err nnm_plan_copy(nnm_plan **out, const nnm_plan *src, nnm_diag *diag)
{
    *out = NULL;
    nnm_plan *p = calloc(1, sizeof *p);
    if (p == NULL) goto oom;
    *p = *src;
    p->stages = NULL;
    p->outputs = NULL;
    p->n_stages = 0;
    p->n_out = 0;
    p->stages = calloc((size_t)src->n_stages + 1, sizeof *p->stages);
    if (p->stages == NULL) goto oom;
    for (int i = 0; i < src->n_stages; i++) {
        const nnm_plan_stage *ss = &src->stages[i];
        nnm_plan_stage *st = &p->stages[i];
        *st = *ss;
        st->n_parts = 0;
        st->parts = calloc((size_t)ss->n_parts + 1, sizeof *st->parts);
        p->n_stages++;
        if (st->parts == NULL) goto oom;
        for (int q = 0; q < ss->n_parts; q++) {
            nnm_plan_part *pp = &st->parts[q];
            *pp = ss->parts[q];
            pp->in = NULL;
            pp->out = NULL;
            pp->n_in = pp->n_out = 0;
            st->n_parts++;
            if (inputs_copy(&pp->in, ss->parts[q].in, ss->parts[q].n_in) != NNM_OK) {
                pp->n_in = ss->parts[q].n_in;
                goto oom;
            }
            pp->n_in = ss->parts[q].n_in;
            pp->out = calloc((size_t)ss->parts[q].n_out + 1, sizeof *pp->out);
            if (pp->out == NULL) goto oom;
            for (int k = 0; k < ss->parts[q].n_out; k++) {
                pp->out[k] = ss->parts[q].out[k];
                pp->n_out++;
                if (!(pp->out[k].value = strdup(ss->parts[q].out[k].value))) goto oom;
            }
        }
    }
    p->n_out = src->n_out;
    if (inputs_copy(&p->outputs, src->outputs, src->n_out) != NNM_OK) goto oom;
    *out = p;
    return NNM_OK;
oom:
    nnm_plan_free(p);
    return nnm_diag_set(diag, NNM_ENOMEM, "scheduler: out of memory copying a plan");
}

double nnm_plan_node_share(const nnm_plan *p, const char *node)
{
    double tot = 0, mine = 0;
    for (int i = 0; i < p->n_stages; i++)
        for (int q = 0; q < p->stages[i].n_parts; q++) {
            const nnm_plan_part *pp = &p->stages[i].parts[q];
            double w = 0;
            for (int c = 0; c < NNM_OPC_OTHER; c++) w += pp->work[c];
            tot += w;
            if (!strcmp(pp->node, node)) mine += w;
        }
    return tot > 0 ? mine / tot : 0;
}

nnm_codec nnm_plan_part_result_codec(const nnm_plan_part *part)
{
    if (part->n_out == 0) return NNM_CODEC_AUTO;
    for (int k = 1; k < part->n_out; k++)
        if (part->out[k].codec != part->out[0].codec) return NNM_CODEC_AUTO;
    return part->out[0].codec;
}

nnm_err nnm_plan_to_specs(nnm_slice_spec **out, size_t *n, const nnm_plan *p, nnm_diag *diag)
{
    *out = NULL;
    *n = 0;
    size_t cnt = 0;
    for (int i = 0; i < p->n_stages; i++) cnt += (size_t)p->stages[i].n_parts;
    nnm_slice_spec *sp = calloc(cnt + 1, sizeof *sp);
    if (sp == NULL) return nnm_diag_set(diag, NNM_ENOMEM, "scheduler: out of memory");
    size_t k = 0;
    for (int i = 0; i < p->n_stages; i++)
        for (int q = 0; q < p->stages[i].n_parts; q++) {
            const nnm_plan_part *pp = &p->stages[i].parts[q];
            if (pp->node_begin < 0 || pp->node_end <= pp->node_begin || pp->part.begin < 0 ||
                pp->part.end > UINT32_MAX || pp->part.end < pp->part.begin) {
                free(sp);
                return nnm_diag_set(diag, NNM_ERANGE, "scheduler: part %d of stage %d does not fit a slice spec",
                                    q, i);
            }
            nnm_slice_spec *s = &sp[k++];
            memcpy(s->model_hash, p->model_hash, NNM_WIRE_HASH_BYTES);
            s->node_begin = (uint32_t)pp->node_begin;
            s->node_end = (uint32_t)pp->node_end;
            s->part_kind = (uint8_t)pp->part.kind;
            s->part_begin = (uint32_t)pp->part.begin;
            s->part_end = (uint32_t)pp->part.end;
            s->result_codec = (uint8_t)nnm_plan_part_result_codec(pp);
        }
    *out = sp;
    *n = cnt;
    return NNM_OK;
}

/* --- formatting ------------------------------------------------------------------------- */

typedef struct sbuf {
    char *p;
    size_t len, cap;
    int oom;
} sbuf;

static void put(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(sbuf *b, const char *fmt, ...)
{
    if (b->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) { b->oom = 1; return; }
        if (b->p && b->len + (size_t)n < b->cap) { b->len += (size_t)n; return; }
        size_t nc = (b->cap ? b->cap * 2 : 1024) + (size_t)n;
        char *q = realloc(b->p, nc);
        if (q == NULL) { b->oom = 1; return; }
        b->p = q;
        b->cap = nc;
    }
}

static const char *const policy_names[] = { "local", "equal", "memory", "capacity", "adaptive" };

static void region_put(sbuf *b, const nnm_region *r)
{
    if (r->axis < 0) put(b, "whole");
    else put(b, "%s [%lld, %lld)", r->axis == 1 ? "channels" : r->axis == 2 ? "rows" : "axis",
             (long long)r->begin, (long long)r->end);
}

nnm_err nnm_plan_format(char **out, const nnm_plan *p, const nnm_graph *g, nnm_diag *diag)
{
    sbuf b = { 0 };
    *out = NULL;
    put(&b, "plan: policy %s, objective %s, mesh version %llu, coordinator %s, source %s\n",
        (unsigned)p->policy < NNM_POLICY__COUNT ? policy_names[p->policy] : "?",
        p->objective == NNM_OBJ_THROUGHPUT ? "throughput" : "latency",
        (unsigned long long)p->mesh_version, p->coordinator, p->source);
    put(&b, "predicted: latency %.3f ms, period %.3f ms (%.1f results/s)", p->pred_latency_ms,
        p->pred_period_ms, p->pred_period_ms > 0 ? 1000.0 / p->pred_period_ms : 0.0);
    if (p->arm >= 0) put(&b, ", candidate %d", p->arm);
    put(&b, "\n");
    for (int i = 0; i < p->n_stages; i++) {
        const nnm_plan_stage *st = &p->stages[i];
        static const char *const kinds[] = { "single", "split", "branches" };
        put(&b, "stage %d: nodes [%d, %d)", i, st->node_begin, st->node_end);
        if (g != NULL) {
            nnm_node_info a, z;
            if (nnm_graph_node_get(g, st->node_begin, &a) == NNM_OK &&
                nnm_graph_node_get(g, st->node_end - 1, &z) == NNM_OK)
                put(&b, " %s..%s", a.name, z.name);
        }
        put(&b, ", %s, %d part%s, ends at %.3f ms\n",
            (unsigned)st->kind < NNM_STAGE__COUNT ? kinds[st->kind] : "?", st->n_parts,
            st->n_parts == 1 ? "" : "s", st->pred_end_ms);
        for (int q = 0; q < st->n_parts; q++) {
            const nnm_plan_part *pp = &st->parts[q];
            put(&b, "  part %d on %s: nodes [%d, %d)", q, pp->node, pp->node_begin, pp->node_end);
            if (pp->part.kind == NNM_PART_ROWS || pp->part.kind == NNM_PART_CHANNELS)
                put(&b, " %s [%lld, %lld)", pp->part.kind == NNM_PART_ROWS ? "rows" : "channels",
                    (long long)pp->part.begin, (long long)pp->part.end);
            put(&b, ", %.2f MFLOP, compute %.3f ms\n",
                (pp->work[0] + pp->work[1] + pp->work[2] + pp->work[3]) / 1e6, pp->pred_ms);
            for (int k = 0; k < pp->n_in; k++) {
                const nnm_plan_input *in = &pp->in[k];
                put(&b, "    in  '%s' ", in->value);
                region_put(&b, &in->region);
                if (in->src_stage < 0) put(&b, " from the request");
                else put(&b, " from stage %d", in->src_stage);
                put(&b, ", %zu bytes, codec %s\n", in->bytes, nnm_codec_name(in->codec));
            }
            for (int k = 0; k < pp->n_out; k++) {
                put(&b, "    out '%s' ", pp->out[k].value);
                region_put(&b, &pp->out[k].region);
                put(&b, ", %zu bytes, codec %s\n", pp->out[k].bytes,
                    nnm_codec_name(pp->out[k].codec));
            }
        }
    }
    for (int k = 0; k < p->n_out; k++)
        put(&b, "output '%s' from stage %d to %s, %zu bytes, codec %s\n", p->outputs[k].value,
            p->outputs[k].src_stage, p->coordinator, p->outputs[k].bytes,
            nnm_codec_name(p->outputs[k].codec));
    if (b.oom) {
        free(b.p);
        return nnm_diag_set(diag, NNM_ENOMEM, "scheduler: out of memory formatting a plan");
    }
    *out = b.p;
    return NNM_OK;
}

/* --- local execution ----------------------------------------------------------------------- */

typedef struct dict {
    int n, cap;
    char **name;
    nnm_tensor *t;
} dict;

static nnm_tensor *dict_get(dict *d, const char *name)
{
    for (int i = 0; i < d->n; i++)
        if (!strcmp(d->name[i], name)) return &d->t[i];
    return NULL;
}

/* Adds name with a zeroed tensor of value v's whole shape (or returns the existing one). */
static nnm_tensor *dict_whole(dict *d, const nnm_graph *g, const char *name)
{
    nnm_tensor *t = dict_get(d, name);
    if (t) return t;
    int v = ir__value_find(g, name);
    if (v < 0) return NULL;
    if (d->n == d->cap) {
        int nc = d->cap ? d->cap * 2 : 16;
        char **nn = realloc(d->name, (size_t)nc * sizeof *nn);
        if (!nn) return NULL;
        d->name = nn;
        nnm_tensor *nt = realloc(d->t, (size_t)nc * sizeof *nt);
        if (!nt) return NULL;
        d->t = nt;
        d->cap = nc;
    }
    if (!(d->name[d->n] = strdup(name))) return NULL;
    const nnm_value *val = &g->values[v];
    if (nnm_tensor_init(&d->t[d->n], val->dtype, val->ndim, val->shape) != NNM_OK) {
        free(d->name[d->n]);
        return NULL;
    }
    return &d->t[d->n++];
}

static void dict_free(dict *d)
{
    for (int i = 0; i < d->n; i++) {
        free(d->name[i]);
        nnm_tensor_cleanup(&d->t[i]);
    }
    free(d->name);
    free(d->t);
}

nnm_err nnm_plan_run_local(const nnm_plan *p, const nnm_graph *g, int backend,
                           const nnm_tensor *inputs, int n_in, nnm_tensor *outputs, int n_out,
                           nnm_diag *diag)
{
    if (n_in != g->n_inputs || n_out != g->n_outputs)
        return nnm_diag_set(diag, NNM_EINVAL, "plan run: %d inputs and %d outputs given, the model has %d and %d",
                            n_in, n_out, g->n_inputs, g->n_outputs);
    memset(outputs, 0, (size_t)n_out * sizeof *outputs);
    dict d = { 0 };
    nnm_err rc = NNM_ENOMEM;
    nnm_graph *sg = NULL;
    nnm_exec *ex = NULL;
    nnm_tensor *pin = NULL, *pout = NULL;
    for (int i = 0; i < n_in; i++) {
        const char *name = g->values[g->inputs[i]].name;
        nnm_tensor *t = dict_whole(&d, g, name);
        if (t == NULL) goto fail;
        if (t->nbytes != inputs[i].nbytes) {
            rc = nnm_diag_set(diag, NNM_ESHAPE, "plan run: input '%s' has %zu bytes, expected %zu",
                              name, inputs[i].nbytes, t->nbytes);
            goto fail;
        }
        memcpy(t->data, inputs[i].data, t->nbytes);
    }
    nnm_exec_opts eo;
    memset(&eo, 0, sizeof eo);
    eo.backend = backend;
    for (int i = 0; i < p->n_stages; i++)
        for (int q = 0; q < p->stages[i].n_parts; q++) {
            const nnm_plan_part *pp = &p->stages[i].parts[q];
            if ((rc = nnm_graph_slice(&sg, g, pp->node_begin, pp->node_end, &pp->part, diag)) != NNM_OK)
                goto fail;
            rc = NNM_ENOMEM;
            int ni = nnm_graph_input_count(sg), no = nnm_graph_output_count(sg);
            pin = calloc((size_t)ni + 1, sizeof *pin);
            pout = calloc((size_t)no + 1, sizeof *pout);
            if (!pin || !pout) goto fail;
            for (int k = 0; k < ni; k++) {
                nnm_io_info info;
                nnm_region r;
                nnm_graph_input_get(sg, k, &info);
                nnm_graph_input_region(sg, k, &r);
                nnm_tensor *w = dict_get(&d, info.name);
                if (w == NULL) {
                    rc = nnm_diag_set(diag, NNM_ESTATE, "plan run: stage %d part %d needs '%s' before it is computed",
                                      i, q, info.name);
                    goto fail;
                }
                if ((rc = nnm_tensor_crop(&pin[k], w, &r)) != NNM_OK) {
                    nnm_diag_set(diag, rc, "plan run: cannot crop '%s' for stage %d part %d", info.name, i, q);
                    goto fail;
                }
            }
            if ((rc = nnm_exec_new(&ex, sg, &eo, diag)) != NNM_OK) goto fail;
            if ((rc = nnm_exec_run(ex, pin, ni, pout, no, diag)) != NNM_OK) goto fail;
            rc = NNM_ENOMEM;
            for (int k = 0; k < no; k++) {
                nnm_io_info info;
                nnm_region r;
                nnm_graph_output_get(sg, k, &info);
                nnm_graph_output_region(sg, k, &r);
                nnm_tensor *w = dict_whole(&d, g, info.name);
                if (w == NULL) goto fail;
                if ((rc = nnm_tensor_place(w, &pout[k], &r)) != NNM_OK) {
                    nnm_diag_set(diag, rc, "plan run: output '%s' of stage %d part %d does not fit its region",
                                 info.name, i, q);
                    goto fail;
                }
            }
            for (int k = 0; k < ni; k++) nnm_tensor_cleanup(&pin[k]);
            for (int k = 0; k < no; k++) nnm_tensor_cleanup(&pout[k]);
            free(pin);
            free(pout);
            pin = pout = NULL;
            nnm_exec_free(ex);
            ex = NULL;
            nnm_graph_free(sg);
            sg = NULL;
        }
    rc = NNM_ENOMEM;
    for (int i = 0; i < n_out; i++) {
        const char *name = g->values[g->outputs[i]].name;
        nnm_tensor *w = dict_get(&d, name);
        if (w == NULL) {
            rc = nnm_diag_set(diag, NNM_ESTATE, "plan run: output '%s' was never computed", name);
            goto fail_out;
        }
        if (nnm_tensor_init(&outputs[i], w->dtype, w->ndim, w->shape) != NNM_OK) goto fail_out;
        memcpy(outputs[i].data, w->data, w->nbytes);
    }
    dict_free(&d);
    return NNM_OK;
fail_out:
    for (int i = 0; i < n_out; i++) nnm_tensor_cleanup(&outputs[i]);
fail:
    if (rc == NNM_ENOMEM) nnm_diag_set(diag, rc, "plan run: out of memory");
    if (pin || pout) {
        int ni = sg ? nnm_graph_input_count(sg) : 0, no = sg ? nnm_graph_output_count(sg) : 0;
        for (int k = 0; pin && k < ni; k++) nnm_tensor_cleanup(&pin[k]);
        for (int k = 0; pout && k < no; k++) nnm_tensor_cleanup(&pout[k]);
    }
    free(pin);
    free(pout);
    nnm_exec_free(ex);
    nnm_graph_free(sg);
    dict_free(&d);
    return rc;
}
