/* tests/unit/test_frame.c — the frame codec: golden bytes for every frame type, round trips,
 * and each malformed input of the strict decoder (hostile counts and lengths, deep nesting,
 * every prefix, trailing bytes, wrong types, missing fields, bad shapes, bad ids), and the
 * routed TASK and piece TENSOR of stage-to-stage forwarding.
 *
 * Golden frames live in tests/vectors/frames/: <type>.bin for every type, task-routed.bin
 * and tensor-piece.bin for the extended forms (the table goldens below). They were written
 * once from the encoder (run with NNM_WRITE_VECTORS=1 to rewrite them after a deliberate
 * wire change, and bump NNM_WIRE_VERSION); the test fails whenever the encoder's output
 * changes. task-spec8.bin is the TASK of an encoder from before the result codec (slice spec
 * of 8 fields), which is also how today's encoder writes the result codec AUTO; it is never
 * rewritten, so that the encoder keeps producing what those workers accept. Hostile
 * inputs are built with msgpack-c's packer, a second, independent msgpack writer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <msgpack.h>

#include "nnmesh/wire.h"

#ifndef NNM_TOP_SRCDIR
#define NNM_TOP_SRCDIR "."
#endif

/* ---- sample frames --------------------------------------------------------------------- */

static const float f32_8[8] = { 0.0f, 1.5f, -2.25f, 3.0f, 0.125f, -0.5f, 100.0f, 0.0f };
static const int64_t i64_3[3] = { -1, 0, 1099511627776 };
static const float zeros_64[64];

static const uint8_t u8_8[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };

typedef struct sample {
    const char *name;
    nnm_frame f;
    nnm_wire_tensor wt[3];
    nnm_trace_entry trace[2];
    nnm_advert_cap caps[3];
    uint8_t models[2][NNM_WIRE_HASH_BYTES];
    uint8_t bytes[32];
    nnm_task_await awaits[2];
    nnm_await_piece pieces[3];
    nnm_task_forward forwards[2];
    const char *returns[2];
    nnm_piece_at at[2];
} sample;

/* Which form of a type's sample: the plain one, the extended one (a routed TASK, a piece
 * TENSOR), or a TASK asking for the default result codec AUTO. */
typedef enum form { FORM_PLAIN, FORM_EXT, FORM_AUTO } form;

static void tensor_of(nnm_wire_tensor *wt, const char *name, nnm_dtype dt, int ndim,
                      const int64_t *shape, const void *data, nnm_codec codec)
{
    nnm_tensor t = { .dtype = dt, .ndim = ndim, .data = (void *)data, .owned = 0 };
    for (int i = 0; i < ndim; i++) t.shape[i] = shape[i];
    t.nbytes = (size_t)nnm_shape_numel(shape, ndim, 1) * nnm_dtype_size(dt);
    assert_int_equal(nnm_wire_tensor_encode(wt, &t, codec, NULL), NNM_OK);
    wt->name = name;
}

static void header_of(nnm_frame_header *h, nnm_frame_type type, const char *receiver,
                      const char *topic)
{
    memset(h, 0, sizeof *h);
    h->version = NNM_WIRE_VERSION;
    h->type = (uint8_t)type;
    strcpy(h->sender, "node-a");
    strcpy(h->receiver, receiver);
    h->session = 0x1122334455667788ull;
    h->counter = 7;
    h->request = 42;
    strcpy(h->topic, topic);
}

/* The routes of the routed TASK sample: two awaited inputs, the first in two row bands from
 * two producers, the second whole from a third; two boxes of one output for two consumers;
 * two outputs to return. */
static void routes_of(sample *s)
{
    nnm_frame *f = &s->f;
    s->pieces[0] = (nnm_await_piece){ .from = "node-c", .at = { 0, 0, 0, 0 },
                                      .shape = { 1, 16, 14, 28 } };
    s->pieces[1] = (nnm_await_piece){ .from = "node-d", .at = { 0, 0, 14, 0 },
                                      .shape = { 1, 16, 14, 28 } };
    s->pieces[2] = (nnm_await_piece){ .from = "node-e", .at = { 0, 0 }, .shape = { 28, 300 } };
    s->awaits[0] = (nnm_task_await){ .name = "act-3", .dtype = NNM_DT_F32, .ndim = 4,
                                     .shape = { 1, 16, 28, 28 }, .npiece = 2,
                                     .pieces = &s->pieces[0] };
    s->awaits[1] = (nnm_task_await){ .name = "mask", .dtype = NNM_DT_U8, .ndim = 2,
                                     .shape = { 28, 300 }, .npiece = 1,
                                     .pieces = &s->pieces[2] };
    s->forwards[0] = (nnm_task_forward){ .node = "node-c", .task = 77, .name = "act-9",
                                         .ndim = 4, .begin = { 0, 0, 0, 0 },
                                         .end = { 1, 8, 15, 28 }, .at = { 0, 0, 0, 0 } };
    s->forwards[1] = (nnm_task_forward){ .node = "node-d", .task = 0x100000001ull,
                                         .name = "act-9", .ndim = 4, .begin = { 0, 0, 13, 0 },
                                         .end = { 1, 8, 28, 28 }, .at = { 0, 0, 0, 200 } };
    s->returns[0] = "act-9-pool";
    s->returns[1] = "logits";
    f->u.task.routed = 1;
    f->u.task.nawait = 2;
    f->u.task.await = s->awaits;
    f->u.task.nforward = 2;
    f->u.task.forward = s->forwards;
    f->u.task.nreturn = 2;
    f->u.task.returns = s->returns;
}

/* Fills s with the sample of one type in one form; deterministic, so its encoding is
 * golden. */
static void sample_init_form(sample *s, nnm_frame_type type, form fm)
{
    static const int64_t s1x2x2x2[4] = { 1, 2, 2, 2 }, s2x4[2] = { 2, 4 }, s3[1] = { 3 },
                         s64[1] = { 64 };
    memset(s, 0, sizeof *s);
    for (int i = 0; i < 32; i++) s->bytes[i] = (uint8_t)(i * 7 + 1);
    nnm_frame *f = &s->f;
    s->name = nnm_frame_type_name(type);
    const char *inbox = "nnmesh/lab/inbox/node-b";
    header_of(&f->hdr, type, "node-b", inbox);
    switch (type) {
    case NNM_FRAME_HELLO:
        header_of(&f->hdr, type, "", "nnmesh/lab/inbox/node-b");
        f->u.hello.payload = s->bytes;
        f->u.hello.len = 32;
        break;
    case NNM_FRAME_ADVERT:
        header_of(&f->hdr, type, "", "nnmesh/lab/advert/node-a");
        f->u.advert.epoch = 3;
        f->u.advert.seq = 1000;
        f->u.advert.expiry_ms = 1790000000000ull;
        strcpy(f->u.advert.version, "0.1.0");
        f->u.advert.free_mem = 1536ull << 20;
        f->u.advert.load_permille = 250;
        strcpy(s->caps[0].name, "mem-mb");      /* deliberately unsorted: the encoder sorts */
        s->caps[0].value = 2048;
        strcpy(s->caps[1].name, "cpu-cores");
        s->caps[1].value = 4;
        strcpy(s->caps[2].name, "gflops");
        s->caps[2].value = 12;
        f->u.advert.ncaps = 3;
        f->u.advert.caps = s->caps;
        memset(s->models[0], 0xab, NNM_WIRE_HASH_BYTES);
        memcpy(s->models[1], s->bytes, NNM_WIRE_HASH_BYTES);
        f->u.advert.nmodels = 2;
        f->u.advert.models = (const uint8_t (*)[NNM_WIRE_HASH_BYTES])s->models;
        break;
    case NNM_FRAME_TASK:
        memcpy(f->u.task.spec.model_hash, s->bytes, NNM_WIRE_HASH_BYTES);
        f->u.task.spec.node_begin = 3;
        f->u.task.spec.node_end = 9;
        f->u.task.spec.part_kind = NNM_PART_ROWS;
        f->u.task.spec.part_begin = 0;
        f->u.task.spec.part_end = 56;
        f->u.task.spec.attempt = 1;
        f->u.task.spec.deadline_ms = 1790000000500ull;
        f->u.task.spec.result_codec = fm == FORM_AUTO ? NNM_CODEC_AUTO : NNM_CODEC_F16;
        tensor_of(&s->wt[0], "input", NNM_DT_F32, 4, s1x2x2x2, f32_8, NNM_CODEC_NONE);
        f->u.task.ntensors = 1;
        f->u.task.tensors = s->wt;
        if (fm == FORM_EXT) routes_of(s);
        break;
    case NNM_FRAME_TENSOR:
        if (fm == FORM_EXT) {   /* two pieces for task 77 of node-b, of different ndim */
            f->hdr.request = 77;
            tensor_of(&s->wt[0], "act-3", NNM_DT_F32, 4, s1x2x2x2, f32_8, NNM_CODEC_NONE);
            tensor_of(&s->wt[1], "mask", NNM_DT_U8, 2, s2x4, u8_8, NNM_CODEC_NONE);
            f->u.tensor.ntensors = 2;
            f->u.tensor.tensors = s->wt;
            f->u.tensor.piece = 1;
            strcpy(f->u.tensor.coord, "node-a");
            s->at[0] = (nnm_piece_at){ { 0, 14, 26, 0 } };
            s->at[1] = (nnm_piece_at){ { 24, 296 } };
            f->u.tensor.at = s->at;
            break;
        }
        tensor_of(&s->wt[0], "ids", NNM_DT_I64, 1, s3, i64_3, NNM_CODEC_NONE);
        tensor_of(&s->wt[1], "act-f16", NNM_DT_F32, 2, s2x4, f32_8, NNM_CODEC_F16);
        tensor_of(&s->wt[2], "act-q8", NNM_DT_F32, 4, s1x2x2x2, f32_8,
                  NNM_CODEC_INT8_AFFINE);
        f->u.tensor.ntensors = 3;
        f->u.tensor.tensors = s->wt;
        break;
    case NNM_FRAME_RESULT:
        f->u.result.status = 0;
        tensor_of(&s->wt[0], "output", NNM_DT_F32, 1, s64, zeros_64, NNM_CODEC_LZ4);
        f->u.result.ntensors = 1;
        f->u.result.tensors = s->wt;
        s->trace[0] = (nnm_trace_entry){ "node-b", 0, 3, 1200, 300, 5 };
        s->trace[1] = (nnm_trace_entry){ "node-c", 3, 9, 70000, 65536, 0 };
        f->u.result.ntrace = 2;
        f->u.result.trace = s->trace;
        break;
    case NNM_FRAME_ERROR:
        f->u.error.code = NNM_ETIMEOUT;
        f->u.error.message = "slice [3, 9) missed its deadline";
        break;
    case NNM_FRAME_CTL:
        strcpy(f->u.ctl.verb, "policy");
        f->u.ctl.arg = "adaptive";
        break;
    case NNM_FRAME_PROBE:
        header_of(&f->hdr, type, "", "nnmesh/lab/inbox/node-b");
        f->u.probe.seq = 9;
        f->u.probe.sent_us = 123456789;
        f->u.probe.pad = s->bytes;
        f->u.probe.pad_len = 16;
        break;
    case NNM_FRAME_ACK:
        f->u.ack.counter = 7;
        f->u.ack.status = 0;
        break;
    case NNM_FRAME_BYE:
        header_of(&f->hdr, type, "", "nnmesh/lab/inbox/node-b");
        f->u.bye.reason = "shutdown";
        break;
    case NNM_FRAME_CHUNK:
        assert_int_equal(nnm_chunk_init(f, 5, (const uint8_t *)"0123456789", 10, 4, 1, NULL),
                         NNM_OK);
        break;
    default:
        fail();
    }
}

static void sample_init(sample *s, nnm_frame_type type)
{
    sample_init_form(s, type, FORM_PLAIN);
}

static void sample_cleanup(sample *s)
{
    for (int i = 0; i < 3; i++) nnm_wire_tensor_cleanup(&s->wt[i]);
}

