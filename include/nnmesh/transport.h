/* nnmesh/transport.h — the network half of the transport: one MQTT v5 session (nnm_mqtt)
 * and the secure peer link on top of it (nnm_link): hello handshakes, per-recipient sealed
 * frames on inbox topics, chunking, replay and trust checks, flow control and link probes.
 *
 * The wire format (frames, chunking, topics) is nnmesh/wire.h; keys and sealing are
 * nnmesh/crypto.h. docs/PROTOCOL.md section 7 describes how the link uses the frames.
 *
 * Threads: every function here may be called from any thread. Callbacks run on a thread of
 * the MQTT client library (Paho) and must not block; they may call nnm_mqtt_publish with a
 * timeout of 0. Functions that take an nnm_diag * accept NULL. */
#ifndef NNMESH_TRANSPORT_H
#define NNMESH_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

#include "nnmesh/err.h"
#include "nnmesh/tensor.h"
#include "nnmesh/wire.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Declared in nnmesh/crypto.h (repeating a typedef of the same type is valid C11). */
typedef struct nnm_identity nnm_identity;
typedef struct nnm_trust nnm_trust;

/* ==== MQTT session ========================================================================= */

#define NNM_MQTT_MAX_MESSAGE_DEFAULT (1u << 20)   /* DESIGN.md: Paho stalls past ~4 MiB */
#define NNM_MQTT_MAX_URIS 8

typedef struct nnm_mqtt nnm_mqtt;

typedef enum nnm_mqtt_event {
    NNM_MQTT_EV_CONNECTED = 1,      /* uri: the broker now connected (subscriptions restored) */
    NNM_MQTT_EV_CONNECT_FAILED = 2, /* every uri failed; retry_ms: jittered delay before next */
    NNM_MQTT_EV_LOST = 3,           /* connection lost; a reconnect follows after retry_ms */
    NNM_MQTT_EV_SUBSCRIBE_FAILED = 4 /* the broker refused a subscription (message names it) */
} nnm_mqtt_event;

/* A session event. attempt counts failures since the last successful connect (1 = first).
 * msg is one sentence. Strings are valid during the call only. Never fatal: the session keeps
 * retrying until nnm_mqtt_stop or nnm_mqtt_free. */
typedef void nnm_mqtt_event_fn(void *ctx, nnm_mqtt_event ev, const char *uri, unsigned attempt,
                               unsigned retry_ms, const char *msg);

/* An incoming message, called on Paho's receive thread. topic (NUL-terminated) and payload are
 * BORROWED: valid during the call only; copy what you keep. */
typedef void nnm_mqtt_message_fn(void *ctx, const char *topic, const uint8_t *payload,
                                 size_t len, int retained);

typedef struct nnm_mqtt_opts {
    const char *client_id;          /* required: 1..64 of [A-Za-z0-9_-], unique per broker */
    const char *uris[NNM_MQTT_MAX_URIS];  /* "tcp://host:port", tried in order; >= 1 */
    size_t nuris;
    unsigned keepalive_s;           /* default 10 */
    unsigned connect_timeout_s;     /* per attempt, default 5 */
    unsigned backoff_min_ms;        /* first retry delay, default 200 */
    unsigned backoff_max_ms;        /* cap of the doubling delay, default 10000 */
    size_t max_message;             /* largest payload published, default 1 MiB */
    int max_buffered;               /* Paho maxBufferedMessages (queue even while connected),
                                       default 256; a full queue makes publish wait */
    unsigned publish_timeout_ms;    /* how long publish waits for room in that queue (5000) */
    /* Last Will: published by the broker if the session dies; nnm_mqtt_stop publishes it
     * deliberately. will_topic NULL = none. An empty retained will clears a retained topic. */
    /* Broker credentials (MQTT user name and password), copied; NULL: anonymous. */
    const char *username;
    const char *password;
    const char *will_topic;
    const uint8_t *will_payload;
    size_t will_len;
    int will_qos;                   /* default 1 */
    int will_retain;
    /* Incoming messages: on_message if set, else a bounded queue read by nnm_mqtt_recv. */
    nnm_mqtt_message_fn *on_message;
    void *on_message_ctx;
    size_t queue_max_bytes;         /* queue cap (default 64 MiB); beyond it messages drop */
    nnm_mqtt_event_fn *on_event;    /* may be NULL: events are then only counted */
    void *on_event_ctx;
} nnm_mqtt_opts;

typedef struct nnm_mqtt_stats {
    int connected;                  /* connected and subscribed now */
    uint64_t connects;              /* successful connects (1 + reconnects) */
    uint64_t connect_failures;
    uint64_t lost;
    uint64_t published, published_bytes;
    uint64_t received, received_bytes;
    uint64_t dropped;               /* incoming messages dropped: queue full */
    char uri[128];                  /* broker of the current or last connection */
    char last_error[256];           /* last failure sentence, "" if none */
} nnm_mqtt_stats;

