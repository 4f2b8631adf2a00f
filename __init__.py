"""ComfyUI-ResShift: ResShift (residual-shifting diffusion) restoration nodes for ComfyUI.

ComfyUI imports this file as the pack's entry point. The nodes live in `nodes/`, the model
code in `resshift_core/` (plain PyTorch, no ComfyUI), the example workflows in `workflows/`.
"""

import contextlib
import logging
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    # resshift_core sits beside this file. Appended, not prepended, so that ComfyUI's own
    # top-level modules (its `nodes.py` above all) are never shadowed by this folder's.
    sys.path.append(_HERE)

import resshift_core  # noqa: E402

if os.path.dirname(os.path.dirname(os.path.abspath(resshift_core.__file__))) != _HERE:
    logging.getLogger("ResShift").warning(
        "ResShift: using resshift_core from %s, not the copy in %s", resshift_core.__file__, _HERE
    )

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS  # noqa: E402
from .nodes.host import register_model_folder  # noqa: E402

with contextlib.suppress(ImportError):  # imported outside ComfyUI (no folder_paths): nothing to register
    register_model_folder()

WEB_DIRECTORY = None

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
