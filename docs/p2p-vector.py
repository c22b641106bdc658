#!/usr/bin/env python3
"""Recomputes the test vector of docs/P2P.md from the text of that document alone.

An implementation written from the spec, independent of the Swift code: Python's hashlib
(SHA-256, keyed BLAKE2b) and the `cryptography` package (X25519, Ed25519, ChaCha20-Poly1305),
with HChaCha20 written out to build XChaCha20-Poly1305. Its output must equal the values in
docs/P2P.md and in Tests/P2PTests/WireVectorTests.swift.

    python3 docs/p2p-vector.py
"""
import hashlib, struct
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives import serialization as s

def raw(pub): return pub.public_bytes(s.Encoding.Raw, s.PublicFormat.Raw)
def s8(b): return bytes([len(b)]) + b
def b32(b): return struct.pack(">I", len(b)) + b

def hchacha20(key, nonce16):
    def rotl(v, c): return ((v << c) & 0xffffffff) | (v >> (32 - c))
    def qr(x, a, b, c, d):
        x[a]=(x[a]+x[b])&0xffffffff; x[d]=rotl(x[d]^x[a],16)
        x[c]=(x[c]+x[d])&0xffffffff; x[b]=rotl(x[b]^x[c],12)
        x[a]=(x[a]+x[b])&0xffffffff; x[d]=rotl(x[d]^x[a],8)
        x[c]=(x[c]+x[d])&0xffffffff; x[b]=rotl(x[b]^x[c],7)
    x = [0x61707865,0x3320646e,0x79622d32,0x6b206574] + list(struct.unpack("<8I", key)) + list(struct.unpack("<4I", nonce16))
    for _ in range(10):
        qr(x,0,4,8,12); qr(x,1,5,9,13); qr(x,2,6,10,14); qr(x,3,7,11,15)
        qr(x,0,5,10,15); qr(x,1,6,11,12); qr(x,2,7,8,13); qr(x,3,4,9,14)
    return struct.pack("<8I", *(x[0:4] + x[12:16]))

def xchacha_seal(key, nonce24, pt, ad):
    sub = hchacha20(key, nonce24[:16])
    return ChaCha20Poly1305(sub).encrypt(b"\0\0\0\0" + nonce24[16:], pt, ad)

genesis = b"\x05" * 32
id1 = Ed25519PrivateKey.from_private_bytes(b"\x01" * 32)
id2 = Ed25519PrivateKey.from_private_bytes(b"\x02" * 32)
e1 = X25519PrivateKey.from_private_bytes(b"\x03" * 32)
e2 = X25519PrivateKey.from_private_bytes(b"\x04" * 32)

def hello(member, eph):
    return b"\x01" + struct.pack(">H", 1) + s8(b"test-chain") + genesis + s8(member) + raw(eph.public_key())

hI, hR = hello(b"m1", e1), hello(b"m2", e2)
th = hashlib.sha256(s8(b"CreditLedger p2p v1 transcript") + b32(hI) + b32(hR)).digest()
authI = b"\x02" + id1.sign(s8(b"CreditLedger p2p v1 auth") + b"\x01" + th)
authR = b"\x02" + id2.sign(s8(b"CreditLedger p2p v1 auth") + b"\x02" + th)
dh = e1.exchange(e2.public_key())
kI2R = hashlib.blake2b(s8(b"CreditLedger p2p v1 initiator->responder") + th, key=dh, digest_size=32).digest()
kR2I = hashlib.blake2b(s8(b"CreditLedger p2p v1 responder->initiator") + th, key=dh, digest_size=32).digest()
pt = b"\x01" + b"hello"
L = len(pt) + 16
prefix = struct.pack(">I", L)
frame = prefix + xchacha_seal(kI2R, b"\0" * 16 + struct.pack(">Q", 0), pt, prefix)
for name, v in [("helloI", hI), ("helloR", hR), ("th", th), ("authI", authI), ("authR", authR), ("kI2R", kI2R), ("kR2I", kR2I), ("frame", frame)]:
    print(name, v.hex())
