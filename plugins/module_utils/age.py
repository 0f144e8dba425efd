# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The age v1 file format (https://age-encryption.org/v1): streaming encryption and decryption, keys.

What is written here decrypts with the stock ``age`` tool, and what ``age`` writes decrypts here.
Only the ``cryptography`` package is used; importing this module never fails without it (see
``HAS_CRYPTOGRAPHY``), the classes then raise ``AgeError`` saying what to install.
"""

from __future__ import annotations

import base64
import binascii
import collections
import hashlib
import hmac
import io
import os
import re
import secrets
import shutil
import struct
import tempfile

from ansible_collections.lifeboat.backup.plugins.module_utils.common import LifeboatError, fsync_dir, remove_path

try:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF, HKDFExpand
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
except ImportError as exc:
    HAS_CRYPTOGRAPHY = False
    CRYPTOGRAPHY_IMPORT_ERROR = exc
else:
    HAS_CRYPTOGRAPHY = True
    CRYPTOGRAPHY_IMPORT_ERROR = None

try:
    from cryptography.hazmat.primitives.asymmetric.mlkem import MLKEM768PrivateKey, MLKEM768PublicKey

    MLKEM768PrivateKey.from_seed_bytes(bytes(64))
except Exception:  # ImportError, or UnsupportedAlgorithm when the OpenSSL below lacks ML-KEM
    HAS_MLKEM = False
else:
    HAS_MLKEM = True

CHUNK_SIZE = 64 * 1024
DEFAULT_WORK_FACTOR = 18
MIN_WORK_FACTOR = 10
MAX_WORK_FACTOR = 22

# Every age file starts with _MAGIC (binary) or ARMOR_BEGIN (armored); version 1, the one read and written, with INTRO.
_MAGIC = b"age-encryption.org/"
INTRO = _MAGIC + b"v1\n"
ARMOR_BEGIN = b"-----BEGIN AGE ENCRYPTED FILE-----"
_ARMOR_END = b"-----END AGE ENCRYPTED FILE-----"
_TAG_SIZE = 16
_ENCRYPTED_CHUNK = CHUNK_SIZE + _TAG_SIZE
_FILE_KEY_SIZE = 16
_WRAPPED_KEY_SIZE = _FILE_KEY_SIZE + _TAG_SIZE
_NONCE_SIZE = 16
_COLUMNS = 64
_BYTES_PER_LINE = 48
# Bounds that keep a hostile header from eating memory; real headers are a few KiB.
_MAX_LINE = 64 * 1024
_MAX_HEADER = 4 * 1024 * 1024
_MAX_ARMOR_WHITESPACE = 1024

_X25519_INFO = b"age-encryption.org/v1/X25519"
_SCRYPT_LABEL = b"age-encryption.org/v1/scrypt"
_HYBRID_TYPE = "mlkem768x25519"
_HYBRID_INFO = b"age-encryption.org/mlkem768x25519"
# HPKE suite MLKEM768-X25519 (X-Wing, 0x647a), HKDF-SHA256 (1), ChaCha20Poly1305 (3): RFC 9180, draft-ietf-hpke-pq.
_HPKE_SUITE = b"HPKE" + struct.pack(">HHH", 0x647A, 0x0001, 0x0003)
_XWING_LABEL = b"\\.//^\\"
_MLKEM_PUBLIC_SIZE = 1184
_MLKEM_CIPHERTEXT_SIZE = 1088
_HYBRID_ENC_SIZE = _MLKEM_CIPHERTEXT_SIZE + 32

_BASE64_CHARS = re.compile(rb"[A-Za-z0-9+/]*")
_ARGUMENT = re.compile(rb"[\x21-\x7e]+")
_WORK_FACTOR = re.compile(r"[1-9][0-9]*")
_BECH32_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"

_Stanza = collections.namedtuple("_Stanza", "type args body")
_Header = collections.namedtuple("_Header", "stanzas mac signed")


class AgeError(LifeboatError):
    """Reading or writing an age file failed; the message is fit for an operator."""


class AgeNoMatch(AgeError):
    """No given identity or passphrase opens the file."""


class AgeHeaderError(AgeError):
    """The header is malformed: not an age file, damaged, or made by a broken tool."""


class AgeHMACError(AgeError):
    """The header parses and the key opened it, but its MAC does not match: it was modified."""


class AgePayloadError(AgeError):
    """The encrypted data is truncated, modified, reordered, has trailing data or is not canonical."""


class AgeArmorError(AgeError):
    """The ASCII armor (-----BEGIN AGE ENCRYPTED FILE-----) is malformed."""


class AgeUnsupported(AgeError):
    """A recipient or identity type Lifeboat cannot use (plugins, SSH keys, post-quantum without ML-KEM)."""


def _require_cryptography():
    if not HAS_CRYPTOGRAPHY:
        raise AgeError(
            "age encryption needs the Python package 'cryptography' on this host (%s); install it "
            "(pip install cryptography, or the python3-cryptography package)" % CRYPTOGRAPHY_IMPORT_ERROR
        )


# Encodings ----------------------------------------------------------------------------------------


def _b64encode(data):
    return base64.b64encode(data).rstrip(b"=")


def _b64decode(text):
    """Canonical unpadded base64 (what the age header requires), or None."""
    if not _BASE64_CHARS.fullmatch(text) or len(text) % 4 == 1:
        return None
    data = base64.b64decode(text + b"=" * (-len(text) % 4))
    # Re-encoding catches non-zero padding bits: two spellings of one value would make the header malleable.
    return data if _b64encode(data) == text else None


def _bech32_polymod(values):
    generator = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
    checksum = 1
    for value in values:
        top = checksum >> 25
        checksum = (checksum & 0x1FFFFFF) << 5 ^ value
        for i in range(5):
            if top >> i & 1:
                checksum ^= generator[i]
    return checksum


def _bech32_hrp_expand(hrp):
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _convert_bits(data, from_bits, to_bits, pad):
    accumulator = bits = 0
    out = []
    for value in data:
        accumulator = (accumulator << from_bits | value) & 0xFFFF
        bits += from_bits
        while bits >= to_bits:
            bits -= to_bits
            out.append(accumulator >> bits & (1 << to_bits) - 1)
    if pad:
        if bits:
            out.append(accumulator << to_bits - bits & (1 << to_bits) - 1)
    elif bits >= from_bits or accumulator << to_bits - bits & (1 << to_bits) - 1:
        return None
    return out


def _bech32_encode(hrp, data):
    """BIP 173 Bech32 without its length limit, upper case when ``hrp`` is."""
    lower = hrp.lower()
    values = _convert_bits(data, 8, 5, True)
    polymod = _bech32_polymod(_bech32_hrp_expand(lower) + values + [0] * 6) ^ 1
    values += [polymod >> 5 * (5 - i) & 31 for i in range(6)]
    text = lower + "1" + "".join(_BECH32_CHARSET[v] for v in values)
    return text if hrp == lower else text.upper()


def _bech32_decode(text):
    """Return (hrp as written, data); raise ValueError saying what is wrong."""
    if text.lower() != text and text.upper() != text:
        raise ValueError("it mixes upper and lower case")
    pos = text.rfind("1")
    if pos < 1 or pos + 7 > len(text):
        raise ValueError("it is too short or lacks the '1' separator")
    hrp = text[:pos]
    if any(not 33 <= ord(c) <= 126 for c in hrp):
        raise ValueError("its prefix has invalid characters")
    values = [_BECH32_CHARSET.find(c) for c in text[pos + 1 :].lower()]
    if -1 in values:
        raise ValueError("it has characters outside the Bech32 alphabet")
    if _bech32_polymod(_bech32_hrp_expand(hrp.lower()) + values) != 1:
        raise ValueError("its checksum is wrong (a typo or a truncated copy?)")
    data = _convert_bits(values[:-6], 5, 8, False)
    if data is None:
        raise ValueError("its padding is invalid")
    return hrp, bytes(data)


# Primitives ---------------------------------------------------------------------------------------


def _hkdf(ikm, salt, info):
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(ikm)


def _seal_key(key, file_key):
    return ChaCha20Poly1305(key).encrypt(bytes(12), file_key, None)


def _open_key(key, body):
    """The wrapped file key, or None when ``key`` is not the right one."""
    try:
        return ChaCha20Poly1305(key).decrypt(bytes(12), body, None)
    except InvalidTag:
        return None


def _x25519(private_key, public_bytes):
    """X25519 refusing the all-zero result of low-order points, as the age spec demands."""
    try:
        shared = private_key.exchange(X25519PublicKey.from_public_bytes(public_bytes))
    except ValueError:
        shared = bytes(32)
    if not any(shared):
        raise AgeHeaderError(
            "an X25519 share in the header is a low-order point; the file was crafted or damaged, not made by age"
        )
    return shared


def _hpke_key_and_nonce(shared_secret):
    """RFC 9180 key schedule, base mode, for the age hybrid stanza."""

    def extract(salt, label, ikm):
        return hmac.new(salt, b"HPKE-v1" + _HPKE_SUITE + label + ikm, hashlib.sha256).digest()

    def expand(prk, label, length):
        info = struct.pack(">H", length) + b"HPKE-v1" + _HPKE_SUITE + label + context
        return HKDFExpand(algorithm=hashes.SHA256(), length=length, info=info).derive(prk)

    context = b"\x00" + extract(b"", b"psk_id_hash", b"") + extract(b"", b"info_hash", _HYBRID_INFO)
    secret = extract(shared_secret, b"secret", b"")
    return expand(secret, b"key", 32), expand(secret, b"base_nonce", 12)


def _xwing_combine(mlkem_secret, x25519_secret, x25519_ciphertext, x25519_public):
    return hashlib.sha3_256(mlkem_secret + x25519_secret + x25519_ciphertext + x25519_public + _XWING_LABEL).digest()


def _require_mlkem():
    if not HAS_MLKEM:
        raise AgeUnsupported(
            "post-quantum (mlkem768x25519) age keys need ML-KEM-768, which the installed 'cryptography' package "
            "lacks; upgrade it (cryptography 50 has it) or use a classic age1... key"
        )


# Recipients and identities ------------------------------------------------------------------------


class _X25519Recipient:
    kind = "X25519"

    def __init__(self, public):
        self.public = public

    def wrap(self, file_key):
        ephemeral = X25519PrivateKey.generate()
        share = ephemeral.public_key().public_bytes_raw()
        try:
            shared = _x25519(ephemeral, self.public)
        except AgeHeaderError:
            raise AgeError("recipient %s is not a usable X25519 public key" % str(self)) from None
        body = _seal_key(_hkdf(shared, share + self.public, _X25519_INFO), file_key)
        return _Stanza("X25519", [_b64encode(share).decode("ascii")], body)

    def __str__(self):
        return _bech32_encode("age", self.public)


class _HybridRecipient:
    kind = _HYBRID_TYPE

    def __init__(self, public):
        try:
            self._mlkem = MLKEM768PublicKey.from_public_bytes(public[:_MLKEM_PUBLIC_SIZE])
        except ValueError:
            raise AgeError("the post-quantum recipient age1pq1... is not a valid ML-KEM-768 key") from None
        self.public = public

    def wrap(self, file_key):
        x25519_public = self.public[_MLKEM_PUBLIC_SIZE:]
        mlkem_secret, mlkem_ciphertext = self._mlkem.encapsulate()
        ephemeral = X25519PrivateKey.generate()
        x25519_ciphertext = ephemeral.public_key().public_bytes_raw()
        try:
            x25519_secret = _x25519(ephemeral, x25519_public)
        except AgeHeaderError:
            raise AgeError("the post-quantum recipient age1pq1... has an unusable X25519 part") from None
        key, nonce = _hpke_key_and_nonce(_xwing_combine(mlkem_secret, x25519_secret, x25519_ciphertext, x25519_public))
        enc = _b64encode(mlkem_ciphertext + x25519_ciphertext).decode("ascii")
        return _Stanza(_HYBRID_TYPE, [enc], ChaCha20Poly1305(key).encrypt(nonce, file_key, b""))

    def __str__(self):
        return _bech32_encode("age1pq", self.public)


def _x25519_stanza_share(stanza):
    """Check an X25519 stanza's shape (no key needed); return its ephemeral share."""
    share = _b64decode(stanza.args[0].encode("ascii")) if len(stanza.args) == 1 else None
    if share is None or len(share) != 32 or len(stanza.body) != _WRAPPED_KEY_SIZE:
        raise AgeHeaderError("malformed X25519 stanza in the header; the file is damaged or was not made by age")
    return share


