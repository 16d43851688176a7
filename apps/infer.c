/* apps/infer.c — `nnmesh infer`: a short-lived, enrolled member of the mesh (its own key and
 * the mesh trust file, from a config file like a node's) seals a request to one node, which
 * coordinates it across the mesh and seals back the outputs and the trace.
 *
 * The request is a TASK frame whose node range is [0, NNM_TASK_WHOLE_MODEL) and whose
 * model hash is the BLAKE2b-256 of the model file (the node must hold that model). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "nnmesh/config.h"
#include "nnmesh/coord.h"
#include "nnmesh/crypto.h"
#include "nnmesh/npy.h"
#include "nnmesh/transport.h"
#include "nnmesh/worker.h"
#include "infer.h"

#define MAX_IN 16

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* One identity, one request at a time: a node keeps one session per peer id, so a second
 * client of the same key would replace the first one's session and the first one's answer
 * could not be opened (it timed out with no clue). Two `nnmesh infer` of one config take
 * turns on an exclusive lock of the key file, held until the process exits. Returns the
 * locked descriptor (kept open), -1 when the file cannot be locked at all (the identity
 * loader then reports what is wrong with it), or -2 when it stayed busy for wait_ms. */
static int lock_identity(const char *key_file, double wait_ms)
{
    int fd = open(key_file, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    if (flock(fd, LOCK_EX | LOCK_NB) == 0) return fd;
    if (errno != EWOULDBLOCK) {
        close(fd);
        return -1;
    }
    fprintf(stderr, "nnmesh infer: waiting for another nnmesh infer using the identity in %s "
            "(a node keeps one session per peer id: clients that must run at the same time "
            "need keys of their own)\n", key_file);
    double t0 = now_ms();
    while (now_ms() - t0 < wait_ms) {
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
        if (flock(fd, LOCK_EX | LOCK_NB) == 0) return fd;
    }
    close(fd);
    return -2;
}

static int usage(const char *msg)
{
    fprintf(stderr, "nnmesh infer: %s\n"
            "usage: nnmesh infer --config FILE --model MODEL.onnx|--model-hash HEX --node NODE\n"
            "                    -i [NAME=]FILE.npy ... [-o DIR] [--timeout SECONDS]\n", msg);
    return 2;
}

int nnm_cli_infer(int argc, char **argv)
{
    const char *cfg_path = NULL, *model = NULL, *hash_hex = NULL, *node = NULL, *outdir = NULL;
    const char *spec[MAX_IN];
    int n_spec = 0, timeout_s = 60;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--config") && v) { cfg_path = v; i++; }
        else if (!strcmp(a, "--model") && v) { model = v; i++; }
        else if (!strcmp(a, "--model-hash") && v) { hash_hex = v; i++; }
        else if (!strcmp(a, "--node") && v) { node = v; i++; }
        else if ((!strcmp(a, "-o") || !strcmp(a, "--output")) && v) { outdir = v; i++; }
        else if ((!strcmp(a, "-i") || !strcmp(a, "--input")) && v) {
            if (n_spec == MAX_IN) return usage("too many inputs");
            spec[n_spec++] = v;
            i++;
        } else if (!strcmp(a, "--timeout") && v) {
            timeout_s = atoi(v);
            if (timeout_s < 1 || timeout_s > 3600) return usage("--timeout needs 1..3600 seconds");
            i++;
        } else {
            char m[300];
            snprintf(m, sizeof m, "unknown or incomplete option '%s'", a);
            return usage(m);
        }
    }
    if (!cfg_path) return usage("--config is required (the client's key, trust file and brokers)");
    if (!model && !hash_hex) return usage("--model or --model-hash is required");
    if (!node) return usage("--node is required (see `nnmesh peers`)");
    if (!nnm_id_is_valid(node)) return usage("--node must be a node id ([a-z0-9-]{1,32})");
    if (n_spec == 0) return usage("at least one -i FILE.npy is required");

    int status = 1;
    nnm_diag d;
    nnm_diag_clear(&d);
    nnm_config *cfg = NULL;
    nnm_identity *id = NULL;
    nnm_trust *trust = NULL;
    nnm_link *l = NULL;
    int lock_fd = -1;
    nnm_tensor in[MAX_IN];
    nnm_wire_tensor wt[MAX_IN];
    char names[MAX_IN][128];
    memset(in, 0, sizeof in);
    memset(wt, 0, sizeof wt);
    uint8_t hash[NNM_WIRE_HASH_BYTES];
    if (hash_hex) {
        size_t bl = 0;
        if (sodium_hex2bin(hash, sizeof hash, hash_hex, strlen(hash_hex), NULL, &bl, NULL) != 0 ||
            bl != sizeof hash) {
            fprintf(stderr, "nnmesh infer: --model-hash needs 64 hex digits\n");
            return 2;
        }
    } else if (nnm_model_hash_file(hash, model, &d) != NNM_OK) {
        fprintf(stderr, "nnmesh infer: %s\n", d.msg);
        return 1;
    }
    for (int i = 0; i < n_spec; i++) {
        const char *eq = strchr(spec[i], '=');
        const char *file = eq ? eq + 1 : spec[i];
        /* Unnamed inputs bind to the model's inputs by position on the node. */
        snprintf(names[i], sizeof names[i], "%.*s", eq ? (int)(eq - spec[i]) : 0, eq ? spec[i] : "");
        if (nnm_npy_load(&in[i], file, &d) != NNM_OK) {
            fprintf(stderr, "nnmesh infer: %s\n", d.msg);
            goto out;
        }
        if (nnm_wire_tensor_encode(&wt[i], &in[i], NNM_CODEC_NONE, &d) != NNM_OK) {
            fprintf(stderr, "nnmesh infer: %s: %s\n", file, d.msg);
            goto out;
        }
        wt[i].name = names[i];
    }
    if (nnm_config_load(&cfg, cfg_path, &d) != NNM_OK) {
        fprintf(stderr, "nnmesh infer: %s\n", d.msg);
        goto out;
    }
    double t_lock = now_ms();
    lock_fd = lock_identity(cfg->key_file, (double)timeout_s * 1000.0);
    if (lock_fd == -2) {
        fprintf(stderr, "nnmesh infer: the identity in %s was still in use by another nnmesh "
                "infer after %d s; give clients that run at the same time keys of their own "
                "(nnmesh keygen, and a line in the trust file)\n", cfg->key_file, timeout_s);
        goto out;
    }
    timeout_s -= (int)((now_ms() - t_lock) / 1000.0);   /* the wait counts against it */
    if (timeout_s < 1) timeout_s = 1;
    if (nnm_identity_load(&id, cfg->key_file, &d) != NNM_OK ||
        nnm_trust_load(&trust, cfg->trust_file, &d) != NNM_OK) {
        fprintf(stderr, "nnmesh infer: %s\n", d.msg);
        goto out;
    }
    nnm_link_opts o;
    nnm_link_opts_init(&o);
    o.node_id = cfg->node_id;
    o.mesh = cfg->mesh_name;
    o.identity = id;
    o.trust = trust;
    /* A client id of its own, so that two clients of one config do not take each other's
     * broker session (they take turns on the identity: lock_identity). */
    char cid[64], password[NNM_CONFIG_PASSWORD_MAX];
    snprintf(cid, sizeof cid, "%s-infer-%ld", cfg->node_id, (long)getpid());
    o.mqtt.client_id = cid;
    if (nnm_config_broker_opts(cfg, &o.mqtt, password, &d) != NNM_OK) {
        fprintf(stderr, "nnmesh infer: %s\n", d.msg);
        goto out;
    }
    o.send_timeout_ms = (unsigned)timeout_s * 1000u;
    nnm_err lrc = nnm_link_new(&l, &o, &d);
    sodium_memzero(password, sizeof password);   /* the session keeps its own copy */
    if (lrc != NNM_OK || nnm_link_start(l, &d) != NNM_OK ||
        nnm_mqtt_wait_connected(nnm_link_get_mqtt(l), 10000, &d) != NNM_OK) {
        fprintf(stderr, "nnmesh infer: %s\n", d.msg);
        goto out;
    }
    double t0 = now_ms();
    nnm_frame f;
    memset(&f, 0, sizeof f);
    f.hdr.type = NNM_FRAME_TASK;
    randombytes_buf(&f.hdr.request, sizeof f.hdr.request);
    f.hdr.request |= 1;
    memcpy(f.u.task.spec.model_hash, hash, sizeof hash);
    f.u.task.spec.node_begin = 0;
    f.u.task.spec.node_end = NNM_TASK_WHOLE_MODEL;
    f.u.task.spec.part_kind = NNM_PART_WHOLE;
    f.u.task.spec.result_codec = NNM_CODEC_AUTO;   /* ignored: a request's reply is NONE */
    f.u.task.ntensors = (size_t)n_spec;
    f.u.task.tensors = wt;
    if (nnm_link_send(l, node, &f, &d) != NNM_OK) {
        fprintf(stderr, "nnmesh infer: %s: %s\n", node, d.msg);
        goto out;
    }
    for (;;) {
        double left = (double)timeout_s * 1000.0 - (now_ms() - t0);
        if (left <= 0) {
            fprintf(stderr, "nnmesh infer: %s did not answer within %d s\n", node, timeout_s);
            goto out;
        }
        nnm_link_msg m;
        memset(&m, 0, sizeof m);
        if (nnm_link_recv(l, &m, (unsigned)(left < 200 ? left : 200), &d) != NNM_OK) continue;
        const nnm_frame *r = m.frame;
        if (!r || r->hdr.request != f.hdr.request || strcmp(r->hdr.sender, node) != 0 ||
            (r->hdr.type != NNM_FRAME_RESULT && r->hdr.type != NNM_FRAME_ERROR)) {
            nnm_link_msg_cleanup(&m);
            continue;
        }
        double total = now_ms() - t0;
        if (r->hdr.type == NNM_FRAME_ERROR || r->u.result.status != 0) {
            const char *msg = r->hdr.type == NNM_FRAME_ERROR ? r->u.error.message
                                                              : nnm_strerror((nnm_err)r->u.result.status);
            fprintf(stderr, "nnmesh infer: %s: %s\n", node, msg ? msg : "failed");
            nnm_link_msg_cleanup(&m);
            goto out;
        }
        for (size_t k = 0; k < m.ntensors; k++) {
            const char *nm = r->u.result.tensors[k].name ? r->u.result.tensors[k].name : "output";
            char sh[128];
            printf("output %s: %s %s\n", nm, nnm_dtype_name(m.tensors[k].dtype),
                   nnm_shape_format(sh, sizeof sh, m.tensors[k].shape, m.tensors[k].ndim));
            if (m.tensors[k].dtype == NNM_DT_F32 && m.tensors[k].nbytes >= 4) {
                const float *x = m.tensors[k].data;
                size_t n = m.tensors[k].nbytes / 4, best = 0;
                for (size_t q = 1; q < n; q++) if (x[q] > x[best]) best = q;
                printf("  argmax [%zu]=%.6g\n", best, x[best]);
            }
            if (outdir) {
                char path[PATH_MAX], safe[128];
                size_t q = 0;
                for (const char *p = nm; *p && q + 1 < sizeof safe; p++) {
                    int bad = *p == '/' || *p == '\\' || (*p == '.' && q == 0);
                    safe[q] = bad ? '_' : *p;
                    q++;
                }
                safe[q] = '\0';
                if (mkdir(outdir, 0755) != 0 && errno != EEXIST) {
                    fprintf(stderr, "nnmesh infer: %s: %s\n", outdir, strerror(errno));
                    nnm_link_msg_cleanup(&m);
                    goto out;
                }
                snprintf(path, sizeof path, "%s/%s.npy", outdir, safe);
                if (nnm_npy_save(path, &m.tensors[k], &d) != NNM_OK) {
                    fprintf(stderr, "nnmesh infer: %s\n", d.msg);
                    nnm_link_msg_cleanup(&m);
                    goto out;
                }
                printf("  wrote %s\n", path);
            }
        }
        printf("trace (coordinator %s, %.1f ms end to end):\n", node, total);
        for (size_t k = 0; k < r->u.result.ntrace; k++) {
            const nnm_trace_entry *e = &r->u.result.trace[k];
            printf("  %-20s nodes [%u, %u)  compute %.3f ms  transfer %.3f ms  wait %.3f ms\n",
                   e->node, e->node_begin, e->node_end, (double)e->compute_us / 1e3,
                   (double)e->transfer_us / 1e3, (double)e->wait_us / 1e3);
        }
        /* Every wait counts from the request's start, so the smallest is what the
         * coordinator spent before its first part: planning (a rebuild of the candidate plans
         * can take hundreds of ms on a slow board) and slicing. */
        uint64_t first = UINT64_MAX;
        for (size_t k = 0; k < r->u.result.ntrace; k++)
            if (r->u.result.trace[k].wait_us < first) first = r->u.result.trace[k].wait_us;
        if (r->u.result.ntrace > 0)
            printf("  planning and slicing before the first part: %.3f ms (the coordinator's "
                   "stats give planning alone: coordinator.plan_ms)\n", (double)first / 1e3);
        nnm_link_msg_cleanup(&m);
        status = 0;
        break;
    }
out:
    for (int i = 0; i < n_spec; i++) {
        nnm_wire_tensor_cleanup(&wt[i]);
        nnm_tensor_cleanup(&in[i]);
    }
    nnm_link_free(l);
    nnm_trust_free(trust);
    nnm_identity_free(id);
    nnm_config_free(cfg);
    if (lock_fd >= 0) close(lock_fd);
    return status;
}
