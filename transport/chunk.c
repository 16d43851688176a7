/* transport/chunk.c — splitting a large encoded frame into CHUNK frames and reassembling them
 * with bounded memory.
 *
 * The chunking rule makes every chunk's place computable from (total, count, index) alone:
 * count = ceil(total / chunk_size) and every chunk is ceil(total / count) bytes except a shorter
 * last one. A receiver can therefore check each chunk on its own, place it whatever order it
 * arrives in, and needs no per-chunk offset on the wire.
 *
 * The reassembler is a small table (streams are few: one per tensor in flight); lookups are
 * linear. Memory is reserved for a whole stream when its first chunk arrives, and the sum of
 * reservations is capped, so a peer cannot grow it past max_bytes however it orders chunks.
 * Time comes in as an argument, so tests need no sleeping. */
#include <stdlib.h>
#include <string.h>

#include "wire_int.h"

bool transport__chunk_span(uint64_t total, uint32_t count, uint32_t index, uint64_t *off,
                           uint64_t *len)
{
    if (count == 0 || index >= count || total == 0) return false;
    uint64_t cs = (total - 1) / count + 1, last;
    if (__builtin_mul_overflow((uint64_t)(count - 1), cs, &last) || last >= total) return false;
    *off = (uint64_t)index * cs;   /* <= last: no overflow */
    *len = index == count - 1 ? total - last : cs;
    return true;
}

nnm_err nnm_chunk_init(nnm_frame *f, uint64_t stream, const uint8_t *payload, size_t total,
                       size_t chunk_size, uint32_t index, nnm_diag *diag)
{
    if (total == 0 || chunk_size == 0 || payload == NULL)
        return nnm_diag_set(diag, NNM_EINVAL, "chunk: empty payload or chunk size 0");
    uint64_t count = ((uint64_t)total - 1) / chunk_size + 1, off, len;
    if (count > UINT32_MAX)
        return nnm_diag_set(diag, NNM_EINVAL, "chunk: %zu bytes need more than 2^32 chunks",
                            total);
    if (!transport__chunk_span(total, (uint32_t)count, index, &off, &len))
        return nnm_diag_set(diag, NNM_EINVAL, "chunk: index %u is not below the count %llu",
                            index, (unsigned long long)count);
    f->hdr.type = NNM_FRAME_CHUNK;
    f->u.chunk.stream = stream;
    f->u.chunk.index = index;
    f->u.chunk.count = (uint32_t)count;
    f->u.chunk.total = total;
    f->u.chunk.data = payload + off;
    f->u.chunk.len = (size_t)len;
    return NNM_OK;
}

/* ---- reassembly ------------------------------------------------------------------------ */

typedef struct stream_key {
    char sender[NNM_ID_MAX + 1];
    uint64_t request, stream;
} stream_key;

typedef struct stream {
    stream_key key;
    uint64_t total;
    uint32_t count, received;
    uint64_t last_ms;         /* time of the last accepted chunk */
    uint8_t *buf;             /* total bytes */
    uint8_t *have;            /* one bit per chunk */
} stream;

#define RECENT 64

struct nnm_reasm {
    nnm_reasm_config cfg;
    stream *streams;          /* cfg.max_streams slots; live ones first, [0, nlive) */
    size_t nlive;
    size_t bytes;
    stream_key recent[RECENT]; /* completed streams, to recognise late duplicates */
    size_t nrecent, recent_next;
    nnm_reasm_stats st;
};

void nnm_reasm_config_init(nnm_reasm_config *cfg)
{
    cfg->max_streams = 64;
    cfg->max_bytes = (size_t)512 << 20;
    cfg->max_stream_bytes = ((size_t)256 << 20) + ((size_t)64 << 10);
    cfg->max_chunks = 65536;
    cfg->timeout_ms = 30000;
}

nnm_err nnm_reasm_new(nnm_reasm **out, const nnm_reasm_config *cfg, nnm_diag *diag)
{
    nnm_err rc = NNM_ENOMEM;
    nnm_reasm *r = NULL;
    *out = NULL;
    nnm_reasm_config c;
    if (cfg) c = *cfg;
    else nnm_reasm_config_init(&c);
    if (c.max_streams == 0 || c.max_bytes == 0 || c.max_stream_bytes == 0 ||
        c.max_chunks == 0 || c.timeout_ms == 0) {
        rc = nnm_diag_set(diag, NNM_EINVAL, "reassembler: every limit must be above zero");
        goto fail;
    }
    if ((r = calloc(1, sizeof *r)) == NULL) goto nomem;
    if ((r->streams = calloc(c.max_streams, sizeof *r->streams)) == NULL) goto nomem;
    r->cfg = c;
    *out = r;
    return NNM_OK;
nomem:
    rc = nnm_diag_set(diag, NNM_ENOMEM, "reassembler: out of memory");
fail:
    nnm_reasm_free(r);
    return rc;
}

static void stream_drop(nnm_reasm *r, size_t i, bool keep_buf)
{
    stream *s = &r->streams[i];
    if (!keep_buf) free(s->buf);
    free(s->have);
    r->bytes -= s->total;
    r->streams[i] = r->streams[--r->nlive];
    memset(&r->streams[r->nlive], 0, sizeof *s);
}

void nnm_reasm_free(nnm_reasm *r)
{
    if (r == NULL) return;
    if (r->streams) {
        while (r->nlive > 0) stream_drop(r, r->nlive - 1, false);
        free(r->streams);
    }
    free(r);
}

void nnm_reasm_set_clock(nnm_reasm *r, uint64_t now_ms)
{
    /* A clock that steps back expires nothing; the stream waits for the clock to catch up. */
    for (size_t i = 0; i < r->nlive;) {
        stream *s = &r->streams[i];
        if (now_ms > s->last_ms && now_ms - s->last_ms > r->cfg.timeout_ms) {
            stream_drop(r, i, false);
            r->st.evicted++;
        } else {
            i++;
        }
    }
}

