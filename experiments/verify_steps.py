"""The pieces of ``coremtl verify`` that run alike in one process and in worker processes
(:mod:`experiments.verify_pool`): the statement certificates, one study, the results file."""

from __future__ import annotations

import json
import sys
import time
import traceback
from pathlib import Path

SMOKE_STATEMENTS = ("S1", "S6", "S7", "S8", "S9")


def write_json(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(json.dumps(payload, indent=1, allow_nan=False))
    temporary.replace(path)


def run_proofs(seed: int, ids: tuple[str, ...] | None = None) -> dict:
    """The certificates of ``coremtl prove`` (``proofs.registry.certify_all``), run in process;
    ``ids`` selects statements (all when None)."""
    import warnings

    from proofs.registry import certify_all

    begin = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        certificates = certify_all(ids, seed=seed)
    return {
        "seed": seed,
        "seconds": time.perf_counter() - begin,
        "certificates": [certificate.to_dict() for certificate in certificates],
        "mismatches": [c.statement for c in certificates if not c.matches],
    }


def proof_result(seed: int, mode: str) -> dict:
    """The certificates (the smoke subset with ``mode == 'smoke'``) with their wall time; an
    error becomes ``{"error": traceback}``."""
    begin = time.time()
    try:
        from experiments.synthetic.common import jsonable

        proofs = jsonable(run_proofs(seed, SMOKE_STATEMENTS if mode == "smoke" else None))
    except Exception:
        proofs = {"error": traceback.format_exc()}
        print(proofs["error"], file=sys.stderr)
    return {"proofs": proofs, "seconds": time.time() - begin}


def record_proofs(payload: dict, outcome: dict) -> None:
    payload["proofs"] = outcome["proofs"]
    payload["proofs_seconds"] = outcome["seconds"]


def study_result(number: int, mode: str, seed: int, device: str, mapper=None) -> dict:
    """Study ``number`` in setting ``mode`` with its name, statements and wall time; an error
    becomes a result with verdict ``error``. ``mapper`` (for a study whose ``run`` takes one)
    runs its lists of jobs, e.g. over worker processes."""
    from experiments.synthetic import study

    chosen = study(number)
    begin = time.time()
    options = {} if mapper is None else {"mapper": mapper}
    try:
        result = chosen.run(chosen.configs[mode], seed, device, progress=True, **options)
    except Exception:
        result = {
            "error": traceback.format_exc(),
            "verdict": "error",
        }
        print(result["error"], file=sys.stderr)
    result["seconds"] = time.time() - begin
    result.update(chosen.identity())
    return result


def outcome_line(result: dict) -> str:
    """One line on a finished study: its verdict, headline and wall time."""
    from proofs.headline import Headline

    seconds = f" ({result['seconds']:.0f} s)" if "seconds" in result else ""
    if "finding" not in result:
        return f"error{seconds}"
    finding = result["finding"]
    return f"{finding['verdict']}: {Headline.from_dict(finding['headline']).text()}{seconds}"
