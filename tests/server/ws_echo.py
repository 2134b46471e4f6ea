"""A stdlib WebSocket echo server, run inside a sandbox (which has no websockets package).

It accepts the first offered subprotocol, greets with the request path it saw,
then echoes each text frame as "echo: <text>".
"""

import base64
import hashlib
import socket
import struct
import sys
import threading

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def frame(text: str) -> bytes:
    data = text.encode()
    if len(data) < 126:
        return bytes([0x81, len(data)]) + data
    if len(data) < 1 << 16:
        return bytes([0x81, 126]) + struct.pack("!H", len(data)) + data
    return bytes([0x81, 127]) + struct.pack("!Q", len(data)) + data


def read_exact(conn: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            raise ConnectionError
        buf += chunk
    return buf


def serve(conn: socket.socket) -> None:
    request = b""
    while b"\r\n\r\n" not in request:
        request += conn.recv(4096)
    lines = request.decode().split("\r\n")
    path = lines[0].split(" ")[1]
    headers = {
        k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:] if ":" in line)
    }
    accept = base64.b64encode(hashlib.sha1((headers["sec-websocket-key"] + GUID).encode()).digest())
    reply = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    reply += f"Sec-WebSocket-Accept: {accept.decode()}\r\n"
    if "sec-websocket-protocol" in headers:
        reply += (
            f"Sec-WebSocket-Protocol: {headers['sec-websocket-protocol'].split(',')[0].strip()}\r\n"
        )
    conn.sendall((reply + "\r\n").encode())
    conn.sendall(frame(f"path: {path}"))
    while True:
        first, second = read_exact(conn, 2)
        opcode, length = first & 0x0F, second & 0x7F
        if length == 126:
            length = struct.unpack("!H", read_exact(conn, 2))[0]
        elif length == 127:
            length = struct.unpack("!Q", read_exact(conn, 8))[0]
        mask = read_exact(conn, 4)
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(read_exact(conn, length)))
        if opcode == 8:
            conn.sendall(bytes([0x88, 0]))
            return
        if opcode == 1:
            conn.sendall(frame("echo: " + payload.decode()))


def main() -> None:
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", int(sys.argv[1])))
    server.listen()
    while True:
        conn, _ = server.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


main()
