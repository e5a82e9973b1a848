import math

import pytest
import torch

from interp.core import fourier


@pytest.mark.parametrize("p", [7, 8, 17, 113])
def test_basis_is_orthonormal_with_every_frequency(p):
    basis, names = fourier.fourier_basis(p, torch.float64)
    assert basis.shape == (p, p) and len(names) == p
    torch.testing.assert_close(basis @ basis.T, torch.eye(p, dtype=torch.float64))
    assert names[0] == "Const" and names[1:3] == ["cos 1", "sin 1"]
    assert f"cos {p // 2}" in names  # the top frequency is not dropped
    assert (f"sin {p // 2}" in names) == (p % 2 == 1)  # sin p/2 vanishes for even p


def cosine(p, k, amp, phase):
    x = torch.arange(p, dtype=torch.float64)
    return amp * torch.cos(2 * math.pi * k * x / p + phase)


@pytest.mark.parametrize("p,k", [(17, 3), (113, 56), (16, 5)])
def test_pure_cosine_has_one_frequency_with_its_amplitude_and_phase(p, k):
    x = torch.stack([cosine(p, k, 2.5, 0.7), cosine(p, k, 0.3, -2.9)])
    power = fourier.frequency_power(x)
    assert power.shape == (2, p // 2 + 1)
    torch.testing.assert_close(power.sum(1), (x**2).sum(1))  # Parseval
    assert (power.argmax(1) == k).all()
    torch.testing.assert_close(power[:, k], (x**2).sum(1))
    amp, phase = fourier.amplitude_phase(x, torch.tensor([k, k]))
    torch.testing.assert_close(amp, torch.tensor([2.5, 0.3], dtype=torch.float64))
    torch.testing.assert_close(phase, torch.tensor([0.7, -2.9], dtype=torch.float64))


def test_transform_round_trip_and_2d():
    p, k = 13, 4
    x = torch.randn(5, p, dtype=torch.float64)
    torch.testing.assert_close(fourier.inverse_transform(fourier.transform(x)), x)
    a = torch.arange(p, dtype=torch.float64)
    grid = torch.cos(2 * math.pi * k * (a[:, None] + a[None, :]) / p)  # cos(k(a+b))
    coeffs = fourier.transform_2d(grid)
    _, names = fourier.fourier_basis(p)
    big = {(names[i], names[j]) for i, j in (coeffs.abs() > 1e-9).nonzero().tolist()}
    assert big == {(f"cos {k}", f"cos {k}"), (f"sin {k}", f"sin {k}")}  # cos a cos b − sin a sin b


def test_ipr_extremes():
    p = 17
    assert fourier.ipr(cosine(p, 3, 1.0, 0.2)).item() == pytest.approx(1.0)
    delta = torch.zeros(p, dtype=torch.float64)
    delta[0] = 1  # flat spectrum
    assert fourier.ipr(delta).item() == pytest.approx(1 / (p // 2 + 1))


def test_project_frequencies_keeps_only_the_chosen():
    p = 19
    x = cosine(p, 2, 1.0, 0.3) + cosine(p, 5, 2.0, 1.0) + 0.5
    keep = torch.zeros(p // 2 + 1, dtype=torch.bool)
    keep[5] = True
    torch.testing.assert_close(fourier.project_frequencies(x, keep), cosine(p, 5, 2.0, 1.0))
    per_row = torch.zeros(2, p // 2 + 1, dtype=torch.bool)
    per_row[0, 2], per_row[1, 0] = True, True
    out = fourier.project_frequencies(torch.stack([x, x]), per_row)
    torch.testing.assert_close(out[0], cosine(p, 2, 1.0, 0.3))
    torch.testing.assert_close(out[1], torch.full((p,), 0.5, dtype=torch.float64))


def test_wrap_phase():
    phi = torch.tensor([0.0, math.pi, -math.pi, 3 * math.pi, 7.0, -7.0], dtype=torch.float64)
    wrapped = fourier.wrap_phase(phi)
    assert ((wrapped > -math.pi) & (wrapped <= math.pi)).all()
    torch.testing.assert_close(torch.cos(wrapped), torch.cos(phi))
    torch.testing.assert_close(torch.sin(wrapped), torch.sin(phi))
