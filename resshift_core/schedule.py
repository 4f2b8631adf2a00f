"""The residual-shifting schedule of ResShift (Yue et al., NeurIPS 2023, Eq. 9-10).

eta_t grows from eta_1 ~ min_noise_level^2 / kappa^2 (nearly the HR image) to eta_T = etas_end
(nearly the LR image), along sqrt(eta_t) = sqrt(eta_1) * b_0^(beta_t) with
beta_t = ((t-1)/(T-1))^p * (T-1) and b_0 = exp(log(sqrt(eta_T)/sqrt(eta_1)) / (T-1)).

Everything here is float64 numpy maths on small 1-D arrays: the exact numbers are what the
published models were trained with, so they are computed the way the published code does.
Index 0 is t = 0, the step closest to the HR image.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import numpy as np

from .errors import SettingsError

MAX_STEPS = 1000  # no published chain is longer than 15; anything far beyond is a broken file
MAX_KAPPA = 100.0
MAX_POWER = 10.0


def _is_number(value: object) -> bool:
    return type(value) in (int, float) and math.isfinite(value)  # type: ignore[arg-type]


@dataclass(frozen=True)
class ScheduleConfig:
    """The diffusion settings that cannot be read off a checkpoint."""

    steps: int = 4  # T: steps of the chain the model was trained with
    kappa: float = 2.0  # noise variance scale: q(x_t|x_0,y_0) = N(x_0 + eta_t e_0, kappa^2 eta_t I)
    min_noise_level: float = 0.2  # sets eta_1 = min(min_noise_level / kappa, min_noise_level)^2
    etas_end: float = 0.99  # sqrt(eta_T); the published code names this etas_end
    power: float = 0.3  # p, the exponent that shapes how fast eta grows
    schedule_name: str = "exponential"  # the only schedule the published models use

    def __post_init__(self):
        if self.schedule_name != "exponential":
            raise SettingsError(
                f"unknown schedule {self.schedule_name!r}: only 'exponential' is implemented "
                "(the published 'ldm' schedule reads a .mat file no released model uses)"
            )
        if type(self.steps) is not int or not 2 <= self.steps <= MAX_STEPS:
            raise SettingsError(f"steps must be a whole number from 2 to {MAX_STEPS}, got {self.steps!r}")
        for name, value, low, high in (
            ("kappa", self.kappa, 0.0, MAX_KAPPA),
            ("min_noise_level", self.min_noise_level, 0.0, 1.0),
            ("etas_end", self.etas_end, 0.0, 1.0),
            ("power", self.power, 0.0, MAX_POWER),
        ):
            if not _is_number(value) or not low < value <= high:
                raise SettingsError(f"{name} must be a number above {low:g} and at most {high:g}, got {value!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    def with_overrides(self, **changes) -> ScheduleConfig:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


def exponential_sqrt_etas(config: ScheduleConfig) -> np.ndarray:
    """sqrt(eta_t) for t = 0..T-1 (float64), as the published get_named_eta_schedule."""
    steps = int(config.steps)
    etas_start = min(config.min_noise_level / config.kappa, config.min_noise_level)
    growth = math.exp(math.log(config.etas_end / etas_start) / (steps - 1))
    exponent = np.linspace(0, 1, steps, endpoint=True) ** config.power * (steps - 1)
    return np.power(np.full(steps, growth), exponent) * etas_start


SPACINGS = ("published", "trailing")


def respaced_timesteps(num_timesteps: int, sample_steps: int, spacing: str = "published") -> list[int]:
    """The trained timesteps kept when sampling with fewer steps.

    "published" is the published space_timesteps: int(T / N * i), which starts at t = 0 and never
    keeps the last trained step, so a shortened chain starts below the prior the model was
    trained on (one step keeps only t = 0, where the network takes its input for a nearly clean
    image). "trailing" is the same spacing shifted to end at t = T - 1 (Lin et al. 2024,
    "Common diffusion noise schedules and sample steps are flawed"): one step is the network's
    x0 estimate from the LR image at the prior's full noise.
    """
    if not 1 <= sample_steps <= num_timesteps:
        raise ValueError(
            f"steps must be between 1 and the {num_timesteps} steps the model was trained with, got {sample_steps}"
        )
    if spacing not in SPACINGS:
        raise ValueError(f"unknown timestep spacing {spacing!r}; choose one of {', '.join(SPACINGS)}")
    leading = [int((num_timesteps / sample_steps) * i) for i in range(sample_steps)]
    if spacing == "trailing":
        return sorted({num_timesteps - 1 - t for t in leading})
    return sorted(set(leading))


@dataclass(frozen=True)
class Schedule:
    """Every per-step coefficient of the chain, float64, index 0 = t = 0.

    `timesteps[i]` is the trained timestep the network sees at chain index i (identity unless
    the chain was respaced to fewer steps).
    """

    kappa: float
    sqrt_etas: np.ndarray
    timesteps: tuple[int, ...]

    @property
    def num_steps(self) -> int:
        return int(self.sqrt_etas.shape[0])

    @property
    def etas(self) -> np.ndarray:
        return self.sqrt_etas**2

    @property
    def etas_prev(self) -> np.ndarray:
        return np.append(0.0, self.etas[:-1])

    @property
    def alpha(self) -> np.ndarray:
        return self.etas - self.etas_prev

    @property
    def posterior_variance(self) -> np.ndarray:
        return self.kappa**2 * self.etas_prev / self.etas * self.alpha

    @property
    def posterior_log_variance_clipped(self) -> np.ndarray:
        # The variance is 0 at t = 0; the published code clips the log by repeating t = 1.
        var = self.posterior_variance
        return np.log(np.append(var[1], var[1:]))

    @property
    def posterior_mean_coef1(self) -> np.ndarray:
        return self.etas_prev / self.etas

    @property
    def posterior_mean_coef2(self) -> np.ndarray:
        return self.alpha / self.etas

    def input_scale(self, index: int, latent: bool = True) -> float:
        """The factor the published `_scale_input` divides the network input by."""
        if latent:
            return math.sqrt(self.etas[index] * self.kappa**2 + 1)
        return self.sqrt_etas[index] * self.kappa * 3 + 1

    def as_dict(self) -> dict[str, np.ndarray]:
        """All coefficients by their published names (for tests and inspection)."""
        names = (
            "sqrt_etas",
            "etas",
            "etas_prev",
            "alpha",
            "posterior_variance",
            "posterior_log_variance_clipped",
            "posterior_mean_coef1",
            "posterior_mean_coef2",
        )
        return {name: getattr(self, name) for name in names}


def make_schedule(config: ScheduleConfig, sample_steps: int | None = None, spacing: str = "published") -> Schedule:
    """The schedule for sampling with `sample_steps` (default: all trained steps)."""
    sqrt_etas = exponential_sqrt_etas(config)
    if not ((sqrt_etas > 0).all() and (sqrt_etas <= 1).all()):
        raise ValueError(f"schedule {config} gives etas outside (0, 1]")
    keep = respaced_timesteps(config.steps, sample_steps or config.steps, spacing)
    return Schedule(kappa=float(config.kappa), sqrt_etas=sqrt_etas[keep], timesteps=tuple(keep))
