/* runtime/kernels_xnn.c — (being written) */
#include "ir.h"
