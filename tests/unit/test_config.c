/* tests/unit/test_config.c — the node config file (runtime/config.c): the key table, value
 * parsing, ranges, every error naming file, line and key, and the checks of the files the
 * config names (key file mode, trust file, model files) against real temporary files. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "nnmesh/config.h"
#include "nnmesh/crypto.h"
#include "nnmesh/scheduler.h"

#define REQ "[node]\nid = n1\nkey_file = /k\n[mesh]\ntrust_file = /t\n"

static nnm_config *decode_ok(const char *text)
{
    nnm_config *c = NULL;
    nnm_diag d;
    nnm_err rc = nnm_config_decode(&c, text, "node.conf", &d);
    if (rc != NNM_OK) print_error("unexpected error: %s\n", d.msg);
    assert_int_equal(rc, NNM_OK);
    assert_non_null(c);
    return c;
}

/* Decoding text fails with code and a message containing every needle (NULL-terminated). */
static void decode_fails(const char *text, nnm_err code, ...)
{
    nnm_config *c = (nnm_config *)1;
    nnm_diag d;
    nnm_err rc = nnm_config_decode(&c, text, "node.conf", &d);
    if (rc != code) print_error("got %d '%s', wanted %d\n", rc, d.msg, code);
    assert_int_equal(rc, code);
    assert_null(c);
    va_list ap;
    va_start(ap, code);
    for (const char *n; (n = va_arg(ap, const char *)) != NULL;) {
        if (strstr(d.msg, n) == NULL) print_error("'%s' lacks '%s'\n", d.msg, n);
        assert_non_null(strstr(d.msg, n));
    }
    va_end(ap);
}

static void test_config_minimal_defaults_filled(void **state)
{
    (void)state;
    nnm_config *c = decode_ok(REQ);
    assert_string_equal(c->node_id, "n1");
    assert_string_equal(c->mesh_name, "nnmesh");
    assert_int_equal(c->n_broker_uris, 1);
    assert_string_equal(c->broker_uris[0], "tcp://127.0.0.1:1883");
    assert_int_equal(c->chunk_size, 1 << 20);
    assert_int_equal(c->max_frame_bytes, 2 << 20);
    assert_int_equal(c->keepalive_ms, 30000);
    assert_int_equal(c->advert_interval_ms, 5000);
    assert_int_equal(c->allow_shell_ingress, 0);
    assert_null(c->username);
    assert_int_equal(c->n_models, 0);
    assert_int_equal(c->key_line[0], 2);   /* [node] id */
    nnm_config_free(c);
    nnm_config_free(NULL);
}

/* Every default in the table parses and prints back as written. */
static void test_config_table_defaults_round_trip(void **state)
{
    (void)state;
    nnm_config *c = decode_ok(REQ);
    for (int i = 0; i < nnm_config_key_count(); i++) {
        nnm_config_key k;
        char v[256];
        assert_int_equal(nnm_config_key_get(i, &k), NNM_OK);
        assert_non_null(k.help);
        assert_int_equal(nnm_config_get_value(c, i, v, sizeof v), NNM_OK);
        if (k.def != NULL && k.def[0]) assert_string_equal(v, k.def);
    }
    nnm_config_key k;
    assert_int_equal(nnm_config_key_get(nnm_config_key_count(), &k), NNM_ERANGE);
    nnm_config_free(c);
}

static void test_config_values_parsed_by_type(void **state)
{
    (void)state;
    nnm_config *c = decode_ok(REQ "advert_interval = 250ms\n"
                              "[limits]\nmax_tensor_bytes = 64M\nchunk_size = 512KiB\n"
                              "max_inflight = 8\n[control]\nallow_shell_ingress = yes\n"
                              "[node]\nthreads = 2\n");
    assert_int_equal(c->advert_interval_ms, 250);
    assert_int_equal(c->max_tensor_bytes, 64 << 20);
    assert_int_equal(c->chunk_size, 512 << 10);
    assert_int_equal(c->max_inflight, 8);
    assert_int_equal(c->allow_shell_ingress, 1);
    assert_int_equal(c->threads, 2);
    nnm_config_free(c);
}

static void test_config_uris_list_and_continuation(void **state)
{
    (void)state;
    nnm_config *c = decode_ok(REQ "[broker]\nuris = tcp://a:1883, ssl://b:8883\n"
                              "  mqtt://c:1884\nkeepalive = 10s\n");
    assert_int_equal(c->n_broker_uris, 3);
    assert_string_equal(c->broker_uris[0], "tcp://a:1883");
    assert_string_equal(c->broker_uris[1], "ssl://b:8883");
    assert_string_equal(c->broker_uris[2], "mqtt://c:1884");
    nnm_config_free(c);
}

