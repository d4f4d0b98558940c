"""An LDAPS relay in front of the test Samba DC that can lose one answer on purpose.

It terminates TLS with the DC's own certificate and key (so clients validate it exactly as they
validate the DC), relays each LDAP message to the DC over LDAPS, and, when armed, closes the
client's connection instead of relaying the DC's answer to the next modify request. The DC has
applied that modify; the client never hears of it: the "connection dropped after the modify" of
a real network. Messages are framed by their BER length; nothing else is parsed.
"""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import threading
from pathlib import Path

MODIFY_RESPONSE = 0x67  # [APPLICATION 7], constructed (RFC 4511)


def _message_length(buffer: bytes) -> int | None:
    """The length of the first whole BER message in `buffer`, or None until it has arrived."""
    if len(buffer) < 2:
        return None
    first = buffer[1]
    if first < 0x80:
        header, body = 2, first
    else:
        count = first & 0x7F
        if len(buffer) < 2 + count:
            return None
        header, body = 2 + count, int.from_bytes(buffer[2 : 2 + count], "big")
    return header + body if len(buffer) >= header + body else None


def _operation(message: bytes) -> int:
    """The protocolOp tag: after the SEQUENCE header and the messageID INTEGER."""
    first = message[1]
    offset = 2 if first < 0x80 else 2 + (first & 0x7F)
    return message[offset + 2 + message[offset + 1]]


class LdapsRelay:
    """TLS terminated with the DC's own certificate and key, each connection relayed to the DC
    over LDAPS on its own thread; subclasses say what `_relay` does with the messages."""

    def __init__(self, dc_directory: Path, upstream: tuple[str, int], server_name: str) -> None:
        tls = dc_directory / "private" / "tls"
        self._server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._server_tls.load_cert_chain(tls / "cert.pem", tls / "key.pem")
        self._client_tls = ssl.create_default_context(cafile=str(tls / "ca.pem"))
        self._upstream = upstream
        self._server_name = server_name
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"ldaps://127.0.0.1:{self.port}"

    def close(self) -> None:
        self._stop.set()
        self._listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, raw_client: socket.socket) -> None:
        try:
            client = self._server_tls.wrap_socket(raw_client, server_side=True)
            upstream = self._client_tls.wrap_socket(
                socket.create_connection(self._upstream), server_hostname=self._server_name
            )
        except (OSError, ssl.SSLError):
            raw_client.close()
            return
        self._relay(client, upstream)

    def _relay(self, client: ssl.SSLSocket, upstream: ssl.SSLSocket) -> None:
        raise NotImplementedError


class DroppingLdapsRelay(LdapsRelay):
    def __init__(self, dc_directory: Path, upstream: tuple[str, int], server_name: str) -> None:
        self._armed = threading.Event()
        self.dropped = 0
        super().__init__(dc_directory, upstream, server_name)

    def drop_next_modify_answer(self) -> None:
        self._armed.set()

    def _relay(self, client: ssl.SSLSocket, upstream: ssl.SSLSocket) -> None:
        answers = b""
        with contextlib.closing(client), contextlib.closing(upstream):
            while not self._stop.is_set():
                ready = [s for s in (client, upstream) if s.pending()]
                if not ready:
                    ready, _, _ = select.select([client, upstream], [], [], 0.2)
                for source in ready:
                    try:
                        data = source.recv(65536)
                    except (OSError, ssl.SSLError):
                        return
                    if not data:
                        return
                    if source is client:
                        upstream.sendall(data)
                        continue
                    answers += data
                    while (length := _message_length(answers)) is not None:
                        message, answers = answers[:length], answers[length:]
                        if self._armed.is_set() and _operation(message) == MODIFY_RESPONSE:
                            self._armed.clear()
                            self.dropped += 1
                            return  # both connections close: the answer is lost
                        client.sendall(message)
