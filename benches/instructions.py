#!/usr/bin/env python3
"""User-space instructions per request on the server side of `ezarch up`, counted by callgrind.

    .venv/bin/python3 benches/instructions.py [EZARCH_BINARY] [--in-flight N]

Runs `ezarch up` and two `ezarch worker echo` under `valgrind --tool=callgrind`, sends N1 and
then (in a second, fresh system) N2 echo requests of 32 bytes from a pyzmq DEALER speaking
generation 1, stops every process with SIGTERM (callgrind writes its counts on exit) and sums
the instructions of all three. (total(N2) - total(N1)) / (N2 - N1) is what one request costs the
server side, start-up and shutdown cancelled out. Instruction counts do not depend on how busy
the machine is, so one run says it. Prints the node alone and the whole server side.
"""
import argparse
import glob
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

import zmq

PORTS = ["IN_PIPE_PORT_A", "IN_PIPE_PORT_B", "BROKER_PIPE_PORT_A", "BROKER_BROADCAST_PORT",
         "WORKER_PIPE_PORT_A", "WORKER_PIPE_PORT_B"]
PAYLOAD = b"p" * 32


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, what, timeout=120.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            sys.exit(f"timed out waiting for {what}")
        time.sleep(0.05)


def listening(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


def run_system(binary, requests, in_flight, outdir):
    """Starts the system under callgrind, sends `requests`, stops it; returns {role: instructions}."""
    ports = [free_port() for _ in PORTS]
    flags = ["--env", "/dev/null", "--log-level", "warn"]
    for name, port in zip(PORTS, ports):
        flags += ["--set", f"{name}={port}"]
    env = dict(os.environ, GEN2_WORKER_PORT="0", MONITOR_PORT="0")
    procs = {}
    for role, args in [("up", ["up"]), ("worker1", ["worker", "echo"]), ("worker2", ["worker", "echo"])]:
        out = os.path.join(outdir, f"{role}-{requests}.out")
        procs[role] = (subprocess.Popen(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", binary] + flags + args,
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), out)
        if role == "up":
            wait_for(lambda: listening(ports[0]), "ezarch up to listen")
    ctx = zmq.Context()
    client = ctx.socket(zmq.DEALER)
    client.connect(f"tcp://127.0.0.1:{ports[0]}")

    def request(seq):
        client.send_multipart([b"", b"\x02", seq.to_bytes(8, "big"), b"echo", b"/echo", PAYLOAD])

    # Until both workers serve: a request answered OK by each (NO_SERVICE/BUSY before they join).
    seq, served = 0, 0
    deadline = time.monotonic() + 120
    while served < 20:
        if time.monotonic() > deadline:
            sys.exit("the workers never answered")
        request(seq)
        seq += 1
        if client.poll(2000) and client.recv_multipart()[2] == b"OK":
            served += 1
        else:
            time.sleep(0.1)
    sent = done = 0
    while done < requests:
        while sent < requests and sent - done < in_flight:
            request(seq + sent)
            sent += 1
        reply = client.recv_multipart()
        if reply[2] != b"OK":
            sys.exit(f"unexpected reply {reply}")
        done += 1
    client.close(0)
    ctx.term()
    counts = {}
    for role, (proc, out) in procs.items():
        proc.send_signal(signal.SIGTERM)
    for role, (proc, out) in procs.items():
        proc.wait(timeout=120)
        counts[role] = total_instructions(out)
    return counts


def total_instructions(path):
    with open(path) as f:
        for line in f:
            if line.startswith("summary:") or line.startswith("totals:"):
                return int(line.split()[1])
    sys.exit(f"no totals in {path}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binary", nargs="?", default="target/release/ezarch")
    parser.add_argument("--in-flight", type=int, default=1)
    parser.add_argument("--small", type=int, default=2000)
    parser.add_argument("--large", type=int, default=6000)
    parser.add_argument("--keep", help="a directory to keep callgrind's files in, for callgrind_annotate")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        outdir = args.keep or scratch
        os.makedirs(outdir, exist_ok=True)  # valgrind cannot write into a missing directory
        small = run_system(args.binary, args.small, args.in_flight, outdir)
        large = run_system(args.binary, args.large, args.in_flight, outdir)
    n = args.large - args.small
    node = (large["up"] - small["up"]) / n
    server = sum(large.values()) / n - sum(small.values()) / n
    print(f"{args.binary}, {args.in_flight} in flight: {node:,.0f} instructions per request in "
          f"`ezarch up`, {server:,.0f} on the whole server side (node + 2 workers)")


if __name__ == "__main__":
    main()
