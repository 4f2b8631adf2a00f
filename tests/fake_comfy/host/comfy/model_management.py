"""A small stand-in for ComfyUI's comfy/model_management.py (checked against v0.3.64).

Only what the ResShift nodes touch, with the same names, signatures and behaviour:
devices, dtype choice, the list of loaded models and `load_models_gpu` (including its
partial "low VRAM" loading when `force_full_load` is False), freeing memory, the OOM
exception and the interrupt flag. It runs on the CPU; `simulate_accelerator` makes the
load device count as an accelerator with `FREE_MEMORY` bytes free, so the memory policy
(partial loads, unloading other models) is exercised as on a GPU.
Not ComfyUI's code: written for these tests from the documented behaviour.
"""

import os
import threading
import weakref
from enum import Enum
from typing import Any

import torch


class VRAMState(Enum):
    DISABLED = 0
    NO_VRAM = 1
    LOW_VRAM = 2
    NORMAL_VRAM = 3
    HIGH_VRAM = 4
    SHARED = 5


class CPUState(Enum):
    GPU = 0
    CPU = 1
    MPS = 2


vram_state = VRAMState.NORMAL_VRAM
cpu_state = CPUState.GPU
lowvram_available = True
DISABLE_SMART_MEMORY = False
FORCE_FP32 = False
PRIORITIZE_FP16 = False

# Test knobs (not in ComfyUI): the compute device (FAKE_COMFY_DEVICE, e.g. "cuda" on a GPU
# machine; the CPU by default, then counted as an accelerator with FREE_MEMORY bytes free).
DEVICE = torch.device(os.environ.get("FAKE_COMFY_DEVICE", "cpu"))
simulate_accelerator = True
FREE_MEMORY = 1 << 40
FORCED_UNET_DTYPE = None  # like --fp16-unet / --bf16-unet / --fp32-unet
FORCED_VAE_DTYPE = None  # like --fp16-vae / --bf16-vae / --fp32-vae
SUPPORTS_BF16 = False  # what should_use_bf16 answers for the accelerator
SUPPORTS_FP16 = False
calls: list[tuple[str, dict[str, Any]]] = []  # (function name, kwargs) of the calls the nodes made, for assertions

OOM_EXCEPTION = torch.cuda.OutOfMemoryError


def _record(name, **kwargs):
    calls.append((name, kwargs))


def get_torch_device():
    return DEVICE


def is_device_type(device, type):
    return hasattr(device, "type") and device.type == type


def is_device_cpu(device):
    # ComfyUI: is_device_type(device, 'cpu'). The fake's accelerator is the CPU in disguise.
    return is_device_type(device, "cpu") and not simulate_accelerator


def is_device_mps(device):
    return is_device_type(device, "mps")


def is_device_cuda(device):
    return is_device_type(device, "cuda")


def cpu_mode():
    return cpu_state == CPUState.CPU


def unet_offload_device():
    if vram_state == VRAMState.HIGH_VRAM:
        return get_torch_device()
    return torch.device("cpu")


def intermediate_device():
    return torch.device("cpu")


def vae_device():
    return get_torch_device()


def vae_offload_device():
    return torch.device("cpu")


def text_encoder_offload_device():
    return torch.device("cpu")


def dtype_size(dtype):
    if dtype in (torch.float16, torch.bfloat16):
        return 2
    if dtype == torch.float32:
        return 4
    return getattr(dtype, "itemsize", 4)


def module_size(module):
    return sum(t.nelement() * t.element_size() for t in module.state_dict().values())


def should_use_fp16(device=None, model_params=0, prioritize_performance=True, manual_cast=False):
    if device is not None and is_device_cpu(device):
        return False
    if FORCE_FP32 or cpu_mode():
        return False
    return SUPPORTS_FP16


def should_use_bf16(device=None, model_params=0, prioritize_performance=True, manual_cast=False):
    if device is not None and is_device_cpu(device):
        return False
    if FORCE_FP32 or cpu_mode():
        return False
    return SUPPORTS_BF16


