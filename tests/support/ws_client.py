"""A real WebSocket client for tests/upgrade.rs: the `websockets` package
from PyPI (its sync client, websockets >= 11; scripts/install-deps
installs it), driving examples/websocket_echo.rs.

    ws_client.py echo TARGET [CAFILE]    every kind of message, ping, close
    ws_client.py hold TARGET [CAFILE]    one echo, print "open", then wait
                                         for the server to close and print
                                         "closed CODE REASON"

TARGET is ws://HOST:PORT/, wss://HOST:PORT/ (CAFILE is the CA to trust) or
unix:PATH. Every wait has a deadline; a failed check exits non-zero with a
line that says what differed.
"""

import ssl
import sys

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect, unix_connect

# Seconds any one step may take before the client gives up.
STEP = 10
# Seconds `hold` waits for the server to close (the test stops it first).
HOLD = 60


def open_ws(target, cafile):
    if target.startswith("unix:"):
        return unix_connect(target[len("unix:"):], "ws://localhost/", open_timeout=STEP,
                            close_timeout=STEP)
    context = ssl.create_default_context(cafile=cafile) if target.startswith("wss:") else None
    return connect(target, ssl=context, open_timeout=STEP, close_timeout=STEP)


def expect(what, got, want):
    if got != want:
        sys.exit(f"{what}: got {got!r:.200}, want {want!r:.200}")


def echo(ws):
    messages = ["hello ✓", "", "x" * 70000, bytes(range(256)), bytes(200000)]
    for message in messages:
        ws.send(message)
        expect(f"echo of a {type(message).__name__} of {len(message)}", ws.recv(timeout=STEP),
               message)
    # Fragmented messages (the client sends each item as a frame).
    ws.send(["frag", "mented ", "text"])
    expect("fragmented text", ws.recv(timeout=STEP), "fragmented text")
    ws.send([b"\x01", b"\x02\x03"])
    expect("fragmented binary", ws.recv(timeout=STEP), b"\x01\x02\x03")
    expect("pong", ws.ping(b"are you there").wait(STEP), True)
    ws.close()
    expect("close code echoed", ws.close_code, 1000)
    print("echo ok", flush=True)


def hold(ws):
    ws.send("ping")
    expect("first echo", ws.recv(timeout=STEP), "ping")
    print("open", flush=True)
    try:
        while True:
            got = ws.recv(timeout=HOLD)
            sys.exit(f"unexpected message {got!r:.200}")
    except ConnectionClosed as e:
        code, reason = (e.rcvd.code, e.rcvd.reason) if e.rcvd else ("none", "")
        print(f"closed {code} {reason}", flush=True)
    except TimeoutError:
        sys.exit(f"the server did not close within {HOLD}s")


def main():
    mode, target = sys.argv[1], sys.argv[2]
    cafile = sys.argv[3] if len(sys.argv) > 3 else None
    with open_ws(target, cafile) as ws:
        {"echo": echo, "hold": hold}[mode](ws)


if __name__ == "__main__":
    main()
