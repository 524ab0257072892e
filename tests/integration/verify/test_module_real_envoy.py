"""The istio_verify module end to end (ansible ad-hoc, JSON callback) against the real Envoy gateway."""

import json
import os
import subprocess
import sys

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def run_module(args):
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=os.path.join(REPO_ROOT, "ansible.cfg"),
        ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
        ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
        ANSIBLE_NOCOLOR="1",
    )
    completed = subprocess.run(
        [
            "ansible",
            "localhost",
            "-i",
            "localhost,",
            "-c",
            "local",
            "-e",
            f"ansible_python_interpreter={sys.executable}",
            "-m",
            "meshops.istio.istio_verify",
            "-a",
            json.dumps(args),
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    try:
        output = json.loads(completed.stdout)
    except ValueError:
        pytest.fail(f"no JSON from ansible (rc={completed.returncode}): {completed.stdout}\n{completed.stderr}")
    result = output["plays"][0]["tasks"][0]["hosts"]["localhost"]
    return result


def test_module_passes_split_and_reports_shares(envoy_gateway):
    result = run_module(
        {
            "checks": ["http", "traffic_split", "versions_seen"],
            "http": {"url": envoy_gateway.url + "productpage", "host_header": "bookinfo.local"},
            "traffic_split": {
                "url": envoy_gateway.url,
                "host_header": "canary.jiuxi.com",
                "requests": 400,
                "confidence": 0.9999,
                "destinations": [
                    {"name": "nginx", "pattern": "<title>Welcome to nginx!</title>", "weight": 80},
                    {"name": "tomcat", "pattern": "<title>Apache Tomcat", "weight": 20},
                ],
            },
            "versions_seen": {"url": envoy_gateway.url + "productpage", "host_header": "bookinfo.local"},
        }
    )
    assert not result.get("failed"), result.get("msg")
    assert result["changed"] is False and result["passed"] is True
    split = result["report"]["traffic_split"]
    assert split["method"] == "exact binomial (two-sided)"
    assert sum(split["counts"].values()) == 400
    assert result["report"]["http"]["matched"] == "<title>Simple Bookstore App</title>"
    assert result["report"]["versions_seen"]["missing"] == []


def test_module_fails_with_the_reason_on_a_wrong_split(envoy_gateway):
    result = run_module(
        {
            "checks": ["traffic_split"],
            "traffic_split": {
                "url": envoy_gateway.url,
                "host_header": "jiuxi.com",
                "requests": 400,
                "confidence": 0.9999,
                "destinations": [
                    {"name": "nginx", "pattern": "<title>Welcome to nginx!</title>", "weight": 100},
                    {"name": "tomcat", "pattern": "<title>Apache Tomcat", "weight": 0},
                ],
            },
        }
    )
    assert result["failed"] is True
    assert "traffic_split: observed shares" in result["msg"]
    assert result["report"]["traffic_split"]["method"] == "zero-weight destination received traffic"


def test_module_refuses_bad_input_before_sending_requests(envoy_gateway):
    before = envoy_gateway.upstream_requests()
    result = run_module(
        {
            "checks": ["traffic_split"],
            "traffic_split": {
                "url": envoy_gateway.url,
                "destinations": [{"name": "nginx", "pattern": "nginx"}, {"name": "tomcat", "pattern": "(unclosed"}],
            },
        }
    )
    assert result["failed"] is True
    assert "have no weight" in result["msg"]
    assert envoy_gateway.upstream_requests() == before
