"""HTML from Jinja2 templates: the one way this service builds a template environment.

Every environment escapes every value (whatever the template's file name) and refuses an
undefined name, so a page can neither inject markup nor silently print nothing. Each owner
builds its environment once, when its module is imported, from the `templates/` folder of
its package.
"""

from __future__ import annotations

import jinja2


def environment(package: str, folder: str = "templates") -> jinja2.Environment:
    """An environment over `folder` in `package`: autoescape on, undefined names refused."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader(package, folder),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,
    )
