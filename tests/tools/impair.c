/* tests/tools/impair.c — a userspace link impairment proxy for the fault tests (the kernel
 * of the test machines has no netem).
 *
 * It listens on one TCP address and forwards every connection it accepts to another, and per
 * direction adds a one-way delay with jitter, a bandwidth limit (token bucket), stalls and
 * cuts, all changeable at run time through a UNIX socket. It counts connections and bytes so
 * a test can tell a reconnect storm from a well-behaved backoff. See usage_text below.
 *
 * Design: one thread, one poll() loop, non-blocking sockets. Bytes read from one side of a
 * connection become chunks in that direction's queue, each stamped with its release time;
 * the writer sends released bytes as the token bucket allows. Invariants:
 *   - byte order is kept: a chunk's release time is max(previous release, arrival + delay +
 *     jitter sample), so release times never decrease along a queue;
 *   - memory is bounded: a direction stops reading its source once `buffer` bytes are
 *     queued (TCP flow control then holds the sender back);
 *   - an end of stream is passed on (shutdown(SHUT_WR)) only after every byte before it has
 *     been written; an error or reset on either side resets both (SO_LINGER 0). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static const char usage_text[] =
"NAME\n"
"    impair - a TCP proxy that impairs a link: delay, jitter, bandwidth, stalls, cuts\n"
"\n"
"SYNOPSIS\n"
"    impair --listen HOST:PORT --to HOST:PORT [--delay MS] [--jitter MS] [--rate BPS]\n"
"           [--buffer BYTES] [--control PATH] [--log PATH] [--seed N]\n"
"    impair --control PATH --send COMMAND\n"
"    impair --help\n"
"\n"
"DESCRIPTION\n"
"    Accepts TCP connections on --listen and forwards each one to --to. Each direction\n"
"    of each connection is impaired the same way:\n"
"      delay   every chunk read is released DELAY + a uniform sample of 0..JITTER ms\n"
"              after it arrived, but never before the chunk ahead of it (byte order is\n"
"              kept; so the measured one-way delay is at least DELAY);\n"
"      rate    released bytes leave through a token bucket of RATE bits/s (burst 20 ms\n"
"              of RATE, at least 1500 bytes); off by default;\n"
"      buffer  at most BYTES (default 1048576) wait per direction; past that the proxy\n"
"              stops reading that side and TCP flow control holds the sender.\n"
"    On the first line of standard output it prints 'listening on HOST:PORT' (give port\n"
"    0 to let the system choose one).\n"
"\n"
"CONTROL\n"
"    With --control PATH the proxy listens on a UNIX stream socket at PATH (removed at\n"
"    exit). A client writes one command per line and reads one reply line per command,\n"
"    'ok ...' or 'error: ...'. 'impair --control PATH --send COMMAND' sends one command,\n"
"    prints the reply and exits 0 on 'ok', 1 otherwise. Commands:\n"
"      delay MS [JITTER]  set the one-way delay (and jitter, default 0), ms\n"
"      rate BPS|off       set or remove the bandwidth limit; BPS may end in k, M or G\n"
"      stall              hold all data both ways; connections stay open, new ones are\n"
"                         accepted and connected but carry nothing\n"
"      resume             end a stall; held data flows again\n"
"      cut                reset (RST) every current connection and reset each new one\n"
"                         right after accepting it (counted as 'refused') until heal\n"
"      cut hold           a silent partition: nothing passes on any connection and new\n"
"                         ones are accepted but not connected onwards until heal; no\n"
"                         resets, so each end only notices through its own timeouts\n"
"      heal               end a cut; after 'cut hold' held data and held connections\n"
"                         go on as if the network had come back\n"
"      stats              counters (see STATISTICS)\n"
"      show               the current settings\n"
"\n"
"STATISTICS\n"
"    'accepted N refused N active N up BYTES down BYTES resets N connect_failures N\n"
"    state STATE': connections accepted and forwarded, connections refused during a cut,\n"
"    connections open now, bytes delivered client-to-server (up) and server-to-client\n"
"    (down), connections reset by the proxy (cut, error on either side), failed connects\n"
"    to --to, and normal, stalled, cut or cut-hold. Printed to the log on SIGUSR1 and at\n"
"    exit (SIGTERM, SIGINT), and answered to the 'stats' command.\n"
"\n"
"OPTIONS\n"
"    --listen HOST:PORT   address to accept connections on ([::1]:PORT for IPv6)\n"
"    --to HOST:PORT       address to forward them to\n"
"    --delay MS           initial one-way delay (default 0)\n"
"    --jitter MS          initial jitter, added uniformly in 0..MS (default 0)\n"
"    --rate BPS           initial bandwidth limit in bits/s, per direction (default off)\n"
"    --buffer BYTES       bytes held per direction of a connection (default 1048576)\n"
"    --control PATH       UNIX socket for run-time commands\n"
"    --send COMMAND       with --control: send one command and print the reply\n"
"    --log PATH           append events and statistics to PATH (default stderr)\n"
"    --seed N             seed of the jitter generator (default: time and pid)\n"
"\n"
"EXIT STATUS\n"
"    0 after SIGTERM or SIGINT (or an 'ok' reply with --send); 1 on errors (one line on\n"
"    stderr says which); 2 on usage errors.\n"
"\n"
"EXAMPLES\n"
"    impair --listen 127.0.0.1:0 --to 127.0.0.1:1883 --delay 500 --jitter 50 \\\n"
"           --control /tmp/link.ctl --log /tmp/link.log &\n"
"    impair --control /tmp/link.ctl --send 'rate 1M'\n"
"    impair --control /tmp/link.ctl --send cut; sleep 30\n"
"    impair --control /tmp/link.ctl --send heal\n";

#define READ_MAX 16384
#define HOST_MAX 1025      /* NI_MAXHOST, which POSIX does not define */
#define SERV_MAX 32
#define POLL_MAX_MS 1000

