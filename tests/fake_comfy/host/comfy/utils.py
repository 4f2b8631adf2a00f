"""A small stand-in for ComfyUI's comfy/utils.py (checked against v0.3.64): the progress bar.

ComfyUI's server installs a global hook (main.hijack_progress) that sends the progress to the
browser and calls comfy.model_management.throw_exception_if_processing_interrupted(); the
test harness installs one that records the calls and does the same.
Not ComfyUI's code: written for these tests from the documented behaviour.
"""

PROGRESS_BAR_ENABLED = True
PROGRESS_BAR_HOOK = None


def set_progress_bar_enabled(enabled):
    global PROGRESS_BAR_ENABLED
    PROGRESS_BAR_ENABLED = enabled


def set_progress_bar_global_hook(function):
    global PROGRESS_BAR_HOOK
    PROGRESS_BAR_HOOK = function


class ProgressBar:
    def __init__(self, total, node_id=None):
        self.total = total
        self.current = 0
        self.hook = PROGRESS_BAR_HOOK
        self.node_id = node_id

    def update_absolute(self, value, total=None, preview=None):
        if total is not None:
            self.total = total
        if value > self.total:
            value = self.total
        self.current = value
        if self.hook is not None:
            self.hook(self.current, self.total, preview, node_id=self.node_id)

    def update(self, value):
        self.update_absolute(self.current + value)
