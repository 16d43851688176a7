/* nnmesh/wire.h — the wire format without the network: version, frame types, codecs,
 * limits, the frame codec with its strict decoder, tensor payload codecs, chunking and
 * reassembly, and the MQTT topic scheme. docs/PROTOCOL.md describes the bytes.
 *
 * Every number in this header that reaches the wire (version, frame types, codecs, layouts,
 * part kinds, topic kinds) is append-only and pinned by static asserts at the bottom: changing
 * one breaks the build, which is the point. Bump NNM_WIRE_VERSION instead. */
#ifndef NNMESH_WIRE_H
#define NNMESH_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "nnmesh/err.h"
#include "nnmesh/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- constants ------------------------------------------------------------------------- */

#define NNM_WIRE_VERSION 1

/* Node ids, mesh names, request tags and control verbs: [a-z0-9-]{1,32}. */
#define NNM_ID_MAX 32
/* Upper bound of any string field (topic, tensor name, message); limits can only lower it. */
#define NNM_WIRE_STR_MAX 256
#define NNM_WIRE_HASH_BYTES 32          /* model content hash (BLAKE2b-256) */
#define NNM_WIRE_DEPTH_MAX 8
#define NNM_WIRE_CHUNK_DEFAULT (1u << 20)  /* DESIGN.md: Paho stalls past ~4 MiB messages */
#define NNM_WIRE_HEADER_FIELDS 8

/* Frame types (header field 1). Append only. */
typedef enum nnm_frame_type {
    NNM_FRAME_HELLO = 1,   /* key exchange; body owned by crypto/ (opaque bytes here) */
    NNM_FRAME_ADVERT = 2,  /* signed advert payload: capacities, models, memory, load */
    NNM_FRAME_TASK = 3,    /* slice spec + input tensors */
    NNM_FRAME_TENSOR = 4,  /* tensors between slices */
    NNM_FRAME_RESULT = 5,  /* status + output tensors + trace */
    NNM_FRAME_ERROR = 6,   /* code + message */
    NNM_FRAME_CTL = 7,     /* control verb + argument (policy, drain, resume) */
    NNM_FRAME_PROBE = 8,   /* link probe: sequence, timestamp, padding */
    NNM_FRAME_ACK = 9,     /* application-level acknowledgement of a counter */
    NNM_FRAME_BYE = 10,    /* leaving the mesh */
    NNM_FRAME_CHUNK = 11,  /* one piece of a larger encoded frame */
    NNM_FRAME__COUNT
} nnm_frame_type;

/* Tensor payload codecs. Append only. */
typedef enum nnm_codec {
    NNM_CODEC_NONE = 0,        /* raw little-endian elements */
    NNM_CODEC_F16 = 1,         /* f32 sent as IEEE half, round to nearest even (lossy) */
    NNM_CODEC_INT8_AFFINE = 2, /* f32 sent as int8 with per-channel scale/zero point (lossy) */
    NNM_CODEC_LZ4 = 3,         /* raw bytes compressed with LZ4 block format (lossless) */
    NNM_CODEC__COUNT,
    /* Asks nnm_wire_tensor_encode for LZ4 when it saves >= 10%, else NONE. Never a tensor's
     * codec on the wire; a slice spec's result_codec may ask for it. */
    NNM_CODEC_AUTO = 255
} nnm_codec;

/* Memory layout of a tensor's elements. Append only. */
typedef enum nnm_layout {
    NNM_LAYOUT_ROWMAJOR = 0,   /* C order as shaped (NCHW for activations) */
    NNM_LAYOUT_NHWC = 1,       /* 4-D tensor whose shape is given NCHW but stored NHWC */
    NNM_LAYOUT__COUNT
} nnm_layout;

/* How a TASK splits one slice between nodes: nnm_part_kind, in nnmesh/tensor.h (shared
 * with the engine's slicer). */

/* ---- limits ---------------------------------------------------------------------------- */

/* Caps the decoder checks every declared count and length against before allocating. */
typedef struct nnm_wire_limits {
    size_t max_frame_bytes;   /* whole encoded frame */
    size_t max_tensor_bytes;  /* raw (decoded) bytes of one tensor */
    size_t max_dims;          /* <= NNM_MAX_DIMS */
    size_t max_string;        /* <= NNM_WIRE_STR_MAX */
    size_t max_depth;         /* <= NNM_WIRE_DEPTH_MAX */
    size_t max_array_items;   /* any one array or map */
} nnm_wire_limits;

