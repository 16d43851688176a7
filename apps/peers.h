/* apps/peers.h — `nnmesh peers` and `nnmesh ctl` (apps/peers.c). Called from apps/nnmesh.c's
 * main with argv[0] being the subcommand name; both return the exit status (0, 1, 2 usage). */
#ifndef NNM_APPS_PEERS_H
#define NNM_APPS_PEERS_H

int nnm_cli_peers(int argc, char **argv);
int nnm_cli_ctl(int argc, char **argv);

#endif
