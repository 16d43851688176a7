/* bench/wire_bench.c — the wire benchmark (issue 3): how fast a tensor is framed and sealed,
 * and how fast it crosses a mosquitto broker through two nnm_link endpoints compared with a
 * raw TCP socket on loopback, measured side by side in one run. Not a test; bench/wire.sh
 * runs it and writes docs/BENCH_WIRE.md.
 *
 *   wire_bench seal     [--mb MB]
 *   wire_bench transfer [--rounds R] [--mb MB] [--sizes 1k,64k,1m,16m]
 *                       [--codecs none,f16,int8,lz4] [--paths bare,link] [--cpu 1]
 *                       [--chunk BYTES] [--broker-env NAME=VALUE]
 *                       [--broker URI] [--broker-extra LINES]
 *
 * --paths picks the broker paths measured (raw TCP always is); --cpu 1 prints to stderr, per
 * throughput stream, the CPU time per MiB of each thread (by name) and of the broker; --chunk
 * sets the links' chunk size (default: the link's); --broker-env puts one environment variable
 * in the started broker's environment only (e.g. GLIBC_TUNABLES for its malloc).
 *
 * Both print markdown tables on stdout and progress on stderr. MB is 10^6 bytes; sizes are
 * powers of two (1k = 1024 bytes, 1m = 1 MiB). Every figure is a median: of per-iteration
 * times for `seal`, of per-round results for `transfer` (each round measures the TCP
 * baseline and then every codec, so noise from the shared machine hits all alike).
 *
 * The tensor is "ReLU-like" f32 activation data: half the elements are zero, the rest are
 * |N(0,1)| values, shaped NCHW so that INT8_AFFINE quantises per channel. Throughput is
 * counted in raw (decoded) tensor bytes whatever the codec puts on the wire. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "nnmesh/transport.h"
#include "nnmesh/wire.h"
/* crypto.h and wire.h both declare a struct nnm_advert; this file uses neither. */
#include "nnmesh/crypto.h"
#include "nnmesh/node.h"
#include "broker.h"

#define MESH "bench"
#define MAX_SIZES 8
#define MB 1e6

static const char *const codec_names[NNM_CODEC__COUNT] = {"NONE", "F16", "INT8_AFFINE", "LZ4"};

/* ---- small helpers ------------------------------------------------------------------------ */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median of v[0..n) (sorts v). 0 for n == 0. */
static double median(double *v, size_t n)
{
    if (n == 0) return 0;
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void die(const char *what, nnm_err rc, const nnm_diag *d)
{
    fprintf(stderr, "wire_bench: %s: %s (%s)\n", what, d != NULL && d->msg[0] ? d->msg : "",
            nnm_strerror(rc));
    exit(1);
}

static int malloc_node;   /* --malloc node: nnm_node_tune_malloc was called */

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL) {
        fprintf(stderr, "wire_bench: out of memory (%zu bytes)\n", n);
        exit(1);
    }
    return p;
}

static void size_name(char *buf, size_t cap, size_t n)
{
    if (n >= (1u << 20) && n % (1u << 20) == 0) snprintf(buf, cap, "%zu MiB", n >> 20);
    else if (n >= 1024 && n % 1024 == 0) snprintf(buf, cap, "%zu KiB", n >> 10);
    else snprintf(buf, cap, "%zu B", n);
}

/* "64k", "1m", "4096" -> bytes; 0 on error. */
static size_t parse_size(const char *s)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s) return 0;
    if (*end == 'k' || *end == 'K') v <<= 10, end++;
    else if (*end == 'm' || *end == 'M') v <<= 20, end++;
    return *end == '\0' ? (size_t)v : 0;
}

/* ReLU-like f32 tensor of `bytes` bytes (a multiple of 4), NCHW [1, C, H, W] when the element
 * count is a power of two, else 1-D. Deterministic for a given seed. */
static void relu_tensor(nnm_tensor *t, size_t bytes, uint32_t seed)
{
    size_t n = bytes / 4;
    int64_t shape[4] = {1, (int64_t)n, 1, 1};
    if (n >= 4 && (n & (n - 1)) == 0) {
        int k = 0;
        while (((size_t)1 << k) < n) k++;
        int hw = k / 3;
        shape[1] = (int64_t)1 << (k - 2 * hw);
        shape[2] = shape[3] = (int64_t)1 << hw;
    }
    nnm_err rc = n >= 4 && (n & (n - 1)) == 0 ? nnm_tensor_init(t, NNM_DT_F32, 4, shape)
                                              : nnm_tensor_init(t, NNM_DT_F32, 1, &shape[1]);
    if (rc != NNM_OK) die("tensor", rc, NULL);
    float *x = t->data;
    uint32_t s = seed * 2654435761u + 12345u;
    for (size_t i = 0; i < n; i += 2) {
        /* xorshift32 -> two uniforms -> Box-Muller -> two normals; ReLU keeps the positives */
        double u[2];
        for (int j = 0; j < 2; j++) {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            u[j] = ((double)s + 1.0) / 4294967297.0;
        }
        double r = sqrt(-2.0 * log(u[0]));
        double z0 = r * cos(6.283185307179586 * u[1]), z1 = r * sin(6.283185307179586 * u[1]);
        x[i] = z0 > 0 ? (float)z0 : 0.0f;
        if (i + 1 < n) x[i + 1] = z1 > 0 ? (float)z1 : 0.0f;
    }
}

/* ---- seal: framing, sealing and codecs without a network ------------------------------------ */

static nnm_frame_header bench_header(uint64_t counter)
{
    nnm_frame_header h;
    memset(&h, 0, sizeof h);
    h.version = NNM_WIRE_VERSION;
    h.type = NNM_FRAME_TENSOR;
    snprintf(h.sender, sizeof h.sender, "bench-a");
    snprintf(h.receiver, sizeof h.receiver, "bench-b");
    h.session = 0x0123456789abcdefu;
    h.counter = counter;
    h.request = 1;
    snprintf(h.topic, sizeof h.topic, "nnmesh/" MESH "/inbox/bench-b");
    return h;
}

/* Encodes t (codec NONE) as a TENSOR frame and seals its body with key the way the link
 * does: header in the clear, then nonce || ciphertext || tag with the header as AD. */
