"""Diffusion presets: the settings a checkpoint needs that cannot be read off its weights."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from .errors import SettingsError
from .schedule import SPACINGS, ScheduleConfig

TASKS = ("realsr", "bicsr", "inpaint", "faceir")
MAX_SF = 16  # published models are x1 to x4; a larger scale in a file is a broken file
PREDICTIONS = ("xstart", "residual")
# How the chain starts: x_T = z_y + kappa sqrt(eta_T) noise (published, SinSR, RSD), or
# z_y + kappa noise (Distilled-ResShift's students).
PRIORS = ("eta", "kappa")
# What the UNet's LR input is: the LR image itself (published; through its feature extractor),
# the latent z_y, or the bicubic-upsampled LR resized to the latent's size (Distilled-ResShift).
CONDITIONS = ("lr", "latent", "lr_at_latent")
# Whether the UNet takes a standard normal noise map, and where (it must agree with the weights).
NOISE_MAPS = ("none", "concat", "add")
# Every key a published `diffusion.params` may hold (weighted_mse only matters for training).
PUBLISHED_DIFFUSION_KEYS = frozenset(
    {
        "sf",
        "schedule_name",
        "schedule_kwargs",
        "etas_end",
        "steps",
        "min_noise_level",
        "kappa",
        "weighted_mse",
        "predict_type",
        "timestep_respacing",
        "scale_factor",
        "normalize_input",
        "latent_flag",
    }
)


@dataclass(frozen=True)
class DiffusionPreset:
    """How a model samples: scale factor, schedule and input conventions."""

    task: str = "realsr"  # realsr, bicsr, inpaint or faceir
    sf: int = 4  # output size / input size
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    scale_factor: float = 1.0  # latents are multiplied by this after encoding
    normalize_input: bool = True  # divide the network input by sqrt(kappa^2 eta_t + 1)
    latent: bool = True  # the chain runs in a VQGAN latent space (not pixels)
    predict: str = "xstart"  # x0 ("xstart", every published model) or the residual y - x0 ("residual")
    name: str = "custom"
    sample_steps: int = 0  # steps to sample when none are asked for (respaced); 0 = every trained step
    spacing: str = "published"  # which trained steps a shortened chain keeps: "published" or "trailing" (ends at T-1)
    # How a model is sampled beyond its schedule (one-step students differ here; see the tuples above).
    prior: str = "eta"
    condition: str = "lr"
    noise_map: str = "none"
    quantize: bool = True  # the decoder snaps latents to the codebook (published); False: decoded as they are

    def __post_init__(self):
        if self.task not in TASKS:
            raise SettingsError(f"unknown task {self.task!r}; choose one of {', '.join(TASKS)}")
        if self.predict not in PREDICTIONS:
            raise SettingsError(
                f"predict={self.predict!r} is not supported: choose 'xstart' (x0, every published model) or "
                "'residual' (e0 = y - x0, the published code's RESIDUAL mean type)"
            )
        if type(self.sf) is not int or not 1 <= self.sf <= MAX_SF:
            raise SettingsError(f"scale factor sf must be a whole number from 1 to {MAX_SF}, got {self.sf!r}")
        if type(self.scale_factor) not in (int, float) or not 0 < self.scale_factor < float("inf"):
            raise SettingsError(f"scale_factor must be a positive number, got {self.scale_factor!r}")
        for flag in ("normalize_input", "latent", "quantize"):
            if type(getattr(self, flag)) is not bool:
                raise SettingsError(f"{flag} must be true or false, got {getattr(self, flag)!r}")
        if type(self.sample_steps) is not int:
            raise SettingsError(f"sample_steps must be a whole number, got {self.sample_steps!r}")
        if self.spacing not in SPACINGS:
            raise SettingsError(
                f"spacing={self.spacing!r}: choose 'published' (int(T/N*i), as published) or "
                "'trailing' (the same steps shifted to end at the last trained step)"
            )
        for name, value, allowed in (
            ("prior", self.prior, PRIORS),
            ("condition", self.condition, CONDITIONS),
            ("noise_map", self.noise_map, NOISE_MAPS),
        ):
            if value not in allowed:
                raise SettingsError(f"{name}={value!r}: choose one of {', '.join(allowed)}")
        if not 0 <= int(self.sample_steps) <= self.schedule.steps:
            raise SettingsError(f"sample_steps must be 0 (all) to {self.schedule.steps}, got {self.sample_steps}")

    @property
    def steps(self) -> int:
        """The trained chain length (sampling may respace it to fewer)."""
        return self.schedule.steps

    @property
    def one_step(self) -> bool:
        """A student sampled in one network call at t = T-1 by default."""
        return self.default_steps == 1 and self.spacing == "trailing"

    @property
    def default_steps(self) -> int:
        """Steps sampled when the user asks for none."""
        return int(self.sample_steps) or self.schedule.steps

    def to_dict(self) -> dict:
        """Flat, JSON-able; the format of our safetensors metadata and the registry."""
        d = asdict(self)
        d.update(d.pop("schedule"))
        return d

    @classmethod
    def from_dict(cls, d: dict, name: str | None = None) -> DiffusionPreset:
        """From `to_dict`'s flat form (our metadata, the registry); keys we do not know are
        ignored (a newer writer's), wrong types and ranges refused."""
        if not isinstance(d, dict):
            raise SettingsError(f"a preset must be a JSON object of settings, got {type(d).__name__}")
        if "name" in d and not isinstance(d["name"], str):
            raise SettingsError(f"a preset's name must be text, got {d['name']!r}")
        for key in ("task", "predict", "spacing", "prior", "condition", "noise_map", "schedule_name"):
            if key in d and not isinstance(d[key], str):
                raise SettingsError(f"{key} must be text, got {d[key]!r}")
        sched_fields = ScheduleConfig.__dataclass_fields__
        schedule = ScheduleConfig(**{k: d[k] for k in sched_fields if k in d})
        own = {k: d[k] for k in cls.__dataclass_fields__ if k in d and k != "schedule"}
        if name is not None:
            own["name"] = name
        return cls(schedule=schedule, **own)

    @classmethod
    def from_published(
        cls,
        diffusion: dict,
        task: str = "realsr",
        name: str = "custom",
        *,
        sampling: dict | None = None,
        noise_map: str = "none",
    ) -> DiffusionPreset:
        """From the `diffusion.params` of a published yaml (or a reference manifest), every field
        honoured: `timestep_respacing` N samples the chain respaced to N steps as the published
        `space_timesteps` does; `sampling: {one_step: true}` (SinSR, RSD) is one network call at
        t = T-1. `noise_map` says whether the UNet takes a noise map (RSD: "concat")."""
        unknown = sorted(set(diffusion) - PUBLISHED_DIFFUSION_KEYS)
        if unknown:
            raise SettingsError(
                f"unknown published diffusion settings {unknown}; known: {sorted(PUBLISHED_DIFFUSION_KEYS)}"
            )
        if diffusion.get("schedule_name", "exponential") != "exponential":
            raise SettingsError(f"schedule {diffusion['schedule_name']!r} is not supported")
        schedule = ScheduleConfig(
            steps=int(diffusion["steps"]),
            kappa=float(diffusion["kappa"]),
            min_noise_level=float(diffusion["min_noise_level"]),
            etas_end=float(diffusion["etas_end"]),
            power=float((diffusion.get("schedule_kwargs") or {}).get("power", 0.3)),
        )
        respacing = diffusion.get("timestep_respacing")
        sampling = dict(sampling or {})
        unknown_sampling = sorted(set(sampling) - {"one_step", "timestep"})
        if unknown_sampling:
            raise SettingsError(f"unknown sampling settings {unknown_sampling}; known: one_step, timestep")
        one_step = bool(sampling.get("one_step", False))
        if sampling.get("timestep", "T-1") != "T-1":
            raise SettingsError(f"one-step sampling at {sampling['timestep']!r}: only T-1 is known")
        if one_step and respacing is not None:
            raise SettingsError("timestep_respacing and one-step sampling cannot be combined")
        if respacing is not None and (isinstance(respacing, bool) or not isinstance(respacing, int)):
            raise SettingsError(f"timestep_respacing must be a whole number of steps (as published), got {respacing!r}")
        scale = diffusion.get("scale_factor")
        return cls(
            task=task,
            sf=int(diffusion.get("sf", 4)),
            schedule=schedule,
            scale_factor=1.0 if scale is None else float(scale),
            normalize_input=bool(diffusion.get("normalize_input", True)),
            latent=bool(diffusion.get("latent_flag", True)),
            predict=diffusion.get("predict_type", "xstart"),
            name=name,
            sample_steps=1 if one_step else int(respacing or 0),
            spacing="trailing" if one_step else "published",
            noise_map=noise_map,
        )

    def with_overrides(
        self,
        *,
        steps=None,
        kappa=None,
        min_noise_level=None,
        etas_end=None,
        power=None,
        sf=None,
        scale_factor=None,
        task=None,
    ) -> DiffusionPreset:
        """A copy with some settings changed (None keeps the value)."""
        schedule = self.schedule.with_overrides(
            steps=steps, kappa=kappa, min_noise_level=min_noise_level, etas_end=etas_end, power=power
        )
        changes = {k: v for k, v in {"sf": sf, "scale_factor": scale_factor, "task": task}.items() if v is not None}
        changed = schedule != self.schedule or bool(changes)
        name = f"{self.name}+override" if changed and not self.name.endswith("+override") else self.name
        return replace(self, schedule=schedule, name=name, **changes)