enum state { ST_NORMAL, ST_STALLED, ST_CUT, ST_CUT_HOLD };
static const char *const state_names[] = {"normal", "stalled", "cut", "cut-hold"};

struct chunk {
    struct chunk *next;
    uint64_t release_us;
    size_t len, off;
    unsigned char data[];
};

/* One direction of a connection: bytes read from `src`, written to `dst`. */
struct dir {
    struct chunk *head, *tail;
    size_t queued;
    uint64_t last_release_us;
    double tokens;
    uint64_t tokens_us;
    bool eof;       /* the source ended its stream */
    bool shut;      /* the end of stream was passed on */
    bool blocked;   /* the last write would have blocked: wait for POLLOUT */
};

struct conn {
    struct conn *next;
    unsigned id;
    int cfd, sfd;          /* client side, server side (-1 until connecting) */
    bool connecting, connected;
    struct dir up, down;   /* up: client -> server, down: server -> client */
    int cpoll, spoll;      /* indexes into the poll set of this round, -1 if absent */
    bool dead;
};

struct ctl_client {
    struct ctl_client *next;
    int fd;
    char buf[512];
    size_t len;
    int poll;
    bool dead;
};

static struct {
    uint64_t delay_us, jitter_us;
    uint64_t rate_bps;          /* 0 = unlimited */
    size_t buffer;
    enum state state;
    struct addrinfo *to;
    int lfd, cfd;               /* listening socket, control socket */
    const char *control_path;
    FILE *log;
    uint64_t rng;
    uint64_t t0_us;
    struct conn *conns;
    struct ctl_client *ctls;
    unsigned next_id;
    uint64_t accepted, refused, resets, connect_failures, bytes_up, bytes_down;
} P;

static int sig_pipe[2] = {-1, -1};

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void logf_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logf_(const char *fmt, ...)
{
    uint64_t t = now_us() - P.t0_us;
    fprintf(P.log, "[%6" PRIu64 ".%03" PRIu64 "] impair: ", t / 1000000u, t / 1000u % 1000u);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(P.log, fmt, ap);
    va_end(ap);
    fputc('\n', P.log);
    fflush(P.log);
}

static uint64_t rng_next(void)
{
    uint64_t x = P.rng;   /* xorshift64*: jitter only */
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    P.rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static int set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* Closes fd with an RST rather than a FIN. */
static void close_reset(int fd)
{
    if (fd < 0) return;
    struct linger lg = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
}

/* Parses a decimal number with an optional k/M/G suffix (powers of 1000) into *out; 0 on
 * success, -1 if s is not such a number or it overflows. */
static int parse_num(const char *s, uint64_t *out, bool suffix)
{
    if (s == NULL || *s < '0' || *s > '9') return -1;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0) return -1;
    uint64_t mul = 1;
    if (suffix && *end != '\0' && end[1] == '\0') {
        if (*end == 'k' || *end == 'K') mul = 1000;
        else if (*end == 'M') mul = 1000000;
        else if (*end == 'G') mul = 1000000000;
        else return -1;
        end++;
    }
    if (*end != '\0' || v > UINT64_MAX / mul) return -1;
    *out = (uint64_t)v * mul;
    return 0;
}

