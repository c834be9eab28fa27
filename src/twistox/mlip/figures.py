"""MLIP figures: held-out parity, committee uncertainty vs error and the active-learning curve."""

from __future__ import annotations

import numpy as np
from ase import Atoms

from twistox.mlip.metrics import error_metrics, spearman


def parity_figure(frames: list[Atoms], pred: dict, title: str = "", by_type: dict | None = None):
    """Energy (per atom) and force-component parity on the held-out set; with ``by_type`` (metrics.json
    ``by_config_type``) a third panel: the mean signed energy error per config_type, train and test."""
    from twistox.core.plots import plt

    n = np.array([len(a) for a in frames], float)
    e_ref = np.array([a.info["REF_energy"] for a in frames]) / n
    e_pred = np.array(pred["energy"]) / n
    f_ref = np.concatenate([a.arrays["REF_forces"] for a in frames]).ravel()
    f_pred = np.concatenate(pred["forces"]).ravel()
    m = error_metrics(frames, pred)
    fig, axes = plt.subplots(1, 3 if by_type else 2, figsize=(15 if by_type else 10, 4.6))
    a1, a2 = axes[:2]
    kinds = [a.info.get("config_type", "") for a in frames]
    for k in sorted(set(kinds)):
        sel = np.array([kk == k for kk in kinds])
        a1.scatter(e_ref[sel], e_pred[sel], s=30, label=k)
    lo, hi = min(e_ref.min(), e_pred.min()), max(e_ref.max(), e_pred.max())
    a1.plot([lo, hi], [lo, hi], "k--", lw=1)
    a1.set_xlabel("DFT energy (eV/atom)")
    a1.set_ylabel("MACE energy (eV/atom)")
    a1.set_title(f"energy: MAE {m['energy_mae_meV_per_atom']:.2f} meV/atom")
    a1.legend(fontsize=8)
    a2.scatter(f_ref, f_pred, s=6, alpha=0.6)
    lo, hi = min(f_ref.min(), f_pred.min()), max(f_ref.max(), f_pred.max())
    a2.plot([lo, hi], [lo, hi], "k--", lw=1)
    a2.set_xlabel("DFT force component (eV/Å)")
    a2.set_ylabel("MACE force component (eV/Å)")
    a2.set_title(f"forces: MAE {m['forces_mae_meV_per_A']:.0f} meV/Å, R² {m['forces_r2']:.3f}")
    if by_type:
        offsets_panel(axes[2], by_type)
    fig.suptitle(title or f"held-out test set ({len(frames)} frames)")
    fig.tight_layout()
    return fig


def offsets_panel(ax, by_type: dict) -> None:
    """Bars of the mean signed energy error (prediction - label, meV/atom) per config_type, train and
    test side by side. Large bars of either sign on the TRAIN frames mean an underfit energy or labels on
    different energy references (twistox.mlip.offsets); the MAE per type is in metrics.json."""
    kinds = sorted(set(by_type["train"]) | set(by_type.get("test", {})))
    x = np.arange(len(kinds))
    for j, (split, color) in enumerate((("train", "C0"), ("test", "C1"))):
        rows = by_type.get(split, {})
        mean = [rows[k]["energy_mean_signed_meV_per_atom"] if k in rows else np.nan for k in kinds]
        ax.bar(x + (j - 0.5) * 0.4, mean, 0.4, color=color, alpha=0.8, label=split)
    ax.axhline(0.0, color="k", lw=0.8)
    ax.set_xticks(x, kinds, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("mean signed energy error (meV/atom)")
    share = by_type.get("train_offset_share")
    who = f" ({by_type['evaluated_model']})" if by_type.get("evaluated_model") else ""
    ax.set_title(f"energy offset per kind of cell{who}" + (f"\n(offsets carry {share:.0%} of the train MSE)"
                                                           if share is not None else ""), fontsize=10)
    ax.legend(fontsize=8)


def uncertainty_figure(std: np.ndarray, err: np.ndarray, history: list[dict]):
    """Per-atom committee force std vs true force error (test set), and the AL learning curve."""
    from twistox.core.plots import plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4.4))
    a1.scatter(std * 1e3, err * 1e3, s=8, alpha=0.6)
    a1.set_xscale("log")
    a1.set_yscale("log")
    lo = max(1e-1, min(std[std > 0].min(initial=1), err[err > 0].min(initial=1)) * 1e3)
    hi = max(std.max(), err.max()) * 1e3
    a1.plot([lo, hi], [lo, hi], "k--", lw=1, label="error = std")
    a1.set_xlabel("committee force std per atom (meV/Å)")
    a1.set_ylabel("|F_MACE - F_DFT| per atom (meV/Å)")
    from matplotlib.ticker import NullFormatter

    a1.xaxis.set_minor_formatter(NullFormatter())
    a1.yaxis.set_minor_formatter(NullFormatter())
    a1.set_title(f"test set: Spearman ρ = {spearman(std, err):.2f}")
    a1.legend(fontsize=8)
    its = [h["iteration"] for h in history]
    a2.plot(its, [h["forces_mae_meV_per_A"] for h in history], "o-", label="test force MAE (meV/Å)")
    a2.plot(its, [h["energy_mae_meV_per_atom"] for h in history], "s-", label="test energy MAE (meV/atom)")
    a2.set_xlabel("active-learning iteration")
    a2.set_ylabel("error")
    a2.set_xticks(its)
    ax2 = a2.twinx()
    ax2.bar(its, [h["n_train"] for h in history], alpha=0.15, color="k", label="training frames")
    ax2.set_ylabel("training frames")
    a2.set_zorder(ax2.get_zorder() + 1)  # error curves above the bars
    a2.patch.set_visible(False)
    a2.legend(fontsize=8, loc="center right")
    a2.set_title("active learning")
    fig.tight_layout()
    return fig