static uint8_t *encode_sample_form(nnm_frame_type type, form fm, size_t *len)
{
    sample s;
    uint8_t *p = NULL;
    nnm_diag d;
    nnm_diag_clear(&d);
    sample_init_form(&s, type, fm);
    nnm_err rc = nnm_frame_encode(&p, len, &s.f, &d);
    if (rc != NNM_OK) print_error("encode %s: %s\n", s.name, d.msg);
    assert_int_equal(rc, NNM_OK);
    sample_cleanup(&s);
    return p;
}

static uint8_t *encode_sample(nnm_frame_type type, size_t *len)
{
    return encode_sample_form(type, FORM_PLAIN, len);
}

static uint8_t *read_file(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (fp == NULL) return NULL;
    uint8_t *buf = malloc(1 << 16);
    assert_non_null(buf);
    *len = fread(buf, 1, 1 << 16, fp);
    fclose(fp);
    return buf;
}

static void vector_path(char *buf, size_t n, const char *name)
{
    const char *top = getenv("top_srcdir");
    snprintf(buf, n, "%s/tests/vectors/frames/%s.bin", top ? top : NNM_TOP_SRCDIR, name);
}

/* ---- golden bytes and round trips ------------------------------------------------------ */

/* Every golden frame: the sample it is the encoding of, and whether NNM_WRITE_VECTORS may
 * rewrite it (task-spec8 is the bytes older workers accept: never). */
static const struct golden {
    const char *file;
    nnm_frame_type type;
    form fm;
    bool frozen;
} goldens[] = {
    { "hello", NNM_FRAME_HELLO, FORM_PLAIN, false },
    { "advert", NNM_FRAME_ADVERT, FORM_PLAIN, false },
    { "task", NNM_FRAME_TASK, FORM_PLAIN, false },       /* slice spec of 9 (F16) */
    { "tensor", NNM_FRAME_TENSOR, FORM_PLAIN, false },
    { "result", NNM_FRAME_RESULT, FORM_PLAIN, false },
    { "error", NNM_FRAME_ERROR, FORM_PLAIN, false },
    { "ctl", NNM_FRAME_CTL, FORM_PLAIN, false },
    { "probe", NNM_FRAME_PROBE, FORM_PLAIN, false },
    { "ack", NNM_FRAME_ACK, FORM_PLAIN, false },
    { "bye", NNM_FRAME_BYE, FORM_PLAIN, false },
    { "chunk", NNM_FRAME_CHUNK, FORM_PLAIN, false },
    { "task-spec8", NNM_FRAME_TASK, FORM_AUTO, true },  /* slice spec of 8 (AUTO) */
    { "task-routed", NNM_FRAME_TASK, FORM_EXT, false },
    { "tensor-piece", NNM_FRAME_TENSOR, FORM_EXT, false },
};
#define NGOLDEN (sizeof goldens / sizeof goldens[0])

static uint8_t *encode_golden(const struct golden *g, size_t *len)
{
    return encode_sample_form(g->type, g->fm, len);
}

static void test_frame_every_type_matches_golden_bytes(void **state)
{
    (void)state;
    for (unsigned t = 1; t < NNM_FRAME__COUNT; t++) {   /* the table misses no type */
        bool found = false;
        for (size_t i = 0; i < NGOLDEN; i++)
            found |= goldens[i].type == t && strcmp(goldens[i].file, nnm_frame_type_name(t)) == 0;
        assert_true(found);
    }
    for (size_t i = 0; i < NGOLDEN; i++) {
        const struct golden *g = &goldens[i];
        size_t len, glen = 0;
        uint8_t *enc = encode_golden(g, &len);
        char path[1024];
        vector_path(path, sizeof path, g->file);
        if (getenv("NNM_WRITE_VECTORS") && !g->frozen) {
            FILE *fp = fopen(path, "wb");
            assert_non_null(fp);
            assert_int_equal(fwrite(enc, 1, len, fp), len);
            fclose(fp);
        }
        uint8_t *gold = read_file(path, &glen);
        if (gold == NULL) print_error("missing golden frame %s\n", path);
        assert_non_null(gold);
        if (glen != len || memcmp(gold, enc, len) != 0)
            print_error("%s: encoder output differs from %s\n", g->file, path);
        assert_int_equal(glen, len);
        assert_memory_equal(gold, enc, len);
        free(gold);
        free(enc);
    }
}

static void test_frame_every_golden_reencodes_identically(void **state)
{
    (void)state;
    for (size_t i = 0; i < NGOLDEN; i++) {
        unsigned t = goldens[i].type;
        size_t len, len2;
        uint8_t *enc = encode_golden(&goldens[i], &len), *enc2 = NULL;
        nnm_frame *f = NULL;
        nnm_diag d;
        nnm_err rc = nnm_frame_decode(&f, enc, len, NULL, &d);
        if (rc != NNM_OK) print_error("%s: %s\n", goldens[i].file, d.msg);
        assert_int_equal(rc, NNM_OK);
        assert_int_equal(f->hdr.type, t);
        assert_int_equal(nnm_frame_encode(&enc2, &len2, f, NULL), NNM_OK);
        assert_int_equal(len2, len);
        assert_memory_equal(enc, enc2, len);
        free(enc2);
        nnm_frame_free(f);
        free(enc);
    }
}

static void test_frame_header_encode_is_prefix_of_frame(void **state)
{
    (void)state;
    sample s;
    sample_init(&s, NNM_FRAME_TENSOR);
    uint8_t *hdr, *all, *body;
    size_t hlen, alen, blen, used;
    assert_int_equal(nnm_frame_header_encode(&hdr, &hlen, &s.f.hdr, NULL), NNM_OK);
    assert_int_equal(nnm_frame_body_encode(&body, &blen, &s.f, NULL), NNM_OK);
    assert_int_equal(nnm_frame_encode(&all, &alen, &s.f, NULL), NNM_OK);
    assert_int_equal(alen, hlen + blen);
    assert_memory_equal(all, hdr, hlen);
    assert_memory_equal(all + hlen, body, blen);
    nnm_frame_header h;
    assert_int_equal(nnm_frame_header_decode(&h, &used, all, alen, NULL, NULL), NNM_OK);
    assert_int_equal(used, hlen);
    assert_string_equal(h.sender, "node-a");
    assert_string_equal(h.receiver, "node-b");
    assert_true(h.session == 0x1122334455667788ull);
    assert_string_equal(h.topic, "nnmesh/lab/inbox/node-b");
    nnm_frame *f;
    assert_int_equal(nnm_frame_body_decode(&f, &h, body, blen, NULL, NULL), NNM_OK);
    assert_int_equal(f->u.tensor.ntensors, 3);
    nnm_frame_free(f);
    free(hdr);
    free(body);
    free(all);
    sample_cleanup(&s);
}

static void test_frame_decoded_fields_round_trip(void **state)
{
    (void)state;
    size_t len;
    uint8_t *enc = encode_sample(NNM_FRAME_TENSOR, &len);
    nnm_frame *f;
    assert_int_equal(nnm_frame_decode(&f, enc, len, NULL, NULL), NNM_OK);
    const nnm_wire_tensor *t = f->u.tensor.tensors;
    assert_string_equal(t[0].name, "ids");
    assert_int_equal(t[0].dtype, NNM_DT_I64);
    nnm_tensor out;
    assert_int_equal(nnm_wire_tensor_decode(&out, &t[0], NULL, NULL), NNM_OK);
    assert_memory_equal(out.data, i64_3, sizeof i64_3);
    nnm_tensor_cleanup(&out);
    assert_int_equal(nnm_wire_tensor_decode(&out, &t[1], NULL, NULL), NNM_OK);
    assert_int_equal(out.dtype, NNM_DT_F32);
    assert_memory_equal(out.data, f32_8, sizeof f32_8); /* all exact in half precision */
    nnm_tensor_cleanup(&out);
    nnm_frame_free(f);
    free(enc);

    enc = encode_sample(NNM_FRAME_ADVERT, &len);
    assert_int_equal(nnm_frame_decode(&f, enc, len, NULL, NULL), NNM_OK);
    assert_int_equal(f->u.advert.ncaps, 3);
    assert_string_equal(f->u.advert.caps[0].name, "cpu-cores");
    assert_string_equal(f->u.advert.caps[2].name, "mem-mb");
    assert_int_equal(f->u.advert.caps[2].value, 2048);
    assert_string_equal(f->u.advert.version, "0.1.0");
    assert_int_equal(f->u.advert.nmodels, 2);
    assert_int_equal(f->u.advert.models[0][31], 0xab);
    nnm_frame_free(f);
    free(enc);

    enc = encode_sample(NNM_FRAME_RESULT, &len);
    assert_int_equal(nnm_frame_decode(&f, enc, len, NULL, NULL), NNM_OK);
    assert_int_equal(f->u.result.ntrace, 2);
    assert_string_equal(f->u.result.trace[1].node, "node-c");
    assert_int_equal(f->u.result.trace[1].transfer_us, 65536);
    assert_int_equal(f->u.result.tensors[0].codec, NNM_CODEC_LZ4);
    nnm_frame_free(f);
    free(enc);
}

/* ---- hostile inputs -------------------------------------------------------------------- */

static nnm_err decode_rc(const void *p, size_t n, const nnm_wire_limits *lim, nnm_diag *d)
{
    nnm_frame *f = (nnm_frame *)(uintptr_t)1;
    nnm_err rc = nnm_frame_decode(&f, p, n, lim, d);
    if (rc == NNM_OK) nnm_frame_free(f);
    else assert_null(f);
    return rc;
}

/* Heap bytes in use (glibc), or 0 when a sanitizer replaces malloc (ASan then checks the
 * same thing: every allocation freed, none oversized). */
static size_t heap_in_use(void)
{
#if defined(__SANITIZE_ADDRESS__)
    return 0;
#else
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
#endif
}

static void expect(const void *p, size_t n, nnm_err want, const char *needle)
{
    nnm_diag d;
    nnm_diag_clear(&d);
    size_t before = heap_in_use();
    nnm_err rc = decode_rc(p, n, NULL, &d);
    /* A rejected input leaves nothing behind: memory growth under 1 MB. */
    size_t after = heap_in_use();
    assert_true(after < before + (1u << 20));
    if (rc != want || (needle && strstr(d.msg, needle) == NULL))
        print_error("got %s '%s', want %s with '%s'\n", nnm_strerror(rc), d.msg,
                    nnm_strerror(want), needle ? needle : "");
    assert_int_equal(rc, want);
    if (needle) assert_non_null(strstr(d.msg, needle));
    assert_true(rc == NNM_OK || d.msg[0] != '\0');
}

/* A buffer built by msgpack-c: the valid header of a TENSOR frame then whatever body. */
typedef struct craft {
    msgpack_sbuffer sb;
    msgpack_packer pk;
} craft;

static void craft_begin_request(craft *c, nnm_frame_type type, uint64_t request)
{
    msgpack_sbuffer_init(&c->sb);
    msgpack_packer_init(&c->pk, &c->sb, msgpack_sbuffer_write);
    nnm_frame_header h;
    header_of(&h, type, "node-b", "nnmesh/lab/inbox/node-b");
    h.request = request;
    uint8_t *p;
    size_t n;
    assert_int_equal(nnm_frame_header_encode(&p, &n, &h, NULL), NNM_OK);
    msgpack_sbuffer_write(&c->sb, (const char *)p, n);
    free(p);
}

static void craft_begin(craft *c, nnm_frame_type type)
{
    craft_begin_request(c, type, 42);
}

static void craft_str(craft *c, const char *s)
{
    msgpack_pack_str_with_body(&c->pk, s, strlen(s));
}

static void craft_raw(craft *c, const void *p, size_t n)
{
    msgpack_sbuffer_write(&c->sb, p, n);
}