static void encode_seal(uint8_t **msg, size_t *ml, const nnm_tensor *t, const uint8_t *key,
                        uint64_t counter)
{
    nnm_diag d = {0};
    nnm_wire_tensor wt;
    nnm_err rc = nnm_wire_tensor_encode(&wt, t, NNM_CODEC_NONE, &d);
    if (rc != NNM_OK) die("tensor encode", rc, &d);
    wt.name = "x";
    nnm_frame f;
    memset(&f, 0, sizeof f);
    f.hdr = bench_header(counter);
    f.u.tensor.ntensors = 1;
    f.u.tensor.tensors = &wt;
    uint8_t *hb = NULL, *body = NULL;
    size_t hl = 0, bl = 0, sl = 0;
    if ((rc = nnm_frame_header_encode(&hb, &hl, &f.hdr, &d)) != NNM_OK ||
        (rc = nnm_frame_body_encode(&body, &bl, &f, &d)) != NNM_OK)
        die("frame encode", rc, &d);
    size_t cap = hl + bl + NNM_ENVELOPE_OVERHEAD;
    uint8_t *m = xmalloc(cap);
    memcpy(m, hb, hl);
    if ((rc = nnm_envelope_seal(m + hl, cap - hl, &sl, key, hb, hl, body, bl, &d)) != NNM_OK)
        die("seal", rc, &d);
    free(hb);
    free(body);
    nnm_wire_tensor_cleanup(&wt);
    *msg = m;
    *ml = hl + sl;
}

/* The receiving side: header decode, open, body decode, tensor decode into out (owned). */
static void open_decode(nnm_tensor *out, const uint8_t *msg, size_t ml, const uint8_t *key)
{
    nnm_diag d = {0};
    nnm_frame_header h;
    size_t hl = 0, n = 0;
    nnm_err rc = nnm_frame_header_decode(&h, &hl, msg, ml, NULL, &d);
    if (rc != NNM_OK) die("header decode", rc, &d);
    size_t cap = ml - hl - NNM_ENVELOPE_OVERHEAD;
    uint8_t *pt = xmalloc(cap);
    if ((rc = nnm_envelope_open(pt, cap, &n, key, msg, hl, msg + hl, ml - hl, &d)) != NNM_OK)
        die("open", rc, &d);
    nnm_frame *f = NULL;
    if ((rc = nnm_frame_body_decode(&f, &h, pt, n, NULL, &d)) != NNM_OK) die("body decode", rc, &d);
    if ((rc = nnm_wire_tensor_decode(out, &f->u.tensor.tensors[0], NULL, &d)) != NNM_OK)
        die("tensor decode", rc, &d);
    nnm_frame_free(f);
    free(pt);
}

typedef enum seal_op {
    OP_ENCODE_SEAL, OP_OPEN_DECODE, OP_FRAME_ENCODE, OP_SEAL, OP_OPEN, OP_FRAME_DECODE, OP__COUNT
} seal_op;

/* One timed iteration of op on tensor t; the prepared buffers are read only. */
typedef struct seal_fixture {
    const nnm_tensor *t;
    uint8_t key[NNM_KEY_BYTES];
    uint8_t *msg;              /* a sealed message of t */
    size_t ml;
    uint8_t *hb, *body;        /* its header and plaintext body */
    size_t hl, bl;
    uint8_t *scratch;          /* room for a sealed or opened body */
    size_t scratch_cap;
} seal_fixture;

static void seal_iter(seal_fixture *fx, seal_op op, uint64_t i)
{
    nnm_diag d = {0};
    nnm_err rc = NNM_OK;
    size_t n = 0;
    switch (op) {
    case OP_ENCODE_SEAL: {
        uint8_t *m;
        size_t ml;
        encode_seal(&m, &ml, fx->t, fx->key, i + 1);
        free(m);
        break;
    }
    case OP_OPEN_DECODE: {
        nnm_tensor out;
        open_decode(&out, fx->msg, fx->ml, fx->key);
        nnm_tensor_cleanup(&out);
        break;
    }
    case OP_FRAME_ENCODE: {
        nnm_wire_tensor wt;
        if ((rc = nnm_wire_tensor_encode(&wt, fx->t, NNM_CODEC_NONE, &d)) != NNM_OK) break;
        wt.name = "x";
        nnm_frame f;
        memset(&f, 0, sizeof f);
        f.hdr = bench_header(i + 1);
        f.u.tensor.ntensors = 1;
        f.u.tensor.tensors = &wt;
        uint8_t *hb = NULL, *body = NULL;
        size_t hl, bl;
        if ((rc = nnm_frame_header_encode(&hb, &hl, &f.hdr, &d)) == NNM_OK)
            rc = nnm_frame_body_encode(&body, &bl, &f, &d);
        free(hb);
        free(body);
        nnm_wire_tensor_cleanup(&wt);
        break;
    }
    case OP_SEAL:
        rc = nnm_envelope_seal(fx->scratch, fx->scratch_cap, &n, fx->key, fx->hb, fx->hl,
                               fx->body, fx->bl, &d);
        break;
    case OP_OPEN:
        rc = nnm_envelope_open(fx->scratch, fx->scratch_cap, &n, fx->key, fx->msg, fx->hl,
                               fx->msg + fx->hl, fx->ml - fx->hl, &d);
        break;
    case OP_FRAME_DECODE: {
        nnm_frame_header h;
        size_t hl = 0;
        nnm_frame *f = NULL;
        nnm_tensor out;
        if ((rc = nnm_frame_header_decode(&h, &hl, fx->hb, fx->hl, NULL, &d)) == NNM_OK &&
            (rc = nnm_frame_body_decode(&f, &h, fx->body, fx->bl, NULL, &d)) == NNM_OK &&
            (rc = nnm_wire_tensor_decode(&out, &f->u.tensor.tensors[0], NULL, &d)) == NNM_OK)
            nnm_tensor_cleanup(&out);
        nnm_frame_free(f);
        break;
    }
    default:
        break;
    }
    if (rc != NNM_OK) die("seal benchmark", rc, &d);
}

/* Median MB/s of iters timed iterations of fn (after a few untimed ones). */
static double time_median_mbps(size_t bytes, size_t iters, void (*fn)(void *, uint64_t),
                               void *arg)
{
    double *v = xmalloc(iters * sizeof *v);
    for (uint64_t i = 0; i < 3; i++) fn(arg, i);
    for (size_t i = 0; i < iters; i++) {
        double t0 = now_s();
        fn(arg, i);
        v[i] = now_s() - t0;
    }
    double m = median(v, iters);
    free(v);
    return m > 0 ? (double)bytes / m / MB : 0;
}

typedef struct seal_job { seal_fixture *fx; seal_op op; } seal_job;

static void seal_fn(void *arg, uint64_t i)
{
    seal_job *j = arg;
    seal_iter(j->fx, j->op, i);
}

typedef struct codec_job {
    const nnm_tensor *t;
    nnm_codec codec;
    const nnm_wire_tensor *enc;   /* for decode */
    int decode;
} codec_job;

static void codec_fn(void *arg, uint64_t i)
{
    codec_job *j = arg;
    nnm_diag d = {0};
    nnm_err rc;
    if (j->decode) {
        nnm_tensor out;
        if ((rc = nnm_wire_tensor_decode(&out, j->enc, NULL, &d)) != NNM_OK) die("decode", rc, &d);
        nnm_tensor_cleanup(&out);
    } else {
        nnm_wire_tensor wt;
        if ((rc = nnm_wire_tensor_encode(&wt, j->t, j->codec, &d)) != NNM_OK) die("encode", rc, &d);
        nnm_wire_tensor_cleanup(&wt);
    }
}

