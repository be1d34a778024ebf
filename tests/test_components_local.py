"""Single components through kfp.local: the KFP shell, not just the core, behaves on bad input."""

import pytest

from components.common import tracking
from components.ingest.component import ingest

pytestmark = pytest.mark.integration


def test_ingest_of_a_missing_file_fails_and_closes_the_parent_run(kfp_local, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with pytest.raises(RuntimeError, match="FAILURE"):
        ingest(source=str(tmp_path / "absent.csv"), target="y", tracking_uri=uri, experiment="e", job_name="job")
    client = tracking.connect(uri)
    run = client.search_runs([client.get_experiment_by_name("e").experiment_id])[0]
    assert run.info.status == "FAILED"
    assert run.data.tags["plinth.failed_step"] == "ingest"
    assert "source file not found" in run.data.tags["plinth.failure"]
    assert run.data.tags[tracking.TAG_KIND] == "pipeline"
