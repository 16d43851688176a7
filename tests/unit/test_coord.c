/* tests/unit/test_coord.c — a request run across three nodes on a real mosquitto: the
 * coordinator plans with the scheduler, sends tasks (shipping the slice's weights to a peer
 * that lacks the model), joins the parts, and gets the single-node output. A peer that stops
 * answering costs a timeout, not the answer; its late results are discarded. */
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
    atomic_int stop, mute;
    atomic_int served;
} wnode;

static void *serve_loop(void *arg)
{
    wnode *n = arg;
    while (!atomic_load(&n->stop)) {
        if (atomic_load(&n->mute)) {       /* a stopped peer: reads nothing */
            usleep(20000);
            continue;
        }
        nnm_link_msg m;
        memset(&m, 0, sizeof m);
        if (nnm_link_recv(n->e.l, &m, 50, NULL) != NNM_OK) continue;
        if (m.frame && (m.frame->hdr.type == NNM_FRAME_TASK || m.frame->hdr.type == NNM_FRAME_TENSOR)) {
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
    ep_new_identity(&c, "coord");
    ep_new_identity(&n1.e, "w1");
    ep_new_identity(&n2.e, "w2");
    nnm_identity *ids[3] = { c.id, n1.e.id, n2.e.id };
    const char *names[3] = { "coord", "w1", "w2" };
    c.trust = trust_of(ids, names, 3);
    n1.e.trust = trust_of(ids, names, 3);
    n2.e.trust = trust_of(ids, names, 3);
    ep_open(&c, br.uri, 0, 3000);
    ep_open(&n1.e, br.uri, 0, 3000);
    ep_open(&n2.e, br.uri, 0, 3000);

    /* The model and its hash; every worker, the coordinator's included. */
    uint8_t h[NNM_WIRE_HASH_BYTES];
    FILE *f = fopen(lenet, "rb");
    assert_non_null(f);
    static uint8_t buf[1 << 20];
    size_t len = fread(buf, 1, sizeof buf, f);
    fclose(f);
    nnm_model_hash(h, buf, len);
    nnm_diag d;
    nnm_worker *cw = NULL;
    assert_int_equal(nnm_worker_new(&cw, NULL, &d), NNM_OK);
    assert_int_equal(nnm_worker_add_model(cw, h, load(), &d), NNM_OK);
    assert_int_equal(nnm_worker_new(&n1.w, NULL, &d), NNM_OK);
    assert_int_equal(nnm_worker_add_model(n1.w, h, load(), &d), NNM_OK);
    assert_int_equal(nnm_worker_new(&n2.w, NULL, &d), NNM_OK);
    wnode *ws[2] = { &n1, &n2 };
    for (int i = 0; i < 2; i++) {
        ws[i]->env.link = ws[i]->e.l;
        ws[i]->env.worker = ws[i]->w;
        ws[i]->env.self = ws[i]->e.name;
        assert_int_equal(pthread_create(&ws[i]->th, NULL, serve_loop, ws[i]), 0);
    }

    /* A slow coordinator and two fast peers: the capacity-proportional plan hands the
     * work to the peers. */
    nnm_sched *s = NULL;
    assert_int_equal(nnm_sched_new(&s, "coord", NULL, &d), NNM_OK);
    for (int i = 0; i < 3; i++) {
        nnm_mesh_node mn;
        memset(&mn, 0, sizeof mn);
        snprintf(mn.id, sizeof mn.id, "%s", names[i]);
        for (int k = 0; k < NNM_OPC__COUNT; k++) mn.gflops[k] = i == 0 ? 0.001 : 20;
        assert_int_equal(nnm_sched_node_set(s, &mn, &d), NNM_OK);
    }
    nnm_coord_env env;
    memset(&env, 0, sizeof env);
    env.link = c.l;
    env.worker = cw;
    env.sched = s;
    env.self = "coord";
    env.peer_has_model = has_model;
    atomic_store(&w1_has_model, 1);
    env.task_timeout_ms = 4000;
    nnm_plan_opts po;
    memset(&po, 0, sizeof po);
    po.policy = NNM_POLICY_CAPACITY;

    nnm_graph *g = load();
    nnm_tensor x, want, got;
    assert_int_equal(nnm_npy_load(&x, sample, &d), NNM_OK);
    nnm_exec *ex = NULL;
    assert_int_equal(nnm_exec_new(&ex, g, NULL, &d), NNM_OK);
    assert_int_equal(nnm_exec_run(ex, &x, 1, &want, 1, &d), NNM_OK);
    nnm_exec_free(ex);

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
    int remote = 0;
    for (size_t i = 0; i < ntr; i++) {
        print_message("  %s ran nodes [%u, %u) in %llu us\n", tr[i].node, tr[i].node_begin,
                      tr[i].node_end, (unsigned long long)tr[i].compute_us);
        remote += strcmp(tr[i].node, "coord") != 0;
    }
    assert_true(remote > 0);
    assert_true(st.tasks_sent > 0);
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
    atomic_store(&n1.mute, 1);
    atomic_store(&n2.mute, 1);
    usleep(200000);   /* a worker inside its 50 ms receive finishes it and parks */
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

    /* They wake up: the stale tasks they now answer are discarded, the new request is exact. */
    atomic_store(&n1.mute, 0);
    atomic_store(&n2.mute, 0);
    env.task_timeout_ms = 4000;
    memset(&st, 0, sizeof st);
    rc = nnm_coord_run(&env, g, h, &po, &x, 1, &got, 1, 0, &tr, &ntr, &st, &d);
    assert_int_equal(rc, NNM_OK);
    assert_true(rel_diff(&got, &want) <= 1e-5);
    print_message("after waking: %llu late results discarded\n", (unsigned long long)st.results_late);
    assert_true(st.results_late > 0);
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

int main(void)
{
    const char *src = getenv("top_srcdir");
    if (src == NULL) src = "..";
    snprintf(lenet, sizeof lenet, "%s/examples/models/lenet5-fmnist.onnx", src);
    snprintf(sample, sizeof sample, "%s/examples/models/sample-0-ankle-boot.npy", src);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_coord_mesh_matches_single_node_ships_weights_survives_stopped_peers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
