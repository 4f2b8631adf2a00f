"""Fake ComfyUI `comfy` package for the ResShift node tests (see tests/fake_comfy/__init__.py)."""
