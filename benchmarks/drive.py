"""What a training run writes to its run folder (Google Drive on Colab): per epoch, and kept.

    python -m benchmarks.drive [--precision float32 mixed_float16] [--epochs 4] [--json FILE]

Trains DenseNet-169 at its real size (blocks 6, 12, 32, 32; k = 32: 12.6 M parameters) for a
few short epochs at 32 px on 64 generated images: what is written (the training state,
``best.keras``, the history, TensorBoard's logs) depends on the network, not on the images.
Each epoch's writes are the process's ``wchar`` (``/proc/self/io``: bytes passed to
``write`` and ``sendfile``, copies included) between the ends of consecutive epochs, taken
after every callback has run; the files each epoch (re)wrote are listed with their sizes,
which is what Google Drive uploads again. Trashed: the bytes of the files the epoch replaced
(``os.replace`` over an existing file) or deleted (``os.unlink``) in the run folder, as they
were at that moment: on Google Drive each goes to the trash, where it counts against the
quota for 30 days. Kept: the size of every file in the run folder once the run has finished
and been evaluated. Run it from the repository's root.
"""

import argparse
import contextlib
import json
import os
import sys
import tempfile
import warnings
from pathlib import Path

import keras

MiB = 2**20


def bytes_written():
    """Bytes this process has passed to write-like system calls so far (Linux)."""
    with open("/proc/self/io") as file:
        return int(dict(line.split(": ") for line in file.read().splitlines())["wchar"])


def snapshot(folder):
    """``{relative path: (size, mtime_ns)}`` of every file under ``folder``."""
    return {
        str(path.relative_to(folder)): (path.stat().st_size, path.stat().st_mtime_ns)
        for path in folder.rglob("*")
        if path.is_file()
    }


class Trash:
    """Count the bytes of the files inside ``folder`` that are replaced or deleted (what Google
    Drive moves to its trash), by wrapping ``os.replace`` and ``os.unlink`` while in use."""

    def __init__(self, folder):
        self.folder, self.bytes = os.fspath(folder), 0

    def count(self, path):
        path = os.fspath(path)
        if path.startswith(self.folder) and os.path.isfile(path):
            self.bytes += os.path.getsize(path)

    def __enter__(self):
        self.patches = contextlib.ExitStack()
        for name in ("replace", "unlink"):
            real = getattr(os, name)

            def counted(*args, real=real, name=name, **kwargs):
                self.count(args[1] if name == "replace" else args[0])
                return real(*args, **kwargs)

            self.patches.enter_context(_patched(os, name, counted))
        return self

    def __exit__(self, *exc):
        self.patches.close()


@contextlib.contextmanager
def _patched(module, name, value):
    real = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, real)


class WriteMeter(keras.callbacks.Callback):
    """After each epoch (and after the other callbacks): bytes written, files (re)written."""

    def __init__(self, folder, trash):
        super().__init__()
        self.folder, self.trash, self.epochs = Path(folder), trash, []

    def on_train_begin(self, logs=None):
        self.last, self.files, self.trashed = bytes_written(), snapshot(self.folder), 0

    def on_epoch_end(self, epoch, logs=None):
        now, files = bytes_written(), snapshot(self.folder)
        changed = {name: size for name, (size, mtime) in files.items()
                   if self.files.get(name, (None, None))[1] != mtime}  # fmt: skip
        self.epochs.append({"epoch": epoch + 1, "bytes_written": now - self.last,
                            "bytes_trashed": self.trash.bytes - self.trashed,
                            "files_rewritten": changed})  # fmt: skip
        self.last, self.files, self.trashed = now, files, self.trash.bytes


def measure(precision, epochs, workdir, blocks=(6, 12, 32, 32), growth_rate=32):
    """Train DenseNet-169 (or ``blocks``, ``growth_rate``) for ``epochs`` epochs in
    ``precision`` on generated images; what it wrote and kept."""
    from densenet_tutorial.config import RunConfig
    from densenet_tutorial.data import prepare, synthesize
    from densenet_tutorial.training import train

    base = Path(workdir)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "fewer than 25,000 images"
        synthesize(base / "images", 44, size=(64, 48))
        prepare(source=base / "images", out=base / "data", val_per_class=6, test_per_class=6,
                progress=False, workers=1)  # fmt: skip
    out = base / f"run-{precision}"
    config = RunConfig(blocks=blocks, growth_rate=growth_rate, image_size=32, batch_size=8,
                       epochs=epochs, precision=precision)  # fmt: skip
    with Trash(out) as trash:
        meter = WriteMeter(out, trash)
        train(base / "data", out, config, callbacks=[meter], verbose=0)
    kept = {name: size for name, (size, _) in snapshot(out).items()}
    return {"precision": precision, "epochs": meter.epochs, "kept": kept,
            "trashed_in_all": trash.bytes}  # fmt: skip


def report(result):
    """A few lines: MiB written per epoch, what was rewritten, MiB kept and where."""
    lines = [f"{result['precision']}:"]
    for epoch in result["epochs"]:
        big = ", ".join(f"{name} {size / MiB:.1f}" for name, size in
                        sorted(epoch["files_rewritten"].items()) if size > MiB)  # fmt: skip
        lines.append(f"  epoch {epoch['epoch']}: {epoch['bytes_written'] / MiB:.1f} MiB written,"
                     f" {epoch['bytes_trashed'] / MiB:.1f} MiB to Drive's trash"
                     f" (files over 1 MiB rewritten, MiB: {big})")  # fmt: skip
    kept = result["kept"]
    backup = sum(size for name, size in kept.items() if name.startswith("backup"))
    lines.append(
        f"  kept after the finished run: {sum(kept.values()) / MiB:.1f} MiB, of which "
        f"backup/ {backup / MiB:.1f}, best.keras {kept.get('best.keras', 0) / MiB:.1f}; "
        f"to Drive's trash in all (evaluation included): {result['trashed_in_all'] / MiB:.1f} MiB"
    )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--precision", nargs="+", default=["float32", "mixed_float16"])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--json", help="also save every figure here")
    args = parser.parse_args()
    import densenet_tutorial

    print(f"densenet_tutorial from {Path(densenet_tutorial.__file__).parent}", file=sys.stderr)
    results = []
    for precision in args.precision:
        with tempfile.TemporaryDirectory() as folder:
            results.append(measure(precision, args.epochs, folder))
        print(report(results[-1]), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
