/* nnmesh/config.h — a node's configuration file: one INI file per node, read with libinih
 * and checked against ONE table of keys (section, name, type, min, max, default, help).
 *
 * The same table drives the parser, `nnmeshd --help` and docs/CONFIG.md, so the three never
 * disagree. Every error names the file, the line and the key, and says what to write
 * instead ("node.conf:7: [limits] chunk_size: 4M is above the maximum 1M").
 *
 * Sections: [node] [mesh] [broker] [models] [limits] [scheduler] [control]. [models] is a map: each
 * line is `<model id> = <path to .onnx>`. Relative paths are taken relative to the
 * directory of the config file, and stored resolved. */
#ifndef NNMESH_CONFIG_H
#define NNMESH_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "nnmesh/err.h"

#ifdef __cplusplus
extern "C" {
#endif

#define NNM_CONFIG_KEYS_MAX 48   /* room in nnm_config.key_line; the table is smaller */

/* One `[models]` line. */
typedef struct nnm_config_model {
    char *id;          /* [a-z0-9-]{1,32}, unique in the file */
    char *path;        /* resolved; the file existed and was readable at load time */
    int line;          /* line in the config file */
} nnm_config_model;

/* The effective configuration: every key holds its value from the file or its default.
 * A plain value read by the node after nnm_config_load; strings are owned by it and freed
 * by nnm_config_free. Durations are milliseconds, sizes bytes. An unset optional string
 * is NULL. */
typedef struct nnm_config {
    char *source;                 /* the config file's path as given */
    /* [node] */
    char *node_id;
    char *key_file;
    int64_t threads;              /* 0: all online CPUs */
    int64_t memory_limit;         /* bytes; 0: use the measured available memory */
    /* [mesh] */
    char *mesh_name;
    char *trust_file;
    int64_t advert_interval_ms;
    /* [broker] */
    char **broker_uris;           /* in fallback order; n_broker_uris >= 1 */
    int n_broker_uris;
    int64_t keepalive_ms;
    char *tls_ca_file;
    char *tls_cert_file;
    char *tls_key_file;
    char *username;
    char *password_file;
    /* [models] */
    nnm_config_model *models;
    int n_models;
    /* [limits] */
    int64_t max_frame_bytes;
    int64_t chunk_size;
    int64_t max_inflight;
    int64_t max_tensor_bytes;
    int64_t task_timeout_ms;      /* deadline of a part sent to a peer */
    /* [scheduler] */
    double spot_check;            /* fraction 0..1 of peer parts re-run and compared */
    int64_t exclude_ms;           /* how long a peer caught lying is excluded; 0: until restart */
    int allow_lossy;              /* plans may use f16 / int8 for f32 edges */
    int forward;                  /* route stage outputs peer to peer (nnm_coord_env.forward) */
    /* [control] */
    int allow_shell_ingress;
    int allow_plaintext_control;
    /* Line each table key was set on (0: its default), indexed like nnm_config_key_get. */
    int key_line[NNM_CONFIG_KEYS_MAX];
} nnm_config;

/* Reads and checks the config file at path into a new *out (free with nnm_config_free).
 * Checks, in file order, then across keys: unknown sections and keys (the message suggests
 * the closest known key), syntax, numbers, sizes, durations and booleans, ranges, ids,
 * duplicate keys and duplicate model ids, required keys; then the files the config names:
 * the key file loads with nnm_identity_load (so a key file readable by others is refused),
 * the trust file loads with nnm_trust_load (so an empty or unreadable one is refused),
 * every model file and TLS / password file exists and is readable.
 * Errors: NNM_EIO (config file unreadable, or a file it names missing or unreadable),
 * NNM_EFORMAT (syntax, unknown key, bad value), NNM_ERANGE (value out of range),
 * NNM_ETRUST (key or password file mode too open, bad trust file key), NNM_ENOMEM.
 * The first error is reported, as "PATH:LINE: [section] key: what is wrong". On error
 * *out is NULL. */
nnm_err nnm_config_load(nnm_config **out, const char *path, nnm_diag *diag);

/* Like nnm_config_load but parses text (name is used in messages) and skips the checks of
 * the files the config names; relative paths are resolved against the current directory.
 * For tests and tools. */
nnm_err nnm_config_decode(nnm_config **out, const char *text, const char *name,
                          nnm_diag *diag);

void nnm_config_free(nnm_config *c);     /* NULL-safe */

/* Fills the broker part of an MQTT session's options from the config: [broker] uris,
 * keepalive, [limits] max_frame_bytes as the largest message, and the broker user name with
 * the password read from password_file (first line) into password (NNM_CONFIG_PASSWORD_MAX
 * bytes, the caller's: wipe it with sodium_memzero once the session is created, which keeps
 * its own copy). Leaves client id, will and callbacks alone. Errors: NNM_EIO (password file
 * unreadable). Every program that talks to the broker for a node (nnmeshd, nnmesh infer,
 * peers, ctl, the benchmarks) uses this, so all of them log in the same way. */
#define NNM_CONFIG_PASSWORD_MAX 256
struct nnm_mqtt_opts;
nnm_err nnm_config_broker_opts(const nnm_config *c, struct nnm_mqtt_opts *o,
                               char password[NNM_CONFIG_PASSWORD_MAX], nnm_diag *diag);

/* Sets the plan options the config decides ([scheduler] allow_lossy) in o, which the node
 * uses for every request it coordinates; leaves policy, objective, source and pin_first
 * alone. */
struct nnm_plan_opts;
void nnm_config_plan_opts(const nnm_config *c, struct nnm_plan_opts *o);

/* --- the key table, for help texts and docs -------------------------------------------- */

typedef struct nnm_config_key {
    const char *section;     /* "node", "mesh", ... */
    const char *name;        /* "id", "key_file", ...; "<id>" for the [models] map */
    const char *type;        /* "string", "int", "size", "bool", "duration", "list", "id",
                              * "path", "fraction" (a decimal number) */
    const char *min, *max;   /* printable bounds, or NULL when the type has none */
    const char *def;         /* printable default; NULL when the key is required */
    const char *help;        /* one or two sentences */
} nnm_config_key;

/* Number of keys in the table. */
int nnm_config_key_count(void);

/* Fills *k with key i (0 <= i < nnm_config_key_count()); strings are static.
 * Errors: NNM_ERANGE. */
nnm_err nnm_config_key_get(int i, nnm_config_key *k);

/* Writes the value of key i in c as config-file text into buf (len bytes, NUL-terminated;
 * sizes and durations in the largest exact unit: "1M", "30s"; "" when unset; for the
 * [models] map, "id = path" lines joined by "; "). Errors: NNM_ERANGE (bad i). */
nnm_err nnm_config_get_value(const nnm_config *c, int i, char *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif
