"""Diffusion presets: the settings a checkpoint needs that cannot be read off its weights."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from .schedule import SPACINGS, ScheduleConfig

TASKS = ("realsr", "bicsr", "inpaint", "faceir")
PREDICTIONS = ("xstart", "residual")


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

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r}; choose one of {', '.join(TASKS)}")
        if self.predict not in PREDICTIONS:
            raise ValueError(
                f"predict={self.predict!r} is not supported: choose 'xstart' (x0, every published model) or "
                "'residual' (e0 = y - x0, the published code's RESIDUAL mean type)"
            )
        if int(self.sf) < 1:
            raise ValueError(f"scale factor sf must be >= 1, got {self.sf}")
        if self.spacing not in SPACINGS:
            raise ValueError(
                f"spacing={self.spacing!r}: choose 'published' (int(T/N*i), as published) or "
                "'trailing' (the same steps shifted to end at the last trained step)"
            )
        if not 0 <= int(self.sample_steps) <= self.schedule.steps:
            raise ValueError(f"sample_steps must be 0 (all) to {self.schedule.steps}, got {self.sample_steps}")

    @property
    def steps(self) -> int:
        """The trained chain length (sampling may respace it to fewer)."""
        return self.schedule.steps

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
        sched_fields = ScheduleConfig.__dataclass_fields__
        schedule = ScheduleConfig(**{k: d[k] for k in sched_fields if k in d})
        own = {k: d[k] for k in cls.__dataclass_fields__ if k in d and k != "schedule"}
        if name is not None:
            own["name"] = name
        return cls(schedule=schedule, **own)

    @classmethod
    def from_published(cls, diffusion: dict, task: str = "realsr", name: str = "custom") -> DiffusionPreset:
        """From the `diffusion.params` of a published yaml (or a reference manifest)."""
        if diffusion.get("schedule_name", "exponential") != "exponential":
            raise ValueError(f"schedule {diffusion['schedule_name']!r} is not supported")
        schedule = ScheduleConfig(
            steps=int(diffusion["steps"]),
            kappa=float(diffusion["kappa"]),
            min_noise_level=float(diffusion["min_noise_level"]),
            etas_end=float(diffusion["etas_end"]),
            power=float((diffusion.get("schedule_kwargs") or {}).get("power", 0.3)),
        )
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
