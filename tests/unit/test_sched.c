/* tests/unit/test_sched.c — the scheduler core: cost model arithmetic and refinement, DP
 * optimality against brute force over every cut set and configuration, part sizes
 * proportional to speed, pinned placement, policies, disjoint branches, and every plan run
 * in-process (nnm_plan_run_local) equal to the whole model within 1e-5. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "test_sched_util.h"
#include "sched_int.h"

static const uint8_t HASH[NNM_WIRE_HASH_BYTES] = { 1, 2, 3 };

static nnm_sched *mesh(const char *const *ids, const double *gf, int n, double rtt, double mbps)
{
    nnm_sched *s = NULL;
    assert_int_equal(nnm_sched_new(&s, ids[0], NULL, NULL), NNM_OK);
    for (int i = 0; i < n; i++) tu_node_set(s, ids[i], gf[i], 0);
    tu_links(s, ids, n, rtt, mbps);
    return s;
}

/* --- cost model --------------------------------------------------------------------------- */

static void test_sched_cost_arithmetic_matches_formulas(void **state)
{
    (void)state;
    static const char *const ids[] = { "a", "b" };
    double gf[] = { 10, 5 };
    nnm_sched *s = mesh(ids, gf, 2, 4.0, 10.0);
    double w[NNM_OPC__COUNT] = { 1e9, 0, 0, 0, 2e6 }, ms;
    assert_int_equal(nnm_sched_compute_ms(s, "a", w, 1, &ms, NULL), NNM_OK);
    assert_float_equal(ms, 0.3 + 100.0 + 1.0, 1e-9);     /* 1 GFLOP at 10 GFLOP/s, 2 MB at 2 GB/s */
    assert_int_equal(nnm_sched_compute_ms(s, "b", w, 0, &ms, NULL), NNM_OK);
    assert_float_equal(ms, 0.3 + 200.0 + 1.0, 1e-9);
    /* transfer: RTT/2 + wire bytes / throughput (+ codec time at 500 MB/s) */
    assert_int_equal(nnm_sched_transfer_ms(s, "a", "b", 1000000, NNM_CODEC_NONE, 1, &ms, NULL), NNM_OK);
    assert_float_equal(ms, 2.0 + 100.0, 1e-9);
    assert_int_equal(nnm_sched_transfer_ms(s, "a", "b", 1000000, NNM_CODEC_F16, 1, &ms, NULL), NNM_OK);
    assert_float_equal(ms, 2.0 + 50.0 + 2.0, 1e-9);
    assert_int_equal(nnm_sched_transfer_ms(s, "a", "b", 1000000, NNM_CODEC_INT8_AFFINE, 1, &ms, NULL), NNM_OK);
    assert_float_equal(ms, 2.0 + 25.0 + 2.0, 1e-9);
    assert_int_equal(nnm_sched_transfer_ms(s, "a", "b", 1000000, NNM_CODEC_LZ4, 1, &ms, NULL), NNM_OK);
    assert_float_equal(ms, 2.0 + 80.0 + 2.0, 1e-9);
    assert_int_equal(nnm_sched_transfer_ms(s, "a", "a", 1000000, NNM_CODEC_NONE, 1, &ms, NULL), NNM_OK);
    assert_float_equal(ms, 0.0, 0);
    nnm_diag d;
    assert_int_equal(nnm_sched_compute_ms(s, "zz", w, 1, &ms, &d), NNM_ENOTFOUND);
    assert_non_null(strstr(d.msg, "zz"));
    /* load halves the rate at 1000 permille */
    nnm_mesh_node n;
    memset(&n, 0, sizeof n);
    strcpy(n.id, "b");
    n.gflops[NNM_OPC_CONV3X3] = 5;
    n.load_permille = 1000;
    assert_int_equal(nnm_sched_node_set(s, &n, NULL), NNM_OK);
    double w2[NNM_OPC__COUNT] = { 1e9, 0, 0, 0, 0 };
    assert_int_equal(nnm_sched_compute_ms(s, "b", w2, 0, &ms, NULL), NNM_OK);
    assert_float_equal(ms, 0.3 + 400.0, 1e-9);
    /* a peer's queue (requests it coordinates) takes its share: 2 requests -> a third; beyond
     * NNM_QUEUE_MAX it counts as NNM_QUEUE_MAX; a change of level re-plans, one within the
     * cap does not. The planning node's own queue is its backlog, not a slower rate. */
    n.load_permille = 0;
    n.queue = 2;
    uint64_t v0 = nnm_sched_version(s);
    assert_int_equal(nnm_sched_node_set(s, &n, NULL), NNM_OK);
    assert_true(nnm_sched_version(s) > v0);
    assert_int_equal(nnm_sched_compute_ms(s, "b", w2, 0, &ms, NULL), NNM_OK);
    assert_float_equal(ms, 0.3 + 600.0, 1e-9);
    n.queue = 50;
    assert_int_equal(nnm_sched_node_set(s, &n, NULL), NNM_OK);
    assert_int_equal(nnm_sched_compute_ms(s, "b", w2, 0, &ms, NULL), NNM_OK);
    assert_float_equal(ms, 0.3 + 200.0 * (1 + NNM_QUEUE_MAX), 1e-9);
    v0 = nnm_sched_version(s);
    n.queue = 7;
    assert_int_equal(nnm_sched_node_set(s, &n, NULL), NNM_OK);
    assert_true(nnm_sched_version(s) == v0);
    nnm_mesh_node self;
    memset(&self, 0, sizeof self);
    strcpy(self.id, "a");
    self.gflops[NNM_OPC_CONV3X3] = 10;
    self.queue = 3;
    assert_int_equal(nnm_sched_node_set(s, &self, NULL), NNM_OK);
    assert_int_equal(nnm_sched_compute_ms(s, "a", w2, 0, &ms, NULL), NNM_OK);
    assert_float_equal(ms, 0.3 + 100.0, 1e-9);
    n.queue = 0;
    /* bad input */
    n.load_permille = 1001;
    assert_int_equal(nnm_sched_node_set(s, &n, &d), NNM_EINVAL);
    strcpy(n.id, "Bad/Id");
    n.load_permille = 0;
    assert_int_equal(nnm_sched_node_set(s, &n, &d), NNM_EINVAL);
    assert_int_equal(nnm_sched_link_set(s, "a", "b", -1, 10, &d), NNM_EINVAL);
    assert_int_equal(nnm_sched_link_set(s, "a", "q", 1, 10, &d), NNM_ENOTFOUND);
    nnm_sched_free(s);
    nnm_sched_free(NULL);
}

