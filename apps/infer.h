/* apps/infer.h — `nnmesh infer`: submit an input to the mesh and wait for the output. */
#ifndef NNM_APPS_INFER_H
#define NNM_APPS_INFER_H
int nnm_cli_infer(int argc, char **argv);
#endif
