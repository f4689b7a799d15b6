"""The documents feature: context meter, PDF options, reports, chunked answers, citations."""
