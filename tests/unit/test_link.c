/* tests/unit/test_link.c — the secure link end to end against real mosquitto brokers: handshake
 * and intact tensors of 1 KB to 64 MB on one broker and across two bridged brokers, link
 * probes, flow control holding back a sender whose receiver does not read, and sessions
 * rekeyed by message count and by age in the middle of traffic. Transfer
 * rates are printed for the record, never asserted. */
#include "test_link_util.h"

static const size_t sizes[] = {1000, 1000000, 16000000, 64000000};

/* Two endpoints a (on uri_a) and b (on uri_b) trusting each other. */
static void pair_open(ep *a, ep *b, const char *uri_a, const char *uri_b, size_t window,
                      unsigned send_timeout_ms)
{
    ep_new_identity(a, "node-a");
    ep_new_identity(b, "node-b");
    nnm_identity *ids[2] = {a->id, b->id};
    const char *names[2] = {"node-a", "node-b"};
    a->trust = trust_of(ids, names, 2);
    b->trust = trust_of(ids, names, 2);
    ep_open(a, uri_a, window, send_timeout_ms);
    ep_open(b, uri_b, window, send_timeout_ms);
}

static void transfer_all(ep *a, ep *b, const char *label)
{
    nnm_diag d = {0};
    nnm_err rc = nnm_link_connect_peer(a->l, "node-b", 20000, &d);
    if (rc != NNM_OK) fprintf(stderr, "connect: %s\n", d.msg);
    assert_int_equal(rc, NNM_OK);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        nnm_tensor t;
        byte_tensor(&t, sizes[i], (unsigned)i + 1);
        double t0 = now_s_f();
        send_tensor(a, "node-b", &t, 100 + i);
        expect_tensor(b, "node-a", &t, 100 + i);
        double dt = now_s_f() - t0;
        printf("# %s: %zu bytes a->b in %.3f s = %.1f MB/s\n", label, sizes[i], dt,
               (double)sizes[i] / dt / 1e6);
        /* and back, which uses the session the other way */
        send_tensor(b, "node-a", &t, 200 + i);
        expect_tensor(a, "node-b", &t, 200 + i);
        nnm_tensor_cleanup(&t);
    }
    /* small-message round trips (a->b->a), for the record */
    nnm_tensor small;
    byte_tensor(&small, 1000, 99);
    double best = 1e9, sum = 0;
    const int rounds = 20;
    for (int i = 0; i < rounds; i++) {
        double t0 = now_s_f();
        send_tensor(a, "node-b", &small, 7);
        expect_tensor(b, "node-a", &small, 7);
        send_tensor(b, "node-a", &small, 8);
        expect_tensor(a, "node-b", &small, 8);
        double dt = now_s_f() - t0;
        sum += dt;
        if (dt < best) best = dt;
    }
    printf("# %s: 1000-byte tensor round trip: best %.2f ms, mean %.2f ms\n", label,
           best * 1e3, sum / rounds * 1e3);
    nnm_tensor_cleanup(&small);
    nnm_link_stats s;
    nnm_link_get_stats(b->l, &s);
    assert_int_equal(drops_total(&s), 0);
    assert_int_equal(s.delivered, sizeof sizes / sizeof sizes[0] + rounds);
    assert_int_equal(s.reasm.streams, 0);
}

static void test_link_one_broker_tensors_intact(void **state)
{
    (void)state;
    test_broker br;
    assert_int_equal(test_broker_start(&br, 0, NULL), 0);
    ep a, b;
    pair_open(&a, &b, br.uri, br.uri, 0, 0);
    transfer_all(&a, &b, "one broker");
    ep_close(&a);
    ep_close(&b);
    test_broker_cleanup(&br);
}

static void test_link_bridged_brokers_tensors_intact(void **state)
{
    (void)state;
    test_broker ba, bb;
    assert_int_equal(test_broker_start_bridged(&ba, &bb), 0);
    ep a, b;
    pair_open(&a, &b, ba.uri, bb.uri, 0, 0);
    transfer_all(&a, &b, "bridged");
    ep_close(&a);
    ep_close(&b);
    test_broker_cleanup(&bb);
    test_broker_cleanup(&ba);
}

