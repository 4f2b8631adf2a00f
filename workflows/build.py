"""Writes the example workflows: the editor (UI) form `workflows/ResShift <title>.json`, its API form
`workflows/api/<name>.json` and a thumbnail `workflows/ResShift <title>.jpg` (the node chain, drawn).

    python workflows/build.py

One description per workflow below makes all three, so they cannot drift apart;
tests/test_workflows.py checks them against the nodes' declared inputs and runs the API forms.
The input image is ComfyUI's own input/example.png, so every template runs as installed.

ComfyUI lists the editor forms in its template browser (Workflow > Browse Templates, under the
pack's folder name) and titles each card with the file's name, so that name is the readable
title; the API forms keep short names for scripts (ComfyUI lists only the folder's own *.json).
Every layout is checked before anything is written: no node may cover another in the editor.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent

# Node types: (link inputs in declared order, outputs, widget names in declared order).
# Widgets marked "+control" get the editor's control_after_generate value after them; an
# image_upload combo gets the upload button's value ("image").
NODE_TYPES = {
    "LoadImage": ([], [("IMAGE", "IMAGE"), ("MASK", "MASK")], ["image", "+upload"]),
    "SaveImage": ([("images", "IMAGE")], [], ["filename_prefix"]),
    "PreviewImage": ([("images", "IMAGE")], [], []),
    "ResShiftModelLoader": ([], [("model", "RESSHIFT_MODEL")], ["model_name", "preset", "dtype", "compile"]),
    "ResShiftVAELoader": ([], [("vae", "RESSHIFT_VAE")], ["vae_name", "dtype", "compile"]),
    "ResShiftEncode": (
        [("model", "RESSHIFT_MODEL"), ("image", "IMAGE"), ("vae", "RESSHIFT_VAE"), ("mask", "MASK")],
        [("latent", "RESSHIFT_LATENT")],
        ["vae_tile_size"],
    ),
    "ResShiftSampler": (
        [("model", "RESSHIFT_MODEL"), ("latent", "RESSHIFT_LATENT")],
        [("latent", "RESSHIFT_LATENT")],
        ["seed", "+control", "steps", "tile_size", "tile_overlap"],
    ),
    "ResShiftDecode": (
        [("latent", "RESSHIFT_LATENT"), ("vae", "RESSHIFT_VAE")],
        [("image", "IMAGE")],
        ["vae_tile_size", "color_fix"],
    ),
    "ResShiftUpscale": (
        [("model", "RESSHIFT_MODEL"), ("image", "IMAGE"), ("vae", "RESSHIFT_VAE"), ("mask", "MASK")],
        [("image", "IMAGE")],
        ["seed", "+control", "steps", "tile_size", "tile_overlap", "vae_tile_size", "color_fix"],
    ),
    "ResShiftColorFix": ([("image", "IMAGE"), ("reference", "IMAGE")], [("image", "IMAGE")], ["method"]),
    "Note": ([], [], ["text"]),
}
FRONTEND_ONLY = {"Note"}
DISPLAY = {
    "LoadImage": "Load Image",
    "SaveImage": "Save Image",
    "PreviewImage": "Preview Image",
    "ResShiftModelLoader": "Load ResShift Model",
    "ResShiftVAELoader": "Load ResShift VAE",
    "ResShiftEncode": "ResShift Encode",
    "ResShiftSampler": "ResShift Sampler",
    "ResShiftDecode": "ResShift Decode",
    "ResShiftUpscale": "ResShift Upscale",
    "ResShiftColorFix": "ResShift Color Fix",
    "Note": "Note",
}


SEED = 42


@dataclass
class Node:
    id: int
    type: str
    pos: tuple[int, int]
    widgets: dict = field(default_factory=dict)  # widget name -> value (controls: "seed+control")
    links: dict = field(default_factory=dict)  # input name -> (node id, output slot)
    size: tuple[int, int] = (320, 130)


@dataclass
class Workflow:
    name: str  # the API form's file name: workflows/api/<name>.json (scripts and tests use it)
    title: str
    nodes: list[Node]

    @property
    def label(self) -> str:
        """The editor form's and thumbnail's file name. ComfyUI's template browser titles each card
        of a custom node pack with the bare file name (frontend 1.27: getTemplateTitle falls back to
        the name, the server's /workflow_templates lists file names), so the name is the title."""
        return f"ResShift {self.title}"


# -- layout -------------------------------------------------------------------------------------------
# What the ComfyUI editor (LiteGraph, frontend 1.27.10) draws for a node at `pos` with `size`: the
# body from pos down, at least as big as the node's own computeSize (a fixed part, one row per link
# input or output, one row per widget, an image preview or a text box); the title bar ABOVE pos;
# and above a custom node's title, at its right end, the badge naming the pack. Measured there:
# computeSize of Load ResShift Model (1 output, 3 widgets) is 210 x 106, of Load Image with its
# preview 214 x 326, of a Note 210 x 88 (tests/test_workflows.py keeps the table).
TITLE_H = 30
BADGE_H = 20
BODY_H = 14
SLOT_H = 20
WIDGET_H = 24
EXTRA_H = {"LoadImage": 230, "Note": 50}  # image preview; the multi-line text box
MIN_W = 220
MIN_GAP = 20  # what check_layout demands between any two drawn boxes
GAP = 40  # what the layouts below leave
COLUMN_GAP = 80  # room for the wires between columns


class LayoutError(ValueError):
    pass


def drawn_box(node: Node) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) in canvas units of what the editor draws for the node."""
    link_inputs, outputs, widgets = NODE_TYPES[node.type]
    content = BODY_H + SLOT_H * max(len(link_inputs), len(outputs)) + WIDGET_H * len(widgets)
    content += EXTRA_H.get(node.type, 0)
    width, height = max(node.size[0], MIN_W), max(node.size[1], content)
    x, y = node.pos
    return x, y - TITLE_H - BADGE_H, x + width, y + height


def drawn_size(node: Node) -> list[int]:
    """The size the editor gives the node (the stored one, grown to the node's computeSize)."""
    x0, y0, x1, y1 = drawn_box(node)
    return [x1 - x0, y1 - y0 - TITLE_H - BADGE_H]


def name_of(node: Node) -> str:
    return f"{DISPLAY[node.type]} (node {node.id})"


def check_layout(workflow: Workflow) -> None:
    """Refuses a layout where two nodes' drawn boxes overlap or come within MIN_GAP of each other."""
    boxes = [(node, drawn_box(node)) for node in workflow.nodes]
    for i, (a, (ax0, ay0, ax1, ay1)) in enumerate(boxes):
        for b, (bx0, by0, bx1, by1) in boxes[i + 1 :]:
            apart = ax1 + MIN_GAP <= bx0 or bx1 + MIN_GAP <= ax0 or ay1 + MIN_GAP <= by0 or by1 + MIN_GAP <= ay0
            if not apart:
                raise LayoutError(
                    f"{workflow.label} ({workflow.name}): {name_of(a)} overlaps {name_of(b)} in the editor, or "
                    f"comes within {MIN_GAP} px of it: drawn at {(ax0, ay0, ax1, ay1)} and {(bx0, by0, bx1, by1)} "
                    "(left, top, right, bottom; title bar and badge included)"
                )


def right_of(node: Node) -> int:
    """x of a node in the next column."""
    return drawn_box(node)[2] + COLUMN_GAP


def below(node: Node) -> int:
    """pos y of a node under this one (its title bar and badge sit above its pos)."""
    return drawn_box(node)[3] + GAP + TITLE_H + BADGE_H


LEFT = 40
NOTE_Y = 80
NOTE_H = 120
ROW_Y = NOTE_Y + NOTE_H + GAP + TITLE_H + BADGE_H  # the nodes start under the note


def loaders(model: str, vae: str) -> list[Node]:
    """The left column: model, VAE and image, one under another."""
    model_node = Node(
        1,
        "ResShiftModelLoader",
        (LEFT, ROW_Y),
        {"model_name": model, "preset": "auto", "dtype": "auto", "compile": False},
        size=(380, 134),
    )
    vae_node = Node(
        2,
        "ResShiftVAELoader",
        (LEFT, below(model_node)),
        {"vae_name": vae, "dtype": "auto", "compile": False},
        size=(380, 114),
    )
    image = Node(3, "LoadImage", (LEFT, below(vae_node)), {"image": "example.png", "+upload": "image"}, size=(380, 340))
    return [model_node, vae_node, image]


def chain(nodes: list[Node], *steps: tuple) -> list[Node]:
    """Places each step (id, type, widgets, links, size) in the next column of the top row."""
    x = right_of(nodes[0])
    for node_id, kind, widgets, links, size in steps:
        nodes.append(Node(node_id, kind, (x, ROW_Y), widgets, links, size))
        x = right_of(nodes[-1])
    return nodes


def with_note(nodes: list[Node], node_id: int, text: str) -> list[Node]:
    """The note across the top, above everything else (it is read first)."""
    right = max(drawn_box(n)[2] for n in nodes)
    nodes.append(Node(node_id, "Note", (LEFT, NOTE_Y), {"text": text}, size=(min(right - LEFT, 1000), NOTE_H)))
    return nodes


def modular(name, title, model, vae, prefix, mask=False, note=None) -> Workflow:
    nodes = chain(
        loaders(model, vae),
        (
            4,
            "ResShiftEncode",
            {"vae_tile_size": 0},
            {"model": (1, 0), "image": (3, 0), "vae": (2, 0), **({"mask": (3, 1)} if mask else {})},
            (300, 130),
        ),
        (
            5,
            "ResShiftSampler",
            {"seed": SEED, "seed+control": "fixed", "steps": 0, "tile_size": 0, "tile_overlap": 0},
            {"model": (1, 0), "latent": (4, 0)},
            (300, 200),
        ),
        (6, "ResShiftDecode", {"vae_tile_size": 0, "color_fix": "none"}, {"latent": (5, 0), "vae": (2, 0)}, (300, 120)),
        (7, "SaveImage", {"filename_prefix": prefix}, {"images": (6, 0)}, (400, 420)),
    )
    if note:
        with_note(nodes, 8, note)
    return Workflow(name, title, nodes)


def one_node(name, title, model, vae, prefix, color_fix="none", extra_fix=None, note=None) -> Workflow:
    steps = [
        (
            4,
            "ResShiftUpscale",
            {
                "seed": SEED,
                "seed+control": "fixed",
                "steps": 0,
                "tile_size": 0,
                "tile_overlap": 0,
                "vae_tile_size": 0,
                "color_fix": color_fix,
            },
            {"model": (1, 0), "image": (3, 0), "vae": (2, 0)},
            (320, 280),
        ),
    ]
    source = (4, 0)
    if extra_fix:
        steps.append((6, "ResShiftColorFix", {"method": extra_fix}, {"image": (4, 0), "reference": (3, 0)}, (300, 100)))
        source = (6, 0)
    steps.append((5, "SaveImage", {"filename_prefix": prefix}, {"images": source}, (400, 420)))
    nodes = chain(loaders(model, vae), *steps)
    if note:
        with_note(nodes, 7, note)
    return Workflow(name, title, nodes)


DOWNLOAD_NOTE = (
    "Models not in ComfyUI/models/resshift are downloaded there on first run from the ResShift "
    "release (github.com/zsyOAOA/ResShift, S-Lab License 1.0: non-commercial use). "
)

# One-step students: the same one-node chain, with the files that fit it named in the note.
ONE_STEP_NOTE = (
    "SinSR and RSD are one-step students of ResShift: one network call per image (steps 0 = the model's "
    "one step). Files that fit: SinSR_v1.pth or SinSR_v2.pth (github.com/wyf0912/SinSR, downloaded on first "
    "run); RSD's ema_model_2800.pth (Google Drive only: put it in ComfyUI/models/resshift by hand); "
    "Distilled-ResShift rsd_student_final.safetensors (x4) or rsd_student_18k.safetensors (x2), downloaded "
    "from Hugging Face on first run. All are non-commercial (CC BY-NC-SA 4.0, S-Lab License 1.0)."
)

WORKFLOWS = [
    modular(
        "resshift_realsr_x4",
        "Real-world x4 (modular)",
        "resshift_realsrx4_s4_v3.pth",
        "autoencoder_vq_f4.pth",
        "ResShift/realsr_x4",
        note=DOWNLOAD_NOTE + "Encode -> Sampler -> Decode: 4 steps, each image of a batch with seed + its index. "
        "Large images are tiled automatically; set tile sizes to use less memory.",
    ),
    one_node(
        "resshift_upscale_one_node",
        "Real-world x4 (one node)",
        "resshift_realsrx4_s4_v3.pth",
        "autoencoder_vq_f4.pth",
        "ResShift/upscale",
        note=DOWNLOAD_NOTE + "ResShift Upscale runs encode, sampling and decode in one node; color_fix "
        "(wavelet/adain) corrects colour drift against the input.",
    ),
    one_node(
        "resshift_bicubic_x4",
        "Bicubic x4",
        "resshift_bicsrx4_s4.pth",
        "autoencoder_vq_f4.pth",
        "ResShift/bicubic_x4",
        note=DOWNLOAD_NOTE + "This model undoes plain bicubic x4 downscaling (no noise, blur or JPEG): use it "
        "for clean small images, the real-world model for everything else.",
    ),
    modular(
        "resshift_inpainting",
        "Inpainting with a mask",
        "resshift_inpainting_imagenet_s4.pth",
        "autoencoder_vq_f4.pth",
        "ResShift/inpainting",
        mask=True,
        note=DOWNLOAD_NOTE + "Right-click the Load Image node -> Open in MaskEditor and paint the area to fill in "
        "(the mask is the image's alpha). Known pixels are kept. For faces use "
        "resshift_inpainting_face_s4 with celeba256_vq_f4_dim3_face.",
    ),
    one_node(
        "resshift_face_restoration",
        "Face restoration",
        "resshift_faceir_s4.pth",
        "ffhq512_vq_f8_dim8_face.pth",
        "ResShift/face",
        extra_fix="wavelet",
        note=DOWNLOAD_NOTE + "Blind face restoration of aligned 512x512 face crops (same size out). "
        "ResShift Color Fix (wavelet) keeps the input's colours.",
    ),
    one_node(
        "resshift_one_step_x4",
        "One-step x4 (SinSR, RSD)",
        "SinSR_v1.pth",
        "autoencoder_vq_f4.pth",
        "ResShift/one_step_x4",
        note=ONE_STEP_NOTE,
    ),
]


# -- the two formats ----------------------------------------------------------------------------------


def widget_values(node: Node) -> list:
    values = []
    for w in NODE_TYPES[node.type][2]:
        if w == "+control":
            values.append(node.widgets["seed+control"])
        else:
            values.append(node.widgets[w])
    return values


def order(nodes: list[Node]) -> dict[int, int]:
    done: dict[int, int] = {}
    by_id = {n.id: n for n in nodes}

    def visit(n: Node):
        if n.id in done:
            return
        for src, _ in n.links.values():
            visit(by_id[src])
        done[n.id] = len(done)

    for n in nodes:
        visit(n)
    return done


def view(workflow: Workflow) -> dict:
    """The editor's opening view: the whole workflow at a scale that fits about 1500 x 850 px of canvas."""
    boxes = [drawn_box(n) for n in workflow.nodes]
    right, bottom = max(b[2] for b in boxes), max(b[3] for b in boxes)
    scale = math.floor(100 * min(0.9, 1500 / right, 850 / bottom)) / 100  # rounded down: it still fits
    return {"scale": scale, "offset": [0, 0]}


def ui(workflow: Workflow) -> dict:
    check_layout(workflow)
    links: list[list] = []
    outputs: dict[tuple[int, int], list[int]] = {}
    inputs: dict[int, list[dict]] = {}
    for node in workflow.nodes:
        node_inputs = []
        for slot, (name, kind) in enumerate(NODE_TYPES[node.type][0]):
            link_id = None
            if name in node.links:
                src, src_slot = node.links[name]
                link_id = len(links) + 1
                links.append([link_id, src, src_slot, node.id, slot, kind])
                outputs.setdefault((src, src_slot), []).append(link_id)
            node_inputs.append({"name": name, "type": kind, "link": link_id})
        inputs[node.id] = node_inputs
    ranks = order(workflow.nodes)
    nodes = []
    for node in workflow.nodes:
        entry = {
            "id": node.id,
            "type": node.type,
            "pos": list(node.pos),
            "size": drawn_size(node),
            "flags": {},
            "order": ranks[node.id],
            "mode": 0,
        }
        entry["inputs"] = inputs[node.id]  # as the editor saves them: always present, maybe empty
        entry["outputs"] = [
            {"name": name, "type": kind, "links": outputs.get((node.id, slot), []), "slot_index": slot}
            for slot, (name, kind) in enumerate(NODE_TYPES[node.type][1])
        ]
        entry["properties"] = {} if node.type in FRONTEND_ONLY else {"Node name for S&R": node.type}
        entry["widgets_values"] = widget_values(node)
        if node.type in FRONTEND_ONLY:
            entry["color"], entry["bgcolor"] = "#432", "#653"
        nodes.append(entry)
    return {
        "last_node_id": max(n.id for n in workflow.nodes),
        "last_link_id": len(links),
        "nodes": nodes,
        "links": links,
        "groups": [],
        "config": {},
        "extra": {"ds": view(workflow), "info": {"title": workflow.label}},
        "version": 0.4,
    }


def api(workflow: Workflow) -> dict:
    prompt = {}
    for node in sorted(workflow.nodes, key=lambda n: n.id):
        if node.type in FRONTEND_ONLY:
            continue
        inputs = {}
        for w in NODE_TYPES[node.type][2]:
            if not w.startswith("+"):
                inputs[w] = node.widgets[w]
        for name, _ in NODE_TYPES[node.type][0]:
            if name in node.links:
                src, slot = node.links[name]
                inputs[name] = [str(src), slot]
        prompt[str(node.id)] = {"inputs": inputs, "class_type": node.type, "_meta": {"title": DISPLAY[node.type]}}
    return prompt


# -- thumbnails ---------------------------------------------------------------------------------------


def thumbnail(workflow: Workflow, path: Path) -> None:
    """The node chain as boxes and wires (what the template does, not a picture it made)."""
    from PIL import Image, ImageDraw, ImageFont

    nodes = [n for n in workflow.nodes if n.type not in FRONTEND_ONLY]
    xs = [n.pos[0] for n in nodes] + [n.pos[0] + n.size[0] for n in nodes]
    ys = [n.pos[1] for n in nodes] + [n.pos[1] + min(n.size[1], 160) for n in nodes]
    x0, y0, x1, y1 = min(xs) - 30, min(ys) - 60, max(xs) + 30, max(ys) + 30
    width = 480
    scale = width / (x1 - x0)
    top = 34  # title band
    height = max(200, int((y1 - y0) * scale) + top)
    img = Image.new("RGB", (width, height), (32, 32, 36))
    draw = ImageDraw.Draw(img)
    try:
        font = ImageFont.load_default(size=11)
        big = ImageFont.load_default(size=16)
    except TypeError:  # Pillow < 10.1
        font = big = ImageFont.load_default()

    def box(n: Node):
        bx0 = (n.pos[0] - x0) * scale
        by0 = (n.pos[1] - y0) * scale + top
        return bx0, by0, bx0 + n.size[0] * scale, by0 + min(n.size[1], 160) * scale

    colours = {"Load": (70, 110, 80), "Save": (120, 80, 60), "ResShift": (70, 100, 160)}
    by_id = {n.id: n for n in nodes}
    for n in nodes:
        for src, _ in n.links.values():
            a, b = box(by_id[src]), box(n)
            draw.line([(a[2], (a[1] + a[3]) / 2), (b[0], (b[1] + b[3]) / 2)], fill=(200, 200, 120), width=2)
    for n in nodes:
        bx = box(n)
        colour = next((c for k, c in colours.items() if DISPLAY[n.type].startswith(k)), (90, 90, 90))
        draw.rounded_rectangle(bx, radius=4, fill=colour, outline=(220, 220, 220))
        label = DISPLAY[n.type].replace("ResShift ", "").replace("Load ResShift ", "Load ")
        draw.text((bx[0] + 4, bx[1] + 3), label, fill=(255, 255, 255), font=font)
    draw.text((10, 8), workflow.label, fill=(240, 240, 240), font=big)
    img.save(path, quality=85)


def main() -> None:
    (HERE / "api").mkdir(exist_ok=True)
    for workflow in WORKFLOWS:
        for target, data in (
            (HERE / f"{workflow.label}.json", ui(workflow)),
            (HERE / "api" / f"{workflow.name}.json", api(workflow)),
        ):
            target.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        thumbnail(workflow, HERE / f"{workflow.label}.jpg")
        print("wrote", workflow.label, "and", f"api/{workflow.name}.json")


if __name__ == "__main__":
    main()
