/* transport/link.c — the secure peer link: hello handshakes, frames sealed per recipient on
 * inbox topics, chunking and reassembly, strict receive path with counted drops, and
 * credit-based flow control. docs/PROTOCOL.md section 7 describes the conventions.
 *
 * Threads: incoming messages are handled on Paho's receive thread (on_message below), under
 * the link mutex; application threads send and receive under the same mutex. The mutex is
 * never held while publishing: replies built under it go into an outbox published after.
 *
 * Handshake: each side's hello is identified by a digest of its payload (in the header's
 * session field, recomputed on receipt). An answer carries the digest of the hello it answers
 * in the request field, so a stale answer is told apart from a new initiation; crossing
 * initiations are each opened with the local pending handshake, which gives both sides the
 * same keys. Duplicate hellos are answered with the stored reply, never with a new session.
 *
 * Flow control: the sender keeps (counter, bytes) of every data message not yet acknowledged
 * and stops at window_bytes. The receiver acknowledges a counter C meaning "everything of
 * yours up to C has left my memory or is bounded elsewhere": chunks count once the reassembler
 * holds them (it has its own caps), whole frames once nnm_link_recv took them. A blocked
 * sender asks (ACK status QUERY) and the receiver answers at once and again at the next
 * release, so lost ACKs or lost messages cannot wedge a peer.
 *
 * Trust: the store is read only under the mutex (opening hellos), so nnm_link_set_trust can
 * swap it there. Each peer keeps the hello its session was admitted with; a new store checks
 * it again and a peer no longer admitted is revoked (sessions wiped, queued frames dropped,
 * no hello or frame sent to it) until a store or a fresh hello admits it again. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "link_int.h"

#define LINK_HDR_MAX 320       /* an encoded header is at most ~250 bytes */
#define LINK_CHUNK_SLACK 1024  /* chunk body framing + header + tag, within max_message */
#define LINK_PREV_MS 30000     /* previous session kept for frames in flight */
#define LINK_REHELLO_MS 2000
#define LINK_QUERY_MS 200

uint64_t link__now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t link__now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

struct timespec link__abs_ms(uint64_t abs_ms)
{
    struct timespec ts = {(time_t)(abs_ms / 1000), (long)(abs_ms % 1000) * 1000000L};
    return ts;
}

static uint64_t now_s(void)
{
    return (uint64_t)time(NULL);
}

static void wait_until(nnm_link *l, uint64_t abs_ms)
{
    struct timespec ts = link__abs_ms(abs_ms);
    pthread_cond_timedwait(&l->cv, &l->mu, &ts);
}

/* 64-bit id of a hello: BLAKE2b of its payload, never 0 (0 means "answers nothing"). */
static uint64_t hello_digest(const uint8_t *p, size_t n)
{
    uint8_t h[16];
    crypto_generichash(h, sizeof h, p, n, NULL, 0);
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = v << 8 | h[i];
    return v ? v : 1;
}

void nnm_link_opts_init(nnm_link_opts *o)
{
    if (o == NULL) return;
    memset(o, 0, sizeof *o);
    nnm_mqtt_opts_init(&o->mqtt);
    o->chunk_size = NNM_WIRE_CHUNK_DEFAULT - LINK_CHUNK_SLACK;
    o->window_bytes = 16u << 20;
    o->send_timeout_ms = 30000;
    o->hello_retry_ms = 1000;
    o->rx_queue_bytes = 512u << 20;
    o->max_peers = 256;
    nnm_wire_limits_init(&o->limits);
    nnm_reasm_config_init(&o->reasm);
}

/* ---- peers -------------------------------------------------------------------------------- */

static void peer_free(link_peer *p)
{
    if (p == NULL) return;
    nnm_handshake_free(p->hs);
    free(p->hs_frame);
    free(p->reply);
    nnm_session_free(p->cur);
    nnm_session_free(p->prev);
    free(p->fl);
    free(p->trusted_hello);
    free(p);
}

link_peer *link__peer(nnm_link *l, const char *id, bool add)
{
    for (size_t i = 0; i < l->npeers; i++)
        if (strcmp(l->peers[i]->id, id) == 0) return l->peers[i];
    if (!add || !nnm_id_is_valid(id) || strcmp(id, l->node) == 0 || l->npeers >= l->o.max_peers)
        return NULL;
    link_peer **np = realloc(l->peers, (l->npeers + 1) * sizeof *np);
    if (np == NULL) return NULL;
    l->peers = np;
    link_peer *p = calloc(1, sizeof *p);
    if (p == NULL) return NULL;
    snprintf(p->id, sizeof p->id, "%s", id);
    nnm_topic t = {.kind = NNM_TOPIC_INBOX};
    snprintf(t.mesh, sizeof t.mesh, "%s", l->mesh);
    snprintf(t.node, sizeof t.node, "%s", id);
    if (nnm_topic_encode(p->inbox, sizeof p->inbox, &t, NULL) != NNM_OK) {
        free(p);
        return NULL;
    }
    l->peers[l->npeers++] = p;
    return p;
}

static void fl_reset(link_peer *p)
{
    p->fl_head = p->fl_len = 0;
    p->fl_bytes = 0;
}

/* A new session, or none: a new generation, counters and flow control from zero. */
static void stream_reset(link_peer *p)
{
    p->gen++;
    p->tx_counter = 0;
    fl_reset(p);
    p->rx_hi = p->rx_acked = 0;
    p->rx_unacked = 0;
    p->ack_wanted = 0;
}

static bool fl_push(link_peer *p, uint64_t counter, size_t bytes)
{
    if (p->fl_len == p->fl_cap) {
        size_t cap = p->fl_cap ? 2 * p->fl_cap : 64;
        inflight *n = malloc(cap * sizeof *n);
        if (n == NULL) return false;
        for (size_t i = 0; i < p->fl_len; i++) n[i] = p->fl[(p->fl_head + i) % p->fl_cap];
        free(p->fl);
        p->fl = n;
        p->fl_cap = cap;
        p->fl_head = 0;
    }
    p->fl[(p->fl_head + p->fl_len) % p->fl_cap] = (inflight){counter, bytes};
    p->fl_len++;
    p->fl_bytes += bytes;
    return true;
}

static void fl_release(link_peer *p, uint64_t through)
{
    while (p->fl_len > 0 && p->fl[p->fl_head].counter <= through) {
        p->fl_bytes -= p->fl[p->fl_head].bytes;
        p->fl_head = (p->fl_head + 1) % p->fl_cap;
        p->fl_len--;
    }
}

static void fl_forget(link_peer *p, uint64_t counter)
{
    for (size_t i = 0; i < p->fl_len; i++) {
        inflight *e = &p->fl[(p->fl_head + i) % p->fl_cap];
        if (e->counter == counter) {
            p->fl_bytes -= e->bytes;
            e->bytes = 0;
            return;
        }
    }
}

/* Installs s, opened from the peer hello payload (plen bytes), as p's current session (lock
 * held). The hello is kept so that a new trust store can be checked against the key and
 * certificate the session was admitted with. */
