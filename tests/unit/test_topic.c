/* tests/unit/test_topic.c — the topic scheme: every kind formats and parses back, filters,
 * and each malformed topic (wildcards, empty levels, bad ids, wrong prefix, wrong level
 * count, '$' topics, NUL) rejected with a typed error; ids checked the same way. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "nnmesh/wire.h"

static void test_topic_every_kind_round_trips(void **state)
{
    (void)state;
    static const struct { nnm_topic_kind k; const char *arg; const char *want; } cases[] = {
        { NNM_TOPIC_ADVERT, "", "nnmesh/lab-1/advert/node-a" },
        { NNM_TOPIC_INBOX, "", "nnmesh/lab-1/inbox/node-a" },
        { NNM_TOPIC_REQ, "job-7", "nnmesh/lab-1/req/node-a/job-7" },
        { NNM_TOPIC_RES, "job-7", "nnmesh/lab-1/res/node-a/job-7" },
        { NNM_TOPIC_STATS, "", "nnmesh/lab-1/stats/node-a" },
        { NNM_TOPIC_CTL, "drain", "nnmesh/lab-1/ctl/node-a/drain" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        nnm_topic t = { .kind = cases[i].k }, back;
        strcpy(t.mesh, "lab-1");
        strcpy(t.node, "node-a");
        strcpy(t.arg, cases[i].arg);
        char buf[NNM_TOPIC_MAX];
        assert_int_equal(nnm_topic_encode(buf, sizeof buf, &t, NULL), NNM_OK);
        assert_string_equal(buf, cases[i].want);
        assert_int_equal(nnm_topic_decode(&back, buf, strlen(buf), NULL), NNM_OK);
        assert_int_equal(back.kind, t.kind);
        assert_string_equal(back.mesh, "lab-1");
        assert_string_equal(back.node, "node-a");
        assert_string_equal(back.arg, cases[i].arg);
        assert_non_null(strstr(cases[i].want, nnm_topic_kind_name(t.kind)));
    }
    /* The longest topic fits NNM_TOPIC_MAX. */
    nnm_topic t = { .kind = NNM_TOPIC_ADVERT };
    memset(t.mesh, 'm', 32);
    memset(t.node, 'n', 32);
    memset(t.arg, 'a', 32);
    t.kind = NNM_TOPIC_RES;
    char buf[NNM_TOPIC_MAX];
    assert_int_equal(nnm_topic_encode(buf, sizeof buf, &t, NULL), NNM_OK);
    nnm_topic back;
    assert_int_equal(nnm_topic_decode(&back, buf, strlen(buf), NULL), NNM_OK);
    assert_int_equal(nnm_topic_encode(buf, 20, &t, NULL), NNM_ERANGE);
    assert_string_equal(buf, "");
}

static void test_topic_filters_use_single_level_wildcards_only(void **state)
{
    (void)state;
    nnm_topic t = { .kind = NNM_TOPIC_ADVERT };
    strcpy(t.mesh, "lab");
    strcpy(t.node, "+");
    char buf[NNM_TOPIC_MAX];
    assert_int_equal(nnm_topic_encode(buf, sizeof buf, &t, NULL), NNM_OK);
    assert_string_equal(buf, "nnmesh/lab/advert/+");
    t.kind = NNM_TOPIC_REQ;
    strcpy(t.node, "node-a");
    strcpy(t.arg, "+");
    assert_int_equal(nnm_topic_encode(buf, sizeof buf, &t, NULL), NNM_OK);
    assert_string_equal(buf, "nnmesh/lab/req/node-a/+");
    /* A filter is not a topic name. */
    nnm_topic back;
    assert_int_equal(nnm_topic_decode(&back, buf, strlen(buf), NULL), NNM_EFORMAT);
    strcpy(t.mesh, "+");
    assert_int_equal(nnm_topic_encode(buf, sizeof buf, &t, NULL), NNM_EINVAL);
    strcpy(t.mesh, "lab");
    strcpy(t.node, "#");
    assert_int_equal(nnm_topic_encode(buf, sizeof buf, &t, NULL), NNM_EINVAL);
}

static void test_topic_encode_validates_ids_and_arg_presence(void **state)
{
    (void)state;
    static const char *const bad[] = { "a+b", "a#", "a/b", "$sys", "Node", "", "a b",
                                       "n\xc3\xa9" };
    char buf[NNM_TOPIC_MAX];
    nnm_diag d;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        nnm_topic t = { .kind = NNM_TOPIC_INBOX };
        strcpy(t.mesh, "lab");
        strncpy(t.node, bad[i], NNM_ID_MAX);
        t.node[NNM_ID_MAX] = '\0';
        assert_int_equal(nnm_topic_encode(buf, sizeof buf, &t, &d), NNM_EINVAL);
        assert_non_null(strstr(d.msg, "node id"));
        strcpy(t.node, "ok");
        strncpy(t.mesh, bad[i], NNM_ID_MAX);
        t.mesh[NNM_ID_MAX] = '\0';
        assert_int_equal(nnm_topic_encode(buf, sizeof buf, &t, &d), NNM_EINVAL);
        assert_non_null(strstr(d.msg, "mesh name"));
    }
    nnm_topic t = { .kind = NNM_TOPIC_INBOX };
    strcpy(t.mesh, "lab");
    strcpy(t.node, "a");
    strcpy(t.arg, "x");
    assert_int_equal(nnm_topic_encode(buf, sizeof buf, &t, &d), NNM_EINVAL);
    t.kind = NNM_TOPIC_REQ;
    t.arg[0] = '\0';
    assert_int_equal(nnm_topic_encode(buf, sizeof buf, &t, &d), NNM_EINVAL);
    t.kind = (nnm_topic_kind)99;
    assert_int_equal(nnm_topic_encode(buf, sizeof buf, &t, &d), NNM_EINVAL);
}

