/* runtime/onnx.c — ONNX import: reads a model file with the protobuf-c parser generated from
 * the system's onnx.proto, turns initializers and Constant nodes into constant values and
 * every other node into an IR node with raw attributes (the contract at the top of ir.h),
 * then runs the import pipeline (ir__optimize). Also the read-only accessors of the public
 * graph API (nnmesh/graph.h) and the unsupported-op lister used by `nnmesh inspect`.
 *
 * The model file is outside input: every count and size is checked against the bytes present
 * before anything is allocated, nesting depth is bounded before protobuf-c recurses, and each
 * error names the file and the node, input or initializer at fault.
 *
 * Peak memory: the file buffer is freed as soon as protobuf-c has unpacked it, and weights
 * are moved out of the unpacked message tensor by tensor (raw_data pointers are stolen, typed
 * fields freed right after conversion), so at most about two copies of the weights exist. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nnmesh/graph.h"
#include "ir.h"
#include "onnx.pb-c.h"

#define OPSET_MIN 7
#define OPSET_MAX 17
/* Deeper nesting than this is not a model nnmesh can run (subgraphs are unsupported anyway);
 * bounding it keeps protobuf-c's recursive unpacker off the end of the stack. */
#define WIRE_MAX_DEPTH 32
/* Slack after every constant, as nnm_tensor_init leaves, for kernels that over-read. */
#define CONST_SLACK 16

typedef struct import_ctx {
    const char *file;          /* name for messages */
    nnm_graph *g;
    int opset;
    int64_t batch;
    nnm_diag *diag;
} import_ctx;

/* ---------------------------------------------------------------------------------------
 * Wire pre-check: walks the protobuf encoding with the generated descriptors, bounding the
 * nesting depth and estimating what protobuf-c will allocate, before it unpacks anything. */

static int wire_varint(const uint8_t *p, size_t len, size_t *i, uint64_t *v)
{
    uint64_t r = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (*i >= len) return 0;
        uint8_t b = p[(*i)++];
        r |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = r;
            return 1;
        }
    }
    return 0;
}

/* Returns 0 if well-formed and within bounds; -1 malformed; -2 too deep. *cost accumulates
 * an estimate of the bytes protobuf-c will allocate for structure (not payload). */
static int wire_check(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t len,
                      int depth, uint64_t *cost)
{
    if (depth > WIRE_MAX_DEPTH) return -2;
    *cost += d->sizeof_message;
    size_t i = 0;
    while (i < len) {
        uint64_t key, v;
        if (!wire_varint(p, len, &i, &key)) return -1;
        uint64_t tag = key >> 3;
        *cost += 16;   /* per field instance: a pointer or an array slot, malloc overhead */
        switch (key & 7) {
        case 0:
            if (!wire_varint(p, len, &i, &v)) return -1;
            break;
        case 1:
            if (len - i < 8) return -1;
            i += 8;
            break;
        case 5:
            if (len - i < 4) return -1;
            i += 4;
            break;
        case 2: {
            if (!wire_varint(p, len, &i, &v)) return -1;
            if (v > len - i) return -1;
            const ProtobufCFieldDescriptor *f = NULL;
            if (tag > 0 && tag <= UINT32_MAX)
                f = protobuf_c_message_descriptor_get_field(d, (unsigned)tag);
            if (f != NULL && f->type == PROTOBUF_C_TYPE_MESSAGE) {
                int r = wire_check(f->descriptor, p + i, (size_t)v, depth + 1, cost);
                if (r != 0) return r;
            }
            i += (size_t)v;
            break;
        }
        default:
            return -1;   /* groups (3, 4) and invalid wire types: protobuf-c rejects them too */
        }
    }
    return 0;
}

/* Unpacks a ModelProto; NULL message → diag filled. */
static nnm_err model_unpack(Onnx__ModelProto **out, const void *buf, size_t len,
                            const char *file, nnm_diag *diag)
{
    *out = NULL;
    if (len == 0)
        return nnm_diag_set(diag, NNM_EFORMAT, "%s: empty file, not an ONNX model", file);
    uint64_t cost = 0;
    int r = wire_check(&onnx__model_proto__descriptor, buf, len, 0, &cost);
    if (r == -2)
        return nnm_diag_set(diag, NNM_EFORMAT,
                            "%s: not a usable ONNX model (messages nested deeper than %d levels)",
                            file, WIRE_MAX_DEPTH);
    if (r != 0)
        return nnm_diag_set(diag, NNM_EFORMAT,
                            "%s: not an ONNX model (protobuf parse failed)", file);
    /* A real model's structure is small next to its bytes; a file whose tiny empty
     * messages would unpack into gigabytes is hostile. */
    if (cost > (uint64_t)len * 64 + ((uint64_t)64 << 20))
        return nnm_diag_set(diag, NNM_EFORMAT,
                            "%s: not a usable ONNX model (its structure would need %llu MB to unpack)",
                            file, (unsigned long long)(cost >> 20));
    Onnx__ModelProto *m = onnx__model_proto__unpack(NULL, len, buf);
    if (m == NULL)
        return nnm_diag_set(diag, NNM_EFORMAT,
                            "%s: not an ONNX model (protobuf parse failed)", file);
    if (m->graph == NULL) {
        onnx__model_proto__free_unpacked(m, NULL);
        return nnm_diag_set(diag, NNM_EFORMAT, "%s: not an ONNX model (it has no graph)", file);
    }
    *out = m;
    return NNM_OK;
}

