"""The shared workflows: every editor (UI) workflow loads with no missing node and its widget
values in the order the nodes declare them, its API form says the same, a thumbnail sits
beside it, no node covers another in the editor, the file names read as titles (the template
browser shows them), and every API workflow runs (on tiny checkpoints under the published names)."""

import copy
import dataclasses
import importlib.util
import itertools
import json
import re
import sys

import pytest
import torch
from PIL import Image

from conftest import one_torch_thread
from fake_comfy import (
    CONTROL_VALUES,
    FRONTEND_NODES,
    UI_TO_API,
    WORKFLOWS,
    check_value,
    declared_inputs,
    execute_prompt,
    install_tiny,
    is_widget,
    load_json,
    make_core_nodes,
    prompt_nodes,
    validate_node_input,
    validate_prompt,
    widget_slots,
    write_test_image,
)


def load_build():
    spec = importlib.util.spec_from_file_location("resshift_workflows_build", WORKFLOWS / "build.py")
    assert spec is not None and spec.loader is not None
    build = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = build  # dataclasses look their module up while the file runs
    try:
        spec.loader.exec_module(build)
    finally:
        del sys.modules[spec.name]
    return build


build = load_build()
UI_WORKFLOWS = sorted(WORKFLOWS.glob("*.json"))
API_WORKFLOWS = sorted((WORKFLOWS / "api").glob("*.json"))
# What the editor (ComfyUI v0.3.64, frontend 1.27.10) drew these nodes at, at least: node.computeSize()
# after loading the shipped workflows there, title bar not included (LiteGraph draws it above pos).
EDITOR_MIN_SIZE = {
    "ResShiftModelLoader": (210, 106),
    "ResShiftVAELoader": (210, 82),
    "LoadImage": (214, 326),
    "ResShiftEncode": (210, 118),
    "ResShiftSampler": (210, 174),
    "ResShiftDecode": (210, 102),
    "ResShiftUpscale": (210, 262),
    "ResShiftColorFix": (210, 78),
    "SaveImage": (210, 58),
    "Note": (210, 88),
}
TITLE_H = 30  # LiteGraph.NODE_TITLE_HEIGHT, drawn above pos
BADGE_H = 20  # the pack's name badge, drawn above a custom node's title
HOLE = (6, 14, 5, 12)  # transparent rows/cols of the test example.png: the inpainting mask
INPUT_SIZE = (24, 20)  # width, height
SCALE = {
    "resshift_realsr_x4": 4,
    "resshift_upscale_one_node": 4,
    "resshift_bicubic_x4": 4,
    "resshift_inpainting": 1,
    "resshift_face_restoration": 1,
    "resshift_one_step_x4": 4,
}


@pytest.fixture(autouse=True)
def one_thread():
    with one_torch_thread():
        yield


@pytest.fixture
def host(comfy, tiny_cache):
    install_tiny(comfy.models_dir, tiny_cache)
    image = write_test_image(comfy.input_dir / "example.png", INPUT_SIZE, hole=HOLE)
    classes = {**make_core_nodes(comfy.folder_paths), **comfy.nodes}
    return comfy, classes, image


def test_one_workflow_per_task_in_both_forms_with_thumbnails():
    assert {p.stem for p in UI_WORKFLOWS} == set(UI_TO_API)
    assert {p.stem for p in API_WORKFLOWS} == set(UI_TO_API.values())
    assert {w.label: w.name for w in build.WORKFLOWS} == UI_TO_API
    for path in UI_WORKFLOWS:
        thumb = path.with_suffix(".jpg")
        assert thumb.is_file(), f"{path.name} has no thumbnail"
        with Image.open(thumb) as img:
            assert img.format == "JPEG" and 200 <= img.width <= 1024 and img.height >= 100
        assert thumb.stat().st_size < 100_000


