#!/usr/bin/env python3
"""Memory per idle MQTT client of a running broker (ferrule or Mosquitto, side by side).

usage: idle_clients.py PORT N PID

Opens N raw sockets to 127.0.0.1:PORT, sends each an MQTT 3.1.1 CONNECT (keepalive 60 s) and
waits for every CONNACK; reads the broker's VmRSS (process PID) idle, with the N clients, and
2 s and 14 s after they all closed. Results for ferrule and Mosquitto are in
docs/benchmarks.md ("Embedded broker"). Needs `ulimit -n` above N.
"""
import socket
import struct
import sys
import time


def rss_kib(pid):
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def connect_packet(client_id):
    body = (struct.pack(">H", 4) + b"MQTT" + bytes([4, 2]) + struct.pack(">H", 60)
            + struct.pack(">H", len(client_id)) + client_id)
    return bytes([0x10, len(body)]) + body


def main():
    port, n, pid = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    idle = rss_kib(pid)
    socks = []
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(connect_packet(b"idle-%d" % i))
        socks.append(s)
    for s in socks:
        s.recv(4)
    time.sleep(1)
    loaded = rss_kib(pid)
    for s in socks:
        s.close()
    time.sleep(2)
    after2 = rss_kib(pid)
    time.sleep(12)
    after14 = rss_kib(pid)
    print(f"idle {idle / 1024:.1f} MiB, with {n}: {loaded / 1024:.1f} MiB "
          f"({(loaded - idle) / n:.2f} KiB each), 2 s after: {after2 / 1024:.1f} MiB, "
          f"14 s after: {after14 / 1024:.1f} MiB")


if __name__ == "__main__":
    main()
