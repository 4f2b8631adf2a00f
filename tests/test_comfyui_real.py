"""The pack in a real ComfyUI server, when COMFYUI_PATH names a ComfyUI checkout (else skipped).

    COMFYUI_PATH=/path/to/ComfyUI COMFYUI_PYTHON=/path/to/its/venv/bin/python pytest tests/test_comfyui_real.py

The server runs on 127.0.0.1 (a free port, --cpu) with a temporary --base-directory whose
custom_nodes/ holds a link to this repository; the tiny checkpoints sit in a folder that only an
--extra-model-paths-config file names, so the test also shows extra_model_paths.yaml reaching
models/resshift. It checks /object_info, the pack's templates, and queues every API workflow
through /prompt, waiting for each in /history, with sampler previews on (--preview-method auto),
and interrupts one run. Nothing in the checkout is changed.

With COMFYUI_BROWSER (a Chromium binary) and Node.js's playwright-core (PLAYWRIGHT_CORE names its
folder), each editor-form workflow is also opened in ComfyUI's real editor (`editor_export.cjs`),
and the editor's own API export is compared with workflows/api.
"""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from PIL import Image

from fake_comfy import REPO, UI_TO_API, WORKFLOWS, install_tiny, load_json, prompt_nodes, write_test_image

COMFY = os.environ.get("COMFYUI_PATH")
pytestmark = pytest.mark.skipif(
    not COMFY or not (Path(COMFY) / "main.py").is_file(),
    reason="set COMFYUI_PATH to a ComfyUI checkout (and COMFYUI_PYTHON to its Python) to test in a real server",
)

PACK = "comfyui-resshift"
NODE_IDS = {
    "ResShiftModelLoader",
    "ResShiftVAELoader",
    "ResShiftEncode",
    "ResShiftSampler",
    "ResShiftDecode",
    "ResShiftUpscale",
    "ResShiftColorFix",
}
INPUT_SIZE = (24, 20)
HOLE = (6, 14, 5, 12)
SCALE = {
    "resshift_realsr_x4": 4,
    "resshift_upscale_one_node": 4,
    "resshift_bicubic_x4": 4,
    "resshift_inpainting": 1,
    "resshift_face_restoration": 1,
    "resshift_one_step_x4": 4,
}
START_TIMEOUT_S = float(os.environ.get("COMFYUI_START_TIMEOUT", "300"))
RUN_TIMEOUT_S = 300


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, timeout: float = 10):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read())


