"""Moved to :mod:`jupyter_mldeploy.entry.trial_run`; this name stays only until its last importers switch."""

from jupyter_mldeploy.entry.trial_run import EntryCheckRun, run_entry_check

__all__ = ["EntryCheckRun", "run_entry_check"]