/* An advert's capacities as the scheduler reads them: per-class MFLOP/s, `gflops` for the
 * classes not given, load capped at 1000, the queue (a huge value clamped, not wrapped). */
static void test_sched_node_from_advert_reads_capacities(void **state)
{
    (void)state;
    nnm_advert_cap caps[] = {
        { "gflops", 7 }, { "mflops-conv3x3", 12500 }, { "queue", 2 }, { "mem-mb", 512 },
    };
    nnm_advert adv;
    memset(&adv, 0, sizeof adv);
    adv.free_mem = 1u << 30;
    adv.load_permille = 1500;
    adv.caps = caps;
    adv.ncaps = 4;
    nnm_mesh_node n;
    assert_int_equal(nnm_sched_node_from_advert(&n, "b", &adv, NULL), NNM_OK);
    assert_float_equal(n.gflops[NNM_OPC_CONV3X3], 12.5, 1e-12);
    assert_float_equal(n.gflops[NNM_OPC_FC], 7.0, 1e-12);
    assert_int_equal(n.load_permille, 1000);
    assert_int_equal(n.queue, 2);
    caps[2].value = UINT64_MAX;
    assert_int_equal(nnm_sched_node_from_advert(&n, "b", &adv, NULL), NNM_OK);
    assert_int_equal(n.queue, UINT32_MAX);
    caps[2].value = 0;
    strcpy(caps[2].name, "other");
    assert_int_equal(nnm_sched_node_from_advert(&n, "b", &adv, NULL), NNM_OK);
    assert_int_equal(n.queue, 0);
    nnm_diag d;
    assert_int_equal(nnm_sched_node_from_advert(&n, "B/ad", &adv, &d), NNM_EINVAL);
}

