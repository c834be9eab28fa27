"""Prepared GPU check (issue 17 item 1): one table of the paper-scale GPU paths, each against the
baseline a user would otherwise run, with peak device memory.

Rows (GPU run; ``--cpu`` runs the same code on tiny sizes on the CPU so the script cannot rot):

- MACE force call and FIRE steps/s on the Sigma265 4 + 4 cell bilayer (10,600 atoms), float32 and
  float64: twistox ``fire_relax`` on one structure and on a batched translation scan, against
  ASE ``MACECalculator`` + ``ase.optimize.FIRE`` in the same run;
- MD ns/day at that size (twistox Langevin BAOAB, 2 fs);
- phase field 256^2 x 128 to convergence (goal < 60 s) against explicit Euler (step-capped:
  the ratio is then a lower bound);
- one abTEM plan-view tile at 0.03 Å sampling and one 4D-STEM COM tile, CuPy against NumPy on
  the same tile.

MACE model: random weights from mace's ``ScaleShiftMACE`` constructor with the paper's shape
(config/paper.yaml mlip: 64 channels, max_L 1, r_max 6 Å, 2 interactions, correlation 3). Cost
per atom equals that of a trained model of that shape; no weights are downloaded (none can be).

    bash benchmarks/gpu_check.sh            # one CUDA GPU, <= 8 min
    python benchmarks/gpu_check.py --cpu    # tiny sizes on CPU, < 1 min (tests/test_gpu_check.py)
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import sys
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

warnings.filterwarnings("ignore")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


@dataclass
class Sizes:
    """Problem sizes of one run (paper scale on the GPU, tiny with --cpu)."""

    theta: float
    cells: int
    channels: int
    max_L: int
    r_max: float
    steps: int
    batch: int
    md_steps: int
    pf_grid: tuple[int, int]
    pf_explicit_cap: int
    pv_sampling: float
    pv_thickness_nm: float
    pv_probes: int  # per side of the tile
    fd_sampling: float
    fd_thickness_nm: float
    fd_probes: int
    dtypes: tuple[str, ...] = ("float32", "float64")


GPU = Sizes(theta=4.98, cells=4, channels=64, max_L=1, r_max=6.0, steps=5, batch=4, md_steps=10,
            pf_grid=(256, 128), pf_explicit_cap=300, pv_sampling=0.03, pv_thickness_nm=4.0, pv_probes=2,
            fd_sampling=0.1, fd_thickness_nm=4.0, fd_probes=4)
CPU = Sizes(theta=22.62, cells=1, channels=8, max_L=0, r_max=4.0, steps=2, batch=2, md_steps=3,
            pf_grid=(8, 8), pf_explicit_cap=40, pv_sampling=0.2, pv_thickness_nm=0.8, pv_probes=2,
            fd_sampling=0.25, fd_thickness_nm=0.8, fd_probes=2, dtypes=("float32", "float64"))


@dataclass
class Row:
    name: str
    setup: str
    value: float  # main figure of merit
    unit: str
    peak_mb: float
    baseline: float = math.nan  # same figure for the baseline
    note: str = ""
    ok: bool = True
    extra: dict = field(default_factory=dict)

    @property
    def speedup(self) -> float:
        if not (np.isfinite(self.baseline) and self.baseline > 0):
            return math.nan
        higher_better = self.unit not in ("s", "ms")
        return self.value / self.baseline if higher_better else self.baseline / self.value


class Memory:
    """Peak memory of one block: torch.cuda / CuPy pool on the GPU, peak RSS of the process on CPU."""

    def __init__(self, gpu: bool, kind: str = "torch"):
        self.gpu, self.kind = gpu, kind

    def __enter__(self):
        if self.gpu and self.kind == "torch":
            import torch

            torch.cuda.synchronize()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        elif self.gpu:
            import cupy

            cupy.get_default_memory_pool().free_all_blocks()
        return self

    def __exit__(self, *exc):
        if self.gpu and self.kind == "torch":
            import torch

            torch.cuda.synchronize()
            self.peak_mb = torch.cuda.max_memory_allocated() / 2**20
        elif self.gpu:
            import cupy

            cupy.cuda.Device().synchronize()
            self.peak_mb = cupy.get_default_memory_pool().total_bytes() / 2**20  # pool never shrinks by itself
        else:
            self.peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
        return False


def mace_model(sz: Sizes, path: Path) -> Path:
    """Random-weight ScaleShiftMACE of the paper's shape, saved as a .model file for MACECalculator."""
    import mace  # noqa: F401
    import torch
    from e3nn import o3
    from mace import modules

    torch.manual_seed(0)
    torch.set_default_dtype(torch.float64)
    hidden = " + ".join(f"{sz.channels}x{l}{'e' if l % 2 == 0 else 'o'}" for l in range(sz.max_L + 1))
    block = modules.interaction_classes["RealAgnosticResidualInteractionBlock"]
    model = modules.ScaleShiftMACE(
        r_max=sz.r_max, num_bessel=8, num_polynomial_cutoff=5, max_ell=3, interaction_cls=block,
        interaction_cls_first=block, num_interactions=2, num_elements=3, hidden_irreps=o3.Irreps(hidden),
        MLP_irreps=o3.Irreps("16x0e"), atomic_energies=np.array([-5.0, -8.0, -3.0]), avg_num_neighbors=30.0,
        atomic_numbers=[8, 22, 38], correlation=3, gate=torch.nn.functional.silu, pair_repulsion=True,
        atomic_inter_scale=1.0, atomic_inter_shift=0.0)
    torch.save(model, path)
    return path


