"""Pipelines: each command's `run(config, workdir)`, made of named steps sharing one `Run`.

  run.py            Run: workdir, process-0 writes, results, figures, progress, the report,
                    timed steps found by name (`find_step`), the closing summary
  report.py         Report: report.html (figures embedded) + summary.md from the same sections
  cli.py            what every command does around its pipeline (output, XLA cache, error.log)
  mahaut_baroni/    Mahaut & Baroni (2026): one module per step (imbalance, sample_size, ...)
  raghu/            Raghu et al. (2021): one module per step (cka, block_stats, ...)
  demo/             the embedded default on the shapes world
  imbalance.py      II between all layers of two sets of representations
  extract.py        models x images -> activation stores

No pipeline imports another: what two need lives in `repsim_jax.extraction`, `metrics`,
`analysis`, `run.py` or `report.py`.
"""