static void test_sched_classify_op_classes(void **state)
{
    (void)state;
    tu_graph b = { ir__graph_new(), 0 };
    int64_t sh[4] = { 1, 8, 8, 8 };
    int x = tu_input(&b, "input", 4, sh);
    x = tu_conv(&b, x, 8, 8, 3, 1, 1);
    x = tu_conv(&b, x, 8, 8, 1, 1, 1);
    x = tu_conv(&b, x, 8, 8, 3, 1, 8);
    nnm_graph *g = tu_finish(&b, tu_head(&b, x, 8, 4));
    assert_non_null(g);
    assert_int_equal(nnm_sched_classify(g, 0), NNM_OPC_CONV3X3);
    assert_int_equal(nnm_sched_classify(g, 1), NNM_OPC_CONV1X1);
    assert_int_equal(nnm_sched_classify(g, 2), NNM_OPC_DWCONV);
    assert_int_equal(nnm_sched_classify(g, 3), NNM_OPC_OTHER);   /* GlobalAveragePool */
    assert_int_equal(nnm_sched_classify(g, 5), NNM_OPC_FC);
    double w[NNM_OPC__COUNT];
    assert_int_equal(nnm_sched_slice_work(g, 0, 6, w, NULL), NNM_OK);
    assert_float_equal(w[NNM_OPC_CONV3X3], g->nodes[0].flops, 1e-6);
    assert_float_equal(w[NNM_OPC_FC], g->nodes[5].flops, 1e-6);
    assert_int_equal(nnm_sched_slice_work(g, 3, 2, w, NULL), NNM_ERANGE);
    ir__graph_free(g);
}

static void test_sched_observe_refines_and_distrusts(void **state)
{
    (void)state;
    static const char *const ids[] = { "a", "b" };
    double gf[] = { 10, 10 };
    nnm_sched *s = mesh(ids, gf, 2, 2.0, 10.0);
    nnm_plan_part part;
    memset(&part, 0, sizeof part);
    strcpy(part.node, "b");
    part.work[NNM_OPC_CONV3X3] = 1e9;        /* 100 ms advertised */
    for (int i = 0; i < 40; i++)
        assert_int_equal(nnm_sched_observe_slice(s, &part, 400.3, NULL), NNM_OK);
    double f = nnm_sched_node_factor(s, "b", NNM_OPC_CONV3X3);
    assert_true(f > 3.9 && f < 4.1);
    assert_float_equal(nnm_sched_node_factor(s, "a", NNM_OPC_CONV3X3), 1.0, 1e-12);
    double ms;
    assert_int_equal(nnm_sched_compute_ms(s, "b", part.work, 0, &ms, NULL), NNM_OK);
    assert_float_equal(ms, 100.3, 1e-9);                       /* advertised: unchanged */
    assert_int_equal(nnm_sched_compute_ms(s, "b", part.work, 1, &ms, NULL), NNM_OK);
    assert_true(ms > 480 && ms < 520);      /* 4x slower, distrusted 25% more: ~500 ms */
    /* links */
    for (int i = 0; i < 40; i++)
        assert_int_equal(nnm_sched_observe_transfer(s, "a", "b", 1000000, 202.0, NULL), NNM_OK);
    assert_int_equal(nnm_sched_transfer_ms(s, "a", "b", 1000000, NNM_CODEC_NONE, 1, &ms, NULL), NNM_OK);
    assert_true(ms > 195 && ms < 209);
    nnm_diag d;
    assert_int_equal(nnm_sched_observe_slice(s, &part, 0, &d), NNM_EINVAL);
    strcpy(part.node, "nobody");
    assert_int_equal(nnm_sched_observe_slice(s, &part, 1, &d), NNM_ENOTFOUND);
    nnm_sched_free(s);
}

/* --- DP vs brute force ------------------------------------------------------------------- */

static double brute(const sched_ctx *c, sched_chain *ch, int p, int n)
{
    if (p == n) {
        if (c->pin && !(c->cfg[ch->cfg[0]].type == NNM_STAGE_SINGLE &&
                        c->cfg[ch->cfg[0]].nodes[0] == c->src)) return INFINITY;
        return sched__chain_ms(c, ch);
    }
    double best = INFINITY;
    for (int b = p + 1; b <= n; b++)
        for (int x = 0; x < c->n_cfg; x++) {
            ch->cut[ch->n] = p;
            ch->cut[ch->n + 1] = b;
            ch->cfg[ch->n] = x;
            ch->n++;
            double t = brute(c, ch, b, n);
            ch->n--;
            if (t < best) best = t;
        }
    return best;
}

