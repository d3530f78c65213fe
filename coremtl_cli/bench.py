"""``coremtl bench NAME``: benchmarks that print ratios measured side by side in one run.

Each benchmark is a function ``main(args) -> dict`` that prints its table and returns the numbers,
which are written to ``benchmarks/results/NAME.json`` together with the machine description; an
existing result file is replaced only with ``--overwrite`` (the command refuses before running).
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import time
from pathlib import Path

BENCHMARKS: dict[str, tuple[str, str]] = {
    "sampling": ("scm.benchmark:main", "SCM sampling throughput against numpy normals"),
    "mtl-cost": ("experiments.synthetic.study8_cost:main", "FLOPs and step time vs K, ratios"),
    "balancers": ("coremtl.balancers.benchmark:main", "step time of every balancer against EW"),
    "step": ("coremtl.benchmark:main", "CORE-MTL step time against EW and PCGrad, K = 10 and 40"),
    "render": ("experiments.vision.render_benchmark:main", "scene rendering against .npy loading"),
    "vision": ("experiments.vision.benchmark:main", "CORE-MTL vision step against Equal Weighting"),
    "ddp": (
        "coremtl.distributed_benchmark:main",
        "exact and local distributed balancing against EW data parallelism, K = 2, 10, 40",
    ),
    "batched": ("coremtl.batched.benchmark:main", "256 small models batched against the loop"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from scm.validation import OVERWRITE_RULE

    parser.epilog = OVERWRITE_RULE
    parser.add_argument("name", choices=sorted(BENCHMARKS), help="which benchmark to run")
    parser.add_argument("--device", default="cpu", help="torch device for benchmarks that use one")
    parser.add_argument("--repeats", type=int, default=5, help="timing repetitions (best is kept)")
    parser.add_argument("--quick", action="store_true", help="a smaller setting, for smoke tests")
    parser.add_argument(
        "--output", type=Path, default=Path("benchmarks/results"), help="folder for the JSON result"
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an existing result file of this benchmark"
    )


def machine_description(device: str) -> dict:
    description = {"platform": platform.platform(), "processor": platform.processor() or "unknown"}
    try:
        import torch

        description["torch"] = torch.__version__
        description["threads"] = torch.get_num_threads()
        if device.startswith("cuda") and torch.cuda.is_available():
            description["device_name"] = torch.cuda.get_device_name(torch.device(device))
    except ImportError:
        pass
    return description


def run(args: argparse.Namespace) -> int:
    from coremtl.devices import check_device
    from scm.validation import check_output_path, check_positive_int, refuse_to_overwrite

    check_positive_int(args.repeats, "--repeats")
    check_device(args.device, "--device", available=True)
    path = args.output / f"{args.name}{'-quick' if args.quick else ''}.json"
    check_output_path(args.output, "--output", folder=True)
    check_output_path(path, "--output")
    if not args.overwrite:
        refuse_to_overwrite([path], "--output")
    module_name, function_name = BENCHMARKS[args.name][0].split(":")
    function = getattr(importlib.import_module(module_name), function_name)
    result = function(args)
    record = {
        "benchmark": args.name,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "device": args.device,
        "machine": machine_description(args.device),
        "quick": args.quick,
        "result": result,
    }
    args.output.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2))
    print(f"wrote {path}")
    return 0
