"""``coremtl verify --jobs N``: the proofs and the studies over ``N`` worker processes.

Every study is a pure function of its setting, seed and device, so running studies side by side
changes nothing but the wall time. A study whose ``run`` takes a ``mapper`` (study 1) runs in the
main process and hands its lists of training jobs to the same workers; it pre-registers its
predictions (its first list of jobs) before it submits any training job. Workers are started with
``spawn`` (no state inherited from the parent) and ``--threads`` torch threads each. Results are
written to the results file as each piece finishes, as in the serial run.
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import Executor, Future, ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path

from experiments.verify_steps import (
    outcome_line,
    proof_result,
    record_proofs,
    study_result,
    write_json,
)


def start_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def takes_mapper(number: int) -> bool:
    """Whether study ``number`` spreads its own jobs over the workers (``Study.spreads_jobs``)."""
    from experiments.synthetic import study

    return study(number).spreads_jobs


def map_jobs(pool: Executor, jobs: list[tuple]) -> list:
    """``[function(*arguments) for function, arguments in jobs]`` on ``pool``, in order; when one
    raises, the jobs not yet started are cancelled (a failed study stops using the workers) and
    the error is raised."""
    futures = [pool.submit(function, *arguments) for function, arguments in jobs]
    try:
        return [future.result() for future in futures]
    except BaseException:
        for future in futures:
            future.cancel()
        raise


def run_parallel(
    args: argparse.Namespace,
    mode: str,
    numbers: list[int],
    device: str,
    payload: dict,
    results_path: Path,
) -> int:
    """Run the proofs (unless ``--no-proofs``) and ``numbers`` on ``args.jobs`` workers, filling
    ``payload`` and rewriting ``results_path`` as each finishes; returns the number of failures."""
    failures = 0
    context = get_context("spawn")
    with ProcessPoolExecutor(
        args.jobs, mp_context=context, initializer=start_worker, initargs=(args.threads,)
    ) as pool:
        pending: dict[Future, str | int] = {}
        if not args.no_proofs:
            pending[pool.submit(proof_result, args.seed, mode)] = "proofs"
        spreading = [number for number in numbers if takes_mapper(number)]
        for number in numbers:
            if number not in spreading:
                pending[pool.submit(study_result, number, mode, args.seed, device)] = number
        print(f"[verify] {len(pending)} pieces on {args.jobs} worker processes", flush=True)

        def mapper(jobs: list[tuple]) -> list:
            return map_jobs(pool, jobs)

        def record(key: str | int, outcome: dict) -> int:
            if key == "proofs":
                record_proofs(payload, outcome)
                print(f"[verify] proofs done ({outcome['seconds']:.0f} s)", flush=True)
                failed = "error" in outcome["proofs"]
            else:
                payload["studies"][str(key)] = outcome
                print(f"[verify] study {key} done: {outcome_line(outcome)}", flush=True)
                failed = outcome["verdict"] == "error"
            write_json(results_path, payload)
            return int(failed)

        for number in spreading:
            begin = time.time()
            outcome = study_result(number, mode, args.seed, device, mapper)
            outcome["seconds"] = time.time() - begin
            failures += record(number, outcome)
        for future in as_completed(pending):
            failures += record(pending[future], future.result())
    payload["studies"] = {str(n): payload["studies"][str(n)] for n in numbers}
    return failures
