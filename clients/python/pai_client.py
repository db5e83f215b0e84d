"""A client for the PAI service in Python's standard library alone (Python 3.9+).

It speaks Nest's TCP transport (``<length>#<json>`` frames, the length in UTF-16 code units),
signs every request and verifies every reply as ``docs/protocol.md`` says, with RFC 8785 canonical
JSON written to give exactly what the service's ECMAScript side computes.

    from pai_client import PaiClient, PaiError

    with PaiClient("127.0.0.1", 8080, kid="default", secret="<base64 as in PAI_MAC_KEYS>") as pai:
        pai.send("system.ping", {})

Run ``python3 -m pai_client --help`` for the command-line client.
"""

import argparse
import base64
import codecs
import hashlib
import hmac
import json
import math
import os
import re
import secrets
import selectors
import socket
import ssl
import stat
import sys
import threading
import time
import uuid
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeoutError
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

__all__ = [
    "ErrorCode",
    "PaiError",
    "PaiServiceError",
    "PaiTimeoutError",
    "PaiConnectionError",
    "PaiReplyUnverifiedError",
    "PaiReplayError",
    "PaiClient",
    "canonical_json",
    "utf16_length",
    "encode_frame",
    "FrameDecoder",
    "FrameError",
    "request_mac_input",
    "reply_mac_input",
    "sign_request",
    "is_safe_to_repeat",
    "new_nonce",
    "reply_mac_matches",
    "parse_mac_keys",
    "load_keys",
    "GENESIS_HASH",
    "leaf_hash",
    "block_hash",
    "root_from_path",
    "receipt_problem",
]

PROTOCOL_VERSION = 2
REQUEST_MAC_PREFIX = "PAI-MAC-V2"
REPLY_MAC_PREFIX = "PAI-MAC-V2-REPLY"
DEFAULT_TIMEOUT = 10.0
# The service refuses frames over PAI_MAX_MESSAGE_BYTES (at most 16 M); a reply claiming more
# than this is a broken or hostile peer, and the client does not buffer towards it.
MAX_REPLY_UNITS = 64 * 1024 * 1024


class ErrorCode:
    """Error codes: the protocol's (docs/protocol.md section 4) and the client's own."""

    BAD_REQUEST = "BAD_REQUEST"
    UNKNOWN_KEY = "UNKNOWN_KEY"
    MAC_INVALID = "MAC_INVALID"
    STALE = "STALE"
    REPLAY = "REPLAY"
    USERNAME_TAKEN = "USERNAME_TAKEN"
    INVALID_CREDENTIALS = "INVALID_CREDENTIALS"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    RATE_LIMITED = "RATE_LIMITED"
    IDEMPOTENCY_CONFLICT = "IDEMPOTENCY_CONFLICT"
    NOT_FOUND = "NOT_FOUND"
    NOT_SEALED = "NOT_SEALED"
    UNAVAILABLE = "UNAVAILABLE"
    INTERNAL = "INTERNAL"
    # Client side, as ClientErrorCode in clients/node/src/client/pai-client.error.ts.
    TIMEOUT = "TIMEOUT"
    CONNECTION = "CONNECTION"
    REPLY_UNVERIFIED = "REPLY_UNVERIFIED"


class PaiError(Exception):
    """Every failure of PaiClient.send. ``code`` is an ErrorCode value; ``details`` holds the
    error's extra fields (``fields``, ``serverTime``, ``retryAfterMs`` …) of a verified reply."""

    def __init__(self, code: str, message: str, details: Optional[Dict[str, Any]] = None):
        super().__init__("%s: %s" % (code, message))
        self.code = code
        self.message = message
        self.details = dict(details or {})


class PaiServiceError(PaiError):
    """A verified error reply from the service (its MAC was checked)."""


class PaiTimeoutError(PaiError):
    """No reply within the timeout."""

    def __init__(self, message: str):
        super().__init__(ErrorCode.TIMEOUT, message)


class PaiConnectionError(PaiError):
    """The connection could not be made, or broke."""

    def __init__(self, message: str):
        super().__init__(ErrorCode.CONNECTION, message)


class PaiReplyUnverifiedError(PaiError):
    """A reply whose MAC is missing or wrong: anyone on the path can make one, so its content is
    not trusted and the request's outcome is unknown (it may have run). ``details["claimedCode"]``
    is the code it claims, if it has the form of one."""

    def __init__(self, message: str, details: Optional[Dict[str, Any]] = None):
        super().__init__(ErrorCode.REPLY_UNVERIFIED, message, details)


class PaiReplayError(PaiServiceError):
    """A verified REPLAY to a nonce this client drew fresh: another copy of this very message was
    accepted first, so the request was executed once and its result was not seen here. Raised by
    ``send`` for a request that is not safe to repeat (or after repeated REPLAYs of one that is);
    ``executed`` and ``details["executed"]`` are True."""

    executed = True

    def __init__(self, message: str, details: Optional[Dict[str, Any]] = None):
        super().__init__(ErrorCode.REPLAY, message, dict(details or {}, executed=True))


# --- RFC 8785 canonical JSON ------------------------------------------------------------------

_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _string(value: str) -> str:
    """A JSON string as ECMAScript's JSON.stringify writes it: only the quote, the backslash and
    the C0 controls are escaped (the five with short forms short, the rest as lowercase \\u00xx);
    everything else, U+007F, U+2028 and astral characters included, is written as itself."""
    out = ['"']
    for ch in value:
        code = ord(ch)
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif code < 0x20:
            out.append("\\u%04x" % code)
        elif 0xD800 <= code <= 0xDFFF:
            # JSON.stringify would write \udxxx, but the service's canonicalize() refuses a lone
            # surrogate (RFC 8785 requires well-formed strings), so no MAC could ever agree.
            raise ValueError("a lone surrogate (U+%04X) has no canonical JSON form" % code)
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _number(value: float) -> str:
    """ECMAScript Number::toString (ECMA-262 7.1.12.1) of a finite double, which RFC 8785 adopts."""
    if math.isnan(value) or math.isinf(value):
        raise ValueError("%r has no JSON form" % value)
    if value == 0:
        return "0"  # negative zero too
    sign = "-" if value < 0 else ""
    # repr() gives the shortest digit string that reads back as the same double, as
    # ECMAScript requires; only the layout differs.
    text = repr(abs(value))
    mantissa, _, exponent = text.partition("e")
    whole, _, fraction = mantissa.partition(".")
    exp10 = int(exponent) if exponent else 0
    significant = (whole + fraction).lstrip("0")
    leading_zeros = len(whole + fraction) - len(significant)
    # value = 0.d1d2…dk × 10^n, in ECMA-262's terms
    n = len(whole) - leading_zeros + exp10
    digits = significant.rstrip("0")
    k = len(digits)
    if k <= n <= 21:
        body = digits + "0" * (n - k)
    elif 0 < n <= 21:
        body = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        body = "0." + "0" * (-n) + digits
    else:
        e = n - 1
        exp = ("e+" if e >= 0 else "e-") + str(abs(e))
        body = digits[0] + ("." + digits[1:] if k > 1 else "") + exp
    return sign + body