static void dp_vs_brute(nnm_graph *g, const char *const *ids, const double *gf, int nn,
                        int policy, int pin)
{
    nnm_sched *s = mesh(ids, gf, nn, 1.0, 50.0);
    sched_model *m = NULL;
    assert_int_equal(sched__model_get(s, g, HASH, &m, NULL), NNM_OK);
    static sched_ctx c;
    sched__ctx_init(&c, s, m, 1);
    c.policy = policy;
    c.pin = pin;
    c.src = sched__node_find(s, ids[nn - 1]);
    sched__ctx_configs(&c);
    static sched_chain ch, bf;
    assert_int_equal(sched__dp(&c, &ch, NULL), NNM_OK);
    double dp = sched__chain_ms(&c, &ch);
    assert_float_equal(dp, ch.cost, 1e-6 * dp);
    memset(&bf, 0, sizeof bf);
    double best = brute(&c, &bf, 0, m->n);
    assert_true(isfinite(best));
    if (fabs(dp - best) > 1e-6 * best) fail_msg("DP %.6f ms, brute force %.6f ms", dp, best);
    nnm_sched_free(s);
}

static void test_sched_dp_matches_brute_force(void **state)
{
    (void)state;
    static const char *const ids[] = { "a", "b", "c" };
    double gf[] = { 4, 2, 1 };
    nnm_graph *g = tu_chain(4, 16, 16);            /* 4 convs + pool, flatten, gemm: 7 nodes */
    assert_non_null(g);
    dp_vs_brute(g, ids, gf, 2, NNM_POLICY_CAPACITY, 0);
    dp_vs_brute(g, ids, gf, 2, NNM_POLICY_CAPACITY, 1);
    dp_vs_brute(g, ids, gf, 2, NNM_POLICY_EQUAL, 0);
    ir__graph_free(g);
    g = tu_chain(3, 8, 12);                        /* 3 nodes: 9 configurations, 6 graph nodes */
    dp_vs_brute(g, ids, gf, 3, NNM_POLICY_CAPACITY, 0);
    dp_vs_brute(g, ids, gf, 3, NNM_POLICY_MEMORY, 1);
    ir__graph_free(g);
}

static void test_sched_live_bytes_see_residuals(void **state)
{
    (void)state;
    nnm_graph *g = tu_mobile();
    assert_non_null(g);
    nnm_sched *s = NULL;
    assert_int_equal(nnm_sched_new(&s, "a", NULL, NULL), NNM_OK);
    sched_model *m = NULL;
    assert_int_equal(sched__model_get(s, g, HASH, &m, NULL), NNM_OK);
    /* node 0 is the stem: [1,16,16,16] f32 = 16 KiB cross cut 1; inside the first block (after
     * its expand conv) the block input and the 64-channel expansion are both live */
    assert_float_equal(m->live[1], 16.0 * 16 * 16 * 4, 0);
    assert_float_equal(m->live[2], 16.0 * 16 * 16 * 4 + 64.0 * 16 * 16 * 4, 0);
    assert_float_equal(m->live[0], 3.0 * 32 * 32 * 4, 0);
    assert_float_equal(m->live[m->n], 10.0 * 4, 0);
    nnm_sched_free(s);
    ir__graph_free(g);
}

/* --- plans ------------------------------------------------------------------------------- */

static const nnm_plan_stage *first_split(const nnm_plan *p)
{
    for (int i = 0; i < p->n_stages; i++)
        if (p->stages[i].kind == NNM_STAGE_SPLIT) return &p->stages[i];
    return NULL;
}

static int64_t part_len(const nnm_plan_stage *st, const char *node)
{
    for (int q = 0; q < st->n_parts; q++)
        if (!strcmp(st->parts[q].node, node)) return st->parts[q].part.end - st->parts[q].part.begin;
    return 0;
}

static void check_runs(const nnm_plan *p, const nnm_graph *g)
{
    nnm_tensor x, y0, y1;
    tu_random_input(g, &x);
    assert_int_equal(tu_run_whole(g, &x, &y0), NNM_OK);
    nnm_diag d;
    nnm_diag_clear(&d);
    nnm_err rc = nnm_plan_run_local(p, g, NNM_BACKEND_AUTO, &x, 1, &y1, 1, &d);
    if (rc != NNM_OK) {
        char *txt = NULL;
        nnm_plan_format(&txt, p, g, NULL);
        fail_msg("plan run: %s\n%s", d.msg, txt ? txt : "");
    }
    double rd = tu_rel_diff(&y1, &y0);
    if (!(rd <= 1e-5)) fail_msg("plan output differs from the whole model by %g", rd);
    nnm_tensor_cleanup(&x);
    nnm_tensor_cleanup(&y0);
    nnm_tensor_cleanup(&y1);
}

