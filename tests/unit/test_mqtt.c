/* tests/unit/test_mqtt.c — the MQTT session against real mosquitto brokers: publish and
 * subscribe, the size cap, retained messages and the Last Will on a clean leave, broker
 * fallback, reconnect with backoff when the broker is missing at start or restarts (with
 * subscriptions restored), and v5 shared subscriptions. */
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "nnmesh/transport.h"
#include "broker.h"

static nnm_mqtt *client(const char *id, const char *uri, const char *filter)
{
    nnm_mqtt_opts o;
    nnm_mqtt_opts_init(&o);
    o.client_id = id;
    o.uris[0] = uri;
    o.nuris = 1;
    o.backoff_min_ms = 100;
    o.backoff_max_ms = 1000;
    nnm_mqtt *m = NULL;
    assert_int_equal(nnm_mqtt_new(&m, &o, NULL), NNM_OK);
    if (filter != NULL) assert_int_equal(nnm_mqtt_subscribe(m, filter, 1, NULL), NNM_OK);
    assert_int_equal(nnm_mqtt_start(m, NULL), NNM_OK);
    assert_int_equal(nnm_mqtt_wait_connected(m, 15000, NULL), NNM_OK);
    return m;
}

static void expect_msg(nnm_mqtt *m, const char *topic, const void *payload, size_t len)
{
    nnm_mqtt_msg msg;
    assert_int_equal(nnm_mqtt_recv(m, &msg, 10000, NULL), NNM_OK);
    assert_string_equal(msg.topic, topic);
    assert_int_equal(msg.len, len);
    if (len) assert_memory_equal(msg.payload, payload, len);
    nnm_mqtt_msg_cleanup(&msg);
}

static void test_mqtt_publish_subscribe_roundtrip(void **state)
{
    (void)state;
    test_broker br;
    assert_int_equal(test_broker_start(&br, 0, NULL), 0);
    nnm_mqtt *sub = client("t-sub", br.uri, "nnmesh/t/+/x");
    nnm_mqtt *pub = client("t-pub", br.uri, NULL);
    assert_int_equal(nnm_mqtt_publish(pub, "nnmesh/t/a/x", "hello", 5, 0, 0, 1000, NULL), NNM_OK);
    expect_msg(sub, "nnmesh/t/a/x", "hello", 5);
    assert_int_equal(nnm_mqtt_publish(pub, "nnmesh/t/b/x", "", 0, 1, 0, 1000, NULL), NNM_OK);
    expect_msg(sub, "nnmesh/t/b/x", "", 0);
    /* 1 MiB passes, one byte more is refused: callers chunk */
    size_t big = 1u << 20;
    uint8_t *buf = calloc(1, big + 1);
    assert_non_null(buf);
    buf[big - 1] = 7;
    assert_int_equal(nnm_mqtt_publish(pub, "nnmesh/t/c/x", buf, big, 0, 0, 1000, NULL), NNM_OK);
    expect_msg(sub, "nnmesh/t/c/x", buf, big);
    nnm_diag d = {0};
    assert_int_equal(nnm_mqtt_publish(pub, "nnmesh/t/c/x", buf, big + 1, 0, 0, 1000, &d),
                     NNM_ERANGE);
    assert_non_null(strstr(d.msg, "chunk"));
    free(buf);
    /* wildcards are not topic names */
    assert_int_equal(nnm_mqtt_publish(pub, "nnmesh/+/x", "x", 1, 0, 0, 0, NULL), NNM_EINVAL);
    assert_int_equal(nnm_mqtt_subscribe(sub, "nnmesh/#/x", 0, NULL), NNM_EINVAL);
    /* many QoS 0 messages pipeline through the raised buffer limit */
    for (int i = 0; i < 2000; i++)
        assert_int_equal(nnm_mqtt_publish(pub, "nnmesh/t/d/x", &i, sizeof i, 0, 0, 5000, NULL),
                         NNM_OK);
    for (int i = 0; i < 2000; i++) expect_msg(sub, "nnmesh/t/d/x", &i, sizeof i);
    nnm_mqtt_free(pub);
    nnm_mqtt_free(sub);
    test_broker_cleanup(&br);
}

