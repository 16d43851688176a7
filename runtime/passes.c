/* runtime/passes.c — (being written) */
#include "ir.h"
