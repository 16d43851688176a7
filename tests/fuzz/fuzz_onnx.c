/* tests/fuzz/fuzz_onnx.c — libFuzzer target for the ONNX importer: the bytes are an ONNX
 * model image handed to nnm_graph_decode_onnx. The contract checked: an error leaves the
 * output NULL and a printable diagnostic that starts with the file name; a success gives a
 * graph whose accessors all answer. Anything else, a crash, a leak or a sanitizer report is a
 * bug. Seed corpus: tests/fuzz/corpus/onnx/ (small valid models from
 * tests/models/onnx_models.py). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "nnmesh/graph.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    nnm_graph *g = (nnm_graph *)&g;   /* must be overwritten either way */
    nnm_diag d;
    nnm_diag_clear(&d);
    nnm_load_opts o = { .batch = 1, .no_optimize = 0 };
    nnm_err rc = nnm_graph_decode_onnx(&g, data, size, "fuzz.onnx", &o, &d);
    if (rc != NNM_OK) {
        if (g != NULL || d.code != rc || strncmp(d.msg, "fuzz.onnx: ", 11) != 0 ||
            memchr(d.msg, '\0', sizeof d.msg) == NULL)
            __builtin_trap();
        return 0;
    }
    if (g == NULL) __builtin_trap();
    for (int i = 0; i < nnm_graph_node_count(g); i++) {
        nnm_node_info info;
        if (nnm_graph_node_get(g, i, &info) != NNM_OK || info.name == NULL || info.op == NULL)
            __builtin_trap();
    }
    for (int i = 0; i < nnm_graph_input_count(g); i++) {
        nnm_io_info io;
        if (nnm_graph_input_get(g, i, &io) != NNM_OK || io.name == NULL) __builtin_trap();
    }
    for (int i = 0; i < nnm_graph_output_count(g); i++) {
        nnm_io_info io;
        if (nnm_graph_output_get(g, i, &io) != NNM_OK || io.name == NULL) __builtin_trap();
    }
    nnm_graph_free(g);
    return 0;
}
