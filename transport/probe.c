/* transport/probe.c — link probes: round-trip time by echoed PROBE frames, and throughput by a
 * burst of padded PROBE frames timed by the receiver, per peer (nnm_link_probe,
 * nnm_link_get_peer_estimate).
 *
 * Probes are sealed like any frame, so they measure the real path: broker, bridges, sealing
 * and the flow-control window. The receiver times a burst from the arrival of its first member
 * to the arrival of the end marker and reports (span, bytes after the first member); timing on
 * one clock needs no clock agreement between nodes. The header's request field tells the
 * probe kinds apart (link_int.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "link_int.h"

#define PROBE_PIECE (256u << 10)
#define PROBE_ECHOES 3

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8) p[i] = (uint8_t)v;
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = v << 8 | p[i];
    return v;
}

void link__probe_on_frame(nnm_link *l, link_peer *p, const nnm_frame *f, outbox *ob)
{
    uint64_t now = link__now_us();
    nnm_frame r;
    memset(&r, 0, sizeof r);
    r.hdr.type = NNM_FRAME_PROBE;
    r.u.probe.seq = f->u.probe.seq;
    switch (f->hdr.request) {
    case LINK_PROBE_ASK:
        r.hdr.request = LINK_PROBE_ECHO;
        r.u.probe.sent_us = f->u.probe.sent_us;
        link__seal_control(l, p, &r, ob, NULL);
        break;
    case LINK_PROBE_ECHO:
        p->echo_seq = f->u.probe.seq;
        p->echo_sent_us = f->u.probe.sent_us;
        p->echo_rx_us = now;
        pthread_cond_broadcast(&l->cv);
        break;
    case LINK_PROBE_BURST:
        if (f->u.probe.seq != p->burst_id) {
            p->burst_id = f->u.probe.seq;
            p->burst_first_us = now;
            p->burst_bytes = 0;
            p->burst_first_bytes = f->u.probe.pad_len;
        }
        p->burst_bytes += f->u.probe.pad_len;
        break;
    case LINK_PROBE_BURST_END: {
        uint8_t rep[16];
        bool ours = f->u.probe.seq == p->burst_id;
        put_u64(rep, ours ? now - p->burst_first_us : 0);
        put_u64(rep + 8, ours ? p->burst_bytes - p->burst_first_bytes : 0);
        r.hdr.request = LINK_PROBE_REPORT;
        r.u.probe.pad = rep;
        r.u.probe.pad_len = sizeof rep;
        link__seal_control(l, p, &r, ob, NULL);
        break;
    }
    case LINK_PROBE_REPORT:
        if (f->u.probe.pad_len == 16) {
            p->rep_seq = f->u.probe.seq;
            p->rep_span_us = get_u64(f->u.probe.pad);
            p->rep_bytes = get_u64(f->u.probe.pad + 8);
            pthread_cond_broadcast(&l->cv);
        }
        break;
    default:
        l->st.drop_malformed++;
        break;
    }
}

/* Sends one probe of kind with seq and pad (lock NOT held). */
static nnm_err send_probe(nnm_link *l, const char *peer, uint64_t kind, uint64_t seq,
                          const uint8_t *pad, size_t pad_len, nnm_diag *diag)
{
    nnm_frame f;
    memset(&f, 0, sizeof f);
    f.hdr.type = NNM_FRAME_PROBE;
    f.hdr.request = kind;
    f.u.probe.seq = seq;
    f.u.probe.sent_us = link__now_us();
    f.u.probe.pad = pad;
    f.u.probe.pad_len = pad_len;
    return link__send(l, peer, &f, diag);
}