/* Body of a TENSOR frame with one tensor; shape written by the caller-supplied dims. */
static void craft_tensor(craft *c, uint8_t dtype, int ndim, const uint64_t *dims,
                         uint64_t raw_len, size_t data_len)
{
    msgpack_pack_array(&c->pk, 1);
    msgpack_pack_array(&c->pk, 1);
    msgpack_pack_array(&c->pk, 8);
    craft_str(c, "x");
    msgpack_pack_uint8(&c->pk, dtype);
    msgpack_pack_array(&c->pk, (size_t)ndim);
    for (int i = 0; i < ndim; i++) msgpack_pack_uint64(&c->pk, dims[i]);
    msgpack_pack_uint8(&c->pk, 0);
    msgpack_pack_uint8(&c->pk, 0);
    msgpack_pack_uint64(&c->pk, raw_len);
    msgpack_pack_bin(&c->pk, 0);
    msgpack_pack_bin(&c->pk, data_len);
    uint8_t *zero = calloc(1, data_len + 1);
    msgpack_pack_bin_body(&c->pk, zero, data_len);
    free(zero);
}

static void test_frame_huge_array_and_map_counts_are_rejected(void **state)
{
    (void)state;
    static const uint8_t arr[] = { 0xdd, 0xff, 0xff, 0xff, 0xff, 0x00 };
    expect(arr, sizeof arr, NNM_EFORMAT, "header");
    static const uint8_t map[] = { 0xdf, 0xff, 0xff, 0xff, 0xff, 0x00 };
    expect(map, sizeof map, NNM_EFORMAT, "expected an array");

    /* Inside a body: tensors array claiming 2^32-1. */
    craft c;
    craft_begin(&c, NNM_FRAME_TENSOR);
    msgpack_pack_array(&c.pk, 1);
    craft_raw(&c, arr, 5);
    craft_raw(&c, "\0\0\0\0\0\0\0\0\0\0", 10);
    expect(c.sb.data, c.sb.size, NNM_EFORMAT, "claims 4294967295 items");
    msgpack_sbuffer_destroy(&c.sb);

    /* Advert capabilities map claiming 2^32-1 entries. */
    craft_begin(&c, NNM_FRAME_ADVERT);
    msgpack_pack_array(&c.pk, 8);
    for (int i = 0; i < 3; i++) msgpack_pack_uint8(&c.pk, 1);
    craft_str(&c, "0.1.0");
    msgpack_pack_uint8(&c.pk, 1);
    msgpack_pack_uint8(&c.pk, 1);
    craft_raw(&c, map, 5);
    craft_raw(&c, "\0\0\0\0\0\0\0\0\0\0", 10);
    expect(c.sb.data, c.sb.size, NNM_EFORMAT, "advert capacities");
    msgpack_sbuffer_destroy(&c.sb);

    /* A count that fits the bytes but passes the item cap is a range error. */
    nnm_wire_limits lim;
    nnm_wire_limits_init(&lim);
    lim.max_array_items = 2;
    craft_begin(&c, NNM_FRAME_TENSOR);
    msgpack_pack_array(&c.pk, 1);
    msgpack_pack_array(&c.pk, 3);
    craft_raw(&c, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 30);
    nnm_diag d;
    assert_int_equal(decode_rc(c.sb.data, c.sb.size, &lim, &d), NNM_ERANGE);
    msgpack_sbuffer_destroy(&c.sb);
}

static void test_frame_deep_nesting_is_rejected_without_recursion(void **state)
{
    (void)state;
    size_t n = 100000;
    uint8_t *p = malloc(n + 1);
    memset(p, 0x91, n);
    p[n] = 0x00;
    expect(p, n + 1, NNM_EFORMAT, "expected 8");

    /* The same nest where the body starts. */
    craft c;
    craft_begin(&c, NNM_FRAME_TENSOR);
    craft_raw(&c, p, n + 1);
    expect(c.sb.data, c.sb.size, NNM_EFORMAT, "tensor 0");
    msgpack_sbuffer_destroy(&c.sb);
    free(p);

    /* A legal frame deeper than a lowered depth cap is a range error. */
    size_t len;
    uint8_t *enc = encode_sample(NNM_FRAME_TENSOR, &len);
    nnm_wire_limits lim;
    nnm_wire_limits_init(&lim);
    lim.max_depth = 3;
    nnm_diag d;
    assert_int_equal(decode_rc(enc, len, &lim, &d), NNM_ERANGE);
    assert_non_null(strstr(d.msg, "deeper"));
    free(enc);

    /* The deepest frame there is, a routed TASK, nests 6 levels: body > awaits > await >
     * pieces > piece > at (the header is an array beside the body, not around it). The
     * default of 8 admits it, and so does 6. */
    enc = encode_sample_form(NNM_FRAME_TASK, FORM_EXT, &len);
    assert_int_equal(decode_rc(enc, len, NULL, &d), NNM_OK);
    lim.max_depth = 6;
    assert_int_equal(decode_rc(enc, len, &lim, &d), NNM_OK);
    lim.max_depth = 5;
    assert_int_equal(decode_rc(enc, len, &lim, &d), NNM_ERANGE);
    assert_non_null(strstr(d.msg, "await 0 piece 0 at: nests deeper than 5 levels"));
    free(enc);
}

static void test_frame_bin32_claiming_4gb_is_rejected(void **state)
{
    (void)state;
    craft c;
    craft_begin(&c, NNM_FRAME_TENSOR);
    msgpack_pack_array(&c.pk, 1);
    msgpack_pack_array(&c.pk, 1);
    msgpack_pack_array(&c.pk, 8);
    craft_str(&c, "x");
    msgpack_pack_uint8(&c.pk, NNM_DT_U8);
    msgpack_pack_array(&c.pk, 1);
    msgpack_pack_uint8(&c.pk, 10);
    msgpack_pack_uint8(&c.pk, 0);
    msgpack_pack_uint8(&c.pk, 0);
    msgpack_pack_uint8(&c.pk, 10);
    msgpack_pack_bin(&c.pk, 0);
    static const uint8_t bin32[] = { 0xc6, 0xff, 0xff, 0xff, 0xff };
    craft_raw(&c, bin32, sizeof bin32);
    craft_raw(&c, "0123456789", 10);
    expect(c.sb.data, c.sb.size, NNM_EFORMAT, "declares 4294967295 bytes");
    msgpack_sbuffer_destroy(&c.sb);

    /* And as the whole input. */
    uint8_t raw[15];
    memcpy(raw, bin32, 5);
    memset(raw + 5, 'x', 10);
    expect(raw, sizeof raw, NNM_EFORMAT, NULL);
}

static void test_frame_every_prefix_is_rejected(void **state)
{
    (void)state;
    for (size_t g = 0; g < NGOLDEN; g++) {
        size_t len;
        uint8_t *enc = encode_golden(&goldens[g], &len);
        for (size_t k = 0; k < len; k++) {
            /* A fresh copy of exactly k bytes so that ASan sees any over-read. */
            uint8_t *p = malloc(k ? k : 1);
            memcpy(p, enc, k);
            nnm_diag d;
            nnm_err rc = decode_rc(p, k, NULL, &d);
            if (rc != NNM_EFORMAT)
                print_error("%s prefix %zu/%zu: %s %s\n", goldens[g].file, k, len,
                            nnm_strerror(rc), d.msg);
            assert_int_equal(rc, NNM_EFORMAT);
            free(p);
        }
        free(enc);
    }
}

static void test_frame_trailing_bytes_are_rejected(void **state)
{
    (void)state;
    for (size_t g = 0; g < NGOLDEN; g++) {
        size_t len;
        uint8_t *enc = encode_golden(&goldens[g], &len);
        uint8_t *p = malloc(len + 1);
        memcpy(p, enc, len);
        p[len] = 0x00;
        expect(p, len + 1, NNM_EFORMAT, "trailing");
        free(p);
        free(enc);
    }
}

static void test_frame_wrong_types_and_missing_fields_are_rejected(void **state)
{
    (void)state;
    /* Header with a string version. */
    craft c;
    msgpack_sbuffer_init(&c.sb);
    msgpack_packer_init(&c.pk, &c.sb, msgpack_sbuffer_write);
    msgpack_pack_array(&c.pk, 8);
    craft_str(&c, "1");
    craft_raw(&c, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 16);
    expect(c.sb.data, c.sb.size, NNM_EFORMAT, "header version: expected an unsigned integer");
    msgpack_sbuffer_destroy(&c.sb);

    /* Header with 7 fields. */
    msgpack_sbuffer_init(&c.sb);
    msgpack_pack_array(&c.pk, 7);
    expect(c.sb.data, c.sb.size, NNM_EFORMAT, "has 7 items, expected 8");
    msgpack_sbuffer_destroy(&c.sb);

    /* ACK body with nil for the counter; with a float; with one field missing. */
    craft_begin(&c, NNM_FRAME_ACK);
    msgpack_pack_array(&c.pk, 2);
    msgpack_pack_nil(&c.pk);
    msgpack_pack_uint8(&c.pk, 0);
    expect(c.sb.data, c.sb.size, NNM_EFORMAT, "ack counter: expected an unsigned integer");
    msgpack_sbuffer_destroy(&c.sb);
    craft_begin(&c, NNM_FRAME_ACK);
    msgpack_pack_array(&c.pk, 2);
    msgpack_pack_double(&c.pk, 1.0);
    msgpack_pack_uint8(&c.pk, 0);
    expect(c.sb.data, c.sb.size, NNM_EFORMAT, "found a float");
    msgpack_sbuffer_destroy(&c.sb);
    craft_begin(&c, NNM_FRAME_ACK);
    msgpack_pack_array(&c.pk, 1);
    msgpack_pack_uint8(&c.pk, 7);
    expect(c.sb.data, c.sb.size, NNM_EFORMAT, "body: has 1 items, expected 2");
    msgpack_sbuffer_destroy(&c.sb);

    /* A tensor with 7 fields; a tensor whose data is a string. */
    craft_begin(&c, NNM_FRAME_TENSOR);
    msgpack_pack_array(&c.pk, 1);
    msgpack_pack_array(&c.pk, 1);
    msgpack_pack_array(&c.pk, 7);
    craft_raw(&c, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 16);
    expect(c.sb.data, c.sb.size, NNM_EFORMAT, "tensor 0: has 7 items");
    msgpack_sbuffer_destroy(&c.sb);

    /* Non-canonical integer (7 as uint16) and unknown frame type / wrong version. */
    craft_begin(&c, NNM_FRAME_ACK);
    msgpack_pack_array(&c.pk, 2);
    craft_raw(&c, "\xcd\x00\x07", 3);
    msgpack_pack_uint8(&c.pk, 0);
    expect(c.sb.data, c.sb.size, NNM_EFORMAT, "non-canonical");
    msgpack_sbuffer_destroy(&c.sb);

    size_t len;
    uint8_t *enc = encode_sample(NNM_FRAME_ACK, &len);
    enc[1] = 2; /* version */
    expect(enc, len, NNM_EUNSUPPORTED, "wire version 2");
    enc[1] = 1;
    enc[2] = 99; /* type */
    expect(enc, len, NNM_EFORMAT, "unknown frame type 99");
    free(enc);
}

