import math

import numpy as np
import pytest

from resshift_core.presets import DiffusionPreset
from resshift_core.schedule import ScheduleConfig, exponential_sqrt_etas, make_schedule, respaced_timesteps


def test_endpoints_follow_the_paper():
    cfg = ScheduleConfig(steps=15, kappa=2.0, min_noise_level=0.04, etas_end=0.99, power=0.3)
    sqrt_etas = exponential_sqrt_etas(cfg)
    assert sqrt_etas[0] == pytest.approx(min(0.04 / 2.0, 0.04))
    assert sqrt_etas[-1] == pytest.approx(0.99)
    assert np.all(np.diff(sqrt_etas) > 0)


def test_posterior_is_consistent_with_forward_process():
    sched = make_schedule(ScheduleConfig(steps=4))
    # alpha_t = eta_t - eta_{t-1}; c1 + c2 = 1 (the posterior mean interpolates x_t and x0)
    np.testing.assert_allclose(sched.posterior_mean_coef1 + sched.posterior_mean_coef2, 1.0)
    assert sched.posterior_variance[0] == 0.0
    assert math.isfinite(sched.posterior_log_variance_clipped[0])


def test_respacing_keeps_the_published_timesteps():
    assert respaced_timesteps(15, 15) == list(range(15))
    assert respaced_timesteps(15, 4) == [0, 3, 7, 11]
    full = make_schedule(ScheduleConfig(steps=15, min_noise_level=0.04))
    spaced = make_schedule(ScheduleConfig(steps=15, min_noise_level=0.04), sample_steps=4)
    assert spaced.timesteps == (0, 3, 7, 11)
    np.testing.assert_array_equal(spaced.sqrt_etas, full.sqrt_etas[[0, 3, 7, 11]])
    with pytest.raises(ValueError, match="between 1 and the 15"):
        make_schedule(ScheduleConfig(steps=15), sample_steps=16)


def test_trailing_spacing_ends_at_the_last_trained_step():
    """Ours (opt-in per preset): the published spacing shifted so a short chain starts at t = T-1."""
    assert respaced_timesteps(4, 1) == [0]  # published: one step is t = 0 alone
    assert respaced_timesteps(4, 1, "trailing") == [3]
    assert respaced_timesteps(4, 2, "trailing") == [1, 3]
    assert respaced_timesteps(15, 4, "trailing") == [3, 7, 11, 14]
    assert respaced_timesteps(15, 15, "trailing") == list(range(15))
    sched = make_schedule(ScheduleConfig(steps=4, kappa=0.5), sample_steps=1, spacing="trailing")
    full = make_schedule(ScheduleConfig(steps=4, kappa=0.5))
    assert sched.timesteps == (3,) and sched.sqrt_etas[0] == full.sqrt_etas[-1]
    # The single step starts from the full prior and returns the network's x0 (no noise added).
    assert sched.posterior_mean_coef1[0] == 0.0 and sched.posterior_mean_coef2[0] == 1.0
    with pytest.raises(ValueError, match="unknown timestep spacing 'even'"):
        respaced_timesteps(4, 2, "even")


def test_bad_settings_are_refused_with_reason():
    with pytest.raises(ValueError, match="from 2 to 1000"):
        ScheduleConfig(steps=1)
    with pytest.raises(ValueError, match="kappa"):
        ScheduleConfig(kappa=0)
    with pytest.raises(ValueError, match="only 'exponential'"):
        ScheduleConfig(schedule_name="ldm")


def test_preset_round_trips_and_overrides():
    p = DiffusionPreset.from_published(
        {
            "sf": 4,
            "schedule_name": "exponential",
            "schedule_kwargs": {"power": 0.3},
            "etas_end": 0.99,
            "steps": 15,
            "min_noise_level": 0.04,
            "kappa": 2.0,
            "predict_type": "xstart",
            "scale_factor": 1.0,
            "normalize_input": True,
            "latent_flag": True,
        },
        name="x",
    )
    assert DiffusionPreset.from_dict(p.to_dict()) == p
    q = p.with_overrides(kappa=1.0)
    assert q.schedule.kappa == 1.0 and q.schedule.steps == 15 and q.name == "x+override"
    assert p.with_overrides() == p
    with pytest.raises(ValueError, match="x0"):
        DiffusionPreset(predict="epsilon")


PUBLISHED_V1 = {
    "sf": 4,
    "schedule_name": "exponential",
    "schedule_kwargs": {"power": 0.3},
    "etas_end": 0.99,
    "steps": 15,
    "min_noise_level": 0.04,
    "kappa": 2.0,
    "weighted_mse": False,
    "predict_type": "xstart",
    "timestep_respacing": None,
    "scale_factor": 1.0,
    "normalize_input": True,
    "latent_flag": True,
}


def test_published_respacing_runs_the_respaced_chain():
    p = DiffusionPreset.from_published({**PUBLISHED_V1, "timestep_respacing": 5})
    assert (p.default_steps, p.spacing) == (5, "published")
    # the published space_timesteps: int(15 / 5 * i)
    assert make_schedule(p.schedule, p.default_steps, p.spacing).timesteps == (0, 3, 6, 9, 12)
    assert DiffusionPreset.from_published(PUBLISHED_V1).default_steps == 15


def test_one_step_sampling_is_one_call_at_the_last_trained_step():
    p = DiffusionPreset.from_published(PUBLISHED_V1, sampling={"one_step": True}, noise_map="concat")
    assert p.one_step and p.noise_map == "concat"
    assert make_schedule(p.schedule, p.default_steps, p.spacing).timesteps == (14,)


def test_published_diffusion_settings_are_all_honoured_or_refused():
    with pytest.raises(ValueError, match="unknown published diffusion settings"):
        DiffusionPreset.from_published({**PUBLISHED_V1, "new_knob": 1})
    with pytest.raises(ValueError, match="whole number of steps"):
        DiffusionPreset.from_published({**PUBLISHED_V1, "timestep_respacing": "ddim5"})
    with pytest.raises(ValueError, match="cannot be combined"):
        DiffusionPreset.from_published({**PUBLISHED_V1, "timestep_respacing": 5}, sampling={"one_step": True})
    with pytest.raises(ValueError, match="unknown sampling settings"):
        DiffusionPreset.from_published(PUBLISHED_V1, sampling={"two_step": True})
    with pytest.raises(ValueError, match="prior="):
        DiffusionPreset(prior="zero")


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"steps": 10**9}, "steps must be a whole number from 2 to 1000"),
        ({"steps": 4.0}, "whole number"),
        ({"steps": True}, "whole number"),
        ({"kappa": float("nan")}, "kappa must be a number"),
        ({"kappa": 1e9}, "at most 100"),
        ({"power": "0.3"}, "power must be a number"),
    ],
)
def test_absurd_schedule_values_are_refused_before_anything_is_allocated(changes, words):
    from resshift_core.errors import SettingsError

    with pytest.raises(SettingsError, match=words):
        ScheduleConfig(**changes)


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"sf": 4096}, "from 1 to 16"),
        ({"sf": 4.0}, "whole number"),
        ({"scale_factor": -1.0}, "positive"),
        ({"latent": "yes"}, "true or false"),
        ({"sample_steps": 2.5}, "whole number"),
        ({"task": "magic"}, "unknown task"),
    ],
)
def test_absurd_preset_values_are_refused(changes, words):
    from resshift_core.errors import ResShiftError

    with pytest.raises(ResShiftError, match=words):
        DiffusionPreset.from_dict({**DiffusionPreset().to_dict(), **changes})
