"""previz: storyboard in, edited pre-vis cut out.

Stages (see DESIGN.md): storyboard -> plan -> generate -> engine -> assemble.
This module stays import-light: `previz validate` and `previz plan` must not pull in torch or ray.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
