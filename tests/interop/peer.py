#!/usr/bin/env python3
"""Real pyzmq (libzmq) peers for the interop tests: `peer.py SCENARIO ENDPOINT [ARGS...]`.

Each scenario plays one side against ezarch, checks what it receives, prints `OK ...` and exits 0;
anything unexpected raises (exit 1). Every receive has a timeout, so a scenario cannot hang.
"""
import os
import socket
import struct
import sys
import time

import zmq
import zmq.utils.monitor

TIMEOUT_MS = 10000


def sock(ctx, kind, **opts):
    s = ctx.socket(kind)
    s.setsockopt(zmq.LINGER, 2000)
    s.setsockopt(zmq.RCVTIMEO, TIMEOUT_MS)
    s.setsockopt(zmq.SNDTIMEO, TIMEOUT_MS)
    for name, value in opts.items():
        s.setsockopt(getattr(zmq, name), value)
    return s


def expect(cond, what):
    if not cond:
        raise AssertionError(what)


def payload(size, seed=0):
    return bytes((i + seed) % 251 for i in range(size))


# ---- DEALER against our ROUTER ----

def dealer_echo(ctx, endpoint, identity="", count="10", sizes="0,1,255,256,65536"):
    """Sends `count` rounds of messages of each size; expects each back unchanged, in order."""
    opts = {"ROUTING_ID": identity.encode()} if identity else {}
    d = sock(ctx, zmq.DEALER, **opts)
    d.connect(endpoint)
    sizes = [int(s) for s in sizes.split(",")]
    for i in range(int(count)):
        for size in sizes:
            msg = [b"hdr-%d" % i, payload(size, i)]
            d.send_multipart(msg)
            got = d.recv_multipart()
            expect(got == msg, "echo mismatch at round %d size %d: %r" % (i, size, [len(f) for f in got]))
    print("OK dealer_echo")


def dealer_stream(ctx, endpoint, count="100000"):
    """Sends `count` numbered messages, then reads `count` echoes and checks their order."""
    d = sock(ctx, zmq.DEALER, SNDHWM=0, RCVHWM=0)
    d.connect(endpoint)
    n = int(count)
    for i in range(n):
        d.send(struct.pack(">I", i))
    for i in range(n):
        got = struct.unpack(">I", d.recv())[0]
        expect(got == i, "out of order: expected %d got %d" % (i, got))
    print("OK dealer_stream", n)


def dealer_metadata(ctx, endpoint):
    """ZMQ_METADATA X-hello:world; expects our ROUTER to echo the value it saw."""
    d = sock(ctx, zmq.DEALER)
    d.setsockopt(zmq.METADATA, b"X-hello:world")
    d.connect(endpoint)
    d.send(b"what metadata?")
    got = d.recv_multipart()
    expect(got == [b"world"], "metadata seen: %r" % got)
    print("OK dealer_metadata")


def dealer_identity_report(ctx, endpoint, count="3"):
    """Several anonymous DEALERs each ask our ROUTER for the identity it gave them."""
    seen = set()
    for _ in range(int(count)):
        d = sock(ctx, zmq.DEALER)
        d.connect(endpoint)
        d.send(b"who am i")
        ident = d.recv()
        expect(len(ident) == 5 and ident[0] == 0, "generated identity %r" % ident)
        seen.add(ident)
        d.close()
    expect(len(seen) == int(count), "identities not unique: %r" % seen)
    print("OK dealer_identity_report")


def dealer_half_multipart(ctx, endpoint):
    """Raw ZMTP: handshake as DEALER, send the first frame of a two-frame message, vanish."""
    s = raw_connect(endpoint)
    s.sendall(raw_hello(b"DEALER", b"half") + b"\x01\x05first")
    time.sleep(0.2)
    s.close()
    print("OK dealer_half_multipart")


def router_echo(ctx, endpoint, bind="1", count="0"):
    """A ROUTER that echoes every message to its sender; stops after `count` (0: on b"STOP")."""
    r = sock(ctx, zmq.ROUTER)
    (r.bind if bind == "1" else r.connect)(endpoint)
    n = 0
    while True:
        msg = r.recv_multipart()
        if msg[1:] == [b"STOP"]:
            r.send_multipart(msg)
            break
        r.send_multipart(msg)
        n += 1
        if int(count) and n >= int(count):
            break
    print("OK router_echo", n)


