"""Moved to :mod:`jupyter_mldeploy.entry.static_check`; this name stays only until its last importers switch."""

from jupyter_mldeploy.entry.static_check import EntryScriptCheck, check_entry_script, check_source

__all__ = ["EntryScriptCheck", "check_entry_script", "check_source"]
