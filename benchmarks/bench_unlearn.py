"""Benchmark 3: the cost of each unlearning method relative to retraining the oracle (RTE).

Trains G-hat (the oracle, on Dr) and G (the original, on Dr + Df) once at the chosen scale,
in a store of its own (``_output/bench`` or ``--results``), then runs every unlearning method
of Table 1 from G. Later runs reuse the store: a record is only recomputed when its config
(the scale profile, data, engine, method table ...) changed.

For each method: training seconds (the loop's own ``train_seconds``, no evaluation), samples
processed (forward + backward passes, a compute measure that load on the machine cannot
change), the RTE ratio ``oracle / method`` for both, and BTA / KTA / UA. NL-FT's target:
>= 10x cheaper than retraining at <= 0.5 dB BTA from the oracle.
"""
from __future__ import annotations

from bench_common import Stopwatch, bench_lab, loadavg, quiet, table


def run(scale="default", results=None, parallel=True, progress=True, device="cpu",
        data_root=None) -> dict:
    """Train (or reuse) the oracle, G and every unlearning method; return their costs."""
    import torch

    from erase.runs.lab import _stored, run_many
    from erase.runs.methods import UNLEARNING

    quiet()
    lab = bench_lab(scale, results, device=device, progress=progress, data_root=data_root)
    jobs = [("train", {"which": "oracle"}), ("train", {"which": "original"})]
    jobs += [("unlearn", {"method": m}) for m in UNLEARNING]
    out = {"scale": scale, "parallel": parallel, "threads": torch.get_num_threads(),
           "loadavg_start": loadavg(), "train": dict(lab.train_config.__dict__),
           "counts": lab.counts(), "runs": {}}
    stored_before = [_stored(lab, job) for job in jobs]
    with Stopwatch() as total:
        if parallel:  # as the book may: two processes with one thread each
            records = run_many([(lab, job) for job in jobs[:2]])
            records += run_many([(lab, job) for job in jobs[2:]])
        else:
            records = []
            for kind, kwargs in jobs:
                with Stopwatch() as sw:
                    record = lab.train(**kwargs) if kind == "train" else lab.unlearn(**kwargs)
                record = {**record, "_call_s": sw.seconds}
                records.append(record)
                print(f"  {record['name']}: "
                      f"{'from store' if record.get('from_store') else 'trained'}"
                      f" in {sw.seconds:.1f} s", flush=True)
    out["wall_s"] = total.seconds
    out["loadavg_end"] = loadavg()
    oracle = records[0]
    for (kind, kwargs), rec in zip(jobs, records):
        name = kwargs.get("which") or kwargs["method"]
        timing, summary = rec["timing"], rec["summary"]
        entry = {"train_s": timing["train_seconds"], "steps": timing["steps"],
                 "samples": timing["samples"], "eval_s": timing.get("eval_seconds"),
                 "wall_s": timing.get("wall_seconds"),
                 "samples_per_s": timing.get("samples_per_second"),
                 "threads": rec.get("environment", {}).get("threads"),
                 "from_store": stored_before[len(out["runs"])],
                 "epochs": len(rec.get("history", [])),
                 **{k: summary.get(k) for k in ("bta_psnr", "bta_ssim", "kta_psnr", "kta_ssim",
                                                "ua_psnr", "ua_ssim")}}
        entry["rte_time"] = oracle["timing"]["train_seconds"] / max(entry["train_s"], 1e-9)
        entry["rte_samples"] = oracle["timing"]["samples"] / max(entry["samples"], 1)
        entry["bta_gap_db"] = entry["bta_psnr"] - oracle["summary"]["bta_psnr"]
        out["runs"][name] = entry
    nl = out["runs"].get("NL-FT")
    if nl:
        out["nl_ft_target"] = {"cheaper_time": nl["rte_time"], "cheaper_samples": nl["rte_samples"],
                               "bta_gap_db": nl["bta_gap_db"],
                               "met": nl["rte_time"] >= 10 and abs(nl["bta_gap_db"]) <= 0.5}
    return out


def report(out: dict) -> str:
    rows = []
    for name, r in out["runs"].items():
        rows.append([name, str(r["epochs"]), str(r["steps"]), str(r["samples"]), r["train_s"],
                     r["eval_s"], r["rte_time"], r["rte_samples"], r["bta_psnr"],
                     f"{r['bta_gap_db']:+.2f}", r["kta_psnr"], r["ua_psnr"],
                     "store" if r["from_store"] else "trained"])
    text = [f"scale {out['scale']}: train {out['train']}; splits "
            + ", ".join(f"{k} {v['slices']}" for k, v in out["counts"].items())
            + f"; {'run_many (2 processes x 1 thread)' if out['parallel'] else 'one process'}, "
            f"load avg {out['loadavg_start']:.1f} -> {out['loadavg_end']:.1f}; "
            f"benchmark wall {out['wall_s']:.0f} s", "",
            table([[c if isinstance(c, str)
                     else (f"{c:.2f}" if isinstance(c, float) and abs(c) < 100 else c)
                    for c in row] for row in rows],
                  ["run", "epochs", "steps", "samples", "train s", "eval s", "RTE (time)",
                   "RTE (samples)", "BTA PSNR", "BTA - oracle (dB)", "KTA PSNR", "UA PSNR",
                   "source"]), ""]
    t = out.get("nl_ft_target")
    if t:
        text.append(f"- NL-FT: {t['cheaper_time']:.1f}x cheaper than retraining in train seconds "
                    f"({t['cheaper_samples']:.1f}x in samples), BTA {t['bta_gap_db']:+.2f} dB from "
                    f"the oracle: target (>= 10x at <= 0.5 dB) {'met' if t['met'] else 'missed'}")
    extra = {n: (r["wall_s"] or 0) - r["train_s"] - (r["eval_s"] or 0)
             for n, r in out["runs"].items() if r["wall_s"]}
    if extra:
        text.append("- per-epoch evaluation + checkpoints (wall - train - final eval) per run: "
                    + ", ".join(f"{n} {s:.1f} s" for n, s in extra.items()))
    return "\n".join(text)


if __name__ == "__main__":
    print(report(run()))
