"""Every CUDA code path against the CPU: the Fisher engine, greedy selection, training,
evaluation, the strategies and the runner with ``device="cuda"``.

These tests run whenever CUDA is available (``benchmarks/gpu_check.sh`` runs them on a GPU
machine) and are skipped with a reason otherwise. GPU kernels do not round like CPU ones, so
values are compared with tolerances and selections on problems whose picks are decided by
exact float64 re-scoring (the same on both devices). ``FISHERMASK_TEST_DEVICE=cpu`` runs the
same tests with the CPU standing in for the GPU (a dry run of their logic, no CUDA).
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from fishermask.experiments.config import ExperimentConfig
from fishermask.experiments.runner import Experiment, run_experiment
from fishermask.fisher import bait_embeddings, diag_fisher, greedy_select, masked_grads, random_mask
from fishermask.models import build_model
from fishermask.strategies import k_center_greedy
from fishermask.training import Normalizer, TrainConfig, evaluate, make_augmenter, train

DEVICE = os.environ.get("FISHERMASK_TEST_DEVICE", "cuda")
pytestmark = pytest.mark.skipif(
    DEVICE.startswith("cuda") and not torch.cuda.is_available(), reason="needs a CUDA device"
)


@pytest.fixture
def no_tf32() -> Iterator[None]:
    """TF32 convolutions (cuDNN's default) round to 10 mantissa bits: compare true float32."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def _resnet(dtype: torch.dtype) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("resnet18", 10, (3, 32, 32), 0.125).to(dtype).eval()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_engine_on_cuda_matches_cpu(dtype: torch.dtype, no_tf32: None) -> None:
    model = _resnet(dtype)
    x = torch.randn(6, 3, 32, 32, generator=torch.Generator().manual_seed(1), dtype=dtype)
    mask = random_mask(model, 300, torch.Generator().manual_seed(2), min_per_tensor=1)
    cpu_v, cpu_diag = masked_grads(model, x, mask), diag_fisher(model, x)
    model.to(DEVICE)
    gpu_v = masked_grads(model, x, mask)  # inputs and mask on the CPU: moved chunk by chunk
    gpu_diag = diag_fisher(model, x.to(DEVICE))
    assert gpu_v.device.type == torch.device(DEVICE).type and gpu_v.dtype == dtype
    tol = 1e-9 if dtype == torch.float64 else 1e-3
    scale = cpu_v.abs().max()
    torch.testing.assert_close(gpu_v.cpu() / scale, cpu_v / scale, atol=tol, rtol=0)
    for name, v in cpu_diag.items():
        assert gpu_diag[name].device.type == torch.device(DEVICE).type
        s = v.abs().max().clamp_min(1e-30)
        torch.testing.assert_close(gpu_diag[name].cpu() / s, v / s, atol=tol, rtol=0)


def _bait_problem(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    emb = torch.randn(n + 20, 8, generator=gen).relu()
    probs = torch.softmax(2 * torch.randn(n + 20, 10, generator=gen), 1)
    v = bait_embeddings(emb, probs)  # [n + 20, 10, 80], float32
    return v[:n].contiguous(), v[n:].contiguous()


@pytest.mark.parametrize("back", [0, 1])
@pytest.mark.parametrize("product", [torch.float32, torch.float64])
def test_selection_on_cuda_picks_what_the_cpu_picks(back: int, product: torch.dtype) -> None:
    vu, vl = _bait_problem(300, back)
    cpu = greedy_select(vu, vl, 40, backward_steps=back)
    gpu = greedy_select(
        vu.to(DEVICE), vl.to(DEVICE), 40, backward_steps=back, product_dtype=product
    )
    assert gpu.device.type == torch.device(DEVICE).type
    assert gpu.tolist() == cpu.tolist()


@pytest.mark.parametrize("tf32", [False, True])
def test_k_center_on_cuda_picks_what_the_cpu_picks(tf32: bool) -> None:
    """Products on the device (float64 there when TF32 is on), exact re-checks on the CPU:
    the same positions and distances as the CPU, duplicates and all."""
    g = torch.Generator().manual_seed(0)
    lab = torch.randn(200, 64, generator=g).relu()
    unl = torch.cat([lab[torch.randint(0, 200, (300,), generator=g)], torch.randn(1500, 64)])
    unl = unl.relu()[torch.randperm(1800, generator=g)]
    cpu = k_center_greedy(unl, lab, 400)
    saved = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    try:
        dev = k_center_greedy(unl.to(DEVICE), lab.to(DEVICE), 400)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = saved
    assert dev[0].tolist() == cpu[0].tolist() and dev[1].tolist() == cpu[1].tolist()


def _toy(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    y = torch.arange(n) % 2
    x = torch.randint(0, 60, (n, 1, 8, 8), generator=g, dtype=torch.uint8)
    x[y == 1, :, :4] += 150  # class 1 is bright on top
    return x, y


def test_training_and_evaluation_on_cuda() -> None:
    x, y = _toy(80)
    norm = Normalizer.fit(x[:40])
    cfg = TrainConfig(stop="epochs", epochs=15, augment="crop", batch_size=8)
    torch.manual_seed(0)
    model = build_model("cnn", 2, (1, 8, 8), 0.5).to(DEVICE)
    res = train(
        model,
        x[:40],
        y[:40],
        cfg,
        make_augmenter(cfg, norm, 1),
        generator=torch.Generator().manual_seed(0),
    )
    assert res.epochs == 15 and not model.training
    assert all(p.device.type == torch.device(DEVICE).type for p in model.parameters())
    on_gpu = evaluate(model, x[40:], y[40:], norm)
    on_cpu = evaluate(model.cpu(), x[40:], y[40:], norm)
    assert on_gpu.accuracy > 0.9
    assert abs(on_gpu.accuracy - on_cpu.accuracy) <= 1 / 40  # rounding may flip one image


def test_runner_with_device_cuda_runs_every_fisher_strategy(tmp_path: Path) -> None:
    raw = {
        "data": {"dataset": "digits"},
        "model": {"name": "cnn", "width": 0.25},
        "train": {"max_epochs": 2, "batch_size": 32},
        "loop": {"initial": 20, "query_size": 10, "rounds": 1},
        "strategies": ["random", "entropy", "kcenter", "fishermask:sparsity=0.1", "bait", "badge"],
        "seeds": [0],
        "device": DEVICE,
    }
    exp = Experiment.prepare(ExperimentConfig.from_dict(raw))
    assert exp.device.type == torch.device(DEVICE).type
    run_experiment(exp, tmp_path)
    rows = list(csv.DictReader(open(tmp_path / "results.csv")))
    names = {"random", "entropy", "kcenter", "fishermask", "bait", "badge"}
    assert {r["strategy"] for r in rows} == names
    assert all(0.0 <= float(r["accuracy"]) <= 1.0 for r in rows)
    queries = [json.loads(line) for line in open(tmp_path / "queries.jsonl")]
    assert all(len(q["indices"]) == 10 for q in queries if q["round"] == 1)
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["config"]["device"] == DEVICE


def test_cli_run_with_device_cuda(tmp_path: Path) -> None:
    """``fishermask run --device cuda``: the command line's own CUDA path (one trial at a time
    in this process unless --workers says otherwise) on top of the runner."""
    from typer.testing import CliRunner

    from fishermask.cli import app

    cfg = tmp_path / "exp.yaml"
    cfg.write_text(
        "data: {dataset: digits}\n"
        "model: {name: cnn, width: 0.25}\n"
        "train: {max_epochs: 2, batch_size: 32}\n"
        "loop: {initial: 20, query_size: 10, rounds: 1}\n"
        "strategies: [random, 'fishermask:sparsity=0.1', bait]\n"
        "seeds: [0]\n"
    )
    out = tmp_path / "run"
    argv = ["run", "--config", str(cfg), "--device", DEVICE, "--no-progress", "--out", str(out)]
    if not DEVICE.startswith("cuda"):
        argv += ["--workers", "1"]  # the CPU stand-in would start one process per core
    res = CliRunner().invoke(app, argv)
    assert res.exit_code == 0, res.output
    assert "workers" not in res.output  # on CUDA: one trial at a time, in this process
    assert json.loads((out / "config.json").read_text())["config"]["device"] == DEVICE
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert {r["strategy"] for r in rows} == {"random", "fishermask", "bait"}
    queries = [json.loads(line) for line in open(out / "queries.jsonl")]
    assert all(len(q["indices"]) == 10 for q in queries if q["round"] == 1)