def ui_to_api(ui: dict, classes: dict) -> dict:
    """What the editor's 'Export (API)' makes of a UI workflow (link inputs by slot name, widget
    values by the declared widget order, the editor-only values dropped)."""
    links = {link[0]: link for link in ui["links"]}
    prompt = {}
    for node in ui["nodes"]:
        if node["type"] in FRONTEND_NODES or node.get("mode", 0) != 0:
            continue
        inputs = {}
        values = iter(node.get("widgets_values", []))
        for name, _, _ in widget_slots(classes[node["type"]]):
            value = next(values)
            if ":" not in name and name != "upload":
                inputs[name] = value
        for entry in node.get("inputs", []):
            if entry.get("link") is not None:
                _, origin, origin_slot, _, _, _ = links[entry["link"]]
                inputs[entry["name"]] = [str(origin), origin_slot]
        prompt[str(node["id"])] = {"inputs": inputs, "class_type": node["type"]}
    return prompt


@pytest.mark.parametrize("path", UI_WORKFLOWS, ids=lambda p: p.stem)
def test_ui_workflow_loads_with_known_nodes_valid_widgets_and_links(host, path):
    _, classes, _ = host
    ui = load_json(path)
    assert ui["version"] == 0.4 and ui["last_node_id"] >= max(n["id"] for n in ui["nodes"])
    assert ui["last_link_id"] >= max((link[0] for link in ui["links"]), default=0)
    nodes = {n["id"]: n for n in ui["nodes"]}
    assert len(nodes) == len(ui["nodes"])
    for node in ui["nodes"]:
        kind = node["type"]
        assert kind in classes or kind in FRONTEND_NODES, f"missing node type {kind}"
        assert {
            "id",
            "type",
            "pos",
            "size",
            "flags",
            "order",
            "mode",
            "inputs",
            "outputs",
            "properties",
            "widgets_values",
        } <= set(node)
        if kind in FRONTEND_NODES:
            assert isinstance(node["widgets_values"][0], str)
            continue
        slots = widget_slots(classes[kind])
        values = node.get("widgets_values", [])
        assert len(values) == len(slots), f"{kind}: {len(values)} widget values for {[s[0] for s in slots]}"
        for (name, input_type, options), value in zip(slots, values, strict=True):
            problem = check_value(input_type, options, value)
            assert problem is None, f"{path.name}: {kind}.{name}: {problem}"
        # link inputs: the node's non-widget inputs, in declared order, types as declared
        declared = [(n, t) for n, t, _, _ in declared_inputs(classes[kind]) if not is_widget(t)]
        listed = [(i["name"], i["type"]) for i in node.get("inputs", []) if "widget" not in i]
        assert listed == declared[: len(listed)] and {n for n, _ in declared} >= {n for n, _ in listed}
        required = {n for n, t, _, c in declared_inputs(classes[kind]) if c == "required" and not is_widget(t)}
        connected = {i["name"] for i in node.get("inputs", []) if i.get("link") is not None}
        assert required <= connected, f"{kind}: required inputs {required - connected} are not connected"
        for slot, out in enumerate(node.get("outputs", [])):
            assert out["type"] == classes[kind].RETURN_TYPES[slot]
    for link_id, origin, origin_slot, target, target_slot, kind in ui["links"]:
        src, dst = nodes[origin], nodes[target]
        assert link_id in src["outputs"][origin_slot]["links"]
        assert dst["inputs"][target_slot]["link"] == link_id
        assert classes[src["type"]].RETURN_TYPES[origin_slot] == kind
        assert validate_node_input(kind, dst["inputs"][target_slot]["type"])
    api = load_json(WORKFLOWS / "api" / f"{UI_TO_API[path.stem]}.json")
    assert ui_to_api(ui, classes) == prompt_nodes(api)


def test_seed_controls_are_fixed_so_templates_reproduce():
    for path in UI_WORKFLOWS:
        for node in load_json(path)["nodes"]:
            if node["type"] in ("ResShiftSampler", "ResShiftUpscale"):
                assert node["widgets_values"][1] == "fixed" and node["widgets_values"][1] in CONTROL_VALUES


def test_build_script_reproduces_the_files():
    for workflow in build.WORKFLOWS:
        assert load_json(WORKFLOWS / f"{workflow.label}.json") == json.loads(json.dumps(build.ui(workflow)))
        assert load_json(WORKFLOWS / "api" / f"{workflow.name}.json") == json.loads(json.dumps(build.api(workflow)))


