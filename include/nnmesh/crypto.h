/* nnmesh/crypto.h — who a node is and whom it trusts, and how its messages are protected.
 *
 * - Identity: an Ed25519 key pair, kept in a mode-0600 key file.
 * - Trust store: the mesh trust file (node keys, signing authorities, revocations) and the
 *   node certificates an authority signs.
 * - Adverts: signed capacity announcements with epoch, sequence and expiry.
 * - Sessions: a signed X25519 exchange ("hello" messages) giving one key per direction.
 * - Envelopes: XChaCha20-Poly1305 with a random nonce per message and the encoded frame header
 *   as associated data; a sliding replay window per sender session.
 *
 * Nothing here touches the network: every message is bytes in, bytes out; the transport moves
 * them. Integers inside the byte formats are big-endian. Functions that take an nnm_diag *
 * accept NULL. Unless stated otherwise, input buffers are only read during the call. */
#ifndef NNMESH_CRYPTO_H
#define NNMESH_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#include "nnmesh/err.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- sizes ---------------------------------------------------------------------------- */

#define NNM_ID_MAX 32                /* node ids and names: [a-z0-9-]{1,32} */
#define NNM_PUBKEY_BYTES 32          /* Ed25519 public key */
#define NNM_SIG_BYTES 64             /* Ed25519 signature */
#define NNM_PUBKEY_B64_SIZE 44       /* 43 base64url characters (no padding) + NUL */
#define NNM_FINGERPRINT_SIZE 20      /* "xxxx-xxxx-xxxx-xxxx" + NUL */
#define NNM_KEY_BYTES 32             /* an envelope (session direction) key */
#define NNM_ENVELOPE_NONCE_BYTES 24
#define NNM_ENVELOPE_TAG_BYTES 16
#define NNM_ENVELOPE_OVERHEAD (NNM_ENVELOPE_NONCE_BYTES + NNM_ENVELOPE_TAG_BYTES)
#define NNM_CERT_MAX 256             /* an encoded certificate is at most this long */
#define NNM_ADVERT_BODY_MAX 65536    /* largest advert body nnm_advert_seal/open accept */
#define NNM_HELLO_MAX 512            /* an encoded hello is at most this long */
#define NNM_REPLAY_WINDOW 1024       /* counters remembered behind the highest one */

/* Nonzero if s is a valid node id or name: 1..32 characters of a-z, 0-9 and '-'. Safe to put
 * into an MQTT topic level. */
int nnm_id_is_valid(const char *s);

/* ---- public keys ---------------------------------------------------------------------- */

/* Writes pk as 43 base64url characters (no padding) and a NUL. Cannot fail. */
void nnm_pubkey_encode(char out[NNM_PUBKEY_B64_SIZE], const uint8_t pk[NNM_PUBKEY_BYTES]);

/* Parses a base64url public key (43 characters, no padding). Errors: NNM_EFORMAT (not
 * base64url, or not 32 bytes), NNM_ETRUST (all-zero, low-order or otherwise not a valid
 * Ed25519 point). On error out is zeroed. */
nnm_err nnm_pubkey_decode(uint8_t out[NNM_PUBKEY_BYTES], const char *b64, nnm_diag *diag);

/* Writes the short fingerprint of pk: the first 8 bytes of BLAKE2b-256(pk) in hex as
 * "xxxx-xxxx-xxxx-xxxx". For people comparing keys by eye; not for access decisions. */
void nnm_pubkey_get_fingerprint(char out[NNM_FINGERPRINT_SIZE], const uint8_t pk[NNM_PUBKEY_BYTES]);

/* ---- identity ------------------------------------------------------------------------- */

/* A node's Ed25519 key pair. The secret key lives in guarded memory that is inaccessible
 * while idle, and is wiped on free. One identity may be used from several threads. */
typedef struct nnm_identity nnm_identity;

/* Generates a fresh identity into *out (caller frees with nnm_identity_free).
 * Errors: NNM_ENOMEM, NNM_EBACKEND (libsodium could not initialise). */
nnm_err nnm_identity_new(nnm_identity **out, nnm_diag *diag);

/* Reads a key file written by nnm_identity_save. The file must be a regular file that group
 * and others can neither read nor write. Errors: NNM_EIO (cannot open or read; errno named),
 * NNM_ETRUST (mode too open: the message says which chmod to run), NNM_EFORMAT (not a key
 * file, bad base64, or the public key does not match the secret), NNM_ENOMEM, NNM_EBACKEND.
 * On error *out is NULL. */
nnm_err nnm_identity_load(nnm_identity **out, const char *path, nnm_diag *diag);

