"""Asks a DNS server for NAME's A record over UDP; exits 0 when WANT is among the answers.
Usage: dns_query.py SERVER PORT NAME WANT"""
import socket
import struct
import sys

server, port, name, want = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
query = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
query += b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
query += struct.pack(">HH", 1, 1)
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.settimeout(2)
sock.sendto(query, (server, port))
reply, _ = sock.recvfrom(4096)
answers = struct.unpack(">H", reply[6:8])[0]
# Skip the question, then read each answer's RDATA (names are compressed pointers here).
pos = len(query)
found = []
for _ in range(answers):
    if reply[pos] & 0xC0 == 0xC0:
        pos += 2
    else:
        while reply[pos]:
            pos += reply[pos] + 1
        pos += 1
    rtype, _, _, length = struct.unpack(">HHIH", reply[pos : pos + 10])
    pos += 10
    if rtype == 1 and length == 4:
        found.append(socket.inet_ntoa(reply[pos : pos + 4]))
    pos += length
sys.exit(0 if want in found else 1)
