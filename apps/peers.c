/* apps/peers.c — `nnmesh peers` (a table of the mesh from the retained, verified adverts) and
 * `nnmesh ctl` (a signed control frame to one node, answered by an ACK). Both read a node
 * config for the brokers, the mesh, the identity and the trust file. Called from
 * apps/nnmesh.c's main with argv[0] being the subcommand name. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "nnmesh/config.h"
#include "nnmesh/node.h"
#include "nnmesh/transport.h"
#include "nnmesh/wire.h"
#include "nnmesh/crypto.h"
#include "peers.h"

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int usage(const char *cmd, const char *msg)
{
    fprintf(stderr, "nnmesh %s: %s\nTry 'nnmesh --help'.\n", cmd, msg);
    return 2;
}

/* Loads the config, identity and trust file; prints the error and returns -1. */
static int load_all(const char *cmd, const char *path, nnm_config **cfg, nnm_identity **id,
                    nnm_trust **trust)
{
    nnm_diag d;
    nnm_diag_clear(&d);
    if (nnm_config_load(cfg, path, &d) != NNM_OK ||
        nnm_identity_load(id, (*cfg)->key_file, &d) != NNM_OK ||
        nnm_trust_load(trust, (*cfg)->trust_file, &d) != NNM_OK) {
        fprintf(stderr, "nnmesh %s: %s\n", cmd, d.msg);
        return -1;
    }
    return 0;
}

/* The broker options of the config (uris, keepalive, user and password); password is the
 * caller's NNM_CONFIG_PASSWORD_MAX buffer. */
static int set_uris(nnm_mqtt_opts *o, const nnm_config *cfg, char *password, const char *cmd)
{
    nnm_diag d;
    nnm_diag_clear(&d);
    if (nnm_config_broker_opts(cfg, o, password, &d) != NNM_OK) {
        fprintf(stderr, "nnmesh %s: %s\n", cmd, d.msg);
        return -1;
    }
    o->connect_timeout_s = 3;
    return 0;
}

static int parse_seconds(const char *s, double *out)
{
    char *e;
    errno = 0;
    double v = strtod(s, &e);
    if (errno != 0 || e == s || *e != '\0' || !(v >= 0 && v <= 3600)) return -1;
    *out = v;
    return 0;
}

static void human_mem(char *buf, size_t len, uint64_t b)
{
    if (b >= (1ull << 30)) snprintf(buf, len, "%.1fG", (double)b / (1ull << 30));
    else snprintf(buf, len, "%.0fM", (double)b / (1ull << 20));
}

static int cmp_peer(const void *a, const void *b)
{
    return strcmp(((const nnm_node_peer *)a)->id, ((const nnm_node_peer *)b)->id);
}