/* Splits "HOST:PORT" (or "[V6]:PORT") and resolves it; NULL with a message on failure. */
static struct addrinfo *resolve(const char *spec, bool passive)
{
    char host[256];
    const char *colon = strrchr(spec, ':');
    if (colon == NULL || colon == spec || colon[1] == '\0' ||
        (size_t)(colon - spec) >= sizeof host) {
        fprintf(stderr, "impair: '%s' is not HOST:PORT\n", spec);
        return NULL;
    }
    memcpy(host, spec, (size_t)(colon - spec));
    host[colon - spec] = '\0';
    char *h = host;
    size_t hl = strlen(h);
    if (h[0] == '[' && hl > 2 && h[hl - 1] == ']') { h[hl - 1] = '\0'; h++; }
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = passive ? AI_PASSIVE : 0;
    int rc = getaddrinfo(h, colon + 1, &hints, &ai);
    if (rc != 0) {
        fprintf(stderr, "impair: cannot resolve '%s': %s\n", spec, gai_strerror(rc));
        return NULL;
    }
    return ai;
}

static void print_addr(char *out, size_t n, const struct sockaddr *sa, socklen_t len)
{
    char h[HOST_MAX], s[SERV_MAX];
    if (getnameinfo(sa, len, h, sizeof h, s, sizeof s, NI_NUMERICHOST | NI_NUMERICSERV) != 0)
        snprintf(out, n, "?");
    else
        snprintf(out, n, strchr(h, ':') ? "[%s]:%s" : "%s:%s", h, s);
}

/* ---- connections ---- */

static void dir_clear(struct dir *d)
{
    while (d->head != NULL) {
        struct chunk *c = d->head;
        d->head = c->next;
        free(c);
    }
    d->tail = NULL;
    d->queued = 0;
}

static void conn_reset(struct conn *c, const char *why)
{
    if (c->dead) return;
    logf_("connection %u reset (%s); up %zu and down %zu bytes undelivered", c->id, why,
          c->up.queued, c->down.queued);
    close_reset(c->cfd);
    close_reset(c->sfd);
    c->cfd = c->sfd = -1;
    dir_clear(&c->up);
    dir_clear(&c->down);
    c->dead = true;
    P.resets++;
}

static void conn_close(struct conn *c)
{
    logf_("connection %u closed by both ends", c->id);
    close(c->cfd);
    close(c->sfd);
    c->cfd = c->sfd = -1;
    c->dead = true;
}

static void start_connect(struct conn *c)
{
    int fd = -1;
    for (struct addrinfo *a = P.to; a != NULL; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
        if (fd < 0) continue;
        if (set_nonblock(fd) == 0 &&
            (connect(fd, a->ai_addr, a->ai_addrlen) == 0 || errno == EINPROGRESS))
            break;
        close(fd);
        fd = -1;
    }
    if (fd < 0) {
        P.connect_failures++;
        conn_reset(c, "cannot connect onwards");
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->sfd = fd;
    c->connecting = true;
}

static void do_accept(void)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    int fd = accept(P.lfd, (struct sockaddr *)&ss, &sl);
    if (fd < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
            logf_("accept: %s", strerror(errno));
        return;
    }
    char from[HOST_MAX + SERV_MAX + 4];
    print_addr(from, sizeof from, (struct sockaddr *)&ss, sl);
    if (P.state == ST_CUT) {
        P.refused++;
        logf_("refused a connection from %s (link cut; %" PRIu64 " refused so far)", from,
              P.refused);
        close_reset(fd);
        return;
    }
    struct conn *c = calloc(1, sizeof *c);
    if (c == NULL || set_nonblock(fd) != 0) {
        logf_("out of memory or fcntl failed: dropping a connection from %s", from);
        free(c);
        close_reset(fd);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->id = ++P.next_id;
    c->cfd = fd;
    c->sfd = -1;
    c->next = P.conns;
    P.conns = c;
    P.accepted++;
    logf_("connection %u from %s accepted (%" PRIu64 " so far)%s", c->id, from, P.accepted,
          P.state == ST_CUT_HOLD ? "; held until heal" : "");
    if (P.state != ST_CUT_HOLD) start_connect(c);
}

/* Reads what the direction has room for from fd. */
static void dir_read(struct conn *c, struct dir *d, int fd, const char *side)
{
    unsigned char buf[READ_MAX];
    size_t room = P.buffer - d->queued;
    if (room > sizeof buf) room = sizeof buf;
    ssize_t n = recv(fd, buf, room, 0);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
        char why[96];
        snprintf(why, sizeof why, "%s: %s", side, strerror(errno));
        conn_reset(c, why);
        return;
    }
    if (n == 0) {
        d->eof = true;
        return;
    }
    struct chunk *ch = malloc(sizeof *ch + (size_t)n);
    if (ch == NULL) {
        conn_reset(c, "out of memory");
        return;
    }
    uint64_t t = now_us() + P.delay_us;
    if (P.jitter_us > 0) t += rng_next() % (P.jitter_us + 1);
    if (t < d->last_release_us) t = d->last_release_us;
    d->last_release_us = t;
    ch->next = NULL;
    ch->release_us = t;
    ch->len = (size_t)n;
    ch->off = 0;
    memcpy(ch->data, buf, (size_t)n);
    if (d->tail != NULL) d->tail->next = ch;
    else d->head = ch;
    d->tail = ch;
    d->queued += (size_t)n;
}