static void test_frame_negative_or_overflowing_shapes_are_rejected(void **state)
{
    (void)state;
    craft c;
    /* A negative dimension (-1 as a negative fixint). */
    craft_begin(&c, NNM_FRAME_TENSOR);
    msgpack_pack_array(&c.pk, 1);
    msgpack_pack_array(&c.pk, 1);
    msgpack_pack_array(&c.pk, 8);
    craft_str(&c, "x");
    msgpack_pack_uint8(&c.pk, NNM_DT_F32);
    msgpack_pack_array(&c.pk, 2);
    msgpack_pack_int64(&c.pk, -1);
    msgpack_pack_int64(&c.pk, -4);
    craft_raw(&c, "\0\0\0\0\0\0\0\0\0\0\0\0", 12);
    expect(c.sb.data, c.sb.size, NNM_EFORMAT, "shape[0]: is negative");
    msgpack_sbuffer_destroy(&c.sb);

    /* A dimension past INT64_MAX. */
    uint64_t big[1] = { UINT64_MAX };
    craft_begin(&c, NNM_FRAME_TENSOR);
    craft_tensor(&c, NNM_DT_U8, 1, big, 0, 0);
    expect(c.sb.data, c.sb.size, NNM_ERANGE, "shape[0]");
    msgpack_sbuffer_destroy(&c.sb);

    /* Dimensions whose product overflows. */
    uint64_t prod[3] = { 1ull << 40, 1ull << 40, 1 };
    craft_begin(&c, NNM_FRAME_TENSOR);
    craft_tensor(&c, NNM_DT_F32, 3, prod, 0, 0);
    expect(c.sb.data, c.sb.size, NNM_ERANGE, "overflows");
    msgpack_sbuffer_destroy(&c.sb);

    /* Fits 64 bits but not the tensor cap. */
    uint64_t huge[2] = { 1ull << 20, 1ull << 20 };
    craft_begin(&c, NNM_FRAME_TENSOR);
    craft_tensor(&c, NNM_DT_F32, 2, huge, 4ull << 40, 0);
    expect(c.sb.data, c.sb.size, NNM_ERANGE, "tensor limit");
    msgpack_sbuffer_destroy(&c.sb);
}

static void test_frame_shape_dtype_and_data_length_must_agree(void **state)
{
    (void)state;
    craft c;
    uint64_t dims[2] = { 2, 3 };
    /* raw length disagrees with shape x dtype */
    craft_begin(&c, NNM_FRAME_TENSOR);
    craft_tensor(&c, NNM_DT_F32, 2, dims, 23, 23);
    expect(c.sb.data, c.sb.size, NNM_EFORMAT, "raw length 23, but 6 float32 elements take 24");
    msgpack_sbuffer_destroy(&c.sb);
    /* raw length right, data one byte short */
    craft_begin(&c, NNM_FRAME_TENSOR);
    craft_tensor(&c, NNM_DT_F32, 2, dims, 24, 23);
    expect(c.sb.data, c.sb.size, NNM_EFORMAT, "data is 23 bytes, expected 24");
    msgpack_sbuffer_destroy(&c.sb);
    /* unknown dtype */
    craft_begin(&c, NNM_FRAME_TENSOR);
    craft_tensor(&c, 9, 2, dims, 24, 24);
    expect(c.sb.data, c.sb.size, NNM_EFORMAT, "unknown dtype 9");
    msgpack_sbuffer_destroy(&c.sb);
    /* all agree: accepted */
    craft_begin(&c, NNM_FRAME_TENSOR);
    craft_tensor(&c, NNM_DT_F32, 2, dims, 24, 24);
    expect(c.sb.data, c.sb.size, NNM_OK, NULL);
    msgpack_sbuffer_destroy(&c.sb);
}

static void test_frame_more_than_8_dims_is_rejected(void **state)
{
    (void)state;
    craft c;
    uint64_t dims[9] = { 1, 1, 1, 1, 1, 1, 1, 1, 1 };
    craft_begin(&c, NNM_FRAME_TENSOR);
    craft_tensor(&c, NNM_DT_U8, 9, dims, 1, 1);
    expect(c.sb.data, c.sb.size, NNM_ERANGE, "9 dimensions");
    msgpack_sbuffer_destroy(&c.sb);
    craft_begin(&c, NNM_FRAME_TENSOR);
    craft_tensor(&c, NNM_DT_U8, 8, dims, 1, 1);
    expect(c.sb.data, c.sb.size, NNM_OK, NULL);
    msgpack_sbuffer_destroy(&c.sb);
}

/* A header with the given sender bytes (any length, any bytes). */
static void craft_header_sender(craft *c, const char *sender, size_t n)
{
    msgpack_sbuffer_init(&c->sb);
    msgpack_packer_init(&c->pk, &c->sb, msgpack_sbuffer_write);
    msgpack_pack_array(&c->pk, 8);
    msgpack_pack_uint8(&c->pk, 1);
    msgpack_pack_uint8(&c->pk, NNM_FRAME_ACK);
    msgpack_pack_str_with_body(&c->pk, sender, n);
    craft_str(c, "node-b");
    for (int i = 0; i < 3; i++) msgpack_pack_uint8(&c->pk, 1);
    craft_str(c, "nnmesh/lab/inbox/node-b");
    msgpack_pack_array(&c->pk, 2);
    msgpack_pack_uint8(&c->pk, 1);
    msgpack_pack_uint8(&c->pk, 0);
}

static void test_frame_bad_ids_are_rejected(void **state)
{
    (void)state;
    static const struct { const char *s; size_t n; } bad[] = {
        { "node+a", 6 }, { "node#", 5 }, { "a/b", 3 }, { "$sys", 4 }, { "no\0de", 5 },
        { "n\xc3\x28", 3 }, { "\xff\xfe", 2 }, { "Node", 4 }, { "", 0 }, { "node a", 6 },
        { "n\xc3\xa9", 3 },
    };
    craft c;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        craft_header_sender(&c, bad[i].s, bad[i].n);
        expect(c.sb.data, c.sb.size, NNM_EFORMAT, "sender id");
        msgpack_sbuffer_destroy(&c.sb);
    }
    char longid[40];
    memset(longid, 'a', sizeof longid);
    craft_header_sender(&c, longid, 33);
    expect(c.sb.data, c.sb.size, NNM_ERANGE, "sender id");
    msgpack_sbuffer_destroy(&c.sb);
    craft_header_sender(&c, longid, 32);
    expect(c.sb.data, c.sb.size, NNM_OK, NULL);
    msgpack_sbuffer_destroy(&c.sb);

    /* Broadcast (empty receiver) only where allowed; a bad topic in the header. */
    sample s;
    sample_init(&s, NNM_FRAME_ACK);
    s.f.hdr.receiver[0] = '\0';
    uint8_t *p;
    size_t n;
    nnm_diag d;
    assert_int_equal(nnm_frame_encode(&p, &n, &s.f, &d), NNM_EINVAL);
    assert_null(p);
    assert_non_null(strstr(d.msg, "receiver id"));
    sample_init(&s, NNM_FRAME_ACK);
    strcpy(s.f.hdr.topic, "nnmesh/lab/inbox/#");
    assert_int_equal(nnm_frame_encode(&p, &n, &s.f, &d), NNM_EINVAL);
    assert_non_null(strstr(d.msg, "header topic"));
    sample_init(&s, NNM_FRAME_ACK);
    strcpy(s.f.hdr.sender, "a+b");
    assert_int_equal(nnm_frame_header_encode(&p, &n, &s.f.hdr, &d), NNM_EINVAL);
}

static void test_frame_encoder_rejects_what_decoder_would(void **state)
{
    (void)state;
    sample s;
    uint8_t *p;
    size_t n;
    nnm_diag d;
    sample_init(&s, NNM_FRAME_TASK);
    s.f.u.task.spec.node_end = 3; /* empty node range */
    assert_int_equal(nnm_frame_encode(&p, &n, &s.f, &d), NNM_EINVAL);
    assert_non_null(strstr(d.msg, "slice node range"));
    sample_cleanup(&s);

    sample_init(&s, NNM_FRAME_ADVERT);
    strcpy(s.caps[2].name, "mem-mb"); /* duplicate key */
    assert_int_equal(nnm_frame_encode(&p, &n, &s.f, &d), NNM_EINVAL);
    assert_non_null(strstr(d.msg, "sorted and unique"));

    sample_init(&s, NNM_FRAME_ERROR);
    s.f.u.error.message = "bad \xff utf-8";
    assert_int_equal(nnm_frame_encode(&p, &n, &s.f, &d), NNM_EINVAL);

    sample_init(&s, NNM_FRAME_CHUNK);
    s.f.u.chunk.len = 3; /* chunk 1 of 10 bytes in 3 must be 4 bytes */
    assert_int_equal(nnm_frame_encode(&p, &n, &s.f, &d), NNM_EINVAL);
    assert_non_null(strstr(d.msg, "chunk data"));

    sample_init(&s, NNM_FRAME_TENSOR);
    s.wt[0].shape[0] = 4; /* shape no longer matches the data */
    assert_int_equal(nnm_frame_encode(&p, &n, &s.f, &d), NNM_EINVAL);
    sample_cleanup(&s);
}

/* ---- the slice spec's result codec ------------------------------------------------------ */

/* A slice spec of nfields fields (8: without the result codec), written by msgpack-c. */
static void craft_spec(craft *c, size_t nfields, uint64_t result_codec)
{
    static const uint8_t hash[NNM_WIRE_HASH_BYTES] = { 7 };
    msgpack_pack_array(&c->pk, nfields);
    msgpack_pack_bin(&c->pk, sizeof hash);
    msgpack_pack_bin_body(&c->pk, hash, sizeof hash);
    msgpack_pack_uint32(&c->pk, 3);             /* nodes [3, 9) */
    msgpack_pack_uint32(&c->pk, 9);
    msgpack_pack_uint8(&c->pk, NNM_PART_WHOLE);
    msgpack_pack_uint32(&c->pk, 0);
    msgpack_pack_uint32(&c->pk, 0);
    msgpack_pack_uint32(&c->pk, 0);             /* attempt */
    msgpack_pack_uint64(&c->pk, 0);             /* deadline */
    for (size_t k = 8; k < nfields; k++) msgpack_pack_uint64(&c->pk, result_codec);
}

/* A TASK whose slice spec has nfields fields and no tensors. */
static void craft_task(craft *c, size_t nfields, uint64_t result_codec)
{
    craft_begin(c, NNM_FRAME_TASK);
    msgpack_pack_array(&c->pk, 2);
    craft_spec(c, nfields, result_codec);
    msgpack_pack_array(&c->pk, 0);
}

static void test_frame_task_result_codec_round_trips_and_bad_codec_is_rejected(void **state)
{
    (void)state;
    static const uint8_t codecs[] = { NNM_CODEC_NONE, NNM_CODEC_F16, NNM_CODEC_INT8_AFFINE,
                                      NNM_CODEC_LZ4, NNM_CODEC_AUTO };
    for (size_t i = 0; i < sizeof codecs; i++) {
        sample s;
        sample_init(&s, NNM_FRAME_TASK);
        s.f.u.task.spec.result_codec = codecs[i];
        uint8_t *enc = NULL, *enc2 = NULL;
        size_t len, len2;
        assert_int_equal(nnm_frame_encode(&enc, &len, &s.f, NULL), NNM_OK);
        nnm_frame *f = NULL;
        assert_int_equal(nnm_frame_decode(&f, enc, len, NULL, NULL), NNM_OK);
        assert_int_equal(f->u.task.spec.result_codec, codecs[i]);
        assert_int_equal(f->u.task.spec.deadline_ms, 1790000000500ull);
        assert_int_equal(nnm_frame_encode(&enc2, &len2, f, NULL), NNM_OK);
        assert_int_equal(len2, len);
        assert_memory_equal(enc2, enc, len);
        free(enc2);
        nnm_frame_free(f);
        free(enc);
        sample_cleanup(&s);
    }

    /* What no codec means: refused by the encoder (the decoder judges it) and the decoder. */
    sample s;
    sample_init(&s, NNM_FRAME_TASK);
    s.f.u.task.spec.result_codec = NNM_CODEC__COUNT;
    uint8_t *p = NULL;
    size_t n;
    nnm_diag d;
    assert_int_equal(nnm_frame_encode(&p, &n, &s.f, &d), NNM_EINVAL);
    assert_non_null(strstr(d.msg, "slice result codec"));
    assert_null(p);
    sample_cleanup(&s);
    craft c;
    craft_task(&c, 9, NNM_CODEC_LZ4);
    expect(c.sb.data, c.sb.size, NNM_OK, NULL);
    msgpack_sbuffer_destroy(&c.sb);
    craft_task(&c, 9, NNM_CODEC__COUNT);
    expect(c.sb.data, c.sb.size, NNM_EFORMAT, "slice result codec: unknown codec 4");
    msgpack_sbuffer_destroy(&c.sb);
    craft_task(&c, 9, 200);
    expect(c.sb.data, c.sb.size, NNM_EFORMAT, "slice result codec: unknown codec 200");
    msgpack_sbuffer_destroy(&c.sb);
    craft_task(&c, 9, 256);
    expect(c.sb.data, c.sb.size, NNM_ERANGE, "slice result codec");
    msgpack_sbuffer_destroy(&c.sb);
    craft_task(&c, 7, 0);
    expect(c.sb.data, c.sb.size, NNM_EFORMAT, "slice spec: has 7 items");
    msgpack_sbuffer_destroy(&c.sb);
    craft_task(&c, 10, NNM_CODEC_NONE);
    expect(c.sb.data, c.sb.size, NNM_EFORMAT, "slice spec: has 10 items");
    msgpack_sbuffer_destroy(&c.sb);
}

