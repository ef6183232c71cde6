"""The public API is a contract: what __all__ promises must exist, and nothing private leaks."""

from __future__ import annotations

import inspect

import camstream
from camstream import errors


def test_all_names_exist_once() -> None:
    for name in camstream.__all__:
        assert hasattr(camstream, name), name
    assert len(set(camstream.__all__)) == len(camstream.__all__)


def test_public_classes_live_in_public_modules() -> None:
    for name in camstream.__all__:
        member = getattr(camstream, name)
        if inspect.isclass(member) or inspect.isfunction(member):
            assert member.__module__.startswith("camstream"), name
            assert not name.startswith("_") or name == "__version__"


def test_every_error_is_exported_and_derives_from_the_root() -> None:
    for name in errors.__all__:
        exc = getattr(camstream, name)
        assert issubclass(exc, camstream.CamstreamError)


def test_config_errors_are_also_value_errors() -> None:
    assert issubclass(camstream.ConfigError, ValueError)


def test_server_and_config_take_keyword_only_options() -> None:
    params = inspect.signature(camstream.Server).parameters
    assert params["source"].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    assert params["config"].kind is inspect.Parameter.KEYWORD_ONLY
    config_params = inspect.signature(camstream.ServerConfig).parameters
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in config_params.values())


def test_bad_options_raise_config_error_naming_the_option() -> None:
    for bad in ({"quality": 0}, {"quality": 101}, {"port": 70000}, {"png_compression": 10}):
        try:
            camstream.ServerConfig(**bad)  # type: ignore[arg-type]
        except camstream.ConfigError as exc:
            assert next(iter(bad)) in str(exc)
        else:
            raise AssertionError(f"{bad} was accepted")


def test_timeouts_and_misuse_are_in_the_tree_and_builtin_kinds() -> None:
    # One `except CamstreamError` is enough, and callers that catch the built-ins still work.
    assert issubclass(camstream.CamstreamTimeoutError, camstream.CamstreamError)
    assert issubclass(camstream.CamstreamTimeoutError, TimeoutError)
    assert issubclass(camstream.UsageError, camstream.CamstreamError)
    assert issubclass(camstream.UsageError, RuntimeError)


def test_reading_an_unopened_client_is_a_usage_error() -> None:
    client = camstream.Client("127.0.0.1:9", reconnect=False)
    try:
        client.read(timeout_s=0.01)
    except camstream.UsageError as exc:
        assert "open()" in str(exc)
    else:
        raise AssertionError("reading an unopened client must raise UsageError")


def test_remote_protocol_error_carries_its_goodbye_code() -> None:
    assert camstream.RemoteProtocolError("bad").code == 2
    assert camstream.RemoteProtocolError("no token", code=3).code == 3
