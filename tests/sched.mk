# tests/sched.mk — scheduler tests: cost model, DP, policies, plans run in-process, bandit.
SCHED_TEST_CFLAGS = $(TEST_CFLAGS) -I$(top_srcdir)/scheduler -DNNM_TOP_SRCDIR='"$(abs_top_srcdir)"'

check_PROGRAMS += tests/unit/test_sched tests/unit/test_sched_adaptive
TESTS += tests/unit/test_sched tests/unit/test_sched_adaptive
tests_unit_test_sched_SOURCES = tests/unit/test_sched.c tests/unit/test_sched_util.h
tests_unit_test_sched_CFLAGS = $(SCHED_TEST_CFLAGS)
tests_unit_test_sched_LDADD = $(TEST_LIBS)
tests_unit_test_sched_adaptive_SOURCES = tests/unit/test_sched_adaptive.c tests/unit/test_sched_util.h
tests_unit_test_sched_adaptive_CFLAGS = $(SCHED_TEST_CFLAGS)
tests_unit_test_sched_adaptive_LDADD = $(TEST_LIBS)

# Plans for the exported models (MobileNetV2, ResNet-18, SqueezeNet, tiny ones) run
# in-process and compared with the whole model.
noinst_PROGRAMS += tests/tools/plan_check
tests_tools_plan_check_SOURCES = tests/tools/plan_check.c
tests_tools_plan_check_LDADD = libnnmesh.la $(NNM_DEP_LIBS)
TESTS += tests/sched_models.sh
EXTRA_DIST += tests/sched_models.sh
EXTRA_DIST += docs/SCHEDULER.md