static void install_session(nnm_link *l, link_peer *p, nnm_session *s, const uint8_t *payload,
                            size_t plen)
{
    uint8_t *keep = malloc(plen ? plen : 1);
    if (keep != NULL) memcpy(keep, payload, plen);
    free(p->trusted_hello);
    p->trusted_hello = keep;     /* NULL (out of memory): set_trust drops the session instead */
    p->trusted_hello_len = keep != NULL ? plen : 0;
    p->refused = p->revoked = false;   /* s was admitted by the current store */
    if (l->o.rekey_messages || l->o.rekey_seconds)
        nnm_session_set_rekey(s, l->o.rekey_messages ? l->o.rekey_messages : (uint64_t)1 << 32,
                              l->o.rekey_seconds ? l->o.rekey_seconds : 3600);
    nnm_session_free(p->prev);
    p->prev = p->cur;
    p->prev_until_ms = link__now_ms() + LINK_PREV_MS;
    p->cur = s;
    stream_reset(p);
    p->hs_err = NNM_OK;
    p->hs_msg[0] = '\0';
    l->st.sessions++;
    pthread_cond_broadcast(&l->cv);
}

static void seen_add(link_peer *p, uint64_t d)
{
    p->seen[p->nseen % LINK_SEEN_HELLOS] = d;
    p->nseen++;
}

static bool seen_has(const link_peer *p, uint64_t d)
{
    for (unsigned i = 0; i < p->nseen && i < LINK_SEEN_HELLOS; i++)
        if (p->seen[i] == d) return true;
    return false;
}

/* ---- outbox ------------------------------------------------------------------------------ */

static void ob_push(outbox *ob, const char *topic, uint8_t *buf, size_t len, int qos)
{
    if (ob->n == LINK_OUTBOX) {   /* cannot happen with the handlers below; never leak */
        free(buf);
        return;
    }
    outmsg *m = &ob->m[ob->n++];
    snprintf(m->topic, sizeof m->topic, "%s", topic);
    m->buf = buf;
    m->len = len;
    m->qos = qos;
}

static uint8_t *dup_bytes(const uint8_t *p, size_t n)
{
    uint8_t *d = malloc(n ? n : 1);
    if (d != NULL && n) memcpy(d, p, n);
    return d;
}

void link__flush(nnm_link *l, outbox *ob, unsigned timeout_ms)
{
    for (size_t i = 0; i < ob->n; i++) {
        outmsg *m = &ob->m[i];
        if (nnm_mqtt_publish(l->mqtt, m->topic, m->buf, m->len, m->qos, 0, timeout_ms, NULL) ==
            NNM_OK) {
            pthread_mutex_lock(&l->mu);
            l->st.tx_frames++;
            l->st.tx_bytes += m->len;
            pthread_mutex_unlock(&l->mu);
        }
        free(m->buf);
        m->buf = NULL;
    }
    ob->n = 0;
}

/* ---- sealing -------------------------------------------------------------------------------- */

/* Seals body (plaintext body bytes) into a new message for p under p->cur: header in the
 * clear, then nonce || ciphertext || tag with the header as associated data. */
static nnm_err seal_msg(nnm_link *l, link_peer *p, uint8_t type, uint64_t request,
                        const uint8_t *body, size_t blen, uint8_t **out, size_t *out_len,
                        uint64_t *counter, nnm_diag *diag)
{
    nnm_frame_header h;
    memset(&h, 0, sizeof h);
    h.version = NNM_WIRE_VERSION;
    h.type = type;
    snprintf(h.sender, sizeof h.sender, "%s", l->node);
    snprintf(h.receiver, sizeof h.receiver, "%s", p->id);
    h.session = nnm_session_get_id(p->cur);
    h.counter = p->tx_counter + 1;
    h.request = request;
    snprintf(h.topic, sizeof h.topic, "%s", p->inbox);
    uint8_t *hb = NULL, *msg = NULL;
    size_t hl = 0, sl = 0;
    nnm_err rc = nnm_frame_header_encode(&hb, &hl, &h, diag);
    if (rc != NNM_OK) goto fail;
    size_t cap = hl + blen + NNM_ENVELOPE_OVERHEAD;
    if ((msg = malloc(cap)) == NULL) {
        rc = nnm_diag_set(diag, NNM_ENOMEM, "link: out of memory sealing %zu bytes", blen);
        goto fail;
    }
    memcpy(msg, hb, hl);
    rc = nnm_session_seal(msg + hl, cap - hl, &sl, p->cur, hb, hl, body, blen, diag);
    if (rc != NNM_OK) goto fail;
    p->tx_counter++;
    *counter = h.counter;
    *out = msg;
    *out_len = hl + sl;
    free(hb);
    return NNM_OK;
fail:
    free(hb);
    free(msg);
    return rc;
}

nnm_err link__seal_control(nnm_link *l, link_peer *p, const nnm_frame *f, outbox *ob,
                           nnm_diag *diag)
{
    if (p->cur == NULL) return nnm_diag_set(diag, NNM_ESTATE, "link: no session with '%s'", p->id);
    uint8_t *body = NULL, *msg = NULL;
    size_t bl = 0, ml = 0;
    uint64_t counter;
    nnm_err rc = nnm_frame_body_encode(&body, &bl, f, diag);
    if (rc == NNM_OK)
        rc = seal_msg(l, p, f->hdr.type, f->hdr.request, body, bl, &msg, &ml, &counter, diag);
    free(body);
    if (rc != NNM_OK) return rc;
    int qos = f->hdr.type == NNM_FRAME_PROBE ? 0 : 1;
    if (ob != NULL) {
        ob_push(ob, p->inbox, msg, ml, qos);
        return NNM_OK;
    }
    rc = nnm_mqtt_publish(l->mqtt, p->inbox, msg, ml, qos, 0, 0, diag);
    free(msg);
    return rc;
}

/* Sends an ACK(credit) if the released counter advanced and it is worth it (lock held). */
static void maybe_ack(nnm_link *l, link_peer *p, outbox *ob, bool force)
{
    if (p->cur == NULL) return;
    uint64_t released = p->rx_hi;
    for (rxitem *it = l->qhead; it != NULL; it = it->next)
        if (it->peer == p && it->gen == p->gen && it->hold - 1 < released) released = it->hold - 1;
    if (!force && (released <= p->rx_acked ||
                   (p->rx_unacked < l->o.window_bytes / 4 && !p->ack_wanted)))
        return;
    if (ob->n >= LINK_OUTBOX) return;
    nnm_frame f;
    memset(&f, 0, sizeof f);
    f.hdr.type = NNM_FRAME_ACK;
    f.hdr.request = 0;
    f.u.ack.counter = released;
    f.u.ack.status = LINK_ACK_CREDIT;
    if (link__seal_control(l, p, &f, ob, NULL) == NNM_OK) {
        if (released > p->rx_acked) p->ack_wanted = 0;
        p->rx_acked = released > p->rx_acked ? released : p->rx_acked;
        p->rx_unacked = 0;
    }
}

/* ---- handshake ---------------------------------------------------------------------------- */

