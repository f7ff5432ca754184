"""The notebook face: IPython magics (:mod:`.magics`), the ``%mldeploy`` panel (:mod:`.widgets`) and the
HTML/text tables they display (:mod:`.summaries`).

This package is the only one that imports IPython and ipywidgets; the core never imports it. It is loaded
by ``%load_ext jupyter_mldeploy`` and ``jupyter_mldeploy.panel()`` (see the package ``__init__``).
"""
