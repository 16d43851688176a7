/* tests/unit/test_link_security.c — what the link refuses, each case on its own broker: keys
 * outside the trust file, frames with any flipped bit, replays (at once and after the broker
 * restarted), frames addressed to another node, and a peer revoked by a new trust store
 * (nnm_link_set_trust) while it holds a session. Every refused frame must be counted and
 * none may reach the application. */
#include "test_link_util.h"

#define INBOX(n) "nnmesh/" MESH "/inbox/" n

/* Three endpoints that all trust each other (c only when with_c). */
typedef struct world {
    test_broker br;
    ep a, b, c;
    nnm_mqtt *spy;
} world;

static void world_open(world *w, int with_c, const char *spy_filter)
{
    memset(w, 0, sizeof *w);
    assert_int_equal(test_broker_start(&w->br, 0, NULL), 0);
    ep_new_identity(&w->a, "node-a");
    ep_new_identity(&w->b, "node-b");
    if (with_c) ep_new_identity(&w->c, "node-c");
    nnm_identity *ids[3] = {w->a.id, w->b.id, w->c.id};
    const char *names[3] = {"node-a", "node-b", "node-c"};
    size_t n = with_c ? 3 : 2;
    w->a.trust = trust_of(ids, names, n);
    w->b.trust = trust_of(ids, names, n);
    ep_open(&w->a, w->br.uri, 0, 0);
    ep_open(&w->b, w->br.uri, 0, 0);
    if (with_c) {
        w->c.trust = trust_of(ids, names, n);
        ep_open(&w->c, w->br.uri, 0, 0);
    }
    w->spy = spy_open(w->br.uri, "test-spy", spy_filter);
}

static void world_close(world *w)
{
    nnm_mqtt_free(w->spy);
    ep_close(&w->a);
    ep_close(&w->b);
    ep_close(&w->c);
    test_broker_cleanup(&w->br);
}

static uint64_t get_drops(const nnm_link_stats *s) { return drops_total(s); }
static uint64_t get_untrusted(const nnm_link_stats *s) { return s->drop_untrusted; }
static uint64_t get_replay(const nnm_link_stats *s) { return s->drop_replay; }
static uint64_t get_not_for_me(const nnm_link_stats *s) { return s->drop_not_for_me; }

static void expect_nothing(ep *e)
{
    nnm_link_msg m;
    assert_int_equal(nnm_link_recv(e->l, &m, 200, NULL), NNM_ETIMEOUT);
}

static void test_link_untrusted_key_refused_and_counted(void **state)
{
    (void)state;
    test_broker br;
    assert_int_equal(test_broker_start(&br, 0, NULL), 0);
    ep b, c;
    ep_new_identity(&b, "node-b");
    ep_new_identity(&c, "node-c");
    /* b's trust file lists only b; c (an impostor key) trusts b. */
    nnm_identity *ids[2] = {b.id, c.id};
    const char *names[2] = {"node-b", "node-c"};
    b.trust = trust_of(ids, names, 1);
    c.trust = trust_of(ids, names, 2);
    ep_open(&b, br.uri, 0, 0);
    ep_open(&c, br.uri, 0, 0);

    /* c's hello is refused: no session, c hears nothing back */
    nnm_diag d = {0};
    assert_int_equal(nnm_link_connect_peer(c.l, "node-b", 2500, &d), NNM_ETIMEOUT);
    assert_true(wait_stat(b.l, get_untrusted, 1) >= 1);
    /* b reaching out to c: c answers, and b refuses the answer with the reason */
    assert_int_equal(nnm_link_connect_peer(b.l, "node-c", 10000, &d), NNM_ETRUST);
    printf("# refused: %s\n", d.msg);
    assert_non_null(strstr(d.msg, "node-c"));

    /* a sealed-looking frame claiming to be from c is dropped and counted as untrusted */
    nnm_link_stats s0;
    nnm_link_get_stats(b.l, &s0);
    nnm_frame f;
    memset(&f, 0, sizeof f);
    f.hdr.version = NNM_WIRE_VERSION;
    f.hdr.type = NNM_FRAME_TENSOR;
    strcpy(f.hdr.sender, "node-c");
    strcpy(f.hdr.receiver, "node-b");
    f.hdr.session = 12345;
    f.hdr.counter = 1;
    strcpy(f.hdr.topic, INBOX("node-b"));
    uint8_t *hb = NULL;
    size_t hl = 0;
    assert_int_equal(nnm_frame_header_encode(&hb, &hl, &f.hdr, NULL), NNM_OK);
    uint8_t msg[512];
    memcpy(msg, hb, hl);
    memset(msg + hl, 0x5a, 100);
    free(hb);
    nnm_mqtt *spy = spy_open(br.uri, "test-spy", NULL);
    assert_int_equal(nnm_mqtt_publish(spy, INBOX("node-b"), msg, hl + 100, 1, 0, 5000, NULL),
                     NNM_OK);
    assert_int_equal(wait_stat(b.l, get_untrusted, s0.drop_untrusted + 1),
                     s0.drop_untrusted + 1);
    expect_nothing(&b);
    nnm_link_stats s;
    nnm_link_get_stats(b.l, &s);
    assert_int_equal(s.delivered, 0);
    assert_int_equal(s.sessions, 0);
    nnm_mqtt_free(spy);
    ep_close(&b);
    ep_close(&c);
    test_broker_cleanup(&br);
}

