#!/usr/bin/env python3
"""Hold N idle HTTP/1.1 keep-alive connections open to one server.

    idle-conns.py [--src ADDR] [--inflight K] [--deadline S] HOST PORT N PATH

Opens N TCP connections (at most K handshakes/requests in flight at once),
sends one complete `GET PATH` request on each, reads the whole response, and
then keeps the connection open and idle, so the server holds it as a real
keep-alive connection, not a half-open one.

Protocol on stdout/stdin (used by bench/run):
  - once every connection is idle or has failed (or the deadline passed, or
    the rate so far shows N cannot be reached before the deadline) it prints
    one line:  ready held=H failed=F secs=T [reasons=why:count,...] [gave-up=(...)]
  - a line "check" on stdin answers "alive A": how many held connections the
    server has not closed;
  - end of stdin (or SIGTERM/SIGINT) closes every connection with a reset (no
    TIME_WAIT left on the loopback ports) and exits.

Python 3 standard library only.
"""
import argparse
import collections
import errno
import os
import resource
import select
import selectors
import signal
import socket
import sys
import time

IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)


class Conn:
    __slots__ = ("sock", "state", "out", "buf", "need")

    def __init__(self, sock, request):
        self.sock = sock
        self.state = "connect"
        self.out = request
        self.buf = b""
        self.need = None  # bytes of the full response once the head is parsed


def raise_nofile(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = n + 64
    if soft >= want:
        return
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(want, soft), max(want, hard)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def parse_head(buf):
    """Returns (status, total_length) once the head is in buf, else None.
    total_length is None when the response has no Content-Length."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    lines = buf[:end].split(b"\r\n")
    try:
        status = int(lines[0].split()[1])
    except (IndexError, ValueError):
        status = 0
    length = None
    close = False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            try:
                length = int(value.strip())
            except ValueError:
                pass
        elif name == b"connection" and b"close" in value.lower():
            close = True
    total = end + 4 + length if length is not None else None
    return status, total, close


def reset_close(sock):
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    except OSError:
        pass
    sock.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("n", type=int)
    ap.add_argument("path")
    ap.add_argument("--src", default=None, help="source address to bind (e.g. 127.0.0.2)")
    ap.add_argument("--inflight", type=int, default=256)
    ap.add_argument("--deadline", type=float, default=45.0)
    ap.add_argument("--give-up-after", type=float, default=5.0,
                    help="after this many seconds, stop early if the rate so far "
                         "cannot reach N before the deadline")
    a = ap.parse_args()

    raise_nofile(a.n)
    request = (
        f"GET {a.path} HTTP/1.1\r\nHost: {a.host}:{a.port}\r\n"
        "User-Agent: catamount-bench-idle\r\nAccept: */*\r\n\r\n"
    ).encode()

    sel = selectors.DefaultSelector()
    held = []
    failed = 0
    reasons = collections.Counter()
    started = 0
    inflight = 0
    t0 = time.monotonic()
    deadline = t0 + a.deadline

    def fail(c, why):
        nonlocal failed, inflight
        try:
            sel.unregister(c.sock)
        except (KeyError, ValueError):
            pass
        c.sock.close()
        failed += 1
        inflight -= 1
        reasons[why] += 1

    too_slow = None
    next_rate_check = t0 + a.give_up_after
    while (started < a.n or inflight) and time.monotonic() < deadline:
        now = time.monotonic()
        if now >= next_rate_check:
            next_rate_check = now + 1.0
            rate = len(held) / (now - t0)
            left = a.n - len(held)
            if rate <= 0 or now + left / rate > deadline:
                too_slow = (f"too-slow: {len(held)} in {now - t0:.1f}s = {rate:.0f} conns/s, "
                            f"{a.n} would take ~{a.n / rate:.0f}s" if rate > 0 else
                            f"too-slow: none in {now - t0:.1f}s")
                break
        while started < a.n and inflight < a.inflight:
            started += 1
            try:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            except OSError as e:
                failed += 1
                reasons[errno.errorcode.get(e.errno, str(e.errno))] += 1
                continue
            s.setblocking(False)
            try:
                if a.src:
                    try:
                        s.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
                    except OSError:
                        pass
                    s.bind((a.src, 0))
                rc = s.connect_ex((a.host, a.port))
            except OSError as e:
                s.close()
                failed += 1
                reasons[errno.errorcode.get(e.errno, str(e.errno))] += 1
                continue
            if rc not in (0, errno.EINPROGRESS):
                s.close()
                failed += 1
                reasons[errno.errorcode.get(rc, str(rc))] += 1
                continue
            c = Conn(s, request)
            inflight += 1
            sel.register(s, selectors.EVENT_WRITE, c)

        for key, ev in sel.select(timeout=0.2):
            c = key.data
            s = c.sock
            if c.state == "connect":
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    fail(c, errno.errorcode.get(err, str(err)))
                    continue
                c.state = "send"
            if c.state == "send":
                try:
                    n = s.send(c.out)
                except BlockingIOError:
                    continue
                except OSError as e:
                    fail(c, errno.errorcode.get(e.errno, str(e.errno)))
                    continue
                c.out = c.out[n:]
                if not c.out:
                    c.state = "recv"
                    sel.modify(s, selectors.EVENT_READ, c)
                continue
            if c.state == "recv":
                try:
                    data = s.recv(65536)
                except BlockingIOError:
                    continue
                except OSError as e:
                    fail(c, errno.errorcode.get(e.errno, str(e.errno)))
                    continue
                if not data:
                    fail(c, "closed-before-response-end")
                    continue
                c.buf += data
                if c.need is None:
                    head = parse_head(c.buf)
                    if head is None:
                        continue
                    status, total, close = head
                    if status != 200:
                        fail(c, f"status-{status}")
                        continue
                    if total is None or close:
                        fail(c, "not-keep-alive")
                        continue
                    c.need = total
                if len(c.buf) >= c.need:
                    sel.unregister(s)
                    c.state = "idle"
                    c.buf = b""
                    held.append(s)
                    inflight -= 1

    # Whatever is still in progress at the deadline counts as failed.
    for key in list(sel.get_map().values()):
        fail(key.data, "too-slow" if too_slow else "deadline")
    sel.close()

    secs = time.monotonic() - t0
    line = f"ready held={len(held)} failed={failed} secs={secs:.2f}"
    if reasons:
        line += " reasons=" + ",".join(f"{k}:{v}" for k, v in reasons.most_common())
    if too_slow:
        line += f" gave-up=({too_slow})"
    print(line, flush=True)

    def shutdown(*_):
        for s in held:
            reset_close(s)
        os._exit(0)

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)

    for cmd in sys.stdin:
        if cmd.strip() == "check":
            print(f"alive {count_alive(held)}", flush=True)
    shutdown()


def count_alive(held):
    """Held sockets the server has not closed (no EOF, no error pending)."""
    ep = select.epoll()
    fds = {}
    for s in held:
        fds[s.fileno()] = s
        ep.register(s.fileno(), select.EPOLLIN | select.EPOLLRDHUP)
    dead = 0
    for fd, ev in ep.poll(0, maxevents=max(1, len(fds))):
        s = fds[fd]
        if ev & (select.EPOLLRDHUP | select.EPOLLHUP | select.EPOLLERR):
            dead += 1
            continue
        try:
            if s.recv(1, socket.MSG_PEEK) == b"":
                dead += 1
        except BlockingIOError:
            pass
        except OSError:
            dead += 1
    ep.close()
    return len(held) - dead


if __name__ == "__main__":
    main()
