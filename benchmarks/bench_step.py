"""Benchmark 1: one training step of our loop against fastMRI's own Lightning training path.

Ours is the step of ``erase.runs.engine.run_loop``, ``engine.train_step`` itself (a batch of
the profile's size collated and moved by Fabric, the Retrain row's terms, backward, the
profile's gradient clip, Adam), checked against ``run_loop``. Theirs is
``fastmri.pl_modules.VarNetModule`` driven the way fastMRI trains it: a
``pytorch_lightning.Trainer`` on a DataLoader (the same batch size, Adam through the module's own
``configure_optimizers``, the same gradient clip, no logger, no checkpoints, no progress bar,
no validation). A third row drives ``VarNetModule.training_step`` by hand with a plain Adam
loop: the model and loss alone, without either framework's overhead.

Both networks are the same size (the profile's ``ModelConfig``), start from the same seed and
train on the same samples of the profile's synthetic retain set, on the same device. The
variants run interleaved, in rounds, so that load from other work on the machine falls on all
of them alike; figures are medians over steps after a warm-up.

Also here: 1 vs 2 threads, two processes with one thread each (``erase.runs.lab.run_many``),
changes to the step measured against it (``PROPOSALS``), ``torch.compile`` on CPU (compile
time, steady step time, whether it pays off in a run) and the paper's shape (``paper_shape``).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_common import REPO, Stopwatch, bench_lab, loadavg, median, quiet, table, time_steps

# ------------------------------------------------------------------ the three training paths


def batch_indices(i: int, size: int, n: int) -> list[int]:
    """The samples of step ``i`` at ``size`` a batch: consecutive, wrapping around."""
    return [(i * size + j) % n for j in range(size)]


def our_step(profile, dataset, device="cpu", precision="32-true", compile_mode=None,
             channels_last=False, seed=0, adam=None, unet_fix=False, batch=None,
             pooled_ssim=False):
    """``step(i)``: one step of run_loop's inner body on batch ``i`` of ``dataset`` (the
    profile's batch size unless ``batch``).

    The optimizer is run_loop's own (``erase.runs.engine.make_optimizer``: fused Adam). Variants,
    measured as alternatives: ``adam`` ("forloop": torch's default on CPU, what engine 1 used;
    "foreach") and ``unet_fix`` (fastMRI's U-Net without its tensor-valued padding test, see
    ``fixed_unet_forward``).
    """
    import torch
    from torch.utils.data import default_collate

    from erase.runs.engine import Loop, Parts, make_fabric, make_optimizer, train_step
    from erase.runs.methods import ReconstructionLoss, get_method
    from erase.runs.models import build_model

    fabric = make_fabric(device, precision)
    torch.manual_seed(seed)
    model = build_model(profile.model)
    if unet_fix or (compile_mode or "").endswith("+unetfix"):
        patch_unets(model)
        compile_mode = (compile_mode or "").replace("+unetfix", "") or None
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    model = compile_model(model, compile_mode)
    if adam is None:
        optimizer = make_optimizer(model, profile.train)
    else:
        options = {"forloop": {"foreach": False}, "foreach": {"foreach": True}}[adam]
        optimizer = torch.optim.Adam(model.parameters(), lr=profile.train.lr, **options)
    model, optimizer = fabric.setup(model, optimizer)
    loss_fn = ReconstructionLoss(profile.train.loss, profile.train.l1_weight).to(fabric.device)
    if pooled_ssim:
        loss_fn = PooledSSIMLoss(profile.train.loss, profile.train.l1_weight)
    row = get_method("Retrain")
    noise = torch.Generator().manual_seed(seed)
    n, size = len(dataset), batch or profile.train.batch_size

    loop = Loop(method=row, forget=None, retain=dataset, epochs=1, train=profile.train, seed=seed,
                checkpoint=None)

    def step(i):
        retain = fabric.to_device(default_collate([dataset[j] for j in batch_indices(i, size, n)]))
        loss = train_step(loop, model, optimizer, loss_fn, fabric, Parts(), None, retain,
                          generator=noise)
        return float(loss.detach())  # run_loop reads the loss every step too

    return step


def _pooled_ssim_loss_class():
    import torch
    import torch.nn.functional as F

    from erase.runs.methods import ReconstructionLoss

    class PooledSSIMLoss(ReconstructionLoss):
        """J with fastMRI's SSIM (7 x 7 uniform window, k1 0.01, k2 0.03, sample covariance)
        computed by one average pooling of [X, Y, XX, YY, XY] instead of five 1-channel
        convolutions, whose backward oneDNN runs slowly on a CPU. The same function; the sums
        are ordered differently, so the numbers differ in the last bits."""

        def ssim_loss(self, output, target, max_value):
            x, y = output.unsqueeze(1), target.unsqueeze(1)
            win, k1, k2 = self.ssim.win_size, self.ssim.k1, self.ssim.k2
            data_range = max_value[:, None, None, None]
            c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
            means = F.avg_pool2d(torch.cat([x, y, x * x, y * y, x * y], 1), win, stride=1)
            ux, uy, uxx, uyy, uxy = means.split(1, 1)
            norm = self.ssim.cov_norm
            vx, vy, vxy = norm * (uxx - ux * ux), norm * (uyy - uy * uy), norm * (uxy - ux * uy)
            s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux ** 2 + uy ** 2 + c1) * (vx + vy + c2))
            return 1 - s.mean(dim=(1, 2, 3))

    return PooledSSIMLoss


def PooledSSIMLoss(*args):  # noqa: N802 - a class, made on first use (torch imported late)
    return _pooled_ssim_loss_class()(*args)


def fixed_unet_forward(self, image):
    """fastmri.models.Unet.forward with ``if any(padding)`` in place of
    ``if torch.sum(torch.tensor(padding)) != 0``: the same arithmetic, but no tensor is made
    and read back per up-sampling level, and torch.compile sees no data-dependent branch (the
    original breaks the graph at every level and recompiles until Dynamo gives up)."""
    import torch
    import torch.nn.functional as F
    stack, output = [], image
    for layer in self.down_sample_layers:
        output = layer(output)
        stack.append(output)
        output = F.avg_pool2d(output, kernel_size=2, stride=2, padding=0)
    output = self.conv(output)
    for transpose_conv, conv in zip(self.up_transpose_conv, self.up_conv):
        downsample_layer = stack.pop()
        output = transpose_conv(output)
        padding = [0, 0, 0, 0]
        if output.shape[-1] != downsample_layer.shape[-1]:
            padding[1] = 1
        if output.shape[-2] != downsample_layer.shape[-2]:
            padding[3] = 1
        if any(padding):
            output = F.pad(output, padding, "reflect")
        output = conv(torch.cat([output, downsample_layer], dim=1))
    return output


def patch_unets(model):
    """Give every fastMRI U-Net in ``model`` the fixed forward (this instance only)."""
    import types

    from fastmri.models import Unet
    for module in model.modules():
        if isinstance(module, Unet):
            module.forward = types.MethodType(fixed_unet_forward, module)
    return model


def compile_model(model, mode):
    """``None``; ``"full"``: the whole VarNet; ``"regularizers"``: each cascade's U-Net and the
    sensitivity U-Net (the convolutions), leaving the data-dependent mask and FFT code eager."""
    import torch
    if mode in (None, "none"):
        return model
    if mode == "full":
        return torch.compile(model, dynamic=False)
    if mode == "regularizers":
        if hasattr(model, "cascades"):
            for cascade in model.cascades:
                cascade.model = torch.compile(cascade.model, dynamic=False)
            model.sens_net.norm_unet = torch.compile(model.sens_net.norm_unet, dynamic=False)
            return model
        return torch.compile(model, dynamic=False)
    raise ValueError(f"unknown compile mode {mode!r}: none, full or regularizers")


def fastmri_module(profile, seed=0):
    """fastMRI's own VarNetModule at the profile's size, lr 1e-3 (the paper's)."""
    import torch
    from fastmri.pl_modules import VarNetModule

    class FastmriVarNet(VarNetModule):
        # fastmri 0.3.0's MriModule still defines the pre-2.0 epoch-end hooks, which
        # pytorch-lightning 2.x refuses to run with; training_step is untouched.
        validation_epoch_end = None
        test_epoch_end = None

    torch.manual_seed(seed)
    m = profile.model
    return FastmriVarNet(num_cascades=m.cascades, pools=m.pools, chans=m.chans,
                         sens_pools=m.sens_pools, sens_chans=m.sens_chans, lr=profile.train.lr)


def fastmri_collate(samples):
    """default_collate, with the batch's one number of centre lines as a plain int: fastMRI's
    VarNet takes a single number for a batch (its training scripts use batch 1), and every
    slice here has the same."""
    from torch.utils.data import default_collate

    batch = default_collate(samples)
    low = batch.num_low_frequencies
    return batch._replace(num_low_frequencies=int(low.reshape(-1)[0]))


def fastmri_manual_step(profile, dataset, device="cpu", seed=0, batch=None):
    """``VarNetModule.training_step`` in a plain loop: backward, clip, Adam."""
    import torch

    module = fastmri_module(profile, seed).to(device)
    optimizer = torch.optim.Adam(module.parameters(), lr=profile.train.lr)
    n, size = len(dataset), batch or profile.train.batch_size

    def to(batch):
        return batch._replace(**{k: v.to(device) for k, v in batch._asdict().items()
                                 if isinstance(v, torch.Tensor)})

    def step(i):
        samples = to(fastmri_collate([dataset[j] for j in batch_indices(i, size, n)]))
        loss = module.training_step(samples, i)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(module.parameters(), profile.train.grad_clip)
        optimizer.step()
        return float(loss.detach())

    return step


def fastmri_lightning_times(profile, dataset, steps, device="cpu", precision="32-true",
                            seed=0, warmup=0, budget_s=None, batch=None) -> list[float]:
    """Seconds between consecutive ends of training batches under ``pl.Trainer.fit``, after
    ``warmup`` batches; stops after ``budget_s`` seconds of timed steps (at least 3)."""
    import pytorch_lightning as pl
    from torch.utils.data import DataLoader

    class Clock(pl.Callback):
        def __init__(self):
            self.ends = []

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if device == "cuda":
                import torch
                torch.cuda.synchronize()
            self.ends.append(time.perf_counter())
            timed = self.ends[warmup:]
            if budget_s is not None and len(timed) > 3 and timed[-1] - timed[0] > budget_s:
                trainer.should_stop = True

    clock = Clock()
    module = fastmri_module(profile, seed)
    loader = DataLoader(dataset, batch_size=batch or profile.train.batch_size, shuffle=False,
                        num_workers=0, collate_fn=fastmri_collate)
    trainer = pl.Trainer(max_steps=warmup + steps + 1,
                         accelerator="gpu" if device == "cuda" else "cpu",
                         devices=1, precision=precision, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, gradient_clip_val=profile.train.grad_clip,
                         limit_val_batches=0, num_sanity_val_steps=0, callbacks=[clock])
    trainer.fit(module, train_dataloaders=loader)
    ends = clock.ends[warmup:]
    return [b - a for a, b in zip(ends, ends[1:])]


def run_loop_seconds_per_step(lab, steps: int) -> float:
    """``erase.runs.engine.run_loop`` itself for ``steps`` steps: its own train_seconds / steps."""
    from torch.utils.data import Subset

    from erase.runs.engine import Loop, run_loop
    from erase.runs.methods import get_method

    retain = lab.dataset("retain")
    with tempfile.TemporaryDirectory() as tmp:
        loop = Loop(method=get_method("Retrain"), forget=None,
                    retain=Subset(retain, range(min(steps, len(retain)))), epochs=1,
                    train=lab.train_config, seed=lab.seed, checkpoint=Path(tmp) / "c.ckpt",
                    progress=False)
        result = run_loop(loop, lab.new_model(), lab.fabric)
    return result["train_seconds"] / result["steps"]


# ------------------------------------------------------------------ the comparison


def compare(lab, threads: int, rounds: int, warmup: int, steps: int, device="cpu",
            budget_s: float = 20.0) -> dict:
    """Ours, fastMRI by hand and fastMRI under Lightning, interleaved in ``rounds``."""
    import torch
    torch.set_num_threads(threads)
    profile, dataset = lab.profile, lab.dataset("retain")
    per = {"ours": [], "fastmri_manual": [], "fastmri_lightning": []}
    loads = []
    for r in range(rounds):
        loads.append(loadavg())
        step = our_step(profile, dataset, device)
        time_steps(step, 0, warmup)
        per["ours"] += time_steps(step, warmup, steps, budget_s=budget_s)
        step = fastmri_manual_step(profile, dataset, device)
        time_steps(step, 0, warmup)
        per["fastmri_manual"] += time_steps(step, warmup, steps, budget_s=budget_s)
        per["fastmri_lightning"] += fastmri_lightning_times(profile, dataset, steps, device,
                                                             warmup=warmup, budget_s=budget_s)
    size = profile.train.batch_size
    out = {k: {"ms_per_step": 1e3 * median(v), "samples_per_s": size / median(v), "steps": len(v)}
           for k, v in per.items()}
    out["ratio_vs_lightning"] = (out["ours"]["samples_per_s"]
                                 / out["fastmri_lightning"]["samples_per_s"])
    out["ratio_vs_manual"] = out["ours"]["samples_per_s"] / out["fastmri_manual"]["samples_per_s"]
    out["loadavg"] = loads
    out["threads"] = threads
    return out


PROPOSALS = (  # name, our_step options
    ("run_loop as is (fused Adam)", {}),
    ("Adam for-loop (engine 1)", {"adam": "forloop"}),
    ("Adam(foreach=True)", {"adam": "foreach"}),
    ("U-Net without tensor padding test", {"unet_fix": True}),
    ("channels-last weights", {"channels_last": True}),
    ("SSIM by one average pooling", {"pooled_ssim": True}),
    ("channels-last + pooled SSIM", {"channels_last": True, "pooled_ssim": True}),
)


def proposals(lab, threads: int, rounds: int, warmup: int, steps: int, device="cpu",
              budget_s: float = 15.0) -> dict:
    """Changes to our step that need no new dependency, interleaved against the loop as is."""
    import torch
    torch.set_num_threads(threads)
    dataset = lab.dataset("retain")
    per = {name: [] for name, _ in PROPOSALS}
    for _ in range(rounds):
        for name, options in PROPOSALS:
            step = our_step(lab.profile, dataset, device, **options)
            time_steps(step, 0, warmup)
            per[name] += time_steps(step, warmup, steps, budget_s=budget_s)
    base = median(per[PROPOSALS[0][0]])
    return {name: {"ms_per_step": 1e3 * median(v), "speedup": base / median(v)}
            for name, v in per.items()}


def optimizer_alone(lab, repeats: int = 200) -> dict:
    """ms of one Adam step and one gradient clip on the profile's model, per implementation:
    the part of a step these options change, timed without the network's noise."""
    import torch
    from torch.utils.data import default_collate

    from erase.runs.methods import ReconstructionLoss, get_method, step_loss
    from erase.runs.models import build_model
    batch = default_collate([lab.dataset("retain")[0]])
    out = {}
    for impl, options in (("for-loop (default on CPU)", {}), ("foreach", {"foreach": True}),
                          ("fused", {"fused": True})):
        torch.manual_seed(0)
        model = build_model(lab.profile.model)
        loss, _ = step_loss(get_method("Retrain"), model, ReconstructionLoss(), None, batch)
        loss.backward()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, **options)
        optimizer.step()
        start = time.perf_counter()
        for _ in range(repeats):
            optimizer.step()
        out[f"Adam {impl}"] = 1e3 * (time.perf_counter() - start) / repeats
    params = [p for p in model.parameters()]
    for impl, foreach in (("for-loop", False), ("foreach", True)):
        start = time.perf_counter()
        for _ in range(repeats):
            torch.nn.utils.clip_grad_norm_(params, 0.5, foreach=foreach)
        out[f"clip_grad_norm_ {impl}"] = 1e3 * (time.perf_counter() - start) / repeats
    out["parameter tensors"] = len(params)
    return out


