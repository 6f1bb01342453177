"""Tables, plots and the summary of `quality.py`, computed from the per-seed records alone."""

from __future__ import annotations

import json
import statistics
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from benchmarks.common import TASKS, dataset_path
from benchmarks.quality_rows import PROTOCOLS, ROWS

RESULTS = Path(__file__).resolve().parent / "results"
LENGTH_ROWS = {
    1: "prompt-len1",
    5: "prompt-len5",
    20: "prompt-labels",
    100: "prompt-len100",
    150: "prompt-len150",
}
INIT_ROWS = {
    "random uniform": "prompt-random",
    "sampled vocab": "prompt-vocab",
    "class labels": "prompt-labels",
    "text": "prompt-text",
}
CURVE_ROWS = ["prompt-labels", "ptuning", "prefix", "lora"]


def curve_cpu_s(point: list, record: dict) -> float:
    """CPU seconds of training up to a curve point. The machine is shared, so wall time there is mostly
    waiting for a core; CPU time is what a run costs on a machine of its own. Records written before the
    curve carried it (3 elements) are estimated from the run's train CPU seconds, by the step's share."""
    if len(point) > 3:
        return point[3]
    return record["train_cpu_s"] * point[0] / max(1, record["steps_run"])


def mean_sd(values: Iterable[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    values = list(values)
    if not values:
        raise ValueError("no values")
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def fmt_pct(values: list[float]) -> str:
    """'86.3 ± 1.2' in percent; one value: '86.3'; none: '—'."""
    if not values:
        return "—"
    mean, sd = mean_sd(values)
    return f"{100 * mean:.1f}" if len(values) == 1 else f"{100 * mean:.1f} ± {100 * sd:.1f}"


def fmt_bytes(n: float) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


TASK_NAMES = {"sst2": "SST-2", "agnews": "AG News", "rte": "RTE"}


def run_dir(protocol: str, task: str = "sst2", root: Path = RESULTS) -> Path:
    """Where one protocol's records for one task live: SST-2's keep quality_runs/<protocol>/ (the seeded
    records), another task's quality_runs/<protocol>-<task>/, so no task's records mix with another's."""
    return root / "quality_runs" / (protocol if task == "sst2" else f"{protocol}-{task}")


def load_records(protocol: str, root: Path = RESULTS, task: str = "sst2") -> dict[str, list[dict[str, Any]]]:
    """{row: [records, by seed]} from `run_dir(protocol, task)`."""
    records: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(run_dir(protocol, task, root).glob("*-s*.json")):
        record = json.loads(path.read_text())
        records.setdefault(record["row"], []).append(record)
    for rows in records.values():
        rows.sort(key=lambda r: r["seed"])
    return records


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean ± sd over seeds of one row's records."""
    out: dict[str, Any] = {"seeds": [r["seed"] for r in runs]}
    for key in ("dev_accuracy", "dev_macro_f1", "train_wall_s", "train_cpu_s", "peak_rss_mb", "best_step"):
        mean, sd = mean_sd(r[key] for r in runs)
        out[key] = round(mean, 4)
        out[key + "_sd"] = round(sd, 4)
    out["per_seed_accuracy"] = [r["dev_accuracy"] for r in runs]
    out["storage_bytes"] = runs[0]["storage_bytes"]
    out["serving_bytes"] = runs[0]["serving_bytes"]
    return out


def majority_class(labels: list[str], n_labels: int) -> dict[str, Any]:
    """What answering the commonest label every time scores on `labels`: the floor a trained row must
    clear (RTE's dev split is 54.8% entailment, so 54.8% there is no learning at all)."""
    label, count = Counter(labels).most_common(1)[0]
    accuracy = count / len(labels)
    # A constant answer's F1 is 2p/(1+p) on its own class (precision p, recall 1) and 0 on every other.
    macro_f1 = 2 * accuracy / (1 + accuracy) / n_labels
    return {
        "label": label,
        "rows": len(labels),
        "accuracy": round(accuracy, 4),
        "macro_f1": round(macro_f1, 4),
    }


def dev_majority_class(protocol: str, task: str) -> dict[str, Any]:
    """`majority_class` of the dev rows the protocol scores (the first `dev_rows` of the task's dev split)."""
    from workers.engine.training.data import read_rows

    labels = [row["label"] for row in read_rows(dataset_path(task, "dev"))][: PROTOCOLS[protocol].dev_rows]
    return majority_class(labels, len(TASKS[task].labels))


def table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + " --- |" * len(headers)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def seeds_note(runs: list[dict[str, Any]], want: int) -> str:
    return f"{len(runs)}" if len(runs) >= want else f"{len(runs)}/{want}"


def main_table(records, names: list[str], seeds: int) -> str:
    rows = []
    for name in names:
        runs = records.get(name, [])
        acc = [r["dev_accuracy"] for r in runs]
        f1 = [r["dev_macro_f1"] for r in runs]
        if runs:
            s = summarise(runs)
            trained = ROWS[name].trained
            cols = [
                f"{s['best_step']:.0f}" if trained else "—",
                f"{s['train_wall_s']:.0f}" if trained else "—",
                f"{s['train_cpu_s']:.0f}" if trained else "—",
                f"{s['peak_rss_mb']:.0f}",
                fmt_bytes(s["storage_bytes"]) if trained else "0",
                fmt_bytes(s["serving_bytes"]),
            ]
        else:
            cols = ["—"] * 6
        n = seeds_note(runs, seeds if ROWS[name].trained else 1)
        rows.append([f"{ROWS[name].label} (`{name}`)", fmt_pct(acc), fmt_pct(f1), n, *cols])
    headers = [
        "row",
        "dev acc %",
        "macro-F1 %",
        "seeds",
        "best step (mean)",
        "train wall s",
        "train CPU s",
        "peak RSS MB",
        "storage / task",
        "serving memory / task",
    ]
    return table(headers, rows)


def ablation_table(records, mapping: dict, seeds: int, key_name: str) -> str:
    rows = []
    for key, name in mapping.items():
        runs = records.get(name, [])
        per_seed = ", ".join(f"{100 * r['dev_accuracy']:.1f}" for r in runs) or "—"
        # CPU, not wall: on the shared box a run's wall time is mostly waiting for a core.
        cpu = f"{mean_sd(r['train_cpu_s'] for r in runs)[0]:.0f}" if runs else "—"
        rows.append(
            [str(key), fmt_pct([r["dev_accuracy"] for r in runs]), seeds_note(runs, seeds), per_seed, cpu]
        )
    return table([key_name, "dev acc % (mean ± sd)", "seeds", "per seed", "train CPU s (mean)"], rows)


def ensemble_table(runs: list[dict[str, Any]]) -> str:
    """Per seed: each member's dev accuracy, their mean and best, the ensemble's vote and its margin over
    the best member (the paper's Table 3 reads ensemble > best member > member average); then the means."""
    rows, kept = [], [r for r in runs if r.get("members")]
    for r in kept:
        accs = [m["dev_accuracy"] for m in r["members"]]
        rows.append(
            [
                str(r["seed"]),
                ", ".join(str(m["seed"]) for m in r["members"]),
                ", ".join(f"{100 * a:.1f}" for a in accs),
                f"{100 * statistics.fmean(accs):.1f}",
                f"{100 * max(accs):.1f}",
                f"{100 * r['dev_accuracy']:.1f}",
                f"{100 * (r['dev_accuracy'] - max(accs)):+.1f}",
            ]
        )
    if len(kept) > 1:
        means = [statistics.fmean(m["dev_accuracy"] for m in r["members"]) for r in kept]
        bests = [max(m["dev_accuracy"] for m in r["members"]) for r in kept]
        votes = [r["dev_accuracy"] for r in kept]
        margins = [v - b for v, b in zip(votes, bests, strict=True)]
        wins = sum(m > 0 for m in margins)
        rows.append(
            [
                "mean ± sd",
                "",
                "",
                fmt_pct(means),
                fmt_pct(bests),
                fmt_pct(votes),
                f"{100 * statistics.fmean(margins):+.1f} (beats best member in {wins}/{len(kept)})",
            ]
        )
    headers = [
        "seed",
        "member seeds",
        "members' dev acc %",
        "member mean %",
        "best member %",
        "ensemble (vote) %",
        "ensemble − best member, points",
    ]
    return table(headers, rows)


def norms_table(norms: dict[str, Any]) -> str:
    rows = [[name, f"{v['mean_norm']:.3f}", v.get("note", "")] for name, v in norms["rows"].items()]
    return table(["embedding rows", "mean L2 norm", "note"], rows)


def write_norms(path: Path, seeds: Iterable[int] = range(3), task: str = "sst2") -> None:
    """Mean embedding norm of the rows each vocab init starts from, against the task's label rows."""
    import torch

    from benchmarks.common import TASKS, peft_prompt_model
    from benchmarks.quality_rows import emulated_pool_ids, emulated_vocab_init
    from workers.engine.base_model import load_base_model
    from workers.engine.methods.prompt_tuning import init_prompt

    fm = load_base_model()
    table_ = fm.model.get_input_embeddings().weight.detach().float()
    norms = table_.norm(dim=1)
    pool = torch.tensor(emulated_pool_ids(fm, "common"))
    seeds = list(seeds)
    tok = fm.tokenizer
    control = [i for i in pool[:40].tolist() if tok.convert_ids_to_tokens(i).startswith("<")]
    rows: dict[str, dict[str, Any]] = {}

    def mean_of(vectors: list[torch.Tensor]) -> float:
        return float(torch.cat(vectors).norm(dim=1).mean())

    words = TASKS[task].labels
    labels = [fm.embed(torch.tensor(fm.encode_target(w))).detach().float() for w in words]
    rows[f"class-label rows ({', '.join(repr(' ' + w) for w in words)})"] = {"mean_norm": mean_of(labels)}
    rows["whole vocabulary (every row)"] = {"mean_norm": float(norms.mean())}
    rows["Softserve pool (5,000 lowest non-special ids, every row)"] = {
        "mean_norm": float(norms[pool].mean())
    }
    rows["control tokens in the pool"] = {
        "mean_norm": float(norms[control].mean()) if control else float("nan"),
        "note": f"{len(control)} ids in the pool: {control[:20]}",
    }
    draws = {
        "Softserve vocab init (pool), P=20": [emulated_vocab_init(fm, "common", 20, s) for s in seeds],
        "Softserve vocab init (whole vocabulary), P=20": [
            emulated_vocab_init(fm, "whole", 20, s) for s in seeds
        ],
        "Softserve vocab init (engine, after the fix), P=20": [
            init_prompt(fm, 20, "vocab", seed=s) for s in seeds
        ],
    }
    peft_draws = []
    for s in seeds:
        torch.manual_seed(s)
        model = peft_prompt_model(fm, "SAMPLE_VOCAB")
        peft_draws.append(model.get_prompt_embedding_to_save("default").detach().float())
    draws["PEFT SAMPLE_VOCAB, P=20"] = peft_draws
    control_rows = table_[control] if control else torch.zeros(0, table_.shape[1])

    def control_drawn(v: torch.Tensor) -> int:
        """Rows of a draw that are a control token's embedding."""
        return int((torch.cdist(v, control_rows) < 1e-6).any(dim=1).sum()) if control else 0

    for name, vectors in draws.items():
        per_seed = [float(v.norm(dim=1).mean()) for v in vectors]
        rows[name + f" (seeds {seeds[0]}–{seeds[-1]})"] = {
            "mean_norm": mean_of(vectors),
            "note": "per seed "
            + ", ".join(f"{x:.3f}" for x in per_seed)
            + "; control tokens drawn per seed: "
            + ", ".join(str(control_drawn(v)) for v in vectors),
        }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"rows": rows, "control_ids": control}, indent=1) + "\n")