/* Builds a plain HELLO frame carrying payload, id and the digest it answers. */
static nnm_err hello_frame(nnm_link *l, link_peer *p, const uint8_t *payload, size_t plen,
                           uint64_t id, uint64_t answers, uint8_t **out, size_t *out_len,
                           nnm_diag *diag)
{
    nnm_frame f;
    memset(&f, 0, sizeof f);
    f.hdr.version = NNM_WIRE_VERSION;
    f.hdr.type = NNM_FRAME_HELLO;
    snprintf(f.hdr.sender, sizeof f.hdr.sender, "%s", l->node);
    snprintf(f.hdr.receiver, sizeof f.hdr.receiver, "%s", p->id);
    f.hdr.session = id;
    f.hdr.request = answers;
    snprintf(f.hdr.topic, sizeof f.hdr.topic, "%s", p->inbox);
    f.u.hello.payload = payload;
    f.u.hello.len = plen;
    return nnm_frame_encode(out, out_len, &f, diag);
}

/* Starts our handshake with p (lock held): a new ephemeral key and hello frame, due now. */
static nnm_err start_hello(nnm_link *l, link_peer *p, nnm_diag *diag)
{
    nnm_handshake *hs = NULL;
    uint8_t payload[NNM_HELLO_MAX], *frame = NULL;
    size_t plen = 0, flen = 0;
    nnm_err rc = nnm_handshake_new(&hs, l->o.identity, l->node, p->id, l->cert, l->o.cert_len,
                                   diag);
    if (rc == NNM_OK) rc = nnm_hello_encode(payload, sizeof payload, &plen, hs, diag);
    uint64_t id = rc == NNM_OK ? hello_digest(payload, plen) : 0;
    if (rc == NNM_OK) rc = hello_frame(l, p, payload, plen, id, 0, &frame, &flen, diag);
    if (rc != NNM_OK) {
        nnm_handshake_free(hs);
        return rc;
    }
    nnm_handshake_free(p->hs);
    free(p->hs_frame);
    p->hs = hs;
    p->hs_id = id;
    p->hs_frame = frame;
    p->hs_frame_len = flen;
    p->hs_next_ms = 0;
    return NNM_OK;
}

/* Queues our pending hello if it is due (lock held). */
static void hello_due(nnm_link *l, link_peer *p, outbox *ob)
{
    uint64_t now = link__now_ms();
    if (p->hs == NULL || now < p->hs_next_ms || ob->n >= LINK_OUTBOX) return;
    uint8_t *copy = dup_bytes(p->hs_frame, p->hs_frame_len);
    if (copy == NULL) return;
    ob_push(ob, p->inbox, copy, p->hs_frame_len, 1);
    p->hs_next_ms = now + l->o.hello_retry_ms;
}

static void hello_failed(nnm_link *l, link_peer *p, nnm_err rc, const nnm_diag *d)
{
    p->hs_err = rc;
    snprintf(p->hs_msg, sizeof p->hs_msg, "%s", d->msg);
    if (rc == NNM_ETRUST) {
        l->st.drop_untrusted++;
        p->refused = true;
    } else {
        l->st.drop_hello++;
    }
    pthread_cond_broadcast(&l->cv);
}

static void on_hello(nnm_link *l, const nnm_frame_header *h, const uint8_t *body, size_t blen,
                     outbox *ob)
{
    nnm_frame *f = NULL;
    nnm_diag d = {0};
    if (nnm_frame_body_decode(&f, h, body, blen, &l->o.limits, NULL) != NNM_OK) {
        l->st.drop_malformed++;
        return;
    }
    const uint8_t *payload = f->u.hello.payload;
    size_t plen = f->u.hello.len;
    uint64_t id = hello_digest(payload, plen);
    link_peer *p = NULL;
    if (h->session != id) {
        l->st.drop_malformed++;
        goto out;
    }
    if ((p = link__peer(l, h->sender, true)) == NULL) {
        l->st.drop_hello++;
        goto out;
    }
    if (seen_has(p, id)) {
        /* A duplicate (QoS 1 redelivery or a resend): repeat our answer, make nothing new. */
        if (id == p->answered && p->reply != NULL && ob->n < LINK_OUTBOX) {
            uint8_t *copy = dup_bytes(p->reply, p->reply_len);
            if (copy != NULL) ob_push(ob, p->inbox, copy, p->reply_len, 1);
        }
        goto out;   /* expected redundancy, not an attack: not counted */
    }
    uint64_t now = now_s();
    nnm_session *s = NULL;
    if (h->request != 0 || p->hs != NULL) {
        /* An answer to our hello, or a crossing initiation: open it with our handshake. */
        if (p->hs == NULL || (h->request != 0 && h->request != p->hs_id)) {
            l->st.drop_hello++;    /* answers a hello we no longer wait for */
            goto out;
        }
        nnm_err rc = nnm_hello_open(&s, p->hs, payload, plen, l->o.trust, now, &d);
        if (rc != NNM_OK) {
            hello_failed(l, p, rc, &d);
            goto out;
        }
        seen_add(p, id);
        if (h->request == 0 && p->hs_frame != NULL && ob->n < LINK_OUTBOX) {
            /* Crossing initiations: the peer opens our hello with its own pending handshake
             * and gets the same keys, but only if it has our hello. It may have lost or
             * refused it, so send it once more; a duplicate is ignored there. */
            ob_push(ob, p->inbox, p->hs_frame, p->hs_frame_len, 1);
            p->hs_frame = NULL;
        }
        nnm_handshake_free(p->hs);
        p->hs = NULL;
        free(p->hs_frame);
        p->hs_frame = NULL;
        install_session(l, p, s, payload, plen);
        goto out;
    }
    /* A new initiation: answer with a fresh handshake of ours. */
    nnm_handshake *hs = NULL;
    uint8_t mine[NNM_HELLO_MAX], *reply = NULL;
    size_t mlen = 0, rlen = 0;
    nnm_err rc = nnm_handshake_new(&hs, l->o.identity, l->node, p->id, l->cert, l->o.cert_len, &d);
    if (rc == NNM_OK) rc = nnm_hello_open(&s, hs, payload, plen, l->o.trust, now, &d);
    if (rc == NNM_OK) rc = nnm_hello_encode(mine, sizeof mine, &mlen, hs, &d);
    if (rc == NNM_OK)
        rc = hello_frame(l, p, mine, mlen, hello_digest(mine, mlen), id, &reply, &rlen, &d);
    nnm_handshake_free(hs);
    if (rc != NNM_OK) {
        nnm_session_free(s);
        hello_failed(l, p, rc, &d);
        goto out;
    }
    seen_add(p, id);
    free(p->reply);
    p->reply = reply;
    p->reply_len = rlen;
    p->answered = id;
    install_session(l, p, s, payload, plen);
    uint8_t *copy = ob->n < LINK_OUTBOX ? dup_bytes(reply, rlen) : NULL;
    if (copy != NULL) ob_push(ob, p->inbox, copy, rlen, 1);
out:
    nnm_frame_free(f);
}