static size_t iters_for(size_t bytes, double mb)
{
    size_t n = (size_t)(mb * MB / (double)bytes);
    return n < 20 ? 20 : n > 20000 ? 20000 : n;
}

static int cmd_seal(double mb)
{
    static const size_t sizes[] = {4096, 1u << 20};
    double res[2][OP__COUNT];
    double cod[2][NNM_CODEC__COUNT][3];
    for (size_t s = 0; s < 2; s++) {
        nnm_tensor t;
        relu_tensor(&t, sizes[s], 7);
        seal_fixture fx;
        memset(&fx, 0, sizeof fx);
        fx.t = &t;
        randombytes_buf(fx.key, sizeof fx.key);
        encode_seal(&fx.msg, &fx.ml, &t, fx.key, 1);
        /* header and plaintext body of the same frame, for the split timings */
        nnm_frame_header h;
        nnm_err rc = nnm_frame_header_decode(&h, &fx.hl, fx.msg, fx.ml, NULL, NULL);
        if (rc != NNM_OK) die("header", rc, NULL);
        fx.hb = xmalloc(fx.hl);
        memcpy(fx.hb, fx.msg, fx.hl);
        fx.bl = fx.ml - fx.hl - NNM_ENVELOPE_OVERHEAD;
        fx.body = xmalloc(fx.bl);
        if ((rc = nnm_envelope_open(fx.body, fx.bl, &fx.bl, fx.key, fx.msg, fx.hl,
                                    fx.msg + fx.hl, fx.ml - fx.hl, NULL)) != NNM_OK)
            die("open", rc, NULL);
        fx.scratch_cap = fx.bl + NNM_ENVELOPE_OVERHEAD;
        fx.scratch = xmalloc(fx.scratch_cap);
        size_t iters = iters_for(sizes[s], mb);
        fprintf(stderr, "seal: %zu bytes, %zu iterations per figure\n", sizes[s], iters);
        for (int op = 0; op < OP__COUNT; op++) {
            seal_job j = {&fx, (seal_op)op};
            res[s][op] = time_median_mbps(sizes[s], iters, seal_fn, &j);
        }
        for (int c = 0; c < NNM_CODEC__COUNT; c++) {
            nnm_wire_tensor enc;
            nnm_diag d = {0};
            if ((rc = nnm_wire_tensor_encode(&enc, &t, (nnm_codec)c, &d)) != NNM_OK)
                die("codec", rc, &d);
            codec_job je = {&t, (nnm_codec)c, NULL, 0}, jd = {&t, (nnm_codec)c, &enc, 1};
            cod[s][c][0] = time_median_mbps(sizes[s], iters, codec_fn, &je);
            cod[s][c][1] = time_median_mbps(sizes[s], iters, codec_fn, &jd);
            cod[s][c][2] = (double)(enc.data_len + enc.params_len) / (double)sizes[s];
            nnm_wire_tensor_cleanup(&enc);
        }
        free(fx.msg);
        free(fx.hb);
        free(fx.body);
        free(fx.scratch);
        nnm_tensor_cleanup(&t);
    }

    printf("### Sealing: one TENSOR frame, codec NONE (MB/s of tensor bytes, median per call)\n\n");
    printf("| tensor | encode + seal | open + decode | frame encode alone | seal alone | "
           "open alone | frame + tensor decode alone |\n|---|---|---|---|---|---|---|\n");
    for (size_t s = 0; s < 2; s++) {
        char sn[32];
        size_name(sn, sizeof sn, sizes[s]);
        printf("| %s | **%.0f** | **%.0f** | %.0f | %.0f | %.0f | %.0f |\n", sn,
               res[s][OP_ENCODE_SEAL], res[s][OP_OPEN_DECODE], res[s][OP_FRAME_ENCODE],
               res[s][OP_SEAL], res[s][OP_OPEN], res[s][OP_FRAME_DECODE]);
    }
    double worst = res[1][OP_ENCODE_SEAL] < res[1][OP_OPEN_DECODE] ? res[1][OP_ENCODE_SEAL]
                                                                   : res[1][OP_OPEN_DECODE];
    printf("\nTarget (sealing >= 1000 MB/s, 1 MiB tensor, both directions), %s: %s (slower "
           "direction %.0f MB/s).\n\n",
           malloc_node ? "as nnmeshd runs (big buffers on the heap)" : "glibc malloc defaults",
           worst >= 1000 ? "**met**" : "**not met**", worst);
    printf("### Tensor codecs alone (ReLU-like f32, ~50%% zeros; MB/s of raw tensor bytes)\n\n");
    printf("| tensor | codec | encode MB/s | decode MB/s | wire bytes / raw bytes |\n"
           "|---|---|---|---|---|\n");
    for (size_t s = 0; s < 2; s++) {
        char sn[32];
        size_name(sn, sizeof sn, sizes[s]);
        for (int c = 0; c < NNM_CODEC__COUNT; c++)
            if (c == NNM_CODEC_NONE)   /* encode borrows the tensor: nothing to time */
                printf("| %s | %s | - (borrows) | %.0f | %.3f |\n", sn, codec_names[c],
                       cod[s][c][1], cod[s][c][2]);
            else
                printf("| %s | %s | %.0f | %.0f | %.3f |\n", sn, codec_names[c], cod[s][c][0],
                       cod[s][c][1], cod[s][c][2]);
    }
    printf("\n");
    return 0;
}

/* ---- transfer: two links through mosquitto, and the raw TCP baseline ----------------------- */

typedef struct ep {
    char name[NNM_ID_MAX + 1];
    nnm_identity *id;
    nnm_trust *trust;
    nnm_link *l;
} ep;

static nnm_trust *trust_of(nnm_identity *const *ids, const char *const *names, size_t n)
{
    char text[1024] = "# wire_bench trust file\n";
    for (size_t i = 0; i < n; i++) {
        char b64[NNM_PUBKEY_B64_SIZE], line[128];
        nnm_pubkey_encode(b64, nnm_identity_get_pubkey(ids[i]));
        snprintf(line, sizeof line, "node %s %s\n", names[i], b64);
        strncat(text, line, sizeof text - strlen(text) - 1);
    }
    nnm_trust *t = NULL;
    nnm_diag d = {0};
    nnm_err rc = nnm_trust_decode(&t, text, strlen(text), "bench-trust", &d);
    if (rc != NNM_OK) die("trust", rc, &d);
    return t;
}

static size_t link_chunk_size;   /* --chunk: 0 keeps the link's default */