def editor_box(node: dict) -> tuple:
    """(left, top, right, bottom) of what the editor draws for a saved node: its size grown to the
    size the editor computes for it, its title bar and badge above pos."""
    x, y = node["pos"]
    min_w, min_h = EDITOR_MIN_SIZE[node["type"]]
    w, h = max(node["size"][0], min_w), max(node["size"][1], min_h)
    return x, y - TITLE_H - BADGE_H, x + w, y + h


def gap(a: tuple, b: tuple) -> float:
    """Distance between two boxes along the axis they are apart on (negative: they overlap)."""
    return max(b[0] - a[2], a[0] - b[2], b[1] - a[3], a[1] - b[3])


@pytest.mark.parametrize("path", UI_WORKFLOWS, ids=lambda p: p.stem)
def test_no_node_covers_another_in_the_editor(path):
    nodes = load_json(path)["nodes"]
    for a, b in itertools.combinations(nodes, 2):
        assert gap(editor_box(a), editor_box(b)) >= build.MIN_GAP, (
            f"{path.name}: {a['type']} (node {a['id']}) and {b['type']} (node {b['id']}) overlap in the editor"
        )
    for node in nodes:  # the saved size is what the editor draws: never smaller than its own minimum
        assert all(s >= m for s, m in zip(node["size"], EDITOR_MIN_SIZE[node["type"]], strict=True)), node["type"]


def test_layout_model_covers_what_the_editor_draws():
    for kind, (min_w, min_h) in EDITOR_MIN_SIZE.items():
        x0, y0, x1, y1 = build.drawn_box(build.Node(1, kind, (100, 200), size=(1, 1)))
        assert x1 - x0 >= min_w and y1 - 200 >= min_h, kind
        assert y0 <= 200 - TITLE_H - BADGE_H, kind  # title bar and badge above pos


def moved(workflow, node_id: int, pos: tuple, size: tuple | None = None):
    broken = copy.deepcopy(workflow)
    for i, node in enumerate(broken.nodes):
        if node.id == node_id:
            broken.nodes[i] = dataclasses.replace(node, pos=pos, size=size or node.size)
    return broken


def test_an_overlapping_layout_is_refused():
    bicubic = next(w for w in build.WORKFLOWS if w.name == "resshift_bicubic_x4")
    save = next(n for n in bicubic.nodes if n.type == "SaveImage")
    # the reported fault: the note over Save Image's lower-left corner
    broken = moved(bicubic, 7, (save.pos[0] - 380, save.pos[1] + 360), (640, 140))
    for refuse in (build.check_layout, build.ui):
        with pytest.raises(build.LayoutError) as caught:
            refuse(broken)
        assert "Note (node 7)" in str(caught.value) and "Save Image (node 5)" in str(caught.value)
        assert "ResShift Bicubic x4" in str(caught.value)
    # only the title bar in the way: the note's pos just under Save Image's body
    below = moved(bicubic, 7, (save.pos[0], save.pos[1] + save.size[1] + 10))
    with pytest.raises(build.LayoutError, match="Note"):
        build.check_layout(below)
    # and far enough under it, it is accepted
    build.check_layout(moved(bicubic, 7, (save.pos[0], build.below(save))))


@pytest.mark.parametrize("path", UI_WORKFLOWS, ids=lambda p: p.stem)
def test_the_editor_opens_on_the_whole_workflow(path):
    ui = load_json(path)
    view = ui["extra"]["ds"]
    boxes = [editor_box(n) for n in ui["nodes"]]
    assert min(b[0] for b in boxes) + view["offset"][0] >= 0 and min(b[1] for b in boxes) + view["offset"][1] >= 0
    assert max(b[2] for b in boxes) * view["scale"] <= 1500 and max(b[3] for b in boxes) * view["scale"] <= 850


def test_file_names_read_as_titles():
    """ComfyUI v0.3.64 lists a pack's templates by file name (/workflow_templates) and its frontend
    (1.27.10) titles each card with that name: the names are the titles users read."""
    for path in UI_WORKFLOWS:
        title = path.stem
        assert title.startswith("ResShift ") and "_" not in title and len(title) <= 40, title
        assert load_json(path)["extra"]["info"]["title"] == title
        assert path.with_suffix(".jpg").is_file()