def timed(fn, device: str) -> float:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t


def check_mace(sz: Sizes, device: str, tmp: Path) -> list[Row]:
    from ase.optimize import FIRE
    from mace.calculators import MACECalculator

    from twistox.relax.evaluators import MaceBatchEvaluator
    from twistox.relax.fire import fire_relax
    from twistox.relax.md import langevin_md
    from twistox.relax.scan import translate_top_layer
    from twistox.supercell.builder import BilayerSpec, build_bilayer
    from twistox.supercell.lattice import nearest_csl

    csl = nearest_csl(sz.theta, 400)
    atoms = build_bilayer(csl, BilayerSpec(bottom_cells=sz.cells, top_cells=sz.cells, vacuum=12.0))
    n, S, B = len(atoms), sz.steps, sz.batch
    path = mace_model(sz, tmp / "check.model")
    system = f"Σ{csl.sigma} {sz.cells}+{sz.cells}, {n} at"
    rows = []
    for dt in sz.dtypes:
        calc = MACECalculator(model_paths=str(path), device=device, default_dtype=dt)
        ev = MaceBatchEvaluator.from_calculator(calc, atoms, skin=0.5)
        gpu = device == "cuda"
        a = atoms.copy()
        a.calc = calc
        a.get_forces()  # warm-up
        ev.evaluate(atoms.positions[None], [0])
        with Memory(gpu) as m_ase:
            t_call_ase = timed(lambda: (a.calc.reset(), a.get_forces()), device)
        with Memory(gpu) as m_one:
            t_call = timed(lambda: ev.evaluate(atoms.positions[None] + 1e-4, [0]), device)
        rows.append(Row("MACE force call", f"{system}, {dt}", t_call, "s", m_one.peak_mb, t_call_ase,
                        f"baseline: ASE MACECalculator ({m_ase.peak_mb:.0f} MB)"))
        if dt == "float64":
            rows[-1].extra["plan"] = ("relax", {"size": n, "seconds": t_call, "channels": sz.channels, "max_L": sz.max_L})

        def ase_fire():
            b = atoms.copy()
            b.calc = calc
            FIRE(b, maxstep=0.1, logfile=None).run(fmax=0.0, steps=S)

        t_ase = timed(ase_fire, device)
        with Memory(gpu) as m1:
            t_one = timed(lambda: fire_relax(ev, atoms.positions[None], 0.0, S, 0.1), device)
        rows.append(Row("FIRE, 1 structure", f"{system}, {dt}", S / t_one, "steps/s", m1.peak_mb, S / t_ase,
                        "baseline: ASE FIRE + MACECalculator"))
        b = B
        while True:  # halve the batch when the GPU runs out of memory (64 ch L1 float64: ~GBs per 10^4 atoms)
            cands = np.stack([translate_top_layer(atoms, (i / b, 0.0)) for i in range(b)])
            try:
                with Memory(gpu) as mb:
                    t_b = timed(lambda: fire_relax(ev, cands, 0.0, S, 0.1, batch_size=b), device)
                break
            except RuntimeError as exc:  # torch.cuda.OutOfMemoryError is a RuntimeError
                if not gpu or "out of memory" not in str(exc).lower() or b == 1:
                    raise
                import torch

                torch.cuda.empty_cache()
                b //= 2
        rows.append(Row(f"FIRE, batched scan of {b}", f"{system}, {dt}", b * S / t_b, "struct-steps/s", mb.peak_mb,
                        S / t_ase, "baseline: ASE FIRE, one structure at a time" + (f" (batch {B} ran out of memory)" if b < B else "")))
        if dt != "float64":  # MD at the relax default precision (relax.dtype: float64)
            continue
        with Memory(gpu) as mm:
            t_md = timed(lambda: langevin_md(ev, atoms.positions[None][0], atoms.get_masses(), 300.0, 2.0,
                                             sz.md_steps, 0, 0.001, sample_every=10 ** 6,
                                             rng=np.random.default_rng(0)), device)
        def ase_md():
            from ase import units
            from ase.md.langevin import Langevin

            b = atoms.copy()
            b.calc = calc
            Langevin(b, 2.0 * units.fs, temperature_K=300.0, friction=0.001 / units.fs, logfile=None).run(sz.md_steps)

        t_ase_md = timed(ase_md, device)
        ns_day = sz.md_steps * 2.0e-6 / (t_md / 86400.0)
        rows.append(Row("MD (Langevin BAOAB, 2 fs)", f"{system}, {dt}", ns_day, "ns/day", mm.peak_mb,
                        sz.md_steps * 2.0e-6 / (t_ase_md / 86400.0),
                        f"baseline: ASE Langevin + MACECalculator; {sz.md_steps} steps; 50 ps = {50e-3 / ns_day * 24:.1f} h"))
    return rows