static void ep_open(ep *e, const char *uri)
{
    nnm_link_opts o;
    nnm_link_opts_init(&o);
    if (link_chunk_size > 0) o.chunk_size = link_chunk_size;
    o.node_id = e->name;
    o.mesh = MESH;
    o.identity = e->id;
    o.trust = e->trust;
    o.mqtt.uris[0] = uri;
    o.mqtt.nuris = 1;
    o.mqtt.backoff_min_ms = 100;
    o.mqtt.backoff_max_ms = 1000;
    nnm_diag d = {0};
    nnm_err rc = nnm_link_new(&e->l, &o, &d);
    if (rc == NNM_OK) rc = nnm_link_start(e->l, &d);
    if (rc == NNM_OK) rc = nnm_mqtt_wait_connected(nnm_link_get_mqtt(e->l), 15000, &d);
    if (rc != NNM_OK) die(e->name, rc, &d);
}

static void send_codec(ep *from, const char *to, const nnm_tensor *t, nnm_codec codec,
                       uint64_t request)
{
    nnm_wire_tensor wt;
    nnm_diag d = {0};
    nnm_err rc = nnm_wire_tensor_encode(&wt, t, codec, &d);
    if (rc != NNM_OK) die("encode", rc, &d);
    wt.name = "x";
    if ((rc = nnm_link_send_tensors(from->l, to, request, &wt, 1, &d)) != NNM_OK)
        die("send", rc, &d);
    nnm_wire_tensor_cleanup(&wt);
}

/* Receives until a TENSOR frame of request >= min_req (older ones are stragglers of a
 * measurement that lost messages). Returns its request, or 0 on timeout. */
static uint64_t recv_req(ep *at, uint64_t min_req, unsigned timeout_ms, nnm_link_msg *keep)
{
    double until = now_s() + timeout_ms / 1000.0;
    for (;;) {
        double left = until - now_s();
        if (left <= 0) return 0;
        nnm_link_msg m;
        nnm_diag d = {0};
        nnm_err rc = nnm_link_recv(at->l, &m, (unsigned)(left * 1000) + 1, &d);
        if (rc == NNM_ETIMEOUT) return 0;
        if (rc != NNM_OK) die("recv", rc, &d);
        uint64_t req = m.frame->hdr.request;
        if (m.frame->hdr.type == NNM_FRAME_TENSOR && req >= min_req && m.ntensors == 1) {
            if (keep != NULL) *keep = m;
            else nnm_link_msg_cleanup(&m);
            return req;
        }
        nnm_link_msg_cleanup(&m);
    }
}

/* ---- CPU accounting (--cpu): where the CPU time of a throughput stream goes ----------------- */

/* CPU nanoseconds per thread name of this process (summed over threads of one name) and of
 * the broker, read from /proc/<pid>/task/<tid>/schedstat (time on CPU, ns). */
#define CPU_NAMES 12
typedef struct cpu_snap {
    char name[CPU_NAMES][32];
    double ns[CPU_NAMES];
    int n;
} cpu_snap;

static int cpu_report;        /* --cpu given */
static _Atomic double cpu_sender_ns;   /* CPU of the last finished sender thread */

/* Called by a sender thread as it ends (its /proc entry goes with it). */
static void cpu_sender_done(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) == 0)
        atomic_store(&cpu_sender_ns, (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec);
}
static pid_t cpu_broker_pid;  /* our own broker, 0 if --broker */

static void cpu_add(cpu_snap *c, const char *name, double ns)
{
    int i = 0;
    while (i < c->n && strcmp(c->name[i], name) != 0) i++;
    if (i == c->n) {
        if (c->n == CPU_NAMES) return;
        snprintf(c->name[c->n++], sizeof c->name[0], "%.31s", name);
        c->ns[i] = 0;
    }
    c->ns[i] += ns;
}

static void cpu_read_pid(cpu_snap *c, pid_t pid, const char *as)
{
    char dir[64];
    snprintf(dir, sizeof dir, "/proc/%d/task", (int)pid);
    DIR *d = opendir(dir);
    if (d == NULL) return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        char path[300], name[32] = "?";
        snprintf(path, sizeof path, "%s/%.40s/comm", dir, e->d_name);
        FILE *f = fopen(path, "r");
        if (f != NULL) {
            if (fgets(name, sizeof name, f) != NULL) name[strcspn(name, "\n")] = '\0';
            fclose(f);
        }
        snprintf(path, sizeof path, "%s/%.40s/schedstat", dir, e->d_name);
        double ns = 0;
        if ((f = fopen(path, "r")) != NULL) {
            if (fscanf(f, "%lf", &ns) != 1) ns = 0;
            fclose(f);
        }
        cpu_add(c, as != NULL ? as : name, ns);
    }
    closedir(d);
}

static void cpu_snapshot(cpu_snap *c)
{
    memset(c, 0, sizeof *c);
    cpu_read_pid(c, getpid(), NULL);
    if (cpu_broker_pid > 0) cpu_read_pid(c, cpu_broker_pid, "mosquitto");
}

/* Prints CPU ms per MiB of tensor bytes between two snapshots, to stderr. */
static void cpu_print(const char *what, const cpu_snap *a, const cpu_snap *b, double mib,
                      double wall_s)
{
    double total = atomic_load(&cpu_sender_ns) / 1e6 / mib;
    fprintf(stderr, "cpu: %s, %.0f MiB in %.3f s (%.2f ms/MiB wall): wb-sender %.2f", what, mib,
            wall_s, wall_s * 1e3 / mib, total);
    for (int i = 0; i < b->n; i++) {
        double before = 0;
        for (int j = 0; j < a->n; j++)
            if (strcmp(a->name[j], b->name[i]) == 0) before = a->ns[j];
        double ms = (b->ns[i] - before) / 1e6 / mib;
        if (ms < 0.005) continue;
        total += ms;
        fprintf(stderr, " %s %.2f", b->name[i], ms);
    }
    fprintf(stderr, "; total %.2f ms CPU/MiB\n", total);
}

typedef struct link_job {
    ep *from;
    const char *to;
    const nnm_tensor *t;
    nnm_codec codec;
    int count;
    uint64_t req0;
    atomic_int stop;
} link_job;

static void *link_tx(void *arg)
{
    link_job *j = arg;
    pthread_setname_np(pthread_self(), "wb-sender");
    for (int i = 0; i < j->count; i++) send_codec(j->from, j->to, j->t, j->codec, j->req0 + (uint64_t)i);
    cpu_sender_done();
    return NULL;
}

/* Echoes every tensor back with the codec it came with, until stop. */
static void *link_echo(void *arg)
{
    link_job *j = arg;
    while (!atomic_load(&j->stop)) {
        nnm_link_msg m;
        if (recv_req(j->from, 1, 100, &m) == 0) continue;
        nnm_codec c = (nnm_codec)m.frame->u.tensor.tensors[0].codec;
        send_codec(j->from, j->to, &m.tensors[0], c, m.frame->hdr.request);
        nnm_link_msg_cleanup(&m);
    }
    return NULL;
}