static void expect_bad(const char *s, size_t n, nnm_err want)
{
    nnm_topic t;
    nnm_diag d;
    nnm_diag_clear(&d);
    nnm_err rc = nnm_topic_decode(&t, s, n, &d);
    if (rc != want) print_error("'%.*s': %s (%s)\n", (int)n, s, nnm_strerror(rc), d.msg);
    assert_int_equal(rc, want);
    assert_true(d.msg[0] != '\0');
    assert_int_equal(t.kind, 0);
    assert_string_equal(t.mesh, "");
}

#define BAD(lit, rc) expect_bad(lit, sizeof(lit) - 1, rc)

static void test_topic_decode_rejects_malformed_topics(void **state)
{
    (void)state;
    BAD("", NNM_EFORMAT);
    BAD("nnmesh/lab/inbox/+", NNM_EFORMAT);
    BAD("nnmesh/lab/inbox/#", NNM_EFORMAT);
    BAD("nnmesh/+/inbox/a", NNM_EFORMAT);
    BAD("nnmesh/lab/inbox/a/#", NNM_EFORMAT);
    BAD("nnmesh//inbox/a", NNM_EFORMAT);
    BAD("nnmesh/lab/inbox/", NNM_EFORMAT);
    BAD("/nnmesh/lab/inbox/a", NNM_EFORMAT);
    BAD("nnmesh/lab/inbox/a/", NNM_EFORMAT);
    BAD("$SYS/broker/load", NNM_EFORMAT);
    BAD("nnmesh/$lab/inbox/a", NNM_EFORMAT);
    BAD("nnmesh/lab/inbox/A", NNM_EFORMAT);
    BAD("nnmesh/lab/inbox/a b", NNM_EFORMAT);
    BAD("nnmesh/lab/inbox/n\xc3\xa9", NNM_EFORMAT);
    BAD("nnmesh/lab/inbox/n\xff", NNM_EFORMAT);
    BAD("nnmesh/lab/in\0box/a", NNM_EFORMAT);
    BAD("nnmesh/lab/inbox/a\0", NNM_EFORMAT);
    BAD("nnmesh/lab/outbox/a", NNM_EFORMAT);
    BAD("nnmesh/lab/inbox", NNM_EFORMAT);
    BAD("nnmesh/lab/inbox/a/extra", NNM_EFORMAT);
    BAD("nnmesh/lab/req/a", NNM_EFORMAT);
    BAD("nnmesh/lab/req/a/b/c", NNM_EFORMAT);
    BAD("nnmesh/lab/req/a/b/c/d/e/f", NNM_EFORMAT);
    BAD("NNMESH/lab/inbox/a", NNM_EFORMAT);
    BAD("nnmesh/lab/inbox/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", NNM_ERANGE);
    char longer[300];
    memset(longer, 'a', sizeof longer);
    expect_bad(longer, sizeof longer, NNM_ERANGE);
    expect_bad(NULL, 0, NNM_EFORMAT);
}

static void test_topic_id_decode_copies_only_valid_ids(void **state)
{
    (void)state;
    char out[NNM_ID_MAX + 1];
    nnm_diag d;
    assert_int_equal(nnm_id_decode(out, "node-7xyz", 6, "node id", &d), NNM_OK);
    assert_string_equal(out, "node-7");
    assert_int_equal(nnm_id_decode(out, "node+", 5, "node id", &d), NNM_EFORMAT);
    assert_string_equal(out, "");
    assert_non_null(strstr(d.msg, "'+'"));
    assert_int_equal(nnm_id_decode(out, "a\0b", 3, "node id", &d), NNM_EFORMAT);
    assert_non_null(strstr(d.msg, "0x00"));
    assert_int_equal(nnm_id_decode(out, "", 0, NULL, &d), NNM_EFORMAT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_topic_every_kind_round_trips),
        cmocka_unit_test(test_topic_filters_use_single_level_wildcards_only),
        cmocka_unit_test(test_topic_encode_validates_ids_and_arg_presence),
        cmocka_unit_test(test_topic_decode_rejects_malformed_topics),
        cmocka_unit_test(test_topic_id_decode_copies_only_valid_ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