nnm_err nnm_link_probe(nnm_link *l, const char *peer, size_t burst_bytes, unsigned timeout_ms,
                       nnm_diag *diag)
{
    if (l == NULL || peer == NULL) return nnm_diag_set(diag, NNM_EINVAL, "nnm_link_probe: NULL argument");
    nnm_err rc = nnm_link_connect_peer(l, peer, timeout_ms, diag);
    if (rc != NNM_OK) return rc;
    uint64_t deadline = link__now_ms() + timeout_ms;
    double best = -1;
    for (int i = 0; i < PROBE_ECHOES; i++) {
        pthread_mutex_lock(&l->mu);
        link_peer *p = link__peer(l, peer, false);
        uint64_t seq = p != NULL ? ++p->probe_seq : 0;
        pthread_mutex_unlock(&l->mu);
        if ((rc = send_probe(l, peer, LINK_PROBE_ASK, seq, NULL, 0, diag)) != NNM_OK) return rc;
        pthread_mutex_lock(&l->mu);
        while (p->echo_seq != seq && link__now_ms() < deadline) {
            struct timespec ts = link__abs_ms(deadline);
            pthread_cond_timedwait(&l->cv, &l->mu, &ts);
        }
        bool got = p->echo_seq == seq;
        double rtt = got ? (double)(p->echo_rx_us - p->echo_sent_us) / 1000.0 : 0;
        pthread_mutex_unlock(&l->mu);
        if (!got)
            return nnm_diag_set(diag, NNM_ETIMEOUT, "link: probe of '%s' got no echo within %u "
                                "ms", peer, timeout_ms);
        if (best < 0 || rtt < best) best = rtt;
    }
    double mbps = 0;
    if (burst_bytes > 0) {
        size_t piece = burst_bytes < PROBE_PIECE ? burst_bytes : PROBE_PIECE;
        size_t n = (burst_bytes + piece - 1) / piece;
        if (n < 2) n = 2;   /* the first member only starts the clock */
        uint8_t *pad = calloc(1, piece);
        if (pad == NULL) return nnm_diag_set(diag, NNM_ENOMEM, "link: out of memory for a probe");
        pthread_mutex_lock(&l->mu);
        link_peer *p = link__peer(l, peer, false);
        uint64_t id = ++p->probe_seq;
        pthread_mutex_unlock(&l->mu);
        for (size_t i = 0; i < n && rc == NNM_OK; i++)
            rc = send_probe(l, peer, LINK_PROBE_BURST, id, pad, piece, diag);
        free(pad);
        if (rc == NNM_OK) rc = send_probe(l, peer, LINK_PROBE_BURST_END, id, NULL, 0, diag);
        if (rc != NNM_OK) return rc;
        pthread_mutex_lock(&l->mu);
        while (p->rep_seq != id && link__now_ms() < deadline) {
            struct timespec ts = link__abs_ms(deadline);
            pthread_cond_timedwait(&l->cv, &l->mu, &ts);
        }
        bool got = p->rep_seq == id;
        uint64_t span = p->rep_span_us, bytes = p->rep_bytes;
        pthread_mutex_unlock(&l->mu);
        if (!got)
            return nnm_diag_set(diag, NNM_ETIMEOUT, "link: burst probe of '%s' got no report "
                                "within %u ms", peer, timeout_ms);
        mbps = span > 0 ? (double)bytes * 8.0 / (double)span : 0;
    }
    pthread_mutex_lock(&l->mu);
    link_peer *p = link__peer(l, peer, false);
    p->rtt_ms = best;
    if (burst_bytes > 0) p->mbps = mbps;
    p->has_estimate = 1;
    pthread_mutex_unlock(&l->mu);
    return NNM_OK;
}

nnm_err nnm_link_get_peer_estimate(nnm_link *l, const char *peer, double *rtt_ms, double *mbps,
                                   nnm_diag *diag)
{
    if (l == NULL || peer == NULL)
        return nnm_diag_set(diag, NNM_EINVAL, "nnm_link_get_peer_estimate: NULL argument");
    pthread_mutex_lock(&l->mu);
    link_peer *p = link__peer(l, peer, false);
    nnm_err rc = NNM_OK;
    if (p == NULL || !p->has_estimate) {
        rc = nnm_diag_set(diag, NNM_ENOTFOUND, "link: peer '%.40s' was never probed", peer);
    } else {
        if (rtt_ms != NULL) *rtt_ms = p->rtt_ms;
        if (mbps != NULL) *mbps = p->mbps;
    }
    pthread_mutex_unlock(&l->mu);
    return rc;
}