/* Fills l with the defaults: 256 MiB + 64 KiB frames, 256 MiB tensors, 8 dims, 256-byte
 * strings, depth 8, 4096 items. */
void nnm_wire_limits_init(nnm_wire_limits *l);

/* ---- ids ------------------------------------------------------------------------------- */

/* Checks that s[0..len) is an id ([a-z0-9-]{1,32}) and copies it NUL-terminated into out.
 * what names the field in the diagnostic ("sender id"). Errors: NNM_EFORMAT (bad character,
 * empty, NUL), NNM_ERANGE (too long). On error out is "". */
nnm_err nnm_id_decode(char out[NNM_ID_MAX + 1], const char *s, size_t len, const char *what,
                      nnm_diag *diag);

/* ---- frames ---------------------------------------------------------------------------- */

/* The header, encoded as a msgpack array of 8 in this order. Its exact encoded bytes
 * (nnm_frame_header_encode) are the associated data of a sealed frame. */
typedef struct nnm_frame_header {
    uint8_t version;                    /* NNM_WIRE_VERSION */
    uint8_t type;                       /* nnm_frame_type */
    char sender[NNM_ID_MAX + 1];        /* id */
    char receiver[NNM_ID_MAX + 1];      /* id, or "" (broadcast: HELLO, ADVERT, PROBE, BYE) */
    uint64_t session;
    uint64_t counter;
    uint64_t request;
    char topic[NNM_WIRE_STR_MAX + 1];   /* an nnmesh topic (nnm_topic_decode accepts it) */
} nnm_frame_header;

/* One tensor on the wire. Byte fields borrow: on encode from the caller, on decode from the
 * input buffer (which must outlive the frame). */
typedef struct nnm_wire_tensor {
    const char *name;          /* UTF-8, no NUL, <= max_string bytes; "" allowed */
    uint8_t dtype;             /* nnm_dtype of the decoded tensor */
    uint8_t layout;            /* nnm_layout */
    uint8_t codec;             /* nnm_codec */
    int ndim;
    uint64_t shape[NNM_MAX_DIMS];
    uint64_t raw_len;          /* numel x dtype size: bytes once decoded */
    const uint8_t *params;     /* INT8_AFFINE: C f32 LE scales then C int8 zero points */
    size_t params_len;
    const uint8_t *data;       /* encoded element bytes */
    size_t data_len;
    void *owned_;              /* encode buffer owned by this struct (nnm_wire_tensor_cleanup) */
} nnm_wire_tensor;

/* What a TASK asks for. Encoded as an array of 9, or of 8 (without result_codec) when
 * result_codec is AUTO, so that workers from before the field take the default TASK; the
 * decoder takes both and reads 8 fields as AUTO. */
typedef struct nnm_slice_spec {
    uint8_t model_hash[NNM_WIRE_HASH_BYTES];
    uint32_t node_begin, node_end;     /* graph nodes [begin, end), begin < end */
    uint8_t part_kind;                 /* nnm_part_kind */
    uint32_t part_begin, part_end;     /* [begin, end); [0, 0) for WHOLE */
    uint32_t attempt;                  /* 0 first try, +1 per re-plan */
    uint64_t deadline_ms;              /* absolute, sender's mesh clock */
    uint8_t result_codec;              /* nnm_codec the worker should answer with: a wire
                                        * codec or NNM_CODEC_AUTO */
} nnm_slice_spec;

/* Stage-to-stage forwarding (docs/PROTOCOL.md, "Forwarded inputs"). A routed TASK names the
 * inputs that arrive in pieces instead of with it, the pieces of its outputs to send straight
 * to the next stage's nodes, and the outputs to return to the coordinator. A piece is a box of
 * one output (begin/end per dimension of the producer's output tensor) sent in a TENSOR frame
 * to the consumer's node, under the consumer's task id, to be written at `at` (per dimension)
 * of the consumer's awaited input.
 *
 * One piece an awaited input is made of: the box [at, at + shape) of the input, which node
 * `from` (its producer) sends. at and shape have the await's ndim values; every shape value
 * >= 1 and at + shape within the await's shape. */
typedef struct nnm_await_piece {
    char from[NNM_ID_MAX + 1];
    uint64_t at[NNM_MAX_DIMS];
    uint64_t shape[NNM_MAX_DIMS];
} nnm_await_piece;

