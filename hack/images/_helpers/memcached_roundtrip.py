"""Stores a key in memcached and reads it back. Usage: memcached_roundtrip.py HOST PORT"""
import socket
import sys

with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2) as s:
    s.sendall(b"set probe 0 60 5\r\nhello\r\nget probe\r\nquit\r\n")
    reply = b""
    while chunk := s.recv(4096):
        reply += chunk
sys.exit(0 if b"STORED\r\nVALUE probe 0 5\r\nhello\r\nEND\r\n" in reply else 1)
