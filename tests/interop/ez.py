#!/usr/bin/env python3
"""EZ Arch generation-1 clients and workers in pyzmq, written from PROTOCOL.md §2, for the
end-to-end tests: `ez.py ROLE ARGS...`. Each prints `OK ...` and exits 0, or raises (exit 1).
"""
import os
import sys
import time
import uuid

import zmq

WORKER, CLIENT, HEARTBEAT, REPLY = b"\x01", b"\x02", b"\x01", b"\x02"


def worker(endpoint, service, interval_ms="500", delay_ms="0", seconds="10"):
    """The reference test worker: identity SERVICE-<8 random bytes>, heartbeats every interval,
    answers /echo, /req_count, anything else ERR. Prints how many requests it served."""
    ctx = zmq.Context()
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.ROUTING_ID, service.encode() + b"-" + os.urandom(8))
    s.setsockopt(zmq.LINGER, 0)
    s.connect(endpoint)
    interval, delay = int(interval_ms) / 1000, int(delay_ms) / 1000
    end = time.time() + float(seconds)
    next_hb = 0
    served = 0
    while time.time() < end:
        if time.time() >= next_hb:
            s.send_multipart([b"", WORKER, HEARTBEAT, service.encode()])
            next_hb = time.time() + interval
        if not s.poll(50):
            continue
        msg = s.recv_multipart()
        # ["", CLIENT_ID, REQ_ID, BODY...]
        empty, client_id, req_id, body = msg[0], msg[1], msg[2], msg[3:]
        assert empty == b"", msg
        served += 1
        if delay:
            time.sleep(delay)
        path = body[0] if body else b""
        if path == b"/echo":
            result = [b"OK"] + body[1:]
        elif path == b"/req_count":
            result = [b"OK", str(served).encode()]
        else:
            result = [b"ERR", path + b" not found"]
        s.send_multipart([b"", WORKER, REPLY, client_id, b"", req_id] + result)
    print("OK worker %s served %d" % (service, served))
    sys.stdout.flush()
    os._exit(0)


def call(s, service, body, timeout_ms=2000, attempts=3):
    """One request with the original client's retry: same request id on every attempt."""
    req_id = str(uuid.uuid4()).encode()
    for _ in range(attempts):
        s.send_multipart([b"", CLIENT, req_id, service] + body)
        deadline = time.time() + timeout_ms / 1000
        while time.time() < deadline:
            if not s.poll(max(1, int((deadline - time.time()) * 1000))):
                break
            msg = s.recv_multipart()
            if msg[1] == req_id:
                assert msg[0] == b"", msg
                return msg[2:]
            # a late reply to an expired request: ignored, as the original client does
    raise AssertionError("no reply for %s after %d attempts" % (service, attempts))


def client(endpoint, services, count="20", frames="3", attempts="3", timeout_ms="2000"):
    """Sends `count` echo requests round-robin over `services` with multi-frame bodies, each
    with up to `attempts` attempts of `timeout_ms`."""
    ctx = zmq.Context()
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(endpoint)
    services = [x.encode() for x in services.split(",")]
    for i in range(int(count)):
        service = services[i % len(services)]
        body = [b"/echo"] + [b"part-%d-%d" % (i, j) for j in range(int(frames))]
        got = call(s, service, body, timeout_ms=int(timeout_ms), attempts=int(attempts))
        assert got == [b"OK"] + body[1:], got
    print("OK client %d" % int(count))
    sys.stdout.flush()
    os._exit(0)


def burst(endpoint, service, count="40", window="4", seconds="30"):
    """Keeps `window` requests in flight until `count` were answered, within `seconds`."""
    ctx = zmq.Context()
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(endpoint)
    total, window = int(count), int(window)
    sent, pending = 0, set()
    deadline = time.time() + float(seconds)
    while (sent < total or pending) and time.time() < deadline:
        while sent < total and len(pending) < window:
            req_id = b"burst-%d" % sent
            pending.add(req_id)
            s.send_multipart([b"", CLIENT, req_id, service.encode(), b"/echo", b"x"])
            sent += 1
        if s.poll(200):
            msg = s.recv_multipart()
            assert msg[2:] == [b"OK", b"x"], msg
            pending.discard(msg[1])
    assert not pending and sent == total, "%d replies missing" % (len(pending) + total - sent)
    print("OK burst %d" % total)
    sys.stdout.flush()
    os._exit(0)


