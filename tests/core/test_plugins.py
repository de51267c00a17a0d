import os
import subprocess
import sys
from pathlib import Path

import pytest

import puyu_apps
from puyu_apps import PluginLoadError, UnknownVerticalError
from puyu_apps.pipelines import Pipeline, PipelineResult, available, get, register, unregister
from puyu_apps.pipelines.chat import ChatPipeline

ROOT = Path(__file__).resolve().parents[2]


class EchoResult(PipelineResult):
    echo: str


class EchoPipeline(Pipeline):
    name = "echo-test"
    adapter_subdir = None

    def preprocess(self, inputs, **params):
        return str(inputs).upper()

    def _forward(self, prepared):
        return prepared

    def postprocess(self, outputs):
        return EchoResult(vertical=self.name, echo=outputs)

    def warm_up(self):  # needs no LLM
        self._warm = True


def test_builtin_verticals_register_through_the_entry_point_group():
    info = available()
    assert "chat" in info and info["chat"].origin.startswith("entry point (puyu_apps==")
    assert get("chat") is ChatPipeline
    assert isinstance(puyu_apps.pipeline("chat", model="tiny-random-llama"), ChatPipeline)


def test_unknown_vertical_lists_the_available_ones():
    with pytest.raises(UnknownVerticalError) as err:
        puyu_apps.pipeline("radiology-x")
    assert "radiology-x" in str(err.value) and "chat" in str(err.value)


def test_runtime_registration_and_unregistration():
    register("echo-test", EchoPipeline)
    try:
        assert available()["echo-test"].origin == "runtime"
        assert puyu_apps.pipeline("echo-test")("hi").echo == "HI"
        with pytest.raises(ValueError, match="already registered"):
            register("echo-test", EchoPipeline)
        with pytest.raises(TypeError):
            register("not-a-pipeline", dict)  # type: ignore[arg-type]
    finally:
        unregister("echo-test")
    assert "echo-test" not in available()


def test_env_variable_restricts_entry_point_plugins(monkeypatch):
    monkeypatch.setenv("PUYU_APPS_PLUGINS", "chat")
    assert list(available()) == ["chat"]
    monkeypatch.setenv("PUYU_APPS_PLUGINS", "")
    assert available() == {}
    with pytest.raises(UnknownVerticalError):
        get("chat_missing")


def test_broken_plugin_gives_plugin_load_error_not_a_crash(monkeypatch):
    from importlib.metadata import EntryPoint

    from puyu_apps.pipelines import plugins

    broken = EntryPoint(name="broken", value="puyu_apps_no_such_module:Thing", group=plugins.GROUP)
    monkeypatch.setattr(plugins, "_entry_points", lambda: {"broken": broken})
    with pytest.raises(PluginLoadError, match="broken"):
        get("broken")


def _install_example_plugin(target: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target",
         str(target), str(ROOT / "examples" / "plugin_faq")],
        check=True, capture_output=True, text=True,
    )


def test_external_plugin_package_is_found_through_its_entry_point(tmp_path):
    target = tmp_path / "site"
    _install_example_plugin(target)
    code = (
        "import puyu_apps, json;"
        "from puyu_apps.pipelines import available;"
        "info = available()['faq'];"
        "p = puyu_apps.pipeline('faq', model='tiny-random-llama');"
        "r = p('How do I reset my password?', max_new_tokens=4);"
        "print(json.dumps({'origin': info.origin, 'cls': type(p).__name__, 'entry': r.matched_question}))"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    import json

    data = json.loads(out.stdout.strip().splitlines()[-1])
    assert data["origin"].startswith("entry point (puyu-faq-vertical==") and data["cls"] == "FAQPipeline"
    assert data["entry"] == "How do I reset my password?"


def test_import_puyu_apps_is_cheap():
    code = "import sys, puyu_apps; print(sorted(m for m in ('torch','transformers','monai','pytesseract','faster_whisper','pydicom') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
