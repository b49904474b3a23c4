"""Studies: grids of runs from a sweep file (``grid``), optuna searches (``search``), running them here
(``execution``) or as a Slurm job array (``slurm``), and their report (``report``).

A study never trains itself: each run is the ``imgcls fit`` and ``imgcls test`` a person would type,
in a run folder of its own, so that resume, reports and TensorBoard work the same inside a study.
"""
