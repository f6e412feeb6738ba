"""The gateway's TAWASUL_METRICS_ADDRESS is taken as the services' is: one that is no
host:port, or that cannot be listened on, stops it with one line naming the variable, where it
died in a traceback from int() or the socket."""

from __future__ import annotations

import socket

import pytest
from tawasul_gateway.entrypoints import main, metrics
from tawasul_platform.settings import CannotStart


def test_an_address_that_is_no_host_and_port_stops_the_gateway_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in {
        "TAWASUL_INTAKE_ADDRESS": "intake:50051",
        "TAWASUL_DOCS_ADDRESS": "docs:50051",
        "TAWASUL_METRICS_ADDRESS": "0.0.0.0:metrics",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(main, "configure_logging", lambda *_: None)

    assert main.main([]) == 1

    assert capsys.readouterr().err.splitlines() == [
        "tawasul-gateway: cannot start: TAWASUL_METRICS_ADDRESS: 0.0.0.0:metrics is not host:port"
    ]


def test_an_address_in_use_is_named() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        with pytest.raises(CannotStart) as refused:
            metrics.serve(address)
    assert str(refused.value).startswith(f"TAWASUL_METRICS_ADDRESS: cannot listen on {address}: ")
