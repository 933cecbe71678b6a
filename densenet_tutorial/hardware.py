"""What this machine is and how much memory a step takes: used by training and by the records.

- ``cpu_info``: the CPU's model name and instruction-set flags, from ``/proc/cpuinfo``;
- ``cpu_supports_bfloat16``: AVX-512 BF16 or AMX, which make bfloat16 fast on a CPU;
- ``gpus``: name and compute capability of every GPU TensorFlow sees;
- ``memory_device``, ``peak_memory_mb``, ``reset_peak_memory``: the memory a training step
  takes, the GPU's where there is one (its tensors live there), else the process's;
- ``allow_gpu_memory_growth``: let processes share a GPU (notebook 05's measuring workers);
- ``environment``: library versions and the hardware, as a run's ``config.json`` keeps them;
- ``release_memory``: give back what a finished training run held (through TensorFlow's
  internals), so that runs in one kernel do not pile up memory.
"""

import contextlib
import ctypes
import gc
import os
import platform
import resource
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


def memory_device():
    """``"GPU:0"`` where TensorFlow sees a GPU, else ``None``: whose memory a step fills."""
    import tensorflow as tf

    return "GPU:0" if tf.config.list_logical_devices("GPU") else None


def peak_memory_mb():
    """The peak memory since the last reset, in MiB: the GPU's allocator peak
    (``tf.config.experimental.get_memory_info``), else the process's peak resident set."""
    import tensorflow as tf

    device = memory_device()
    if device:
        return tf.config.experimental.get_memory_info(device)["peak"] / 2**20
    return peak_rss_mb()


def reset_peak_memory():
    """Restart the peak from what is held now; False where the machine refuses it."""
    import tensorflow as tf

    device = memory_device()
    if device:
        tf.config.experimental.reset_memory_stats(device)
        return True
    return reset_peak_rss()


def peak_rss_mb():
    """The process's peak resident set size, in MiB: Linux's VmHWM, else ``ru_maxrss``."""
    status = Path("/proc/self/status")
    if status.exists():
        line = next(line for line in status.read_text().splitlines() if line.startswith("VmHWM"))
        return int(line.split()[1]) / 2**10  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # macOS: bytes


def reset_peak_rss():
    """Restart the peak from the current resident size (Linux); False where that is refused.

    Writing 5 to ``/proc/self/clear_refs`` resets the "high water mark" (man 5 proc); some
    locked-down containers forbid it.
    """
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:  # not Linux, or not allowed here
        return False
    return True


def allow_gpu_memory_growth():
    """Let this process and the processes it starts share the GPUs: each takes what it uses.

    TensorFlow otherwise reserves nearly all of a GPU's memory for the first process that
    uses it. Sets ``TF_FORCE_GPU_ALLOW_GROWTH`` for the processes started from now on, and
    memory growth for this one; returns False if this process already holds a GPU (its
    reservation cannot change any more: restart it to share).
    """
    import tensorflow as tf

    os.environ["TF_FORCE_GPU_ALLOW_GROWTH"] = "true"
    try:
        for gpu in tf.config.list_physical_devices("GPU"):
            tf.config.experimental.set_memory_growth(gpu, True)
    except RuntimeError:  # "Physical devices cannot be modified after being initialized"
        return False
    return True


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


def custom_gradients():
    """The names under which ``tf.custom_gradient`` has registered gradient functions so far."""
    from tensorflow.python.framework import ops

    registry = getattr(getattr(ops, "gradient_registry", None), "_registry", {})
    return {name for name in registry if name.startswith("CustomGradient-")}


def release_memory(custom_gradients_before=()):
    """Give back what a finished run held, so that runs in one kernel do not pile up memory.

    Traced in a graph (fit's training step), each use of ``tf.custom_gradient`` registers its
    gradient function under a new name in TensorFlow's global registry and never removes it
    (``tensorflow/python/ops/custom_gradient.py``); the gradient of ``tf.distribute``'s
    ``all_reduce`` in Keras's training step is one, and it keeps the whole traced step
    alive. The names registered since ``custom_gradients_before`` are removed. Then
    ``gc.collect`` frees the model and the cached images (Keras objects refer to each other
    in cycles), and glibc's ``malloc_trim(0)`` returns freed heap memory to the system
    (skipped where there is no glibc).
    """
    from tensorflow.python.framework import ops

    registry = getattr(getattr(ops, "gradient_registry", None), "_registry", {})
    for name in custom_gradients() - set(custom_gradients_before):
        registry.pop(name, None)
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc: macOS, Windows, musl
        ctypes.CDLL("libc.so.6").malloc_trim(0)