def _hybrid_stanza_enc(stanza):
    enc = _b64decode(stanza.args[0].encode("ascii")) if len(stanza.args) == 1 else None
    if enc is None or len(enc) != _HYBRID_ENC_SIZE or len(stanza.body) != _WRAPPED_KEY_SIZE:
        raise AgeHeaderError(
            "malformed mlkem768x25519 stanza in the header; the file is damaged or was not made by age"
        )
    return enc


def _scrypt_stanza_params(stanza, max_work_factor=None):
    """Check a scrypt stanza's shape and work factor (before any scrypt runs); return (salt, log2 N)."""
    salt = _b64decode(stanza.args[0].encode("ascii")) if len(stanza.args) == 2 else None
    if (
        salt is None
        or len(salt) != 16
        or not _WORK_FACTOR.fullmatch(stanza.args[1])
        or len(stanza.body) != _WRAPPED_KEY_SIZE
    ):
        raise AgeHeaderError("malformed scrypt (passphrase) stanza in the header; the file is damaged")
    # Compare lengths first: int() of a huge digit string is slow, and refused by Python anyway.
    if max_work_factor is not None and (len(stanza.args[1]) > 3 or int(stanza.args[1]) > max_work_factor):
        raise AgeHeaderError(
            "the passphrase work factor of this file is 2^%s, above the accepted limit 2^%d; if you trust the "
            "file, raise encryption.max_work_factor (each step doubles the time and memory scrypt needs)"
            % (_show(stanza.args[1].encode("ascii")).strip("'"), max_work_factor)
        )
    return salt, int(stanza.args[1])


