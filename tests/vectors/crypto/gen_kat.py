#!/usr/bin/python3
"""tests/vectors/crypto/gen_kat.py — computes the crypto known-answer vectors independently of
libsodium and of crypto/ (python3-cryptography for Ed25519, X25519 and ChaCha20-Poly1305, a
from-scratch HChaCha20, hashlib for BLAKE2b) and prints them as C arrays:

    /usr/bin/python3 tests/vectors/crypto/gen_kat.py > tests/vectors/crypto/kat.h
    /usr/bin/python3 tests/vectors/crypto/gen_kat.py --corpus tests/fuzz/corpus

The second form writes the seed corpora of the fuzz targets envelope, envelope_sealed and
advert instead.

The byte layouts below restate the formats documented in crypto/*.c; a mismatch in either
shows up as a failing test_crypto_kat."""
import base64, hashlib, os, struct, sys
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives import serialization

RAW = serialization.Encoding.Raw, serialization.PublicFormat.Raw
M = 0xffffffff

def rotl(v, c): return ((v << c) & M) | (v >> (32 - c))

def qr(s, a, b, c, d):
    s[a] = (s[a] + s[b]) & M; s[d] = rotl(s[d] ^ s[a], 16)
    s[c] = (s[c] + s[d]) & M; s[b] = rotl(s[b] ^ s[c], 12)
    s[a] = (s[a] + s[b]) & M; s[d] = rotl(s[d] ^ s[a], 8)
    s[c] = (s[c] + s[d]) & M; s[b] = rotl(s[b] ^ s[c], 7)

def hchacha20(key, n16):
    s = [0x61707865, 0x3320646e, 0x79622d32, 0x6b206574] + list(struct.unpack('<8I', key)) \
        + list(struct.unpack('<4I', n16))
    for _ in range(10):
        qr(s, 0, 4, 8, 12); qr(s, 1, 5, 9, 13); qr(s, 2, 6, 10, 14); qr(s, 3, 7, 11, 15)
        qr(s, 0, 5, 10, 15); qr(s, 1, 6, 11, 12); qr(s, 2, 7, 8, 13); qr(s, 3, 4, 9, 14)
    return struct.pack('<8I', *(s[0:4] + s[12:16]))

# HChaCha20 test vector (draft-irtf-cfrg-xchacha, section 2.2.1)
assert hchacha20(bytes(range(32)), bytes.fromhex('000000090000004a0000000031415927')).hex() == \
    '82413b4227b27bfed30e42508a877d73a0f9e4d58a74a853c12ec41326d3ecdc'

def xchacha_seal(key, nonce, ad, pt):
    sub = hchacha20(key, nonce[:16])
    return nonce + ChaCha20Poly1305(sub).encrypt(b'\0' * 4 + nonce[16:], pt, ad)

def ed(seed): k = Ed25519PrivateKey.from_private_bytes(seed); return k, k.public_key().public_bytes(*RAW)
def u64(v): return struct.pack('>Q', v)
def lid(s): return bytes([len(s)]) + s.encode()
def b64(b): return base64.urlsafe_b64encode(b).rstrip(b'=').decode()
def fp(pk):
    h = hashlib.blake2b(pk, digest_size=32).hexdigest()[:16]
    return '-'.join(h[i:i + 4] for i in range(0, 16, 4))

out = []
def arr(name, b):
    rows = [', '.join('0x%02x' % x for x in b[i:i + 12]) for i in range(0, len(b), 12)]
    out.append('static const uint8_t %s[%d] = {\n    %s};' % (name, len(b), ',\n    '.join(rows)))
def sdef(name, s): out.append('static const char %s[] = "%s";' % (name, s))

# RFC 8032 section 7.1, tests 1 and 2
SEED_A = bytes.fromhex('9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60')
SEED_B = bytes.fromhex('4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb')
SEED_C = bytes(range(32))
ka, pka = ed(SEED_A); kb, pkb = ed(SEED_B); kc, pkc = ed(SEED_C)
assert pka.hex() == 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a'
assert pkb.hex() == '3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c'
for n, v in (('KAT_SEED_A', SEED_A), ('KAT_SEED_B', SEED_B), ('KAT_SEED_C', SEED_C),
             ('KAT_PK_A', pka), ('KAT_PK_B', pkb), ('KAT_PK_C', pkc)):
    arr(n, v)
sdef('KAT_PK_A_B64', b64(pka)); sdef('KAT_FP_A', fp(pka))
sdef('KAT_PK_B_B64', b64(pkb)); sdef('KAT_PK_C_B64', b64(pkc)); sdef('KAT_FP_C', fp(pkc))
sdef('KAT_SEED_A_B64', b64(SEED_A))

# certificate: authority B certifies node "bob" holding key C
cert = bytes([1]) + lid('bob') + pkc + u64(1700000000) + u64(1800000000) + pkb
cert += kb.sign(b'nnmesh-cert-v1' + cert)
arr('KAT_CERT_BOB', cert)

