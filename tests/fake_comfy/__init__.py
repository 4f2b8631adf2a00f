"""Test harness for the ComfyUI nodes: a small fake ComfyUI host, the pack loaded the way
ComfyUI loads custom nodes, stand-ins for the core nodes the workflows use, tiny checkpoints
under the published names, and a small executor for API-format workflows.

The fake host (host/: comfy.model_management, comfy.model_patcher, comfy.utils, folder_paths)
is installed into sys.path/sys.modules only inside the `comfy` fixture and removed after, so
resshift_core never sees ComfyUI. It is ours, written against ComfyUI v0.3.64's behaviour.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

HOST_DIR = Path(__file__).resolve().parent / "host"
REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO / "workflows"
# editor form (its file name is the template browser's title) -> API form (workflows/api/<name>.json)
UI_TO_API = {
    "ResShift Real-world x4 (modular)": "resshift_realsr_x4",
    "ResShift Real-world x4 (one node)": "resshift_upscale_one_node",
    "ResShift Bicubic x4": "resshift_bicubic_x4",
    "ResShift Inpainting with a mask": "resshift_inpainting",
    "ResShift Face restoration": "resshift_face_restoration",
    "ResShift One-step x4 (SinSR, RSD)": "resshift_one_step_x4",
}
PACK_MODULE = "comfyui_resshift_pack"
HOST_MODULES = ("comfy", "folder_paths")

# Tiny networks (resshift_core.tiny) saved under the published names, per workflow task.
TINY_FILES = {
    "realsr": {"unet": "resshift_realsrx4_s4_v3", "vae": "autoencoder_vq_f4"},
    "bicsr": {"unet": "resshift_bicsrx4_s4", "vae": "autoencoder_vq_f4"},
    "inpaint": {"unet": "resshift_inpainting_imagenet_s4", "vae": "autoencoder_vq_f4"},
    "faceir": {"unet": "resshift_faceir_s4", "vae": "ffhq512_vq_f8_dim8_face"},
    "sinsr": {"unet": "SinSR_v1", "vae": "autoencoder_vq_f4"},  # the one-step workflow's student
}


def _is_host_module(name: str) -> bool:
    return any(name == m or name.startswith(m + ".") for m in HOST_MODULES)


def _is_pack_module(name: str) -> bool:
    return name == PACK_MODULE or name.startswith(PACK_MODULE + ".")


# -- tiny checkpoints ---------------------------------------------------------------------------

_TINY_CACHE: dict[str, Path] = {}


def tiny_checkpoints(cache_dir: Path) -> dict[str, Path]:
    """Every tiny checkpoint the workflows need, written once per session: name -> file."""
    from resshift_core.tiny import write_tiny_checkpoints

    if _TINY_CACHE and all(p.is_file() for p in _TINY_CACHE.values()):
        return dict(_TINY_CACHE)
    cache_dir.mkdir(parents=True, exist_ok=True)
    for task, names in TINY_FILES.items():
        unet, vae = write_tiny_checkpoints(cache_dir / task, task, seed=0)
        assert vae is not None, f"{task}: every workflow task has a VQGAN"
        _TINY_CACHE[names["unet"]] = unet
        _TINY_CACHE.setdefault(names["vae"], vae)
    return dict(_TINY_CACHE)


def install_file(models_dir: Path, path: Path, name: str = "") -> Path:
    """Link (or, across devices, copy) a checkpoint into a models folder, as `name` or its own name."""
    models_dir.mkdir(parents=True, exist_ok=True)
    target = models_dir / (name or path.name)
    if not target.exists():
        try:
            os.link(path, target)
        except OSError:
            target.write_bytes(path.read_bytes())
    return target


def install_tiny(models_dir: Path, cache_dir: Path, names: list[str] | None = None) -> None:
    """Link (or copy) tiny checkpoints into a models folder as <published name>.safetensors."""
    for name, path in tiny_checkpoints(cache_dir).items():
        if names is None or name in names:
            install_file(models_dir, path, f"{name}.safetensors")


# -- the host -----------------------------------------------------------------------------------


@dataclass
class Host:
    base: Path
    mm: ModuleType
    model_patcher: ModuleType
    utils: ModuleType
    folder_paths: ModuleType
    pack: ModuleType
    progress: list = field(default_factory=list)
    previews: list = field(default_factory=list)  # the preview images the progress hook was given
    interrupt_at: int | None = None  # interrupt when this many progress updates were seen

    @property
    def nodes(self) -> dict:
        return self.pack.NODE_CLASS_MAPPINGS

    @property
    def models_dir(self) -> Path:
        return Path(self.folder_paths.models_dir) / "resshift"

    @property
    def input_dir(self) -> Path:
        return Path(self.folder_paths.get_input_directory())

    def node(self, node_id: str):
        return self.nodes[node_id]()

    def run(self, node_id: str, **kwargs):
        """Run one node as ComfyUI's executor does: under torch.inference_mode()."""
        cls = self.nodes[node_id]
        with torch.inference_mode():
            return getattr(cls(), cls.FUNCTION)(**kwargs)


