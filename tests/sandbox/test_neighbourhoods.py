"""Grid neighbourhoods: the defaults, `/_sandbox/neighbourhoods`, `SandboxConfig.neighbourhoods`
and `python -m sandbox --neighbourhoods FILE.json`."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
import shapely

from sandbox.neighbourhoods import parse_neighbourhoods
from tests.fixtures.sandbox import (
    AREA_1_METER,
    HTTP_TIMEOUT,
    IN_AREA_1,
    IN_AREA_2,
    OUTSIDE_AREAS,
    SandboxHandle,
)
from tests.spec import spec_checked_json

REPO = Path(__file__).resolve().parents[2]
# A triangle with its corners at (10, 60), (12, 60) and (10, 62), in [lon, lat].
TRIANGLE = {
    "id": "triangle",
    "name": "Triangle",
    "meterPointIds": ["707057500000900001"],
    "polygon": [[[10.0, 60.0], [12.0, 60.0], [10.0, 62.0]]],
    "priceArea": "NO1",
}
IN_TRIANGLE = {"latitude": 60.5, "longitude": 10.5}
# Inside the triangle's bounding box, beyond its long edge.
BESIDE_TRIANGLE = {"latitude": 61.5, "longitude": 11.5}


def test_it_starts_with_spark_sandboxs_two_svalbard_areas(sandbox: SandboxHandle) -> None:
    areas = sandbox.control.neighbourhoods()

    assert [a["name"] for a in areas] == ["Area 1 (Svalbard)", "Area 2 (Longyearbyen)"]
    for area, centre in zip(areas, (IN_AREA_1, IN_AREA_2), strict=True):
        polygon = shapely.Polygon(area["polygon"][0])
        assert polygon.contains(shapely.Point(centre["longitude"], centre["latitude"]))
        assert area["meterPointIds"]
        assert area["priceArea"] == "NO4"
    assert AREA_1_METER in areas[0]["meterPointIds"]


def test_it_tests_the_polygon_not_its_bounding_box(sandbox: SandboxHandle) -> None:
    sandbox.control.set_neighbourhoods([TRIANGLE])
    for user_id, where in (("inside", IN_TRIANGLE), ("beside", BESIDE_TRIANGLE)):
        sandbox.add_user(user_id)
        sandbox.add_location(user_id, f"{user_id}-home", coordinates=where)

    assert sandbox.is_eligible("inside") is True
    assert sandbox.is_eligible("beside") is False


def test_it_replaces_neighbourhoods_and_reconsiders_every_location(
    sandbox: SandboxHandle,
) -> None:
    for user_id, where in (("svalbard", IN_AREA_1), ("norway", IN_TRIANGLE)):
        sandbox.add_user(user_id)
        sandbox.add_location(user_id, f"{user_id}-home", coordinates=where)
    sandbox.add_user("by-meter")
    sandbox.add_location("by-meter", "meter-home", meterPointIds=["707057500000900001"])
    sandbox.control.flush_eligibility()

    result = sandbox.control.set_neighbourhoods([TRIANGLE])
    event = sandbox.control.flush_eligibility()

    assert result["changedLocations"] == 3
    assert [nh["id"] for nh in result["neighbourhoods"]] == ["triangle"]
    assert sandbox.is_eligible("svalbard") is False
    assert sandbox.is_eligible("norway") is True
    assert sandbox.is_eligible("by-meter") is True
    assert event is not None
    assert event["payload"]["addedUsers"] == ["by-meter", "norway"]
    assert event["payload"]["removedUsers"] == ["svalbard"]
    meter = sandbox.api("GET", f"/meters/{AREA_1_METER}/eligible")
    assert spec_checked_json(meter)["isEligible"] is False


def test_it_gives_a_neighbourhood_without_a_price_area_no4(sandbox: SandboxHandle) -> None:
    without_area = {k: v for k, v in TRIANGLE.items() if k != "priceArea"}

    result = sandbox.control.set_neighbourhoods([without_area])

    assert result["neighbourhoods"] == [{**without_area, "priceArea": "NO4"}]


def test_it_restores_the_configured_neighbourhoods_on_reset(sandbox: SandboxHandle) -> None:
    defaults = sandbox.control.neighbourhoods()
    sandbox.control.set_neighbourhoods([TRIANGLE])

    sandbox.control.reset()

    assert sandbox.control.neighbourhoods() == defaults


@pytest.mark.parametrize(
    "neighbourhoods",
    [
        [TRIANGLE, TRIANGLE],
        [{**TRIANGLE, "id": ""}],
        [{**TRIANGLE, "polygon": [[[10.0, 60.0], [12.0, 60.0]]]}],
        [{**TRIANGLE, "polygon": [[[10.0, 60.0], [12.0, 62.0], [12.0, 60.0], [10.0, 62.0]]]}],
        [{**TRIANGLE, "polygon": [[[10.0, 60.0], [12.0, 60.0], [10.0, 95.0]]]}],
        [{**TRIANGLE, "meterPointIds": "707057500000900001"}],
        [{**TRIANGLE, "priceArea": "NO9"}],
        "triangle",
    ],
)
def test_it_rejects_unusable_neighbourhoods(sandbox: SandboxHandle, neighbourhoods: Any) -> None:
    response = requests.post(
        sandbox.control.url + "/neighbourhoods",
        json={"neighbourhoods": neighbourhoods},
        timeout=HTTP_TIMEOUT,
    )

    assert response.status_code == 400
    assert response.json()["error"]
    assert [a["id"] for a in sandbox.control.neighbourhoods()] == ["area-1", "area-2"]


def test_it_takes_neighbourhoods_from_the_config(
    start_sandbox: Callable[..., SandboxHandle],
) -> None:
    sandbox = start_sandbox(neighbourhoods=parse_neighbourhoods({"neighbourhoods": [TRIANGLE]}))
    sandbox.add_user("norway")
    sandbox.add_location("norway", "home", coordinates=IN_TRIANGLE)
    sandbox.add_user("oslo")
    sandbox.add_location("oslo", "flat", coordinates=OUTSIDE_AREAS)

    assert sandbox.is_eligible("norway") is True
    assert sandbox.is_eligible("oslo") is False
    sandbox.control.reset()
    assert [a["id"] for a in sandbox.control.neighbourhoods()] == ["triangle"]


def test_it_takes_neighbourhoods_from_a_file_on_the_command_line(tmp_path: Path) -> None:
    config = tmp_path / "areas.json"
    config.write_text(json.dumps({"neighbourhoods": [TRIANGLE]}), encoding="utf-8")
    command = [sys.executable, "-m", "sandbox", "--port", "0", "--quiet"]
    command += ["--client-id", "a", "--client-secret", "b", "--neighbourhoods", str(config)]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        root = process.stdout.readline().rsplit(" ", 1)[1].strip()

        areas = requests.get(root + "/_sandbox/neighbourhoods", timeout=HTTP_TIMEOUT).json()

        assert areas == {"neighbourhoods": [TRIANGLE]}
    finally:
        process.terminate()
        process.communicate(timeout=10)


@pytest.mark.parametrize("content", ["not json", '{"neighbourhoods": [{"id": "x"}]}'])
def test_it_refuses_to_start_with_a_bad_neighbourhoods_file(tmp_path: Path, content: str) -> None:
    config = tmp_path / "areas.json"
    config.write_text(content, encoding="utf-8")
    command = [sys.executable, "-m", "sandbox", "--client-id", "a", "--client-secret", "b"]

    result = subprocess.run(
        [*command, "--neighbourhoods", str(config)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    assert result.returncode == 2
    assert "--neighbourhoods" in result.stderr
