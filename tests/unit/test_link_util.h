/* tests/unit/test_link_util.h — helpers shared by the link tests: endpoints (identity, trust
 * store, link) on a test broker, byte tensors, a raw "spy" MQTT client, and waiting for a
 * stats counter. Everything asserts through cmocka. */
#ifndef TEST_LINK_UTIL_H
#define TEST_LINK_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "nnmesh/transport.h"
#include "nnmesh/wire.h"
#include "nnmesh/crypto.h"
#include "broker.h"

#define MESH "test-mesh"

typedef struct ep {
    char name[NNM_ID_MAX + 1];
    nnm_identity *id;
    nnm_trust *trust;
    nnm_link *l;
} ep;

static inline double now_s_f(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A trust store listing the given identities under the given names. */
static inline nnm_trust *trust_of(nnm_identity *const *ids, const char *const *names, size_t n)
{
    char text[4096] = "# test trust file\n";
    for (size_t i = 0; i < n; i++) {
        char b64[NNM_PUBKEY_B64_SIZE], line[128];
        nnm_pubkey_encode(b64, nnm_identity_get_pubkey(ids[i]));
        snprintf(line, sizeof line, "node %s %s\n", names[i], b64);
        strcat(text, line);
    }
    nnm_trust *t = NULL;
    nnm_diag d = {0};
    nnm_err rc = nnm_trust_decode(&t, text, strlen(text), "test-trust", &d);
    if (rc != NNM_OK) fprintf(stderr, "trust: %s\n", d.msg);
    assert_int_equal(rc, NNM_OK);
    return t;
}

/* Opens endpoint e (identity already in e->id, trust in e->trust) on uri and starts it, with
 * the link's rekey policy (0, 0: crypto's defaults). */
static inline void ep_open_rekey(ep *e, const char *uri, size_t window, unsigned send_timeout_ms,
                                 uint64_t rekey_messages, uint64_t rekey_seconds)
{
    nnm_link_opts o;
    nnm_link_opts_init(&o);
    o.node_id = e->name;
    o.mesh = MESH;
    o.identity = e->id;
    o.trust = e->trust;
    o.mqtt.uris[0] = uri;
    o.mqtt.nuris = 1;
    o.mqtt.backoff_min_ms = 100;
    o.mqtt.backoff_max_ms = 1000;
    if (window) o.window_bytes = window;
    if (send_timeout_ms) o.send_timeout_ms = send_timeout_ms;
    o.rekey_messages = rekey_messages;
    o.rekey_seconds = rekey_seconds;
    nnm_diag d = {0};
    nnm_err rc = nnm_link_new(&e->l, &o, &d);
    if (rc == NNM_OK) rc = nnm_link_start(e->l, &d);
    if (rc == NNM_OK) rc = nnm_mqtt_wait_connected(nnm_link_get_mqtt(e->l), 15000, &d);
    if (rc != NNM_OK) fprintf(stderr, "ep_open %s: %s\n", e->name, d.msg);
    assert_int_equal(rc, NNM_OK);
}

static inline void ep_open(ep *e, const char *uri, size_t window, unsigned send_timeout_ms)
{
    ep_open_rekey(e, uri, window, send_timeout_ms, 0, 0);
}

static inline void ep_new_identity(ep *e, const char *name)
{
    memset(e, 0, sizeof *e);
    snprintf(e->name, sizeof e->name, "%s", name);
    assert_int_equal(nnm_identity_new(&e->id, NULL), NNM_OK);
}

static inline void ep_close(ep *e)
{
    nnm_link_free(e->l);
    nnm_trust_free(e->trust);
    nnm_identity_free(e->id);
    memset(e, 0, sizeof *e);
}

/* A u8 tensor of n bytes with a pattern depending on seed. */
static inline void byte_tensor(nnm_tensor *t, size_t n, unsigned seed)
{
    int64_t shape[1] = {(int64_t)n};
    assert_int_equal(nnm_tensor_init(t, NNM_DT_U8, 1, shape), NNM_OK);
    uint8_t *p = t->data;
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (uint8_t)x;
    }
}

