"""Measure the data steps on this machine: verification speed and input-pipeline speed.

    .venv/bin/python scripts/bench_data.py [--verify-per-class 12500] [--pipeline-per-class 1000]

Both run on generated 500x375 JPEGs (``densenet_tutorial.data.synth``) in a temporary folder.
"""

import argparse

from densenet_tutorial.data import benchmark_pipeline, benchmark_verification


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--verify-per-class", type=int, default=12500)
    parser.add_argument("--pipeline-per-class", type=int, default=1000)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--trials", type=int, default=3, help="best of N runs (3)")
    args = parser.parse_args()

    if args.verify_per_class:
        result = benchmark_verification(args.verify_per_class)
        print(f"verification: {result['files']:,} files, {result['files_per_second']:,.0f} "
              f"files/s; rerun with cached verdicts {result['rerun_seconds']:.2f} s")  # fmt: skip
    if args.pipeline_per_class:
        result = benchmark_pipeline(args.pipeline_per_class, args.image_size, args.batch_size,
                                    trials=args.trials)  # fmt: skip
        print(f"pipeline: {result['images']:,} training images of 500x375 px, at "
              f"{args.image_size} px, batch {args.batch_size}, best of {args.trials}")  # fmt: skip
        for mode in ("augment", "plain"):
            ours, keras = result[mode]["make_dataset"], result[mode]["image_dataset_from_directory"]
            for epoch, (a, b) in enumerate(zip(ours, keras, strict=True), 1):
                print(f"pipeline {mode:7s} epoch {epoch}: make_dataset {a:6.0f} img/s, "
                      f"Keras {b:6.0f} img/s, ratio {a / b:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
