# scheduler/local.mk — the scheduler core: mesh view, cost model, DP planner, policies.
noinst_LTLIBRARIES += scheduler/libnnm_scheduler.la
libnnmesh_la_LIBADD += scheduler/libnnm_scheduler.la

scheduler_libnnm_scheduler_la_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/runtime
scheduler_libnnm_scheduler_la_SOURCES = \
	scheduler/sched_int.h scheduler/mesh.c scheduler/cost.c scheduler/plan.c \
	scheduler/plan_io.c scheduler/coord.c \
	scheduler/coord_int.h scheduler/route.c

nnmeshinclude_HEADERS += include/nnmesh/scheduler.h include/nnmesh/coord.h
