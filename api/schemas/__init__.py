"""Request and response shapes, by role: create/update (parsing), public (responses), page (envelopes)."""