static void test_link_probe_gives_estimate(void **state)
{
    (void)state;
    test_broker br;
    assert_int_equal(test_broker_start(&br, 0, NULL), 0);
    ep a, b;
    pair_open(&a, &b, br.uri, br.uri, 0, 0);
    double rtt = -1, mbps = -1;
    assert_int_equal(nnm_link_get_peer_estimate(a.l, "node-b", &rtt, &mbps, NULL), NNM_ENOTFOUND);
    nnm_diag d = {0};
    nnm_err rc = nnm_link_probe(a.l, "node-b", 4u << 20, 20000, &d);
    if (rc != NNM_OK) fprintf(stderr, "probe: %s\n", d.msg);
    assert_int_equal(rc, NNM_OK);
    assert_int_equal(nnm_link_get_peer_estimate(a.l, "node-b", &rtt, &mbps, NULL), NNM_OK);
    printf("# probe: rtt %.3f ms, %.0f Mbit/s\n", rtt, mbps);
    assert_true(rtt > 0);
    assert_true(mbps > 0);
    /* probes are the link's own business: nothing reaches the application */
    nnm_link_msg m;
    assert_int_equal(nnm_link_recv(b.l, &m, 100, NULL), NNM_ETIMEOUT);
    nnm_link_stats s;
    nnm_link_get_stats(b.l, &s);
    assert_int_equal(drops_total(&s), 0);
    ep_close(&a);
    ep_close(&b);
    test_broker_cleanup(&br);
}

static void test_link_slow_receiver_blocks_sender_until_deadline(void **state)
{
    (void)state;
    test_broker br;
    assert_int_equal(test_broker_start(&br, 0, NULL), 0);
    ep a, b;
    const size_t window = 4u << 20, piece = 512u << 10;
    pair_open(&a, &b, br.uri, br.uri, window, 1500);
    assert_int_equal(nnm_link_connect_peer(a.l, "node-b", 20000, NULL), NNM_OK);
    nnm_tensor t;
    byte_tensor(&t, piece, 7);
    nnm_wire_tensor wt;
    assert_int_equal(nnm_wire_tensor_encode(&wt, &t, NNM_CODEC_NONE, NULL), NNM_OK);
    /* b never reads: a must stop at about one window, with a deadline error */
    size_t sent = 0;
    nnm_err rc = NNM_OK;
    nnm_diag d = {0};
    while (sent < 64 && (rc = nnm_link_send_tensors(a.l, "node-b", 1, &wt, 1, &d)) == NNM_OK)
        sent++;
    printf("# flow control: %zu x %zu bytes sent before the deadline: %s\n", sent, piece, d.msg);
    assert_int_equal(rc, NNM_ETIMEOUT);
    assert_true(sent * piece <= window + piece);
    assert_true(sent >= 2);
    nnm_link_stats s;
    nnm_link_get_stats(a.l, &s);
    assert_true(s.send_waits >= 1);
    /* once b reads, a may send again, and everything sent arrives intact */
    for (size_t i = 0; i < sent; i++) expect_tensor(&b, "node-a", &t, 1);
    rc = nnm_link_send_tensors(a.l, "node-b", 2, &wt, 1, &d);
    if (rc != NNM_OK) fprintf(stderr, "send after drain: %s\n", d.msg);
    assert_int_equal(rc, NNM_OK);
    expect_tensor(&b, "node-a", &t, 2);
    nnm_wire_tensor_cleanup(&wt);
    nnm_tensor_cleanup(&t);
    ep_close(&a);
    ep_close(&b);
    test_broker_cleanup(&br);
}

static uint64_t get_sessions(const nnm_link_stats *s) { return s->sessions; }

/* Sessions are rekeyed after a message count and after an age, in the middle of traffic both
 * ways, without losing, duplicating or refusing a frame. */