/* An older sender's TASK (slice spec of 8 fields) decodes, asking for AUTO results as such
 * a sender expected, and re-encodes identically: AUTO is written without the field. A
 * 9-field spec saying AUTO (the previous build's encoder) decodes too and re-encodes 2 bytes
 * shorter, as the 8-field spec. */
static void test_frame_task_spec_of_8_fields_decodes_as_auto(void **state)
{
    (void)state;
    char path[1024];
    vector_path(path, sizeof path, "task-spec8");
    size_t len = 0, len2;
    uint8_t *old = read_file(path, &len), *enc2 = NULL;
    if (old == NULL) print_error("missing golden frame %s\n", path);
    assert_non_null(old);
    nnm_frame *f = NULL;
    nnm_diag d;
    nnm_err rc = nnm_frame_decode(&f, old, len, NULL, &d);
    if (rc != NNM_OK) print_error("%s: %s\n", path, d.msg);
    assert_int_equal(rc, NNM_OK);
    const nnm_slice_spec *sp = &f->u.task.spec;
    print_message("8-field TASK (%zu bytes): nodes [%u, %u), result codec %u\n", len,
                  sp->node_begin, sp->node_end, sp->result_codec);
    assert_int_equal(sp->result_codec, NNM_CODEC_AUTO);
    assert_int_equal(sp->node_begin, 3);
    assert_int_equal(sp->node_end, 9);
    assert_int_equal(sp->part_kind, NNM_PART_ROWS);
    assert_int_equal(sp->part_end, 56);
    assert_int_equal(sp->deadline_ms, 1790000000500ull);
    assert_int_equal(f->u.task.ntensors, 1);
    assert_string_equal(f->u.task.tensors[0].name, "input");
    assert_int_equal(nnm_frame_encode(&enc2, &len2, f, NULL), NNM_OK);
    assert_int_equal(len2, len);
    assert_memory_equal(enc2, old, len);
    nnm_frame_free(f);
    free(enc2);
    free(old);

    craft c, c9;                    /* the same, from msgpack-c; then with 9 fields */
    craft_task(&c, 8, 0);
    assert_int_equal(nnm_frame_decode(&f, (const uint8_t *)c.sb.data, c.sb.size, NULL, NULL),
                     NNM_OK);
    assert_int_equal(f->u.task.spec.result_codec, NNM_CODEC_AUTO);
    nnm_frame_free(f);
    craft_task(&c9, 9, NNM_CODEC_AUTO);
    assert_int_equal(nnm_frame_decode(&f, (const uint8_t *)c9.sb.data, c9.sb.size, NULL, NULL),
                     NNM_OK);
    assert_int_equal(f->u.task.spec.result_codec, NNM_CODEC_AUTO);
    assert_int_equal(nnm_frame_encode(&enc2, &len2, f, NULL), NNM_OK);
    print_message("9-field spec with AUTO (%zu bytes) re-encodes as 8 fields (%zu bytes)\n",
                  c9.sb.size, len2);
    assert_int_equal(len2, c9.sb.size - 2);
    assert_int_equal(len2, c.sb.size);
    assert_memory_equal(enc2, c.sb.data, len2);
    free(enc2);
    nnm_frame_free(f);
    msgpack_sbuffer_destroy(&c.sb);
    msgpack_sbuffer_destroy(&c9.sb);
}

/* ---- stage-to-stage forwarding: the routed TASK and the piece TENSOR --------------------- */

static void assert_tensors_equal(const nnm_wire_tensor *want, const nnm_wire_tensor *got,
                                 size_t n)
{
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(got[i].name, want[i].name);
        assert_int_equal(got[i].dtype, want[i].dtype);
        assert_int_equal(got[i].layout, want[i].layout);
        assert_int_equal(got[i].codec, want[i].codec);
        assert_int_equal(got[i].ndim, want[i].ndim);
        assert_memory_equal(got[i].shape, want[i].shape, (size_t)want[i].ndim * 8);
        assert_int_equal(got[i].raw_len, want[i].raw_len);
        assert_int_equal(got[i].params_len, want[i].params_len);
        assert_int_equal(got[i].data_len, want[i].data_len);
        if (want[i].data_len) assert_memory_equal(got[i].data, want[i].data, want[i].data_len);
    }
}

/* Every field of a TASK: header, spec, tensors, and the routes when routed. */
static void assert_task_equal(const nnm_frame *want, const nnm_frame *got)
{
    assert_memory_equal(&got->hdr, &want->hdr, sizeof want->hdr);
    assert_memory_equal(&got->u.task.spec, &want->u.task.spec, sizeof want->u.task.spec);
    assert_int_equal(got->u.task.ntensors, want->u.task.ntensors);
    assert_tensors_equal(want->u.task.tensors, got->u.task.tensors, want->u.task.ntensors);
    assert_int_equal(got->u.task.routed, want->u.task.routed);
    assert_int_equal(got->u.task.nawait, want->u.task.nawait);
    for (size_t i = 0; i < want->u.task.nawait; i++) {
        const nnm_task_await *a = &want->u.task.await[i], *b = &got->u.task.await[i];
        assert_string_equal(b->name, a->name);
        assert_int_equal(b->dtype, a->dtype);
        assert_int_equal(b->ndim, a->ndim);
        assert_memory_equal(b->shape, a->shape, (size_t)a->ndim * 8);
        assert_int_equal(b->npiece, a->npiece);
        for (size_t k = 0; k < a->npiece; k++) {
            assert_string_equal(b->pieces[k].from, a->pieces[k].from);
            assert_memory_equal(b->pieces[k].at, a->pieces[k].at, (size_t)a->ndim * 8);
            assert_memory_equal(b->pieces[k].shape, a->pieces[k].shape, (size_t)a->ndim * 8);
        }
    }
    assert_int_equal(got->u.task.nforward, want->u.task.nforward);
    for (size_t i = 0; i < want->u.task.nforward; i++) {
        const nnm_task_forward *a = &want->u.task.forward[i], *b = &got->u.task.forward[i];
        assert_string_equal(b->node, a->node);
        assert_true(b->task == a->task);
        assert_string_equal(b->name, a->name);
        assert_int_equal(b->ndim, a->ndim);
        assert_memory_equal(b->begin, a->begin, (size_t)a->ndim * 8);
        assert_memory_equal(b->end, a->end, (size_t)a->ndim * 8);
        assert_memory_equal(b->at, a->at, (size_t)a->ndim * 8);
    }
    assert_int_equal(got->u.task.nreturn, want->u.task.nreturn);
    for (size_t i = 0; i < want->u.task.nreturn; i++)
        assert_string_equal(got->u.task.returns[i], want->u.task.returns[i]);
}

/* Every field of a piece TENSOR. */
static void assert_piece_equal(const nnm_frame *want, const nnm_frame *got)
{
    assert_memory_equal(&got->hdr, &want->hdr, sizeof want->hdr);
    assert_int_equal(got->u.tensor.piece, 1);
    assert_string_equal(got->u.tensor.coord, want->u.tensor.coord);
    assert_int_equal(got->u.tensor.ntensors, want->u.tensor.ntensors);
    assert_tensors_equal(want->u.tensor.tensors, got->u.tensor.tensors,
                         want->u.tensor.ntensors);
    for (size_t i = 0; i < want->u.tensor.ntensors; i++)
        assert_memory_equal(got->u.tensor.at[i].v, want->u.tensor.at[i].v,
                            (size_t)want->u.tensor.tensors[i].ndim * 8);
}

/* Encodes s, decodes it, checks every field and that it re-encodes identically; returns
 * the body's first byte (its array header). */
static uint8_t round_trip(const sample *s)
{
    uint8_t *enc = NULL, *enc2 = NULL, *body = NULL;
    size_t len, len2, blen;
    nnm_diag d;
    nnm_err rc = nnm_frame_encode(&enc, &len, &s->f, &d);
    if (rc != NNM_OK) print_error("encode %s: %s\n", s->name, d.msg);
    assert_int_equal(rc, NNM_OK);
    nnm_frame *f = NULL;
    assert_int_equal(nnm_frame_decode(&f, enc, len, NULL, &d), NNM_OK);
    if (s->f.hdr.type == NNM_FRAME_TASK) assert_task_equal(&s->f, f);
    else assert_piece_equal(&s->f, f);
    assert_int_equal(nnm_frame_encode(&enc2, &len2, f, NULL), NNM_OK);
    assert_int_equal(len2, len);
    assert_memory_equal(enc2, enc, len);
    assert_int_equal(nnm_frame_body_encode(&body, &blen, &s->f, NULL), NNM_OK);
    uint8_t first = body[0];
    nnm_frame_free(f);
    free(body);
    free(enc2);
    free(enc);
    return first;
}

static void test_frame_routed_task_and_piece_round_trip_every_field(void **state)
{
    (void)state;
    sample s;
    sample_init_form(&s, NNM_FRAME_TASK, FORM_EXT);
    assert_int_equal(round_trip(&s), 0x95);
    s.f.u.task.nawait = s.f.u.task.nforward = s.f.u.task.nreturn = 0;   /* routed, empty */
    s.f.u.task.await = NULL;
    s.f.u.task.forward = NULL;
    s.f.u.task.returns = NULL;
    assert_int_equal(round_trip(&s), 0x95);
    sample_cleanup(&s);

    sample_init_form(&s, NNM_FRAME_TENSOR, FORM_EXT);
    assert_int_equal(round_trip(&s), 0x93);
    sample_cleanup(&s);

    /* routed == 0 and piece == 0 write the short forms, whatever the other fields hold. */
    size_t len, plen;
    uint8_t *plain = encode_sample(NNM_FRAME_TASK, &plen), *enc;
    sample_init_form(&s, NNM_FRAME_TASK, FORM_EXT);
    s.f.u.task.routed = 0;
    s.f.u.task.await = NULL;
    assert_int_equal(nnm_frame_encode(&enc, &len, &s.f, NULL), NNM_OK);
    assert_int_equal(len, plen);
    assert_memory_equal(enc, plain, len);
    free(enc);
    free(plain);
    sample_cleanup(&s);
    sample_init_form(&s, NNM_FRAME_TENSOR, FORM_EXT);
    s.f.u.tensor.piece = 0;
    s.f.u.tensor.at = NULL;
    s.f.hdr.request = 0;
    uint8_t *body;
    assert_int_equal(nnm_frame_body_encode(&body, &len, &s.f, NULL), NNM_OK);
    assert_int_equal(body[0], 0x91);
    nnm_frame *f;
    assert_int_equal(nnm_frame_body_decode(&f, &s.f.hdr, body, len, NULL, NULL), NNM_OK);
    assert_int_equal(f->u.tensor.piece, 0);
    assert_int_equal(f->u.tensor.ntensors, 2);
    assert_null(f->u.tensor.at);
    nnm_frame_free(f);
    free(body);
    sample_cleanup(&s);
}

