"""Tracing's configuration from OTEL_* variables, and trace ids in log lines."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tuneserve.server.tracing import exporter_names


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({}, []),
        ({"OTEL_SERVICE_NAME": "x"}, []),  # naming the service alone turns nothing on
        ({"OTEL_TRACES_EXPORTER": "none"}, []),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, ["otlp_proto_grpc"]),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"}, ["otlp_proto_grpc"]),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4317"}, ["otlp_proto_grpc"]),
        ({"OTEL_TRACES_EXPORTER": "otlp,console"}, ["otlp_proto_grpc", "console"]),
        (
            {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"},
            ["otlp_proto_http"],
        ),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}, []),
    ],
)
def test_exporters_from_the_environment(env: dict[str, str], names: list[str]) -> None:
    assert exporter_names(env) == names


PROBE = """
import structlog
from opentelemetry import trace
from tuneserve import logs
from tuneserve.server import tracing
logs.configure("info", "json")
provider = tracing.configure()
log = structlog.get_logger("probe")
log.info("outside")
with trace.get_tracer("probe").start_as_current_span("work") as span:
    log.info("inside")
    ctx = span.get_span_context()
    print(json.dumps({"trace_id": f"{ctx.trace_id:032x}", "span_id": f"{ctx.span_id:016x}"}), file=sys.stderr)
provider.shutdown()
"""


def test_console_exporter_and_trace_ids_in_logs() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env |= {"OTEL_TRACES_EXPORTER": "console", "OTEL_SERVICE_NAME": "probe-service"}
    result = subprocess.run(
        [sys.executable, "-c", "import json, sys\n" + PROBE],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    outside, inside, ids = lines
    assert outside["event"] == "outside" and "trace_id" not in outside
    assert inside["event"] == "inside"
    assert (inside["trace_id"], inside["span_id"]) == (ids["trace_id"], ids["span_id"])
    exported = json.loads(result.stdout)  # the console exporter's span
    assert exported["name"] == "work"
    assert exported["context"]["trace_id"] == "0x" + ids["trace_id"]
    assert exported["resource"]["attributes"]["service.name"] == "probe-service"


def test_an_exporter_that_is_not_installed_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from tuneserve.server import tracing
    from tuneserve.server.settings import ConfigError

    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "zipkin")
    with pytest.raises(ConfigError, match="no span exporter 'zipkin'"):
        tracing.configure()
    assert not tracing.enabled()