def load_pack(name: str = PACK_MODULE) -> ModuleType:
    """Import the repository root as ComfyUI imports a custom node folder (nodes.load_custom_node)."""
    spec = importlib.util.spec_from_file_location(name, REPO / "__init__.py")
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {REPO / '__init__.py'} as {name}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def comfy(tmp_path, tmp_path_factory, monkeypatch):
    """A fresh fake ComfyUI (in a temporary base folder) with the pack loaded; removed after."""
    saved = {k: v for k, v in sys.modules.items() if _is_host_module(k) or _is_pack_module(k)}
    for k in saved:
        del sys.modules[k]
    sys.path.insert(0, str(HOST_DIR))
    monkeypatch.setenv("RESSHIFT_OFFLINE", "1")  # no test reaches the network unless it says so
    try:
        folder_paths = importlib.import_module("folder_paths")
        base = tmp_path / "ComfyUI"
        folder_paths._reset(str(base))
        for d in (folder_paths.get_input_directory(), folder_paths.get_output_directory()):
            os.makedirs(d, exist_ok=True)
        mm = importlib.import_module("comfy.model_management")
        utils = importlib.import_module("comfy.utils")
        patcher = importlib.import_module("comfy.model_patcher")

        def hook(value, total, preview, node_id=None):  # what ComfyUI's server hook does (host: below)
            host.progress.append((value, total))
            if preview is not None:
                host.previews.append(preview)
            if host.interrupt_at is not None and len(host.progress) >= host.interrupt_at:
                mm.interrupt_current_processing(True)
            mm.throw_exception_if_processing_interrupted()

        utils.set_progress_bar_global_hook(hook)
        host = Host(base, mm, patcher, utils, folder_paths, pack=load_pack())
        yield host
    finally:
        for k in [k for k in sys.modules if _is_host_module(k) or _is_pack_module(k)]:
            del sys.modules[k]
        sys.modules.update(saved)
        while str(HOST_DIR) in sys.path:
            sys.path.remove(str(HOST_DIR))


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tiny_checkpoints")
    tiny_checkpoints(path)
    return path


# -- core nodes the workflows use (stand-ins with ComfyUI's inputs and outputs) -----------------------


def _input_files(folder_paths) -> list[str]:
    d = folder_paths.get_input_directory()
    return sorted(f for f in os.listdir(d) if os.path.isfile(os.path.join(d, f))) if os.path.isdir(d) else []