class _X25519Identity:
    def __init__(self, secret):
        self._key = X25519PrivateKey.from_private_bytes(secret)
        self._public = self._key.public_key().public_bytes_raw()

    def recipient(self):
        return str(_X25519Recipient(self._public))

    def unwrap(self, stanza):
        """The file key; None when the stanza is not addressed to this identity."""
        if stanza.type != "X25519":
            return None
        share = _x25519_stanza_share(stanza)
        shared = _x25519(self._key, share)
        return _open_key(_hkdf(shared, share + self._public, _X25519_INFO), stanza.body)


class _HybridIdentity:
    def __init__(self, seed):
        # MLKEM768-X25519 private key expansion (draft-ietf-hpke-pq, same as X-Wing).
        expanded = hashlib.shake_256(seed).digest(96)
        self._mlkem = MLKEM768PrivateKey.from_seed_bytes(expanded[:64])
        self._x25519 = X25519PrivateKey.from_private_bytes(expanded[64:])
        self._x25519_public = self._x25519.public_key().public_bytes_raw()
        self._public = self._mlkem.public_key().public_bytes_raw() + self._x25519_public

    def recipient(self):
        return str(_HybridRecipient(self._public))

    def unwrap(self, stanza):
        if stanza.type != _HYBRID_TYPE:
            return None
        enc = _hybrid_stanza_enc(stanza)
        x25519_ciphertext = enc[_MLKEM_CIPHERTEXT_SIZE:]
        mlkem_secret = self._mlkem.decapsulate(enc[:_MLKEM_CIPHERTEXT_SIZE])
        x25519_secret = _x25519(self._x25519, x25519_ciphertext)
        key, nonce = _hpke_key_and_nonce(
            _xwing_combine(mlkem_secret, x25519_secret, x25519_ciphertext, self._x25519_public)
        )
        try:
            return ChaCha20Poly1305(key).decrypt(nonce, stanza.body, b"")
        except InvalidTag:
            return None


