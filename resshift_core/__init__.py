"""ResShift in pure PyTorch: networks, schedule, sampler, checkpoints, pipeline.

Nothing in this package imports ComfyUI; the nodes in ``nodes/`` are a thin layer over it.
"""

__version__ = "0.1.0"
