/* tests/unit/test_chunk.c — chunking and reassembly: a 64 MiB tensor frame split, shuffled,
 * duplicated and reassembled; the chunking rule; timeouts with an explicit clock; the stream
 * and memory caps; inconsistent and conflicting chunks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "nnmesh/wire.h"

static void chunk_frame(nnm_frame *f, const char *sender, uint64_t request, uint64_t stream,
                        const uint8_t *payload, size_t total, size_t csize, uint32_t index)
{
    memset(f, 0, sizeof *f);
    assert_int_equal(nnm_chunk_init(f, stream, payload, total, csize, index, NULL), NNM_OK);
    f->hdr.version = NNM_WIRE_VERSION;
    strcpy(f->hdr.sender, sender);
    strcpy(f->hdr.receiver, "node-b");
    f->hdr.request = request;
    strcpy(f->hdr.topic, "nnmesh/lab/inbox/node-b");
}

static uint32_t rnd(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(*s >> 33);
}

static void test_chunk_64mb_tensor_reassembles_from_shuffled_duplicated_chunks(void **state)
{
    (void)state;
    /* The tensor: 64 MiB of f32 that no codec would shrink much. */
    int64_t shape[2] = { 4096, 4096 };
    nnm_tensor t;
    assert_int_equal(nnm_tensor_init(&t, NNM_DT_F32, 2, shape), NNM_OK);
    uint64_t seed = 7;
    uint32_t *w = t.data;
    for (size_t i = 0; i < t.nbytes / 4; i++) w[i] = rnd(&seed);

    nnm_frame tf;
    memset(&tf, 0, sizeof tf);
    nnm_wire_tensor wt;
    assert_int_equal(nnm_wire_tensor_encode(&wt, &t, NNM_CODEC_NONE, NULL), NNM_OK);
    wt.name = "big";
    tf.hdr = (nnm_frame_header){ .version = 1, .type = NNM_FRAME_TENSOR, .sender = "node-a",
                                 .receiver = "node-b", .request = 99,
                                 .topic = "nnmesh/lab/inbox/node-b" };
    tf.u.tensor.ntensors = 1;
    tf.u.tensor.tensors = &wt;
    uint8_t *enc;
    size_t len;
    assert_int_equal(nnm_frame_encode(&enc, &len, &tf, NULL), NNM_OK);
    assert_true(len > (64u << 20));

    /* Order: every chunk once, shuffled, then 20 duplicates spliced in at random places. */
    nnm_frame first;
    chunk_frame(&first, "node-a", 99, 1, enc, len, NNM_WIRE_CHUNK_DEFAULT, 0);
    uint32_t count = first.u.chunk.count;
    assert_int_equal(count, 65); /* 64 MiB of data plus a little header */
    uint32_t order[65 + 20];
    for (uint32_t i = 0; i < count; i++) order[i] = i;
    for (uint32_t i = count - 1; i > 0; i--) {
        uint32_t j = rnd(&seed) % (i + 1), x = order[i];
        order[i] = order[j];
        order[j] = x;
    }
    size_t n = count;
    for (int d = 0; d < 20; d++) {
        size_t at = 1 + rnd(&seed) % (n - 1);  /* never before the original it copies */
        uint32_t dup = order[rnd(&seed) % at];
        memmove(&order[at + 1], &order[at], (n - at) * sizeof order[0]);
        order[at] = dup;
        n++;
    }

    nnm_reasm *r;
    assert_int_equal(nnm_reasm_new(&r, NULL, NULL), NNM_OK);
    uint8_t *out = NULL;
    size_t out_len = 0;
    for (size_t k = 0; k < n; k++) {
        /* Each chunk goes through the wire: encoded, then strictly decoded. */
        nnm_frame cf, *dec;
        chunk_frame(&cf, "node-a", 99, 1, enc, len, NNM_WIRE_CHUNK_DEFAULT, order[k]);
        uint8_t *cb;
        size_t cl;
        assert_int_equal(nnm_frame_encode(&cb, &cl, &cf, NULL), NNM_OK);
        assert_true(cl <= NNM_WIRE_CHUNK_DEFAULT + 128);
        assert_int_equal(nnm_frame_decode(&dec, cb, cl, NULL, NULL), NNM_OK);
        uint8_t *p;
        size_t pl;
        nnm_diag d;
        nnm_err rc = nnm_reasm_decode(r, dec, 1000 + k, &p, &pl, &d);
        if (rc != NNM_OK) print_error("chunk %u: %s\n", order[k], d.msg);
        assert_int_equal(rc, NNM_OK);
        if (p != NULL) {
            assert_null(out);
            out = p;
            out_len = pl;
        }
        nnm_frame_free(dec);
        free(cb);
    }
    assert_non_null(out);
    assert_int_equal(out_len, len);
    assert_memory_equal(out, enc, len);
    nnm_reasm_stats st;
    nnm_reasm_get_stats(r, &st);
    assert_int_equal(st.completed, 1);
    assert_int_equal(st.duplicates, 20);
    assert_int_equal(st.streams, 0);
    assert_int_equal(st.bytes, 0);

    /* The reassembled bytes are the tensor frame again. */
    nnm_frame *back;
    nnm_tensor t2;
    assert_int_equal(nnm_frame_decode(&back, out, out_len, NULL, NULL), NNM_OK);
    assert_int_equal(nnm_wire_tensor_decode(&t2, &back->u.tensor.tensors[0], NULL, NULL), NNM_OK);
    assert_int_equal(t2.nbytes, t.nbytes);
    assert_memory_equal(t2.data, t.data, t.nbytes);
    nnm_tensor_cleanup(&t2);
    nnm_frame_free(back);

    /* A late duplicate of the completed stream is ignored, not a new stream. */
    nnm_frame late;
    chunk_frame(&late, "node-a", 99, 1, enc, len, NNM_WIRE_CHUNK_DEFAULT, 3);
    uint8_t *p;
    size_t pl;
    assert_int_equal(nnm_reasm_decode(r, &late, 5000, &p, &pl, NULL), NNM_OK);
    assert_null(p);
    nnm_reasm_get_stats(r, &st);
    assert_int_equal(st.streams, 0);
    assert_int_equal(st.duplicates, 21);

    nnm_reasm_free(r);
    free(out);
    free(enc);
    nnm_wire_tensor_cleanup(&wt);
    nnm_tensor_cleanup(&t);
}