typedef struct nnm_task_await {
    const char *name;                  /* an input of the task's slice (the value's name):
                                        * non-empty, unique among the awaits, not the name
                                        * of a tensor the TASK carries */
    uint8_t dtype;                     /* nnm_dtype */
    int ndim;                          /* 1..max_dims */
    uint64_t shape[NNM_MAX_DIMS];      /* every dimension >= 1; numel x dtype size within
                                        * max_tensor_bytes */
    size_t npiece;                     /* >= 1: every piece the input is made of. The worker
                                        * takes a piece only from its producer or from the
                                        * TASK's sender (the coordinator stands in for a
                                        * producer that failed), and runs once it has all */
    const nnm_await_piece *pieces;
} nnm_task_await;

typedef struct nnm_task_forward {
    char node[NNM_ID_MAX + 1];         /* id of the consumer's node */
    uint64_t task;                     /* the consumer's TASK request id, not 0 */
    const char *name;                  /* the output (value) name, non-empty */
    int ndim;                          /* 1..max_dims, for begin, end and at alike */
    uint64_t begin[NNM_MAX_DIMS], end[NNM_MAX_DIMS];  /* begin[d] < end[d] */
    uint64_t at[NNM_MAX_DIMS];         /* where the box goes in the consumer's input */
} nnm_task_forward;                    /* every value <= INT64_MAX */

/* Where the tensors of a piece go: at[d] per dimension of the tensor (ndim of the tensor),
 * each <= INT64_MAX. */
typedef struct nnm_piece_at {
    uint64_t v[NNM_MAX_DIMS];
} nnm_piece_at;

typedef struct nnm_trace_entry {
    char node[NNM_ID_MAX + 1];
    uint32_t node_begin, node_end;
    uint64_t compute_us, transfer_us, wait_us;
} nnm_trace_entry;

typedef struct nnm_advert_cap {
    char name[NNM_ID_MAX + 1];         /* id syntax: "cpu-cores", "gflops", "mem-mb" ... */
    uint64_t value;
} nnm_advert_cap;

typedef struct nnm_advert {
    uint64_t epoch, seq, expiry_ms;
    char version[NNM_ID_MAX + 1];      /* software version, [a-z0-9-.]: e.g. "0.1.0" */
    uint64_t free_mem;                 /* bytes */
    uint32_t load_permille;            /* 0..1000 */
    size_t ncaps;
    const nnm_advert_cap *caps;          /* encode: any order; decode: sorted, unique names */
    size_t nmodels;
    const uint8_t (*models)[NNM_WIRE_HASH_BYTES];
} nnm_advert;

/* One piece of a larger encoded frame (see nnm_chunk_init for the chunking rule). */
typedef struct nnm_chunk {
    uint64_t stream;           /* sender-chosen, unique per (sender, request) */
    uint32_t index, count;     /* index < count */
    uint64_t total;            /* bytes of the whole payload */
    const uint8_t *data;       /* this chunk's bytes */
    size_t len;
} nnm_chunk;

/* A decoded or to-be-encoded frame. Only the body member matching hdr.type is meaningful. */
typedef struct nnm_frame {
    nnm_frame_header hdr;
    union {
        struct { const uint8_t *payload; size_t len; } hello;
        nnm_advert advert;
        struct {
            nnm_slice_spec spec; size_t ntensors; const nnm_wire_tensor *tensors;
            /* routed != 0: the body has 5 fields (the three below, each may be empty);
             * routed == 0: 2 fields, every input comes with the TASK and every output
             * returns to the sender (the encoder then ignores the three). Decoded: 0 or 1 */
            int routed;
            size_t nawait; const nnm_task_await *await;
            size_t nforward; const nnm_task_forward *forward;
            size_t nreturn; const char *const *returns;   /* output names to return:
                                                           * non-empty, unique */
        } task;
        struct {
            size_t ntensors; const nnm_wire_tensor *tensors;
            /* piece != 0: the body has 3 fields: forwarded pieces for the task hdr.request
             * (not 0) of coordinator `coord`, tensor i written at at[i] of the awaited input
             * of the same name; piece == 0: 1 field (a shipped model), the encoder ignores
             * coord and at. Decoded: 0 or 1 */
            int piece;
            char coord[NNM_ID_MAX + 1];
            const nnm_piece_at *at;    /* ntensors entries */
        } tensor;
        struct {
            uint32_t status;           /* nnm_err of the slice, 0 = OK */
            size_t ntensors; const nnm_wire_tensor *tensors;
            size_t ntrace; const nnm_trace_entry *trace;
        } result;
        struct { uint32_t code; const char *message; } error;
        struct { char verb[NNM_ID_MAX + 1]; const char *arg; } ctl;
        struct { uint64_t seq, sent_us; const uint8_t *pad; size_t pad_len; } probe;
        struct { uint64_t counter; uint32_t status; } ack;
        struct { const char *reason; } bye;
        nnm_chunk chunk;
    } u;
    void *pool_;                       /* decoder allocations (nnm_frame_free) */
} nnm_frame;

