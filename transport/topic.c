/* transport/topic.c — the MQTT topic scheme: nnmesh/<mesh>/<kind>/<node>[/<arg>].
 *
 * Every level but the constant prefix and the kind is an id ([a-z0-9-]{1,32}), so nothing a
 * peer sends can smuggle a wildcard ('+', '#'), a level separator or a '$' topic into a topic
 * we build. The parser is the inverse of the formatter and accepts nothing else. Id checks
 * live here too, so the topic code stands alone (the topic fuzz target links only this). */
#include <stdio.h>
#include <string.h>

#include "wire_int.h"

#define PREFIX "nnmesh"

/* ---- ids ------------------------------------------------------------------------------- */

bool transport__id_ok(const char *s, size_t len, bool dots)
{
    if (len == 0 || len > NNM_ID_MAX) return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-') continue;
        if (dots && c == '.') continue;
        return false;
    }
    return true;
}

char *transport__escape(char *out, size_t size, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    if (size == 0) return out;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        size_t need = (c >= 0x20 && c < 0x7f && c != '\\') ? 1 : 4;
        if (o + need + 4 > size) { /* room for this, "..." and the NUL */
            if (o + 4 <= size) {
                memcpy(out + o, "...", 3);
                o += 3;
            }
            break;
        }
        if (need == 1) {
            out[o++] = (char)c;
        } else {
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = '\0';
    return out;
}

nnm_err nnm_id_decode(char out[NNM_ID_MAX + 1], const char *s, size_t len, const char *what,
                      nnm_diag *diag)
{
    out[0] = '\0';
    if (what == NULL) what = "id";
    if (s == NULL || len == 0)
        return nnm_diag_set(diag, NNM_EFORMAT, "%s is empty; ids are 1 to %d of [a-z0-9-]",
                            what, NNM_ID_MAX);
    if (len > NNM_ID_MAX)
        return nnm_diag_set(diag, NNM_ERANGE, "%s is %zu bytes long; ids are at most %d", what,
                            len, NNM_ID_MAX);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-') continue;
        if (c >= 0x21 && c < 0x7f)
            return nnm_diag_set(diag, NNM_EFORMAT,
                                "%s has '%c' at byte %zu; ids use only [a-z0-9-]", what, c, i);
        return nnm_diag_set(diag, NNM_EFORMAT,
                            "%s has byte 0x%02x at byte %zu; ids use only [a-z0-9-]", what, c,
                            i);
    }
    memcpy(out, s, len);
    out[len] = '\0';
    return NNM_OK;
}

/* ---- topics ---------------------------------------------------------------------------- */

static const char *const kind_names[NNM_TOPIC__COUNT] = {
    [NNM_TOPIC_ADVERT] = "advert", [NNM_TOPIC_INBOX] = "inbox", [NNM_TOPIC_REQ] = "req",
    [NNM_TOPIC_RES] = "res",       [NNM_TOPIC_STATS] = "stats", [NNM_TOPIC_CTL] = "ctl",
};

const char *nnm_topic_kind_name(unsigned kind)
{
    if (kind >= NNM_TOPIC__COUNT) return NULL;
    return kind_names[kind];
}

static bool kind_has_arg(nnm_topic_kind k)
{
    return k == NNM_TOPIC_REQ || k == NNM_TOPIC_RES || k == NNM_TOPIC_CTL;
}

static bool terminated(const char *s)
{
    return memchr(s, 0, NNM_ID_MAX + 1) != NULL;
}

static nnm_err check_level(const char *s, bool wildcard_ok, const char *what, nnm_diag *diag)
{
    char tmp[NNM_ID_MAX + 1];
    if (wildcard_ok && strcmp(s, "+") == 0) return NNM_OK;
    char w[64];
    snprintf(w, sizeof w, "topic %s", what);
    nnm_err rc = nnm_id_decode(tmp, s, strlen(s), w, diag);
    return rc == NNM_OK ? NNM_OK : NNM_EINVAL;
}

