"""The benchmark harness (bench/): output parsers, the registry, and one real 1-second run. No speed assertions."""

from __future__ import annotations

import json
import shutil
import sys

import pytest

from bench import report
from bench.cli import list_scenarios
from bench.cli import main as bench_main
from bench.loadgen import H2Load, Wrk
from bench.runner import Harness
from bench.spec import RunOptions, get, scenarios

WRK_OUT = """Running 1s test @ http://127.0.0.1:1/
  1 threads and 64 connections
  2000 requests in 1.00s, 250.00KB read
Requests/sec:   2000.00
BENCH_JSON {"requests": 2000, "duration_us": 1000000, "bytes": 256000, "errors": {"connect": 0, "read": 1, \
"write": 0, "timeout": 0, "status": 2}, "p50_us": 1500, "p90_us": 2000, "p99_us": 4000, "max_us": 9000, \
"mean_us": 1600.0}
"""

H2LOAD_OUT = """finished in 2.00s, 5000.50 req/s, 1.00MB/s
requests: 10001 total, 10001 started, 10001 done, 10000 succeeded, 1 failed, 0 errored, 0 timeout
status codes: 10000 2xx, 0 3xx, 1 4xx, 0 5xx
traffic: 1.00MB (1000000) total, 10.00KB (10000) headers (space savings 90.00%), 130.00KB (130000) data
                     min         max         mean         sd        +/- sd
time for request:      100us     20.00ms      1.50ms       0.50ms    90.00%
"""


@pytest.mark.parametrize(
    "tool, text, rps, p50, p99, errors",
    [
        (Wrk(), WRK_OUT, 2000.0, 1.5, 4.0, 3),
        (H2Load(), H2LOAD_OUT, 5000.0, 1.5, None, 2),
    ],
)
def test_parsers(tool, text, rps, p50, p99, errors):
    m = tool.parse(text)
    assert m["rps"] == pytest.approx(rps)
    assert m["p50_ms"] == pytest.approx(p50)
    assert m["p99_ms"] == (pytest.approx(p99) if p99 is not None else None)
    assert m["errors"] == errors


@pytest.mark.parametrize("tool, text", [(Wrk(), "Requests/sec: 1\n"), (H2Load(), "garbage\n")])
def test_parsers_reject_unparseable_output(tool, text):
    with pytest.raises(ValueError):
        tool.parse(text)


def test_wrk_command_uses_options():
    argv = Wrk().command("http://127.0.0.1:9/x", 3, RunOptions(connections=7, threads=2))
    assert argv[:4] == ["wrk", "-t2", "-c7", "-d3s"] and argv[-1] == "http://127.0.0.1:9/x"
    assert any(a.endswith("wrk_report.lua") for a in argv)


def test_registry_lists_hello_with_peers():
    table = scenarios()
    assert "hello" in table
    names = [s.name for s in get("hello").servers]
    assert names[0] == "django-granian"
    assert {"granian", "uvicorn (httptools, uvloop)", "hypercorn"} <= set(names)
    text = list_scenarios()
    assert "hello:" in text and "django-granian" in text
    with pytest.raises(KeyError):
        get("no-such-scenario")


def test_unknown_scenario_exit_code(capsys):
    assert bench_main(["run", "no-such-scenario"]) == 2
    assert "unknown scenario" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")
@pytest.mark.timeout(60)
def test_real_run_starts_server_parses_wrk_and_reports(tmp_path):
    scenario = get("hello")
    options = RunOptions(duration=1, rounds=1, warmup=0, connections=8, servers=["django-granian"])
    result = Harness(scenario, options, log=lambda s: None).run()
    [row] = result.rows
    assert not row.failure, row.failure
    assert row.server == "django-granian" and len(row.runs) == 1
    assert row.median_rps and row.median_rps > 0
    assert row.runs[0]["requests"] > 0
    assert row.probe == "HTTP 200"
    meta = {"machine": report.machine(), "versions": report.versions(scenario, {"wrk"}),
            "loadavg_start": [0.0], "loadavg_end": [0.0], "command": "python -m bench run hello"}
    text = report.markdown(scenario, result, meta)
    assert "| django-granian |" in text and "baseline" in text
    assert "python -m django_granian" in text and "$PORT" in text
    assert f"python {sys.version_info.major}.{sys.version_info.minor}" in text
    path = report.save(scenario, result, meta, text, tmp_path)
    data = json.loads(path.read_text())
    assert data["rows"][0]["median"] > 0 and data["machine"]["nproc"]


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")
def test_failed_server_is_reported_not_raised(tmp_path):
    from bench.spec import Scenario, Server, Workload

    broken = Scenario("broken", "a server that exits at once",
                      [Server("exits", ["{python}", "-c", "raise SystemExit(3)"])],
                      [Workload("GET /", "/", Wrk())])
    result = Harness(broken, RunOptions(duration=1, rounds=1, warmup=0), log=lambda s: None).run()
    [row] = result.rows
    assert "status 3" in row.failure and not row.runs
    text = report.markdown(broken, result, {"machine": report.machine(), "versions": {}, "loadavg_start": [0],
                                            "loadavg_end": [0]})
    assert "failed" in text