static void test_sched_parts_proportional_to_speed(void **state)
{
    (void)state;
    static const char *const ids[] = { "a", "b" };
    double gf[] = { 2, 1 };
    nnm_sched *s = mesh(ids, gf, 2, 0.1, 1000.0);
    nnm_graph *g = tu_chain(3, 32, 48);
    assert_non_null(g);
    nnm_plan_opts o = { NNM_OBJ_LATENCY, NNM_POLICY_CAPACITY, NULL, 0, 0, 0 };
    nnm_plan *p = NULL;
    assert_int_equal(nnm_sched_plan(s, g, HASH, &o, &p, NULL), NNM_OK);
    const nnm_plan_stage *st = first_split(p);
    assert_non_null(st);
    double ra = (double)part_len(st, "a"), rb = (double)part_len(st, "b");
    if (!(ra / rb > 1.6 && ra / rb < 2.4)) fail_msg("a: %g, b: %g rows/channels", ra, rb);
    check_runs(p, g);
    /* cached: same plan, and equal under a new version only if nothing changed */
    nnm_plan *p2 = NULL;
    assert_int_equal(nnm_sched_plan(s, g, HASH, &o, &p2, NULL), NNM_OK);
    assert_int_equal(p2->n_stages, p->n_stages);
    assert_int_equal(p2->mesh_version, p->mesh_version);
    nnm_plan_free(p2);
    nnm_plan_free(p);
    nnm_sched_free(s);
    ir__graph_free(g);
}

static void test_sched_pinned_first_stage_respected(void **state)
{
    (void)state;
    static const char *const ids[] = { "a", "b", "cam" };
    double gf[] = { 4, 4, 0.5 };
    nnm_sched *s = mesh(ids, gf, 3, 0.5, 200.0);
    nnm_graph *g = tu_chain(4, 16, 32);
    assert_non_null(g);
    nnm_plan_opts o = { NNM_OBJ_LATENCY, NNM_POLICY_ADAPTIVE, "cam", 1, 0, 0 };
    nnm_plan *p = NULL;
    assert_int_equal(nnm_sched_plan(s, g, HASH, &o, &p, NULL), NNM_OK);
    assert_int_equal(p->stages[0].n_parts, 1);
    assert_string_equal(p->stages[0].parts[0].node, "cam");
    assert_string_equal(p->source, "cam");
    check_runs(p, g);
    nnm_plan_free(p);
    o.pin_first = 0;            /* unpinned: the slow sensor node does no work at all */
    assert_int_equal(nnm_sched_plan(s, g, HASH, &o, &p, NULL), NNM_OK);
    assert_true(nnm_plan_node_share(p, "cam") < 0.05);
    nnm_plan_free(p);
    o.source = "nobody";
    nnm_diag d;
    assert_int_equal(nnm_sched_plan(s, g, HASH, &o, &p, &d), NNM_ENOTFOUND);
    assert_null(p);
    nnm_sched_free(s);
    ir__graph_free(g);
}

static void test_sched_policies_differ_on_heterogeneous_mesh(void **state)
{
    (void)state;
    /* 50 / 25 / 25 / 12.5 % of a CPU */
    static const char *const ids[] = { "a", "b", "c", "d" };
    double gf[] = { 4, 2, 2, 1 };
    nnm_sched *s = mesh(ids, gf, 4, 0.2, 500.0);
    nnm_mesh_node n;
    uint64_t mem[] = { 1000u << 20, 1000u << 20, 3000u << 20, 1000u << 20 };
    for (int i = 0; i < 4; i++) tu_node_set(s, ids[i], gf[i], mem[i]);
    (void)n;
    nnm_graph *g = tu_chain(4, 32, 64);
    assert_non_null(g);
    double lat[NNM_POLICY__COUNT];
    for (int pol = 0; pol < NNM_POLICY__COUNT; pol++) {
        nnm_plan_opts o = { NNM_OBJ_LATENCY, (nnm_policy)pol, NULL, 0, 0, 0 };
        nnm_plan *p = NULL;
        assert_int_equal(nnm_sched_plan(s, g, HASH, &o, &p, NULL), NNM_OK);
        double P;
        assert_int_equal(nnm_sched_plan_predict(s, p, 0, &lat[pol], &P, NULL), NNM_OK);
        const nnm_plan_stage *st = first_split(p);
        if (pol == NNM_POLICY_LOCAL) {
            assert_null(st);
            assert_float_equal(nnm_plan_node_share(p, "a"), 1.0, 1e-12);
        } else {
            if (st == NULL || st->n_parts != 4) {
                char *txt = NULL;
                nnm_plan_format(&txt, p, g, NULL);
                fail_msg("policy %d:\n%s", pol, txt);
            }
            int64_t la = part_len(st, "a"), lc = part_len(st, "c"), ld = part_len(st, "d");
            if (pol == NNM_POLICY_EQUAL) assert_true(llabs(la - ld) <= 1);
            if (pol == NNM_POLICY_MEMORY) assert_true(lc >= 2 * la && llabs(la - ld) <= 1);
            if (pol == NNM_POLICY_CAPACITY || pol == NNM_POLICY_ADAPTIVE)
                if (!((double)la / (double)ld > 3.0)) fail_msg("a %lld d %lld", (long long)la, (long long)ld);
        }
        check_runs(p, g);
        nnm_plan_free(p);
    }
    assert_true(lat[NNM_POLICY_CAPACITY] < lat[NNM_POLICY_EQUAL]);
    assert_true(lat[NNM_POLICY_CAPACITY] < lat[NNM_POLICY_MEMORY]);
    assert_true(lat[NNM_POLICY_CAPACITY] < lat[NNM_POLICY_LOCAL]);
    /* on this mesh an equal split is no better than the fastest node alone: the 12.5% node
     * takes a quarter of the work (what makes it a baseline) */
    assert_true(lat[NNM_POLICY_EQUAL] > 0.9 * lat[NNM_POLICY_LOCAL]);
    nnm_sched_free(s);
    ir__graph_free(g);
}

static void test_sched_branches_on_different_nodes(void **state)
{
    (void)state;
    static const char *const ids[] = { "a", "b" };
    double gf[] = { 1, 1 };
    nnm_sched *s = mesh(ids, gf, 2, 0.2, 500.0);
    nnm_graph *g = tu_branches(32, 24);
    assert_non_null(g);
    nnm_plan_opts o = { NNM_OBJ_LATENCY, NNM_POLICY_CAPACITY, NULL, 0, 0, 0 };
    nnm_plan *p = NULL;
    assert_int_equal(nnm_sched_plan(s, g, HASH, &o, &p, NULL), NNM_OK);
    int found = 0;
    for (int i = 0; i < p->n_stages; i++)
        if (p->stages[i].kind == NNM_STAGE_BRANCHES) {
            found = 1;
            assert_true(p->stages[i].n_parts >= 2);
            int other = 0;
            for (int q = 1; q < p->stages[i].n_parts; q++)
                other |= strcmp(p->stages[i].parts[q].node, p->stages[i].parts[0].node) != 0;
            assert_true(other);
        }
    if (!found) {
        char *txt = NULL;
        nnm_plan_format(&txt, p, g, NULL);
        fail_msg("no branch stage:\n%s", txt);
    }
    check_runs(p, g);
    nnm_plan_free(p);
    nnm_sched_free(s);
    ir__graph_free(g);
}

/* The result edge of a remote part (its outputs back to the coordinator) gets a wire codec
 * by the inputs' rule: lossy (f16/int8) for f32 outputs over a slow link only when allowed;
 * the prediction times the outputs with it. Two equal nodes at 20 MB/s: the first stage is
 * split, and b sends its rows of a 64 KiB activation back to a. */