static double bucket_size(void)
{
    double b = (double)P.rate_bps / 8.0 / 50.0;
    return b < 1500 ? 1500 : b;
}

static void refill(struct dir *d, uint64_t now)
{
    if (P.rate_bps == 0) return;
    if (now > d->tokens_us) {
        d->tokens += (double)(now - d->tokens_us) * (double)P.rate_bps / 8e6;
        double b = bucket_size();
        if (d->tokens > b) d->tokens = b;
    }
    d->tokens_us = now;
}

static bool flowing(void)
{
    return P.state == ST_NORMAL || P.state == ST_CUT;
}

/* Writes the released bytes of d to fd as the token bucket allows; sets *wake_us to when it
 * will have more to do (unchanged if nothing is pending). */
static void dir_pump(struct conn *c, struct dir *d, int fd, uint64_t *counter, uint64_t now,
                     uint64_t *wake_us, const char *side)
{
    if (c->dead || !c->connected || !flowing() || d->blocked) return;
    while (d->head != NULL) {
        struct chunk *ch = d->head;
        if (ch->release_us > now) {
            if (ch->release_us < *wake_us) *wake_us = ch->release_us;
            return;
        }
        size_t n = ch->len - ch->off;
        if (P.rate_bps != 0) {
            refill(d, now);
            if (d->tokens < (double)n) {
                double want = bucket_size() < (double)n ? bucket_size() : (double)n;
                if (d->tokens < want) {
                    uint64_t w = now + (uint64_t)((want - d->tokens) * 8e6 / (double)P.rate_bps) + 1;
                    if (w < *wake_us) *wake_us = w;
                    if (d->tokens < 1) return;
                }
                n = (size_t)d->tokens;
            }
        }
        ssize_t k = send(fd, ch->data + ch->off, n, MSG_NOSIGNAL);
        if (k < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                d->blocked = true;
                return;
            }
            if (errno == EINTR) continue;
            char why[96];
            snprintf(why, sizeof why, "%s: %s", side, strerror(errno));
            conn_reset(c, why);
            return;
        }
        if (P.rate_bps != 0) d->tokens -= (double)k;
        *counter += (uint64_t)k;
        ch->off += (size_t)k;
        d->queued -= (size_t)k;
        if (ch->off == ch->len) {
            d->head = ch->next;
            if (d->head == NULL) d->tail = NULL;
            free(ch);
        }
    }
    if (d->eof && !d->shut) {
        shutdown(fd, SHUT_WR);
        d->shut = true;
    }
}

static void conns_reap(void)
{
    struct conn **pp = &P.conns;
    while (*pp != NULL) {
        struct conn *c = *pp;
        if (!c->dead && c->up.shut && c->down.shut) conn_close(c);
        if (c->dead) {
            *pp = c->next;
            free(c);
        } else {
            pp = &c->next;
        }
    }
}

/* ---- control ---- */

static unsigned active_count(void)
{
    unsigned n = 0;
    for (struct conn *c = P.conns; c != NULL; c = c->next) n += !c->dead;
    return n;
}

static void stats_line(char *out, size_t n)
{
    snprintf(out, n,
             "accepted %" PRIu64 " refused %" PRIu64 " active %u up %" PRIu64 " down %" PRIu64
             " resets %" PRIu64 " connect_failures %" PRIu64 " state %s",
             P.accepted, P.refused, active_count(), P.bytes_up, P.bytes_down, P.resets,
             P.connect_failures, state_names[P.state]);
}

