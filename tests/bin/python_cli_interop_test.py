#!/usr/bin/python3
"""Interop: a Python peer written only from docs/wire-protocol.md, against zmqkit-send/-recv.

1. Python (pyzmq + msgpack) sends enveloped messages, in both layouts of section 1, to
   `zmqkit-recv -f json`, which must print every one with the ids, type and headers Python set.
2. `zmqkit-send` with --type/--correlation-id/--header sends lines to a Python PULL socket,
   which decodes every envelope from the document alone and checks the fields.
Exit 77 (skipped) when pyzmq or msgpack is missing.
"""
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
import uuid

try:
    import msgpack
    import zmq
except ImportError as e:  # pragma: no cover
    print(f"SKIP: {e} (install python3-zmq python3-msgpack)")
    sys.exit(77)

SEND, RECV = sys.argv[1], sys.argv[2]
COUNT = 1000


def new_id():
    ms = time.time_ns() // 1_000_000
    rand = bytearray(secrets.token_bytes(10))
    rand[0] = 0x70 | (rand[0] & 0x0F)
    rand[2] = 0x80 | (rand[2] & 0x3F)
    return ms.to_bytes(6, "big") + bytes(rand)


def split_envelope(frames):
    if len(frames) == 2:
        return msgpack.unpackb(frames[0], raw=False, strict_map_key=False), frames[1]
    assert len(frames) == 1, f"1 or 2 frames, got {len(frames)}"
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=False)
    unpacker.feed(frames[0])
    header = unpacker.unpack()
    return header, frames[0][unpacker.tell():]


def python_to_recv(ctx, tmp):
    endpoint = f"ipc://{tmp}/to-recv.sock"
    push = ctx.socket(zmq.PUSH)
    push.linger = 2000
    push.bind(endpoint)
    recv = subprocess.Popen([RECV, "--pull", ">" + endpoint, "-c", str(COUNT), "-f", "json",
                             "--timeout", "30s"], stdout=subprocess.PIPE)
    sent = []
    for n in range(COUNT):
        ident = new_id()
        header = msgpack.packb({0: 1, 1: ident, 4: time.time_ns(), 5: "py.event", 6: 2,
                                11: {"origin": b"python"}}, use_bin_type=True)
        body = f"line {n}".encode()
        push.send_multipart([header + body] if n % 2 else [header, body])
        sent.append((str(uuid.UUID(bytes=ident)), f"line {n}"))
    out, _ = recv.communicate(timeout=60)
    assert recv.returncode == 0, f"zmqkit-recv exited {recv.returncode}"
    lines = out.decode().splitlines()
    assert len(lines) == COUNT, f"{len(lines)} lines"
    for (ident, body), line in zip(sent, lines):
        doc = json.loads(line)
        assert doc["id"] == ident, (doc["id"], ident)
        assert doc["correlation_id"] == ident, "absent correlation id == message id"
        assert doc["type"] == "py.event" and doc["attempt"] == 2, doc
        assert doc["body"] == body, doc
        assert doc["headers"]["origin"] == "python", doc
    push.close()


def send_to_python(ctx, tmp):
    endpoint = f"ipc://{tmp}/from-send.sock"
    pull = ctx.socket(zmq.PULL)
    pull.linger = 0
    pull.bind(endpoint)
    correlation = str(uuid.uuid4())
    data = "".join(f"payload {n}\n" for n in range(COUNT)).encode()
    subprocess.run([SEND, "--push", ">" + endpoint, "--type", "cli.event", "--correlation-id",
                    correlation, "--header", "tenant=acme"], input=data, check=True, timeout=60)
    seen = set()
    for n in range(COUNT):
        if not pull.poll(10000):
            raise AssertionError(f"only {n} messages from zmqkit-send")
        header, body = split_envelope(pull.recv_multipart())
        assert next(iter(header)) == 0 and header[0] == 1, "version key first"
        assert len(header[1]) == 16 and header[1] not in seen
        seen.add(header[1])
        assert str(uuid.UUID(bytes=header[2])) == correlation, header
        assert header[5] == "cli.event"
        assert header[11]["tenant"] == b"acme"
        assert body == f"payload {n}".encode(), body


def main():
    ctx = zmq.Context()
    tmp = tempfile.mkdtemp(prefix="zmqkit-py-cli-")
    try:
        python_to_recv(ctx, tmp)
        send_to_python(ctx, tmp)
    finally:
        for f in os.listdir(tmp):
            os.unlink(os.path.join(tmp, f))
        os.rmdir(tmp)
    print("2 passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
