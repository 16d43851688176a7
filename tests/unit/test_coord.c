/* tests/unit/test_coord.c — a request run across three nodes on a real mosquitto: the
 * coordinator plans with the scheduler, sends tasks (shipping the slice's weights to a peer
 * that lacks the model), joins the parts, and gets the single-node output. A peer that stops
 * answering costs a timeout, not the answer; its late results are discarded. A byzantine peer
 * (the corrupt-results failpoint) is caught by spot checks and excluded, and honest peers on
 * other backends and thread counts are never flagged. */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>

#include "test_link_util.h"
#include "nnmesh/coord.h"
#include "nnmesh/npy.h"

static char lenet[4096], sample[4096];

typedef struct wnode {
    ep e;
    nnm_worker *w;
    nnm_coord_env env;
    pthread_t th;
    atomic_int stop, mute, parked;   /* parked: the loop saw mute and reads nothing */
    atomic_int served;
    atomic_uint codecs;      /* bit per wire codec seen on task inputs */
} wnode;

static void *serve_loop(void *arg)
{
    wnode *n = arg;
    while (!atomic_load(&n->stop)) {
        if (atomic_load(&n->mute)) {       /* a stopped peer: reads nothing */
            atomic_store(&n->parked, 1);
            usleep(20000);
            continue;
        }
        nnm_link_msg m;
        memset(&m, 0, sizeof m);
        if (nnm_link_recv(n->e.l, &m, 50, NULL) != NNM_OK) {
            nnm_coord_inbox_expire(&n->env);   /* as a node's idle loop does */
            continue;
        }
        if (m.frame && (m.frame->hdr.type == NNM_FRAME_TASK || m.frame->hdr.type == NNM_FRAME_TENSOR)) {
            if (m.frame->hdr.type == NNM_FRAME_TASK)
                for (size_t k = 0; k < m.frame->u.task.ntensors; k++)
                    atomic_fetch_or(&n->codecs, 1u << m.frame->u.task.tensors[k].codec);
            nnm_diag d;
            nnm_coord_serve(&n->env, &m, &d);
            atomic_fetch_add(&n->served, 1);
        }
        nnm_link_msg_cleanup(&m);
    }
    return NULL;
}

/* Which peers hold the model file (the others are sent the weights of their slices). */
static atomic_int w1_has_model;

static int has_model(void *ctx, const char *peer, const uint8_t *hash)
{
    (void)ctx;
    (void)hash;
    return !strcmp(peer, "w1") && atomic_load(&w1_has_model);
}

static nnm_graph *load(void)
{
    nnm_graph *g = NULL;
    nnm_diag d;
    assert_int_equal(nnm_graph_load_onnx(&g, lenet, NULL, &d), NNM_OK);
    return g;
}

static double rel_diff(const nnm_tensor *a, const nnm_tensor *b)
{
    const float *x = a->data, *y = b->data;
    double md = 0, sc = 0;
    for (size_t i = 0; i < a->nbytes / 4; i++) {
        md = fmax(md, fabs((double)x[i] - y[i]));
        sc = fmax(sc, fabs((double)y[i]));
    }
    return md / sc;
}

/* Opens the coordinator "coord" and workers w1..wn on the broker at uri, each trusting all. */
/* Node id in s: gflops for every op class, draining or not. */
static void set_node(nnm_sched *s, const char *id, double gflops, int draining)
{
    nnm_mesh_node mn;
    memset(&mn, 0, sizeof mn);
    snprintf(mn.id, sizeof mn.id, "%s", id);
    for (int k = 0; k < NNM_OPC__COUNT; k++) mn.gflops[k] = gflops;
    mn.draining = draining;
    nnm_diag d;
    assert_int_equal(nnm_sched_node_set(s, &mn, &d), NNM_OK);
}

/* Starts n serving its link with its worker (n->w set; inbox and test switches as set). */
static void serve_start(wnode *n)
{
    n->env.link = n->e.l;
    n->env.worker = n->w;
    n->env.self = n->e.name;
    assert_int_equal(pthread_create(&n->th, NULL, serve_loop, n), 0);
}

/* Re-evaluates cond every 10 ms until it holds, for up to 10 s; the caller asserts after.
 * Messages and timers are waited for, never assumed done after a fixed sleep. */
#define WAIT_UNTIL(cond)                                                                       \
    do {                                                                                       \
        for (int w_ = 0; w_ < 1000 && !(cond); w_++) usleep(10000);                           \
    } while (0)

/* Reads inbox's counts into is until cond (over is) holds, as WAIT_UNTIL. */
#define INBOX_WAIT(inbox, is, cond) WAIT_UNTIL((nnm_coord_inbox_stats_get((inbox), &(is)), (cond)))

/* Stops n reading (a SIGSTOPped peer) and waits until its loop has parked: a receive it was
 * inside has ended, so nothing sent from now on is read until it is unmuted. */
static void mute(wnode *n)
{
    atomic_store(&n->parked, 0);
    atomic_store(&n->mute, 1);
    WAIT_UNTIL(atomic_load(&n->parked));
    assert_true(atomic_load(&n->parked));
}

/* The coordinator "coord" on c's link, with its own worker cw and scheduler s. */
static void coord_env_init(nnm_coord_env *env, const ep *c, nnm_worker *cw, nnm_sched *s)
{
    memset(env, 0, sizeof *env);
    env->link = c->l;
    env->worker = cw;
    env->sched = s;
    env->self = "coord";
}

static void open_mesh(const char *uri, ep *c, wnode *const *ws, int n)
{
    nnm_identity *ids[8];
    const char *names[8] = { "coord", "w1", "w2", "w3", "w4", "w5", "w6", "w7" };
    assert_true(n + 1 <= 8);
    ep_new_identity(c, names[0]);
    ids[0] = c->id;
    for (int i = 0; i < n; i++) {
        ep_new_identity(&ws[i]->e, names[i + 1]);
        ids[i + 1] = ws[i]->e.id;
    }
    c->trust = trust_of(ids, names, n + 1);
    for (int i = 0; i < n; i++) ws[i]->e.trust = trust_of(ids, names, n + 1);
    ep_open(c, uri, 0, 3000);
    for (int i = 0; i < n; i++) ep_open(&ws[i]->e, uri, 0, 3000);
}

/* The model hash of the LeNet file. */
static void lenet_hash(uint8_t h[NNM_WIRE_HASH_BYTES])
{
    FILE *f = fopen(lenet, "rb");
    assert_non_null(f);
    static uint8_t buf[1 << 20];
    size_t len = fread(buf, 1, sizeof buf, f);
    fclose(f);
    nnm_model_hash(h, buf, len);
}

/* The sample input and g's single-node output for it. */
static void reference(const nnm_graph *g, nnm_tensor *x, nnm_tensor *want)
{
    nnm_diag d;
    assert_int_equal(nnm_npy_load(x, sample, &d), NNM_OK);
    nnm_exec *ex = NULL;
    assert_int_equal(nnm_exec_new(&ex, g, NULL, &d), NNM_OK);
    assert_int_equal(nnm_exec_run(ex, x, 1, want, 1, &d), NNM_OK);
    nnm_exec_free(ex);
}

