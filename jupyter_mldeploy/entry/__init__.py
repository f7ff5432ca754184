"""Entry scripts (``score.py``): the static pre-check, applied before anything starts.

* :mod:`~jupyter_mldeploy.entry.static_check`: ``check_entry_script`` / ``check_source`` parse a script
  (never import it) and report what the server would refuse.

The rules themselves live in :mod:`jupyter_mldeploy.server.script_rules` and the call of ``run()`` in
:meth:`jupyter_mldeploy.server.user_script.UserScript.invoke_run`, shared with the scoring server. The trial
run (``%%score_script --check``) lays the app out as a deployment does, so it lives in the deploy layer:
:mod:`jupyter_mldeploy.deploy.trial_run`, with its child process :mod:`jupyter_mldeploy.server.trial_child`.
"""
