/* transport/link_int.h — internals of the secure link shared by link.c and probe.c: the link
 * and peer structs, and the few functions probe.c needs. Not installed. */
#ifndef NNM_LINK_INT_H
#define NNM_LINK_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "nnmesh/transport.h"
#include "nnmesh/wire.h"
/* nnmesh/crypto.h and nnmesh/wire.h both declare a `struct nnm_advert` (the signed envelope
 * and the advert body). transport/ uses neither, so crypto's is renamed for this unit. */
#include "nnmesh/crypto.h"

/* Header `request` values of link-internal frames (PROBE and ACK with request 0). */
enum {
    LINK_PROBE_ASK = 1,       /* echo me now: seq, sent_us */
    LINK_PROBE_ECHO = 2,      /* the echo: same seq and sent_us */
    LINK_PROBE_BURST = 3,     /* burst member: seq = burst id, pad counted by the receiver */
    LINK_PROBE_BURST_END = 4, /* end of burst seq: answer with a report */
    LINK_PROBE_REPORT = 5     /* seq = burst id; pad = u64 span_us, u64 bytes (big-endian) */
};
enum { LINK_ACK_CREDIT = 0, LINK_ACK_QUERY = 1 };   /* ACK status with request 0 */

#define LINK_SEEN_HELLOS 16

typedef struct inflight {
    uint64_t counter;
    size_t bytes;
} inflight;

typedef struct link_peer {
    char id[NNM_ID_MAX + 1];
    char inbox[NNM_TOPIC_MAX];

    /* handshake: ours in progress, and the last hello of the peer we answered */
    nnm_handshake *hs;
    uint64_t hs_id;                 /* digest of our hello payload */
    uint8_t *hs_frame;              /* our hello frame (plain), resent until answered */
    size_t hs_frame_len;
    uint64_t hs_next_ms;
    uint64_t answered;              /* digest of the peer hello we answered */
    uint8_t *reply;                 /* our answer to it, resent on duplicates */
    size_t reply_len;
    uint64_t seen[LINK_SEEN_HELLOS];
    unsigned nseen;
    nnm_err hs_err;                 /* last failure opening a hello of this peer */
    char hs_msg[NNM_DIAG_MAX];
    uint64_t rehello_ms;            /* last unsolicited re-hello (unknown session frames) */

    /* trust: the peer hello our current session came from (signed: its key and certificate),
     * kept so that nnm_link_set_trust can check it again against a new store */
    uint8_t *trusted_hello;
    size_t trusted_hello_len;
    bool refused;                   /* its last hello was refused by the trust store */
    bool revoked;                   /* a new store no longer trusts it: sessions dropped, sends
                                       fail with NNM_ETRUST until a store or hello admits it */

    /* sessions: current, and the previous one kept a while for frames in flight */
    nnm_session *cur, *prev;
    uint64_t prev_until_ms;
    uint64_t gen;                   /* +1 per new session */
    uint64_t tx_counter;

    /* flow control, sender side: messages not yet acknowledged (in counter order) */
    inflight *fl;
    size_t fl_head, fl_len, fl_cap;
    size_t fl_bytes;
    uint64_t query_ms;

    /* flow control, receiver side */
    uint64_t rx_hi;                 /* highest counter received in cur */
    uint64_t rx_acked;              /* released counter last acknowledged */
    size_t rx_unacked;              /* bytes received since that ACK */
    int ack_wanted;                 /* the sender asked (credit query): ACK at next release */
    unsigned queued;                /* frames of this peer in the receive queue */

    /* probes */
    uint64_t probe_seq;
    uint64_t echo_seq, echo_sent_us, echo_rx_us;   /* last echo received */
    uint64_t rep_seq, rep_span_us, rep_bytes;     /* last burst report received */
    uint64_t burst_id, burst_first_us, burst_bytes, burst_first_bytes;   /* receiving */
    double rtt_ms, mbps;
    int has_estimate;
} link_peer;

typedef struct rxitem {
    struct rxitem *next;
    link_peer *peer;
    uint64_t gen;                   /* peer session generation it arrived under */
    uint64_t hold;                  /* counter held until consumed (flow control) */
    size_t bytes;
    nnm_frame *frame;
    uint8_t *buf;                   /* storage the frame borrows from */
    double at_ms;                   /* CLOCK_MONOTONIC ms when it was queued */
} rxitem;

/* A message to publish once the link's lock is released. */
typedef struct outmsg {
    char topic[NNM_TOPIC_MAX];
    uint8_t *buf;
    size_t len;
    int qos;
} outmsg;

#define LINK_OUTBOX 4
typedef struct outbox {
    outmsg m[LINK_OUTBOX];
    size_t n;
} outbox;

struct nnm_link {
    nnm_link_opts o;
    char node[NNM_ID_MAX + 1];
    char mesh[NNM_ID_MAX + 1];
    char inbox[NNM_TOPIC_MAX];
    char client_id[80];
    uint8_t *cert;
    nnm_mqtt *mqtt;
    nnm_reasm *reasm;

    pthread_mutex_t mu;
    pthread_cond_t cv;              /* CLOCK_MONOTONIC */
    int wake;                       /* nnm_link_wake: the next waiting recv returns at once */
    link_peer **peers;
    size_t npeers;
    rxitem *qhead, *qtail;
    size_t qbytes;
    uint64_t stream_seq;
    nnm_link_stats st;
};

uint64_t link__now_ms(void);
uint64_t link__now_us(void);
struct timespec link__abs_ms(uint64_t abs_ms);

/* Finds or adds the peer record of id (lock held). NULL: bad id, self, or max_peers. */
link_peer *link__peer(nnm_link *l, const char *id, bool add);

/* Seals plaintext body bytes of a frame of type/request for p and appends it to ob, or
 * publishes at once when ob is NULL (lock held, so only small frames go out directly).
 * Needs p->cur. Counts nothing against the flow-control window. */
nnm_err link__seal_control(nnm_link *l, link_peer *p, const nnm_frame *f, outbox *ob,
                           nnm_diag *diag);

/* Publishes and frees what ob holds (lock NOT held); 0 from Paho's callbacks. */
void link__flush(nnm_link *l, outbox *ob, unsigned timeout_ms);

/* Sends a frame with flow control and chunking (lock NOT held), as nnm_link_send, but any
 * type. */
nnm_err link__send(nnm_link *l, const char *peer, const nnm_frame *f, nnm_diag *diag);

/* Handles an authenticated PROBE frame from p (lock held). */
void link__probe_on_frame(nnm_link *l, link_peer *p, const nnm_frame *f, outbox *ob);

#endif
