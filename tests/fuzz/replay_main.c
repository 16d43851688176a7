/* tests/fuzz/replay_main.c — a stand-in for libFuzzer's main when clang is not available:
 * feeds every file named on the command line (directories are walked one level, in name
 * order) to LLVMFuzzerTestOneInput once. It finds nothing new; it only proves the corpus
 * still passes under the compiler's sanitizers. Exit status 0 when every input was read. */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Reads path into a malloc'd buffer; returns 0 on success. */
static int slurp(const char *path, uint8_t **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) return -1;
    size_t cap = 4096, n = 0;
    uint8_t *buf = malloc(cap);
    while (buf != NULL) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) break;
        uint8_t *nb = realloc(buf, cap * 2);
        if (nb == NULL) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = nb;
        cap *= 2;
    }
    int bad = buf == NULL || ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return -1;
    }
    *out = buf;
    *len = n;
    return 0;
}

static int run_file(const char *path, unsigned *count)
{
    uint8_t *buf;
    size_t len;
    if (slurp(path, &buf, &len) != 0) {
        fprintf(stderr, "replay: %s: cannot read: %s\n", path, strerror(errno));
        return -1;
    }
    /* An exact-size copy so that ASan catches a read one byte past the input. */
    uint8_t *exact = malloc(len ? len : 1);
    if (exact == NULL) {
        free(buf);
        return -1;
    }
    memcpy(exact, buf, len);
    free(buf);
    fprintf(stderr, "replay: %s\n", path);    /* the last one named is the culprit */
    LLVMFuzzerTestOneInput(exact, len);
    free(exact);
    (*count)++;
    return 0;
}

int main(int argc, char **argv)
{
    unsigned count = 0;
    int failed = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
            failed = 1;
            continue;
        }
        if (!S_ISDIR(st.st_mode)) {
            if (run_file(argv[i], &count) != 0) failed = 1;
            continue;
        }
        struct dirent **names;
        int n = scandir(argv[i], &names, NULL, alphasort);
        if (n < 0) {
            fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
            failed = 1;
            continue;
        }
        for (int k = 0; k < n; k++) {
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", argv[i], names[k]->d_name);
            struct stat fst;
            if (names[k]->d_name[0] != '.' && stat(path, &fst) == 0 && S_ISREG(fst.st_mode) &&
                run_file(path, &count) != 0)
                failed = 1;
            free(names[k]);
        }
        free(names);
    }
    printf("replay: %u inputs replayed without a crash\n", count);
    return failed;
}
