# transport/local.mk — see Makefile.am.
