"""Ports handed to children stay out of the way of outgoing connections."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from consensus_engine.devtools import process
from consensus_engine.devtools.process import free_port

LINUX_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


@pytest.mark.skipif(not LINUX_RANGE.exists(), reason="no Linux port range here")
def test_a_free_port_lies_below_the_range_outgoing_connections_draw_from() -> None:
    low = int(LINUX_RANGE.read_text().split()[0])
    ports = [free_port() for _ in range(50)]
    assert all(port < low for port in ports), ports
    assert len(set(ports)) == len(ports)


def test_a_free_port_can_be_bound() -> None:
    port = free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as child:
        child.bind(("127.0.0.1", port))
        child.listen()


def test_without_a_known_range_the_kernel_chooses(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(process, "EPHEMERAL_RANGE", tmp_path / "absent")
    assert 0 < free_port() < 65536
