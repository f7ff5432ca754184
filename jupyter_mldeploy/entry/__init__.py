"""Entry scripts (``score.py``): the static pre-check and the trial run, both on the scoring server's one contract.

* :mod:`~jupyter_mldeploy.entry.static_check`: ``check_entry_script`` / ``check_source`` parse a script
  (never import it) and report what the server would refuse.
* :mod:`~jupyter_mldeploy.entry.trial_run`: ``run_entry_check`` runs ``init()`` and ``run()`` once in a
  fresh process, laid out as a deployment (``%%score_script --check``).
* :mod:`~jupyter_mldeploy.entry.trial_child`: the child process of a trial run.

The rules themselves live in :mod:`jupyter_mldeploy.server.script_rules` and the call of ``run()`` in
:meth:`jupyter_mldeploy.server.user_script.UserScript.invoke_run`, shared with the scoring server.
"""