/* Appends the canonical encoding of h to a fresh malloc'd buffer (*out, *len; caller frees).
 * Validates first: version, type, ids, topic. Errors: NNM_EINVAL (bad field, named in diag),
 * NNM_ENOMEM. On error *out is NULL. */
nnm_err nnm_frame_header_encode(uint8_t **out, size_t *len, const nnm_frame_header *h,
                                nnm_diag *diag);

/* Decodes one header from the start of buf; *used gets its encoded length (the body starts
 * there). Errors: NNM_EFORMAT (malformed, field named), NNM_ERANGE (a cap exceeded),
 * NNM_EUNSUPPORTED (another wire version). On error *h is zeroed. lim may be NULL (defaults). */
nnm_err nnm_frame_header_decode(nnm_frame_header *h, size_t *used, const uint8_t *buf,
                                size_t len, const nnm_wire_limits *lim, nnm_diag *diag);

/* Encodes the body of f (by f->hdr.type) alone: the bytes that a sealed frame encrypts.
 * Errors: NNM_EINVAL (a field the decoder would reject, named in diag), NNM_ERANGE (a value
 * past a default limit: a tensor's or an awaited input's size, a dimension past INT64_MAX, a
 * string or array too long), NNM_ENOMEM. */
nnm_err nnm_frame_body_encode(uint8_t **out, size_t *len, const nnm_frame *f, nnm_diag *diag);

/* Encodes header then body: the plaintext frame. Errors as the two above. */
nnm_err nnm_frame_encode(uint8_t **out, size_t *len, const nnm_frame *f, nnm_diag *diag);

/* Decodes a body of the given type (the whole of buf) into a new frame whose header is a
 * copy of *h. Errors as nnm_frame_decode. */
nnm_err nnm_frame_body_decode(nnm_frame **out, const nnm_frame_header *h, const uint8_t *buf,
                              size_t len, const nnm_wire_limits *lim, nnm_diag *diag);

/* Strictly decodes a whole frame: exactly one header and one body, canonical msgpack (the
 * shortest encoding of every integer and length, map keys sorted), nothing trailing. Every
 * count and length is checked against the bytes left and the limits before anything is
 * allocated; strings are copied out NUL-terminated; byte fields borrow from buf.
 * Errors: NNM_EFORMAT, NNM_ERANGE, NNM_EUNSUPPORTED, NNM_ENOMEM; the diagnostic names the
 * field. On error *out is NULL. lim may be NULL (defaults). */
nnm_err nnm_frame_decode(nnm_frame **out, const uint8_t *buf, size_t len,
                         const nnm_wire_limits *lim, nnm_diag *diag);

/* Frees a decoded frame. NULL-safe. */
void nnm_frame_free(nnm_frame *f);

/* Static name of a frame type ("tensor") or "?". */
const char *nnm_frame_type_name(unsigned type);

/* ---- tensor payload codecs ------------------------------------------------------------- */

/* Static name of a codec ("none", "f16", "int8", "lz4", "auto") or "?". */
const char *nnm_codec_name(unsigned codec);

/* Encodes t with codec into wt (name "", layout ROWMAJOR: set them after). NONE borrows
 * t->data; the others allocate a buffer owned by wt. F16 and INT8_AFFINE need an f32 tensor.
 * INT8_AFFINE quantises per channel: axis 1 for 4-D tensors (NCHW), the last axis otherwise.
 * AUTO picks LZ4 if it is at least 10% smaller than raw, else NONE.
 * Errors: NNM_EINVAL (codec or dtype), NNM_ERANGE (tensor too big for LZ4), NNM_ENOMEM. */
nnm_err nnm_wire_tensor_encode(nnm_wire_tensor *wt, const nnm_tensor *t, nnm_codec codec,
                               nnm_diag *diag);

