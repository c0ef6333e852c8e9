"""The cycle and the other work behind the CLI and the pages, one module per step.

A retrain cycle (:func:`app.pipeline.cycle.run_cycle`, one :class:`~app.pipeline.stages.Stage` per step):

- ``config``: :class:`~app.pipeline.config.CycleConfig`, the cycle's settings (enums, numbers, paths),
  stored with every run and job.
- ``load``: the dataset's partial labels as arrays (``load_dataset`` → ``DatasetArrays``).
- ``features``: the initial weights resolved; head mode: every image embedded once (cached).
- ``fit``: one model of the cycle trained in either mode (``Scorer``, ``train_scorer`` → ``Fit``).
- ``cross_fit``: k-fold cross-fitting, shared by ``priors``, ``suggest`` and the benchmarks.
- ``priors``: the temporary ignore-mode model, cross-fitted, and the naive / model / file priors.
- ``evaluate``: partial mAP on the validation split.
- ``suggest``: every unknown cell of the training images scored (cross-fitted with ``--folds``) and ranked.
- ``store``: the cycle's writes, one transaction each (runs, class statistics, suggestions).
- ``stages``: the stages as values, their share of the progress bar, and their timer.
- ``cycle``: ``run_cycle`` runs those steps in order; ``cycle_job`` is the worker's handler.

Around it: ``embed`` (the cache the features stage reads, filled ahead of a cycle, sharded over
``torchrun`` processes: ``labelmend embed``), ``ingest`` (arrays into a new dataset), ``review``
(decisions from a file),
``predict`` (scores of new images from a stored run, ``labelmend predict``) and ``home`` (disk
errors under ``LABELMEND_HOME`` as one line).
"""