/* ---- receive path ----------------------------------------------------------------------- */

static void enqueue(nnm_link *l, link_peer *p, nnm_frame *f, uint8_t *buf, size_t bytes,
                    uint64_t hold, bool cur)
{
    rxitem *it = NULL;
    if (l->qbytes + bytes > l->o.rx_queue_bytes || (it = calloc(1, sizeof *it)) == NULL) {
        l->st.drop_queue_full++;
        nnm_frame_free(f);
        free(buf);
        return;
    }
    it->peer = p;
    it->gen = cur ? p->gen : 0;   /* frames of a previous session hold nothing */
    it->hold = hold;
    it->bytes = bytes;
    it->frame = f;
    it->buf = buf;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    it->at_ms = (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
    if (l->qtail) l->qtail->next = it;
    else l->qhead = it;
    l->qtail = it;
    l->qbytes += bytes;
    p->queued++;
    pthread_cond_broadcast(&l->cv);
}

static bool app_type(const nnm_frame *f)
{
    switch (f->hdr.type) {
    case NNM_FRAME_TASK: case NNM_FRAME_TENSOR: case NNM_FRAME_RESULT: case NNM_FRAME_ERROR:
    case NNM_FRAME_CTL:
        return true;
    case NNM_FRAME_ACK:
        return f->hdr.request != 0;
    default:
        return false;
    }
}

static void on_chunk(nnm_link *l, link_peer *p, nnm_frame *f, uint64_t counter, bool cur)
{
    uint8_t *payload = NULL;
    size_t plen = 0;
    nnm_frame *inner = NULL;
    if (nnm_reasm_decode(l->reasm, f, link__now_ms(), &payload, &plen, NULL) != NNM_OK) {
        l->st.drop_reasm++;
        return;
    }
    if (payload == NULL) return;   /* more chunks to come */
    if (nnm_frame_decode(&inner, payload, plen, &l->o.limits, NULL) != NNM_OK ||
        strcmp(inner->hdr.sender, p->id) != 0 || strcmp(inner->hdr.receiver, l->node) != 0 ||
        inner->hdr.request != f->hdr.request || !app_type(inner)) {
        l->st.drop_malformed++;
        nnm_frame_free(inner);
        free(payload);
        return;
    }
    enqueue(l, p, inner, payload, plen, counter, cur);
}

static void on_ack(nnm_link *l, link_peer *p, const nnm_frame *f, bool cur, outbox *ob)
{
    if (!cur) return;   /* counters of an old session mean nothing now */
    if (f->u.ack.status == LINK_ACK_QUERY) {
        p->ack_wanted = 1;
        maybe_ack(l, p, ob, true);
        p->ack_wanted = 1;   /* and again at the next release */
        return;
    }
    fl_release(p, f->u.ack.counter);
    pthread_cond_broadcast(&l->cv);
}

static void on_sealed(nnm_link *l, const nnm_frame_header *h, const uint8_t *msg, size_t len,
                      size_t hl, outbox *ob)
{
    link_peer *p = link__peer(l, h->sender, false);
    nnm_session *s = NULL;
    bool cur = false;
    if (p != NULL && p->cur != NULL && nnm_session_get_id(p->cur) == h->session) {
        s = p->cur;
        cur = true;
    } else if (p != NULL && p->prev != NULL && nnm_session_get_id(p->prev) == h->session &&
               link__now_ms() < p->prev_until_ms) {
        s = p->prev;
    }
    if (s == NULL) {
        if (p != NULL && (p->refused || p->revoked)) l->st.drop_untrusted++;
        else l->st.drop_no_session++;
        /* A known peer whose session we dropped (BYE) keeps sending: offer a new handshake,
         * rarely. Not while we hold a session: forged session ids must not make us rekey. Never
         * to a revoked peer: the link does not talk to it until a store admits it again. */
        uint64_t now = link__now_ms();
        if (p != NULL && p->cur == NULL && p->hs == NULL && !p->revoked &&
            now - p->rehello_ms >= LINK_REHELLO_MS) {
            p->rehello_ms = now;
            if (start_hello(l, p, NULL) == NNM_OK) hello_due(l, p, ob);
        }
        return;
    }
    size_t sl = len - hl;
    if (sl < NNM_ENVELOPE_OVERHEAD) {
        l->st.drop_malformed++;
        return;
    }
    size_t cap = sl - NNM_ENVELOPE_OVERHEAD, n = 0;
    uint8_t *pt = malloc(cap ? cap : 1);
    if (pt == NULL) {
        l->st.drop_queue_full++;
        return;
    }
    nnm_err rc = nnm_session_open(pt, cap, &n, s, h->counter, msg, hl, msg + hl, sl, NULL);
    if (rc != NNM_OK) {
        if (rc == NNM_ECRYPTO) l->st.drop_bad_tag++;
        else if (rc == NNM_EREPLAY) l->st.drop_replay++;
        else l->st.drop_malformed++;
        free(pt);
        return;
    }
    if (cur) {
        if (h->counter > p->rx_hi) p->rx_hi = h->counter;
        p->rx_unacked += len;
    }
    nnm_frame *f = NULL;
    if (nnm_frame_body_decode(&f, h, pt, n, &l->o.limits, NULL) != NNM_OK) {
        l->st.drop_malformed++;
        free(pt);
        return;
    }
    switch (h->type) {
    case NNM_FRAME_CHUNK:
        on_chunk(l, p, f, h->counter, cur);
        nnm_frame_free(f);
        free(pt);
        break;
    case NNM_FRAME_PROBE:
        link__probe_on_frame(l, p, f, ob);
        nnm_frame_free(f);
        free(pt);
        break;
    case NNM_FRAME_BYE:
        nnm_session_free(p->cur);
        nnm_session_free(p->prev);
        p->cur = p->prev = NULL;
        p->gen++;
        fl_reset(p);
        pthread_cond_broadcast(&l->cv);
        nnm_frame_free(f);
        free(pt);
        return;
    default:
        if (h->type == NNM_FRAME_ACK && h->request == 0) {
            on_ack(l, p, f, cur, ob);
            nnm_frame_free(f);
            free(pt);
        } else if (app_type(f)) {
            enqueue(l, p, f, pt, n, h->counter, cur);
        } else {
            l->st.drop_malformed++;   /* HELLO or ADVERT sealed: not how they travel */
            nnm_frame_free(f);
            free(pt);
        }
        break;
    }
    maybe_ack(l, p, ob, false);
}

static void on_inbox(nnm_link *l, const uint8_t *msg, size_t len)
{
    outbox ob = {0};
    nnm_frame_header h;
    size_t hl = 0;
    pthread_mutex_lock(&l->mu);
    l->st.rx_frames++;
    l->st.rx_bytes += len;
    if (len > l->o.mqtt.max_message ||
        nnm_frame_header_decode(&h, &hl, msg, len, &l->o.limits, NULL) != NNM_OK ||
        strcmp(h.sender, l->node) == 0) {
        l->st.drop_malformed++;
    } else if (strcmp(h.receiver, l->node) != 0 || strcmp(h.topic, l->inbox) != 0) {
        l->st.drop_not_for_me++;
    } else if (h.type == NNM_FRAME_HELLO) {
        on_hello(l, &h, msg + hl, len - hl, &ob);
    } else {
        on_sealed(l, &h, msg, len, hl, &ob);
    }
    pthread_mutex_unlock(&l->mu);
    link__flush(l, &ob, 0);
}

static void on_message(void *ctx, const char *topic, const uint8_t *payload, size_t len,
                       int retained)
{
    nnm_link *l = ctx;
    if (strcmp(topic, l->inbox) == 0) {
        on_inbox(l, payload, len);
    } else if (l->o.on_other != NULL) {
        l->o.on_other(l->o.on_other_ctx, topic, payload, len, retained);
    }
}

/* ---- lifecycle ---------------------------------------------------------------------------- */

nnm_err nnm_link_new(nnm_link **out, const nnm_link_opts *o, nnm_diag *diag)
{
    if (out == NULL || o == NULL) return nnm_diag_set(diag, NNM_EINVAL, "nnm_link_new: NULL argument");
    *out = NULL;
    if (o->node_id == NULL || !nnm_id_is_valid(o->node_id) || o->mesh == NULL ||
        !nnm_id_is_valid(o->mesh))
        return nnm_diag_set(diag, NNM_EINVAL,
                            "link: node id '%.40s' and mesh '%.40s' must be 1-32 characters of "
                            "a-z, 0-9 and '-'", o->node_id ? o->node_id : "",
                            o->mesh ? o->mesh : "");
    if (o->identity == NULL || o->trust == NULL)
        return nnm_diag_set(diag, NNM_EINVAL, "link: node '%s' needs an identity and a trust "
                            "store", o->node_id);
    if ((o->cert == NULL) != (o->cert_len == 0) || o->cert_len > NNM_CERT_MAX)
        return nnm_diag_set(diag, NNM_EINVAL, "link: certificate of %zu bytes is invalid",
                            o->cert_len);
    if (o->chunk_size < 1024 || o->chunk_size + LINK_CHUNK_SLACK > o->mqtt.max_message)
        return nnm_diag_set(diag, NNM_EINVAL, "link: chunk size %zu must be at least 1024 and at "
                            "most max_message (%zu) - %d", o->chunk_size, o->mqtt.max_message,
                            LINK_CHUNK_SLACK);
    if (o->window_bytes < 4 * o->mqtt.max_message || o->send_timeout_ms == 0 ||
        o->hello_retry_ms == 0 || o->max_peers == 0 || o->rx_queue_bytes < o->mqtt.max_message)
        return nnm_diag_set(diag, NNM_EINVAL, "link: window_bytes must be >= 4 x max_message, "
                            "and send_timeout_ms, hello_retry_ms, max_peers, rx_queue_bytes "
                            "nonzero");
    if (sodium_init() < 0)
        return nnm_diag_set(diag, NNM_EBACKEND, "link: libsodium could not initialise");

    nnm_err rc = NNM_ENOMEM;
    nnm_link *l = calloc(1, sizeof *l);
    if (l == NULL) return nnm_diag_set(diag, NNM_ENOMEM, "link: out of memory");
    pthread_mutex_init(&l->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&l->cv, &ca);
    pthread_condattr_destroy(&ca);
    l->o = *o;
    snprintf(l->node, sizeof l->node, "%s", o->node_id);
    snprintf(l->mesh, sizeof l->mesh, "%s", o->mesh);
    l->o.node_id = l->node;
    l->o.mesh = l->mesh;
    randombytes_buf(&l->stream_seq, sizeof l->stream_seq);
    l->stream_seq >>= 1;   /* random start: a restarted sender never reuses recent streams */
    if (o->cert_len) {
        if ((l->cert = dup_bytes(o->cert, o->cert_len)) == NULL) goto nomem;
        l->o.cert = l->cert;
    }
    nnm_topic t = {.kind = NNM_TOPIC_INBOX};
    snprintf(t.mesh, sizeof t.mesh, "%s", l->mesh);
    snprintf(t.node, sizeof t.node, "%s", l->node);
    if ((rc = nnm_topic_encode(l->inbox, sizeof l->inbox, &t, diag)) != NNM_OK) goto fail;
    if ((rc = nnm_reasm_new(&l->reasm, &o->reasm, diag)) != NNM_OK) goto fail;
    nnm_mqtt_opts mo = o->mqtt;
    if (mo.client_id == NULL) {
        snprintf(l->client_id, sizeof l->client_id, "nnm-%s-%s", l->mesh, l->node);
        mo.client_id = l->client_id;
    }
    mo.on_message = on_message;
    mo.on_message_ctx = l;
    if ((rc = nnm_mqtt_new(&l->mqtt, &mo, diag)) != NNM_OK) goto fail;
    if ((rc = nnm_mqtt_subscribe(l->mqtt, l->inbox, 1, diag)) != NNM_OK) goto fail;
    *out = l;
    return NNM_OK;
nomem:
    rc = nnm_diag_set(diag, NNM_ENOMEM, "link: out of memory");
fail:
    nnm_link_free(l);
    return rc;
}

nnm_err nnm_link_start(nnm_link *l, nnm_diag *diag)
{
    if (l == NULL) return nnm_diag_set(diag, NNM_EINVAL, "nnm_link_start: NULL link");
    return nnm_mqtt_start(l->mqtt, diag);
}

nnm_mqtt *nnm_link_get_mqtt(nnm_link *l)
{
    return l != NULL ? l->mqtt : NULL;
}

void nnm_link_get_stats(nnm_link *l, nnm_link_stats *st)
{
    if (st == NULL) return;
    memset(st, 0, sizeof *st);
    if (l == NULL) return;
    pthread_mutex_lock(&l->mu);
    *st = l->st;
    nnm_reasm_get_stats(l->reasm, &st->reasm);
    pthread_mutex_unlock(&l->mu);
}

void nnm_link_free(nnm_link *l)
{
    if (l == NULL) return;
    if (l->mqtt != NULL) {
        /* Say goodbye so peers drop our sessions at once rather than on their next send. */
        pthread_mutex_lock(&l->mu);
        for (size_t i = 0; i < l->npeers; i++) {
            link_peer *p = l->peers[i];
            if (p->cur == NULL) continue;
            nnm_frame f;
            memset(&f, 0, sizeof f);
            f.hdr.type = NNM_FRAME_BYE;
            f.u.bye.reason = "leaving";
            outbox ob = {0};
            if (link__seal_control(l, p, &f, &ob, NULL) == NNM_OK) {
                pthread_mutex_unlock(&l->mu);
                link__flush(l, &ob, 1000);
                pthread_mutex_lock(&l->mu);
            }
        }
        pthread_mutex_unlock(&l->mu);
        nnm_mqtt_free(l->mqtt);   /* stops Paho: no callback after this */
    }
    while (l->qhead != NULL) {
        rxitem *it = l->qhead;
        l->qhead = it->next;
        nnm_frame_free(it->frame);
        free(it->buf);
        free(it);
    }
    for (size_t i = 0; i < l->npeers; i++) peer_free(l->peers[i]);
    free(l->peers);
    nnm_reasm_free(l->reasm);
    free(l->cert);
    pthread_cond_destroy(&l->cv);
    pthread_mutex_destroy(&l->mu);
    free(l);
}

/* ---- trust store changes ---------------------------------------------------------------- */

/* Forgets everything p's sessions and handshakes hold (lock held): keys, our pending hello,
 * the stored answer, unacknowledged counters. Senders waiting on p wake up. */
static void wipe_sessions(nnm_link *l, link_peer *p)
{
    nnm_handshake_free(p->hs);
    p->hs = NULL;
    free(p->hs_frame);
    p->hs_frame = NULL;
    p->hs_frame_len = 0;
    free(p->reply);          /* a duplicate of its old hello gets no answer now */
    p->reply = NULL;
    p->reply_len = 0;
    nnm_session_free(p->cur);
    nnm_session_free(p->prev);
    p->cur = p->prev = NULL;
    stream_reset(p);
    pthread_cond_broadcast(&l->cv);
}

/* Removes p's frames not yet taken by nnm_link_recv, counting them as untrusted (lock held). */
static void purge_queue(nnm_link *l, link_peer *p)
{
    rxitem **pp = &l->qhead;
    l->qtail = NULL;
    while (*pp != NULL) {
        rxitem *it = *pp;
        if (it->peer != p) {
            l->qtail = it;
            pp = &it->next;
            continue;
        }
        *pp = it->next;
        l->qbytes -= it->bytes;
        p->queued--;
        l->st.drop_untrusted++;
        nnm_frame_free(it->frame);
        free(it->buf);
        free(it);
    }
}

/* Opens p's kept hello again with a throwaway handshake, under l->o.trust (lock held): the
 * same signature, trust and certificate checks as when it was admitted, at today's date. */
static nnm_err recheck_peer(nnm_link *l, link_peer *p, nnm_diag *d)
{
    nnm_handshake *hs = NULL;
    nnm_session *s = NULL;
    nnm_err rc = nnm_handshake_new(&hs, l->o.identity, l->node, p->id, NULL, 0, d);
    if (rc == NNM_OK)
        rc = nnm_hello_open(&s, hs, p->trusted_hello, p->trusted_hello_len, l->o.trust, now_s(),
                            d);
    nnm_session_free(s);
    nnm_handshake_free(hs);
    return rc;
}

nnm_err nnm_link_set_trust(nnm_link *l, nnm_trust *t)
{
    if (l == NULL || t == NULL) return NNM_EINVAL;
    pthread_mutex_lock(&l->mu);
    /* Every use of the store is under this mutex (hellos are opened on Paho's thread while
     * holding it), so once this returns nothing touches the previous one. */
    l->o.trust = t;
    for (size_t i = 0; i < l->npeers; i++) {
        link_peer *p = l->peers[i];
        if (p->trusted_hello == NULL) {
            /* Never admitted, or admitted without a kept hello (out of memory): its next
             * hello is judged by t. A session we cannot re-check is dropped. */
            p->refused = false;
            if (p->cur != NULL || p->prev != NULL) wipe_sessions(l, p);
            continue;
        }
        nnm_diag d = {0};
        nnm_err rc = recheck_peer(l, p, &d);
        if (rc == NNM_OK) {
            p->refused = p->revoked = false;   /* admitted again (or still) */
            if (p->hs_err == NNM_ETRUST) p->hs_err = NNM_OK;
        } else if (rc == NNM_ETRUST) {
            if (!p->revoked) l->st.peers_revoked++;
            p->refused = p->revoked = true;
            p->hs_err = NNM_ETRUST;
            static const char pre[] = "hello refused: ";   /* nnm_hello_open's prefix */
            const char *why = strncmp(d.msg, pre, sizeof pre - 1) == 0 ? d.msg + sizeof pre - 1
                                                                       : d.msg;
            snprintf(p->hs_msg, sizeof p->hs_msg, "%s", why);
            wipe_sessions(l, p);
            purge_queue(l, p);
        } else {
            /* Could not tell (out of memory): drop the sessions so that the next handshake
             * is checked against t. */
            wipe_sessions(l, p);
        }
    }
    pthread_mutex_unlock(&l->mu);
    return NNM_OK;
}

/* ---- handshake API ------------------------------------------------------------------------ */

/* Waits (lock held) until p has a session newer than gen0, or the deadline. */
static nnm_err connect_locked(nnm_link *l, link_peer *p, uint64_t deadline, nnm_diag *diag)
{
    if (p->revoked)
        return nnm_diag_set(diag, NNM_ETRUST, "link: peer '%s' is no longer trusted, its "
                            "sessions were dropped when the trust store changed (%s)", p->id,
                            p->hs_msg);
    uint64_t gen0 = p->gen;
    bool fresh = p->cur != NULL && !nnm_session_needs_rekey(p->cur, now_s());
    if (fresh) return NNM_OK;
    p->hs_err = NNM_OK;
    if (p->hs == NULL) {
        nnm_err rc = start_hello(l, p, diag);
        if (rc != NNM_OK) return rc;
    }
    for (;;) {
        if (p->gen != gen0 && p->cur != NULL) return NNM_OK;
        if (p->hs_err != NNM_OK)
            return nnm_diag_set(diag, p->hs_err, "link: handshake with '%s' failed: %s", p->id,
                                p->hs_msg);
        if (p->hs == NULL) {   /* a BYE or failure dropped it: start again */
            nnm_err rc = start_hello(l, p, diag);
            if (rc != NNM_OK) return rc;
        }
        outbox ob = {0};
        hello_due(l, p, &ob);
        if (ob.n > 0) {
            pthread_mutex_unlock(&l->mu);
            link__flush(l, &ob, 1000);
            pthread_mutex_lock(&l->mu);
            continue;
        }
        uint64_t now = link__now_ms();
        if (now >= deadline)
            return nnm_diag_set(diag, NNM_ETIMEOUT,
                                "link: no answer from '%s' on mesh '%s' (is it running, on a "
                                "broker bridged to ours, and does its trust file list this "
                                "node '%s'?)", p->id, l->mesh, l->node);
        wait_until(l, p->hs_next_ms < deadline ? p->hs_next_ms : deadline);
    }
}

nnm_err nnm_link_connect_peer(nnm_link *l, const char *peer_id, unsigned timeout_ms,
                              nnm_diag *diag)
{
    if (l == NULL || peer_id == NULL)
        return nnm_diag_set(diag, NNM_EINVAL, "nnm_link_connect_peer: NULL argument");
    if (!nnm_id_is_valid(peer_id) || strcmp(peer_id, l->node) == 0)
        return nnm_diag_set(diag, NNM_EINVAL, "link: '%.40s' is not a peer id (1-32 of a-z, "
                            "0-9, '-', and not this node)", peer_id);
    uint64_t deadline = link__now_ms() + timeout_ms;
    pthread_mutex_lock(&l->mu);
    link_peer *p = link__peer(l, peer_id, true);
    nnm_err rc = p == NULL ? nnm_diag_set(diag, NNM_ERANGE, "link: no room for peer '%s' (%zu "
                                          "peers max)", peer_id, l->o.max_peers)
                           : connect_locked(l, p, deadline, diag);
    pthread_mutex_unlock(&l->mu);
    return rc;
}

/* ---- send --------------------------------------------------------------------------------- */

/* Seals and publishes one message of body bytes, honouring the window (lock NOT held). */
static nnm_err send_one(nnm_link *l, const char *peer, uint8_t type, uint64_t request,
                        const uint8_t *body, size_t blen, int qos, uint64_t deadline,
                        nnm_diag *diag)
{
    uint8_t *msg = NULL;
    size_t ml = 0;
    uint64_t counter = 0, gen = 0;
    bool waited = false;
    nnm_err rc = NNM_OK;
    pthread_mutex_lock(&l->mu);
    link_peer *p = link__peer(l, peer, true);
    if (p == NULL) {
        pthread_mutex_unlock(&l->mu);
        return nnm_diag_set(diag, NNM_ERANGE, "link: no room for peer '%s'", peer);
    }
    for (;;) {
        if (p->cur == NULL) {
            if ((rc = connect_locked(l, p, deadline, diag)) != NNM_OK) goto unlock;
            continue;
        }
        size_t need = blen + LINK_HDR_MAX + NNM_ENVELOPE_OVERHEAD;
        if (p->fl_bytes == 0 || p->fl_bytes + need <= l->o.window_bytes) break;
        uint64_t now = link__now_ms();
        if (!waited) {
            waited = true;
            l->st.send_waits++;
        }
        if (now >= deadline) {
            rc = nnm_diag_set(diag, NNM_ETIMEOUT,
                              "link: peer '%s' acknowledged nothing for a while: %zu bytes in "
                              "flight (window %zu); it is slow, gone, or the broker path is cut",
                              p->id, p->fl_bytes, l->o.window_bytes);
            /* The peer may have restarted and lost our session: the next send handshakes
             * again instead of sealing into the void. */
            nnm_session_free(p->prev);
            p->prev = p->cur;
            p->prev_until_ms = now + LINK_PREV_MS;
            p->cur = NULL;
            p->gen++;
            fl_reset(p);
            goto unlock;
        }
        if (now - p->query_ms >= LINK_QUERY_MS) {
            p->query_ms = now;
            nnm_frame q;
            memset(&q, 0, sizeof q);
            q.hdr.type = NNM_FRAME_ACK;
            q.u.ack.status = LINK_ACK_QUERY;
            outbox ob = {0};
            if (link__seal_control(l, p, &q, &ob, NULL) == NNM_OK) {
                pthread_mutex_unlock(&l->mu);
                link__flush(l, &ob, 1000);
                pthread_mutex_lock(&l->mu);
                continue;
            }
        }
        uint64_t until = now + LINK_QUERY_MS;
        wait_until(l, until < deadline ? until : deadline);
    }
    if (nnm_session_needs_rekey(p->cur, now_s()) && p->hs == NULL) {
        outbox ob = {0};
        if (start_hello(l, p, NULL) == NNM_OK) hello_due(l, p, &ob);
        pthread_mutex_unlock(&l->mu);
        link__flush(l, &ob, 1000);
        pthread_mutex_lock(&l->mu);
        if (p->cur == NULL) {
            rc = connect_locked(l, p, deadline, diag);
            if (rc != NNM_OK) goto unlock;
        }
    }
    if ((rc = seal_msg(l, p, type, request, body, blen, &msg, &ml, &counter, diag)) != NNM_OK)
        goto unlock;
    gen = p->gen;
    if (!fl_push(p, counter, ml)) {
        rc = nnm_diag_set(diag, NNM_ENOMEM, "link: out of memory");
        goto unlock;
    }
    char topic[NNM_TOPIC_MAX];
    snprintf(topic, sizeof topic, "%s", p->inbox);
    pthread_mutex_unlock(&l->mu);

    for (;;) {
        uint64_t now = link__now_ms();
        unsigned left = deadline > now ? (unsigned)(deadline - now) : 0;
        rc = nnm_mqtt_publish(l->mqtt, topic, msg, ml, qos, 0, left, diag);
        if (rc != NNM_ECONN || left == 0) break;
        /* Broker gone for a moment: the session reconnects by itself; the sealed bytes
         * stay valid (the peer never saw this counter). */
        if (nnm_mqtt_wait_connected(l->mqtt, left, NULL) != NNM_OK) break;
    }
    pthread_mutex_lock(&l->mu);
    if (rc == NNM_OK) {
        l->st.tx_frames++;
        l->st.tx_bytes += ml;
    } else if (p->gen == gen) {
        fl_forget(p, counter);
    }
unlock:
    pthread_mutex_unlock(&l->mu);
    free(msg);
    return rc;
}

static void wire_tensors(const nnm_frame *f, const nnm_wire_tensor **wt, size_t *n);

/* Bytes of tensor data and parameters a frame carries (a lower bound of its body size). */
static size_t tensor_payload_bytes(const nnm_frame *f)
{
    const nnm_wire_tensor *wt;
    size_t n, sum = 0;
    wire_tensors(f, &wt, &n);
    for (size_t i = 0; i < n; i++) sum += wt[i].data_len + wt[i].params_len;
    return sum;
}

nnm_err link__send(nnm_link *l, const char *peer, const nnm_frame *f, nnm_diag *diag)
{
    uint64_t deadline = link__now_ms() + l->o.send_timeout_ms;
    nnm_err rc = nnm_link_connect_peer(l, peer, l->o.send_timeout_ms, diag);
    if (rc != NNM_OK) return rc;
    uint8_t *body = NULL, *inner = NULL, *cb = NULL;
    size_t bl = 0, il = 0, cl = 0;
    int qos = f->hdr.type == NNM_FRAME_ACK || f->hdr.type == NNM_FRAME_CTL ||
                      f->hdr.type == NNM_FRAME_ERROR ? 1 : 0;
    /* A frame whose tensors alone exceed one message is chunked whatever its other fields:
     * its inner frame is then encoded at once, without a body of its own first (a 1 MiB
     * copy and buffer fewer per tensor, issue 3). */
    if (tensor_payload_bytes(f) + LINK_HDR_MAX + NNM_ENVELOPE_OVERHEAD <= l->o.mqtt.max_message) {
        if ((rc = nnm_frame_body_encode(&body, &bl, f, diag)) != NNM_OK) return rc;
        if (bl + LINK_HDR_MAX + NNM_ENVELOPE_OVERHEAD <= l->o.mqtt.max_message) {
            rc = send_one(l, peer, f->hdr.type, f->hdr.request, body, bl, qos, deadline, diag);
            free(body);
            return rc;
        }
        free(body);
        body = NULL;
    }
    /* Too large for one message: the plain inner frame (header || body, the bytes of
     * nnm_frame_encode), cut into CHUNK frames each sealed on its own (PROTOCOL.md
     * section 3). */
    nnm_frame_header h;
    memset(&h, 0, sizeof h);
    h.version = NNM_WIRE_VERSION;
    h.type = f->hdr.type;
    snprintf(h.sender, sizeof h.sender, "%s", l->node);
    snprintf(h.receiver, sizeof h.receiver, "%s", peer);
    h.request = f->hdr.request;
    nnm_topic t = {.kind = NNM_TOPIC_INBOX};
    snprintf(t.mesh, sizeof t.mesh, "%s", l->mesh);
    snprintf(t.node, sizeof t.node, "%s", peer);
    if ((rc = nnm_topic_encode(h.topic, sizeof h.topic, &t, diag)) != NNM_OK) goto out;
    nnm_frame whole = *f;
    whole.hdr = h;
    if ((rc = nnm_frame_encode(&inner, &il, &whole, diag)) != NNM_OK) goto out;
    pthread_mutex_lock(&l->mu);
    uint64_t stream = ++l->stream_seq;
    pthread_mutex_unlock(&l->mu);
    nnm_frame c;
    memset(&c, 0, sizeof c);
    if ((rc = nnm_chunk_init(&c, stream, inner, il, l->o.chunk_size, 0, diag)) != NNM_OK) goto out;
    uint32_t count = c.u.chunk.count;
    for (uint32_t i = 0; i < count && rc == NNM_OK; i++) {
        memset(&c, 0, sizeof c);
        if ((rc = nnm_chunk_init(&c, stream, inner, il, l->o.chunk_size, i, diag)) != NNM_OK) break;
        c.hdr.request = f->hdr.request;
        if ((rc = nnm_frame_body_encode(&cb, &cl, &c, diag)) != NNM_OK) break;
        rc = send_one(l, peer, NNM_FRAME_CHUNK, f->hdr.request, cb, cl, 0, deadline, diag);
        free(cb);
        cb = NULL;
    }
out:
    free(inner);
    return rc;
}

nnm_err nnm_link_send(nnm_link *l, const char *peer, const nnm_frame *f, nnm_diag *diag)
{
    if (l == NULL || peer == NULL || f == NULL)
        return nnm_diag_set(diag, NNM_EINVAL, "nnm_link_send: NULL argument");
    if (!app_type(f))
        return nnm_diag_set(diag, NNM_EINVAL, "link: frames of type %s%s are the link's own; "
                            "send TASK, TENSOR, RESULT, ERROR, CTL or ACK with a request",
                            nnm_frame_type_name(f->hdr.type),
                            f->hdr.type == NNM_FRAME_ACK ? " with request 0" : "");
    return link__send(l, peer, f, diag);
}

nnm_err nnm_link_send_tensors(nnm_link *l, const char *peer, uint64_t request,
                              const nnm_wire_tensor *tensors, size_t n, nnm_diag *diag)
{
    nnm_frame f;
    memset(&f, 0, sizeof f);
    f.hdr.type = NNM_FRAME_TENSOR;
    f.hdr.request = request;
    f.u.tensor.ntensors = n;
    f.u.tensor.tensors = tensors;
    return nnm_link_send(l, peer, &f, diag);
}

/* ---- receive ------------------------------------------------------------------------------ */

void nnm_link_msg_cleanup(nnm_link_msg *msg)
{
    if (msg == NULL) return;
    for (size_t i = 0; i < msg->ntensors; i++) nnm_tensor_cleanup(&msg->tensors[i]);
    free(msg->tensors);
    nnm_frame_free(msg->frame);
    free(msg->buf_);
    memset(msg, 0, sizeof *msg);
}

static void wire_tensors(const nnm_frame *f, const nnm_wire_tensor **wt, size_t *n)
{
    *wt = NULL;
    *n = 0;
    if (f->hdr.type == NNM_FRAME_TASK) {
        *wt = f->u.task.tensors;
        *n = f->u.task.ntensors;
    } else if (f->hdr.type == NNM_FRAME_TENSOR) {
        *wt = f->u.tensor.tensors;
        *n = f->u.tensor.ntensors;
    } else if (f->hdr.type == NNM_FRAME_RESULT) {
        *wt = f->u.result.tensors;
        *n = f->u.result.ntensors;
    }
}

void nnm_link_wake(nnm_link *l)
{
    if (l == NULL) return;
    pthread_mutex_lock(&l->mu);
    l->wake = 1;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
}

nnm_err nnm_link_recv(nnm_link *l, nnm_link_msg *msg, unsigned timeout_ms, nnm_diag *diag)
{
    if (l == NULL || msg == NULL) return nnm_diag_set(diag, NNM_EINVAL, "nnm_link_recv: NULL argument");
    memset(msg, 0, sizeof *msg);
    uint64_t deadline = link__now_ms() + timeout_ms;
    pthread_mutex_lock(&l->mu);
    while (l->qhead == NULL) {
        if (l->wake) {
            l->wake = 0;
            pthread_mutex_unlock(&l->mu);
            return nnm_diag_set(diag, NNM_ETIMEOUT, "link: woken before anything was received");
        }
        if (link__now_ms() >= deadline) {
            pthread_mutex_unlock(&l->mu);
            return nnm_diag_set(diag, NNM_ETIMEOUT, "link: nothing received within %u ms",
                                timeout_ms);
        }
        wait_until(l, deadline);
    }
    rxitem *it = l->qhead;
    l->qhead = it->next;
    if (l->qhead == NULL) l->qtail = NULL;
    l->qbytes -= it->bytes;
    link_peer *p = it->peer;
    p->queued--;
    outbox ob = {0};
    maybe_ack(l, p, &ob, false);
    pthread_mutex_unlock(&l->mu);
    link__flush(l, &ob, 1000);

    nnm_err rc = NNM_OK;
    const nnm_wire_tensor *wt;
    size_t n;
    wire_tensors(it->frame, &wt, &n);
    msg->frame = it->frame;
    msg->buf_ = it->buf;
    msg->arrived_ms = it->at_ms;
    free(it);
    if (n > 0) {
        if ((msg->tensors = calloc(n, sizeof *msg->tensors)) == NULL) {
            rc = nnm_diag_set(diag, NNM_ENOMEM, "link: out of memory for %zu tensors", n);
            goto fail;
        }
        for (size_t i = 0; i < n; i++) {
            if ((rc = nnm_wire_tensor_decode(&msg->tensors[i], &wt[i], &l->o.limits, diag)) !=
                NNM_OK) {
                nnm_diag_prefix(diag, "link: %s frame from '%s', tensor %zu",
                                nnm_frame_type_name(msg->frame->hdr.type),
                                msg->frame->hdr.sender, i);
                msg->ntensors = i;
                pthread_mutex_lock(&l->mu);
                l->st.drop_malformed++;
                pthread_mutex_unlock(&l->mu);
                goto fail;
            }
        }
        msg->ntensors = n;
    }
    pthread_mutex_lock(&l->mu);
    l->st.delivered++;
    pthread_mutex_unlock(&l->mu);
    return NNM_OK;
fail:
    nnm_link_msg_cleanup(msg);
    return rc;
}