# ------------------------------------------------------------------ processes in parallel


def _parallel_worker(scale, results, threads, warmup, steps, barrier, budget_s=20.0):
    import torch
    quiet()
    lab = bench_lab(scale, results)
    torch.set_num_threads(threads)  # after the Lab, which sets the profile's threads
    step = our_step(lab.profile, lab.dataset("retain"))
    time_steps(step, 0, warmup)
    barrier.wait()
    start = time.perf_counter()
    times = time_steps(step, warmup, steps, budget_s=budget_s)
    return {"times": times, "start": start, "end": time.perf_counter()}


def parallel(scale, results, processes=2, threads=1, warmup=5, steps=40) -> dict:
    """``processes`` copies of our step at once (as run_many runs jobs): total samples/s."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    ctx = get_context("spawn")
    barrier = ctx.Manager().Barrier(processes)
    load = loadavg()
    with ProcessPoolExecutor(processes, mp_context=ctx) as pool:
        futures = [pool.submit(_parallel_worker, scale, str(results), threads, warmup, steps,
                               barrier) for _ in range(processes)]
        parts = [f.result() for f in futures]
    per_process = [1e3 * median(p["times"]) for p in parts]
    return {"processes": processes, "threads_each": threads, "loadavg": load,
            "ms_per_step_each": per_process,
            "samples_per_s_total": sum(len(p["times"]) / (p["end"] - p["start"]) for p in parts),
            "samples_per_s_total_median": sum(1e3 / ms for ms in per_process)}


# ------------------------------------------------------------------ OpenMP wait policy


OMP_CHILD = r"""
import json, sys
sys.path.insert(0, {bench!r})
from bench_common import quiet, bench_lab, time_steps, median
quiet()
import torch
from bench_step import our_step
lab = bench_lab({scale!r}, {results!r})
torch.set_num_threads({threads})
step = our_step(lab.profile, lab.dataset("retain"))
time_steps(step, 0, {warmup})
times = time_steps(step, {warmup}, {steps}, budget_s={budget})
print("RESULT " + json.dumps({{"ms_per_step": 1e3 * median(times), "steps": len(times)}}))
"""


def omp_policy(scale, results, thread_counts=(1, 2), policies=("default", "PASSIVE"), rounds=2,
               warmup=3, steps=30, budget_s=15.0) -> dict:
    """Our step in fresh processes with libgomp's default (spinning) wait policy and with
    ``OMP_WAIT_POLICY=PASSIVE``, at each thread count, interleaved. The policy is read when
    torch loads OpenMP, so it can only be set before ``import torch``."""
    per = {}
    for _ in range(rounds):
        for threads in thread_counts:
            for policy in policies:
                env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
                if policy != "default":
                    env["OMP_WAIT_POLICY"] = policy
                code = OMP_CHILD.format(bench=str(Path(__file__).parent), threads=threads,
                                        scale=scale, results=str(results), warmup=warmup,
                                        steps=steps, budget=budget_s)
                proc = subprocess.run([sys.executable, "-c", code], capture_output=True,
                                      text=True, env=env, cwd=REPO, timeout=1800)
                lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
                key = f"threads={threads} OMP_WAIT_POLICY={policy}"
                if lines:
                    per.setdefault(key, []).append(json.loads(lines[-1][7:])["ms_per_step"])
                    per.setdefault(key + " load", []).append(loadavg())
    return {k: v for k, v in per.items()}


# ------------------------------------------------------------------ torch.compile


COMPILE_CHILD = r"""
import json, sys, time
sys.path.insert(0, {bench!r})
from bench_common import quiet, bench_lab, time_steps, median
quiet()
import torch
from bench_step import our_step
lab = bench_lab({scale!r}, {results!r})
torch.set_num_threads({threads})
data = lab.dataset("retain")
reference = our_step(lab.profile, data)
reference_losses = [reference(i) for i in range(3)]
eager = our_step(lab.profile, data)
time_steps(eager, 0, {warmup})
step = our_step(lab.profile, data, compile_mode={mode!r})
t = time.perf_counter(); losses = [step(0)]; first = time.perf_counter() - t
t = time.perf_counter(); losses += [step(1), step(2)]; time_steps(step, 3, {warmup} - 2)
rest = time.perf_counter() - t
times, eager_times = [], []
for r in range(3):  # interleaved, so load on the machine falls on both alike
    eager_times += time_steps(eager, {warmup} + r * {steps}, {steps}, budget_s=15)
    times += time_steps(step, {warmup} + 1 + r * {steps}, {steps}, budget_s=15)
