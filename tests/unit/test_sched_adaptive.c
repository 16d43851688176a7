/* tests/unit/test_sched_adaptive.c — the adaptive policy in a simulated mesh.
 *
 * Four equal nodes advertise the same capacity. A "truth" scheduler holds the real speeds
 * and times every plan as a DAG (nnm_sched_plan_predict) with 5% log-normal noise. After
 * 50 requests node b becomes 4x slower (loaded). Each policy plans every request from its
 * own scheduler; the adaptive one is fed the measured end-to-end latency and each part's
 * compute time, as result traces will. Required: the adaptive policy's share of work on b
 * falls within 20 requests of the change, and its p50 latency after the change is at least
 * 1.3x better than the best static policy's. A second run feeds end-to-end latency only
 * (no per-part times): the bandit alone must still move work off b. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "test_sched_util.h"

static const uint8_t HASH[NNM_WIRE_HASH_BYTES] = { 9, 9, 9 };
static const char *const IDS[] = { "a", "b", "c", "d" };
#define NREQ 150
#define CHANGE 50

static double noise(void)
{
    /* Box-Muller from the shared xorshift, sigma 0.05 */
    double u1 = (tu_rand() + 1.0) / 2.0 + 1e-12, u2 = (tu_rand() + 1.0) / 2.0;
    return exp(0.05 * sqrt(-2 * log(u1)) * cos(2 * M_PI * u2));
}

static nnm_sched *make(const char *self, double b_speed)
{
    nnm_sched *s = NULL;
    assert_int_equal(nnm_sched_new(&s, self, NULL, NULL), NNM_OK);
    for (int i = 0; i < 4; i++) tu_node_set(s, IDS[i], i == 1 ? b_speed : 1.0, 0);
    tu_links(s, IDS, 4, 1.0, 100.0);
    return s;
}

static int cmp(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

static double p50(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void simulate(int slice_feedback)
{
    nnm_graph *g = tu_chain(6, 32, 32);
    assert_non_null(g);
    nnm_sched *truth_before = make("a", 1.0), *truth_after = make("a", 0.25);
    nnm_sched *pol[NNM_POLICY__COUNT];
    for (int p = 0; p < NNM_POLICY__COUNT; p++) pol[p] = make("a", 1.0);
    static double lat[NNM_POLICY__COUNT][NREQ], bshare[NREQ];
    for (int r = 0; r < NREQ; r++) {
        nnm_sched *truth = r < CHANGE ? truth_before : truth_after;
        for (int p = 0; p < NNM_POLICY__COUNT; p++) {
            nnm_plan_opts o = { NNM_OBJ_LATENCY, (nnm_policy)p, NULL, 0, 0 };
            nnm_plan *plan = NULL;
            nnm_diag d;
            if (nnm_sched_plan(pol[p], g, HASH, &o, &plan, &d) != NNM_OK) fail_msg("%s", d.msg);
            double L, P;
            assert_int_equal(nnm_sched_plan_predict(truth, plan, 0, &L, &P, NULL), NNM_OK);
            L *= noise();
            lat[p][r] = L;
            if (p == NNM_POLICY_ADAPTIVE) {
                bshare[r] = nnm_plan_node_share(plan, "b");
                assert_int_equal(nnm_sched_observe_latency(pol[p], plan, L, NULL), NNM_OK);
                for (int i = 0; i < plan->n_stages && slice_feedback; i++)
                    for (int q = 0; q < plan->stages[i].n_parts; q++) {
                        const nnm_plan_part *pp = &plan->stages[i].parts[q];
                        double ms;
                        assert_int_equal(nnm_sched_compute_ms(truth, pp->node, pp->work, 0, &ms, NULL), NNM_OK);
                        assert_int_equal(nnm_sched_observe_slice(pol[p], pp, ms * noise(), NULL), NNM_OK);
                    }
            }
            nnm_plan_free(plan);
        }
    }
    /* b's share before the change and 20 requests after it */
    double before = 0, after = 0;
    for (int r = CHANGE - 10; r < CHANGE; r++) before += bshare[r] / 10;
    for (int r = CHANGE + 20; r < NREQ; r++) after += bshare[r] / (NREQ - CHANGE - 20);
    double med[NNM_POLICY__COUNT], best_static = INFINITY;
    for (int p = 0; p < NNM_POLICY__COUNT; p++) {
        med[p] = p50(&lat[p][CHANGE], NREQ - CHANGE);
        if (p != NNM_POLICY_ADAPTIVE && med[p] < best_static) best_static = med[p];
    }
    print_message("%s feedback: b share %.3f -> %.3f; p50 after change: local %.1f equal %.1f "
                  "memory %.1f capacity %.1f adaptive %.1f ms (%.2fx better than the best static)\n",
                  slice_feedback ? "slice+latency" : "latency-only", before, after,
                  med[0], med[1], med[2], med[3], med[4], best_static / med[4]);
    int shift = -1;
    for (int r = CHANGE; r < NREQ && shift < 0; r++)
        if (bshare[r] < before * 0.6) shift = r - CHANGE;
    print_message("work moved off b %d requests after the change\n", shift);
    assert_true(shift >= 0 && shift <= 20);
    assert_true(before > 0.15);
    assert_true(after < before * 0.6);
    assert_true(best_static / med[NNM_POLICY_ADAPTIVE] >= 1.3);
    for (int p = 0; p < NNM_POLICY__COUNT; p++) nnm_sched_free(pol[p]);
    nnm_sched_free(truth_before);
    nnm_sched_free(truth_after);
    ir__graph_free(g);
}

static void test_sched_adaptive_recovers_from_slow_node(void **state)
{
    (void)state;
    simulate(1);
}

static void test_sched_adaptive_bandit_alone_recovers(void **state)
{
    (void)state;
    simulate(0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sched_adaptive_recovers_from_slow_node),
        cmocka_unit_test(test_sched_adaptive_bandit_alone_recovers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