static void test_mqtt_clean_leave_publishes_will_clearing_retained(void **state)
{
    (void)state;
    test_broker br;
    assert_int_equal(test_broker_start(&br, 0, NULL), 0);
    const char *topic = "nnmesh/t/advert/n1";
    nnm_mqtt_opts o;
    nnm_mqtt_opts_init(&o);
    o.client_id = "t-n1";
    o.uris[0] = br.uri;
    o.nuris = 1;
    o.will_topic = topic;
    o.will_payload = NULL;
    o.will_len = 0;
    o.will_retain = 1;
    nnm_mqtt *n1 = NULL;
    assert_int_equal(nnm_mqtt_new(&n1, &o, NULL), NNM_OK);
    assert_int_equal(nnm_mqtt_start(n1, NULL), NNM_OK);
    assert_int_equal(nnm_mqtt_wait_connected(n1, 15000, NULL), NNM_OK);
    assert_int_equal(nnm_mqtt_publish(n1, topic, "advert", 6, 1, 1, 1000, NULL), NNM_OK);
    /* a late subscriber gets the retained advert */
    nnm_mqtt *obs = client("t-obs", br.uri, topic);
    expect_msg(obs, topic, "advert", 6);
    /* leaving clears it: the observer sees the empty will, a new subscriber sees nothing */
    assert_int_equal(nnm_mqtt_stop(n1, NULL), NNM_OK);
    expect_msg(obs, topic, "", 0);
    nnm_mqtt *late = client("t-late", br.uri, topic);
    nnm_mqtt_msg m;
    assert_int_equal(nnm_mqtt_recv(late, &m, 500, NULL), NNM_ETIMEOUT);
    nnm_mqtt_stats st;
    nnm_mqtt_get_stats(n1, &st);
    assert_int_equal(st.connected, 0);
    assert_int_equal(nnm_mqtt_publish(n1, topic, "x", 1, 0, 0, 0, NULL), NNM_ECONN);
    nnm_mqtt_free(late);
    nnm_mqtt_free(obs);
    nnm_mqtt_free(n1);
    test_broker_cleanup(&br);
}

/* Event log shared with the Paho thread. */
typedef struct evlog {
    pthread_mutex_t mu;
    unsigned failures, connected, lost;
    unsigned attempt[64], retry[64];
} evlog;

static void on_event(void *ctx, nnm_mqtt_event ev, const char *uri, unsigned attempt,
                     unsigned retry_ms, const char *msg)
{
    (void)uri;
    evlog *e = ctx;
    pthread_mutex_lock(&e->mu);
    if (ev == NNM_MQTT_EV_CONNECT_FAILED) {
        if (e->failures < 64) {
            e->attempt[e->failures] = attempt;
            e->retry[e->failures] = retry_ms;
        }
        if (e->failures < 3) printf("# event: %s\n", msg);
        e->failures++;
    } else if (ev == NNM_MQTT_EV_CONNECTED) {
        e->connected++;
    } else if (ev == NNM_MQTT_EV_LOST) {
        printf("# event: %s\n", msg);
        e->lost++;
    }
    pthread_mutex_unlock(&e->mu);
}