def _utf16_key(key: str) -> bytes:
    # Big-endian UTF-16 bytes compare exactly as the code-unit sequences do.
    return key.encode("utf-16-be", "surrogatepass")


def canonical_json(value: Any) -> str:
    """The RFC 8785 (JCS) form of a JSON value made of dict, list/tuple, str, int, float, bool and
    None, exactly as the service's ECMAScript side computes it: object keys sorted by UTF-16 code
    units, numbers as ECMAScript writes doubles (an int is first read as the double JSON.parse
    would make of it), strings escaped as JSON.stringify does. A lone surrogate, a non-finite
    number or a number beyond the double range raises ValueError; other types raise TypeError.

    Why not ``json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)``: it
    disagrees with the service, and one differing byte is a MAC_INVALID.

    - Key order: ``sort_keys`` orders by code point, JCS by UTF-16 code unit, so a key in
      U+E000–U+FFFF ("！", "\\ufb33") sorts after an astral one ("😀", first unit D83D), not before.
    - Numbers: json.dumps writes 1e+16, 1e-05, 1e-07, 100.0 and -0.0 where ECMAScript writes
      10000000000000000, 0.00001, 1e-7, 100 and 0; it writes an int with all its digits, where
      the service reads a double (9007199254740993 becomes 9007199254740992, 10**21 becomes
      1e+21); it writes NaN and Infinity, which are not JSON.
    - Strings: with ensure_ascii=True every non-ASCII character and DEL are escaped, which
      JSON.stringify writes as they are; a lone surrogate is written, which the service's
      canonicalize refuses (RFC 8785 requires well-formed strings)."""
    parts: List[str] = []
    _emit(value, parts, 0)
    return "".join(parts)


def _emit(value: Any, out: List[str], depth: int) -> None:
    if depth > 1000:
        raise ValueError("nesting too deep")
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        out.append(_string(value))
    elif isinstance(value, int):
        try:
            as_double = float(value)
        except OverflowError:
            raise ValueError("%d is beyond the range of a double" % value) from None
        out.append(_number(as_double))
    elif isinstance(value, float):
        out.append(_number(value))
    elif isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise TypeError("object keys must be strings, got %r" % (key,))
        out.append("{")
        for index, key in enumerate(sorted(value, key=_utf16_key)):
            if index:
                out.append(",")
            out.append(_string(key))
            out.append(":")
            _emit(value[key], out, depth + 1)
        out.append("}")
    elif isinstance(value, (list, tuple)):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _emit(item, out, depth + 1)
        out.append("]")
    else:
        raise TypeError("%s has no JSON form" % type(value).__name__)


