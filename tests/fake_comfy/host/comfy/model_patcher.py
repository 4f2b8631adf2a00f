"""A small stand-in for ComfyUI's comfy/model_patcher.py (checked against v0.3.64).

ModelPatcher with the constructor, size accounting and the load/unload paths that
`comfy.model_management` drives, including ComfyUI's partial loading: without `full_load`,
modules are moved one by one while they fit in `lowvram_model_memory`, and modules that
are not `comfy.ops` layers (no `comfy_cast_weights`) are simply left behind. Weight patches
(LoRA), hooks and wrappers are not modelled: the ResShift nodes use none of them.
Not ComfyUI's code: written for these tests from the documented behaviour.
"""

from typing import Any

import torch

import comfy.model_management


class ModelPatcher:
    def __init__(self, model, load_device, offload_device, size=0, weight_inplace_update=False):
        self.size = size
        self.model = model
        if not hasattr(self.model, "device") or self.model.device is None:
            self.model.device = offload_device
        self.patches = {}
        self.backup = {}
        self.object_patches = {}
        self.model_options: dict[str, Any] = {"transformer_options": {}}
        self.model_size()
        self.load_device = load_device
        self.offload_device = offload_device
        self.weight_inplace_update = weight_inplace_update
        self.parent = None
        for name, default in (
            ("model_loaded_weight_memory", 0),
            ("lowvram_patch_counter", 0),
            ("model_lowvram", False),
            ("current_weight_patches_uuid", None),
        ):
            if not hasattr(self.model, name):
                setattr(self.model, name, default)

    def model_size(self):
        if self.size > 0:
            return self.size
        self.size = comfy.model_management.module_size(self.model)
        return self.size

    def loaded_size(self):
        return self.model.model_loaded_weight_memory

    def lowvram_patch_counter(self):
        return self.model.lowvram_patch_counter

    def clone(self):
        n = ModelPatcher(self.model, self.load_device, self.offload_device, self.size, self.weight_inplace_update)
        n.parent = self
        return n

    def is_clone(self, other):
        return hasattr(other, "model") and self.model is other.model

    def model_dtype(self):
        if hasattr(self.model, "get_dtype"):
            return self.model.get_dtype()

    def model_patches_to(self, device):
        pass

    def model_patches_models(self):
        return []

    def current_loaded_device(self):
        return self.model.device

    def _load_list(self):
        loading = []
        for n, m in self.model.named_modules():
            params = [name for name, _ in m.named_parameters(recurse=False)]
            skip = any(name not in params for name, _ in m.named_parameters(recurse=True))
            if not skip and (hasattr(m, "comfy_cast_weights") or len(params) > 0):
                loading.append((comfy.model_management.module_size(m), n, m, params))
        return loading

    def load(self, device_to=None, lowvram_model_memory=0, force_patch_weights=False, full_load=False):
        mem_counter = 0
        lowvram_counter = 0
        load_completely = []
        loading = sorted(self._load_list(), key=lambda x: (x[0], x[1]), reverse=True)
        for module_mem, n, m, params in loading:
            if not full_load and hasattr(m, "comfy_cast_weights") and mem_counter + module_mem >= lowvram_model_memory:
                lowvram_counter += 1  # a comfy.ops layer: cast on the fly from the offload device
                continue
            if full_load or mem_counter + module_mem < lowvram_model_memory:
                mem_counter += module_mem
                load_completely.append((module_mem, n, m, params))
        for _, _, m, _ in load_completely:
            if getattr(m, "comfy_patched_weights", False):
                continue
            m.comfy_patched_weights = True
        for _, _, m, _ in load_completely:
            m.to(device_to)
        if lowvram_counter > 0:
            self.model.model_lowvram = True
        else:
            self.model.model_lowvram = False
            if full_load:
                self.model.to(device_to)
                mem_counter = self.model_size()
        self.model.device = device_to
        self.model.model_loaded_weight_memory = mem_counter
        self.model.current_weight_patches_uuid = None

    def patch_model(self, device_to=None, lowvram_model_memory=0, load_weights=True, force_patch_weights=False):
        if load_weights:
            self.load(
                device_to,
                lowvram_model_memory=lowvram_model_memory,
                force_patch_weights=force_patch_weights,
                full_load=lowvram_model_memory == 0,
            )
        return self.model

    def unpatch_model(self, device_to=None, unpatch_weights=True):
        if unpatch_weights:
            self.model.model_lowvram = False
            self.model.lowvram_patch_counter = 0
            if device_to is not None:
                self.model.to(device_to)
                self.model.device = device_to
            self.model.model_loaded_weight_memory = 0
            for m in self.model.modules():
                if hasattr(m, "comfy_patched_weights"):
                    del m.comfy_patched_weights

    def partially_unload(self, device_to, memory_to_free=0):
        memory_freed = 0
        for module_mem, _, m, _ in sorted(self._load_list(), key=lambda x: (x[0], x[1])):
            if memory_to_free < memory_freed:
                break
            if getattr(m, "comfy_patched_weights", False):
                m.to(device_to)
                m.comfy_patched_weights = False
                memory_freed += module_mem
        self.model.model_lowvram = True
        self.model.model_loaded_weight_memory -= memory_freed
        return memory_freed

    def partially_load(self, device_to, extra_memory=0, force_patch_weights=False):
        unpatch_weights = self.model.current_weight_patches_uuid is not None and force_patch_weights
        used = self.model.model_loaded_weight_memory
        self.unpatch_model(self.offload_device, unpatch_weights=unpatch_weights)
        if unpatch_weights:
            extra_memory += used - self.model.model_loaded_weight_memory
        self.patch_model(load_weights=False)
        if self.model.model_lowvram is False and self.model.model_loaded_weight_memory > 0:
            return 0
        full_load = self.model.model_loaded_weight_memory + extra_memory > self.model_size()
        current_used = self.model.model_loaded_weight_memory
        try:
            self.load(
                device_to,
                lowvram_model_memory=current_used + extra_memory,
                force_patch_weights=force_patch_weights,
                full_load=full_load,
            )
        except Exception:
            self.detach()
            raise
        return self.model.model_loaded_weight_memory - current_used

    def detach(self, unpatch_all=True):
        self.model_patches_to(self.offload_device)
        if unpatch_all:
            self.unpatch_model(self.offload_device, unpatch_weights=unpatch_all)
        return self.model

    def cleanup(self):
        pass

    def fully_loaded(self):
        """Test helper (not in ComfyUI): every weight-holding module was loaded."""
        on_device = all(
            t.device == torch.device(self.load_device)
            or (t.device.type == torch.device(self.load_device).type and t.device.type == "cuda")
            for t in self.model.parameters()
        )
        return (
            on_device
            and self.loaded_size() == self.model_size()
            and not self.model.model_lowvram
            and all(getattr(m, "comfy_patched_weights", False) for _, _, m, _ in self._load_list())
        )


__all__ = ["ModelPatcher"]