def make_core_nodes(folder_paths) -> dict:
    class LoadImage:
        CATEGORY = "image"
        RETURN_TYPES = ("IMAGE", "MASK")
        FUNCTION = "load_image"

        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"image": (_input_files(folder_paths), {"image_upload": True})}}

        def load_image(self, image):
            img = Image.open(folder_paths.get_annotated_filepath(image))
            rgb = torch.from_numpy(np.array(img.convert("RGB")).astype(np.float32) / 255.0)[None]
            if "A" in img.getbands():
                mask = 1.0 - torch.from_numpy(np.array(img.getchannel("A")).astype(np.float32) / 255.0)
            else:
                mask = torch.zeros((64, 64), dtype=torch.float32)
            return (rgb, mask[None])

    class LoadImageMask:
        CATEGORY = "mask"
        RETURN_TYPES = ("MASK",)
        FUNCTION = "load_image"

        @classmethod
        def INPUT_TYPES(cls):
            return {
                "required": {
                    "image": (_input_files(folder_paths), {"image_upload": True}),
                    "channel": (["alpha", "red", "green", "blue"],),
                }
            }

        def load_image(self, image, channel):
            img = Image.open(folder_paths.get_annotated_filepath(image)).convert("RGBA")
            c = channel[0].upper()
            mask = torch.from_numpy(np.array(img.getchannel(c)).astype(np.float32) / 255.0)
            return ((1.0 - mask if c == "A" else mask)[None],)

    class SaveImage:
        CATEGORY = "image"
        RETURN_TYPES = ()
        FUNCTION = "save_images"
        OUTPUT_NODE = True

        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"images": ("IMAGE",), "filename_prefix": ("STRING", {"default": "ComfyUI"})}}

        def save_images(self, images, filename_prefix="ComfyUI"):
            out = folder_paths.get_output_directory()
            results = []
            for i, image in enumerate(images):
                name = f"{filename_prefix.replace('/', '_')}_{i:05d}_.png"
                Image.fromarray((image.numpy() * 255).round().astype(np.uint8)).save(os.path.join(out, name))
                results.append({"filename": name, "type": "output"})
            return {"ui": {"images": results}, "result": (images,)}

    class PreviewImage(SaveImage):
        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"images": ("IMAGE",)}}

    return {
        "LoadImage": LoadImage,
        "LoadImageMask": LoadImageMask,
        "SaveImage": SaveImage,
        "PreviewImage": PreviewImage,
    }


# UI-only nodes of the ComfyUI frontend (no Python class; never in API prompts).
FRONTEND_NODES = {"Note", "MarkdownNote"}


# -- inputs, as ComfyUI's validation reads them ---------------------------------------------------

WIDGET_TYPES = ("INT", "FLOAT", "STRING", "BOOLEAN")
CONTROL_VALUES = ("fixed", "increment", "decrement", "randomize")


def declared_inputs(cls) -> list[tuple[str, Any, dict, str]]:
    """(name, type, options, category) in declaration order: required, then optional."""
    spec = cls.INPUT_TYPES()
    out = []
    for category in ("required", "optional"):
        for name, value in spec.get(category, {}).items():
            options = value[1] if len(value) > 1 else {}
            out.append((name, value[0], options, category))
    return out


def is_widget(input_type) -> bool:
    return isinstance(input_type, list) or input_type in WIDGET_TYPES


def widget_slots(cls) -> list[tuple[str, Any, dict]]:
    """The values a UI workflow stores for a node, in order: one per widget input, plus the
    frontend's extra ones (control_after_generate after a seed, the upload button's 'image')."""
    slots = []
    for name, input_type, options, _ in declared_inputs(cls):
        if not is_widget(input_type):
            continue
        slots.append((name, input_type, options))
        if input_type == "INT" and options.get("control_after_generate"):
            slots.append((f"{name}:control_after_generate", list(CONTROL_VALUES), {}))
        if options.get("image_upload"):
            slots.append(("upload", ["image"], {}))
    return slots


def check_value(input_type, options: dict, value) -> str | None:
    """ComfyUI's validate_inputs rules for one widget value; None when valid."""
    if isinstance(input_type, list):
        return None if value in input_type else f"{value!r} is not one of {input_type[:8]}..."
    try:
        value = {"INT": int, "FLOAT": float, "STRING": str, "BOOLEAN": bool}[input_type](value)
    except (TypeError, ValueError) as exc:
        return f"cannot convert {value!r} to {input_type}: {exc}"
    if "min" in options and value < options["min"]:
        return f"{value} is smaller than min {options['min']}"
    if "max" in options and value > options["max"]:
        return f"{value} is bigger than max {options['max']}"
    return None


