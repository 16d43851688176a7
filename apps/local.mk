# apps/local.mk — the thin command-line mains.
bin_PROGRAMS += apps/nnmesh
apps_nnmesh_SOURCES = apps/nnmesh.c
apps_nnmesh_CPPFLAGS = $(AM_CPPFLAGS) -include config.h
apps_nnmesh_LDADD = libnnmesh.la $(NNM_DEP_LIBS)