/* Releases a buffer owned by wt and zeroes it. NULL-safe. */
void nnm_wire_tensor_cleanup(nnm_wire_tensor *wt);

/* Decodes wt into a new owned tensor t (f32 for F16 and INT8_AFFINE). Validates everything
 * again (shape x dtype = raw length, lengths per codec, raw length within lim, LZ4 output
 * exactly raw length). Errors: NNM_EFORMAT, NNM_ERANGE, NNM_ENOMEM. On error t is zeroed. */
nnm_err nnm_wire_tensor_decode(nnm_tensor *t, const nnm_wire_tensor *wt,
                               const nnm_wire_limits *lim, nnm_diag *diag);

/* ---- chunking and reassembly ----------------------------------------------------------- */

/* Describes chunk `index` of a payload of `total` bytes split for chunks of at most
 * chunk_size bytes: count = ceil(total / chunk_size), every chunk ceil(total / count) bytes
 * except a shorter last one. Fills f->u.chunk (data borrows payload) and sets f->hdr.type to
 * CHUNK; the caller sets the rest of the header (the request id is the inner frame's). Call with index 0 to learn the count.
 * Errors: NNM_EINVAL (total 0, chunk_size 0, index >= count). */
nnm_err nnm_chunk_init(nnm_frame *f, uint64_t stream, const uint8_t *payload, size_t total,
                       size_t chunk_size, uint32_t index, nnm_diag *diag);

typedef struct nnm_reasm nnm_reasm;

typedef struct nnm_reasm_config {
    size_t max_streams;          /* concurrent incomplete streams (default 64) */
    size_t max_bytes;            /* sum of totals of incomplete streams (default 512 MiB) */
    size_t max_stream_bytes;     /* one payload (default 256 MiB + 64 KiB) */
    uint32_t max_chunks;         /* chunks of one stream (default 65536) */
    uint64_t timeout_ms;         /* idle time after which a stream is evicted (default 30 s) */
} nnm_reasm_config;

typedef struct nnm_reasm_stats {
    size_t streams;              /* incomplete now */
    size_t bytes;                /* reserved by incomplete streams now */
    uint64_t completed, evicted, rejected, duplicates;
} nnm_reasm_stats;

void nnm_reasm_config_init(nnm_reasm_config *cfg);

/* New reassembler; cfg NULL means defaults. Errors: NNM_EINVAL, NNM_ENOMEM. */
nnm_err nnm_reasm_new(nnm_reasm **out, const nnm_reasm_config *cfg, nnm_diag *diag);
void nnm_reasm_free(nnm_reasm *r);

/* Feeds one decoded CHUNK frame at time now_ms (any monotonic millisecond clock). First
 * evicts streams idle longer than the timeout. When the chunk completes its stream, *payload
 * gets the whole malloc'd payload (caller frees) and *len its size; otherwise *payload is NULL.
 * Duplicates (of a stored chunk or of a recently completed stream) are counted and ignored.
 * Errors: NNM_EINVAL (not a CHUNK frame), NNM_EFORMAT (count, total or length inconsistent
 * with the stream or with the chunking rule; a conflicting duplicate drops the stream),
 * NNM_ERANGE (a cap: streams, bytes, chunks), NNM_ENOMEM. */
nnm_err nnm_reasm_decode(nnm_reasm *r, const nnm_frame *chunk, uint64_t now_ms,
                         uint8_t **payload, size_t *len, nnm_diag *diag);

/* Advances the clock without a chunk: evicts streams idle longer than the timeout. */
void nnm_reasm_set_clock(nnm_reasm *r, uint64_t now_ms);
void nnm_reasm_get_stats(const nnm_reasm *r, nnm_reasm_stats *st);

/* ---- topics ---------------------------------------------------------------------------- */

/* nnmesh/<mesh>/<kind>/<node>[/<arg>]; see docs/PROTOCOL.md. Append only. */
typedef enum nnm_topic_kind {
    NNM_TOPIC_ADVERT = 1,  /* retained signed advert; no arg */
    NNM_TOPIC_INBOX = 2,   /* frames addressed to node; no arg */
    NNM_TOPIC_REQ = 3,     /* shell ingress: a .npy; arg = request tag */
    NNM_TOPIC_RES = 4,     /* shell egress: the output .npy; arg = request tag */
    NNM_TOPIC_STATS = 5,   /* JSON stats of node; no arg */
    NNM_TOPIC_CTL = 6,     /* shell control of node; arg = verb */
    NNM_TOPIC__COUNT
} nnm_topic_kind;

