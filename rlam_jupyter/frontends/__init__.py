"""Front ends: the ``%%rlam``/``%rlam`` magics, the ``rlam`` CLI, the Jupyter server's REST
API, the inline trace browser and the approval widgets.

Layer 7 of 7 (see docs/architecture.md): the only code that imports IPython, ipywidgets,
anywidget, tornado, jupyter_server or argparse. Each front end parses what the user
typed, calls the operations below, and shows the result.
"""