static nnm_err file_read(void **buf, size_t *len, const char *path, nnm_diag *diag)
{
    *buf = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return nnm_diag_set(diag, NNM_EIO, "%s: cannot read: %s", path, strerror(errno));
    nnm_err rc = NNM_EIO;
    char *data = NULL;
    size_t n = 0, cap = 0;
    if (fseek(f, 0, SEEK_END) == 0) {
        long sz = ftell(f);
        if (sz > 0 && (unsigned long)sz < SIZE_MAX / 2) cap = (size_t)sz + 1;   /* +1: EOF seen without growing */
        rewind(f);
    }
    for (;;) {
        if (data == NULL || n == cap) {
            size_t nc = data == NULL && cap ? cap : cap ? cap + cap / 2 + 4096 : 65536;
            char *q = realloc(data, nc);
            if (q == NULL) {
                rc = nnm_diag_set(diag, NNM_ENOMEM, "%s: out of memory reading the file", path);
                goto fail;
            }
            data = q;
            cap = nc;
        }
        size_t got = fread(data + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    if (ferror(f)) {
        rc = nnm_diag_set(diag, NNM_EIO, "%s: cannot read: %s", path, strerror(errno));
        goto fail;
    }
    fclose(f);
    *buf = data;
    *len = n;
    return NNM_OK;
fail:
    fclose(f);
    free(data);
    return rc;
}

/* ---------------------------------------------------------------------------------------
 * Tensors */

static const char *const onnx_type_names[] = {
    "UNDEFINED", "FLOAT", "UINT8", "INT8", "UINT16", "INT16", "INT32", "INT64", "STRING",
    "BOOL", "FLOAT16", "DOUBLE", "UINT32", "UINT64", "COMPLEX64", "COMPLEX128", "BFLOAT16",
};

static const char *onnx_type_name(int32_t t)
{
    if (t >= 0 && (size_t)t < sizeof onnx_type_names / sizeof onnx_type_names[0])
        return onnx_type_names[t];
    return "unknown";
}

static nnm_dtype dtype_from_onnx(int32_t t)
{
    switch (t) {
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT: return NNM_DT_F32;
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16: return NNM_DT_F16;
    case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE: return NNM_DT_F64;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT8: return NNM_DT_I8;
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT8: return NNM_DT_U8;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT32: return NNM_DT_I32;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT64: return NNM_DT_I64;
    case ONNX__TENSOR_PROTO__DATA_TYPE__BOOL: return NNM_DT_BOOL;
    default: return NNM_DT_UNDEFINED;
    }
}

#define SUPPORTED_DTYPES "float, float16, double, int8, uint8, int32, int64 and bool are"

static void bytes_to_le(void *data, size_t nbytes, size_t es)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    uint8_t *p = data;
    for (size_t i = 0; i + es <= nbytes; i += es)
        for (size_t a = 0, b = es - 1; a < b; a++, b--) {
            uint8_t t = p[i + a];
            p[i + a] = p[i + b];
            p[i + b] = t;
        }
#else
    (void)data; (void)nbytes; (void)es;
#endif
}

/* Moves the payload of tp into an owned tensor. what names the tensor in messages
 * ("initializer 'w'"). The message's payload fields are emptied (stolen or freed). */
static nnm_err tensor_take(nnm_tensor *out, Onnx__TensorProto *tp, const char *file,
                           const char *what, nnm_diag *diag)
{
    memset(out, 0, sizeof *out);
    if (tp->n_external_data > 0 ||
        (tp->has_data_location &&
         tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL))
        return nnm_diag_set(diag, NNM_EUNSUPPORTED,
                            "%s: %s keeps its data in an external file, which is not supported; "
                            "re-save the model with all tensors inside it", file, what);
    if (tp->segment != NULL)
        return nnm_diag_set(diag, NNM_EUNSUPPORTED,
                            "%s: %s is a segmented tensor, which is not supported", file, what);
    nnm_dtype dt = dtype_from_onnx(tp->data_type);
    if (dt == NNM_DT_UNDEFINED)
        return nnm_diag_set(diag, NNM_EUNSUPPORTED,
                            "%s: %s has element type %s, which is not supported (" SUPPORTED_DTYPES ")",
                            file, what, onnx_type_name(tp->data_type));
    if (tp->n_dims > NNM_MAX_DIMS)
        return nnm_diag_set(diag, NNM_EUNSUPPORTED,
                            "%s: %s has %zu dimensions; at most %d are supported",
                            file, what, tp->n_dims, NNM_MAX_DIMS);
    int64_t shape[NNM_MAX_DIMS];
    int ndim = (int)tp->n_dims;
    for (int i = 0; i < ndim; i++) {
        if (tp->dims[i] < 0)
            return nnm_diag_set(diag, NNM_EFORMAT, "%s: %s has a negative dimension (%lld)",
                                file, what, (long long)tp->dims[i]);
        shape[i] = tp->dims[i];
    }
    size_t es = nnm_dtype_size(dt);
    int64_t numel = nnm_shape_numel(shape, ndim, es);
    char sbuf[160];
    if (numel < 0 || (uint64_t)numel * es > (uint64_t)SIZE_MAX - CONST_SLACK)
        return nnm_diag_set(diag, NNM_EFORMAT, "%s: %s has dims %s, too large to be real",
                            file, what, nnm_shape_format(sbuf, sizeof sbuf, shape, ndim));
    size_t nbytes = (size_t)numel * es;
    void *data = NULL;

    if (tp->has_raw_data || tp->raw_data.len > 0) {
        if (tp->raw_data.len != nbytes)
            return nnm_diag_set(diag, NNM_EFORMAT,
                                "%s: %s holds %zu bytes of data but dims %s of %s need %zu",
                                file, what, tp->raw_data.len,
                                nnm_shape_format(sbuf, sizeof sbuf, shape, ndim),
                                nnm_dtype_name(dt), nbytes);
        if (nbytes > 0) {
            /* Steal protobuf-c's buffer (allocated with the default allocator, malloc), grow
             * it by the slack; realloc of a large block usually moves no bytes. */
            data = realloc(tp->raw_data.data, nbytes + CONST_SLACK);
            if (data == NULL)
                return nnm_diag_set(diag, NNM_ENOMEM, "%s: out of memory loading %s", file, what);
            tp->raw_data.data = NULL;
            tp->raw_data.len = 0;
            tp->has_raw_data = 0;
            memset((char *)data + nbytes, 0, CONST_SLACK);
            bytes_to_le(data, nbytes, es);
        }
    } else {
        size_t have;
        const char *field;
        switch (dt) {
        case NNM_DT_F32: have = tp->n_float_data; field = "float_data"; break;
        case NNM_DT_F64: have = tp->n_double_data; field = "double_data"; break;
        case NNM_DT_I64: have = tp->n_int64_data; field = "int64_data"; break;
        default: have = tp->n_int32_data; field = "int32_data"; break;
        }
        if (have != (uint64_t)numel)
            return nnm_diag_set(diag, NNM_EFORMAT,
                                "%s: %s holds %zu values in %s but dims %s need %lld",
                                file, what, have, field,
                                nnm_shape_format(sbuf, sizeof sbuf, shape, ndim),
                                (long long)numel);
        data = malloc(nbytes + CONST_SLACK);
        if (data == NULL)
            return nnm_diag_set(diag, NNM_ENOMEM, "%s: out of memory loading %s", file, what);
        memset((char *)data + nbytes, 0, CONST_SLACK);
        size_t n = (size_t)numel;
        switch (dt) {
        case NNM_DT_F32:
            if (n) memcpy(data, tp->float_data, nbytes);
            free(tp->float_data);
            tp->float_data = NULL;
            tp->n_float_data = 0;
            break;
        case NNM_DT_F64:
            if (n) memcpy(data, tp->double_data, nbytes);
            free(tp->double_data);
            tp->double_data = NULL;
            tp->n_double_data = 0;
            break;
        case NNM_DT_I64:
            if (n) memcpy(data, tp->int64_data, nbytes);
            free(tp->int64_data);
            tp->int64_data = NULL;
            tp->n_int64_data = 0;
            break;
        default:
            for (size_t i = 0; i < n; i++) {
                int32_t v = tp->int32_data[i];
                switch (dt) {
                case NNM_DT_I32: ((int32_t *)data)[i] = v; break;
                case NNM_DT_F16: ((uint16_t *)data)[i] = (uint16_t)(v & 0xffff); break;
                case NNM_DT_BOOL: ((uint8_t *)data)[i] = v != 0; break;
                case NNM_DT_I8: ((int8_t *)data)[i] = (int8_t)v; break;
                default: ((uint8_t *)data)[i] = (uint8_t)v; break;
                }
            }
            free(tp->int32_data);
            tp->int32_data = NULL;
            tp->n_int32_data = 0;
            break;
        }
    }
    if (data == NULL) {
        data = calloc(1, CONST_SLACK);   /* empty tensors still have a buffer */
        if (data == NULL)
            return nnm_diag_set(diag, NNM_ENOMEM, "%s: out of memory loading %s", file, what);
    }
    out->dtype = dt;
    out->ndim = ndim;
    for (int i = 0; i < ndim; i++) out->shape[i] = shape[i];
    out->data = data;
    out->nbytes = nbytes;
    out->owned = 1;
    return NNM_OK;
}

nnm_err ir__tensor_decode_onnx(nnm_tensor *out, const void *buf, size_t len, const char *name,
                               nnm_diag *diag)
{
    memset(out, 0, sizeof *out);
    if (name == NULL) name = "<tensor>";
    uint64_t cost = 0;
    if (wire_check(&onnx__tensor_proto__descriptor, buf, len, 0, &cost) != 0 ||
        cost > (uint64_t)len * 64 + ((uint64_t)64 << 20))
        return nnm_diag_set(diag, NNM_EFORMAT, "%s: not an ONNX tensor (protobuf parse failed)",
                            name);
    Onnx__TensorProto *tp = onnx__tensor_proto__unpack(NULL, len, buf);
    if (tp == NULL)
        return nnm_diag_set(diag, NNM_EFORMAT, "%s: not an ONNX tensor (protobuf parse failed)",
                            name);
    char what[300];
    snprintf(what, sizeof what, "tensor '%s'", tp->name ? tp->name : "");
    nnm_err rc = tensor_take(out, tp, name, what, diag);
    onnx__tensor_proto__free_unpacked(tp, NULL);
    return rc;
}

/* ---------------------------------------------------------------------------------------
 * Attributes */

static int attr_type(const Onnx__AttributeProto *at)
{
    if (at->has_type && at->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__UNDEFINED)
        return at->type;
    /* IR version < 3 files carry no type: guess from the field that is set. */
    if (at->n_ints) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
    if (at->n_floats) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS;
    if (at->n_strings) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS;
    if (at->t) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR;
    if (at->g) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH;
    if (at->has_s) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING;
    if (at->has_f) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT;
    if (at->has_i) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
    return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__UNDEFINED;
}

static const char *attr_name(const Onnx__AttributeProto *at)
{
    return at->name ? at->name : "";
}

static nnm_err bad_attr(import_ctx *c, const nnm_node *n, const Onnx__AttributeProto *at,
                        const char *why)
{
    return nnm_diag_set(c->diag, NNM_EFORMAT, "%s: node '%s' (%s): attribute '%s' %s",
                        c->file, n->name, n->onnx_op, attr_name(at), why);
}

static nnm_err unsup_attr(import_ctx *c, const nnm_node *n, const Onnx__AttributeProto *at,
                          const char *detail)
{
    return nnm_diag_set(c->diag, NNM_EUNSUPPORTED, "%s: node '%s' (%s): attribute '%s'%s%s",
                        c->file, n->name, n->onnx_op, attr_name(at),
                        detail ? " " : " is not supported", detail ? detail : "");
}

static nnm_err get_i(import_ctx *c, const nnm_node *n, const Onnx__AttributeProto *at,
                     int64_t *v)
{
    if (attr_type(at) != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT)
        return bad_attr(c, n, at, "must be an integer");
    *v = at->i;
    return NNM_OK;
}

static nnm_err get_int(import_ctx *c, const nnm_node *n, const Onnx__AttributeProto *at,
                       int *v)
{
    int64_t x = 0;
    nnm_err rc = get_i(c, n, at, &x);
    if (rc != NNM_OK) return rc;
    if (x < INT_MIN || x > INT_MAX) return bad_attr(c, n, at, "is out of range");
    *v = (int)x;
    return NNM_OK;
}

static nnm_err get_f(import_ctx *c, const nnm_node *n, const Onnx__AttributeProto *at,
                     float *v)
{
    int t = attr_type(at);
    if (t == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT) *v = at->f;
    else if (t == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT) *v = (float)at->i;
    else return bad_attr(c, n, at, "must be a number");
    return NNM_OK;
}

/* The string value, NUL-terminated into buf (truncated strings never match a known name). */
static nnm_err get_s(import_ctx *c, const nnm_node *n, const Onnx__AttributeProto *at,
                     char *buf, size_t len)
{
    if (attr_type(at) != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING)
        return bad_attr(c, n, at, "must be a string");
    size_t k = at->s.len < len - 1 ? at->s.len : len - 1;
    if (k) memcpy(buf, at->s.data, k);
    buf[k] = '\0';
    if (memchr(buf, '\0', k) != NULL) buf[0] = '?';
    return NNM_OK;
}

static nnm_err get_ints(import_ctx *c, const nnm_node *n, const Onnx__AttributeProto *at,
                        const int64_t **v, size_t *len)
{
    int t = attr_type(at);
    if (t != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS &&
        t != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__UNDEFINED)
        return bad_attr(c, n, at, "must be a list of integers");
    *v = at->ints;
    *len = at->n_ints;
    return NNM_OK;
}

/* Copies a list attribute into an owned int64 array of the node's attrs. */
static nnm_err take_list(import_ctx *c, nnm_node *n, const Onnx__AttributeProto *at,
                         int64_t **dst, int *dst_n)
{
    const int64_t *v = NULL;
    size_t len = 0;
    nnm_err rc = get_ints(c, n, at, &v, &len);
    if (rc != NNM_OK) return rc;
    if (len > 4096) return bad_attr(c, n, at, "has too many values");
    free(*dst);
    *dst = NULL;
    *dst_n = 0;
    if (len == 0) return NNM_OK;
    *dst = malloc(len * sizeof **dst);
    if (*dst == NULL) return nnm_diag_set(c->diag, NNM_ENOMEM, "%s: out of memory", c->file);
    memcpy(*dst, v, len * sizeof **dst);
    *dst_n = (int)len;
    return NNM_OK;
}

/* Spatial list (kernel_shape, strides, dilations): rank values; 1-D goes to index 1. */
static nnm_err get_spatial(import_ctx *c, const nnm_node *n, const Onnx__AttributeProto *at,
                           int rank, int *dst, int positive)
{
    const int64_t *v = NULL;
    size_t len = 0;
    nnm_err rc = get_ints(c, n, at, &v, &len);
    if (rc != NNM_OK) return rc;
    if ((int)len != rank) {
        char why[96];
        snprintf(why, sizeof why, "has %zu values, expected %d", len, rank);
        return bad_attr(c, n, at, why);
    }
    for (size_t i = 0; i < len; i++)
        if (v[i] > INT_MAX || v[i] < (positive ? 1 : 0))
            return bad_attr(c, n, at, positive ? "must hold positive values"
                                              : "must hold non-negative values");
    if (rank == 1) {
        dst[0] = positive ? 1 : 0;
        dst[1] = (int)v[0];
    } else {
        dst[0] = (int)v[0];
        dst[1] = (int)v[1];
    }
    return NNM_OK;
}

static const Onnx__AttributeProto *find_attr(const Onnx__NodeProto *np, const char *name)
{
    for (size_t i = 0; i < np->n_attribute; i++)
        if (np->attribute[i]->name && strcmp(np->attribute[i]->name, name) == 0)
            return np->attribute[i];
    return NULL;
}

/* Number of spatial dims of a conv/pool node: from its list attributes, else from the
 * weight or input if their ranks are known at import. 0 if it cannot be told yet. */
static int spatial_rank(const import_ctx *c, const Onnx__NodeProto *np, const nnm_node *n)
{
    const Onnx__AttributeProto *at;
    if ((at = find_attr(np, "kernel_shape")) != NULL) return (int)at->n_ints;
    if ((at = find_attr(np, "strides")) != NULL && at->n_ints) return (int)at->n_ints;
    if ((at = find_attr(np, "dilations")) != NULL && at->n_ints) return (int)at->n_ints;
    if ((at = find_attr(np, "pads")) != NULL && at->n_ints) return (int)at->n_ints / 2;
    if ((at = find_attr(np, "output_padding")) != NULL && at->n_ints) return (int)at->n_ints;
    for (int k = 1; k >= 0; k--) {
        if (n->n_in > k && n->in[k] >= 0) {
            const nnm_value *v = &c->g->values[n->in[k]];
            if (v->ndim >= 3) return v->ndim - 2;
        }
    }
    return 0;
}

static nnm_err resize_mode(import_ctx *c, nnm_node *n, const Onnx__AttributeProto *at)
{
    char s[64];
    nnm_err rc;
    const char *name = attr_name(at);
    if ((rc = get_s(c, n, at, s, sizeof s)) != NNM_OK) return rc;
    if (strcmp(name, "mode") == 0) {
        if (strcmp(s, "nearest") == 0) n->a.resize_mode = NNM_RESIZE_NEAREST;
        else if (strcmp(s, "linear") == 0 || strcmp(s, "bilinear") == 0)
            n->a.resize_mode = NNM_RESIZE_LINEAR;
        else goto unsup;
    } else if (strcmp(name, "coordinate_transformation_mode") == 0) {
        if (strcmp(s, "half_pixel") == 0) n->a.coord_mode = NNM_COORD_HALF_PIXEL;
        else if (strcmp(s, "asymmetric") == 0) n->a.coord_mode = NNM_COORD_ASYMMETRIC;
        else if (strcmp(s, "pytorch_half_pixel") == 0)
            n->a.coord_mode = NNM_COORD_PYTORCH_HALF_PIXEL;
        else if (strcmp(s, "align_corners") == 0) n->a.coord_mode = NNM_COORD_ALIGN_CORNERS;
        else if (strcmp(s, "tf_half_pixel_for_nn") == 0)
            n->a.coord_mode = NNM_COORD_TF_HALF_PIXEL_FOR_NN;
        else goto unsup;
    } else {   /* nearest_mode */
        if (strcmp(s, "round_prefer_floor") == 0)
            n->a.nearest_mode = NNM_NEAREST_ROUND_PREFER_FLOOR;
        else if (strcmp(s, "round_prefer_ceil") == 0)
            n->a.nearest_mode = NNM_NEAREST_ROUND_PREFER_CEIL;
        else if (strcmp(s, "floor") == 0) n->a.nearest_mode = NNM_NEAREST_FLOOR;
        else if (strcmp(s, "ceil") == 0) n->a.nearest_mode = NNM_NEAREST_CEIL;
        else goto unsup;
    }
    return NNM_OK;
unsup:
    return nnm_diag_set(c->diag, NNM_EUNSUPPORTED,
                        "%s: node '%s' (%s): %s '%s' is not supported", c->file, n->name,
                        n->onnx_op, name, s);
}

/* Reads one ONNX attribute into the raw attrs of node n (ir.h contract). Unknown attributes
 * are refused rather than ignored, so a model never silently computes something else. */
static nnm_err set_attr(import_ctx *c, const Onnx__NodeProto *np, nnm_node *n, int rank,
                        const Onnx__AttributeProto *at)
{
    const char *nm = attr_name(at);
    nnm_attrs *a = &n->a;
    nnm_err rc = NNM_OK;
    int64_t iv;
    int op = n->op;
    (void)np;
#define IS(s) (strcmp(nm, (s)) == 0)
    switch (op) {
    case NNM_OP_CONV: case NNM_OP_CONV_TRANSPOSE: case NNM_OP_MAXPOOL: case NNM_OP_AVGPOOL: {
        int is_conv = op == NNM_OP_CONV || op == NNM_OP_CONV_TRANSPOSE;
        if (IS("kernel_shape")) return get_spatial(c, n, at, rank, a->kernel, 1);
        if (IS("strides")) return get_spatial(c, n, at, rank, a->strides, 1);
        if (IS("dilations") && op != NNM_OP_AVGPOOL)
            return get_spatial(c, n, at, rank, a->dilations, 1);
        if (IS("pads")) {
            const int64_t *v;
            size_t len;
            if ((rc = get_ints(c, n, at, &v, &len)) != NNM_OK) return rc;
            if ((int)len != 2 * rank) return bad_attr(c, n, at, "must hold 2 values per spatial dim");
            for (size_t i = 0; i < len; i++)
                if (v[i] < 0 || v[i] > INT_MAX) return bad_attr(c, n, at, "must hold non-negative values");
            if (rank == 1) {
                a->pads[0] = 0; a->pads[1] = (int)v[0]; a->pads[2] = 0; a->pads[3] = (int)v[1];
            } else {
                for (int i = 0; i < 4; i++) a->pads[i] = (int)v[i];
            }
            return NNM_OK;
        }
        if (IS("auto_pad")) {
            char s[32];
            if ((rc = get_s(c, n, at, s, sizeof s)) != NNM_OK) return rc;
            if (strcmp(s, "NOTSET") == 0 || s[0] == '\0') a->auto_pad = NNM_AUTOPAD_NOTSET;
            else if (strcmp(s, "SAME_UPPER") == 0) a->auto_pad = NNM_AUTOPAD_SAME_UPPER;
            else if (strcmp(s, "SAME_LOWER") == 0) a->auto_pad = NNM_AUTOPAD_SAME_LOWER;
            else if (strcmp(s, "VALID") == 0) a->auto_pad = NNM_AUTOPAD_VALID;
            else return bad_attr(c, n, at, "must be NOTSET, SAME_UPPER, SAME_LOWER or VALID");
            return NNM_OK;
        }
        if (is_conv && IS("group")) {
            if ((rc = get_int(c, n, at, &a->group)) != NNM_OK) return rc;
            if (a->group < 1) return bad_attr(c, n, at, "must be positive");
            return NNM_OK;
        }
        if (op == NNM_OP_CONV_TRANSPOSE && IS("output_padding"))
            return get_spatial(c, n, at, rank, a->out_pad, 0);
        if (op == NNM_OP_CONV_TRANSPOSE && IS("output_shape")) {
            const int64_t *v;
            size_t len;
            if ((rc = get_ints(c, n, at, &v, &len)) != NNM_OK) return rc;
            if ((int)len < rank) return bad_attr(c, n, at, "has too few values");
            v += len - (size_t)rank;   /* some exporters include N and C */
            for (int i = 0; i < rank; i++)
                if (v[i] < 1 || v[i] > INT_MAX) return bad_attr(c, n, at, "must hold positive values");
            a->out_shape_attr[0] = rank == 1 ? 1 : v[0];
            a->out_shape_attr[1] = v[rank - 1];
            return NNM_OK;
        }
        if (!is_conv && IS("ceil_mode")) return get_int(c, n, at, &a->ceil_mode);
        if (op == NNM_OP_AVGPOOL && IS("count_include_pad"))
            return get_int(c, n, at, &a->count_include_pad);
        if (op == NNM_OP_MAXPOOL && IS("storage_order")) {
            if ((rc = get_i(c, n, at, &iv)) != NNM_OK) return rc;
            return iv == 0 ? NNM_OK : unsup_attr(c, n, at, "= 1 (column-major indices) is not supported");
        }
        break;
    }
    case NNM_OP_GEMM:
        if (IS("alpha")) return get_f(c, n, at, &a->alpha);
        if (IS("beta")) return get_f(c, n, at, &a->beta);
        if (IS("transA")) return get_int(c, n, at, &a->trans_a);
        if (IS("transB")) return get_int(c, n, at, &a->trans_b);
        break;
    case NNM_OP_LEAKY_RELU:
        if (IS("alpha")) return get_f(c, n, at, &a->alpha);
        break;
    case NNM_OP_HARD_SIGMOID:
        if (IS("alpha")) return get_f(c, n, at, &a->alpha);
        if (IS("beta")) return get_f(c, n, at, &a->beta);
        break;
    case NNM_OP_CLIP:
        if (c->opset < 11 && IS("min")) return get_f(c, n, at, &a->act_min);
        if (c->opset < 11 && IS("max")) return get_f(c, n, at, &a->act_max);
        break;
    case NNM_OP_SOFTMAX:
    case NNM_OP_CONCAT: case NNM_OP_GATHER: case NNM_OP_FLATTEN:
        if (IS("axis")) return get_int(c, n, at, &a->axis);
        break;
    case NNM_OP_SPLIT:
        if (IS("axis")) return get_int(c, n, at, &a->axis);
        if (c->opset < 13 && IS("split")) return take_list(c, n, at, &a->ints, &a->n_ints);
        break;
    case NNM_OP_BATCHNORM:
        if (IS("epsilon")) return get_f(c, n, at, &a->epsilon);
        if (IS("momentum")) return NNM_OK;   /* training only */
        if (IS("spatial")) {
            if ((rc = get_i(c, n, at, &iv)) != NNM_OK) return rc;
            return iv == 1 ? NNM_OK : unsup_attr(c, n, at, "= 0 (per-activation statistics) is not supported");
        }
        if (IS("training_mode")) {
            if ((rc = get_i(c, n, at, &iv)) != NNM_OK) return rc;
            return iv == 0 ? NNM_OK : unsup_attr(c, n, at, "= 1 (training) is not supported");
        }
        break;
    case NNM_OP_TRANSPOSE:
        if (IS("perm")) return take_list(c, n, at, &a->ints, &a->n_ints);
        break;
    case NNM_OP_RESHAPE:
        if (c->opset < 5 && IS("shape")) return take_list(c, n, at, &a->ints, &a->n_ints);
        if (IS("allowzero")) return get_int(c, n, at, &a->allowzero);
        break;
    case NNM_OP_SQUEEZE: case NNM_OP_UNSQUEEZE:
        if (c->opset < 13 && IS("axes")) return take_list(c, n, at, &a->ints, &a->n_ints);
        break;
    case NNM_OP_SLICE:
        if (c->opset < 10) {
            if (IS("starts")) return take_list(c, n, at, &a->ints3, &a->n_ints3);
            if (IS("ends")) return take_list(c, n, at, &a->ints2, &a->n_ints2);
            if (IS("axes")) return take_list(c, n, at, &a->ints, &a->n_ints);
        }
        break;
    case NNM_OP_PAD:
        if (c->opset < 11 && IS("pads")) return take_list(c, n, at, &a->ints, &a->n_ints);
        if (c->opset < 11 && IS("value")) return get_f(c, n, at, &a->pad_value);
        if (IS("mode")) {
            char s[32];
            if ((rc = get_s(c, n, at, s, sizeof s)) != NNM_OK) return rc;
            if (strcmp(s, "constant") == 0) a->pad_mode = NNM_PAD_CONSTANT;
            else if (strcmp(s, "reflect") == 0) a->pad_mode = NNM_PAD_REFLECT;
            else if (strcmp(s, "edge") == 0) a->pad_mode = NNM_PAD_EDGE;
            else return nnm_diag_set(c->diag, NNM_EUNSUPPORTED,
                                     "%s: node '%s' (%s): mode '%s' is not supported",
                                     c->file, n->name, n->onnx_op, s);
            return NNM_OK;
        }
        break;
    case NNM_OP_REDUCE_MEAN: case NNM_OP_REDUCE_MAX:
        if (IS("axes")) return take_list(c, n, at, &a->ints, &a->n_ints);
        if (IS("keepdims")) return get_int(c, n, at, &a->keepdims);
        break;
    case NNM_OP_CAST:
        if (IS("to")) {
            if ((rc = get_i(c, n, at, &iv)) != NNM_OK) return rc;
            a->to = iv >= INT32_MIN && iv <= INT32_MAX ? dtype_from_onnx((int32_t)iv)
                                                      : NNM_DT_UNDEFINED;
            if (a->to == NNM_DT_UNDEFINED)
                return nnm_diag_set(c->diag, NNM_EUNSUPPORTED,
                                    "%s: node '%s' (%s): cast to %s is not supported",
                                    c->file, n->name, n->onnx_op,
                                    onnx_type_name(iv >= 0 && iv <= INT32_MAX ? (int32_t)iv : -1));
            return NNM_OK;
        }
        break;
    case NNM_OP_RESIZE:
        if (IS("mode") || IS("coordinate_transformation_mode") || IS("nearest_mode"))
            return resize_mode(c, n, at);
        if (IS("cubic_coeff_a")) return get_f(c, n, at, &a->cubic_coeff_a);
        if (IS("extrapolation_value")) return NNM_OK;   /* tf_crop_and_resize only */
        if (IS("exclude_outside")) {
            if ((rc = get_i(c, n, at, &iv)) != NNM_OK) return rc;
            return iv == 0 ? NNM_OK : unsup_attr(c, n, at, "= 1 is not supported");
        }
        break;
    case NNM_OP_CONSTANT_OF_SHAPE:
        if (IS("value")) {
            if (attr_type(at) != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR || at->t == NULL)
                return bad_attr(c, n, at, "must be a tensor");
            char what[300];
            snprintf(what, sizeof what, "node '%s' (%s) attribute 'value'", n->name, n->onnx_op);
            nnm_tensor t;
            if ((rc = tensor_take(&t, at->t, c->file, what, c->diag)) != NNM_OK) return rc;
            if (nnm_shape_numel(t.shape, t.ndim, 1) != 1) {
                nnm_tensor_cleanup(&t);
                return bad_attr(c, n, at, "must hold exactly one value");
            }
            float v = 0;
            switch (t.dtype) {
            case NNM_DT_F32: v = *(float *)t.data; break;
            case NNM_DT_F64: v = (float)*(double *)t.data; break;
            case NNM_DT_I32: v = (float)*(int32_t *)t.data; break;
            case NNM_DT_I64: v = (float)*(int64_t *)t.data; break;
            case NNM_DT_I8: v = *(int8_t *)t.data; break;
            case NNM_DT_U8: case NNM_DT_BOOL: v = *(uint8_t *)t.data; break;
            case NNM_DT_F16: {
                uint16_t h = *(uint16_t *)t.data;
                int e = (h >> 10) & 31, m = h & 1023;
                float mag = e == 0 ? ldexpf((float)m, -24)
                          : e == 31 ? (m ? NAN : INFINITY)
                          : ldexpf((float)(m | 1024), e - 25);
                v = (h & 0x8000) ? -mag : mag;
                break;
            }
            default: break;
            }
            a->to = t.dtype;
            a->pad_value = v;
            nnm_tensor_cleanup(&t);
            return NNM_OK;
        }
        break;
    case NNM_OP_DROPOUT:
        if (IS("ratio") || IS("seed") || IS("is_test")) return NNM_OK;
        break;
    case NNM_OP_SHAPE:
        if (IS("start") || IS("end")) return NNM_OK;   /* rewritten into a Slice */
        break;
    default:
        break;
    }
#undef IS
    return unsup_attr(c, n, at, NULL);
}

/* ---------------------------------------------------------------------------------------
 * Graph construction */

/* Id of the value named name, creating a not-yet-produced one if needed. -1 on ENOMEM. */
static int value_ref(nnm_graph *g, const char *name)
{
    int v = ir__value_find(g, name);
    if (v >= 0) return v;
    return ir__value_add(g, name, NNM_DT_UNDEFINED);
}

/* A value name that does not exist yet, built from base and suffix. */
static int value_fresh(nnm_graph *g, const char *base, const char *suffix)
{
    char buf[512];
    snprintf(buf, sizeof buf, "%s%s", base, suffix);
    for (int k = 1; ir__value_find(g, buf) >= 0 && k < 1000000; k++)
        snprintf(buf, sizeof buf, "%s%s%d", base, suffix, k);
    return ir__value_add(g, buf, NNM_DT_UNDEFINED);
}

static int value_defined(const nnm_graph *g, int v)
{
    const nnm_value *val = &g->values[v];
    return val->producer >= 0 || val->data != NULL || val->is_input;
}

static nnm_err oom(import_ctx *c)
{
    return nnm_diag_set(c->diag, NNM_ENOMEM, "%s: out of memory", c->file);
}

static int const_i64(nnm_graph *g, const char *base, int64_t v)
{
    nnm_tensor t;
    int64_t shape[1] = { 1 };
    if (nnm_tensor_init(&t, NNM_DT_I64, 1, shape) != NNM_OK) return -1;
    *(int64_t *)t.data = v;
    char buf[512];
    snprintf(buf, sizeof buf, "%s", base);
    for (int k = 1; ir__value_find(g, buf) >= 0 && k < 1000000; k++)
        snprintf(buf, sizeof buf, "%s%d", base, k);
    int id = ir__const_add(g, buf, &t);
    if (id < 0) nnm_tensor_cleanup(&t);
    return id;
}

/* A Constant node becomes a constant value (no node). */
static nnm_err import_constant(import_ctx *c, Onnx__NodeProto *np, const char *name)
{
    if (np->n_output != 1 || np->output[0] == NULL || np->output[0][0] == '\0')
        return nnm_diag_set(c->diag, NNM_EFORMAT, "%s: node '%s' (Constant) must have one output",
                            c->file, name);
    const char *out = np->output[0];
    int prev = ir__value_find(c->g, out);
    if (prev >= 0 && value_defined(c->g, prev))
        return nnm_diag_set(c->diag, NNM_EFORMAT,
                            "%s: node '%s' (Constant): value '%s' is produced twice",
                            c->file, name, out);
    if (np->n_attribute != 1)
        return nnm_diag_set(c->diag, NNM_EFORMAT,
                            "%s: node '%s' (Constant) must have exactly one value attribute",
                            c->file, name);
    Onnx__AttributeProto *at = np->attribute[0];
    const char *an = attr_name(at);
    int type = attr_type(at);
    nnm_tensor t;
    memset(&t, 0, sizeof t);
    nnm_err rc;
    char what[300];
    snprintf(what, sizeof what, "node '%s' (Constant)", name);
    if (strcmp(an, "value") == 0 && type == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR && at->t) {
        if ((rc = tensor_take(&t, at->t, c->file, what, c->diag)) != NNM_OK) return rc;
    } else if (strcmp(an, "value_float") == 0 || strcmp(an, "value_int") == 0) {
        int is_f = an[6] == 'f';
        if ((rc = nnm_tensor_init(&t, is_f ? NNM_DT_F32 : NNM_DT_I64, 0, NULL)) != NNM_OK)
            return oom(c);
        if (is_f) *(float *)t.data = at->f;
        else *(int64_t *)t.data = at->i;
    } else if (strcmp(an, "value_floats") == 0 || strcmp(an, "value_ints") == 0) {
        int is_f = an[6] == 'f';
        int64_t len = is_f ? (int64_t)at->n_floats : (int64_t)at->n_ints;
        if ((rc = nnm_tensor_init(&t, is_f ? NNM_DT_F32 : NNM_DT_I64, 1, &len)) != NNM_OK)
            return oom(c);
        if (len) memcpy(t.data, is_f ? (void *)at->floats : (void *)at->ints, t.nbytes);
    } else {
        return nnm_diag_set(c->diag, NNM_EUNSUPPORTED,
                            "%s: node '%s' (Constant): attribute '%s' is not supported",
                            c->file, name, an);
    }
    if (prev >= 0) {
        /* Referenced before its definition (file not in topological order): fill in place. */
        nnm_value *v = &c->g->values[prev];
        v->dtype = t.dtype;
        v->ndim = t.ndim;
        memcpy(v->shape, t.shape, sizeof v->shape);
        v->data = t.data;
        v->nbytes = t.nbytes;
        return NNM_OK;
    }
    if (ir__const_add(c->g, out, &t) < 0) {
        nnm_tensor_cleanup(&t);
        return oom(c);
    }
    return NNM_OK;
}

/* Adds a node with all attribute defaults of its op for this opset preset. */
static int node_add(import_ctx *c, nnm_op op, const char *name, const char *onnx_op,
                    const int *in, int n_in, const int *out, int n_out)
{
    int k = ir__node_add(c->g, op, name, onnx_op, in, n_in, out, n_out);
    if (k < 0) return -1;
    nnm_attrs *a = &c->g->nodes[k].a;
    a->act_min = -INFINITY;
    a->act_max = INFINITY;
    a->keepdims = 1;
    a->cubic_coeff_a = -0.75f;
    a->to = NNM_DT_F32;
    a->coord_mode = NNM_COORD_HALF_PIXEL;
    a->nearest_mode = NNM_NEAREST_ROUND_PREFER_FLOOR;
    switch (op) {
    case NNM_OP_LEAKY_RELU: a->alpha = 0.01f; break;
    case NNM_OP_HARD_SIGMOID: a->alpha = 0.2f; a->beta = 0.5f; break;
    case NNM_OP_SOFTMAX:
        a->axis = c->opset < 13 ? 1 : -1;
        a->legacy_2d = c->opset < 13;
        break;
    case NNM_OP_FLATTEN: a->axis = 1; break;
    case NNM_OP_BATCHNORM: a->epsilon = 1e-5f; break;
    default: break;
    }
    return k;
}

/* Variadic Max/Min become a chain of binary nodes (one input: Identity). */
static nnm_err import_variadic(import_ctx *c, nnm_op op, const char *name, const char *onnx_op,
                               const int *in, int n_in, int out)
{
    if (n_in < 1)
        return nnm_diag_set(c->diag, NNM_EFORMAT, "%s: node '%s' (%s) has no inputs",
                            c->file, name, onnx_op);
    for (int i = 0; i < n_in; i++)
        if (in[i] < 0)
            return nnm_diag_set(c->diag, NNM_EFORMAT, "%s: node '%s' (%s) has an empty input",
                                c->file, name, onnx_op);
    if (n_in == 1)
        return node_add(c, NNM_OP_IDENTITY, name, onnx_op, in, 1, &out, 1) < 0 ? oom(c) : NNM_OK;
    int acc = in[0];
    char nbuf[512];
    for (int i = 1; i < n_in; i++) {
        int pair[2] = { acc, in[i] };
        int dst = out;
        if (i < n_in - 1) {
            dst = value_fresh(c->g, c->g->values[out].name, "__part");
            if (dst < 0) return oom(c);
            snprintf(nbuf, sizeof nbuf, "%s__part%d", name, i);
        } else {
            snprintf(nbuf, sizeof nbuf, "%s", name);
        }
        if (node_add(c, op, nbuf, onnx_op, pair, 2, &dst, 1) < 0) return oom(c);
        acc = dst;
    }
    return NNM_OK;
}

/* Shape with start/end (opset 15): Shape into a fresh value, then a Slice of it. */
static nnm_err import_shape(import_ctx *c, const Onnx__NodeProto *np, const char *name,
                            const int *in, int n_in, int out)
{
    const Onnx__AttributeProto *as = find_attr(np, "start"), *ae = find_attr(np, "end");
    int64_t start = 0, end = INT64_MAX;
    nnm_err rc;
    int k = node_add(c, NNM_OP_SHAPE, name, "Shape", in, n_in, &out, 1);
    if (k < 0) return oom(c);
    for (size_t i = 0; i < np->n_attribute; i++)
        if ((rc = set_attr(c, np, &c->g->nodes[k], 0, np->attribute[i])) != NNM_OK) return rc;
    if (as && (rc = get_i(c, &c->g->nodes[k], as, &start)) != NNM_OK) return rc;
    if (ae && (rc = get_i(c, &c->g->nodes[k], ae, &end)) != NNM_OK) return rc;
    if (as == NULL && ae == NULL) return NNM_OK;
    int full = value_fresh(c->g, c->g->values[out].name, "__full");
    if (full < 0) return oom(c);
    c->g->nodes[k].out[0] = full;
    c->g->values[full].producer = k;
    c->g->values[out].producer = -1;
    char base[512];
    snprintf(base, sizeof base, "%s__start", name);
    int vs = const_i64(c->g, base, start);
    snprintf(base, sizeof base, "%s__end", name);
    int ve = const_i64(c->g, base, end);
    snprintf(base, sizeof base, "%s__axis", name);
    int va = const_i64(c->g, base, 0);
    if (vs < 0 || ve < 0 || va < 0) return oom(c);
    int sin[4] = { full, vs, ve, va };
    snprintf(base, sizeof base, "%s__slice", name);
    if (node_add(c, NNM_OP_SLICE, base, "Shape", sin, 4, &out, 1) < 0) return oom(c);
    return NNM_OK;
}

static int op_supported(const Onnx__NodeProto *np)
{
    if (np->domain && np->domain[0] && strcmp(np->domain, "ai.onnx") != 0) return 0;
    return np->op_type && ir__op_from_onnx(np->op_type) != NNM_OP_INVALID;
}

static void node_display_name(char *buf, size_t len, const Onnx__NodeProto *np, size_t idx)
{
    if (np->name && np->name[0]) snprintf(buf, len, "%s", np->name);
    else snprintf(buf, len, "op_%zu", idx);
}

static void op_display(char *buf, size_t len, const Onnx__NodeProto *np)
{
    const char *op = np->op_type ? np->op_type : "";
    if (np->domain && np->domain[0] && strcmp(np->domain, "ai.onnx") != 0)
        snprintf(buf, len, "%s.%s", np->domain, op);
    else
        snprintf(buf, len, "%s", op);
}

static nnm_err import_node(import_ctx *c, Onnx__NodeProto *np, size_t idx)
{
    char name[256];
    node_display_name(name, sizeof name, np, idx);
    const char *op_type = np->op_type;
    if (strcmp(op_type, "Constant") == 0) return import_constant(c, np, name);
    nnm_op op = ir__op_from_onnx(op_type);
    nnm_err rc = NNM_ENOMEM;
    if (np->n_input > 1024 || np->n_output > 1024)
        return nnm_diag_set(c->diag, NNM_EUNSUPPORTED, "%s: node '%s' (%s) has too many inputs or outputs",
                            c->file, name, op_type);
    int n_in = (int)np->n_input, n_out = (int)np->n_output;
    int *in = malloc(sizeof(int) * (size_t)(n_in + 1));
    int *out = malloc(sizeof(int) * (size_t)(n_out + 1));
    if (in == NULL || out == NULL) goto fail_oom;
    for (int i = 0; i < n_in; i++) {
        const char *s = np->input[i];
        in[i] = (s == NULL || s[0] == '\0') ? -1 : value_ref(c->g, s);
        if (s && s[0] && in[i] < 0) goto fail_oom;
    }
    for (int i = 0; i < n_out; i++) {
        const char *s = np->output[i];
        if (s == NULL || s[0] == '\0') {
            out[i] = -1;
            continue;
        }
        int v = ir__value_find(c->g, s);
        if (v >= 0 && value_defined(c->g, v)) {
            rc = nnm_diag_set(c->diag, NNM_EFORMAT,
                              "%s: node '%s' (%s): value '%s' is produced twice",
                              c->file, name, op_type, s);
            goto fail;
        }
        for (int j = 0; j < i; j++)
            if (out[j] == v && v >= 0) {
                rc = nnm_diag_set(c->diag, NNM_EFORMAT,
                                  "%s: node '%s' (%s): output '%s' is listed twice",
                                  c->file, name, op_type, s);
                goto fail;
            }
        if (v < 0 && (v = ir__value_add(c->g, s, NNM_DT_UNDEFINED)) < 0) goto fail_oom;
        out[i] = v;
    }
    /* Shape checks of the output list that the IR relies on. */
    int main_out = n_out > 0 ? out[0] : -1;
    if (main_out < 0) {
        rc = nnm_diag_set(c->diag, NNM_EFORMAT, "%s: node '%s' (%s) has no output",
                          c->file, name, op_type);
        goto fail;
    }
    if (op == NNM_OP_MAXPOOL && n_out > 1 && out[1] >= 0) {
        rc = nnm_diag_set(c->diag, NNM_EUNSUPPORTED,
                          "%s: node '%s' (MaxPool): the Indices output is not supported",
                          c->file, name);
        goto fail;
    }
    if (op == NNM_OP_BATCHNORM && n_out > 1) {
        for (int i = 1; i < n_out; i++)
            if (out[i] >= 0) {
                rc = nnm_diag_set(c->diag, NNM_EUNSUPPORTED,
                                  "%s: node '%s' (BatchNormalization): training outputs (running "
                                  "mean/var) are not supported", c->file, name);
                goto fail;
            }
        n_out = 1;
    }
    if (op != NNM_OP_SPLIT && op != NNM_OP_DROPOUT && op != NNM_OP_MAXPOOL && n_out > 1) {
        rc = nnm_diag_set(c->diag, NNM_EFORMAT, "%s: node '%s' (%s) has %d outputs, expected 1",
                          c->file, name, op_type, n_out);
        goto fail;
    }
    if (op == NNM_OP_MAXPOOL) n_out = 1;

    if (op == NNM_OP_MAX || op == NNM_OP_MIN) {
        if (np->n_attribute > 0) {
            rc = nnm_diag_set(c->diag, NNM_EUNSUPPORTED,
                              "%s: node '%s' (%s): attribute '%s' is not supported",
                              c->file, name, op_type, attr_name(np->attribute[0]));
            goto fail;
        }
        rc = import_variadic(c, op, name, op_type, in, n_in, main_out);
        goto done;
    }
    if (op == NNM_OP_SHAPE) {
        rc = import_shape(c, np, name, in, n_in, main_out);
        goto done;
    }
    if (op == NNM_OP_RESIZE && c->opset < 11) {
        /* Resize-10: (X, scales) -> the opset-11 order (X, roi, scales); its semantics are
         * those of Upsample: asymmetric coordinates, nearest rounds down. */
        if (n_in != 2) {
            rc = nnm_diag_set(c->diag, NNM_EFORMAT,
                              "%s: node '%s' (Resize) needs 2 inputs at opset %d", c->file,
                              name, c->opset);
            goto fail;
        }
        in[2] = in[1];
        in[1] = -1;
        n_in = 3;
    }
    int k = node_add(c, op, name, op_type, in, n_in, out, n_out);
    if (k < 0) goto fail_oom;
    if (op == NNM_OP_RESIZE && c->opset < 11) {
        c->g->nodes[k].a.coord_mode = NNM_COORD_ASYMMETRIC;
        c->g->nodes[k].a.nearest_mode = NNM_NEAREST_FLOOR;
    }
    if (op == NNM_OP_DROPOUT && n_in >= 3 && in[2] >= 0 && ir__is_const(c->g, in[2])) {
        /* Dropout-12+ training_mode: a random mask cannot be reproduced; refuse it. */
        const nnm_value *tm = &c->g->values[in[2]];
        for (size_t b = 0; b < tm->nbytes; b++)
            if (((const uint8_t *)tm->data)[b] != 0) {
                rc = nnm_diag_set(c->diag, NNM_EUNSUPPORTED,
                                  "%s: node '%s' (Dropout): training_mode = true (random "
                                  "masks) is not supported", c->file, name);
                goto fail;
            }
    }
    int rank = 2;
    if (op == NNM_OP_CONV || op == NNM_OP_CONV_TRANSPOSE || op == NNM_OP_MAXPOOL ||
        op == NNM_OP_AVGPOOL) {
        rank = spatial_rank(c, np, &c->g->nodes[k]);
        if (rank > 2) {
            rc = nnm_diag_set(c->diag, NNM_EUNSUPPORTED,
                              "%s: node '%s' (%s): %d-D %s is not supported (1-D and 2-D are)",
                              c->file, name, op_type, rank,
                              op == NNM_OP_MAXPOOL || op == NNM_OP_AVGPOOL ? "pooling" : "convolution");
            goto fail;
        }
        if (rank == 1) c->g->nodes[k].a.spatial_1d = 1;
        if (rank == 0) rank = 2;
    }
    for (size_t i = 0; i < np->n_attribute; i++)
        if ((rc = set_attr(c, np, &c->g->nodes[k], rank, np->attribute[i])) != NNM_OK) goto fail;
    if (op == NNM_OP_CAST && find_attr(np, "to") == NULL) {
        rc = nnm_diag_set(c->diag, NNM_EFORMAT, "%s: node '%s' (Cast) has no 'to' attribute",
                          c->file, name);
        goto fail;
    }
    rc = NNM_OK;
done:
    free(in);
    free(out);
    return rc;
fail_oom:
    rc = oom(c);
fail:
    free(in);
    free(out);
    return rc;
}

static nnm_err import_input(import_ctx *c, const Onnx__ValueInfoProto *vi)
{
    const char *name = vi->name ? vi->name : "";
    if (name[0] == '\0')
        return nnm_diag_set(c->diag, NNM_EFORMAT, "%s: a graph input has no name", c->file);
    int id = ir__value_find(c->g, name);
    if (id >= 0 && c->g->values[id].data != NULL) return NNM_OK;   /* an initializer */
    if (id >= 0)
        return nnm_diag_set(c->diag, NNM_EFORMAT, "%s: graph input '%s' is listed twice",
                            c->file, name);
    const Onnx__TypeProto *tp = vi->type;
    if (tp == NULL || tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE ||
        tp->tensor_type == NULL)
        return nnm_diag_set(c->diag, NNM_EUNSUPPORTED,
                            "%s: graph input '%s' is not a tensor (sequences, maps and optionals "
                            "are not supported)", c->file, name);
    const Onnx__TypeProto__Tensor *tt = tp->tensor_type;
    nnm_dtype dt = dtype_from_onnx(tt->elem_type);
    if (dt == NNM_DT_UNDEFINED)
        return nnm_diag_set(c->diag, NNM_EUNSUPPORTED,
                            "%s: graph input '%s' has element type %s, which is not supported ("
                            SUPPORTED_DTYPES ")", c->file, name, onnx_type_name(tt->elem_type));
    if (tt->shape == NULL)
        return nnm_diag_set(c->diag, NNM_EUNSUPPORTED,
                            "%s: graph input '%s' has no shape; nnmesh needs its rank",
                            c->file, name);
    if (tt->shape->n_dim > NNM_MAX_DIMS)
        return nnm_diag_set(c->diag, NNM_EUNSUPPORTED,
                            "%s: graph input '%s' has %zu dimensions; at most %d are supported",
                            c->file, name, tt->shape->n_dim, NNM_MAX_DIMS);
    int64_t shape[NNM_MAX_DIMS];
    int ndim = (int)tt->shape->n_dim;
    for (int i = 0; i < ndim; i++) {
        const Onnx__TensorShapeProto__Dimension *d = tt->shape->dim[i];
        if (d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE) {
            if (d->dim_value < 0)
                return nnm_diag_set(c->diag, NNM_EFORMAT,
                                    "%s: graph input '%s' has a negative dimension", c->file, name);
            shape[i] = d->dim_value;
        } else {
            shape[i] = c->batch;   /* symbolic or unknown */
        }
    }
    if (nnm_shape_numel(shape, ndim, nnm_dtype_size(dt)) < 0)
        return nnm_diag_set(c->diag, NNM_EFORMAT, "%s: graph input '%s' is too large",
                            c->file, name);
    int *ins = realloc(c->g->inputs, sizeof(int) * (size_t)(c->g->n_inputs + 1));
    if (ins == NULL) return oom(c);
    c->g->inputs = ins;
    id = ir__value_add(c->g, name, dt);
    if (id < 0) return oom(c);
    nnm_value *v = &c->g->values[id];
    v->ndim = ndim;
    for (int i = 0; i < ndim; i++) v->shape[i] = shape[i];
    v->is_input = 1;
    c->g->inputs[c->g->n_inputs++] = id;
    return NNM_OK;
}

static nnm_err model_opset(int *opset, const Onnx__ModelProto *m, const char *file,
                           nnm_diag *diag)
{
    int found = 0;
    int64_t ver = 0;
    for (size_t i = 0; i < m->n_opset_import; i++) {
        const Onnx__OperatorSetIdProto *o = m->opset_import[i];
        if (o->domain == NULL || o->domain[0] == '\0' || strcmp(o->domain, "ai.onnx") == 0) {
            found = 1;
            ver = o->version;
        }
    }
    if (!found)
        return nnm_diag_set(diag, NNM_EFORMAT,
                            "%s: the model imports no opset of the default ONNX domain", file);
    if (ver < OPSET_MIN || ver > OPSET_MAX)
        return nnm_diag_set(diag, NNM_EUNSUPPORTED,
                            "%s: opset %lld of the default domain is not supported (nnmesh reads "
                            "opsets %d to %d; convert with onnx.version_converter)",
                            file, (long long)ver, OPSET_MIN, OPSET_MAX);
    *opset = (int)ver;
    return NNM_OK;
}

/* Builds g from the message; consumes the message's tensor payloads. */
static nnm_err import_graph(import_ctx *c, Onnx__ModelProto *m)
{
    Onnx__GraphProto *gp = m->graph;
    nnm_err rc;
    if ((rc = model_opset(&c->opset, m, c->file, c->diag)) != NNM_OK) return rc;
    c->g->opset = c->opset;

    /* Unsupported ops first: name the first one and count the rest. */
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < gp->n_node; i++) {
        if (gp->node[i]->op_type == NULL || gp->node[i]->op_type[0] == '\0')
            return nnm_diag_set(c->diag, NNM_EFORMAT, "%s: node %zu has no op type", c->file, i);
        if (!op_supported(gp->node[i]) && bad++ == 0) first = i;
    }
    if (bad > 0) {
        char name[256], op[256];
        node_display_name(name, sizeof name, gp->node[first], first);
        op_display(op, sizeof op, gp->node[first]);
        if (bad == 1)
            return nnm_diag_set(c->diag, NNM_EUNSUPPORTED,
                                "%s: node '%s' (%s): operator not supported", c->file, name, op);
        return nnm_diag_set(c->diag, NNM_EUNSUPPORTED,
                            "%s: node '%s' (%s): operator not supported (and %zu more unsupported "
                            "node%s; `nnmesh inspect` lists them)", c->file, name, op, bad - 1,
                            bad - 1 == 1 ? "" : "s");
    }
    if (gp->n_sparse_initializer > 0)
        return nnm_diag_set(c->diag, NNM_EUNSUPPORTED,
                            "%s: sparse initializers are not supported", c->file);

    for (size_t i = 0; i < gp->n_initializer; i++) {
        Onnx__TensorProto *tp = gp->initializer[i];
        const char *nm = tp->name ? tp->name : "";
        if (nm[0] == '\0')
            return nnm_diag_set(c->diag, NNM_EFORMAT, "%s: initializer %zu has no name",
                                c->file, i);
        if (ir__value_find(c->g, nm) >= 0)
            return nnm_diag_set(c->diag, NNM_EFORMAT, "%s: initializer '%s' is defined twice",
                                c->file, nm);
        char what[300];
        snprintf(what, sizeof what, "initializer '%s'", nm);
        nnm_tensor t;
        if ((rc = tensor_take(&t, tp, c->file, what, c->diag)) != NNM_OK) return rc;
        if (ir__const_add(c->g, nm, &t) < 0) {
            nnm_tensor_cleanup(&t);
            return oom(c);
        }
    }
    for (size_t i = 0; i < gp->n_input; i++)
        if ((rc = import_input(c, gp->input[i])) != NNM_OK) return rc;
    for (size_t i = 0; i < gp->n_node; i++)
        if ((rc = import_node(c, gp->node[i], i)) != NNM_OK) return rc;
    if (gp->n_output == 0)
        return nnm_diag_set(c->diag, NNM_EFORMAT, "%s: the graph has no outputs", c->file);
    c->g->outputs = malloc(sizeof(int) * gp->n_output);
    if (c->g->outputs == NULL) return oom(c);
    for (size_t i = 0; i < gp->n_output; i++) {
        const char *nm = gp->output[i]->name ? gp->output[i]->name : "";
        int v = ir__value_find(c->g, nm);
        if (v < 0 || !value_defined(c->g, v))
            return nnm_diag_set(c->diag, NNM_EFORMAT,
                                "%s: graph output '%s' is not produced by any node, initializer "
                                "or input", c->file, nm);
        c->g->values[v].is_output = 1;
        c->g->outputs[c->g->n_outputs++] = v;
    }
    for (int v = 0; v < c->g->n_values; v++)
        if (!value_defined(c->g, v)) {
            /* Find a reader to name in the message. */
            for (int i = 0; i < c->g->n_nodes; i++)
                for (int j = 0; j < c->g->nodes[i].n_in; j++)
                    if (c->g->nodes[i].in[j] == v)
                        return nnm_diag_set(c->diag, NNM_EFORMAT,
                                            "%s: node '%s' (%s) reads '%s', which no node, "
                                            "initializer or input provides", c->file,
                                            c->g->nodes[i].name, c->g->nodes[i].onnx_op,
                                            c->g->values[v].name);
        }
    return NNM_OK;
}

