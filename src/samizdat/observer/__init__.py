"""The observer: verify, corroborate and cluster what comes out of a blackout (issue 6).

See docs/observer.md. Pure modules: model, parse, geo, cluster, analysis. I/O: service,
ingest (and media, web, evidence, scenario, written alongside).
"""