def unet_dtype(
    device=None,
    model_params=0,
    supported_dtypes=[torch.float16, torch.bfloat16, torch.float32],  # noqa: B006 - ComfyUI's own signature
    weight_dtype=None,
):
    if FORCED_UNET_DTYPE is not None:
        return FORCED_UNET_DTYPE
    prefer_fp16 = PRIORITIZE_FP16 or weight_dtype == torch.float16
    if prefer_fp16 and torch.float16 in supported_dtypes and should_use_fp16(device=device, model_params=model_params):
        return torch.float16
    for dt in supported_dtypes:
        if dt == torch.float16 and should_use_fp16(device=device, model_params=model_params):
            return torch.float16
        if dt == torch.bfloat16 and should_use_bf16(device, model_params=model_params):
            return torch.bfloat16
    return torch.float32


def vae_dtype(device=None, allowed_dtypes=[]):  # noqa: B006 - ComfyUI's own signature (never mutated)
    if FORCED_VAE_DTYPE is not None:
        return FORCED_VAE_DTYPE
    for d in allowed_dtypes:
        if d == torch.float16 and should_use_fp16(device):
            return d
        if d == torch.bfloat16 and should_use_bf16(device):
            return d
    return torch.float32


def get_free_memory(dev=None, torch_free_too=False):
    if dev is None:
        dev = get_torch_device()
    if is_device_cpu(dev):
        free = 1 << 40
    else:
        used = sum(m.model_loaded_memory() for m in current_loaded_models if m.device == dev)
        free = max(0, FREE_MEMORY - used)
    return (free, 0) if torch_free_too else free


def extra_reserved_memory():
    return 0


def minimum_inference_memory():
    return 0


class LoadedModel:  # noqa: PLW1641 -- unhashable, as in ComfyUI: equality follows the weakly held model
    """A loaded ModelPatcher (held weakly), as in ComfyUI."""

    def __init__(self, model):
        self._model = weakref.ref(model)
        self.device = model.load_device
        self.real_model: weakref.ref | None = None  # set by model_load
        self.currently_used = True
        self.model_finalizer: weakref.finalize | None = None  # set by model_load

    @property
    def model(self):
        return self._model()

    def model_memory(self):
        return self.model.model_size()

    def model_loaded_memory(self):
        return self.model.loaded_size()

    def model_offloaded_memory(self):
        return self.model.model_size() - self.model.loaded_size()

    def model_memory_required(self, device):
        if device == self.model.current_loaded_device():
            return self.model_offloaded_memory()
        return self.model_memory()

    def model_load(self, lowvram_model_memory=0, force_patch_weights=False):
        use_more_vram = lowvram_model_memory
        if use_more_vram == 0:
            use_more_vram = 1e32
        self.model.partially_load(self.device, use_more_vram, force_patch_weights=force_patch_weights)
        real_model = self.model.model
        self.real_model = weakref.ref(real_model)
        self.model_finalizer = weakref.finalize(real_model, cleanup_models)
        return real_model

    def model_unload(self, memory_to_free=None, unpatch_weights=True):
        if memory_to_free is not None and memory_to_free < self.model.loaded_size():
            freed = self.model.partially_unload(self.model.offload_device, memory_to_free)
            if freed >= memory_to_free:
                return False
        self.model.detach(unpatch_weights)
        assert self.model_finalizer is not None, "model_unload before model_load"
        self.model_finalizer.detach()
        self.model_finalizer = None
        self.real_model = None
        return True

    def __eq__(self, other):
        return self.model is other.model

    def is_dead(self):
        assert self.real_model is not None, "is_dead before model_load"
        return self.real_model() is not None and self.model is None


current_loaded_models: list[LoadedModel] = []


