"""The phasefield stage: strain.zarr -> slab model -> relaxed fields -> phasefield.zarr Dataset."""

from __future__ import annotations

import logging
import math

import numpy as np
import torch
import xarray as xr

from .eigenstrain import check_strain_dataset, eigenstrain_field, interface_fields
from .energy import TERMS, SlabEnergy
from .materials import material_from_config
from .solver import PhaseFieldSolver, RelaxResult, RelaxSettings, fingerprint_of
from .spectral import Grid, fft_size

A = 1e-10  # m per Å


def check_config(pf: dict) -> None:
    """Semantic checks the schema cannot express; ValueError names the key."""
    if pf["nz"] % 2:
        raise ValueError(f"config key 'phasefield.nz': {pf['nz']} must be even (equal layers, interface on a face)")
    if pf["initial_amplitude"] >= 1e-4:
        raise ValueError("config key 'phasefield.initial_amplitude': must be < 1e-4 C/m2 (paper's initial condition)")
    mat = material_from_config(pf["material"], pf["temperature_K"])
    mat.check("config key 'phasefield.material'")


def build_grid(pf: dict, L_A: float, fourier_order: int) -> Grid:
    """Grid for a supercell side L (Å): FFT-friendly n >= L/dxy and >= 2N+1 (resolves the fit)."""
    n = fft_size(max(math.ceil(L_A / pf["dxy_A"]), 2 * fourier_order + 1, pf["min_points"]))
    return Grid(L=L_A * A, n=n, nz=pf["nz"], thickness=pf["thickness_A"] * A, interface_cell=pf["nz"] // 2)


def build_model(pf: dict, strain: xr.Dataset, device: str) -> tuple[SlabEnergy, Grid, np.ndarray]:
    """SlabEnergy of the bilayer with the eigenstrain of the strain artifact."""
    check_strain_dataset(strain)
    L_A = float(strain.attrs["supercell_length"])
    N = int(strain.attrs.get("fourier_order", (strain.sizes["h"] - 1) // 2))
    grid = build_grid(pf, L_A, N)
    x_A = grid.x_centres().numpy() / A
    z_A = grid.z_centres().numpy() / A
    fields = interface_fields(strain, x_A)
    eig = eigenstrain_field(fields, z_A, grid.interface_z() / A, pf["eigenstrain_decay_A"], pf["eigenstrain_scale"])
    mat = material_from_config(pf["material"], pf["temperature_K"])
    angles = tuple(float(a) for a in strain.attrs["layer_angles_deg"])
    energy = SlabEnergy(grid, (mat, mat), angles, torch.as_tensor(eig), device=device)
    return energy, grid, eig


def settings_from_config(pf: dict) -> RelaxSettings:
    keys = ("dt", "stabilization", "tolerance_aJ", "max_steps", "min_steps", "checkpoint_every", "log_every")
    return RelaxSettings(**{k: pf[k] for k in keys})


def initial_polarisation(grid: Grid, amplitude: float, seed: int) -> torch.Tensor:
    """Random P, uniform in (-amplitude, amplitude) per component (C/m^2), seeded."""
    rng = np.random.default_rng(seed)
    return torch.as_tensor(rng.uniform(-amplitude, amplitude, (3, grid.nz, grid.n, grid.n)))


def run(pf: dict, strain: xr.Dataset, device: str, seed: int, checkpoint=None,
        log: logging.Logger | None = None) -> tuple[xr.Dataset, RelaxResult]:
    """Whole stage: model, relaxation (checkpointed), output Dataset."""
    log = log or logging.getLogger("twistox.phasefield")
    energy, grid, eig = build_model(pf, strain, device)
    log.info("grid %d x %d x %d (dx = %.3f Å, dz = %.3f Å), layer angles %s, device %s", grid.n, grid.n, grid.nz,
             grid.dx / A, grid.dz / A, strain.attrs["layer_angles_deg"], device)
    log.info("eigenstrain: max |eps_xy| = %.4g, max |eps_xx| = %.4g", np.abs(eig[0, 1]).max(), np.abs(eig[0, 0]).max())
    solver = PhaseFieldSolver(energy, settings_from_config(pf), log)
    log.info("operators assembled in %.2f s", solver.setup_s)
    fp = fingerprint_of(pf, seed, eig)
    res = solver.relax(initial_polarisation(grid, pf["initial_amplitude"], seed).to(device), checkpoint, fp)
    return to_dataset(energy, res, strain), res


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