def check_phasefield(sz: Sizes, device: str) -> list[Row]:
    from bench_phasefield import ExplicitSolver, PhaseFieldSolver, run

    n, nz = sz.pf_grid
    with Memory(device == "cuda") as m:
        r, wall, setup = run(PhaseFieldSolver, n, nz, device, 10.0, 2000)
    re_, wall_e, _ = run(ExplicitSolver, n, nz, device, 10.0, sz.pf_explicit_cap, method="tdgl")
    if re_.converged:
        base, note = wall_e, f"explicit Euler converged in {re_.steps} steps"
    else:  # capped: its time to converge is at least cap time x (semi-implicit steps ratio >= 1)
        base = wall_e
        note = f"explicit Euler capped at {re_.steps} steps, not converged: speed-up is a lower bound"
    goal = " (goal < 60 s: met)" if wall < 60 else " (goal < 60 s: NOT met)"
    plan = ("phasefield", {"size": n * n * nz, "seconds": wall / max(r.steps, 1)})
    return [Row("phase field to convergence", f"{n}²×{nz} = {n * n * nz:.3g} pts, float64", wall, "s", m.peak_mb, base,
                f"{r.steps} steps, converged={r.converged}, setup {setup:.1f} s{goal if device == 'cuda' else ''}; {note}",
                extra={"plan": plan})]