typedef struct nnm_mqtt_msg {
    char *topic;                    /* owned, NUL-terminated */
    uint8_t *payload;               /* owned */
    size_t len;
    int retained;
} nnm_mqtt_msg;

/* Fills o with the defaults above (client id and uris empty). */
void nnm_mqtt_opts_init(nnm_mqtt_opts *o);

/* Creates a session; copies everything in o (strings, will payload); does not connect.
 * Errors: NNM_EINVAL (no uri, bad uri, bad client id, will larger than max_message, bad
 * option), NNM_ENOMEM, NNM_ECONN (Paho refused to create the client). On error *out is NULL. */
nnm_err nnm_mqtt_new(nnm_mqtt **out, const nnm_mqtt_opts *o, nnm_diag *diag);

/* Starts connecting in the background and returns at once. Failures are retried forever with
 * jittered exponential backoff and reported through on_event; subscriptions are restored on
 * every reconnect. Errors: NNM_ESTATE (already started or stopped), NNM_ENOMEM (thread). */
nnm_err nnm_mqtt_start(nnm_mqtt *m, nnm_diag *diag);

/* Waits until the session is connected and subscribed. Errors: NNM_ETIMEOUT (the diagnostic
 * quotes the last failure), NNM_ESTATE (not started, or stopped). */
nnm_err nnm_mqtt_wait_connected(nnm_mqtt *m, unsigned timeout_ms, nnm_diag *diag);

/* Adds a subscription (an MQTT filter; "$share/<group>/<filter>" is a v5 shared subscription)
 * kept for the life of the session and restored after reconnects. When connected, waits up to
 * 5 s for the broker's answer. Errors: NNM_EINVAL (empty filter, '#' not last, bad qos),
 * NNM_ECONN (the broker refused it or did not answer), NNM_ENOMEM. Subscribing twice to one
 * filter updates its qos. */
nnm_err nnm_mqtt_subscribe(nnm_mqtt *m, const char *filter, int qos, nnm_diag *diag);

/* Removes a subscription. Errors: NNM_ENOTFOUND. */
nnm_err nnm_mqtt_unsubscribe(nnm_mqtt *m, const char *filter, nnm_diag *diag);

/* Publishes len bytes (copied) to topic. qos 0 for tensors (pipelines), 1 for small control
 * messages. Waits up to timeout_ms for room in Paho's queue (0: do not wait; use 0 inside
 * callbacks). A qos 0 publish from a thread other than Paho's also waits (up to timeout_ms,
 * at most 1.1 s) until Paho has written earlier qos 0 messages beyond 256 KiB, so none sits
 * behind a partial socket write, where Paho leaves it for ~1 s (transport/mqtt.c). Errors: NNM_ERANGE (len above max_message: chunk it), NNM_EINVAL (topic empty,
 * with a wildcard, or qos not 0..2), NNM_ECONN (not connected), NNM_ETIMEOUT (queue full). */
nnm_err nnm_mqtt_publish(nnm_mqtt *m, const char *topic, const void *payload, size_t len,
                         int qos, int retain, unsigned timeout_ms, nnm_diag *diag);

/* Takes the oldest queued incoming message (sessions without on_message) into *msg; release it
 * with nnm_mqtt_msg_cleanup. Errors: NNM_ETIMEOUT (none within timeout_ms), NNM_ESTATE
 * (the session delivers through on_message). */
nnm_err nnm_mqtt_recv(nnm_mqtt *m, nnm_mqtt_msg *msg, unsigned timeout_ms, nnm_diag *diag);

void nnm_mqtt_msg_cleanup(nnm_mqtt_msg *msg);   /* NULL-safe; zeroes msg */

/* Clean leave: stops reconnecting, publishes the will deliberately (if connected and a will is
 * set), then disconnects normally so the broker discards the will. Idempotent.
 * Errors: NNM_ECONN (the will could not be published; the session is stopped anyway). */
nnm_err nnm_mqtt_stop(nnm_mqtt *m, nnm_diag *diag);

void nnm_mqtt_get_stats(nnm_mqtt *m, nnm_mqtt_stats *st);

/* Stops (as nnm_mqtt_stop, without reporting) and frees. NULL-safe. */
void nnm_mqtt_free(nnm_mqtt *m);

/* ==== secure peer link ===================================================================== */

typedef struct nnm_link nnm_link;

