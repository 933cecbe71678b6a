"""``python -m benchmarks``: measure, print the ratios and every figure, save them as JSON."""

import argparse
import json

from benchmarks.compare import PARTS, run_bench
from benchmarks.report import format_table
from densenet_tutorial.costs import GROWTH_RATES
from densenet_tutorial.model import DENSENET169


def names(text):
    return tuple(name.strip() for name in text.split(",") if name.strip())


def blocks(text):
    return tuple(int(n) for n in text.split(","))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--image-size", type=int, default=128, help="side in pixels (128)")
    parser.add_argument("--batch-size", type=int, default=32, help="images per step (32)")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per figure (5)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (2)")
    parser.add_argument(
        "--parts",
        type=names,
        default=PARTS,
        help=f"comma-separated: {','.join(PARTS)} (default: all)",
    )
    parser.add_argument(
        "--blocks",
        type=blocks,
        default=DENSENET169,
        help="layers per dense block (default 6,12,32,32: DenseNet-169)",
    )
    parser.add_argument(
        "--growth-rates",
        type=int,
        nargs="+",
        default=GROWTH_RATES,
        help="growth rates of the growth part (default: 12 24 32)",
    )
    parser.add_argument(
        "--pipeline-images",
        type=int,
        default=1000,
        help="generated 500x375 JPEGs for the pipeline part (1000)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="run everything this many times, interleaved; report medians (1)",
    )
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    result = run_bench(
        parts=args.parts,
        image_size=args.image_size,
        batch_size=args.batch_size,
        steps=args.steps,
        warmup=args.warmup,
        blocks=args.blocks,
        growth_rates=args.growth_rates,
        pipeline_images=args.pipeline_images,
        repeats=args.repeats,
    )
    print(format_table(result))
    if args.json:
        with open(args.json, "w") as file:
            json.dump(result, file, indent=2)


if __name__ == "__main__":
    main()
