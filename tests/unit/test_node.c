/* tests/unit/test_node.c — the mesh member (runtime/node.c) against a real mosquitto: forged,
 * untrusted, expired and replayed adverts are ignored and counted by reason (in the counters
 * and in the stats JSON on the broker), a node id held by another key is refused, an empty
 * retained advert is a leave, an advert past its expiry is dropped from the peer table, and a
 * node that leaves clears its retained advert. Also the epoch file. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "nnmesh/config.h"
#include "nnmesh/node.h"
#include "nnmesh/transport.h"
#include "nnmesh/wire.h"
#include "nnmesh/crypto.h"
#include "broker.h"

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void nap(unsigned ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

typedef struct fixture {
    test_broker broker;
    nnm_identity *a, *b, *c, *r;     /* n1 (the node), n2 (trusted peer), untrusted, rogue */
    nnm_trust *trust;
    nnm_config *cfg;
    nnm_node *node;
    nnm_mqtt *pub;
    pthread_t thread;
    volatile int stop;
    char log[16384];
    pthread_mutex_t log_mu;
} fixture;

static void on_log(void *ctx, nnm_node_log_level lv, const char *msg)
{
    fixture *f = ctx;
    (void)lv;
    pthread_mutex_lock(&f->log_mu);
    size_t k = strlen(f->log);
    if (k + strlen(msg) + 2 < sizeof f->log) snprintf(f->log + k, sizeof f->log - k, "%s\n", msg);
    pthread_mutex_unlock(&f->log_mu);
}

static int log_has(fixture *f, const char *needle)
{
    pthread_mutex_lock(&f->log_mu);
    int r = strstr(f->log, needle) != NULL;
    pthread_mutex_unlock(&f->log_mu);
    return r;
}

static void *poller(void *arg)
{
    fixture *f = arg;
    while (!f->stop) nnm_node_poll(f->node, 50);
    return NULL;
}

