/* transport/mqtt.c — one MQTT v5 session over Paho MQTTAsync: broker fallback, reconnect with
 * jittered exponential backoff, Last Will and clean leave, subscriptions restored after every
 * reconnect, bounded publishing, and delivery of incoming messages.
 *
 * Why our own reconnect loop rather than Paho's automaticReconnect: Paho's has no jitter and
 * reports nothing per failed attempt. A supervisor thread owns every MQTTAsync_connect call;
 * Paho's callbacks only change the state under the mutex and wake it. Invariants:
 * - state moves DOWN -> CONNECTING -> SUBSCRIBING -> UP -> DOWN ..., and STOPPED is final;
 * - only the supervisor calls MQTTAsync_connect, and only in state DOWN;
 * - the mutex is never held while calling into Paho (its callbacks take the mutex).
 *
 * DESIGN.md facts applied here: maxBufferedMessages (default 100) limits Paho's queue even
 * while connected, so it is raised and a full queue makes publish wait; messages above
 * max_message (1 MiB) are refused, since Paho stalls on messages larger than the socket
 * buffer: callers chunk.
 *
 * Paho's stall, found for issue 3 (Paho 1.3.11-1.3.12 MQTTAsync, read in its source): when a
 * publish does not fit the socket's send buffer, Paho keeps the rest as a "pending write" and
 * skips every later command of that client; only its receive thread finishes the write (at the
 * top of its poll loop, so after the next incoming packet or its 1 s poll timeout), and
 * finishing it does not wake the send thread, which sleeps 1 s between looks at its queue. So
 * a QoS 0 message queued behind a partial write waits up to 1-2 s unless another publish comes
 * along (measured: 16 x 1 MiB bursts at 8-15 MB/s, one 1 s gap per partial write). Hence
 * (1) a QoS 0 publish from an application thread waits until Paho has written the earlier
 * ones (their onSuccess, which Paho calls once the bytes are in the socket; only small
 * messages, PACE_BYTES in all, may queue), so no large message is ever queued behind a
 * partial write and each publish wakes the send thread itself, and (2) the send buffer of
 * Paho's sockets is raised (SO_SNDBUF, below) so partial writes are rare.
 * Publishes from Paho's own threads (a link answering from on_message) never wait. */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <MQTTAsync.h>

#include "nnmesh/transport.h"

/* Longest a QoS 0 publish waits for Paho to finish writing earlier ones (Paho's own timer
 * moves a stuck queue within ~1 s; a caller that holds a lock a Paho callback needs is
 * delayed no longer than this), and how many bytes of small messages may be queued in Paho
 * meanwhile (a 1 MiB message always waits for the previous one; 1 KiB ones go 256 at a
 * time, else each would wait for Paho's send thread to come round). */
#define PACE_WAIT_MS 1100u
#define PACE_BYTES ((size_t)256 << 10)

enum { ST_IDLE, ST_DOWN, ST_CONNECTING, ST_SUBSCRIBING, ST_UP, ST_STOPPED };

typedef struct sub {
    char *filter;
    int qos;
} sub;

typedef struct qmsg {
    struct qmsg *next;
    nnm_mqtt_msg m;
} qmsg;

struct nnm_mqtt {
    MQTTAsync cli;
    int created;
    nnm_mqtt_opts o;                /* strings below are owned copies */
    char *client_id;
    char *uris[NNM_MQTT_MAX_URIS];
    char *will_topic;
    uint8_t *will_payload;
    char *username, *password;      /* password wiped on free */
    MQTTAsync_willOptions will;
    MQTTAsync_connectOptions copts;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thr;
    int thr_started;
    int state;
    int stopping;
    unsigned attempt;               /* failures since the last successful connect */
    uint64_t next_ms;               /* earliest next connect attempt (state DOWN) */
    uint64_t rng;

    sub *subs;
    size_t nsubs, capsubs;
    size_t resub_n;                 /* filters in the last restoring subscribe-many */
    int sub_pending;                /* answers awaited by nnm_mqtt_subscribe */
    int sub_result;                 /* reason code of the last answer (0 ok) */
    uint64_t sub_seq, sub_done;

    qmsg *qhead, *qtail;
    size_t qbytes;

    unsigned tx_unwritten;          /* QoS 0 publishes Paho has not finished writing */
    size_t tx_unwritten_bytes;      /* and their bytes (an upper bound) */

