"""``colortrack reproduce``: every table and figure of a paper from one command, our numbers beside
the published ones (:mod:`colortrack.eval.reproduce.published`).

Each measurement is an existing evaluation (``eval davis``, ``eval jhmdb``, ``eval badja``,
``eval colorize``) written to its own subfolder of the output, so a re-run resumes each of them
where it stopped; the page and ``results.json`` are assembled from those folders.
"""
