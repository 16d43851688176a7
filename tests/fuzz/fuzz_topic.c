/* tests/fuzz/fuzz_topic.c — libFuzzer target for the topic parser (topics come from the
 * broker, and peers choose parts of them).
 *
 * Checks the contract: on error the topic is zeroed and the diagnostic is one printable
 * sentence with the returned code; on success every id is valid and formatting the parsed
 * topic gives back exactly the input. The input also goes through nnm_id_decode. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "nnmesh/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_diag(const nnm_diag *d, nnm_err rc)
{
    if (d->code != rc || d->msg[0] == '\0') __builtin_trap();
    const char *end = memchr(d->msg, '\0', sizeof d->msg);
    if (end == NULL) __builtin_trap();
    for (const char *p = d->msg; p < end; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e) __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    nnm_topic t;
    nnm_diag d;
    nnm_diag_clear(&d);
    nnm_err rc = nnm_topic_decode(&t, s, size, &d);
    if (rc != NNM_OK) {
        check_diag(&d, rc);
        nnm_topic zero;
        memset(&zero, 0, sizeof zero);
        if (memcmp(&t, &zero, sizeof t) != 0) __builtin_trap();
    } else {
        char buf[NNM_TOPIC_MAX];
        if (nnm_topic_encode(buf, sizeof buf, &t, NULL) != NNM_OK) __builtin_trap();
        if (strlen(buf) != size || memcmp(buf, s, size) != 0) __builtin_trap();
    }

    char id[NNM_ID_MAX + 1];
    nnm_diag_clear(&d);
    rc = nnm_id_decode(id, s, size, "fuzz id", &d);
    if (rc != NNM_OK) {
        check_diag(&d, rc);
        if (id[0] != '\0') __builtin_trap();
    } else if (strlen(id) != size || memcmp(id, s, size) != 0) {
        __builtin_trap();
    }
    return 0;
}
