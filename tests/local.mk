# tests/local.mk — cmocka unit tests (one binary per unit), shell integration tests, fuzz.
TEST_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS) -I$(top_srcdir)/runtime
TEST_LIBS = libnnmesh.la $(NNM_DEP_LIBS) $(CMOCKA_LIBS)