void nnm_reasm_get_stats(const nnm_reasm *r, nnm_reasm_stats *st)
{
    *st = r->st;
    st->streams = r->nlive;
    st->bytes = r->bytes;
}

static bool key_eq(const stream_key *a, const stream_key *b)
{
    return a->request == b->request && a->stream == b->stream &&
           strcmp(a->sender, b->sender) == 0;
}

static bool recent_has(const nnm_reasm *r, const stream_key *k)
{
    for (size_t i = 0; i < r->nrecent; i++)
        if (key_eq(&r->recent[i], k)) return true;
    return false;
}

static void recent_add(nnm_reasm *r, const stream_key *k)
{
    r->recent[r->recent_next] = *k;
    r->recent_next = (r->recent_next + 1) % RECENT;
    if (r->nrecent < RECENT) r->nrecent++;
}

static nnm_err reject(nnm_reasm *r, nnm_err rc)
{
    r->st.rejected++;
    return rc;
}

nnm_err nnm_reasm_decode(nnm_reasm *r, const nnm_frame *f, uint64_t now_ms, uint8_t **payload,
                         size_t *len, nnm_diag *diag)
{
    *payload = NULL;
    *len = 0;
    if (f == NULL || f->hdr.type != NNM_FRAME_CHUNK)
        return nnm_diag_set(diag, NNM_EINVAL, "reassembler: not a chunk frame");
    nnm_reasm_set_clock(r, now_ms);

    const nnm_chunk *c = &f->u.chunk;
    uint64_t off, clen;
    if (!transport__chunk_span(c->total, c->count, c->index, &off, &clen) || clen != c->len ||
        (c->len > 0 && c->data == NULL))
        return reject(r, nnm_diag_set(diag, NNM_EFORMAT,
                                      "chunk %u of %u (%zu of %llu bytes) breaks the chunking "
                                      "rule", c->index, c->count, c->len,
                                      (unsigned long long)c->total));
    if (c->count > r->cfg.max_chunks)
        return reject(r, nnm_diag_set(diag, NNM_ERANGE, "chunk stream has %u chunks; the limit "
                                      "is %u", c->count, r->cfg.max_chunks));
    if (c->total > r->cfg.max_stream_bytes)
        return reject(r, nnm_diag_set(diag, NNM_ERANGE, "chunk stream of %llu bytes; the limit "
                                      "is %zu", (unsigned long long)c->total,
                                      r->cfg.max_stream_bytes));

    stream_key k;
    memset(&k, 0, sizeof k);
    if (memchr(f->hdr.sender, 0, sizeof f->hdr.sender) == NULL)
        return nnm_diag_set(diag, NNM_EINVAL, "reassembler: sender id is not terminated");
    strcpy(k.sender, f->hdr.sender);
    k.request = f->hdr.request;
    k.stream = c->stream;

    size_t i;
    for (i = 0; i < r->nlive; i++)
        if (key_eq(&r->streams[i].key, &k)) break;
    if (i == r->nlive) {
        if (recent_has(r, &k)) {
            r->st.duplicates++;
            return NNM_OK;
        }
        if (r->nlive == r->cfg.max_streams)
            return reject(r, nnm_diag_set(diag, NNM_ERANGE,
                                          "reassembler: %zu streams already in flight",
                                          r->nlive));
        if (c->total > r->cfg.max_bytes - r->bytes)
            return reject(r, nnm_diag_set(diag, NNM_ERANGE,
                                          "reassembler: %llu more bytes would pass the %zu-byte "
                                          "cap (%zu in flight)", (unsigned long long)c->total,
                                          r->cfg.max_bytes, r->bytes));
        stream *s = &r->streams[i];
        s->buf = malloc((size_t)c->total);
        s->have = calloc((size_t)c->count / 8 + 1, 1);
        if (s->buf == NULL || s->have == NULL) {
            free(s->buf);
            free(s->have);
            memset(s, 0, sizeof *s);
            return nnm_diag_set(diag, NNM_ENOMEM, "reassembler: out of memory for %llu bytes",
                                (unsigned long long)c->total);
        }
        s->key = k;
        s->total = c->total;
        s->count = c->count;
        s->received = 0;
        s->last_ms = now_ms;
        r->nlive++;
        r->bytes += (size_t)c->total;
    }

    stream *s = &r->streams[i];
    if (s->count != c->count || s->total != c->total)
        return reject(r, nnm_diag_set(diag, NNM_EFORMAT,
                                      "chunk says %u chunks of %llu bytes, its stream %u of %llu",
                                      c->count, (unsigned long long)c->total, s->count,
                                      (unsigned long long)s->total));
    uint8_t bit = (uint8_t)(1u << (c->index % 8));
    if (s->have[c->index / 8] & bit) {
        if (memcmp(s->buf + off, c->data, c->len) != 0) {
            stream_drop(r, i, false);
            return reject(r, nnm_diag_set(diag, NNM_EFORMAT,
                                          "chunk %u arrived twice with different bytes; stream "
                                          "dropped", c->index));
        }
        r->st.duplicates++;
        return NNM_OK;
    }
    if (c->len) memcpy(s->buf + off, c->data, c->len);
    s->have[c->index / 8] |= bit;
    s->received++;
    s->last_ms = now_ms;
    if (s->received < s->count) return NNM_OK;

    /* Complete: the buffer goes to the caller (commit: nothing fails after this). */
    *payload = s->buf;
    *len = (size_t)s->total;
    recent_add(r, &s->key);
    stream_drop(r, i, true);
    r->st.completed++;
    return NNM_OK;
}