class _ScryptIdentity:
    def __init__(self, passphrase, max_work_factor):
        self._passphrase = _passphrase_bytes(passphrase)
        self._max_work_factor = max_work_factor

    def unwrap(self, stanza):
        if stanza.type != "scrypt":
            return None
        salt, log_n = _scrypt_stanza_params(stanza, self._max_work_factor)
        return _open_key(_scrypt_key(self._passphrase, salt, log_n), stanza.body)


def _passphrase_bytes(passphrase):
    if not isinstance(passphrase, (str, bytes)):
        raise AgeError("the passphrase must be a string, not %s" % type(passphrase).__name__)
    return passphrase.encode("utf-8") if isinstance(passphrase, str) else passphrase


def _scrypt_key(passphrase, salt, log_n):
    return Scrypt(salt=_SCRYPT_LABEL + salt, length=32, n=1 << log_n, r=8, p=1).derive(passphrase)


def parse_recipient(text):
    """Parse an age recipient (public key) 'age1...' or, with ML-KEM, 'age1pq1...'."""
    if not isinstance(text, str):
        raise AgeError("an age recipient must be a string like age1..., not %s" % type(text).__name__)
    text = text.strip()
    if text.startswith(("ssh-", "ecdsa-")):
        raise AgeUnsupported("SSH public keys are not supported as recipients; use an age key (age-keygen) instead")
    try:
        hrp, data = _bech32_decode(text)
    except ValueError as exc:
        raise AgeError("invalid age recipient %r: %s" % (text[:80], exc)) from None
    if hrp == "age" and len(data) == 32:
        return _X25519Recipient(data)
    if hrp == "age1pq":
        _require_mlkem()
        if len(data) == _MLKEM_PUBLIC_SIZE + 32:
            return _HybridRecipient(data)
    elif hrp.startswith("age1"):
        raise AgeUnsupported(
            "recipient %s... needs the age plugin %r, which Lifeboat does not support; use an age key (age-keygen)"
            % (text[:16], hrp[4:])
        )
    raise AgeError("invalid age recipient %r: expected a public key starting with age1" % text[:80])


def parse_identity(text):
    """Parse an age identity (secret key) 'AGE-SECRET-KEY-1...' or, with ML-KEM, 'AGE-SECRET-KEY-PQ-1...'."""
    if not isinstance(text, str):
        raise AgeError("an age identity must be a string like AGE-SECRET-KEY-1..., not %s" % type(text).__name__)
    text = text.strip()
    # Messages never quote the text: it is a secret key.
    try:
        hrp, data = _bech32_decode(text)
    except ValueError as exc:
        raise AgeError("invalid age identity (secret key): %s" % exc) from None
    if hrp == "AGE-SECRET-KEY-" and len(data) == 32:
        _require_cryptography()
        return _X25519Identity(data)
    if hrp == "AGE-SECRET-KEY-PQ-" and len(data) == 32:
        _require_cryptography()
        _require_mlkem()
        return _HybridIdentity(data)
    if hrp.startswith("AGE-PLUGIN-"):
        raise AgeUnsupported("age plugin identities (%s...) are not supported; use an age key (age-keygen)" % hrp)
    raise AgeError("invalid age identity: expected a secret key starting with AGE-SECRET-KEY-1")


def generate_x25519_identity():
    """Return a new (identity 'AGE-SECRET-KEY-1...', recipient 'age1...') pair, as age-keygen makes."""
    _require_cryptography()
    identity = _bech32_encode("AGE-SECRET-KEY-", secrets.token_bytes(32))
    return identity, identity_to_recipient(identity)


def identity_to_recipient(identity):
    """The public recipient string of an identity string."""
    return parse_identity(identity).recipient()


