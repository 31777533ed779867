#!/usr/bin/env python3
"""libzmq's own ROUTER->DEALER forwarder for benches/forwarder.rs: `libzmq_proxy.py FRONT BACK
[CURVE_SECRET]` (with a Z85 secret key, both sockets are CURVE servers).

zmq.proxy runs libzmq's C proxy loop (the GIL is released), so this measures libzmq, not Python.
Both sockets bind, as in EZ Arch's pipes; default HWMs, one I/O thread, like `ezarch pipe`.
"""
import sys

import zmq

ctx = zmq.Context(1)
front = ctx.socket(zmq.ROUTER)
back = ctx.socket(zmq.DEALER)
if len(sys.argv) > 3 and sys.argv[3]:
    for s in (front, back):
        s.curve_server = True
        s.curve_secretkey = sys.argv[3].encode()
front.bind(sys.argv[1])
back.bind(sys.argv[2])
try:
    zmq.proxy(front, back)
except (KeyboardInterrupt, zmq.ContextTerminated):
    pass