def inflight(endpoint, service, count="40", window="20", max_ms="5000"):
    """Keeps `window` requests in flight until `count` were answered, one attempt each (no
    retry): every request must get an answer, and none later than `max_ms`. Prints READY once
    the first window is out, then OK with the count and the slowest answer."""
    ctx = zmq.Context()
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(endpoint)
    total, window, limit = int(count), int(window), float(max_ms) / 1000
    sent, pending, slowest, answers = 0, {}, 0.0, {}
    deadline = time.time() + 60
    while (sent < total or pending) and time.time() < deadline:
        while sent < total and len(pending) < window:
            req_id = b"inflight-%d" % sent
            pending[req_id] = time.time()
            s.send_multipart([b"", CLIENT, req_id, service.encode(), b"/echo", b"x"])
            sent += 1
            if sent == window:
                print("READY")
                sys.stdout.flush()
        if s.poll(100):
            msg = s.recv_multipart()
            started = pending.pop(msg[1], None)
            assert started is not None, "an answer for %r that was not pending (a second answer?)" % msg[1]
            slowest = max(slowest, time.time() - started)
            answers[tuple(msg[2:4])] = answers.get(tuple(msg[2:4]), 0) + 1
        for req_id, started in pending.items():
            assert time.time() - started < limit, "%r unanswered after %.1f s" % (req_id, limit)
    assert not pending and sent == total, "%d unanswered" % (len(pending) + total - sent)
    print("OK inflight %d slowest %.0f ms answers %r" % (total, slowest * 1000, answers))
    sys.stdout.flush()
    os._exit(0)


def rate_client(endpoint, service, rate="50", seconds="15", max_ms="5000"):
    """Sends `rate` requests a second for `seconds`, one attempt each; every one must be
    answered within `max_ms`. Prints OK with the answers counted by their first frame."""
    ctx = zmq.Context()
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(endpoint)
    total, gap, limit = int(float(rate) * float(seconds)), 1 / float(rate), float(max_ms) / 1000
    start, pending, answers = time.time(), {}, {}

    def receive(wait_s):
        if not s.poll(max(0, int(wait_s * 1000))):
            return
        while True:
            try:
                msg = s.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            sent = pending.pop(msg[1], None)
            assert sent is not None, "an answer for %r that was not pending" % msg[1]
            status = msg[2] if msg[2] != b"EZ_ERR" else b"EZ_ERR " + msg[3]
            answers[status] = answers.get(status, 0) + 1

    for i in range(total):
        req_id = b"rate-%d" % i
        pending[req_id] = time.time()
        s.send_multipart([b"", CLIENT, req_id, service.encode(), b"/echo", b"x"])
        receive(start + (i + 1) * gap - time.time())
        for rid, sent in pending.items():
            assert time.time() - sent < limit, "%r unanswered after %.1f s" % (rid, limit)
    deadline = time.time() + limit
    while pending and time.time() < deadline:
        receive(0.05)
    assert not pending, "%d unanswered: %r" % (len(pending), sorted(pending)[:5])
    print("OK rate_client %d answers %r" % (total, answers))
    sys.stdout.flush()
    os._exit(0)