static uint64_t next_req = 1;

/* Streams count tensors a -> b; returns MB/s of raw bytes received; *lost gets how many never
 * arrived (QoS 0: the broker may drop). */
static double link_throughput(ep *a, ep *b, const nnm_tensor *t, nnm_codec codec, int count,
                              int *lost)
{
    link_job j = {.from = a, .to = b->name, .t = t, .codec = codec, .count = count,
                  .req0 = next_req};
    next_req += (uint64_t)count;
    pthread_t th;
    cpu_snap c0, c1;
    if (cpu_report) cpu_snapshot(&c0);
    double t0 = now_s(), t1 = t0;
    if (pthread_create(&th, NULL, link_tx, &j) != 0) die("thread", NNM_ENOMEM, NULL);
    int got = 0;
    uint64_t req;
    while (got < count && (req = recv_req(b, j.req0, 10000, NULL)) != 0) {
        got++;
        t1 = now_s();
        if (req == j.req0 + (uint64_t)count - 1) break;   /* the last one: the rest is lost */
    }
    pthread_join(th, NULL);
    *lost = count - got;
    if (cpu_report) {
        cpu_snapshot(&c1);
        char what[64];
        snprintf(what, sizeof what, "link %s, %zu-byte tensors", codec_names[codec], t->nbytes);
        cpu_print(what, &c0, &c1, (double)count * (double)t->nbytes / (1 << 20), t1 - t0);
    }
    return got > 0 && t1 > t0 ? (double)got * (double)t->nbytes / (t1 - t0) / MB : 0;
}

/* Median one-way latency in ms (round trip / 2) over pings ping-pongs a -> b -> a. */
static double link_latency(ep *a, ep *b, const nnm_tensor *t, nnm_codec codec, int pings)
{
    link_job j = {.from = b, .to = a->name};
    atomic_init(&j.stop, 0);
    pthread_t th;
    if (pthread_create(&th, NULL, link_echo, &j) != 0) die("thread", NNM_ENOMEM, NULL);
    double *v = xmalloc((size_t)pings * sizeof *v);
    int n = 0;
    for (int i = -1; i < pings; i++) {   /* i == -1: warm-up */
        uint64_t req = next_req++;
        double t0 = now_s();
        send_codec(a, b->name, t, codec, req);
        if (recv_req(a, req, 10000, NULL) != req) continue;   /* lost: not counted */
        if (i >= 0) v[n++] = (now_s() - t0) / 2 * 1e3;
    }
    atomic_store(&j.stop, 1);
    pthread_join(th, NULL);
    double m = median(v, (size_t)n);
    free(v);
    return m;
}