static nnm_err finish(nnm_graph *g, const char *file, const nnm_load_opts *opts, nnm_diag *diag)
{
    nnm_err rc;
    if (opts && opts->no_optimize) {
        rc = g->n_nodes > 0 ? ir__toposort(g, diag) : NNM_OK;
        if (rc == NNM_OK && (rc = ir__infer(g, diag)) == NNM_OK)
            rc = ir__prune(g);
    } else {
        rc = ir__optimize(g, diag);
    }
    if (rc != NNM_OK && diag != NULL && strncmp(diag->msg, file, strlen(file)) != 0)
        nnm_diag_prefix(diag, "%s", file);
    return rc;
}

/* Decodes an unpacked model into a graph; frees m in every case. */
static nnm_err import_model(nnm_graph **out, Onnx__ModelProto *m, const char *file,
                            const nnm_load_opts *opts, nnm_diag *diag)
{
    nnm_err rc = NNM_ENOMEM;
    import_ctx c;
    memset(&c, 0, sizeof c);
    c.file = file;
    c.diag = diag;
    c.batch = opts && opts->batch > 0 ? opts->batch : 1;
    c.g = ir__graph_new();
    if (c.g == NULL) {
        rc = nnm_diag_set(diag, NNM_ENOMEM, "%s: out of memory", file);
        goto fail;
    }
    if ((c.g->source = strdup(file)) == NULL) {
        rc = nnm_diag_set(diag, NNM_ENOMEM, "%s: out of memory", file);
        goto fail;
    }
    if ((rc = import_graph(&c, m)) != NNM_OK) goto fail;
    onnx__model_proto__free_unpacked(m, NULL);
    m = NULL;
    if ((rc = finish(c.g, file, opts, diag)) != NNM_OK) goto fail;
    *out = c.g;
    return NNM_OK;
fail:
    if (m) onnx__model_proto__free_unpacked(m, NULL);
    ir__graph_free(c.g);
    return rc;
}

