"""The worker-crash alerts fire as described, in promtool's rule unit tests."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

MONITORING = Path(__file__).resolve().parents[2] / "monitoring"


def expected(alert: str, summary: str) -> dict[str, Any]:
    """The alert as promtool should see it: its labels, `summary` as rendered, and its
    description as written in alerts.yml."""
    loaded = yaml.safe_load((MONITORING / "alerts.yml").read_text())
    [rule] = [r for g in loaded["groups"] for r in g["rules"] if r.get("alert") == alert]
    return {
        "exp_labels": rule["labels"],
        "exp_annotations": {"summary": summary, "description": rule["annotations"]["description"]},
    }


def test_it_alerts_on_a_worker_crash_and_pages_on_a_crash_loop(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian/Ubuntu: apt-get install prometheus)")
    series = "spark_partner_worker_crashes_total"
    cases = {
        "rule_files": [str(MONITORING / "alerts.yml")],
        "evaluation_interval": "1m",
        "tests": [
            {
                # One crash at minute 10, three more by minute 20, then none.
                "interval": "1m",
                "input_series": [
                    {"series": series, "values": "0x9 1x4 2 3 4x100"},
                ],
                "alert_rule_test": [
                    {"eval_time": "5m", "alertname": "SparkPartnerWorkerCrashed", "exp_alerts": []},
                    {
                        "eval_time": "12m",
                        "alertname": "SparkPartnerWorkerCrashed",
                        "exp_alerts": [
                            expected(
                                "SparkPartnerWorkerCrashed",
                                "A worker stopped on an unrecoverable error (1 in the last hour)",
                            )
                        ],
                    },
                    {
                        "eval_time": "12m",
                        "alertname": "SparkPartnerWorkerCrashLoop",
                        "exp_alerts": [],
                    },
                    {
                        "eval_time": "18m",
                        "alertname": "SparkPartnerWorkerCrashLoop",
                        "exp_alerts": [
                            expected(
                                "SparkPartnerWorkerCrashLoop",
                                "Workers crashed 4 times in 15 minutes",
                            )
                        ],
                    },
                    # An hour and more after the last crash: quiet again.
                    {
                        "eval_time": "90m",
                        "alertname": "SparkPartnerWorkerCrashed",
                        "exp_alerts": [],
                    },
                ],
            }
        ],
    }
    test_file = tmp_path / "crash_alerts_test.yml"
    test_file.write_text(yaml.safe_dump(cases))

    result = subprocess.run(
        [promtool, "test", "rules", str(test_file)], capture_output=True, text=True, check=False
    )

    assert result.returncode == 0, result.stdout + result.stderr
