/* runtime/diag.c — error strings and the caller-owned diagnostic. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "nnmesh/err.h"

static const char *const err_text[NNM_ERR__COUNT] = {
    [NNM_OK] = "success",
    [NNM_ENOMEM] = "out of memory",
    [NNM_EINVAL] = "invalid argument",
    [NNM_EIO] = "input/output error",
    [NNM_EFORMAT] = "malformed input",
    [NNM_EUNSUPPORTED] = "not supported",
    [NNM_ESHAPE] = "shape or dtype mismatch",
    [NNM_ERANGE] = "value out of range",
    [NNM_ENOTFOUND] = "not found",
    [NNM_ECRYPTO] = "authentication failed",
    [NNM_EREPLAY] = "replayed message",
    [NNM_ETRUST] = "key not trusted",
    [NNM_ETIMEOUT] = "timed out",
    [NNM_ESTATE] = "invalid state",
    [NNM_EBACKEND] = "kernel library error",
    [NNM_ECONN] = "connection error",
};

const char *nnm_strerror(nnm_err rc)
{
    if ((unsigned)rc >= NNM_ERR__COUNT || err_text[rc] == NULL) return "unknown error";
    return err_text[rc];
}

nnm_err nnm_diag_set(nnm_diag *d, nnm_err code, const char *fmt, ...)
{
    if (d == NULL) return code;
    d->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->msg, sizeof d->msg, fmt, ap);
    va_end(ap);
    return code;
}

void nnm_diag_prefix(nnm_diag *d, const char *fmt, ...)
{
    if (d == NULL) return;
    char pre[NNM_DIAG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    const char *old = d->msg[0] != '\0' ? d->msg : nnm_strerror(d->code);
    /* Build "prefix: old" in a buffer large enough for both, then truncate into msg. */
    char joined[2 * NNM_DIAG_MAX + 3];
    size_t pl = strlen(pre), ol = strlen(old);
    memcpy(joined, pre, pl);
    memcpy(joined + pl, ": ", 2);
    memcpy(joined + pl + 2, old, ol + 1);
    size_t n = pl + 2 + ol;
    if (n >= sizeof d->msg) n = sizeof d->msg - 1;
    memcpy(d->msg, joined, n);
    d->msg[n] = '\0';
}

void nnm_diag_clear(nnm_diag *d)
{
    if (d == NULL) return;
    d->code = NNM_OK;
    d->msg[0] = '\0';
}
