"""The page script of every view: starts the view its page names in <body data-view>.

PyScript compiles a page script from its source on every visit, so this one
stays short; the views (app/forward.py, app/reverse.py) come with their
bytecode in python.zip.
"""
import importlib

import js

from app import page

page.run(importlib.import_module(f"app.{js.document.body.dataset.view}").main)
