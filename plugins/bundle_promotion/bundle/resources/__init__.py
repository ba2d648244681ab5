"""One module per resource kind a bundle deploys: its REST calls, the fields that force
a recreate, and its page URL. Imports ``bundle.config``, ``workspace`` and ``errors``;
planning and applying stay generic in ``bundle.deploy``.
"""
