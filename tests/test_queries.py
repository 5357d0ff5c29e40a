from datetime import UTC, datetime, timedelta

import flowprov as fp
import pytest
from flowprov.errors import DoesNotExist, LookupFieldError, MultipleResultsFound

from tests.conftest import write


@pytest.fixture
def story(instance, fp_env, monkeypatch):
    """A small slice of the project flow, by two users."""
    monkeypatch.setenv("FLOWPROV_USER", "testuser1")
    up = fp.Transform(name="Upload GWS CRISPRa result", type="upload").save()
    with fp.Run(transform=up) as r1:
        raw = fp.Artifact(
            write(fp_env / "screen.parquet", b"screen"),
            description="Raw data of schmidt22 crispra GWS",
        ).save()
    nb1 = fp.Transform(name="Project flow", key="project-flow.ipynb", type="notebook").save()
    monkeypatch.setenv("FLOWPROV_USER", "testuser2")
    nb = fp.Transform(
        name="GWS CRISPRa analysis", key="hit-identification.ipynb", type="notebook"
    ).save()
    with fp.Run(transform=nb) as r2:
        raw.cache()
        hits = fp.Artifact(
            write(fp_env / "hits.parquet", b"hits"), description="hits from schmidt22 crispra GWS"
        ).save()
        fig = fp.Artifact(
            write(fp_env / "fig.png", b"png"),
            key="figures/matrixplot_fig2_score-wgs-hits-per-cluster.png",
        ).save()
    return dict(up=up, nb=nb, nb1=nb1, raw=raw, hits=hits, fig=fig, r1=r1, r2=r2)


def test_lookups(story):
    A = fp.Artifact
    assert A.filter(key__contains="figures/matrixplot").one() == story["fig"]
    assert A.filter(description__icontains="RAW DATA").one() == story["raw"]
    assert A.filter(key__startswith="figures/").count() == 1
    assert A.filter(suffix__in=[".parquet", ".png"]).count() == 3
    assert A.filter(size__gt=3).count() == 2 and A.filter(size__lte=3).count() == 1
    assert A.filter(key__isnull=True).count() == 2
    assert A.filter(key__endswith=".png").one() == story["fig"]
    assert A.filter(description__iexact="HITS FROM schmidt22 crispra gws").one() == story["hits"]
    since = datetime.now(UTC) - timedelta(hours=1)
    assert A.filter(created_at__gt=since).count() == 3


def test_relation_lookups(story):
    users = fp.User.lookup()
    assert set(fp.Transform.filter(created_by=users.testuser1)) == {story["up"], story["nb1"]}
    assert fp.Transform.filter(created_by=users.testuser1, type="notebook").one() == story["nb1"]
    assert set(fp.Artifact.filter(run__transform__name="GWS CRISPRa analysis")) == {
        story["hits"],
        story["fig"],
    }
    assert set(fp.Artifact.filter(transform=story["nb"])) == {story["hits"], story["fig"]}
    assert fp.Artifact.filter(created_by__handle="testuser1").one() == story["raw"]
    assert fp.Run.filter(inputs=story["raw"]).one() == story["r2"]
    assert fp.Run.filter(inputs__description__contains="Raw data").one() == story["r2"]
    assert fp.Transform.filter(runs__inputs__suffix=".parquet").one() == story["nb"]
    assert fp.Artifact.filter(input_of__isnull=False).one() == story["raw"]
    assert fp.Artifact.filter(run=story["r1"].uid).one() == story["raw"]  # a uid works too
    assert fp.Artifact.filter(run__in=[story["r1"], story["r2"]]).count() == 3


def test_one_first_get(story):
    with pytest.raises(DoesNotExist, match="no Artifact"):
        fp.Artifact.filter(key="nope").one()
    with pytest.raises(MultipleResultsFound, match="3 Artifact records"):
        fp.Artifact.filter().one()
    assert fp.Artifact.filter(key="nope").one_or_none() is None
    with pytest.raises(MultipleResultsFound):
        fp.Artifact.filter().one_or_none()
    assert fp.Artifact.filter().first() == story["raw"]
    assert fp.Artifact.get(story["hits"].uid) == story["hits"]
    assert fp.Artifact.get(story["hits"].uid[:10]) == story["hits"]  # unique prefix
    assert fp.Artifact.get(description="hits from schmidt22 crispra GWS") == story["hits"]
    assert len(fp.Artifact.filter().all()) == 3 and len(fp.Artifact.filter()) == 3
    assert fp.Artifact.filter().order_by("-id")[0] == story["fig"]


def test_unknown_field_is_a_clear_error(story):
    with pytest.raises(
        LookupFieldError, match="Artifact has no field 'colour'.*fields: .*description"
    ):
        fp.Artifact.filter(colour="red")
    with pytest.raises(LookupFieldError, match="Run has no field 'nme'"):
        fp.Artifact.filter(run__transform__runs__nme="x")
    with pytest.raises(LookupFieldError, match="cannot order"):
        fp.Artifact.filter().order_by("colour")


def test_df_has_the_seed_columns(story):
    df = fp.Transform.filter(created_by=fp.User.lookup().testuser1, type="notebook").df()
    for col in (
        "uid",
        "version",
        "is_latest",
        "name",
        "key",
        "description",
        "type",
        "source_code",
        "hash",
        "reference",
        "reference_type",
        "created_by_id",
        "updated_at",
    ):
        assert col in df.columns
    assert df.index.name == "id" and list(df["name"]) == ["Project flow"]
    adf = fp.Artifact.df()
    for col in (
        "uid",
        "key",
        "description",
        "suffix",
        "size",
        "hash",
        "hash_type",
        "n_objects",
        "storage_id",
        "run_id",
        "created_by_id",
        "updated_at",
    ):
        assert col in adf.columns
    assert list(adf.index) == sorted(adf.index, reverse=True)  # newest first


def test_typo_tolerant_search(story):
    res = fp.Transform.search("GWS CRIPSRa analysis")
    assert res.first() == story["nb"] and res.scores[0] > 80
    assert fp.Artifact.search("hits schmidt22").first() == story["hits"]
    assert fp.Transform.search("zzzz qqqq") == []
    assert "score" in res.df().columns


def test_user_lookup_and_relations(story):
    users = fp.User.lookup()
    assert users.testuser1.handle == "testuser1"
    with pytest.raises(AttributeError, match="no user 'nobody'"):
        _ = users.nobody
    raw = story["raw"]
    assert raw.run.transform == story["up"] and raw.created_by == users.testuser1
    assert list(raw.input_of) == [story["r2"]]
    assert set(story["r2"].outputs) == {story["hits"], story["fig"]} and list(
        story["r2"].inputs
    ) == [raw]
    assert list(story["nb"].parents) == [story["up"]]  # derived: its run read the upload's output


def test_view_shows_newest_records_of_every_table(story):
    frames = fp.view()
    assert set(frames) == {"User", "Storage", "Transform", "Run", "Artifact"}
    assert frames["Artifact"].iloc[0]["uid"] == story["fig"].uid
    assert len(frames["Transform"]) == 3
