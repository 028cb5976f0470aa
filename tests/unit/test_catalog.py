"""landmarklib.catalog: reading and validating catalog CSVs, counting, filtering, splitting; its figures."""

import re
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from landmarklib import catalog
from landmarklib.catalog import CatalogError

SHARED_METADATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "kaggle-metadata"


def write(tmp_path: Path, text: str, name: str = "train.csv", encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def labelled(pairs: list[tuple[str, int]]) -> pd.DataFrame:
    """A catalog frame from (id, landmark_id) pairs."""
    return pd.DataFrame(
        {
            "id": [i for i, _ in pairs],
            "url": [f"http://x/{i}.jpg" for i, _ in pairs],
            "landmark_id": np.array([lid for _, lid in pairs], dtype="int64"),
        }
    )


def counted(counts: dict[int, int]) -> pd.DataFrame:
    """A catalog frame with ``counts[landmark_id]`` images per landmark."""
    return labelled([(f"{lid}_{n}", lid) for lid, c in counts.items() for n in range(c)])


# --------------------------------------------------------------------------- reading


def test_exact_repeated_rows_are_dropped_not_errors(tmp_path):
    # The real-landmarks train.csv repeats one row exactly; that is harmless.
    path = tmp_path / "train.csv"
    path.write_text("id,url,landmark_id\na,u1,1\nb,u2,2\na,u1,1\n")
    frame = catalog.read_catalog(path)
    assert list(frame["id"]) == ["a", "b"]
    assert frame.attrs["repeated_rows_dropped"] == 1
    path.write_text("id,url,landmark_id\na,u1,1\na,u1,2\n")
    with pytest.raises(CatalogError, match="line 3, column id: duplicate id 'a'"):
        catalog.read_catalog(path)


def test_read_quoted_with_bom_extra_columns_and_crlf(tmp_path):
    path = write(
        tmp_path,
        '\ufeff"id","url","landmark_id","extra"\r\n'
        '"00012e","http://a/1.jpg","7","x"\r\n'
        '"1e5","images/2.jpg","12","y"\r\n',
    )
    df = catalog.read_catalog(path)
    assert list(df.columns) == ["id", "url", "landmark_id"]
    assert df["id"].tolist() == ["00012e", "1e5"]
    assert df["url"].tolist() == ["http://a/1.jpg", "images/2.jpg"]
    assert df["landmark_id"].tolist() == [7, 12]
    assert df["landmark_id"].dtype == np.int64


def test_ids_that_look_like_numbers_stay_strings(tmp_path):
    path = write(tmp_path, "id,url,landmark_id\n0012,u1,1\n1e3,u2,1\n007,u3,2\nNA,u4,2\n")
    df = catalog.read_catalog(path)
    assert df["id"].tolist() == ["0012", "1e3", "007", "NA"]


def test_unquoted_columns_in_any_order_blank_lines_and_spaces(tmp_path):
    path = write(tmp_path, "landmark_id, url ,id\n 3 , u1 , a \n\n5,u2,b\n")
    df = catalog.read_catalog(path)
    assert df.to_dict("list") == {"id": ["a", "b"], "url": ["u1", "u2"], "landmark_id": [3, 5]}


def test_test_csv_without_labels(tmp_path):
    path = write(tmp_path, "id,url\na,u1\nb,u2\n", "test.csv")
    df = catalog.read_catalog(path, require_labels=False)
    assert list(df.columns) == ["id", "url"]
    with pytest.raises(CatalogError) as err:
        catalog.read_catalog(path)
    assert (err.value.line, err.value.column) == (1, "landmark_id")
    assert "test.csv" in str(err.value) and "missing column" in str(err.value)


@pytest.mark.parametrize(
    "text, line, column, words",
    [
        ("id,landmark_id\na,1\n", 1, "url", "missing column(s) url"),
        ("id,url,landmark_id\na,u,1\nb,u,2\nc,u,abc\n", 4, "landmark_id", "'abc' is not an integer"),
        ("id,url,landmark_id\na,u,1\nb,u,2.5\n", 3, "landmark_id", "'2.5' is not an integer"),
        ("id,url,landmark_id\na,u,1\nb,u,\n", 3, "landmark_id", "empty landmark_id"),
        ("id,url,landmark_id\na,u,1\nb,u,-4\n", 3, "landmark_id", "out of range"),
        ("id,url,landmark_id\na,u,1\nb,,2\n", 3, "url", "empty url"),
        ("id,url,landmark_id\na,u,1\n,u,2\n", 3, "id", "empty id"),
        ("id,url,landmark_id\na,u,1\nb,u,2\n\na,u,3\n", 5, "id", "duplicate id 'a' (first on line 2)"),
        ('id,url,landmark_id\na,u,1\n"b","u\nsecond line",2\nc,u,x\n', 5, "landmark_id", "'x'"),
    ],
)
def test_each_error_names_file_line_and_column(tmp_path, text, line, column, words):
    path = write(tmp_path, text)
    with pytest.raises(CatalogError) as err:
        catalog.read_catalog(path)
    message = str(err.value)
    assert message.startswith(f"{path}, line {line}, column {column}: ")
    assert words in message
    assert (err.value.line, err.value.column) == (line, column)


BAD_ROWS = (
    "id,url,landmark_id\n"
    "a,u1,1\n"
    "b,,2\n"  # no url
    "c,None,2\n"  # no url, as pandas and many exports write it
    "d,u4,abc\n"  # bad landmark_id
    "../e,u5,3\n"  # unsafe id
    "a,u6,4\n"  # duplicate id (another url and label)
    ",u7,5\n"  # no id
    "f,u8,6\n"
    "a,u1,1\n"  # an exact repeat of line 2: dropped, not a problem
)


def test_read_rows_returns_each_bad_row_with_its_problem(tmp_path):
    rows = catalog.read_rows(write(tmp_path, BAD_ROWS))
    assert rows["id"].tolist() == ["a", "b", "c", "d", "../e", "a", "", "f"]
    assert rows["problem"].tolist() == [
        "",
        "no url",
        "no url",
        "bad landmark_id 'abc'",
        "unsafe id '../e'",
        "duplicate id 'a'",
        "no id",
        "",
    ]
    assert rows.attrs["repeated_rows_dropped"] == 1
    bad = catalog.bad_rows(rows)
    assert bad["reason"].value_counts().to_dict() == {
        "no url": 2,
        "bad landmark_id": 1,
        "unsafe id": 1,
        "duplicate id": 1,
        "no id": 1,
    }
    good = catalog.good_rows(rows)
    assert good.to_dict("list") == {"id": ["a", "f"], "url": ["u1", "u8"], "landmark_id": [1, 6]}
    assert good["landmark_id"].dtype == np.int64 and good.attrs["bad_rows"] == 6
    lenient = catalog.read_catalog(tmp_path / "train.csv", strict=False)
    assert lenient.equals(good) and lenient.attrs["bad_rows"] == 6


@pytest.mark.parametrize(
    "row, column, words",
    [("x,None,1", "url", "empty url"), ("x/y,u,1", "id", "unsafe id 'x/y'"), ("..,u,1", "id", "unsafe id '..'")],
)
def test_strict_refuses_every_kind_of_bad_row(tmp_path, row, column, words):
    path = write(tmp_path, f"id,url,landmark_id\na,u,1\n{row}\n")
    with pytest.raises(CatalogError) as err:
        catalog.read_catalog(path)
    assert (err.value.line, err.value.column) == (3, column) and words in str(err.value)
    assert catalog.read_rows(path)["problem"].iat[1] != ""


@pytest.mark.parametrize(
    "text, words",
    [("", "no header line"), ("id,landmark_id\na,1\n", "missing column(s) url"), (b"\xff\xfe\x00\x01", "not UTF-8")],
)
def test_an_unreadable_file_still_stops_even_when_lenient(tmp_path, text, words):
    path = tmp_path / "train.csv"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(CatalogError, match=re.escape(words)):
        catalog.read_rows(path)
    with pytest.raises(CatalogError, match=re.escape(words)):
        catalog.read_catalog(path, strict=False)
    with pytest.raises(CatalogError, match="cannot read"):
        catalog.read_rows(tmp_path / "absent.csv")


def test_data_source_kinds_and_digest(tmp_path):
    import hashlib

    kaggle = write(
        tmp_path,
        "id,url,landmark_id\na,http://lh3.ggpht.com/x/s1600/,1\nb,https://lh5.googleusercontent.com/y,2\n",
        "k.csv",
    )
    source = catalog.data_source(kaggle)
    assert source == {
        "name": "Google Landmark Recognition 2018 (Kaggle)",
        "kind": "kaggle-2018",
        "path": str(kaggle),
        "rows": 2,
        "landmarks": 2,
        "sha256": hashlib.sha256(kaggle.read_bytes()).hexdigest(),
    }
    gld = write(tmp_path, "id,url,landmark_id\na,https://upload.wikimedia.org/a.jpg,1\nb,,1\n", "g.csv")
    assert (catalog.data_source(gld)["kind"], catalog.data_source(gld)["rows"]) == ("gldv2", 2)
    (tmp_path / "photos").mkdir()
    local = write(tmp_path / "photos", "id,url,landmark_id\na,images/a.jpg,1\nb,file:///x/b.jpg,2\n")
    assert catalog.data_source(local)["kind"] == "folder" and catalog.data_source(local)["name"] == "photos"
    other = write(tmp_path, "id,url\na,http://example.org/a.jpg\n", "o.csv")
    assert catalog.data_source(other)["kind"] == "other" and catalog.data_source(other)["landmarks"] == 0
    (tmp_path / "photos" / "sample.json").write_text("{}")
    assert catalog.data_source(local)["kind"] == "sample"


def test_the_first_bad_row_is_reported_whatever_the_check(tmp_path):
    path = write(tmp_path, "id,url,landmark_id\na,u,1\nb,u,zz\nb,,3\n")
    with pytest.raises(CatalogError) as err:
        catalog.read_catalog(path)
    assert (err.value.line, err.value.column) == (3, "landmark_id")


def test_too_many_fields_names_the_line(tmp_path):
    path = write(tmp_path, "id,url,landmark_id\na,u,1\nb,http://x/a,b.jpg,2\n")
    with pytest.raises(CatalogError) as err:
        catalog.read_catalog(path)
    assert err.value.line == 3
    assert "4 fields where the header has 3" in str(err.value)


def test_not_utf8_names_the_line(tmp_path):
    path = write(tmp_path, "id,url,landmark_id\na,u,1\nb,caf\u00e9,2\n", encoding="latin-1")
    with pytest.raises(CatalogError) as err:
        catalog.read_catalog(path)
    assert err.value.line == 3
    assert "not UTF-8" in str(err.value)


def test_empty_file(tmp_path):
    with pytest.raises(CatalogError, match="line 1: no header line"):
        catalog.read_catalog(write(tmp_path, ""))


def test_catalog_error_is_a_value_error():
    assert issubclass(CatalogError, ValueError)


def test_read_solution_kaggle_2018_layout(tmp_path):
    path = write(tmp_path, "id,landmark_id\n0a,12\n0b,\n0c,7\n", "test_solution.csv")
    sol = catalog.read_solution(path)
    assert sol["id"].tolist() == ["0a", "0b", "0c"]
    assert str(sol["landmark_id"].dtype) == "Int64"
    assert sol["landmark_id"].tolist()[0] == 12 and sol["landmark_id"].tolist()[2] == 7
    assert pd.isna(sol["landmark_id"].iloc[1])
    assert sol["landmarks"].tolist() == [[12], [], [7]]


def test_read_solution_gldv2_layout(tmp_path):
    path = write(tmp_path, 'id,landmarks,Usage\n0a,"5 9",Public\n0b,,Private\n0c,3,Public\n')
    sol = catalog.read_solution(path)
    assert sol["landmarks"].tolist() == [[5, 9], [], [3]]
    assert sol["landmark_id"].iloc[0] == 5 and pd.isna(sol["landmark_id"].iloc[1])


def test_read_solution_errors(tmp_path):
    with pytest.raises(CatalogError) as err:
        catalog.read_solution(write(tmp_path, "id,landmark_id\na,1\nb,x1\n"))
    assert (err.value.line, err.value.column) == (3, "landmark_id")
    with pytest.raises(CatalogError) as err:
        catalog.read_solution(write(tmp_path, "id,url\na,u\n"))
    assert (err.value.line, err.value.column) == (1, "landmark_id")


# --------------------------------------------------------------------------- the study's operations

COUNTS = {7: 4, 3: 3, 5: 2, 9: 1, 11: 1, 4: 3}  # 14 images, 6 landmarks


def test_first_n_keeps_file_order():
    df = counted(COUNTS)
    assert catalog.first_n(df, 5)["id"].tolist() == df["id"].tolist()[:5]
    assert len(catalog.first_n(df, 1000)) == len(df)
    assert len(catalog.first_n(df, None)) == len(df)
    with pytest.raises(ValueError):
        catalog.first_n(df, -1)


def test_frequencies_sorted_by_count_then_id():
    freq = catalog.frequencies(counted(COUNTS))
    assert list(freq.columns) == ["landmark_id", "count"]
    assert list(zip(freq["landmark_id"], freq["count"])) == [(7, 4), (3, 3), (4, 3), (5, 2), (9, 1), (11, 1)]
    assert list(zip(*catalog.top_k(counted(COUNTS), 2).to_numpy().T)) == [(7, 4), (3, 3)]


def test_single_image_landmarks():
    assert catalog.single_image_landmarks(counted(COUNTS)) == [9, 11]
    assert catalog.single_image_landmarks(counted({1: 2})) == []


def test_coverage_curve_and_landmarks_covering():
    df = counted(COUNTS)
    curve = catalog.coverage_curve(df)
    assert curve["landmarks"].tolist() == [1, 2, 3, 4, 5, 6]
    assert curve["images"].tolist() == [4, 7, 10, 12, 13, 14]
    assert curve["share"].iloc[-1] == pytest.approx(1.0)
    assert catalog.landmarks_covering(df, 0.5) == 2  # 7 images reach 7/14
    assert catalog.landmarks_covering(df, 0.9) == 5  # 12.6 -> 13 images
    assert catalog.landmarks_covering(counted({1: 1, 2: 1, 3: 1, 4: 1, 5: 1, 6: 1, 7: 1, 8: 1, 9: 1, 10: 1}), 0.9) == 9


def test_long_tail_stats_by_hand():
    stats = catalog.long_tail_stats(counted(COUNTS))
    assert stats["n_images"] == 14 and stats["n_landmarks"] == 6
    assert stats["mean_images_per_landmark"] == pytest.approx(14 / 6)
    assert stats["median_images_per_landmark"] == 2.5
    assert stats["max_images_per_landmark"] == 4
    assert stats["single_image_landmarks"] == 2
    assert stats["share_single_image"] == pytest.approx(2 / 6)
    assert stats["share_under_5"] == 1.0
    assert stats["landmarks_covering_50pct"] == 2 and stats["landmarks_covering_90pct"] == 5
    # sorted counts 1,1,2,3,3,4: G = 2*(1+2+6+12+15+24)/(6*14) - 7/6
    assert stats["gini"] == pytest.approx(2 * 60 / 84 - 7 / 6)


def test_gini_extremes():
    assert catalog.gini(np.array([5, 5, 5, 5])) == pytest.approx(0.0)
    assert catalog.gini(np.array([0, 0, 0, 10])) == pytest.approx(0.75)


def test_filter_min_images_and_its_effect():
    df = counted(COUNTS)
    kept = catalog.filter_min_images(df, 3)
    assert sorted(kept["landmark_id"].unique()) == [3, 4, 7]
    assert len(kept) == 10
    assert kept.index.tolist() == sorted(kept.index)
    effect = catalog.min_images_effect(df, [1, 2, 3, 5])
    assert effect["landmarks_kept"].tolist() == [6, 4, 3, 0]
    assert effect["images_kept"].tolist() == [14, 12, 10, 0]
    assert effect["share_images_kept"].tolist() == pytest.approx([1, 12 / 14, 10 / 14, 0])


def test_stratified_split_is_stratified_deterministic_and_disjoint():
    df = counted({1: 10, 2: 5, 3: 2, 4: 1, 5: 3, 6: 40})
    train, val = catalog.stratified_split(df, val_fraction=0.2, seed=7)
    assert set(train["id"]).isdisjoint(val["id"])
    assert len(train) + len(val) == len(df)
    assert val["landmark_id"].value_counts().to_dict() == {1: 2, 2: 1, 3: 1, 5: 1, 6: 8}
    assert 4 in set(train["landmark_id"]) and 4 not in set(val["landmark_id"])
    for lid, n in df["landmark_id"].value_counts().items():
        if n >= 2:
            assert (train["landmark_id"] == lid).sum() >= 1 and (val["landmark_id"] == lid).sum() >= 1
    again_train, again_val = catalog.stratified_split(df, val_fraction=0.2, seed=7)
    assert again_val["id"].tolist() == val["id"].tolist()
    assert again_train["id"].tolist() == train["id"].tolist()
    other = catalog.stratified_split(df, val_fraction=0.2, seed=8)[1]
    assert other["id"].tolist() != val["id"].tolist()
    assert train.index.is_monotonic_increasing and val.index.is_monotonic_increasing


def test_stratified_split_other_label_and_bad_fraction():
    df = counted({1: 4, 2: 4}).assign(group=["a", "b"] * 4)
    train, val = catalog.stratified_split(df, val_fraction=0.5, seed=0, label="group")
    assert val["group"].value_counts().to_dict() == {"a": 2, "b": 2}
    with pytest.raises(ValueError):
        catalog.stratified_split(df, val_fraction=1.0)


@pytest.mark.skipif(not SHARED_METADATA.is_dir(), reason="../shared/data not present")
def test_real_kaggle_metadata_samples():
    for name in ("glrc2018_train_sample.csv", "gldv2_train_sample.csv"):
        df = catalog.read_catalog(SHARED_METADATA / name)
        assert len(df) > 1000 and df["id"].is_unique
        assert df["id"].str.len().eq(16).all()  # hex ids such as '8444119e61563061' not parsed as numbers
        stats = catalog.long_tail_stats(df)
        assert stats["n_landmarks"] == 100
        assert 1 <= stats["landmarks_covering_50pct"] < stats["landmarks_covering_90pct"] <= 100


# --------------------------------------------------------------------------- figures


def test_figures_draw_the_tables():
    from landmarklib.visualize import catalog as figures

    df = counted(COUNTS)
    freq = catalog.frequencies(df)
    try:
        fig = figures.top_k_bars(catalog.top_k(df, 4))
        ax = fig.axes[0]
        assert [t.get_text() for t in ax.get_xticklabels()] == ["7", "3", "4", "5"]
        assert [p.get_height() for p in ax.patches] == [4, 3, 3, 2]
        assert [t.get_text() for t in ax.texts] == ["4", "3", "3", "2"]

        fig = figures.rank_frequency(freq)
        assert fig.axes[0].get_xscale() == "log" and fig.axes[0].get_yscale() == "log"

        fig = figures.coverage(catalog.coverage_curve(df))
        notes = [t.get_text() for t in fig.axes[0].texts]
        assert notes == ["2 landmarks: 50%", "5 landmarks: 90%"]

        fig = figures.images_per_landmark(freq)
        assert sum(p.get_height() for p in fig.axes[0].patches) == 6

        fig = figures.min_images_filter(catalog.min_images_effect(df), chosen=2)
        assert len(fig.axes[0].lines) >= 3
    finally:
        plt.close("all")


def test_read_rows_without_urls_reads_every_id_form_with_the_same_rows_and_problems(tmp_path):
    # the same six rows written as the three labelled forms (one bad label, one repeated id, one exact repeat)
    rows = [("a1", "7"), ("b2", "7"), ("c3", "x9"), ("a1", "8"), ("d4", "9"), ("e5", "9")]
    (tmp_path / "kaggle.csv").write_text("id,landmark_id\n" + "".join(f"{i},{lab}\n" for i, lab in rows) + "e5,9\n")
    (tmp_path / "urls.csv").write_text(
        "id,url,landmark_id\n" + "".join(f"{i},,{lab}\n" for i, lab in rows) + "e5,,9\n"
    )  # no url at all: not needed when the images come from a source
    by_label: dict[str, list[str]] = {}
    for i, lab in rows:
        by_label.setdefault(lab, []).append(i)
    (tmp_path / "clean.csv").write_text(
        "landmark_id,images\n" + "".join(f"{lab},{' '.join(ids)}\n" for lab, ids in by_label.items())
    )
    expected = [
        ("a1", "7", ""),
        ("b2", "7", ""),
        ("c3", "x9", "bad landmark_id 'x9'"),
        ("a1", "8", "duplicate id 'a1'"),
        ("d4", "9", ""),
        ("e5", "9", ""),
    ]
    for name in ("kaggle.csv", "urls.csv", "clean.csv"):
        got = catalog.read_rows(tmp_path / name, require_url=False)
        assert list(zip(got["id"], got["landmark_id"], got["problem"], strict=True)) == expected, name
    assert set(catalog.read_rows(tmp_path / "urls.csv")["problem"]) >= {"no url"}  # with urls required
    (tmp_path / "test.csv").write_text("id\na1\nb2\n")
    assert list(catalog.read_rows(tmp_path / "test.csv", require_labels=False, require_url=False)["id"]) == ["a1", "b2"]
    with pytest.raises(catalog.CatalogError, match="a landmark_id column expected"):
        catalog.read_rows(tmp_path / "test.csv", require_url=False)