static void test_chunk_rule_gives_balanced_chunks(void **state)
{
    (void)state;
    static const uint8_t buf[10] = "0123456789";
    nnm_frame f;
    /* 10 bytes at most 4 per chunk: 3 chunks of 4, 4, 2. */
    chunk_frame(&f, "node-a", 1, 1, buf, 10, 4, 0);
    assert_int_equal(f.u.chunk.count, 3);
    assert_int_equal(f.u.chunk.len, 4);
    chunk_frame(&f, "node-a", 1, 1, buf, 10, 4, 2);
    assert_int_equal(f.u.chunk.len, 2);
    assert_memory_equal(f.u.chunk.data, "89", 2);
    /* 9 bytes at most 4: 3 chunks of 3 (balanced, not 4, 4, 1). */
    chunk_frame(&f, "node-a", 1, 1, buf, 9, 4, 2);
    assert_int_equal(f.u.chunk.len, 3);
    assert_memory_equal(f.u.chunk.data, "678", 3);
    /* Small payloads are one chunk. */
    chunk_frame(&f, "node-a", 1, 1, buf, 10, NNM_WIRE_CHUNK_DEFAULT, 0);
    assert_int_equal(f.u.chunk.count, 1);
    assert_int_equal(f.u.chunk.len, 10);
    assert_int_equal(nnm_chunk_init(&f, 1, buf, 10, 4, 3, NULL), NNM_EINVAL);
    assert_int_equal(nnm_chunk_init(&f, 1, buf, 0, 4, 0, NULL), NNM_EINVAL);
    assert_int_equal(nnm_chunk_init(&f, 1, buf, 10, 0, 0, NULL), NNM_EINVAL);
}

