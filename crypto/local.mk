# crypto/local.mk — see Makefile.am.
