# Independent computation of the v2 known answers in kat.rs, written from
# core/src/wire/README.md (not from the Rust code). Run: python3 kat.py
# (needs the `cryptography` package for HKDF-Expand and AES-CTR).
import hmac, hashlib, struct
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand
from cryptography.hazmat.primitives import hashes

def hello(node_id, boot_epoch, nonce, resume, run_state, order, ptr):
    body = node_id + struct.pack(">Q", boot_epoch) + nonce + struct.pack(">QQ", *resume) + bytes([run_state, order, ptr, 0])
    total = 8 + len(body)
    assert total == 84
    return b"SASY" + bytes([2, 1]) + struct.pack(">H", total) + body

shared = bytes(range(0x00, 0x20))
nI = bytes(range(0x40, 0x60)); nR = bytes(range(0x60, 0x80))
HI = hello(bytes(range(0x10, 0x20)), 1, nI, (3, 42), 2, 1, 8)
HR = hello(bytes(range(0x20, 0x30)), 0x1122334455667788, nR, (0, 0), 1, 1, 8)
TH = hashlib.sha256(b"sasyncd v2 transcript" + HI + HR).digest()
PRK = hmac.new(nI + nR, shared, hashlib.sha256).digest()
def K(l):
    info = b"sasyncd v2 " + l + TH
    v = hmac.new(PRK, info + b"\x01", hashlib.sha256).digest()
    v2 = HKDFExpand(hashes.SHA256(), 32, info).derive(PRK)
    assert v == v2
    return v
keys = {l: K(l) for l in [b"i2r enc", b"i2r mac", b"r2i enc", b"r2i mac"]}
def confirm_value(mac): return hmac.new(mac, b"sasyncd v2 confirm" + TH, hashlib.sha256).digest()
def seal(d, ty, seq, payload):
    enc, mac = keys[d + b" enc"], keys[d + b" mac"]
    n = len(payload); total = 48 + n
    hdr = b"SASY" + bytes([2, ty]) + struct.pack(">H", total)
    ctr = struct.pack(">QQ", seq, 0)
    ct = Cipher(algorithms.AES(enc), modes.CTR(ctr)).encryptor().update(payload)
    authed = hdr + struct.pack(">Q", seq) + ct
    return authed + hmac.new(mac, authed, hashlib.sha256).digest()

print("HELLO_I", HI.hex()); print("HELLO_R", HR.hex())
print("TH", TH.hex()); print("PRK", PRK.hex())
for l, v in keys.items(): print(l.decode(), v.hex())
print("confirm_i2r", confirm_value(keys[b"i2r mac"]).hex())
print("confirm_r2i", confirm_value(keys[b"r2i mac"]).hex())
print("CONFIRM_I", seal(b"i2r", 2, 0, confirm_value(keys[b"i2r mac"])).hex())
print("CONFIRM_R", seal(b"r2i", 2, 0, confirm_value(keys[b"r2i mac"])).hex())
ctl = bytes.fromhex("000000010000000200000000")
print("CTL_I_1", seal(b"i2r", 3, 1, ctl).hex())
pf = bytes(range(0x80, 0x94))
print("PFKEY_R_1", seal(b"r2i", 4, 1, pf).hex())
