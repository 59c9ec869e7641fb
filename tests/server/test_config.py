"""The settings (service/server/config.py): defaults, TOYSEQ_ variables and mappings checked before anything
starts; a bad value refused with one line naming what is accepted, by the app factory and by gunicorn."""

from __future__ import annotations

import shutil

import pytest

from service import create_app
from service.server.config import Config, ConfigError
from tests.support.start import run_gunicorn


def test_grpc_bind_defaults_to_8001_and_empty_turns_it_off():
    assert Config.load(environ={}).grpc_bind == "127.0.0.1:8001"
    assert Config.load(environ={"TOYSEQ_GRPC_BIND": ""}).grpc_bind == ""
    assert Config.load(environ={"TOYSEQ_GRPC_BIND": "0.0.0.0:9001"}).grpc_bind == "0.0.0.0:9001"
    with pytest.raises(ConfigError, match="GRPC_MODE"):
        Config.load(environ={"TOYSEQ_GRPC_MODE": "threads"})


def test_model_control_setting_is_checked():
    with pytest.raises(ConfigError, match="MODEL_CONTROL must be one of none, explicit"):
        Config.load({"model_control": "poll"})
    with pytest.raises(ConfigError, match="MODEL_CONTROL_TIMEOUT"):
        Config.load({"model_control_timeout": 0})


@pytest.mark.parametrize("key", ["s3cret-\u00e9", "two words", "tab\there"])
def test_a_key_no_header_can_carry_is_refused_at_start_up(models_copy, key):
    """Regression: a non-ASCII key was accepted, but header bytes reach WSGI as latin-1, so no request could
    ever match it and predict answered 401 to everyone."""
    with pytest.raises(ConfigError, match="API_KEY"):
        create_app({"models_dir": str(models_copy), "api_key": key})


@pytest.mark.slow
@pytest.mark.parametrize(
    ("setting", "value", "accepted"),
    [
        ("TOYSEQ_LOG_LEVEL", "verbose", "debug, info, warning, error, critical"),
        ("TOYSEQ_STRICT", "maybe", "1, true, yes, on, 0, false, no, off"),
        ("TOYSEQ_MAX_BATCH", "abc", "a whole number"),
        ("TOYSEQ_WORKER_CLASS", "eventlet", "use one of"),
    ],
)
def test_a_bad_setting_stops_gunicorn_before_start_naming_what_is_accepted(
    tmp_path, models_copy, setting, value, accepted
):
    shutil.copytree(models_copy, tmp_path / "models")
    done = run_gunicorn({setting: value}, tmp_path)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"Error: {setting}={value} is not accepted; use " in done.stderr and accepted in done.stderr
    assert not list((tmp_path / "tmp").glob("toyseq-metrics-*"))


@pytest.mark.slow
def test_a_models_folder_that_does_not_exist_stops_gunicorn_before_start(tmp_path):
    done = run_gunicorn({"TOYSEQ_MODELS_DIR": str(tmp_path / "nowhere")}, tmp_path)
    assert done.returncode == 1 and f"Error: TOYSEQ_MODELS_DIR={tmp_path / 'nowhere'} is not a folder" in done.stderr
    assert "Traceback" not in done.stderr