static void settings_line(char *out, size_t n)
{
    char rate[32] = "off";
    if (P.rate_bps != 0) snprintf(rate, sizeof rate, "%" PRIu64, P.rate_bps);
    snprintf(out, n, "delay %" PRIu64 " jitter %" PRIu64 " rate %s buffer %zu state %s",
             P.delay_us / 1000, P.jitter_us / 1000, rate, P.buffer, state_names[P.state]);
}

static void heal(void)
{
    enum state was = P.state;
    P.state = ST_NORMAL;
    if (was == ST_CUT_HOLD)
        for (struct conn *c = P.conns; c != NULL; c = c->next)
            if (!c->dead && c->sfd < 0) start_connect(c);
}

/* Runs one command line; writes the reply (without newline) into out. */
static void command(char *line, char *out, size_t n)
{
    char *argv[4];
    int argc = 0;
    for (char *s = strtok(line, " \t\r"); s != NULL && argc < 4; s = strtok(NULL, " \t\r"))
        argv[argc++] = s;
    char tmp[256];
    if (argc == 0) {
        snprintf(out, n, "error: empty command");
        return;
    }
    const char *cmd = argv[0];
    uint64_t a = 0, b = 0;
    if (!strcmp(cmd, "delay")) {
        if (argc < 2 || argc > 3 || parse_num(argv[1], &a, false) || a > 3600000 ||
            (argc == 3 && (parse_num(argv[2], &b, false) || b > 3600000))) {
            snprintf(out, n, "error: usage: delay MS [JITTER] (0..3600000 ms)");
            return;
        }
        P.delay_us = a * 1000;
        P.jitter_us = b * 1000;
    } else if (!strcmp(cmd, "rate")) {
        if (argc == 2 && !strcmp(argv[1], "off")) {
            P.rate_bps = 0;
        } else if (argc != 2 || parse_num(argv[1], &a, true) || a < 8) {
            snprintf(out, n, "error: usage: rate BPS|off (at least 8 bits/s; k, M, G suffixes)");
            return;
        } else {
            P.rate_bps = a;
            uint64_t t = now_us();
            for (struct conn *c = P.conns; c != NULL; c = c->next) {
                refill(&c->up, t);
                refill(&c->down, t);
            }
        }
    } else if (!strcmp(cmd, "stall") && argc == 1) {
        if (P.state == ST_NORMAL) P.state = ST_STALLED;
        else if (P.state != ST_STALLED) {
            snprintf(out, n, "error: the link is cut (heal first)");
            return;
        }
    } else if (!strcmp(cmd, "resume") && argc == 1) {
        if (P.state == ST_STALLED) P.state = ST_NORMAL;
        else if (P.state != ST_NORMAL) {
            snprintf(out, n, "error: the link is cut (heal ends a cut)");
            return;
        }
    } else if (!strcmp(cmd, "cut") && (argc == 1 || (argc == 2 && !strcmp(argv[1], "hold")))) {
        if (argc == 1) {
            P.state = ST_CUT;
            for (struct conn *c = P.conns; c != NULL; c = c->next) conn_reset(c, "link cut");
        } else {
            P.state = ST_CUT_HOLD;
        }
    } else if (!strcmp(cmd, "heal") && argc == 1) {
        heal();
    } else if (!strcmp(cmd, "stats") && argc == 1) {
        stats_line(tmp, sizeof tmp);
        snprintf(out, n, "ok %s", tmp);
        return;
    } else if (!strcmp(cmd, "show") && argc == 1) {
        /* falls through to the settings reply */
    } else {
        snprintf(out, n, "error: unknown command '%s' (delay, rate, stall, resume, cut [hold], "
                 "heal, stats, show)", cmd);
        return;
    }
    settings_line(tmp, sizeof tmp);
    snprintf(out, n, "ok %s", tmp);
    if (strcmp(cmd, "show")) logf_("%s -> %s", cmd, tmp);
}

static void ctl_accept(void)
{
    int fd = accept(P.cfd, NULL, NULL);
    if (fd < 0) return;
    struct ctl_client *k = calloc(1, sizeof *k);
    if (k == NULL || set_nonblock(fd) != 0) {
        free(k);
        close(fd);
        return;
    }
    k->fd = fd;
    k->next = P.ctls;
    P.ctls = k;
}

