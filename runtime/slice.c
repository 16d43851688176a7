/* runtime/slice.c — (being written) */
#include "ir.h"
