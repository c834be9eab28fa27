"""Rule analysis: vortex defects of every available field source of one sample -> dpc.zarr, vortices.csv, figures."""

import time

from twistox.analysis import stage as an
from twistox.core.config import section
from twistox.analysis.experiment import atomistic_fields, dpc_field, experiment_field, phasefield_field
from twistox.core.io import read_dataset, write_dataset
from twistox.core.plots import save
from twistox.core.runtime import seed_everything, setup_logging, torch_device

t0 = time.time()
sm = snakemake  # noqa: F821
log = setup_logging(sm.log[0])
cfg = sm.config["analysis"]
seed_everything(sm.config["seed"])   # nothing here is random; seeded for uniformity with the other stages
settings = an.Settings.from_config(cfg)
inp = {k: v for k, v in sm.input.items()}
sc = read_dataset(inp["supercell"])
L = float(sc.attrs["supercell_length"])
opt = {k: read_dataset(inp[k]) if k in inp else None for k in ("stem", "phasefield", "strain")}
log.info("sample %s: L = %.3f Å, lambda = %.3f Å; inputs: %s", sm.wildcards.sample, L, sc.attrs["moire_period"],
         ", ".join(sorted(inp)))

# Beam energy: config > stem.zarr attrs > stem config > 300 kV (only needed for COM <-> E_proj).
stem_attrs = opt["stem"].attrs if opt["stem"] is not None else {}
kv = cfg["beam_energy_kV"] or stem_attrs.get("energy_kev") or sm.config.get("stem", {}).get("energy_kev") or 300.0
energy = float(kv) * 1e3

fields = []
if opt["stem"] is not None:
    fields.append(dpc_field(opt["stem"], L, energy))
if opt["phasefield"] is not None:
    fields.append(phasefield_field(opt["phasefield"], L, energy))
if opt["strain"] is not None and "atomistic" in cfg["sources"]:
    fields += atomistic_fields(opt["strain"], L)
for name, entry in sm.params.experiment:
    fields.append(experiment_field(entry, L, device=torch_device(sm.config["device"]), name=name))

b_number = __import__("ase").data.atomic_numbers[sm.config["systems"][sm.wildcards.system]["B"]]
nodes = an.find_nodes(sc, opt["strain"], cfg["nodes"], b_number)
log.info("nodes: %d coincidence, %d anti-coincidence, %s strain maxima; matching to '%s'", len(nodes.coincidence),
         len(nodes.anticoincidence), "no" if nodes.strain is None else len(nodes.strain), nodes.used)

results = []
for f in fields:
    r = an.analyse_field(f, settings)
    an.match_nodes(r, nodes)
    s = r.summary(settings.match_radius_frac * nodes.moire_period)
    log.info("%s: grid %dx%d (%s), %d vortices (cw %d, ccw %d), %d antivortices, total winding %d, "
             "mean node distance %.2f Å", f.name, f.x.size, f.y.size, "periodic" if f.periodic else "open",
             s["n_vortices"], s["n_cw"], s["n_ccw"], s["n_antivortices"], s["total_winding"], s["node_distance_mean"])
    results.append(r)

period, period_src = an.network_period(opt["strain"], results)
spacings = an.cross_section_spacings(opt["stem"], cfg["line_min_period_A"])
if period:
    log.info("network period %.3f Å from %s (moire lambda %.3f Å)", period.value, period_src, nodes.moire_period)
for k, sp in spacings.items():
    log.info("cross section [%s]: dark-line spacing %.2f ± %.2f Å over %d lines", k, sp.mean, sp.std, sp.n)
sky = an.phasefield_skyrmion(opt["phasefield"], settings.rel_threshold)

an.defect_table(results, sm.wildcards.sample).to_csv(sm.output.csv, index=False)
title = f"{sm.wildcards.system} {sm.wildcards.sample}: θ = {sc.attrs['theta_deg']:.2f}°, Σ{sc.attrs['sigma']}"
save(an.fields_figure(results, nodes, cfg["figure_tiles"], title), sm.output.vortices)
save(an.periodicity_figure(results, spacings, opt["stem"], nodes, period, period_src, cfg["line_min_period_A"]),
     sm.output.periodicity)
ds = an.analysis_dataset(results, nodes, settings, period, period_src, spacings, sky)
ds.attrs.update({"beam_energy_eV": energy, "theta_deg": sc.attrs["theta_deg"], "sigma": sc.attrs["sigma"]})
write_dataset(ds, sm.output.zarr, config=section(sm.config, "seed", "analysis"), stage="analysis", t0=t0)
log.info("wrote %s, %s (%d defects) in %.2f s", sm.output.zarr, sm.output.csv,
         sum(len(r.defects) for r in results), time.time() - t0)
