"""Rule supercell: build the commensurate twisted bilayer of one sample."""

from ase.io import write

from twistox.core.io import structure_dataset
from twistox.core.plots import save
from twistox.core.runner import stage_script
from twistox.supercell import stage
from twistox.supercell.figures import planview

sm = snakemake  # noqa: F821
with stage_script(sm, "supercell") as run:
    atoms = stage.run(sm.config, sm.wildcards.system, sm.params.csl)
    write(sm.output.extxyz, atoms, format="extxyz")
    save(planview(atoms, sm.config["supercell"]["figure_planes"]), sm.output.figure)
    run.write_dataset(structure_dataset(atoms), sm.output.zarr, sections=("seed", "twist", "supercell"), system=True)
