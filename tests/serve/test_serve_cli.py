"""``puyu serve`` argument handling and key management (the server start itself is covered by the other tests)."""

from __future__ import annotations

import argparse
import json

import pytest

from puyu_apps.serve.cli import _config, add_serve_command
from puyu_apps.serve.keys import KeyStore


def _parse(argv):
    parser = argparse.ArgumentParser(prog="puyu")
    add_serve_command(parser.add_subparsers(dest="command"))
    return parser.parse_args(["serve", *argv])


def test_key_management(tmp_path, capsys):
    args = _parse(["--data-dir", str(tmp_path), "--create-key", "ci", "--rate", "5"])
    assert args.func(args) == 0
    key = capsys.readouterr().out.splitlines()[0]
    store = KeyStore(tmp_path / "serve.sqlite3")
    record = store.verify(key)
    assert record is not None and record.name == "ci" and record.rate_per_min == 5
    args = _parse(["--data-dir", str(tmp_path), "--list-keys"])
    args.func(args)
    listed = json.loads(capsys.readouterr().out)
    assert [k["name"] for k in listed] == ["ci"] and key not in json.dumps(listed)
    args = _parse(["--data-dir", str(tmp_path), "--revoke-key", record.id])
    args.func(args)
    assert store.verify(key) is None


def test_config_from_arguments(tmp_path):
    cfg = _config(_parse(["--port", "9001", "--max-queue", "2", "--require-key", "yes",
                          "--ab", "medical=none,/tmp/b,0.25", "--backend-url", "http://127.0.0.1:23333/v1"]))
    assert cfg.port == 9001 and cfg.max_queue == 2 and cfg.require_api_key is True
    assert cfg.ab_tests[0].vertical == "medical" and cfg.ab_tests[0].adapter_a is None
    assert cfg.ab_tests[0].weight_b == 0.25 and cfg.backend_url.endswith("/v1")
    assert cfg.gguf_format is None and _config(_parse(["--gguf-format", "q8_0"])).gguf_format == "q8_0"
    with pytest.raises(SystemExit):
        _parse(["--gguf-format", "q3_k"])
    with pytest.raises(ValueError, match="--ab"):
        _config(_parse(["--ab", "medical"]))
    with pytest.raises(ValueError, match="max_queue"):
        _config(_parse(["--max-queue", "-1"]))
