"""Label your own images: a labeling project (SQLite), headless commands and a local web page.

``fishermask label init/scan/next/add/import/train/export/serve``; see the README section
"Label your own images". The heavy parts (torch, FastAPI) are imported by the commands.
"""
