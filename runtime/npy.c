/* runtime/npy.c — (being written) */
#include "ir.h"
