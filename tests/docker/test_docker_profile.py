"""Model.profile on the Docker target: ``cpu`` / ``memory_in_gb`` are real container limits (issue #15)."""

from __future__ import annotations

import json

from jupyter_mldeploy.deploy import Webservice
from jupyter_mldeploy.inference_config import InferenceConfig
from jupyter_mldeploy.registry import Model


def test_profile_with_limits_runs_in_a_container_and_stays_within_them(diabetes, env_image) -> None:
    config = InferenceConfig("score.py", source_directory=diabetes.source)
    bodies = [json.dumps({"data": [row]}) for row in diabetes.samples]
    profile = Model.profile(diabetes.workspace, "docker-profile", [diabetes.model_id], config, bodies,
                            cpu=1, memory_in_gb=1, seconds_per_level=1)
    profile.wait_for_completion()
    details = profile.get_details()
    assert profile.state == "Succeeded", details
    assert (details["requestedCpu"], details["requestedMemoryInGB"]) == (1, 1)
    assert details["successRate"] == 100.0
    # Sampled from the container (docker stats), within its limits; the recommendation stays within them too.
    assert details["cpuSamples"] and 0 < details["maxUtilizedMemoryInGB"] <= 1
    assert 0 <= details["maxUtilizedCpu"] <= 1.05
    assert 0.1 <= details["recommendedCpu"] <= 1 and 0.1 <= details["recommendedMemoryInGB"] <= 1
    assert "within the requested limits" in details["recommendation"]
    assert not [s for s in Webservice.list(diabetes.workspace) if s.name.startswith("profile-docker-profile")]