static void test_coord_mesh_matches_single_node_ships_weights_survives_stopped_peers(void **state)
{
    (void)state;
    if (!test_broker_available()) skip();
    test_broker br;
    memset(&br, 0, sizeof br);
    assert_int_equal(test_broker_start(&br, 0, NULL), 0);
    ep c;
    wnode n1, n2;
    memset(&n1, 0, sizeof n1);
    memset(&n2, 0, sizeof n2);
    wnode *ws[2] = { &n1, &n2 };
    const char *names[3] = { "coord", "w1", "w2" };
    open_mesh(br.uri, &c, ws, 2);

    /* The model and its hash; every worker, the coordinator's included. */
    uint8_t h[NNM_WIRE_HASH_BYTES];
    lenet_hash(h);
    nnm_diag d;
    nnm_worker *cw = NULL;
    assert_int_equal(nnm_worker_new(&cw, NULL, &d), NNM_OK);
    assert_int_equal(nnm_worker_add_model(cw, h, load(), &d), NNM_OK);
    assert_int_equal(nnm_worker_new(&n1.w, NULL, &d), NNM_OK);
    assert_int_equal(nnm_worker_add_model(n1.w, h, load(), &d), NNM_OK);
    assert_int_equal(nnm_worker_new(&n2.w, NULL, &d), NNM_OK);
    for (int i = 0; i < 2; i++) serve_start(ws[i]);

    /* A slow coordinator and two fast peers: the capacity-proportional plan hands the
     * work to the peers. */
    nnm_sched *s = NULL;
    assert_int_equal(nnm_sched_new(&s, "coord", NULL, &d), NNM_OK);
    for (int i = 0; i < 3; i++) set_node(s, names[i], i == 0 ? 0.001 : 20, 0);
    nnm_coord_env env;
    coord_env_init(&env, &c, cw, s);
    env.peer_has_model = has_model;
    atomic_store(&w1_has_model, 1);
    env.task_timeout_ms = 4000;
    nnm_plan_opts po;
    memset(&po, 0, sizeof po);
    po.policy = NNM_POLICY_CAPACITY;

    nnm_graph *g = load();
    nnm_tensor x, want, got;
    reference(g, &x, &want);

    nnm_coord_stats st;
    memset(&st, 0, sizeof st);
    nnm_trace_entry *tr = NULL;
    size_t ntr = 0;
    nnm_err rc = nnm_coord_run(&env, g, h, &po, &x, 1, &got, 1, 0, &tr, &ntr, &st, &d);
    if (rc != NNM_OK) fprintf(stderr, "coord: %s\n", d.msg);
    assert_int_equal(rc, NNM_OK);
    print_message("distributed: rel diff %.3g, %zu parts, %llu tasks sent, %llu models sent\n",
                  rel_diff(&got, &want), ntr, (unsigned long long)st.tasks_sent,
                  (unsigned long long)st.models_sent);
    assert_true(rel_diff(&got, &want) <= 1e-5);
    /* Lossless plan: the results came back exact (no lossy codec on the way back either). */
    assert_int_equal(st.result_codecs[NNM_CODEC_F16] + st.result_codecs[NNM_CODEC_INT8_AFFINE], 0);
    assert_true(st.result_codecs[NNM_CODEC_NONE] + st.result_codecs[NNM_CODEC_LZ4] > 0);
    int remote = 0;
    for (size_t i = 0; i < ntr; i++) {
        print_message("  %s ran nodes [%u, %u) in %llu us\n", tr[i].node, tr[i].node_begin,
                      tr[i].node_end, (unsigned long long)tr[i].compute_us);
        remote += strcmp(tr[i].node, "coord") != 0;
    }
    assert_true(remote > 0);
    assert_true(st.tasks_sent > 0);
    /* Planning is counted, and it is inside the first part's wait (what `nnmesh infer`
     * prints as planning and slicing before the first part). */
    uint64_t first_wait = UINT64_MAX;
    for (size_t i = 0; i < ntr; i++) if (tr[i].wait_us < first_wait) first_wait = tr[i].wait_us;
    print_message("planning %.3f ms, first part sent after %.3f ms\n", st.plan_ms_last,
                  (double)first_wait / 1e3);
    assert_int_equal(st.plans, 1);
    assert_true(st.plan_ms_last > 0 && st.plan_ms_total == st.plan_ms_last);
    assert_true(st.plan_ms_last <= (double)first_wait / 1e3 + 0.001);
    free(tr);
    nnm_tensor_cleanup(&got);

    /* Nobody holds the model now: the slices' weights are shipped as ONNX, checked
     * against their hash, cached, and run. */
    atomic_store(&w1_has_model, 0);
    memset(&st, 0, sizeof st);
    rc = nnm_coord_run(&env, g, h, &po, &x, 1, &got, 1, 0, &tr, &ntr, &st, &d);
    if (rc != NNM_OK) fprintf(stderr, "coord: %s\n", d.msg);
    assert_int_equal(rc, NNM_OK);
    assert_true(rel_diff(&got, &want) <= 1e-5);
    print_message("weights shipped: %llu models sent, %llu tasks sent\n",
                  (unsigned long long)st.models_sent, (unsigned long long)st.tasks_sent);
    assert_true(st.models_sent > 0);
    free(tr);
    nnm_tensor_cleanup(&got);

    /* Both peers stop reading (SIGSTOP-like): their parts time out and run on the
     * coordinator; the answer is still exact. */
    mute(&n1);
    mute(&n2);
    env.task_timeout_ms = 1500;
    memset(&st, 0, sizeof st);
    rc = nnm_coord_run(&env, g, h, &po, &x, 1, &got, 1, 0, &tr, &ntr, &st, &d);
    if (rc != NNM_OK) fprintf(stderr, "coord: %s\n", d.msg);
    assert_int_equal(rc, NNM_OK);
    assert_true(rel_diff(&got, &want) <= 1e-5);
    print_message("peers stopped: %llu retried locally\n", (unsigned long long)st.tasks_retried);
    assert_true(st.tasks_retried > 0);
    free(tr);
    nnm_tensor_cleanup(&got);

    /* They wake up and answer the stale tasks (waited for, so their results are on the way
     * before the next request); those results are discarded, the new request is exact. */
    int stale = atomic_load(&n1.served) + atomic_load(&n2.served) + (int)st.tasks_sent;
    atomic_store(&n1.mute, 0);
    atomic_store(&n2.mute, 0);
    WAIT_UNTIL(atomic_load(&n1.served) + atomic_load(&n2.served) >= stale);
    usleep(100000);
    env.task_timeout_ms = 4000;
    memset(&st, 0, sizeof st);
    rc = nnm_coord_run(&env, g, h, &po, &x, 1, &got, 1, 0, &tr, &ntr, &st, &d);
    assert_int_equal(rc, NNM_OK);
    assert_true(rel_diff(&got, &want) <= 1e-5);
    print_message("after waking: %llu late results discarded\n", (unsigned long long)st.results_late);
    assert_true(st.results_late > 0);
    free(tr);
    nnm_tensor_cleanup(&got);

    /* The wire codec is the plan's per edge: exact requests never carry a lossy codec; with
     * lossy codecs allowed and links of 0.05 MB/s, the planner picks int8 for the f32 edges,
     * both ways: the tasks carry it on their inputs, and ask for it for their results, which
     * come back in it (the answer within int8's error, not exact). */
    unsigned exact = atomic_load(&n1.codecs) | atomic_load(&n2.codecs);
    assert_int_equal(exact & ((1u << NNM_CODEC_F16) | (1u << NNM_CODEC_INT8_AFFINE)), 0);
    atomic_store(&n1.codecs, 0);
    atomic_store(&n2.codecs, 0);
    for (int i = 1; i < 3; i++) {
        assert_int_equal(nnm_sched_link_set(s, "coord", names[i], 1, 0.05, &d), NNM_OK);
        assert_int_equal(nnm_sched_link_set(s, names[i], "coord", 1, 0.05, &d), NNM_OK);
    }
    po.allow_lossy = 1;
    nnm_plan *lp = NULL;            /* the plan the request gets (the same, from the cache) */
    assert_int_equal(nnm_sched_plan(s, g, h, &po, &lp, &d), NNM_OK);
    unsigned planned = 0;           /* codecs the plan chose for remote parts' results */
    for (int i = 0; i < lp->n_stages; i++)
        for (int q = 0; q < lp->stages[i].n_parts; q++)
            for (int k = 0; strcmp(lp->stages[i].parts[q].node, "coord") &&
                            k < lp->stages[i].parts[q].n_out; k++)
                planned |= 1u << lp->stages[i].parts[q].out[k].codec;
    nnm_plan_free(lp);
    memset(&st, 0, sizeof st);
    rc = nnm_coord_run(&env, g, h, &po, &x, 1, &got, 1, 0, &tr, &ntr, &st, &d);
    if (rc != NNM_OK) fprintf(stderr, "coord: %s\n", d.msg);
    assert_int_equal(rc, NNM_OK);
    unsigned lossy = atomic_load(&n1.codecs) | atomic_load(&n2.codecs);
    print_message("lossy allowed, slow links: task input codecs 0x%x, result codecs planned "
                  "0x%x, received none %llu f16 %llu int8 %llu lz4 %llu, rel diff %.3g\n", lossy,
                  planned, (unsigned long long)st.result_codecs[NNM_CODEC_NONE],
                  (unsigned long long)st.result_codecs[NNM_CODEC_F16],
                  (unsigned long long)st.result_codecs[NNM_CODEC_INT8_AFFINE],
                  (unsigned long long)st.result_codecs[NNM_CODEC_LZ4], rel_diff(&got, &want));
    assert_true(lossy & (1u << NNM_CODEC_INT8_AFFINE));
    assert_true(planned & (1u << NNM_CODEC_INT8_AFFINE));
    for (int k = NNM_CODEC_F16; k <= NNM_CODEC_INT8_AFFINE; k++)   /* lossy: as planned */
        assert_int_equal(st.result_codecs[k] > 0, (planned >> k) & 1);
    assert_true(rel_diff(&got, &want) <= 0.05);
    free(tr);
    nnm_tensor_cleanup(&got);

    /* The remote parts above taught the refined model what a part costs beyond compute and
     * bytes, per peer, and what sending one costs the coordinator. */
    double ov1 = nnm_sched_node_overhead(s, names[1]), ov2 = nnm_sched_node_overhead(s, names[2]);
    double snd = nnm_sched_send_overhead(s);
    print_message("learned: per-part overhead %s %.3f ms, %s %.3f ms; send %.3f ms per part\n",
                  names[1], ov1, names[2], ov2, snd);
    assert_true(ov1 >= 0 && ov2 >= 0 && snd > 0);
    assert_true(ov1 != 0.3 || ov2 != 0.3);   /* moved off the prior (slice_overhead_ms) */
    /* Each exchange's network time (round trip less the time the worker says it held the
     * task) refines the links. Probes that said 0.005 MB/s were wrong, loopback is far
     * faster: one exact request whose parts need no shipping moves w1's links well below 1
     * (the equal policy puts a part on every node, whatever the links). */
    double l0 = nnm_sched_link_factor(s, "coord", names[1]);
    assert_int_equal(nnm_sched_link_set(s, "coord", names[1], 1, 0.005, &d), NNM_OK);
    assert_int_equal(nnm_sched_link_set(s, names[1], "coord", 1, 0.005, &d), NNM_OK);
    atomic_store(&w1_has_model, 1);
    po.allow_lossy = 0;
    po.policy = NNM_POLICY_EQUAL;
    /* An exchange the coordinator cannot time teaches nothing by design (no trace, or a
     * round trip not longer than the time the peer says it held the task). Once in a clean-
     * clone CI run under load the one request left the links at 1; the cause was not found
     * (likely the answer stamped before the send call returned). Up to three requests, until
     * one has taught the links; the bound on the factor is unchanged. */
    double l1 = l0, l2 = l0;
    int runs = 0;
    while (runs < 3 && l1 == l0) {
        memset(&st, 0, sizeof st);
        rc = nnm_coord_run(&env, g, h, &po, &x, 1, &got, 1, 0, &tr, &ntr, &st, &d);
        assert_int_equal(rc, NNM_OK);
        runs++;
        int on_w1 = 0;
        for (size_t i = 0; i < ntr; i++) on_w1 += !strcmp(tr[i].node, names[1]);
        assert_true(on_w1 > 0);
        assert_true(rel_diff(&got, &want) <= 1e-5);
        free(tr);
        nnm_tensor_cleanup(&got);
        l1 = nnm_sched_link_factor(s, "coord", names[1]);
        l2 = nnm_sched_link_factor(s, names[1], "coord");
    }
    print_message("observed transfers (%d request%s): link factor coord->%s %.3g -> %.3g, "
                  "%s->coord %.3g (1: as probed)\n", runs, runs == 1 ? "" : "s", names[1], l0,
                  l1, names[1], l2);
    assert_true(l1 > 0 && l1 < 0.7 * l0 && l2 > 0 && l2 < 0.7 * l0);

    /* The coordinator's own parts refine its speed too: it advertises 0.001 GFLOP/s and runs
     * far faster, so after a local request its refined factor drops below 1. */
    double before = 0, after = 0;
    for (int k = 0; k < NNM_OPC__COUNT; k++) before += nnm_sched_node_factor(s, "coord", (nnm_opclass)k);
    po.policy = NNM_POLICY_LOCAL;
    po.allow_lossy = 0;
    memset(&st, 0, sizeof st);
    rc = nnm_coord_run(&env, g, h, &po, &x, 1, &got, 1, 0, &tr, &ntr, &st, &d);
    assert_int_equal(rc, NNM_OK);
    assert_true(rel_diff(&got, &want) <= 1e-5);
    for (int k = 0; k < NNM_OPC__COUNT; k++) after += nnm_sched_node_factor(s, "coord", (nnm_opclass)k);
    print_message("coordinator's own part observed: factors summed %.3f -> %.3f\n", before, after);
    assert_int_equal(st.tasks_local, 1);
    assert_true(after < before);
    free(tr);
    nnm_tensor_cleanup(&got);

    for (int i = 0; i < 2; i++) {
        atomic_store(&ws[i]->stop, 1);
        pthread_join(ws[i]->th, NULL);
    }
    nnm_tensor_cleanup(&x);
    nnm_tensor_cleanup(&want);
    nnm_graph_free(g);
    nnm_sched_free(s);
    ep_close(&c);
    ep_close(&n1.e);
    ep_close(&n2.e);
    nnm_worker_free(cw);
    nnm_worker_free(n1.w);
    nnm_worker_free(n2.w);
    test_broker_cleanup(&br);
}

