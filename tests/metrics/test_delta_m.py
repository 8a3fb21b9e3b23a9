"""Delta_m (docs/reference_notes.md#evaluation-and-delta_m) signs and values, and its reference
files."""

import json

import pytest

from mtnets.metrics.delta_m import delta_m, load_references
from mtnets.train.evaluate import with_delta_m


def test_signs_follow_higher_or_lower_is_better():
    refs = {"semseg/mIoU": 0.5, "depth/rmse": 0.5, "normals/mean": 20.0, "edge/odsF": 0.7}
    # mIoU up 10 % is better: +10.
    assert delta_m({"semseg/mIoU": 0.55}, refs, ["semseg"]) == pytest.approx(10.0)
    # rmse up 10 % is worse: -10; normals mean down 10 % is better: +10.
    assert delta_m({"depth/rmse": 0.55}, refs, ["depth"]) == pytest.approx(-10.0)
    assert delta_m({"normals/mean": 18.0}, refs, ["normals"]) == pytest.approx(10.0)
    # The average over tasks: (+10 - 10 + 10 - 10) / 4.
    results = {"semseg/mIoU": 0.55, "depth/rmse": 0.55, "normals/mean": 18.0, "edge/odsF": 0.63}
    assert delta_m(results, refs, ["semseg", "depth", "normals", "edge"]) == pytest.approx(0.0)


def test_missing_keys_are_clear_errors():
    with pytest.raises(KeyError, match="edge/odsF.*edge_benchmark"):
        delta_m({}, {"edge/odsF": 0.7}, ["edge"])
    with pytest.raises(KeyError, match="references have no 'depth/rmse'"):
        delta_m({"depth/rmse": 1.0}, {}, ["depth"])


def test_references_from_eval_json(tmp_path):
    semseg = tmp_path / "semseg.json"
    depth = tmp_path / "depth.json"
    semseg.write_text(json.dumps({"step": 10, "semseg/mIoU": 0.4, "depth/rmse": 9.0}))
    depth.write_text(json.dumps({"step": 10, "depth/rmse": 0.5}))
    refs = load_references({"semseg": str(semseg), "depth": str(depth)})
    assert refs == {"semseg/mIoU": 0.4, "depth/rmse": 0.5}  # only each task's own keys
    results = with_delta_m(
        {"semseg/mIoU": 0.44, "depth/rmse": 0.45},
        {"semseg": str(semseg), "depth": str(depth)},
        ["semseg", "depth"],
    )
    assert results["delta_m"] == pytest.approx(10.0)
    assert "delta_m" not in with_delta_m({"semseg/mIoU": 0.4}, None, ["semseg"])
    # A periodic evaluation without the edge benchmark: no odsF, so no Delta_m (no crash).
    edge = tmp_path / "edge.json"
    edge.write_text(json.dumps({"edge/odsF": 0.7}))
    partial = with_delta_m({"semseg/mIoU": 0.44}, [str(semseg), str(edge)], ["semseg", "edge"])
    assert "delta_m" not in partial
    with pytest.raises(FileNotFoundError, match="delta_m_references"):
        load_references(str(tmp_path / "nope.json"))