static void test_config_unknown_key_suggests_closest(void **state)
{
    (void)state;
    decode_fails(REQ "[mesh]\ntrust_fil = x\n", NNM_EFORMAT, "node.conf:7:", "trust_fil",
                 "unknown key", "did you mean 'trust_file'", NULL);
    decode_fails("[node]\nid = n1\ntrust_file = x\n", NNM_EFORMAT, "node.conf:3:",
                 "did you mean 'trust_file' in [mesh]", NULL);
    decode_fails(REQ "[limit]\nchunk_size = 1M\n", NNM_EFORMAT, "node.conf:7:",
                 "unknown section [limit]", "[limits]", NULL);
}

static void test_config_bad_number_names_line_and_key(void **state)
{
    (void)state;
    decode_fails(REQ "[limits]\nmax_inflight = 12x\n", NNM_EFORMAT, "node.conf:7:",
                 "[limits] max_inflight", "'12x' is not a whole number", NULL);
    decode_fails(REQ "[limits]\nchunk_size = 12Q\n", NNM_EFORMAT, "node.conf:7:",
                 "chunk_size", "not a size", NULL);
    decode_fails(REQ "[broker]\nkeepalive = 30\n", NNM_EFORMAT, "keepalive", "ms or s", NULL);
    decode_fails(REQ "[control]\nallow_shell_ingress = maybe\n", NNM_EFORMAT, "not a boolean",
                 NULL);
}

/* [scheduler] allow_lossy: off by default, a boolean, and what the node's plan options get
 * (nnm_config_plan_opts, which the node calls for every request it coordinates). */
static void test_config_allow_lossy_parsed_and_reaches_plan_opts(void **state)
{
    (void)state;
    static const struct { const char *text; int want; } ok[] = {
        { "", 0 }, { "true", 1 }, { "false", 0 }, { "yes", 1 }, { "off", 0 }, { "1", 1 },
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        char text[256];
        snprintf(text, sizeof text, REQ "[scheduler]\n%s%s\n",
                 ok[i].text[0] ? "allow_lossy = " : "", ok[i].text);
        nnm_config *c = decode_ok(text);
        assert_int_equal(c->allow_lossy, ok[i].want);
        /* the options the config does not decide are left as the caller set them */
        nnm_plan_opts po = { NNM_OBJ_THROUGHPUT, NNM_POLICY_EQUAL, "src", 1, !ok[i].want, 0 };
        nnm_config_plan_opts(c, &po);
        assert_int_equal(po.allow_lossy, ok[i].want);
        assert_true(po.objective == NNM_OBJ_THROUGHPUT && po.policy == NNM_POLICY_EQUAL);
        assert_true(po.source != NULL && !strcmp(po.source, "src") && po.pin_first == 1);
        nnm_config_free(c);
    }
    print_message("allow_lossy: default off; true/false/yes/off/1 parsed into the plan options\n");
    decode_fails(REQ "[scheduler]\nallow_lossy = lossy\n", NNM_EFORMAT, "node.conf:7:",
                 "[scheduler] allow_lossy", "'lossy' is not a boolean (true or false)", NULL);
    decode_fails(REQ "[control]\nallow_lossy = true\n", NNM_EFORMAT, "node.conf:7:",
                 "did you mean 'allow_lossy' in [scheduler]", NULL);
}

static void test_config_out_of_range_rejected(void **state)
{
    (void)state;
    decode_fails(REQ "[limits]\nchunk_size = 4M\n", NNM_ERANGE, "node.conf:7:", "chunk_size",
                 "out of range (16K to 1M)", NULL);
    decode_fails(REQ "[node]\nthreads = -1\n", NNM_ERANGE, "threads", NULL);
    decode_fails(REQ "[limits]\nmax_frame_bytes = 64K\nchunk_size = 64K\n", NNM_ERANGE,
                 "node.conf:8:", "max_frame_bytes", NULL);
}

static void test_config_invalid_node_id_rejected(void **state)
{
    (void)state;
    decode_fails("[node]\nid = Node/1\n", NNM_EFORMAT, "node.conf:2:", "[node] id",
                 "not a valid id", NULL);
    decode_fails("[node]\nid = n1\n[mesh]\nname = a+b\n", NNM_EFORMAT, "[mesh] name", NULL);
}

static void test_config_duplicate_model_ids_rejected(void **state)
{
    (void)state;
    decode_fails(REQ "[models]\nlenet = a.onnx\nmnv2 = b.onnx\nlenet = c.onnx\n", NNM_EFORMAT,
                 "node.conf:9:", "[models] lenet", "listed twice (first on line 7)", NULL);
    decode_fails(REQ "[models]\nLeNet = a.onnx\n", NNM_EFORMAT, "not a valid model id", NULL);
}