static void test_sched_result_codec_lossy_only_when_allowed(void **state)
{
    (void)state;
    static const char *const ids[] = { "a", "b" };
    double gf[] = { 1, 1 };
    nnm_sched *s = mesh(ids, gf, 2, 1.0, 20.0);
    nnm_graph *g = tu_chain(3, 16, 32);
    assert_non_null(g);
    for (int lossy = 0; lossy < 2; lossy++) {
        nnm_plan_opts o = { NNM_OBJ_LATENCY, NNM_POLICY_CAPACITY, NULL, 0, lossy, 0 };
        nnm_plan *p = NULL, *none = NULL;
        assert_int_equal(nnm_sched_plan(s, g, HASH, &o, &p, NULL), NNM_OK);
        assert_int_equal(nnm_plan_copy(&none, p, NULL), NNM_OK);
        int remote = 0;
        for (int i = 0; i < p->n_stages; i++)
            for (int q = 0; q < p->stages[i].n_parts; q++) {
                const nnm_plan_part *pp = &p->stages[i].parts[q];
                int far = strcmp(pp->node, "a") != 0;
                for (int k = 0; k < pp->n_out; k++) {
                    nnm_codec c = pp->out[k].codec;
                    assert_int_equal(none->stages[i].parts[q].out[k].codec, c);   /* copied */
                    print_message("lossy %d: part on %s, out '%s' %zu bytes, codec %d\n", lossy,
                                  pp->node, pp->out[k].value, pp->out[k].bytes, (int)c);
                    if (!far) assert_int_equal(c, NNM_CODEC_NONE);
                    else if (lossy) assert_true(c == NNM_CODEC_F16 || c == NNM_CODEC_INT8_AFFINE);
                    else assert_true(c == NNM_CODEC_NONE || c == NNM_CODEC_LZ4);
                    remote += far && pp->out[k].bytes > 10000;
                    none->stages[i].parts[q].out[k].codec = NNM_CODEC_NONE;
                }
            }
        assert_true(remote > 0);
        nnm_slice_spec *sp = NULL;      /* what the TASKs ask the workers to answer with */
        size_t ns = 0, k = 0;
        assert_int_equal(nnm_plan_to_specs(&sp, &ns, p, NULL), NNM_OK);
        for (int i = 0; i < p->n_stages; i++)
            for (int q = 0; q < p->stages[i].n_parts; q++, k++)
                if (p->stages[i].parts[q].n_out == 1)
                    assert_int_equal(sp[k].result_codec, p->stages[i].parts[q].out[0].codec);
        assert_int_equal(k, ns);
        free(sp);
        char *txt = NULL;
        assert_int_equal(nnm_plan_format(&txt, p, g, NULL), NNM_OK);
        assert_non_null(strstr(txt, lossy ? "bytes, codec int8\n" : "bytes, codec lz4\n"));
        free(txt);
        /* The outputs are timed with their codec: sent raw, the same plan is slower. */
        double lat, lat_none, per;
        assert_int_equal(nnm_sched_plan_predict(s, p, 0, &lat, &per, NULL), NNM_OK);
        assert_int_equal(nnm_sched_plan_predict(s, none, 0, &lat_none, &per, NULL), NNM_OK);
        print_message("lossy %d: predicted %.3f ms, %.3f ms with raw results\n", lossy, lat,
                      lat_none);
        assert_true(lat < lat_none);
        nnm_plan_free(none);
        nnm_plan_free(p);
    }
    /* A spec carries one result codec: a part whose outputs got different ones asks for AUTO. */
    nnm_plan_output outs[2] = { { .codec = NNM_CODEC_F16 }, { .codec = NNM_CODEC_NONE } };
    nnm_plan_part two = { .n_out = 2, .out = outs };
    assert_int_equal(nnm_plan_part_result_codec(&two), NNM_CODEC_AUTO);
    outs[1].codec = NNM_CODEC_F16;
    assert_int_equal(nnm_plan_part_result_codec(&two), NNM_CODEC_F16);
    nnm_sched_free(s);
    ir__graph_free(g);
}

/* Every policy x objective x source on several graphs and meshes: every plan runs. */
static void test_sched_every_plan_runs_locally(void **state)
{
    (void)state;
    static const char *const ids[] = { "a", "b", "c", "d" };
    double gf[] = { 4, 2, 2, 1 };
    nnm_graph *gs[3] = { tu_mobile(), tu_chain(3, 16, 20), tu_branches(16, 16) };
    double links[2][2] = { { 0.2, 500.0 }, { 5.0, 2.0 } };
    for (int gi = 0; gi < 3; gi++) {
        assert_non_null(gs[gi]);
        for (int li = 0; li < 2; li++) {
            nnm_sched *s = mesh(ids, gf, 4, links[li][0], links[li][1]);
            for (int pol = 0; pol < NNM_POLICY__COUNT; pol++)
                for (int obj = 0; obj < NNM_OBJ__COUNT; obj++)
                    for (int pin = 0; pin < 2; pin++) {
                        nnm_plan_opts o = { (nnm_objective)obj, (nnm_policy)pol, pin ? "d" : NULL, pin, pin, 0 };
                        nnm_plan *p = NULL;
                        nnm_diag d;
                        nnm_diag_clear(&d);
                        if (nnm_sched_plan(s, gs[gi], HASH, &o, &p, &d) != NNM_OK)
                            fail_msg("graph %d policy %d objective %d: %s", gi, pol, obj, d.msg);
                        check_runs(p, gs[gi]);
                        nnm_slice_spec *sp = NULL;
                        size_t ns = 0, parts = 0;
                        assert_int_equal(nnm_plan_to_specs(&sp, &ns, p, NULL), NNM_OK);
                        for (int i = 0; i < p->n_stages; i++) parts += (size_t)p->stages[i].n_parts;
                        assert_int_equal(ns, parts);
                        assert_int_equal(sp[0].node_begin, p->stages[0].parts[0].node_begin);
                        assert_memory_equal(sp[0].model_hash, HASH, sizeof HASH);
                        assert_int_equal(sp[ns - 1].node_end, nnm_graph_node_count(gs[gi]));
                        free(sp);
                        char *txt = NULL;
                        assert_int_equal(nnm_plan_format(&txt, p, gs[gi], NULL), NNM_OK);
                        assert_non_null(strstr(txt, "stage 0"));
                        free(txt);
                        nnm_plan *cp = NULL;
                        assert_int_equal(nnm_plan_copy(&cp, p, NULL), NNM_OK);
                        assert_int_equal(cp->n_stages, p->n_stages);
                        nnm_plan_free(cp);
                        nnm_plan_free(p);
                    }
            nnm_sched_free(s);
        }
        ir__graph_free(gs[gi]);
    }
}

