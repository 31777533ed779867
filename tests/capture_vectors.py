#!/usr/bin/env python3
"""Capture golden ZMTP byte vectors from real pyzmq (libzmq) peers into tests/vectors/ (or --out DIR).

A raw TCP socket plays the other side: it sends a ZMTP 3.x greeting and READY, then records the
exact bytes pyzmq puts on the wire. Rerun with `python3 tests/capture_vectors.py` after a pyzmq
upgrade; tests/golden_vectors.rs checks the committed files and our codec against each other.
"""
import argparse
import os
import socket
import struct
import time

import zmq

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vectors")


def greeting(minor=1):
    return b"\xff" + b"\x00" * 8 + b"\x7f" + bytes([3, minor]) + b"NULL" + b"\x00" * 16 + b"\x00" * 32


def command(name, data):
    body = bytes([len(name)]) + name + data
    if len(body) <= 255:
        return bytes([0x04, len(body)]) + body
    return bytes([0x06]) + struct.pack(">Q", len(body)) + body


def ready(socket_type, identity=None):
    props = b"\x0bSocket-Type" + struct.pack(">I", len(socket_type)) + socket_type
    if identity is not None:
        props += b"\x08Identity" + struct.pack(">I", len(identity)) + identity
    return command(b"READY", props)


def recv_exact(conn, n):
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise EOFError("peer closed after %d of %d bytes" % (len(data), n))
        data += chunk
    return data


def recv_frame(conn):
    """One raw frame, header included."""
    head = recv_exact(conn, 2)
    if head[0] & 0x02:
        rest = recv_exact(conn, 7)
        size = struct.unpack(">Q", head[1:] + rest)[0]
        head += rest
    else:
        size = head[1]
    return head + recv_exact(conn, size)


def frame_is_command(frame):
    return bool(frame[0] & 0x04)


def raw_server():
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    srv.settimeout(5)
    return srv, "tcp://127.0.0.1:%d" % srv.getsockname()[1]


def handshake(srv, our_type, minor=1):
    """Accepts pyzmq, sends our greeting and READY, returns (conn, pyzmq greeting + READY)."""
    conn, _ = srv.accept()
    conn.settimeout(5)
    conn.sendall(greeting(minor) + ready(our_type, b"" if our_type in (b"ROUTER", b"DEALER") else None))
    peer = recv_exact(conn, 64)
    peer += recv_frame(conn)
    return conn, peer


def save(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)


def capture_handshakes(ctx):
    pairs = {b"DEALER": b"ROUTER", b"ROUTER": b"DEALER", b"PUB": b"SUB", b"SUB": b"PUB"}
    for theirs, ours in pairs.items():
        for identity in (None, b"abc"):
            srv, endpoint = raw_server()
            sock = ctx.socket(getattr(zmq, theirs.decode()))
            if identity is not None:
                sock.setsockopt(zmq.ROUTING_ID, identity)
            sock.connect(endpoint)
            conn, peer = handshake(srv, ours)
            suffix = "_id" if identity is not None else ""
            save("handshake_%s%s.bin" % (theirs.decode().lower(), suffix), peer)
            sock.close(0)
            conn.close()
            srv.close()


def capture_frames(ctx):
    srv, endpoint = raw_server()
    dealer = ctx.socket(zmq.DEALER)
    dealer.connect(endpoint)
    conn, _ = handshake(srv, b"ROUTER")
    for size in (0, 1, 255, 256, 65536):
        dealer.send(bytes(i % 251 for i in range(size)))
        save("frame_%d.bin" % size, recv_frame(conn))
    dealer.send_multipart([b"", b"\x02", b"req-1", b"svc", b"x" * 300])
    parts = b""
    while True:
        frame = recv_frame(conn)
        parts += frame
        if not frame[0] & 0x01:
            break
    save("multipart.bin", parts)
    dealer.close(0)
    conn.close()
    srv.close()


def capture_subscriptions(ctx):
    for minor, name in ((1, "command"), (0, "message")):
        srv, endpoint = raw_server()
        sub = ctx.socket(zmq.SUB)
        sub.connect(endpoint)
        conn, _ = handshake(srv, b"PUB", minor)
        sub.setsockopt(zmq.SUBSCRIBE, b"topic")
        save("subscribe_%s.bin" % name, recv_frame(conn))
        sub.setsockopt(zmq.UNSUBSCRIBE, b"topic")
        save("cancel_%s.bin" % name, recv_frame(conn))
        sub.close(0)
        conn.close()
        srv.close()


def capture_heartbeats(ctx):
    srv, endpoint = raw_server()
    dealer = ctx.socket(zmq.DEALER)
    dealer.setsockopt(zmq.HEARTBEAT_IVL, 100)
    dealer.setsockopt(zmq.HEARTBEAT_TTL, 2500)
    dealer.setsockopt(zmq.HEARTBEAT_TIMEOUT, 5000)
    dealer.connect(endpoint)
    conn, _ = handshake(srv, b"ROUTER")
    ping = recv_frame(conn)
    assert frame_is_command(ping), ping
    save("ping.bin", ping)
    conn.sendall(command(b"PING", struct.pack(">H", 0) + b"0123456789abcdef"))
    deadline = time.time() + 5
    while time.time() < deadline:
        frame = recv_frame(conn)
        if frame[2:7] == b"\x04PONG":
            save("pong.bin", frame)
            break
    else:
        raise RuntimeError("no PONG from pyzmq")
    dealer.close(0)
    conn.close()
    srv.close()


def main():
    global OUT
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=OUT, help="directory for the .bin files")
    OUT = parser.parse_args().out
    os.makedirs(OUT, exist_ok=True)
    ctx = zmq.Context()
    capture_handshakes(ctx)
    capture_frames(ctx)
    capture_subscriptions(ctx)
    capture_heartbeats(ctx)
    ctx.term()
    with open(os.path.join(OUT, "SOURCE"), "w") as f:
        f.write("captured by tests/capture_vectors.py from pyzmq %s (libzmq %s)\n" % (zmq.__version__, zmq.zmq_version()))
    print("vectors written to", OUT)


if __name__ == "__main__":
    main()
