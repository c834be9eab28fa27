"""The phasefield stage: strain.zarr -> slab model -> relaxed fields -> phasefield.zarr Dataset."""

from __future__ import annotations

import logging
import math

import numpy as np
import torch
import xarray as xr

from .eigenstrain import (StackStrain, check_strain_dataset, eigenstrain_tensor, profile_coefficients,
                          stack_strain)
from .energy import TERMS, SlabEnergy
from .materials import flexo_coefficients, material_from_config
from .network import network_coefficients
from .settings import check_config
from .solver import PhaseFieldSolver, RelaxResult, RelaxSettings, fingerprint_of
from .spectral import Grid, fft_size

A = 1e-10  # m per Å

__all__ = ["check_config", "build_grid", "build_eigenstrain", "build_model", "initial_polarisation", "run",
           "to_dataset", "check_strain_dataset"]


def build_grid(pf: dict, L_A: float, fourier_order: int) -> Grid:
    """Grid for a supercell side L (Å): FFT-friendly n >= L/dxy and >= 2N+1 (resolves the fit)."""
    n = fft_size(max(math.ceil(L_A / pf["dxy_A"]), 2 * fourier_order + 1, pf["min_points"]))
    return Grid(L=L_A * A, n=n, nz=pf["nz"], thickness=pf["thickness_A"] * A, interface_cell=pf["nz"] // 2)


def _network_stack(eg: dict, strain: xr.Dataset) -> StackStrain:
    """The analytic network as a two-plane 'stack' at the interface (top layer +eps, bottom -eps)."""
    nw = eg["network"]
    L = float(strain.attrs["supercell_length"])
    lam = strain.attrs.get("moire_period") if nw["period_A"] == "auto" else nw["period_A"]
    b = strain.attrs.get("a") if nw["burgers_A"] == "auto" else nw["burgers_A"]
    if lam is None or b is None:
        raise ValueError("phasefield.eigenstrain.network: period_A / burgers_A 'auto' need strain.zarr attrs "
                         "'moire_period' and 'a'; give numbers instead")
    phi = float(strain.attrs.get("frame_angle_deg", np.mean(strain.attrs["layer_angles_deg"])))
    c = network_coefficients(L, float(lam), phi, nw["wall_width_A"], float(b), nw["coherence"], eg["fourier_order"])
    info = {"network_period_A": float(lam), "network_burgers_A": float(b), "network_frame_angle_deg": phi,
            "network_wall_width_A": float(nw["wall_width_A"]), "network_coherence": float(nw["coherence"]),
            "fourier_order_supercell": (c.shape[-1] - 1) // 2, "moire_order": int(eg["fourier_order"])}
    return StackStrain(np.stack([-c, c]), np.zeros(2), np.array([0, 1]), L, info)


def build_eigenstrain(pf: dict, strain: xr.Dataset, grid: Grid | None = None) -> tuple[np.ndarray, Grid, dict]:
    """(3, 3, nz, n, n) eigenstrain on the slab grid, the grid, and attrs describing it (fit, source)."""
    eg = pf["eigenstrain"]
    st = (stack_strain(strain, eg["fourier_order"], eg["plane_kinds"]) if eg["source"] == "strain"
          else _network_stack(eg, strain))
    grid = grid or build_grid(pf, st.L, st.order)
    z_A = grid.z_centres().numpy() / A
    zi = grid.interface_z() / A
    cells, fit = profile_coefficients(st, np.abs(z_A - zi), (z_A > zi).astype(int), eg["profile"], eg["decay_A"])
    eig = eigenstrain_tensor(cells, st.L, grid.x_centres().numpy() / A, eg["scale"])
    attrs = {"eigenstrain_source": eg["source"], "eigenstrain_scale": float(eg["scale"]), **st.info, **fit}
    if eg["profile"] == "exponential":
        attrs["eigenstrain_decay_A"] = float(eg["decay_A"])
    return eig, grid, attrs


def build_model(pf: dict, strain: xr.Dataset, device: str) -> tuple[SlabEnergy, Grid, np.ndarray, dict]:
    """SlabEnergy of the bilayer with its eigenstrain; pf is the validated phasefield section."""
    if "layer_angles_deg" not in strain.attrs or "supercell_length" not in strain.attrs:
        raise ValueError("strain.zarr: attributes 'supercell_length' and 'layer_angles_deg' are required")
    eig, grid, attrs = build_eigenstrain(pf, strain)
    mat = material_from_config(pf["material"], pf["temperature_K"])
    _, prov = flexo_coefficients(pf["material"])
    attrs.update(prov, f11_V=mat.f11, f12_V=mat.f12, f44_V=mat.f44)
    angles = tuple(float(a) for a in strain.attrs["layer_angles_deg"])
    energy = SlabEnergy(grid, (mat, mat), angles, torch.as_tensor(eig), device=device)
    return energy, grid, eig, attrs


def initial_polarisation(grid: Grid, amplitude: float, seed: int) -> torch.Tensor:
    """Random P, uniform in (-amplitude, amplitude) per component (C/m^2), seeded."""
    rng = np.random.default_rng(seed)
    return torch.as_tensor(rng.uniform(-amplitude, amplitude, (3, grid.nz, grid.n, grid.n)))


def check_memory(pf: dict, strain: xr.Dataset, mem_budget_mb: float | None,
                 log: logging.Logger | None = None, device: str = "cpu") -> float:
    """Predicted peak memory [MB] of this run's grid (twistox.phasefield.memory); ConfigError naming
    resources.phasefield.mem_mb when it exceeds ``mem_budget_mb`` (None = no limit). On CUDA the
    budget is the GPU's memory (the arrays live there). Cheap: no array of the grid is built."""
    from twistox.phasefield.memory import BYTES_PER_POINT, check_phasefield_memory

    eg = pf["eigenstrain"]
    st = (stack_strain(strain, eg["fourier_order"], eg["plane_kinds"]) if eg["source"] == "strain"
          else _network_stack(eg, strain))
    g = build_grid(pf, st.L, st.order)
    key = "resources.phasefield.mem_mb"
    if str(device).startswith("cuda"):
        mem_budget_mb, key = torch.cuda.get_device_properties(device).total_memory / 2**20, "device (GPU memory)"
    need = check_phasefield_memory(g.n, g.nz, mem_budget_mb, key=key)
    if log:
        log.info("memory: %.2f kB per grid point -> ~%.0f MB for %d x %d x %d (budget %s MB)", BYTES_PER_POINT / 1e3,
                 need, g.n, g.n, g.nz, "none" if mem_budget_mb is None else f"{float(mem_budget_mb):.0f}")
    return need


def run(pf: dict, strain: xr.Dataset, device: str, seed: int, checkpoint=None,
        log: logging.Logger | None = None, mem_budget_mb: float | None = None) -> tuple[xr.Dataset, RelaxResult]:
    """Whole stage on the validated phasefield section: checks, model, relaxation (checkpointed), Dataset.
    ``mem_budget_mb`` (the job's mem_mb): a grid that cannot fit is refused before it is built."""
    log = log or logging.getLogger("twistox.phasefield")
    check_config(pf)
    check_memory(pf, strain, mem_budget_mb, log, device)
    energy, grid, eig, attrs = build_model(pf, strain, device)
    log.info("grid %d x %d x %d (dx = %.3f Å, dz = %.3f Å), layer angles %s, device %s", grid.n, grid.n, grid.nz,
             grid.dx / A, grid.dz / A, strain.attrs["layer_angles_deg"], device)
    log.info("eigenstrain %s/%s: max |eps_xy| = %.4g, max |eps_xx| = %.4g", attrs["eigenstrain_source"],
             attrs["eigenstrain_profile"], np.abs(eig[0, 1]).max(), np.abs(eig[0, 0]).max())
    for lay in (0, 1):
        ell = attrs.get(f"eigenstrain_decay_fit_A_layer{lay}")
        if ell is not None and not np.isfinite(ell):
            log.warning("eigenstrain layer %d: the strain amplitude does not decay over the stack's %d planes; "
                        "the fitted tail keeps the outermost plane's strain through the slab", lay,
                        attrs[f"eigenstrain_planes_layer{lay}"])
    if not attrs["flexo_verified"]:
        log.warning("flexocoupling (%s): f11, f12, f44 = %.3g, %.3g, %.3g V not verified against a source (%s)",
                    attrs["flexo_source"], attrs["f11_V"], attrs["f12_V"], attrs["f44_V"], attrs["flexo_citation"])
    solver = PhaseFieldSolver(energy, RelaxSettings.from_config(pf), log)
    log.info("operators assembled in %.2f s", solver.setup_s)
    fp = fingerprint_of(pf, seed, eig)
    res = solver.relax(initial_polarisation(grid, pf["initial_amplitude"], seed).to(device), checkpoint, fp)
    ds = to_dataset(energy, res, strain)
    ds.attrs.update({k: (v if not isinstance(v, float) or np.isfinite(v) else str(v)) for k, v in attrs.items()})
    ds.attrs["residual_tol_V_per_m"] = float(pf["residual_tol_V_per_m"])
    return ds, res


def to_dataset(energy: SlabEnergy, r: RelaxResult, strain: xr.Dataset) -> xr.Dataset:
    """phasefield.zarr contents (names and units per docs/architecture.md)."""
    g = energy.grid
    x = g.x_centres().numpy() / A
    z = g.z_centres().numpy() / A
    comp = ["x", "y", "z"]
    with torch.no_grad():
        E = energy.electric_field(r.phi).cpu().numpy() * A                 # V/Å
        Eproj = energy.projected_field(r.phi).cpu().numpy()                # V
        phi_c = (0.5 * (r.phi[1:] + r.phi[:-1])).cpu().numpy()
        u_c = (0.5 * (r.u[:, 1:] + r.u[:, :-1])).cpu().numpy() / A         # Å, periodic part
        eps = energy.strain(r.u, r.eps_bar).cpu().numpy()
    P = r.P.cpu().numpy()
    dims3 = ("component", "z", "y", "x")
    steps = np.arange(r.energy.size)
    ds = xr.Dataset(
        {
            "P": (dims3, P, {"units": "C/m²", "long_name": "polarisation"}),
            "E": (dims3, E, {"units": "V/Å", "long_name": "electric field -grad phi"}),
            "phi": (("z", "y", "x"), phi_c, {"units": "V", "long_name": "electrostatic potential"}),
            "u": (dims3, u_c, {"units": "Å", "long_name": "periodic part of the displacement"}),
            "strain": (("i", "j", "z", "y", "x"), eps, {"units": "1", "long_name": "total strain incl. mean strain"}),
            "eigenstrain": (("i", "j", "z", "y", "x"), energy.eig.cpu().numpy(), {"units": "1"}),
            "mean_strain": (("voigt_inplane",), r.eps_bar.cpu().numpy(), {"units": "1",
                            "long_name": "mean in-plane strain of the free membrane [xx, yy, xy]"}),
            "E_projected": (("xy", "y", "x"), Eproj, {"units": "V",
                            "long_name": "integral of E_x, E_y along z through slab and vacuum"}),
            "energy": (("step",), r.energy, {"units": "aJ", "long_name": "total free energy"}),
            "energy_terms": (("term", "step"), r.energy_terms, {"units": "aJ"}),
            "residual": (("step",), r.residual, {"units": "V/m", "long_name": "RMS over cells of |dF/dP|"}),
        },
        coords={"component": comp, "xy": ["x", "y"], "i": comp, "j": comp, "term": list(TERMS),
                "voigt_inplane": ["xx", "yy", "xy"], "step": steps,
                "x": ("x", x, {"units": "Å"}), "y": ("y", x, {"units": "Å"}), "z": ("z", z, {"units": "Å"})},
    )
    ds.attrs.update({
        "supercell_length": g.L / A, "thickness": g.thickness / A, "interface_z": g.interface_z() / A,
        "layer_angles_deg": [float(a) for a in strain.attrs["layer_angles_deg"]],
        "theta_deg": float(strain.attrs.get("theta_deg", float("nan"))),
        "converged": bool(r.converged), "stop_reason": r.stop_reason, "steps": int(r.steps),
        "rejected_steps": int(r.rejected), "solve_wall_s": float(r.wall_s), "resumed_from_step": int(r.resumed_from),
        "grid": [g.nz, g.n, g.n], "device": str(energy.device),
        "max_abs_P": float(np.sqrt((P ** 2).sum(0)).max()),
    })
    return ds