static void test_link_rekeys_by_count_and_age(void **state)
{
    (void)state;
    test_broker br;
    assert_int_equal(test_broker_start(&br, 0, NULL), 0);
    ep a, b;
    ep_new_identity(&a, "node-a");
    ep_new_identity(&b, "node-b");
    nnm_identity *ids[2] = {a.id, b.id};
    const char *names[2] = {"node-a", "node-b"};
    a.trust = trust_of(ids, names, 2);
    b.trust = trust_of(ids, names, 2);
    ep_open_rekey(&a, br.uri, 0, 0, 8, 0);     /* a new session every 8 messages */
    ep_open_rekey(&b, br.uri, 0, 0, 8, 0);
    nnm_diag d = {0};
    assert_int_equal(nnm_link_connect_peer(a.l, "node-b", 20000, &d), NNM_OK);
    nnm_link_stats sa0, sb0;
    nnm_link_get_stats(a.l, &sa0);
    nnm_link_get_stats(b.l, &sb0);
    const int n = 60;
    for (int i = 0; i < n; i++) {
        nnm_tensor t;
        byte_tensor(&t, 1000 + (size_t)i * 997, (unsigned)i + 1);
        send_tensor(&a, "node-b", &t, 1000 + (uint64_t)i);
        expect_tensor(&b, "node-a", &t, 1000 + (uint64_t)i);
        send_tensor(&b, "node-a", &t, 2000 + (uint64_t)i);
        expect_tensor(&a, "node-b", &t, 2000 + (uint64_t)i);
        nnm_tensor_cleanup(&t);
    }
    nnm_link_stats sa, sb;
    nnm_link_get_stats(a.l, &sa);
    nnm_link_get_stats(b.l, &sb);
    printf("# rekey by count (8): %d tensors each way; sessions a %llu -> %llu, b %llu -> %llu\n",
           n, (unsigned long long)sa0.sessions, (unsigned long long)sa.sessions,
           (unsigned long long)sb0.sessions, (unsigned long long)sb.sessions);
    /* 120 data frames plus acknowledgements: at least a few new sessions on each side. */
    assert_true(sa.sessions - sa0.sessions >= 3);
    assert_true(sb.sessions - sb0.sessions >= 3);
    assert_int_equal(drops_total(&sa), 0);
    assert_int_equal(drops_total(&sb), 0);
    assert_int_equal(sb.delivered - sb0.delivered, (uint64_t)n);
    ep_close(&a);
    ep_close(&b);

    /* By age: a session older than 1 s is replaced at the next send. */
    ep_new_identity(&a, "node-a");
    ep_new_identity(&b, "node-b");
    nnm_identity *ids2[2] = {a.id, b.id};
    a.trust = trust_of(ids2, names, 2);
    b.trust = trust_of(ids2, names, 2);
    ep_open_rekey(&a, br.uri, 0, 0, 0, 1);
    ep_open_rekey(&b, br.uri, 0, 0, 0, 1);
    assert_int_equal(nnm_link_connect_peer(a.l, "node-b", 20000, &d), NNM_OK);
    nnm_tensor t;
    byte_tensor(&t, 5000, 7);
    send_tensor(&a, "node-b", &t, 1);
    expect_tensor(&b, "node-a", &t, 1);
    nnm_link_get_stats(a.l, &sa0);
    for (int i = 0; i < 3; i++) {
        usleep(2100 * 1000);   /* now_s() has 1 s resolution: 2.1 s is surely past the age */
        send_tensor(&a, "node-b", &t, 10 + (uint64_t)i);
        expect_tensor(&b, "node-a", &t, 10 + (uint64_t)i);
        send_tensor(&b, "node-a", &t, 20 + (uint64_t)i);
        expect_tensor(&a, "node-b", &t, 20 + (uint64_t)i);
    }
    uint64_t s_after = wait_stat(a.l, get_sessions, sa0.sessions + 3);
    printf("# rekey by age (1 s): sessions a %llu -> %llu over 3 sends 2.1 s apart\n",
           (unsigned long long)sa0.sessions, (unsigned long long)s_after);
    assert_true(s_after >= sa0.sessions + 3);
    nnm_link_get_stats(a.l, &sa);
    nnm_link_get_stats(b.l, &sb);
    assert_int_equal(drops_total(&sa), 0);
    assert_int_equal(drops_total(&sb), 0);
    nnm_tensor_cleanup(&t);
    ep_close(&a);
    ep_close(&b);
    test_broker_cleanup(&br);
}

int main(void)
{
    if (!test_broker_available()) {
        printf("# SKIP: mosquitto not found (set MOSQUITTO)\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_link_one_broker_tensors_intact),
        cmocka_unit_test(test_link_bridged_brokers_tensors_intact),
        cmocka_unit_test(test_link_probe_gives_estimate),
        cmocka_unit_test(test_link_slow_receiver_blocks_sender_until_deadline),
        cmocka_unit_test(test_link_rekeys_by_count_and_age),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
