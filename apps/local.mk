# apps/local.mk — the thin command-line mains.
bin_PROGRAMS += apps/nnmesh
apps_nnmesh_SOURCES = apps/nnmesh.c
apps_nnmesh_CPPFLAGS = $(AM_CPPFLAGS) -include config.h
apps_nnmesh_LDADD = libnnmesh.la $(NNM_DEP_LIBS)
apps_nnmesh_SOURCES += apps/keys.c apps/keys.h
apps_nnmesh_SOURCES += apps/peers.c apps/peers.h
apps_nnmesh_SOURCES += apps/infer.c apps/infer.h

# The node daemon (runtime/config.c, runtime/capacity.c, runtime/node.c).
bin_PROGRAMS += apps/nnmeshd
apps_nnmeshd_SOURCES = apps/nnmeshd.c
apps_nnmeshd_CPPFLAGS = $(AM_CPPFLAGS) -include config.h
apps_nnmeshd_CFLAGS = $(AM_CFLAGS) $(SODIUM_CFLAGS)
apps_nnmeshd_LDADD = libnnmesh.la $(NNM_DEP_LIBS)
