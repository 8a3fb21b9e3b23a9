"""Progress lines of long loops: rate, ETA, and when they are logged."""

import logging

import pytest

from mtnets import progress


def test_message_rate_and_eta():
    report = progress.Progress("Evaluation", 40, items_per_unit=4, item="images")
    # 12 batches of 4 images in 6 s: 8 images/s; 28 batches left at 0.5 s each: 14 s.
    assert report.message(12, 6.0) == "Evaluation: 12/40 batches (30%), 8 images/s, ETA 0m14s"
    assert report.message(40, 20.0) == "Evaluation: 40/40 batches (100%), 8 images/s, took 0m20s"
    assert report.message(0, 0.0) == "Evaluation: 0/40 batches (0%)"
    unknown = progress.Progress("Reading", None, unit="files")
    assert unknown.message(3, 1.5) == "Reading: 3/? files, 2 files/s"


@pytest.mark.parametrize(
    "seconds, text", [(0, "0m00s"), (59.6, "1m00s"), (95.2, "1m35s"), (4000, "1h06m40s")]
)
def test_format_seconds(seconds, text):
    assert progress.format_seconds(seconds) == text


def test_lines_come_at_most_every_secs_and_at_the_end(caplog):
    report = progress.Progress("Work", 5, unit="items", every_secs=10.0)
    with caplog.at_level(logging.INFO):
        report.start()
        t0 = report._start
        for done, t in ((1, 1.0), (2, 2.0), (3, 12.5), (4, 13.0), (5, 14.0)):
            report(done, t0 + t)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Work:")]
    assert [line.split(",")[0] for line in lines] == [
        "Work: 0/5 items (0%)",
        "Work: 3/5 items (60%)",  # 12.5 s after the start: more than 10 s since the last line
        "Work: 5/5 items (100%)",  # the end is always reported
    ]
    assert "\r" not in "".join(lines)


def test_logged_yields_everything_and_reports_the_end(caplog):
    with caplog.at_level(logging.INFO):
        items = list(progress.logged(range(7), "Building x train", 7))
    assert items == list(range(7))
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("Building x train: 7/7 examples (100%)") for m in messages)


def test_due_says_when_a_line_would_be_logged():
    report = progress.Progress("Work", 5, unit="items", every_secs=10.0).start()
    t0 = report._start
    assert not report.due(1, t0 + 1.0)  # 1 s after the first line
    assert report.due(2, t0 + 10.5)  # more than every_secs later
    assert report.due(5, t0 + 2.0)  # the end is always reported
