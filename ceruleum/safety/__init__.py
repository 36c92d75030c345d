"""Responsible AI: content analyzers, the content filter, policies and Azure's annotations.

Public surface: `ContentFilter` (filter.py), `ContentFilterPolicy` (policy.py), `Segment` and the
`Analyzer` protocol (analyzers.py), `Verdict` (verdict.py), `build_content_filter` (service.py).
"""