typedef struct nnm_link_opts {
    const char *node_id;            /* required: [a-z0-9-]{1,32} */
    const char *mesh;               /* required: [a-z0-9-]{1,32} */
    const nnm_identity *identity;   /* required, borrowed: outlives the link */
    nnm_trust *trust;               /* required, borrowed: outlives the link, or is replaced
                                       by nnm_link_set_trust before it is freed */
    const uint8_t *cert;            /* this node's certificate or NULL (copied) */
    size_t cert_len;
    /* Broker uris, backoff, will, events. client_id NULL means "nnm-<mesh>-<node>"; the link
     * takes on_message (other topics go to on_other below). */
    nnm_mqtt_opts mqtt;
    size_t chunk_size;              /* payload bytes per CHUNK frame; default 1 MiB - 1 KiB so
                                       a sealed chunk stays within mqtt.max_message */
    size_t window_bytes;            /* flow control: unacknowledged bytes per peer (16 MiB) */
    unsigned send_timeout_ms;       /* longest a send waits for a session or credit (30000) */
    unsigned hello_retry_ms;        /* hello resend interval while connecting (1000) */
    size_t rx_queue_bytes;          /* frames waiting for nnm_link_recv, all peers (512 MiB) */
    size_t max_peers;               /* peer records (256) */
    uint64_t rekey_messages;        /* 0: crypto's default (2^32) */
    uint64_t rekey_seconds;         /* 0: crypto's default (3600) */
    nnm_wire_limits limits;         /* decoder caps */
    nnm_reasm_config reasm;         /* reassembly caps and timeout */
    nnm_mqtt_message_fn *on_other;  /* messages on subscribed topics other than the inbox */
    void *on_other_ctx;
} nnm_link_opts;

/* Why received frames were dropped, and other counters. Every frame on the inbox that is not
 * delivered, not consumed by the link itself, and not a chunk is counted in one drop_*. */
typedef struct nnm_link_stats {
    uint64_t rx_frames, rx_bytes;   /* inbox messages received */
    uint64_t tx_frames, tx_bytes;   /* messages published */
    uint64_t delivered;             /* frames returned by nnm_link_recv */
    uint64_t sessions;              /* sessions established (handshakes and rekeys) */
    uint64_t drop_malformed;        /* bad header, body, envelope length, or inner frame */
    uint64_t drop_not_for_me;       /* receiver or header topic is not this node's inbox */
    uint64_t drop_untrusted;        /* hello refused by the trust store, and later frames of
                                       that sender; frames of a revoked peer (received later,
                                       or still queued when nnm_link_set_trust revoked it) */
    uint64_t drop_no_session;       /* sealed frame under a session this node does not hold */
    uint64_t drop_bad_tag;          /* authentication failed: altered or forged */
    uint64_t drop_replay;           /* counter already seen (or too old) in its session */
    uint64_t drop_hello;            /* stale or invalid hello (duplicates are answered) */
    uint64_t drop_reasm;            /* chunk refused by the reassembler */
    uint64_t drop_queue_full;       /* rx_queue_bytes reached */
    uint64_t send_waits;            /* sends that waited for flow-control credit */
    uint64_t peers_revoked;         /* peers whose sessions nnm_link_set_trust dropped */
    nnm_reasm_stats reasm;
} nnm_link_stats;

/* A received frame. frame->hdr.sender is the authenticated peer. Byte fields of frame (and
 * of its wire tensors) point into storage owned by the message. For TASK, TENSOR and RESULT
 * frames, tensors[] holds the decoded tensors (owned). Release with nnm_link_msg_cleanup. */
typedef struct nnm_link_msg {
    nnm_frame *frame;
    size_t ntensors;
    nnm_tensor *tensors;
    double arrived_ms;   /* CLOCK_MONOTONIC, ms: when the frame was complete, opened and
                          * queued for nnm_link_recv (time in the queue is not the sender's) */
    void *buf_;
} nnm_link_msg;

/* Fills o with the defaults above (required fields NULL). */
void nnm_link_opts_init(nnm_link_opts *o);

/* Creates a link: validates o, copies it, creates the MQTT session (not yet connected) with a
 * subscription to this node's inbox. Errors: NNM_EINVAL (missing or bad field, named),
 * NNM_ENOMEM, and those of nnm_mqtt_new. On error *out is NULL. */
nnm_err nnm_link_new(nnm_link **out, const nnm_link_opts *o, nnm_diag *diag);

/* Starts the MQTT session (background connect). Errors: those of nnm_mqtt_start. */
nnm_err nnm_link_start(nnm_link *l, nnm_diag *diag);

/* The link's MQTT session (borrowed; valid until nnm_link_free), for adverts and shell topics:
 * subscriptions made there deliver to opts.on_other. */
nnm_mqtt *nnm_link_get_mqtt(nnm_link *l);