/* The golden files decode to exactly the samples they were written from. */
static void test_frame_routed_and_piece_goldens_decode_to_their_samples(void **state)
{
    (void)state;
    static const char *const files[] = { "task-routed", "tensor-piece" };
    static const nnm_frame_type types[] = { NNM_FRAME_TASK, NNM_FRAME_TENSOR };
    for (size_t i = 0; i < 2; i++) {
        char path[1024];
        vector_path(path, sizeof path, files[i]);
        size_t len = 0;
        uint8_t *gold = read_file(path, &len);
        if (gold == NULL) print_error("missing golden frame %s\n", path);
        assert_non_null(gold);
        nnm_frame *f = NULL;
        nnm_diag d;
        nnm_err rc = nnm_frame_decode(&f, gold, len, NULL, &d);
        if (rc != NNM_OK) print_error("%s: %s\n", path, d.msg);
        assert_int_equal(rc, NNM_OK);
        sample s;
        sample_init_form(&s, types[i], FORM_EXT);
        if (types[i] == NNM_FRAME_TASK) {
            assert_task_equal(&s.f, f);
            print_message("%s (%zu bytes): %zu awaits, %zu forwards, %zu returns\n", files[i],
                          len, f->u.task.nawait, f->u.task.nforward, f->u.task.nreturn);
        } else {
            assert_piece_equal(&s.f, f);
            print_message("%s (%zu bytes): %zu pieces for task %llu of coordinator %s\n",
                          files[i], len, f->u.tensor.ntensors,
                          (unsigned long long)f->hdr.request, f->u.tensor.coord);
        }
        sample_cleanup(&s);
        nnm_frame_free(f);
        free(gold);
    }
}

/* Header, body of `fields` and the first two fields of a routed TASK, by msgpack-c: a spec
 * of 8 and one carried u8 tensor "input" [2]; the caller packs the rest. */
static void craft_routed(craft *c, size_t fields)
{
    craft_begin(c, NNM_FRAME_TASK);
    msgpack_pack_array(&c->pk, fields);
    craft_spec(c, 8, 0);
    msgpack_pack_array(&c->pk, 1);
    msgpack_pack_array(&c->pk, 8);
    craft_str(c, "input");
    msgpack_pack_uint8(&c->pk, NNM_DT_U8);
    msgpack_pack_array(&c->pk, 1);
    msgpack_pack_uint8(&c->pk, 2);
    msgpack_pack_uint8(&c->pk, 0);
    msgpack_pack_uint8(&c->pk, 0);
    msgpack_pack_uint8(&c->pk, 2);
    msgpack_pack_bin(&c->pk, 0);
    msgpack_pack_bin_with_body(&c->pk, "\1\2", 2);
}

static void craft_dims(craft *c, size_t n, const uint64_t *v)
{
    msgpack_pack_array(&c->pk, n);
    for (size_t i = 0; i < n; i++) msgpack_pack_uint64(&c->pk, v[i]);
}

/* The first three fields of an await; the caller packs its pieces. */
static void craft_await_head(craft *c, const char *name, uint64_t dtype, size_t ndim,
                             const uint64_t *shape)
{
    msgpack_pack_array(&c->pk, 4);
    craft_str(c, name);
    msgpack_pack_uint64(&c->pk, dtype);
    craft_dims(c, ndim, shape);
}

static void craft_await_piece(craft *c, const char *from, size_t nat, const uint64_t *at,
                              size_t nshape, const uint64_t *shape)
{
    msgpack_pack_array(&c->pk, 3);
    craft_str(c, from);
    craft_dims(c, nat, at);
    craft_dims(c, nshape, shape);
}

/* An await that comes whole, in one piece from node-c. */
static void craft_await(craft *c, const char *name, uint64_t dtype, size_t ndim,
                        const uint64_t *shape)
{
    static const uint64_t zero[9];
    craft_await_head(c, name, dtype, ndim, shape);
    msgpack_pack_array(&c->pk, 1);
    craft_await_piece(c, "node-c", ndim, zero, ndim, shape);
}

static void test_frame_bad_awaits_are_rejected(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        uint64_t dtype;
        size_t ndim;
        uint64_t shape[9];
        nnm_err rc;
        const char *needle;
    } cases[] = {
        { "act", NNM_DT_F32, 0, { 0 }, NNM_EFORMAT, "await 0 shape: has no dimensions" },
        { "act", NNM_DT_F32, 9, { 1, 1, 1, 1, 1, 1, 1, 1, 1 }, NNM_ERANGE,
          "await 0 shape: has 9 dimensions; the limit is 8" },
        { "act", NNM_DT_F32, 2, { 4, 0 }, NNM_EFORMAT, "await 0 shape: dimension 1 is 0" },
        { "act", 9, 1, { 4 }, NNM_EFORMAT, "await 0 dtype: unknown dtype 9" },
        { "act", 0, 1, { 4 }, NNM_EFORMAT, "await 0 dtype: unknown dtype 0" },
        { "act", NNM_DT_F32, 2, { 1ull << 20, 1ull << 20 }, NNM_ERANGE,
          "await 0 shape: takes 4398046511104 bytes; the tensor limit is" },
        { "act", NNM_DT_F32, 3, { 1ull << 40, 1ull << 40, 1 }, NNM_ERANGE,
          "await 0 shape: overflows" },
        { "act", NNM_DT_U8, 1, { 1ull << 63 }, NNM_ERANGE, "await 0 shape[0]" },
        { "", NNM_DT_U8, 1, { 4 }, NNM_EFORMAT, "await 0 name: is empty" },
        { "input", NNM_DT_U8, 1, { 4 }, NNM_EFORMAT, "awaits: 'input' is also tensor 0" },
        { "act", NNM_DT_F32, 8, { 1, 1, 1, 1, 1, 1, 1, 64 }, NNM_OK, NULL },
        { "act", NNM_DT_U8, 2, { 1ull << 14, 1ull << 14 }, NNM_OK, NULL },   /* 256 MiB */
    };
    craft c;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        craft_routed(&c, 5);
        msgpack_pack_array(&c.pk, 1);
        craft_await(&c, cases[i].name, cases[i].dtype, cases[i].ndim, cases[i].shape);
        msgpack_pack_array(&c.pk, 0);
        msgpack_pack_array(&c.pk, 0);
        expect(c.sb.data, c.sb.size, cases[i].rc, cases[i].needle);
        msgpack_sbuffer_destroy(&c.sb);
    }
    static const uint64_t s4[1] = { 4 };
    craft_routed(&c, 5);                /* the same name twice */
    msgpack_pack_array(&c.pk, 3);
    craft_await(&c, "act", NNM_DT_U8, 1, s4);
    craft_await(&c, "mask", NNM_DT_U8, 1, s4);
    craft_await(&c, "act", NNM_DT_F32, 1, s4);
    msgpack_pack_array(&c.pk, 0);
    msgpack_pack_array(&c.pk, 0);
    expect(c.sb.data, c.sb.size, NNM_EFORMAT, "awaits: 'act' is awaited twice");
    msgpack_sbuffer_destroy(&c.sb);
}

/* An await's pieces: at least one, each [from, at, shape] with a node id, the await's rank,
 * no empty dimension and its box within the await's shape. The await is u8 [4, 6]; piece 0
 * (rows [0, 2) from node-c) is good, piece 1 is the case. */
static void test_frame_bad_await_pieces_are_rejected(void **state)
{
    (void)state;
    static const uint64_t shape[2] = { 4, 6 }, half[2] = { 2, 6 }, z2[2] = { 0, 0 },
                          z3[3] = { 0, 0, 0 }, row2[2] = { 2, 0 }, row3[2] = { 3, 0 },
                          col1[2] = { 2, 1 }, corner[2] = { 3, 5 }, one[2] = { 1, 1 },
                          flat[2] = { 2, 0 }, d1[1] = { 2 }, near[2] = { INT64_MAX, 0 },
                          over[2] = { 1ull << 63, 0 };
    static const char long_id[] = "node-aaaaaaaaaaaaaaaaaaaaaaaaaaaa";   /* 33 bytes */
    static const struct {
        size_t fields;                  /* of piece 1: 3, or 2 (no shape) */
        const char *from;               /* NULL: a uint instead of a string */
        size_t nat;
        const uint64_t *at;
        size_t nshape;
        const uint64_t *shape;
        nnm_err rc;
        const char *needle;
    } cases[] = {
        { 2, "node-d", 2, row2, 0, NULL, NNM_EFORMAT,
          "await 0 piece 1: has 2 items, expected 3" },
        { 3, "", 2, row2, 2, half, NNM_EFORMAT, "await 0 piece 1 from is empty" },
        { 3, "node+d", 2, row2, 2, half, NNM_EFORMAT, "await 0 piece 1 from has '+' at byte 4" },
        { 3, NULL, 2, row2, 2, half, NNM_EFORMAT, "await 0 piece 1 from: expected a string" },
        { 3, long_id, 2, row2, 2, half, NNM_ERANGE, "await 0 piece 1 from: is 33 bytes" },
        { 3, "node-d", 3, z3, 2, half, NNM_EFORMAT,
          "await 0 piece 1 at: has 3 values, expected 2 (as many as the await's shape)" },
        { 3, "node-d", 1, d1, 2, half, NNM_EFORMAT,
          "await 0 piece 1 at: has 1 values, expected 2" },
        { 3, "node-d", 2, row2, 3, z3, NNM_EFORMAT,
          "await 0 piece 1 shape: has 3 values, expected 2" },
        { 3, "node-d", 2, row2, 2, flat, NNM_EFORMAT,
          "await 0 piece 1 shape: dimension 1 is 0; a piece is never empty" },
        { 3, "node-d", 2, row3, 2, half, NNM_EFORMAT,
          "await 0 piece 1 box: dimension 0: at 3 + shape 2 ends past the await's 4" },
        { 3, "node-d", 2, col1, 2, half, NNM_EFORMAT,
          "await 0 piece 1 box: dimension 1: at 1 + shape 6 ends past the await's 6" },
        { 3, "node-d", 2, near, 2, half, NNM_EFORMAT,
          "await 0 piece 1 box: dimension 0: at 9223372036854775807 + shape 2 ends past" },
        { 3, "node-d", 2, over, 2, half, NNM_ERANGE, "await 0 piece 1 at[0]" },
        { 3, "node-d", 2, row2, 2, over, NNM_ERANGE, "await 0 piece 1 shape[0]" },
        { 3, "node-d", 2, row2, 2, half, NNM_OK, NULL },
        { 3, "node-d", 2, corner, 2, one, NNM_OK, NULL },    /* ends at the await's end */
    };
    craft c;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        craft_routed(&c, 5);
        msgpack_pack_array(&c.pk, 1);
        craft_await_head(&c, "act", NNM_DT_U8, 2, shape);
        msgpack_pack_array(&c.pk, 2);
        craft_await_piece(&c, "node-c", 2, z2, 2, half);
        msgpack_pack_array(&c.pk, cases[i].fields);
        if (cases[i].from != NULL) craft_str(&c, cases[i].from);
        else msgpack_pack_uint8(&c.pk, 7);
        craft_dims(&c, cases[i].nat, cases[i].at);
        if (cases[i].fields > 2) craft_dims(&c, cases[i].nshape, cases[i].shape);
        msgpack_pack_array(&c.pk, 0);
        msgpack_pack_array(&c.pk, 0);
        expect(c.sb.data, c.sb.size, cases[i].rc, cases[i].needle);
        msgpack_sbuffer_destroy(&c.sb);
    }

    static const uint64_t act[4] = { 1, 16, 28, 28 };
    craft_routed(&c, 5);                /* the form before pieces, [name, dtype, shape] */
    msgpack_pack_array(&c.pk, 1);
    msgpack_pack_array(&c.pk, 3);
    craft_str(&c, "act-3");
    msgpack_pack_uint8(&c.pk, NNM_DT_F32);
    craft_dims(&c, 4, act);
    msgpack_pack_array(&c.pk, 0);
    msgpack_pack_array(&c.pk, 1);
    craft_str(&c, "logits");
    expect(c.sb.data, c.sb.size, NNM_EFORMAT, "await 0: has 3 items, expected 4");
    msgpack_sbuffer_destroy(&c.sb);

    craft_routed(&c, 5);                /* no pieces (and enough bytes after it for one) */
    msgpack_pack_array(&c.pk, 1);
    craft_await_head(&c, "act-3", NNM_DT_F32, 4, act);
    msgpack_pack_array(&c.pk, 0);
    msgpack_pack_array(&c.pk, 0);
    msgpack_pack_array(&c.pk, 1);
    craft_str(&c, "logits");
    expect(c.sb.data, c.sb.size, NNM_EFORMAT,
           "await 0 pieces: is empty; an awaited input comes in at least one piece");
    msgpack_sbuffer_destroy(&c.sb);
}

