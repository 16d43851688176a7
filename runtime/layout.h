/* runtime/layout.h — the NHWC layout pass (see layout.c). */
#ifndef NNM_RUNTIME_LAYOUT_H
#define NNM_RUNTIME_LAYOUT_H

#include "ir.h"

/* Builds a new graph equal in meaning to src (inferred and normalized) in which spatial ops
 * run channels-last. src is not modified. Errors: NNM_ENOMEM. */
nnm_err layout__to_nhwc(nnm_graph **out, const nnm_graph *src, nnm_diag *diag);

#endif
