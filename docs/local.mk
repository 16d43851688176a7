# docs/local.mk — see Makefile.am.
