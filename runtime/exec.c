/* runtime/exec.c — (being written) */
#include "ir.h"
