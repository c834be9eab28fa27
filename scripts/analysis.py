"""Rule analysis: defects of every available field source of one sample -> vortices.zarr, vortices.csv, figures."""

from ase.data import atomic_numbers

from twistox.analysis import stage
from twistox.analysis.experiment import experiment_field
from twistox.core.device import torch_device
from twistox.core.io import read_dataset
from twistox.core.plots import save
from twistox.core.runner import stage_script

sm = snakemake  # noqa: F821
with stage_script(sm, "analysis", seed_wildcard="sample") as run:
    inp = dict(sm.input.items())
    sc = read_dataset(inp["supercell"])
    opt = {k: read_dataset(inp[k]) if k in inp else None for k in ("stem", "phasefield", "strain")}
    cfg = sm.config["analysis"]
    energy = stage.beam_energy_eV(cfg, opt["stem"], sm.config.get("stem"))
    L = stage.cell_side(opt["strain"], float(sc.attrs["supercell_length"]))  # per-cell counts in the relaxed cell
    expt = [experiment_field(e, L, device=torch_device(sm.config["device"]), name=n)
            for n, e in sm.params.experiment]
    title = f"{sm.wildcards.system} {sm.wildcards.sample}: θ = {sc.attrs['theta_deg']:.2f}°, Σ{sc.attrs['sigma']}"
    out = stage.run(sc, **opt, cfg=cfg, sample=sm.wildcards.sample, energy_eV=energy, experiment=expt, title=title,
                    b_number=atomic_numbers[sm.config["systems"][sm.wildcards.system]["B"]])
    out.table.to_csv(sm.output.csv, index=False)
    for name, fig in out.figures.items():
        save(fig, sm.output[name])
    run.write_dataset(out.dataset, sm.output.zarr, sections=("seed", "analysis"))
    run.log.info("wrote %s, %s (%d defects); claims: %s", sm.output.zarr, sm.output.csv, len(out.table), out.claims)
