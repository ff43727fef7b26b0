"""Every screen that binds a form to the POST answers its refusal with web.forms.form_status (a
400): a view function that builds a form from request.POST passes `status=` to each `render` it
returns, so a new screen that forgets it fails here (as tests/core/test_integer_form_fields.py
does for lax fields). The behaviour itself is tested screen by screen in test_refused_forms.py."""

from __future__ import annotations

import ast
from pathlib import Path

import imali.web.views as views_package

VIEWS = Path(views_package.__file__).parent


def _is_post(node: ast.AST) -> bool:
    return any(isinstance(n, ast.Attribute) and n.attr == "POST" and isinstance(n.value, ast.Name)
               and n.value.id == "request" for n in ast.walk(node))


def _binds_a_form_to_the_post(function: ast.FunctionDef) -> bool:
    """A call whose first argument reads request.POST (`Form(request.POST or None, ...)`)."""
    return any(isinstance(n, ast.Call) and n.args and _is_post(n.args[0]) for n in ast.walk(function))


def _renders_without_status(function: ast.FunctionDef) -> list[int]:
    return [n.lineno for n in ast.walk(function)
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "render"
            and not any(k.arg == "status" for k in n.keywords)]


def test_every_view_that_binds_a_form_to_the_post_gives_render_its_status():
    missing, checked = [], 0
    for module in sorted(VIEWS.glob("*.py")):
        tree = ast.parse(module.read_text(), filename=str(module))
        for function in (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)):
            if _binds_a_form_to_the_post(function):
                checked += 1
                missing += [f"{module.name}:{line} {function.name}" for line in _renders_without_status(function)]
    assert checked > 50  # the walk sees the screens' views
    assert not missing, "render without status=form_status(...) in a view that reads a posted form: " + ", ".join(missing)
