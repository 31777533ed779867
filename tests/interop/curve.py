#!/usr/bin/env python3
"""pyzmq (libzmq) peers speaking CURVE against ezarch: `curve.py ROLE ENDPOINT ARGS...`, keys in
Z85. Each prints `OK ...` and exits 0, or raises (exit 1). Every wait has a deadline.
"""
import os
import sys
import threading
import time

import zmq
import zmq.utils.monitor


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


def serve_gen1(s, service, seconds, delay_ms="0"):
    """Heartbeats `service` every 200 ms on DEALER `s` and answers every request ["OK", body
    after the path...] after `delay_ms`, for `seconds`; returns how many it served."""
    end, next_beat, served = time.time() + float(seconds), 0, 0
    while time.time() < end:
        if time.time() >= next_beat:
            s.send_multipart([b"", b"\x01", b"\x01", service.encode()])
            next_beat = time.time() + 0.2
        if s.poll(20):
            _, client, req_id, *body = s.recv_multipart()
            time.sleep(int(delay_ms) / 1000)
            s.send_multipart([b"", b"\x01", b"\x02", client, b"", req_id, b"OK"] + body[1:])
            served += 1
    return served


def ez_worker(ctx, endpoint, server_public, public, secret, service, seconds):
    """A generation-1 worker over CURVE: heartbeats, echoes /echo; prints how many it served."""
    identity = service.encode() + b"-" + os.urandom(6)
    s = curve_dealer(ctx, endpoint, server_public, public, secret, identity)
    print("OK ez_worker served %d" % serve_gen1(s, service, seconds))


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


# ---- the security model, tried as an attacker holding one admitted key would ----

HANDSHAKE_EVENTS = zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_HANDSHAKE_FAILED_AUTH | \
    zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL


def curve_socket(ctx, kind, endpoint, server_public, public, secret, identity=None):
    """A CURVE client socket of `kind`, connected, with a monitor for its handshake events."""
    s = ctx.socket(kind)
    s.setsockopt(zmq.LINGER, 0)
    if identity:
        s.setsockopt(zmq.ROUTING_ID, identity)
    s.curve_serverkey = server_public.encode()
    s.curve_publickey = public.encode()
    s.curve_secretkey = secret.encode()
    monitor = s.get_monitor_socket(HANDSHAKE_EVENTS)
    if kind == zmq.SUB:
        s.setsockopt(zmq.SUBSCRIBE, b"")
    s.connect(endpoint)
    return s, monitor


