#!/usr/bin/env python3
"""What an operator uses, from the outside: the management services (`ez.*`) through a pyzmq
client, and the HTTP monitoring endpoint through urllib and raw sockets, its /metrics parsed by
prometheus_client's own text parser. `operate.py ROLE ARGS...` prints `OK ...` and exits 0, or
raises (exit 1).
"""
import json
import socket
import sys
import time
import urllib.error
import urllib.request
import uuid

import zmq
from prometheus_client.parser import text_string_to_metric_families

CLIENT = b"\x02"


def ask(s, service, *body, timeout_ms=5000):
    """One generation-1 request; returns the reply frames after REQ_ID."""
    req_id = uuid.uuid4().bytes
    s.send_multipart([b"", CLIENT, req_id, service.encode()] + [b.encode() for b in body])
    assert s.poll(timeout_ms), f"no answer to {service}"
    reply = s.recv_multipart()
    assert reply[0] == b"" and reply[1] == req_id, reply
    return reply[2:]


def management(endpoint, service):
    """ez.service for a served and an unknown name, ez.services and ez.stats as JSON, an
    unknown ez. name answered at once."""
    ctx = zmq.Context()
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(endpoint)
    assert ask(s, "ez.service", service) == [b"200"], ask(s, "ez.service", service)
    assert ask(s, "ez.service", "nobody-serves-this") == [b"404"]
    assert ask(s, "ez.service") == [b"400"]
    start = time.time()
    assert ask(s, "ez.nothing") == [b"EZ_ERR", b"NO_SERVICE"]
    assert time.time() - start < 0.5, "an unknown management name must be answered at once"
    ok, services = ask(s, "ez.services")
    assert ok == b"OK"
    services = json.loads(services)["services"]
    mine = [x for x in services if x["name"] == service]
    assert mine and mine[0]["live_workers"] >= 1, services
    for field in ["in_flight", "waiting", "requests", "replies", "errors"]:
        assert field in mine[0], (field, mine[0])
    ok, stats = ask(s, "ez.stats")
    assert ok == b"OK"
    stats = json.loads(stats)
    for field in ["version", "uptime_seconds", "requests", "replies", "errors", "malformed",
                  "connections", "bytes", "memory", "requests_waiting", "requests_in_flight"]:
        assert field in stats, (field, stats)
    assert set(stats["errors"]) == {"no_service", "busy", "timeout", "worker_lost", "shutting_down"}
    assert stats["management"] >= 6, stats
    print(f"OK {service} served {mine[0]['replies']}, stats requests {stats['requests']}")


def get(url, method="GET"):
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def metrics(base, service, min_replies):
    """/metrics parses as Prometheus text; names follow the conventions; figures are real."""
    status, headers, text = get(base + "/metrics")
    assert status == 200, status
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4"), headers
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for family in families.values():
        assert family.name.startswith("ezarch_"), family.name
        for sample in family.samples:
            if family.type == "counter":
                assert sample.name.endswith("_total"), sample.name
            assert sample.value >= 0, sample
    # The parser strips _total from counter family names.
    def value(family, **labels):
        for sample in families[family].samples:
            if all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
        raise AssertionError(f"no {family} {labels}")
    assert families["ezarch_requests"].type == "counter"
    assert value("ezarch_service_replies", service=service) >= int(min_replies)
    assert value("ezarch_service_live_workers", service=service) >= 1
    assert value("ezarch_errors", reason="no_service") >= 1
    latency = families["ezarch_service_latency_seconds"]
    assert latency.type == "histogram"
    buckets = [s for s in latency.samples if s.name.endswith("_bucket") and s.labels["service"] == service]
    counts = [s.value for s in buckets]
    assert counts == sorted(counts) and buckets[-1].labels["le"] == "+Inf", buckets
    assert buckets[-1].value == value("ezarch_service_replies", service=service)
    for name in ["ezarch_uptime_seconds", "ezarch_received_bytes", "ezarch_memory_used_bytes",
                 "ezarch_connections", "ezarch_pipe_forwarded"]:
        assert name in families, (name, sorted(families))
    print(f"OK {len(families)} families, {service} replies {value('ezarch_service_replies', service=service)}")


def healthz(base, expected, seconds="20"):
    """Waits until /healthz answers `expected` (200 or 503)."""
    end = time.time() + float(seconds)
    last = None
    while time.time() < end:
        try:
            last = get(base + "/healthz")[0]
        except OSError as e:
            last = e
        if str(last) == expected:
            print(f"OK healthz {expected}")
            return
        time.sleep(0.02)
    raise AssertionError(f"/healthz said {last}, not {expected}")


def raw(host, port, data, read=True):
    """Sends `data` on a fresh connection; returns what comes back until the node closes."""
    with socket.create_connection((host, int(port)), timeout=5) as c:
        c.sendall(data)
        out = b""
        while read:
            chunk = c.recv(65536)
            if not chunk:
                break
            out += chunk
        return out


def bad_http(base):
    """Malformed, oversized and unknown requests get their answer and a close; a crowd of idle
    connections is bounded; the endpoint still serves afterwards."""
    host, port = base.removeprefix("http://").split(":")
    assert raw(host, port, b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" * 3).startswith(b"HTTP/1.1 400")
    big = b"GET /metrics HTTP/1.1\r\nX-Pad: " + b"a" * 20000 + b"\r\n\r\n"
    assert raw(host, port, big).startswith(b"HTTP/1.1 431")
    assert get(base + "/nothing")[0] == 404
    assert get(base + "/metrics", method="POST")[0] == 405
    head = raw(host, port, b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and head.endswith(b"\r\n\r\n"), head
    # 40 idle connections: the bound is 16, and each newcomer takes the oldest idle one's slot,
    # so a health check still gets through the crowd at once.
    idle = [socket.create_connection((host, int(port)), timeout=5) for _ in range(40)]
    start = time.time()
    assert get(base + "/healthz")[0] == 200
    assert time.time() - start < 1.5, "the health check waited for the idle crowd"
    closed = 0
    for c in idle:
        c.settimeout(0.2)
        try:
            closed += c.recv(1) == b""
        except (socket.timeout, ConnectionResetError):
            pass
    assert closed >= 40 - 16, f"only {closed} of 40 idle connections were closed"
    for c in idle:
        c.close()
    end = time.time() + 10
    while get(base + "/healthz")[0] != 200:
        assert time.time() < end, "the endpoint did not serve again"
        time.sleep(0.02)
    print(f"OK {closed} idle connections closed")


if __name__ == "__main__":
    globals()[sys.argv[1]](*sys.argv[2:])
