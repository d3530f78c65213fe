"""``coremtl verify --smoke`` end to end, ``coremtl figures`` from its JSON, and bad input."""

from __future__ import annotations

import json

import pytest

from coremtl_cli.main import main
from experiments.figures_cli import load_results
from experiments.synthetic import STUDIES
from experiments.verify import parse_only
from scm.validation import InvalidParameterError


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("verify")
    results, figures = folder / "results" / "verify.json", folder / "figures"
    status = main(["verify", "--smoke", "--results", str(results), "--figures", str(figures)])
    return status, results, figures


def test_smoke_verify_writes_results_report_and_figures(smoke_run):
    status, results, figures = smoke_run
    assert status == 0
    payload = json.loads(results.read_text())
    assert sorted(payload["studies"], key=int) == [str(n) for n in sorted(STUDIES)]
    assert all("error" not in study for study in payload["studies"].values())
    assert payload["proofs"]["certificates"]
    assert payload["configuration"]["versions"]["torch"]
    assert set(payload["configuration"]["study_settings"]) == {str(n) for n in STUDIES}
    for folder in (results.parent, figures):
        report = (folder / "REPORT.md").read_text()
        assert "| id | claim | expected | outcome | as expected? | headline |" in report
        assert "Study 8" in report
    pngs = sorted(figures.glob("*.png"))
    assert len(pngs) >= 8
    assert all(png.with_suffix(".pdf").is_file() for png in pngs)


def test_figures_command_regenerates_from_the_results_file(smoke_run, tmp_path):
    _, results, _ = smoke_run
    assert main(["figures", "--results", str(results), "--figures", str(tmp_path)]) == 0
    assert (tmp_path / "study1_regime_map.png").is_file()
    assert (tmp_path / "study4_psi_trajectories.pdf").is_file()
    assert "(study1_regime_map.png)" in (tmp_path / "REPORT.md").read_text()


def test_only_rejects_unknown_study_numbers():
    with pytest.raises(InvalidParameterError, match="--only: expected comma-separated study"):
        parse_only("1,9", list(range(1, 9)))
    assert parse_only("4, 1,4", list(range(1, 9))) == [1, 4]


def test_verify_reports_bad_only_as_a_one_line_error(capsys):
    assert main(["verify", "--smoke", "--only", "x"]) == 2
    assert "--only: expected" in capsys.readouterr().err


def test_figures_reports_a_missing_results_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="--results: no results file"):
        load_results(tmp_path / "missing.json")


def test_figures_rejects_a_file_that_is_not_a_results_file(tmp_path):
    path = tmp_path / "other.json"
    path.write_text(json.dumps({"a": 1}))
    with pytest.raises(InvalidParameterError, match="not a coremtl verify results file"):
        load_results(path)


def test_verify_rejects_an_unknown_device(capsys):
    assert main(["verify", "--smoke", "--device", "nonsense"]) == 2
    assert "--device: expected a torch device" in capsys.readouterr().err


def _without_timings(value):
    """The results with every measured time (``*seconds``) and timestamp (``*_at``) removed."""
    if isinstance(value, dict):
        return {
            k: _without_timings(v)
            for k, v in value.items()
            if not (k.endswith("seconds") or k.endswith("_at"))
        }
    if isinstance(value, list):
        return [_without_timings(v) for v in value]
    return value


def test_worker_processes_give_the_results_of_one_process(smoke_run, tmp_path):
    _, serial_path, _ = smoke_run
    results = tmp_path / "verify.json"
    chosen = ["1", "4", "9"]
    argv = ["verify", "--smoke", "--jobs", "2", "--only", ",".join(chosen), "--results"]
    assert main([*argv, str(results), "--figures", str(tmp_path / "figures")]) == 0
    serial, parallel = json.loads(serial_path.read_text()), json.loads(results.read_text())
    assert parallel["configuration"]["jobs"] == 2
    assert list(parallel["studies"]) == chosen
    for number in chosen:
        ours, reference = parallel["studies"][number], serial["studies"][number]
        assert _without_timings(ours) == _without_timings(reference), number
    assert _without_timings(parallel["proofs"]) == _without_timings(serial["proofs"])


def test_verify_rejects_a_non_positive_jobs(capsys):
    assert main(["verify", "--smoke", "--jobs", "0"]) == 2
    assert "--jobs: expected a positive integer" in capsys.readouterr().err


class _OneWorkerPool:
    """A pool that has started only the first job when its result is asked for."""

    def __init__(self) -> None:
        self.futures: list = []

    def submit(self, function, *arguments):
        from concurrent.futures import Future

        future = Future()
        if not self.futures:
            try:
                future.set_result(function(*arguments))
            except Exception as error:
                future.set_exception(error)
        self.futures.append(future)
        return future


def test_a_failing_job_cancels_the_jobs_not_yet_started():
    from concurrent.futures import ThreadPoolExecutor

    from experiments.verify_pool import map_jobs

    def job(index: int) -> int:
        if index == 0:
            raise ValueError("diverged")
        return index

    pool = _OneWorkerPool()
    with pytest.raises(ValueError, match="diverged"):
        map_jobs(pool, [(job, (i,)) for i in range(5)])
    assert all(future.cancelled() for future in pool.futures[1:])
    with ThreadPoolExecutor(2) as threads:
        assert map_jobs(threads, [(job, (i,)) for i in range(1, 4)]) == [1, 2, 3]
