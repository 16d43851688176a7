# bench/local.mk — see Makefile.am.
