"""The stage table of a DenseNet built by ``densenet_tutorial.model`` (compare Table 1).

``architecture_table(model)`` sums the layers of each stage, found by their
keras.applications names; ``format_architecture`` prints it. Notebook 02 and
``python -m densenet_tutorial summary`` show it.
"""

import re

import keras


def architecture_table(model):
    """Per stage of a DenseNet built here: input/output channels, output size, parameters.

    Stages are found by layer name: ``conv1``/``pool1`` (stem), ``conv{b}`` (dense block b),
    ``pool{b}`` (transition b), and the rest (head). Nested layers count toward their stage.
    """
    rows = {}
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        stage = _stage_of(layer.name)
        row = rows.setdefault(stage, {"stage": stage, "input_channels": None, "params": 0})
        if row["input_channels"] is None and stage != "input":
            row["input_channels"] = _channels(layer.input)
        shape = layer.output.shape
        row["output_channels"] = shape[-1]
        row["output_size"] = tuple(shape[1:-1])
        row["params"] += layer.count_params()
    return [row for stage, row in rows.items() if stage != "input"]


def _stage_of(layer_name):
    match = re.match(r"(conv|pool)(\d+)_", layer_name + "_")
    if match is None:
        return "input" if layer_name == "normalize" else "head"
    kind, number = match.groups()
    if number == "1":
        return "stem"
    return f"dense block {int(number) - 1}" if kind == "conv" else f"transition {int(number) - 1}"


def _channels(tensors):
    tensors = tensors if isinstance(tensors, (list, tuple)) else [tensors]
    return sum(t.shape[-1] for t in tensors)


def format_architecture(model):
    """``architecture_table`` as aligned text, with the total parameter count."""
    lines = [f"{'stage':<14}{'in ch':>7}{'out ch':>8}{'size':>10}{'params':>13}"]
    for row in architecture_table(model):
        size = "x".join(str(s) for s in row["output_size"]) or "-"
        lines.append(
            f"{row['stage']:<14}{row['input_channels']:>7}{row['output_channels']:>8}"
            f"{size:>10}{row['params']:>13,}"
        )
    lines.append(f"{'total':<14}{'':>7}{'':>8}{'':>10}{model.count_params():>13,}")
    return "\n".join(lines)
