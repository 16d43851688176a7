/* tests/unit/test_npy.c — .npy decoding and encoding: golden images written by numpy 1.24,
 * byte-exact encoder output, round trips for every dtype, and each malformed-file error.
 *
 * The golden images below were produced once with Debian's numpy (np.save, or
 * numpy.lib.format.write_array for versions 2.0 and 3.0) and pasted as C literals, so the
 * test needs no Python at run time. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "nnmesh/npy.h"

/* np.save(f, np.arange(6, dtype='<f4').reshape(2, 3)) */
static const char np_f32_2x3[] =
    "\x93\x4e\x55\x4d\x50\x59\x01\x00\x76\x00"
    "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"
    "                                                          \n"
    "\x00\x00\x00\x00\x00\x00\x80\x3f\x00\x00\x00\x40\x00\x00\x40\x40"
    "\x00\x00\x80\x40\x00\x00\xa0\x40";

/* np.save(f, np.array([-1, 0, 1, 2**40], dtype='<i8')) */
static const char np_i64_4[] =
    "\x93\x4e\x55\x4d\x50\x59\x01\x00\x76\x00"
    "{'descr': '<i8', 'fortran_order': False, 'shape': (4,), }"
    "                                                            \n"
    "\xff\xff\xff\xff\xff\xff\xff\xff\x00\x00\x00\x00\x00\x00\x00\x00"
    "\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00";

/* np.save(f, np.array(True)) */
static const char np_bool_0d[] =
    "\x93\x4e\x55\x4d\x50\x59\x01\x00\x76\x00"
    "{'descr': '|b1', 'fortran_order': False, 'shape': (), }"
    "                                                              \n"
    "\x01";

/* np.save(f, np.array([0.5, 1, -2, 65504], dtype='<f2').reshape(1, 2, 1, 2)) */
static const char np_f16_1x2x1x2[] =
    "\x93\x4e\x55\x4d\x50\x59\x01\x00\x76\x00"
    "{'descr': '<f2', 'fortran_order': False, 'shape': (1, 2, 1, 2), }"
    "                                                    \n"
    "\x00\x38\x00\x3c\x00\xc0\xff\x7b";

/* format.write_array(f, np.array([[0, 255], [7, 128]], dtype='|u1'), version=(2, 0)) */
static const char np_u8_v2[] =
    "\x93\x4e\x55\x4d\x50\x59\x02\x00\x74\x00\x00\x00"
    "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 2), }"
    "                                                        \n"
    "\x00\xff\x07\x80";

/* format.write_array(f, np.array([-128, 127, 0], dtype='|i1'), version=(3, 0)) */
static const char np_i8_v3[] =
    "\x93\x4e\x55\x4d\x50\x59\x03\x00\x74\x00\x00\x00"
    "{'descr': '|i1', 'fortran_order': False, 'shape': (3,), }"
    "                                                          \n"
    "\x80\x7f\x00";

/* np.save(f, np.array([[-2], [70000], [3]], dtype='<i4')) */
static const char np_i32_3x1[] =
    "\x93\x4e\x55\x4d\x50\x59\x01\x00\x76\x00"
    "{'descr': '<i4', 'fortran_order': False, 'shape': (3, 1), }"
    "                                                          \n"
    "\xfe\xff\xff\xff\x70\x11\x01\x00\x03\x00\x00\x00";

/* np.save(f, np.array(3.25)) */
static const char np_f64_0d[] =
    "\x93\x4e\x55\x4d\x50\x59\x01\x00\x76\x00"
    "{'descr': '<f8', 'fortran_order': False, 'shape': (), }"
    "                                                              \n"
    "\x00\x00\x00\x00\x00\x00\x0a\x40";

/* np.save(f, np.zeros((0, 3), dtype='<f4')) */
static const char np_f32_empty[] =
    "\x93\x4e\x55\x4d\x50\x59\x01\x00\x76\x00"
    "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 3), }"
    "                                                          \n";
