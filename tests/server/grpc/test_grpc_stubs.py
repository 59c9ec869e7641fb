"""The committed gRPC stubs are what the committed .proto files generate (grpcio-tools, pinned in the test
extra). The gRPC settings (TOYSEQ_GRPC_BIND, TOYSEQ_GRPC_MODE) are checked in tests/server/test_config.py."""

from __future__ import annotations

import pytest

from service.server.grpc import generate


def test_regenerating_the_stubs_gives_the_committed_files():
    pytest.importorskip("grpc_tools", reason="pip install -e '.[test]' (grpcio-tools)")
    files = generate.generate()
    assert sorted(files) == sorted(p.name for p in generate.OUT_DIR.glob("*_pb2*.py*"))
    for name, text in files.items():
        assert (generate.OUT_DIR / name).read_text() == text, f"{name} is stale: python -m {generate.__name__}"
    assert generate.main(["--check"]) == 0


def test_the_proto_files_name_their_origin_and_licence():
    origin = (generate.PROTO_DIR / "ORIGIN.md").read_text()
    assert "triton-inference-server/common" in origin and "BSD 3-Clause" in origin
    assert "Redistribution and use" in (generate.PROTO_DIR / "LICENSE").read_text()
    for proto in generate.PROTOS:
        assert (generate.PROTO_DIR / proto).read_text().startswith("// Copyright")
