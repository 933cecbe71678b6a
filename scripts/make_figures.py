"""Draw the figures in ``images/`` from the package's own model, never by hand.

    python scripts/make_figures.py [--out images]

- ``architecture.png``: DenseNet-169 stage by stage (Table 1 of Huang et al.), with the
  channels, sizes and parameters that ``architecture_table`` reads from the built model;
- ``dense_connectivity.png``: one dense block (Eq. 2, Fig. 1): every layer reads the
  feature maps of all layers before it, so its input grows by k per layer;
- ``growth_rate.png``: parameters of DenseNet-169 against the growth rate k, each point
  counted on a network built by ``build_densenet``.
"""

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Rectangle

from densenet_tutorial.architecture import architecture_table
from densenet_tutorial.model import DENSENET169, build_densenet

ROOT = Path(__file__).resolve().parent.parent  # the checkout this script belongs to

STAGE_COLOURS = {"stem": "#d9d9d9", "dense": "#9ecae1", "transition": "#fdae6b", "head": "#a1d99b"}
GROWTH_RATES = (8, 12, 16, 24, 32, 40, 48)


def stage_colour(stage):
    return STAGE_COLOURS[stage.split()[0]]


def architecture_figure(path):
    """DenseNet-169 at 224 px as a row of boxes, one per stage, read from the built model."""
    rows = architecture_table(build_densenet(blocks=DENSENET169, input_shape=(224, 224, 3)))
    fig, ax = plt.subplots(figsize=(16, 3.6))
    width, gap = 1.55, 0.35
    for i, row in enumerate(rows):
        x = i * (width + gap)
        ax.add_patch(
            FancyBboxPatch(
                (x, 0), width, 2, boxstyle="round,pad=0.05", fc=stage_colour(row["stage"]), ec="k"
            )
        )
        size = "x".join(map(str, row["output_size"])) or "1 logit"
        title = row["stage"]
        if row["stage"].startswith("dense block"):
            layers = DENSENET169[int(row["stage"].split()[-1]) - 1]
            title += f"\n{layers} layers"
        text = (
            f"{title}\n\n{row['input_channels']} -> {row['output_channels']} ch\n{size}\n"
            f"{row['params'] / 1e6:.2f} M params"
        )
        ax.text(x + width / 2, 1, text, ha="center", va="center", fontsize=9)
        if i:
            ax.add_patch(FancyArrowPatch((x - gap, 1), (x, 1), arrowstyle="-|>", mutation_scale=12))
    ax.text(
        0, 2.45, "DenseNet-169 (k = 32, theta = 0.5) on a 224x224x3 image; "
        "stage: channels in -> out, output size, parameters", fontsize=10,
    )  # fmt: skip
    ax.set_xlim(-0.1, len(rows) * (width + gap))
    ax.set_ylim(-0.2, 2.7)
    ax.axis("off")
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def dense_connectivity_figure(path, num_layers=4, k0=6, growth_rate=3):
    """A dense block of ``num_layers`` layers: every arrow of Eq. 2, and each layer's input.

    Each layer's input is drawn as a stack of its channels coloured by which earlier layer
    made them: k0 from the block's input, then k from each layer before it.
    """
    colours = plt.get_cmap("tab10").colors
    fig, ax = plt.subplots(figsize=(10, 4.8))
    xs = [2.2 * i for i in range(num_layers + 1)]
    for source in range(num_layers + 1):  # node 0 is the block's input x0
        label = "x0\n(input)" if source == 0 else f"H{source}"
        ax.add_patch(
            FancyBboxPatch(
                (xs[source] - 0.45, 3.6), 0.9, 0.7, boxstyle="round,pad=0.05",
                fc=colours[source], ec="k", alpha=0.85,
            )
        )  # fmt: skip
        ax.text(xs[source], 3.95, label, ha="center", va="center", fontsize=10, color="white")
        for target in range(source + 1, num_layers + 1):
            ax.add_patch(
                FancyArrowPatch(
                    (xs[source] + 0.3, 4.3), (xs[target] - 0.3, 4.3),
                    connectionstyle=f"arc3,rad=-{0.15 + 0.08 * (target - source)}",
                    arrowstyle="-|>", mutation_scale=10, color=colours[source], lw=1.4,
                )
            )  # fmt: skip
    for layer in range(1, num_layers + 1):  # the input of H_layer: [x0, x1, ..., x_{layer-1}]
        bottom = 0.0
        for source in range(layer):
            height = (k0 if source == 0 else growth_rate) * 0.15
            ax.add_patch(Rectangle((xs[layer] - 0.3, bottom), 0.6, height, fc=colours[source]))
            bottom += height
        channels = k0 + growth_rate * (layer - 1)
        ax.text(xs[layer], bottom + 0.1, f"{channels} maps", ha="center", fontsize=9)
        ax.annotate(
            "", (xs[layer], 3.55), (xs[layer], bottom + 0.45), arrowprops={"arrowstyle": "->"}
        )
    ax.text(
        xs[0], 1.3, f"input of each layer\n= concatenation\n(Eq. 2)\nk0 = {k0}, k = {growth_rate}",
        ha="center", va="center", fontsize=9,
    )  # fmt: skip
    ax.set_title(
        f"A dense block of {num_layers} layers: layer l reads k0 + k(l-1) feature maps, "
        f"{(num_layers + 1) * num_layers // 2} connections"
    )
    ax.set_xlim(-0.8, xs[-1] + 0.8)
    ax.set_ylim(-0.2, 7.4)
    ax.axis("off")
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def growth_rate_figure(path, growth_rates=GROWTH_RATES):
    """Parameters of DenseNet-169 against k, each counted on a network built here."""
    counts = [
        build_densenet(blocks=DENSENET169, growth_rate=k, input_shape=(64, 64, 3)).count_params()
        for k in growth_rates
    ]
    fig, ax = plt.subplots(figsize=(6.5, 4))
    ax.plot(growth_rates, [n / 1e6 for n in counts], "o-")
    for k, n in zip(growth_rates, counts, strict=True):
        ax.annotate(f"{n / 1e6:.1f} M", (k, n / 1e6), textcoords="offset points", xytext=(-12, 8))
    ax.set(
        xlabel="growth rate k",
        ylabel="parameters (millions)",
        title="DenseNet-169 (theta = 0.5, 1-logit head): parameters grow about as k²",
        ylim=(0, max(counts) / 1e6 * 1.15),
    )
    ax.grid(alpha=0.3)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "images", help="folder (images/)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, draw in [
        ("architecture.png", architecture_figure),
        ("dense_connectivity.png", dense_connectivity_figure),
        ("growth_rate.png", growth_rate_figure),
    ]:
        draw(args.out / name)
        print(f"wrote {args.out / name}")


if __name__ == "__main__":
    main()
