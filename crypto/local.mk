# crypto/local.mk — node identity, trust store, signed adverts, pairwise sessions, sealed
# envelopes and replay protection (libsodium). See Makefile.am.
noinst_LTLIBRARIES += crypto/libnnm_crypto.la
libnnmesh_la_LIBADD += crypto/libnnm_crypto.la

crypto_libnnm_crypto_la_CFLAGS = $(AM_CFLAGS) $(SODIUM_CFLAGS)
crypto_libnnm_crypto_la_SOURCES = \
	crypto/crypto_int.h \
	crypto/identity.c crypto/trust.c crypto/advert.c crypto/session.c crypto/envelope.c

nnmeshinclude_HEADERS += include/nnmesh/crypto.h
