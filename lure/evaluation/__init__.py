"""Evaluation against baselines: methods, tables, qualitative grids and the runner.

What is compared and measured: docs/paper-map.md#evaluation.

* :mod:`lure.evaluation.baselines` — the compared methods (pixel average/max, DenseFuse l1 rule on
  our latents, restore-then-fuse, LURE with pseudo and with task descriptions);
* :mod:`lure.evaluation.tables` — paper-style Markdown + CSV tables (methods x metrics);
* :mod:`lure.evaluation.grid` — labelled qualitative grids (IR | VI | each method);
* :mod:`lure.evaluation.runner` — :func:`~lure.evaluation.runner.evaluate`, the DVC ``evaluate`` stage.
"""