static void craft_forward(craft *c, const char *node, uint64_t task, size_t nb,
                          const uint64_t *begin, size_t ne, const uint64_t *end, size_t na,
                          const uint64_t *at)
{
    msgpack_pack_array(&c->pk, 6);
    craft_str(c, node);
    msgpack_pack_uint64(&c->pk, task);
    craft_str(c, "out");
    craft_dims(c, nb, begin);
    craft_dims(c, ne, end);
    craft_dims(c, na, at);
}

static void test_frame_bad_forwards_and_returns_are_rejected(void **state)
{
    (void)state;
    static const uint64_t z[4] = { 0 }, e3[3] = { 1, 4, 4 }, flat[3] = { 1, 0, 4 },
                          back[3] = { 1, 4, 4 }, from[3] = { 0, 5, 0 },
                          big[3] = { 1, 4, 1ull << 63 }, top[3] = { 1, 4, INT64_MAX },
                          e2[2] = { 1, 4 };
    static const struct {
        const char *node;
        uint64_t task;
        size_t nb;
        const uint64_t *b;
        size_t ne;
        const uint64_t *e;
        size_t na;
        const uint64_t *at;
        nnm_err rc;
        const char *needle;
    } cases[] = {
        { "node-c", 0, 3, z, 3, e3, 3, z, NNM_EFORMAT, "forward 0 task: is 0" },
        { "A/B", 7, 3, z, 3, e3, 3, z, NNM_EFORMAT, "forward 0 node id" },
        { "", 7, 3, z, 3, e3, 3, z, NNM_EFORMAT, "forward 0 node id" },
        { "node-c", 7, 3, z, 3, flat, 3, z, NNM_EFORMAT,
          "forward 0 box: dimension 1: [0, 0) is empty" },
        { "node-c", 7, 3, from, 3, back, 3, z, NNM_EFORMAT,
          "forward 0 box: dimension 1: [5, 4) is empty" },
        { "node-c", 7, 3, z, 2, e2, 3, z, NNM_EFORMAT,
          "forward 0 end: has 2 values, expected 3 (as many as begin)" },
        { "node-c", 7, 3, z, 3, e3, 4, z, NNM_EFORMAT,
          "forward 0 at: has 4 values, expected 3" },
        { "node-c", 7, 3, z, 3, e3, 2, z, NNM_EFORMAT,
          "forward 0 at: has 2 values, expected 3" },
        { "node-c", 7, 3, z, 3, big, 3, z, NNM_ERANGE, "forward 0 end[2]" },
        { "node-c", 7, 3, z, 3, e3, 3, big, NNM_ERANGE, "forward 0 at[2]" },
        { "node-c", 7, 0, z, 0, e3, 0, z, NNM_EFORMAT, "forward 0 begin: has no dimensions" },
        { "node-c", 7, 3, z, 3, e3, 3, z, NNM_OK, NULL },
        { "node-c", UINT64_MAX, 3, z, 3, top, 3, top, NNM_OK, NULL },
    };
    craft c;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        craft_routed(&c, 5);
        msgpack_pack_array(&c.pk, 0);
        msgpack_pack_array(&c.pk, 1);
        craft_forward(&c, cases[i].node, cases[i].task, cases[i].nb, cases[i].b, cases[i].ne,
                      cases[i].e, cases[i].na, cases[i].at);
        msgpack_pack_array(&c.pk, 0);
        expect(c.sb.data, c.sb.size, cases[i].rc, cases[i].needle);
        msgpack_sbuffer_destroy(&c.sb);
    }

    static const struct {
        size_t n;
        const char *names[3];
        nnm_err rc;
        const char *needle;
    } rets[] = {
        { 2, { "logits", "" }, NNM_EFORMAT, "return 1: is empty" },
        { 3, { "logits", "x", "logits" }, NNM_EFORMAT, "returns: 'logits' is returned twice" },
        { 3, { "logits", "x", "input" }, NNM_OK, NULL },   /* may name an input: returned */
    };
    for (size_t i = 0; i < sizeof rets / sizeof rets[0]; i++) {
        craft_routed(&c, 5);
        msgpack_pack_array(&c.pk, 0);
        msgpack_pack_array(&c.pk, 0);
        msgpack_pack_array(&c.pk, rets[i].n);
        for (size_t k = 0; k < rets[i].n; k++) craft_str(&c, rets[i].names[k]);
        expect(c.sb.data, c.sb.size, rets[i].rc, rets[i].needle);
        msgpack_sbuffer_destroy(&c.sb);
    }
    craft_routed(&c, 5);                /* a name that is not a string (of 2 bytes) */
    msgpack_pack_array(&c.pk, 0);
    msgpack_pack_array(&c.pk, 0);
    msgpack_pack_array(&c.pk, 1);
    msgpack_pack_uint8(&c.pk, 200);
    expect(c.sb.data, c.sb.size, NNM_EFORMAT, "return 0: expected a string");
    msgpack_sbuffer_destroy(&c.sb);
}

/* A piece TENSOR by msgpack-c with request `request`: two u8 tensors [4] and [2, 2], then
 * the coordinator id; the caller packs at. */
static void craft_piece(craft *c, uint64_t request, const char *coord)
{
    craft_begin_request(c, NNM_FRAME_TENSOR, request);
    msgpack_pack_array(&c->pk, 3);
    msgpack_pack_array(&c->pk, 2);
    for (int i = 0; i < 2; i++) {
        msgpack_pack_array(&c->pk, 8);
        craft_str(c, i == 0 ? "act" : "mask");
        msgpack_pack_uint8(&c->pk, NNM_DT_U8);
        if (i == 0) {
            msgpack_pack_array(&c->pk, 1);
            msgpack_pack_uint8(&c->pk, 4);
        } else {
            msgpack_pack_array(&c->pk, 2);
            msgpack_pack_uint8(&c->pk, 2);
            msgpack_pack_uint8(&c->pk, 2);
        }
        msgpack_pack_uint8(&c->pk, 0);
        msgpack_pack_uint8(&c->pk, 0);
        msgpack_pack_uint8(&c->pk, 4);
        msgpack_pack_bin(&c->pk, 0);
        msgpack_pack_bin_with_body(&c->pk, "\1\2\3\4", 4);
    }
    craft_str(c, coord);
}

static void test_frame_bad_pieces_are_rejected(void **state)
{
    (void)state;
    static const uint64_t a1[1] = { 8 }, a2[2] = { 2, 6 }, a3[3] = { 0, 2, 6 },
                          big[2] = { 1ull << 63, 0 }, max[2] = { INT64_MAX, INT64_MAX };
    static const struct {
        uint64_t request;
        const char *coord;
        size_t n;                       /* at entries: at[0] has a0 values, at[1] a1 */
        size_t na0;
        const uint64_t *v0;
        size_t na1;
        const uint64_t *v1;
        nnm_err rc;
        const char *needle;
    } cases[] = {
        { 77, "node-a", 1, 1, a1, 0, NULL, NNM_EFORMAT,
          "piece at: has 1 entries, expected 2 (one per tensor)" },
        { 77, "node-a", 3, 1, a1, 2, a2, NNM_EFORMAT, "piece at: has 3 entries, expected 2" },
        { 77, "node-a", 2, 1, a1, 3, a3, NNM_EFORMAT,
          "piece at 1: has 3 values, expected 2 (one per dimension of tensor 1)" },
        { 77, "node-a", 2, 2, a2, 2, a2, NNM_EFORMAT, "piece at 0: has 2 values, expected 1" },
        { 77, "node-a", 2, 1, a1, 2, big, NNM_ERANGE, "piece at 1[0]" },
        { 0, "node-a", 2, 1, a1, 2, a2, NNM_EFORMAT, "piece request id: is 0" },
        { 77, "A/B", 2, 1, a1, 2, a2, NNM_EFORMAT, "piece coordinator id" },
        { 77, "", 2, 1, a1, 2, a2, NNM_EFORMAT, "piece coordinator id" },
        { 77, "node-a", 2, 1, a1, 2, a2, NNM_OK, NULL },
        { 77, "node-a", 2, 1, a1, 2, max, NNM_OK, NULL },
    };
    craft c;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        craft_piece(&c, cases[i].request, cases[i].coord);
        msgpack_pack_array(&c.pk, cases[i].n);
        for (size_t k = 0; k < cases[i].n; k++)
            if (k == 0) craft_dims(&c, cases[i].na0, cases[i].v0);
            else craft_dims(&c, cases[i].na1, cases[i].v1 ? cases[i].v1 : a2);
        expect(c.sb.data, c.sb.size, cases[i].rc, cases[i].needle);
        msgpack_sbuffer_destroy(&c.sb);
    }
}

/* The extended forms' arrays claiming 2^32-1 items fail before anything is allocated; the
 * body's field count admits only the two forms of each type. */
