"""mesh validate checks discovery settings with the source's own plugin, as mesh run would."""

from __future__ import annotations

from pathlib import Path

import pytest

from mesh.cli import main

CONFIG = """\
listeners: [{name: l, address: "127.0.0.1:1", protocol: tcp, cluster: c}]
clusters: [{name: c, discovery: {source: SOURCE, config: {name: localhost, port: PORT}}}]
"""


@pytest.mark.parametrize("source,port,ok,message", [
    ("dns", "80", True, ""),
    ("dns", "0", False, "clusters[0].discovery.config (dns): port is required"),
    ("nosuch", "80", False, "clusters[0].discovery.source: no discovery source named 'nosuch'"),
])
def test_validate_builds_discovery_sources(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                           source: str, port: str, ok: bool, message: str) -> None:
    path = tmp_path / "mesh.yaml"
    path.write_text(CONFIG.replace("SOURCE", source).replace("PORT", port))
    assert main(["validate", str(path)]) == (0 if ok else 2)
    if not ok:
        err = capsys.readouterr().err
        assert str(path) in err and message in err and "Fix:" in err


def test_validate_checks_the_nacos_routes_address(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text('listeners: [{name: g, address: "127.0.0.1:1", protocol: http1, '
                    'routes: [{cluster: c}], nacos_routes: {address: "x::y", data_id: r.yaml}}]\n'
                    'clusters: [{name: c, endpoints: ["127.0.0.1:2"]}]\n')
    assert main(["validate", str(path)]) == 2
    assert "listeners[0].nacos_routes.address" in capsys.readouterr().err
