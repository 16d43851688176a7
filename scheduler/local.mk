# scheduler/local.mk — see Makefile.am.
