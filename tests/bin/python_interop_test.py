#!/usr/bin/python3
"""Interop: a Python peer written only from docs/wire-protocol.md talks to a zmqkit worker.

Python (pyzmq + msgpack) sends enveloped orders on a PUSH socket; a zmqkit worker process
(zmqkit-demo worker) charges them and pushes enveloped results back; Python decodes those and
checks, by message id, that every order came back once with its correlation and causation ids.
Also checks the golden vectors of the document against Python's own msgpack encoding.
Exit 77 (skipped) when pyzmq or msgpack is missing.
"""
import os
import secrets
import subprocess
import sys
import tempfile
import time

try:
    import msgpack
    import zmq
except ImportError as e:  # pragma: no cover
    print(f"SKIP: {e} (install python3-zmq python3-msgpack)")
    sys.exit(77)

DEMO = sys.argv[1]
COUNT = 2000


def new_id():
    """A UUIDv7-layout id, written from section 3 of the document."""
    ms = time.time_ns() // 1_000_000
    rand = bytearray(secrets.token_bytes(10))
    rand[0] = 0x70 | (rand[0] & 0x0F)  # version 7
    rand[2] = 0x80 | (rand[2] & 0x3F)  # variant 10
    return ms.to_bytes(6, "big") + bytes(rand)


def encode_header(fields):
    # Section 2: a map with integer keys, key 0 (version) first, ascending keys.
    return msgpack.packb(dict(sorted(fields.items())), use_bin_type=True)


def decode_header(frame):
    h = msgpack.unpackb(frame, raw=False, strict_map_key=False)
    return check_header(h)


def split_envelope(frames):
    """Section 1: [header][body], or [header+body] where the body follows the header map."""
    if len(frames) == 2:
        return decode_header(frames[0]), frames[1]
    assert len(frames) == 1, f"1 or 2 frames, got {len(frames)}"
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=False)
    unpacker.feed(frames[0])
    h = unpacker.unpack()
    return check_header(h), frames[0][unpacker.tell():]


def check_header(h):
    assert isinstance(h, dict), "header is a map"
    assert next(iter(h)) == 0 and h[0] == 1, "version key first, version 1"
    assert len(h[1]) == 16
    h.setdefault(2, h[1])  # absent correlation id == message id
    return h


def check_golden_vectors():
    ts = 1732406400123456789
    ident = bytes.fromhex("0193f1a2b3c47d5e8f0123456789abcd")
    minimal = encode_header({0: 1, 1: ident, 4: ts})
    assert minimal.hex() == "83000101c4100193f1a2b3c47d5e8f0123456789abcd04cf180abe7135f8cd15", minimal.hex()


def main():
    check_golden_vectors()
    ctx = zmq.Context()
    tmp = tempfile.mkdtemp(prefix="zmqkit-py-")
    jobs = f"ipc://{tmp}/jobs.sock"
    results = f"ipc://{tmp}/results.sock"
    push = ctx.socket(zmq.PUSH)
    push.linger = 0
    push.bind(jobs)
    pull = ctx.socket(zmq.PULL)
    pull.linger = 0
    pull.bind(results)
    worker = subprocess.Popen([DEMO, "worker", "--input", ">" + jobs, "--output", ">" + results,
                               "--name", "py-peer"])
    try:
        # The worker announces itself once connected (type worker.ready): readiness, no sleep.
        if not pull.poll(10000):
            print("FAIL: worker did not become ready")
            return 1
        ready_header, ready_body = split_envelope(pull.recv_multipart())
        assert ready_header[5] == "worker.ready"
        assert ready_body == b"py-peer"

        sent = {}
        for n in range(1, COUNT + 1):
            ident = new_id()
            header = encode_header({0: 1, 1: ident, 4: time.time_ns(), 5: "order.placed",
                                    9: "application/msgpack", 11: {"origin": b"python"}})
            body = msgpack.packb({"number": n, "customer": f"py-{n}", "amount_cents": n},
                                 use_bin_type=True)
            # Both layouts of section 1: even orders in one frame, odd ones in two.
            push.send_multipart([header + body] if n % 2 == 0 else [header, body])
            sent[ident] = n
        # A malformed message in the middle: counted and skipped by the worker, not fatal.
        push.send_multipart([b"not an envelope", b"x"])

        seen = set()
        while len(seen) < COUNT:
            if not pull.poll(10000):
                print(f"FAIL: only {len(seen)} of {COUNT} results")
                return 1
            h, body_bytes = split_envelope(pull.recv_multipart())
            if h.get(5) != "order.charged":
                continue
            corr, cause = h[2], h.get(3)
            assert corr in sent, "correlation id is one of ours"
            assert cause == corr, "causation = the order's id"
            assert h[1] != corr, "the result has its own id"
            assert h.get(9) == "application/msgpack"
            body = msgpack.unpackb(body_bytes, raw=False)
            assert body["order_number"] == sent[corr], body
            assert corr not in seen, "no duplicates"
            seen.add(corr)
        print(f"{len(seen)} passed, 0 failed")
        return 0
    finally:
        worker.terminate()
        try:
            worker.wait(10)
        except subprocess.TimeoutExpired:
            worker.kill()
        for f in ("jobs.sock", "results.sock"):
            try:
                os.unlink(os.path.join(tmp, f))
            except OSError:
                pass
        os.rmdir(tmp)


if __name__ == "__main__":
    sys.exit(main())