def orig_broker(in_ep, worker_ep, state_ep, pub_ep, seconds="10"):
    """A generation-1 broker as the original EZ Arch's (PROTOCOL.md §2), asserts included (the
    original crashes on anything unexpected): attached to ezarch's pipes beside ezarch's own
    broker, it must understand every state broadcast and serve its share of the requests."""
    ctx = zmq.Context()
    inr, wr = ctx.socket(zmq.ROUTER), ctx.socket(zmq.ROUTER)
    st, sub = ctx.socket(zmq.DEALER), ctx.socket(zmq.SUB)
    st.setsockopt(zmq.ROUTING_ID, b"py-broker")
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    for s, ep in ((inr, in_ep), (wr, worker_ep), (st, state_ep), (sub, pub_ep)):
        s.setsockopt(zmq.LINGER, 0)
        s.connect(ep)
    poller = zmq.Poller()
    for s in (inr, wr, sub):
        poller.register(s, zmq.POLLIN)
    workers, tasks = {}, {}  # service -> {worker: expiry}; worker -> tasks
    in_pipe = worker_pipe = None
    served = foreign_state = 0
    end = time.time() + float(seconds)
    while time.time() < end:
        for s, _ in poller.poll(100):
            msg = s.recv_multipart()
            if s is sub:
                sender, kind = msg[0], msg[1]
                assert kind in (b"\x01", b"\x02", b"\x03"), msg
                foreign_state += sender != b"py-broker"
                if kind == b"\x01":
                    assert len(msg) == 4, msg
                    workers.setdefault(msg[2], {})[msg[3]] = time.time() + 9
                else:
                    assert len(msg) == 3, msg
                    tasks[msg[2]] = max(0, tasks.get(msg[2], 0) + (1 if kind == b"\x02" else -1))
            elif s is wr:
                worker_pipe, worker = msg[0], msg[1]
                assert msg[2] == b"" and msg[3] == b"\x01", msg
                if msg[4] == b"\x01":
                    st.send_multipart([b"\x01", msg[5], worker])
                else:
                    assert msg[4] == b"\x02" and msg[6] == b"", msg
                    inr.send_multipart([in_pipe, msg[5], b"", msg[7]] + msg[8:])
                    st.send_multipart([b"\x03", worker])
            else:
                in_pipe = msg[0]
                assert msg[2] == b"" and msg[3] == CLIENT, msg
                live = [w for w, exp in workers.get(msg[5], {}).items() if exp > time.time()]
                if not live or worker_pipe is None:
                    continue  # the original drops it; the client retries
                worker = min(live, key=lambda w: tasks.get(w, 0))
                wr.send_multipart([worker_pipe, worker, b"", msg[1], msg[4]] + msg[6:])
                st.send_multipart([b"\x02", worker])
                served += 1
    print("OK orig_broker served %d state_from_others %d" % (served, foreign_state))
    sys.stdout.flush()
    os._exit(0)


def expect_err(endpoint, service, reason, max_ms="5000"):
    """One request, one attempt: the answer must be EZ_ERR REASON, within max_ms."""
    ctx = zmq.Context()
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(endpoint)
    start = time.time()
    got = call(s, service.encode(), [b"/echo", b"x"], timeout_ms=int(max_ms), attempts=1)
    elapsed = (time.time() - start) * 1000
    assert got == [b"EZ_ERR", reason.encode()], got
    print("OK expect_err %.0f ms" % elapsed)
    sys.stdout.flush()
    os._exit(0)


def retry_once(endpoint, service, retry_after_ms="1000"):
    """Sends a request, sends it again with the same id after `retry_after_ms` (the original
    client's retry), and expects exactly one answer."""
    ctx = zmq.Context()
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 1000)
    s.connect(endpoint)
    req_id = str(uuid.uuid4()).encode()
    request = [b"", CLIENT, req_id, service.encode(), b"/echo", b"once"]
    s.send_multipart(request)
    assert not s.poll(int(retry_after_ms)), "answered before the retry: make the worker slower"
    s.send_multipart(request)
    assert s.poll(10000), "no answer"
    msg = s.recv_multipart()
    assert msg == [b"", req_id, b"OK", b"once"], msg
    print("OK retry_once")
    sys.stdout.flush()
    os._exit(0)


def after_signal(endpoint, service, flag_path, reason="SHUTTING_DOWN"):
    """Connects, prints READY, waits until `flag_path` exists (the test signalled the node),
    then sends one request: the answer must be EZ_ERR REASON."""
    ctx = zmq.Context()
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(endpoint)
    s.send_multipart([b"", CLIENT, b"warm-up", b"nobody-at-all"])  # connects before the signal
    assert s.poll(10000), "the node did not answer before the signal"
    s.recv_multipart()
    print("READY")
    sys.stdout.flush()
    deadline = time.time() + 30
    while not os.path.exists(flag_path):
        assert time.time() < deadline, "never signalled"
        time.sleep(0.01)
    got = call(s, service.encode(), [b"/echo", b"x"], timeout_ms=10000, attempts=1)
    assert got == [b"EZ_ERR", reason.encode()], got
    print("OK after_signal")
    sys.stdout.flush()
    os._exit(0)