def plots(records, protocol: str, out: Path = RESULTS, task: str = "sst2") -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    zero_shot = records.get("design-0shot")

    def save(fig, stem: str) -> None:
        fig.tight_layout()
        path = out / f"{stem}{suffix}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path.name)

    def reference(ax) -> None:
        if zero_shot:
            acc = 100 * zero_shot[0]["dev_accuracy"]
            ax.axhline(acc, color="firebrick", linestyle="--", linewidth=1, label=f"0-shot design {acc:.1f}%")
            ax.legend(fontsize=8, loc="lower right")

    suffix = ("" if protocol == "small" else f"_{protocol}") + ("" if task == "sst2" else f"_{task}")
    n_dev = {r["dev_n"] for runs in records.values() for r in runs if "dev_n" in r}
    dev_axis = f"{TASK_NAMES[task]} dev accuracy %" + (f" ({n_dev.pop()} rows)" if len(n_dev) == 1 else "")
    lengths = [(p, records[n]) for p, n in LENGTH_ROWS.items() if records.get(n)]
    if lengths:
        fig, ax = plt.subplots(figsize=(5.5, 3.8))
        xs = [p for p, _ in lengths]
        stats = [mean_sd(r["dev_accuracy"] for r in runs) for _, runs in lengths]
        ax.errorbar(xs, [100 * m for m, _ in stats], yerr=[100 * s for _, s in stats], marker="o", capsize=4)
        for p, runs in lengths:
            ax.scatter([p] * len(runs), [100 * r["dev_accuracy"] for r in runs], s=10, color="grey", zorder=3)
        ax.set_xscale("log")
        ax.set_xticks(xs, [str(x) for x in xs])
        ax.set_xlabel("prompt length P (label init)")
        ax.set_ylabel(dev_axis)
        ax.set_title("Prompt length, mean ± sd over seeds (dots: seeds)")
        ax.grid(alpha=0.3)
        reference(ax)
        save(fig, "quality_ablation_length")
    inits = [(k, records[n]) for k, n in INIT_ROWS.items() if records.get(n)]
    if inits:
        fig, ax = plt.subplots(figsize=(5.5, 3.8))
        stats = [mean_sd(r["dev_accuracy"] for r in runs) for _, runs in inits]
        xs = range(len(inits))
        ax.bar(xs, [100 * m for m, _ in stats], yerr=[100 * s for _, s in stats], capsize=5, color="#7fa7d6")
        for x, (_, runs) in zip(xs, inits, strict=True):
            ax.scatter([x] * len(runs), [100 * r["dev_accuracy"] for r in runs], s=10, color="k", zorder=3)
        ax.set_xticks(list(xs), [k for k, _ in inits])
        ax.set_ylim(40, 100)
        ax.set_ylabel(dev_axis)
        ax.set_title("Prompt init, P=20, mean ± sd over seeds (dots: seeds)")
        ax.grid(axis="y", alpha=0.3)
        reference(ax)
        save(fig, "quality_ablation_init")
    curves = [(n, records[n]) for n in CURVE_ROWS if records.get(n)]
    if curves:
        fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
        for name, runs in curves:
            steps = sorted({c[0] for r in runs for c in r["curve"]})
            acc, cpu = [], []
            for step in steps:
                points = [(c, r) for r in runs for c in r["curve"] if c[0] == step]
                acc.append(100 * statistics.fmean(c[2] for c, _ in points))
                cpu.append(statistics.fmean(curve_cpu_s(c, r) for c, r in points) / 60)
            label = f"{name} ({len(runs)} seed{'s' if len(runs) > 1 else ''})"
            left.plot(steps, acc, marker="o", label=label)
            right.plot(cpu, acc, marker="o", label=label)
        left.set_xlabel("training step (batch 8)")
        right.set_xlabel("training CPU minutes (probe evaluations included)")
        left.set_ylabel("probe accuracy % (100 train-split rows)")
        left.set_title("accuracy vs steps (mean over seeds)")
        right.set_title("accuracy vs CPU time (mean over seeds)")
        for ax in (left, right):
            ax.grid(alpha=0.3)
        left.legend(fontsize=8)
        save(fig, "quality_curves")
    return written


