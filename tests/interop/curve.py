#!/usr/bin/env python3
"""pyzmq (libzmq) peers speaking CURVE against ezarch: `curve.py ROLE ENDPOINT ARGS...`, keys in
Z85. Each prints `OK ...` and exits 0, or raises (exit 1). Every wait has a deadline.
"""
import os
import sys
import threading
import time

import zmq


def payload(size, seed):
    return bytes((i + seed) % 251 for i in range(size))


def curve_dealer(ctx, endpoint, server_public, public, secret, identity=None):
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    if identity:
        s.setsockopt(zmq.ROUTING_ID, identity)
    if server_public:
        s.curve_serverkey = server_public.encode()
        s.curve_publickey = public.encode()
        s.curve_secretkey = secret.encode()
    s.connect(endpoint)
    return s


def dealer_echo(ctx, endpoint, server_public, public, secret, sizes="0,1,255,256,65536,1048576"):
    """Sends one two-frame message per size and expects each echoed back, intact."""
    s = curve_dealer(ctx, endpoint, server_public, public, secret)
    sizes = [int(x) for x in sizes.split(",")]
    for i, size in enumerate(sizes):
        s.send_multipart([b"part-%d" % i, payload(size, i)])
    for i, size in enumerate(sizes):
        if not s.poll(10000):
            raise AssertionError("no echo for message %d" % i)
        got = s.recv_multipart()
        assert got == [b"part-%d" % i, payload(size, i)], (i, [len(f) for f in got])
    print("OK dealer_echo %d" % len(sizes))


def refused(ctx, endpoint, server_public, public, secret, wait_ms="1500"):
    """Sends a request that must get no answer: the node refused this peer's handshake."""
    s = curve_dealer(ctx, endpoint, server_public, public, secret)
    s.send_multipart([b"hello", b"world"])
    if s.poll(int(wait_ms)):
        raise AssertionError("a refused peer got an answer: %r" % s.recv_multipart())
    print("OK refused")


def router_echo(ctx, endpoint, secret, count):
    """A CURVE server ROUTER (any client key) that echoes `count` messages."""
    s = ctx.socket(zmq.ROUTER)
    s.setsockopt(zmq.LINGER, 2000)
    s.curve_server = True
    s.curve_secretkey = secret.encode()
    s.bind(endpoint)
    for i in range(int(count)):
        if not s.poll(10000):
            raise AssertionError("message %d never came" % i)
        s.send_multipart(s.recv_multipart())
    print("OK router_echo %s" % count)



def curve_pipes(ctx, in_a, in_b, worker_a, worker_b, state, broadcast, secret, seconds):
    """EZ Arch's three pipes as libzmq CURVE servers (any client key): zmq.proxy from each
    ROUTER to its DEALER (in and worker pipes) or PUB (broker pipe). The test kills this process
    when it is done; `seconds` only bounds its life if the test never does."""
    def pipe(front_type, front_ep, back_type, back_ep):
        front, back = ctx.socket(front_type), ctx.socket(back_type)
        for s in (front, back):
            s.curve_server = True
            s.curve_secretkey = secret.encode()
        front.bind(front_ep)
        back.bind(back_ep)
        try:
            zmq.proxy(front, back)
        except zmq.ContextTerminated:
            pass

    for spec in ((zmq.ROUTER, in_a, zmq.DEALER, in_b), (zmq.ROUTER, worker_a, zmq.DEALER, worker_b),
                 (zmq.ROUTER, state, zmq.PUB, broadcast)):
        threading.Thread(target=pipe, args=spec, daemon=True).start()
    time.sleep(float(seconds))
    print("OK curve_pipes")
    sys.stdout.flush()
    os._exit(0)


def ez_worker(ctx, endpoint, server_public, public, secret, service, seconds):
    """A generation-1 worker over CURVE: heartbeats, echoes /echo; prints how many it served."""
    identity = service.encode() + b"-" + os.urandom(6)
    s = curve_dealer(ctx, endpoint, server_public, public, secret, identity)
    end, next_beat, served = time.time() + float(seconds), 0, 0
    while time.time() < end:
        if time.time() >= next_beat:
            s.send_multipart([b"", b"\x01", b"\x01", service.encode()])
            next_beat = time.time() + 0.5
        if s.poll(50):
            _, client, req_id, *body = s.recv_multipart()
            s.send_multipart([b"", b"\x01", b"\x02", client, b"", req_id, b"OK"] + body[1:])
            served += 1
    print("OK ez_worker served %d" % served)


def ez_client(ctx, endpoint, server_public, public, secret, service, count, marker="TOPSECRET"):
    """`count` generation-1 requests over CURVE, each body holding `marker`; all answered OK."""
    s = curve_dealer(ctx, endpoint, server_public, public, secret)
    for i in range(int(count)):
        req_id = b"req-%d" % i
        body = b"%s-%d" % (marker.encode(), i)
        s.send_multipart([b"", b"\x02", req_id, service.encode(), b"/echo", body])
        if not s.poll(10000):
            raise AssertionError("no answer to request %d" % i)
        got = s.recv_multipart()
        assert got == [b"", req_id, b"OK", body], got
    print("OK ez_client %s" % count)


def ez_client_until_closed(ctx, endpoint, server_public, public, secret, service, flag_path):
    """Requests every 50 ms; prints `answered` after the first answer (the test revokes the key
    only then); after `flag_path` exists (the key was revoked), expects the requests to go
    unanswered: the node closed this connection."""
    s = curve_dealer(ctx, endpoint, server_public, public, secret)
    answered, i = 0, 0
    end = time.time() + 30
    while time.time() < end:
        i += 1
        s.send_multipart([b"", b"\x02", b"r%d" % i, service.encode(), b"/echo", b"x"])
        got = s.poll(1000)
        if got:
            s.recv_multipart()
            answered += 1
            if answered == 1:
                print("answered")
                sys.stdout.flush()
        elif os.path.exists(flag_path) and answered:
            print("OK revoked after %d answers" % answered)
            return
        time.sleep(0.05)
    raise AssertionError("never cut off (%d answers)" % answered)


def ez_forbidden(ctx, endpoint, server_public, public, secret, service):
    """One request over CURVE that the node must answer EZ_ERR FORBIDDEN, at once."""
    s = curve_dealer(ctx, endpoint, server_public, public, secret)
    s.send_multipart([b"", b"\x02", b"req-f", service.encode(), b"/echo", b"x"])
    if not s.poll(10000):
        raise AssertionError("no answer")
    got = s.recv_multipart()
    assert got == [b"", b"req-f", b"EZ_ERR", b"FORBIDDEN"], got
    print("OK forbidden")


def main():
    ctx = zmq.Context()
    try:
        globals()[sys.argv[1]](ctx, *sys.argv[2:])
    finally:
        sys.stdout.flush()
        ctx.destroy(linger=2000)
    os._exit(0)


if __name__ == "__main__":
    main()
