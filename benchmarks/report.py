"""The figures of ``run_bench`` as Markdown tables: ratios first, then every measurement."""

from benchmarks.compare import PARTS

TRAINING_PARTS = ("model", "memory", "precision", "augmentation")


def format_table(result):
    """Every ratio, then one row per training measurement, then the pipelines' rates."""
    lines = ["| part | ratio | value |", "|---|---|---:|"]
    for part in PARTS:
        for name, value in result.get(part, {}).get("ratios", {}).items():
            lines.append(f"| {part} | {name} | {value:.2f}x |")
    lines += [
        "",
        "| part | run | ran with | step (s) | CPU s/step | img/s | peak memory (MB) "
        "| timed steps' peak (MB) | before 1st step (MB) | params | G mult-adds/img | load avg |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    rows = [
        (part, label, run)
        for part in TRAINING_PARTS
        for label, run in result.get(part, {}).get("runs", {}).items()
    ]
    rows += [
        ("growth", f"k={row['growth_rate']}", row)
        for row in result.get("growth", {}).get("rows", [])
    ]
    for part, label, run in rows:
        lines.append(
            f"| {part} | {label} | {ran_with(run)} "
            f"| {run['step_time_s']:.3f} | {run['cpu_time_per_step_s']:.2f} "
            f"| {run['images_per_second']:.1f} | {run['peak_memory_mb']:,.0f} "
            f"| {megabytes(run['timed_steps_peak_memory_mb'])} "
            f"| {run['memory_before_training_mb']:,.0f} "
            f"| {run['params']:,} | {run['multiply_adds'] / 1e9:.3f} "
            f"| {run['load_average'][0]:.1f}-{run['load_average'][1]:.1f} |"
        )
    if "pipeline" in result:
        lines += ["", *format_pipelines(result["pipeline"]["runs"])]
    return "\n".join(lines)


def ran_with(run):
    """What a training step ran with: precision, XLA, augmentation, whose memory."""
    return (
        f"{run['policy']}, XLA {'on' if run['xla'] else 'off'}, "
        f"{run['augmentation'] or 'no augmentation'}; memory of {run['peak_memory_of']}"
    )


def megabytes(value):
    return "-" if value is None else f"{value:,.0f}"


def format_pipelines(runs):
    """Images per second of each input pipeline, epoch by epoch."""
    epochs = len(next(iter(runs["pipelines"].values())))
    lines = [
        f"| pipeline ({runs['images']:,} training JPEGs, about 500x375) | "
        + " | ".join(f"epoch {e} img/s" for e in range(1, epochs + 1))
        + " |",
        "|---|" + "---:|" * epochs,
    ]
    for name, rates in runs["pipelines"].items():
        lines.append(f"| {name} | " + " | ".join(f"{rate:,.0f}" for rate in rates) + " |")
    return lines
