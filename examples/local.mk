# examples/local.mk — see Makefile.am.