print("RESULT " + json.dumps({{"first_step_s": first, "warmup_s": rest,
                              "ms_per_step": 1e3 * median(times),
                              "eager_ms_per_step": 1e3 * median(eager_times),
                              "steps_timed": len(times),
                              "max_loss_difference_first_3_steps":
                                  max(abs(a - b) for a, b in zip(losses, reference_losses))}}))
"""


def compile_run(scale, results, mode, cache_dir, threads=1, warmup=10, steps=20,
                timeout=1800) -> dict:
    """One fresh process: eager steps, then compile (first step = compile), then steady steps."""
    code = COMPILE_CHILD.format(bench=str(Path(__file__).parent), threads=threads, scale=scale,
                                results=str(results), warmup=warmup, steps=steps, mode=mode)
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(cache_dir)}
    with Stopwatch() as sw:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              env=env, cwd=REPO, timeout=timeout)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"mode": mode, "error": " / ".join(tail)[-400:], "process_s": sw.seconds}
    result = json.loads(lines[-1][len("RESULT "):])
    result.update(mode=mode, process_s=sw.seconds, warmup_steps=warmup, threads=threads)
    return result


def compile_payoff(result: dict, run_steps: int) -> dict:
    """Seconds a ``run_steps``-step run saves (negative: loses) by compiling."""
    if "error" in result:
        return result
    # the first step and the warm-up steps, less what they would cost once compiled
    warm_steps = result.get("warmup_steps", 0) + 1
    compile_s = (result["first_step_s"] + result["warmup_s"]
                 - warm_steps * result["ms_per_step"] / 1e3)
    gain_per_step = (result["eager_ms_per_step"] - result["ms_per_step"]) / 1e3
    saved = run_steps * gain_per_step - compile_s
    breakeven = compile_s / gain_per_step if gain_per_step > 0 else None
    return {**result, "compile_s": compile_s, "run_steps": run_steps,
            "saved_s": saved, "breakeven_steps": breakeven, "pays_off": saved > 0}


def torch_compile(scale, results, modes=("regularizers",), threads=2, run_steps=None) -> dict:
    """Each mode with a cold inductor cache, then again with the cache warm (a second run)."""
    out = {}
    for mode in modes:
        with tempfile.TemporaryDirectory(prefix="inductor-") as cache:
            cold = compile_run(scale, results, mode, cache, threads)
            warm = compile_run(scale, results, mode, cache, threads)
        out[mode] = {"cold": compile_payoff(cold, run_steps),
                     "warm": compile_payoff(warm, run_steps)}
    return out


# ------------------------------------------------------------------ the paper's shape


def paper_shape(threads: int = 1, warmup: int = 1, steps: int = 3) -> dict:
    """Ours against fastMRI (Lightning and by hand) at the ``paper`` profile's shapes: the
    12-cascade VarNet on 320 x 320, 16-coil slices, batch 1, on a few synthetic volumes
    written for it (``erase.runs.gpu_check.write_check_data``), on this CPU."""
    import torch

    from erase.runs.gpu_check import write_check_data

    with tempfile.TemporaryDirectory(prefix="bench-paper-") as tmp:
        root = write_check_data(Path(tmp) / "data", "paper", brain=3, knee=2, slices=2)
        lab = bench_lab("paper", Path(tmp) / "results", data_root=root)
        torch.set_num_threads(threads)  # after the Lab, which leaves the paper profile's
        out = compare(lab, threads, rounds=1, warmup=warmup, steps=steps, budget_s=None)
        out["sample"] = list(lab.dataset("retain")[0].masked_kspace.shape)
        out["parameters"] = sum(p.numel() for p in lab.new_model().parameters())
    return out


# ------------------------------------------------------------------ entry


def run(scale="default", results=None, device="cpu", rounds=3, warmup=5, steps=40,
        compile_modes=()) -> dict:
    import torch
    quiet()
    lab = bench_lab(scale, results)
    profile = lab.profile
    dataset = lab.dataset("retain")
    counts = lab.counts()
    run_steps = profile.train.epochs * -(-counts["retain"]["slices"] // profile.train.batch_size)
    out = {"scale": scale, "model": dict(profile.model.__dict__),
           "parameters": sum(p.numel() for p in lab.new_model().parameters()),
           "sample": list(dataset[0].masked_kspace.shape), "oracle_run_steps": run_steps,
           "batch": profile.train.batch_size}
    cores = len(os.sched_getaffinity(0))
    thread_counts = sorted({1, min(2, cores), cores})
    for threads in thread_counts:
        out[f"threads_{threads}"] = compare(lab, threads, rounds, warmup, steps, device)
    # run_many trains with one thread per process: the proposals, run_loop and compile
    # figures use that setting (two threads also collapse when other work shares the cores)
    torch.set_num_threads(1)
    out["proposals"] = {"threads": 1, **proposals(lab, 1, rounds, warmup, steps, device)}
    out["optimizer_alone"] = optimizer_alone(lab)
    out["run_loop_ms_per_step"] = 1e3 * run_loop_seconds_per_step(lab, warmup + steps)
    torch.set_num_threads(cores)
    out["parallel_1x1"] = parallel(scale, lab.results, 1, 1, warmup, steps)
    out["parallel_2x1"] = parallel(scale, lab.results, 2, 1, warmup, steps)
    out["parallel_1x2"] = parallel(scale, lab.results, 1, 2, warmup, steps)
    out["omp"] = omp_policy(scale, lab.results, sorted({1, cores}))
    if compile_modes:
        out["compile"] = run_compile(scale, results, compile_modes)["compile"]
    out["paper_shape"] = paper_shape()
    return out


def run_compile(scale="default", results=None, modes=("regularizers+unetfix",)) -> dict:
    """torch.compile on CPU, one thread (run_many's setting), cold then warm inductor cache."""
    quiet()
    lab = bench_lab(scale, results)
    run_steps = lab.profile.train.epochs * -(-lab.counts()["retain"]["slices"]
                                             // lab.profile.train.batch_size)
    return {"scale": scale, "oracle_run_steps": run_steps,
            "compile": torch_compile(scale, lab.results, modes, threads=1, run_steps=run_steps)}


def report(out: dict) -> str:
    lines = [f"Model: VarNet {out['model']} = {out['parameters']:,} parameters; sample "
             f"k-space {out['sample']}, batch {out['batch']}; an oracle run is "
             f"{out['oracle_run_steps']} steps.", ""]
    rows = []
    for key in sorted(k for k in out if k.startswith("threads_")):
        r = out[key]
        for name in ("ours", "fastmri_lightning", "fastmri_manual"):
            rows.append([str(r["threads"]), name, r[name]["ms_per_step"],
                         r[name]["samples_per_s"], str(r[name]["steps"]),
                         " ".join(f"{x:.1f}" for x in r["loadavg"])])
    lines.append(table(rows, ["threads", "path", "ms/step", "samples/s", "steps timed",
                              "load avg per round"]))
    lines.append("")
    for key in sorted(k for k in out if k.startswith("threads_")):
        r = out[key]
        lines.append(f"- threads={r['threads']}: ours/fastMRI-Lightning speed = "
                     f"{r['ratio_vs_lightning']:.2f}x; ours/fastMRI-by-hand = "
                     f"{r['ratio_vs_manual']:.2f}x")
    ours1 = out.get("threads_1", {}).get("ours", {}).get("ms_per_step")
    lines.append(f"- erase.runs.engine.run_loop itself, 1 thread: "
                 f"{out['run_loop_ms_per_step']:.1f} "
                 f"ms/step (its own train_seconds / steps, warm-up included; the benchmark's "
                 f"copy of its step: {ours1:.1f})")
    for key in ("parallel_1x1", "parallel_2x1", "parallel_1x2"):
        if key in out:
            p = out[key]
            lines.append(f"- {p['processes']} process(es) x {p['threads_each']} thread(s) at once "
                         f"(load avg {p['loadavg']:.1f}): "
                         f"{' / '.join(f'{x:.1f}' for x in p['ms_per_step_each'])} ms/step each, "
                         f"{p['samples_per_s_total']:.1f} samples/s in total")
    if "parallel_2x1" in out and "parallel_1x2" in out:
        two, one = (out["parallel_2x1"]["samples_per_s_total"],
                    out["parallel_1x2"]["samples_per_s_total"])
        lines.append(f"- run_many's claim (2 processes x 1 thread ~ twice one process x 2 "
                     f"threads): {two:.1f} vs {one:.1f} samples/s = {two / one:.2f}x")
    if out.get("omp"):
        lines.append("- OpenMP wait policy, fresh process per figure, ms/step per round: "
                     + "; ".join(f"{k}: {', '.join(f'{x:.0f}' for x in v)}"
                                 for k, v in out["omp"].items() if not k.endswith(" load"))
                     + " (load avg per round: "
                     + "; ".join(f"{k[:-5]}: {', '.join(f'{x:.1f}' for x in v)}"
                                 for k, v in out["omp"].items() if k.endswith(" load")) + ")")
    if "proposals" in out:
        p = out["proposals"]
        lines.append(f"- proposed changes to the step ({p['threads']} thread, interleaved): "
                     + "; ".join(f"{k} {v['ms_per_step']:.1f} ms ({v['speedup']:.2f}x)"
                                 for k, v in p.items() if k != "threads"))
    if "optimizer_alone" in out:
        o = out["optimizer_alone"]
        lines.append(f"- optimizer and clip alone, 1 thread, {o['parameter tensors']} parameter "
                     "tensors: " + "; ".join(f"{k} {v:.2f} ms" for k, v in o.items()
                                            if k != "parameter tensors"))
    if out.get("compile"):
        lines.append(report_compile(out))
    if "paper_shape" in out:
        p = out["paper_shape"]
        lines.append(f"- the paper's shape (VarNet {p['parameters']:,} parameters, sample "
                     f"k-space {p['sample']}, batch 1, {p['threads']} thread, "
                     f"{p['ours']['steps']} steps each): ours {p['ours']['ms_per_step']:.0f} "
                     f"ms/step, fastMRI-Lightning {p['fastmri_lightning']['ms_per_step']:.0f}, "
                     f"fastMRI by hand {p['fastmri_manual']['ms_per_step']:.0f}: ours/Lightning "
                     f"{p['ratio_vs_lightning']:.2f}x, ours/by hand {p['ratio_vs_manual']:.2f}x")
    return "\n".join(lines)


def report_compile(out: dict) -> str:
    lines = []
    for mode, both in out.get("compile", {}).items():
        for cache, c in both.items():
            if "error" in c:
                lines.append(f"- torch.compile ({mode}, {cache} cache): failed: {c['error']}")
                continue
            verdict = "pays off" if c["pays_off"] else "does not pay off"
            be = f"{c['breakeven_steps']:.0f}" if c["breakeven_steps"] else "never"
            lines.append(f"- torch.compile ({mode}, {cache} inductor cache, {c.get('threads', 1)} "
                         f"thread): compile {c['compile_s']:.1f} s (first step "
                         f"{c['first_step_s']:.1f} s), steady {c['ms_per_step']:.1f} ms/step vs "
                         f"eager {c['eager_ms_per_step']:.1f} in the same process "
                         f"({c['eager_ms_per_step'] / c['ms_per_step']:.2f}x); break-even after "
                         f"{be} steps; over a {c['run_steps']}-step run (one oracle) it {verdict} "
                         f"({c['saved_s']:+.1f} s); first 3 losses differ from eager by "
                         f"{c.get('max_loss_difference_first_3_steps', float('nan')):.1e}")
    return "\n".join(lines)


if __name__ == "__main__":
    result = run()
    print(report(result))
