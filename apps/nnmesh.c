/* apps/nnmesh.c — placeholder main until the CLI lands. */
#include <stdio.h>
int main(void) { puts("nnmesh"); return 0; }
