"""``python -m densenet_tutorial COMMAND``: a thin face over the package.

Each command parses its options and calls one function of the package; no logic lives here.
Errors the user can fix (``densenet_tutorial.errors.ProjectError``: a missing folder, a bad
growth rate, no network) are printed as one clear message, without a traceback, and the
command exits with status 2; any other exception is a bug and keeps its traceback.
"""

import argparse
import contextlib
import os
import sys
import tempfile

from densenet_tutorial.config import PRECISIONS, QUICK, QUICK_STEPS_PER_EPOCH, RunConfig, run_config
from densenet_tutorial.errors import ProjectError

# What TensorFlow's C++ code writes to the terminal as it starts on a machine without a GPU:
# the CUDA stubs finding no driver ("Could not find cuda drivers", "failed call to cuInit"),
# the oneDNN notice, and Abseil's note that logging is not set up yet. They are written before
# TensorFlow reads TF_CPP_MIN_LOG_LEVEL, so that setting cannot hide them, and none of them
# asks the user to do anything.
START_UP_NOISE = (
    "absl::InitializeLog() is called",
    "cudart_stub.cc",
    "cuda_platform.cc",
    "cuda_diagnostics.cc",
    "oneDNN custom operations are on",
)


@contextlib.contextmanager
def without_start_up_noise():
    """Hold back the lines of ``START_UP_NOISE`` written to standard error in this block.

    They are written by C++ code to file descriptor 2, not through ``sys.stderr``, so the
    descriptor itself is pointed at a temporary file; every other line is shown afterwards,
    as it came.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            for line in caught.read().decode(errors="replace").splitlines(keepends=True):
                if not any(noise in line for noise in START_UP_NOISE):
                    sys.stderr.write(line)
            sys.stderr.flush()


def start_tensorflow():
    """Import TensorFlow and let it look for GPUs, without its start-up noise on the console."""
    with without_start_up_noise():
        import tensorflow as tf

        tf.config.list_physical_devices("GPU")  # where it tries CUDA (cuInit)


def _blocks(text):
    try:
        return tuple(int(n) for n in text.split(","))
    except ValueError as error:
        message = f"--blocks wants numbers like 6,12,32,32, not {text!r}"
        raise argparse.ArgumentTypeError(message) from error


def add_model_options(parser):
    """The architecture knobs shared by every command that builds a DenseNet."""
    blocks, k, size = RunConfig.blocks, RunConfig.growth_rate, RunConfig.image_size
    parser.add_argument(
        "--blocks",
        type=_blocks,
        default=blocks,
        help=f"layers per dense block (default {_listed(blocks)}: DenseNet-169)",
    )
    parser.add_argument("--growth-rate", type=int, default=k, help=f"k (default {k})")
    theta = RunConfig.compression
    parser.add_argument("--compression", type=float, default=theta, help=f"theta (default {theta})")
    parser.add_argument("--image-size", type=int, default=size, help=f"side in pixels ({size})")
    parser.add_argument(
        "--memory-efficient",
        action="store_true",
        help="recompute concat+BN+ReLU+1x1 conv in the backward pass",
    )


def cmd_summary(args):
    """Build a DenseNet and print its stages and parameter count."""
    start_tensorflow()
    from densenet_tutorial.architecture import format_architecture
    from densenet_tutorial.model import build_densenet

    model = build_densenet(
        blocks=args.blocks, growth_rate=args.growth_rate, compression=args.compression,
        input_shape=(args.image_size, args.image_size, 3), memory_efficient=args.memory_efficient,
    )  # fmt: skip
    print(
        f"{model.name}: growth rate {args.growth_rate}, compression {args.compression}, "
        f"{args.image_size}x{args.image_size} RGB input"
    )
    print(format_architecture(model))
    print(f"Parameters: {model.count_params():,}")


def cmd_demo(args):
    """Run the whole notebook sequence in quick mode; keep the executed copies and figures."""
    from densenet_tutorial.demo import demo

    demo(out_dir=args.out, jobs=args.jobs)


def cmd_explain(args):
    """Write Grad-CAM overlays of image files as PNG files."""
    start_tensorflow()
    from densenet_tutorial.visualize import explain

    for row in explain(args.model, args.images, args.out, args.layer, args.target, args.alpha):
        print(f"{row['image']}: {row['predicted']} ({row['probability']:.2f}) -> {row['overlay']}")


def cmd_prepare(args):
    """Download (or take --source), check every image, find copies, split 17,000/4,000/4,000."""
    from densenet_tutorial.data import describe_copies, prepare

    split_dir = prepare(
        source=args.source, handle=args.handle, out=args.out, seed=args.seed,
        val_per_class=args.val_per_class, test_per_class=args.test_per_class,
    )  # fmt: skip
    print(describe_copies(split_dir.parent))
    print(f"Split written to {split_dir}")


def cmd_synth(args):
    """Write a generated, learnable cats-vs-dogs set in one of the Kaggle layouts."""
    from densenet_tutorial.data import synthesize

    files = synthesize(args.out, args.per_class, layout=args.layout, broken=args.broken,
                       seed=args.seed, progress=True)  # fmt: skip
    print(f"Wrote {len(files):,} files to {args.out} ({args.layout} layout)")


def cmd_train(args):
    """Train a DenseNet on a prepared split; evaluate the best model on the test split."""
    config = run_config(  # options not given (None) take the recipe's or quick mode's value
        args.quick, blocks=args.blocks, growth_rate=args.growth_rate,
        compression=args.compression, image_size=args.image_size, batch_size=args.batch_size,
        epochs=args.epochs, memory_efficient=args.memory_efficient, seed=args.seed,
        precision=args.precision, deterministic=args.deterministic,
    )  # fmt: skip
    start_tensorflow()
    from densenet_tutorial.timeplan import estimate, format_time_plan
    from densenet_tutorial.training import train

    if args.estimate:
        print(format_time_plan(estimate(args.data, config)))
        return
    metrics = train(args.data, args.out, config)
    print(f"Test accuracy {metrics.get('accuracy', float('nan')):.4f}; results in {args.out}")


def _listed(blocks):
    return ",".join(map(str, blocks))


def build_parser():
    # Only `densenet_tutorial.config` here: the help and `prepare` start without TensorFlow;
    # each command imports what it needs when it runs.
    parser = argparse.ArgumentParser(
        prog="python -m densenet_tutorial", description=__doc__.split("\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)

    summary = commands.add_parser("summary", help="build a DenseNet and print its stages")
    add_model_options(summary)
    summary.set_defaults(func=cmd_summary)

    demo = commands.add_parser(
        "demo", help="run every notebook in quick mode on generated data (no Kaggle, no GPU)"
    )
    demo.add_argument("--out", help="folder for the executed notebooks and figures (runs/demo)")
    demo.add_argument(
        "--jobs", type=int, help="notebooks run at a time (default 2, 1 on a single vCPU)"
    )
    demo.set_defaults(func=cmd_demo)

    explain = commands.add_parser("explain", help="write Grad-CAM overlays of images as PNG")
    explain.add_argument("--model", required=True, help="a saved model, e.g. RUN/best.keras")
    explain.add_argument("--images", required=True, nargs="+", help="image files")
    explain.add_argument("--out", required=True, help="folder for the PNG overlays")
    explain.add_argument(
        "--layer", help="layer to explain (default: relu, or at small inputs the last block "
        "output whose maps are at least 7x7)"
    )  # fmt: skip
    explain.add_argument(
        "--target", choices=("cat", "dog"), help="class to explain (default: the predicted one)"
    )
    explain.add_argument("--alpha", type=float, default=0.4, help="heatmap opacity (0.4)")
    explain.set_defaults(func=cmd_explain)

    prepare = commands.add_parser(
        "prepare", help="download Cats vs Dogs (or use --source), check every image, split it"
    )
    prepare.add_argument("--source", help="a folder that already holds the images (no download)")
    prepare.add_argument(
        "--handle", help="Kaggle dataset OWNER/SLUG[/versions/N] or the competition dogs-vs-cats "
        "(default: salader/dogs-vs-cats/versions/1, then biaiscience/dogs-vs-cats/versions/1)",
    )  # fmt: skip
    prepare.add_argument("--out", help="output folder (default: data/cats-vs-dogs)")
    prepare.add_argument("--seed", type=int, default=0, help="split seed (0)")
    prepare.add_argument("--val-per-class", type=int, default=2000, help="(2000)")
    prepare.add_argument("--test-per-class", type=int, default=2000, help="(2000)")
    prepare.set_defaults(func=cmd_prepare)

    synth = commands.add_parser("synth", help="generate a learnable synthetic cats-vs-dogs set")
    synth.add_argument("--out", required=True, help="folder to write the images to")
    synth.add_argument("--per-class", type=int, required=True, help="images of each class")
    synth.add_argument("--layout", default="class-folders",
                       help="class-folders (default), train-train, flat, petimages or competition: "
                       "the layouts of the Kaggle handles")  # fmt: skip
    synth.add_argument("--broken", action="store_true",
                       help="add broken and unusual files, as in the real downloads")  # fmt: skip
    synth.add_argument("--seed", type=int, default=0, help="random seed (0)")
    synth.set_defaults(func=cmd_synth)

    train = commands.add_parser("train", help="train a DenseNet, evaluate it on the test split")
    train.add_argument("--data", required=True, help="the folder `prepare` wrote (OUT)")
    train.add_argument("--out", required=True, help="run folder, e.g. runs/densenet169")
    add_model_options(train)
    batch, epochs, seed = RunConfig.batch_size, RunConfig.epochs, RunConfig.seed
    train.add_argument("--batch-size", type=int, help=f"images per replica ({batch})")
    train.add_argument("--epochs", type=int, help=f"({epochs}; {QUICK['epochs']} with --quick)")
    train.add_argument("--seed", type=int, help=f"random seed ({seed})")
    train.add_argument("--quick", action="store_true",
                       help=f"minutes on a CPU: {QUICK['image_size']} px, blocks "
                       f"{_listed(QUICK['blocks'])}, growth rate {QUICK['growth_rate']}, "
                       f"{QUICK['epochs']} epochs of at most {QUICK_STEPS_PER_EPOCH} steps, unless "
                       "given",
                       )  # fmt: skip
    train.add_argument(
        "--precision", choices=PRECISIONS,
        help="auto (default): float16 on GPUs, bfloat16 on CPUs with bfloat16, else float32",
    )  # fmt: skip
    train.add_argument(
        "--estimate", action="store_true",
        help="measure a few steps of the pipeline and the model, print the time plan, train "
        "nothing and write nothing",
    )  # fmt: skip
    train.add_argument(
        "--deterministic", action="store_true",
        help="deterministic TensorFlow ops (slower), for reproducible runs",
    )  # fmt: skip
    train.set_defaults(func=cmd_train, blocks=None, growth_rate=None, image_size=None)

    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except ProjectError as error:
        # A problem the user can fix: one clear line. Anything else is a bug: its traceback.
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0