nnm_err nnm_graph_decode_onnx(nnm_graph **out, const void *buf, size_t len, const char *name,
                              const nnm_load_opts *opts, nnm_diag *diag)
{
    if (out == NULL || (buf == NULL && len > 0))
        return nnm_diag_set(diag, NNM_EINVAL, "nnm_graph_decode_onnx: NULL argument");
    *out = NULL;
    if (name == NULL) name = "<memory>";
    Onnx__ModelProto *m;
    nnm_err rc = model_unpack(&m, buf, len, name, diag);
    if (rc != NNM_OK) return rc;
    return import_model(out, m, name, opts, diag);
}

nnm_err nnm_graph_load_onnx(nnm_graph **out, const char *path, const nnm_load_opts *opts,
                            nnm_diag *diag)
{
    if (out == NULL || path == NULL)
        return nnm_diag_set(diag, NNM_EINVAL, "nnm_graph_load_onnx: NULL argument");
    *out = NULL;
    void *buf;
    size_t len = 0;
    nnm_err rc = file_read(&buf, &len, path, diag);
    if (rc != NNM_OK) return rc;
    Onnx__ModelProto *m;
    rc = model_unpack(&m, buf, len, path, diag);
    free(buf);   /* the message holds its own copy now */
    if (rc != NNM_OK) return rc;
    return import_model(out, m, path, opts, diag);
}