/* ---- spot checks ------------------------------------------------------------------------ */

static char caught_log[4096];
static int n_error_logs;

static void grab_log(void *ctx, int level, const char *msg)
{
    (void)ctx;
    if (level != NNM_COORD_LOG_ERROR) return;
    n_error_logs++;
    snprintf(caught_log, sizeof caught_log, "%s", msg);
}

static int all_have_model(void *ctx, const char *peer, const uint8_t *hash)
{
    (void)ctx;
    (void)peer;
    (void)hash;
    return 1;
}

/* Parts the trace credits to node. */
static int parts_on(const nnm_trace_entry *tr, size_t ntr, const char *node)
{
    int c = 0;
    for (size_t i = 0; i < ntr; i++) c += !strcmp(tr[i].node, node);
    return c;
}

static void test_coord_spot_check_catches_corrupt_peer_never_flags_honest_ones(void **state)
{
    (void)state;
    if (!test_broker_available()) skip();
    test_broker br;
    memset(&br, 0, sizeof br);
    assert_int_equal(test_broker_start(&br, 0, NULL), 0);
    ep c;
    wnode w[3];   /* w1: reference kernels, 2 threads; w2: XNNPACK; w3: byzantine */
    memset(w, 0, sizeof w);
    wnode *wl[3] = { &w[0], &w[1], &w[2] };
    open_mesh(br.uri, &c, wl, 3);

    uint8_t h[NNM_WIRE_HASH_BYTES];
    lenet_hash(h);
    nnm_diag d;
    nnm_worker *cw = NULL;
    nnm_worker_opts co = { .threads = 1, .backend = NNM_BACKEND_AUTO };
    nnm_worker_opts wo[3] = { { .threads = 2, .backend = NNM_BACKEND_REF },
                              { .threads = 1, .backend = NNM_BACKEND_XNN },
                              { .threads = 1, .backend = NNM_BACKEND_AUTO } };
    assert_int_equal(nnm_worker_new(&cw, &co, &d), NNM_OK);
    assert_int_equal(nnm_worker_add_model(cw, h, load(), &d), NNM_OK);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(nnm_worker_new(&w[i].w, &wo[i], &d), NNM_OK);
        assert_int_equal(nnm_worker_add_model(w[i].w, h, load(), &d), NNM_OK);
        w[i].env.corrupt_results = i == 2;   /* set before its thread starts */
        serve_start(&w[i]);
    }

    nnm_sched *s = NULL;
    assert_int_equal(nnm_sched_new(&s, "coord", NULL, &d), NNM_OK);
    set_node(s, "coord", 20, 0);
    set_node(s, "w1", 20, 0);
    set_node(s, "w2", 20, 0);
    set_node(s, "w3", 20, 1);      /* the liar gets no parts while the honest ones are run */
    nnm_coord_env env;
    coord_env_init(&env, &c, cw, s);
    env.peer_has_model = all_have_model;
    env.task_timeout_ms = 8000;
    env.spot_check = 1;
    env.log = grab_log;
    env.request = "test request";
    nnm_plan_opts po;
    memset(&po, 0, sizeof po);
    po.policy = NNM_POLICY_EQUAL;

    nnm_graph *g = load();
    nnm_tensor x, want, got;
    assert_int_equal(nnm_npy_load(&x, sample, &d), NNM_OK);
    nnm_exec *ex = NULL;
    assert_int_equal(nnm_exec_new(&ex, g, NULL, &d), NNM_OK);

    /* Honest peers on other backends and thread counts, every part checked, inputs of
     * several scales: never flagged. */
    nnm_coord_stats st;
    memset(&st, 0, sizeof st);
    nnm_tensor xs;
    assert_int_equal(nnm_tensor_init(&xs, x.dtype, x.ndim, x.shape), NNM_OK);
    const int honest_runs = 24;
    double worst = 0;
    for (int r = 0; r < honest_runs; r++) {
        const float *src = x.data;
        float *dst = xs.data;
        float k = 0.25f + 0.25f * (float)(r % 8);      /* 0.25 .. 2 */
        for (size_t i = 0; i < x.nbytes / 4; i++) dst[i] = src[i] * k - (float)(r % 3) * 0.1f;
        assert_int_equal(nnm_exec_run(ex, &xs, 1, &want, 1, &d), NNM_OK);
        nnm_trace_entry *tr = NULL;
        size_t ntr = 0;
        nnm_err rc = nnm_coord_run(&env, g, h, &po, &xs, 1, &got, 1, 0, &tr, &ntr, &st, &d);
        if (rc != NNM_OK) fprintf(stderr, "coord: %s\n", d.msg);
        assert_int_equal(rc, NNM_OK);
        worst = fmax(worst, rel_diff(&got, &want));
        assert_true(rel_diff(&got, &want) <= 1e-5);
        assert_int_equal(parts_on(tr, ntr, "w3"), 0);
        free(tr);
        nnm_tensor_cleanup(&got);
        nnm_tensor_cleanup(&want);
    }
    print_message("honest: %d requests, %llu parts checked, %llu mismatches, largest check "
                  "difference %.2g of the scale (tolerance %g), output rel %.2g\n", honest_runs,
                  (unsigned long long)st.spot_checks, (unsigned long long)st.spot_mismatches,
                  st.spot_max_ok, NNM_COORD_SPOT_TOLERANCE, worst);
    assert_true(st.spot_max_ok < NNM_COORD_SPOT_TOLERANCE / 10);
    assert_true(st.spot_checks >= (uint64_t)honest_runs);
    assert_int_equal(st.spot_mismatches, 0);
    assert_int_equal(st.n_excluded, 0);
    assert_int_equal(n_error_logs, 0);
    nnm_tensor_cleanup(&xs);

    /* The liar joins. Without spot checks its wrong numbers reach the answer. */
    set_node(s, "w3", 20, 0);
    assert_int_equal(nnm_exec_run(ex, &x, 1, &want, 1, &d), NNM_OK);
    env.spot_check = 0;
    memset(&st, 0, sizeof st);
    nnm_trace_entry *tr = NULL;
    size_t ntr = 0;
    assert_int_equal(nnm_coord_run(&env, g, h, &po, &x, 1, &got, 1, 0, &tr, &ntr, &st, &d), NNM_OK);
    int on_w3 = parts_on(tr, ntr, "w3");
    double wrong = rel_diff(&got, &want);
    print_message("spot_check 0: %d part(s) on w3, output off by %.3g of its scale\n", on_w3, wrong);
    assert_true(on_w3 > 0);
    assert_true(wrong > 1e-3);
    assert_int_equal(st.spot_checks, 0);
    free(tr);
    nnm_tensor_cleanup(&got);

    /* Every part checked: caught on its first part, the answer is right, w3 is excluded
     * and logged with the request and the difference. */
    env.spot_check = 1;
    memset(&st, 0, sizeof st);
    assert_int_equal(nnm_coord_run(&env, g, h, &po, &x, 1, &got, 1, 0, &tr, &ntr, &st, &d), NNM_OK);
    print_message("spot_check 1: %llu checked, %llu mismatch, %llu rerun(s); log: %s\n",
                  (unsigned long long)st.spot_checks, (unsigned long long)st.spot_mismatches,
                  (unsigned long long)st.reruns, caught_log);
    assert_true(rel_diff(&got, &want) <= 1e-5);
    assert_int_equal(st.spot_mismatches, 1);
    assert_true(nnm_coord_peer_excluded(&st, "w3"));
    assert_false(nnm_coord_peer_excluded(&st, "w1"));
    assert_int_equal(n_error_logs, 1);
    assert_non_null(strstr(caught_log, "peer w3"));
    assert_non_null(strstr(caught_log, "test request"));
    assert_non_null(strstr(caught_log, "differs by"));
    assert_int_equal(parts_on(tr, ntr, "w3"), 0);
    free(tr);
    nnm_tensor_cleanup(&got);

    /* Later requests send it nothing, even though the plan still names it. */
    int served = atomic_load(&w[2].served);
    for (int r = 0; r < 3; r++) {
        assert_int_equal(nnm_coord_run(&env, g, h, &po, &x, 1, &got, 1, 0, &tr, &ntr, &st, &d), NNM_OK);
        assert_true(rel_diff(&got, &want) <= 1e-5);
        assert_int_equal(parts_on(tr, ntr, "w3"), 0);
        free(tr);
        nnm_tensor_cleanup(&got);
    }
    usleep(100000);
    assert_int_equal(atomic_load(&w[2].served), served);
    assert_int_equal(st.spot_mismatches, 1);

    /* At a rate of 0.5, rounds from a clean slate until caught: the answer of the request
     * that catches it is right, also when that request had already used an unchecked (wrong)
     * part of w3 and is run again without it. w3 serves two parts a request, so about one
     * catch in three needs the rerun; rounds go on until one did (at most 40). */
    env.spot_check = 0.5;
    uint64_t reruns = 0;
    int rounds = 0, requests = 0;
    char at[256] = "";
    for (; rounds < 40 && reruns == 0; rounds++) {
        memset(&st, 0, sizeof st);
        int caught_at = 0;
        for (int r = 1; r <= 40 && !caught_at; r++) {
            assert_int_equal(nnm_coord_run(&env, g, h, &po, &x, 1, &got, 1, 0, &tr, &ntr, &st, &d), NNM_OK);
            requests++;
            if (st.spot_mismatches > 0) {
                caught_at = r;
                assert_true(rel_diff(&got, &want) <= 1e-5);
                assert_int_equal(parts_on(tr, ntr, "w3"), 0);
            }
            free(tr);
            nnm_tensor_cleanup(&got);
        }
        assert_true(caught_at > 0);
        reruns += st.reruns;
        size_t k = strlen(at);
        snprintf(at + k, sizeof at - k, "%s%d%s", k ? " " : "", caught_at, st.reruns ? "(rerun)" : "");
    }
    print_message("spot_check 0.5: %d round(s), %d request(s), caught at request: %s\n", rounds,
                  requests, at);
    assert_true(reruns > 0);

    /* A timed exclusion ends (1.5 s: long enough that a slow request still sees it). */
    env.spot_check = 1;
    env.exclude_ms = 1500;
    memset(&st, 0, sizeof st);
    assert_int_equal(nnm_coord_run(&env, g, h, &po, &x, 1, &got, 1, 0, &tr, &ntr, &st, &d), NNM_OK);
    assert_true(nnm_coord_peer_excluded(&st, "w3"));
    free(tr);
    nnm_tensor_cleanup(&got);
    WAIT_UNTIL(!nnm_coord_peer_excluded(&st, "w3"));
    assert_false(nnm_coord_peer_excluded(&st, "w3"));

    for (int i = 0; i < 3; i++) {
        atomic_store(&w[i].stop, 1);
        pthread_join(w[i].th, NULL);
    }
    nnm_exec_free(ex);
    nnm_tensor_cleanup(&x);
    nnm_tensor_cleanup(&want);
    nnm_graph_free(g);
    nnm_sched_free(s);
    ep_close(&c);
    for (int i = 0; i < 3; i++) {
        ep_close(&w[i].e);
        nnm_worker_free(w[i].w);
    }
    nnm_worker_free(cw);
    test_broker_cleanup(&br);
}

