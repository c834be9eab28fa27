"""Cost prediction before submitting: ``twistox plan --configfile FILE``.

For every job of the DAG that scales with the sample (relax, phasefield, stem_haadf, stem_4d) it
predicts peak memory [MB] and wall time [min] on the CPU and, where a GPU check has been
recorded, on the GPU, from laws t = c0 + c1·size fitted to measured small runs
(``benchmarks/results/scaling_fits.json``, written by ``benchmarks/bench_scaling.py``; sizes:
atoms for relax, grid points n²·nz for the phase field, probe positions × grid points × slices
for STEM). Per-system jobs (DFT, MLIP training) and light per-sample jobs keep their configured
resources ("config"). It ends with a ``resources:`` YAML block for the config / SLURM profile:
per rule the maximum over samples, memory × 1.3 and runtime × 1.5 as headroom.

Assumptions (printed with the table): CPU fits are single-thread times; a job with T threads
is taken as T × ``PARALLEL_EFFICIENCY`` times faster (assumed, not measured here); relax counts
every FIRE step cap and all MD steps (an upper bound: converged FIRE runs stop earlier).
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

from twistox.core.config import ConfigError

__all__ = ["Fits", "JobCost", "load_fits", "plan_jobs", "resources_yaml", "format_plan", "main"]

ROOT = Path(__file__).resolve().parents[2]
FITS = ROOT / "benchmarks" / "results" / "scaling_fits.json"
GPU_CHECK = ROOT / "benchmarks" / "results" / "gpu_check.json"
PARALLEL_EFFICIENCY = 0.7  # assumed speed-up per added thread (torch/FFTW on a few cores)
MEM_HEADROOM, TIME_HEADROOM = 1.3, 1.5
STARTUP_S = 20.0  # per job: interpreter, imports, reading/writing Zarr; light toy jobs take < 20 s in all
MODELLED = ("relax", "phasefield", "stem_haadf", "stem_4d")
FIXED_RULES = ("supercell", "dft_configs", "dft_label", "mlip_train", "active_learning", "strain", "electronic", "image_inference",
               "stem_cross_section", "stem", "analysis", "report")


@dataclass
class Fits:
    """Fitted scaling laws (see benchmarks/bench_scaling.py)."""

    data: dict
    gpu: dict | None = None

    def time(self, stage: str, size: float) -> float:
        """CPU seconds of one thread: c0 + c1·size (affine fit of benchmarks/bench_scaling.py)."""
        f = self.data[stage]["time"]
        return f["c0"] + f["c1"] * float(size)

    def mem(self, stage: str, size: float) -> float:
        m = self.data[stage]["memory_mb"]
        return m["c0"] + m["c1"] * float(size)

    def model_ratio(self, channels: int, max_L: int) -> float:
        """MACE cost relative to the fitted 32-channel L0 model: measured shapes, else ∝ channels·(L+1)²
        scaled from the nearest measured shape."""
        r = self.data["relax"].get("model_ratio", {"32ch_L0": 1.0})
        key = f"{channels}ch_L{max_L}"
        if key in r:
            return float(r[key])
        w = channels * (max_L + 1) ** 2
        best = min(r, key=lambda k: abs(math.log(int(k.split("ch")[0]) * (int(k.split("_L")[1]) + 1) ** 2 / w)))
        ch, L = int(best.split("ch")[0]), int(best.split("_L")[1])
        return float(r[best]) * w / (ch * (L + 1) ** 2)


def load_fits(path: str | Path | None = None, gpu_path: str | Path | None = None) -> Fits:
    p = Path(path) if path else FITS
    if not p.exists():
        raise ConfigError(f"no scaling fits at {p}: run `python benchmarks/bench_scaling.py` first")
    gp = Path(gpu_path) if gpu_path else GPU_CHECK
    gpu = json.loads(gp.read_text()) if gp.exists() else None
    return Fits(json.loads(p.read_text()), gpu)


@dataclass
class JobCost:
    rule: str
    sample: str
    size: str
    threads: int
    cpu_mem_mb: float | None
    cpu_min: float | None
    gpu_mem_mb: float | None = None
    gpu_min: float | None = None
    note: str = ""


def _threads(cfg: dict, rule: str) -> int:
    res = cfg.get("resources", {}) or {}
    return int((res.get(rule) or {}).get("threads") or (res.get("default") or {}).get("threads") or 1)


def _speed(threads: int) -> float:
    return 1.0 + PARALLEL_EFFICIENCY * (max(threads, 1) - 1)


def _gpu_factor(fits: Fits, key: str, cpu_1thread_s) -> tuple[float | None, str]:
    """t_gpu / t_cpu(1 thread) at the size benchmarks/gpu_check.py measured (gpu_check.json), if recorded.

    ``cpu_1thread_s(entry)`` is the fitted CPU time of the measured case. The factor is applied at
    every size, i.e. the GPU is assumed to follow the CPU exponent (pessimistic for small jobs)."""
    if not fits.gpu or key not in fits.gpu:
        return None, ""
    g = fits.gpu[key]
    return g["seconds"] / cpu_1thread_s(g), f"GPU: x{g['seconds'] / cpu_1thread_s(g):.3g} of 1 CPU thread (gpu_check)"


def relax_cost(cfg: dict, system: str, csl, fits: Fits) -> JobCost:
    from twistox.supercell.builder import expected_atom_count
    from twistox.supercell.stage import bilayer_spec

    r, m = cfg.get("relax", {}), cfg.get("mlip", {})
    n = expected_atom_count(csl, bilayer_spec(cfg, system))
    ratio = fits.model_ratio(int(m.get("num_channels", 16)), int(m.get("max_L", 0)))
    if r.get("dtype", "float64") == "float32":
        ratio *= 0.5  # ENVIRONMENT.md: MACE float32 ~2x faster on CPU
    k = int(m.get("committee_size", 3)) if r.get("committee_mode", "mean") == "mean" else 1
    grid = int(r.get("translation_grid", 3))
    scan = grid * grid * int(r.get("scan_max_steps", 500))
    md = r.get("md", {}) or {}
    md_steps = int(round(1000 * md.get("total_ps", 0) / md.get("timestep_fs", 2.0))) if md.get("enabled") else 0
    calls = scan + int(r.get("max_steps", 2000)) + md_steps
    per_call = lambda N: k * ratio * fits.time("relax", N)  # noqa: E731
    th = _threads(cfg, "relax")
    cpu_s = STARTUP_S + calls * per_call(n) / _speed(th)
    b = min(int(r.get("batch_size", 8)), grid * grid)
    # memory slope measured for 32 ch / L0; wider models hold proportionally larger edge features
    mem_of = lambda atoms: fits.mem("relax", 0) + (fits.mem("relax", atoms) - fits.mem("relax", 0)) * max(1.0, ratio)  # noqa: E731
    mem = mem_of(n * b)
    gf, note = _gpu_factor(fits, "relax", lambda g: fits.model_ratio(g["channels"], g["max_L"]) * fits.time("relax", g["size"]))
    note = f"scan batch {b}: {mem:,.0f} MB, batch 1: {mem_of(n):,.0f} MB" + (f"; {note}" if note else "")
    return JobCost("relax", csl.name, f"{n} atoms, {calls} force calls (bound)", th, mem, cpu_s / 60,
                   mem if gf else None, (STARTUP_S + calls * per_call(n) * gf) / 60 if gf else None, note)


def phasefield_cost(cfg: dict, csl, fits: Fits) -> JobCost:
    from twistox.phasefield.memory import phasefield_memory_mb
    from twistox.phasefield.stage import build_grid

    pf = cfg["phasefield"]
    a = float(next(iter(cfg["systems"].values()))["a"])
    g = build_grid(pf, csl.supercell_length(a), int((pf.get("eigenstrain") or {}).get("fourier_order", 6)))
    N = g.n * g.n * g.nz
    s = fits.data["phasefield"]
    steps = min(int(pf.get("max_steps", 2000)), math.ceil(s["steps"]["a"] * N ** s["steps"]["b"]))
    setup = s["setup_s"]["c0"] + s["setup_s"]["c1"] * N
    one = lambda M: fits.time("phasefield", M) * steps + setup  # noqa: E731
    th = _threads(cfg, "phasefield")
    mem = phasefield_memory_mb(g.n, g.nz)
    gf, note = _gpu_factor(fits, "phasefield", lambda g: fits.time("phasefield", g["size"]))
    return JobCost("phasefield", csl.name, f"{g.n}²×{g.nz} = {N:.3g} pts, ~{steps} steps", th, mem,
                   (STARTUP_S + one(N) / _speed(th)) / 60, mem if gf else None,
                   (STARTUP_S + one(N) * gf) / 60 if gf else None, note)


def _stem_common(cfg: dict, csl):
    st = cfg["stem"]
    a = float(next(iter(cfg["systems"].values()))["a"])
    L = csl.supercell_length(a)
    slices = math.ceil(10 * st["sample"]["thickness_nm"] / st["slice_thickness"])
    fp = st.get("frozen_phonons", {}) or {}
    return st, L, slices, fp, len(st.get("structures", ["relaxed"]))


def stem_cost(cfg: dict, csl, fits: Fits, part: str) -> JobCost:
    from twistox.stem.optics import fourd_tiling, grid_points
    from twistox.stem.tiling import BASE_MB as STEM_BASE_MB
    from twistox.stem.tiling import stem_memory_mb

    st, L, slices, fp, n_struct = _stem_common(cfg, csl)
    p = st[part]
    confs = int(fp.get("num_configs", 1)) if fp.get("enabled") and part in fp.get("parts", [part]) else 1
    ss = int(st.get("potential_supersampling", 1))
    probes = math.ceil(L / p["scan_sampling"]) ** 2
    if part == "planview":
        rule, tiles = "stem_haadf", 1
        g = grid_points(L, p["potential_sampling"])
        repeats = len(p.get("focus", [0])) * confs * n_struct
        det = int(p["detector"]["outer_mrad"] / p["detector"]["step_mrad"])
    else:
        rule = "stem_4d"
        tiles = fourd_tiling(L, p["semiangle_mrad"], st["energy_kev"] * 1e3, p["min_disc_radius_px"])
        g = grid_points(tiles * L, p["potential_sampling"])
        repeats = confs * n_struct
        lam = 12.2643 / math.sqrt(st["energy_kev"] * 1e3 * (1 + 0.978476e-6 * st["energy_kev"] * 1e3))  # [Å]
        dk = 1e3 * lam / (tiles * L)  # detector pixel [mrad]
        ma = p.get("max_angle_mrad")
        det = (2 * ma / dk) ** 2 if ma else (2 * g / 3) ** 2
    W = probes * g * g * slices
    th = _threads(cfg, rule)
    one = lambda w: fits.time("stem", w) * repeats  # noqa: E731
    cpu_s = STARTUP_S + one(W) / _speed(th)
    # scan model of twistox.stem.tiling with the base of the measured plan-view process (more imports
    # than the bare scan the tiling model was calibrated on)
    base = min(q["peak_mb"] for q in fits.data["stem"]["points"])
    mem = stem_memory_mb((g, g), slices, probes, int(det), batch=8, supersampling=ss) + max(0.0, base - STEM_BASE_MB)
    gf, note = _gpu_factor(fits, part, lambda g: fits.time("stem", g["size"]))
    return JobCost(rule, csl.name, f"{probes} probes × {g}² × {slices} slices × {repeats}", th, mem, cpu_s / 60,
                   mem if gf else None, (STARTUP_S + one(W) * gf) / 60 if gf else None, note)


def plan_jobs(cfg: dict, fits: Fits) -> list[JobCost]:
    """Predicted cost of every modelled job; configured resources for the others."""
    from twistox.core.config import resolve_samples

    jobs = []
    samples = resolve_samples(cfg)
    res = cfg.get("resources", {}) or {}
    for system, by_name in samples.items():
        for csl in by_name.values():
            jobs.append(relax_cost(cfg, system, csl, fits))
            jobs.append(phasefield_cost(cfg, csl, fits))
            parts = (cfg["stem"].get("parts") or ["planview", "cross_section", "fourd"])
            for part in ("planview", "fourd"):
                if part in parts:
                    jobs.append(stem_cost(cfg, csl, fits, part))
    for j in jobs:  # flag what the configured memory cannot hold
        conf = (res.get(j.rule) or {}).get("mem_mb") or (res.get("default") or {}).get("mem_mb")
        if conf and j.cpu_mem_mb and j.cpu_mem_mb > conf:
            j.note = f"EXCEEDS configured mem_mb {conf}; " + j.note
    for rule in FIXED_RULES:
        r = res.get(rule) or {}
        if r:
            jobs.append(JobCost(rule, "-", "not modelled", int(r.get("threads", 1)), r.get("mem_mb"),
                                r.get("runtime"), note="configured"))
    return jobs


def _round_up(x: float, step: float) -> int:
    return int(step * math.ceil(x / step))


def resources_yaml(jobs: list[JobCost], cfg: dict, device: str = "cpu") -> str:
    """``resources:`` block: per modelled rule the max over samples with headroom (MB, minutes)."""
    import yaml

    out: dict = {}
    for j in jobs:
        if j.rule not in MODELLED:
            continue
        mem = j.gpu_mem_mb if device == "gpu" and j.gpu_mem_mb else j.cpu_mem_mb
        t = j.gpu_min if device == "gpu" and j.gpu_min else j.cpu_min
        r = out.setdefault(j.rule, {"threads": j.threads, "mem_mb": 0, "runtime": 0})
        r["mem_mb"] = max(r["mem_mb"], _round_up(MEM_HEADROOM * mem, 500))
        r["runtime"] = max(r["runtime"], _round_up(TIME_HEADROOM * t, 10))
        gpu = ((cfg.get("resources", {}) or {}).get(j.rule) or {}).get("gpu")
        if gpu:
            r["gpu"] = gpu
    return yaml.safe_dump({"resources": out}, sort_keys=False)


def _fmt(x, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def format_plan(jobs: list[JobCost], fits: Fits) -> str:
    prov = fits.data.get("provenance", {})
    lines = [f"# twistox plan: fits from {prov.get('script', '?')} on {prov.get('host', '?')} ({prov.get('date_utc', '?')}, "
             f"load avg {prov.get('load_average_start', ['?'])[0]}); CPU times = 1-thread fit / (1 + {PARALLEL_EFFICIENCY}·(threads−1))",
             f"{'rule':18s} {'sample':22s} {'size':46s} {'thr':>3s} {'CPU MB':>9s} {'CPU min':>11s} {'GPU MB':>9s} {'GPU min':>9s}  note"]
    for j in jobs:
        lines.append(f"{j.rule:18s} {j.sample:22s} {j.size:46s} {j.threads:3d} {_fmt(j.cpu_mem_mb, '9.0f')} "
                     f"{_fmt(j.cpu_min, '11.1f')} {_fmt(j.gpu_mem_mb, '9.0f')} {_fmt(j.gpu_min, '9.1f')}  {j.note}")
    if not fits.gpu:
        lines.append("# GPU columns: no gpu_check result recorded (bash benchmarks/gpu_check.sh writes benchmarks/results/gpu_check.json)")
    return "\n".join(lines)


def main(configfiles: list[str], overrides: list[str] | None = None, fits_path: str | None = None,
         device: str = "cpu") -> int:
    """CLI body of ``twistox plan``: table + resources YAML on stdout; 2 on a bad config."""
    from twistox.checks import load_config
    from twistox.core.config import validate_config

    try:
        cfg = validate_config(load_config(configfiles, overrides))
        fits = load_fits(fits_path)
        jobs = plan_jobs(cfg, fits)
    except (ConfigError, ValueError) as exc:
        print(f"twistox plan: {exc}", file=sys.stderr)
        return 2
    print(format_plan(jobs, fits))
    print(f"# suggested resources ({device}; memory x{MEM_HEADROOM}, runtime x{TIME_HEADROOM}); "
          "put in a site file after the main config, or pass with --set-resources")
    print(resources_yaml(jobs, cfg, device), end="")
    return 0