#define NNM_TOPIC_MAX 128   /* longest topic the scheme can produce, with NUL */

typedef struct nnm_topic {
    nnm_topic_kind kind;
    char mesh[NNM_ID_MAX + 1];
    char node[NNM_ID_MAX + 1];
    char arg[NNM_ID_MAX + 1];   /* "" when the kind takes none */
} nnm_topic;

/* Formats t into buf (NUL-terminated) after validating every id. node "+" asks for a
 * subscription filter with a single-level wildcard there (arg may then be "+" too).
 * Errors: NNM_EINVAL (bad kind, id or arg presence), NNM_ERANGE (buf too small). */
nnm_err nnm_topic_encode(char *buf, size_t size, const nnm_topic *t, nnm_diag *diag);

/* Strictly parses a topic name s[0..len) (not a filter: wildcards rejected).
 * Errors: NNM_EFORMAT (prefix, kind, empty level, wildcard, bad id, arg presence,
 * trailing level), NNM_ERANGE (too long). On error *t is zeroed. */
nnm_err nnm_topic_decode(nnm_topic *t, const char *s, size_t len, nnm_diag *diag);

/* Static name of a topic kind ("inbox") or NULL. */
const char *nnm_topic_kind_name(unsigned kind);

/* ---- pins: the wire numbers; changing one is a protocol change --------------------------- */

#ifndef __cplusplus

_Static_assert(NNM_WIRE_VERSION == 1, "wire version: bump deliberately and update PROTOCOL.md");
_Static_assert(NNM_FRAME_HELLO == 1 && NNM_FRAME_ADVERT == 2 && NNM_FRAME_TASK == 3 &&
               NNM_FRAME_TENSOR == 4 && NNM_FRAME_RESULT == 5 && NNM_FRAME_ERROR == 6 &&
               NNM_FRAME_CTL == 7 && NNM_FRAME_PROBE == 8 && NNM_FRAME_ACK == 9 &&
               NNM_FRAME_BYE == 10 && NNM_FRAME_CHUNK == 11,
               "frame type numbers are wire values: append only");
_Static_assert(NNM_FRAME__COUNT == 12, "new frame type: bump NNM_WIRE_VERSION, pin it here");
_Static_assert(NNM_CODEC_NONE == 0 && NNM_CODEC_F16 == 1 && NNM_CODEC_INT8_AFFINE == 2 &&
               NNM_CODEC_LZ4 == 3 && NNM_CODEC__COUNT == 4 && NNM_CODEC_AUTO == 255,
               "codec numbers are wire values (AUTO in a slice spec's result codec)");
_Static_assert(NNM_LAYOUT_ROWMAJOR == 0 && NNM_LAYOUT_NHWC == 1 && NNM_LAYOUT__COUNT == 2,
               "layout numbers are wire values");
_Static_assert(NNM_PART_WHOLE == 0 && NNM_PART_CHANNELS == 1 && NNM_PART_ROWS == 2 &&
               NNM_PART__COUNT == 3, "part kinds are wire values");
_Static_assert(NNM_DT_F32 == 1 && NNM_DT_F16 == 2 && NNM_DT_I8 == 3 && NNM_DT_U8 == 4 &&
               NNM_DT_I32 == 5 && NNM_DT_I64 == 6 && NNM_DT_BOOL == 7 && NNM_DT_F64 == 8 &&
               NNM_DT__COUNT == 9, "dtype numbers are wire values (nnmesh/tensor.h)");
_Static_assert(NNM_TOPIC_ADVERT == 1 && NNM_TOPIC_INBOX == 2 && NNM_TOPIC_REQ == 3 &&
               NNM_TOPIC_RES == 4 && NNM_TOPIC_STATS == 5 && NNM_TOPIC_CTL == 6 &&
               NNM_TOPIC__COUNT == 7, "topic kinds are part of the scheme");
_Static_assert(NNM_MAX_DIMS == 8 && NNM_ID_MAX == 32 && NNM_WIRE_STR_MAX == 256 &&
               NNM_WIRE_HASH_BYTES == 32 && NNM_WIRE_HEADER_FIELDS == 8,
               "wire sizes");
#endif

#ifdef __cplusplus
}
#endif
#endif