/* ---- forwarding --------------------------------------------------------------------------- */

/* A slow coordinator and two fast peers, objective throughput: a pipeline over the peers, whose
 * stage outputs go from peer to peer. The answer is the single-node one; the coordinator sends
 * routed tasks and the peers exchange pieces. Then each peer in turn stops answering in the
 * middle of the pipeline: the coordinator runs what is missing itself, and the answer is still
 * exact. */
static void test_coord_forwarding_routes_stage_outputs_peer_to_peer(void **state)
{
    (void)state;
    if (!test_broker_available()) skip();
    test_broker br;
    memset(&br, 0, sizeof br);
    assert_int_equal(test_broker_start(&br, 0, NULL), 0);
    ep c;
    wnode n1, n2;
    memset(&n1, 0, sizeof n1);
    memset(&n2, 0, sizeof n2);
    wnode *ws[2] = { &n1, &n2 };
    const char *names[3] = { "coord", "w1", "w2" };
    open_mesh(br.uri, &c, ws, 2);
    uint8_t h[NNM_WIRE_HASH_BYTES];
    lenet_hash(h);
    nnm_diag d;
    nnm_worker *cw = NULL;
    assert_int_equal(nnm_worker_new(&cw, NULL, &d), NNM_OK);
    assert_int_equal(nnm_worker_add_model(cw, h, load(), &d), NNM_OK);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(nnm_worker_new(&ws[i]->w, NULL, &d), NNM_OK);
        assert_int_equal(nnm_worker_add_model(ws[i]->w, h, load(), &d), NNM_OK);
        assert_int_equal(nnm_coord_inbox_new(&ws[i]->env.inbox, 0, 0, &d), NNM_OK);
        serve_start(ws[i]);
    }
    nnm_sched *s = NULL;
    assert_int_equal(nnm_sched_new(&s, "coord", NULL, &d), NNM_OK);
    for (int i = 0; i < 3; i++) set_node(s, names[i], i == 0 ? 0.001 : 20, 0);
    nnm_coord_env env;
    coord_env_init(&env, &c, cw, s);
    env.peer_has_model = all_have_model;
    env.task_timeout_ms = 4000;
    env.forward = 1;
    nnm_plan_opts po;
    memset(&po, 0, sizeof po);
    po.policy = NNM_POLICY_CAPACITY;
    po.objective = NNM_OBJ_THROUGHPUT;

    nnm_graph *g = load();
    nnm_tensor x, want, got;
    reference(g, &x, &want);
    nnm_plan *pl = NULL;
    assert_int_equal(nnm_sched_plan(s, g, h, &po, &pl, &d), NNM_OK);
    char *txt = NULL;
    assert_int_equal(nnm_plan_format(&txt, pl, g, &d), NNM_OK);
    print_message("plan:\n%s", txt);
    free(txt);
    nnm_plan_free(pl);

    nnm_coord_stats st;
    memset(&st, 0, sizeof st);
    nnm_trace_entry *tr = NULL;
    size_t ntr = 0;
    nnm_err rc = nnm_coord_run(&env, g, h, &po, &x, 1, &got, 1, 0, &tr, &ntr, &st, &d);
    if (rc != NNM_OK) fprintf(stderr, "coord: %s\n", d.msg);
    assert_int_equal(rc, NNM_OK);
    /* A worker drops its routed task from the inbox after it sent the result, and counts a
     * piece out after sending it: the coordinator may have its answer first. */
    nnm_coord_inbox_stats i1, i2;
    WAIT_UNTIL((nnm_coord_inbox_stats_get(n1.env.inbox, &i1),
                nnm_coord_inbox_stats_get(n2.env.inbox, &i2),
                i1.waiting + i2.waiting == 0 &&
                i1.pieces_out + i2.pieces_out == i1.pieces_in + i2.pieces_in));
    print_message("forwarded: rel diff %.3g, %zu parts, %llu tasks sent, %llu routed, %llu local; "
                  "w1 pieces out %llu in %llu, w2 pieces out %llu in %llu\n", rel_diff(&got, &want),
                  ntr, (unsigned long long)st.tasks_sent, (unsigned long long)st.tasks_routed,
                  (unsigned long long)st.tasks_local, (unsigned long long)i1.pieces_out,
                  (unsigned long long)i1.pieces_in, (unsigned long long)i2.pieces_out,
                  (unsigned long long)i2.pieces_in);
    assert_true(rel_diff(&got, &want) <= 1e-5);
    assert_true(st.tasks_routed >= 2);
    assert_int_equal(st.tasks_local, 0);
    assert_true(i1.pieces_out + i2.pieces_out > 0);
    assert_int_equal(i1.pieces_out + i2.pieces_out, i1.pieces_in + i2.pieces_in);
    assert_int_equal(i1.waiting + i2.waiting, 0);
    free(tr);
    nnm_tensor_cleanup(&got);

    /* Forwarding off: the same plan through the coordinator, the same answer, nothing routed. */
    env.forward = 0;
    memset(&st, 0, sizeof st);
    rc = nnm_coord_run(&env, g, h, &po, &x, 1, &got, 1, 0, &tr, &ntr, &st, &d);
    assert_int_equal(rc, NNM_OK);
    assert_true(rel_diff(&got, &want) <= 1e-5);
    assert_int_equal(st.tasks_routed, 0);
    free(tr);
    nnm_tensor_cleanup(&got);
    env.forward = 1;

    /* Each peer stops reading in turn: the parts it had (producer or consumer of pieces) run
     * on the coordinator, which also sends the pieces a waiting peer still needs. */
    env.task_timeout_ms = 1500;
    for (int i = 0; i < 2; i++) {
        mute(ws[i]);
        memset(&st, 0, sizeof st);
        rc = nnm_coord_run(&env, g, h, &po, &x, 1, &got, 1, 0, &tr, &ntr, &st, &d);
        if (rc != NNM_OK) fprintf(stderr, "coord: %s\n", d.msg);
        assert_int_equal(rc, NNM_OK);
        print_message("%s stopped: rel diff %.3g, %llu routed, %llu retried here\n", names[1 + i],
                      rel_diff(&got, &want), (unsigned long long)st.tasks_routed,
                      (unsigned long long)st.tasks_retried);
        assert_true(rel_diff(&got, &want) <= 1e-5);
        assert_true(st.tasks_retried > 0);
        free(tr);
        nnm_tensor_cleanup(&got);
        atomic_store(&ws[i]->mute, 0);
        usleep(300000);
    }

    for (int i = 0; i < 2; i++) {
        atomic_store(&ws[i]->stop, 1);
        pthread_join(ws[i]->th, NULL);
        nnm_coord_inbox_free(ws[i]->env.inbox);
        nnm_worker_free(ws[i]->w);
    }
    nnm_tensor_cleanup(&x);
    nnm_tensor_cleanup(&want);
    nnm_graph_free(g);
    nnm_sched_free(s);
    ep_close(&c);
    ep_close(&n1.e);
    ep_close(&n2.e);
    nnm_worker_free(cw);
    test_broker_cleanup(&br);
}

