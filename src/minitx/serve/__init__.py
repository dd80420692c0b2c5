"""`minitx serve`: a live explorer of your own runs in the browser (docs/serve.md).

`session` is what the page asks of a run (the one module that calls the library), `app` the web app
and its guard (token, Host check, body limit), `static/` the page's HTML, JavaScript and CSS.
"""
