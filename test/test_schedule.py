"""The shared noise schedule: closed forms, DDPM/DDIM identities, and torch == numpy."""

import json

import numpy as np
import pytest

from tinyldm_ros import schedule as S

SCHEDULES = [
    S.ScheduleConfig(),
    S.ScheduleConfig(beta_schedule="linear", beta_start=1e-4, beta_end=0.02),
    S.ScheduleConfig(beta_schedule="cosine"),
]


@pytest.mark.parametrize("cfg", SCHEDULES, ids=lambda c: c.beta_schedule)
def test_alphas_cumprod_is_a_decreasing_probability(cfg):
    betas = S.make_betas(cfg)
    acp = S.alphas_cumprod(betas)
    assert betas.shape == acp.shape == (cfg.num_timesteps,)
    assert np.all((betas > 0) & (betas < 1))
    assert np.all(np.diff(acp) < 0)
    assert 0.0 < acp[-1] < acp[0] < 1.0


def test_scaled_linear_matches_ldm_endpoints():
    betas = S.make_betas(S.ScheduleConfig())
    assert betas[0] == pytest.approx(0.00085)
    assert betas[-1] == pytest.approx(0.012)
    # squares of a linspace: the square roots are evenly spaced
    assert np.allclose(np.diff(np.sqrt(betas)), np.diff(np.sqrt(betas))[0])


def test_cosine_alphas_cumprod_follows_cos_squared():
    cfg = S.ScheduleConfig(beta_schedule="cosine")
    acp = S.alphas_cumprod(S.make_betas(cfg))
    t = np.arange(1, cfg.num_timesteps + 1) / cfg.num_timesteps
    f = np.cos((t + cfg.cosine_s) / (1 + cfg.cosine_s) * np.pi / 2) ** 2
    f0 = np.cos(cfg.cosine_s / (1 + cfg.cosine_s) * np.pi / 2) ** 2
    # identical until the 0.999 beta clip bites at the very end
    np.testing.assert_allclose(acp[:-5], (f / f0)[:-5], rtol=1e-9)


@pytest.mark.parametrize("t", [0, 100, 500, 999])
def test_q_sample_moments_match_closed_form(t):
    acp = S.NoiseSchedule().alphas_cumprod
    rng = np.random.default_rng(0)
    x0 = np.array([-1.0, 0.0, 0.5, 2.0])
    noise = rng.standard_normal((200_000, 4))
    x_t = S.add_noise(x0, noise, float(acp[t]))
    # standard errors at 2e5 samples are ~2e-3 (mean) and ~3e-3 (variance)
    np.testing.assert_allclose(x_t.mean(0), np.sqrt(acp[t]) * x0, atol=1e-2)
    np.testing.assert_allclose(x_t.var(0), np.full(4, 1 - acp[t]), rtol=2e-2)


def test_predict_x0_and_predict_eps_invert_add_noise():
    acp_t = 0.3
    rng = np.random.default_rng(1)
    x0, eps = rng.standard_normal((2, 8))
    x_t = S.add_noise(x0, eps, acp_t)
    np.testing.assert_allclose(S.predict_x0(x_t, eps, acp_t), x0, atol=1e-12)
    np.testing.assert_allclose(S.predict_eps(x_t, x0, acp_t), eps, atol=1e-12)


@pytest.mark.parametrize("steps", [1000, 50])
def test_ddim_eta1_is_the_ddpm_posterior(steps):
    """DDIM's eta = 1 step has exactly the DDPM posterior mean and variance (strided or not)."""
    sched = S.NoiseSchedule()
    rng = np.random.default_rng(2)
    ts = sched.timesteps(steps)
    for t, prev in zip(ts, S.previous_timesteps(ts), strict=True):
        a_t, a_prev = sched.alpha_bar(int(t)), sched.alpha_bar(int(prev))
        x_t, eps = rng.standard_normal((2, 16))
        mean, var = S.posterior_mean_variance(S.predict_x0(x_t, eps, a_t), x_t, a_t, a_prev)
        np.testing.assert_allclose(S.ddim_step(x_t, eps, a_t, a_prev, eta=1.0), mean, atol=1e-9)
        assert S.ddim_sigma(a_t, a_prev, 1.0) ** 2 == pytest.approx(var, rel=1e-9, abs=1e-15)
        np.testing.assert_allclose(S.ddpm_step(x_t, eps, a_t, a_prev), mean, atol=1e-12)


@pytest.mark.parametrize("sampler", ["ddim", "ddpm"])
@pytest.mark.parametrize("steps", [1000, 50, 5, 1])
def test_exact_noise_oracle_recovers_the_data_point(sampler, steps):
    """For a point-mass data distribution the ideal epsilon is known; both samplers must land on x0."""
    sched = S.NoiseSchedule()
    rng = np.random.default_rng(4)
    x0 = rng.standard_normal(16)
    x = rng.standard_normal(16)
    ts = sched.timesteps(steps)
    assert ts[0] == sched.num_timesteps - 1
    for t, prev in zip(ts, S.previous_timesteps(ts), strict=True):
        a_t, a_prev = sched.alpha_bar(int(t)), sched.alpha_bar(int(prev))
        eps = S.predict_eps(x, x0, a_t)
        noise = rng.standard_normal(16)
        x = S.ddim_step(x, eps, a_t, a_prev) if sampler == "ddim" else S.ddpm_step(x, eps, a_t, a_prev, noise)
    np.testing.assert_allclose(x, x0, atol=1e-8)