static void test_config_duplicate_key_rejected(void **state)
{
    (void)state;
    decode_fails(REQ "[node]\nthreads = 1\nthreads = 2\n", NNM_EFORMAT, "node.conf:8:",
                 "set twice (first on line 7)", NULL);
}

static void test_config_missing_required_key_named(void **state)
{
    (void)state;
    decode_fails("[node]\nid = n1\nkey_file = k\n", NNM_EFORMAT, "[mesh] trust_file is required",
                 NULL);
}

static void test_config_bad_uri_rejected(void **state)
{
    (void)state;
    decode_fails(REQ "[broker]\nuris = tcp://a:1883, http://b:80\n", NNM_EFORMAT, "node.conf:7:",
                 "[broker] uris", "'http://b:80' is not a broker URI", NULL);
    decode_fails(REQ "[broker]\nuris = tcp://a:99999\n", NNM_EFORMAT, "port", NULL);
}

static void test_config_syntax_and_long_lines_rejected(void **state)
{
    (void)state;
    decode_fails(REQ "[limits]\nthis line has no equals sign\n", NNM_EFORMAT, "node.conf:7:",
                 "expected 'key = value'", NULL);
    char text[1024];
    snprintf(text, sizeof text, REQ "[broker]\nusername = %0300d\n", 7);
    decode_fails(text, NNM_EFORMAT, "node.conf:7:", "longer than", NULL);
    decode_fails("id = n1\n", NNM_EFORMAT, "outside any section", NULL);
}

/* ---- with real files ------------------------------------------------------------------- */

typedef struct dir {
    char path[256];
} dir;

static void put(const dir *d, const char *name, const char *text, mode_t mode)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", d->path, name);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    assert_int_equal(chmod(p, mode), 0);
}

/* A directory with a key file n1.key (0600), a trust file listing it, and a model file. */
static int setup_dir(void **state)
{
    dir *d = calloc(1, sizeof *d);
    snprintf(d->path, sizeof d->path, "/tmp/nnm-test-config-XXXXXX");
    if (d == NULL || mkdtemp(d->path) == NULL) return -1;
    nnm_identity *id = NULL;
    char p[512], b64[NNM_PUBKEY_B64_SIZE], line[128];
    if (nnm_identity_new(&id, NULL) != NNM_OK) return -1;
    snprintf(p, sizeof p, "%s/n1.key", d->path);
    if (nnm_identity_save(id, p, NULL) != NNM_OK) return -1;
    nnm_pubkey_encode(b64, nnm_identity_get_pubkey(id));
    nnm_identity_free(id);
    snprintf(line, sizeof line, "node n1 %s\n", b64);
    put(d, "trust", line, 0644);
    put(d, "m.onnx", "not really a model, but present", 0644);
    *state = d;
    return 0;
}

static int teardown_dir(void **state)
{
    dir *d = *state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d->path);
    int rc = system(cmd);
    free(d);
    return rc == 0 ? 0 : -1;
}

static nnm_err load_conf(const dir *d, const char *text, nnm_config **c, nnm_diag *diag)
{
    char p[512];
    put(d, "node.conf", text, 0644);
    snprintf(p, sizeof p, "%s/node.conf", d->path);
    return nnm_config_load(c, p, diag);
}

#define FILES "[node]\nid = n1\nkey_file = n1.key\n[mesh]\ntrust_file = trust\n"

static void test_config_load_resolves_relative_paths(void **state)
{
    dir *d = *state;
    nnm_config *c = NULL;
    nnm_diag diag;
    nnm_err rc = load_conf(d, FILES "[models]\nm = m.onnx\n", &c, &diag);
    if (rc != NNM_OK) print_error("%s\n", diag.msg);
    assert_int_equal(rc, NNM_OK);
    char want[512];
    snprintf(want, sizeof want, "%s/n1.key", d->path);
    assert_string_equal(c->key_file, want);
    snprintf(want, sizeof want, "%s/m.onnx", d->path);
    assert_int_equal(c->n_models, 1);
    assert_string_equal(c->models[0].path, want);
    assert_int_equal(c->models[0].line, 7);
    nnm_config_free(c);
}

static void test_config_load_missing_key_file_eio(void **state)
{
    dir *d = *state;
    nnm_config *c = NULL;
    nnm_diag diag;
    assert_int_equal(load_conf(d, "[node]\nid = n1\nkey_file = nope.key\n[mesh]\ntrust_file = trust\n",
                               &c, &diag), NNM_EIO);
    assert_null(c);
    assert_non_null(strstr(diag.msg, "node.conf:3: [node] key_file"));
    assert_non_null(strstr(diag.msg, "nope.key"));
    assert_non_null(strstr(diag.msg, "nnmesh keygen"));
}