def read_identity_file(path):
    """Identity strings of an age identity file (as age-keygen writes): '#' comments and blank lines skipped."""
    try:
        with open(path, "rb") as handle:
            content = handle.read(_MAX_HEADER + 1)
    except OSError as exc:
        raise AgeError("cannot read the age identity file %s: %s" % (path, exc.strerror)) from None
    if is_age(content):
        raise AgeUnsupported(
            "the identity file %s is itself age-encrypted; decrypt it first (age -d -o key.txt %s)" % (path, path)
        )
    try:
        lines = content.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        raise AgeError("the identity file %s is not a text file of age keys (AGE-SECRET-KEY-1...)" % path) from None
    identities = []
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            parse_identity(line)
        except AgeError as exc:
            raise type(exc)("%s, line %d: %s" % (path, number, exc)) from None
        identities.append(line)
    if not identities:
        raise AgeError("the identity file %s holds no age key (AGE-SECRET-KEY-1...)" % path)
    return identities


# Reading the input --------------------------------------------------------------------------------


class _Source:
    """Buffered reading over any object with read(n): whole lines for the header, exact sizes after."""

    def __init__(self, fileobj):
        self._fileobj = fileobj
        self._buffer = bytearray()

    def _fill(self, size):
        data = self._fileobj.read(size)
        if not data:
            return False
        self._buffer += data
        return True

    def peek(self, size):
        while len(self._buffer) < size and self._fill(size - len(self._buffer)):
            pass
        return bytes(self._buffer[:size])

    def readline(self, limit):
        """A line with its b'\\n', or without at the end of input or when ``limit`` is reached."""
        while True:
            end = self._buffer.find(b"\n", 0, limit)
            if end >= 0:
                return self._take(end + 1)
            if len(self._buffer) >= limit or not self._fill(8192):
                return self._take(limit)

    def read(self, size):
        """Exactly ``size`` bytes, fewer only at the end of input."""
        if not self._buffer:
            data = self._fileobj.read(size)
            if len(data) == size or not data:
                return data
            self._buffer += data
        while len(self._buffer) < size and self._fill(size - len(self._buffer)):
            pass
        return self._take(size)

    def _take(self, size):
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data


class _ArmorDecoder:
    """Strict PEM (RFC 7468) decoding of an armored age file, as a readable stream.

    Only whitespace may surround the block, lines are 64 columns but the last, base64 is canonical.
    """

    def __init__(self, source):
        self._source = source
        self._started = self._finished = False

    def _line(self):
        line = self._source.readline(_MAX_ARMOR_WHITESPACE)
        if not line:
            raise AgeArmorError("the armored age file ends before its '%s' line; it is truncated" % _ARMOR_END.decode())
        return line[:-1] if line.endswith(b"\n") else line

    def _start(self):
        skipped = 0
        line = self._line()
        while not line.strip():
            skipped += len(line) + 1
            if skipped > _MAX_ARMOR_WHITESPACE:
                raise AgeArmorError("too much whitespace before the armored age file")
            line = self._line()
        if line.rstrip(b"\r") != ARMOR_BEGIN:
            raise AgeArmorError(
                "the armored age file must start with the line '%s', not %s" % (ARMOR_BEGIN.decode(), _show(line))
            )
        self._started = True

    def _finish(self):
        trailing = self._source.read(_MAX_ARMOR_WHITESPACE + 1)
        if trailing.strip() or len(trailing) > _MAX_ARMOR_WHITESPACE:
            raise AgeArmorError("data follows the '%s' line of the armored age file" % _ARMOR_END.decode())
        self._finished = True

    def read(self, size):
        if not self._started:
            self._start()
        out = bytearray()
        while not self._finished and len(out) < size:
            line = self._line().rstrip(b"\r")
            if line == _ARMOR_END:
                self._finish()
                break
            decoded = _armor_line(line)
            if decoded is None:
                raise AgeArmorError(
                    "the armored age file has a malformed line (it must be canonical base64, 64 columns, no spaces, "
                    "no headers); was it edited or re-wrapped?"
                )
            out += decoded
            if len(decoded) < _BYTES_PER_LINE:
                if self._line().rstrip(b"\r") != _ARMOR_END:
                    raise AgeArmorError(
                        "the armored age file has a short line before its end, or lacks its '%s' line"
                        % _ARMOR_END.decode()
                    )
                self._finish()
        return bytes(out)


def _armor_line(line):
    """A canonical padded base64 line of at most 64 columns, decoded; or None."""
    if not line or len(line) > _COLUMNS:
        return None
    try:
        decoded = base64.b64decode(line, validate=True)
    except binascii.Error:
        return None
    return decoded if base64.b64encode(decoded) == line else None


def _open_source(fileobj):
    """Wrap ``fileobj``, decoding the ASCII armor when the input is armored; return (source, armored)."""
    source = _Source(fileobj)
    start = source.peek(_MAX_ARMOR_WHITESPACE + len(ARMOR_BEGIN) + 2)
    # Anything PEM-like goes to the armor decoder, so a damaged armor is reported as such.
    if not start.startswith(_MAGIC) and (start.lstrip().startswith(b"-----") or b"\n-----BEGIN" in start):
        return _Source(_ArmorDecoder(source)), True
    return source, False