static nnm_err feed(nnm_reasm *r, const char *sender, uint64_t req, uint64_t stream,
                    const uint8_t *buf, size_t total, size_t cs, uint32_t i, uint64_t now,
                    uint8_t **out)
{
    nnm_frame f;
    size_t n;
    chunk_frame(&f, sender, req, stream, buf, total, cs, i);
    return nnm_reasm_decode(r, &f, now, out, &n, NULL);
}

static void test_chunk_idle_stream_is_evicted_and_counted(void **state)
{
    (void)state;
    uint8_t buf[300];
    for (int i = 0; i < 300; i++) buf[i] = (uint8_t)i;
    nnm_reasm_config cfg;
    nnm_reasm_config_init(&cfg);
    cfg.timeout_ms = 1000;
    nnm_reasm *r;
    uint8_t *out;
    assert_int_equal(nnm_reasm_new(&r, &cfg, NULL), NNM_OK);
    assert_int_equal(feed(r, "node-a", 1, 1, buf, 300, 100, 0, 10000, &out), NNM_OK);
    assert_int_equal(feed(r, "node-a", 1, 1, buf, 300, 100, 2, 10900, &out), NNM_OK);
    /* 1000 ms after the last chunk: not yet (strictly longer than the timeout evicts). */
    nnm_reasm_set_clock(r, 11900);
    nnm_reasm_stats st;
    nnm_reasm_get_stats(r, &st);
    assert_int_equal(st.streams, 1);
    assert_int_equal(st.bytes, 300);
    nnm_reasm_set_clock(r, 11901);
    nnm_reasm_get_stats(r, &st);
    assert_int_equal(st.streams, 0);
    assert_int_equal(st.bytes, 0);
    assert_int_equal(st.evicted, 1);
    /* The missing chunk arriving late starts over; it does not complete anything. */
    assert_int_equal(feed(r, "node-a", 1, 1, buf, 300, 100, 1, 12000, &out), NNM_OK);
    assert_null(out);
    /* Another stream evicted by the clock carried in a chunk of a different stream. */
    assert_int_equal(feed(r, "node-c", 2, 1, buf, 300, 100, 0, 13500, &out), NNM_OK);
    nnm_reasm_get_stats(r, &st);
    assert_int_equal(st.evicted, 2);
    assert_int_equal(st.streams, 1);
    nnm_reasm_free(r);
}

static void test_chunk_memory_and_stream_caps_are_enforced(void **state)
{
    (void)state;
    uint8_t buf[8192];
    memset(buf, 0x5a, sizeof buf);
    nnm_reasm_config cfg;
    nnm_reasm_config_init(&cfg);
    cfg.max_bytes = 10000;
    cfg.max_streams = 2;
    cfg.max_stream_bytes = 8192;
    nnm_reasm *r;
    uint8_t *out;
    assert_int_equal(nnm_reasm_new(&r, &cfg, NULL), NNM_OK);
    assert_int_equal(feed(r, "node-a", 1, 1, buf, 8000, 1000, 0, 0, &out), NNM_OK);
    /* 8000 in flight + 4000 > 10000: refused before any allocation. */
    nnm_frame f;
    size_t n;
    nnm_diag d;
    chunk_frame(&f, "node-a", 2, 1, buf, 4000, 1000, 0);
    assert_int_equal(nnm_reasm_decode(r, &f, 1, &out, &n, &d), NNM_ERANGE);
    assert_non_null(strstr(d.msg, "cap"));
    assert_int_equal(feed(r, "node-a", 2, 1, buf, 2000, 1000, 0, 2, &out), NNM_OK);
    /* Third concurrent stream refused. */
    assert_int_equal(feed(r, "node-a", 3, 1, buf, 100, 50, 0, 3, &out), NNM_ERANGE);
    /* One payload above max_stream_bytes refused. */
    assert_int_equal(feed(r, "node-a", 4, 1, buf, 8193, 4096, 0, 4, &out), NNM_ERANGE);
    nnm_reasm_stats st;
    nnm_reasm_get_stats(r, &st);
    assert_int_equal(st.rejected, 3);
    assert_int_equal(st.bytes, 10000);
    /* Finishing a stream frees its share. */
    assert_int_equal(feed(r, "node-a", 2, 1, buf, 2000, 1000, 1, 5, &out), NNM_OK);
    assert_non_null(out);
    free(out);
    nnm_reasm_get_stats(r, &st);
    assert_int_equal(st.bytes, 8000);
    assert_int_equal(feed(r, "node-a", 3, 1, buf, 100, 50, 0, 6, &out), NNM_OK);
    nnm_reasm_free(r);
}

