"""schemathesis against the generated OpenAPI document of a running studio, with a valid key and a real
worker: every route, generated valid and invalid requests, zero 5xx, and every answer conforming to the
document (status, content type, headers, body)."""

import re
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import pytest

from accounts import ledger
from accounts.models import ApiKey, EntryKind
from tests.helpers import personal_membership

# About 1,100 requests, most of the time spent generating them: near three minutes on a 2-core machine, so
# past the suite's default per-test timeout.
pytestmark = [pytest.mark.pipeline, pytest.mark.django_db(transaction=True), pytest.mark.timeout(600)]

CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
)


def _failures(report_dir: Path) -> str:
    """What went wrong, from the JUnit report (the console output cuts long cases short)."""
    found = []
    for report in report_dir.glob("junit-*.xml"):
        for case in ElementTree.parse(report).iter("testcase"):
            for problem in (*case.iter("failure"), *case.iter("error")):
                text = re.sub(r"(.)\1{40,}", lambda run: f"{run[1]}…", problem.text or "")
                found.append(f"{case.get('name')}: {text[:2_000]}")
    return "\n\n".join(found)


def test_every_route_answers_as_the_generated_document_says(studio_url, worker, alice, tmp_path, capsys):
    key, secret = ApiKey.issue(
        user=alice, workspace=personal_membership(alice).workspace, name="schemathesis"
    )
    ApiKey.objects.filter(pk=key.pk).update(rate_limit_per_minute=1_000_000)
    ledger.adjust(user=alice, amount=10_000_000, kind=EntryKind.GRANT, reason="schemathesis")
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "run",
        f"{studio_url}/v1/openapi.json",
        "--header",
        f"Authorization: Bearer {secret}",
        "--checks",
        ",".join(CHECKS),
        "--max-examples",
        "15",
        "--workers",
        "2",
        "--request-timeout",
        "120",
        "--seed",
        "20261203",
        "--no-color",
        "--report",
        "junit",
        "--report-dir",
        str(tmp_path),
    ]
    # In its own directory: schemathesis keeps a cache of crashes where it runs.
    run = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    output = run.stdout + run.stderr
    summary = [line for line in output.splitlines() if re.search(r"generated|failures?|Tested:|passed", line)]
    with capsys.disabled():
        print("\nschemathesis:", *summary[-6:], sep="\n  ")
    assert run.returncode == 0, _failures(tmp_path) or output[-20_000:]
    assert re.search(r"Tested: 13\b", output), output[-5_000:]
    cases = int(re.search(r"(\d+) generated", output)[1])
    assert cases > 500, output[-5_000:]