def is_age(first_bytes):
    """True when ``first_bytes`` (the start of a file, 64 bytes or more) begin an age file, binary or armored."""
    return first_bytes.startswith(_MAGIC) or first_bytes.lstrip().startswith(ARMOR_BEGIN)


def _parse_header(source):
    signed = bytearray()

    def next_line():
        line = source.readline(_MAX_LINE)
        if not line.endswith(b"\n"):
            raise AgeHeaderError("the age header is truncated or has an overlong line; the file is damaged")
        signed.extend(line)
        if len(signed) > _MAX_HEADER:
            raise AgeHeaderError("the age header is larger than %d bytes; the file is damaged" % _MAX_HEADER)
        return line[:-1]

    first = source.readline(len(INTRO))
    if first != INTRO:
        if not first:
            raise AgeHeaderError("the file is empty, not an age file")
        if first.startswith(_MAGIC):
            raise AgeHeaderError(
                "unsupported or damaged age version line %s; Lifeboat reads age-encryption.org/v1 files"
                % _show((first + source.readline(64)).rstrip(b"\n"))
            )
        raise AgeHeaderError("not an age file: it does not start with 'age-encryption.org/v1'")
    signed += first
    stanzas = []
    while True:
        line = next_line()
        if line.startswith(b"---"):
            break
        arguments = line.split(b" ")
        if arguments[0] != b"->" or len(arguments) < 2 or not all(_ARGUMENT.fullmatch(a) for a in arguments[1:]):
            raise AgeHeaderError("malformed line in the age header: %s; the file is damaged" % _show(line))
        body = bytearray()
        while True:
            line = next_line()
            decoded = _b64decode(line) if len(line) <= _COLUMNS else None
            if decoded is None:
                raise AgeHeaderError("malformed stanza body in the age header: %s; the file is damaged" % _show(line))
            body += decoded
            if len(line) < _COLUMNS:
                break
        text = [a.decode("ascii") for a in arguments[1:]]
        stanzas.append(_Stanza(text[0], text[1:], bytes(body)))
    mac = _b64decode(line[4:]) if line.startswith(b"--- ") else None
    if mac is None or len(mac) != 32:
        raise AgeHeaderError("malformed MAC line at the end of the age header; the file is damaged")
    if not stanzas:
        raise AgeHeaderError("the age header names no recipient; the file is damaged")
    if any(s.type == "scrypt" for s in stanzas) and len(stanzas) > 1:
        # The spec forbids mixing: a passphrase file must not also open with some other key.
        raise AgeHeaderError("a passphrase (scrypt) stanza must be alone in an age header; the file was tampered with")
    # The MAC covers the header up to and including the '---' of its last line.
    return _Header(stanzas, mac, bytes(signed[: len(signed) - len(line) - 1 + 3]))


def read_header(fileobj):
    """Parse the header without a key: {'armored', 'stanzas' (types), 'passphrase', 'work_factor'}.

    Raises AgeHeaderError / AgeArmorError when the header does not parse. Reads past the header.
    """
    source, armored = _open_source(fileobj)
    header = _parse_header(source)
    work_factor = None
    for stanza in header.stanzas:
        if stanza.type == "X25519":
            _x25519_stanza_share(stanza)
        elif stanza.type == _HYBRID_TYPE:
            _hybrid_stanza_enc(stanza)
        elif stanza.type == "scrypt":
            work_factor = _scrypt_stanza_params(stanza)[1]
    return {
        "armored": armored,
        "stanzas": [s.type for s in header.stanzas],
        "passphrase": work_factor is not None,
        "work_factor": work_factor,
    }


def _describe(stanzas):
    if stanzas[0].type == "scrypt":
        return "protected by a passphrase"
    counts = collections.Counter(s.type for s in stanzas)
    return "encrypted to " + ", ".join("%d %s key%s" % (n, kind, "s"[: n - 1]) for kind, n in sorted(counts.items()))


def _show(line):
    """A header line, shortened and printable, for an error message."""
    return repr(line[:64].decode("ascii", "backslashreplace") + ("..." if len(line) > 64 else ""))


def _chunk_nonce(counter, last):
    return counter.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


# Writing ------------------------------------------------------------------------------------------


