# scripts/local.mk — see Makefile.am.