def post(url: str, data: dict, timeout: float = 30):
    request = urllib.request.Request(url, data=json.dumps(data).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            body = r.read()
            return json.loads(body) if body.strip() else {}  # /interrupt answers with an empty body
    except urllib.error.HTTPError as exc:
        raise AssertionError(f"POST {url} answered {exc.code}: {exc.read().decode(errors='replace')}") from None


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_cache):
    base = tmp_path_factory.mktemp("comfyui_base")
    (base / "custom_nodes").mkdir()
    os.symlink(REPO, base / "custom_nodes" / PACK)
    install_tiny(base / "extra_models", tiny_cache)
    config = base / "extra_model_paths.yaml"
    config.write_text(f"resshift_test:\n    base_path: {base}\n    resshift: extra_models\n", encoding="utf-8")
    (base / "input").mkdir()
    write_test_image(base / "input" / "example.png", INPUT_SIZE, hole=HOLE)
    port = free_port()
    python = os.environ.get("COMFYUI_PYTHON", sys.executable)
    cmd = [
        python,
        "main.py",
        "--cpu",
        "--base-directory",
        str(base),
        "--extra-model-paths-config",
        str(config),
        "--listen",
        "127.0.0.1",
        "--port",
        str(port),
        "--disable-auto-launch",
        "--preview-method",
        "auto",
        "--database-url",
        "sqlite:///:memory:",
    ]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "RESSHIFT_MODELS_DIR")}
    env.update(RESSHIFT_OFFLINE="1", HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    log_path = base / "server.log"
    log = open(log_path, "w")  # noqa: SIM115 - the server writes into it until the fixture's teardown closes it
    proc = subprocess.Popen(cmd, cwd=COMFY, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"

    def log_tail() -> str:
        log.flush()
        return log_path.read_text(errors="replace")[-6000:]

    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"ComfyUI exited with {proc.returncode} while starting:\n{log_tail()}")
            try:
                get(f"{url}/system_stats", timeout=5)
                break
            except (urllib.error.URLError, OSError):
                if time.monotonic() > deadline:
                    pytest.fail(f"ComfyUI did not answer within {START_TIMEOUT_S:.0f} s:\n{log_tail()}")
                time.sleep(1)
        yield {"url": url, "base": base, "log": log_tail}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def test_pack_imports_and_nodes_are_listed(server):
    info = get(f"{server['url']}/object_info", timeout=60)
    missing = NODE_IDS - set(info)
    assert not missing, f"nodes not registered: {missing}\n{server['log']()}"
    # ComfyUI's own optional nodes may fail without their extras (nodes_audio.py without torchaudio):
    # only a failure naming this pack counts.
    failed = [line for line in server["log"]().splitlines() if "IMPORT FAILED" in line and PACK in line]
    assert not failed, failed
    loader = info["ResShiftModelLoader"]
    assert loader["category"].startswith("ResShift") and loader["display_name"] == "Load ResShift Model"
    choices = loader["input"]["required"]["model_name"][0]
    assert "resshift_realsrx4_s4_v3.safetensors" in choices  # found through extra_model_paths
    assert "resshift_realsrx4_s4_v3.pth" in choices  # and the published name
    sampler = info["ResShiftSampler"]["input"]["required"]
    assert sampler["seed"][1]["control_after_generate"] is True
    assert list(info["ResShiftSampler"]["input_order"]["required"]) == [
        "model",
        "latent",
        "seed",
        "steps",
        "tile_size",
        "tile_overlap",
    ]
    assert info["ResShiftDecode"]["output"] == ["IMAGE"]


def test_templates_are_listed(server):
    templates = get(f"{server['url']}/workflow_templates")
    assert sorted(templates.get(PACK, [])) == sorted(p.stem for p in WORKFLOWS.glob("*.json"))


def queue(server, prompt: dict) -> str:
    answer = post(f"{server['url']}/prompt", {"prompt": prompt, "client_id": uuid.uuid4().hex})
    assert not answer.get("node_errors"), answer
    return answer["prompt_id"]


def wait_for(server, prompt_id: str, name: str) -> dict:
    """The prompt's history entry once it has ended (success, error or interrupted)."""
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while True:
        history = get(f"{server['url']}/history/{prompt_id}")
        if prompt_id in history and history[prompt_id].get("status", {}).get("completed") is not None:
            return history[prompt_id]
        if time.monotonic() > deadline:
            pytest.fail(f"{name} did not finish in {RUN_TIMEOUT_S} s\n{server['log']()}")
        time.sleep(0.5)


@pytest.mark.parametrize("name", sorted(SCALE))
def test_api_workflow_runs_in_the_server(server, name):
    prompt = load_json(WORKFLOWS / "api" / f"{name}.json")
    entry = wait_for(server, queue(server, prompt), name)
    if entry["status"]["status_str"] != "success":
        pytest.fail(f"{name} failed: {json.dumps(entry['status'], indent=1)}\n{server['log']()}")
    save_id = next(k for k, v in prompt.items() if v["class_type"] == "SaveImage")
    images = entry["outputs"][save_id]["images"]
    assert len(images) == 1
    path = server["base"] / "output" / images[0]["subfolder"] / images[0]["filename"]
    sf = SCALE[name]
    with Image.open(path) as img:
        assert img.size == (INPUT_SIZE[0] * sf, INPUT_SIZE[1] * sf)


def test_interrupt_while_the_chain_runs_then_the_same_prompt_runs(server):
    """Cancel (POST /interrupt) mid-run; the next run of the same prompt succeeds (nothing half-loaded)."""
    write_test_image(server["base"] / "input" / "big.png", (320, 320), seed=5)
    prompt = load_json(WORKFLOWS / "api" / "resshift_realsr_x4.json")
    load = next(k for k, v in prompt.items() if v["class_type"] == "LoadImage")
    prompt[load]["inputs"]["image"] = "big.png"
    prompt_id = queue(server, prompt)
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while not any(item[1] == prompt_id for item in get(f"{server['url']}/queue")["queue_running"]):
        assert time.monotonic() < deadline, server["log"]()
        time.sleep(0.05)
    time.sleep(1.0)  # into the chain, which takes several seconds at this size
    post(f"{server['url']}/interrupt", {})
    entry = wait_for(server, prompt_id, "interrupted run")
    messages = [m[0] for m in entry["status"].get("messages", [])]
    assert entry["status"]["status_str"] == "error" and "execution_interrupted" in messages, entry["status"]
    again = wait_for(server, queue(server, prompt), "run after the interrupt")
    assert again["status"]["status_str"] == "success", again["status"]
    save_id = next(k for k, v in prompt.items() if v["class_type"] == "SaveImage")
    image = again["outputs"][save_id]["images"][0]
    with Image.open(server["base"] / "output" / image["subfolder"] / image["filename"]) as img:
        assert img.size == (1280, 1280)


# -- the editor-form workflows in the real editor (headless Chromium) -------------------------------

# Opt-in beside COMFYUI_PATH: a Chromium binary and Node.js's playwright-core (npm i playwright-core;
# PLAYWRIGHT_CORE names its folder when it is not on require()'s path).
BROWSER = os.environ.get("COMFYUI_BROWSER")
EDITOR_SCRIPT = Path(__file__).with_name("editor_export.cjs")


@pytest.fixture(scope="module")
def editor_exports(server):
    if not BROWSER or not Path(BROWSER).is_file():
        reason = "set COMFYUI_BROWSER to a Chromium binary (and PLAYWRIGHT_CORE) to open the workflows in the editor"
        pytest.skip(reason)
    files = sorted(WORKFLOWS.glob("*.json"))
    proc = subprocess.run(
        ["node", str(EDITOR_SCRIPT), server["url"], BROWSER, *map(str, files)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, f"{proc.stderr[-4000:]}\n{server['log']()}"
    return json.loads(proc.stdout)


@pytest.mark.parametrize("title", sorted(UI_TO_API))
def test_the_real_editor_loads_the_workflow_and_exports_its_api_form(editor_exports, title):
    """What a user gets from the template: every node known, no page error, and the editor's own
    API export (widget values read back from the editor's widgets) equal to workflows/api."""
    result = editor_exports[title]
    assert result["missing"] == [], f"the editor does not know {result['missing']}"
    assert result["errors"] == [], result["errors"]
    api = load_json(WORKFLOWS / "api" / f"{UI_TO_API[title]}.json")
    assert prompt_nodes(result["output"]) == prompt_nodes(api)


# -- the fake host (tests/fake_comfy/host) against the real modules ---------------------------------

SIGNATURE_PROBE = r"""
import inspect, json, sys
sys.path.insert(0, ".")
sys.argv = ["main.py", "--cpu"]
try:
    import comfy.options  # the real ComfyUI: parse --cpu, so no GPU is looked for
    comfy.options.enable_args_parsing()
except ImportError:  # the fake
    pass
import comfy.cli_args, comfy.model_management, comfy.model_patcher, comfy.utils, folder_paths
wanted = json.loads(sys.stdin.read())
out = {}
for module_name, names in wanted.items():
    module = sys.modules[module_name]
    for name in names:
        obj = module
        for part in name.split("."):
            obj = getattr(obj, part, None)
        if obj is None:
            out[f"{module_name}:{name}"] = None
        elif callable(obj) and not isinstance(obj, type):
            sig = inspect.signature(obj)  # names, kinds and defaults; annotations aside
            bare = [p.replace(annotation=inspect.Parameter.empty) for p in sig.parameters.values()]
            sig = sig.replace(parameters=bare, return_annotation=inspect.Signature.empty)
            out[f"{module_name}:{name}"] = str(sig)
        else:
            out[f"{module_name}:{name}"] = type(obj).__name__
print("SIGNATURES" + json.dumps(out))
"""

TEST_ONLY = {"fully_loaded", "get_dtype"}  # helpers the fake adds for assertions


def fake_surface() -> dict:
    """Every public function, class and method the fake host defines, by module."""
    import importlib.util
    import inspect as insp

    from fake_comfy import HOST_DIR

    surface = {}
    files = {
        "comfy.model_management": "comfy/model_management.py",
        "comfy.model_patcher": "comfy/model_patcher.py",
        "comfy.utils": "comfy/utils.py",
        "folder_paths": "folder_paths.py",
        "comfy.cli_args": "comfy/cli_args.py",
    }
    saved = {k: v for k, v in sys.modules.items() if k == "comfy" or k.startswith("comfy.") or k == "folder_paths"}
    sys.path.insert(0, str(HOST_DIR))
    try:
        for module_name in files:
            module = importlib.import_module(module_name)
            names = []
            for name, obj in vars(module).items():
                if name.startswith("_") or getattr(obj, "__module__", None) != module_name:
                    continue
                if insp.isfunction(obj):
                    names.append(name)
                elif insp.isclass(obj):
                    names.append(name)
                    names += [
                        f"{name}.{m}"
                        for m, f in vars(obj).items()
                        if insp.isfunction(f) and not m.startswith("_") and m not in TEST_ONLY
                    ]
                    if "__init__" in vars(obj):
                        names.append(f"{name}.__init__")
            surface[module_name] = names
        surface["comfy.cli_args"] += ["args.preview_method", "args.preview_size"]  # the settings we read
    finally:
        for k in [k for k in sys.modules if k == "comfy" or k.startswith("comfy.") or k == "folder_paths"]:
            del sys.modules[k]
        sys.modules.update(saved)
        sys.path.remove(str(HOST_DIR))
    return surface


def signatures(python: str, cwd: str, surface: dict) -> dict:
    result = subprocess.run(
        [python, "-c", SIGNATURE_PROBE],
        cwd=cwd,
        input=json.dumps(surface),
        text=True,
        capture_output=True,
        timeout=300,
        check=False,
    )  # a failure is reported below
    line = next((row for row in result.stdout.splitlines() if row.startswith("SIGNATURES")), None)
    assert line, f"probe failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return json.loads(line[len("SIGNATURES") :])


def test_fake_host_matches_the_real_modules():
    """Every function, class and method of the fake host exists in the real ComfyUI with the
    same parameter names, kinds and defaults (the test-only helpers excepted)."""
    surface = fake_surface()
    assert sum(len(v) for v in surface.values()) > 40
    assert COMFY is not None  # (the module is skipped without a checkout)
    real = signatures(os.environ.get("COMFYUI_PYTHON", sys.executable), COMFY, surface)
    fake = signatures(sys.executable, str(__import__("fake_comfy").HOST_DIR), surface)
    missing = sorted(k for k, v in real.items() if v is None)
    assert not missing, f"the fake defines what ComfyUI does not: {missing}"
    differ = {k: (fake[k], real[k]) for k in real if fake[k] != real[k]}
    assert not differ, "signatures differ (fake, real):\n" + "\n".join(f"{k}: {v}" for k, v in differ.items())