class AgeWriter:
    """Write an age file to ``fileobj`` as a stream: one of ``passphrase`` or ``recipients`` ('age1...').

    ``close()`` writes the final chunk; it does not close ``fileobj``. Used as a context manager the
    file is finished only when the block succeeds: after an exception the output stays unfinished and
    any age reader rejects it as truncated. Deliberately not an ``io.IOBase``: that would finish a
    half-written file on garbage collection.
    """

    def __init__(self, fileobj, *, passphrase=None, recipients=None, work_factor=DEFAULT_WORK_FACTOR):
        _require_cryptography()
        if (passphrase is None) == (recipients is None):
            raise AgeError("give exactly one of passphrase or recipients to encrypt")
        if (
            isinstance(work_factor, bool)
            or not isinstance(work_factor, int)
            or not (MIN_WORK_FACTOR <= work_factor <= MAX_WORK_FACTOR)
        ):
            raise AgeError(
                "invalid work factor %r: use an integer from %d to %d (log2 of scrypt's N; %d is age's default)"
                % (work_factor, MIN_WORK_FACTOR, MAX_WORK_FACTOR, DEFAULT_WORK_FACTOR)
            )
        file_key = secrets.token_bytes(_FILE_KEY_SIZE)
        if passphrase is not None:
            secret = _passphrase_bytes(passphrase)
            if not secret:
                raise AgeError("the passphrase is empty; give a non-empty passphrase")
            salt = secrets.token_bytes(16)
            body = _seal_key(_scrypt_key(secret, salt, work_factor), file_key)
            stanzas = [_Stanza("scrypt", [_b64encode(salt).decode("ascii"), str(work_factor)], body)]
        else:
            parsed = [parse_recipient(r) for r in ([recipients] if isinstance(recipients, str) else recipients)]
            if not parsed:
                raise AgeError("no recipients given to encrypt to; give at least one age1... public key")
            if len({r.kind == _HYBRID_TYPE for r in parsed}) > 1:
                # As age does: a classic recipient would void the post-quantum protection of the others.
                raise AgeError("post-quantum (age1pq1...) and classic (age1...) recipients cannot be mixed in one file")
            stanzas = [r.wrap(file_key) for r in parsed]
        header = bytearray(INTRO)
        for stanza in stanzas:
            header += b" ".join([b"->", stanza.type.encode("ascii")] + [a.encode("ascii") for a in stanza.args])
            body = _b64encode(stanza.body)
            # Body lines are 64 columns; the last is shorter, possibly empty.
            for start in range(0, len(body) + 1, _COLUMNS):
                header += b"\n" + body[start : start + _COLUMNS]
            header += b"\n"
        header += b"---"
        mac = hmac.new(_hkdf(file_key, None, b"header"), bytes(header), hashlib.sha256).digest()
        nonce = secrets.token_bytes(_NONCE_SIZE)
        fileobj.write(bytes(header) + b" " + _b64encode(mac) + b"\n" + nonce)
        self._fileobj = fileobj
        self._aead = ChaCha20Poly1305(_hkdf(file_key, nonce, b"payload"))
        self._buffer = bytearray()
        self._counter = 0
        self.closed = False

    def writable(self):
        return True

    def write(self, data):
        if self.closed:
            raise ValueError("write to a closed AgeWriter")
        self._buffer += data
        # Keep a full chunk back: only close() knows which chunk is the final one.
        while len(self._buffer) > CHUNK_SIZE:
            self._seal(self._buffer[:CHUNK_SIZE], last=False)
            del self._buffer[:CHUNK_SIZE]
        return len(data)

    def _seal(self, plaintext, last):
        self._fileobj.write(self._aead.encrypt(_chunk_nonce(self._counter, last), plaintext, None))
        self._counter += 1

    def flush(self):
        if hasattr(self._fileobj, "flush"):
            self._fileobj.flush()

    def close(self):
        """Write the final chunk (idempotent); ``fileobj`` stays open."""
        if self.closed:
            return
        self._seal(self._buffer, last=True)
        self._buffer = bytearray()
        self.closed = True
        self.flush()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, traceback):
        if exc_type is None:
            self.close()
        else:
            self.closed = True


# Reading ------------------------------------------------------------------------------------------