def router_count(ctx, endpoint, expected, tag):
    """A bound ROUTER that answers each message with its own tag; expects `expected` messages."""
    r = sock(ctx, zmq.ROUTER)
    r.bind(endpoint)
    for _ in range(int(expected)):
        msg = r.recv_multipart()
        r.send_multipart([msg[0], tag.encode()])
    print("OK router_count", tag)


def router_named(ctx, endpoint, identity):
    """ROUTER with IDENTITY that connects to our ROUTER, talks first, then answers us."""
    r = sock(ctx, zmq.ROUTER, ROUTING_ID=identity.encode(), ROUTER_MANDATORY=1)
    r.connect(endpoint)
    deadline = time.time() + 10
    while True:  # our ROUTER's identity is known only once the handshake completes
        try:
            r.send_multipart([b"ezarch-router", b"hello from " + identity.encode()])
            break
        except zmq.ZMQError as e:
            expect(e.errno == zmq.EHOSTUNREACH and time.time() < deadline, "cannot reach ezarch: %s" % e)
            time.sleep(0.05)
    msg = r.recv_multipart()
    expect(msg == [b"ezarch-router", b"reply to " + identity.encode()], "got %r" % msg)
    print("OK router_named")


def dealer_restartable(ctx, endpoint, phase):
    """A bound ROUTER peer that receives numbered messages and echoes them; used around restarts."""
    r = sock(ctx, zmq.ROUTER)
    r.bind(endpoint)
    got = []
    while True:
        msg = r.recv_multipart()
        if msg[1] == b"END":
            r.send_multipart([msg[0], b"END"] + [b",".join(got)])
            break
        got.append(msg[1])
    print("OK dealer_restartable", phase, b",".join(got).decode())


# ---- PUB / SUB ----

def sub_check(ctx, endpoint, topics, expect_list, stop=b"STOP"):
    """SUB subscribed to `topics` (comma separated); expects exactly `expect_list` then STOP."""
    s = sock(ctx, zmq.SUB)
    s.connect(endpoint)
    for t in topics.split(",") if topics != "-" else []:
        s.setsockopt(zmq.SUBSCRIBE, t.encode() if t != "*" else b"")
    s.setsockopt(zmq.SUBSCRIBE, stop)
    want = [w.encode() for w in expect_list.split(",")] if expect_list != "-" else []
    got = []
    while True:
        msg = s.recv_multipart()
        if msg[0] == stop:
            break
        got.append(b"|".join(msg))
    expect(got == want, "got %r want %r" % (got, want))
    print("OK sub_check")


def sub_slow(ctx, endpoint, fast="1"):
    """A subscriber to everything; the slow one never reads until the end, then counts."""
    s = sock(ctx, zmq.SUB) if fast == "1" else sock(ctx, zmq.SUB, RCVHWM=10, RCVBUF=4096)
    s.connect(endpoint)
    s.setsockopt(zmq.SUBSCRIBE, b"")
    n = 0
    if fast == "1":
        while True:
            msg = s.recv_multipart()
            if msg[0] == b"STOP":
                break
            n += 1
        print("OK sub_fast", n)
    else:
        time.sleep(6)
        s.setsockopt(zmq.RCVTIMEO, 500)
        try:
            while True:
                s.recv_multipart()
                n += 1
        except zmq.Again:
            pass
        print("OK sub_slow", n)


def raw_hello(socket_type, identity=None, minor=1):
    """Greeting and READY as a raw ZMTP 3.x peer of `socket_type` sends them."""
    greeting = b"\xff" + b"\x00" * 8 + b"\x7f" + bytes([3, minor]) + b"NULL" + b"\x00" * 48
    props = b"\x0bSocket-Type" + struct.pack(">I", len(socket_type)) + socket_type
    if identity is not None:
        props += b"\x08Identity" + struct.pack(">I", len(identity)) + identity
    return greeting + raw_command(b"READY", props)


def raw_connect(endpoint, timeout=TIMEOUT_MS / 1000):
    host, port = endpoint[len("tcp://"):].rsplit(":", 1)
    s = socket.create_connection((host, int(port)))
    s.settimeout(timeout)
    return s


def raw_until_closed(s):
    """Everything the other side sends until it closes."""
    data = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            return data
        data += chunk


def raw_handshake(endpoint, socket_type, minor=1):
    """A raw TCP ZMTP 3.x peer: sends greeting and READY, reads ours; returns the socket."""
    s = raw_connect(endpoint)
    s.sendall(raw_hello(socket_type, minor=minor))
    peer = raw_recv_exact(s, 64)
    expect(peer[0] == 0xFF and peer[10] == 3, "bad greeting %r" % peer[:12])
    flags, body = raw_recv_frame(s)
    expect(flags & 0x04 and body[1:6] == b"READY", "expected READY, got %r" % body[:16])
    return s


