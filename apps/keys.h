/* apps/keys.h — `nnmesh keygen` and `nnmesh trust ...`: node identities and the mesh trust
 * file from the command line. Called from apps/nnmesh.c's main with argv[0] being the
 * subcommand name. Both return the process exit status (0, 1 on error, 2 on usage). */
#ifndef NNM_APPS_KEYS_H
#define NNM_APPS_KEYS_H

int nnm_cli_keygen(int argc, char **argv);
int nnm_cli_trust(int argc, char **argv);

/* The SYNOPSIS and DESCRIPTION lines of both commands, for nnmesh --help. */
extern const char nnm_cli_keys_usage[];

#endif