/* Replaces the trust store (t borrowed, not NULL) for everything that follows: hellos are
 * opened against t from now on, and every peer admitted before is checked again (the key and
 * certificate of the hello it was admitted with, at today's date). A peer t no longer trusts
 * is revoked at once: its sessions and pending handshake are wiped, its frames still waiting
 * for nnm_link_recv are discarded, later frames from it are dropped and counted in
 * drop_untrusted, and nnm_link_connect_peer / nnm_link_send to it fail with NNM_ETRUST (no
 * hello is sent to it) until a later store trusts its key again, or it opens a new
 * handshake whose key the current store trusts (a re-keyed node). Peers t still trusts keep
 * their sessions; peers refused before get a new chance.
 * Ownership: the link uses the store only under its mutex, which this takes, so when it
 * returns nothing uses the previous store any more: the caller may free that one then (and
 * not before). Thread-safe. Errors: NNM_EINVAL (NULL argument; nothing changed). */
nnm_err nnm_link_set_trust(nnm_link *l, nnm_trust *t);

/* Runs the hello handshake with peer_id unless a fresh session exists, resending the hello
 * every hello_retry_ms. Errors: NNM_EINVAL (bad id, or this node), NNM_ETRUST (the peer's
 * hello was refused by the trust store, or nnm_link_set_trust revoked it; the diagnostic says
 * why), NNM_ECRYPTO (its hello was
 * forged), NNM_ETIMEOUT (no answer: peer absent, on another mesh or broker, or it does not
 * trust this node), NNM_ERANGE (max_peers), NNM_ENOMEM. */
nnm_err nnm_link_connect_peer(nnm_link *l, const char *peer_id, unsigned timeout_ms,
                              nnm_diag *diag);

/* Sends f to peer, sealed for it, chunked when larger than one MQTT message, handshaking
 * first if needed. The caller sets f->hdr.type, f->hdr.request and the body; the link sets
 * the rest of the header. Types: TASK, TENSOR, RESULT, ERROR, CTL, and ACK with request != 0
 * (the others belong to the link). Blocks while the peer's flow-control window is full.
 * f is only read. Errors: NNM_EINVAL (type or a body field), NNM_ETIMEOUT (no session or no
 * credit within send_timeout_ms; after a credit timeout the session is dropped so that the
 * next send handshakes again, in case the peer restarted), NNM_ECONN (broker not connected),
 * those of nnm_link_connect_peer (NNM_ETRUST: a revoked peer), NNM_ENOMEM. A chunked frame
 * cut short by an error is discarded by the receiver's reassembly timeout. */
nnm_err nnm_link_send(nnm_link *l, const char *peer, const nnm_frame *f, nnm_diag *diag);

/* Convenience: a TENSOR frame of n wire tensors (borrowed) for request. Errors: as above. */
nnm_err nnm_link_send_tensors(nnm_link *l, const char *peer, uint64_t request,
                              const nnm_wire_tensor *tensors, size_t n, nnm_diag *diag);

/* Takes the next received frame into *msg (release with nnm_link_msg_cleanup).
 * Errors: NNM_ETIMEOUT (nothing within timeout_ms), NNM_EFORMAT or NNM_ERANGE (an
 * authenticated frame whose tensors do not decode: counted as malformed, *msg empty),
 * NNM_ENOMEM. */
nnm_err nnm_link_recv(nnm_link *l, nnm_link_msg *msg, unsigned timeout_ms, nnm_diag *diag);

void nnm_link_msg_cleanup(nnm_link_msg *msg);   /* NULL-safe; zeroes msg */

/* Makes a nnm_link_recv that is waiting (or the next one to wait) on an empty queue return
 * NNM_ETIMEOUT at once, e.g. when another thread queued work for the receiving thread.
 * Thread-safe; any thread (not under the link's callbacks' locks: it takes the link mutex). */
void nnm_link_wake(nnm_link *l);

void nnm_link_get_stats(nnm_link *l, nnm_link_stats *st);

/* Measures the link to peer: the best RTT of 3 echoed probes, then a burst of about
 * burst_bytes of padded probes timed by the receiver (0 skips the throughput part).
 * Errors: NNM_ETIMEOUT (no echo within timeout_ms), those of nnm_link_connect_peer. */
nnm_err nnm_link_probe(nnm_link *l, const char *peer, size_t burst_bytes, unsigned timeout_ms,
                       nnm_diag *diag);

/* The last estimate for peer: RTT in ms and throughput in Mbit/s (0 if never measured).
 * Errors: NNM_ENOTFOUND (never probed). */
nnm_err nnm_link_get_peer_estimate(nnm_link *l, const char *peer, double *rtt_ms,
                                   double *mbps, nnm_diag *diag);

/* Says goodbye to every peer with a session (BYE), then stops the MQTT session (publishing
 * its will) and frees. NULL-safe. */
void nnm_link_free(nnm_link *l);

#ifdef __cplusplus
}
#endif
#endif
