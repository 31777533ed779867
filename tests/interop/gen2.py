#!/usr/bin/env python3
"""Generation-2 peers for the end-to-end tests: the author's published package pyez 0.1.1
(WorkerConnection, ClientConnection), used unmodified, and a raw generation-2 worker that never
ACKs. `gen2.py ROLE ARGS...`; each prints `OK ...` and exits 0, or raises (exit 1).
"""
import asyncio
import os
import sys
import time

import zmq
from pyez import ClientConnection, WorkerConnection


def pyez_worker(endpoint, service, seconds="10", delay_ms="0"):
    """A pyez WorkerConnection: /echo answers ["OK", args...], /fail ["ERR", "boom"]. Prints
    READY once connected and how many requests it served when done."""
    served = 0

    async def handler(frames):
        nonlocal served
        served += 1
        await asyncio.sleep(int(delay_ms) / 1000)
        if frames and frames[0] == b"/fail":
            return [b"ERR", b"boom"]
        return [b"OK"] + frames[1:]

    async def main():
        async with WorkerConnection(con_s=endpoint, service_name=service.encode(), liveliness=300) as conn:
            print("READY")
            sys.stdout.flush()
            try:
                await asyncio.wait_for(conn.serve(handler), timeout=float(seconds))
            except asyncio.TimeoutError:
                pass

    asyncio.run(main())
    print("OK pyez_worker served %d" % served)
    sys.stdout.flush()
    os._exit(0)


def pyez_client(endpoint, service, count="10", path="/echo", expect="OK"):
    """A pyez ClientConnection: `count` requests; each answer must start with `expect`."""

    async def main():
        async with ClientConnection(endpoint) as client:
            for i in range(int(count)):
                arg = b"arg-%d" % i
                got = await client.req(service.encode(), [path.encode(), arg], timeout=10000)
                if expect == "OK":
                    assert got == [b"OK", arg], got
                else:
                    assert got[0] == expect.encode(), got
                last = got
        return last

    last = asyncio.run(main())
    print("OK pyez_client %s last %r" % (count, last))
    sys.stdout.flush()
    os._exit(0)


def silent_gen2_worker(endpoint, service, seconds="10"):
    """A generation-2 worker that heartbeats but never ACKs or answers what it is sent."""
    ctx = zmq.Context()
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.ROUTING_ID, service.encode() + b"-silent")
    s.setsockopt(zmq.LINGER, 0)
    s.connect(endpoint)
    end, received = time.time() + float(seconds), 0
    while time.time() < end:
        s.send_multipart([b"", b"\x01", b"\x01", service.encode()])
        while s.poll(100):
            s.recv_multipart()
            received += 1
            print("GOT %d" % received)
            sys.stdout.flush()
    print("OK silent_gen2_worker received %d" % received)
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    globals()[sys.argv[1]](*sys.argv[2:])
