"""A tiny shop: its background jobs (``jobs``) and a script that plays customers (``traffic``).

    sidequest dev                                   worker + demo traffic + a private Redis
    sidequest -r examples.shop.jobs -q critical -q default -q low
    python -m examples.shop.traffic                 enqueue a mix every second, until Ctrl-C
"""