void nnm_graph_free(nnm_graph *g)
{
    ir__graph_free(g);
}

int nnm_onnx_unsupported_ops(const char *path, char *buf, size_t len, nnm_diag *diag)
{
    if (buf && len) buf[0] = '\0';
    if (path == NULL) {
        nnm_diag_set(diag, NNM_EINVAL, "nnm_onnx_unsupported_ops: NULL path");
        return -1;
    }
    void *data;
    size_t n;
    if (file_read(&data, &n, path, diag) != NNM_OK) return -1;
    Onnx__ModelProto *m;
    nnm_err rc = model_unpack(&m, data, n, path, diag);
    free(data);
    if (rc != NNM_OK) return -1;
    const Onnx__GraphProto *gp = m->graph;
    int count = 0;
    size_t used = 0;
    for (size_t i = 0; i < gp->n_node; i++) {
        const Onnx__NodeProto *np = gp->node[i];
        if (np->op_type == NULL || op_supported(np)) continue;
        int seen = 0;
        for (size_t j = 0; j < i && !seen; j++) {
            const Onnx__NodeProto *q = gp->node[j];
            if (q->op_type == NULL || op_supported(q)) continue;
            char a[256], b[256];
            op_display(a, sizeof a, np);
            op_display(b, sizeof b, q);
            seen = strcmp(a, b) == 0;
        }
        if (seen) continue;
        count++;
        if (buf && len) {
            char op[256];
            op_display(op, sizeof op, np);
            int w = snprintf(buf + used, len - used, "%s%s", count > 1 ? ", " : "", op);
            if (w < 0 || (size_t)w >= len - used) used = len - 1;   /* truncated */
            else used += (size_t)w;
        }
    }
    onnx__model_proto__free_unpacked(m, NULL);
    return count;
}