class AgeReader(io.RawIOBase):
    """Decrypt an age file (binary or armored) from ``fileobj`` as a readable stream.

    The header is parsed and authenticated in the constructor, so a wrong key fails before any
    plaintext exists. Only authenticated chunks are released; a truncated or modified payload raises
    AgePayloadError when the bad chunk is reached. Works with tarfile's stream modes ("r|*").
    """

    def __init__(self, fileobj, *, passphrase=None, identities=None, max_work_factor=MAX_WORK_FACTOR):
        super().__init__()
        _require_cryptography()
        if isinstance(identities, str):
            identities = [identities]
        if passphrase is None and not identities:
            raise AgeError("give a passphrase or identities (AGE-SECRET-KEY-1...) to decrypt")
        keys = [parse_identity(i) for i in identities or ()]
        if passphrase is not None:
            keys.append(_ScryptIdentity(passphrase, max_work_factor))
        self._source, self.armored = _open_source(fileobj)
        header = _parse_header(self._source)
        file_key = self._unwrap(header.stanzas, keys)
        expected = hmac.new(_hkdf(file_key, None, b"header"), header.signed, hashlib.sha256).digest()
        if not hmac.compare_digest(expected, header.mac):
            raise AgeHMACError("the age header fails its integrity check (HMAC): the file was modified or is damaged")
        nonce = self._source.read(_NONCE_SIZE)
        if len(nonce) != _NONCE_SIZE:
            raise AgeHeaderError("the age file ends right after its header; it is truncated")
        self._aead = ChaCha20Poly1305(_hkdf(file_key, nonce, b"payload"))
        self._counter = 0
        self._plaintext = b""
        self._position = 0
        self._last = False
        self._error = None

    @staticmethod
    def _unwrap(stanzas, keys):
        for key in keys:
            for stanza in stanzas:
                file_key = key.unwrap(stanza)
                if file_key is not None:
                    return file_key
        hint = ""
        scrypt_file = stanzas[0].type == "scrypt"
        if scrypt_file and not any(isinstance(k, _ScryptIdentity) for k in keys):
            hint = "; it was encrypted with a passphrase, give the passphrase"
        elif not scrypt_file and all(isinstance(k, _ScryptIdentity) for k in keys):
            hint = "; it was encrypted to public keys, give the matching secret key (AGE-SECRET-KEY-1...)"
        raise AgeNoMatch(
            "cannot decrypt: wrong passphrase or key. None of the given keys or passphrase opens this age file, "
            "which is %s%s" % (_describe(stanzas), hint)
        )

    def readable(self):
        return True

    def _next_chunk(self):
        """Decrypt the next chunk into the buffer; False at the end. Raises (and remembers) errors."""
        if self._error is not None:
            raise self._error
        if self._last:
            return False
        try:
            self._plaintext, self._last = self._open_chunk()
        except AgeError as exc:
            self._error = exc
            raise
        self._position = 0
        self._counter += 1
        if self._last:
            try:
                trailing = self._source.read(1)
            except AgeError as exc:  # a damaged armor after the end
                self._error = exc
            else:
                if trailing:
                    self._error = AgePayloadError(
                        "data follows the end of the encrypted payload; the file was modified or two files were joined"
                    )
        return True

    def _open_chunk(self):
        data = self._source.read(_ENCRYPTED_CHUNK)
        where = "chunk %d (at plaintext offset %d)" % (self._counter, self._counter * CHUNK_SIZE)
        if not data:
            raise AgePayloadError(
                "the encrypted payload ends before its final chunk, at %s: the file is truncated (an interrupted "
                "write or copy?); use another copy" % where
            )
        if len(data) == _TAG_SIZE and self._counter:
            raise AgePayloadError("the encrypted payload ends with an empty chunk, which age never writes: %s" % where)
        # Only the final chunk may be short; a full one is the final one if it opens with the final flag.
        candidates = (True,) if len(data) < _ENCRYPTED_CHUNK else (False, True)
        for last in candidates:
            try:
                return self._aead.decrypt(_chunk_nonce(self._counter, last), data, None), last
            except InvalidTag:
                pass
        raise AgePayloadError(
            "%s of the encrypted payload fails authentication: the file is truncated, damaged or was modified; "
            "nothing from this chunk on was released, use another copy" % where
        )

    def read(self, n=-1):
        self._checkClosed()  # ValueError, as for any closed file
        pieces = []
        remaining = -1 if n is None or n < 0 else n
        while remaining:
            if self._position >= len(self._plaintext):
                try:
                    if not self._next_chunk():
                        break
                except AgeError:
                    # A bounded read hands out what authenticated first (a short read, as RawIOBase allows) and
                    # the error comes with the next call; read() to the end must fail, or it would look complete.
                    if pieces and remaining > 0:
                        break
                    raise
            end = len(self._plaintext) if remaining < 0 else self._position + remaining
            piece = self._plaintext[self._position : end]
            self._position += len(piece)
            remaining -= len(piece) if remaining > 0 else 0
            pieces.append(piece)
        return b"".join(pieces)

    def readall(self):
        return self.read(-1)

    def readinto(self, buffer):
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


# Files --------------------------------------------------------------------------------------------


def _write_atomically(dst_path, produce):
    """Stream into a temporary file beside ``dst_path`` and rename it in place: no half-written result."""
    directory = os.path.dirname(os.path.abspath(dst_path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            produce(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, dst_path)
    except BaseException:
        remove_path(tmp)
        raise
    fsync_dir(directory)


def _with_path(path, function):
    try:
        function()
    except AgeError as exc:
        raise type(exc)("%s: %s" % (path, exc)) from None


def encrypt_file(src_path, dst_path, **writer_kwargs):
    """Encrypt ``src_path`` into ``dst_path`` (mode 0600, replaced atomically); kwargs as AgeWriter."""

    def produce(handle):
        with open(src_path, "rb") as source:
            writer = AgeWriter(handle, **writer_kwargs)
            shutil.copyfileobj(source, writer, 1024 * 1024)
            writer.close()

    _with_path(dst_path, lambda: _write_atomically(dst_path, produce))


def decrypt_file(src_path, dst_path, **reader_kwargs):
    """Decrypt ``src_path`` into ``dst_path`` (mode 0600, only when all of it authenticated); kwargs as AgeReader."""

    def produce(handle):
        with open(src_path, "rb") as source:
            shutil.copyfileobj(AgeReader(source, **reader_kwargs), handle, 1024 * 1024)

    _with_path(src_path, lambda: _write_atomically(dst_path, produce))
