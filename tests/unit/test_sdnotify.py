"""Tests of the sd_notify helper against a real datagram socket."""

import os
import socket

import pytest

from recorder import sdnotify


@pytest.fixture
def notify_socket(tmp_path, monkeypatch):
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    yield sock
    sock.close()


def test_messages_reach_the_socket(notify_socket):
    assert sdnotify.ready("recording 2 streams")
    assert notify_socket.recv(256) == b"READY=1\nSTATUS=recording 2 streams"
    assert sdnotify.watchdog()
    assert notify_socket.recv(256) == b"WATCHDOG=1"
    assert sdnotify.stopping()
    assert notify_socket.recv(256) == b"STOPPING=1"


def test_abstract_socket_names_are_supported(monkeypatch):
    name = f"picorder-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert sdnotify.status("hello")
        assert sock.recv(64) == b"STATUS=hello"


def test_without_systemd_nothing_is_sent(monkeypatch, tmp_path):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert sdnotify.watchdog() is False
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone"))
    assert sdnotify.watchdog() is False


def test_watchdog_interval_is_half_of_watchdog_sec(monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert sdnotify.watchdog_interval_s() == 15.0
    monkeypatch.setenv("WATCHDOG_PID", "1")
    assert sdnotify.watchdog_interval_s() is None
    monkeypatch.delenv("WATCHDOG_USEC")
    monkeypatch.delenv("WATCHDOG_PID")
    assert sdnotify.watchdog_interval_s() is None