def _specimen(theta: float, cells: int, thickness_nm: float):
    from twistox.stem.sample import planview_sample
    from twistox.supercell.builder import BilayerSpec, build_bilayer
    from twistox.supercell.lattice import nearest_csl

    atoms = build_bilayer(nearest_csl(theta, 400), BilayerSpec(bottom_cells=cells, top_cells=cells, vacuum=10.0))
    atoms.info["rigid_positions"] = atoms.positions.copy()
    return planview_sample(atoms, 10 * thickness_nm, 4.0, "top")


def _stem_tile(sample, sampling: float, probes: int, semiangle: float, device: str, detector: str):
    """One scan tile of probes x probes positions (spacing 0.24 Å) on the full specimen grid."""
    import abtem

    from twistox.stem.com import centre_of_mass
    from twistox.stem.multislice import ProbeSettings, build_potential, configure_abtem, make_probe, to_numpy

    configure_abtem(device, "float32", int(os.environ.get("OMP_NUM_THREADS", "1")))
    s = ProbeSettings(energy=300e3, semiangle=semiangle, cs=0.0, potential_sampling=sampling, scan_sampling=0.24,
                      slice_thickness=2.0, parametrization="lobato", supersampling=1, device=device)
    pot = build_potential(sample, s)
    probe = make_probe(pot, s)
    scan = abtem.GridScan(start=(0, 0), end=(0.24 * probes, 0.24 * probes), gpts=(probes, probes), endpoint=False)
    if detector == "flexible":
        det = abtem.FlexibleAnnularDetector(step_size=1.0, inner=0.0, outer=100.0)
        out = to_numpy(probe.scan(pot, scan=scan, detectors=det, lazy=True).compute().array)
    else:
        dp = probe.scan(pot, scan=scan, detectors=abtem.PixelatedDetector(max_angle=4 * semiangle), lazy=True).compute()
        arr = to_numpy(dp.array)
        kx, ky = (np.asarray(c, float) for c in dp.angular_coordinates)
        cx, cy, _ = centre_of_mass(arr.transpose(1, 0, 3, 2), ky, kx, mode="bright_field", mask_factor=1.5,
                                   disc="mean", radius=semiangle)
        out = np.stack([cx, cy])
    return out, pot.gpts, pot.num_slices


def check_stem(sz: Sizes, gpu: bool, theta: float, cells: int) -> list[Row]:
    rows = []
    for name, sampling, thick, probes, semi, det in (
            ("abTEM plan-view tile (flexible ADF)", sz.pv_sampling, sz.pv_thickness_nm, sz.pv_probes, 30.0, "flexible"),
            ("4D-STEM COM tile (pixelated + COM)", sz.fd_sampling, sz.fd_thickness_nm, sz.fd_probes, 1.0, "pixelated")):
        sample = _specimen(theta, cells, thick)
        with Memory(False) as mc:
            t = time.perf_counter()
            ref, gpts, ns = _stem_tile(sample, sampling, probes, semi, "cpu", det)
            t_np = time.perf_counter() - t
        if gpu:
            _stem_tile(sample, sampling, 1, semi, "gpu", det)  # warm-up: CUDA kernels, FFT plans
            with Memory(True, "cupy") as mg:
                t = time.perf_counter()
                got, _, _ = _stem_tile(sample, sampling, probes, semi, "gpu", det)
                t_gpu = time.perf_counter() - t
            diff = float(np.abs(got - ref).max() / max(np.abs(ref).max(), 1e-30))
            rows.append(Row(name, f"{gpts[0]}×{gpts[1]} px, {ns} slices, {probes}² probes", t_gpu, "s", mg.peak_mb, t_np,
                            f"baseline NumPy same tile (host RSS {mc.peak_mb:.0f} MB); max rel diff {diff:.1e}",
                            extra={"plan": ("planview" if det == "flexible" else "fourd",
                                            {"size": probes * probes * gpts[0] * gpts[1] * ns, "seconds": t_gpu})}))
        else:
            rows.append(Row(name, f"{gpts[0]}×{gpts[1]} px, {ns} slices, {probes}² probes", t_np, "s", mc.peak_mb, t_np,
                            "--cpu: NumPy only (CuPy column needs a GPU)"))
    return rows