def no_service_rate(endpoint, service, rate="30", seconds="3"):
    """Sends `rate` requests a second for `seconds` to a service nobody serves; every one must
    be answered EZ_ERR NO_SERVICE. Prints how many were answered."""
    ctx = zmq.Context()
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(endpoint)
    total, gap = int(float(rate) * float(seconds)), 1 / float(rate)
    start, pending = time.time(), set()
    for i in range(total):
        req_id = b"ns-%d" % i
        pending.add(req_id)
        s.send_multipart([b"", CLIENT, req_id, service.encode(), b"/echo"])
        while True:
            wait = start + (i + 1) * gap - time.time()
            if wait <= 0 or not s.poll(int(wait * 1000) + 1):
                break
            msg = s.recv_multipart()
            assert msg[2:] == [b"EZ_ERR", b"NO_SERVICE"], msg
            pending.discard(msg[1])
    deadline = time.time() + 10
    while pending and time.time() < deadline:
        if s.poll(100):
            msg = s.recv_multipart()
            assert msg[2:] == [b"EZ_ERR", b"NO_SERVICE"], msg
            pending.discard(msg[1])
    assert not pending, "%d requests unanswered" % len(pending)
    print("OK no_service_rate %d" % total)
    sys.stdout.flush()
    os._exit(0)


def garbage(in_endpoint, worker_endpoint, broker_endpoint):
    """Malformed client, worker and state messages of many shapes, into all three pipes."""
    ctx = zmq.Context()
    socks = []
    for endpoint in (in_endpoint, worker_endpoint, broker_endpoint):
        s = ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 1000)
        s.connect(endpoint)
        socks.append(s)
    shapes = [
        [b""], [b"x"], [b"", b"\x02"], [b"", b"\x02", b"id"], [b"nonempty", b"\x02", b"id", b"svc"],
        [b"", b"\x07", b"id", b"svc"], [b"", b"\x01"], [b"", b"\x01", b"\x01"], [b"", b"\x01", b"\x09", b"svc"],
        [b"", b"\x01", b"\x02", b"client"], [b"", b"\x01", b"\x02", b"client", b"notempty", b"req"],
        [b"\x01"], [b"\x02"], [b"\x03"], [b"\x09", b"a", b"b"], [b"\x01", b"svc"], [os.urandom(300)] * 3,
    ]
    for s in socks:
        for shape in shapes:
            s.send_multipart(shape)
    for s in socks:
        s.close(linger=5000)
    ctx.term()  # returns once every message was written (or the linger ran out)
    print("OK garbage %d" % (len(shapes) * len(socks)))
    sys.stdout.flush()
    os._exit(0)


def in_pipe_retry(endpoint):
    """Plays the in pipe's ROUTER: ignores a request's first attempt, answers the second, and
    checks both carried the same request id (the original client's retry rule)."""
    ctx = zmq.Context()
    r = ctx.socket(zmq.ROUTER)
    r.setsockopt(zmq.RCVTIMEO, 10000)
    r.setsockopt(zmq.LINGER, 1000)
    r.bind(endpoint)
    print("READY")
    sys.stdout.flush()
    first = r.recv_multipart()
    second = r.recv_multipart()
    # [CLIENT_ID, "", 0x02, REQ_ID, SERVICE, BODY...]
    assert first[1:] == second[1:], (first, second)
    assert first[2] == CLIENT and first[4] == b"svc", first
    r.send_multipart([second[0], b"", second[3], b"OK", b"second attempt"])
    r.close(linger=5000)
    ctx.term()  # returns once the reply was written
    print("OK in_pipe_retry")
    sys.stdout.flush()
    os._exit(0)


def steady_client(endpoint, service, flag_path, max_ms="1000"):
    """One request at a time, with no retry, until `flag_path` exists (then 20 more): each must
    be answered OK within `max_ms`. Prints READY after the first answer, and how many were
    answered and the slowest."""
    ctx = zmq.Context()
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(endpoint)
    answered, slowest, after_flag = 0, 0.0, 0
    deadline = time.time() + 120
    while after_flag < 20:
        assert time.time() < deadline, "the flag never came"
        req_id = str(uuid.uuid4()).encode()
        sent = time.time()
        s.send_multipart([b"", CLIENT, req_id, service.encode(), b"/echo", b"x"])
        # The first request may wait for the worker to join; every later one gets max_ms.
        wait_ms = 20000 if answered == 0 else int(max_ms)
        assert s.poll(wait_ms), "request %d unanswered after %d ms" % (answered, wait_ms)
        msg = s.recv_multipart()
        assert msg == [b"", req_id, b"OK", b"x"], msg
        took = time.time() - sent
        if answered > 0:
            slowest = max(slowest, took)
        answered += 1
        if answered == 1:
            print("READY")
            sys.stdout.flush()
        if os.path.exists(flag_path):
            after_flag += 1
        time.sleep(0.02)
    print("OK steady_client answered %d slowest %.0f ms" % (answered, slowest * 1000))
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    globals()[sys.argv[1]](*sys.argv[2:])