static void test_sched_lenet_plan_runs_locally(void **state)
{
    (void)state;
    const char *top = getenv("top_srcdir");
    char path[4096];
    snprintf(path, sizeof path, "%s/examples/models/lenet5-fmnist.onnx", top ? top : NNM_TOP_SRCDIR);
    nnm_graph *g = NULL;
    nnm_diag d;
    if (nnm_graph_load_onnx(&g, path, NULL, &d) != NNM_OK) fail_msg("%s", d.msg);
    static const char *const ids[] = { "a", "b", "c" };
    double gf[] = { 0.05, 0.05, 0.02 };
    nnm_sched *s = mesh(ids, gf, 3, 0.1, 1000.0);
    for (int pol = 0; pol < NNM_POLICY__COUNT; pol++) {
        nnm_plan_opts o = { NNM_OBJ_LATENCY, (nnm_policy)pol, NULL, 0, 0, 0 };
        nnm_plan *p = NULL;
        assert_int_equal(nnm_sched_plan(s, g, HASH, &o, &p, NULL), NNM_OK);
        check_runs(p, g);
        nnm_plan_free(p);
    }
    nnm_sched_free(s);
    nnm_graph_free(g);
}

static void test_sched_memory_limits_respected(void **state)
{
    (void)state;
    nnm_sched *s = NULL;
    assert_int_equal(nnm_sched_new(&s, "a", NULL, NULL), NNM_OK);
    tu_node_set(s, "a", 1, 1000);          /* 1000 bytes: cannot hold any conv's weights */
    tu_node_set(s, "b", 1, 0);
    nnm_graph *g = tu_chain(2, 16, 16);
    nnm_plan_opts o = { NNM_OBJ_LATENCY, NNM_POLICY_CAPACITY, NULL, 0, 0, 0 };
    nnm_plan *p = NULL;
    assert_int_equal(nnm_sched_plan(s, g, HASH, &o, &p, NULL), NNM_OK);
    assert_true(nnm_plan_node_share(p, "b") > 0.99);
    nnm_plan_free(p);
    o.policy = NNM_POLICY_LOCAL;
    nnm_diag d;
    assert_int_equal(nnm_sched_plan(s, g, HASH, &o, &p, &d), NNM_ESTATE);
    assert_null(p);
    nnm_sched_free(s);
    ir__graph_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sched_cost_arithmetic_matches_formulas),
        cmocka_unit_test(test_sched_node_from_advert_reads_capacities),
        cmocka_unit_test(test_sched_classify_op_classes),
        cmocka_unit_test(test_sched_observe_refines_and_distrusts),
        cmocka_unit_test(test_sched_live_bytes_see_residuals),
        cmocka_unit_test(test_sched_dp_matches_brute_force),
        cmocka_unit_test(test_sched_parts_proportional_to_speed),
        cmocka_unit_test(test_sched_pinned_first_stage_respected),
        cmocka_unit_test(test_sched_policies_differ_on_heterogeneous_mesh),
        cmocka_unit_test(test_sched_branches_on_different_nodes),
        cmocka_unit_test(test_sched_memory_limits_respected),
        cmocka_unit_test(test_sched_result_codec_lossy_only_when_allowed),
        cmocka_unit_test(test_sched_lenet_plan_runs_locally),
        cmocka_unit_test(test_sched_every_plan_runs_locally),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