/* Publishes msg with one bit flipped at each byte of [from, to); waits until b counted all. */
static void flip_range(world *w, const nnm_mqtt_msg *orig, size_t from, size_t to,
                       nnm_link_stats *before, nnm_link_stats *after)
{
    nnm_link_get_stats(w->b.l, before);
    uint8_t *buf = malloc(orig->len);
    assert_non_null(buf);
    for (size_t i = from; i < to; i++) {
        memcpy(buf, orig->payload, orig->len);
        buf[i] ^= (uint8_t)(1u << (i % 8));
        assert_int_equal(nnm_mqtt_publish(w->spy, INBOX("node-b"), buf, orig->len, 0, 0, 5000,
                                          NULL), NNM_OK);
    }
    free(buf);
    uint64_t want = drops_total(before) + (to - from);
    assert_int_equal(wait_stat(w->b.l, get_drops, want), want);
    nnm_link_get_stats(w->b.l, after);
}

static void test_link_flipped_bits_rejected_and_counted(void **state)
{
    (void)state;
    world w;
    world_open(&w, 0, INBOX("node-b"));
    nnm_tensor t;
    byte_tensor(&t, 256, 3);
    send_tensor(&w.a, "node-b", &t, 9);
    expect_tensor(&w.b, "node-a", &t, 9);
    size_t hl = 0;
    nnm_mqtt_msg orig = spy_take(w.spy, NNM_FRAME_TENSOR, &hl);
    printf("# frame: %zu bytes, header %zu, nonce %d, tag %d\n", orig.len, hl,
           NNM_ENVELOPE_NONCE_BYTES, NNM_ENVELOPE_TAG_BYTES);

    /* nonce, ciphertext, tag: every flip fails authentication */
    nnm_link_stats s0, s1;
    flip_range(&w, &orig, hl, orig.len, &s0, &s1);
    assert_int_equal(s1.drop_bad_tag - s0.drop_bad_tag, orig.len - hl);
    /* header (the associated data): every flip is refused, for one reason or another */
    flip_range(&w, &orig, 0, hl, &s0, &s1);
    printf("# header flips: malformed %llu, not-for-me %llu, no-session %llu, bad-tag %llu\n",
           (unsigned long long)(s1.drop_malformed - s0.drop_malformed),
           (unsigned long long)(s1.drop_not_for_me - s0.drop_not_for_me),
           (unsigned long long)(s1.drop_no_session - s0.drop_no_session),
           (unsigned long long)(s1.drop_bad_tag - s0.drop_bad_tag));
    assert_int_equal(s1.delivered, 1);
    expect_nothing(&w.b);
    /* the link still works */
    send_tensor(&w.a, "node-b", &t, 10);
    expect_tensor(&w.b, "node-a", &t, 10);
    nnm_mqtt_msg_cleanup(&orig);
    nnm_tensor_cleanup(&t);
    world_close(&w);
}