def report(
    protocol: str,
    names: list[str],
    seeds: int,
    plots_: bool = True,
    root: Path = RESULTS,
    task: str = "sst2",
) -> dict:
    """Print the markdown tables of one task for `names` (plus the ablation, ensemble and vocab-gap
    tables when their rows have records); return the summary the last line of quality.py prints."""
    records = load_records(protocol, root, task)
    floor = dev_majority_class(protocol, task)
    print(f"\n### {TASK_NAMES[task]}: rows ({protocol} protocol)\n")
    print(main_table(records, names, seeds))
    print(
        f"\nThe majority class, no model (always `{floor['label']}`): {100 * floor['accuracy']:.1f}% of the "
        f"{floor['rows']} dev rows, macro-F1 {100 * floor['macro_f1']:.1f}%."
    )
    if "ensemble" in names and records.get("ensemble"):
        print(f"\n### {TASK_NAMES[task]}: the ensemble against its members ({protocol} protocol)\n")
        print(ensemble_table(records["ensemble"]))
    # prompt-labels is a point of both ablations and a row of every task: the tables need one of the others.
    ablation_rows = {*LENGTH_ROWS.values(), *INIT_ROWS.values()} - {"prompt-labels"}
    if any(records.get(n) for n in ablation_rows):
        print("\n### Prompt length (label init, AdamW 3e-2)\n")
        print(ablation_table(records, LENGTH_ROWS, seeds, "P"))
        print("\n### Init (P=20, AdamW 3e-2)\n")
        print(ablation_table(records, INIT_ROWS, seeds, "init"))
    norms_path = run_dir(protocol, task, root) / "norms.json"
    if norms_path.is_file():
        print("\n### Embedding norms of the vocab inits' rows\n")
        print(norms_table(json.loads(norms_path.read_text())))
    written = plots(records, protocol, root, task) if plots_ else []
    summary: dict[str, Any] = {"protocol": protocol, "task": task, "plots": written, "majority_class": floor}
    for name in names:
        if records.get(name):
            s = summarise(records[name])
            summary[name] = {k: s[k] for k in ("dev_accuracy", "dev_accuracy_sd", "seeds", "train_wall_s")}
            members = [r["members"] for r in records[name] if r.get("members")]
            if members:
                best = [max(m["dev_accuracy"] for m in ms) for ms in members]
                summary[name]["member_mean_accuracy"] = round(
                    statistics.fmean(m["dev_accuracy"] for ms in members for m in ms), 4
                )
                summary[name]["best_member_accuracy"] = round(statistics.fmean(best), 4)
    return summary
