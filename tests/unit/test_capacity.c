/* tests/unit/test_capacity.c — measured capacity (runtime/capacity.c): the probes run the
 * real kernels within the time budget, memory and load are read, the JSON encoding, and a
 * cgroup v1 CPU quota of 25% shows in the measured conv throughput (a child process is
 * moved into /sys/fs/cgroup/cpu/nnmesh-test-PID-slow with cfs_quota_us 25000 of 100000 and
 * compared with one in a sibling group without a quota). */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "nnmesh/capacity.h"

static void measure_ok(nnm_capacity *cap, int threads, int budget)
{
    nnm_diag d;
    nnm_diag_clear(&d);
    nnm_err rc = nnm_capacity_measure(cap, threads, budget, &d);
    if (rc != NNM_OK) print_error("nnm_capacity_measure: %s\n", d.msg);
    assert_int_equal(rc, NNM_OK);
}

static void test_capacity_default_budget_all_classes_measured(void **state)
{
    (void)state;
    nnm_capacity cap;
    measure_ok(&cap, 1, 0);
    print_message("conv3x3 %.2f, conv1x1 %.2f, dwconv3x3 %.2f, fc %.2f GFLOP/s in %.1f ms\n",
                  cap.gflops[0], cap.gflops[1], cap.gflops[2], cap.gflops[3], cap.wall_ms);
    /* The 300 ms budget is enforced by the probe loop's own deadline; wall time is printed,
     * not asserted (tests never assert timing: sanitizers and load would make it flaky). */
    assert_int_equal(cap.threads, 1);
    for (int p = 0; p < NNM_PROBE__COUNT; p++) {
        assert_true(cap.runs[p] >= 1);
        assert_true(cap.gflops[p] > 0.0);
        assert_true(cap.probe_flops[p] > 1e6);
        assert_string_not_equal(nnm_probe_name((nnm_probe)p), "?");
    }
    /* conv3x3 is 32 -> 32 channels at 28x28: 2 * 32 * 32 * 9 * 784 multiply-adds plus bias */
    assert_true(cap.probe_flops[NNM_PROBE_CONV3X3] >= 2.0 * 32 * 32 * 9 * 784);
}

static void test_capacity_memory_and_load_read(void **state)
{
    (void)state;
    nnm_capacity cap;
    memset(&cap, 0, sizeof cap);
    nnm_capacity_get_load(&cap);
    assert_true(cap.mem_available > 0);
    assert_true(cap.mem_free > 0);
    assert_true(cap.mem_free <= cap.mem_available);
    assert_true(cap.cpus_online >= 1);
    assert_true(cap.tasks_total >= 1);
    assert_true(cap.load1 >= 0.0);
}

static void test_capacity_json_has_fields_and_small_buffer_erange(void **state)
{
    (void)state;
    nnm_capacity cap;
    memset(&cap, 0, sizeof cap);
    cap.threads = 2;
    cap.gflops[NNM_PROBE_CONV3X3] = 12.5;
    cap.mem_free = 1024;
    char buf[1024];
    assert_int_equal(nnm_capacity_encode_json(buf, sizeof buf, &cap), NNM_OK);
    assert_non_null(strstr(buf, "\"threads\":2"));
    assert_non_null(strstr(buf, "\"conv3x3\":12.500"));
    assert_non_null(strstr(buf, "\"dwconv3x3\":"));
    assert_non_null(strstr(buf, "\"mem_free\":1024"));
    assert_non_null(strstr(buf, "\"loadavg\":["));
    assert_int_equal(buf[0], '{');
    assert_int_equal(buf[strlen(buf) - 1], '}');
    char small[40];
    assert_int_equal(nnm_capacity_encode_json(small, sizeof small, &cap), NNM_ERANGE);
    assert_string_equal(small, "");
}

static void test_capacity_bad_arguments_einval(void **state)
{
    (void)state;
    nnm_capacity cap;
    nnm_diag d;
    assert_int_equal(nnm_capacity_measure(&cap, -1, 10, &d), NNM_EINVAL);
    assert_int_equal(nnm_capacity_measure(&cap, 1, 20000, &d), NNM_EINVAL);
    assert_int_equal(nnm_capacity_measure(NULL, 1, 10, &d), NNM_EINVAL);
}

static int write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f == NULL) return -1;
    int ok = fputs(text, f) >= 0;
    return (fclose(f) == 0 && ok) ? 0 : -1;
}

/* Runs the measurement in a child moved into cgroup dir first; returns conv3x3 GFLOP/s
 * and the quota the child saw. */
