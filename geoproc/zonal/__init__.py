"""Zonal statistics: zone layers read, checked and batched by location (:mod:`.zones`), and the
statistics of one batch (:mod:`.stats`)."""