/* Writes id to a new key file at path with mode 0600. Never overwrites: an existing path is
 * NNM_EIO ("refusing to overwrite"). Other errors: NNM_EIO (create, write or sync failed; the
 * partial file is removed), NNM_ENOMEM. The format is three lines:
 *   nnmesh-key v1 / secret <base64url seed> / public <base64url public key>. */
nnm_err nnm_identity_save(const nnm_identity *id, const char *path, nnm_diag *diag);

/* Frees id and wipes its secret. NULL-safe. */
void nnm_identity_free(nnm_identity *id);

/* The identity's public key (32 bytes, owned by id, valid until nnm_identity_free). */
const uint8_t *nnm_identity_get_pubkey(const nnm_identity *id);

/* ---- trust store and certificates ----------------------------------------------------- */

/* The mesh trust file, a text file of lines ('#' starts a comment, blank lines are fine):
 *   node <id> <pubkey>          admits the node key <pubkey> under <id>
 *   authority <name> <pubkey>   admits any node holding a certificate signed by <pubkey>
 *   revoke <pubkey>             refuses <pubkey>, as a node or as an authority
 * Keys are base64url as printed by nnm_pubkey_encode. A trust store also remembers, for the
 * life of the process, which key each certificate-admitted id used first; an id is never
 * admitted with two different keys, nor one key under two ids. Thread-safe. */
typedef struct nnm_trust nnm_trust;

/* Reads and parses path. Errors: NNM_EIO (unreadable, errno named), NNM_ETRUST (writable by
 * others), NNM_EFORMAT (a bad line: the message is "PATH:LINE: what is wrong"; or no node or
 * authority line at all), NNM_ETRUST (a key that is not a valid Ed25519 point), NNM_ENOMEM.
 * On error *out is NULL. */
nnm_err nnm_trust_load(nnm_trust **out, const char *path, nnm_diag *diag);

/* Parses a trust file image of len bytes; name is used in messages in place of a path.
 * Errors as nnm_trust_load, less NNM_EIO. */
nnm_err nnm_trust_decode(nnm_trust **out, const char *text, size_t len, const char *name,
                         nnm_diag *diag);

/* NULL-safe. */
void nnm_trust_free(nnm_trust *t);

/* Decides whether the node calling itself id with Ed25519 key pk may take part, at unix time
 * now. cert (cert_len bytes, or NULL and 0) is a certificate from nnm_cert_seal; it is only
 * consulted when pk is not listed by a node line. Returns NNM_OK, or NNM_ETRUST with the
 * reason (revoked, unknown key, id bound to another key, bad / expired / not yet valid /
 * foreign certificate), or NNM_EINVAL for an invalid id. The first certificate admission
 * of an id binds it to its key in t. */
nnm_err nnm_trust_check(nnm_trust *t, const char *id, const uint8_t pk[NNM_PUBKEY_BYTES],
                        const uint8_t *cert, size_t cert_len, uint64_t now, nnm_diag *diag);

/* A decoded node certificate: authority says node id holds node_pk from not_before to
 * not_after (unix seconds, both inclusive). */
typedef struct nnm_cert {
    char id[NNM_ID_MAX + 1];
    uint8_t node_pk[NNM_PUBKEY_BYTES];
    uint64_t not_before;
    uint64_t not_after;
    uint8_t authority_pk[NNM_PUBKEY_BYTES];
    uint8_t sig[NNM_SIG_BYTES];
} nnm_cert;

/* Signs a certificate with the authority's identity and encodes it into out (cap bytes;
 * NNM_CERT_MAX always suffices); *out_len gets its length. Errors: NNM_EINVAL (bad id,
 * not_after < not_before, invalid node key), NNM_ERANGE (cap too small). */
nnm_err nnm_cert_seal(uint8_t *out, size_t cap, size_t *out_len, const nnm_identity *authority,
                      const char *id, const uint8_t node_pk[NNM_PUBKEY_BYTES],
                      uint64_t not_before, uint64_t not_after, nnm_diag *diag);

/* Decodes a certificate and verifies its signature against the authority key it names. It
 * does NOT say whether that authority is trusted, nor check the dates: nnm_trust_check does.
 * Errors: NNM_EFORMAT (malformed), NNM_ECRYPTO (bad signature). On error *out is zeroed. */
nnm_err nnm_cert_open(nnm_cert *out, const uint8_t *buf, size_t len, nnm_diag *diag);

/* ---- signed adverts ------------------------------------------------------------------- */