    nnm_mqtt_stats st;
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Absolute CLOCK_MONOTONIC deadline for pthread_cond_timedwait (the condvar uses it). */
static struct timespec abs_after(uint64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

static uint64_t rng_next(uint64_t *s)
{
    /* xorshift64*: jitter only, not security. */
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* "Equal jitter": half the doubled delay plus a random part of the other half, so retries of
 * many nodes spread out yet never come sooner than half the schedule. */
static unsigned backoff_ms(nnm_mqtt *m, unsigned attempt)
{
    uint64_t d = m->o.backoff_min_ms;
    for (unsigned i = 1; i < attempt && d < m->o.backoff_max_ms; i++) d *= 2;
    if (d > m->o.backoff_max_ms) d = m->o.backoff_max_ms;
    uint64_t half = d / 2;
    return (unsigned)(d - half + (half ? rng_next(&m->rng) % (half + 1) : 0));
}

static void emit(nnm_mqtt *m, nnm_mqtt_event ev, const char *uri, unsigned attempt,
                 unsigned retry_ms, const char *msg)
{
    if (m->o.on_event != NULL)
        m->o.on_event(m->o.on_event_ctx, ev, uri != NULL ? uri : "", attempt, retry_ms,
                      msg != NULL ? msg : "");
}

void nnm_mqtt_opts_init(nnm_mqtt_opts *o)
{
    if (o == NULL) return;
    memset(o, 0, sizeof *o);
    o->keepalive_s = 10;
    o->connect_timeout_s = 5;
    o->backoff_min_ms = 200;
    o->backoff_max_ms = 10000;
    o->max_message = NNM_MQTT_MAX_MESSAGE_DEFAULT;
    o->max_buffered = 256;
    o->publish_timeout_ms = 5000;
    o->will_qos = 1;
    o->queue_max_bytes = 64u << 20;
}

/* ---- Paho callbacks (Paho's threads) -------------------------------------------------- */

/* Set on a thread once it has run one of our Paho callbacks: it is Paho's send or receive
 * thread, which must never wait for a write to complete (the receive thread completes them). */
static _Thread_local int on_paho_thread;

/* A QoS 0 publish of len bytes (unknown on failure: 0) was written, or failed, or was
 * dropped on a disconnect. Paho completes one client's QoS 0 publishes in order. */
static void on_pub_done(void *ctx, size_t len)
{
    nnm_mqtt *m = ctx;
    on_paho_thread = 1;
    pthread_mutex_lock(&m->mu);
    if (m->tx_unwritten > 0) m->tx_unwritten--;
    m->tx_unwritten_bytes -= len < m->tx_unwritten_bytes ? len : m->tx_unwritten_bytes;
    if (m->tx_unwritten == 0) m->tx_unwritten_bytes = 0;
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
}

static void on_pub_written(void *ctx, MQTTAsync_successData5 *r)
{
    int n = r != NULL ? r->alt.pub.message.payloadlen : 0;
    on_pub_done(ctx, n > 0 ? (size_t)n : 0);
}

static void on_pub_failed(void *ctx, MQTTAsync_failureData5 *r)
{
    (void)r;
    on_pub_done(ctx, 0);
}

static void on_subscribed(void *ctx, MQTTAsync_successData5 *r);
static void on_subscribe_failed(void *ctx, MQTTAsync_failureData5 *r);

/* Issues one subscribe-many for every recorded filter; called with the mutex NOT held. */
static void resubscribe(nnm_mqtt *m)
{
    pthread_mutex_lock(&m->mu);
    size_t n = m->nsubs;
    char **filters = n ? calloc(n, sizeof *filters) : NULL;
    int *qos = n ? calloc(n, sizeof *qos) : NULL;
    for (size_t i = 0; filters != NULL && qos != NULL && i < n; i++) {
        filters[i] = strdup(m->subs[i].filter);
        qos[i] = m->subs[i].qos;
        if (filters[i] == NULL) {
            n = i;
            break;
        }
    }
    if (n == 0 || filters == NULL || qos == NULL) {
        if (m->state == ST_SUBSCRIBING) m->state = ST_UP;
        pthread_cond_broadcast(&m->cv);
        pthread_mutex_unlock(&m->mu);
        if (m->nsubs > 0) emit(m, NNM_MQTT_EV_SUBSCRIBE_FAILED, m->st.uri, 0, 0,
                               "out of memory restoring subscriptions");
        goto out;
    }
    m->resub_n = n;
    pthread_mutex_unlock(&m->mu);
    MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
    ro.onSuccess5 = on_subscribed;
    ro.onFailure5 = on_subscribe_failed;
    ro.context = m;
    int rc = MQTTAsync_subscribeMany(m->cli, (int)n, filters, qos, &ro);
    if (rc != MQTTASYNC_SUCCESS) {
        /* The connection is probably going down; the next connect retries. */
        pthread_mutex_lock(&m->mu);
        if (m->state == ST_SUBSCRIBING) m->state = ST_UP;
        pthread_cond_broadcast(&m->cv);
        pthread_mutex_unlock(&m->mu);
    }
out:
    for (size_t i = 0; filters != NULL && i < n; i++) free(filters[i]);
    free(filters);
    free(qos);
}

static void on_subscribed(void *ctx, MQTTAsync_successData5 *r)
{
    on_paho_thread = 1;
    nnm_mqtt *m = ctx;
    int bad = 0;
    /* Paho fills reasonCode for one filter and the array only for several (the array
     * fields are left uninitialised otherwise). */
    pthread_mutex_lock(&m->mu);
    size_t n = m->resub_n;
    pthread_mutex_unlock(&m->mu);
    if (r != NULL && n == 1 && r->reasonCode >= 0x80) bad = r->reasonCode;
    if (r != NULL && n > 1 && r->alt.sub.reasonCodes != NULL)
        for (int i = 0; i < r->alt.sub.reasonCodeCount && i < (int)n; i++)
            if (r->alt.sub.reasonCodes[i] >= 0x80) bad = r->alt.sub.reasonCodes[i];
    char uri[sizeof m->st.uri];
    pthread_mutex_lock(&m->mu);
    if (m->state == ST_SUBSCRIBING) m->state = ST_UP;
    snprintf(uri, sizeof uri, "%s", m->st.uri);
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
    if (bad) {
        char msg[160];
        snprintf(msg, sizeof msg, "broker %s refused a subscription: %s", uri,
                 MQTTReasonCode_toString((enum MQTTReasonCodes)bad));
        emit(m, NNM_MQTT_EV_SUBSCRIBE_FAILED, uri, 0, 0, msg);
    }
    emit(m, NNM_MQTT_EV_CONNECTED, uri, 0, 0, "connected");
}

static void on_subscribe_failed(void *ctx, MQTTAsync_failureData5 *r)
{
    on_paho_thread = 1;
    nnm_mqtt *m = ctx;
    char uri[sizeof m->st.uri], msg[200];
    pthread_mutex_lock(&m->mu);
    if (m->state == ST_SUBSCRIBING) m->state = ST_UP;
    snprintf(uri, sizeof uri, "%s", m->st.uri);
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
    snprintf(msg, sizeof msg, "restoring subscriptions on %s failed (code %d%s%s)", uri,
             r != NULL ? r->code : 0, r != NULL && r->message ? ": " : "",
             r != NULL && r->message ? r->message : "");
    emit(m, NNM_MQTT_EV_SUBSCRIBE_FAILED, uri, 0, 0, msg);
    emit(m, NNM_MQTT_EV_CONNECTED, uri, 0, 0, "connected");
}

/* Paho C leaves Nagle's algorithm on and has no option for TCP_NODELAY. The link's traffic
 * is request and answer: a PUBACK written just before the next publish holds that publish
 * until the broker's delayed ACK (~40 ms a hop, measured: a one-part LeNet request took 89 ms
 * end to end). So once connected, TCP_NODELAY is set on this process's connected TCP
 * sockets, found in /proc/self/fd: they are the MQTT connections (nnmesh opens no other TCP
 * sockets; setting it on one would be harmless anyway). Best effort: on any error the socket
 * keeps Nagle.
 *
 * The send buffer is raised to SNDBUF_BYTES as well where net.core.wmem_max allows it (the
 * kernel doubles it: 8 MiB): a 1 MiB publish then fits whole even while the broker is a few
 * messages behind, and Paho's partial writes, which wait for its receive thread (see the top
 * of this file), become rare (measured in wire_bench: 11 instead of 59 in 2,194 publishes).
 * A larger buffer is kept. */
#define SNDBUF_BYTES (4 << 20)

static void set_socket_options(void)
{
    /* Setting SO_SNDBUF turns the kernel's send-buffer autotuning off (it grows to
     * net.ipv4.tcp_wmem's maximum, 4 MiB by default) and is capped at net.core.wmem_max (208
     * KiB on many kernels): below SNDBUF_BYTES, setting it would shrink the buffer instead. */
    bool sndbuf_ok = false;
    FILE *wf = fopen("/proc/sys/net/core/wmem_max", "r");
    if (wf != NULL) {
        long wmax = 0;
        sndbuf_ok = fscanf(wf, "%ld", &wmax) == 1 && wmax >= SNDBUF_BYTES;
        fclose(wf);
    }
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL) return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char *end;
        long fd = strtol(e->d_name, &end, 10);
        if (*end != '\0' || end == e->d_name || fd < 0 || fd == dirfd(d)) continue;
        int type = 0, one = 1;
        socklen_t tl = sizeof type;
        struct sockaddr_storage sa;
        socklen_t sl = sizeof sa;
        if (getsockopt((int)fd, SOL_SOCKET, SO_TYPE, &type, &tl) != 0 || type != SOCK_STREAM)
            continue;
        if (getsockname((int)fd, (struct sockaddr *)&sa, &sl) != 0 ||
            (sa.ss_family != AF_INET && sa.ss_family != AF_INET6))
            continue;
        (void)setsockopt((int)fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        int cur = 0, want = SNDBUF_BYTES;
        socklen_t cl = sizeof cur;
        if (sndbuf_ok && getsockopt((int)fd, SOL_SOCKET, SO_SNDBUF, &cur, &cl) == 0 &&
            cur < 2 * want)
            (void)setsockopt((int)fd, SOL_SOCKET, SO_SNDBUF, &want, sizeof want);
    }
    closedir(d);
}

static void on_connected(void *ctx, MQTTAsync_successData5 *r)
{
    on_paho_thread = 1;
    set_socket_options();
    nnm_mqtt *m = ctx;
    pthread_mutex_lock(&m->mu);
    m->tx_unwritten = 0;   /* a new connection: nothing of ours is half-written */
    m->tx_unwritten_bytes = 0;
    if (m->state == ST_STOPPED || m->stopping) {
        pthread_mutex_unlock(&m->mu);
        return;
    }
    m->state = ST_SUBSCRIBING;
    m->attempt = 0;
    m->st.connects++;
    m->st.last_error[0] = '\0';
    if (r != NULL && r->alt.connect.serverURI != NULL)
        snprintf(m->st.uri, sizeof m->st.uri, "%s", r->alt.connect.serverURI);
    pthread_mutex_unlock(&m->mu);
    resubscribe(m);
}

static void on_connect_failed(void *ctx, MQTTAsync_failureData5 *r)
{
    on_paho_thread = 1;
    nnm_mqtt *m = ctx;
    char msg[256];
    pthread_mutex_lock(&m->mu);
    if (m->state == ST_STOPPED || m->stopping) {
        pthread_cond_broadcast(&m->cv);
        pthread_mutex_unlock(&m->mu);
        return;
    }
    m->attempt++;
    m->st.connect_failures++;
    unsigned attempt = m->attempt, delay = backoff_ms(m, attempt);
    m->next_ms = now_ms() + delay;
    m->state = ST_DOWN;
    char code[96] = "";
    int reason = r == NULL ? 0 : r->reasonCode != 0 ? (int)r->reasonCode
                                 : r->code >= 128 && r->code <= 162 ? r->code : 0;
    if (reason != 0) {
        /* The broker's CONNACK reason (Paho puts it in code), e.g. 135 "Not authorized":
         * a wrong user name or password, or an ACL that refuses this client. */
        const char *why = MQTTReasonCode_toString((enum MQTTReasonCodes)reason);
        snprintf(code, sizeof code, ", reason %d%s%s", reason, why ? ": " : "", why ? why : "");
    } else if (r != NULL && r->code != 0) {
        snprintf(code, sizeof code, ", code %d", r->code);
    }
    snprintf(msg, sizeof msg, "cannot connect to %s%s (attempt %u: %s%s); retrying in %u ms",
             m->uris[0], m->o.nuris > 1 ? " or its fallbacks" : "", attempt,
             r != NULL && r->message != NULL ? r->message : "connection refused or timed out",
             code, delay);
    snprintf(m->st.last_error, sizeof m->st.last_error, "%s", msg);
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
    emit(m, NNM_MQTT_EV_CONNECT_FAILED, m->uris[0], attempt, delay, msg);
}

static void on_lost(void *ctx, char *cause)
{
    on_paho_thread = 1;
    nnm_mqtt *m = ctx;
    char msg[256], uri[sizeof m->st.uri];
    pthread_mutex_lock(&m->mu);
    if (m->state == ST_STOPPED || m->stopping) {
        pthread_mutex_unlock(&m->mu);
        return;
    }
    m->st.lost++;
    m->tx_unwritten = 0;
    m->tx_unwritten_bytes = 0;
    pthread_cond_broadcast(&m->cv);
    m->attempt = 1;
    unsigned delay = backoff_ms(m, 1);
    m->next_ms = now_ms() + delay;
    m->state = ST_DOWN;
    snprintf(uri, sizeof uri, "%s", m->st.uri);
    snprintf(msg, sizeof msg, "lost the connection to %s (%s); reconnecting in %u ms", uri,
             cause != NULL ? cause : "broker closed it or keepalive expired", delay);
    snprintf(m->st.last_error, sizeof m->st.last_error, "%s", msg);
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
    if (cause != NULL) MQTTAsync_free(cause);
    emit(m, NNM_MQTT_EV_LOST, uri, 1, delay, msg);
}

static int on_message(void *ctx, char *topic, int topic_len, MQTTAsync_message *msg)
{
    on_paho_thread = 1;
    nnm_mqtt *m = ctx;
    size_t tlen = topic_len > 0 ? (size_t)topic_len : strlen(topic);
    size_t len = msg->payloadlen > 0 ? (size_t)msg->payloadlen : 0;
    if (m->o.on_message != NULL) {
        /* Paho's topic is NUL-terminated unless it contains a NUL (topic_len > 0). */
        char tbuf[512];
        const char *t = topic;
        if (topic_len > 0 || tlen != strlen(topic)) {
            size_t n = tlen < sizeof tbuf - 1 ? tlen : sizeof tbuf - 1;
            memcpy(tbuf, topic, n);
            tbuf[n] = '\0';
            t = tbuf;
        }
        pthread_mutex_lock(&m->mu);
        m->st.received++;
        m->st.received_bytes += len;
        pthread_mutex_unlock(&m->mu);
        m->o.on_message(m->o.on_message_ctx, t, msg->payload, len, msg->retained);
    } else {
        qmsg *q = calloc(1, sizeof *q);
        if (q != NULL) {
            q->m.topic = malloc(tlen + 1);
            q->m.payload = malloc(len ? len : 1);
        }
        pthread_mutex_lock(&m->mu);
        m->st.received++;
        m->st.received_bytes += len;
        if (q == NULL || q->m.topic == NULL || q->m.payload == NULL ||
            m->qbytes + len > m->o.queue_max_bytes) {
            m->st.dropped++;
            pthread_mutex_unlock(&m->mu);
            if (q != NULL) nnm_mqtt_msg_cleanup(&q->m);
            free(q);
        } else {
            memcpy(q->m.topic, topic, tlen);
            q->m.topic[tlen] = '\0';
            if (len) memcpy(q->m.payload, msg->payload, len);
            q->m.len = len;
            q->m.retained = msg->retained;
            if (m->qtail) m->qtail->next = q;
            else m->qhead = q;
            m->qtail = q;
            m->qbytes += len;
            pthread_cond_broadcast(&m->cv);
            pthread_mutex_unlock(&m->mu);
        }
    }
    MQTTAsync_freeMessage(&msg);
    MQTTAsync_free(topic);
    return 1;
}

/* ---- supervisor ----------------------------------------------------------------------- */

static void *supervise(void *arg)
{
    nnm_mqtt *m = arg;
    pthread_mutex_lock(&m->mu);
    while (!m->stopping) {
        uint64_t t = now_ms();
        if (m->state == ST_DOWN && t >= m->next_ms) {
            m->state = ST_CONNECTING;
            pthread_mutex_unlock(&m->mu);
            int rc = MQTTAsync_connect(m->cli, &m->copts);
            pthread_mutex_lock(&m->mu);
            if (rc != MQTTASYNC_SUCCESS && m->state == ST_CONNECTING) {
                m->attempt++;
                m->st.connect_failures++;
                unsigned attempt = m->attempt, delay = backoff_ms(m, attempt);
                m->next_ms = now_ms() + delay;
                m->state = ST_DOWN;
                char msg[256];
                snprintf(msg, sizeof msg, "cannot start connecting to %s (%s); retrying in %u ms",
                         m->uris[0], MQTTAsync_strerror(rc), delay);
                snprintf(m->st.last_error, sizeof m->st.last_error, "%s", msg);
                pthread_mutex_unlock(&m->mu);
                emit(m, NNM_MQTT_EV_CONNECT_FAILED, m->uris[0], attempt, delay, msg);
                pthread_mutex_lock(&m->mu);
            }
            continue;
        }
        uint64_t wait = m->state == ST_DOWN ? m->next_ms - t : 1000;
        struct timespec ts = abs_after(wait);
        pthread_cond_timedwait(&m->cv, &m->mu, &ts);
    }
    pthread_mutex_unlock(&m->mu);
    return NULL;
}

/* ---- public ------------------------------------------------------------------------------ */

static bool client_id_ok(const char *s)
{
    size_t n = s != NULL ? strlen(s) : 0;
    if (n == 0 || n > 64) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return false;
    }
    return true;
}

static bool uri_ok(const char *u)
{
    return u != NULL && (strncmp(u, "tcp://", 6) == 0 || strncmp(u, "mqtt://", 7) == 0 ||
                         strncmp(u, "ssl://", 6) == 0 || strncmp(u, "mqtts://", 8) == 0 ||
                         strncmp(u, "ws://", 5) == 0 || strncmp(u, "wss://", 6) == 0) &&
           strlen(u) < 120 && strchr(u, ' ') == NULL;
}

static bool topic_name_ok(const char *t)
{
    return t != NULL && t[0] != '\0' && strpbrk(t, "+#") == NULL && strlen(t) < 65535;
}

static bool filter_ok(const char *f)
{
    size_t n = f != NULL ? strlen(f) : 0;
    if (n == 0 || n >= 65535) return false;
    for (size_t i = 0; i < n; i++) {
        if (f[i] == '#' && (i + 1 != n || (i > 0 && f[i - 1] != '/'))) return false;
        if (f[i] == '+' && ((i > 0 && f[i - 1] != '/') || (i + 1 < n && f[i + 1] != '/')))
            return false;
    }
    if (strncmp(f, "$share/", 7) == 0) {
        const char *g = f + 7, *slash = strchr(g, '/');
        if (slash == NULL || slash == g || slash[1] == '\0') return false;
        for (const char *p = g; p < slash; p++)
            if (*p == '+' || *p == '#') return false;
    }
    return true;
}

nnm_err nnm_mqtt_new(nnm_mqtt **out, const nnm_mqtt_opts *o, nnm_diag *diag)
{
    if (out == NULL || o == NULL) return nnm_diag_set(diag, NNM_EINVAL, "nnm_mqtt_new: NULL argument");
    *out = NULL;
    if (!client_id_ok(o->client_id))
        return nnm_diag_set(diag, NNM_EINVAL,
                            "mqtt: client id '%.64s' must be 1-64 characters of A-Z, a-z, 0-9, "
                            "'-' and '_'", o->client_id != NULL ? o->client_id : "");
    if (o->nuris == 0 || o->nuris > NNM_MQTT_MAX_URIS)
        return nnm_diag_set(diag, NNM_EINVAL, "mqtt: give 1 to %d broker uris, not %zu",
                            NNM_MQTT_MAX_URIS, o->nuris);
    for (size_t i = 0; i < o->nuris; i++)
        if (!uri_ok(o->uris[i]))
            return nnm_diag_set(diag, NNM_EINVAL,
                                "mqtt: broker uri '%.120s' is not of the form tcp://host:port",
                                o->uris[i] != NULL ? o->uris[i] : "(null)");
    if (o->max_message == 0 || o->max_message > (size_t)256 << 20 || o->max_buffered <= 0 ||
        o->backoff_min_ms == 0 || o->backoff_max_ms < o->backoff_min_ms ||
        o->connect_timeout_s == 0 || o->will_qos < 0 || o->will_qos > 2)
        return nnm_diag_set(diag, NNM_EINVAL,
                            "mqtt: bad option (max_message 1..256 MiB, max_buffered > 0, "
                            "0 < backoff_min_ms <= backoff_max_ms, connect_timeout_s > 0, "
                            "will_qos 0..2)");
    if (o->will_topic != NULL &&
        (!topic_name_ok(o->will_topic) || o->will_len > o->max_message ||
         (o->will_len > 0 && o->will_payload == NULL)))
        return nnm_diag_set(diag, NNM_EINVAL,
                            "mqtt: will topic '%.100s' must be a topic name without wildcards "
                            "and its payload at most max_message bytes", o->will_topic);

    nnm_err rc = NNM_ENOMEM;
    nnm_mqtt *m = calloc(1, sizeof *m);
    if (m == NULL) return nnm_diag_set(diag, NNM_ENOMEM, "mqtt: out of memory");
    pthread_mutex_init(&m->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&m->cv, &ca);
    pthread_condattr_destroy(&ca);
    m->o = *o;
    m->state = ST_IDLE;
    m->rng = now_ms() ^ ((uint64_t)(uintptr_t)m << 16) ^ 0x9E3779B97F4A7C15ULL;
    if ((m->client_id = strdup(o->client_id)) == NULL) goto nomem;
    for (size_t i = 0; i < o->nuris; i++) {
        if ((m->uris[i] = strdup(o->uris[i])) == NULL) goto nomem;
        m->o.uris[i] = m->uris[i];
    }
    m->o.client_id = m->client_id;
    if (o->will_topic != NULL) {
        if ((m->will_topic = strdup(o->will_topic)) == NULL) goto nomem;
        /* Paho needs a non-NULL pointer even for an empty will. */
        if ((m->will_payload = malloc(o->will_len ? o->will_len : 1)) == NULL) goto nomem;
        if (o->will_len) memcpy(m->will_payload, o->will_payload, o->will_len);
        m->o.will_topic = m->will_topic;
        m->o.will_payload = m->will_payload;
    }

    MQTTAsync_createOptions co = MQTTAsync_createOptions_initializer5;
    co.maxBufferedMessages = o->max_buffered;
    co.sendWhileDisconnected = 0;
    int prc = MQTTAsync_createWithOptions(&m->cli, m->uris[0], m->client_id,
                                          MQTTCLIENT_PERSISTENCE_NONE, NULL, &co);
    if (prc != MQTTASYNC_SUCCESS) {
        rc = nnm_diag_set(diag, NNM_ECONN, "mqtt: cannot create a client for %s: %s",
                          m->uris[0], MQTTAsync_strerror(prc));
        goto fail;
    }
    m->created = 1;
    prc = MQTTAsync_setCallbacks(m->cli, m, on_lost, on_message, NULL);
    if (prc != MQTTASYNC_SUCCESS) {
        rc = nnm_diag_set(diag, NNM_ECONN, "mqtt: cannot set callbacks: %s",
                          MQTTAsync_strerror(prc));
        goto fail;
    }

    MQTTAsync_connectOptions c = MQTTAsync_connectOptions_initializer5;
    c.keepAliveInterval = (int)(o->keepalive_s ? o->keepalive_s : 10);
    c.cleanstart = 1;
    c.connectTimeout = (int)o->connect_timeout_s;
    c.automaticReconnect = 0;
    c.serverURIs = m->uris;
    c.serverURIcount = (int)o->nuris;
    c.onSuccess5 = on_connected;
    c.onFailure5 = on_connect_failed;
    c.context = m;
    c.maxInflight = 65535;
    if (m->will_topic != NULL) {
        MQTTAsync_willOptions w = MQTTAsync_willOptions_initializer;
        w.topicName = m->will_topic;
        w.message = NULL;
        w.payload.data = m->will_payload;
        w.payload.len = (int)o->will_len;
        w.qos = o->will_qos;
        w.retained = o->will_retain ? 1 : 0;
        m->will = w;
        c.will = &m->will;
    }
    if (o->username != NULL) {
        if ((m->username = strdup(o->username)) == NULL) goto nomem;
        c.username = m->username;
        m->o.username = m->username;
    }
    if (o->password != NULL) {
        if ((m->password = strdup(o->password)) == NULL) goto nomem;
        c.password = m->password;
        m->o.password = m->password;
    }
    m->copts = c;
    *out = m;
    return NNM_OK;
nomem:
    rc = nnm_diag_set(diag, NNM_ENOMEM, "mqtt: out of memory");
fail:
    nnm_mqtt_free(m);
    return rc;
}

nnm_err nnm_mqtt_start(nnm_mqtt *m, nnm_diag *diag)
{
    if (m == NULL) return nnm_diag_set(diag, NNM_EINVAL, "nnm_mqtt_start: NULL session");
    pthread_mutex_lock(&m->mu);
    if (m->state != ST_IDLE) {
        pthread_mutex_unlock(&m->mu);
        return nnm_diag_set(diag, NNM_ESTATE, "mqtt: session %s was already started",
                            m->client_id);
    }
    m->state = ST_DOWN;
    m->next_ms = 0;
    if (pthread_create(&m->thr, NULL, supervise, m) != 0) {
        m->state = ST_IDLE;
        pthread_mutex_unlock(&m->mu);
        return nnm_diag_set(diag, NNM_ENOMEM, "mqtt: cannot start the session thread: %s",
                            strerror(errno));
    }
    m->thr_started = 1;
    pthread_mutex_unlock(&m->mu);
    return NNM_OK;
}

nnm_err nnm_mqtt_wait_connected(nnm_mqtt *m, unsigned timeout_ms, nnm_diag *diag)
{
    if (m == NULL) return nnm_diag_set(diag, NNM_EINVAL, "nnm_mqtt_wait_connected: NULL session");
    struct timespec ts = abs_after(timeout_ms);
    pthread_mutex_lock(&m->mu);
    while (m->state != ST_UP) {
        if (m->state == ST_IDLE || m->state == ST_STOPPED || m->stopping) {
            pthread_mutex_unlock(&m->mu);
            return nnm_diag_set(diag, NNM_ESTATE, "mqtt: session %s is not running",
                                m->client_id);
        }
        if (pthread_cond_timedwait(&m->cv, &m->mu, &ts) == ETIMEDOUT && m->state != ST_UP) {
            char last[sizeof m->st.last_error];
            snprintf(last, sizeof last, "%s", m->st.last_error);
            pthread_mutex_unlock(&m->mu);
            return nnm_diag_set(diag, NNM_ETIMEOUT, "mqtt: not connected to %s after %u ms%s%s",
                                m->uris[0], timeout_ms, last[0] ? ": " : "", last);
        }
    }
    pthread_mutex_unlock(&m->mu);
    return NNM_OK;
}

static void on_sub_one(void *ctx, MQTTAsync_successData5 *r)
{
    on_paho_thread = 1;
    nnm_mqtt *m = ctx;
    pthread_mutex_lock(&m->mu);
    m->sub_result = r != NULL && r->reasonCode >= 0x80 ? (int)r->reasonCode : 0;
    m->sub_done++;
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
}

static void on_sub_one_failed(void *ctx, MQTTAsync_failureData5 *r)
{
    on_paho_thread = 1;
    nnm_mqtt *m = ctx;
    pthread_mutex_lock(&m->mu);
    m->sub_result = r != NULL && r->reasonCode >= 0x80 ? (int)r->reasonCode : 0x80;
    m->sub_done++;
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
}

/* Sends one SUBSCRIBE or UNSUBSCRIBE and waits for its answer (serialised by sub_seq). */
static nnm_err sub_call(nnm_mqtt *m, const char *filter, int qos, int unsub, nnm_diag *diag)
{
    pthread_mutex_lock(&m->mu);
    while (m->sub_pending) pthread_cond_wait(&m->cv, &m->mu);
    if (m->state != ST_UP) {
        pthread_mutex_unlock(&m->mu);
        return NNM_OK;   /* recorded; applied at the next connect */
    }
    m->sub_pending = 1;
    uint64_t want = m->sub_done + 1;
    pthread_mutex_unlock(&m->mu);
    MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
    ro.onSuccess5 = on_sub_one;
    ro.onFailure5 = on_sub_one_failed;
    ro.context = m;
    int prc = unsub ? MQTTAsync_unsubscribe(m->cli, filter, &ro)
                    : MQTTAsync_subscribe(m->cli, filter, qos, &ro);
    nnm_err rc = NNM_OK;
    pthread_mutex_lock(&m->mu);
    if (prc != MQTTASYNC_SUCCESS) {
        rc = nnm_diag_set(diag, NNM_ECONN, "mqtt: cannot %ssubscribe '%.200s': %s",
                          unsub ? "un" : "", filter, MQTTAsync_strerror(prc));
    } else {
        struct timespec ts = abs_after(5000);
        while (m->sub_done < want)
            if (pthread_cond_timedwait(&m->cv, &m->mu, &ts) == ETIMEDOUT) break;
        if (m->sub_done < want)
            rc = nnm_diag_set(diag, NNM_ECONN, "mqtt: broker %s did not answer the %ssubscribe "
                              "of '%.200s' within 5 s", m->st.uri, unsub ? "un" : "", filter);
        else if (m->sub_result != 0)
            rc = nnm_diag_set(diag, NNM_ECONN, "mqtt: broker %s refused to %ssubscribe "
                              "'%.200s': %s", m->st.uri, unsub ? "un" : "", filter,
                              MQTTReasonCode_toString((enum MQTTReasonCodes)m->sub_result));
        m->sub_done = m->sub_done > want ? m->sub_done : want;
    }
    m->sub_pending = 0;
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
    return rc;
}

nnm_err nnm_mqtt_subscribe(nnm_mqtt *m, const char *filter, int qos, nnm_diag *diag)
{
    if (m == NULL) return nnm_diag_set(diag, NNM_EINVAL, "nnm_mqtt_subscribe: NULL session");
    if (!filter_ok(filter) || qos < 0 || qos > 2)
        return nnm_diag_set(diag, NNM_EINVAL,
                            "mqtt: '%.200s' is not a valid filter with qos 0..2 ('#' only "
                            "last, '+' a whole level, $share/<group>/<filter>)",
                            filter != NULL ? filter : "(null)");
    pthread_mutex_lock(&m->mu);
    size_t i = 0;
    while (i < m->nsubs && strcmp(m->subs[i].filter, filter) != 0) i++;
    if (i == m->nsubs) {
        if (m->nsubs == m->capsubs) {
            size_t cap = m->capsubs ? 2 * m->capsubs : 8;
            sub *ns = realloc(m->subs, cap * sizeof *ns);
            if (ns == NULL) {
                pthread_mutex_unlock(&m->mu);
                return nnm_diag_set(diag, NNM_ENOMEM, "mqtt: out of memory for a subscription");
            }
            m->subs = ns;
            m->capsubs = cap;
        }
        char *dup = strdup(filter);
        if (dup == NULL) {
            pthread_mutex_unlock(&m->mu);
            return nnm_diag_set(diag, NNM_ENOMEM, "mqtt: out of memory for a subscription");
        }
        m->subs[m->nsubs++] = (sub){dup, qos};
    } else {
        m->subs[i].qos = qos;
    }
    pthread_mutex_unlock(&m->mu);
    return sub_call(m, filter, qos, 0, diag);
}

nnm_err nnm_mqtt_unsubscribe(nnm_mqtt *m, const char *filter, nnm_diag *diag)
{
    if (m == NULL || filter == NULL)
        return nnm_diag_set(diag, NNM_EINVAL, "nnm_mqtt_unsubscribe: NULL argument");
    pthread_mutex_lock(&m->mu);
    size_t i = 0;
    while (i < m->nsubs && strcmp(m->subs[i].filter, filter) != 0) i++;
    if (i == m->nsubs) {
        pthread_mutex_unlock(&m->mu);
        return nnm_diag_set(diag, NNM_ENOTFOUND, "mqtt: not subscribed to '%.200s'", filter);
    }
    free(m->subs[i].filter);
    m->subs[i] = m->subs[--m->nsubs];
    pthread_mutex_unlock(&m->mu);
    return sub_call(m, filter, 0, 1, diag);
}

nnm_err nnm_mqtt_publish(nnm_mqtt *m, const char *topic, const void *payload, size_t len,
                         int qos, int retain, unsigned timeout_ms, nnm_diag *diag)
{
    if (m == NULL || (payload == NULL && len > 0))
        return nnm_diag_set(diag, NNM_EINVAL, "nnm_mqtt_publish: NULL argument");
    if (!topic_name_ok(topic) || qos < 0 || qos > 2)
        return nnm_diag_set(diag, NNM_EINVAL, "mqtt: cannot publish to '%.200s' with qos %d: "
                            "a topic name has no wildcards, qos is 0..2",
                            topic != NULL ? topic : "(null)", qos);
    if (len > m->o.max_message)
        return nnm_diag_set(diag, NNM_ERANGE, "mqtt: a %zu-byte message exceeds the %zu-byte "
                            "limit; chunk it", len, m->o.max_message);
    static const char empty[1];
    MQTTAsync_message msg = MQTTAsync_message_initializer;
    msg.payload = len ? (void *)payload : (void *)empty;
    msg.payloadlen = (int)len;
    msg.qos = qos;
    msg.retained = retain ? 1 : 0;
    MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
    uint64_t deadline = now_ms() + timeout_ms;
    int paced = qos == 0 && !on_paho_thread;
    if (paced) {
        /* Wait until Paho has written our previous QoS 0 message (top of this file). Bounded:
         * Paho itself moves on within ~1 s; past that, recount rather than wait again. */
        ro.onSuccess5 = on_pub_written;
        ro.onFailure5 = on_pub_failed;
        ro.context = m;
        pthread_mutex_lock(&m->mu);
        if (timeout_ms > 0) {   /* 0: the caller may not wait; just hand it over */
            struct timespec ts = abs_after(timeout_ms < PACE_WAIT_MS ? timeout_ms : PACE_WAIT_MS);
            while (m->tx_unwritten > 0 && m->tx_unwritten_bytes + len > PACE_BYTES &&
                   !m->stopping)
                if (pthread_cond_timedwait(&m->cv, &m->mu, &ts) == ETIMEDOUT) {
                    m->tx_unwritten = 0;
                    m->tx_unwritten_bytes = 0;
                }
        }
        m->tx_unwritten++;
        m->tx_unwritten_bytes += len;
        pthread_mutex_unlock(&m->mu);
    }
    unsigned nap_us = 200;
    for (;;) {
        int prc = MQTTAsync_sendMessage(m->cli, topic, &msg, &ro);
        if (prc == MQTTASYNC_SUCCESS) break;
        bool retry = prc == MQTTASYNC_MAX_BUFFERED_MESSAGES ||
                     prc == MQTTASYNC_MAX_MESSAGES_INFLIGHT;
        if (paced && (!retry || now_ms() >= deadline)) {
            /* not handed over: no callback will come for it */
            pthread_mutex_lock(&m->mu);
            if (m->tx_unwritten > 0) m->tx_unwritten--;
            m->tx_unwritten_bytes -= len < m->tx_unwritten_bytes ? len : m->tx_unwritten_bytes;
            pthread_cond_broadcast(&m->cv);
            pthread_mutex_unlock(&m->mu);
        }
        if (prc == MQTTASYNC_MAX_BUFFERED_MESSAGES || prc == MQTTASYNC_MAX_MESSAGES_INFLIGHT) {
            if (now_ms() >= deadline)
                return nnm_diag_set(diag, NNM_ETIMEOUT, "mqtt: outgoing queue of %s stayed "
                                    "full (%d messages) for %u ms", m->client_id,
                                    m->o.max_buffered, timeout_ms);
            struct timespec ts = {0, (long)nap_us * 1000L};
            nanosleep(&ts, NULL);
            if (nap_us < 5000) nap_us *= 2;
            continue;
        }
        if (prc == MQTTASYNC_DISCONNECTED)
            return nnm_diag_set(diag, NNM_ECONN, "mqtt: %s is not connected to a broker "
                                "(publishing to '%.200s')", m->client_id, topic);
        return nnm_diag_set(diag, NNM_ECONN, "mqtt: publishing %zu bytes to '%.200s' failed: %s",
                            len, topic, MQTTAsync_strerror(prc));
    }
    pthread_mutex_lock(&m->mu);
    m->st.published++;
    m->st.published_bytes += len;
    pthread_mutex_unlock(&m->mu);
    return NNM_OK;
}

nnm_err nnm_mqtt_recv(nnm_mqtt *m, nnm_mqtt_msg *msg, unsigned timeout_ms, nnm_diag *diag)
{
    if (m == NULL || msg == NULL)
        return nnm_diag_set(diag, NNM_EINVAL, "nnm_mqtt_recv: NULL argument");
    memset(msg, 0, sizeof *msg);
    if (m->o.on_message != NULL)
        return nnm_diag_set(diag, NNM_ESTATE, "mqtt: session %s delivers through a callback",
                            m->client_id);
    struct timespec ts = abs_after(timeout_ms);
    pthread_mutex_lock(&m->mu);
    while (m->qhead == NULL) {
        if (pthread_cond_timedwait(&m->cv, &m->mu, &ts) == ETIMEDOUT && m->qhead == NULL) {
            pthread_mutex_unlock(&m->mu);
            return nnm_diag_set(diag, NNM_ETIMEOUT, "mqtt: no message within %u ms", timeout_ms);
        }
    }
    qmsg *q = m->qhead;
    m->qhead = q->next;
    if (m->qhead == NULL) m->qtail = NULL;
    m->qbytes -= q->m.len;
    pthread_mutex_unlock(&m->mu);
    *msg = q->m;
    free(q);
    return NNM_OK;
}

void nnm_mqtt_msg_cleanup(nnm_mqtt_msg *msg)
{
    if (msg == NULL) return;
    free(msg->topic);
    free(msg->payload);
    memset(msg, 0, sizeof *msg);
}

static void on_disconnected(void *ctx, MQTTAsync_successData5 *r)
{
    on_paho_thread = 1;
    (void)r;
    nnm_mqtt *m = ctx;
    pthread_mutex_lock(&m->mu);
    m->state = ST_STOPPED;
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
}

static void on_disconnect_failed(void *ctx, MQTTAsync_failureData5 *r)
{
    (void)r;
    on_disconnected(ctx, NULL);
}

static nnm_err stop(nnm_mqtt *m, int publish_will, nnm_diag *diag)
{
    pthread_mutex_lock(&m->mu);
    if (m->state == ST_STOPPED || m->stopping) {
        pthread_mutex_unlock(&m->mu);
        return NNM_OK;
    }
    int was_up = m->state == ST_UP || m->state == ST_SUBSCRIBING;
    int started = m->state != ST_IDLE;
    m->stopping = 1;
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
    if (m->thr_started) {
        pthread_join(m->thr, NULL);
        m->thr_started = 0;
    }
    nnm_err rc = NNM_OK;
    if (was_up && publish_will && m->will_topic != NULL) {
        /* The deliberate will: QoS 1 and waited for, so it is on the broker before we go. */
        MQTTAsync_message msg = MQTTAsync_message_initializer;
        msg.payload = m->will_payload;
        msg.payloadlen = (int)m->o.will_len;
        msg.qos = m->o.will_qos > 0 ? m->o.will_qos : 1;
        msg.retained = m->o.will_retain ? 1 : 0;
        MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
        int prc = MQTTAsync_sendMessage(m->cli, m->will_topic, &msg, &ro);
        if (prc == MQTTASYNC_SUCCESS) prc = MQTTAsync_waitForCompletion(m->cli, ro.token, 5000);
        if (prc != MQTTASYNC_SUCCESS)
            rc = nnm_diag_set(diag, NNM_ECONN, "mqtt: could not publish the leave message on "
                              "'%.200s' (%s); the broker will publish the will when the "
                              "session times out", m->will_topic, MQTTAsync_strerror(prc));
    }
    if (started && MQTTAsync_isConnected(m->cli)) {
        /* Let QoS 1 messages in flight complete (up to 2 s), watching Paho's pending tokens
         * ourselves: left to MQTTAsync_disconnect's own timeout, Paho noticed the last
         * acknowledgement only at its next 1 s receive-loop tick or at the timeout, so a
         * short-lived client ('nnmesh infer') sometimes lingered 3 s after its answer. */
        uint64_t until = now_ms() + 2000;
        for (;;) {
            MQTTAsync_token *tokens = NULL;
            int prc = MQTTAsync_getPendingTokens(m->cli, &tokens);
            int pending = prc == MQTTASYNC_SUCCESS && tokens != NULL && tokens[0] != -1;
            if (tokens != NULL) MQTTAsync_free(tokens);
            if (!pending || now_ms() >= until || !MQTTAsync_isConnected(m->cli)) break;
            struct timespec nap = {0, 5 * 1000000L};
            nanosleep(&nap, NULL);
        }
        MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer5;
        d.timeout = 0;
        d.onSuccess5 = on_disconnected;
        d.onFailure5 = on_disconnect_failed;
        d.context = m;
        d.reasonCode = MQTTREASONCODE_NORMAL_DISCONNECTION;
        if (MQTTAsync_disconnect(m->cli, &d) == MQTTASYNC_SUCCESS) {
            struct timespec ts = abs_after(3000);
            pthread_mutex_lock(&m->mu);
            while (m->state != ST_STOPPED)
                if (pthread_cond_timedwait(&m->cv, &m->mu, &ts) == ETIMEDOUT) break;
            pthread_mutex_unlock(&m->mu);
        }
    }
    pthread_mutex_lock(&m->mu);
    m->state = ST_STOPPED;
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
    return rc;
}

nnm_err nnm_mqtt_stop(nnm_mqtt *m, nnm_diag *diag)
{
    if (m == NULL) return nnm_diag_set(diag, NNM_EINVAL, "nnm_mqtt_stop: NULL session");
    return stop(m, 1, diag);
}

void nnm_mqtt_get_stats(nnm_mqtt *m, nnm_mqtt_stats *st)
{
    if (st == NULL) return;
    memset(st, 0, sizeof *st);
    if (m == NULL) return;
    pthread_mutex_lock(&m->mu);
    *st = m->st;
    st->connected = m->state == ST_UP;
    pthread_mutex_unlock(&m->mu);
}

void nnm_mqtt_free(nnm_mqtt *m)
{
    if (m == NULL) return;
    if (m->created) {
        stop(m, 1, NULL);
        MQTTAsync_destroy(&m->cli);   /* no callback runs after this */
    }
    for (size_t i = 0; i < m->nsubs; i++) free(m->subs[i].filter);
    free(m->subs);
    while (m->qhead != NULL) {
        qmsg *q = m->qhead;
        m->qhead = q->next;
        nnm_mqtt_msg_cleanup(&q->m);
        free(q);
    }
    free(m->client_id);
    for (size_t i = 0; i < NNM_MQTT_MAX_URIS; i++) free(m->uris[i]);
    free(m->will_topic);
    free(m->username);
    if (m->password != NULL) {
        volatile char *p = m->password;
        while (*p) *p++ = 0;
        free(m->password);
    }
    free(m->will_payload);
    pthread_cond_destroy(&m->cv);
    pthread_mutex_destroy(&m->mu);
    free(m);
}