static void test_mqtt_broker_absent_at_start_retries_then_connects(void **state)
{
    (void)state;
    int port = test_broker_free_port();
    assert_true(port > 0);
    char uri[64];
    snprintf(uri, sizeof uri, "tcp://127.0.0.1:%d", port);
    evlog ev = {.mu = PTHREAD_MUTEX_INITIALIZER};
    nnm_mqtt_opts o;
    nnm_mqtt_opts_init(&o);
    o.client_id = "t-early";
    o.uris[0] = uri;
    o.nuris = 1;
    o.backoff_min_ms = 50;
    o.backoff_max_ms = 400;
    o.on_event = on_event;
    o.on_event_ctx = &ev;
    nnm_mqtt *m = NULL;
    assert_int_equal(nnm_mqtt_new(&m, &o, NULL), NNM_OK);
    assert_int_equal(nnm_mqtt_subscribe(m, "nnmesh/t/early", 1, NULL), NNM_OK);
    assert_int_equal(nnm_mqtt_start(m, NULL), NNM_OK);
    nnm_diag d = {0};
    assert_int_equal(nnm_mqtt_wait_connected(m, 300, &d), NNM_ETIMEOUT);
    /* wait for several reported failures */
    for (int i = 0; i < 3000; i++) {
        pthread_mutex_lock(&ev.mu);
        unsigned f = ev.failures;
        pthread_mutex_unlock(&ev.mu);
        if (f >= 5) break;
        usleep(10000);
    }
    pthread_mutex_lock(&ev.mu);
    assert_true(ev.failures >= 5);
    /* each failure is reported with its attempt number and a delay inside the jittered
     * exponential envelope [d/2, d], d = min(max, min * 2^(attempt-1)) */
    for (unsigned i = 0; i < ev.failures && i < 64; i++) {
        unsigned a = ev.attempt[i], dd = o.backoff_min_ms;
        assert_int_equal(a, i + 1);
        for (unsigned k = 1; k < a && dd < o.backoff_max_ms; k++) dd *= 2;
        if (dd > o.backoff_max_ms) dd = o.backoff_max_ms;
        assert_true(ev.retry[i] >= dd - dd / 2 && ev.retry[i] <= dd);
    }
    pthread_mutex_unlock(&ev.mu);
    /* the broker appears: the session connects and its subscription works */
    test_broker br;
    assert_int_equal(test_broker_start(&br, port, NULL), 0);
    assert_int_equal(nnm_mqtt_wait_connected(m, 30000, &d), NNM_OK);
    nnm_mqtt *pub = client("t-early-pub", br.uri, NULL);
    assert_int_equal(nnm_mqtt_publish(pub, "nnmesh/t/early", "up", 2, 1, 0, 1000, NULL), NNM_OK);
    expect_msg(m, "nnmesh/t/early", "up", 2);
    nnm_mqtt_stats st;
    nnm_mqtt_get_stats(m, &st);
    assert_true(st.connect_failures >= 5);
    assert_int_equal(st.connects, 1);
    assert_string_equal(st.uri, uri);
    nnm_mqtt_free(pub);
    nnm_mqtt_free(m);
    test_broker_cleanup(&br);
}

static void test_mqtt_first_broker_down_falls_back_to_second(void **state)
{
    (void)state;
    test_broker br;
    assert_int_equal(test_broker_start(&br, 0, NULL), 0);
    char dead[64];
    snprintf(dead, sizeof dead, "tcp://127.0.0.1:%d", test_broker_free_port());
    nnm_mqtt_opts o;
    nnm_mqtt_opts_init(&o);
    o.client_id = "t-fallback";
    o.uris[0] = dead;
    o.uris[1] = br.uri;
    o.nuris = 2;
    nnm_mqtt *m = NULL;
    assert_int_equal(nnm_mqtt_new(&m, &o, NULL), NNM_OK);
    assert_int_equal(nnm_mqtt_start(m, NULL), NNM_OK);
    assert_int_equal(nnm_mqtt_wait_connected(m, 15000, NULL), NNM_OK);
    nnm_mqtt_stats st;
    nnm_mqtt_get_stats(m, &st);
    assert_string_equal(st.uri, br.uri);
    nnm_mqtt_free(m);
    test_broker_cleanup(&br);
}

static void test_mqtt_broker_restart_reconnects_and_resubscribes(void **state)
{
    (void)state;
    test_broker br;
    assert_int_equal(test_broker_start(&br, 0, NULL), 0);
    evlog ev = {.mu = PTHREAD_MUTEX_INITIALIZER};
    nnm_mqtt_opts o;
    nnm_mqtt_opts_init(&o);
    o.client_id = "t-restart";
    o.uris[0] = br.uri;
    o.nuris = 1;
    o.backoff_min_ms = 100;
    o.backoff_max_ms = 1000;
    o.on_event = on_event;
    o.on_event_ctx = &ev;
    nnm_mqtt *m = NULL;
    assert_int_equal(nnm_mqtt_new(&m, &o, NULL), NNM_OK);
    assert_int_equal(nnm_mqtt_start(m, NULL), NNM_OK);
    assert_int_equal(nnm_mqtt_subscribe(m, "nnmesh/t/r", 1, NULL), NNM_OK);   /* while up */
    assert_int_equal(nnm_mqtt_wait_connected(m, 15000, NULL), NNM_OK);
    assert_int_equal(test_broker_restart(&br), 0);   /* no persistence: subscriptions gone */
    for (int i = 0; i < 3000; i++) {
        nnm_mqtt_stats st;
        nnm_mqtt_get_stats(m, &st);
        if (st.connects >= 2 && st.connected) break;
        usleep(10000);
    }
    nnm_mqtt_stats st;
    nnm_mqtt_get_stats(m, &st);
    assert_true(st.lost >= 1);
    assert_true(st.connects >= 2);
    nnm_mqtt *pub = client("t-restart-pub", br.uri, NULL);
    assert_int_equal(nnm_mqtt_publish(pub, "nnmesh/t/r", "again", 5, 1, 0, 1000, NULL), NNM_OK);
    expect_msg(m, "nnmesh/t/r", "again", 5);
    /* The events are emitted on Paho's thread after the state it reports changed (ST_UP is
     * set before the "connected" event is emitted): polled, not assumed already logged. */
    for (int i = 0; i < 1000; i++) {
        pthread_mutex_lock(&ev.mu);
        int done = ev.lost >= 1 && ev.connected >= 2;
        pthread_mutex_unlock(&ev.mu);
        if (done) break;
        usleep(10000);
    }
    pthread_mutex_lock(&ev.mu);
    assert_true(ev.lost >= 1);
    assert_true(ev.connected >= 2);
    pthread_mutex_unlock(&ev.mu);
    nnm_mqtt_free(pub);
    nnm_mqtt_free(m);
    test_broker_cleanup(&br);
}

