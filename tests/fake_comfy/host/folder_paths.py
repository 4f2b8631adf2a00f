"""A small stand-in for ComfyUI's folder_paths.py (checked against v0.3.64).

The model-folder registry: `folder_names_and_paths` maps a folder name to (paths, extensions),
`add_model_folder_path` is what extra_model_paths.yaml entries go through, and the file lists
are recursive, filtered by extension (an empty set means every file).
`_reset(base_path)` (not in ComfyUI) points the fake at a temporary ComfyUI folder.
Not ComfyUI's code: written for these tests from the documented behaviour.
"""

import os

supported_pt_extensions = {".ckpt", ".pt", ".pt2", ".bin", ".pth", ".safetensors", ".pkl", ".sft"}

folder_names_and_paths: dict[str, tuple[list[str], set[str]]] = {}  # name -> (folders, extensions)
base_path = ""
models_dir = ""
input_directory = output_directory = temp_directory = ""


def _reset(new_base_path):
    global base_path, models_dir, input_directory, output_directory, temp_directory
    base_path = os.path.abspath(new_base_path)
    models_dir = os.path.join(base_path, "models")
    folder_names_and_paths.clear()
    for name, sub in (("checkpoints", "checkpoints"), ("vae", "vae"), ("upscale_models", "upscale_models")):
        folder_names_and_paths[name] = ([os.path.join(models_dir, sub)], supported_pt_extensions)
    folder_names_and_paths["custom_nodes"] = ([os.path.join(base_path, "custom_nodes")], set())
    input_directory = os.path.join(base_path, "input")
    output_directory = os.path.join(base_path, "output")
    temp_directory = os.path.join(base_path, "temp")


def map_legacy(folder_name):
    return {"unet": "diffusion_models", "clip": "text_encoders"}.get(folder_name, folder_name)


def get_input_directory():
    return input_directory


def get_output_directory():
    return output_directory


def get_temp_directory():
    return temp_directory


def add_model_folder_path(folder_name, full_folder_path, is_default=False):
    folder_name = map_legacy(folder_name)
    if folder_name in folder_names_and_paths:
        paths, _exts = folder_names_and_paths[folder_name]
        if full_folder_path in paths:
            if is_default and paths[0] != full_folder_path:
                paths.remove(full_folder_path)
                paths.insert(0, full_folder_path)
        elif is_default:
            paths.insert(0, full_folder_path)
        else:
            paths.append(full_folder_path)
    else:
        folder_names_and_paths[folder_name] = ([full_folder_path], set())


def get_folder_paths(folder_name):
    return folder_names_and_paths[map_legacy(folder_name)][0][:]


def recursive_search(directory, excluded_dir_names=None):
    if not os.path.isdir(directory):
        return [], {}
    excluded = excluded_dir_names or []
    result, dirs = [], {directory: os.path.getmtime(directory)}
    for dirpath, subdirs, filenames in os.walk(directory, followlinks=True, topdown=True):
        subdirs[:] = [d for d in subdirs if d not in excluded]
        result += [os.path.relpath(os.path.join(dirpath, f), directory) for f in filenames]
        for d in subdirs:
            dirs[os.path.join(dirpath, d)] = os.path.getmtime(os.path.join(dirpath, d))
    return result, dirs


def filter_files_extensions(files, extensions):
    return sorted(f for f in files if os.path.splitext(f)[-1].lower() in extensions or len(extensions) == 0)


def get_full_path(folder_name, filename):
    folder_name = map_legacy(folder_name)
    if folder_name not in folder_names_and_paths:
        return None
    filename = os.path.relpath(os.path.join("/", filename), "/")
    for x in folder_names_and_paths[folder_name][0]:
        full_path = os.path.join(x, filename)
        if os.path.isfile(full_path):
            return full_path
    return None


def get_full_path_or_raise(folder_name, filename):
    full_path = get_full_path(folder_name, filename)
    if full_path is None:
        raise FileNotFoundError(f"Model in folder '{folder_name}' with filename '{filename}' not found.")
    return full_path


def get_filename_list(folder_name):
    # ComfyUI caches this list by folder modification times; listing afresh is equivalent here.
    folder_name = map_legacy(folder_name)
    paths, extensions = folder_names_and_paths[folder_name]
    out = set()
    for x in paths:
        files, _ = recursive_search(x, excluded_dir_names=[".git"])
        out.update(filter_files_extensions(files, extensions))
    return sorted(out)


def exists_annotated_filepath(name):
    return os.path.exists(os.path.join(input_directory, name))


def get_annotated_filepath(name, default_dir=None):
    return os.path.join(default_dir or input_directory, name)
