"""The recorder's local control interface: a Unix socket, one JSON request per connection.

Request: one line {"cmd": "...", ...args}. Answer: one line {"ok": true,
"result": ...} or {"ok": false, "error": "clear text"}. Handlers are plain
callables registered by name; they run on the server's connection threads and
must only read state or enqueue work for the main loop.
"""

import errno
import json
import logging
import os
import socket
import socketserver
import threading
from collections.abc import Callable
from pathlib import Path

from recorder import limits

logger = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 64 * 1024
SOCKET_MODE = 0o660


class ControlError(Exception):
    """The recorder refused the command; the message is meant for the user."""


class RecorderUnavailable(Exception):
    """No recorder answers on the socket (missing, refused or timed out)."""


def request(socket_path: Path, cmd: str, timeout: float = limits.CONTROL_TIMEOUT_S, **args):
    """Send one command and return its result; raise ControlError or RecorderUnavailable."""
    payload = (json.dumps({"cmd": cmd, **args}) + "\n").encode()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(socket_path))
            sock.sendall(payload)
            data = _read_line(sock)
    except (FileNotFoundError, ConnectionRefusedError) as exc:
        raise RecorderUnavailable(f"the recorder is not running ({socket_path})") from exc
    except TimeoutError as exc:
        raise RecorderUnavailable(f"the recorder did not answer within {timeout:.0f} s") from exc
    except OSError as exc:
        raise RecorderUnavailable(f"cannot reach the recorder: {exc.strerror or exc}") from exc
    if not data:
        raise RecorderUnavailable("the recorder closed the connection without an answer")
    try:
        answer = json.loads(data)
    except ValueError as exc:
        raise RecorderUnavailable("the recorder sent an unreadable answer") from exc
    if not isinstance(answer, dict):
        raise RecorderUnavailable("the recorder sent an unreadable answer")
    if not answer.get("ok"):
        raise ControlError(str(answer.get("error") or "the recorder refused the command"))
    return answer.get("result")


def _read_line(sock: socket.socket) -> bytes:
    chunks = []
    size = 0
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        if b"\n" in chunk:
            break
    return b"".join(chunks).split(b"\n", 1)[0]


def _answer(handlers: dict[str, Callable], raw: bytes) -> dict:
    try:
        req = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return {"ok": False, "error": "the request is not valid JSON"}
    if not isinstance(req, dict) or not isinstance(req.get("cmd"), str):
        return {"ok": False, "error": 'the request must be a JSON object with a "cmd" string'}
    cmd = req.pop("cmd")
    handler = handlers.get(cmd)
    if handler is None:
        return {"ok": False, "error": f"unknown command {cmd!r}; known: {', '.join(sorted(handlers))}"}
    try:
        return {"ok": True, "result": handler(**req)}
    except TypeError as exc:
        return {"ok": False, "error": f"bad arguments for {cmd}: {exc}"}
    except (ControlError, ValueError, KeyError, LookupError, OSError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        return {"ok": False, "error": str(message) or f"{cmd} failed"}
    except Exception:  # noqa: BLE001 - the server must answer and stay up
        logger.exception("control command %s failed", cmd)
        return {"ok": False, "error": f"{cmd} failed inside the recorder (see its log)"}


class _Handler(socketserver.StreamRequestHandler):
    timeout = limits.CONTROL_TIMEOUT_S

    def handle(self) -> None:
        try:
            raw = self.rfile.readline(MAX_REQUEST_BYTES + 1)
        except (TimeoutError, OSError):
            return
        if len(raw) > MAX_REQUEST_BYTES:
            answer = {"ok": False, "error": "the request is too large"}
        else:
            answer = _answer(self.server.handlers, raw)
        try:
            self.wfile.write((json.dumps(answer, default=str) + "\n").encode())
        except OSError:
            logger.debug("control client went away", exc_info=True)


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    handlers: dict[str, Callable]


class ControlServer:
    """Serves registered commands on a Unix socket (mode 0660)."""

    def __init__(self, socket_path: Path):
        self.socket_path = Path(socket_path)
        self.handlers: dict[str, Callable] = {}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def register(self, name: str, handler: Callable) -> None:
        self.handlers[name] = handler

    def start(self) -> None:
        """Bind (refusing if another recorder answers) and serve on a thread."""
        self._remove_stale()
        server = _Server(str(self.socket_path), _Handler, bind_and_activate=False)
        server.handlers = self.handlers
        # The socket gets its mode from the umask as it is made: a chmod by path
        # afterwards would follow whatever the panel's user put there meanwhile.
        old = os.umask(0o777 & ~SOCKET_MODE)
        try:
            server.server_bind()
        finally:
            os.umask(old)
        server.server_activate()
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.5},
                                        name="control", daemon=True)
        self._thread.start()
        logger.info("control socket at %s", self.socket_path)

    def _remove_stale(self) -> None:
        if not os.path.lexists(self.socket_path):
            return
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(1.0)
            try:
                sock.connect(str(self.socket_path))
            except OSError as exc:
                if exc.errno not in (errno.ECONNREFUSED, errno.ENOENT, errno.ENOTSOCK):
                    raise
            else:
                raise RuntimeError(f"another recorder is already running ({self.socket_path})")
        self.socket_path.unlink(missing_ok=True)

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._server = None
        try:
            self.socket_path.unlink()
        except FileNotFoundError:
            pass
