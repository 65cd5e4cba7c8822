"""course_tools.web: the Sphinx configuration of the web edition (copied into the generated source as conf.py).

Notebooks are never executed here: each page shows the outputs committed with it. Everything a page loads is
served from the site (`_static/`): the widget renderer and MathJax are the pinned copies of course_tools/web/vendor/.
"""

from course_tools.web.vendor import HTML_MANAGER, MATHJAX

project = "Generative AI from attention to RLHF, built in notebooks"
author = "the course's authors"
copyright = "the course's authors, MIT licence"
language = "en"
extensions = ["myst_nb"]
root_doc = "index"
exclude_patterns = ["_build", "**.ipynb_checkpoints"]
suppress_warnings = ["myst.header", "mystnb.unknown_mime_type", "misc.highlighting_failure"]

nb_execution_mode = "off"  # committed outputs, as the learner's clone has them
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3

html_theme = "sphinx_book_theme"
html_title = "Generative AI, built in notebooks"
html_static_path = ["_static"]
html_css_files = ["course.css"]
html_favicon = "_static/favicon.svg"
# ipywidgets 8 typesets descriptions through MathJax 2's `MathJax.Hub.Queue`; this shim, run after MathJax 3
# (same `defer` order), forwards it to MathJax 3 so that widgets render without a console error.
html_js_files = [("mathjax2-hub-shim.js", {"defer": "defer", "priority": 600})]
html_last_updated_fmt = None
html_theme_options = {
    "show_toc_level": 2,
    "use_download_button": True,
    "use_fullscreen_button": False,
    "home_page_in_toc": True,
    "search_bar_text": "Search the course...",
}
html_context = {"default_mode": "light"}
html_sidebars = {"**": ["navbar-logo.html", "search-button-field.html", "sbt-sidebar-nav.html"]}

# Pinned copies in _static/ (course_tools/web/vendor/); no CDN is contacted when a page loads.
mathjax_path = f"{MATHJAX.folder}/{MATHJAX.entry}"
nb_ipywidgets_js = {f"{HTML_MANAGER.folder}/{HTML_MANAGER.entry}": {}}
