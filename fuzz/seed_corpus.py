#!/usr/bin/env python3
"""Builds fuzz/corpus/<target>/ seeds from the pyzmq golden vectors in tests/vectors/ and the
golden CURVE transcripts in zmtp/tests/vectors/.

Each target's input starts with a chunk-size seed byte (and, for `session`, a socket-type byte
first: 0 ROUTER, 1 DEALER, 2 PUB, 3 SUB), so the seeds are the vectors behind those bytes. The
CURVE server and client targets are the transcripts' seeded peers: the client's bytes seed
`curve_server`, the server's `curve_client`, whole and cut after each handshake command.
"""
import os

HERE = os.path.dirname(os.path.abspath(__file__))
VECTORS = os.path.join(HERE, "..", "tests", "vectors")
CURVE_VECTORS = os.path.join(HERE, "..", "zmtp", "tests", "vectors")
CORPUS = os.path.join(HERE, "corpus")


def vec(name):
    with open(os.path.join(VECTORS, name), "rb") as f:
        return f.read()


def write(target, name, data):
    os.makedirs(os.path.join(CORPUS, target), exist_ok=True)
    with open(os.path.join(CORPUS, target, name), "wb") as f:
        f.write(data)


def main():
    frames = [n for n in sorted(os.listdir(VECTORS)) if n.endswith(".bin") and not n.startswith("handshake")]
    # session: (our type, the vector's peer) pairs that handshake, then traffic after it.
    peers = {"dealer": 0, "router": 1, "sub": 2, "pub": 3}
    for peer, ours in peers.items():
        for suffix in ("", "_id"):
            hello = vec("handshake_%s%s.bin" % (peer, suffix))
            for chunk in (1, 10, 64, 255):
                write("session", "%s%s_%d" % (peer, suffix, chunk), bytes([ours, chunk]) + hello)
            traffic = b"".join(vec(n) for n in frames)
            write("session", "%s%s_traffic" % (peer, suffix), bytes([ours, 200]) + hello + traffic)
            write("greeting", "%s%s" % (peer, suffix), bytes([64]) + hello[:64])
            write("greeting", "%s%s_split" % (peer, suffix), bytes([1]) + hello[:64])
            write("command", "ready_%s%s" % (peer, suffix), hello[66:])
    for name in frames:
        data = vec(name)
        write("frame_decoder", name, bytes([7]) + data)
        if data[0] & 0x04:
            write("command", name, data[2:])
    for target, name in (("curve_server", "curve_to_server.bin"), ("curve_client", "curve_to_client.bin")):
        with open(os.path.join(CURVE_VECTORS, name), "rb") as f:
            transcript = f.read()
        for chunk in (1, 64, 255):
            write(target, "transcript_%d" % chunk, bytes([chunk]) + transcript)
        # Cut after the greeting and after each command, so each step is a seed of its own.
        at = 64
        while at < len(transcript):
            size = transcript[at + 1] if transcript[at] & 0x02 == 0 else int.from_bytes(transcript[at + 1:at + 9], "big")
            at += (2 if transcript[at] & 0x02 == 0 else 9) + size
            write(target, "cut_%d" % at, bytes([255]) + transcript[:at])
    print("seeded", CORPUS)


if __name__ == "__main__":
    main()