/* ---------------------------------------------------------------------------------------
 * Read-only accessors */

int nnm_graph_node_count(const nnm_graph *g)
{
    return g ? g->n_nodes : 0;
}

int nnm_graph_input_count(const nnm_graph *g)
{
    return g ? g->n_inputs : 0;
}

int nnm_graph_output_count(const nnm_graph *g)
{
    return g ? g->n_outputs : 0;
}

nnm_err nnm_graph_node_get(const nnm_graph *g, int i, nnm_node_info *info)
{
    if (g == NULL || info == NULL) return NNM_EINVAL;
    if (i < 0 || i >= g->n_nodes) return NNM_ERANGE;
    const nnm_node *n = &g->nodes[i];
    memset(info, 0, sizeof *info);
    info->name = n->name;
    info->op = n->onnx_op;
    if (n->n_out > 0 && n->out[0] >= 0) {
        const nnm_value *v = &g->values[n->out[0]];
        info->ndim = v->ndim < 0 ? 0 : v->ndim;
        for (int d = 0; d < info->ndim; d++) info->shape[d] = v->shape[d];
        info->dtype = v->dtype;
    }
    info->flops = n->flops;
    info->param_bytes = n->param_bytes;
    info->out_bytes = n->out_bytes;
    if (n->a.act)
        info->fused = (n->a.act_min == 0.0f && isinf(n->a.act_max) && n->a.act_max > 0)
                          ? "Relu" : "Clip";
    return NNM_OK;
}

static void io_fill(const nnm_graph *g, int v, nnm_io_info *info)
{
    memset(info, 0, sizeof *info);
    const nnm_value *val = &g->values[v];
    info->name = val->name;
    info->dtype = val->dtype;
    info->ndim = val->ndim < 0 ? 0 : val->ndim;
    for (int d = 0; d < info->ndim; d++) info->shape[d] = val->shape[d];
}

nnm_err nnm_graph_input_get(const nnm_graph *g, int i, nnm_io_info *info)
{
    if (g == NULL || info == NULL) return NNM_EINVAL;
    if (i < 0 || i >= g->n_inputs) return NNM_ERANGE;
    io_fill(g, g->inputs[i], info);
    return NNM_OK;
}

nnm_err nnm_graph_output_get(const nnm_graph *g, int i, nnm_io_info *info)
{
    if (g == NULL || info == NULL) return NNM_EINVAL;
    if (i < 0 || i >= g->n_outputs) return NNM_ERANGE;
    io_fill(g, g->outputs[i], info);
    return NNM_OK;
}