int nnm_cli_peers(int argc, char **argv)
{
    const char *config = NULL;
    double wait_s = 2;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--config") || !strcmp(argv[i], "-c")) {
            if (i + 1 >= argc) return usage("peers", "--config needs a FILE");
            config = argv[++i];
        } else if (!strcmp(argv[i], "--wait") || !strcmp(argv[i], "-w")) {
            if (i + 1 >= argc || parse_seconds(argv[++i], &wait_s))
                return usage("peers", "--wait needs a number of seconds from 0 to 3600");
        } else {
            fprintf(stderr, "nnmesh peers: unexpected argument '%s'\n", argv[i]);
            return 2;
        }
    }
    if (config == NULL) return usage("peers", "--config FILE is required");
    int status = 1;
    nnm_config *cfg = NULL;
    nnm_identity *ident = NULL;
    nnm_trust *trust = NULL;
    nnm_mqtt *m = NULL;
    nnm_node_peer *peers = NULL;
    size_t np = 0, ignored = 0;
    enum { MAX_LINKS = 256 };
    static struct { char from[NNM_ID_MAX + 1], to[NNM_ID_MAX + 1]; double rtt, mbps; } links[MAX_LINKS];
    size_t nlinks = 0;
    nnm_diag d;
    nnm_diag_clear(&d);
    if (load_all("peers", config, &cfg, &ident, &trust) != 0) goto out;
    if ((peers = calloc(NNM_NODE_PEERS_MAX, sizeof *peers)) == NULL) goto out;

    /* An observer: its own client id, no will, nothing published. */
    char cid[64], filter[NNM_TOPIC_MAX];
    snprintf(cid, sizeof cid, "%s-peers-%ld", cfg->node_id, (long)getpid());
    nnm_mqtt_opts o;
    nnm_mqtt_opts_init(&o);
    o.client_id = cid;
    char password[NNM_CONFIG_PASSWORD_MAX];
    if (set_uris(&o, cfg, password, "peers") != 0) goto out;
    nnm_topic t = { .kind = NNM_TOPIC_ADVERT };
    snprintf(t.mesh, sizeof t.mesh, "%s", cfg->mesh_name);
    snprintf(t.node, sizeof t.node, "+");
    char sfilter[NNM_TOPIC_MAX];
    nnm_topic ts = t;
    ts.kind = NNM_TOPIC_STATS;
    nnm_err mrc = nnm_mqtt_new(&m, &o, &d);
    sodium_memzero(password, sizeof password);   /* the session keeps its own copy */
    if (mrc != NNM_OK || nnm_topic_encode(filter, sizeof filter, &t, &d) ||
        nnm_topic_encode(sfilter, sizeof sfilter, &ts, &d) ||
        nnm_mqtt_subscribe(m, filter, 1, &d) != NNM_OK ||
        nnm_mqtt_subscribe(m, sfilter, 1, &d) != NNM_OK || nnm_mqtt_start(m, &d) != NNM_OK ||
        nnm_mqtt_wait_connected(m, 10000, &d) != NNM_OK) {
        fprintf(stderr, "nnmesh peers: %s\n", d.msg);
        goto out;
    }
    uint64_t end = wall_ms() + (uint64_t)(wait_s * 1000);
    for (;;) {
        uint64_t now = wall_ms();
        nnm_mqtt_msg msg;
        if (nnm_mqtt_recv(m, &msg, now < end ? (unsigned)(end - now) : 0, NULL) != NNM_OK) break;
        nnm_topic mt;
        if (msg.len > 0 && nnm_topic_decode(&mt, msg.topic, strlen(msg.topic), NULL) == NNM_OK &&
            mt.kind == NNM_TOPIC_STATS) {
            /* Link estimates each node measured ("links":{"peer":{"rtt_ms":..,"mbit_s":..}}).
             * Stats are unsigned: shown as the node reports them, for information only. */
            char *js = malloc(msg.len + 1);
            if (js) {
                memcpy(js, msg.payload, msg.len);
                js[msg.len] = '\0';
                char *l = strstr(js, "\"links\":{");
                for (char *q = l ? l + 9 : NULL; q && *q == '"' && nlinks < MAX_LINKS;) {
                    char to[NNM_ID_MAX + 1];
                    double rtt, mb;
                    int used = 0;
                    if (sscanf(q, "\"%32[a-z0-9-]\":{\"rtt_ms\":%lf,\"mbit_s\":%lf}%n", to, &rtt, &mb, &used) != 3 || used == 0)
                        break;
                    snprintf(links[nlinks].from, sizeof links[nlinks].from, "%s", mt.node);
                    snprintf(links[nlinks].to, sizeof links[nlinks].to, "%s", to);
                    links[nlinks].rtt = rtt;
                    links[nlinks].mbps = mb;
                    nlinks++;
                    q += used;
                    if (*q == ',') q++;
                }
                free(js);
            }
        } else if (msg.len > 0 && nnm_topic_decode(&mt, msg.topic, strlen(msg.topic), NULL) == NNM_OK &&
            mt.kind == NNM_TOPIC_ADVERT) {
            nnm_node_peer p;
            nnm_diag_clear(&d);
            nnm_advert_verdict v = nnm_node_advert_check(&p, mt.node, msg.payload, msg.len,
                                                         trust, NULL, wall_ms(), &d);
            if (v != NNM_ADVERT_ACCEPTED) {
                fprintf(stderr, "nnmesh peers: advert on %s ignored (%s): %s\n", msg.topic,
                        nnm_advert_verdict_name(v), d.msg);
                ignored++;
            } else {
                size_t k = 0;
                while (k < np && strcmp(peers[k].id, p.id) != 0) k++;
                if (k == np && np < NNM_NODE_PEERS_MAX) np++;
                /* The newest (epoch, seq) of an id wins. */
                if (k < np && (k == np - 1 || p.epoch > peers[k].epoch ||
                               (p.epoch == peers[k].epoch && p.seq > peers[k].seq)))
                    peers[k] = p;
            }
        }
        nnm_mqtt_msg_cleanup(&msg);
        if (wall_ms() >= end) break;
    }
    qsort(peers, np, sizeof *peers, cmp_peer);
    printf("mesh %s: %zu node%s", cfg->mesh_name, np, np == 1 ? "" : "s");
    if (ignored) printf(", %zu advert%s ignored", ignored, ignored == 1 ? "" : "s");
    printf("\n%-16s %-19s %10s %5s %8s %8s %8s %8s %4s %5s %5s %7s %-9s %6s %s\n", "ID",
           "FINGERPRINT", "EPOCH", "SEQ", "CONV3X3", "CONV1X1", "DWCONV", "FC", "THR", "LOAD",
           "QUEUE", "MEM", "STATE", "AGE", "MODELS");
    uint64_t now = wall_ms();
    for (size_t i = 0; i < np; i++) {
        const nnm_node_peer *p = &peers[i];
        char mem[16], models[NNM_NODE_MODELS_MAX * 10 + 1] = "-", age[16] = "?";
        human_mem(mem, sizeof mem, nnm_node_peer_get_cap(p, "mem-mb", 0) << 20);
        size_t k = 0;
        for (size_t j = 0; j < p->nmodels; j++)
            k += (size_t)snprintf(models + k, sizeof models - k, "%s%02x%02x%02x%02x",
                                  j ? "," : "", p->models[j][0], p->models[j][1],
                                  p->models[j][2], p->models[j][3]);
        uint64_t iv = nnm_node_peer_get_cap(p, "advert-interval-ms", 0);
        if (iv > 0 && p->expiry_ms >= 3 * iv) {
            uint64_t sent = p->expiry_ms - 3 * iv;
            snprintf(age, sizeof age, "%.1fs", now > sent ? (double)(now - sent) / 1000.0 : 0.0);
        }
        printf("%-16s %-19s %10" PRIu64 " %5" PRIu64 " %8.2f %8.2f %8.2f %8.2f %4" PRIu64
               " %4.0f%% %5" PRIu64 " %7s %-9s %6s %s\n", p->id, p->fingerprint, p->epoch, p->seq,
               (double)nnm_node_peer_get_cap(p, "mflops-conv3x3", 0) / 1000.0,
               (double)nnm_node_peer_get_cap(p, "mflops-conv1x1", 0) / 1000.0,
               (double)nnm_node_peer_get_cap(p, "mflops-dwconv", 0) / 1000.0,
               (double)nnm_node_peer_get_cap(p, "mflops-fc", 0) / 1000.0,
               nnm_node_peer_get_cap(p, "cpu-cores", 0), p->load_permille / 10.0,
               nnm_node_peer_get_cap(p, "queue", 0), mem,
               nnm_node_peer_get_cap(p, "draining", 0) ? "draining" : "serving", age, models);
    }
    printf("(compute in GFLOP/s, measured by each node)\n");
    if (nlinks == 0) printf("links: not probed yet\n");
    for (size_t i = 0; i < nlinks; i++)
        printf("link %-16s -> %-16s rtt %8.3f ms  %9.1f Mbit/s\n", links[i].from, links[i].to,
               links[i].rtt, links[i].mbps);
    status = 0;