static void ctl_read(struct ctl_client *k)
{
    ssize_t n = recv(k->fd, k->buf + k->len, sizeof k->buf - 1 - k->len, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n <= 0) {
        k->dead = true;
        return;
    }
    k->len += (size_t)n;
    k->buf[k->len] = '\0';
    char *nl;
    while ((nl = memchr(k->buf, '\n', k->len)) != NULL) {
        *nl = '\0';
        char reply[400];
        command(k->buf, reply, sizeof reply - 1);
        size_t rl = strlen(reply);
        reply[rl++] = '\n';
        /* Replies are short: a client that does not read them is dropped. */
        if (send(k->fd, reply, rl, MSG_NOSIGNAL) != (ssize_t)rl) k->dead = true;
        size_t used = (size_t)(nl + 1 - k->buf);
        memmove(k->buf, nl + 1, k->len - used);
        k->len -= used;
    }
    if (k->len == sizeof k->buf - 1) {
        static const char e[] = "error: command too long\n";
        (void)!send(k->fd, e, sizeof e - 1, MSG_NOSIGNAL);
        k->dead = true;
    }
}

static int ctl_listen(const char *path)
{
    struct sockaddr_un sa = {0};
    if (strlen(path) >= sizeof sa.sun_path) {
        fprintf(stderr, "impair: control path '%s' is too long\n", path);
        return -1;
    }
    sa.sun_family = AF_UNIX;
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    unlink(path);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 8) != 0 ||
        set_nonblock(fd) != 0) {
        fprintf(stderr, "impair: control socket %s: %s\n", path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* The --send client: one command, one reply line. */
static int send_command(const char *path, const char *cmd)
{
    struct sockaddr_un sa = {0};
    if (strlen(path) >= sizeof sa.sun_path) {
        fprintf(stderr, "impair: control path '%s' is too long\n", path);
        return 1;
    }
    sa.sun_family = AF_UNIX;
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        fprintf(stderr, "impair: cannot reach the proxy at %s: %s\n", path, strerror(errno));
        if (fd >= 0) close(fd);
        return 1;
    }
    char line[512];
    int ll = snprintf(line, sizeof line, "%s\n", cmd);
    if (ll < 0 || (size_t)ll >= sizeof line || write(fd, line, (size_t)ll) != ll) {
        fprintf(stderr, "impair: cannot send '%s'\n", cmd);
        close(fd);
        return 1;
    }
    shutdown(fd, SHUT_WR);
    char reply[512];
    size_t got = 0;
    ssize_t n;
    while (got < sizeof reply - 1 && (n = read(fd, reply + got, sizeof reply - 1 - got)) > 0)
        got += (size_t)n;
    close(fd);
    reply[got] = '\0';
    if (got == 0) {
        fprintf(stderr, "impair: no reply from %s\n", path);
        return 1;
    }
    fputs(reply, stdout);
    return strncmp(reply, "ok", 2) == 0 ? 0 : 1;
}

/* ---- main loop ---- */

static void on_signal(int sig)
{
    unsigned char b = (unsigned char)sig;
    int e = errno;
    (void)!write(sig_pipe[1], &b, 1);
    errno = e;
}

/* fmt holds at most one %s, filled with arg. */
static int usage_error(const char *fmt, const char *arg)
{
    char msg[512];
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    snprintf(msg, sizeof msg, fmt, arg);
#pragma GCC diagnostic pop
    fprintf(stderr, "impair: %s\nTry 'impair --help'.\n", msg);
    return 2;
}

struct pollset {
    struct pollfd *v;
    size_t n, cap;
};

static int ps_add(struct pollset *ps, int fd, short events)
{
    if (ps->n == ps->cap) {
        size_t nc = ps->cap ? ps->cap * 2 : 32;
        struct pollfd *nv = realloc(ps->v, nc * sizeof *nv);
        if (nv == NULL) return -1;
        ps->v = nv;
        ps->cap = nc;
    }
    ps->v[ps->n] = (struct pollfd){.fd = fd, .events = events};
    return (int)ps->n++;
}

static bool want_read(const struct dir *d)
{
    return !d->eof && d->queued < P.buffer;
}

static int run(void)
{
    struct pollset ps = {0};
    int status = 0;
    for (;;) {
        uint64_t now = now_us(), wake = UINT64_MAX;
        for (struct conn *c = P.conns; c != NULL; c = c->next) {
            dir_pump(c, &c->up, c->sfd, &P.bytes_up, now, &wake, "server side");
            dir_pump(c, &c->down, c->cfd, &P.bytes_down, now, &wake, "client side");
        }
        conns_reap();
        ps.n = 0;
        bool oom = ps_add(&ps, sig_pipe[0], POLLIN) < 0 || ps_add(&ps, P.lfd, POLLIN) < 0 ||
                   (P.cfd >= 0 && ps_add(&ps, P.cfd, POLLIN) < 0);
        for (struct conn *c = P.conns; c != NULL && !oom; c = c->next) {
            /* The client side is read while the link holds data only up to the buffer. */
            short ce = (short)((want_read(&c->up) ? POLLIN : 0) | (c->down.blocked ? POLLOUT : 0));
            short se = 0;
            if (c->connecting) se = POLLOUT;
            else if (c->connected)
                se = (short)((want_read(&c->down) ? POLLIN : 0) | (c->up.blocked ? POLLOUT : 0));
            c->cpoll = ce ? ps_add(&ps, c->cfd, ce) : -1;
            c->spoll = se ? ps_add(&ps, c->sfd, se) : -1;
            oom = (ce && c->cpoll < 0) || (se && c->spoll < 0);
        }
        for (struct ctl_client *k = P.ctls; k != NULL && !oom; k = k->next)
            oom = (k->poll = ps_add(&ps, k->fd, POLLIN)) < 0;
        if (oom) {
            logf_("out of memory for the poll set");
            status = 1;
            break;
        }
        int timeout = POLL_MAX_MS;
        if (wake != UINT64_MAX) {
            uint64_t w = wake > now ? (wake - now + 999) / 1000 : 0;
            if (w < (uint64_t)timeout) timeout = (int)w;
        }
        int rc = poll(ps.v, (nfds_t)ps.n, timeout);
        if (rc < 0) {
            if (errno == EINTR) continue;
            logf_("poll: %s", strerror(errno));
            status = 1;
            break;
        }
        if (ps.v[0].revents & POLLIN) {
            unsigned char sigs[16];
            ssize_t k = read(sig_pipe[0], sigs, sizeof sigs);
            bool quit = false;
            for (ssize_t i = 0; i < k; i++) {
                if (sigs[i] == SIGUSR1) {
                    char line[256];
                    stats_line(line, sizeof line);
                    logf_("stats: %s", line);
                } else {
                    quit = true;
                }
            }
            if (quit) break;
        }
        if (ps.v[1].revents & POLLIN) do_accept();
        if (P.cfd >= 0 && (ps.v[2].revents & POLLIN)) ctl_accept();
        for (struct conn *c = P.conns; c != NULL; c = c->next) {
            if (c->dead) continue;
            short cr = c->cpoll >= 0 ? ps.v[c->cpoll].revents : 0;
            short sr = c->spoll >= 0 ? ps.v[c->spoll].revents : 0;
            if (c->connecting && sr) {
                int err = 0;
                socklen_t el = sizeof err;
                getsockopt(c->sfd, SOL_SOCKET, SO_ERROR, &err, &el);
                if (err != 0 || (sr & (POLLERR | POLLHUP))) {
                    P.connect_failures++;
                    char why[96];
                    snprintf(why, sizeof why, "cannot connect onwards: %s",
                             strerror(err ? err : ECONNREFUSED));
                    conn_reset(c, why);
                    continue;
                }
                c->connecting = false;
                c->connected = true;
                sr = 0;
            }
            if (cr & POLLOUT) c->down.blocked = false;
            if (sr & POLLOUT) c->up.blocked = false;
            if (cr & (POLLIN | POLLHUP | POLLERR)) {
                if (want_read(&c->up)) dir_read(c, &c->up, c->cfd, "client side");
                else if (cr & POLLERR) conn_reset(c, "client side: socket error");
            }
            if (c->dead) continue;
            if (sr & (POLLIN | POLLHUP | POLLERR)) {
                if (want_read(&c->down)) dir_read(c, &c->down, c->sfd, "server side");
                else if (sr & POLLERR) conn_reset(c, "server side: socket error");
            }
        }
        for (struct ctl_client *k = P.ctls; k != NULL; k = k->next)
            if (ps.v[k->poll].revents) ctl_read(k);
        struct ctl_client **kp = &P.ctls;
        while (*kp != NULL) {
            struct ctl_client *k = *kp;
            if (k->dead) {
                close(k->fd);
                *kp = k->next;
                free(k);
            } else {
                kp = &k->next;
            }
        }
    }
    free(ps.v);
    return status;
}

int main(int argc, char **argv)
{
    const char *listen_spec = NULL, *to_spec = NULL, *log_path = NULL, *send = NULL;
    uint64_t seed = 0, v;
    bool seeded = false;
    P.buffer = 1048576;
    P.lfd = P.cfd = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(usage_text, stdout);
            return 0;
        }
        if (i + 1 >= argc) return usage_error("%s needs a value (or is unknown)", a);
        const char *val = argv[++i];
        if (!strcmp(a, "--listen")) listen_spec = val;
        else if (!strcmp(a, "--to")) to_spec = val;
        else if (!strcmp(a, "--control")) P.control_path = val;
        else if (!strcmp(a, "--log")) log_path = val;
        else if (!strcmp(a, "--send")) send = val;
        else if (!strcmp(a, "--delay") || !strcmp(a, "--jitter")) {
            if (parse_num(val, &v, false) || v > 3600000)
                return usage_error("%s needs milliseconds (0..3600000)", a);
            if (a[2] == 'd') P.delay_us = v * 1000;
            else P.jitter_us = v * 1000;
        } else if (!strcmp(a, "--rate")) {
            if (!strcmp(val, "off")) P.rate_bps = 0;
            else if (parse_num(val, &P.rate_bps, true) || P.rate_bps < 8)
                return usage_error("--rate needs bits/s (at least 8; k, M, G suffixes) or off, not '%s'", val);
        } else if (!strcmp(a, "--buffer")) {
            if (parse_num(val, &v, true) || v < 1024 || v > (1u << 30))
                return usage_error("--buffer needs 1024 to 2^30 bytes, not '%s'", val);
            P.buffer = (size_t)v;
        } else if (!strcmp(a, "--seed")) {
            if (parse_num(val, &seed, false)) return usage_error("--seed needs a number, not '%s'", val);
            seeded = true;
        } else {
            return usage_error("unknown option '%s'", a);
        }
    }
    if (send != NULL) {
        if (P.control_path == NULL) return usage_error("%s", "--send needs --control PATH");
        return send_command(P.control_path, send);
    }
    if (listen_spec == NULL || to_spec == NULL)
        return usage_error("%s", "--listen and --to are required");

    P.t0_us = now_us();
    P.rng = seeded ? seed : (P.t0_us ^ ((uint64_t)getpid() << 32));
    if (P.rng == 0) P.rng = 0x9E3779B97F4A7C15ULL;
    P.log = stderr;
    if (log_path != NULL && (P.log = fopen(log_path, "a")) == NULL) {
        fprintf(stderr, "impair: cannot open the log %s: %s\n", log_path, strerror(errno));
        return 1;
    }
    int status = 1;
    struct addrinfo *la = resolve(listen_spec, true);
    if (la == NULL || (P.to = resolve(to_spec, false)) == NULL) goto out;
    for (struct addrinfo *a = la; a != NULL && P.lfd < 0; a = a->ai_next) {
        int fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
        if (fd < 0) continue;
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, a->ai_addr, a->ai_addrlen) == 0 && listen(fd, 64) == 0 && set_nonblock(fd) == 0)
            P.lfd = fd;
        else
            close(fd);
    }
    if (P.lfd < 0) {
        fprintf(stderr, "impair: cannot listen on %s: %s\n", listen_spec, strerror(errno));
        goto out;
    }
    if (P.control_path != NULL && (P.cfd = ctl_listen(P.control_path)) < 0) goto out;
    if (pipe(sig_pipe) != 0 || set_nonblock(sig_pipe[1]) != 0) {
        fprintf(stderr, "impair: pipe: %s\n", strerror(errno));
        goto out;
    }
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char where[HOST_MAX + SERV_MAX + 4];
    getsockname(P.lfd, (struct sockaddr *)&ss, &sl);
    print_addr(where, sizeof where, (struct sockaddr *)&ss, sl);
    printf("listening on %s\n", where);
    fflush(stdout);
    char set[256];
    settings_line(set, sizeof set);
    logf_("listening on %s, forwarding to %s; %s", where, to_spec, set);

    status = run();
    char line[256];
    stats_line(line, sizeof line);
    logf_("exit: %s", line);
    while (P.conns != NULL) {
        struct conn *c = P.conns;
        P.conns = c->next;
        if (!c->dead) {
            close(c->cfd);
            if (c->sfd >= 0) close(c->sfd);
            dir_clear(&c->up);
            dir_clear(&c->down);
        }
        free(c);
    }
    while (P.ctls != NULL) {
        struct ctl_client *k = P.ctls;
        P.ctls = k->next;
        close(k->fd);
        free(k);
    }
out:
    if (P.cfd >= 0) {
        close(P.cfd);
        unlink(P.control_path);
    }
    if (P.lfd >= 0) close(P.lfd);
    if (la != NULL) freeaddrinfo(la);
    if (P.to != NULL) freeaddrinfo(P.to);
    if (P.log != NULL && P.log != stderr) fclose(P.log);
    return status;
}
