# tests/crypto.mk — tests owned by the crypto work; included from tests/local.mk.