def free_memory(memory_required, device, keep_loaded=[]):  # noqa: B006 - ComfyUI's own signature (never mutated)
    _record("free_memory", memory_required=memory_required, device=device)
    unloaded = []
    candidates = []
    for i in range(len(current_loaded_models) - 1, -1, -1):
        m = current_loaded_models[i]
        if m.device == device and m not in keep_loaded and not m.is_dead():
            candidates.append((-m.model_offloaded_memory(), m.model_memory(), i))
            m.currently_used = False
    for _, _, i in sorted(candidates):
        memory_to_free = None
        if not DISABLE_SMART_MEMORY:
            free = get_free_memory(device)
            if free > memory_required:
                break
            memory_to_free = memory_required - free
        if current_loaded_models[i].model_unload(memory_to_free):
            unloaded.append(i)
    out = []
    for i in sorted(unloaded, reverse=True):
        out.append(current_loaded_models.pop(i))
    if out:
        soft_empty_cache()
    return out


def load_models_gpu(
    models, memory_required=0, force_patch_weights=False, minimum_memory_required=None, force_full_load=False
):
    _record("load_models_gpu", models=list(models), memory_required=memory_required, force_full_load=force_full_load)
    inference_memory = minimum_inference_memory()
    extra_mem = max(inference_memory, memory_required + extra_reserved_memory())
    if minimum_memory_required is None:
        minimum_memory_required = extra_mem

    models = set(models) | {mm for m in models for mm in m.model_patches_models()}
    to_load = []
    for x in models:
        loaded = LoadedModel(x)
        try:
            index = current_loaded_models.index(loaded)
        except ValueError:
            index = None
        if index is not None:
            loaded = current_loaded_models[index]
            loaded.currently_used = True
        to_load.append(loaded)

    for loaded in to_load:  # a clone (or the model itself) is taken off the list, then reloaded
        for i in reversed(range(len(current_loaded_models))):
            if loaded.model.is_clone(current_loaded_models[i].model):
                old = current_loaded_models.pop(i)
                old.model.detach(unpatch_all=False)
                assert old.model_finalizer is not None, "a listed model was loaded"
                old.model_finalizer.detach()

    required: dict[torch.device, float] = {}
    for loaded in to_load:
        required[loaded.device] = required.get(loaded.device, 0) + loaded.model_memory_required(loaded.device)
    for device, amount in required.items():
        if not is_device_cpu(device):
            free_memory(amount * 1.1 + extra_mem, device)

    for loaded in to_load:
        patcher = loaded.model
        state = VRAMState.DISABLED if is_device_cpu(patcher.load_device) else vram_state
        lowvram_model_memory: float = 0
        if lowvram_available and state in (VRAMState.LOW_VRAM, VRAMState.NORMAL_VRAM) and not force_full_load:
            loaded_memory = loaded.model_loaded_memory()
            current_free = get_free_memory(patcher.load_device) + loaded_memory
            lowvram_model_memory = max(
                128 * 1024 * 1024 if FREE_MEMORY >= (1 << 30) else 1, current_free - minimum_memory_required
            )
            lowvram_model_memory = max(0.1, lowvram_model_memory - loaded_memory)
        if state == VRAMState.NO_VRAM:
            lowvram_model_memory = 0.1
        loaded.model_load(lowvram_model_memory, force_patch_weights=force_patch_weights)
        current_loaded_models.insert(0, loaded)


def load_model_gpu(model):
    return load_models_gpu([model])


def loaded_models(only_currently_used=False):
    return [m.model for m in current_loaded_models if m.currently_used or not only_currently_used]


def cleanup_models_gc():
    pass


def cleanup_models():
    for i in reversed(range(len(current_loaded_models))):
        real_model = current_loaded_models[i].real_model
        assert real_model is not None, "a listed model was loaded"
        if real_model() is None:
            current_loaded_models.pop(i)


def soft_empty_cache(force=False):
    _record("soft_empty_cache", force=force)
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def unload_all_models():
    free_memory(1e30, get_torch_device())


class InterruptProcessingException(Exception):
    pass


interrupt_processing_mutex = threading.RLock()
interrupt_processing = False


def interrupt_current_processing(value=True):
    global interrupt_processing
    with interrupt_processing_mutex:
        interrupt_processing = value


def processing_interrupted():
    with interrupt_processing_mutex:
        return interrupt_processing


def throw_exception_if_processing_interrupted():
    global interrupt_processing
    with interrupt_processing_mutex:
        if interrupt_processing:
            interrupt_processing = False
            raise InterruptProcessingException()