static int setup(void **state)
{
    if (!test_broker_available()) {
        fprintf(stderr, "mosquitto not found: skipping\n");
        return -1;
    }
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    pthread_mutex_init(&f->log_mu, NULL);
    assert_int_equal(test_broker_start(&f->broker, 0, NULL), 0);
    assert_int_equal(nnm_identity_new(&f->a, NULL), NNM_OK);
    assert_int_equal(nnm_identity_new(&f->b, NULL), NNM_OK);
    assert_int_equal(nnm_identity_new(&f->c, NULL), NNM_OK);
    assert_int_equal(nnm_identity_new(&f->r, NULL), NNM_OK);
    char text[1024], ka[NNM_PUBKEY_B64_SIZE], kb[NNM_PUBKEY_B64_SIZE], kr[NNM_PUBKEY_B64_SIZE];
    nnm_pubkey_encode(ka, nnm_identity_get_pubkey(f->a));
    nnm_pubkey_encode(kb, nnm_identity_get_pubkey(f->b));
    nnm_pubkey_encode(kr, nnm_identity_get_pubkey(f->r));
    snprintf(text, sizeof text, "node n1 %s\nnode n2 %s\nnode rogue %s\n", ka, kb, kr);
    assert_int_equal(nnm_trust_decode(&f->trust, text, strlen(text), "trust", NULL), NNM_OK);
    snprintf(text, sizeof text,
             "[node]\nid = n1\nkey_file = n1.key\n[mesh]\nname = t\ntrust_file = trust\n"
             "advert_interval = 200ms\n[broker]\nuris = %s\nkeepalive = 2s\n"
             "[control]\nallow_plaintext_control = true\n", f->broker.uri);
    nnm_diag d;
    nnm_diag_clear(&d);
    if (nnm_config_decode(&f->cfg, text, "node.conf", &d) != NNM_OK) fail_msg("%s", d.msg);
    nnm_node_opts o;
    memset(&o, 0, sizeof o);
    o.cfg = f->cfg;
    o.identity = f->a;
    o.trust = f->trust;
    o.epoch = 7;
    o.capacity.threads = 1;
    o.capacity.gflops[0] = 1.5;
    o.capacity.mem_free = 1u << 30;
    o.remeasure_s = UINT32_MAX;
    o.log = on_log;
    o.log_ctx = f;
    if (nnm_node_new(&f->node, &o, &d) != NNM_OK || nnm_node_start(f->node, &d) != NNM_OK)
        fail_msg("%s", d.msg);
    assert_int_equal(pthread_create(&f->thread, NULL, poller, f), 0);
    nnm_mqtt_opts mo;
    nnm_mqtt_opts_init(&mo);
    mo.client_id = "forger";
    mo.uris[0] = f->broker.uri;
    mo.nuris = 1;
    assert_int_equal(nnm_mqtt_new(&f->pub, &mo, NULL), NNM_OK);
    assert_int_equal(nnm_mqtt_start(f->pub, NULL), NNM_OK);
    assert_int_equal(nnm_mqtt_wait_connected(f->pub, 10000, NULL), NNM_OK);
    /* Connected means subscribed too: only then do non-retained adverts reach the node. */
    nnm_node_stats st;
    for (int i = 0; i < 1000; i++) {
        nnm_node_get_stats(f->node, &st);
        if (log_has(f, "connected to broker") && st.adverts_published > 0) break;
        nap(10);
    }
    assert_true(st.adverts_published > 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    f->stop = 1;
    pthread_join(f->thread, NULL);
    nnm_node_free(f->node);
    nnm_mqtt_free(f->pub);
    nnm_config_free(f->cfg);
    nnm_trust_free(f->trust);
    nnm_identity_free(f->a);
    nnm_identity_free(f->b);
    nnm_identity_free(f->c);
    nnm_identity_free(f->r);
    test_broker_cleanup(&f->broker);
    pthread_mutex_destroy(&f->log_mu);
    free(f);
    return 0;
}

/* Publishes an advert of `id` signed by `who` on the advert topic of `topic_id`. flip: 1 to
 * corrupt the signature's last byte. */
static void forge_sent(fixture *f, nnm_identity *who, const char *id, const char *topic_id,
                       uint64_t epoch, uint64_t seq, uint64_t expiry_ms, int flip,
                       uint64_t interval_ms)
{
    const char *names[] = { "cpu-cores", "mflops-conv3x3", "advert-interval-ms" };
    const uint64_t vals[] = { 2, 4000, interval_ms };
    uint8_t *buf = NULL;
    size_t len = 0;
    nnm_diag d;
    nnm_diag_clear(&d);
    if (nnm_node_advert_encode(&buf, &len, who, id, epoch, seq, expiry_ms, 1u << 20, 100, names,
                               vals, interval_ms ? 3 : 2, NULL, 0, &d) != NNM_OK)
        fail_msg("%s", d.msg);
    if (flip) buf[len - 1] ^= 1;
    char topic[128];
    snprintf(topic, sizeof topic, "nnmesh/t/advert/%s", topic_id);
    assert_int_equal(nnm_mqtt_publish(f->pub, topic, buf, len, 1, 0, 5000, NULL), NNM_OK);
    free(buf);
}

/* An advert that does not say when it was sent (no "advert-interval-ms"). */
static void forge(fixture *f, nnm_identity *who, const char *id, const char *topic_id,
                  uint64_t epoch, uint64_t seq, uint64_t expiry_ms, int flip)
{
    forge_sent(f, who, id, topic_id, epoch, seq, expiry_ms, flip, 0);
}

/* Waits (10 s) until expr equals want. */
#define WAIT_FOR(f, expr, want)                                                                \
    do {                                                                                       \
        nnm_node_stats st_;                                                                    \
        for (int i_ = 0; i_ < 1000; i_++) {                                                    \
            nnm_node_get_stats((f)->node, &st_);                                               \
            if ((uint64_t)(expr) == (uint64_t)(want)) break;                                   \
            nap(10);                                                                           \
        }                                                                                      \
        nnm_node_get_stats((f)->node, &st_);                                                   \
        if ((uint64_t)(expr) != (uint64_t)(want))                                              \
            fail_msg("%s is %llu, want %llu; log:\n%s", #expr, (unsigned long long)(expr),     \
                     (unsigned long long)(want), (f)->log);                                    \
    } while (0)
#define ST(field) st_.field

static void test_node_bad_adverts_ignored_and_counted(void **state)
{
    fixture *f = *state;
    uint64_t later = wall_ms() + 60000;
    forge(f, f->b, "n2", "n2", 5, 10, later, 0);
    WAIT_FOR(f, ST(peers), 1);
    nnm_node_peer p;
    assert_int_equal(nnm_node_peer_get(f->node, 0, &p), NNM_OK);
    assert_string_equal(p.id, "n2");
    assert_int_equal(p.epoch, 5);
    assert_int_equal(nnm_node_peer_get_cap(&p, "mflops-conv3x3", 0), 4000);

    forge(f, f->c, "n7", "n7", 1, 1, later, 0);                 /* key not in the trust file */
    WAIT_FOR(f, ST(adverts_ignored[NNM_ADVERT_UNTRUSTED]), 1);
    forge(f, f->b, "n2", "n2", 5, 11, later, 1);                /* signature altered */
    WAIT_FOR(f, ST(adverts_ignored[NNM_ADVERT_BAD_SIGNATURE]), 1);
    forge(f, f->b, "n2", "n2", 5, 12, wall_ms() - 3600000, 0); /* expired an hour ago */
    WAIT_FOR(f, ST(adverts_ignored[NNM_ADVERT_EXPIRED]), 1);
    /* Sent 300 s ahead of this node's clock (expiry = sent + 3 x 1 s interval). */
    forge_sent(f, f->b, "n2", "n2", 5, 12, wall_ms() + 303000, 0, 1000);
    WAIT_FOR(f, ST(adverts_ignored[NNM_ADVERT_FUTURE]), 1);
    assert_true(log_has(f, "beyond the 5 s clock tolerance: the clocks are 300 s apart"));
    forge(f, f->b, "n2", "n2", 5, 9, later, 0);                 /* older sequence */
    WAIT_FOR(f, ST(adverts_ignored[NNM_ADVERT_REPLAY]), 1);
    forge(f, f->b, "n2", "n2", 4, 99, later, 0);                /* older epoch */
    WAIT_FOR(f, ST(adverts_ignored[NNM_ADVERT_REPLAY]), 2);
    forge(f, f->b, "n2", "n9", 5, 13, later, 0);                /* on another node's topic */
    WAIT_FOR(f, ST(adverts_ignored[NNM_ADVERT_WRONG_TOPIC]), 1);
    forge(f, f->r, "n2", "n2", 1, 1, later, 0);                 /* n2 is held by key b */
    WAIT_FOR(f, ST(adverts_ignored[NNM_ADVERT_ID_CONFLICT]), 1);
    nap(1100);                 /* refusals of one kind are logged at most once a second */
    forge(f, f->r, "n1", "n1", 1, 1, later, 0);                 /* this node's own id */
    WAIT_FOR(f, ST(adverts_ignored[NNM_ADVERT_ID_CONFLICT]), 2);
    assert_true(log_has(f, "node id 'n2' is already held by key"));
    assert_true(log_has(f, "(this node)"));
    /* None of them changed the table: still n2 at epoch 5 seq 10; a newer one is taken. */
    assert_int_equal(nnm_node_peer_get(f->node, 0, &p), NNM_OK);
    assert_int_equal(p.seq, 10);
    forge(f, f->b, "n2", "n2", 5, 14, later, 0);
    WAIT_FOR(f, ST(adverts_accepted), 2);
    WAIT_FOR(f, ST(peers), 1);

    /* The stats JSON on the broker says the same (retained; republished every 200 ms). */
    nnm_mqtt_opts mo;
    nnm_mqtt_opts_init(&mo);
    mo.client_id = "stats-reader";
    mo.uris[0] = f->broker.uri;
    mo.nuris = 1;
    nnm_mqtt *sub = NULL;
    assert_int_equal(nnm_mqtt_new(&sub, &mo, NULL), NNM_OK);
    assert_int_equal(nnm_mqtt_subscribe(sub, "nnmesh/t/stats/n1", 1, NULL), NNM_OK);
    assert_int_equal(nnm_mqtt_start(sub, NULL), NNM_OK);
    /* Up to 30 s by the clock, not a count of receives: each republication uses one, and a
     * slow connect or a late poller must not use them all up. */
    int ok = 0;
    for (uint64_t until = wall_ms() + 30000; !ok && wall_ms() < until;) {
        nnm_mqtt_msg m;
        if (nnm_mqtt_recv(sub, &m, 200, NULL) != NNM_OK) continue;
        char *js = strndup((const char *)m.payload, m.len);
        ok = strstr(js, "\"ignored\":{\"malformed\":0,\"wrong-topic\":1,\"untrusted\":1,"
                        "\"bad-signature\":1,\"expired\":1,\"replay\":2,\"id-conflict\":2,"
                        "\"future\":1}") &&
             strstr(js, "\"peer_ids\":[\"n2\"]") && strstr(js, "\"node\":\"n1\"") &&
             /* results received from peers by wire codec: none yet (it coordinated nothing) */
             strstr(js, "\"result_codecs\":{\"none\":0,\"f16\":0,\"int8\":0,\"lz4\":0}},");
        free(js);
        nnm_mqtt_msg_cleanup(&m);
    }
    nnm_mqtt_free(sub);
    assert_true(ok);

    /* An empty retained advert is a leave, at once. */
    assert_int_equal(nnm_mqtt_publish(f->pub, "nnmesh/t/advert/n2", "", 0, 1, 1, 5000, NULL),
                     NNM_OK);
    WAIT_FOR(f, ST(leaves), 1);
    WAIT_FOR(f, ST(peers), 0);
    assert_true(log_has(f, "peer n2 left"));
}

static void test_node_expired_peer_dropped(void **state)
{
    fixture *f = *state;
    forge(f, f->b, "n2", "n2", 5, 1, wall_ms() + 500, 0);
    WAIT_FOR(f, ST(peers), 1);
    /* Expiry + clock tolerance later, with no new advert, it is gone. */
    nap(500 + NNM_NODE_CLOCK_TOLERANCE_S * 1000);
    WAIT_FOR(f, ST(expired), 1);
    WAIT_FOR(f, ST(peers), 0);
}

static void test_node_control_plaintext_and_leave_clears_advert(void **state)
{
    fixture *f = *state;
    assert_int_equal(nnm_mqtt_publish(f->pub, "nnmesh/t/ctl/n1/drain", "", 0, 1, 0, 5000, NULL),
                     NNM_OK);
    WAIT_FOR(f, ST(draining), 1);
    assert_int_equal(nnm_mqtt_publish(f->pub, "nnmesh/t/ctl/n1/policy", "equal\n", 6, 1, 0, 5000,
                                      NULL), NNM_OK);
    assert_int_equal(nnm_mqtt_publish(f->pub, "nnmesh/t/ctl/n1/jump", "", 0, 1, 0, 5000, NULL),
                     NNM_OK);
    WAIT_FOR(f, ST(ctl_unknown), 1);
    nnm_node_stats st;
    nnm_node_get_stats(f->node, &st);
    assert_string_equal(st.policy, "equal");
    /* The two-word switches: another word is refused and counted, the node serves on. */
    static const char *const sw[][2] = { { "objective", "sideways" }, { "forward", "maybe" },
                                         { "objective", "throughput" }, { "forward", "off" } };
    for (int i = 0; i < 4; i++) {
        char topic[64];
        snprintf(topic, sizeof topic, "nnmesh/t/ctl/n1/%s", sw[i][0]);
        assert_int_equal(nnm_mqtt_publish(f->pub, topic, sw[i][1], strlen(sw[i][1]), 1, 0, 5000,
                                          NULL), NNM_OK);
        if (i == 1) WAIT_FOR(f, ST(ctl_bad_arg), 2);
    }
    assert_true(log_has(f, "forward 'maybe' is unknown; use on or off"));
    assert_int_equal(nnm_mqtt_publish(f->pub, "nnmesh/t/ctl/n1/resume", "", 0, 1, 0, 5000, NULL),
                     NNM_OK);
    WAIT_FOR(f, ST(ctl_accepted), 5);
    WAIT_FOR(f, ST(draining), 0);

    /* Its retained advert is there; after leaving it is not. */
    nnm_mqtt_opts mo;
    nnm_mqtt_opts_init(&mo);
    mo.client_id = "advert-reader";
    mo.uris[0] = f->broker.uri;
    mo.nuris = 1;
    nnm_mqtt *sub = NULL;
    assert_int_equal(nnm_mqtt_new(&sub, &mo, NULL), NNM_OK);
    assert_int_equal(nnm_mqtt_subscribe(sub, "nnmesh/t/advert/n1", 1, NULL), NNM_OK);
    assert_int_equal(nnm_mqtt_start(sub, NULL), NNM_OK);
    nnm_mqtt_msg m;
    /* not waited connected: the connect and the retained message share these 15 s */
    assert_int_equal(nnm_mqtt_recv(sub, &m, 15000, NULL), NNM_OK);
    assert_true(m.retained && m.len > 0);
    nnm_node_peer p;
    assert_int_equal(nnm_node_advert_check(&p, "n1", m.payload, m.len, f->trust, NULL, wall_ms(),
                                           NULL), NNM_ADVERT_ACCEPTED);
    assert_int_equal(p.epoch, 7);
    nnm_mqtt_msg_cleanup(&m);
    nnm_mqtt_free(sub);
    f->stop = 1;
    pthread_join(f->thread, NULL);
    f->stop = 0;
    nnm_node_leave(f->node);
    assert_int_equal(pthread_create(&f->thread, NULL, poller, f), 0);   /* polls nothing now */
    mo.client_id = "advert-reader-2";
    assert_int_equal(nnm_mqtt_new(&sub, &mo, NULL), NNM_OK);
    assert_int_equal(nnm_mqtt_subscribe(sub, "nnmesh/t/advert/n1", 1, NULL), NNM_OK);
    assert_int_equal(nnm_mqtt_start(sub, NULL), NNM_OK);
    assert_int_equal(nnm_mqtt_wait_connected(sub, 5000, NULL), NNM_OK);
    assert_int_equal(nnm_mqtt_recv(sub, &m, 1000, NULL), NNM_ETIMEOUT);
    nnm_mqtt_free(sub);
}

static void test_node_epoch_file_increases(void **state)
{
    (void)state;
    char dir[] = "/tmp/nnm-epoch-XXXXXX", path[64];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/n1.key.epoch", dir);
    uint64_t e1 = 0, e2 = 0;
    assert_int_equal(nnm_node_epoch_next(&e1, path, NULL), NNM_OK);
    assert_int_equal(nnm_node_epoch_next(&e2, path, NULL), NNM_OK);
    assert_true(e1 > 0 && e2 == e1 + 1);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    FILE *fp = fopen(path, "w");
    fputs("garbage\n", fp);
    fclose(fp);
    nnm_diag d;
    nnm_diag_clear(&d);
    assert_int_equal(nnm_node_epoch_next(&e1, path, &d), NNM_EFORMAT);
    assert_non_null(strstr(d.msg, "not an epoch number"));
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_node_bad_adverts_ignored_and_counted, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_node_expired_peer_dropped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_node_control_plaintext_and_leave_clears_advert,
                                        setup, teardown),
        cmocka_unit_test(test_node_epoch_file_increases),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