def validate_node_input(received_type: object, input_type: object) -> bool:
    if received_type == input_type:
        return True
    if not isinstance(received_type, str) or not isinstance(input_type, str):
        return False
    return bool({t.strip() for t in received_type.split(",")} & {t.strip() for t in input_type.split(",")})


class PromptError(Exception):
    pass


def validate_prompt(prompt: dict, classes: dict) -> None:
    errors = []
    for node_id, node in prompt.items():
        cls = classes.get(node["class_type"])
        if cls is None:
            errors.append(f"{node_id}: missing node type {node['class_type']}")
            continue
        declared = {name: (t, o, c) for name, t, o, c in declared_inputs(cls)}
        for name in node["inputs"]:
            if name not in declared:
                errors.append(f"{node_id}.{name}: not an input of {node['class_type']}")
        for name, (input_type, options, category) in declared.items():
            if name not in node["inputs"]:
                if category == "required":
                    errors.append(f"{node_id}.{name}: required input missing")
                continue
            value = node["inputs"][name]
            if isinstance(value, list):  # a link [node id, output slot]
                src = prompt.get(str(value[0]))
                if src is None:
                    errors.append(f"{node_id}.{name}: links to missing node {value[0]}")
                    continue
                returned = classes[src["class_type"]].RETURN_TYPES[value[1]]
                if not validate_node_input(returned, input_type if isinstance(input_type, str) else "COMBO"):
                    errors.append(f"{node_id}.{name}: {returned} cannot connect to {input_type}")
                continue
            problem = check_value(input_type, options, value)
            if problem:
                errors.append(f"{node_id}.{name}: {problem}")
    if errors:
        raise PromptError("; ".join(errors))


def execute_prompt(prompt: dict, classes: dict) -> dict:
    """Validate, then run every node an output node needs, following links; node id -> outputs."""
    validate_prompt(prompt, classes)
    results: dict[str, tuple] = {}

    def run(node_id: str):
        if node_id in results:
            return results[node_id]
        node = prompt[node_id]
        cls = classes[node["class_type"]]
        kwargs = {}
        for name, value in node["inputs"].items():
            kwargs[name] = run(str(value[0]))[value[1]] if isinstance(value, list) else value
        out = getattr(cls(), cls.FUNCTION)(**kwargs)
        if isinstance(out, dict):
            out = out.get("result", ())
        results[node_id] = tuple(out)
        return results[node_id]

    outputs = [i for i, n in prompt.items() if getattr(classes[n["class_type"]], "OUTPUT_NODE", False)]
    if not outputs:
        raise PromptError("the prompt has no output node")
    with torch.inference_mode():  # as ComfyUI's PromptExecutor.execute
        for node_id in outputs:
            run(node_id)
    return results


def prompt_nodes(prompt: dict) -> dict:
    """An API prompt's nodes as ComfyUI runs them: inputs and class_type, without the editor's _meta."""
    return {k: {"inputs": v["inputs"], "class_type": v["class_type"]} for k, v in prompt.items()}


def load_json(path: Path) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def write_test_image(path: Path, size=(24, 20), hole: tuple | None = None, seed: int = 0) -> torch.Tensor:
    """A smooth random RGB(A) PNG; `hole` (y0, y1, x0, x1) is made transparent (a mask to fill)."""
    g = torch.Generator().manual_seed(seed)
    w, h = size
    small = torch.rand(1, 3, max(2, h // 4), max(2, w // 4), generator=g)
    img = torch.nn.functional.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)[0]
    arr = (img.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    if hole is None:
        Image.fromarray(arr).save(path)
    else:
        alpha = np.full((h, w), 255, np.uint8)
        y0, y1, x0, x1 = hole
        alpha[y0:y1, x0:x1] = 0
        Image.fromarray(np.dstack([arr, alpha]), "RGBA").save(path)
    return torch.from_numpy(arr.astype(np.float32) / 255.0)[None]