def _check_exact_numbers(value: Any) -> None:
    """Refuses an int the service would read as another number (JSON.parse makes a double of it),
    so that what is signed is what the service acts on."""
    if isinstance(value, bool) or value is None or isinstance(value, (str, float)):
        return
    if isinstance(value, int):
        try:
            exact = int(float(value)) == value
        except OverflowError:
            exact = False
        if not exact:
            raise ValueError("%d is not exactly representable as a JSON number the service reads" % value)
    elif isinstance(value, dict):
        for item in value.values():
            _check_exact_numbers(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _check_exact_numbers(item)


# --- Nest TCP framing -------------------------------------------------------------------------


GENESIS_HASH = "0" * 64


def leaf_hash(row: Dict[str, Any]) -> str:
    """The ledger leaf of a transaction as the wire shows it (docs/ledger.md): SHA-256 of 0x00 and
    the JCS form of its six fields, hex."""
    fields = {name: row[name] for name in ("id", "userId", "amount", "reference", "description", "createdAt")}
    return hashlib.sha256(b"\x00" + canonical_json(fields).encode("utf-8")).hexdigest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def root_from_path(leaf: str, index: int, size: int, path: List[str]) -> Optional[str]:
    """The Merkle root an RFC 6962 audit path leads to (RFC 9162 2.1.3.2), or None when the path
    does not fit a tree of ``size`` leaves."""
    if index < 0 or index >= size:
        return None
    fn, sn = index, size - 1
    r = bytes.fromhex(leaf)
    for sibling in path:
        if sn == 0:
            return None
        p = bytes.fromhex(sibling)
        if fn % 2 == 1 or fn == sn:
            r = _node(p, r)
            while fn % 2 == 0 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = _node(r, p)
        fn >>= 1
        sn >>= 1
    return r.hex() if sn == 0 else None


def block_hash(header: Dict[str, Any]) -> str:
    """A ledger block's hash: SHA-256 of the JCS form of every header field but ``hash``, hex."""
    fields = {
        name: header[name]
        for name in ("number", "firstId", "lastId", "rowCount", "merkleRoot", "previousHash", "sealedAt")
    }
    return hashlib.sha256(canonical_json(fields).encode("utf-8")).hexdigest()


def receipt_problem(receipt: Dict[str, Any], digest: Dict[str, Any]) -> Optional[str]:
    """Why a ``transactions.receipt`` reply does not prove its transaction against ``digest`` (what
    ``pai ledger digest`` printed and someone kept), or None when it does: the row is in its
    block, each header matches its hash and follows the one before, the last is the digest's."""
    transaction, block = receipt["transaction"], receipt["block"]
    root = root_from_path(leaf_hash(transaction), receipt["position"], block["rowCount"], receipt["path"])
    if root != block["merkleRoot"]:
        return "the transaction is not in its block (Merkle path)"
    if not int(block["firstId"]) <= int(transaction["id"]) <= int(block["lastId"]):
        return "the transaction id is outside its block"
    previous = block
    for header in [block] + list(receipt["headers"]):
        if block_hash(header) != header["hash"]:
            return "block %s does not match its hash" % header["number"]
        if header is not block and (
            header["number"] != previous["number"] + 1 or header["previousHash"] != previous["hash"]
        ):
            return "block %s does not follow block %s" % (header["number"], previous["number"])
        previous = header
    if previous["number"] != digest["block"]:
        return "the receipt reaches block %s, the digest is of block %s" % (previous["number"], digest["block"])
    if previous["hash"] != digest["hash"]:
        return "block %s does not have the digest's hash" % digest["block"]
    return None


class FrameError(Exception):
    """The peer broke Nest's ``<length>#<json>`` framing."""


def utf16_length(text: str) -> int:
    """Length of a string as ECMAScript's ``.length`` counts it: a character outside the Basic
    Multilingual Plane is two UTF-16 code units."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _wire_json(message: Any) -> str:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def encode_frame(message: Any) -> bytes:
    """One Nest TCP frame: the JSON's length in UTF-16 code units, ``#``, the JSON in UTF-8."""
    text = _wire_json(message)
    return ("%d#%s" % (utf16_length(text), text)).encode("utf-8")


class FrameDecoder:
    """Turns the bytes of a stream into Nest frames, whatever the chunking: the UTF-8 is decoded
    incrementally (a character may be split across reads) and kept as UTF-16 code units, which
    is what the length prefix counts."""

    _HASH = ord("#")

    def __init__(self, max_units: int = MAX_REPLY_UNITS):
        self._decoder = codecs.getincrementaldecoder("utf-8")("strict")
        self._buffer = bytearray()  # UTF-16-LE code units
        self._position = 0  # in bytes of _buffer
        self._length: Optional[int] = None
        self._max_units = max_units

    def feed(self, data: bytes) -> List[Any]:
        """Adds bytes; returns the messages (parsed JSON) of every frame now complete."""
        try:
            text = self._decoder.decode(data)
        except UnicodeDecodeError as error:
            raise FrameError("invalid UTF-8: %s" % error) from None
        self._buffer += text.encode("utf-16-le", "surrogatepass")
        messages = []
        buf = self._buffer
        while True:
            if self._length is None:
                digits = []
                i = self._position
                found = False
                while i + 1 < len(buf):
                    unit = buf[i] | (buf[i + 1] << 8)
                    if unit == self._HASH:
                        found = True
                        break
                    if not 0x30 <= unit <= 0x39 or len(digits) >= 10:
                        raise FrameError("corrupt frame length")
                    digits.append(chr(unit))
                    i += 2
                if not found:
                    break
                if not digits:
                    raise FrameError("empty frame length")
                length = int("".join(digits))
                if length > self._max_units:
                    raise FrameError("frame of %d code units exceeds %d" % (length, self._max_units))
                self._length = length
                self._position = i + 2
            end = self._position + 2 * self._length
            if len(buf) < end:
                break
            try:
                body = bytes(buf[self._position:end]).decode("utf-16-le")
            except UnicodeDecodeError:
                raise FrameError("frame length splits a character") from None
            try:
                messages.append(json.loads(body))
            except ValueError:
                raise FrameError("frame is not valid JSON") from None
            self._position = end
            self._length = None
        if self._position:
            del buf[: self._position]
            self._position = 0
        return messages


# --- MACs -------------------------------------------------------------------------------------


def request_mac_input(pattern: str, kid: str, ts: int, nonce: str, payload: Dict[str, Any]) -> str:
    """S = "PAI-MAC-V2" LF pattern LF kid LF ts LF nonce LF JCS(payload)"""
    return "\n".join([REQUEST_MAC_PREFIX, pattern, kid, str(int(ts)), nonce, canonical_json(payload)])


def reply_mac_input(
    pattern: str, kid: str, nonce: str, request_mac: str, reply_without_mac: Dict[str, Any]
) -> str:
    """R = "PAI-MAC-V2-REPLY" LF pattern LF kid LF nonce LF request-mac LF JCS(reply without "mac")

    ``pattern``, ``kid``, ``nonce`` and ``request_mac`` are those of the request the reply answers."""
    return "\n".join([REPLY_MAC_PREFIX, pattern, kid, nonce, request_mac, canonical_json(reply_without_mac)])


def _hmac_hex(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).hexdigest()


def new_nonce() -> str:
    """22 base64url characters of 16 random bytes from the CSPRNG."""
    return secrets.token_urlsafe(16)


def sign_request(
    key: bytes,
    kid: str,
    pattern: str,
    payload: Dict[str, Any],
    ts: Optional[int] = None,
    nonce: Optional[str] = None,
) -> Dict[str, Any]:
    """The signed envelope ``{v, kid, ts, nonce, payload, mac}`` for one request."""
    if not isinstance(payload, dict):
        raise TypeError("payload must be a dict")
    _check_exact_numbers(payload)
    ts = int(time.time() * 1000) if ts is None else int(ts)
    nonce = new_nonce() if nonce is None else nonce
    mac = _hmac_hex(key, request_mac_input(pattern, kid, ts, nonce, payload))
    return {"v": PROTOCOL_VERSION, "kid": kid, "ts": ts, "nonce": nonce, "payload": payload, "mac": mac}


def _is_mac_hex(value: Any) -> bool:
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def reply_mac_matches(key: bytes, pattern: str, kid: str, nonce: str, request_mac: str, reply: Any) -> bool:
    """True when ``reply`` (a decoded reply object, ``mac`` included) carries the right MAC for the
    request (pattern, kid, nonce, and the request's own mac). Compared in constant time."""
    if not isinstance(reply, dict) or not _is_mac_hex(request_mac):
        return False
    mac = reply.get("mac")
    if not _is_mac_hex(mac):
        return False
    body = {name: value for name, value in reply.items() if name != "mac"}
    try:
        expected = _hmac_hex(key, reply_mac_input(pattern, kid, nonce, request_mac, body))
    except (ValueError, TypeError):
        return False  # no canonical form (e.g. a lone surrogate): it cannot carry a good MAC
    return hmac.compare_digest(expected, mac)


# --- keys -------------------------------------------------------------------------------------


def _decode_secret(value: str) -> bytes:
    try:
        key = base64.b64decode(value, validate=True)
    except (ValueError, TypeError):
        raise ValueError("a secret is not valid base64") from None
    if len(key) < 32:
        raise ValueError("a secret must decode to at least 32 bytes")
    return key


def parse_mac_keys(raw: str) -> List[Tuple[str, bytes]]:
    """``kid:base64secret[,kid:base64secret…]`` as in the service's PAI_MAC_KEYS, in order."""
    keys = []
    for entry in raw.split(","):
        item = entry.strip()
        kid, colon, secret = item.partition(":")
        if not colon or not kid:
            raise ValueError("each entry must be kid:base64secret")
        keys.append((kid, _decode_secret(secret)))
    return keys


def find_data_dir(env: Dict[str, str], start: Optional[str] = None) -> str:
    """PAI_DATA_DIR when set; otherwise the nearest ``data`` folder holding dev-secrets.json in the
    working directory or one above it (a service started with `npm start` at the project's root,
    a client run from clients/python), else ``./data``. The Node CLI looks the same way."""
    if env.get("PAI_DATA_DIR"):
        return os.path.abspath(env["PAI_DATA_DIR"])
    here = os.path.abspath(start or os.getcwd())
    while True:
        if os.path.isfile(os.path.join(here, "data", DEV_SECRETS_FILE)):
            return os.path.join(here, "data")
        parent = os.path.dirname(here)
        if parent == here:
            return os.path.abspath("data")
        here = parent


DEV_SECRETS_FILE = "dev-secrets.json"


def load_keys(environ: Optional[Dict[str, str]] = None) -> List[Tuple[str, bytes]]:
    """The MAC keys the command-line client may sign with: PAI_MAC_KEYS (or the file
    PAI_MAC_KEYS_FILE names) when set, otherwise the development secrets the service generated
    in dev-secrets.json (find_data_dir says where)."""
    env = os.environ if environ is None else environ
    raw = env.get("PAI_MAC_KEYS")
    if env.get("PAI_MAC_KEYS_FILE"):
        if raw:
            raise ValueError("PAI_MAC_KEYS_FILE: set either PAI_MAC_KEYS or PAI_MAC_KEYS_FILE, not both")
        try:
            with open(env["PAI_MAC_KEYS_FILE"], encoding="utf-8") as handle:
                raw = handle.read().strip()
        except OSError as error:
            raise ValueError("PAI_MAC_KEYS_FILE: cannot read %s (%s)"
                             % (env["PAI_MAC_KEYS_FILE"], error.strerror or "error")) from None
    if raw:
        return parse_mac_keys(raw)
    path = os.path.join(find_data_dir(dict(env)), DEV_SECRETS_FILE)
    try:
        with open(path, encoding="utf-8") as handle:
            stored = json.load(handle)
    except FileNotFoundError:
        raise ValueError(
            "no MAC key: PAI_MAC_KEYS is unset and %s does not exist; start the service once (npm start) "
            "in the project, set PAI_DATA_DIR to its data directory, or set PAI_MAC_KEYS" % path
        ) from None
    except ValueError:
        raise ValueError("%s is not valid JSON" % path) from None
    if not isinstance(stored, dict) or not isinstance(stored.get("PAI_MAC_KEYS"), str):
        raise ValueError("%s has no PAI_MAC_KEYS" % path)
    return parse_mac_keys(stored["PAI_MAC_KEYS"])


# --- the connection ---------------------------------------------------------------------------


class _Connection:
    """One socket and the thread that owns it. The socket is non-blocking and only the I/O thread
    touches it (an SSL socket must not be read and written from two threads at once); senders
    queue their bytes and wake the thread. Replies are matched to requests by Nest's ``id``."""

    def __init__(self, sock: socket.socket, on_close: Callable[["_Connection"], None]):
        self._sock = sock
        self._sock.setblocking(False)
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._lock = threading.Lock()
        self._outbox = bytearray()
        self._pending: Dict[str, Future] = {}
        self._closed = False
        self._close_reason = "connection closed"
        self._on_close = on_close
        self._decoder = FrameDecoder()
        self._thread = threading.Thread(target=self._run, name="pai-client-io", daemon=True)
        self._thread.start()

    @property
    def closed(self) -> bool:
        return self._closed

    def request(self, message_id: str, frame: bytes) -> Future:
        future: Future = Future()
        with self._lock:
            if self._closed:
                raise PaiConnectionError(self._close_reason)
            self._pending[message_id] = future
            self._outbox += frame
        self._wake()
        return future

    def forget(self, message_id: str) -> None:
        with self._lock:
            self._pending.pop(message_id, None)

    def close(self, reason: str = "connection closed") -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._close_reason = reason
        self._wake()
        if threading.current_thread() is not self._thread:
            self._thread.join(5)

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except (BlockingIOError, OSError):
            pass  # already awake, or shutting down

    def _run(self) -> None:
        selector = selectors.DefaultSelector()
        reason = "connection closed by the service"
        try:
            selector.register(self._wake_r, selectors.EVENT_READ)
            selector.register(self._sock, selectors.EVENT_READ)
            want_write = False
            while True:
                with self._lock:
                    if self._closed:
                        reason = self._close_reason
                        break
                    has_output = bool(self._outbox)
                if has_output != want_write:
                    want_write = has_output
                    events = selectors.EVENT_READ | (selectors.EVENT_WRITE if want_write else 0)
                    selector.modify(self._sock, events)
                for key, mask in selector.select():
                    if key.fileobj is self._wake_r:
                        try:
                            while self._wake_r.recv(4096):
                                pass
                        except (BlockingIOError, InterruptedError):
                            pass
                        continue
                    if mask & selectors.EVENT_READ:
                        if not self._read():
                            raise PaiConnectionError(reason)
                    if mask & selectors.EVENT_WRITE:
                        self._write()
        except PaiConnectionError:
            pass
        except FrameError as error:
            reason = "the service broke the framing: %s" % error
        except (OSError, ValueError) as error:
            reason = "connection failed: %s" % error
        finally:
            selector.close()
            self._shutdown(reason)

    def _read(self) -> bool:
        """Reads all that is available (an SSL socket may hold decrypted bytes the selector
        cannot see, so it reads until it would block). False when the peer closed."""
        while True:
            try:
                data = self._sock.recv(65536)
            except (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                return True
            if not data:
                return False
            for message in self._decoder.feed(data):
                self._dispatch(message)

    def _write(self) -> None:
        with self._lock:
            chunk = bytes(self._outbox[:65536])
        if not chunk:
            return
        try:
            sent = self._sock.send(chunk)
        except (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return
        with self._lock:
            del self._outbox[:sent]

    def _dispatch(self, packet: Any) -> None:
        """Nest's ClientProxy rules: a truthy ``err`` ends the request as a failure; a
        ``response`` ends it as a success (firstValueFrom); ``isDisposed`` alone ends it empty."""
        if not isinstance(packet, dict) or not isinstance(packet.get("id"), str):
            return
        with self._lock:
            future = self._pending.pop(packet["id"], None)
            if future is None:
                return
            if packet.get("err"):
                outcome: Tuple[str, Any] = ("err", packet["err"])
            elif "response" in packet or not packet.get("isDisposed"):
                outcome = ("response", packet.get("response"))
            else:
                outcome = ("empty", None)
        if not future.done():
            future.set_result(outcome)

    def _shutdown(self, reason: str) -> None:
        with self._lock:
            self._closed = True
            pending = list(self._pending.values())
            self._pending.clear()
            self._outbox.clear()
        for future in pending:
            if not future.done():
                future.set_exception(PaiConnectionError(reason))
        for closable in (self._sock, self._wake_r, self._wake_w):
            try:
                closable.close()
            except OSError:
                pass
        self._on_close(self)


# --- the client -------------------------------------------------------------------------------


def is_safe_to_repeat(pattern: str, payload: Dict[str, Any]) -> bool:
    """Whether sending this request twice has the effect of sending it once (as the Node client
    module decides): reads, ping, logout (a repeat finds the session revoked either way), and a
    create that carries a ``reference`` (the service answers a repeat with the first transaction).
    A create without one is never repeated: its reply may have been lost after the commit."""
    if pattern in ("system.ping", "users.me", "transactions.list", "auth.logout"):
        return True
    if pattern == "transactions.create":
        reference = payload.get("reference")
        return isinstance(reference, str) and reference != ""
    return False


# How many times a verified REPLAY of a request safe to repeat is answered by sending it again.
REPLAY_REFETCHES = 2


def _claimed_code(reply: Any) -> Optional[str]:
    """The error code an unverified reply claims, if it has the form of one (anything else a
    forger wrote stays out of messages and terminals)."""
    error = reply.get("error") if isinstance(reply, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    if isinstance(code, str) and 1 <= len(code) <= 32 and all(c == "_" or "A" <= c <= "Z" for c in code):
        return code
    return None


def _key_hint(claimed: Optional[str], kid: str) -> str:
    """A misconfigured key shows up as unsigned MAC_INVALID or UNKNOWN_KEY replies: say so."""
    if claimed in (ErrorCode.MAC_INVALID, ErrorCode.UNKNOWN_KEY):
        return "; if this persists, check that key id \"%s\" and its secret match the service's PAI_MAC_KEYS" % kid
    return ""


class PaiClient:
    """Calls the PAI service: signs every request, verifies every reply's MAC against the request
    it answers, and turns error replies into PaiServiceError.

    What it concludes (docs/protocol.md 4, "What a client may conclude"): only a verified reply is
    an outcome. An unverified one is PaiReplyUnverifiedError, whose outcome is unknown (the request
    may have run); it is never repeated. A verified REPLAY to a nonce drawn here means another copy
    of this very message was accepted and ran: a request safe to repeat (``is_safe_to_repeat``) is
    sent again as a new message, whose reply is the result not seen here (a create with a
    ``reference`` then answers ``created: false`` with its transaction), up to ``REPLAY_REFETCHES``
    times; any other is PaiReplayError, "executed once, result unseen". On STALE it learns the
    clock offset from the verified ``serverTime`` and retries once with a new nonce; the machine's
    clock is never changed. A request safe to repeat whose connection broke is sent again, as a
    new signed message on a new connection, up to ``connection_retries`` times: behind a load
    balancer it lands on another instance. Timeouts are never repeated (the request may still run).

    Thread-safe: any number of threads may call ``send`` at once; their requests share one
    connection (opened on first use, and again after it broke) and are matched to replies by id.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 8080,
        *,
        kid: str,
        secret: Union[bytes, str],
        timeout: float = DEFAULT_TIMEOUT,
        ca_file: Optional[str] = None,
        ssl_context: Optional[ssl.SSLContext] = None,
        server_hostname: Optional[str] = None,
        now: Optional[Callable[[], float]] = None,
        connection_retries: int = 2,
        connection_retry_delay: float = 0.1,
    ):
        """``secret``: raw bytes, or base64 as in PAI_MAC_KEYS. ``timeout``: seconds to wait for
        the connection and for each reply. TLS when ``ca_file`` (PEM of the CA that signed the
        service's certificate) or ``ssl_context`` is given; the certificate must then name
        ``server_hostname`` (default ``host``). ``now``: milliseconds since the epoch, for tests."""
        self.host = host
        self.port = port
        self.kid = kid
        self._key = base64.b64decode(secret, validate=True) if isinstance(secret, str) else bytes(secret)
        self.timeout = timeout
        if ssl_context is None and ca_file is not None:
            ssl_context = ssl.create_default_context(cafile=ca_file)
        self._ssl_context = ssl_context
        self._server_hostname = server_hostname or host
        self._now = now or (lambda: time.time() * 1000.0)
        self.connection_retries = connection_retries
        self.connection_retry_delay = connection_retry_delay
        self._offset_ms = 0.0
        self._lock = threading.Lock()
        self._connection: Optional[_Connection] = None

    @property
    def clock_offset_ms(self) -> float:
        """Server minus local clock (ms) learned from a STALE reply; 0 until then."""
        return self._offset_ms

    def __enter__(self) -> "PaiClient":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def connect(self) -> None:
        """Opens the connection now rather than on the first request."""
        self._connected()

    def close(self) -> None:
        with self._lock:
            connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    def send(self, pattern: str, payload: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        """Sends one request and returns the verified reply's payload; raises PaiError."""
        payload = {} if payload is None else payload
        delay = self.connection_retry_delay
        attempt = 0
        while True:
            try:
                return self._send_refetching_replays(pattern, payload)
            except PaiConnectionError:
                if attempt >= self.connection_retries or not is_safe_to_repeat(pattern, payload):
                    raise
            attempt += 1
            # A pause lets a balancer notice a dead instance and a restarting one come back.
            time.sleep(delay)
            delay *= 2

    def _send_refetching_replays(self, pattern: str, payload: Dict[str, Any]) -> Dict[str, Any]:
        """A verified REPLAY to a nonce drawn here: a copy of this very message was accepted first
        (sent by whoever copied it off the wire) and ran. A request safe to repeat is sent again as
        a new message, whose reply is the result this client did not see; another is reported as
        run."""
        refetch = 0
        while True:
            try:
                return self._send_adjusting_clock(pattern, payload)
            except PaiServiceError as error:
                if error.code != ErrorCode.REPLAY:
                    raise
                if refetch >= REPLAY_REFETCHES or not is_safe_to_repeat(pattern, payload):
                    raise PaiReplayError(
                        "another copy of this %s message was accepted first: executed once, result unseen "
                        "here; do not send it again blindly" % pattern,
                        error.details,
                    ) from None
            refetch += 1

    def _send_adjusting_clock(self, pattern: str, payload: Dict[str, Any]) -> Dict[str, Any]:
        try:
            return self.send_signed(pattern, self.sign(pattern, payload))
        except PaiServiceError as error:
            server_time = error.details.get("serverTime")
            if error.code != ErrorCode.STALE or isinstance(server_time, bool) or not isinstance(
                server_time, (int, float)
            ):
                raise
            self._offset_ms = server_time - self._now()
            return self.send_signed(pattern, self.sign(pattern, payload))

    def sign(self, pattern: str, payload: Dict[str, Any]) -> Dict[str, Any]:
        """A signed envelope for ``pattern`` with a fresh nonce, dated by the corrected clock."""
        ts = math.floor(self._now() + self._offset_ms + 0.5)  # Math.round, as the TS client
        return sign_request(self._key, self.kid, pattern, payload, ts=ts)

    def send_signed(self, pattern: str, envelope: Dict[str, Any]) -> Dict[str, Any]:
        """Sends an envelope as it is, once, and returns the verified reply's payload. The reply is
        checked against the envelope's ``kid``, ``nonce`` and ``mac`` and this client's key. Every
        verified error, REPLAY included, is raised as it came: only the caller knows whether the
        envelope's nonce was drawn fresh, which is what a REPLAY's meaning rests on."""
        message_id = str(uuid.uuid4())
        frame = encode_frame({"pattern": pattern, "data": envelope, "id": message_id})
        connection = self._connected()
        future = connection.request(message_id, frame)
        try:
            kind, reply = future.result(self.timeout)
        except FutureTimeoutError:
            connection.forget(message_id)
            raise PaiTimeoutError("no reply to %s in time: the request may still run or have run" % pattern) from None
        if kind == "empty":
            raise PaiConnectionError("%s: the service ended the request without a reply" % pattern)
        kid, nonce, request_mac = envelope.get("kid"), envelope.get("nonce"), envelope.get("mac")
        if not (
            isinstance(kid, str)
            and isinstance(nonce, str)
            and reply_mac_matches(self._key, pattern, kid, nonce, request_mac, reply)
        ):
            claimed = _claimed_code(reply)
            raise PaiReplyUnverifiedError(
                "the reply to %s carries no valid MAC%s: unverified, so the request may or may not have run%s"
                % (
                    pattern,
                    " (it claims %s)" % claimed if claimed else "",
                    _key_hint(claimed, kid if isinstance(kid, str) else self.kid),
                ),
                {"claimedCode": claimed},
            )
        if kind == "response" and reply.get("ok") is True:
            result = reply.get("payload")
            return result if isinstance(result, dict) else {}
        error = reply.get("error") if isinstance(reply.get("error"), dict) else {}
        details = {name: value for name, value in error.items() if name not in ("code", "message")}
        code = error.get("code") if isinstance(error.get("code"), str) else ErrorCode.INTERNAL
        message = error.get("message") if isinstance(error.get("message"), str) else "error reply"
        raise PaiServiceError(code, message, details)

    def _connected(self) -> _Connection:
        with self._lock:
            if self._connection is not None and not self._connection.closed:
                return self._connection
            self._connection = _Connection(self._open_socket(), self._forget_connection)
            return self._connection

    def _forget_connection(self, connection: _Connection) -> None:
        with self._lock:
            if self._connection is connection:
                self._connection = None

    def _open_socket(self) -> socket.socket:
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        except socket.timeout:
            raise PaiConnectionError("no connection to %s:%s in time" % (self.host, self.port)) from None
        except OSError as error:
            raise PaiConnectionError("cannot connect to %s:%s: %s" % (self.host, self.port, error)) from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self._ssl_context is None:
            return sock
        try:
            return self._ssl_context.wrap_socket(sock, server_hostname=self._server_hostname)
        except (OSError, ssl.SSLError) as error:
            sock.close()
            raise PaiConnectionError("TLS with %s:%s failed: %s" % (self.host, self.port, error)) from None


# --- command line -----------------------------------------------------------------------------
#
# The session is kept as the Node CLI keeps it (clients/node/src/cli/session-file.ts): the same file, the same
# fields, the same rules, so either CLI can use a session the other saved.

_SESSION_FIELDS = ("server", "username", "userId", "token", "expiresAt")


class CliError(Exception):
    """A failure the command-line client finds on its own; its message is fit to show. ``code``
    is one of the CLI's own codes (EXIT_CODES)."""

    def __init__(self, message: str, code: str = "CONFIG"):
        super().__init__(message)
        self.code = code


VERSION = "0.1.0"

# The exit code of each failure, the same as the Node CLI's (docs/cli-contract.json is the table
# both are tested against).
EXIT_CODES = {
    "UNEXPECTED": 1,
    "USAGE": 2,
    "NOT_LOGGED_IN": 3,
    "CONFIG": 4,
    "INPUT": 5,
    ErrorCode.BAD_REQUEST: 10,
    ErrorCode.UNKNOWN_KEY: 11,
    ErrorCode.MAC_INVALID: 12,
    ErrorCode.STALE: 13,
    ErrorCode.REPLAY: 14,
    ErrorCode.USERNAME_TAKEN: 20,
    ErrorCode.INVALID_CREDENTIALS: 21,
    ErrorCode.UNAUTHENTICATED: 22,
    ErrorCode.RATE_LIMITED: 23,
    ErrorCode.IDEMPOTENCY_CONFLICT: 24,
    ErrorCode.NOT_FOUND: 25,
    ErrorCode.NOT_SEALED: 26,
    ErrorCode.UNAVAILABLE: 30,
    ErrorCode.INTERNAL: 31,
    ErrorCode.TIMEOUT: 40,
    ErrorCode.CONNECTION: 41,
    ErrorCode.REPLY_UNVERIFIED: 42,
    "INTERRUPTED": 130,
}

# The protocol's ranges for what a user types (clients/node/src/protocol/limits.ts).
AMOUNT_PATTERN = re.compile(r"^(0|[1-9][0-9]{0,12})(\.[0-9]{1,2})?$")
AMOUNT_RULE = 'a decimal string greater than zero with at most 13 integer digits and 2 decimals, e.g. "12.50"'
REFERENCE_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
DESCRIPTION_MAX_LENGTH = 140
PAGE_LIMIT_MIN, PAGE_LIMIT_MAX = 1, 100
TRANSACTION_ID_PATTERN = re.compile(r"^[1-9][0-9]{0,17}$")
# The error details both CLIs report beside code and message.
REPORTED_DETAILS = ("fields", "retryAfterMs", "errorId")


class UsageError(Exception):
    """A command line that cannot be run: exit code 2, one line naming the help to read."""


def session_file_path(env: Dict[str, str], option: Optional[str] = None) -> str:
    """``--session``, else PAI_SESSION_FILE, else ``$XDG_STATE_HOME/pai/session.json``
    (``~/.local/state/pai/session.json``): a session belongs to the person at the keyboard, not to
    a service's data directory or to the directory the command happens to run in."""
    chosen = option if option is not None else (env.get("PAI_SESSION_FILE") or None)
    if chosen is not None:
        return os.path.abspath(chosen)
    state = env.get("XDG_STATE_HOME")
    base = state if state and os.path.isabs(state) else os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "pai", "session.json")


def write_session(path: str, session: Dict[str, str]) -> None:
    """Written whole to a temporary file created 0600 beside the target, flushed, then renamed over
    it: a reader sees the old session or the new one, never half of one, and the token is never in
    a file others can read, whatever the umask or the old file's mode was."""
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    temporary = "%s.%d.%s.tmp" % (path, os.getpid(), secrets.token_hex(4))
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            os.write(fd, (json.dumps(session, indent=2) + "\n").encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def _refuse_if_others_can_read(path: str, remedy: str) -> None:
    # Same rule as the service's dev-secrets.json: refuse rather than use a secret that leaked.
    mode = os.stat(path).st_mode
    if stat.S_ISREG(mode) and mode & 0o077:
        raise CliError("%s is readable by other users; %s" % (path, remedy))


def read_session(path: str) -> Optional[Dict[str, str]]:
    """The saved session, or None when there is none; CliError when it is unsafe or not one."""
    try:
        _refuse_if_others_can_read(
            path, "delete it (the token in it may have leaked: log in again) or run chmod 600 on it"
        )
        with open(path, encoding="utf-8") as handle:
            session = json.load(handle)
    except FileNotFoundError:
        return None
    except OSError as error:
        raise CliError("cannot read the session file %s (%s)" % (path, error.strerror or "error")) from None
    except ValueError:
        session = None
    if not isinstance(session, dict) or not all(isinstance(session.get(name), str) for name in _SESSION_FIELDS):
        raise CliError("%s is not a session file written by pai; delete it and log in again" % path)
    return session


def delete_session(path: str) -> bool:
    """Deletes the saved session; False when there was none."""
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False


def read_token_file(path: str) -> str:
    """The token in ``path`` (surrounding white space dropped). A regular file must not be
    readable by others; a pipe (``--token-file <(pass show pai)``, ``/dev/stdin``) is fine."""
    try:
        _refuse_if_others_can_read(path, "run chmod 600 on it")
        with open(path, encoding="utf-8") as handle:
            token = handle.read().strip()
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else "not readable as UTF-8 text"
        raise CliError("cannot read the token file %s (%s)" % (path, reason)) from None
    if not token:
        raise CliError("the token file %s is empty" % path)
    return token


def _refused_token_argument(argv: List[str]) -> bool:
    for arg in argv:
        if arg == "--":
            return False
        if arg == "--token" or arg.startswith("--token="):
            return True
    return False


_TOKEN_ON_COMMAND_LINE = (
    "--token is refused: a token on the command line can be read by other users of this machine "
    "(ps, /proc) and stays in shell history; `login` saves the session for the other commands, or "
    "give the token in PAI_TOKEN or in a file with --token-file FILE"
)


def _password(args: Any) -> str:
    if args.password_stdin or not sys.stdin.isatty():
        line = sys.stdin.readline()
        return line[:-1] if line.endswith("\n") else line
    import getpass

    return getpass.getpass("password: ")


class _Token:
    """A session token and where it came from: only a token from the session file is the CLI's to
    forget (after logout, or once the service says it is no longer valid)."""

    def __init__(self, value: str, session_file: Optional[str]):
        self.value = value
        self.session_file = session_file


def _token(args: Any, env: Dict[str, str], server: str, session_file: str) -> _Token:
    if args.token_file is not None:
        return _Token(read_token_file(args.token_file), None)
    if env.get("PAI_TOKEN"):
        return _Token(env["PAI_TOKEN"], None)
    session = read_session(session_file)
    if session is None:
        raise CliError(
            "not logged in (no session in %s); run: python3 -m pai_client login <user>, "
            "or give a token in PAI_TOKEN or with --token-file FILE" % session_file,
            "NOT_LOGGED_IN",
        )
    # A bearer token goes only to the server that issued it.
    if session["server"] != server:
        raise CliError(
            "the saved session is for %s, not %s; log in to this one with: python3 -m pai_client login <user>"
            % (session["server"], server),
            "NOT_LOGGED_IN",
        )
    return _Token(session["token"], session_file)


def _previous_session(session_file: str, server: str) -> Optional[Dict[str, str]]:
    """A session saved for the same server, if there is a readable one; never an error."""
    try:
        session = read_session(session_file)
    except (CliError, OSError):
        return None
    return session if session is not None and session["server"] == server else None


class _Parser(argparse.ArgumentParser):
    """argparse, but a mistake is one line (UsageError), not the usage text and an exit."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def _whole_number(option: str, low: int, high: int) -> Any:
    def parse(raw: str) -> int:
        if not re.match(r"^[0-9]{1,9}$", raw) or not low <= int(raw) <= high:
            raise UsageError("%s must be a whole number from %d to %d" % (option, low, high))
        return int(raw)

    return parse


def _matching(pattern: Any, problem: str) -> Any:
    def parse(raw: str) -> str:
        if not pattern.match(raw):
            raise UsageError(problem)
        return raw

    return parse


def _amount(raw: str) -> str:
    if not AMOUNT_PATTERN.match(raw) or not re.search("[1-9]", raw):
        raise UsageError("the amount must be " + AMOUNT_RULE)
    return raw


def _description(raw: str) -> str:
    if len(raw) > DESCRIPTION_MAX_LENGTH:
        raise UsageError("--desc must be at most %d characters" % DESCRIPTION_MAX_LENGTH)
    return raw


def _parser(env: Dict[str, str]) -> Any:
    # No abbreviations: an option that takes a secret or a file is never guessed from a prefix.
    parser = _Parser(
        prog="python3 -m pai_client",
        allow_abbrev=False,
        description="Talk to a PAI service. Keys come from PAI_MAC_KEYS (kid:base64secret,…) or "
        "PAI_MAC_KEYS_FILE, or else from the service's development secrets in dev-secrets.json. `login` "
        "saves the session token in a file only you can read; the other commands take it from there, "
        "from PAI_TOKEN, or from --token-file FILE, never from the command line. The same verbs, "
        "options, exit codes and --json documents as the Node CLI `pai` (docs/cli.md).",
    )
    def add_globals(target: Any) -> None:
        # SUPPRESS: an option given before the command is not reset by the command's defaults.
        quiet = argparse.SUPPRESS
        target.add_argument("--host", default=quiet, help="service host (env PAI_HOST, default 127.0.0.1)")
        target.add_argument("--port", type=_whole_number("--port", 1, 65535), default=quiet,
                            help="service port (env PAI_PORT, default 8080)")
        target.add_argument("--tls-ca", "--ca", dest="tls_ca", metavar="FILE", default=quiet,
                            help="connect with TLS, trusting this CA file (env PAI_TLS_CA)")
        target.add_argument("--session", metavar="FILE", default=quiet,
                            help="session file (env PAI_SESSION_FILE, default $XDG_STATE_HOME/pai/session.json "
                            "or ~/.local/state/pai/session.json), shared with the Node CLI")
        target.add_argument("--timeout", metavar="MS", type=_whole_number("--timeout", 1, 3_600_000),
                            default=quiet, help="wait this long for each reply (default 10000)")
        target.add_argument("--json", action="store_true", default=quiet,
                            help='print the result, or {"error":{"code","message"}}, as JSON on stdout')
        target.add_argument("--verbose", action="store_true", default=quiet, help="accepted, as by the Node CLI")
        target.add_argument("--kid", default=quiet, help="key id (env PAI_KID, default: the first key)")

    add_globals(parser)
    parser.add_argument("-V", "--version", action="version", version="pai_client " + VERSION)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def command(name: str, help_text: str) -> Any:
        sub = commands.add_parser(name, help=help_text, description=help_text, allow_abbrev=False)
        add_globals(sub)
        return sub

    command("ping", "check that the service answers (signed, verified)")
    for name, text in (("register", "create an account (password read without echo, twice)"),
                       ("login", "log in and save the session token")):
        sub = command(name, text)
        sub.add_argument("username")
        sub.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
        if name == "login":
            sub.add_argument(
                "--show-token",
                action="store_true",
                help="print the session token too (it is always saved in the session file)",
            )
    token_help = "read the session token from FILE (default: $PAI_TOKEN, else the session file)"
    for name, help_text in (("logout", "revoke the session and delete the saved token"),
                            ("me", "show the account, its transaction count and total")):
        sub = command(name, help_text)
        sub.add_argument("--token-file", metavar="FILE", help=token_help)
    pay = command("pay", "record a transaction")
    pay.add_argument("amount", type=_amount, help=AMOUNT_RULE)
    pay.add_argument("--token-file", metavar="FILE", help=token_help)
    pay.add_argument("--ref", "--reference", dest="reference",
                     type=_matching(REFERENCE_PATTERN, "--ref must be 1-64 characters of [A-Za-z0-9._:-]"),
                     help="idempotency reference: 1-64 characters of [A-Za-z0-9._:-]")
    pay.add_argument("--desc", "--description", dest="description", type=_description,
                     help="at most %d characters" % DESCRIPTION_MAX_LENGTH)
    history = command("history", "list transactions, newest first")
    history.add_argument("--token-file", metavar="FILE", help=token_help)
    history.add_argument("--limit", type=_whole_number("--limit", PAGE_LIMIT_MIN, PAGE_LIMIT_MAX),
                         help="%d to %d per page" % (PAGE_LIMIT_MIN, PAGE_LIMIT_MAX))
    history.add_argument("--before", metavar="ID",
                         type=_matching(TRANSACTION_ID_PATTERN,
                                        "--before must be a transaction id (the one a previous page named)"),
                         help="the id the previous page named")
    ledger = command("ledger", "the ledger: `ledger digest` prints its latest block as one line of JSON, "
                               "the file `pai-server ledger verify --digest FILE` reads back")
    ledger.add_argument("action", choices=["digest"], help="digest")
    return parser


_COMMANDS = ("ping", "register", "login", "logout", "me", "pay", "history", "ledger")


def _fail(json_mode: bool, code: str, message: str, extra: Optional[Dict[str, Any]] = None) -> int:
    """One failure, reported as the Node CLI reports it: with --json a document on stdout, else
    one line on stderr; the exit code of EXIT_CODES."""
    if json_mode:
        print(json.dumps({"error": dict({"code": code, "message": message}, **(extra or {}))},
                         ensure_ascii=False, separators=(",", ":")))
    else:
        print("pai_client: %s" % message.replace("\n", " "), file=sys.stderr)
    return EXIT_CODES.get(code, 1)


def main(argv: Optional[List[str]] = None, environ: Optional[Dict[str, str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    env = dict(os.environ if environ is None else environ)
    json_mode = "--json" in argv
    named = next((arg for arg in argv if arg in _COMMANDS), None)
    # Before argparse, which would echo the value in its own error.
    if _refused_token_argument(argv):
        return _fail(json_mode, "USAGE", _TOKEN_ON_COMMAND_LINE)
    # `pay -5`: an amount, refused as one, not an unknown option `-5`.
    argv = [" " + arg if re.match(r"^-[0-9.]", arg) and index > 0 and argv[index - 1] == "pay" else arg
            for index, arg in enumerate(argv)]
    try:
        args = _parser(env).parse_args(argv)
    except SystemExit as done:  # --help and --version print, then exit 0
        return done.code if isinstance(done.code, int) else 0
    except UsageError as error:
        hint = " (see: python3 -m pai_client%s --help)" % (" " + named if named else "")
        return _fail(json_mode, "USAGE", str(error) + hint)
    options = vars(args)
    host = options.get("host") or env.get("PAI_HOST") or "127.0.0.1"
    port = options.get("port")
    if port is None:
        raw = env.get("PAI_PORT") or "8080"
        if not re.match(r"^[0-9]{1,5}$", raw) or not 1 <= int(raw) <= 65535:
            return _fail(json_mode, "CONFIG", 'PAI_PORT: must be a port number from 1 to 65535, got "%s"' % raw)
        port = int(raw)
    kid_wanted = options.get("kid") or env.get("PAI_KID")
    ca_file = options.get("tls_ca") or env.get("PAI_TLS_CA") or env.get("PAI_TLS_CA_FILE")
    timeout = (options.get("timeout") or DEFAULT_TIMEOUT * 1000) / 1000
    if options.get("session") == "":
        return _fail(json_mode, "USAGE", "--session must not be empty")

    try:
        keys = load_keys(env)
    except ValueError as error:
        return _fail(json_mode, "CONFIG", str(error))
    chosen = [pair for pair in keys if kid_wanted is None or pair[0] == kid_wanted]
    if not chosen:
        return _fail(json_mode, "CONFIG", "no key with id %r" % kid_wanted)
    kid, secret = chosen[0]

    # The service's own PAI_HOST may be a wildcard listen address; connect to loopback then.
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1"
    # As the Node CLI writes it: the server a saved session belongs to.
    server = "[%s]:%d" % (host, port) if ":" in host else "%s:%d" % (host, port)
    session_file = session_file_path(env, options.get("session"))

    token: Optional[_Token] = None
    try:
        if args.command in ("logout", "me", "pay", "history"):
            token = _token(args, env, server, session_file)
        if args.command == "ping":
            pattern, payload = "system.ping", {}
        elif args.command == "ledger":
            pattern, payload = "ledger.digest", {}
        elif args.command in ("register", "login"):
            pattern, payload = "auth." + args.command, {"username": args.username, "password": _password(args)}
        elif args.command == "logout":
            pattern, payload = "auth.logout", {"token": token.value}
        elif args.command == "me":
            pattern, payload = "users.me", {"token": token.value}
        elif args.command == "pay":
            payload = {"token": token.value, "amount": args.amount.strip()}
            if args.reference is not None:
                payload["reference"] = args.reference
            if args.description is not None:
                payload["description"] = args.description
            pattern = "transactions.create"
        else:
            payload = {"token": token.value}
            if args.limit is not None:
                payload["limit"] = args.limit
            if args.before is not None:
                payload["before"] = args.before
            pattern = "transactions.list"
    except CliError as error:
        return _fail(json_mode, error.code, str(error))

    try:
        with PaiClient(host, port, kid=kid, secret=secret, timeout=timeout, ca_file=ca_file) as pai:
            reply = pai.send(pattern, payload)
            if args.command == "login":
                reply = _save_login(pai, reply, args, server, session_file)
    except PaiError as error:
        if token is not None and token.session_file is not None and error.code == ErrorCode.UNAUTHENTICATED:
            delete_session(token.session_file)
        extra = {name: error.details[name] for name in REPORTED_DETAILS if name in error.details}
        return _fail(json_mode, error.code, error.message, extra)
    except CliError as error:
        return _fail(json_mode, error.code, str(error))
    except OSError as error:
        return _fail(json_mode, "CONFIG", str(error))
    if args.command == "logout" and token is not None and token.session_file is not None:
        delete_session(token.session_file)
    print(json.dumps(reply, ensure_ascii=False, separators=(",", ":")))
    return 0


def _save_login(pai: PaiClient, reply: Dict[str, Any], args: Any, server: str, session_file: str) -> Dict[str, Any]:
    """Saves the session and returns what `login` prints: the token only when asked, since
    printed it ends up in logs and terminal scrollback."""
    previous = _previous_session(session_file, server)
    write_session(
        session_file,
        {
            "server": server,
            "username": args.username,
            "userId": reply["userId"],
            "token": reply["token"],
            "expiresAt": reply["expiresAt"],
        },
    )
    if previous is not None and previous["token"] != reply["token"]:
        # The replaced token would stay valid until it expires; revoke it, but a failure here
        # (already expired, say) does not undo the login that succeeded.
        try:
            pai.send("auth.logout", {"token": previous["token"]})
        except PaiError:
            pass
    shown = {
        "userId": reply["userId"],
        "username": args.username,
        "expiresAt": reply["expiresAt"],
        "sessionFile": session_file,
    }
    if args.show_token:
        shown["token"] = reply["token"]
    return shown


if __name__ == "__main__":
    sys.exit(main())