static int measure_in_cgroup(const char *dir, double *gflops, double *quota)
{
    int fds[2];
    if (pipe(fds) != 0) return -1;
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        char path[512], me[32];
        double res[2] = { -1, -1 };
        snprintf(path, sizeof path, "%s/cgroup.procs", dir);
        snprintf(me, sizeof me, "%d\n", (int)getpid());
        nnm_capacity cap;
        if (write_file(path, me) == 0 && nnm_capacity_measure(&cap, 1, 0, NULL) == NNM_OK) {
            res[0] = cap.gflops[NNM_PROBE_CONV3X3];
            res[1] = cap.cpu_quota;
        }
        ssize_t w = write(fds[1], res, sizeof res);
        _exit(w == (ssize_t)sizeof res ? 0 : 1);
    }
    close(fds[1]);
    double res[2] = { -1, -1 };
    ssize_t r = read(fds[0], res, sizeof res);
    close(fds[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    if (r != (ssize_t)sizeof res || res[0] < 0) return -1;
    *gflops = res[0];
    *quota = res[1];
    return 0;
}

/* Creates cgroup root/name with the highest cpu.shares (so that other load on a shared
 * machine hardly slows the probes) and, when quota_us > 0, a CFS quota of quota_us per
 * 100 ms. Returns 0, or -1 with errno. */
static int make_group(char *dir, size_t len, const char *root, const char *name, int quota_us)
{
    char path[300], val[32];
    snprintf(dir, len, "%s/%s", root, name);
    if (mkdir(dir, 0755) != 0) return -1;
    snprintf(path, sizeof path, "%s/cpu.shares", dir);
    if (write_file(path, "262144\n") != 0) return -1;
    if (quota_us <= 0) return 0;
    snprintf(path, sizeof path, "%s/cpu.cfs_period_us", dir);
    if (write_file(path, "100000\n") != 0) return -1;
    snprintf(path, sizeof path, "%s/cpu.cfs_quota_us", dir);
    snprintf(val, sizeof val, "%d\n", quota_us);
    return write_file(path, val);
}

static void test_capacity_cgroup_quota_25pct_throttles_conv(void **state)
{
    (void)state;
    const char *root = "/sys/fs/cgroup/cpu";
    char slow[256] = "", fast[256] = "", path[300], name[64];
    struct stat st;
    snprintf(path, sizeof path, "%s/cpu.cfs_quota_us", root);
    if (stat(path, &st) != 0) {
        print_message("SKIP: cgroup v1 cpu controller is not mounted at %s\n", root);
        skip();
    }
    snprintf(name, sizeof name, "nnmesh-test-%d-slow", (int)getpid());
    if (make_group(slow, sizeof slow, root, name, 25000) != 0) {
        print_message("SKIP: cannot set up %s: %s (needs root and a writable cgroup v1 cpu "
                      "hierarchy)\n", slow, strerror(errno));
        rmdir(slow);
        skip();
    }
    snprintf(name, sizeof name, "nnmesh-test-%d-fast", (int)getpid());
    int ok = make_group(fast, sizeof fast, root, name, 0) == 0;

    /* Both measurements in children of equal weight, one of them under the quota; the best
     * of two unthrottled runs, one before and one after. */
    double unthrottled = 0, throttled = -1, quota = -1, g, q;
    int child = -1;
    for (int i = 0; ok && i < 2; i++) {
        ok = measure_in_cgroup(fast, &g, &q) == 0;
        if (ok && g > unthrottled) unthrottled = g;
        if (ok && i == 0) child = measure_in_cgroup(slow, &throttled, &quota);
    }
    rmdir(slow);   /* the children have exited: the groups are empty */
    rmdir(fast);
    assert_true(ok);
    assert_int_equal(child, 0);
    print_message("conv3x3: unthrottled %.2f GFLOP/s, under a 25%% quota %.2f GFLOP/s (%.0f%%), "
                  "quota seen %.2f cores\n", unthrottled, throttled, 100.0 * throttled / unthrottled,
                  quota);
    assert_true(quota > 0.24 && quota < 0.26);
    assert_true(throttled > 0.0);
    assert_true(throttled <= 0.35 * unthrottled);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_capacity_default_budget_all_classes_measured),
        cmocka_unit_test(test_capacity_memory_and_load_read),
        cmocka_unit_test(test_capacity_json_has_fields_and_small_buffer_erange),
        cmocka_unit_test(test_capacity_bad_arguments_einval),
        cmocka_unit_test(test_capacity_cgroup_quota_25pct_throttles_conv),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