static void test_frame_routed_and_piece_counts_are_checked(void **state)
{
    (void)state;
    static const uint8_t arr[] = { 0xdd, 0xff, 0xff, 0xff, 0xff };
    static const char *const where[] = { "awaits", "forwards", "returns" };
    craft c;
    for (size_t k = 0; k < 3; k++) {
        craft_routed(&c, 5);
        for (size_t e = 0; e < k; e++) msgpack_pack_array(&c.pk, 0);
        craft_raw(&c, arr, sizeof arr);
        craft_raw(&c, "\0\0\0\0\0\0\0\0\0\0", 10);
        char needle[64];
        snprintf(needle, sizeof needle, "%s: claims 4294967295 items", where[k]);
        expect(c.sb.data, c.sb.size, NNM_EFORMAT, needle);
        msgpack_sbuffer_destroy(&c.sb);
    }
    craft_routed(&c, 5);                /* inside an await: its shape */
    msgpack_pack_array(&c.pk, 1);
    msgpack_pack_array(&c.pk, 4);
    craft_str(&c, "act");
    msgpack_pack_uint8(&c.pk, NNM_DT_U8);
    craft_raw(&c, arr, sizeof arr);
    craft_raw(&c, "\0\0\0\0\0\0\0\0\0\0", 10);
    expect(c.sb.data, c.sb.size, NNM_EFORMAT, "await 0 shape: claims 4294967295 items");
    msgpack_sbuffer_destroy(&c.sb);
    static const uint64_t s4[1] = { 4 };
    craft_routed(&c, 5);                /* and its pieces */
    msgpack_pack_array(&c.pk, 1);
    craft_await_head(&c, "act", NNM_DT_U8, 1, s4);
    craft_raw(&c, arr, sizeof arr);
    craft_raw(&c, "\0\0\0\0\0\0\0\0\0\0", 10);
    expect(c.sb.data, c.sb.size, NNM_EFORMAT, "await 0 pieces: claims 4294967295 items");
    msgpack_sbuffer_destroy(&c.sb);
    craft_piece(&c, 77, "node-a");
    craft_raw(&c, arr, sizeof arr);
    craft_raw(&c, "\0\0\0\0\0\0\0\0\0\0", 10);
    expect(c.sb.data, c.sb.size, NNM_EFORMAT, "piece at: claims 4294967295 items");
    msgpack_sbuffer_destroy(&c.sb);

    /* A count that fits the bytes but passes the item cap is a range error (8: the spec and
     * a tensor have 8 fields). */
    nnm_wire_limits lim;
    nnm_wire_limits_init(&lim);
    lim.max_array_items = 8;
    craft_routed(&c, 5);
    msgpack_pack_array(&c.pk, 0);
    msgpack_pack_array(&c.pk, 0);
    msgpack_pack_array(&c.pk, 9);
    for (char k = 0; k < 9; k++) msgpack_pack_str_with_body(&c.pk, (char[]){ (char)('a' + k) }, 1);
    nnm_diag d;
    assert_int_equal(decode_rc(c.sb.data, c.sb.size, &lim, &d), NNM_ERANGE);
    assert_non_null(strstr(d.msg, "returns: has 9 items; the limit is 8"));
    msgpack_sbuffer_destroy(&c.sb);

    /* TASK bodies of 1, 3, 4 and 6 fields (the fields that exist, then empty arrays). */
    static const size_t task_fields[] = { 1, 3, 4, 6 };
    for (size_t i = 0; i < sizeof task_fields / sizeof task_fields[0]; i++) {
        size_t n = task_fields[i];
        craft_begin(&c, NNM_FRAME_TASK);
        msgpack_pack_array(&c.pk, n);
        craft_spec(&c, 8, 0);
        for (size_t k = 1; k < n; k++) msgpack_pack_array(&c.pk, 0);
        char needle[64];
        snprintf(needle, sizeof needle, "body: has %zu items, expected 2 or 5", n);
        expect(c.sb.data, c.sb.size, NNM_EFORMAT, needle);
        msgpack_sbuffer_destroy(&c.sb);
    }
    craft_piece(&c, 77, "node-a");      /* patched to 2 fields: [tensors, coord] */
    nnm_frame_header h;
    size_t used;
    assert_int_equal(nnm_frame_header_decode(&h, &used, (const uint8_t *)c.sb.data, c.sb.size,
                                             NULL, NULL), NNM_OK);
    assert_int_equal((uint8_t)c.sb.data[used], 0x93);
    c.sb.data[used] = (char)0x92;
    expect(c.sb.data, c.sb.size, NNM_EFORMAT, "body: has 2 items, expected 1 or 3");
    msgpack_sbuffer_destroy(&c.sb);
    craft_begin(&c, NNM_FRAME_TENSOR);  /* and 4 */
    msgpack_pack_array(&c.pk, 4);
    for (int k = 0; k < 4; k++) msgpack_pack_array(&c.pk, 0);
    expect(c.sb.data, c.sb.size, NNM_EFORMAT, "body: has 4 items, expected 1 or 3");
    msgpack_sbuffer_destroy(&c.sb);
}

/* The encoder refuses what the decoder would, naming the field: NNM_EINVAL, or NNM_ERANGE
 * for a value past a limit (as for tensors). The writer's own checks come first. */
static void test_frame_encoder_rejects_bad_routes_and_pieces(void **state)
{
    (void)state;
    static const struct {
        int what;
        nnm_err rc;
        const char *needle;
    } cases[] = {
        { 0, NNM_EINVAL, "await 0 shape: 0 dimensions" },
        { 1, NNM_EINVAL, "await 0 shape: 9 dimensions" },
        { 2, NNM_EINVAL, "await 1 shape: dimension 0 is 0" },
        { 3, NNM_EINVAL, "await 0 dtype: unknown dtype 0" },
        { 4, NNM_EINVAL, "'act-3' is awaited twice" },
        { 5, NNM_EINVAL, "'input' is also tensor 0" },
        { 6, NNM_EINVAL, "forward 0 task: is 0" },
        { 7, NNM_EINVAL, "forward 1 node id" },
        { 8, NNM_EINVAL, "forward 0 box: dimension 2" },
        { 9, NNM_EINVAL, "forward 0 begin: 9 dimensions" },
        { 10, NNM_EINVAL, "return 1: is empty" },
        { 11, NNM_EINVAL, "'act-9-pool' is returned twice" },
        { 12, NNM_EINVAL, "awaits, forwards or returns" },
        { 13, NNM_EINVAL, "forward 0 node id: not terminated" },
        { 14, NNM_ERANGE, "await 1 shape: takes" },
        { 15, NNM_ERANGE, "forward 0 at[1]" },
        { 16, NNM_EINVAL, "await 0 name: is empty" },
        { 17, NNM_EINVAL, "await 0 pieces: none; an awaited input comes in at least one" },
        { 18, NNM_EINVAL, "await 1 pieces: NULL for 1 pieces" },
        { 19, NNM_EINVAL, "await 0 piece 1 from: not terminated" },
        { 20, NNM_EINVAL, "await 1 piece 0 from" },
        { 21, NNM_EINVAL, "await 0 piece 0 shape: dimension 2 is 0" },
        { 22, NNM_EINVAL, "await 0 piece 1 box: dimension 2: at 15 + shape 14 ends past" },
        { 23, NNM_ERANGE, "await 1 piece 0 at[1]" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sample s;
        sample_init_form(&s, NNM_FRAME_TASK, FORM_EXT);
        switch (cases[i].what) {
        case 0: s.awaits[0].ndim = 0; break;
        case 1: s.awaits[0].ndim = 9; break;
        case 2: s.awaits[1].shape[0] = 0; break;
        case 3: s.awaits[0].dtype = 0; break;
        case 4: s.awaits[1].name = "act-3"; break;
        case 5: s.awaits[0].name = "input"; break;
        case 6: s.forwards[0].task = 0; break;
        case 7: strcpy(s.forwards[1].node, "A/B"); break;
        case 8: s.forwards[0].end[2] = s.forwards[0].begin[2]; break;
        case 9: s.forwards[0].ndim = 9; break;
        case 10: s.returns[1] = ""; break;
        case 11: s.returns[1] = "act-9-pool"; break;
        case 12: s.f.u.task.forward = NULL; break;
        case 13: memset(s.forwards[0].node, 'a', sizeof s.forwards[0].node); break;
        case 14: s.awaits[1].shape[1] = 1ull << 40; break;
        case 15: s.forwards[0].at[1] = 1ull << 63; break;
        case 16: s.awaits[0].name = NULL; break;
        case 17: s.awaits[0].npiece = 0; break;
        case 18: s.awaits[1].pieces = NULL; break;
        case 19: memset(s.pieces[1].from, 'a', sizeof s.pieces[1].from); break;
        case 20: strcpy(s.pieces[2].from, "A/B"); break;
        case 21: s.pieces[0].shape[2] = 0; break;
        case 22: s.pieces[1].at[2] = 15; break;
        case 23: s.pieces[2].at[1] = 1ull << 63; break;
        default: fail();
        }
        uint8_t *p = (uint8_t *)(uintptr_t)1;
        size_t n;
        nnm_diag d;
        nnm_diag_clear(&d);
        nnm_err rc = nnm_frame_encode(&p, &n, &s.f, &d);
        if (rc != cases[i].rc || strstr(d.msg, cases[i].needle) == NULL)
            print_error("case %d: got %s '%s', want %s with '%s'\n", cases[i].what,
                        nnm_strerror(rc), d.msg, nnm_strerror(cases[i].rc), cases[i].needle);
        assert_int_equal(rc, cases[i].rc);
        assert_non_null(strstr(d.msg, cases[i].needle));
        assert_null(p);
        sample_cleanup(&s);
    }

    static const struct {
        int what;
        const char *needle;
    } pieces[] = {
        { 0, "piece at: NULL for 2 tensors" },
        { 1, "piece request id: is 0" },
        { 2, "piece coordinator id" },
        { 3, "piece coordinator id: not terminated" },
        { 4, "piece at 0[3]" },
    };
    for (size_t i = 0; i < sizeof pieces / sizeof pieces[0]; i++) {
        sample s;
        sample_init_form(&s, NNM_FRAME_TENSOR, FORM_EXT);
        switch (pieces[i].what) {
        case 0: s.f.u.tensor.at = NULL; break;
        case 1: s.f.hdr.request = 0; break;
        case 2: strcpy(s.f.u.tensor.coord, "A/B"); break;
        case 3: memset(s.f.u.tensor.coord, 'a', sizeof s.f.u.tensor.coord); break;
        case 4: s.at[0].v[3] = 1ull << 63; break;
        default: fail();
        }
        uint8_t *p = NULL;
        size_t n;
        nnm_diag d;
        nnm_diag_clear(&d);
        nnm_err rc = nnm_frame_body_encode(&p, &n, &s.f, &d);
        if (strstr(d.msg, pieces[i].needle) == NULL)
            print_error("piece case %d: got %s '%s'\n", pieces[i].what, nnm_strerror(rc),
                        d.msg);
        assert_int_equal(rc, pieces[i].what == 4 ? NNM_ERANGE : NNM_EINVAL);
        assert_non_null(strstr(d.msg, pieces[i].needle));
        assert_null(p);
        sample_cleanup(&s);
    }
}

static void test_frame_size_cap_is_a_range_error(void **state)
{
    (void)state;
    size_t len;
    uint8_t *enc = encode_sample(NNM_FRAME_TENSOR, &len);
    nnm_wire_limits lim;
    nnm_wire_limits_init(&lim);
    lim.max_frame_bytes = len - 1;
    nnm_diag d;
    assert_int_equal(decode_rc(enc, len, &lim, &d), NNM_ERANGE);
    nnm_wire_limits_init(&lim);
    lim.max_tensor_bytes = 16; /* the i64 tensor is 24 bytes */
    assert_int_equal(decode_rc(enc, len, &lim, &d), NNM_ERANGE);
    assert_non_null(strstr(d.msg, "tensor limit"));
    nnm_wire_limits_init(&lim);
    lim.max_string = 4; /* "act-f16" */
    assert_int_equal(decode_rc(enc, len, &lim, &d), NNM_ERANGE);
    free(enc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frame_every_type_matches_golden_bytes),
        cmocka_unit_test(test_frame_every_golden_reencodes_identically),
        cmocka_unit_test(test_frame_task_result_codec_round_trips_and_bad_codec_is_rejected),
        cmocka_unit_test(test_frame_task_spec_of_8_fields_decodes_as_auto),
        cmocka_unit_test(test_frame_header_encode_is_prefix_of_frame),
        cmocka_unit_test(test_frame_decoded_fields_round_trip),
        cmocka_unit_test(test_frame_huge_array_and_map_counts_are_rejected),
        cmocka_unit_test(test_frame_deep_nesting_is_rejected_without_recursion),
        cmocka_unit_test(test_frame_bin32_claiming_4gb_is_rejected),
        cmocka_unit_test(test_frame_every_prefix_is_rejected),
        cmocka_unit_test(test_frame_trailing_bytes_are_rejected),
        cmocka_unit_test(test_frame_wrong_types_and_missing_fields_are_rejected),
        cmocka_unit_test(test_frame_negative_or_overflowing_shapes_are_rejected),
        cmocka_unit_test(test_frame_shape_dtype_and_data_length_must_agree),
        cmocka_unit_test(test_frame_more_than_8_dims_is_rejected),
        cmocka_unit_test(test_frame_bad_ids_are_rejected),
        cmocka_unit_test(test_frame_encoder_rejects_what_decoder_would),
        cmocka_unit_test(test_frame_routed_task_and_piece_round_trip_every_field),
        cmocka_unit_test(test_frame_routed_and_piece_goldens_decode_to_their_samples),
        cmocka_unit_test(test_frame_bad_awaits_are_rejected),
        cmocka_unit_test(test_frame_bad_await_pieces_are_rejected),
        cmocka_unit_test(test_frame_bad_forwards_and_returns_are_rejected),
        cmocka_unit_test(test_frame_bad_pieces_are_rejected),
        cmocka_unit_test(test_frame_routed_and_piece_counts_are_checked),
        cmocka_unit_test(test_frame_encoder_rejects_bad_routes_and_pieces),
        cmocka_unit_test(test_frame_size_cap_is_a_range_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
