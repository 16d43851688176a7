# tests/crypto.mk — tests owned by the crypto work; included from tests/local.mk.
# The known-answer vectors (tests/vectors/crypto/kat.h) are generated independently of
# libsodium by tests/vectors/crypto/gen_kat.py; the tests also call crypto/ internals.
CRYPTO_TEST_CFLAGS = $(TEST_CFLAGS) $(SODIUM_CFLAGS) -I$(top_srcdir)/crypto \
	-I$(top_srcdir)/tests/vectors/crypto
CRYPTO_TEST_DEPS = tests/unit/test_crypto_util.h tests/vectors/crypto/kat.h

check_PROGRAMS += tests/unit/test_crypto_kat tests/unit/test_crypto_identity \
	tests/unit/test_crypto_trust tests/unit/test_crypto_advert \
	tests/unit/test_crypto_envelope tests/unit/test_crypto_session
TESTS += tests/unit/test_crypto_kat tests/unit/test_crypto_identity \
	tests/unit/test_crypto_trust tests/unit/test_crypto_advert \
	tests/unit/test_crypto_envelope tests/unit/test_crypto_session

tests_unit_test_crypto_kat_SOURCES = tests/unit/test_crypto_kat.c $(CRYPTO_TEST_DEPS)
tests_unit_test_crypto_kat_CFLAGS = $(CRYPTO_TEST_CFLAGS)
tests_unit_test_crypto_kat_LDADD = $(TEST_LIBS)

tests_unit_test_crypto_identity_SOURCES = tests/unit/test_crypto_identity.c $(CRYPTO_TEST_DEPS)
tests_unit_test_crypto_identity_CFLAGS = $(CRYPTO_TEST_CFLAGS)
tests_unit_test_crypto_identity_LDADD = $(TEST_LIBS)

tests_unit_test_crypto_trust_SOURCES = tests/unit/test_crypto_trust.c $(CRYPTO_TEST_DEPS)
tests_unit_test_crypto_trust_CFLAGS = $(CRYPTO_TEST_CFLAGS)
tests_unit_test_crypto_trust_LDADD = $(TEST_LIBS)

tests_unit_test_crypto_advert_SOURCES = tests/unit/test_crypto_advert.c $(CRYPTO_TEST_DEPS)
tests_unit_test_crypto_advert_CFLAGS = $(CRYPTO_TEST_CFLAGS)
tests_unit_test_crypto_advert_LDADD = $(TEST_LIBS)

tests_unit_test_crypto_envelope_SOURCES = tests/unit/test_crypto_envelope.c $(CRYPTO_TEST_DEPS)
tests_unit_test_crypto_envelope_CFLAGS = $(CRYPTO_TEST_CFLAGS)
tests_unit_test_crypto_envelope_LDADD = $(TEST_LIBS)

tests_unit_test_crypto_session_SOURCES = tests/unit/test_crypto_session.c $(CRYPTO_TEST_DEPS)
tests_unit_test_crypto_session_CFLAGS = $(CRYPTO_TEST_CFLAGS)
tests_unit_test_crypto_session_LDADD = $(TEST_LIBS)

EXTRA_DIST += tests/vectors/crypto/gen_kat.py \
	tests/fuzz/fuzz_envelope.c tests/fuzz/fuzz_envelope_sealed.c tests/fuzz/fuzz_advert.c