static void test_link_replay_dropped_at_once_and_after_reconnect(void **state)
{
    (void)state;
    world w;
    world_open(&w, 0, INBOX("node-b"));
    nnm_tensor t;
    byte_tensor(&t, 2000, 5);
    send_tensor(&w.a, "node-b", &t, 1);
    expect_tensor(&w.b, "node-a", &t, 1);
    nnm_mqtt_msg orig = spy_take(w.spy, NNM_FRAME_TENSOR, NULL);

    nnm_link_stats s0;
    nnm_link_get_stats(w.b.l, &s0);
    assert_int_equal(nnm_mqtt_publish(w.spy, INBOX("node-b"), orig.payload, orig.len, 1, 0, 5000,
                                      NULL), NNM_OK);
    assert_int_equal(wait_stat(w.b.l, get_replay, s0.drop_replay + 1), s0.drop_replay + 1);
    expect_nothing(&w.b);

    /* the broker restarts: every client reconnects, sessions and windows survive */
    assert_int_equal(test_broker_restart(&w.br), 0);
    nnm_mqtt_stats ms;
    assert_int_equal(nnm_mqtt_wait_connected(nnm_link_get_mqtt(w.b.l), 30000, NULL), NNM_OK);
    assert_int_equal(nnm_mqtt_wait_connected(nnm_link_get_mqtt(w.a.l), 30000, NULL), NNM_OK);
    assert_int_equal(nnm_mqtt_wait_connected(w.spy, 30000, NULL), NNM_OK);
    nnm_mqtt_get_stats(nnm_link_get_mqtt(w.b.l), &ms);
    assert_true(ms.connects >= 2);
    assert_int_equal(nnm_mqtt_publish(w.spy, INBOX("node-b"), orig.payload, orig.len, 1, 0, 5000,
                                      NULL), NNM_OK);
    assert_int_equal(wait_stat(w.b.l, get_replay, s0.drop_replay + 2), s0.drop_replay + 2);
    expect_nothing(&w.b);
    /* and fresh frames still pass */
    send_tensor(&w.a, "node-b", &t, 2);
    expect_tensor(&w.b, "node-a", &t, 2);
    nnm_link_stats s1;
    nnm_link_get_stats(w.b.l, &s1);
    assert_int_equal(s1.delivered, 2);
    assert_int_equal(s1.sessions, 1);
    nnm_mqtt_msg_cleanup(&orig);
    nnm_tensor_cleanup(&t);
    world_close(&w);
}

static void test_link_frame_for_another_node_rejected(void **state)
{
    (void)state;
    world w;
    world_open(&w, 1, INBOX("node-c"));
    nnm_tensor t;
    byte_tensor(&t, 500, 11);
    assert_int_equal(nnm_link_connect_peer(w.a.l, "node-b", 20000, NULL), NNM_OK);
    send_tensor(&w.a, "node-c", &t, 4);
    expect_tensor(&w.c, "node-a", &t, 4);
    nnm_mqtt_msg orig = spy_take(w.spy, NNM_FRAME_TENSOR, NULL);
    nnm_link_stats s0;
    nnm_link_get_stats(w.b.l, &s0);
    /* a's frame for c, pushed onto b's inbox */
    assert_int_equal(nnm_mqtt_publish(w.spy, INBOX("node-b"), orig.payload, orig.len, 1, 0, 5000,
                                      NULL), NNM_OK);
    assert_int_equal(wait_stat(w.b.l, get_not_for_me, s0.drop_not_for_me + 1),
                     s0.drop_not_for_me + 1);
    expect_nothing(&w.b);
    nnm_link_stats s1;
    nnm_link_get_stats(w.b.l, &s1);
    assert_int_equal(drops_total(&s1), drops_total(&s0) + 1);
    assert_int_equal(s1.delivered, 0);
    nnm_mqtt_msg_cleanup(&orig);
    nnm_tensor_cleanup(&t);
    world_close(&w);
}

static uint64_t get_sessions(const nnm_link_stats *s) { return s->sessions; }
static uint64_t get_rx(const nnm_link_stats *s) { return s->rx_frames; }

/* a and b hold a session; a's new store lacks b: b's queued and later frames are dropped and
 * counted, a cannot send to b, b's new hellos are refused; a store listing b again restores
 * the link after a new handshake. */
