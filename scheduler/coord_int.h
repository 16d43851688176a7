/* scheduler/coord_int.h — what coord.c (the coordinator, the worker's answer) and route.c
 * (routed tasks and their pieces) share. */
#ifndef NNM_SCHEDULER_COORD_INT_H
#define NNM_SCHEDULER_COORD_INT_H

#include "nnmesh/coord.h"

#define COORD_INBOX_MAX 64         /* routed tasks waiting, and pieces held, at most */

/* Copies box [begin, end) of src into dst at `at` (per dimension; same dtype and rank).
 * Errors: NNM_ESHAPE (the box or its place does not fit). */
nnm_err coord__box_copy(nnm_tensor *dst, const uint64_t *at, const nnm_tensor *src,
                        const uint64_t *begin, const uint64_t *end, nnm_diag *diag);
/* A new owned tensor with box [begin, end) of src. Errors: NNM_ESHAPE, NNM_ENOMEM. */
nnm_err coord__box_crop(nnm_tensor *out, const nnm_tensor *src, const uint64_t *begin,
                        const uint64_t *end, nnm_diag *diag);

/* Runs TASK f on inputs (names, in; n of them), sends its forwarded pieces (routed TASKs)
 * and answers its sender with the outputs it asks for and a trace (coord.c). */
nnm_err coord__run_task(const nnm_coord_env *env, const nnm_frame *f, const char *const *names,
                        const nnm_tensor *in, size_t n, double arrived_ms, nnm_diag *diag);

/* Crops box [begin, end) of t and sends it as a piece (name, to be written at `at`) of task
 * `task` of coordinator `coord` to node (delivered here directly when node is this one). */
nnm_err coord__send_piece(const nnm_coord_env *env, const char *coord, const char *node,
                          uint64_t task, const char *name, const nnm_tensor *t,
                          const uint64_t *begin, const uint64_t *end, const uint64_t *at,
                          nnm_codec codec, nnm_diag *diag);
/* Counts a piece sent (stats). */
void coord__inbox_sent(nnm_coord_inbox *ib);

/* A routed TASK with awaited inputs: waits in env->inbox (msg is moved) or runs now. */
nnm_err coord__serve_routed(const nnm_coord_env *env, nnm_link_msg *msg, nnm_diag *diag);
/* A TENSOR frame of pieces. */
nnm_err coord__serve_piece(const nnm_coord_env *env, nnm_link_msg *msg, nnm_diag *diag);
/* A piece from node `from` for (coord, task) of this node: into its waiting task, or held
 * until the task comes. t is moved (zeroed) when held; the caller cleans it up either way.
 * Errors: NNM_ETRUST (from is not the piece's producer nor the coordinator: dropped, the
 * task waits on), NNM_ESHAPE (the task is refused), NNM_ERANGE (no room to hold it). */
nnm_err coord__take_piece(const nnm_coord_env *env, const char *from, const char *coord,
                          uint64_t task, const char *name, const uint64_t *at, nnm_tensor *t,
                          nnm_diag *diag);

#endif