/* Raw TCP: a connected loopback pair, messages as an 8-byte little-endian length + bytes. */
static void tcp_pair(int *a, int *b)
{
    int ls = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    if (ls < 0 || bind(ls, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(ls, 1) != 0 ||
        getsockname(ls, (struct sockaddr *)&sa, &len) != 0) {
        perror("wire_bench: tcp listen");
        exit(1);
    }
    *a = socket(AF_INET, SOCK_STREAM, 0);
    if (*a < 0 || connect(*a, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        (*b = accept(ls, NULL, NULL)) < 0) {
        perror("wire_bench: tcp connect");
        exit(1);
    }
    setsockopt(*a, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(*b, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    close(ls);
}

static void tcp_send(int fd, const void *p, size_t n)
{
    uint8_t hdr[8];
    for (int i = 0; i < 8; i++) hdr[i] = (uint8_t)((uint64_t)n >> (8 * i));
    struct iovec iov[2] = {{hdr, 8}, {(void *)p, n}};
    size_t done = 0, total = 8 + n;
    while (done < total) {
        ssize_t w = writev(fd, iov, 2);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            perror("wire_bench: tcp write");
            exit(1);
        }
        done += (size_t)w;
        for (int i = 0; i < 2; i++) {   /* advance the iovecs past w bytes */
            size_t k = (size_t)w < iov[i].iov_len ? (size_t)w : iov[i].iov_len;
            iov[i].iov_base = (uint8_t *)iov[i].iov_base + k;
            iov[i].iov_len -= k;
            w -= (ssize_t)k;
        }
    }
}

static void read_all(int fd, void *p, size_t n)
{
    size_t done = 0;
    while (done < n) {
        ssize_t r = read(fd, (uint8_t *)p + done, n - done);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            fprintf(stderr, "wire_bench: tcp read: %s\n", r == 0 ? "closed" : strerror(errno));
            exit(1);
        }
        done += (size_t)r;
    }
}

/* Reads one message into buf (cap bytes); returns its length. */
static size_t tcp_recv(int fd, uint8_t *buf, size_t cap)
{
    uint8_t hdr[8];
    read_all(fd, hdr, 8);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | hdr[i];
    if (n > cap) {
        fprintf(stderr, "wire_bench: tcp message of %llu bytes\n", (unsigned long long)n);
        exit(1);
    }
    read_all(fd, buf, (size_t)n);
    return (size_t)n;
}

typedef struct tcp_job { int fd; const uint8_t *p; uint8_t *buf; size_t n; int count; } tcp_job;

static void *tcp_tx(void *arg)
{
    tcp_job *j = arg;
    for (int i = 0; i < j->count; i++) tcp_send(j->fd, j->p, j->n);
    return NULL;
}

static void *tcp_echo(void *arg)
{
    tcp_job *j = arg;
    for (int i = 0; i < j->count; i++) {
        size_t n = tcp_recv(j->fd, j->buf, j->n);
        tcp_send(j->fd, j->buf, n);
    }
    return NULL;
}

static double tcp_throughput(int a, int b, const nnm_tensor *t, uint8_t *buf, int count)
{
    tcp_job j = {a, t->data, NULL, t->nbytes, count};
    pthread_t th;
    double t0 = now_s();
    if (pthread_create(&th, NULL, tcp_tx, &j) != 0) die("thread", NNM_ENOMEM, NULL);
    for (int i = 0; i < count; i++) tcp_recv(b, buf, t->nbytes);
    double t1 = now_s();
    pthread_join(th, NULL);
    return (double)count * (double)t->nbytes / (t1 - t0) / MB;
}

static double tcp_latency(int a, int b, const nnm_tensor *t, uint8_t *buf, uint8_t *buf2,
                          int pings)
{
    tcp_job j = {b, NULL, buf2, t->nbytes, pings + 1};
    pthread_t th;
    if (pthread_create(&th, NULL, tcp_echo, &j) != 0) die("thread", NNM_ENOMEM, NULL);
    double *v = xmalloc((size_t)pings * sizeof *v);
    for (int i = -1; i < pings; i++) {
        double t0 = now_s();
        tcp_send(a, t->data, t->nbytes);
        tcp_recv(a, buf, t->nbytes);
        if (i >= 0) v[i] = (now_s() - t0) / 2 * 1e3;
    }
    pthread_join(th, NULL);
    double m = median(v, (size_t)pings);
    free(v);
    return m;
}

/* Bare MQTT: the same raw bytes through two nnm_mqtt sessions (Paho + mosquitto, QoS 0, at
 * most 1 MiB per message) with no link: no framing, sealing, flow control or reassembly
 * beyond concatenating the pieces. It shows what Paho and the broker cost on their own. */
#define BARE_PIECE (1u << 20)

static nnm_mqtt *bare_open(const char *uri, const char *client, const char *topic)
{
    nnm_mqtt_opts o;
    nnm_mqtt_opts_init(&o);
    o.client_id = client;
    o.uris[0] = uri;
    o.nuris = 1;
    o.queue_max_bytes = 512u << 20;
    nnm_mqtt *m = NULL;
    nnm_diag d = {0};
    nnm_err rc = nnm_mqtt_new(&m, &o, &d);
    if (rc == NNM_OK) rc = nnm_mqtt_subscribe(m, topic, 0, &d);
    if (rc == NNM_OK) rc = nnm_mqtt_start(m, &d);
    if (rc == NNM_OK) rc = nnm_mqtt_wait_connected(m, 15000, &d);
    if (rc != NNM_OK) die(client, rc, &d);
    return m;
}

static void bare_send(nnm_mqtt *m, const char *topic, const uint8_t *p, size_t n)
{
    for (size_t off = 0; off < n; off += BARE_PIECE) {
        size_t k = n - off < BARE_PIECE ? n - off : BARE_PIECE;
        nnm_diag d = {0};
        nnm_err rc = nnm_mqtt_publish(m, topic, p + off, k, 0, 0, 5000, &d);
        if (rc != NNM_OK) die("bare publish", rc, &d);
    }
}

/* Receives pieces into buf until n bytes; returns 0, or -1 on a 10 s silence. */
static int bare_recv(nnm_mqtt *m, uint8_t *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        nnm_mqtt_msg msg;
        if (nnm_mqtt_recv(m, &msg, 10000, NULL) != NNM_OK) return -1;
        size_t k = msg.len < n - got ? msg.len : n - got;
        memcpy(buf + got, msg.payload, k);
        got += k;
        nnm_mqtt_msg_cleanup(&msg);
    }
    return 0;
}

typedef struct bare_job {
    nnm_mqtt *m;
    const char *topic;
    const uint8_t *p;
    uint8_t *buf;
    size_t n;
    int count;
    atomic_int stop;
} bare_job;

static void *bare_tx(void *arg)
{
    bare_job *j = arg;
    pthread_setname_np(pthread_self(), "wb-sender");
    for (int i = 0; i < j->count; i++) bare_send(j->m, j->topic, j->p, j->n);
    cpu_sender_done();
    return NULL;
}

static void *bare_echo(void *arg)
{
    bare_job *j = arg;
    while (!atomic_load(&j->stop)) {
        nnm_mqtt_msg msg;
        if (nnm_mqtt_recv(j->m, &msg, 100, NULL) != NNM_OK) continue;
        size_t got = msg.len;
        memcpy(j->buf, msg.payload, msg.len < j->n ? msg.len : j->n);
        nnm_mqtt_msg_cleanup(&msg);
        if (got < j->n && bare_recv(j->m, j->buf + got, j->n - got) != 0) continue;
        bare_send(j->m, j->topic, j->buf, j->n);
    }
    return NULL;
}

static double bare_throughput(nnm_mqtt *a, nnm_mqtt *b, const nnm_tensor *t, uint8_t *buf,
                              int count, int *lost)
{
    bare_job j = {.m = a, .topic = "wb/b", .p = t->data, .n = t->nbytes, .count = count};
    pthread_t th;
    cpu_snap c0, c1;
    if (cpu_report) cpu_snapshot(&c0);
    double t0 = now_s(), t1 = t0;
    if (pthread_create(&th, NULL, bare_tx, &j) != 0) die("thread", NNM_ENOMEM, NULL);
    int got = 0;
    while (got < count && bare_recv(b, buf, t->nbytes) == 0) {
        got++;
        t1 = now_s();
    }
    pthread_join(th, NULL);
    *lost = count - got;
    if (cpu_report) {
        cpu_snapshot(&c1);
        char what[64];
        snprintf(what, sizeof what, "bare MQTT, %zu-byte tensors", t->nbytes);
        cpu_print(what, &c0, &c1, (double)count * (double)t->nbytes / (1 << 20), t1 - t0);
    }
    if (*lost > 0) {   /* resynchronise: drain whatever is left */
        nnm_mqtt_msg msg;
        while (nnm_mqtt_recv(b, &msg, 500, NULL) == NNM_OK) nnm_mqtt_msg_cleanup(&msg);
    }
    return got > 0 && t1 > t0 ? (double)got * (double)t->nbytes / (t1 - t0) / MB : 0;
}

static double bare_latency(nnm_mqtt *a, nnm_mqtt *b, const nnm_tensor *t, uint8_t *buf,
                           uint8_t *buf2, int pings)
{
    bare_job j = {.m = b, .topic = "wb/a", .buf = buf2, .n = t->nbytes};
    atomic_init(&j.stop, 0);
    pthread_t th;
    if (pthread_create(&th, NULL, bare_echo, &j) != 0) die("thread", NNM_ENOMEM, NULL);
    double *v = xmalloc((size_t)pings * sizeof *v);
    int n = 0;
    for (int i = -1; i < pings; i++) {
        double t0 = now_s();
        bare_send(a, "wb/b", t->data, t->nbytes);
        if (bare_recv(a, buf, t->nbytes) != 0) break;
        if (i >= 0) v[n++] = (now_s() - t0) / 2 * 1e3;
    }
    atomic_store(&j.stop, 1);
    pthread_join(th, NULL);
    double m = median(v, (size_t)n);
    free(v);
    return m;
}

/* Per size: [0] TCP, [1] bare MQTT, [2 + codec] link. */
typedef struct cell { double *lat, *thr; int lost, count, pings; } cell;

/* Which paths a transfer run measures (--paths): bits of these; TCP is always measured. */
enum { PATH_BARE = 1, PATH_LINK = 2 };

static int cmd_transfer(int rounds, double mb, const size_t *sizes, size_t nsizes,
                        const int *codecs, size_t ncodecs, const char *broker_uri,
                        const char *broker_extra, const char *broker_env, int paths)
{
    test_broker br;
    memset(&br, 0, sizeof br);
    const char *uri = broker_uri;
    if (uri == NULL) {
        if (!test_broker_available()) {
            fprintf(stderr, "wire_bench: no mosquitto ($MOSQUITTO or /usr/sbin/mosquitto)\n");
            return 1;
        }
        /* --broker-env NAME=VALUE reaches the broker only: set around its start (glibc reads
         * GLIBC_TUNABLES at a process's start, so this process is not affected). */
        char env_name[64] = "";
        const char *eq = broker_env != NULL ? strchr(broker_env, '=') : NULL;
        if (eq != NULL && eq > broker_env && (size_t)(eq - broker_env) < sizeof env_name) {
            memcpy(env_name, broker_env, (size_t)(eq - broker_env));
            env_name[eq - broker_env] = '\0';
            setenv(env_name, eq + 1, 1);
        }
        int started = test_broker_start(&br, 0, broker_extra);
        if (env_name[0] != '\0') unsetenv(env_name);
        if (started != 0) return 1;
        uri = br.uri;
        cpu_broker_pid = br.pid;
    }
    ep a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    snprintf(a.name, sizeof a.name, "bench-a");
    snprintf(b.name, sizeof b.name, "bench-b");
    nnm_diag d = {0};
    nnm_err rc;
    if ((rc = nnm_identity_new(&a.id, &d)) != NNM_OK || (rc = nnm_identity_new(&b.id, &d)) != NNM_OK)
        die("identity", rc, &d);
    nnm_identity *ids[2] = {a.id, b.id};
    const char *names[2] = {a.name, b.name};
    a.trust = trust_of(ids, names, 2);
    b.trust = trust_of(ids, names, 2);
    ep_open(&a, uri);
    ep_open(&b, uri);
    double t0 = now_s();
    if ((rc = nnm_link_connect_peer(a.l, b.name, 20000, &d)) != NNM_OK) die("handshake", rc, &d);
    fprintf(stderr, "transfer: broker %s, handshake %.1f ms\n", uri, (now_s() - t0) * 1e3);

    int tcp_a, tcp_b;
    tcp_pair(&tcp_a, &tcp_b);
    nnm_mqtt *mq_a = bare_open(uri, "wb-bare-a", "wb/a"), *mq_b = bare_open(uri, "wb-bare-b", "wb/b");

    size_t ncol = 2 + ncodecs;
    cell *cells = calloc(nsizes * ncol, sizeof *cells);
    if (cells == NULL) die("cells", NNM_ENOMEM, NULL);
    for (size_t s = 0; s < nsizes; s++) {
        nnm_tensor t;
        relu_tensor(&t, sizes[s], 11 + (uint32_t)s);
        uint8_t *buf = xmalloc(t.nbytes), *buf2 = xmalloc(t.nbytes);
        double burst = mb * MB / (double)t.nbytes;
        int count = burst < 4 ? 4 : burst > 5000 ? 5000 : (int)burst;
        double pp = 16.0 * (1 << 20) / (double)t.nbytes;
        int pings = pp < 5 ? 5 : pp > 200 ? 200 : (int)pp;
        for (size_t c = 0; c < ncol; c++) {
            cell *ce = &cells[s * ncol + c];
            ce->lat = xmalloc((size_t)rounds * sizeof *ce->lat);
            ce->thr = xmalloc((size_t)rounds * sizeof *ce->thr);
            ce->count = count;
            ce->pings = pings;
        }
        char sn[32];
        size_name(sn, sizeof sn, sizes[s]);
        for (int r = 0; r < rounds; r++) {
            fprintf(stderr, "transfer: %s round %d/%d\n", sn, r + 1, rounds);
            cell *ce = &cells[s * ncol];
            ce->lat[r] = tcp_latency(tcp_a, tcp_b, &t, buf, buf2, pings);
            ce->thr[r] = tcp_throughput(tcp_a, tcp_b, &t, buf, count);
            int lost = 0;
            ce = &cells[s * ncol + 1];
            if (paths & PATH_BARE) {
                ce->lat[r] = bare_latency(mq_a, mq_b, &t, buf, buf2, pings);
                ce->thr[r] = bare_throughput(mq_a, mq_b, &t, buf, count, &lost);
                ce->lost += lost;
            }
            for (size_t c = 0; (paths & PATH_LINK) && c < ncodecs; c++) {
                ce = &cells[s * ncol + 2 + c];
                lost = 0;
                ce->lat[r] = link_latency(&a, &b, &t, (nnm_codec)codecs[c], pings);
                ce->thr[r] = link_throughput(&a, &b, &t, (nnm_codec)codecs[c], count, &lost);
                ce->lost += lost;
            }
        }
        free(buf);
        free(buf2);
        nnm_tensor_cleanup(&t);
    }
    nnm_link_stats sa, sb;
    nnm_link_get_stats(a.l, &sa);
    nnm_link_get_stats(b.l, &sb);

    printf("### Transfer: nnm_link through mosquitto vs raw TCP, loopback (medians of %d "
           "rounds)\n\n", rounds);
    printf("Latency is one way (ping-pong round trip / 2, median of the pings of a round); "
           "throughput is a stream of back-to-back tensors, MB/s of raw f32 tensor bytes "
           "from the first send to the last receive. The link path includes codec encode, "
           "framing, sealing, chunking, Paho, mosquitto, opening, reassembly and decode; "
           "bare MQTT is the same raw bytes through Paho and mosquitto alone (QoS 0, "
           "<= 1 MiB per message, no framing, sealing or flow control).\n\n");
    printf("| tensor | path | latency ms | throughput MB/s | latency x TCP | throughput / TCP "
           "| tensors per stream, pings | lost |\n|---|---|---|---|---|---|---|---|\n");
    double thr_1m_none = -1;
    for (size_t s = 0; s < nsizes; s++) {
        char sn[32];
        size_name(sn, sizeof sn, sizes[s]);
        cell *tc = &cells[s * ncol];
        double tl = median(tc->lat, (size_t)rounds), tt = median(tc->thr, (size_t)rounds);
        printf("| %s | raw TCP | %.3f | %.0f | 1 | 1 | %d, %d | - |\n", sn, tl, tt, tc->count,
               tc->pings);
        for (size_t c = 1; c < ncol; c++) {
            if (c == 1 ? !(paths & PATH_BARE) : !(paths & PATH_LINK)) continue;
            cell *ce = &cells[s * ncol + c];
            char path[64];
            if (c == 1) snprintf(path, sizeof path, "bare MQTT (no link)");
            else snprintf(path, sizeof path, "link, %s", codec_names[codecs[c - 2]]);
            /* ratios per round (side by side), then their median */
            double rl[64], rt[64];
            int nr = rounds < 64 ? rounds : 64;
            for (int r = 0; r < nr; r++) {
                rl[r] = tc->lat[r] > 0 ? ce->lat[r] / tc->lat[r] : 0;
                rt[r] = tc->thr[r] > 0 ? ce->thr[r] / tc->thr[r] : 0;
            }
            double ml = median(rl, (size_t)nr), mt = median(rt, (size_t)nr);
            double l = median(ce->lat, (size_t)rounds), t = median(ce->thr, (size_t)rounds);
            printf("| %s | broker, %s | %.3f | %.0f | %.1f | **%.2f** | %d, %d | %d |\n", sn,
                   path, l, t, ml, mt, ce->count, ce->pings, ce->lost);
            if (sizes[s] == (1u << 20) && c >= 2 && codecs[c - 2] == NNM_CODEC_NONE)
                thr_1m_none = mt;
        }
    }
    if (thr_1m_none >= 0)
        printf("\nTarget (through the broker >= 50%% of raw TCP throughput, 1 MiB tensors, "
               "codec NONE): %s (%.0f%%).\n", thr_1m_none >= 0.5 ? "**met**" : "**not met**",
               thr_1m_none * 100);
    printf("\nRatios are medians of per-round ratios (each round measures TCP and the broker "
           "back to back). Link counters: sender tx %llu messages, %llu flow-control waits; "
           "receiver drops: malformed %llu, replay %llu, reassembly %llu, queue %llu; "
           "reassembly evicted %llu.\n\n",
           (unsigned long long)sa.tx_frames, (unsigned long long)sa.send_waits,
           (unsigned long long)sb.drop_malformed, (unsigned long long)sb.drop_replay,
           (unsigned long long)sb.drop_reasm, (unsigned long long)sb.drop_queue_full,
           (unsigned long long)sb.reasm.evicted);

    for (size_t i = 0; i < nsizes * ncol; i++) {
        free(cells[i].lat);
        free(cells[i].thr);
    }
    free(cells);
    close(tcp_a);
    close(tcp_b);
    nnm_mqtt_free(mq_a);
    nnm_mqtt_free(mq_b);
    nnm_link_free(a.l);
    nnm_link_free(b.l);
    nnm_trust_free(a.trust);
    nnm_trust_free(b.trust);
    nnm_identity_free(a.id);
    nnm_identity_free(b.id);
    test_broker_cleanup(&br);
    return 0;
}

/* ---- main --------------------------------------------------------------------------------- */

static void usage(void)
{
    fprintf(stderr,
            "usage: wire_bench seal [--mb MB] [--malloc default|node]\n"
            "       wire_bench transfer [--rounds R] [--mb MB] [--sizes 1k,64k,1m,16m]\n"
            "                  [--codecs none,f16,int8,lz4] [--paths bare,link] [--cpu 1]\n"
            "                  [--chunk BYTES] [--broker-env NAME=VALUE]\n"
            "                  [--broker URI] [--broker-extra LINES]\n"
            "seal: MB per timed figure (default 64). transfer: MB per throughput stream "
            "(default 32), R rounds (default 5).\n"
            "--malloc node: this process keeps big buffers on its heap as nnmeshd does "
            "(nnm_node_tune_malloc); default: glibc's defaults.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage();
        return 2;
    }
    const char *cmd = argv[1];
    int rounds = 5;
    double mb = strcmp(cmd, "seal") == 0 ? 64 : 32;
    size_t sizes[MAX_SIZES] = {1024, 65536, 1u << 20, 16u << 20}, nsizes = 4;
    int codecs[NNM_CODEC__COUNT] = {NNM_CODEC_NONE, NNM_CODEC_F16, NNM_CODEC_INT8_AFFINE,
                                    NNM_CODEC_LZ4};
    size_t ncodecs = 4;
    const char *broker = NULL, *extra = NULL, *benv = NULL;
    int paths = PATH_BARE | PATH_LINK;
    for (int i = 2; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL) {
            usage();
            return 2;
        }
        if (strcmp(argv[i], "--rounds") == 0) {
            rounds = atoi(v);
            if (rounds < 1 || rounds > 64) rounds = 5;
        } else if (strcmp(argv[i], "--mb") == 0) {
            mb = atof(v);
            if (mb <= 0) mb = 32;
        } else if (strcmp(argv[i], "--broker") == 0) {
            broker = v;
        } else if (strcmp(argv[i], "--broker-extra") == 0) {
            extra = v;
        } else if (strcmp(argv[i], "--broker-env") == 0) {
            benv = v;
        } else if (strcmp(argv[i], "--chunk") == 0) {
            link_chunk_size = parse_size(v);
        } else if (strcmp(argv[i], "--malloc") == 0) {
            if (strcmp(v, "node") == 0) {
                nnm_node_tune_malloc();
                malloc_node = 1;
            } else if (strcmp(v, "default") != 0) {
                fprintf(stderr, "wire_bench: --malloc takes node or default\n");
                return 2;
            }
        } else if (strcmp(argv[i], "--cpu") == 0) {
            cpu_report = atoi(v);
        } else if (strcmp(argv[i], "--paths") == 0) {
            paths = (strstr(v, "bare") != NULL ? PATH_BARE : 0) |
                    (strstr(v, "link") != NULL ? PATH_LINK : 0);
        } else if (strcmp(argv[i], "--sizes") == 0 || strcmp(argv[i], "--codecs") == 0) {
            int is_sizes = argv[i][2] == 's';
            char list[256];
            snprintf(list, sizeof list, "%s", v);
            size_t n = 0;
            for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok != NULL;
                 tok = strtok_r(NULL, ",", &save)) {
                if (is_sizes) {
                    size_t z = parse_size(tok);
                    if (z == 0 || z % 4 != 0 || n == MAX_SIZES) {
                        fprintf(stderr, "wire_bench: bad size '%s' (a multiple of 4)\n", tok);
                        return 2;
                    }
                    sizes[n++] = z;
                } else {
                    int c = strcmp(tok, "none") == 0 ? 0 : strcmp(tok, "f16") == 0 ? 1
                          : strcmp(tok, "int8") == 0 ? 2 : strcmp(tok, "lz4") == 0 ? 3 : -1;
                    if (c < 0 || n == NNM_CODEC__COUNT) {
                        fprintf(stderr, "wire_bench: bad codec '%s' (none, f16, int8, lz4)\n", tok);
                        return 2;
                    }
                    codecs[n++] = c;
                }
            }
            if (is_sizes) nsizes = n;
            else ncodecs = n;
        } else {
            usage();
            return 2;
        }
        i++;
    }
    if (sodium_init() < 0) {
        fprintf(stderr, "wire_bench: libsodium could not initialise\n");
        return 1;
    }
    if (strcmp(cmd, "seal") == 0) return cmd_seal(mb);
    if (strcmp(cmd, "transfer") == 0)
        return cmd_transfer(rounds, mb, sizes, nsizes, codecs, ncodecs, broker, extra, benv,
                            paths);
    usage();
    return 2;
}
