/* runtime/kernels_ref.c — (being written) */
#include "ir.h"