# advert: node "alice" (key A), no certificate
body = b'\x81\xa3cpu\x04'
adv = bytes([1]) + lid('alice') + pka + u64(3) + u64(7) + u64(1700000600) + struct.pack('>H', 0) \
    + struct.pack('>I', len(body)) + body
adv += ka.sign(b'nnmesh-advert-v1' + adv)
arr('KAT_ADVERT_BODY', body); arr('KAT_ADVERT_ALICE', adv)

# hellos between alice (key A) and bob (key C), fixed ephemeral secrets and nonces
EPH_A, NON_A = bytes([0x11]) * 32, bytes([0x21]) * 16
EPH_B, NON_B = bytes([0x33]) * 32, bytes([0x44]) * 16
xa = X25519PrivateKey.from_private_bytes(EPH_A); xpa = xa.public_key().public_bytes(*RAW)
xb = X25519PrivateKey.from_private_bytes(EPH_B); xpb = xb.public_key().public_bytes(*RAW)
def hello(k, pk, frm, to, xp, non):
    h = bytes([1]) + lid(frm) + lid(to) + pk + xp + non + struct.pack('>H', 0)
    return h + k.sign(b'nnmesh-hello-v1' + h)
arr('KAT_EPH_A', EPH_A); arr('KAT_NONCE_A', NON_A); arr('KAT_EPH_B', EPH_B); arr('KAT_NONCE_B', NON_B)
arr('KAT_HELLO_ALICE', hello(ka, pka, 'alice', 'bob', xpa, NON_A))
arr('KAT_HELLO_BOB', hello(kc, pkc, 'bob', 'alice', xpb, NON_B))
shared = xa.exchange(xb.public_key())
t = b'nnmesh-session-v1' + lid('alice') + lid('bob') + xpa + xpb + NON_A + NON_B + pka + pkc
okm = hashlib.blake2b(t, digest_size=64, key=shared).digest()
sid = hashlib.blake2b(t, digest_size=16).digest()[:8]
arr('KAT_KEY_ALICE_TO_BOB', okm[:32]); arr('KAT_KEY_BOB_TO_ALICE', okm[32:])
out.append('#define KAT_SESSION_ID UINT64_C(0x%s)' % sid.hex())

# envelope: the XChaCha20-Poly1305 example of draft-irtf-cfrg-xchacha (A.3.1)
key = bytes(range(0x80, 0xa0)); nonce = bytes(range(0x40, 0x58)); ad = bytes.fromhex('50515253c0c1c2c3c4c5c6c7')
pt = b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it."
sealed = xchacha_seal(key, nonce, ad, pt)
assert sealed[24:].hex().endswith('c0875924c1c7987947deafd8780acf49')
for n, v in (('KAT_ENV_KEY', key), ('KAT_ENV_NONCE', nonce), ('KAT_ENV_AD', ad), ('KAT_ENV_PT', pt),
             ('KAT_ENV_SEALED', sealed)):
    arr(n, v)

def write_corpus(root):
    seeds = {
        'envelope': {
            'kat_sealed': sealed,
            'empty_pt': xchacha_seal(key, bytes(24), ad, b''),
            'short_39': sealed[:39],
            'flipped_tag': sealed[:-1] + bytes([sealed[-1] ^ 1]),
            'counters': struct.pack('>8h', 10, 1, 1, -3, 1023, -1024, -1023, 5),
        },
        'envelope_sealed': {
            'kat_ad_pt': bytes([len(ad)]) + ad + pt,
            'empty': b'\0',
            'header_only': bytes([20]) + bytes(range(20)),
        },
        'advert': {
            'advert_alice': adv,
            'advert_bob_cert': adv_bob,
            'cert_bob': cert,
            'hello_bob': hello(kc, pkc, 'bob', 'alice', xpb, NON_B),
            'trust_file': ('# mesh\nnode alice %s\nauthority ca %s\nrevoke %s\n'
                           % (b64(pka), b64(pkb), b64(pkc))).encode(),
        },
    }
    for target, files in seeds.items():
        d = os.path.join(root, target)
        os.makedirs(d, exist_ok=True)
        for name, data in files.items():
            with open(os.path.join(d, name), 'wb') as f:
                f.write(data)

# advert from bob (key C) carrying his certificate
adv_bob = bytes([1]) + lid('bob') + pkc + u64(1) + u64(1) + u64(1700000600) \
    + struct.pack('>H', len(cert)) + cert + struct.pack('>I', len(body)) + body
adv_bob += kc.sign(b'nnmesh-advert-v1' + adv_bob)

if len(sys.argv) == 3 and sys.argv[1] == '--corpus':
    write_corpus(sys.argv[2])
    sys.exit(0)

print('/* tests/vectors/crypto/kat.h — generated by gen_kat.py; do not edit. */')
print('#include <stdint.h>')
print('\n'.join(out))