static void test_link_set_trust_revokes_and_readmits_peer(void **state)
{
    (void)state;
    world w;
    world_open(&w, 0, INBOX("node-a"));
    nnm_tensor t;
    byte_tensor(&t, 3000, 21);
    send_tensor(&w.b, "node-a", &t, 1);
    expect_tensor(&w.a, "node-b", &t, 1);
    send_tensor(&w.a, "node-b", &t, 2);
    expect_tensor(&w.b, "node-a", &t, 2);
    /* one more frame of b waits in a's receive queue */
    nnm_link_stats s0, s1, s2;
    nnm_link_get_stats(w.a.l, &s0);
    send_tensor(&w.b, "node-a", &t, 3);
    assert_int_equal(wait_stat(w.a.l, get_rx, s0.rx_frames + 1), s0.rx_frames + 1);

    /* a's trust file loses b: the caller frees the old store once set_trust returned */
    nnm_identity *only_a[1] = {w.a.id};
    const char *name_a[1] = {"node-a"};
    nnm_trust *t2 = trust_of(only_a, name_a, 1);
    double t0 = now_s_f();
    assert_int_equal(nnm_link_set_trust(w.a.l, t2), NNM_OK);
    printf("# set_trust took %.3f ms\n", (now_s_f() - t0) * 1e3);
    nnm_trust_free(w.a.trust);
    w.a.trust = t2;
    nnm_link_get_stats(w.a.l, &s1);
    assert_int_equal(s1.peers_revoked, 1);
    assert_int_equal(s1.drop_untrusted, s0.drop_untrusted + 1);   /* the queued frame */
    expect_nothing(&w.a);

    /* b still believes in its session: its next frame is dropped and counted */
    send_tensor(&w.b, "node-a", &t, 4);
    assert_int_equal(wait_stat(w.a.l, get_untrusted, s1.drop_untrusted + 1),
                     s1.drop_untrusted + 1);
    expect_nothing(&w.a);
    /* a sends nothing to b: NNM_ETRUST at once, no hello */
    nnm_wire_tensor wt;
    assert_int_equal(nnm_wire_tensor_encode(&wt, &t, NNM_CODEC_NONE, NULL), NNM_OK);
    wt.name = "x";
    nnm_diag d = {0};
    t0 = now_s_f();
    assert_int_equal(nnm_link_send_tensors(w.a.l, "node-b", 5, &wt, 1, &d), NNM_ETRUST);
    printf("# send to the revoked peer: %s (%.3f ms)\n", d.msg, (now_s_f() - t0) * 1e3);
    assert_non_null(strstr(d.msg, "node-b"));
    assert_true(now_s_f() - t0 < 5.0);
    assert_int_equal(nnm_link_connect_peer(w.a.l, "node-b", 1000, NULL), NNM_ETRUST);

    /* b restarts (same key) and says hello: refused, no session */
    nnm_link_free(w.b.l);
    w.b.l = NULL;
    ep_open(&w.b, w.br.uri, 0, 0);
    nnm_link_get_stats(w.a.l, &s2);
    assert_int_equal(nnm_link_connect_peer(w.b.l, "node-a", 2500, &d), NNM_ETIMEOUT);
    assert_true(wait_stat(w.a.l, get_untrusted, s2.drop_untrusted + 1) >= s2.drop_untrusted + 1);
    nnm_link_stats s3;
    nnm_link_get_stats(w.a.l, &s3);
    assert_int_equal(s3.sessions, s2.sessions);
    assert_int_equal(s3.delivered, 1);
    printf("# revoked: queued frame, later frame and %llu refused hello(s) counted untrusted\n",
           (unsigned long long)(s3.drop_untrusted - s2.drop_untrusted));

    /* b is listed again: a new handshake restores both directions */
    nnm_identity *both[2] = {w.a.id, w.b.id};
    const char *names[2] = {"node-a", "node-b"};
    nnm_trust *t3 = trust_of(both, names, 2);
    assert_int_equal(nnm_link_set_trust(w.a.l, t3), NNM_OK);
    nnm_trust_free(w.a.trust);
    w.a.trust = t3;
    assert_int_equal(nnm_link_connect_peer(w.b.l, "node-a", 20000, &d), NNM_OK);
    assert_true(wait_stat(w.a.l, get_sessions, s3.sessions + 1) >= s3.sessions + 1);
    send_tensor(&w.a, "node-b", &t, 6);
    expect_tensor(&w.b, "node-a", &t, 6);
    send_tensor(&w.b, "node-a", &t, 7);
    expect_tensor(&w.a, "node-b", &t, 7);
    nnm_link_stats s4;
    nnm_link_get_stats(w.a.l, &s4);
    assert_int_equal(s4.peers_revoked, 1);
    assert_int_equal(s4.delivered, 2);
    nnm_wire_tensor_cleanup(&wt);
    nnm_tensor_cleanup(&t);
    world_close(&w);
}

int main(void)
{
    if (!test_broker_available()) {
        printf("# SKIP: mosquitto not found (set MOSQUITTO)\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_link_untrusted_key_refused_and_counted),
        cmocka_unit_test(test_link_flipped_bits_rejected_and_counted),
        cmocka_unit_test(test_link_replay_dropped_at_once_and_after_reconnect),
        cmocka_unit_test(test_link_frame_for_another_node_rejected),
        cmocka_unit_test(test_link_set_trust_revokes_and_readmits_peer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