/* What nnm_advert_open returns. body points into the caller's buffer (borrowed). */
typedef struct nnm_signed_advert {
    char id[NNM_ID_MAX + 1];
    uint8_t pk[NNM_PUBKEY_BYTES];
    uint64_t epoch;         /* bumped by the node at every start */
    uint64_t seq;           /* bumped at every advert within an epoch */
    uint64_t expiry;        /* unix seconds */
    const uint8_t *body;    /* opaque to this layer (msgpack from the transport) */
    size_t body_len;
} nnm_signed_advert;

/* Per-peer memory of the last accepted (epoch, seq). A plain value: zero it with
 * nnm_advert_state_init and keep one per peer id. */
typedef struct nnm_advert_state {
    int seen;
    char id[NNM_ID_MAX + 1];
    uint64_t epoch;
    uint64_t seq;
} nnm_advert_state;

void nnm_advert_state_init(nnm_advert_state *st);

/* Signs body (opaque bytes) as an advert of node id with the node's identity. cert (or NULL,
 * 0) travels with the advert so that authority-admitted nodes can be checked. The signature
 * covers "nnmesh-advert-v1" || id || epoch || seq || expiry || body (and the key and cert).
 * Writes the advert into out (cap bytes; body_len + cert_len + 200 suffices).
 * Errors: NNM_EINVAL (bad id), NNM_ERANGE (body larger than NNM_ADVERT_BODY_MAX, cert larger
 * than NNM_CERT_MAX, cap too small). */
nnm_err nnm_advert_seal(uint8_t *out, size_t cap, size_t *out_len, const nnm_identity *self,
                        const char *id, const uint8_t *cert, size_t cert_len, uint64_t epoch,
                        uint64_t seq, uint64_t expiry, const uint8_t *body, size_t body_len,
                        nnm_diag *diag);

/* Verifies an advert: format, signature, trust (nnm_trust_check of its id, key and cert at
 * now), expiry (rejected when now > expiry + tolerance seconds; the message states the clock
 * difference), and, when st is not NULL, that (epoch, seq) is newer than the last accepted
 * one for this peer. Only when everything holds are *out filled and st advanced.
 * Errors: NNM_EFORMAT, NNM_ECRYPTO (bad signature), NNM_ETRUST, NNM_ETIMEOUT (expired),
 * NNM_EREPLAY (older epoch, or same epoch and seq <= last: ignore it), NNM_EINVAL (st belongs
 * to another peer id). */
nnm_err nnm_advert_open(nnm_signed_advert *out, const uint8_t *buf, size_t len, nnm_trust *trust,
                        nnm_advert_state *st, uint64_t now, uint64_t tolerance, nnm_diag *diag);

/* Parses an advert WITHOUT verifying anything, e.g. to find the peer's state by id before
 * nnm_advert_open. Never act on what it returns. Errors: NNM_EFORMAT. */
nnm_err nnm_advert_decode(nnm_signed_advert *out, const uint8_t *buf, size_t len, nnm_diag *diag);

/* ---- replay window -------------------------------------------------------------------- */

/* A sliding window over 64-bit message counters: the highest counter accepted so far and a
 * bitmap of the NNM_REPLAY_WINDOW counters below it. A plain value; one per sender session. */
typedef struct nnm_replay {
    uint64_t top;           /* highest accepted counter (valid when any != 0) */
    int any;
    uint64_t bits[NNM_REPLAY_WINDOW / 64];  /* bit i: counter top - i was accepted */
} nnm_replay;

void nnm_replay_init(nnm_replay *r);

/* Says whether counter would be accepted, changing nothing. Errors: NNM_EREPLAY (seen, or
 * NNM_REPLAY_WINDOW or more below the highest accepted counter). */
nnm_err nnm_replay_check(const nnm_replay *r, uint64_t counter, nnm_diag *diag);

/* As nnm_replay_check, then records counter. Call only after the envelope authenticated. */
nnm_err nnm_replay_commit(nnm_replay *r, uint64_t counter, nnm_diag *diag);

/* ---- sealed envelopes ----------------------------------------------------------------- */

/* Seals pt with key and a fresh random nonce, binding ad (the encoded frame header) as
 * associated data. out receives nonce || ciphertext || tag, pt_len + NNM_ENVELOPE_OVERHEAD
 * bytes; out must not overlap pt or ad. Errors: NNM_ERANGE (out_cap too small). */
nnm_err nnm_envelope_seal(uint8_t *out, size_t out_cap, size_t *out_len,
                          const uint8_t key[NNM_KEY_BYTES], const uint8_t *ad, size_t ad_len,
                          const uint8_t *pt, size_t pt_len, nnm_diag *diag);

/* Opens a sealed envelope into out (sealed_len - NNM_ENVELOPE_OVERHEAD bytes). Errors:
 * NNM_EFORMAT (shorter than nonce + tag; checked first), NNM_ERANGE (out_cap too small),
 * NNM_ECRYPTO (wrong key, or nonce, ciphertext, tag or ad altered; out is then zeroed). */
