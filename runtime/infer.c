/* runtime/infer.c — (being written) */
#include "ir.h"