static inline void send_tensor(ep *from, const char *to, const nnm_tensor *t, uint64_t request)
{
    nnm_wire_tensor wt;
    nnm_diag d = {0};
    assert_int_equal(nnm_wire_tensor_encode(&wt, t, NNM_CODEC_NONE, &d), NNM_OK);
    wt.name = "x";
    nnm_err rc = nnm_link_send_tensors(from->l, to, request, &wt, 1, &d);
    if (rc != NNM_OK) fprintf(stderr, "send %s -> %s: %s\n", from->name, to, d.msg);
    assert_int_equal(rc, NNM_OK);
    nnm_wire_tensor_cleanup(&wt);
}

/* Receives one TENSOR frame and checks it equals t (bytes) and came from `from`. */
static inline void expect_tensor(ep *at, const char *from, const nnm_tensor *t, uint64_t request)
{
    nnm_link_msg m;
    nnm_diag d = {0};
    nnm_err rc = nnm_link_recv(at->l, &m, 30000, &d);
    if (rc != NNM_OK) fprintf(stderr, "recv at %s: %s\n", at->name, d.msg);
    assert_int_equal(rc, NNM_OK);
    /* stamped on arrival (CLOCK_MONOTONIC), never after it was handed over */
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    assert_true(m.arrived_ms > 0 && m.arrived_ms <= (double)now.tv_sec * 1e3 + (double)now.tv_nsec / 1e6);
    assert_int_equal(m.frame->hdr.type, NNM_FRAME_TENSOR);
    assert_string_equal(m.frame->hdr.sender, from);
    assert_int_equal(m.frame->hdr.request, request);
    assert_int_equal(m.ntensors, 1);
    assert_int_equal(m.tensors[0].nbytes, t->nbytes);
    assert_int_equal(m.tensors[0].dtype, t->dtype);
    assert_memory_equal(m.tensors[0].data, t->data, t->nbytes);
    nnm_link_msg_cleanup(&m);
}

static inline uint64_t drops_total(const nnm_link_stats *s)
{
    return s->drop_malformed + s->drop_not_for_me + s->drop_untrusted + s->drop_no_session +
           s->drop_bad_tag + s->drop_replay + s->drop_hello + s->drop_reasm + s->drop_queue_full;
}

/* Waits (<= 30 s) until get(stats of l) >= want; returns the final value. */
static inline uint64_t wait_stat(nnm_link *l, uint64_t (*get)(const nnm_link_stats *),
                                 uint64_t want)
{
    nnm_link_stats s;
    for (int i = 0; i < 3000; i++) {
        nnm_link_get_stats(l, &s);
        if (get(&s) >= want) return get(&s);
        usleep(10000);
    }
    nnm_link_get_stats(l, &s);
    return get(&s);
}

/* A raw MQTT client (queue mode) subscribed to filter, for capturing and injecting frames. */
static inline nnm_mqtt *spy_open(const char *uri, const char *client_id, const char *filter)
{
    nnm_mqtt_opts o;
    nnm_mqtt_opts_init(&o);
    o.client_id = client_id;
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

/* Takes messages from spy until one is a frame of type; returns it (caller cleans up). */
static inline nnm_mqtt_msg spy_take(nnm_mqtt *spy, unsigned type, size_t *hdr_len)
{
    for (int i = 0; i < 1000; i++) {
        nnm_mqtt_msg m;
        assert_int_equal(nnm_mqtt_recv(spy, &m, 10000, NULL), NNM_OK);
        nnm_frame_header h;
        size_t used = 0;
        if (nnm_frame_header_decode(&h, &used, m.payload, m.len, NULL, NULL) == NNM_OK &&
            h.type == type) {
            if (hdr_len != NULL) *hdr_len = used;
            return m;
        }
        nnm_mqtt_msg_cleanup(&m);
    }
    fail_msg("no frame of type %u seen", type);
    nnm_mqtt_msg none = {0};
    return none;
}

#endif
