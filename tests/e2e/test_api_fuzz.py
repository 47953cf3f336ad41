"""Schema-driven fuzzing of a real gateway with schemathesis, against its own ``/openapi.json``.

Every operation but the endless event stream is sent generated valid and invalid requests (with an
admin key, so the guard lets them through to the routes): no answer may be a 5xx, every answer's
status and body must be the documented ones, unsupported methods get 405 with a correct ``Allow``.
``positive_data_acceptance`` is left out: some schema-valid requests are refused on purpose by rules
a JSON schema cannot say (an ``Idempotency-Key`` that differs from the body's ``client_order_id``, a
control whose ``target`` does not fit its ``level``), each with a 422 that says why. The alert webhook
is fuzzed through a real hook (its secret path given to schemathesis in ``schemathesis.toml``), so its
requests reach the alert reader instead of the 404 of an unknown token.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import StartGateway, run_ordergate, subprocess_env

pytestmark = pytest.mark.e2e

MAX_EXAMPLES = "40"
SEED = "20261124"


def schemathesis() -> list[str]:
    found = shutil.which("st", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.fail("schemathesis is not installed: make test installs it with the test extras")
    return [found]


@pytest.mark.heavy
def test_generated_requests_never_get_a_5xx_and_every_answer_matches_the_schema(
    home: Path, start_gateway: StartGateway
) -> None:
    keyfile = home / "keys.json"
    created = run_ordergate("keys", "create", "--role", "admin", "--name", "fuzzer", "--file", str(keyfile))
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[-1]
    hook = run_ordergate("hooks", "create", "--home", str(home), "--strategy", "STRATEGY_A", "--name", "fuzzer")
    assert hook.returncode == 0, hook.stderr
    token = hook.stdout.strip().removeprefix("/v1/hooks/")
    (home / "schemathesis.toml").write_text(
        f'[[operations]]\ninclude-path = "/v1/hooks/{{token}}"\nparameters = {{ token = "{token}" }}\n'
    )
    gateway = start_gateway(home, "--auth", str(keyfile))
    command = [*schemathesis(), "run", f"{gateway.url}/openapi.json", "--header", f"Authorization: Bearer {key}"]
    command += ["--checks", "all", "--exclude-checks", "positive_data_acceptance", "--exclude-path", "/v1/events"]
    command += ["--phases", "examples,coverage,fuzzing", "--max-examples", MAX_EXAMPLES, "--seed", SEED, "--no-color"]
    result = subprocess.run(
        command,
        cwd=home,  # schemathesis keeps its state in ./.schemathesis/
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "No issues found" in result.stdout
    assert "Traceback" not in gateway.log_text()
