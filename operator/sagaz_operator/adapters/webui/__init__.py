"""The web UI, served by the operator on the read API's address (``SAGAZ_API_ADDRESS``).

Plain HTML, ES modules and CSS shipped in the package (``static/``): no build step, no CDN,
so it works in an air-gapped cluster. It only reads; every value it shows is put on the page
as text (``textContent``), never as markup.
"""