def handshake_outcomes(monitor):
    """(succeeded, refused with 400) handshakes the monitor reported so far."""
    ok = refused = 0
    while monitor.poll(0):
        event = zmq.utils.monitor.recv_monitor_message(monitor)
        if event["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED:
            ok += 1
        elif event["event"] == zmq.EVENT_HANDSHAKE_FAILED_AUTH and event["value"] == 400:
            refused += 1
    return ok, refused


def rogue(ctx, server_public, public, secret, worker_a, broker_a, in_b, broadcast, worker_b,
          identity, service, seconds):
    """One key tries every door as the issue's attacker did: a DEALER on the worker pipe under a
    real worker's identity (heartbeating), a DEALER on the broker pipe announcing that identity
    as a worker of `service`, a ROUTER on the in pipe's broker side and on the worker pipe's, a
    SUB on the broadcast. For `seconds` it must receive nothing on any of them, and every door
    must refuse its handshake with 400 (and none complete)."""
    doors = {
        "worker_a": curve_socket(ctx, zmq.DEALER, worker_a, server_public, public, secret, identity.encode()),
        "broker_a": curve_socket(ctx, zmq.DEALER, broker_a, server_public, public, secret),
        "in_b": curve_socket(ctx, zmq.ROUTER, in_b, server_public, public, secret),
        "broadcast": curve_socket(ctx, zmq.SUB, broadcast, server_public, public, secret),
        "worker_b": curve_socket(ctx, zmq.ROUTER, worker_b, server_public, public, secret),
    }
    outcomes = {name: [0, 0] for name in doors}
    received = {name: 0 for name in doors}
    end, next_send = time.time() + float(seconds), 0
    while time.time() < end:
        if time.time() >= next_send:
            next_send = time.time() + 0.2
            for name, msg in (("worker_a", [b"", b"\x01", b"\x01", service.encode()]),
                              ("broker_a", [b"\x01", service.encode(), identity.encode()])):
                try:
                    doors[name][0].send_multipart(msg, zmq.NOBLOCK)
                except zmq.Again:
                    pass
        for name, (s, monitor) in doors.items():
            while s.poll(0):
                received[name] += 1
                s.recv_multipart()
            ok, refused = handshake_outcomes(monitor)
            outcomes[name][0] += ok
            outcomes[name][1] += refused
        time.sleep(0.02)
    print("outcomes %r received %r" % (outcomes, received))
    assert not any(received.values()), received
    assert all(ok == 0 and refused >= 1 for ok, refused in outcomes.values()), outcomes
    print("OK rogue received nothing; refused at %d doors" % len(doors))


def door_probe(ctx, server_public, public, secret, in_b, broker_a, broadcast, worker_b):
    """A broker's key on each of the four broker-side ports: every handshake completes."""
    kinds = ((in_b, zmq.ROUTER), (broker_a, zmq.DEALER), (broadcast, zmq.SUB), (worker_b, zmq.ROUTER))
    for endpoint, kind in kinds:
        s, monitor = curve_socket(ctx, kind, endpoint, server_public, public, secret)
        if not monitor.poll(10000):
            raise AssertionError("no handshake event at %s" % endpoint)
        event = zmq.utils.monitor.recv_monitor_message(monitor)
        assert event["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED, (endpoint, event)
        s.close()
    print("OK door_probe admitted at %d doors" % len(kinds))


def identity_thief(ctx, endpoint, server_public, public, secret, identity, service, seconds):
    """A worker key of its own that heartbeats under another worker's identity: it must never
    be sent a request."""
    s, _ = curve_socket(ctx, zmq.DEALER, endpoint, server_public, public, secret, identity.encode())
    got = serve_gen1(s, service, seconds)
    assert got == 0, "the thief was sent %d requests" % got
    print("OK identity_thief received nothing")


def named_worker(ctx, endpoint, server_public, public, secret, identity, service, delay_ms, seconds):
    """A generation-1 worker with a fixed identity that answers /echo after `delay_ms`."""
    s = curve_dealer(ctx, endpoint, server_public, public, secret, identity.encode())
    print("OK named_worker served %d" % serve_gen1(s, service, seconds, delay_ms))


def reply_forger(ctx, endpoint, server_public, public, secret, service, client, req_id, seconds):
    """A worker of `service` (a key that may serve it) that answers a request it never got: the
    client `client`'s `req_id`, with the body `forged`, every 100 ms."""
    s = curve_dealer(ctx, endpoint, server_public, public, secret, b"forger")
    end, forged = time.time() + float(seconds), 0
    while time.time() < end:
        s.send_multipart([b"", b"\x01", b"\x01", service.encode()])
        s.send_multipart([b"", b"\x01", b"\x02", client.encode(), b"", req_id.encode(), b"OK", b"forged"])
        forged += 1
        while s.poll(100):
            # Requests for its own service: answered honestly (they are not the victim's).
            _, c, r, *body = s.recv_multipart()
            s.send_multipart([b"", b"\x01", b"\x02", c, b"", r, b"OK", b"from-forger"])
    print("OK reply_forger sent %d forged replies" % forged)


def named_client(ctx, endpoint, server_public, public, secret, identity, req_id, service, expect):
    """One request under a fixed routing identity and request id; the answer's last frame must
    be `expect`."""
    s = curve_dealer(ctx, endpoint, server_public, public, secret, identity.encode())
    s.send_multipart([b"", b"\x02", req_id.encode(), service.encode(), b"/echo", expect.encode()])
    if not s.poll(20000):
        raise AssertionError("no answer")
    got = s.recv_multipart()
    assert got == [b"", req_id.encode(), b"OK", expect.encode()], got
    # No second answer follows.
    assert not s.poll(500), "a second answer: %r" % s.recv_multipart()
    print("OK named_client %r" % got)


def gen2_token_thief(ctx, endpoint, server_public, public, secret, victim_key_public, victim_secret,
                     service, other_service, seconds):
    """Two generation-2 workers over CURVE: the victim (its own key) takes a request for
    `service` and ACKs nothing for 300 ms; the thief (this key, a worker of `other_service`)
    meanwhile sends an ACK and a reply under the victim's token. Then the victim ACKs and
    answers `from-victim`. The client must get the victim's answer."""
    victim = curve_dealer(ctx, endpoint, server_public, victim_key_public, victim_secret, b"victim")
    thief = curve_dealer(ctx, endpoint, server_public, public, secret, b"thief")
    end, next_beat, stolen, answered = time.time() + float(seconds), 0, 0, 0
    while time.time() < end:
        if time.time() >= next_beat:
            victim.send_multipart([b"", b"\x01", b"\x01", service.encode()])
            thief.send_multipart([b"", b"\x01", b"\x01", other_service.encode()])
            next_beat = time.time() + 0.2
        if victim.poll(20):
            _, token, *body = victim.recv_multipart()
            assert len(token) == 16, token
            thief.send_multipart([b"", b"\x01", b"\x03", token])
            thief.send_multipart([b"", b"\x01", b"\x02", token, b"OK", b"from-thief"])
            stolen += 1
            time.sleep(0.3)
            victim.send_multipart([b"", b"\x01", b"\x03", token])
            victim.send_multipart([b"", b"\x01", b"\x02", token, b"OK", b"from-victim"])
            answered += 1
        if thief.poll(0):
            raise AssertionError("the thief was sent %r" % thief.recv_multipart())
    print("OK gen2_token_thief stole %d answered %d" % (stolen, answered))


def gen2_client(ctx, endpoint, server_public, public, secret, service, expect, count):
    """`count` requests; each answer must be ["OK", expect] (or, for expect NO_SERVICE,
    ["EZ_ERR", "NO_SERVICE"])."""
    s = curve_dealer(ctx, endpoint, server_public, public, secret)
    for i in range(int(count)):
        req_id = b"g-%d" % i
        s.send_multipart([b"", b"\x02", req_id, service.encode(), b"/echo", b"x"])
        if not s.poll(20000):
            raise AssertionError("no answer to %d" % i)
        got = s.recv_multipart()
        want = [b"EZ_ERR", b"NO_SERVICE"] if expect == "NO_SERVICE" else [b"OK", expect.encode()]
        assert got == [b"", req_id] + want, got
    print("OK gen2_client %s" % count)


def gen2_worker(ctx, endpoint, server_public, public, secret, service, seconds):
    """A raw generation-2 worker over CURVE: heartbeats, ACKs, answers ["OK", "gen2"]; prints how
    many it served."""
    s = curve_dealer(ctx, endpoint, server_public, public, secret, service.encode() + b"-" + os.urandom(4))
    end, next_beat, served = time.time() + float(seconds), 0, 0
    while time.time() < end:
        if time.time() >= next_beat:
            s.send_multipart([b"", b"\x01", b"\x01", service.encode()])
            next_beat = time.time() + 0.2
        if s.poll(20):
            _, token, *body = s.recv_multipart()
            s.send_multipart([b"", b"\x01", b"\x03", token])
            s.send_multipart([b"", b"\x01", b"\x02", token, b"OK", b"gen2"])
            served += 1
    print("OK gen2_worker served %d" % served)


def handshake_probe(ctx, server_public, public, secret, endpoint, kind, expect):
    """A CURVE client socket of `kind` (DEALER, ROUTER, SUB) at `endpoint`: its first handshake
    must be `expect`: admitted, or refused with 400."""
    s, monitor = curve_socket(ctx, getattr(zmq, kind), endpoint, server_public, public, secret)
    if not monitor.poll(10000):
        raise AssertionError("no handshake event at %s" % endpoint)
    event = zmq.utils.monitor.recv_monitor_message(monitor)
    if expect == "admitted":
        assert event["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED, event
    else:
        assert event["event"] == zmq.EVENT_HANDSHAKE_FAILED_AUTH and event["value"] == 400, event
    print("OK handshake_probe %s %s" % (kind, expect))


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
