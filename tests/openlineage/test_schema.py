"""The validator itself: it accepts a well-made event and refuses broken ones — so the tests that
use it can fail — and its schema copies are the versions the installed client writes."""

from __future__ import annotations

import copy
import json

import pytest

from tests.openlineage.schema import FIXTURES, InvalidEvent, facet_classes, schemas, validate_event

RUN = "6f1c3e7a-5b2d-5c1e-9a3f-0d4b8e2a7c11"
PARENT = "0b8f8e0c-3d7a-5e55-8a3a-6c9d2f1e4b22"


def good_event() -> dict:
    """A final event made with the client's own models, as flowprov makes them."""
    from openlineage.client.event_v2 import (
        InputDataset,
        Job,
        OutputDataset,
        Run,
        RunEvent,
        RunState,
    )
    from openlineage.client.facet_v2 import (
        dataset_version_dataset,
        error_message_run,
        job_type_job,
        parent_run,
        processing_engine_run,
        source_code_job,
        tags_job,
        tags_run,
    )
    from openlineage.client.serde import Serde

    def ds(cls, path, version):
        return cls(
            namespace="file://host-a",
            name=path,
            facets={"version": dataset_version_dataset.DatasetVersionDatasetFacet(version)},
        )

    event = RunEvent(
        eventType=RunState.FAIL,
        eventTime="2025-01-02T03:04:05.123456+00:00",
        producer="https://github.com/flowprov/flowprov",
        run=Run(
            runId=RUN,
            facets={
                "parent": parent_run.ParentRunFacet(
                    run=parent_run.Run(runId=PARENT),
                    job=parent_run.Job(namespace="lab", name="Snakefile"),
                ),
                "processing_engine": processing_engine_run.ProcessingEngineRunFacet(
                    version="9.1.0", name="snakemake"
                ),
                "errorMessage": error_message_run.ErrorMessageRunFacet(
                    message="exit 1", programmingLanguage="shell"
                ),
                "tags": tags_run.TagsRunFacet(
                    tags=[
                        tags_run.TagsRunFacetFields(
                            key="flowprov.run", value="abc", source="FLOWPROV"
                        )
                    ]
                ),
            },
        ),
        job=Job(
            namespace="lab",
            name="Snakefile.count",
            facets={
                "jobType": job_type_job.JobTypeJobFacet(
                    processingType="BATCH", integration="SNAKEMAKE", jobType="RULE"
                ),
                "sourceCode": source_code_job.SourceCodeJobFacet(
                    language="shell", sourceCode="wc -l {input} > {output}"
                ),
                "tags": tags_job.TagsJobFacet(
                    tags=[tags_job.TagsJobFacetFields(key="flowprov.transform", value="t")]
                ),
            },
        ),
        inputs=[ds(InputDataset, "/data/in.txt", "blake3:ab12")],
        outputs=[ds(OutputDataset, "/data/out.txt", "blake3:cd34")],
    )
    return json.loads(Serde.to_json(event))


def test_a_good_event_passes_and_reads_back():
    event = good_event()
    model = validate_event(event)
    assert model.run.runId == RUN
    assert type(model.run.facets["parent"]).__name__ == "ParentRunFacet"
    assert model.run.facets["errorMessage"].message == "exit 1"
    assert model.outputs[0].facets["version"].datasetVersion == "blake3:cd34"


def test_a_hand_written_minimal_event_passes():
    validate_event(
        {
            "eventType": "START",
            "eventTime": "2025-01-02T03:04:05Z",
            "producer": "https://example.org/p",
            "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
            "run": {"runId": RUN},
            "job": {"namespace": "lab", "name": "count"},
        }
    )


def broken(change) -> dict:
    event = copy.deepcopy(good_event())
    change(event)
    return event


@pytest.mark.parametrize(
    "change, says",
    [
        (lambda e: e["run"].pop("runId"), "'runId' is a required property"),
        (lambda e: e["run"].__setitem__("runId", "run-1"), "is not a 'uuid'"),
        (lambda e: e["job"].pop("name"), "'name' is a required property"),
        (lambda e: e.__setitem__("eventType", "DONE"), "is not one of"),
        (lambda e: e.__setitem__("eventTime", "yesterday"), "is not a 'date-time'"),
        (
            lambda e: e["run"]["facets"]["errorMessage"].pop("programmingLanguage"),
            "programmingLanguage",
        ),
        (
            lambda e: e["run"]["facets"]["processing_engine"].pop("version"),
            "'version' is a required",
        ),
        (lambda e: e["run"]["facets"]["parent"]["run"].pop("runId"), "'runId' is a required"),
        (lambda e: e["job"]["facets"]["jobType"].pop("integration"), "'integration' is a required"),
        (lambda e: e["outputs"][0]["facets"]["version"].pop("datasetVersion"), "datasetVersion"),
        (lambda e: e["run"]["facets"]["tags"].pop("_producer"), "'_producer' is a required"),
        (
            lambda e: e["run"]["facets"].__setitem__(
                "error", e["run"]["facets"].pop("errorMessage")
            ),
            "must be keyed ['errorMessage']",
        ),
        (
            lambda e: e["run"]["facets"]["parent"].__setitem__(
                "_schemaURL",
                "https://openlineage.io/spec/facets/9-9-9/ParentRunFacet.json#/$defs/ParentRunFacet",
            ),
            "is not among the schemas",
        ),
        (
            lambda e: e["job"]["facets"]["sourceCode"].pop("_schemaURL"),
            "'_schemaURL' is a required",
        ),
        (
            lambda e: e.__setitem__("schemaURL", "https://example.org/x"),
            "expected https://openlineage.io",
        ),
    ],
)
def test_a_broken_event_fails_and_says_where(change, says):
    with pytest.raises(InvalidEvent) as e:
        validate_event(broken(change))
    assert says in str(e.value)


def test_a_field_the_client_models_do_not_keep_fails_the_round_trip():
    # valid JSON (the facet schemas allow more properties) that the client's models would lose
    event = broken(lambda e: e["run"]["facets"]["errorMessage"].__setitem__("extra", 1))
    with pytest.raises(InvalidEvent, match="not the same after the client's models"):
        validate_event(event)


def test_the_fixtures_are_the_schema_versions_the_installed_client_writes():
    from openlineage.client.event_v2 import RunEvent

    assert RunEvent._get_schema().split("#")[0] in schemas()
    written = {url.split("#")[0] for url in facet_classes()}
    for doc_id in schemas():
        if "/facets/" in doc_id:
            assert doc_id in written, f"{doc_id}: the client writes another version of it"
    # every fixture file is listed (with its sha256) in the README
    readme = (FIXTURES / "README.md").read_text()
    import hashlib

    for path in FIXTURES.glob("*.json"):
        assert hashlib.sha256(path.read_bytes()).hexdigest() in readme, path.name
