/* runtime/onnx.c — (being written) */
#include "ir.h"