nnm_err nnm_topic_encode(char *buf, size_t size, const nnm_topic *t, nnm_diag *diag)
{
    nnm_err rc;
    if (buf == NULL || size == 0 || t == NULL)
        return nnm_diag_set(diag, NNM_EINVAL, "topic: no buffer");
    buf[0] = '\0';
    if ((unsigned)t->kind == 0 || (unsigned)t->kind >= NNM_TOPIC__COUNT)
        return nnm_diag_set(diag, NNM_EINVAL, "topic: unknown kind %d", (int)t->kind);
    if (!terminated(t->mesh) || !terminated(t->node) || !terminated(t->arg))
        return nnm_diag_set(diag, NNM_EINVAL, "topic: an id field is not terminated");
    if ((rc = check_level(t->mesh, false, "mesh name", diag)) != NNM_OK) return rc;
    if ((rc = check_level(t->node, true, "node id", diag)) != NNM_OK) return rc;
    bool has_arg = t->arg[0] != '\0';
    if (kind_has_arg(t->kind) != has_arg)
        return nnm_diag_set(diag, NNM_EINVAL, "topic: kind '%s' %s", kind_names[t->kind],
                            has_arg ? "takes no argument level" : "needs an argument level");
    if (has_arg && (rc = check_level(t->arg, true, "argument", diag)) != NNM_OK) return rc;
    int n = snprintf(buf, size, PREFIX "/%s/%s/%s%s%s", t->mesh, kind_names[t->kind], t->node,
                     has_arg ? "/" : "", t->arg);
    if (n < 0 || (size_t)n >= size) {
        buf[0] = '\0';
        return nnm_diag_set(diag, NNM_ERANGE, "topic: %d bytes do not fit a %zu-byte buffer", n,
                            size);
    }
    return NNM_OK;
}

nnm_err nnm_topic_decode(nnm_topic *t, const char *s, size_t len, nnm_diag *diag)
{
    nnm_err rc = NNM_EFORMAT;
    char esc[2 * NNM_TOPIC_MAX];
    const char *lv[6];
    size_t ln[6], nlv = 0;
    memset(t, 0, sizeof *t);
    if (s == NULL || len == 0)
        return nnm_diag_set(diag, NNM_EFORMAT, "topic is empty");
    if (len >= NNM_TOPIC_MAX)
        return nnm_diag_set(diag, NNM_ERANGE, "topic is %zu bytes; nnmesh topics are under %d",
                            len, NNM_TOPIC_MAX);
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\0')
            return nnm_diag_set(diag, NNM_EFORMAT, "topic has a NUL byte at %zu", i);
        if (s[i] == '+' || s[i] == '#')
            return nnm_diag_set(diag, NNM_EFORMAT, "topic has wildcard '%c' at byte %zu", s[i],
                                i);
    }
    transport__escape(esc, sizeof esc, s, len);
    /* Split into levels; more than 5 is already wrong. */
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && s[i] != '/') continue;
        if (nlv == 6) goto too_many;
        lv[nlv] = s + start;
        ln[nlv] = i - start;
        if (ln[nlv] == 0)
            return nnm_diag_set(diag, NNM_EFORMAT, "topic '%s' has an empty level %zu",
                                esc, nlv);
        nlv++;
        start = i + 1;
    }
    if (ln[0] != strlen(PREFIX) || memcmp(lv[0], PREFIX, ln[0]) != 0)
        return nnm_diag_set(diag, NNM_EFORMAT, "topic '%s' does not start with '" PREFIX "/'",
                            esc);
    if (nlv < 4)
        return nnm_diag_set(diag, NNM_EFORMAT,
                            "topic '%s' is short; expected " PREFIX "/<mesh>/<kind>/<node>",
                            esc);
    if ((rc = nnm_id_decode(t->mesh, lv[1], ln[1], "topic mesh name", diag)) != NNM_OK)
        goto fail;
    for (unsigned k = 1; k < NNM_TOPIC__COUNT; k++)
        if (strlen(kind_names[k]) == ln[2] && memcmp(kind_names[k], lv[2], ln[2]) == 0)
            t->kind = (nnm_topic_kind)k;
    if (t->kind == 0) {
        char k[64];
        rc = nnm_diag_set(diag, NNM_EFORMAT, "topic kind '%s' is not one of advert, inbox, "
                          "req, res, stats, ctl", transport__escape(k, sizeof k, lv[2], ln[2]));
        goto fail;
    }
    if ((rc = nnm_id_decode(t->node, lv[3], ln[3], "topic node id", diag)) != NNM_OK) goto fail;
    size_t want = kind_has_arg(t->kind) ? 5 : 4;
    if (nlv != want) {
        if (nlv > want) goto too_many;
        rc = nnm_diag_set(diag, NNM_EFORMAT, "topic kind '%s' needs a fifth level",
                          kind_names[t->kind]);
        goto fail;
    }
    if (want == 5 &&
        (rc = nnm_id_decode(t->arg, lv[4], ln[4], "topic argument", diag)) != NNM_OK)
        goto fail;
    return NNM_OK;
too_many:
    rc = nnm_diag_set(diag, NNM_EFORMAT, "topic '%s' has too many levels", esc);
fail:
    memset(t, 0, sizeof *t);
    return rc;
}