out:
    nnm_mqtt_free(m);
    free(peers);
    nnm_trust_free(trust);
    nnm_identity_free(ident);
    nnm_config_free(cfg);
    return status;
}

int nnm_cli_ctl(int argc, char **argv)
{
    const char *config = NULL, *pos[3] = { NULL, NULL, NULL };
    int npos = 0;
    double timeout_s = 10;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--config") || !strcmp(argv[i], "-c")) {
            if (i + 1 >= argc) return usage("ctl", "--config needs a FILE");
            config = argv[++i];
        } else if (!strcmp(argv[i], "--timeout")) {
            if (i + 1 >= argc || parse_seconds(argv[++i], &timeout_s) || timeout_s < 1)
                return usage("ctl", "--timeout needs a number of seconds from 1 to 3600");
        } else if (npos < 3) {
            pos[npos++] = argv[i];
        } else {
            fprintf(stderr, "nnmesh ctl: unexpected argument '%s'\n", argv[i]);
            return 2;
        }
    }
    if (config == NULL) return usage("ctl", "--config FILE is required");
    if (npos < 2) return usage("ctl", "needs NODE and VERB (drain, resume, policy NAME)");
    const char *node = pos[0], *verb = pos[1], *arg = pos[2] ? pos[2] : "";
    if (!nnm_id_is_valid(node)) return usage("ctl", "NODE is not a valid node id");
    if (!nnm_id_is_valid(verb)) return usage("ctl", "VERB must be 1-32 of a-z, 0-9, '-'");
    if (strlen(arg) > 64) return usage("ctl", "ARG is longer than 64 bytes");

    int status = 1;
    nnm_config *cfg = NULL;
    nnm_identity *ident = NULL;
    nnm_trust *trust = NULL;
    nnm_link *l = NULL;
    nnm_diag d;
    nnm_diag_clear(&d);
    if (load_all("ctl", config, &cfg, &ident, &trust) != 0) goto out;
    if (strcmp(node, cfg->node_id) == 0) {
        fprintf(stderr, "nnmesh ctl: %s is this config's own node id; use an operator identity "
                "(a config whose [node] id no daemon runs, e.g. 'shell')\n", node);
        goto out;
    }
    char cid[64];
    snprintf(cid, sizeof cid, "%s-ctl-%ld", cfg->node_id, (long)getpid());
    nnm_link_opts lo;
    nnm_link_opts_init(&lo);
    lo.node_id = cfg->node_id;
    lo.mesh = cfg->mesh_name;
    lo.identity = ident;
    lo.trust = trust;
    lo.mqtt.client_id = cid;
    char password[NNM_CONFIG_PASSWORD_MAX];
    if (set_uris(&lo.mqtt, cfg, password, "ctl") != 0) goto out;
    lo.send_timeout_ms = (unsigned)(timeout_s * 1000);
    nnm_err lrc = nnm_link_new(&l, &lo, &d);
    sodium_memzero(password, sizeof password);
    if (lrc != NNM_OK || nnm_link_start(l, &d) != NNM_OK ||
        nnm_mqtt_wait_connected(nnm_link_get_mqtt(l), (unsigned)(timeout_s * 1000), &d) != NNM_OK) {
        fprintf(stderr, "nnmesh ctl: %s\n", d.msg);
        goto out;
    }
    nnm_frame f;
    memset(&f, 0, sizeof f);
    f.hdr.type = NNM_FRAME_CTL;
    f.hdr.request = ((uint64_t)time(NULL) << 20) ^ (uint64_t)getpid() ^ 1u;
    snprintf(f.u.ctl.verb, sizeof f.u.ctl.verb, "%s", verb);
    f.u.ctl.arg = arg;
    if (nnm_link_send(l, node, &f, &d) != NNM_OK) {
        fprintf(stderr, "nnmesh ctl: %s: %s\n", node, d.msg);
        goto out;
    }
    uint64_t end = wall_ms() + (uint64_t)(timeout_s * 1000);
    for (;;) {
        uint64_t now = wall_ms();
        if (now >= end) {
            fprintf(stderr, "nnmesh ctl: %s: no answer within %.0f s\n", node, timeout_s);
            goto out;
        }
        nnm_link_msg m;
        memset(&m, 0, sizeof m);
        if (nnm_link_recv(l, &m, (unsigned)(end - now), NULL) != NNM_OK) continue;
        const nnm_frame *r = m.frame;
        int mine = r != NULL && r->hdr.type == NNM_FRAME_ACK && r->hdr.request == f.hdr.request &&
                   strcmp(r->hdr.sender, node) == 0;
        nnm_err st = mine ? (nnm_err)r->u.ack.status : NNM_OK;
        nnm_link_msg_cleanup(&m);
        if (!mine) continue;
        if (st == NNM_OK) {
            printf("%s: %s%s%s: ok\n", node, verb, arg[0] ? " " : "", arg);
            status = 0;
        } else {
            fprintf(stderr, "nnmesh ctl: %s refused %s%s%s: %s\n", node, verb, arg[0] ? " " : "",
                    arg, st == NNM_ENOTFOUND ? "unknown verb"
                         : st == NNM_EINVAL ? "bad argument (policy: local, equal, memory, "
                                              "capacity, adaptive)"
                                            : nnm_strerror(st));
        }
        break;
    }
out:
    nnm_link_free(l);
    nnm_trust_free(trust);
    nnm_identity_free(ident);
    nnm_config_free(cfg);
    return status;
}