/* Sends a TASK or piece frame from c to w1 and returns the status of w1's answer to request
 * id (-1: no answer within ms). */
static long answer_of(ep *c, uint64_t id, unsigned ms)
{
    for (unsigned waited = 0; waited < ms; waited += 50) {
        nnm_link_msg m;
        memset(&m, 0, sizeof m);
        if (nnm_link_recv(c->l, &m, 50, NULL) != NNM_OK) continue;
        long st = -2;
        if (m.frame && m.frame->hdr.type == NNM_FRAME_RESULT && m.frame->hdr.request == id)
            st = (long)m.frame->u.result.status;
        nnm_link_msg_cleanup(&m);
        if (st != -2) return st;
    }
    return -1;
}

/* Waits up to 3 s for c's RESULT of task id: its status (-1 if none came); with status 0,
 * its one tensor is moved to *out. */
static long result_of(ep *c, uint64_t id, nnm_tensor *out)
{
    memset(out, 0, sizeof *out);
    for (int waited = 0; waited < 3000; waited += 50) {
        nnm_link_msg m;
        memset(&m, 0, sizeof m);
        if (nnm_link_recv(c->l, &m, 50, NULL) != NNM_OK) continue;
        long st = -2;
        if (m.frame && m.frame->hdr.type == NNM_FRAME_RESULT && m.frame->hdr.request == id) {
            st = (long)m.frame->u.result.status;
            if (st == 0 && m.ntensors == 1) {
                *out = m.tensors[0];
                memset(&m.tensors[0], 0, sizeof m.tensors[0]);
            } else if (st == 0) {
                st = -3;               /* not the one output asked for */
            }
        }
        nnm_link_msg_cleanup(&m);
        if (st != -2) return st;
    }
    return -1;
}