def test_ddim_timesteps_endpoints_and_order():
    T = 1000
    np.testing.assert_array_equal(S.ddim_timesteps(T, T), np.arange(T - 1, -1, -1))
    np.testing.assert_array_equal(S.ddim_timesteps(T, T, "leading"), np.arange(T - 1, -1, -1))
    np.testing.assert_array_equal(S.ddim_timesteps(T, 5), [999, 799, 599, 399, 199])
    np.testing.assert_array_equal(S.ddim_timesteps(T, 5, "leading"), [800, 600, 400, 200, 0])
    for steps in (1, 3, 7, 10, 20, 50, 333):
        ts = S.ddim_timesteps(T, steps)
        assert ts.dtype == np.int64 and len(ts) == steps and ts[0] == T - 1
        assert np.all(np.diff(ts) < 0) and ts[-1] >= 0
    np.testing.assert_array_equal(S.previous_timesteps(np.array([9, 4])), [4, -1])


@pytest.mark.parametrize("steps", [0, 1001])
def test_ddim_timesteps_rejects_bad_step_counts(steps):
    with pytest.raises(ValueError, match="steps must be in"):
        S.ddim_timesteps(1000, steps)


def test_classifier_free_guidance():
    cond, uncond = np.array([1.0, 2.0]), np.array([0.5, -1.0])
    np.testing.assert_array_equal(S.classifier_free_guidance(uncond, cond, 1.0), cond)
    np.testing.assert_array_equal(S.classifier_free_guidance(uncond, cond, 0.0), uncond)
    np.testing.assert_allclose(S.classifier_free_guidance(uncond, cond, 3.0), [2.0, 8.0])


def test_schedule_config_round_trips_through_json():
    cfg = S.ScheduleConfig(beta_schedule="cosine", num_timesteps=500)
    again = S.ScheduleConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg
    with pytest.raises(ValueError, match="unknown schedule keys"):
        S.ScheduleConfig.from_dict({**cfg.to_dict(), "betas_typo": 1})
    with pytest.raises(ValueError, match="beta_schedule"):
        S.ScheduleConfig(beta_schedule="quadratic")


def test_float32_samples_stay_float32():
    sched = S.NoiseSchedule()
    x = np.zeros(4, np.float32)
    out = S.ddim_step(x, x, sched.alpha_bar(10), sched.alpha_bar(5))
    assert out.dtype == np.float32


# --- torch samplers mirror the numpy maths ------------------------------------------------------------


@pytest.mark.parametrize("name", ["ddpm", "ddim"])
@pytest.mark.parametrize("steps", [1000, 10])
def test_torch_schedulers_agree_with_numpy(name, steps):
    torch = pytest.importorskip("torch")
    from training.sampler import make_scheduler

    torch.set_num_threads(1)  # tiny tensors; see test_models.py
    sched = S.NoiseSchedule()
    scheduler = make_scheduler(name)
    scheduler.set_timesteps(steps)
    np.testing.assert_array_equal(scheduler.timesteps.numpy(), sched.timesteps(steps))
    gen = torch.Generator().manual_seed(0)
    rng = np.random.default_rng(5)
    x_np = rng.standard_normal((2, 1, 4, 4)).astype(np.float32)
    x_t = torch.from_numpy(x_np.copy())
    ts = sched.timesteps(steps)
    for t, prev in zip(ts, S.previous_timesteps(ts), strict=True):
        eps_np = rng.standard_normal(x_np.shape).astype(np.float32)
        noise_gen = torch.Generator().manual_seed(int(t))
        noise = torch.randn(x_np.shape, generator=noise_gen).numpy()
        x_t = scheduler.step(torch.from_numpy(eps_np), int(t), x_t, generator=noise_gen.manual_seed(int(t)))
        a_t, a_prev = sched.alpha_bar(int(t)), sched.alpha_bar(int(prev))
        if name == "ddpm":
            x_np = S.ddpm_step(x_np, eps_np, a_t, a_prev, noise if prev >= 0 else None)
        else:
            x_np = S.ddim_step(x_np, eps_np, a_t, a_prev)
        assert x_t.dtype == torch.float32
        np.testing.assert_allclose(x_t.numpy(), x_np, atol=1e-6, rtol=1e-6)
    x0 = torch.randn(4, 1, 4, 4, generator=gen)
    n = torch.randn(4, 1, 4, 4, generator=gen)
    t = torch.tensor([0, 10, 500, 999])
    acp = sched.alphas_cumprod[t.numpy()].reshape(-1, 1, 1, 1)
    expected = np.sqrt(acp) * x0.double().numpy() + np.sqrt(1 - acp) * n.double().numpy()
    np.testing.assert_allclose(scheduler.add_noise(x0, n, t).numpy(), expected, atol=1e-6)