nnm_err nnm_envelope_open(uint8_t *out, size_t out_cap, size_t *out_len,
                          const uint8_t key[NNM_KEY_BYTES], const uint8_t *ad, size_t ad_len,
                          const uint8_t *sealed, size_t sealed_len, nnm_diag *diag);

/* ---- sessions ------------------------------------------------------------------------- */

/* One side of a pairwise key exchange in progress: an ephemeral X25519 key pair (wiped on
 * free) and a random session nonce. Each side makes one, sends its hello, and opens the
 * peer's hello with it. A hello is signed with the node's identity over
 * "nnmesh-hello-v1" || own id || peer id || ephemeral public key || nonce (and key, cert). */
typedef struct nnm_handshake nnm_handshake;

/* An established pairwise session: a send key, a receive key, a 64-bit session id equal on
 * both sides, counters and the receive replay window. Not thread-safe: one owner. */
typedef struct nnm_session nnm_session;

/* Starts a handshake of self_id (holding self) with peer_id. cert (or NULL, 0) is this node's
 * certificate, sent in the hello. Errors: NNM_EINVAL (bad ids, or self_id == peer_id),
 * NNM_ERANGE (cert too long), NNM_ENOMEM, NNM_EBACKEND. The handshake keeps a reference to
 * self: free the handshake first. */
nnm_err nnm_handshake_new(nnm_handshake **out, const nnm_identity *self, const char *self_id,
                          const char *peer_id, const uint8_t *cert, size_t cert_len,
                          nnm_diag *diag);

/* NULL-safe; wipes the ephemeral secret. */
void nnm_handshake_free(nnm_handshake *hs);

/* Encodes this side's signed hello into out (NNM_HELLO_MAX suffices). Errors: NNM_ERANGE. */
nnm_err nnm_hello_encode(uint8_t *out, size_t cap, size_t *out_len, const nnm_handshake *hs,
                         nnm_diag *diag);

/* Opens the peer's hello: format, sender and receiver ids match the handshake, signature,
 * trust (nnm_trust_check at now), and a non-degenerate X25519 result. On success *out is a
 * new session (caller frees), created at time now. Errors: NNM_EFORMAT, NNM_ECRYPTO (bad
 * signature or low-order ephemeral key), NNM_ETRUST, NNM_EINVAL (a hello for another pair of
 * ids), NNM_ENOMEM. The handshake may be freed afterwards. */
nnm_err nnm_hello_open(nnm_session **out, const nnm_handshake *hs, const uint8_t *msg,
                       size_t len, nnm_trust *trust, uint64_t now, nnm_diag *diag);

/* NULL-safe; wipes the keys. */
void nnm_session_free(nnm_session *s);

/* The session id both sides derived (put it in frame headers). */
uint64_t nnm_session_get_id(const nnm_session *s);

/* The peer's node id (owned by s). */
const char *nnm_session_get_peer(const nnm_session *s);

/* Rekey policy: after max_messages sealed messages or max_age seconds since the session was
 * made, nnm_session_needs_rekey says so. 0 disables a limit. Defaults: 2^32 messages, 3600 s. */
void nnm_session_set_rekey(nnm_session *s, uint64_t max_messages, uint64_t max_age);

/* Nonzero when the session should be replaced by a new handshake. */
int nnm_session_needs_rekey(const nnm_session *s, uint64_t now);

/* Seals pt for the peer with the send key (nnm_envelope_seal) and counts it. */
nnm_err nnm_session_seal(uint8_t *out, size_t out_cap, size_t *out_len, nnm_session *s,
                         const uint8_t *ad, size_t ad_len, const uint8_t *pt, size_t pt_len,
                         nnm_diag *diag);

/* Opens an envelope from the peer with the receive key, then checks and commits counter (the
 * frame header's counter, which ad carries) in the replay window; the window changes only
 * when both succeed. Errors: those of nnm_envelope_open, and NNM_EREPLAY (out is zeroed). */
nnm_err nnm_session_open(uint8_t *out, size_t out_cap, size_t *out_len, nnm_session *s,
                         uint64_t counter, const uint8_t *ad, size_t ad_len,
                         const uint8_t *sealed, size_t sealed_len, nnm_diag *diag);

/* The raw direction keys (owned by s), for callers that use nnm_envelope_* directly. */
const uint8_t *nnm_session_get_tx_key(const nnm_session *s);
const uint8_t *nnm_session_get_rx_key(const nnm_session *s);

#ifdef __cplusplus
}
#endif
#endif