static void routed_task(nnm_frame *f, const uint8_t *h, int nodes, uint64_t id,
                        nnm_task_await *aw, const char **ret)
{
    memset(f, 0, sizeof *f);
    f->hdr.type = NNM_FRAME_TASK;
    f->hdr.request = id;
    memcpy(f->u.task.spec.model_hash, h, NNM_WIRE_HASH_BYTES);
    f->u.task.spec.node_end = (uint32_t)nodes;
    f->u.task.spec.result_codec = NNM_CODEC_AUTO;
    f->u.task.routed = 1;
    f->u.task.nawait = 1;
    f->u.task.await = aw;
    f->u.task.nreturn = 1;
    f->u.task.returns = ret;
}

/* Sends t from c as the piece of input "input" at `at` for task id of coordinator "coord". */
static nnm_err send_piece(ep *c, uint64_t id, const nnm_tensor *t, const uint64_t *at)
{
    nnm_wire_tensor wt;
    nnm_diag d;
    assert_int_equal(nnm_wire_tensor_encode(&wt, t, NNM_CODEC_NONE, &d), NNM_OK);
    wt.name = "input";
    nnm_piece_at pa;
    memset(&pa, 0, sizeof pa);
    memcpy(pa.v, at, (size_t)t->ndim * sizeof *at);
    nnm_frame f;
    memset(&f, 0, sizeof f);
    f.hdr.type = NNM_FRAME_TENSOR;
    f.hdr.request = id;
    f.u.tensor.ntensors = 1;
    f.u.tensor.tensors = &wt;
    f.u.tensor.piece = 1;
    snprintf(f.u.tensor.coord, sizeof f.u.tensor.coord, "coord");
    f.u.tensor.at = &pa;
    nnm_err rc = nnm_link_send(c->l, "w1", &f, &d);
    nnm_wire_tensor_cleanup(&wt);
    return rc;
}

