"""What this machine is: read once here, used by training (the precision) and by the records.

- ``cpu_info``: the CPU's model name and instruction-set flags, from ``/proc/cpuinfo``;
- ``cpu_supports_bfloat16``: AVX-512 BF16 or AMX, which make bfloat16 fast on a CPU;
- ``gpus``: name and compute capability of every GPU TensorFlow sees;
- ``environment``: library versions and the hardware, as a run's ``config.json`` keeps them.
"""

import os
import platform
import sys
from pathlib import Path

CPUINFO = "/proc/cpuinfo"


def cpu_info(cpuinfo=CPUINFO):
    """``{"name": model name, "flags": set of flags}`` of the first CPU (Linux); else empty."""
    name, flags = platform.processor(), set()
    try:
        text = Path(cpuinfo).read_text()
    except OSError:  # not Linux
        return {"name": name, "flags": flags}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and name == platform.processor():
            name = value.strip()
        elif key.strip() == "flags":
            flags.update(value.split())
    return {"name": name, "flags": flags}


def cpu_name(cpuinfo=CPUINFO):
    """The CPU's model name (``platform.processor()`` is empty on many Linux machines)."""
    return cpu_info(cpuinfo)["name"]


def cpu_supports_bfloat16(cpuinfo=CPUINFO):
    """True if the CPU has bfloat16 instructions (AVX-512 BF16 or AMX)."""
    return bool(cpu_info(cpuinfo)["flags"] & {"avx512_bf16", "amx_bf16"})


def gpu_supports_float16(details):
    """Tensor cores (Volta, compute capability 7.0, and newer) make float16 fast."""
    return tuple(details.get("compute_capability", (0, 0))) >= (7, 0)


def gpus():
    """``[{"name": ..., "compute_capability": (major, minor)}]`` of the GPUs TensorFlow sees."""
    import tensorflow as tf

    found = []
    for gpu in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(gpu)
        found.append({"name": details.get("device_name", gpu.name),
                      "compute_capability": details.get("compute_capability")})  # fmt: skip
    return found


def environment():
    """Library versions and the hardware: what a figure or a run was measured on."""
    from importlib.metadata import version

    from densenet_tutorial import __version__

    return {
        "versions": {
            "python": platform.python_version(),
            **{name: version(name) for name in ("tensorflow", "keras", "numpy")},
            "densenet_tutorial": __version__,
        },
        "hardware": {
            "platform": platform.platform(),
            "cpu": cpu_name(),
            "cpu_count": os.cpu_count(),
            "gpus": gpus(),
        },
        "command": sys.argv,
    }