def test_one_step_workflow_names_only_files_that_sample_in_one_call():
    """The one-step template's model and every file its note offers are published one-step
    students (so steps 0 means one network call) that pair with its VAE."""
    from resshift_core import registry

    workflow = next(w for w in build.WORKFLOWS if w.name == "resshift_one_step_x4")
    by_type = {n.type: n for n in workflow.nodes}
    assert by_type["ResShiftUpscale"].widgets["steps"] == 0
    vae = registry.find(by_type["ResShiftVAELoader"].widgets["vae_name"])
    offered = re.findall(r"[\w.-]+\.(?:pth|safetensors)", by_type["Note"].widgets["text"])
    assert len(offered) == 5, offered  # SinSR v1/v2, RSD, Distilled-ResShift x4/x2
    for file in [by_type["ResShiftModelLoader"].widgets["model_name"], *offered]:
        entry = registry.find(file)
        assert entry is not None and entry.part == "unet" and entry.file == file, file
        assert entry.preset is not None and registry.preset(entry.preset).one_step, file
        assert vae is not None and entry.vae == vae.name, file
        # a file without a download address is one the note tells the user to place by hand
        assert entry.downloadable or "by hand" in by_type["Note"].widgets["text"], file


@pytest.mark.parametrize("path", API_WORKFLOWS, ids=lambda p: p.stem)
def test_api_workflow_runs(host, path):
    fake, classes, image = host
    prompt = load_json(path)
    validate_prompt(prompt, classes)
    results = execute_prompt(prompt, classes)
    saved = [node_id for node_id, node in prompt.items() if node["class_type"] == "SaveImage"]
    assert len(saved) == 1
    (out,) = results[saved[0]]
    sf = SCALE[path.stem]
    width, height = INPUT_SIZE
    assert out.shape == (1, height * sf, width * sf, 3)
    assert out.dtype == torch.float32 and out.min() >= 0 and out.max() <= 1 and torch.isfinite(out).all()
    files = sorted(p for p in (fake.base / "output").iterdir())
    assert len(files) == 1
    with Image.open(files[0]) as img:
        assert img.size == (width * sf, height * sf)
    if path.stem == "resshift_inpainting":
        y0, y1, x0, x1 = HOLE
        keep = torch.ones(height, width, dtype=torch.bool)
        keep[y0:y1, x0:x1] = False
        torch.testing.assert_close(out[0][keep], image[0][keep], atol=1e-6, rtol=0)
        assert not torch.allclose(out[0][~keep], image[0][~keep], atol=1e-3)
    # every node of ours ran with progress, and the chain left nothing half-loaded
    assert fake.progress and fake.progress[-1][0] == fake.progress[-1][1]
    if path.stem == "resshift_one_step_x4":  # ResShift Upscale's bar: encode, one network call, decode
        assert fake.progress[-1][1] == 3, fake.progress
    assert fake.mm.current_loaded_models
    for loaded in fake.mm.current_loaded_models:
        assert loaded.model.fully_loaded()


def test_executor_rejects_what_comfyui_rejects(host):
    _, classes, _ = host
    prompt = load_json(WORKFLOWS / "api" / "resshift_realsr_x4.json")
    broken = json.loads(json.dumps(prompt))
    broken["5"]["inputs"]["steps"] = -1
    with pytest.raises(Exception, match="smaller than min"):
        validate_prompt(broken, classes)
    broken = json.loads(json.dumps(prompt))
    broken["1"]["inputs"]["model_name"] = "no_such_model.pth"
    with pytest.raises(Exception, match="no_such_model"):
        validate_prompt(broken, classes)
    broken = json.loads(json.dumps(prompt))
    broken["6"]["inputs"]["latent"] = ["2", 0]  # a VAE into a latent input
    with pytest.raises(Exception, match="RESSHIFT_VAE cannot connect"):
        validate_prompt(broken, classes)