/* Bad routed tasks and pieces, each refused with a clear status, the worker serving on:
 * a piece of another dtype, a piece that does not fit, awaited inputs past the inbox's
 * bytes, an await listing one box twice, a task whose pieces never come, a piece for no task; then good ones, their piece
 * from the producer the task names; a piece from a trusted node that is not its producer is
 * dropped and the task waits for the real one; one sender's early pieces are held up to its
 * share of the inbox. */
static void test_coord_routed_bad_input_refused_worker_keeps_serving(void **state)
{
    (void)state;
    if (!test_broker_available()) skip();
    test_broker br;
    memset(&br, 0, sizeof br);
    assert_int_equal(test_broker_start(&br, 0, NULL), 0);
    ep c;
    wnode n1, n2;                  /* w1 serves; w2 only sends pieces (a producer, or not) */
    memset(&n1, 0, sizeof n1);
    memset(&n2, 0, sizeof n2);
    wnode *ws[2] = { &n1, &n2 };
    open_mesh(br.uri, &c, ws, 2);
    uint8_t h[NNM_WIRE_HASH_BYTES];
    lenet_hash(h);
    nnm_diag d;
    nnm_graph *g = load();
    int nodes = nnm_graph_node_count(g);
    assert_int_equal(nnm_worker_new(&n1.w, NULL, &d), NNM_OK);
    assert_int_equal(nnm_worker_add_model(n1.w, h, load(), &d), NNM_OK);
    /* 64 KiB and 1.5 s: LeNet's 3 KiB input fits, a 4 MB one does not; a task waits long enough
     * for the foreign pieces below, and its pieces that never come time out soon. */
    assert_int_equal(nnm_coord_inbox_new(&n1.env.inbox, 65536, 1500, &d), NNM_OK);
    serve_start(&n1);

    nnm_tensor x, want;
    reference(g, &x, &want);
    nnm_task_await aw;
    memset(&aw, 0, sizeof aw);
    aw.name = "input";
    aw.dtype = NNM_DT_F32;
    aw.ndim = x.ndim;
    for (int k = 0; k < x.ndim; k++) aw.shape[k] = (uint64_t)x.shape[k];
    /* One piece, the whole input, from producer w2 (the coordinator may stand in for it). */
    nnm_await_piece whole;
    memset(&whole, 0, sizeof whole);
    snprintf(whole.from, sizeof whole.from, "w2");
    for (int k = 0; k < x.ndim; k++) whole.shape[k] = (uint64_t)x.shape[k];
    aw.npiece = 1;
    aw.pieces = &whole;
    const char *ret[1] = { "output" };
    uint64_t zero[NNM_MAX_DIMS] = { 0 };
    nnm_frame f;

    /* A piece of another dtype. */
    routed_task(&f, h, nodes, 101, &aw, ret);
    assert_int_equal(nnm_link_send(c.l, "w1", &f, &d), NNM_OK);
    nnm_tensor bad;
    assert_int_equal(nnm_tensor_init(&bad, NNM_DT_I32, x.ndim, x.shape), NNM_OK);
    assert_int_equal(send_piece(&c, 101, &bad, zero), NNM_OK);
    long st = answer_of(&c, 101, 3000);
    print_message("piece of another dtype: status %ld (%s)\n", st, nnm_strerror((nnm_err)st));
    assert_int_equal(st, NNM_ESHAPE);
    nnm_tensor_cleanup(&bad);

    /* A piece past the awaited input's bounds (one row too low). */
    routed_task(&f, h, nodes, 102, &aw, ret);
    assert_int_equal(nnm_link_send(c.l, "w1", &f, &d), NNM_OK);
    uint64_t low[NNM_MAX_DIMS] = { 0, 0, 1, 0 };
    assert_int_equal(send_piece(&c, 102, &x, low), NNM_OK);
    st = answer_of(&c, 102, 3000);
    print_message("piece out of bounds: status %ld (%s)\n", st, nnm_strerror((nnm_err)st));
    assert_int_equal(st, NNM_ESHAPE);

    /* Awaited inputs past the inbox's bytes: refused at once. */
    nnm_task_await big = aw;
    nnm_await_piece bigp = whole;
    big.shape[2] = bigp.shape[2] = 1000;
    big.shape[3] = bigp.shape[3] = 1000;
    big.pieces = &bigp;
    routed_task(&f, h, nodes, 103, &big, ret);
    assert_int_equal(nnm_link_send(c.l, "w1", &f, &d), NNM_OK);
    st = answer_of(&c, 103, 3000);
    print_message("awaits past the inbox's bytes: status %ld (%s)\n", st, nnm_strerror((nnm_err)st));
    assert_int_equal(st, NNM_ERANGE);

    /* An await listing one box twice (a task that would wait for a piece coming once):
     * refused at once, not left to time out. */
    nnm_task_await twice = aw;
    nnm_await_piece two[2] = { whole, whole };
    twice.npiece = 2;
    twice.pieces = two;
    routed_task(&f, h, nodes, 107, &twice, ret);
    assert_int_equal(nnm_link_send(c.l, "w1", &f, &d), NNM_OK);
    st = answer_of(&c, 107, 3000);
    print_message("one box listed twice: status %ld (%s)\n", st, nnm_strerror((nnm_err)st));
    assert_int_equal(st, NNM_ESHAPE);

    /* Pieces that never come: answered with a timeout after the hold time; a piece for a
     * task that never comes is dropped after it. */
    routed_task(&f, h, nodes, 104, &aw, ret);
    assert_int_equal(nnm_link_send(c.l, "w1", &f, &d), NNM_OK);
    assert_int_equal(send_piece(&c, 999, &x, zero), NNM_OK);
    st = answer_of(&c, 104, 3000);
    print_message("pieces never sent: status %ld (%s)\n", st, nnm_strerror((nnm_err)st));
    assert_int_equal(st, NNM_ETIMEOUT);
    nnm_coord_inbox_stats is;
    INBOX_WAIT(n1.env.inbox, is, is.pieces_dropped == 1 && is.waiting + is.early == 0);
    print_message("inbox: routed %llu, completed %llu, expired %llu, rejected %llu, pieces early "
                  "%llu dropped %llu, waiting %zu, held %zu bytes\n",
                  (unsigned long long)is.routed, (unsigned long long)is.completed,
                  (unsigned long long)is.expired, (unsigned long long)is.rejected,
                  (unsigned long long)is.pieces_early, (unsigned long long)is.pieces_dropped,
                  is.waiting, is.bytes);
    assert_int_equal(is.expired, 1);
    assert_int_equal(is.rejected, 4);
    assert_int_equal(is.pieces_dropped, 1);
    assert_int_equal(is.waiting + is.early, 0);
    assert_int_equal(is.bytes, 0);

    /* The worker still serves: a good routed task, its piece sent first by its producer w2
     * (held until the task comes); the same piece again after the task ran is a duplicate,
     * not held. */
    assert_int_equal(send_piece(&n2.e, 105, &x, zero), NNM_OK);
    usleep(100000);
    routed_task(&f, h, nodes, 105, &aw, ret);
    assert_int_equal(nnm_link_send(c.l, "w1", &f, &d), NNM_OK);
    nnm_tensor out;
    assert_int_equal(result_of(&c, 105, &out), 0);
    print_message("good routed task after them, its piece from producer w2: rel diff %.3g\n",
                  rel_diff(&out, &want));
    assert_true(rel_diff(&out, &want) <= 1e-5);
    nnm_tensor_cleanup(&out);
    assert_int_equal(send_piece(&n2.e, 105, &x, zero), NNM_OK);
    INBOX_WAIT(n1.env.inbox, is, is.pieces_dup == 1);
    usleep(100000);                 /* and it is not held either */
    nnm_coord_inbox_stats_get(n1.env.inbox, &is);
    print_message("the piece again after its task ran: duplicates %llu, held %zu\n",
                  (unsigned long long)is.pieces_dup, is.early);
    assert_int_equal(is.pieces_dup, 1);
    assert_int_equal(is.early, 0);

    /* Pieces are bound to their producers: the task names w3 as the producer; w2, trusted
     * but no party to the task, sends the piece (after the task, and once before it): both
     * dropped and counted, the task waits on; the coordinator's copy completes it. */
    nnm_await_piece from_w3 = whole;
    snprintf(from_w3.from, sizeof from_w3.from, "w3");
    aw.pieces = &from_w3;
    assert_int_equal(send_piece(&n2.e, 106, &x, zero), NNM_OK);
    usleep(100000);
    routed_task(&f, h, nodes, 106, &aw, ret);
    assert_int_equal(nnm_link_send(c.l, "w1", &f, &d), NNM_OK);
    usleep(100000);
    assert_int_equal(send_piece(&n2.e, 106, &x, zero), NNM_OK);
    INBOX_WAIT(n1.env.inbox, is, is.pieces_foreign == 2);
    print_message("pieces from a node that does not produce them: foreign %llu, task still "
                  "waiting %zu\n", (unsigned long long)is.pieces_foreign, is.waiting);
    assert_int_equal(is.pieces_foreign, 2);
    assert_int_equal(is.waiting, 1);
    assert_int_equal(send_piece(&c, 106, &x, zero), NNM_OK);
    assert_int_equal(result_of(&c, 106, &out), 0);
    print_message("then the coordinator's piece: rel diff %.3g\n", rel_diff(&out, &want));
    assert_true(rel_diff(&out, &want) <= 1e-5);
    nnm_tensor_cleanup(&out);
    INBOX_WAIT(n1.env.inbox, is, is.completed == 2 && is.waiting + is.early == 0);
    assert_int_equal(is.completed, 2);
    assert_int_equal(is.waiting + is.early, 0);

    /* Early pieces for tasks that never come: one sender holds at most its share (a quarter
     * of the inbox's 64 KiB: 5 of LeNet's 3136-byte inputs); another sender's piece is still
     * held. */
    nnm_coord_inbox_stats before = is;
    for (uint64_t id = 200; id < 206; id++) assert_int_equal(send_piece(&n2.e, id, &x, zero), NNM_OK);
    assert_int_equal(send_piece(&c, 206, &x, zero), NNM_OK);
    INBOX_WAIT(n1.env.inbox, is,
               is.pieces_early + is.pieces_dropped == before.pieces_early + before.pieces_dropped + 7);
    print_message("6 early pieces from one sender, 1 from another: held %zu, dropped %llu\n",
                  is.early, (unsigned long long)(is.pieces_dropped - before.pieces_dropped));
    assert_int_equal(is.early, 6);
    assert_int_equal(is.pieces_early - before.pieces_early, 6);
    assert_int_equal(is.pieces_dropped - before.pieces_dropped, 1);

    atomic_store(&n1.stop, 1);
    pthread_join(n1.th, NULL);
    nnm_coord_inbox_free(n1.env.inbox);
    nnm_worker_free(n1.w);
    nnm_tensor_cleanup(&x);
    nnm_tensor_cleanup(&want);
    nnm_graph_free(g);
    ep_close(&c);
    ep_close(&n1.e);
    ep_close(&n2.e);
    test_broker_cleanup(&br);
}

int main(void)
{
    const char *src = getenv("top_srcdir");
    if (src == NULL) src = "..";
    snprintf(lenet, sizeof lenet, "%s/examples/models/lenet5-fmnist.onnx", src);
    snprintf(sample, sizeof sample, "%s/examples/models/sample-0-ankle-boot.npy", src);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_coord_mesh_matches_single_node_ships_weights_survives_stopped_peers),
        cmocka_unit_test(test_coord_spot_check_catches_corrupt_peer_never_flags_honest_ones),
        cmocka_unit_test(test_coord_forwarding_routes_stage_outputs_peer_to_peer),
        cmocka_unit_test(test_coord_routed_bad_input_refused_worker_keeps_serving),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
