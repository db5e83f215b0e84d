"""Tests of pai_client: the protocol vectors, the canonical form, the framing, the client against a
scripted in-process peer, and end to end against the real service (node dist/src/main.js)."""

import base64
import contextlib
import io
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import unittest.mock
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import pai_client  # noqa: E402
from pai_client import (  # noqa: E402
    ErrorCode,
    FrameDecoder,
    FrameError,
    PaiClient,
    PaiConnectionError,
    PaiReplyUnverifiedError,
    PaiServiceError,
    PaiTimeoutError,
    canonical_json,
    encode_frame,
    reply_mac_input,
    reply_mac_matches,
    request_mac_input,
    sign_request,
    utf16_length,
)

VENDORED_VECTORS = os.path.join(ROOT, "test", "fixtures", "protocol-vectors.json")
# Beside the checkout (../shared), or beside the directory of worktrees (../../shared).
SHARED_VECTORS = next(
    (path for path in (os.path.join(ROOT, up, "shared", "protocol-vectors.json") for up in ("..", "../.."))
     if os.path.exists(path)),
    os.path.join(ROOT, "..", "shared", "protocol-vectors.json"),
)
MAIN_JS = os.path.join(ROOT, "dist", "src", "main.js")
E2E_REQUIRED = os.environ.get("PAI_PYTHON_E2E_REQUIRED") == "1"


def load_vectors():
    # The vendored copy is the one CI always has; ../shared is only on developers' machines.
    path = VENDORED_VECTORS if os.path.exists(VENDORED_VECTORS) else SHARED_VECTORS
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def random_secret() -> str:
    return base64.b64encode(os.urandom(32)).decode()


# --- vectors ----------------------------------------------------------------------------------


class ProtocolVectorTest(unittest.TestCase):
    vectors = load_vectors()

    def key(self, kid):
        return base64.b64decode(self.vectors["keys"][kid])

    def test_vendored_copy_matches_shared(self):
        if not os.path.exists(SHARED_VECTORS) or not os.path.exists(VENDORED_VECTORS):
            self.skipTest("only one copy of protocol-vectors.json here")
        with open(SHARED_VECTORS, "rb") as a, open(VENDORED_VECTORS, "rb") as b:
            self.assertEqual(json.loads(a.read()), json.loads(b.read()))

    def test_there_are_vectors(self):
        self.assertGreaterEqual(len(self.vectors["requests"]), 7)
        self.assertGreaterEqual(len(self.vectors["replies"]), 3)

    def test_every_request_vector(self):
        for vector in self.vectors["requests"]:
            envelope = vector["envelope"]
            with self.subTest(pattern=vector["pattern"], nonce=envelope["nonce"]):
                self.assertEqual(envelope["v"], 2)
                self.assertTrue(vector["macInput"].startswith("PAI-MAC-V2\n"))
                text = request_mac_input(
                    vector["pattern"], envelope["kid"], envelope["ts"], envelope["nonce"], envelope["payload"]
                )
                self.assertEqual(text, vector["macInput"])
                signed = sign_request(
                    self.key(envelope["kid"]),
                    envelope["kid"],
                    vector["pattern"],
                    envelope["payload"],
                    ts=envelope["ts"],
                    nonce=envelope["nonce"],
                )
                self.assertEqual(signed, envelope)

    def test_every_reply_vector(self):
        for vector in self.vectors["replies"]:
            reply = vector["reply"]
            key = self.key(vector["kid"])
            pattern, kid, nonce, request_mac = (
                vector["pattern"], vector["kid"], vector["requestNonce"], vector["requestMac"]
            )
            args = (pattern, kid, nonce, request_mac)
            with self.subTest(pattern=pattern):
                body = {name: value for name, value in reply.items() if name != "mac"}
                self.assertEqual(reply_mac_input(*args, body), vector["macInput"])
                self.assertTrue(vector["macInput"].startswith("PAI-MAC-V2-REPLY\n"))
                self.assertTrue(reply_mac_matches(key, *args, reply))
                tampered = dict(reply, ts=reply["ts"] + 1)
                self.assertFalse(reply_mac_matches(key, *args, tampered))
                self.assertFalse(reply_mac_matches(key, pattern, kid, "another-nonce-000", request_mac, reply))
                self.assertFalse(reply_mac_matches(key, "system.other", kid, nonce, request_mac, reply))
                # The same pattern, kid and nonce but another request MAC: the reply to a
                # tampered copy of the request does not verify for the genuine one.
                other_mac = ("0" if request_mac[0] != "0" else "1") + request_mac[1:]
                self.assertFalse(reply_mac_matches(key, pattern, kid, nonce, other_mac, reply))
                self.assertFalse(reply_mac_matches(key, pattern, kid, nonce, request_mac.upper(), reply))
                self.assertFalse(reply_mac_matches(key, *args, dict(reply, mac=None)))
                self.assertFalse(reply_mac_matches(key, *args, dict(reply, mac=reply["mac"].upper())))

    def test_reply_vectors_answer_request_vectors(self):
        # Each reply vector's request is one of the request vectors: its MAC is that request's.
        requests = {
            (v["pattern"], v["envelope"]["kid"], v["envelope"]["nonce"]): v["envelope"]["mac"]
            for v in self.vectors["requests"]
        }
        for vector in self.vectors["replies"]:
            with self.subTest(pattern=vector["pattern"]):
                key = (vector["pattern"], vector["kid"], vector["requestNonce"])
                self.assertEqual(requests.get(key), vector["requestMac"])


# --- canonical form ---------------------------------------------------------------------------


def double(bits_hex: str) -> float:
    return struct.unpack(">d", bytes.fromhex(bits_hex))[0]


