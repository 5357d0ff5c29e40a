from datetime import UTC, date, datetime, timedelta, timezone

import flowprov as fp
import pytest
from flowprov.errors import DoesNotExist, LookupFieldError, MultipleResultsFound, ValidationError

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


# -- issue 12, point 11: every documented lookup, on every field it lists, on both backends ------


def test_regex_lookups(story):
    """`key__regex` said "Artifact has no field 'key'"."""
    A = fp.Artifact
    assert A.filter(key__regex=r"^figures/matrixplot_.*\.png$").one() == story["fig"]
    assert A.filter(key__regex=r"^FIGURES/").count() == 0  # case matters, on both backends
    assert A.filter(key__iregex=r"^FIGURES/").one() == story["fig"]
    assert A.filter(description__regex=r"schmidt2[0-9] crispra").count() == 2
    assert set(A.filter(run__transform__name__regex="^GWS")) == {story["hits"], story["fig"]}
    with pytest.raises(ValidationError, match=r"key__regex.*not a valid regular expression"):
        A.filter(key__regex="figures/(unclosed").count()


def test_unknown_lookup_is_named_as_such(story):
    with pytest.raises(LookupFieldError, match=r"unknown lookup 'regexp' in 'key__regexp'"):
        fp.Artifact.filter(key__regexp="x")
    with pytest.raises(LookupFieldError, match=r"unknown lookup 'year'.*created_at__year"):
        fp.Run.filter(created_at__year=2024)


def test_text_lookups_mean_the_same_on_both_backends(story):
    """`contains`, `startswith`, `endswith` respect case everywhere (SQLite's LIKE did not)."""
    A = fp.Artifact
    assert A.filter(key__contains="FIGURES/matrixplot").count() == 0
    assert A.filter(key__startswith="Figures/").count() == 0
    assert A.filter(key__endswith=".PNG").count() == 0
    assert A.filter(key__icontains="FIGURES/matrixplot").one() == story["fig"]
    assert A.filter(key__istartswith="Figures/").one() == story["fig"]
    assert A.filter(key__iendswith=".PNG").one() == story["fig"]
    assert A.filter(key__contains="%").count() == 0 and A.filter(key__contains="_").count() == 1
    assert A.filter(key__endswith="").count() == 1  # every key ends with ""; no key, no match


def test_unparseable_date_is_an_error(story):
    """`created_at__gte="yesterday"` returned nothing, silently."""
    with pytest.raises(ValidationError, match=r"created_at__gte.*'yesterday'.*ISO"):
        fp.Artifact.filter(created_at__gte="yesterday")
    with pytest.raises(ValidationError, match=r"started_at__in.*'soon'"):
        fp.Run.filter(started_at__in=["2024-01-01", "soon"])
    assert fp.Artifact.filter(created_at__gte="2000-01-01").count() == 3
    assert fp.Artifact.filter(created_at__lt="2000-01-01T00:00:00Z").count() == 0
    assert fp.Artifact.filter(created_at__gte=date(2000, 1, 1)).count() == 3


def test_times_in_any_time_zone(story):
    """An aware datetime in another zone means the same instant on both backends."""
    fig = story["fig"]
    later_zone = fig.created_at.astimezone(timezone(timedelta(hours=5)))
    assert fp.Artifact.filter(created_at__gte=later_zone).one() == fig
    assert fp.Artifact.filter(created_at__gt=later_zone).count() == 0
    assert fp.Artifact.filter(created_at=later_zone).one() == fig
    as_text = later_zone.isoformat()  # '...+05:00', as a user may paste it
    assert fp.Artifact.filter(created_at__gte=as_text).one() == fig
    naive_utc = fig.created_at.astimezone(UTC).replace(tzinfo=None)  # naive means UTC
    assert fp.Artifact.filter(created_at__gte=naive_utc).one() == fig
    day = fig.created_at.astimezone(UTC).date().isoformat()
    assert fp.Artifact.filter(created_at=day).count() == 3  # a date alone: that whole UTC day


def test_values_are_checked_against_the_field(story):
    """Values as the CLI passes them (text) are read as the field's type, or refused."""
    A = fp.Artifact
    assert A.filter(size__gt="3").count() == 2
    assert A.filter(size__in=["3", 4]).count() == 2
    assert A.filter(is_latest="true").count() == 3 and A.filter(is_latest="false").count() == 0
    assert A.filter(key__isnull="False").one() == story["fig"]  # bool("False") would be True
    assert A.filter(input_of__isnull="false").one() == story["raw"]
    with pytest.raises(ValidationError, match=r"size__gt.*'abc'.*whole number"):
        A.filter(size__gt="abc")
    with pytest.raises(ValidationError, match=r"is_latest.*'maybe'.*true or false"):
        A.filter(is_latest="maybe")
    with pytest.raises(ValidationError, match=r"suffix__in.*list"):
        A.filter(suffix__in=".png")  # list(".png") would be its characters


def test_lookups_a_field_cannot_answer_are_refused(story):
    with pytest.raises(LookupFieldError, match=r"'contains'.*Artifact.size.*gt"):
        fp.Artifact.filter(size__contains="1")
    with pytest.raises(LookupFieldError, match=r"Run.params.*JSON.*isnull"):
        fp.Run.filter(params__contains="x")
    with pytest.raises(LookupFieldError, match=r"'regex'.*Artifact.created_at"):
        fp.Artifact.filter(created_at__regex="2024")
    assert fp.Run.filter(params__isnull=True).count() == 2


_SAMPLE = {"text": "a", "int": 1, "datetime": "2000-01-01", "bool": True, "json": {"a": 1}}


@pytest.mark.parametrize("model", ["User", "Storage", "Transform", "Run", "Artifact"])
def test_every_lookup_on_every_field(story, model):
    """Each lookup a field accepts runs on this backend; the others are a LookupFieldError."""
    from flowprov.query import OPS, field_kind, ops_for

    assert ops_for("text") == set(OPS)
    assert (
        ops_for("int") == ops_for("datetime") == {"exact", "in", "gt", "gte", "lt", "lte", "isnull"}
    )
    assert ops_for("bool") == {"exact", "in", "isnull"} and ops_for("json") == {"isnull"}
    M = getattr(fp, model)
    for name, col in M._table.c.items():
        kind = field_kind(col)
        allowed = ops_for(kind)
        for op in OPS:
            value = _SAMPLE[kind]
            if op == "isnull":
                value = True
            elif op == "in":
                value = [value]
            elif op in ("regex", "iregex"):
                value = "^a"
            lookup = f"{name}__{op}"
            if op in allowed:
                M.filter(**{lookup: value}).count()
            else:
                with pytest.raises(LookupFieldError, match=op):
                    M.filter(**{lookup: value})


def test_copied_file_keeps_its_name(instance, fp_env):
    """A file copied in without a key kept no name: search and filters could not find it."""
    a = fp.Artifact(write(fp_env / "incoming" / "screen.csv", b"a,b\n1,2\n")).save()
    assert a.key is None and a.file_name == "screen.csv"
    assert fp.Artifact.filter(file_name__contains="screen").one() == a
    assert fp.Artifact.filter(file_name__regex=r"\.csv$").one() == a
    assert fp.Artifact.search("screen").first() == a


def test_no_match_says_what_was_looked_for(instance):
    from flowprov.errors import DoesNotExist

    with pytest.raises(
        DoesNotExist, match=r"no Artifact matches key='nowhere.csv', is_latest=True"
    ):
        fp.Artifact.filter(key="nowhere.csv", is_latest=True).one()