static void test_mqtt_shared_subscription_splits_messages(void **state)
{
    (void)state;
    test_broker br;
    assert_int_equal(test_broker_start(&br, 0, NULL), 0);
    nnm_mqtt *w1 = client("t-w1", br.uri, "$share/workers/nnmesh/t/jobs");
    nnm_mqtt *w2 = client("t-w2", br.uri, "$share/workers/nnmesh/t/jobs");
    nnm_mqtt *pub = client("t-jobs", br.uri, NULL);
    const int n = 40;
    for (int i = 0; i < n; i++)
        assert_int_equal(nnm_mqtt_publish(pub, "nnmesh/t/jobs", &i, sizeof i, 1, 0, 1000, NULL),
                         NNM_OK);
    int got1 = 0, got2 = 0, seen[40] = {0};
    nnm_mqtt_msg m;
    for (int tries = 0; tries < 300 && got1 + got2 < n; tries++) {   /* <= 30 s */
        if (nnm_mqtt_recv(w1, &m, 50, NULL) == NNM_OK) {
            got1++;
            seen[*(int *)m.payload]++;
            nnm_mqtt_msg_cleanup(&m);
        }
        if (nnm_mqtt_recv(w2, &m, 50, NULL) == NNM_OK) {
            got2++;
            seen[*(int *)m.payload]++;
            nnm_mqtt_msg_cleanup(&m);
        }
    }
    printf("# shared subscription: %d + %d of %d\n", got1, got2, n);
    assert_int_equal(got1 + got2, n);
    assert_true(got1 > 0 && got2 > 0);
    for (int i = 0; i < n; i++) assert_int_equal(seen[i], 1);
    nnm_mqtt_free(pub);
    nnm_mqtt_free(w2);
    nnm_mqtt_free(w1);
    test_broker_cleanup(&br);
}

static void test_mqtt_bad_options_rejected(void **state)
{
    (void)state;
    nnm_mqtt_opts o;
    nnm_mqtt_opts_init(&o);
    nnm_mqtt *m = NULL;
    nnm_diag d = {0};
    o.client_id = "ok";
    assert_int_equal(nnm_mqtt_new(&m, &o, &d), NNM_EINVAL);   /* no uri */
    assert_null(m);
    o.uris[0] = "http://x";
    o.nuris = 1;
    assert_int_equal(nnm_mqtt_new(&m, &o, &d), NNM_EINVAL);
    o.uris[0] = "tcp://127.0.0.1:1";
    o.client_id = "bad/id";
    assert_int_equal(nnm_mqtt_new(&m, &o, &d), NNM_EINVAL);
    o.client_id = "ok";
    o.will_topic = "a/#";
    assert_int_equal(nnm_mqtt_new(&m, &o, &d), NNM_EINVAL);
    nnm_mqtt_free(NULL);
}

int main(void)
{
    if (!test_broker_available()) {
        printf("# SKIP: mosquitto not found (set MOSQUITTO)\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mqtt_bad_options_rejected),
        cmocka_unit_test(test_mqtt_publish_subscribe_roundtrip),
        cmocka_unit_test(test_mqtt_clean_leave_publishes_will_clearing_retained),
        cmocka_unit_test(test_mqtt_broker_absent_at_start_retries_then_connects),
        cmocka_unit_test(test_mqtt_first_broker_down_falls_back_to_second),
        cmocka_unit_test(test_mqtt_broker_restart_reconnects_and_resubscribes),
        cmocka_unit_test(test_mqtt_shared_subscription_splits_messages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