class CanonicalJsonTest(unittest.TestCase):
    def test_rfc8785_number_samples(self):
        # RFC 8785 appendix B: IEEE 754 bit patterns and their ECMAScript form.
        samples = {
            "0000000000000000": "0",
            "8000000000000000": "0",
            "0000000000000001": "5e-324",
            "8000000000000001": "-5e-324",
            "7fefffffffffffff": "1.7976931348623157e+308",
            "ffefffffffffffff": "-1.7976931348623157e+308",
            "4340000000000000": "9007199254740992",
            "c340000000000000": "-9007199254740992",
            "4430000000000000": "295147905179352830000",
            "44b52d02c7e14af5": "9.999999999999997e+22",
            "44b52d02c7e14af6": "1e+23",
            "44b52d02c7e14af7": "1.0000000000000001e+23",
            "444b1ae4d6e2ef4e": "999999999999999700000",
            "444b1ae4d6e2ef4f": "999999999999999900000",
            "444b1ae4d6e2ef50": "1e+21",
            "3eb0c6f7a0b5ed8c": "9.999999999999997e-7",
            "3eb0c6f7a0b5ed8d": "0.000001",
            "41b3de4355555553": "333333333.3333332",
            "41b3de4355555554": "333333333.33333325",
            "41b3de4355555555": "333333333.3333333",
            "41b3de4355555556": "333333333.3333334",
            "41b3de4355555557": "333333333.33333343",
            "becbf647612f3696": "-0.0000033333333333333333",
            "43143ff3c1cb0959": "1424953923781206.2",
        }
        for bits, expected in samples.items():
            with self.subTest(bits=bits):
                self.assertEqual(canonical_json(double(bits)), expected)

    def test_numbers_layout(self):
        cases = [
            (1.0, "1"), (100.0, "100"), (-0.0, "0"), (0.1, "0.1"), (1e-6, "0.000001"),
            (1e-7, "1e-7"), (1.5e-7, "1.5e-7"), (1e20, "100000000000000000000"), (1e21, "1e+21"),
            (123456789012345680000.0, "123456789012345680000"), (4.50, "4.5"), (2e-3, "0.002"),
            (1e-27, "1e-27"), (0.30000000000000004, "0.30000000000000004"), (-12.5, "-12.5"),
        ]
        for value, expected in cases:
            with self.subTest(value=value):
                self.assertEqual(canonical_json(value), expected)

    def test_integers_are_read_as_doubles_like_json_parse(self):
        self.assertEqual(canonical_json(0), "0")
        self.assertEqual(canonical_json(-7), "-7")
        self.assertEqual(canonical_json(20), "20")
        self.assertEqual(canonical_json(2**53), "9007199254740992")
        # JSON.parse reads 9007199254740993 as 9007199254740992: the MAC must be over that.
        self.assertEqual(canonical_json(2**53 + 1), "9007199254740992")
        self.assertEqual(canonical_json(10**21), "1e+21")
        self.assertEqual(canonical_json(-(10**21)), "-1e+21")
        self.assertEqual(canonical_json(12345678901234567890), "12345678901234567000")
        with self.assertRaises(ValueError):
            canonical_json(10**400)

    def test_booleans_are_not_integers(self):
        self.assertEqual(canonical_json([True, False, None, 1, 0]), "[true,false,null,1,0]")

    def test_non_finite_numbers_are_refused(self):
        for value in (float("nan"), float("inf"), float("-inf")):
            with self.subTest(value=value), self.assertRaises(ValueError):
                canonical_json({"x": value})

    def test_escapes_as_json_stringify(self):
        value = "\u0000\u0001\u001f\u007f\u2028\u2029\"\\/\b\f\n\r\té€😀"
        expected = '"\\u0000\\u0001\\u001f\u007f\u2028\u2029\\"\\\\/\\b\\f\\n\\r\\té€😀"'
        self.assertEqual(canonical_json(value), expected)

    def test_astral_characters_in_keys_and_values_stay_literal(self):
        self.assertEqual(canonical_json({"😀": "𝄞"}), '{"😀":"𝄞"}')

    def test_keys_sort_by_utf16_code_units(self):
        # RFC 8785 3.2.3's example.
        value = {
            "\u20ac": "Euro Sign", "\r": "Carriage Return", "\ufb33": "Hebrew Letter Dalet With Dagesh",
            "1": "One", "\U0001f600": "Emoji: Grinning Face", "\u0080": "Control", "\u00f6": "Latin Small Letter O With Diaeresis",
        }
        keys = [json.loads(k) for k in re.findall(r'("(?:[^"\\]|\\.)*"):', canonical_json(value))]
        self.assertEqual(keys, ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"])

    def test_where_python_sort_keys_differs(self):
        # U+E000..U+FFFF sort after astral characters in UTF-16 (surrogates are D800..DFFF) but
        # before them by code point, which is what sorted() and json.dumps(sort_keys=True) use.
        value = {"\uff01": 1, "\U0001f600": 2, "a": 3}
        self.assertEqual(canonical_json(value), '{"a":3,"😀":2,"！":1}')
        python = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        self.assertEqual(python, '{"a":3,"！":1,"😀":2}')
        self.assertNotEqual(python, canonical_json(value))

    def test_nesting_and_no_whitespace(self):
        value = {"b": [1, {"d": 2, "c": [None, "x"]}], "a": {}, "e": [], "f": (1, 2)}
        self.assertEqual(canonical_json(value), '{"a":{},"b":[1,{"c":[null,"x"],"d":2}],"e":[],"f":[1,2]}')

    def test_lone_surrogates_are_refused(self):
        for value in ("\ud83d", "x\ude00", {"\ud800": 1}):
            with self.subTest(value=ascii(value)), self.assertRaises(ValueError):
                canonical_json(value)

    def test_non_json_types_are_refused(self):
        for value in (b"bytes", {1: "int key"}, object(), {"set": {1}}):
            with self.subTest(value=repr(value)), self.assertRaises(TypeError):
                canonical_json(value)

    def test_signing_refuses_an_integer_the_service_would_read_differently(self):
        key = os.urandom(32)
        sign_request(key, "default", "transactions.list", {"token": "t", "limit": 2**53})
        with self.assertRaises(ValueError):
            sign_request(key, "default", "transactions.list", {"token": "t", "limit": 2**53 + 1})


class CanonicalAgainstServiceLibraryTest(unittest.TestCase):
    """The service's own RFC 8785 library (npm canonicalize) over a random corpus."""

    def test_random_corpus_agrees_with_npm_canonicalize(self):
        node = shutil.which("node")
        if not node or not os.path.isdir(os.path.join(ROOT, "node_modules", "canonicalize")):
            self.skipTest("node or node_modules/canonicalize missing (run npm ci)")
        import random

        rng = random.Random(8785)
        chars = ["a", "B", "z", "0", "é", "ÿ", "€", "😀", "𝄞", "\uffff", "\ue000", "\ufb33", "\U0010ffff",
                 "\x00", "\x1f", "\x7f", '"', "\\", "/", "\n", "\r", "\t", "\b", "\f", "\u2028", "\ud7ff"]
        numbers = [0.0, -0.0, 1e21, 1e-7, 5e-324, 2**53 + 1, 10**25, -(10**22)]
        for _ in range(800):
            bits = rng.getrandbits(64)
            value = struct.unpack("<d", bits.to_bytes(8, "little"))[0]
            if value == value and abs(value) != float("inf"):
                numbers.append(value)
            numbers.append(rng.uniform(-1e6, 1e6) * 10 ** rng.randint(-30, 30))
            numbers.append(rng.randint(-(10**22), 10**22))
            numbers.append(round(rng.uniform(-1000, 1000), rng.randint(0, 6)))

        def text(limit):
            return "".join(rng.choice(chars) for _ in range(rng.randint(0, limit)))

        def value(depth):
            roll = rng.random()
            if depth < 3 and roll < 0.15:
                return {text(4): value(depth + 1) for _ in range(rng.randint(0, 5))}
            if depth < 3 and roll < 0.25:
                return [value(depth + 1) for _ in range(rng.randint(0, 4))]
            if roll < 0.55:
                return text(6)
            if roll < 0.9:
                return rng.choice(numbers)
            return rng.choice([None, True, False])

        corpus = numbers + [value(0) for _ in range(1500)]
        script = (
            "import canonicalize from 'canonicalize';let s='';process.stdin.setEncoding('utf8');"
            "process.stdin.on('data',d=>s+=d).on('end',()=>process.stdout.write("
            "JSON.stringify(JSON.parse(s).map(v=>canonicalize(v)))));"
        )
        result = subprocess.run(
            [node, "--input-type=module", "-e", script],
            input=json.dumps(corpus).encode(),
            capture_output=True,
            cwd=ROOT,
            timeout=120,
        )
        self.assertEqual(result.returncode, 0, result.stderr.decode(errors="replace"))
        expected = json.loads(result.stdout)
        self.assertEqual(len(expected), len(corpus))
        mismatches = [
            (ascii(item), ascii(canonical_json(item)), ascii(theirs))
            for item, theirs in zip(corpus, expected)
            if canonical_json(item) != theirs
        ]
        self.assertEqual(mismatches[:5], [])


# --- framing ----------------------------------------------------------------------------------


class ReceiptTest(unittest.TestCase):
    """The shared receipt fixture (test/fixtures/ledger-receipt.json), which the Node client's
    spec checks too: both clients hash the same bytes and accept the same proof."""

    def setUp(self):
        with open(os.path.join(ROOT, "test", "fixtures", "ledger-receipt.json"), encoding="utf-8") as handle:
            self.fixture = json.load(handle)

    def test_leaf_matches_the_node_client(self):
        self.assertEqual(pai_client.leaf_hash(self.fixture["receipt"]["transaction"]), self.fixture["leaf"])

    def test_receipt_holds_against_its_digest(self):
        self.assertIsNone(pai_client.receipt_problem(self.fixture["receipt"], self.fixture["digest"]))

    def test_receipt_fails_with_anything_changed(self):
        def changed(edit):
            receipt = json.loads(json.dumps(self.fixture["receipt"]))
            edit(receipt)
            return pai_client.receipt_problem(receipt, self.fixture["digest"])

        self.assertIn("Merkle path", changed(lambda r: r["transaction"].update(amount="3.51")))
        self.assertIn("Merkle path", changed(lambda r: r["transaction"].update(userId="8")))
        self.assertIn("Merkle path", changed(lambda r: r.update(position=3)))
        self.assertIn("does not match its hash", changed(lambda r: r["block"].update(sealedAt="2020-01-01T00:00:00.000Z")))
        self.assertIn("reaches block 1", changed(lambda r: r.update(headers=[])))
        digest = dict(self.fixture["digest"], hash=pai_client.GENESIS_HASH)
        self.assertIn("digest's hash", pai_client.receipt_problem(self.fixture["receipt"], digest))


class FramingTest(unittest.TestCase):
    def test_length_counts_utf16_code_units(self):
        self.assertEqual(utf16_length("abc"), 3)
        self.assertEqual(utf16_length("é€"), 2)
        self.assertEqual(utf16_length("😀"), 2)
        frame = encode_frame({"d": "😀é"})
        text = '{"d":"😀é"}'
        self.assertEqual(len(text), 10)  # Python characters
        self.assertEqual(frame, ("11#" + text).encode("utf-8"))  # 11 UTF-16 units, 15 UTF-8 bytes

    def test_decoder_reassembles_frames_split_anywhere(self):
        messages = [{"id": "1", "response": {"d": "😀€é\n\"x\""}}, {"id": "2", "isDisposed": True}, {"𝄞": []}]
        stream = b"".join(encode_frame(m) for m in messages)
        for chunk_size in (1, 2, 3, 5, 7, len(stream)):
            with self.subTest(chunk_size=chunk_size):
                decoder = FrameDecoder()
                received = []
                for start in range(0, len(stream), chunk_size):
                    received.extend(decoder.feed(stream[start:start + chunk_size]))
                self.assertEqual(received, messages)

    def test_decoder_reads_nest_frames(self):
        # As Nest's JsonSocket writes them: JSON.stringify(message).length + '#' + JSON.
        frame = '12#{"a":"😀😀"}'.encode("utf-8")
        self.assertEqual(FrameDecoder().feed(frame), [{"a": "😀😀"}])

    def test_length_in_code_points_is_a_broken_frame(self):
        # 11 would be right if Python characters were counted: the cut lands inside 😀's pair.
        with self.assertRaises(FrameError):
            FrameDecoder().feed('11#{"a":"😀😀"}1#'.encode("utf-8"))

    def test_corrupt_lengths(self):
        for data in (b"#{}", b"x2#{}", b"12345678901#", b"3#{}}"):
            with self.subTest(data=data), self.assertRaises(FrameError):
                FrameDecoder().feed(data)

    def test_oversized_frame_is_refused_before_it_is_buffered(self):
        with self.assertRaises(FrameError):
            FrameDecoder(max_units=100).feed(b"101#")


# --- client against a scripted peer -----------------------------------------------------------


class ScriptedPeer:
    """A TCP peer that answers each request with what ``respond(message)`` returns: a list of
    packets to send (or None to stay silent). It replies in batches of ``batch`` requests, in
    reverse order, so that out-of-order replies are exercised."""

    def __init__(self, respond, batch=1):
        self.respond = respond
        self.batch = batch
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()

    def handle(self, conn):
        decoder = FrameDecoder()
        waiting = []
        with conn:
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                for message in decoder.feed(data):
                    waiting.append(message)
                    if len(waiting) < self.batch:
                        continue
                    for request in reversed(waiting):
                        for packet in self.respond(request) or []:
                            if packet == "close":
                                return
                            conn.sendall(encode_frame(dict(packet, id=request["id"])))
                    waiting = []

    def close(self):
        self.listener.close()


KEY = os.urandom(32)


def signed_reply(request, body, key=KEY, nonce=None, pattern=None, request_mac=None):
    envelope = request["data"]
    mac = pai_client._hmac_hex(
        key,
        reply_mac_input(
            pattern or request["pattern"],
            envelope["kid"],
            nonce or envelope["nonce"],
            request_mac or envelope["mac"],
            body,
        ),
    )
    return dict(body, mac=mac)


def ok(request, payload, **kwargs):
    return [{"response": signed_reply(request, {"ok": True, "ts": 1, "payload": payload}, **kwargs), "isDisposed": True}]


class ClientTest(unittest.TestCase):
    def client(self, peer, **options):
        client = PaiClient("127.0.0.1", peer.port, kid="default", secret=KEY, **options)
        self.addCleanup(client.close)
        self.addCleanup(peer.close)
        return client

    def test_request_shape_and_signature(self):
        seen = []

        def respond(request):
            seen.append(request)
            return ok(request, {"echo": request["data"]["payload"]})

        client = self.client(ScriptedPeer(respond))
        self.assertEqual(client.send("x.echo", {"v": "😀"}), {"echo": {"v": "😀"}})
        request = seen[0]
        self.assertEqual(set(request), {"pattern", "data", "id"})
        self.assertEqual(request["pattern"], "x.echo")
        envelope = request["data"]
        self.assertEqual(set(envelope), {"v", "kid", "ts", "nonce", "payload", "mac"})
        self.assertRegex(envelope["nonce"], r"^[A-Za-z0-9_-]{16,128}$")
        self.assertRegex(envelope["mac"], r"^[0-9a-f]{64}$")
        expected = sign_request(KEY, "default", "x.echo", {"v": "😀"}, ts=envelope["ts"], nonce=envelope["nonce"])
        self.assertEqual(envelope, expected)
        self.assertLess(abs(envelope["ts"] - time.time() * 1000), 5000)

    def test_reply_signed_with_another_key_is_unverified(self):
        client = self.client(ScriptedPeer(lambda r: ok(r, {"serverTime": 1}, key=os.urandom(32))))
        with self.assertRaises(PaiReplyUnverifiedError) as caught:
            client.send("system.ping", {})
        self.assertEqual(caught.exception.code, ErrorCode.REPLY_UNVERIFIED)

    def test_reply_moved_from_another_request_is_unverified(self):
        client = self.client(ScriptedPeer(lambda r: ok(r, {"serverTime": 1}, nonce="another-request-nonce")))
        with self.assertRaises(PaiReplyUnverifiedError):
            client.send("system.ping", {})

    def test_reply_for_another_pattern_is_unverified(self):
        client = self.client(ScriptedPeer(lambda r: ok(r, {"revoked": True}, pattern="auth.logout")))
        with self.assertRaises(PaiReplyUnverifiedError):
            client.send("system.ping", {})

    def test_tampered_reply_payload_is_unverified(self):
        def respond(request):
            packets = ok(request, {"amount": "1.00"})
            packets[0]["response"]["payload"]["amount"] = "1000.00"
            return packets

        client = self.client(ScriptedPeer(respond))
        with self.assertRaises(PaiReplyUnverifiedError):
            client.send("x.pay", {})

    def test_unsigned_error_is_unverified_and_its_claim_not_trusted(self):
        def respond(request):
            body = {"ok": False, "ts": 1, "error": {"code": "INVALID_CREDENTIALS", "message": "no"}, "mac": None}
            return [{"err": body, "isDisposed": True}]

        client = self.client(ScriptedPeer(respond))
        with self.assertRaises(PaiReplyUnverifiedError) as caught:
            client.send("auth.login", {})
        self.assertEqual(caught.exception.details, {"claimedCode": "INVALID_CREDENTIALS"})

    def test_string_error_from_nest_is_unverified(self):
        client = self.client(ScriptedPeer(lambda r: [{"status": "error", "err": "There is no matching message handler"}]))
        with self.assertRaises(PaiReplyUnverifiedError):
            client.send("x.unknown", {})

    def test_verified_error_carries_code_and_details(self):
        def respond(request):
            body = {"ok": False, "ts": 1, "error": {"code": "RATE_LIMITED", "message": "wait", "retryAfterMs": 1000}}
            return [{"err": signed_reply(request, body), "isDisposed": True}]

        client = self.client(ScriptedPeer(respond))
        with self.assertRaises(PaiServiceError) as caught:
            client.send("auth.login", {})
        self.assertEqual(caught.exception.code, ErrorCode.RATE_LIMITED)
        self.assertEqual(caught.exception.message, "wait")
        self.assertEqual(caught.exception.details, {"retryAfterMs": 1000})

    def test_ok_reply_in_err_is_not_a_success(self):
        client = self.client(ScriptedPeer(lambda r: [{"err": ok(r, {})[0]["response"], "isDisposed": True}]))
        with self.assertRaises(PaiServiceError) as caught:
            client.send("system.ping", {})
        self.assertEqual(caught.exception.code, ErrorCode.INTERNAL)

    def test_response_then_separate_dispose_packet(self):
        def respond(request):
            return [{"response": ok(request, {"n": 1})[0]["response"]}, {"isDisposed": True}]

        client = self.client(ScriptedPeer(respond))
        self.assertEqual(client.send("x", {}), {"n": 1})
        self.assertEqual(client.send("x", {}), {"n": 1})

    def test_dispose_without_reply_is_a_connection_error(self):
        client = self.client(ScriptedPeer(lambda r: [{"isDisposed": True}]))
        with self.assertRaises(PaiConnectionError):
            client.send("x", {})

    def test_timeout(self):
        client = self.client(ScriptedPeer(lambda r: None), timeout=0.3)
        started = time.monotonic()
        with self.assertRaises(PaiTimeoutError) as caught:
            client.send("system.ping", {})
        self.assertEqual(caught.exception.code, ErrorCode.TIMEOUT)
        self.assertLess(time.monotonic() - started, 3)

    def test_connection_closed_by_peer(self):
        client = self.client(ScriptedPeer(lambda r: ["close"]))
        with self.assertRaises(PaiConnectionError) as caught:
            client.send("system.ping", {})
        self.assertEqual(caught.exception.code, ErrorCode.CONNECTION)

    def test_connection_refused(self):
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        with PaiClient("127.0.0.1", port, kid="default", secret=KEY, timeout=2) as client:
            with self.assertRaises(PaiConnectionError):
                client.send("system.ping", {})

    def test_reconnects_after_the_connection_broke(self):
        calls = []

        def respond(request):
            calls.append(request)
            return ["close"] if len(calls) == 1 else ok(request, {"n": len(calls)})

        peer = ScriptedPeer(respond)
        client = self.client(peer)
        with self.assertRaises(PaiConnectionError):
            client.send("x", {})
        self.assertEqual(client.send("x", {}), {"n": 2})
        self.assertEqual(peer.connections, 2)

    def test_a_safe_request_is_sent_again_after_the_connection_broke(self):
        calls = []

        def respond(request):
            calls.append(request)
            return ["close"] if len(calls) == 1 else ok(request, {"n": len(calls)})

        peer = ScriptedPeer(respond)
        client = self.client(peer, connection_retry_delay=0.01)
        payload = {"token": "t" * 43, "amount": "1.00", "reference": "inv-1"}
        self.assertEqual(client.send("transactions.create", payload), {"n": 2})
        # A new signed message on a new connection: a fresh nonce, so no REPLAY.
        self.assertEqual(peer.connections, 2)
        self.assertNotEqual(calls[0]["data"]["nonce"], calls[1]["data"]["nonce"])

    def test_an_unsafe_request_is_not_sent_again(self):
        calls = []

        def respond(request):
            calls.append(request)
            return ["close"]

        client = self.client(ScriptedPeer(respond), connection_retry_delay=0.01)
        for pattern, payload in [
            ("transactions.create", {"token": "t" * 43, "amount": "1.00"}),
            ("auth.login", {"username": "ana", "password": "secret pw"}),
            ("auth.register", {"username": "ana", "password": "secret pw"}),
        ]:
            del calls[:]
            with self.assertRaises(PaiConnectionError):
                client.send(pattern, payload)
            self.assertEqual(len(calls), 1, pattern)

    def test_repeats_are_bounded(self):
        calls = []

        def respond(request):
            calls.append(request)
            return ["close"]

        client = self.client(ScriptedPeer(respond), connection_retry_delay=0.01, connection_retries=2)
        with self.assertRaises(PaiConnectionError):
            client.send("system.ping", {})
        self.assertEqual(len(calls), 3)

    def test_many_requests_in_flight_replies_out_of_order(self):
        # The peer holds 10 requests, then answers them last first.
        peer = ScriptedPeer(lambda r: ok(r, {"n": r["data"]["payload"]["n"]}), batch=10)
        client = self.client(peer)
        results = {}
        errors = []

        def call(n):
            try:
                results[n] = client.send("x.echo", {"n": n})["n"]
            except Exception as error:  # noqa: BLE001 - reported below
                errors.append(error)

        threads = [threading.Thread(target=call, args=(n,)) for n in range(30)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(20)
        self.assertEqual(errors, [])
        self.assertEqual(results, {n: n for n in range(30)})
        self.assertEqual(peer.connections, 1)

    def test_stale_retry_uses_verified_server_time(self):
        server_offset = 3_600_000
        seen = []

        def respond(request):
            seen.append(request["data"])
            server_now = int(time.time() * 1000) + server_offset
            if abs(request["data"]["ts"] - server_now) > 300_000:
                error = {"code": "STALE", "message": "stale", "serverTime": server_now}
                return [{"err": signed_reply(request, {"ok": False, "ts": server_now, "error": error}), "isDisposed": True}]
            return ok(request, {"serverTime": server_now})

        client = self.client(ScriptedPeer(respond))
        client.send("system.ping", {})
        self.assertEqual(len(seen), 2)
        self.assertNotEqual(seen[0]["nonce"], seen[1]["nonce"])
        self.assertAlmostEqual(client.clock_offset_ms, server_offset, delta=5000)
        client.send("system.ping", {})
        self.assertEqual(len(seen), 3)  # the offset is kept: no second STALE

    def test_unverified_stale_is_not_acted_on(self):
        def respond(request):
            error = {"code": "STALE", "message": "stale", "serverTime": 1}
            return [{"err": {"ok": False, "ts": 1, "error": error, "mac": None}, "isDisposed": True}]

        client = self.client(ScriptedPeer(respond))
        with self.assertRaises(PaiReplyUnverifiedError):
            client.send("system.ping", {})
        self.assertEqual(client.clock_offset_ms, 0)


def error_reply(request, code, signed=True, **extra):
    body = {"ok": False, "ts": 1, "error": dict({"code": code, "message": code.lower()}, **extra)}
    return [{"err": signed_reply(request, body) if signed else dict(body, mac=None), "isDisposed": True}]


SAFE_TO_REPEAT = [
    ("system.ping", {}),
    ("users.me", {"token": "t" * 43}),
    ("transactions.list", {"token": "t" * 43, "limit": 5}),
    ("auth.logout", {"token": "t" * 43}),
    ("transactions.create", {"token": "t" * 43, "amount": "5.00", "reference": "order:1"}),
]
NOT_SAFE_TO_REPEAT = [
    ("transactions.create", {"token": "t" * 43, "amount": "5.00"}),
    ("transactions.create", {"token": "t" * 43, "amount": "5.00", "reference": ""}),
    ("auth.login", {"username": "alice", "password": "secret pw"}),
    ("auth.register", {"username": "alice", "password": "secret pw"}),
]


class ReplayTest(unittest.TestCase):
    """A verified REPLAY to a nonce the client drew: a copy of this very message ran first."""

    def client(self, respond, **options):
        peer = ScriptedPeer(respond)
        self.addCleanup(peer.close)
        client = PaiClient("127.0.0.1", peer.port, kid="default", secret=KEY, **options)
        self.addCleanup(client.close)
        return client

    def test_a_create_with_a_reference_fetches_its_result_by_sending_it_again(self):
        calls = []

        def respond(request):
            calls.append(request)
            if len(calls) == 1:
                return error_reply(request, "REPLAY")
            return ok(request, {"transaction": {"id": "9", "reference": "order:1"}, "created": False})

        clock = iter(range(1_764_288_000_000, 1_764_288_100_000, 1000))
        client = self.client(respond, now=lambda: float(next(clock)))
        payload = {"token": "t" * 43, "amount": "5.00", "reference": "order:1"}
        reply = client.send("transactions.create", payload)
        self.assertEqual(reply, {"transaction": {"id": "9", "reference": "order:1"}, "created": False})
        first, again = (call["data"] for call in calls)
        # A new message: a fresh nonce and ts, the same request.
        self.assertNotEqual(again["nonce"], first["nonce"])
        self.assertGreater(again["ts"], first["ts"])
        self.assertEqual(again["payload"], payload)
        self.assertEqual(again, sign_request(KEY, "default", "transactions.create", payload,
                                             ts=again["ts"], nonce=again["nonce"]))

    def test_every_request_safe_to_repeat_is_sent_again(self):
        for pattern, payload in SAFE_TO_REPEAT:
            calls = []

            def respond(request, calls=calls):
                calls.append(request["data"]["nonce"])
                return error_reply(request, "REPLAY") if len(calls) == 1 else ok(request, {"n": len(calls)})

            with self.subTest(pattern=pattern, payload=payload):
                self.assertEqual(self.client(respond).send(pattern, payload), {"n": 2})
                self.assertEqual(len(set(calls)), 2)

    def test_a_request_not_safe_to_repeat_is_reported_as_executed_once_result_unseen(self):
        for pattern, payload in NOT_SAFE_TO_REPEAT:
            calls = []

            def respond(request, calls=calls):
                calls.append(request)
                return error_reply(request, "REPLAY")

            with self.subTest(pattern=pattern, payload=payload):
                with self.assertRaises(pai_client.PaiReplayError) as caught:
                    self.client(respond).send(pattern, payload)
                error = caught.exception
                self.assertIsInstance(error, PaiServiceError)
                self.assertEqual(error.code, ErrorCode.REPLAY)
                self.assertIs(error.executed, True)
                self.assertIs(error.details["executed"], True)
                self.assertIn("executed once, result unseen", error.message)
                self.assertIn(pattern, error.message)
                self.assertEqual(len(calls), 1)  # never sent again

    def test_refetches_are_bounded(self):
        calls = []

        def respond(request):
            calls.append(request)
            return error_reply(request, "REPLAY")

        with self.assertRaises(pai_client.PaiReplayError) as caught:
            self.client(respond).send("users.me", {"token": "t" * 43})
        self.assertIs(caught.exception.details["executed"], True)
        self.assertEqual(len(calls), 1 + pai_client.REPLAY_REFETCHES)
        self.assertEqual(pai_client.REPLAY_REFETCHES, 2)
        self.assertEqual(len({call["data"]["nonce"] for call in calls}), 3)

    def test_an_unverified_replay_is_not_taken_as_executed_nor_acted_on(self):
        for pattern, payload in SAFE_TO_REPEAT[-1:] + NOT_SAFE_TO_REPEAT[:1]:
            for forged in ("unsigned", "wrong key", "another request's mac"):
                calls = []

                def respond(request, calls=calls, forged=forged):
                    calls.append(request)
                    if forged == "unsigned":
                        return error_reply(request, "REPLAY", signed=False)
                    body = {"ok": False, "ts": 1, "error": {"code": "REPLAY", "message": "replay"}}
                    if forged == "wrong key":
                        return [{"err": signed_reply(request, body, key=os.urandom(32)), "isDisposed": True}]
                    # What the service signs for a tampered copy sent under the same nonce.
                    return [{"err": signed_reply(request, body, request_mac="ab" * 32), "isDisposed": True}]

                with self.subTest(pattern=pattern, forged=forged):
                    with self.assertRaises(PaiReplyUnverifiedError) as caught:
                        self.client(respond).send(pattern, payload)
                    error = caught.exception
                    self.assertNotIn("executed", error.details)
                    self.assertEqual(error.details["claimedCode"], "REPLAY")
                    self.assertIn("may or may not have run", error.message)
                    self.assertEqual(len(calls), 1)

    def test_send_signed_reports_replay_as_it_came(self):
        # Only the caller of send_signed knows whether the envelope's nonce was fresh.
        client = self.client(lambda request: error_reply(request, "REPLAY"))
        with self.assertRaises(PaiServiceError) as caught:
            client.send_signed("transactions.create", client.sign("transactions.create", {"amount": "1.00"}))
        self.assertNotIsInstance(caught.exception, pai_client.PaiReplayError)
        self.assertEqual(caught.exception.code, ErrorCode.REPLAY)
        self.assertNotIn("executed", caught.exception.details)

    def test_a_replay_after_a_stale_retry_is_refetched_too(self):
        calls = []

        def respond(request):
            calls.append(request)
            if len(calls) == 1:
                return error_reply(request, "STALE", serverTime=int(time.time() * 1000))
            return error_reply(request, "REPLAY") if len(calls) == 2 else ok(request, {"n": len(calls)})

        self.assertEqual(self.client(respond).send("system.ping", {}), {"n": 3})
        self.assertEqual(len({call["data"]["nonce"] for call in calls}), 3)


class UnverifiedReplyTest(unittest.TestCase):
    """An unverified reply proves nothing: its outcome is unknown, and it is never acted on."""

    def client(self, respond, **options):
        peer = ScriptedPeer(respond)
        self.addCleanup(peer.close)
        client = PaiClient("127.0.0.1", peer.port, kid="the-kid", secret=KEY, **options)
        self.addCleanup(client.close)
        return client

    def test_the_message_says_the_outcome_is_unknown_and_hints_at_the_key_for_key_codes(self):
        for code in (ErrorCode.MAC_INVALID, ErrorCode.UNKNOWN_KEY):
            with self.subTest(code=code):
                calls = []

                def respond(request, calls=calls, code=code):
                    calls.append(request)
                    return error_reply(request, code, signed=False)

                with self.assertRaises(PaiReplyUnverifiedError) as caught:
                    self.client(respond).send("transactions.create", {"token": "t" * 43, "amount": "1.00"})
                message = caught.exception.message
                self.assertIn("unverified", message)
                self.assertIn("may or may not have run", message)
                self.assertIn(code, message)
                self.assertIn('key id "the-kid"', message)
                self.assertIn("PAI_MAC_KEYS", message)
                self.assertEqual(len(calls), 1)

    def test_other_claims_get_no_key_hint(self):
        for code in ("INVALID_CREDENTIALS", "UNAUTHENTICATED", "BAD_REQUEST"):
            with self.subTest(code=code):
                with self.assertRaises(PaiReplyUnverifiedError) as caught:
                    self.client(lambda request, code=code: error_reply(request, code, signed=False)).send(
                        "auth.login", {"username": "alice", "password": "secret pw"}
                    )
                self.assertIn("may or may not have run", caught.exception.message)
                self.assertNotIn("PAI_MAC_KEYS", caught.exception.message)

    def test_a_claimed_code_not_of_the_form_of_one_is_not_repeated(self):
        forged = "PWNED\x1b[2J; run rm -rf"
        with self.assertRaises(PaiReplyUnverifiedError) as caught:
            self.client(lambda request: error_reply(request, forged, signed=False)).send("system.ping", {})
        self.assertNotIn("PWNED", caught.exception.message)
        self.assertIsNone(caught.exception.details["claimedCode"])

    def test_a_reply_signed_for_a_tampered_copy_is_unverified(self):
        # Same pattern, kid and nonce, but bound to another request MAC: the service's signed
        # answer to a copy of the request that someone altered before it arrived.
        calls = []

        def respond(request):
            calls.append(request)
            return ok(request, {"transaction": {"id": "1"}, "created": True}, request_mac="cd" * 32)

        with self.assertRaises(PaiReplyUnverifiedError):
            self.client(respond).send("transactions.create", {"token": "t" * 43, "amount": "1.00", "reference": "r"})
        self.assertEqual(len(calls), 1)

    def test_an_unverified_reply_to_a_safe_request_is_not_repeated_either(self):
        calls = []

        def respond(request):
            calls.append(request)
            return error_reply(request, "UNAVAILABLE", signed=False)

        with self.assertRaises(PaiReplyUnverifiedError):
            self.client(respond, connection_retry_delay=0.01).send("system.ping", {})
        self.assertEqual(len(calls), 1)

    def test_a_reply_that_is_not_an_object_is_unverified(self):
        for reply in ("There is no matching message handler", 42, None, ["ok"]):
            with self.subTest(reply=reply):
                with self.assertRaises(PaiReplyUnverifiedError) as caught:
                    self.client(lambda request, reply=reply: [{"err": reply, "isDisposed": True}]
                                if reply else [{"response": reply, "isDisposed": True}]).send("system.ping", {})
                self.assertIn("may or may not have run", caught.exception.message)

    def test_a_timeout_says_the_request_may_have_run(self):
        with self.assertRaises(PaiTimeoutError) as caught:
            self.client(lambda request: None, timeout=0.2).send("system.ping", {})
        self.assertIn("may still run or have run", caught.exception.message)


class CliTest(unittest.TestCase):
    """The command line's handling of session tokens, in process against a scripted peer that
    records what it was sent."""

    TOKEN = "tok-" + "A" * 39

    def setUp(self):
        self.home = tempfile.mkdtemp(prefix="pai-py-cli-")
        self.addCleanup(shutil.rmtree, self.home, True)
        self.session = os.path.join(self.home, "state", "pai", "session.json")
        self.sent = []
        self.answer = lambda request: None
        peer = ScriptedPeer(self.respond)
        self.addCleanup(peer.close)
        self.server = "127.0.0.1:%d" % peer.port
        self.env = {"PAI_MAC_KEYS": "default:" + base64.b64encode(KEY).decode(), "PAI_HOST": "127.0.0.1",
                    "PAI_PORT": str(peer.port), "XDG_STATE_HOME": os.path.join(self.home, "state")}

    def respond(self, request):
        self.sent.append((request["pattern"], request["data"]["payload"]))
        return self.answer(request) or ok(request, {"answered": request["pattern"]})

    def run_cli(self, *argv, stdin="", **env):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
                unittest.mock.patch("sys.stdin", io.StringIO(stdin)):
            code = pai_client.main(list(argv), dict(self.env, **env))
        return code, out.getvalue(), err.getvalue()

    def save_session(self, mode=0o600, **fields):
        session = dict({"server": self.server, "username": "alice", "userId": "7", "token": self.TOKEN,
                        "expiresAt": "2030-01-01T00:00:00.000Z"}, **fields)
        pai_client.write_session(self.session, session)
        os.chmod(self.session, mode)
        return session

    def file_with(self, name, text, mode=0o600):
        path = os.path.join(self.home, name)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(path, mode)
        return path

    def test_a_token_on_the_command_line_is_refused_and_not_echoed(self):
        for argv in (["me", "--token", self.TOKEN], ["pay", "1.00", "--token=" + self.TOKEN],
                     ["--token", self.TOKEN, "history"], ["logout", "--token=" + self.TOKEN]):
            with self.subTest(argv=argv):
                code, out, err = self.run_cli(*argv)
                self.assertEqual(code, 2)
                self.assertIn("--token is refused", err)
                self.assertIn("ps", err)
                self.assertIn("shell history", err)
                self.assertNotIn(self.TOKEN, out + err)
        self.assertEqual(self.sent, [])

    def test_no_option_is_taken_from_a_prefix(self):
        # --tok=… must not be read as --token-file (or anything else).
        code, out, err = self.run_cli("me", "--tok=" + self.TOKEN)
        self.assertEqual(code, 2)
        self.assertEqual(self.sent, [])

    def test_login_saves_the_session_0600_and_prints_no_token(self):
        self.answer = lambda request: ok(request, {"token": self.TOKEN, "userId": "7",
                                                   "expiresAt": "2030-01-01T00:00:00.000Z"})
        self.addCleanup(os.umask, os.umask(0))  # the modes hold whatever the umask
        code, out, err = self.run_cli("login", "alice", "--password-stdin", stdin="a password\n")
        self.assertEqual(code, 0, err)
        self.assertEqual(json.loads(out), {"userId": "7", "username": "alice",
                                           "expiresAt": "2030-01-01T00:00:00.000Z", "sessionFile": self.session})
        self.assertNotIn(self.TOKEN, out + err)
        self.assertEqual(os.stat(self.session).st_mode & 0o777, 0o600)
        self.assertEqual(os.stat(os.path.dirname(self.session)).st_mode & 0o777, 0o700)
        self.assertEqual(pai_client.read_session(self.session),
                         {"server": self.server, "username": "alice", "userId": "7", "token": self.TOKEN,
                          "expiresAt": "2030-01-01T00:00:00.000Z"})
        self.assertEqual([name for name in os.listdir(os.path.dirname(self.session))], ["session.json"])

    def test_login_shows_the_token_when_asked(self):
        self.answer = lambda request: ok(request, {"token": self.TOKEN, "userId": "7", "expiresAt": "x"})
        code, out, err = self.run_cli("login", "alice", "--password-stdin", "--show-token", stdin="a password\n")
        self.assertEqual(code, 0, err)
        self.assertEqual(json.loads(out)["token"], self.TOKEN)

    def test_login_over_an_old_session_revokes_its_token(self):
        self.save_session(token="old-token-" + "B" * 33)
        self.answer = lambda request: (ok(request, {"token": self.TOKEN, "userId": "7", "expiresAt": "x"})
                                       if request["pattern"] == "auth.login" else None)
        code, _, err = self.run_cli("login", "alice", "--password-stdin", stdin="a password\n")
        self.assertEqual(code, 0, err)
        self.assertEqual(self.sent[1], ("auth.logout", {"token": "old-token-" + "B" * 33}))
        self.assertEqual(pai_client.read_session(self.session)["token"], self.TOKEN)

    def test_the_session_token_is_used_and_sent_only_to_its_server(self):
        self.save_session()
        code, _, err = self.run_cli("me")
        self.assertEqual(code, 0, err)
        self.assertEqual(self.sent, [("users.me", {"token": self.TOKEN})])
        self.save_session(server="127.0.0.1:1")
        code, _, err = self.run_cli("me")
        self.assertEqual(code, 3)
        self.assertIn("the saved session is for 127.0.0.1:1", err)
        self.assertEqual(len(self.sent), 1)

    def test_the_session_file_is_found_as_the_node_cli_finds_it(self):
        env = {"XDG_STATE_HOME": "/x/state"}
        self.assertEqual(pai_client.session_file_path(env), "/x/state/pai/session.json")
        self.assertEqual(pai_client.session_file_path(dict(env, PAI_SESSION_FILE="/y/s.json")), "/y/s.json")
        self.assertEqual(pai_client.session_file_path(dict(env, PAI_SESSION_FILE="/y/s.json"), "/z/o.json"),
                         "/z/o.json")
        relative = pai_client.session_file_path({"XDG_STATE_HOME": "state"})
        self.assertEqual(relative, os.path.join(os.path.expanduser("~"), ".local", "state", "pai", "session.json"))
        other = os.path.join(self.home, "elsewhere.json")
        self.save_session()
        os.rename(self.session, other)
        code, _, err = self.run_cli("--session", other, "me")
        self.assertEqual(code, 0, err)
        code, _, err = self.run_cli("history", PAI_SESSION_FILE=other)
        self.assertEqual(code, 0, err)
        self.assertEqual([payload["token"] for _, payload in self.sent], [self.TOKEN, self.TOKEN])

    def test_a_session_file_others_can_read_is_refused(self):
        self.save_session(mode=0o644)
        code, out, err = self.run_cli("me")
        self.assertEqual(code, 4)
        self.assertIn("readable by other users", err)
        self.assertNotIn(self.TOKEN, out + err)
        self.assertEqual(self.sent, [])

    def test_a_file_that_is_not_a_session_is_refused(self):
        for text in ("not json", "[]", '{"token": 1}'):
            with self.subTest(text=text):
                os.makedirs(os.path.dirname(self.session), exist_ok=True)
                with open(os.open(self.session, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as handle:
                    handle.write(text)
                code, _, err = self.run_cli("me")
                self.assertEqual(code, 4)
                self.assertIn("not a session file", err)
        self.assertEqual(self.sent, [])

    def test_without_a_token_it_says_how_to_get_one(self):
        code, _, err = self.run_cli("pay", "1.00")
        self.assertEqual(code, 3)
        self.assertIn("not logged in", err)
        self.assertIn("PAI_TOKEN", err)
        self.assertIn("--token-file", err)
        self.assertEqual(self.sent, [])

    def test_token_sources_in_order_token_file_then_env_then_session(self):
        self.save_session(token="from-session")
        token_file = self.file_with("token", "  from-file\n")
        self.run_cli("me", "--token-file", token_file, PAI_TOKEN="from-env")
        self.run_cli("me", PAI_TOKEN="from-env")
        self.run_cli("me")
        self.assertEqual([payload["token"] for _, payload in self.sent], ["from-file", "from-env", "from-session"])

    def test_a_token_file_others_can_read_is_refused(self):
        token_file = self.file_with("token", self.TOKEN, mode=0o644)
        code, out, err = self.run_cli("me", "--token-file", token_file)
        self.assertEqual(code, 4)
        self.assertIn("readable by other users", err)
        self.assertNotIn(self.TOKEN, out + err)
        self.assertEqual(self.sent, [])

    def test_a_token_file_that_is_empty_or_missing_is_refused_plainly(self):
        for path in (self.file_with("empty", " \n"), os.path.join(self.home, "missing")):
            with self.subTest(path=path):
                code, _, err = self.run_cli("me", "--token-file", path)
                self.assertEqual(code, 4)
                self.assertIn(path, err)
                self.assertNotIn("Traceback", err)
        self.assertEqual(self.sent, [])

    def test_a_token_file_may_be_a_pipe(self):
        read_end, write_end = os.pipe()
        os.write(write_end, b"from-pipe\n")
        os.close(write_end)
        self.addCleanup(os.close, read_end)
        code, _, err = self.run_cli("me", "--token-file", "/dev/fd/%d" % read_end)
        self.assertEqual(code, 0, err)
        self.assertEqual(self.sent, [("users.me", {"token": "from-pipe"})])

    def test_logout_deletes_the_session_it_used_and_only_that(self):
        self.save_session()
        code, _, err = self.run_cli("logout", PAI_TOKEN="from-env")
        self.assertEqual(code, 0, err)
        self.assertTrue(os.path.exists(self.session))
        code, _, err = self.run_cli("logout")
        self.assertEqual(code, 0, err)
        self.assertFalse(os.path.exists(self.session))
        self.assertEqual(self.sent, [("auth.logout", {"token": "from-env"}), ("auth.logout", {"token": self.TOKEN})])

    def test_a_verified_unauthenticated_forgets_the_session(self):
        self.save_session()
        self.answer = lambda request: error_reply(request, "UNAUTHENTICATED")
        code, _, err = self.run_cli("me")
        self.assertEqual(code, 22)
        self.assertTrue(err.startswith("pai_client: ") and err.count("\n") == 1, err)
        self.assertFalse(os.path.exists(self.session))

    def test_an_unverified_unauthenticated_leaves_the_session_alone(self):
        self.save_session()
        self.answer = lambda request: error_reply(request, "UNAUTHENTICATED", signed=False)
        code, out, _ = self.run_cli("--json", "me")
        self.assertEqual(code, 42)
        self.assertEqual(json.loads(out)["error"]["code"], ErrorCode.REPLY_UNVERIFIED)
        self.assertTrue(os.path.exists(self.session))

    def test_a_replay_error_reaches_the_terminal_with_executed(self):
        self.save_session()
        self.answer = lambda request: error_reply(request, "REPLAY")
        code, out, _ = self.run_cli("pay", "1.00", "--json")
        self.assertEqual(code, 14)
        reported = json.loads(out)["error"]
        self.assertEqual(reported["code"], ErrorCode.REPLAY)
        self.assertIn("executed once, result unseen", reported["message"])
        self.assertEqual(len(self.sent), 1)


class KeysTest(unittest.TestCase):
    def test_env_keys(self):
        secret = random_secret()
        keys = pai_client.load_keys({"PAI_MAC_KEYS": "a:%s, b:%s" % (secret, secret)})
        self.assertEqual([kid for kid, _ in keys], ["a", "b"])
        self.assertEqual(keys[0][1], base64.b64decode(secret))

    def test_dev_secrets_file(self):
        directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, directory)
        secret = random_secret()
        with open(os.path.join(directory, "dev-secrets.json"), "w") as handle:
            json.dump({"PAI_MAC_KEYS": "default:" + secret, "PAI_PASSWORD_PEPPER": random_secret(),
                       "PAI_LEDGER_KEY": random_secret()}, handle)
        keys = pai_client.load_keys({"PAI_DATA_DIR": directory})
        self.assertEqual(keys, [("default", base64.b64decode(secret))])

    def test_dev_secrets_found_in_a_folder_above_as_the_node_cli_finds_them(self):
        root = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, root)
        os.makedirs(os.path.join(root, "data"))
        os.makedirs(os.path.join(root, "clients", "python"))
        with open(os.path.join(root, "data", "dev-secrets.json"), "w") as handle:
            handle.write("{}")
        self.assertEqual(pai_client.find_data_dir({}, os.path.join(root, "clients", "python")),
                         os.path.join(root, "data"))
        self.assertEqual(pai_client.find_data_dir({"PAI_DATA_DIR": "/elsewhere"}, root), "/elsewhere")
        empty = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, empty)
        self.assertEqual(pai_client.find_data_dir({}, empty).endswith("data"), True)

    def test_keys_from_a_file(self):
        secret = random_secret()
        path = os.path.join(tempfile.mkdtemp(), "keys")
        self.addCleanup(shutil.rmtree, os.path.dirname(path))
        with open(path, "w") as handle:
            handle.write("filekey:%s\n" % secret)
        self.assertEqual(pai_client.load_keys({"PAI_MAC_KEYS_FILE": path}), [("filekey", base64.b64decode(secret))])
        with self.assertRaises(ValueError):
            pai_client.load_keys({"PAI_MAC_KEYS_FILE": path, "PAI_MAC_KEYS": "a:" + secret})

    def test_bad_keys(self):
        for raw in ("nocolon", ":" + random_secret(), "a:not*base64", "a:" + base64.b64encode(b"short").decode()):
            with self.subTest(raw=raw), self.assertRaises(ValueError):
                pai_client.parse_mac_keys(raw)


# --- end to end against the real service ------------------------------------------------------


# As for the jest suites: DATABASE_URL names a MySQL/MariaDB server on which every service started
# here gets a fresh database of its own (dropped afterwards); unset, each gets an SQLite file.
DATABASE_SERVER_URL = os.environ.get("DATABASE_URL") or None


def mysql_admin(server_url, sql):
    # Through node and the service's own mysql2: the standard library has no MySQL client.
    script = (
        "import { createConnection } from 'mysql2/promise';const u = new URL(process.argv[1]);"
        "const c = await createConnection({ host: u.hostname, port: Number(u.port || 3306),"
        " user: decodeURIComponent(u.username), password: decodeURIComponent(u.password) });"
        "try { await c.query(process.argv[2]); } finally { await c.end(); }"
    )
    subprocess.run(["node", "--input-type=module", "-e", script, server_url, sql], cwd=ROOT, check=True,
                   capture_output=True, timeout=60)


class Service:
    """``node dist/src/main.js`` on a free port (PAI_PORT=0; the bound port is read from its
    "listening on host:port" log line), in a temporary data directory, on a database of its own."""

    def __init__(self, env):
        self.data_dir = tempfile.mkdtemp(prefix="pai-py-e2e-")
        full_env = dict(os.environ)
        for name in list(full_env):
            if name.startswith("PAI_") or name in ("DATABASE_URL", "NODE_ENV"):
                del full_env[name]
        full_env.update({"PAI_HOST": "127.0.0.1", "PAI_PORT": "0", "PAI_DATA_DIR": self.data_dir,
                         "PAI_BCRYPT_COST": "10", "NO_COLOR": "1"})
        self.database = None
        if DATABASE_SERVER_URL is not None:
            import urllib.parse

            self.database = "pai_py_e2e_" + uuid.uuid4().hex[:12]
            mysql_admin(DATABASE_SERVER_URL,
                        "CREATE DATABASE `%s` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci" % self.database)
            url = urllib.parse.urlsplit(DATABASE_SERVER_URL)._replace(path="/" + self.database)
            full_env["DATABASE_URL"] = urllib.parse.urlunsplit(url)
        full_env.update(env)
        self.process = subprocess.Popen(
            ["node", MAIN_JS], cwd=ROOT, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        self.log = []
        ready = threading.Event()
        self.port = None

        def pump():
            for raw in self.process.stdout:
                line = raw.decode("utf-8", "replace")
                self.log.append(line)
                match = re.search(r"listening on [^\s]+:(\d+)", re.sub(r"\x1b\[[0-9;]*m", "", line))
                if match and self.port is None:
                    self.port = int(match.group(1))
                    ready.set()
            ready.set()

        threading.Thread(target=pump, daemon=True).start()
        ready.wait(90)
        if self.port is None:
            self.stop()
            raise RuntimeError("the service did not start:\n" + "".join(self.log[-30:]))

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.data_dir, ignore_errors=True)
        if self.database is not None:
            mysql_admin(DATABASE_SERVER_URL, "DROP DATABASE IF EXISTS `%s`" % self.database)
            self.database = None


def node_available():
    return os.path.exists(MAIN_JS) and shutil.which("node") is not None


def require_service(case):
    if not node_available():
        message = "dist/src/main.js (or node) is missing: run `npm run build`, or `npm run test:python` which builds"
        if E2E_REQUIRED:
            raise AssertionError(message)
        raise unittest.SkipTest(message)


def exchange(port, message):
    """Sends one message on a connection of its own; returns the packet that answers it."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        conn.sendall(encode_frame(message))
        decoder = FrameDecoder()
        while True:
            data = conn.recv(65536)
            if not data:
                raise AssertionError("connection closed without a reply")
            for packet in decoder.feed(data):
                if packet.get("id") == message["id"] and ("response" in packet or packet.get("err")):
                    return packet


class OnPathPeer:
    """Someone on the path between a client and the service, without the key: forwards every frame
    both ways, lets ``before_forwarding(message)`` act on each request first (send copies of it
    ahead, say) and ``replace_reply(packet)`` change what goes back. ``forwarded`` holds the
    requests passed on, ``replies`` the service's packets as they came."""

    def __init__(self, service_port, before_forwarding=None, replace_reply=None):
        self.service_port = service_port
        self.before_forwarding = before_forwarding or (lambda message: None)
        self.replace_reply = replace_reply or (lambda packet: packet)
        self.forwarded = []
        self.replies = []
        self.sockets = []
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.service_port), timeout=30)
            self.sockets += [conn, upstream]
            threading.Thread(target=self.pump, args=(conn, upstream, self.requests), daemon=True).start()
            threading.Thread(target=self.pump, args=(upstream, conn, self.answers), daemon=True).start()

    def requests(self, message):
        self.before_forwarding(message)
        self.forwarded.append(message)
        return message

    def answers(self, packet):
        self.replies.append(packet)
        return self.replace_reply(packet)

    @staticmethod
    def pump(source, sink, handle):
        decoder = FrameDecoder()
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                for message in decoder.feed(data):
                    sink.sendall(encode_frame(handle(message)))
        except OSError:
            pass
        finally:
            for conn in (source, sink):
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self.listener.close()
        for conn in self.sockets:
            conn.close()


class EndToEndTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        require_service(cls)
        cls.secret = random_secret()
        cls.service = Service({"PAI_MAC_KEYS": "default:%s,other:%s" % (cls.secret, random_secret()),
                               "PAI_PASSWORD_PEPPER": random_secret(),
                               "PAI_LEDGER_KEY": random_secret(),
                               # Sealed within a moment, so the receipt test waits little.
                               "PAI_LEDGER_SETTLE_MS": "100",
                               "PAI_LEDGER_SEAL_INTERVAL_MS": "50"})

    @classmethod
    def tearDownClass(cls):
        cls.service.stop()

    def client(self, **options):
        options.setdefault("kid", "default")
        options.setdefault("secret", self.secret)
        client = PaiClient("127.0.0.1", self.service.port, **options)
        self.addCleanup(client.close)
        return client

    def new_user(self, client):
        username = "py_" + uuid.uuid4().hex[:12]
        client.send("auth.register", {"username": username, "password": "correct horse 😀 battery"})
        login = client.send("auth.login", {"username": username, "password": "correct horse 😀 battery"})
        return username, login["token"]

    def test_receipt_verifies_against_the_digest(self):
        client = self.client()
        _, token = self.new_user(client)
        created = client.send("transactions.create", {"token": token, "amount": "7.25", "description": "café 😀"})
        transaction_id = created["transaction"]["id"]
        deadline = time.monotonic() + 30
        while True:  # bounded: sealed once it is older than the settle window
            try:
                digest = client.send("ledger.digest", {})
                receipt = client.send("transactions.receipt",
                                      {"token": token, "id": transaction_id, "digestBlock": digest["block"]})
                break
            except PaiServiceError as error:
                if error.code != ErrorCode.NOT_SEALED or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self.assertEqual(receipt["transaction"], created["transaction"])
        self.assertIsNone(pai_client.receipt_problem(receipt, digest))
        receipt["transaction"]["amount"] = "7.26"
        self.assertIsNotNone(pai_client.receipt_problem(receipt, digest))

    def test_ping(self):
        reply = self.client().send("system.ping", {})
        self.assertLess(abs(reply["serverTime"] - time.time() * 1000), 60_000)

    def test_register_login_pay_history_me_logout(self):
        client = self.client()
        username = "Py_" + uuid.uuid4().hex[:10]
        registered = client.send("auth.register", {"username": username, "password": "pässwörd 😀 long"})
        self.assertEqual(registered["username"], username)
        with self.assertRaises(PaiServiceError) as caught:
            client.send("auth.register", {"username": username.lower(), "password": "another password"})
        self.assertEqual(caught.exception.code, ErrorCode.USERNAME_TAKEN)
        with self.assertRaises(PaiServiceError) as caught:
            client.send("auth.login", {"username": username, "password": "wrong password"})
        self.assertEqual(caught.exception.code, ErrorCode.INVALID_CREDENTIALS)
        token = client.send("auth.login", {"username": username, "password": "pässwörd 😀 long"})["token"]

        description = "café 😀 𝄞 \"quoted\" \\"  # astral characters both ways through the framing
        first = client.send("transactions.create",
                            {"token": token, "amount": "12.50", "reference": "inv:1", "description": description})
        self.assertTrue(first["created"])
        self.assertEqual(first["transaction"]["description"], description)
        self.assertEqual(first["transaction"]["amount"], "12.50")
        again = client.send("transactions.create",
                            {"token": token, "amount": "12.50", "reference": "inv:1", "description": description})
        self.assertFalse(again["created"])
        self.assertEqual(again["transaction"]["id"], first["transaction"]["id"])
        with self.assertRaises(PaiServiceError) as caught:
            client.send("transactions.create", {"token": token, "amount": "13.00", "reference": "inv:1"})
        self.assertEqual(caught.exception.code, ErrorCode.IDEMPOTENCY_CONFLICT)
        client.send("transactions.create", {"token": token, "amount": "0.3"})

        page = client.send("transactions.list", {"token": token, "limit": 1})
        self.assertEqual([item["amount"] for item in page["items"]], ["0.30"])
        rest = client.send("transactions.list", {"token": token, "before": page["nextBefore"]})
        self.assertEqual([item["id"] for item in rest["items"]], [first["transaction"]["id"]])
        self.assertIsNone(rest["nextBefore"])

        me = client.send("users.me", {"token": token})
        self.assertEqual((me["transactionCount"], me["total"]), (2, "12.80"))

        with self.assertRaises(PaiServiceError) as caught:
            client.send("transactions.create", {"token": token, "amount": 12.5})
        self.assertEqual(caught.exception.code, ErrorCode.BAD_REQUEST)
        self.assertIn("payload.amount", [problem["field"] for problem in caught.exception.details["fields"]])

        self.assertEqual(client.send("auth.logout", {"token": token}), {"revoked": True})
        with self.assertRaises(PaiServiceError) as caught:
            client.send("users.me", {"token": token})
        self.assertEqual(caught.exception.code, ErrorCode.UNAUTHENTICATED)

    def test_second_key(self):
        # A client on another kid, with the wrong secret for it: the service answers MAC_INVALID
        # unsigned (the request's MAC did not verify), which proves nothing.
        client = self.client(kid="other", secret=random_secret())
        with self.assertRaises(PaiReplyUnverifiedError) as caught:
            client.send("system.ping", {})
        self.assertEqual(caught.exception.details["claimedCode"], ErrorCode.MAC_INVALID)

    def test_unknown_kid_gets_an_unsigned_reply_which_is_unverified(self):
        client = self.client(kid="nobody")
        with self.assertRaises(PaiReplyUnverifiedError) as caught:
            client.send("system.ping", {})
        self.assertEqual(caught.exception.details["claimedCode"], ErrorCode.UNKNOWN_KEY)

    def test_replay_of_a_signed_envelope_is_refused(self):
        client = self.client()
        envelope = client.sign("system.ping", {})
        client.send_signed("system.ping", envelope)
        with self.assertRaises(PaiServiceError) as caught:
            client.send_signed("system.ping", envelope)
        self.assertEqual(caught.exception.code, ErrorCode.REPLAY)

    def test_replay_of_a_captured_frame_on_a_new_connection_is_refused(self):
        _, token = self.new_user(self.client())
        envelope = sign_request(base64.b64decode(self.secret), "default", "transactions.create",
                                {"token": token, "amount": "5.00"})
        frame = encode_frame({"pattern": "transactions.create", "data": envelope, "id": "capture-1"})
        replies = []
        for _ in range(2):  # the same bytes, each time on a fresh connection
            with socket.create_connection(("127.0.0.1", self.service.port), timeout=30) as conn:
                conn.sendall(frame)
                decoder = FrameDecoder()
                packets = []
                while not packets:
                    data = conn.recv(65536)
                    self.assertTrue(data, "connection closed without a reply")
                    packets = decoder.feed(data)
                replies.append(packets[0])
        self.assertIs(replies[0]["response"]["ok"], True)
        refused = replies[1]["err"]
        self.assertTrue(reply_mac_matches(base64.b64decode(self.secret), "transactions.create", "default",
                                          envelope["nonce"], envelope["mac"], refused))
        self.assertEqual(refused["error"]["code"], ErrorCode.REPLAY)
        me = self.client().send("users.me", {"token": token})
        self.assertEqual(me["transactionCount"], 1)

    def test_tampered_requests_are_refused(self):
        # The service's refusal is unsigned (the MAC did not verify): the client reports it as
        # unverified, claiming MAC_INVALID, and it runs nothing.
        client = self.client()
        _, token = self.new_user(client)
        envelope = client.sign("transactions.create", {"token": token, "amount": "1.00"})
        tampered = dict(envelope, payload=dict(envelope["payload"], amount="1000.00"))
        with self.assertRaises(PaiReplyUnverifiedError) as caught:
            client.send_signed("transactions.create", tampered)
        self.assertEqual(caught.exception.details["claimedCode"], ErrorCode.MAC_INVALID)
        # Moved to another pattern.
        envelope = client.sign("users.me", {"token": token})
        with self.assertRaises(PaiReplyUnverifiedError) as caught:
            client.send_signed("auth.logout", envelope)
        self.assertEqual(caught.exception.details["claimedCode"], ErrorCode.MAC_INVALID)
        # A flipped MAC digit.
        envelope = client.sign("system.ping", {})
        flipped = envelope["mac"][:-1] + ("0" if envelope["mac"][-1] != "0" else "1")
        with self.assertRaises(PaiReplyUnverifiedError) as caught:
            client.send_signed("system.ping", dict(envelope, mac=flipped))
        self.assertEqual(caught.exception.details["claimedCode"], ErrorCode.MAC_INVALID)
        self.assertEqual(client.send("users.me", {"token": token})["transactionCount"], 0)

    def through(self, peer, **options):
        self.addCleanup(peer.close)
        options.setdefault("kid", "default")
        options.setdefault("secret", self.secret)
        client = PaiClient("127.0.0.1", peer.port, **options)
        self.addCleanup(client.close)
        return client

    def copy_sent_first(self, tamper=None):
        """A ``before_forwarding`` that sends a copy of the first create ahead of it, exactly as
        it is or changed by ``tamper``; the copy and its reply land in the returned list."""
        copies = []

        def before_forwarding(message):
            if message["pattern"] == "transactions.create" and not copies:
                copy = dict(message, id="copy-" + message["id"])
                if tamper is not None:
                    copy["data"] = tamper(copy["data"])
                copies.append((copy, exchange(self.service.port, copy)))

        return copies, before_forwarding

    def creates(self, peer):
        return [message for message in peer.forwarded if message["pattern"] == "transactions.create"]

    def reply_to(self, peer, message):
        return next(packet for packet in peer.replies
                    if packet.get("id") == message["id"] and ("response" in packet or packet.get("err")))

    def test_a_create_with_a_reference_copied_ahead_is_answered_with_its_result(self):
        _, token = self.new_user(self.client())
        copies, before_forwarding = self.copy_sent_first()
        peer = OnPathPeer(self.service.port, before_forwarding)
        payload = {"token": token, "amount": "7.25", "reference": "copied:1", "description": "copied ahead"}
        reply = self.through(peer).send("transactions.create", payload)

        [(copy, copy_reply)] = copies
        first, again = self.creates(peer)
        # The copy was the client's own signed message, and it ran first.
        self.assertEqual(copy["data"], first["data"])
        self.assertTrue(copy_reply["response"]["payload"]["created"])
        # The client's message got a REPLAY signed for it, and the client sent the request
        # again as a new message (fresh nonce and ts), whose reply is the copy's result.
        refused = self.reply_to(peer, first)["err"]
        self.assertEqual(refused["error"]["code"], ErrorCode.REPLAY)
        self.assertTrue(reply_mac_matches(base64.b64decode(self.secret), "transactions.create", "default",
                                          first["data"]["nonce"], first["data"]["mac"], refused))
        self.assertNotEqual(again["data"]["nonce"], first["data"]["nonce"])
        self.assertEqual(again["data"]["payload"], payload)
        self.assertIs(reply["created"], False)
        self.assertEqual(reply["transaction"], copy_reply["response"]["payload"]["transaction"])
        self.assertEqual(self.client().send("users.me", {"token": token})["transactionCount"], 1)

    def test_a_create_without_a_reference_copied_ahead_is_reported_as_executed(self):
        _, token = self.new_user(self.client())
        copies, before_forwarding = self.copy_sent_first()
        peer = OnPathPeer(self.service.port, before_forwarding)
        with self.assertRaises(pai_client.PaiReplayError) as caught:
            self.through(peer).send("transactions.create", {"token": token, "amount": "7.25"})
        self.assertIs(caught.exception.details["executed"], True)
        self.assertIn("executed once, result unseen", caught.exception.message)
        [(copy, copy_reply)] = copies
        self.assertTrue(copy_reply["response"]["payload"]["created"])
        self.assertEqual([message["data"] for message in self.creates(peer)], [copy["data"]])  # not sent again
        self.assertEqual(self.client().send("users.me", {"token": token})["transactionCount"], 1)

    def test_a_tampered_copy_ahead_does_not_spoil_the_genuine_request(self):
        _, token = self.new_user(self.client())
        copies, before_forwarding = self.copy_sent_first(
            tamper=lambda data: dict(data, payload=dict(data["payload"], amount="999.00"))
        )
        peer = OnPathPeer(self.service.port, before_forwarding)
        reply = self.through(peer).send("transactions.create", {"token": token, "amount": "7.25"})
        [(_, copy_reply)] = copies
        self.assertIsNone(copy_reply["err"]["mac"])  # refused unsigned, its nonce not recorded
        self.assertEqual(copy_reply["err"]["error"]["code"], ErrorCode.MAC_INVALID)
        self.assertIs(reply["created"], True)
        self.assertEqual(reply["transaction"]["amount"], "7.25")
        self.assertEqual(len(self.creates(peer)), 1)

    def test_a_refusal_put_in_place_of_the_reply_is_unverified_and_the_request_ran(self):
        _, token = self.new_user(self.client())
        copies, before_forwarding = self.copy_sent_first(
            tamper=lambda data: dict(data, payload=dict(data["payload"], amount="999.00"))
        )

        def replace_reply(packet):
            # The service's own unsigned MAC_INVALID, got for the tampered copy, in place of the
            # genuine reply to the create.
            if copies and packet.get("id") == copies[0][0]["id"][len("copy-"):] and "response" in packet:
                return dict(copies[0][1], id=packet["id"])
            return packet

        peer = OnPathPeer(self.service.port, before_forwarding, replace_reply)
        with self.assertRaises(PaiReplyUnverifiedError) as caught:
            self.through(peer).send("transactions.create", {"token": token, "amount": "7.25"})
        self.assertEqual(caught.exception.details["claimedCode"], ErrorCode.MAC_INVALID)
        self.assertIn("may or may not have run", caught.exception.message)
        self.assertTrue(self.reply_to(peer, self.creates(peer)[0])["response"]["payload"]["created"])
        self.assertEqual(len(self.creates(peer)), 1)  # not sent again
        self.assertEqual(self.client().send("users.me", {"token": token})["transactionCount"], 1)

    def test_service_computes_the_same_canonical_form(self):
        # The service checks the MAC over its own JCS of what it parsed: astral keys, escapes
        # and numbers in ECMAScript form must agree or this is MAC_INVALID (the payload is then
        # refused as BAD_REQUEST for its unknown fields, which comes only after the MAC passed).
        client = self.client()
        payload = {"\uff01": 1, "😀": -0.0, "a\u2028\x01\x7f": [1e21, 1e-7, 2**53, 0.1, "\"\\/"], "\ue000": {"z": None}}
        with self.assertRaises(PaiServiceError) as caught:
            client.send("system.ping", payload)
        self.assertEqual(caught.exception.code, ErrorCode.BAD_REQUEST)
        self.assertEqual(caught.exception.details["fields"][0]["field"][:8], "payload.")

    def test_many_concurrent_requests_on_one_connection(self):
        client = self.client(timeout=60)
        _, token = self.new_user(client)
        opened = []
        original = client._open_socket
        client._open_socket = lambda: opened.append(1) or original()
        client.close()  # the next request opens the one connection under test
        results = {}
        errors = []

        def pay(n):
            try:
                reply = client.send("transactions.create",
                                    {"token": token, "amount": "%d.%02d" % (n, n), "reference": "ref-%d" % n})
                results[n] = reply["transaction"]
            except Exception as error:  # noqa: BLE001 - reported below
                errors.append(error)

        threads = [threading.Thread(target=pay, args=(n,)) for n in range(1, 41)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(90)
        self.assertEqual(errors, [])
        self.assertEqual(len(opened), 1)
        for n, transaction in results.items():
            self.assertEqual(transaction["reference"], "ref-%d" % n)
            self.assertEqual(transaction["amount"], "%d.%02d" % (n, n))
        self.assertEqual(len(results), 40)
        self.assertEqual(client.send("users.me", {"token": token})["transactionCount"], 40)

    def test_stale_clock_is_corrected_once(self):
        skew = -3_600_000  # this client's clock is an hour behind
        client = self.client(now=lambda: time.time() * 1000 + skew)
        stale = client.sign("system.ping", {})
        with self.assertRaises(PaiServiceError) as caught:
            client.send_signed("system.ping", stale)
        self.assertEqual(caught.exception.code, ErrorCode.STALE)
        self.assertIsInstance(caught.exception.details["serverTime"], int)
        reply = client.send("system.ping", {})
        self.assertAlmostEqual(client.clock_offset_ms, -skew, delta=30_000)
        self.assertLess(abs(reply["serverTime"] - time.time() * 1000), 60_000)

    def test_cli(self):
        # Every command of the CLI against the service, the token never on a command line.
        home = tempfile.mkdtemp(prefix="pai-py-cli-")
        self.addCleanup(shutil.rmtree, home, True)
        session = os.path.join(home, "state", "pai", "session.json")
        env = {name: value for name, value in os.environ.items() if not name.startswith("PAI_")}
        env.update(PAI_MAC_KEYS="default:" + self.secret, PAI_PORT=str(self.service.port), PAI_HOST="127.0.0.1",
                   PYTHONPATH=HERE, HOME=home, XDG_STATE_HOME=os.path.join(home, "state"))
        username = "cli_" + uuid.uuid4().hex[:10]

        def run(*args, stdin="", **extra_env):
            return subprocess.run([sys.executable, "-m", "pai_client", *args], input=stdin.encode(),
                                  capture_output=True, env=dict(env, **extra_env), timeout=60)

        ping = run("ping")
        self.assertEqual(ping.returncode, 0, ping.stderr)
        self.assertIn("serverTime", json.loads(ping.stdout))
        registered = run("register", username, stdin="cli password 1\n")
        self.assertEqual(registered.returncode, 0, registered.stderr)
        self.assertEqual(json.loads(registered.stdout)["username"], username)

        login = run("login", username, stdin="cli password 1\n")
        self.assertEqual(login.returncode, 0, login.stderr)
        shown = json.loads(login.stdout)
        self.assertEqual(set(shown), {"userId", "username", "expiresAt", "sessionFile"})
        self.assertEqual(shown["sessionFile"], session)
        self.assertEqual(os.stat(session).st_mode & 0o777, 0o600)
        with open(session, encoding="utf-8") as handle:
            token = json.load(handle)["token"]
        self.assertNotIn(token.encode(), login.stdout + login.stderr)

        paid = run("pay", "3.10", "--desc", "ünï 😀", "--ref", "cli:1")
        self.assertEqual(paid.returncode, 0, paid.stderr)
        self.assertIs(json.loads(paid.stdout)["created"], True)
        self.assertEqual(json.loads(paid.stdout)["transaction"]["description"], "ünï 😀")
        again = run("pay", "3.10", "--description", "ünï 😀", "--reference", "cli:1")
        self.assertEqual(again.returncode, 0, again.stderr)
        self.assertIs(json.loads(again.stdout)["created"], False)
        history = run("history", "--limit", "5", PAI_TOKEN=token)
        self.assertEqual(history.returncode, 0, history.stderr)
        self.assertEqual([item["amount"] for item in json.loads(history.stdout)["items"]], ["3.10"])
        token_file = os.path.join(home, "token")
        with open(os.open(token_file, os.O_WRONLY | os.O_CREAT, 0o600), "w") as handle:
            handle.write(token + "\n")
        me = run("me", "--token-file", token_file)
        self.assertEqual(me.returncode, 0, me.stderr)
        self.assertEqual((json.loads(me.stdout)["username"], json.loads(me.stdout)["total"]), (username, "3.10"))

        refused = run("me", "--token=" + token)
        self.assertEqual(refused.returncode, 2)
        self.assertIn(b"--token is refused", refused.stderr)
        self.assertNotIn(token.encode(), refused.stdout + refused.stderr)

        # A second login, its token shown on request, replaces the first and revokes it.
        second = run("login", username, "--show-token", stdin="cli password 1\n")
        self.assertEqual(second.returncode, 0, second.stderr)
        second_token = json.loads(second.stdout)["token"]
        self.assertNotEqual(second_token, token)
        stale = run("me", "--json", PAI_TOKEN=token)
        self.assertEqual(stale.returncode, 22)
        self.assertEqual(json.loads(stale.stdout)["error"]["code"], ErrorCode.UNAUTHENTICATED)

        logout = run("logout")
        self.assertEqual(logout.returncode, 0, logout.stderr)
        self.assertEqual(json.loads(logout.stdout), {"revoked": True})
        self.assertFalse(os.path.exists(session))
        after = run("me", PAI_TOKEN=second_token)
        self.assertEqual(after.returncode, 22)
        self.assertEqual(after.stderr.count(b"\n"), 1)
        not_logged_in = run("me")
        self.assertEqual(not_logged_in.returncode, 3)
        self.assertIn(b"not logged in", not_logged_in.stderr)


class TlsEndToEndTest(unittest.TestCase):
    """TLS with a certificate made for this run by the openssl CLI; the service runs on its
    generated development secrets, which the CLI then reads from PAI_DATA_DIR."""

    @classmethod
    def setUpClass(cls):
        require_service(cls)
        if shutil.which("openssl") is None:
            raise unittest.SkipTest("the openssl command is missing")
        cls.cert_dir = tempfile.mkdtemp(prefix="pai-py-tls-")
        cls.cert = os.path.join(cls.cert_dir, "cert.pem")
        key = os.path.join(cls.cert_dir, "key.pem")
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", key, "-out", cls.cert, "-days", "1", "-subj", "/CN=127.0.0.1",
             "-addext", "subjectAltName=IP:127.0.0.1"],
            check=True, capture_output=True,
        )
        cls.service = Service({"PAI_TLS_CERT_FILE": cls.cert, "PAI_TLS_KEY_FILE": key})

    @classmethod
    def tearDownClass(cls):
        cls.service.stop()
        shutil.rmtree(cls.cert_dir, ignore_errors=True)

    def keys(self):
        return pai_client.load_keys({"PAI_DATA_DIR": self.service.data_dir})

    def test_ping_over_tls_with_the_ca_file(self):
        kid, secret = self.keys()[0]
        with PaiClient("127.0.0.1", self.service.port, kid=kid, secret=secret, ca_file=self.cert) as client:
            self.assertIn("serverTime", client.send("system.ping", {}))
            results = []
            threads = [threading.Thread(target=lambda: results.append(client.send("system.ping", {})))
                       for _ in range(10)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
            self.assertEqual(len(results), 10)

    def test_an_unknown_certificate_is_refused(self):
        kid, secret = self.keys()[0]
        with PaiClient("127.0.0.1", self.service.port, kid=kid, secret=secret,
                       ssl_context=__import__("ssl").create_default_context()) as client:
            with self.assertRaises(PaiConnectionError):
                client.send("system.ping", {})

    def test_cli_over_tls_with_dev_secrets(self):
        env = {name: value for name, value in os.environ.items() if not name.startswith("PAI_")}
        env.update(PAI_DATA_DIR=self.service.data_dir, PYTHONPATH=HERE)
        ping = subprocess.run(
            [sys.executable, "-m", "pai_client", "--port", str(self.service.port), "--ca", self.cert, "ping"],
            capture_output=True, env=env, timeout=60,
        )
        self.assertEqual(ping.returncode, 0, ping.stderr)
        self.assertIn("serverTime", json.loads(ping.stdout))


if __name__ == "__main__":
    unittest.main()