def raw_recv_exact(s, n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise EOFError("closed after %d of %d bytes" % (len(data), n))
        data += chunk
    return data


def raw_recv_frame(s):
    head = raw_recv_exact(s, 2)
    if head[0] & 0x02:
        size = struct.unpack(">Q", head[1:] + raw_recv_exact(s, 7))[0]
    else:
        size = head[1]
    return head[0], raw_recv_exact(s, size)


def raw_recv_message(s):
    frames = []
    while True:
        flags, body = raw_recv_frame(s)
        if flags & 0x04:
            continue  # commands (PING...) are not messages
        frames.append(body)
        if not flags & 0x01:
            return frames


def raw_command(name, data):
    body = bytes([len(name)]) + name + data
    return bytes([0x04, len(body)]) + body


def raw_sub_counting(ctx, endpoint):
    """Raw 3.1 SUB: "A" subscribed twice (a command and a message), cancelled once (command):
    still receiving; cancelled again (message): stopped. CTL topics pace the publisher."""
    s = raw_handshake(endpoint, b"SUB")
    s.sendall(raw_command(b"SUBSCRIBE", b"A") + b"\x00\x02\x01A" + raw_command(b"SUBSCRIBE", b"CTL"))
    got = []
    while True:
        msg = raw_recv_message(s)
        if msg[0] == b"CTL-cancel-once":
            s.sendall(raw_command(b"CANCEL", b"A") + raw_command(b"SUBSCRIBE", b"CTL2"))
        elif msg[0] == b"CTL2-cancel-again":
            s.sendall(b"\x00\x02\x00A" + raw_command(b"SUBSCRIBE", b"CTL3") + raw_command(b"SUBSCRIBE", b"CTL4"))
        elif msg[0] == b"CTL3-stop":
            break
        else:
            got.append(msg[0])
    expect(got == [b"A1", b"A2"], "got %r" % got)
    print("OK raw_sub_counting")


def pub_server(ctx, endpoint, rounds="200"):
    """PUB bound: publishes "A"-topic and "B"-topic messages until told to stop via a file."""
    p = sock(ctx, zmq.PUB)
    p.bind(endpoint)
    for i in range(int(rounds)):
        p.send_multipart([b"A", b"%d" % i])
        p.send_multipart([b"B", b"%d" % i])
        time.sleep(0.02)
    print("OK pub_server")


# ---- heartbeats ----

def dealer_heartbeat(ctx, endpoint, seconds="2"):
    """DEALER with HEARTBEAT_IVL=100, TIMEOUT=300: the link must survive `seconds` idle."""
    d = sock(ctx, zmq.DEALER, HEARTBEAT_IVL=100, HEARTBEAT_TIMEOUT=300, HEARTBEAT_TTL=2000)
    mon = d.get_monitor_socket(zmq.EVENT_DISCONNECTED | zmq.EVENT_CONNECTED)
    d.connect(endpoint)
    d.send(b"ping-1")
    expect(d.recv() == b"ping-1", "first echo")
    time.sleep(float(seconds))
    d.send(b"ping-2")
    expect(d.recv() == b"ping-2", "second echo after idle heartbeats")
    events = []
    while mon.poll(0):
        events.append(zmq.utils.monitor.recv_monitor_message(mon)["event"])
    expect(zmq.EVENT_DISCONNECTED not in events, "disconnected during heartbeats: %r" % events)
    print("OK dealer_heartbeat")


def raw_silent(ctx, endpoint, seconds="3"):
    """A raw TCP client that sends nothing (or half a greeting): we must close it in time."""
    s = raw_connect(endpoint, float(seconds))
    s.sendall(b"\xff\x00\x00")
    try:
        data = raw_until_closed(s)
    except socket.timeout:
        raise AssertionError("not closed within %s s" % seconds)
    expect(data[:1] == b"\xff", "expected our greeting first, got %r" % data[:16])
    print("OK raw_silent")


def raw_ping_ttl(ctx, endpoint):
    """Raw ZMTP DEALER: handshake, PING with TTL 1 s and 16-byte context, then silence."""
    s = raw_connect(endpoint, 5)
    ping = raw_command(b"PING", struct.pack(">H", 10) + b"0123456789abcdef")
    s.sendall(raw_hello(b"DEALER") + ping)
    start = time.time()
    data = raw_until_closed(s)
    elapsed = time.time() - start
    expect(b"\x04PONG0123456789abcdef" in data, "no PONG echoing the context")
    expect(0.8 < elapsed < 3.0, "closed after %.2f s, TTL was 1 s" % elapsed)
    print("OK raw_ping_ttl %.2f" % elapsed)


def router_hwm(ctx, endpoint, done_path):
    """A DEALER that never reads: our ROUTER must drop at HWM without blocking. It stays
    connected until the test creates `done_path` (a libzmq peer that does not read cannot see
    our side close)."""
    d = sock(ctx, zmq.DEALER, RCVHWM=1, RCVBUF=4096, ROUTING_ID=b"sleepy")
    d.connect(endpoint)
    d.send(b"hello")
    deadline = time.time() + 30
    while not os.path.exists(done_path):
        expect(time.time() < deadline, "the test never said it was done")
        time.sleep(0.01)
    print("OK router_hwm")


def dealer_duplicate(ctx, endpoint, identity, tag, wait="3"):
    """A DEALER with a fixed identity: sends its tag, counts replies for `wait` seconds."""
    d = sock(ctx, zmq.DEALER, ROUTING_ID=identity.encode())
    d.connect(endpoint)
    d.send(tag.encode())
    d.setsockopt(zmq.RCVTIMEO, int(float(wait) * 1000))
    replies = 0
    try:
        while True:
            d.recv()
            replies += 1
    except zmq.Again:
        pass
    print("OK dealer_duplicate %s %d" % (tag, replies))


def pub_connect(ctx, endpoint):
    """A PUB that connects to our ROUTER (an incompatible pair) and publishes for a second."""
    p = sock(ctx, zmq.PUB)
    p.connect(endpoint)
    for _ in range(20):
        p.send(b"should never arrive")
        time.sleep(0.05)
    print("OK pub_connect")


def raw_wrong_type(ctx, endpoint):
    """Raw ZMTP peer announcing PUB to our ROUTER: we must send ERROR and close."""
    s = raw_handshake(endpoint, b"PUB")
    rest = raw_until_closed(s)
    expect(b"\x05ERROR" in rest, "no ERROR before the close: %r" % rest)
    print("OK raw_wrong_type")


def raw_huge_frame(ctx, endpoint):
    """Raw ZMTP DEALER: handshake, then a frame header declaring 2^64-1 bytes: we must close."""
    s = raw_connect(endpoint, 5)
    s.sendall(raw_hello(b"DEALER") + b"\x02" + b"\xff" * 8 + b"junk")
    raw_until_closed(s)
    print("OK raw_huge_frame closed")


def sub_hello(ctx, endpoint):
    """A good SUB that must receive HELLO while junk peers come and go (libzmq fuzzer style)."""
    s = sock(ctx, zmq.SUB)
    s.connect(endpoint)
    s.setsockopt(zmq.SUBSCRIBE, b"HELLO")
    msg = s.recv_multipart()
    expect(msg == [b"HELLO", b"world"], "got %r" % msg)
    print("OK sub_hello")


def raw_mute_server(ctx, endpoint):
    """Raw listener: completes the handshake as ROUTER, then never answers; times our close."""
    host, port = endpoint[len("tcp://"):].rsplit(":", 1)
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((host, int(port)))
    srv.listen(1)
    srv.settimeout(10)
    conn, _ = srv.accept()
    conn.settimeout(10)
    conn.sendall(raw_hello(b"ROUTER", b""))
    start = time.time()
    pings = 0
    while True:
        chunk = conn.recv(4096)
        if not chunk:
            break
        pings += chunk.count(b"\x04PING")
    elapsed = time.time() - start
    expect(pings >= 1, "no PING before the close")
    expect(elapsed < 2.0, "closed only after %.2f s" % elapsed)
    print("OK raw_mute_server %.2f %d" % (elapsed, pings))


HELPERS = {"sock", "expect", "payload", "main", "raw_handshake", "raw_recv_exact", "raw_recv_frame",
           "raw_recv_message", "raw_command", "raw_hello", "raw_connect", "raw_until_closed"}
SCENARIOS = {n: f for n, f in globals().items() if callable(f) and n not in HELPERS and not n[0].isupper()}


def main():
    name, endpoint, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    ctx = zmq.Context()
    try:
        SCENARIOS[name](ctx, endpoint, *args)
    finally:
        ctx.destroy(linger=0)
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