static void test_chunk_inconsistent_or_conflicting_chunks_are_rejected(void **state)
{
    (void)state;
    uint8_t buf[300], other[300];
    memset(buf, 1, sizeof buf);
    memset(other, 2, sizeof other);
    nnm_reasm *r;
    uint8_t *out;
    size_t n;
    nnm_diag d;
    assert_int_equal(nnm_reasm_new(&r, NULL, NULL), NNM_OK);
    assert_int_equal(feed(r, "node-a", 1, 1, buf, 300, 100, 0, 0, &out), NNM_OK);
    /* Same stream, different total or count. */
    assert_int_equal(feed(r, "node-a", 1, 1, buf, 299, 100, 1, 0, &out), NNM_EFORMAT);
    assert_int_equal(feed(r, "node-a", 1, 1, buf, 300, 150, 1, 0, &out), NNM_EFORMAT);
    /* A chunk whose length breaks the rule. */
    nnm_frame f;
    chunk_frame(&f, "node-a", 1, 1, buf, 300, 100, 1);
    f.u.chunk.len = 99;
    assert_int_equal(nnm_reasm_decode(r, &f, 0, &out, &n, &d), NNM_EFORMAT);
    chunk_frame(&f, "node-a", 1, 1, buf, 300, 100, 1);
    f.u.chunk.count = 301; /* more chunks than bytes */
    assert_int_equal(nnm_reasm_decode(r, &f, 0, &out, &n, &d), NNM_EFORMAT);
    f.hdr.type = NNM_FRAME_TENSOR;
    assert_int_equal(nnm_reasm_decode(r, &f, 0, &out, &n, &d), NNM_EINVAL);
    /* An identical duplicate is fine; a conflicting one drops the stream. */
    assert_int_equal(feed(r, "node-a", 1, 1, buf, 300, 100, 0, 0, &out), NNM_OK);
    assert_int_equal(feed(r, "node-a", 1, 1, other, 300, 100, 0, 0, &out), NNM_EFORMAT);
    nnm_reasm_stats st;
    nnm_reasm_get_stats(r, &st);
    assert_int_equal(st.streams, 0);
    assert_int_equal(st.duplicates, 1);
    /* Streams are per sender: the same ids from another node do not mix. */
    assert_int_equal(feed(r, "node-a", 1, 1, buf, 300, 100, 0, 0, &out), NNM_OK);
    assert_int_equal(feed(r, "node-c", 1, 1, other, 300, 100, 1, 0, &out), NNM_OK);
    assert_int_equal(feed(r, "node-a", 1, 1, buf, 300, 100, 1, 0, &out), NNM_OK);
    assert_int_equal(feed(r, "node-a", 1, 1, buf, 300, 100, 2, 0, &out), NNM_OK);
    assert_non_null(out);
    assert_memory_equal(out, buf, 300);
    free(out);
    nnm_reasm_free(r);

    nnm_reasm_config cfg;
    nnm_reasm_config_init(&cfg);
    cfg.max_streams = 0;
    assert_int_equal(nnm_reasm_new(&r, &cfg, NULL), NNM_EINVAL);
    assert_null(r);
    nnm_reasm_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chunk_64mb_tensor_reassembles_from_shuffled_duplicated_chunks),
        cmocka_unit_test(test_chunk_rule_gives_balanced_chunks),
        cmocka_unit_test(test_chunk_idle_stream_is_evicted_and_counted),
        cmocka_unit_test(test_chunk_memory_and_stream_caps_are_enforced),
        cmocka_unit_test(test_chunk_inconsistent_or_conflicting_chunks_are_rejected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
