/* tests/fuzz/fuzz_frame.c — libFuzzer target for the strict frame decoder (every byte that
 * arrives from the broker goes through it), plus the tensor codecs and the reassembler on
 * whatever it accepts.
 *
 * Besides "no crash, no leak, no undefined behaviour" it checks the decoder's contract: on
 * error *out is NULL and the diagnostic holds one printable sentence with the returned code;
 * on success re-encoding gives back exactly the input bytes (the encoding is canonical; the
 * one exception is the previous build's TASK, see legacy_task), and the header decoder alone
 * agrees on where the header ends. A broken invariant traps. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nnmesh/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_diag(const nnm_diag *d, nnm_err rc)
{
    if (d->code != rc || d->msg[0] == '\0') __builtin_trap();
    const char *end = memchr(d->msg, '\0', sizeof d->msg);
    if (end == NULL) __builtin_trap();
    for (const char *p = d->msg; p < end; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e) __builtin_trap();
}

static void tensors(const nnm_wire_tensor *ts, size_t n, const nnm_wire_limits *lim)
{
    for (size_t i = 0; i < n; i++) {
        nnm_tensor t;
        nnm_diag d;
        nnm_diag_clear(&d);
        nnm_err rc = nnm_wire_tensor_decode(&t, &ts[i], lim, &d);
        if (rc != NNM_OK) {
            check_diag(&d, rc);
            if (t.data != NULL) __builtin_trap();
        } else if ((uint64_t)t.nbytes != ts[i].raw_len) {
            __builtin_trap();
        }
        nnm_tensor_cleanup(&t);
    }
}

/* The one non-canonical form the decoder accepts: a TASK of the previous build whose slice
 * spec has 9 fields with the result codec AUTO (fixarray 0x99 right after the body's
 * fixarray at `used`, 0xcc 0xff its last field). It re-encodes with 8, without the codec, as
 * the encoder writes AUTO. True when enc is exactly data so shortened. */
static int legacy_task(const nnm_frame *f, const uint8_t *data, size_t size, size_t used,
                       const uint8_t *enc, size_t len)
{
    if (f->hdr.type != NNM_FRAME_TASK || f->u.task.spec.result_codec != NNM_CODEC_AUTO ||
        len + 2 != size || used + 2 > len || data[used + 1] != 0x99 ||
        enc[used + 1] != 0x98 || memcmp(data, enc, used + 1) != 0)
        return 0;
    /* a 9-field spec is at most 1 + 34 + 7 x 9 + 2 bytes */
    for (size_t p = used + 2; p + 2 <= size && p < used + 100; p++)
        if (data[p] == 0xcc && data[p + 1] == 0xff &&
            memcmp(data + used + 2, enc + used + 2, p - used - 2) == 0 &&
            memcmp(data + p + 2, enc + p, size - p - 2) == 0)
            return 1;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    nnm_wire_limits lim;
    nnm_wire_limits_init(&lim);
    lim.max_tensor_bytes = 4u << 20; /* keeps decoded tensors inside the fuzzer's RSS limit */
    nnm_frame *f = (nnm_frame *)(uintptr_t)1;
    nnm_diag d;
    nnm_diag_clear(&d);
    nnm_err rc = nnm_frame_decode(&f, data, size, &lim, &d);
    if (rc != NNM_OK) {
        check_diag(&d, rc);
        if (f != NULL) __builtin_trap();
        return 0;
    }
    nnm_frame_header h;
    size_t used;
    if (nnm_frame_header_decode(&h, &used, data, size, &lim, NULL) != NNM_OK || used >= size ||
        h.type != f->hdr.type || h.session != f->hdr.session || h.counter != f->hdr.counter ||
        h.request != f->hdr.request || strcmp(h.sender, f->hdr.sender) != 0 ||
        strcmp(h.receiver, f->hdr.receiver) != 0 || strcmp(h.topic, f->hdr.topic) != 0)
        __builtin_trap();

    uint8_t *enc = NULL;
    size_t len = 0;
    if (nnm_frame_encode(&enc, &len, f, NULL) != NNM_OK) __builtin_trap();
    if ((len != size || memcmp(enc, data, size) != 0) &&
        !legacy_task(f, data, size, used, enc, len))
        __builtin_trap();
    free(enc);

    switch (f->hdr.type) {
    case NNM_FRAME_TASK: tensors(f->u.task.tensors, f->u.task.ntensors, &lim); break;
    case NNM_FRAME_TENSOR: tensors(f->u.tensor.tensors, f->u.tensor.ntensors, &lim); break;
    case NNM_FRAME_RESULT: tensors(f->u.result.tensors, f->u.result.ntensors, &lim); break;
    case NNM_FRAME_CHUNK: {
        nnm_reasm *r;
        nnm_reasm_config cfg;
        nnm_reasm_config_init(&cfg);
        cfg.max_stream_bytes = 4u << 20;
        cfg.max_bytes = 4u << 20;
        if (nnm_reasm_new(&r, &cfg, NULL) != NNM_OK) break;
        uint8_t *p;
        size_t n;
        if (nnm_reasm_decode(r, f, 0, &p, &n, NULL) == NNM_OK && p != NULL) {
            if (n != f->u.chunk.total || f->u.chunk.count != 1) __builtin_trap();
            free(p);
        }
        nnm_reasm_free(r);
        break;
    }
    default: break;
    }
    nnm_frame_free(f);
    return 0;
}
