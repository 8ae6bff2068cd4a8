"""Evaluation against baselines: methods, scoring, tables, qualitative grids and the stage runner.

* :mod:`lure.evaluation.config` — :class:`~lure.evaluation.config.EvaluationConfig`, the typed and
  checked ``evaluate`` section of a profile (every default in one place);
* :mod:`lure.evaluation.pair_sets` — clean pair sets (shards or ``folder:``) and degraded sets
  (shards or made on the fly with the shards' seed rule);
* :mod:`lure.evaluation.baselines` — the compared methods (pixel average/max, DenseFuse l1 rule on
  our latents, restore-then-fuse, LURE with pseudo and with task descriptions);
* :mod:`lure.evaluation.scoring` — the per-image :class:`~lure.evaluation.scoring.Scorer` and the
  scoring of a set with a list of methods;
* :mod:`lure.evaluation.tables` — paper-style Markdown + CSV tables (methods x metrics);
* :mod:`lure.evaluation.grid` — labelled qualitative grids (IR | VI | each method);
* :mod:`lure.evaluation.report` — the files of one run (tables, grids, summary, ``metrics.json``);
* :mod:`lure.evaluation.sections` — the vanilla, degraded and restoration sections;
* :mod:`lure.evaluation.restoration` — ``lure restore`` against the input and a classical correction;
* :mod:`lure.evaluation.runner` — :func:`~lure.evaluation.runner.evaluate`, the DVC ``evaluate`` stage.
"""