static void test_config_load_key_file_readable_by_others_refused(void **state)
{
    dir *d = *state;
    char p[512];
    snprintf(p, sizeof p, "%s/n1.key", d->path);
    assert_int_equal(chmod(p, 0644), 0);
    nnm_config *c = NULL;
    nnm_diag diag;
    nnm_err rc = load_conf(d, FILES, &c, &diag);
    assert_int_equal(chmod(p, 0600), 0);
    assert_int_equal(rc, NNM_ETRUST);
    assert_non_null(strstr(diag.msg, "node.conf:3: [node] key_file"));
    assert_non_null(strstr(diag.msg, "chmod 600"));
}

static void test_config_load_empty_or_missing_trust_file_refused(void **state)
{
    dir *d = *state;
    nnm_config *c = NULL;
    nnm_diag diag;
    put(d, "empty", "", 0644);
    assert_int_equal(load_conf(d, "[node]\nid = n1\nkey_file = n1.key\n[mesh]\ntrust_file = empty\n",
                               &c, &diag), NNM_EFORMAT);
    assert_non_null(strstr(diag.msg, "node.conf:5: [mesh] trust_file"));
    assert_int_equal(load_conf(d, "[node]\nid = n1\nkey_file = n1.key\n[mesh]\ntrust_file = gone\n",
                               &c, &diag), NNM_EIO);
    assert_non_null(strstr(diag.msg, "node.conf:5: [mesh] trust_file"));
    assert_null(c);
}

static void test_config_load_missing_model_file_eio(void **state)
{
    dir *d = *state;
    nnm_config *c = NULL;
    nnm_diag diag;
    assert_int_equal(load_conf(d, FILES "[models]\nm = m.onnx\nx = missing.onnx\n", &c, &diag),
                     NNM_EIO);
    assert_non_null(strstr(diag.msg, "node.conf:8: [models] x"));
    assert_non_null(strstr(diag.msg, "missing.onnx"));
}

static void test_config_load_password_file_mode_checked(void **state)
{
    dir *d = *state;
    nnm_config *c = NULL;
    nnm_diag diag;
    put(d, "pw", "secret\n", 0644);
    assert_int_equal(load_conf(d, FILES "[broker]\nusername = u\npassword_file = pw\n", &c, &diag),
                     NNM_ETRUST);
    assert_non_null(strstr(diag.msg, "node.conf:8: [broker] password_file"));
    assert_int_equal(load_conf(d, FILES "[broker]\npassword_file = pw\n", &c, &diag), NNM_EFORMAT);
    assert_non_null(strstr(diag.msg, "needs username"));
}

static void test_config_load_missing_config_eio(void **state)
{
    (void)state;
    nnm_config *c = NULL;
    nnm_diag diag;
    assert_int_equal(nnm_config_load(&c, "/nonexistent/node.conf", &diag), NNM_EIO);
    assert_non_null(strstr(diag.msg, "/nonexistent/node.conf"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_minimal_defaults_filled),
        cmocka_unit_test(test_config_table_defaults_round_trip),
        cmocka_unit_test(test_config_values_parsed_by_type),
        cmocka_unit_test(test_config_uris_list_and_continuation),
        cmocka_unit_test(test_config_unknown_key_suggests_closest),
        cmocka_unit_test(test_config_bad_number_names_line_and_key),
        cmocka_unit_test(test_config_allow_lossy_parsed_and_reaches_plan_opts),
        cmocka_unit_test(test_config_out_of_range_rejected),
        cmocka_unit_test(test_config_invalid_node_id_rejected),
        cmocka_unit_test(test_config_duplicate_model_ids_rejected),
        cmocka_unit_test(test_config_duplicate_key_rejected),
        cmocka_unit_test(test_config_missing_required_key_named),
        cmocka_unit_test(test_config_bad_uri_rejected),
        cmocka_unit_test(test_config_syntax_and_long_lines_rejected),
        cmocka_unit_test_setup_teardown(test_config_load_resolves_relative_paths, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_config_load_missing_key_file_eio, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_config_load_key_file_readable_by_others_refused, setup_dir,
                                        teardown_dir),
        cmocka_unit_test_setup_teardown(test_config_load_empty_or_missing_trust_file_refused, setup_dir,
                                        teardown_dir),
        cmocka_unit_test_setup_teardown(test_config_load_missing_model_file_eio, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_config_load_password_file_mode_checked, setup_dir,
                                        teardown_dir),
        cmocka_unit_test(test_config_load_missing_config_eio),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