def format_table(rows: list[Row], device: str) -> str:
    mem = "peak GPU MB" if device == "cuda" else "peak RSS MB"
    head = f"| {'check':38s} | {'setup':44s} | {'value':>11s} | {'unit':14s} | {'baseline':>10s} | {'speed-up':>8s} | {mem:>11s} | note |"
    lines = [head, "|" + "|".join("-" * (len(c)) for c in head.split("|")[1:-1]) + "|"]
    for r in rows:
        if not r.ok:
            lines.append(f"| {r.name:38s} | {r.setup:44s} | {'FAILED':>11s} | {'':14s} | {'':>10s} | {'':>8s} | {'':>11s} | {r.note} |")
            continue
        lines.append(f"| {r.name:38s} | {r.setup:44s} | {r.value:11.4g} | {r.unit:14s} | {r.baseline:10.4g} | "
                     f"{r.speedup:8.2f} | {r.peak_mb:11.0f} | {r.note} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cpu", action="store_true", help="tiny sizes on the CPU (smoke test, < 1 min)")
    ap.add_argument("--only", nargs="+", choices=["mace", "phasefield", "stem"], default=["mace", "phasefield", "stem"])
    ap.add_argument("--batch", type=int, help="structures per batched FIRE pass (default 4 on GPU, 2 with --cpu); "
                    "lower it on a GPU with < 80 GB")
    ap.add_argument("--budget-s", type=float, default=450.0,
                    help="skip the remaining sections once this much time is spent (one table even then)")
    ap.add_argument("--json", help="also write the GPU reference points for `twistox plan` to this file")
    args = ap.parse_args(argv)
    import tempfile

    import torch

    if args.cpu:
        device, sz = "cpu", CPU
        torch.set_num_threads(1)
    else:
        if not torch.cuda.is_available():
            print("gpu_check: no CUDA device visible to torch; run with --cpu for the CPU smoke test", file=sys.stderr)
            return 2
        device, sz = "cuda", GPU
    if args.batch:
        from dataclasses import replace

        sz = replace(sz, batch=args.batch)
    t0 = time.time()
    header = (f"twistox GPU check: device {torch.cuda.get_device_name(0) if device == 'cuda' else 'cpu (--cpu tiny sizes)'}, "
              f"torch {torch.__version__}; MACE random weights, {sz.channels} ch, max_L {sz.max_L}, r_max {sz.r_max} Å")
    print(header, flush=True)
    rows: list[Row] = []
    sections = {"mace": lambda: check_mace(sz, device, Path(tmp)),
                "phasefield": lambda: check_phasefield(sz, device),
                "stem": lambda: check_stem(sz, device == "cuda", sz.theta, sz.cells)}
    with tempfile.TemporaryDirectory() as tmp:
        for key in args.only:
            t = time.time()
            if t - t0 > args.budget_s:
                rows.append(Row(key, "", math.nan, "", math.nan, note=f"skipped: --budget-s {args.budget_s:.0f} s spent", ok=False))
                continue
            try:
                rows += sections[key]()
            except Exception as exc:  # keep the other rows: one table even when a part fails
                traceback.print_exc()
                rows.append(Row(key, "", math.nan, "", math.nan, note=f"{type(exc).__name__}: {exc}"[:200], ok=False))
            print(f"[{key}: {time.time() - t:.1f} s]", flush=True)
    print(format_table(rows, device))
    print(f"total {time.time() - t0:.0f} s")
    if args.json:  # GPU reference points for `twistox plan` (benchmarks/results/gpu_check.json)
        import json

        ref = {k: v for r in rows if r.ok and "plan" in r.extra for k, v in [r.extra["plan"]]}
        ref["provenance"] = {"header": header, "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        Path(args.json).write_text(json.dumps(ref, indent=1))
    return 0 if all(r.ok for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
